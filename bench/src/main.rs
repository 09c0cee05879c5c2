//! tk's CPU benchmark harness. In one process and at one thread count it times each stdlib
//! kernel built by `tkc build --target cpu` against hand-written C (`cc -O3 -march=native
//! -fopenmp`, bench/c) and, for matmul, OpenBLAS sgemm; it merges the PyTorch timings that
//! bench/torch_bench.py wrote earlier in the same `scripts/bench.sh` run, and prints a table
//! with ratios and, for memory-bound kernels, the fraction of the copy bandwidth measured in
//! this run. tk's output is checked against the C baseline before anything is timed; a wrong
//! result stops the run.
//!
//! Usage: `tk-bench --bundles DIR --clib FILE [--torch JSON] [--threads N] [--quick]
//! [--only k1,k2] [--json FILE] [--md FILE]` (scripts/bench.sh passes all of these).

mod clib;
mod measure;
mod report;

use clib::CLib;
use measure::{check_close, time_group, Buf, Plan, Rng, Runner};
use report::{Entry, Impl, KernelResult, Work};
use std::path::PathBuf;
use tk_runtime::{Arg, Bundle, Device, Kernel, Runtime};

const VADD_N: usize = 1 << 24;
const ROWS: usize = 4096;
const COLS: usize = 1024;
const EPS: f32 = 1e-5;
const MM: usize = 1024;
const TOKENS: usize = 4096;
const EXPERTS: usize = 64;
const TOPK: usize = 6;

struct Opts {
    bundles: PathBuf,
    clib: PathBuf,
    torch: Option<PathBuf>,
    threads: usize,
    quick: bool,
    only: Option<Vec<String>>,
    json: Option<PathBuf>,
    md: Option<PathBuf>,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        bundles: PathBuf::from("bench/out/bundles"),
        clib: PathBuf::from("bench/out/libtkbench_c.so"),
        torch: None,
        threads: 2,
        quick: false,
        only: None,
        json: None,
        md: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--bundles" => o.bundles = PathBuf::from(val()?),
            "--clib" => o.clib = PathBuf::from(val()?),
            "--torch" => o.torch = Some(PathBuf::from(val()?)),
            "--threads" => {
                o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?;
                if o.threads == 0 {
                    return Err("--threads must be at least 1".into());
                }
            }
            "--quick" => o.quick = true,
            "--only" => o.only = Some(val()?.split(',').map(|s| s.trim().to_string()).collect()),
            "--json" => o.json = Some(PathBuf::from(val()?)),
            "--md" => o.md = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                println!(
                    "tk-bench --bundles DIR --clib FILE [--torch JSON] [--threads N] [--quick] \
                     [--only vector_add,softmax,layernorm,rmsnorm,matmul,topk_gating] \
                     [--json FILE] [--md FILE]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(o)
}

struct Ctx {
    rt: Runtime,
    c: CLib,
    plan: Plan,
    bundles: PathBuf,
}

impl Ctx {
    fn bundle(&self, dir: &str) -> Result<Bundle, String> {
        let path = self.bundles.join(dir);
        self.rt.load(&path).map_err(|e| format!("loading tk bundle {}: {e}", path.display()))
    }
}

fn kernel<'b>(b: &'b Bundle, name: &str) -> Result<&'b Kernel, String> {
    b.kernel(name).map_err(|e| e.to_string())
}

/// A compile-time parameter the bundle was built with (`-D NAME=VALUE`), e.g. a block size
/// that decides the grid.
fn constexpr(k: &Kernel, name: &str) -> Result<usize, String> {
    let v = k
        .info
        .constexprs
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(|| format!("kernel {} has no compile-time parameter {name}", k.name()))?;
    v.1.parse::<usize>()
        .ok()
        .filter(|&x| x > 0)
        .ok_or_else(|| format!("kernel {}: {name} = {} is not a positive integer", k.name(), v.1))
}

