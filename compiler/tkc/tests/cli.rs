//! End-to-end tests of the `tkc` binary: exit codes, diagnostics on stderr, `run` on the
//! interpreter including an out-of-bounds load that must name the line and index and read nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tkc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tkc")).args(args).output().expect("tkc runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn out_of_bounds_load_names_line_and_index_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "oob.tk",
        "kernel shifted_copy(x: *f32, y: *f32) {\n    let i = arange(0, 16);\n    let v = load(x + i + 10);\n    store(y + i, v);\n}\n",
    );
    let out_dir = dir.path().join("results");
    let o = tkc(&[
        "run",
        &src,
        "--grid",
        "1",
        "--arg",
        "x=rand:16",
        "--arg",
        "y=out:16",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // Lane 6 reads x[16], the first element past the 16-element buffer.
    assert!(err.contains("x[16]"), "error must name the index: {err}");
    assert!(err.contains("oob.tk:3"), "error must name the .tk line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // The faulting load read nothing and the store after it never ran: no output was written.
    assert!(!out_dir.exists(), "a failed run must not write results");
}

#[test]
fn masked_off_lanes_may_point_out_of_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "masked.tk",
        "kernel copy_n(x: *f32, y: *f32, n: i32) {\n    let i = arange(0, 16);\n    store(y + i, load(x + i, mask: i < n, other: 7.0), mask: i < 16);\n}\n",
    );
    let o = tkc(&[
        "run",
        &src,
        "--arg",
        "x=rand:10",
        "--arg",
        "y=out:16",
        "--arg",
        "n=10",
        "--print-all",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    // The six masked-off lanes get `other`.
    assert!(
        out.contains("7, 7, 7, 7, 7, 7]")
            || out.contains("7.000000, 7.000000, 7.000000, 7.000000, 7.000000, 7.000000]"),
        "{out}"
    );
}

#[test]
fn user_errors_exit_1_with_a_located_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let src = write(
        dir.path(),
        "bad.tk",
        "kernel k(x: *f32) {\n    store(x + arange(0, 16), undefined_name);\n}\n",
    );
    let o = tkc(&["check", &src]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.tk:2:30"), "{err}");
    assert!(err.contains("cannot find `undefined_name`"), "{err}");
}

#[test]
fn random_bytes_are_a_user_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let p = dir.path().join("noise.tk");
    std::fs::write(&p, bytes).unwrap();
    let o = tkc(&["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn missing_file_is_a_user_error() {
    let o = tkc(&["check", "/nonexistent/kernel.tk"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot read"), "{}", stderr(&o));
}

/// A version-1.0 `.npy` file of f32 values, written independently of tkc's own encoder.
fn npy_f32(vals: &[f32]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}", vals.len());
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    vals.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

#[test]
fn run_reads_and_writes_npy_and_computes_vector_add() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("res");
    let x: Vec<f32> = (0..1000).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..1000).map(|i| 3.0 - i as f32).collect();
    std::fs::write(dir.path().join("x.npy"), npy_f32(&x)).unwrap();
    std::fs::write(dir.path().join("y.npy"), npy_f32(&y)).unwrap();
    let vadd = repo().join("stdlib/vector_add.tk");
    let xa = format!("x={}", dir.path().join("x.npy").display());
    let ya = format!("y={}", dir.path().join("y.npy").display());
    let o = tkc(&[
        "run",
        vadd.to_str().unwrap(),
        "-D",
        "BLOCK=160",
        "--grid",
        "7",
        "--arg",
        &xa,
        "--arg",
        &ya,
        "--arg",
        "z=out:1000",
        "--arg",
        "n=1000",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let z = std::fs::read(out_dir.join("z.npy")).unwrap();
    assert_eq!(&z[..6], b"\x93NUMPY");
    let header_len = u16::from_le_bytes([z[8], z[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "header is padded to 64 bytes");
    let data = &z[10 + header_len..];
    assert_eq!(data.len(), 4000, "1000 f32 values");
    for i in 0..1000 {
        let got = f32::from_le_bytes(data[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(got, x[i] + y[i], "z[{i}]");
    }
}

#[test]
fn npy_of_the_wrong_dtype_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.npy"), npy_f32(&[1.0; 8])).unwrap();
    let src =
        write(dir.path(), "ints.tk", "kernel k(x: *i32) {\n    store(x + arange(0, 8), 1);\n}\n");
    let xa = format!("x={}", dir.path().join("x.npy").display());
    let o = tkc(&["run", &src, "--arg", &xa]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("<f4"), "{}", stderr(&o));
}

#[test]
fn grid_too_small_reports_unwritten_outputs() {
    let vadd = repo().join("stdlib/vector_add.tk");
    let o = tkc(&[
        "run",
        vadd.to_str().unwrap(),
        "-D",
        "BLOCK=128",
        "--grid",
        "2",
        "--arg",
        "x=rand:300",
        "--arg",
        "y=rand:300",
        "--arg",
        "z=out:300",
        "--arg",
        "n=300",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("44 of 300 elements of `z` were never written"), "{}", stderr(&o));
}

#[test]
fn emit_ir_prints_both_stages() {
    let sm = repo().join("stdlib/softmax.tk");
    let o = tkc(&["emit", "ir", sm.to_str().unwrap(), "--stage", "both"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("lowered") && text.contains("optimized"), "{text}");
    assert!(text.contains("softmax"), "{text}");
}

#[test]
fn help_is_available_for_every_command() {
    for args in
        [vec!["--help"], vec!["check", "--help"], vec!["emit", "--help"], vec!["run", "--help"]]
    {
        let o = tkc(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(!o.stdout.is_empty());
    }
}
