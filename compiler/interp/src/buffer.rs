//! Host buffers: typed global memory for a kernel run.
//!
//! A [`Buffer`] stores its elements as little-endian bytes in the dtype's memory format (bool is
//! one byte, f16/bf16 are their 16-bit patterns), so a buffer of 2^31 `u8`s costs 2 GiB and
//! [`Buffer::zeroed`] gets lazily zeroed pages from the allocator. A *poisoned* buffer
//! ([`Buffer::uninit`]) also keeps one "initialised" flag per element: kernels that read an
//! element before writing it fault, and after the run the caller can see what was never written.

use crate::error::InterpError;
use tk_ir::eval;
use tk_ir::{ConstValue, DType};

/// A host-side element type that can fill or be read from a [`Buffer`].
pub trait HostElem: Copy {
    /// The tk dtype of this Rust type.
    const DTYPE: DType;
    /// The value in the evaluator's representation (see [`tk_ir::eval`]).
    fn to_value(self) -> ConstValue;
    /// The Rust value of a value of dtype [`Self::DTYPE`].
    fn from_value(v: ConstValue) -> Self;
}

macro_rules! host_int {
    ($($t:ty => $d:ident),*) => {$(
        impl HostElem for $t {
            const DTYPE: DType = DType::$d;
            fn to_value(self) -> ConstValue {
                ConstValue::Int(self as i64)
            }
            fn from_value(v: ConstValue) -> Self {
                match v {
                    ConstValue::Int(i) => i as $t,
                    ConstValue::Bool(b) => b as $t,
                    ConstValue::Float(f) => f as $t,
                }
            }
        }
    )*};
}
host_int!(i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32, u64 => U64);

fn value_f64(v: ConstValue) -> f64 {
    match v {
        ConstValue::Float(f) => f,
        ConstValue::Int(i) => i as f64,
        ConstValue::Bool(b) => b as i64 as f64,
    }
}

impl HostElem for f64 {
    const DTYPE: DType = DType::F64;
    fn to_value(self) -> ConstValue {
        ConstValue::Float(self)
    }
    fn from_value(v: ConstValue) -> Self {
        value_f64(v)
    }
}

impl HostElem for f32 {
    const DTYPE: DType = DType::F32;
    fn to_value(self) -> ConstValue {
        ConstValue::Float(self as f64)
    }
    fn from_value(v: ConstValue) -> Self {
        value_f64(v) as f32
    }
}

impl HostElem for half::f16 {
    const DTYPE: DType = DType::F16;
    fn to_value(self) -> ConstValue {
        ConstValue::Float(self.to_f64())
    }
    fn from_value(v: ConstValue) -> Self {
        half::f16::from_bits(f16_bits(value_f64(v)))
    }
}

impl HostElem for half::bf16 {
    const DTYPE: DType = DType::BF16;
    fn to_value(self) -> ConstValue {
        ConstValue::Float(self.to_f64())
    }
    fn from_value(v: ConstValue) -> Self {
        half::bf16::from_bits(bf16_bits(value_f64(v)))
    }
}

impl HostElem for bool {
    const DTYPE: DType = DType::Bool;
    fn to_value(self) -> ConstValue {
        ConstValue::Bool(self)
    }
    fn from_value(v: ConstValue) -> Self {
        match v {
            ConstValue::Bool(b) => b,
            ConstValue::Int(i) => i != 0,
            ConstValue::Float(f) => f != 0.0,
        }
    }
}

/// f16 bit pattern of `x`, rounded first (ties to even) by [`eval::round_float`]: `half`'s own
/// `f64` conversion is only exact for values that are already representable.
fn f16_bits(x: f64) -> u16 {
    half::f16::from_f64(eval::round_float(DType::F16, x)).to_bits()
}

fn bf16_bits(x: f64) -> u16 {
    half::bf16::from_f64(eval::round_float(DType::BF16, x)).to_bits()
}

/// Typed global memory for one kernel argument (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Buffer {
    dtype: DType,
    len: usize,
    bytes: Vec<u8>,
    /// `None`: every element is initialised. `Some(flags)`: the buffer was created poisoned.
    init: Option<Vec<bool>>,
}