fn launch(k: &Kernel, grid: [usize; 3], args: &[Arg<'_>]) -> Result<(), String> {
    let g = [grid[0] as u32, grid[1] as u32, grid[2] as u32];
    k.launch(g, args).map_err(|e| format!("tk {}: {e}", k.name()))
}

fn tk_impl() -> Impl {
    Impl::new("tk", "tk (tkc --target cpu)")
}

fn vector_add(ctx: &Ctx) -> Result<KernelResult, String> {
    let n = VADD_N;
    let mut rng = Rng::new(1);
    let x = Buf::from_fn(n, |_| rng.uniform(-1.0, 1.0), 0.0);
    let y = Buf::from_fn(n, |_| rng.uniform(-1.0, 1.0), 0.0);
    let mut z_tk = Buf::filled(n, f32::NAN);
    let mut z_c = Buf::filled(n, f32::NAN);
    let b = ctx.bundle("vector_add")?;
    let k = kernel(&b, "vector_add")?;
    let block = constexpr(k, "BLOCK")?;
    let grid = [n.div_ceil(block), 1, 1];
    let run_tk = |z: &mut [f32]| {
        launch(
            k,
            grid,
            &[Arg::slice(x.s()), Arg::slice(y.s()), Arg::slice_mut(z), Arg::i64(n as i64)],
        )
    };
    ctx.c.vector_add(x.s(), y.s(), z_c.m());
    run_tk(z_tk.m())?;
    let err = check_close("vector_add", z_tk.s(), z_c.s(), 0.0, 0.0)?;
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(z_tk.m())),
        Box::new(|| {
            ctx.c.vector_add(x.s(), y.s(), z_c.m());
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "vector_add",
        title: "vector add 2^24 f32".into(),
        config: format!("BLOCK={block}"),
        work: Work::Bytes(3.0 * 4.0 * n as f64),
        copy_ref: Some(report::COPY_LARGE),
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("c", "C -O3 -march=native, OpenMP"), t[1]),
        ],
    })
}

fn row_input(seed: u64) -> Buf<f32> {
    let mut rng = Rng::new(seed);
    Buf::from_fn(ROWS * COLS, |_| rng.uniform(-4.0, 4.0), 0.0)
}

fn softmax(ctx: &Ctx) -> Result<KernelResult, String> {
    let x = row_input(2);
    let mut y_tk = Buf::filled(ROWS * COLS, f32::NAN);
    let mut y_c = Buf::filled(ROWS * COLS, f32::NAN);
    let b = ctx.bundle("softmax")?;
    let k = kernel(&b, "softmax")?;
    let block = constexpr(k, "BLOCK")?;
    let run_tk = |y: &mut [f32]| {
        launch(
            k,
            [ROWS, 1, 1],
            &[Arg::slice(x.s()), Arg::slice_mut(y), Arg::i32(COLS as i32), Arg::i64(COLS as i64)],
        )
    };
    ctx.c.softmax(x.s(), y_c.m(), ROWS, COLS);
    run_tk(y_tk.m())?;
    let err = check_close("softmax", y_tk.s(), y_c.s(), 1e-7, 1e-4)?;
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(y_tk.m())),
        Box::new(|| {
            ctx.c.softmax(x.s(), y_c.m(), ROWS, COLS);
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "softmax",
        title: "softmax 4096×1024 f32".into(),
        config: format!("BLOCK={block}"),
        work: Work::Bytes(2.0 * 4.0 * (ROWS * COLS) as f64),
        copy_ref: Some(report::COPY_ROWS),
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("c", "C naive (scalar expf), OpenMP"), t[1]),
        ],
    })
}

fn norm_params(seed: u64) -> (Buf<f32>, Buf<f32>) {
    let mut rng = Rng::new(seed);
    let w = Buf::from_fn(COLS, |_| rng.uniform(0.5, 1.5), 0.0);
    let b = Buf::from_fn(COLS, |_| rng.uniform(-0.5, 0.5), 0.0);
    (w, b)
}

