//! Quick timings of stdlib kernels compiled by the CPU backend, launched like tk-runtime does
//! (contiguous chunks of program ids on 2 threads), next to the C baselines of `bench/` when
//! `bench/out/libtkbench_c.so` exists. A development aid, not the benchmark suite:
//! `cargo run --release -p tk-backend-cpu --example cpu_bench -- [vadd|softmax|layernorm|rmsnorm|
//! matmul] [NAME=VALUE...]` (`TK_NO_BASELINE=1` skips the C baselines). Besides wall times it
//! prints the process CPU time per run, which says more on a loaded machine. Run the C baselines
//! with `OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4`: OpenMP's and OpenBLAS's idle threads
//! otherwise spin for a while after each call and slow down the tk run that follows.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tk_backend_cpu::{compile_module, CpuOptions};

const THREADS: usize = 2;

type KernelFn = unsafe extern "C" fn(*const *const c_void, *const i32, *const i32) -> i32;

/// A 64-byte aligned f32 buffer.
struct Buf {
    ptr: *mut f32,
    len: usize,
}

impl Buf {
    fn new(len: usize, f: impl Fn(usize) -> f32) -> Buf {
        let layout = std::alloc::Layout::from_size_align(len * 4 + 64, 64).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc(layout) } as *mut f32;
        for i in 0..len {
            // SAFETY: within the allocation.
            unsafe { *ptr.add(i) = f(i) };
        }
        Buf { ptr, len }
    }
    fn slice(&self) -> &[f32] {
        // SAFETY: `len` initialised floats.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len * 4 + 64, 64).unwrap();
        // SAFETY: allocated with this layout.
        unsafe { std::alloc::dealloc(self.ptr as *mut u8, layout) };
    }
}