impl Buffer {
    /// A buffer holding a copy of `data`.
    pub fn from_slice<T: HostElem>(data: &[T]) -> Buffer {
        let mut b = Buffer::zeroed(T::DTYPE, data.len());
        for (i, &x) in data.iter().enumerate() {
            b.write(i, x.to_value());
        }
        b
    }

    /// A buffer of `len` zeros (`false`, `0`, `+0.0`). The memory comes zeroed from the
    /// allocator, so a huge buffer only costs the pages a kernel touches.
    pub fn zeroed(dtype: DType, len: usize) -> Buffer {
        Buffer { dtype, len, bytes: vec![0u8; len * dtype.size_bytes() as usize], init: None }
    }

    /// A poisoned buffer: every element is uninitialised until a store or atomic writes it.
    pub fn uninit(dtype: DType, len: usize) -> Buffer {
        Buffer { init: Some(vec![false; len]), ..Buffer::zeroed(dtype, len) }
    }

    /// A buffer over raw little-endian bytes in `dtype`'s memory format.
    pub fn from_bytes(dtype: DType, bytes: Vec<u8>) -> Result<Buffer, InterpError> {
        let size = dtype.size_bytes() as usize;
        if bytes.len() / size * size != bytes.len() {
            return Err(InterpError::bad_args(format!(
                "{} bytes is not a whole number of {dtype} elements ({size} bytes each)",
                bytes.len()
            )));
        }
        Ok(Buffer { dtype, len: bytes.len() / size, bytes, init: None })
    }

    /// A buffer of the given values (each normalised to `dtype`, see [`eval::normalize`]).
    pub fn from_values(dtype: DType, values: &[ConstValue]) -> Buffer {
        let mut b = Buffer::zeroed(dtype, values.len());
        for (i, &v) in values.iter().enumerate() {
            b.write(i, eval::normalize(dtype, v));
        }
        b
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw little-endian bytes (uninitialised elements read as zero bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// True if the buffer was created poisoned (it tracks which elements were written).
    pub fn is_poisoned(&self) -> bool {
        self.init.is_some()
    }

    /// True if element `i` exists and holds a value.
    pub fn is_init(&self, i: usize) -> bool {
        i < self.len && !matches!(&self.init, Some(f) if !f[i])
    }

    /// How many elements have never been written (0 for a buffer that was not poisoned).
    pub fn uninit_count(&self) -> usize {
        self.init.as_ref().map_or(0, |f| f.iter().filter(|&&x| !x).count())
    }

    /// The index of the first element never written, if any.
    pub fn first_uninit(&self) -> Option<usize> {
        self.init.as_ref().and_then(|f| f.iter().position(|&x| !x))
    }

    /// Element `i`, or `None` if it is out of range or uninitialised.
    pub fn get(&self, i: usize) -> Option<ConstValue> {
        if self.is_init(i) {
            Some(self.read(i))
        } else {
            None
        }
    }

    /// Writes element `i` (normalised to the dtype) and marks it initialised.
    pub fn set(&mut self, i: usize, v: ConstValue) -> Result<(), InterpError> {
        if i >= self.len {
            return Err(InterpError::bad_args(format!(
                "index {i} is out of range for a buffer of {} elements",
                self.len
            )));
        }
        self.write(i, eval::normalize(self.dtype, v));
        Ok(())
    }

    /// All elements as `T`. Fails if `T` is not the buffer's dtype or an element is
    /// uninitialised.
    pub fn to_vec<T: HostElem>(&self) -> Result<Vec<T>, InterpError> {
        if T::DTYPE != self.dtype {
            return Err(InterpError::bad_args(format!(
                "cannot read a {} buffer as {}",
                self.dtype,
                T::DTYPE
            )));
        }
        if let Some(i) = self.first_uninit() {
            return Err(InterpError::bad_args(format!(
                "element {i} of the buffer was never written ({} of {} elements are \
                 uninitialised)",
                self.uninit_count(),
                self.len
            )));
        }
        Ok((0..self.len).map(|i| T::from_value(self.read(i))).collect())
    }

    /// All elements, `None` where uninitialised.
    pub fn values(&self) -> Vec<Option<ConstValue>> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    fn at<const N: usize>(&self, i: usize) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.bytes[i * N..i * N + N]);
        a
    }