fn layernorm(ctx: &Ctx) -> Result<KernelResult, String> {
    let x = row_input(3);
    let (w, bias) = norm_params(4);
    let mut y_tk = Buf::filled(ROWS * COLS, f32::NAN);
    let mut y_c = Buf::filled(ROWS * COLS, f32::NAN);
    let b = ctx.bundle("layernorm")?;
    let k = kernel(&b, "layernorm")?;
    let block = constexpr(k, "BLOCK")?;
    let run_tk = |y: &mut [f32]| {
        launch(
            k,
            [ROWS, 1, 1],
            &[
                Arg::slice(x.s()),
                Arg::slice(w.s()),
                Arg::slice(bias.s()),
                Arg::slice_mut(y),
                Arg::i32(COLS as i32),
                Arg::i64(COLS as i64),
                Arg::f32(EPS),
            ],
        )
    };
    ctx.c.layernorm(x.s(), w.s(), bias.s(), y_c.m(), ROWS, COLS, EPS);
    run_tk(y_tk.m())?;
    let err = check_close("layernorm", y_tk.s(), y_c.s(), 1e-4, 1e-4)?;
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(y_tk.m())),
        Box::new(|| {
            ctx.c.layernorm(x.s(), w.s(), bias.s(), y_c.m(), ROWS, COLS, EPS);
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "layernorm",
        title: "layernorm 4096×1024 f32".into(),
        config: format!("BLOCK={block}"),
        work: Work::Bytes(2.0 * 4.0 * (ROWS * COLS) as f64),
        copy_ref: Some(report::COPY_ROWS),
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("c", "C -O3 -march=native, OpenMP"), t[1]),
        ],
    })
}

fn rmsnorm(ctx: &Ctx) -> Result<KernelResult, String> {
    let x = row_input(5);
    let (w, _) = norm_params(6);
    let mut y_tk = Buf::filled(ROWS * COLS, f32::NAN);
    let mut y_c = Buf::filled(ROWS * COLS, f32::NAN);
    let b = ctx.bundle("rmsnorm")?;
    let k = kernel(&b, "rmsnorm")?;
    let block = constexpr(k, "BLOCK")?;
    let run_tk = |y: &mut [f32]| {
        launch(
            k,
            [ROWS, 1, 1],
            &[
                Arg::slice(x.s()),
                Arg::slice(w.s()),
                Arg::slice_mut(y),
                Arg::i32(COLS as i32),
                Arg::i64(COLS as i64),
                Arg::f32(EPS),
            ],
        )
    };
    ctx.c.rmsnorm(x.s(), w.s(), y_c.m(), ROWS, COLS, EPS);
    run_tk(y_tk.m())?;
    let err = check_close("rmsnorm", y_tk.s(), y_c.s(), 1e-4, 1e-4)?;
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(y_tk.m())),
        Box::new(|| {
            ctx.c.rmsnorm(x.s(), w.s(), y_c.m(), ROWS, COLS, EPS);
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "rmsnorm",
        title: "rmsnorm 4096×1024 f32".into(),
        config: format!("BLOCK={block}"),
        work: Work::Bytes(2.0 * 4.0 * (ROWS * COLS) as f64),
        copy_ref: Some(report::COPY_ROWS),
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("c", "C -O3 -march=native, OpenMP"), t[1]),
        ],
    })
}

fn matmul(ctx: &Ctx) -> Result<KernelResult, String> {
    let (m, n, kk) = (MM, MM, MM);
    let mut rng = Rng::new(7);
    let a = Buf::from_fn(m * kk, |_| rng.uniform(-1.0, 1.0), 0.0);
    let bm = Buf::from_fn(kk * n, |_| rng.uniform(-1.0, 1.0), 0.0);
    let mut c_tk = Buf::filled(m * n, f32::NAN);
    let mut c_blas = Buf::filled(m * n, f32::NAN);
    let b = ctx.bundle("matmul")?;
    let k = kernel(&b, "matmul")?;
    let (tm, tn, tkk) = (constexpr(k, "BM")?, constexpr(k, "BN")?, constexpr(k, "BK")?);
    let grid = [m.div_ceil(tm), n.div_ceil(tn), 1];
    let run_tk = |c: &mut [f32]| {
        launch(
            k,
            grid,
            &[
                Arg::slice(a.s()),
                Arg::slice(bm.s()),
                Arg::slice_mut(c),
                Arg::i32(m as i32),
                Arg::i32(n as i32),
                Arg::i32(kk as i32),
            ],
        )
    };
    ctx.c.sgemm(a.s(), bm.s(), c_blas.m(), m, n, kk);
    run_tk(c_tk.m())?;
    // Sums of 1024 products of magnitude <= 1, added in different orders.
    let err = check_close("matmul", c_tk.s(), c_blas.s(), 1e-3, 1e-4)?;
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(c_tk.m())),
        Box::new(|| {
            ctx.c.sgemm(a.s(), bm.s(), c_blas.m(), m, n, kk);
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "matmul",
        title: "matmul 1024³ f32".into(),
        config: format!("BM={tm} BN={tn} BK={tkk}"),
        work: Work::Flops(2.0 * (m * n * kk) as f64),
        copy_ref: None,
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("openblas", "OpenBLAS cblas_sgemm"), t[1]),
        ],
    })
}

