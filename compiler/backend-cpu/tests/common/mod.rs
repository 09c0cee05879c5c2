//! Test harness: compile a `.tk` file, run a kernel both in the reference interpreter and as
//! compiled code loaded from the shared library, and compare the output buffers.

#![allow(dead_code)]

use std::ffi::c_void;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tk_backend_cpu::{compile_module, CpuArtifact, CpuOptions};
use tk_interp::{run_kernel, Arg, Buffer, RunOptions};
use tk_ir::{ConstValue, DType, Module};

/// A kernel argument for both executions.
#[derive(Clone, Debug)]
pub enum A {
    /// Index into the buffers.
    Buf(usize),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// How two float outputs may differ: `|a - b| <= rtol * max(|a|, |b|) + atol`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub rtol: f64,
    pub atol: f64,
}

pub const F32_TOL: Tol = Tol { rtol: 1e-5, atol: 1e-6 };

pub fn stdlib(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../stdlib").join(file)
}

/// Compiles `path` with `-D` defines through the whole front end and pass pipeline.
pub fn frontend(path: &std::path::Path, defines: &[(&str, &str)]) -> Module {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_file(path, &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    c.optimized.expect("optimised module")
}

/// A loaded shared library of compiled kernels (kept alive with its temp dir).
pub struct Loaded {
    pub artifact: CpuArtifact,
    pub lib: libloading::Library,
    _dir: tempfile::TempDir,
    pub compile_time: Duration,
}

pub fn load(m: &Module, opts: &CpuOptions) -> Loaded {
    let t = Instant::now();
    let artifact = compile_module(m, opts).unwrap_or_else(|e| panic!("compile: {e}"));
    let compile_time = t.elapsed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.so");
    std::fs::write(&path, &artifact.library).unwrap();
    // RTLD_NOW: every undefined symbol (libm, compiler-rt helpers) must resolve at load time.
    // SAFETY: the library is ours and has no initialisers with preconditions.
    let lib =
        unsafe { libloading::os::unix::Library::open(Some(&path), libloading::os::unix::RTLD_NOW) }
            .unwrap_or_else(|e| panic!("dlopen: {e}"));
    let lib = libloading::Library::from(lib);
    Loaded { artifact, lib, _dir: dir, compile_time }
}

type KernelFn = unsafe extern "C" fn(*const *const c_void, *const i32, *const i32) -> i32;

/// Memory aligned to 64 bytes holding a buffer's bytes.
struct Raw {
    words: Vec<u64>,
    len: usize,
}

impl Raw {
    fn new(bytes: &[u8]) -> Raw {
        let mut words = vec![0u64; bytes.len().div_ceil(8) + 8];
        let off = Raw::offset(&words);
        let base = words.as_mut_ptr() as *mut u8;
        // SAFETY: `words` has 64 spare bytes for the alignment offset.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), base.add(off), bytes.len()) };
        Raw { words, len: bytes.len() }
    }
    fn offset(words: &[u64]) -> usize {
        (64 - (words.as_ptr() as usize % 64)) % 64
    }
    fn ptr(&mut self) -> *mut u8 {
        let off = Raw::offset(&self.words);
        // SAFETY: within the allocation (see `new`).
        unsafe { (self.words.as_mut_ptr() as *mut u8).add(off) }
    }
    fn bytes(&mut self) -> Vec<u8> {
        let p = self.ptr();
        // SAFETY: `len` bytes were copied there in `new`.
        unsafe { std::slice::from_raw_parts(p, self.len).to_vec() }
    }
}

/// Runs `kernel` over `grid` as compiled code; returns the buffers afterwards.
pub fn run_cpu(
    l: &Loaded,
    kernel: &str,
    grid: [u32; 3],
    args: &[A],
    buffers: &[Buffer],
) -> Result<Vec<Buffer>, i32> {
    let k = l.artifact.kernels.iter().find(|k| k.name == kernel).expect("kernel in artifact");
    // SAFETY: the symbol has the documented ABI.
    let f: libloading::Symbol<KernelFn> = unsafe { l.lib.get(k.symbol.as_bytes()) }.unwrap();
    let mut raws: Vec<Raw> = buffers.iter().map(|b| Raw::new(b.as_bytes())).collect();
    let mut slots: Vec<[u8; 8]> = Vec::new();
    for a in args {
        let mut s = [0u8; 8];
        match a {
            A::Buf(i) => s.copy_from_slice(&(raws[*i].ptr() as usize).to_ne_bytes()),
            A::I32(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
            A::I64(v) => s.copy_from_slice(&v.to_ne_bytes()),
            A::F32(v) => s[..4].copy_from_slice(&v.to_ne_bytes()),
        }
        slots.push(s);
    }
    let ptrs: Vec<*const c_void> = slots.iter().map(|s| s.as_ptr() as *const c_void).collect();
    let np = [grid[0] as i32, grid[1] as i32, grid[2] as i32];
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for x in 0..grid[0] {
                let pid = [x as i32, y as i32, z as i32];
                // SAFETY: arguments match the kernel's parameters (checked by the interpreter run).
                let rc = unsafe { f(ptrs.as_ptr(), pid.as_ptr(), np.as_ptr()) };
                if rc != 0 {
                    return Err(rc);
                }
            }
        }
    }
    Ok(buffers
        .iter()
        .zip(raws.iter_mut())
        .map(|(b, r)| Buffer::from_bytes(b.dtype(), r.bytes()).unwrap())
        .collect())
}