    fn put(&mut self, i: usize, b: &[u8]) {
        let n = b.len();
        self.bytes[i * n..i * n + n].copy_from_slice(b);
    }

    /// Element `i` as a float (float dtypes only; `i < len`).
    pub(crate) fn read_float(&self, i: usize) -> f64 {
        match self.dtype {
            DType::F64 => f64::from_le_bytes(self.at(i)),
            DType::F32 => f32::from_le_bytes(self.at(i)) as f64,
            DType::F16 => half::f16::from_bits(u16::from_le_bytes(self.at(i))).to_f64(),
            DType::BF16 => half::bf16::from_bits(u16::from_le_bytes(self.at(i))).to_f64(),
            _ => 0.0,
        }
    }

    /// Element `i` as an integer in the evaluator's representation (int dtypes only).
    pub(crate) fn read_int(&self, i: usize) -> i64 {
        match self.dtype {
            DType::I8 => i8::from_le_bytes(self.at(i)) as i64,
            DType::I16 => i16::from_le_bytes(self.at(i)) as i64,
            DType::I32 => i32::from_le_bytes(self.at(i)) as i64,
            DType::I64 => i64::from_le_bytes(self.at(i)),
            DType::U8 => self.bytes[i] as i64,
            DType::U16 => u16::from_le_bytes(self.at(i)) as i64,
            DType::U32 => u32::from_le_bytes(self.at(i)) as i64,
            DType::U64 => u64::from_le_bytes(self.at(i)) as i64,
            _ => 0,
        }
    }

    /// Element `i` as a bool: any non-zero byte is true.
    pub(crate) fn read_bool(&self, i: usize) -> bool {
        self.bytes[i] != 0
    }

    pub(crate) fn read(&self, i: usize) -> ConstValue {
        if self.dtype.is_float() {
            ConstValue::Float(self.read_float(i))
        } else if self.dtype.is_bool() {
            ConstValue::Bool(self.read_bool(i))
        } else {
            ConstValue::Int(self.read_int(i))
        }
    }

    fn mark(&mut self, i: usize) {
        if let Some(f) = &mut self.init {
            f[i] = true;
        }
    }

    /// Writes a float already rounded to the dtype.
    pub(crate) fn write_float(&mut self, i: usize, x: f64) {
        match self.dtype {
            DType::F64 => self.put(i, &x.to_le_bytes()),
            DType::F32 => self.put(i, &(x as f32).to_le_bytes()),
            DType::F16 => self.put(i, &f16_bits(x).to_le_bytes()),
            DType::BF16 => self.put(i, &bf16_bits(x).to_le_bytes()),
            _ => {}
        }
        self.mark(i);
    }

    /// Writes an integer in the evaluator's representation (truncated to the dtype's width).
    pub(crate) fn write_int(&mut self, i: usize, v: i64) {
        let size = self.dtype.size_bytes() as usize;
        let b = v.to_le_bytes();
        self.put(i, &b[..size]);
        self.mark(i);
    }

    pub(crate) fn write_bool(&mut self, i: usize, v: bool) {
        self.bytes[i] = v as u8;
        self.mark(i);
    }