fn topk_gating(ctx: &Ctx) -> Result<KernelResult, String> {
    let mut rng = Rng::new(8);
    let logits = Buf::from_fn(TOKENS * EXPERTS, |_| rng.uniform(-4.0, 4.0), 0.0);
    let mut w_tk = Buf::filled(TOKENS * TOPK, f32::NAN);
    let mut w_c = Buf::filled(TOKENS * TOPK, f32::NAN);
    let mut id_tk = Buf::filled(TOKENS * TOPK, -1i32);
    let mut id_c = Buf::filled(TOKENS * TOPK, -1i32);
    let b = ctx.bundle("moe_gating")?;
    let k = kernel(&b, "topk_gating")?;
    let block_e = constexpr(k, "BLOCK_E")?;
    let kk = constexpr(k, "K")?;
    if kk != TOPK {
        return Err(format!(
            "the gating bundle was built with K={kk}; this benchmark needs K={TOPK}"
        ));
    }
    let run_tk = |w: &mut [f32], ids: &mut [i32]| {
        launch(
            k,
            [TOKENS, 1, 1],
            &[
                Arg::slice(logits.s()),
                Arg::slice_mut(w),
                Arg::slice_mut(ids),
                Arg::i32(EXPERTS as i32),
                Arg::i64(EXPERTS as i64),
            ],
        )
    };
    ctx.c.gating(logits.s(), w_c.m(), id_c.m(), TOKENS, EXPERTS, TOPK);
    run_tk(w_tk.m(), id_tk.m())?;
    let err = check_close("topk_gating weights", w_tk.s(), w_c.s(), 1e-7, 1e-4)?;
    for (i, (&got, &want)) in id_tk.s().iter().zip(id_c.s()).enumerate() {
        if got == want {
            continue;
        }
        // Expert probabilities one rounding apart may be ordered differently by two exps;
        // anything else is a wrong answer.
        let t = i / TOPK;
        let row = &logits.s()[t * EXPERTS..(t + 1) * EXPERTS];
        let near = usize::try_from(got)
            .ok()
            .filter(|&g| g < EXPERTS)
            .is_some_and(|g| (row[g] - row[want as usize]).abs() <= 1e-6 * row[g].abs().max(1.0));
        if !near {
            return Err(format!(
                "topk_gating ids: token {t} slot {} is expert {got}, the baseline says {want}",
                i % TOPK
            ));
        }
    }
    let mut impls: Vec<Runner> = vec![
        Box::new(|| run_tk(w_tk.m(), id_tk.m())),
        Box::new(|| {
            ctx.c.gating(logits.s(), w_c.m(), id_c.m(), TOKENS, EXPERTS, TOPK);
            Ok(())
        }),
    ];
    let t = time_group(&ctx.plan, &mut impls)?;
    Ok(KernelResult {
        key: "topk_gating",
        title: format!("MoE top-{TOPK} gating {TOKENS}×{EXPERTS} f32"),
        config: format!("BLOCK_E={block_e} K={kk}"),
        work: Work::Items(TOKENS as f64, "tokens"),
        copy_ref: None,
        max_err: err,
        entries: vec![
            Entry::new(tk_impl(), t[0]),
            Entry::new(Impl::new("c", "C (scalar expf, k selection passes), OpenMP"), t[1]),
        ],
    })
}