pub fn run_interp(
    m: &Module,
    kernel: &str,
    grid: [u32; 3],
    args: &[A],
    buffers: &[Buffer],
) -> Vec<Buffer> {
    let fid = m.find(kernel).expect("kernel");
    let iargs: Vec<Arg> = args
        .iter()
        .map(|a| match a {
            A::Buf(i) => Arg::Buffer(*i),
            A::I32(v) => Arg::i32(*v),
            A::I64(v) => Arg::i64(*v),
            A::F32(v) => Arg::f32(*v),
        })
        .collect();
    let mut bufs = buffers.to_vec();
    run_kernel(m, fid, grid, &iargs, &mut bufs, &RunOptions::default())
        .unwrap_or_else(|e| panic!("interp: {e:?}"));
    bufs
}

/// Asserts that buffer `i` agrees: floats within `tol`, everything else exactly.
pub fn compare(name: &str, want: &Buffer, got: &Buffer, tol: Tol) -> f64 {
    assert_eq!(want.len(), got.len());
    let mut worst = 0.0f64;
    for i in 0..want.len() {
        let (w, g) = (want.get(i).unwrap(), got.get(i).unwrap());
        match (w, g) {
            (ConstValue::Float(a), ConstValue::Float(b)) => {
                if a.is_nan() || b.is_nan() {
                    assert!(a.is_nan() && b.is_nan(), "{name}[{i}]: want {a}, got {b}");
                    continue;
                }
                if a == b {
                    continue;
                }
                let err = (a - b).abs();
                let lim = tol.rtol * a.abs().max(b.abs()) + tol.atol;
                assert!(err <= lim, "{name}[{i}]: want {a}, got {b} (error {err:e} > {lim:e})");
                if a != 0.0 {
                    worst = worst.max(err / a.abs());
                }
            }
            _ => assert_eq!(w, g, "{name}[{i}]"),
        }
    }
    worst
}

/// Runs both executions and compares the buffers listed in `outputs`; returns the worst
/// relative float error seen.
// A test helper mirrors `run_kernel`'s argument list; grouping them would only add noise.
#[allow(clippy::too_many_arguments)]
pub fn check(
    m: &Module,
    l: &Loaded,
    kernel: &str,
    grid: [u32; 3],
    args: &[A],
    buffers: &[Buffer],
    outputs: &[usize],
    tol: Tol,
) -> f64 {
    let want = run_interp(m, kernel, grid, args, buffers);
    let got = run_cpu(l, kernel, grid, args, buffers)
        .unwrap_or_else(|rc| panic!("{kernel} trapped with {rc}"));
    let mut worst = 0.0f64;
    for &o in outputs {
        assert_ne!(
            want[o].as_bytes(),
            buffers[o].as_bytes(),
            "{kernel} wrote nothing to buffer {o}"
        );
        worst = worst.max(compare(&format!("{kernel} buffer {o}"), &want[o], &got[o], tol));
    }
    worst
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn randn(r: &mut rand_chacha::ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    use rand::Rng;
    (0..n).map(|_| (r.gen::<f32>() * 2.0 - 1.0) * scale).collect()
}

pub fn zeros(dt: DType, n: usize) -> Buffer {
    Buffer::zeroed(dt, n)
}