    pub(crate) fn write(&mut self, i: usize, v: ConstValue) {
        match v {
            ConstValue::Float(f) => self.write_float(i, f),
            ConstValue::Int(x) => self.write_int(i, x),
            ConstValue::Bool(b) => self.write_bool(i, b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    #[test]
    fn round_trips_every_dtype() {
        assert_eq!(Buffer::from_slice(&[1.5f32, -2.0]).to_vec::<f32>().unwrap(), vec![1.5, -2.0]);
        assert_eq!(Buffer::from_slice(&[1e300f64]).to_vec::<f64>().unwrap(), vec![1e300]);
        assert_eq!(Buffer::from_slice(&[-128i8, 127]).to_vec::<i8>().unwrap(), vec![-128, 127]);
        assert_eq!(Buffer::from_slice(&[-3i16]).to_vec::<i16>().unwrap(), vec![-3]);
        assert_eq!(Buffer::from_slice(&[i32::MIN]).to_vec::<i32>().unwrap(), vec![i32::MIN]);
        assert_eq!(Buffer::from_slice(&[i64::MIN]).to_vec::<i64>().unwrap(), vec![i64::MIN]);
        assert_eq!(Buffer::from_slice(&[255u8]).to_vec::<u8>().unwrap(), vec![255]);
        assert_eq!(Buffer::from_slice(&[65535u16]).to_vec::<u16>().unwrap(), vec![65535]);
        assert_eq!(Buffer::from_slice(&[u32::MAX]).to_vec::<u32>().unwrap(), vec![u32::MAX]);
        assert_eq!(Buffer::from_slice(&[u64::MAX]).to_vec::<u64>().unwrap(), vec![u64::MAX]);
        assert_eq!(Buffer::from_slice(&[true, false]).to_vec::<bool>().unwrap(), vec![true, false]);
        // f16 subnormal (2^-24) and bf16 values survive exactly.
        let h = [f16::from_bits(1), f16::from_f32(-1.5), f16::INFINITY];
        assert_eq!(Buffer::from_slice(&h).to_vec::<f16>().unwrap(), h.to_vec());
        let b = [bf16::from_f32(3.0), bf16::from_bits(1)];
        assert_eq!(Buffer::from_slice(&b).to_vec::<bf16>().unwrap(), b.to_vec());
    }

    #[test]
    fn values_are_in_eval_representation() {
        let b = Buffer::from_slice(&[u64::MAX, 7]);
        assert_eq!(b.get(0), Some(ConstValue::Int(-1)));
        let b = Buffer::from_slice(&[u32::MAX]);
        assert_eq!(b.get(0), Some(ConstValue::Int(4294967295)));
        let b = Buffer::from_slice(&[f16::from_f32(0.5)]);
        assert_eq!(b.get(0), Some(ConstValue::Float(0.5)));
        assert_eq!(b.get(1), None);
    }

    #[test]
    fn bytes_are_little_endian() {
        let b = Buffer::from_slice(&[0x0102_0304i32]);
        assert_eq!(b.as_bytes(), &[4, 3, 2, 1]);
        let b = Buffer::from_bytes(DType::U16, vec![0x34, 0x12, 0xff, 0xff]).unwrap();
        assert_eq!(b.to_vec::<u16>().unwrap(), vec![0x1234, 0xffff]);
        assert!(Buffer::from_bytes(DType::F32, vec![0; 6]).is_err());
        let b = Buffer::from_bytes(DType::Bool, vec![0, 2]).unwrap();
        assert_eq!(b.to_vec::<bool>().unwrap(), vec![false, true]);
    }

    #[test]
    fn poisoned_buffers_track_writes() {
        let mut b = Buffer::uninit(DType::F32, 4);
        assert!(b.is_poisoned());
        assert_eq!(b.uninit_count(), 4);
        b.set(2, ConstValue::Float(1.0)).unwrap();
        assert_eq!(b.uninit_count(), 3);
        assert_eq!(b.first_uninit(), Some(0));
        assert_eq!(b.get(0), None);
        assert_eq!(b.get(2), Some(ConstValue::Float(1.0)));
        assert!(b.to_vec::<f32>().is_err());
        assert!(b.to_vec::<i32>().is_err());
        assert!(b.set(4, ConstValue::Float(1.0)).is_err());
        let z = Buffer::zeroed(DType::I32, 3);
        assert!(!z.is_poisoned());
        assert_eq!(z.to_vec::<i32>().unwrap(), vec![0, 0, 0]);
    }

    #[test]
    fn from_values_normalises() {
        let b = Buffer::from_values(DType::F16, &[ConstValue::Float(1.0 + 2f64.powi(-11))]);
        assert_eq!(b.get(0), Some(ConstValue::Float(1.0)));
        let b = Buffer::from_values(DType::U8, &[ConstValue::Int(257)]);
        assert_eq!(b.get(0), Some(ConstValue::Int(1)));
    }
}