/// Copy bandwidth at the footprints of the memory-bound kernels: 64 MiB -> 64 MiB (far beyond
/// the caches, like vector add's 192 MiB) and 16 MiB -> 16 MiB (the 4096×1024 row kernels).
fn copies(ctx: &Ctx) -> Result<Vec<KernelResult>, String> {
    let mut out = Vec::new();
    for (key, elems) in [(report::COPY_LARGE, 16usize << 20), (report::COPY_ROWS, 4usize << 20)] {
        let src = Buf::from_fn(elems, |i| i as f32, 0.0);
        let mut d1 = Buf::filled(elems, f32::NAN);
        let mut d2 = Buf::filled(elems, f32::NAN);
        ctx.c.copy(true, d1.m(), src.s());
        ctx.c.copy(false, d2.m(), src.s());
        check_close("copy (memcpy)", d1.s(), src.s(), 0.0, 0.0)?;
        check_close("copy (loop)", d2.s(), src.s(), 0.0, 0.0)?;
        let mut impls: Vec<Runner> = vec![
            Box::new(|| {
                ctx.c.copy(true, d1.m(), src.s());
                Ok(())
            }),
            Box::new(|| {
                ctx.c.copy(false, d2.m(), src.s());
                Ok(())
            }),
        ];
        let t = time_group(&ctx.plan, &mut impls)?;
        let mib = (elems * 4) >> 20;
        out.push(KernelResult {
            key,
            title: format!("copy {mib} MiB → {mib} MiB"),
            config: String::new(),
            work: Work::Bytes(2.0 * 4.0 * elems as f64),
            copy_ref: None,
            max_err: 0.0,
            entries: vec![
                Entry::new(Impl::new("memcpy", "memcpy, OpenMP"), t[0]),
                Entry::new(Impl::new("loop", "copy loop, OpenMP"), t[1]),
            ],
        });
    }
    Ok(out)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn run() -> Result<(), String> {
    let o = parse_args()?;
    let rt = Runtime::with_threads(Device::Cpu, o.threads).map_err(|e| e.to_string())?;
    let c = CLib::open(&o.clib, o.threads)?;
    let plan = if o.quick { Plan::quick() } else { Plan::full() };
    let ctx = Ctx { rt, c, plan, bundles: o.bundles.clone() };
    let torch = match &o.torch {
        Some(p) => Some(report::TorchResults::read(p)?),
        None => None,
    };
    let load_start = loadavg();
    let wanted = |k: &str| o.only.as_ref().is_none_or(|l| l.iter().any(|x| x == k));
    type Bench = fn(&Ctx) -> Result<KernelResult, String>;
    let benches: [(&str, Bench); 6] = [
        ("vector_add", vector_add),
        ("softmax", softmax),
        ("layernorm", layernorm),
        ("rmsnorm", rmsnorm),
        ("matmul", matmul),
        ("topk_gating", topk_gating),
    ];
    let mut results = copies(&ctx)?;
    for (name, f) in benches {
        if !wanted(name) {
            continue;
        }
        eprintln!("bench: {name}");
        let mut r = f(&ctx)?;
        if let Some(t) = &torch {
            if let Some(e) = t.entry(name) {
                r.entries.push(e);
            }
        }
        results.push(r);
    }
    let load_end = loadavg();
    let meta = report::Meta {
        threads: o.threads,
        blas: ctx.c.blas_info(),
        torch: torch.as_ref().map(|t| t.describe()),
        load_start,
        load_end,
        quick: o.quick,
    };
    let md = report::markdown(&meta, &results);
    println!("{md}");
    if let Some(p) = &o.md {
        std::fs::write(p, &md).map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    if let Some(p) = &o.json {
        let j = report::json(&meta, &results);
        std::fs::write(p, j).map_err(|e| format!("writing {}: {e}", p.display()))?;
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tk-bench: error: {e}");
        std::process::exit(1);
    }
}
