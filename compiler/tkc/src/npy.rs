//! Reading and writing `.npy` files as raw little-endian element bytes.
//!
//! Headers of input files are parsed by `npyz` (it handles every header variant NumPy writes);
//! output headers are the fixed version-1.0 form, written here because the data is already raw
//! bytes in our dtype and the header is a dozen bytes of formatting.

use std::io::Read;
use tk_ir::DType;

/// The NumPy type string of a dtype (bf16 has none).
pub fn descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::Bool => "|b1",
        DType::I8 => "|i1",
        DType::I16 => "<i2",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::U8 => "|u1",
        DType::U16 => "<u2",
        DType::U32 => "<u4",
        DType::U64 => "<u8",
        DType::F16 => "<f2",
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::BF16 => return None,
    })
}

/// An array read from a file: shape and raw element bytes.
pub struct NpyArray {
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

/// Reads `path`, requiring element type `want`. Errors are user-facing sentences.
pub fn read(path: &std::path::Path, want: DType) -> Result<NpyArray, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    let mut r = std::io::BufReader::new(file);
    let header = npyz::NpyHeader::from_reader(&mut r)
        .map_err(|e| format!("`{}` is not a valid .npy file: {e}", path.display()))?;
    let got = header.dtype().descr().trim_matches(|c| c == '\'' || c == '"').to_string();
    let expect = descr(want).ok_or_else(|| {
        format!("bf16 buffers cannot be read from .npy (NumPy has no bf16); `{}`", path.display())
    })?;
    let normalise = |s: &str| s.replace('=', "<");
    if normalise(&got) != expect && !(expect.starts_with('|') && got.ends_with(&expect[1..])) {
        return Err(format!(
            "`{}` holds `{got}` elements but the kernel parameter is `{want}` (NumPy `{expect}`); convert it with `arr.astype(...)`",
            path.display()
        ));
    }
    if header.order() != npyz::Order::C {
        return Err(format!(
            "`{}` is in Fortran order; save it with `np.ascontiguousarray`",
            path.display()
        ));
    }
    let shape = header.shape().to_vec();
    let n: u64 = shape.iter().product();
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes).map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let need = n as usize * want.size_bytes() as usize;
    if bytes.len() < need {
        return Err(format!(
            "`{}` is truncated: {} data bytes, {need} expected",
            path.display(),
            bytes.len()
        ));
    }
    bytes.truncate(need);
    Ok(NpyArray { shape, bytes })
}

/// The bytes of a version-1.0 `.npy` file holding `data` (raw little-endian elements).
pub fn encode(d: DType, shape: &[u64], data: &[u8]) -> Result<Vec<u8>, String> {
    let descr = descr(d).ok_or("bf16 buffers cannot be written as .npy (NumPy has no bf16)")?;
    let dims: Vec<String> = shape.iter().map(|s| s.to_string()).collect();
    let shape_text =
        if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_through_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let vals: Vec<u8> = [1.5f32, -2.0, 3.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, encode(DType::F32, &[3], &vals).unwrap()).unwrap();
        let a = read(&p, DType::F32).unwrap();
        assert_eq!(a.shape, vec![3]);
        assert_eq!(a.bytes, vals);
        let err = read(&p, DType::I32).err().unwrap();
        assert!(err.contains("<f4"), "{err}");
    }
}