struct SendPtr(*const *const c_void);
unsafe impl Sync for SendPtr {}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compile(file: &str, defines: &[(String, String)]) -> (libloading::Library, tempfile::TempDir) {
    let opts = tk_driver::CompileOptions { defines: defines.to_vec(), ..Default::default() };
    let c = tk_driver::compile_file(&root().join("stdlib").join(file), &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    let m = c.optimized.unwrap();
    let t = Instant::now();
    let art = compile_module(&m, &CpuOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("  compile_module {file}: {:?}", t.elapsed());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.so");
    std::fs::write(&p, &art.library).unwrap();
    // SAFETY: our own library.
    (unsafe { libloading::Library::new(&p) }.unwrap(), dir)
}

/// Runs every program of `grid` on THREADS threads in contiguous chunks.
fn launch(f: KernelFn, grid: [u32; 3], args: &[*const c_void]) {
    let total = grid[0] as u64 * grid[1] as u64 * grid[2] as u64;
    let npid = [grid[0] as i32, grid[1] as i32, grid[2] as i32];
    let ptrs = SendPtr(args.as_ptr());
    std::thread::scope(|s| {
        for c in 0..THREADS as u64 {
            let ptrs = &ptrs;
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(s, move || {
                    let (start, end) =
                        (total * c / THREADS as u64, total * (c + 1) / THREADS as u64);
                    for lin in start..end {
                        let x = lin % grid[0] as u64;
                        let y = (lin / grid[0] as u64) % grid[1] as u64;
                        let pid = [x as i32, y as i32, 0];
                        // SAFETY: arguments match the kernel.
                        let rc = unsafe { f(ptrs.0, pid.as_ptr(), npid.as_ptr()) };
                        assert_eq!(rc, 0, "trap");
                    }
                })
                .unwrap();
        }
    });
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// CPU time of the whole process (every thread), in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: CLOCK_PROCESS_CPUTIME_ID (2) into a valid timespec.
    unsafe { clock_gettime(2, &mut ts) };
    ts.sec as f64 + ts.nsec as f64 * 1e-9
}

/// Wall time (min, median) and CPU time per run (min): on a loaded machine the CPU time shows
/// what the code costs when it does run. With a baseline, the two alternate run by run, so that
/// both see the same load.
fn time(name: &str, work: f64, unit: &str, f: impl FnMut()) -> Duration {
    time2(name, work, unit, f, None::<(&str, fn())>)
}

fn time2(
    name: &str,
    work: f64,
    unit: &str,
    mut f: impl FnMut(),
    mut base: Option<(&str, impl FnMut())>,
) -> Duration {
    for _ in 0..2 {
        f();
        if let Some((_, g)) = &mut base {
            g();
        }
    }
    let mut ts = Vec::new();
    let mut bs = Vec::new();
    let (mut cpu, mut bcpu) = (f64::MAX, f64::MAX);
    let start = Instant::now();
    while ts.len() < 5 || (start.elapsed() < Duration::from_secs(3) && ts.len() < 200) {
        let c = cpu_seconds();
        let t = Instant::now();
        f();
        ts.push(t.elapsed());
        cpu = cpu.min(cpu_seconds() - c);
        if let Some((_, g)) = &mut base {
            let c = cpu_seconds();
            let t = Instant::now();
            g();
            bs.push(t.elapsed());
            bcpu = bcpu.min(cpu_seconds() - c);
        }
    }
    let report = |name: &str, ts: &mut Vec<Duration>, cpu: f64| {
        ts.sort();
        let (min, med) = (ts[0], ts[ts.len() / 2]);
        eprintln!(
            "  {name:<24} min {:>8.3} ms ({:>6.2} {unit})  median {:>8.3} ms ({:>6.2})  cpu {:>8.3} ms ({:>6.2} per core)  runs {}",
            min.as_secs_f64() * 1e3,
            work / min.as_secs_f64() / 1e9,
            med.as_secs_f64() * 1e3,
            work / med.as_secs_f64() / 1e9,
            cpu * 1e3,
            work / cpu / 1e9,
            ts.len()
        );
        (min, med)
    };
    let (min, med) = report(name, &mut ts, cpu);
    if let Some((bname, _)) = base {
        let (bmin, bmed) = report(bname, &mut bs, bcpu);
        eprintln!(
            "  tk speed vs {bname}: {:.2}x by median, {:.2}x by min",
            bmed.as_secs_f64() / med.as_secs_f64(),
            bmin.as_secs_f64() / min.as_secs_f64()
        );
    }
    min
}

fn clib() -> Option<libloading::Library> {
    let p = root().join("bench/out/libtkbench_c.so");
    // SAFETY: the bench's own C baselines.
    Path::new(&p).exists().then(|| unsafe { libloading::Library::new(&p) }.ok()).flatten()
}

fn slot<T>(v: &T) -> *const c_void {
    v as *const T as *const c_void
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().cloned().unwrap_or_else(|| "all".into());
    let defines: Vec<(String, String)> = args
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let c = if std::env::var_os("TK_NO_BASELINE").is_some() { None } else { clib() };
    let run = |k: &str| which == "all" || which == k;
    if run("vadd") {
        let n = 1usize << 24;
        let (x, y, z) =
            (Buf::new(n, |i| i as f32), Buf::new(n, |i| 1.0 - i as f32), Buf::new(n, |_| 0.0));
        let d = if defines.is_empty() {
            vec![("BLOCK".into(), "1024".into())]
        } else {
            defines.clone()
        };
        let block: usize =
            d.iter().find(|k| k.0 == "BLOCK").map(|k| k.1.parse().unwrap()).unwrap_or(1024);
        let (lib, _dir) = compile("vector_add.tk", &d);
        // SAFETY: ABI of the backend.
        let f: libloading::Symbol<KernelFn> = unsafe { lib.get(b"tk_vector_add") }.unwrap();
        let nn = n as i64;
        let a = [slot(&x.ptr), slot(&y.ptr), slot(&z.ptr), slot(&nn)];
        let work = (3 * n * 4) as f64;
        eprintln!("vector add 2^24 (BLOCK={block})");
        let tk = || launch(*f, [n.div_ceil(block) as u32, 1, 1], &a);
        match &c {
            Some(c) => {
                type F = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i64, i32);
                // SAFETY: bench/c/vector_add.c.
                let g: libloading::Symbol<F> = unsafe { c.get(b"c_vector_add") }.unwrap();
                let base = || unsafe { g(x.ptr, y.ptr, z.ptr, nn, 2) };
                time2("tk", work, "GB/s", tk, Some(("C -O3 OpenMP", base)));
            }
            None => {
                time("tk", work, "GB/s", tk);
            }
        }
        assert!(z.slice().iter().all(|&v| v == 1.0));
        if std::env::var_os("TK_RUST_REF").is_some() {
            // The same launch scheme around a plain Rust loop: what the harness itself costs.
            let (xp, yp, zp) = (x.ptr as usize, y.ptr as usize, z.ptr as usize);
            time("Rust loop, same launch", work, "GB/s", || {
                std::thread::scope(|s| {
                    for t in 0..THREADS {
                        s.spawn(move || {
                            let (a, b) = (n * t / THREADS, n * (t + 1) / THREADS);
                            // SAFETY: disjoint halves of the buffers.
                            let (x, y, z) = unsafe {
                                (
                                    std::slice::from_raw_parts(xp as *const f32, n),
                                    std::slice::from_raw_parts(yp as *const f32, n),
                                    std::slice::from_raw_parts_mut(zp as *mut f32, n),
                                )
                            };
                            for i in a..b {
                                z[i] = x[i] + y[i];
                            }
                        });
                    }
                });
            });
        }
    }
    let (rows, cols) = (4096usize, 1024usize);
    let rowdef = |d: &Vec<(String, String)>| {
        if d.is_empty() {
            vec![("BLOCK".to_string(), "1024".to_string())]
        } else {
            d.clone()
        }
    };
    if run("softmax") {
        let x = Buf::new(rows * cols, |i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0);
        let y = Buf::new(rows * cols, |_| 0.0);
        let (lib, _dir) = compile("softmax.tk", &rowdef(&defines));
        // SAFETY: ABI of the backend.
        let f: libloading::Symbol<KernelFn> = unsafe { lib.get(b"tk_softmax") }.unwrap();
        let (nc, st) = (cols as i32, cols as i64);
        let a = [slot(&x.ptr), slot(&y.ptr), slot(&nc), slot(&st)];
        let work = (2 * rows * cols * 4) as f64;
        eprintln!("softmax {rows}x{cols}");
        time("tk", work, "GB/s", || launch(*f, [rows as u32, 1, 1], &a));
        let s: f32 = y.slice()[..cols].iter().sum();
        assert!((s - 1.0).abs() < 1e-4, "row sum {s}");
        if let Some(c) = &c {
            type F = unsafe extern "C" fn(*const f32, *mut f32, i32, i32, i32);
            // SAFETY: bench/c/softmax.c.
            let g: libloading::Symbol<F> = unsafe { c.get(b"c_softmax") }.unwrap();
            time("C naive (scalar expf)", work, "GB/s", || unsafe {
                g(x.ptr, y.ptr, rows as i32, cols as i32, 2)
            });
        }
    }
    if run("layernorm") || run("rmsnorm") {
        let x = Buf::new(rows * cols, |i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0);
        let w = Buf::new(cols, |i| 1.0 + i as f32 * 1e-3);
        let b = Buf::new(cols, |i| i as f32 * 1e-3);
        let y = Buf::new(rows * cols, |_| 0.0);
        let (nc, st, eps) = (cols as i32, cols as i64, 1e-5f32);
        let work = (2 * rows * cols * 4) as f64;
        if run("layernorm") {
            let (lib, _dir) = compile("layernorm.tk", &rowdef(&defines));
            // SAFETY: ABI of the backend.
            let f: libloading::Symbol<KernelFn> = unsafe { lib.get(b"tk_layernorm") }.unwrap();
            let a = [
                slot(&x.ptr),
                slot(&w.ptr),
                slot(&b.ptr),
                slot(&y.ptr),
                slot(&nc),
                slot(&st),
                slot(&eps),
            ];
            eprintln!("layernorm {rows}x{cols}");
            let tk = || launch(*f, [rows as u32, 1, 1], &a);
            match &c {
                Some(c) => {
                    type F = unsafe extern "C" fn(
                        *const f32,
                        *const f32,
                        *const f32,
                        *mut f32,
                        i32,
                        i32,
                        f32,
                        i32,
                    );
                    // SAFETY: bench/c/layernorm.c.
                    let g: libloading::Symbol<F> = unsafe { c.get(b"c_layernorm") }.unwrap();
                    let base = || unsafe {
                        g(x.ptr, w.ptr, b.ptr, y.ptr, rows as i32, cols as i32, eps, 2)
                    };
                    time2("tk", work, "GB/s", tk, Some(("C -O3 OpenMP", base)));
                }
                None => {
                    time("tk", work, "GB/s", tk);
                }
            }
        }
        if run("rmsnorm") {
            let (lib, _dir) = compile("rmsnorm.tk", &rowdef(&defines));
            // SAFETY: ABI of the backend.
            let f: libloading::Symbol<KernelFn> = unsafe { lib.get(b"tk_rmsnorm") }.unwrap();
            let a = [slot(&x.ptr), slot(&w.ptr), slot(&y.ptr), slot(&nc), slot(&st), slot(&eps)];
            eprintln!("rmsnorm {rows}x{cols}");
            let tk = || launch(*f, [rows as u32, 1, 1], &a);
            match &c {
                Some(c) => {
                    type F =
                        unsafe extern "C" fn(*const f32, *const f32, *mut f32, i32, i32, f32, i32);
                    // SAFETY: bench/c/rmsnorm.c.
                    let g: libloading::Symbol<F> = unsafe { c.get(b"c_rmsnorm") }.unwrap();
                    let base =
                        || unsafe { g(x.ptr, w.ptr, y.ptr, rows as i32, cols as i32, eps, 2) };
                    time2("tk", work, "GB/s", tk, Some(("C -O3 OpenMP", base)));
                }
                None => {
                    time("tk", work, "GB/s", tk);
                }
            }
        }
    }
    if run("matmul") {
        let n = 1024usize;
        let a = Buf::new(n * n, |i| ((i * 7) % 13) as f32 * 0.1 - 0.6);
        let b = Buf::new(n * n, |i| ((i * 5) % 11) as f32 * 0.1 - 0.5);
        let cc = Buf::new(n * n, |_| 0.0);
        let d = if defines.is_empty() {
            vec![
                ("BM".into(), "128".into()),
                ("BN".into(), "128".into()),
                ("BK".into(), "64".into()),
            ]
        } else {
            defines.clone()
        };
        let get = |k: &str| {
            d.iter().find(|x| x.0 == k).map(|x| x.1.parse::<usize>().unwrap()).unwrap_or(32)
        };
        let (bm, bn) = (get("BM"), get("BN"));
        let (lib, _dir) = compile("matmul.tk", &d);
        // SAFETY: ABI of the backend.
        let f: libloading::Symbol<KernelFn> = unsafe { lib.get(b"tk_matmul") }.unwrap();
        let nn = n as i32;
        let args = [slot(&a.ptr), slot(&b.ptr), slot(&cc.ptr), slot(&nn), slot(&nn), slot(&nn)];
        let work = 2.0 * (n * n * n) as f64;
        eprintln!("matmul {n}^3 {d:?}");
        let tk = || launch(*f, [n.div_ceil(bm) as u32, n.div_ceil(bn) as u32, 1], &args);
        tk();
        let want: f32 = (0..n).map(|k| a.slice()[3 * n + k] * b.slice()[k * n + 5]).sum();
        let got = cc.slice()[3 * n + 5];
        assert!((want - got).abs() <= 1e-3 * want.abs().max(1.0), "c[3,5] = {got}, want {want}");
        match &c {
            Some(c) => {
                type F = unsafe extern "C" fn(*const f32, *const f32, *mut f32, i32, i32, i32, i32);
                // SAFETY: bench/c/blas.c.
                let g: libloading::Symbol<F> = unsafe { c.get(b"c_sgemm") }.unwrap();
                let base = || unsafe { g(a.ptr, b.ptr, cc.ptr, nn, nn, nn, 2) };
                time2("tk", work, "GFLOP/s", tk, Some(("OpenBLAS sgemm", base)));
            }
            None => {
                time("tk", work, "GFLOP/s", tk);
            }
        }
    }
}
