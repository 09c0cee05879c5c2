//! The C baselines (bench/c/*.c), built by scripts/bench.sh into one shared library with
//! `cc -O3 -march=native -fopenmp` and linked to OpenBLAS, loaded here with libloading.

use libloading::Library;
use std::path::Path;

type VecAdd = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64, i32);
type Softmax = unsafe extern "C" fn(*const f32, *mut f32, i32, i32, i32);
type LayerNorm =
    unsafe extern "C" fn(*const f32, *const f32, *const f32, *mut f32, i32, i32, f32, i32);
type RmsNorm = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i32, i32, f32, i32);
type Gating = unsafe extern "C" fn(*const f32, *mut f32, *mut i32, i32, i32, i32, i32);
type Copy = unsafe extern "C" fn(*mut f32, *const f32, i64, i32);
type Sgemm = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i32, i32, i32, i32);
type Info = unsafe extern "C" fn(*mut u8, i32);

pub struct CLib {
    _lib: Library,
    vector_add: VecAdd,
    softmax: Softmax,
    layernorm: LayerNorm,
    rmsnorm: RmsNorm,
    gating: Gating,
    copy_memcpy: Copy,
    copy_loop: Copy,
    sgemm: Sgemm,
    blas_info: Info,
    threads: i32,
}

fn sym<T: std::marker::Copy>(lib: &Library, name: &str) -> Result<T, String> {
    // SAFETY: every symbol below is declared with the C signature it has in bench/c.
    unsafe { lib.get::<T>(name.as_bytes()).map(|s| *s).map_err(|e| format!("{name}: {e}")) }
}

impl CLib {
    pub fn open(path: &Path, threads: usize) -> Result<CLib, String> {
        // SAFETY: our own library; its initialisers are libgomp's and OpenBLAS's.
        let lib = unsafe { Library::new(path) }
            .map_err(|e| format!("cannot load the C baselines {}: {e}", path.display()))?;
        Ok(CLib {
            vector_add: sym(&lib, "c_vector_add")?,
            softmax: sym(&lib, "c_softmax")?,
            layernorm: sym(&lib, "c_layernorm")?,
            rmsnorm: sym(&lib, "c_rmsnorm")?,
            gating: sym(&lib, "c_topk_gating")?,
            copy_memcpy: sym(&lib, "c_copy_memcpy")?,
            copy_loop: sym(&lib, "c_copy_loop")?,
            sgemm: sym(&lib, "c_sgemm")?,
            blas_info: sym(&lib, "c_blas_info")?,
            threads: threads as i32,
            _lib: lib,
        })
    }

    // The wrappers below take slices whose lengths the callers size for the shapes they pass;
    // the asserts keep a wrong call from reading out of bounds.

    pub fn vector_add(&self, x: &[f32], y: &[f32], z: &mut [f32]) {
        assert!(x.len() == z.len() && y.len() == z.len());
        // SAFETY: three buffers of z.len() elements.
        unsafe {
            (self.vector_add)(x.as_ptr(), y.as_ptr(), z.as_mut_ptr(), z.len() as i64, self.threads)
        }
    }

    pub fn softmax(&self, x: &[f32], y: &mut [f32], rows: usize, cols: usize) {
        assert!(x.len() == rows * cols && y.len() == rows * cols);
        // SAFETY: rows * cols elements each.
        unsafe {
            (self.softmax)(x.as_ptr(), y.as_mut_ptr(), rows as i32, cols as i32, self.threads)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn layernorm(
        &self,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        y: &mut [f32],
        rows: usize,
        cols: usize,
        eps: f32,
    ) {
        assert!(x.len() == rows * cols && y.len() == rows * cols);
        assert!(w.len() == cols && b.len() == cols);
        // SAFETY: sizes checked above.
        unsafe {
            (self.layernorm)(
                x.as_ptr(),
                w.as_ptr(),
                b.as_ptr(),
                y.as_mut_ptr(),
                rows as i32,
                cols as i32,
                eps,
                self.threads,
            )
        }
    }

    pub fn rmsnorm(&self, x: &[f32], w: &[f32], y: &mut [f32], rows: usize, cols: usize, eps: f32) {
        assert!(x.len() == rows * cols && y.len() == rows * cols && w.len() == cols);
        // SAFETY: sizes checked above.
        unsafe {
            (self.rmsnorm)(
                x.as_ptr(),
                w.as_ptr(),
                y.as_mut_ptr(),
                rows as i32,
                cols as i32,
                eps,
                self.threads,
            )
        }
    }

    pub fn gating(
        &self,
        logits: &[f32],
        weights: &mut [f32],
        ids: &mut [i32],
        tokens: usize,
        experts: usize,
        k: usize,
    ) {
        assert!(logits.len() == tokens * experts && experts <= 1024 && k <= experts);
        assert!(weights.len() == tokens * k && ids.len() == tokens * k);
        // SAFETY: sizes checked above.
        unsafe {
            (self.gating)(
                logits.as_ptr(),
                weights.as_mut_ptr(),
                ids.as_mut_ptr(),
                tokens as i32,
                experts as i32,
                k as i32,
                self.threads,
            )
        }
    }

    pub fn copy(&self, memcpy: bool, dst: &mut [f32], src: &[f32]) {
        assert!(dst.len() == src.len());
        let f = if memcpy { self.copy_memcpy } else { self.copy_loop };
        // SAFETY: two buffers of the same length.
        unsafe { f(dst.as_mut_ptr(), src.as_ptr(), dst.len() as i64, self.threads) }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(&self, a: &[f32], b: &[f32], c: &mut [f32], m: usize, n: usize, k: usize) {
        assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
        // SAFETY: sizes checked above.
        unsafe {
            (self.sgemm)(
                a.as_ptr(),
                b.as_ptr(),
                c.as_mut_ptr(),
                m as i32,
                n as i32,
                k as i32,
                self.threads,
            )
        }
    }

    pub fn blas_info(&self) -> String {
        let mut buf = vec![0u8; 512];
        // SAFETY: the callee writes at most buf.len() bytes, NUL-terminated.
        unsafe { (self.blas_info)(buf.as_mut_ptr(), buf.len() as i32) };
        let end = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).trim().to_string()
    }
}
