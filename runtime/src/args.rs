//! Launch arguments: scalars by value and buffers borrowed from Rust slices, each carrying its
//! element type so that a launch can be checked against the manifest.

use crate::manifest::Dtype;
use std::marker::PhantomData;

/// Rust types that can be kernel scalars or buffer elements.
pub trait Element: Copy + 'static {
    const DTYPE: Dtype;
}

macro_rules! element {
    ($($t:ty => $d:ident),*) => {$(impl Element for $t { const DTYPE: Dtype = Dtype::$d; })*};
}
element!(bool => Bool, i8 => I8, i16 => I16, i32 => I32, i64 => I64, u8 => U8, u16 => U16, u32 => U32, u64 => U64, f32 => F32, f64 => F64);

/// A scalar argument's bytes (little-endian, padded to 8 bytes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalarValue {
    pub dtype: Dtype,
    pub bits: u64,
}

/// One launch argument. Buffers borrow their slice for `'a`, so the data outlives the launch.
#[derive(Debug)]
pub enum Arg<'a> {
    Scalar(ScalarValue),
    Buffer {
        ptr: *mut u8,
        len: usize,
        dtype: Dtype,
        mutable: bool,
        _borrow: PhantomData<&'a mut [u8]>,
    },
}

// The pointers inside `Arg` come from borrowed slices; a launch only hands them to kernels
// for the duration of the call.
unsafe impl Send for Arg<'_> {}
unsafe impl Sync for Arg<'_> {}

impl<'a> Arg<'a> {
    /// A scalar of any element type.
    pub fn scalar<T: Element>(v: T) -> Arg<'a> {
        let mut bits = [0u8; 8];
        let n = std::mem::size_of::<T>();
        // SAFETY: T is a plain-old-data numeric type of at most 8 bytes.
        unsafe { std::ptr::copy_nonoverlapping(&v as *const T as *const u8, bits.as_mut_ptr(), n) };
        Arg::Scalar(ScalarValue { dtype: T::DTYPE, bits: u64::from_le_bytes(bits) })
    }
    pub fn i32(v: i32) -> Arg<'a> {
        Arg::scalar(v)
    }
    pub fn i64(v: i64) -> Arg<'a> {
        Arg::scalar(v)
    }
    pub fn f32(v: f32) -> Arg<'a> {
        Arg::scalar(v)
    }
    /// A buffer the kernel only reads.
    pub fn slice<T: Element>(s: &'a [T]) -> Arg<'a> {
        Arg::Buffer {
            ptr: s.as_ptr() as *mut u8,
            len: s.len(),
            dtype: T::DTYPE,
            mutable: false,
            _borrow: PhantomData,
        }
    }
    /// A buffer the kernel may write.
    pub fn slice_mut<T: Element>(s: &'a mut [T]) -> Arg<'a> {
        Arg::Buffer {
            ptr: s.as_mut_ptr() as *mut u8,
            len: s.len(),
            dtype: T::DTYPE,
            mutable: true,
            _borrow: PhantomData,
        }
    }
    /// A buffer of raw bytes holding elements of `dtype` (e.g. f16 or bf16 data).
    ///
    /// # Safety
    /// `ptr` must be valid for reads (and writes, if `mutable`) of `len` elements of `dtype`
    /// for the lifetime `'a`, and not aliased mutably elsewhere during launches.
    pub unsafe fn raw(ptr: *mut u8, len: usize, dtype: Dtype, mutable: bool) -> Arg<'a> {
        Arg::Buffer { ptr, len, dtype, mutable, _borrow: PhantomData }
    }

    /// How the argument reads in error messages.
    pub fn describe(&self) -> String {
        match self {
            Arg::Scalar(s) => format!("a `{}` scalar", s.dtype.name()),
            Arg::Buffer { dtype, mutable, .. } => {
                format!("a {}`{}` buffer", if *mutable { "mutable " } else { "" }, dtype.name())
            }
        }
    }
}
