//! Host buffers aligned for kernel launches, and the seeded random fills of the example's data.
//!
//! `tk-runtime` refuses buffers whose base is not 16-byte aligned (compiled kernels use aligned
//! vector accesses); a `Vec<f32>` only promises 4, so the layer's buffers live here instead.

use std::marker::PhantomData;

/// One cache line: the unit of allocation, which gives every buffer 64-byte alignment.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Element types whose all-zero bit pattern is a valid value (so a zeroed buffer is initialised).
pub trait Pod: Copy + Default + 'static {}
impl Pod for f32 {}
impl Pod for i32 {}

/// A zero-initialised, 64-byte-aligned buffer of `len` elements.
pub struct Buf<T: Pod> {
    lines: Vec<Line>,
    len: usize,
    _t: PhantomData<T>,
}

impl<T: Pod> Buf<T> {
    pub fn zeroed(len: usize) -> Buf<T> {
        let bytes = len * std::mem::size_of::<T>();
        let mut lines = vec![Line([0; 64]); bytes.div_ceil(64)];
        // Fault the pages in now rather than inside the first kernel that writes them (which
        // would then be timed with the page faults): a zeroed allocation is only mapped lazily.
        for l in lines.iter_mut().step_by(64) {
            // SAFETY: a valid, aligned, exclusively borrowed element.
            unsafe { std::ptr::write_volatile(l, Line([0; 64])) };
        }
        Buf { lines, len, _t: PhantomData }
    }

    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> Buf<T> {
        let mut b = Buf::zeroed(len);
        for (i, v) in b.iter_mut().enumerate() {
            *v = f(i);
        }
        b
    }
}

impl<T: Pod> std::ops::Deref for Buf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `lines` holds at least `len * size_of::<T>()` initialised bytes, aligned to 64
        // (more than any `Pod` type needs), and every bit pattern is a valid `T`.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const T, self.len) }
    }
}

impl<T: Pod> std::ops::DerefMut for Buf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the borrow unique.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut T, self.len) }
    }
}

/// SplitMix64: a small, fast, seedable generator (the data only needs to be reproducible).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// An integer uniform in [-m, m].
    pub fn int_in(&mut self, m: i64) -> i64 {
        (self.next_u64() % (2 * m as u64 + 1)) as i64 - m
    }
}
