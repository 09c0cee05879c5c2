//! moe_layer: one Mixture-of-Experts feed-forward layer, forward, entirely through tk kernels on
//! the CPU via tk-runtime:
//!
//! router (matmul) → top-k routing → permutation (histogram, offsets, stable dispatch, row
//! gather) → grouped GEMM (gate and up) → SwiGLU → grouped GEMM (down) → combine
//!
//! on a DeepSeek-like shape (by default 4096 tokens, hidden 1024, 64 experts, top-6, expert
//! hidden 512, f32). The output is checked against a plain Rust reference; the program prints
//! per-kernel times and the maximum absolute error, and exits with status 1 when the error
//! exceeds 1e-3 or an expert choice differs.
//!
//! ```sh
//! cargo run --release -p moe_layer                   # the default shape
//! cargo run --release -p moe_layer -- --help         # other shapes, threads, routing
//! ```

mod buf;
mod kernels;
mod progress;
mod reference;

use buf::{Buf, Rng};
use progress::Counter;
use reference::Routing;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tk_runtime::{Arg, Bundle, Device, Runtime};

/// The largest error the check accepts.
const LIMIT: f64 = 1e-3;

const HELP: &str = "\
moe_layer: one MoE feed-forward layer through tk kernels on the CPU, checked against Rust

USAGE: cargo run --release -p moe_layer -- [OPTIONS]

OPTIONS:
  --tokens N        tokens (default 4096)
  --hidden N        model hidden size (default 1024)
  --experts N       routed experts (default 64; any count, e.g. 8, 160, 256)
  --top-k N         experts per token (default 6)
  --inter N         expert hidden size (default 512)
  --routing R       softmax (default: top-k of softmax probabilities, not renormalised) or
                    sigmoid (top-k of sigmoid scores, renormalised, scaled by 2.5)
  --threads N       CPU threads for the kernels and the reference (default: all cores)
  --runs N          runs of the layer; per-kernel times are the best of them (default 1)
  --seed N          seed of the random inputs (default 1)
  --gemm BMxBNxBK   tile of the grouped GEMMs (default 32x64x32)
  --tkc PATH        use this tkc instead of building the workspace's (also $TKC)
";

struct Config {
    tokens: usize,
    hidden: usize,
    experts: usize,
    top_k: usize,
    inter: usize,
    routing: Routing,
    threads: usize,
    runs: usize,
    seed: u64,
    gemm: [usize; 3],
    tkc: Option<PathBuf>,
}

fn parse_args() -> Result<Option<Config>, String> {
    let mut c = Config {
        tokens: 4096,
        hidden: 1024,
        experts: 64,
        top_k: 6,
        inter: 512,
        routing: Routing::Softmax,
        threads: 0,
        runs: 1,
        seed: 1,
        gemm: [32, 64, 32],
        tkc: std::env::var_os("TKC").map(PathBuf::from),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            print!("{HELP}");
            return Ok(None);
        }
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        let mut num = |min: usize| -> Result<usize, String> {
            let v = value()?;
            let n: usize = v.parse().map_err(|_| format!("{a}: `{v}` is not a number"))?;
            if n < min {
                return Err(format!("{a} must be at least {min}"));
            }
            Ok(n)
        };
        match a.as_str() {
            "--tokens" => c.tokens = num(1)?,
            "--hidden" => c.hidden = num(1)?,
            "--experts" => c.experts = num(1)?,
            "--top-k" => c.top_k = num(1)?,
            "--inter" => c.inter = num(1)?,
            "--threads" => c.threads = num(0)?,
            "--runs" => c.runs = num(1)?,
            "--seed" => c.seed = num(0)? as u64,
            "--routing" => {
                c.routing = match value()?.as_str() {
                    "softmax" => Routing::Softmax,
                    "sigmoid" => Routing::Sigmoid,
                    other => return Err(format!("--routing: `{other}` is not softmax or sigmoid")),
                }
            }
            "--gemm" => {
                let v = value()?;
                let dims: Vec<usize> = v.split('x').filter_map(|d| d.parse().ok()).collect();
                if dims.len() != 3 || dims.contains(&0) {
                    return Err(format!("--gemm: `{v}` is not BMxBNxBK, e.g. 32x64x32"));
                }
                c.gemm = [dims[0], dims[1], dims[2]];
            }
            "--tkc" => c.tkc = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown option `{a}` (see --help)")),
        }
    }
    if c.top_k > c.experts {
        return Err(format!("--top-k {} exceeds --experts {}", c.top_k, c.experts));
    }
    let pairs = c.tokens * c.top_k;
    let biggest = [pairs * c.hidden, pairs * 2 * c.inter, c.experts * c.hidden * 2 * c.inter];
    if biggest.iter().any(|&n| n >= (1usize << 40)) || pairs >= (1usize << 31) {
        return Err("the shape is too large for this machine".into());
    }
    if c.threads == 0 {
        c.threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    }
    Ok(Some(c))
}

// Block sizes of the CPU build (compile-time parameters of the stdlib kernels).
const ROUTER_BM: usize = 32;
const ROUTER_BN: usize = 64;
const PERM_BLOCK: usize = 256;
const ROWS_BR: usize = 8;
const ROWS_BH: usize = 256;
const SWIGLU_BR: usize = 4;
const SWIGLU_B: usize = 512;
const COMBINE_B: usize = 512;

fn specs(c: &Config) -> Vec<kernels::Spec> {
    let e = c.experts.to_string();
    let d = |pairs: &[(&'static str, String)]| pairs.to_vec();
    let (k, renorm) = (c.top_k.to_string(), (c.routing == Routing::Sigmoid).to_string());
    vec![
        kernels::Spec {
            file: "matmul.tk",
            defines: d(&[
                ("BM", ROUTER_BM.to_string()),
                ("BN", ROUTER_BN.to_string()),
                ("BK", "32".into()),
            ]),
        },
        kernels::Spec {
            file: "moe_routing.tk",
            defines: d(&[("BLOCK_E", e.clone()), ("K", k), ("RENORM", renorm)]),
        },
        kernels::Spec {
            file: "moe_permute.tk",
            defines: d(&[
                ("BLOCK", PERM_BLOCK.to_string()),
                ("BLOCK_E", e),
                ("BLOCK_R", ROWS_BR.to_string()),
                ("BLOCK_H", ROWS_BH.to_string()),
            ]),
        },
        kernels::Spec {
            file: "moe_grouped_gemm.tk",
            defines: d(&[
                ("BM", c.gemm[0].to_string()),
                ("BN", c.gemm[1].to_string()),
                ("BK", c.gemm[2].to_string()),
            ]),
        },
        kernels::Spec {
            file: "moe_swiglu.tk",
            defines: d(&[("BLOCK_R", SWIGLU_BR.to_string()), ("BLOCK", SWIGLU_B.to_string())]),
        },
        kernels::Spec { file: "moe_combine.tk", defines: d(&[("BLOCK", COMBINE_B.to_string())]) },
    ]
}

/// The layer's buffers on the host.
struct Buffers {
    x: Buf<f32>,
    wr: Buf<f32>,
    w1: Buf<f32>,
    w2: Buf<f32>,
    bias: Buf<f32>,
    logits: Buf<f32>,
    weights: Buf<f32>,
    ids: Buf<i32>,
    block_counts: Buf<i32>,
    offsets: Buf<i32>,
    block_base: Buf<i32>,
    pos: Buf<i32>,
    src: Buf<i32>,
    xp: Buf<f32>,
    gate_up: Buf<f32>,
    act: Buf<f32>,
    yp: Buf<f32>,
    out: Buf<f32>,
}

/// Seeded inputs. The activations and router weights are multiples of 1/64 (router weights at
/// most 1/8), so every router logit is a multiple of 1/4096 below 2^19/4096 in size: exact in
/// f32 whatever the order of the sums, so the kernels and the reference see the same logits and
/// choose the same experts (ties included: both take the lower expert id).
fn make_buffers(c: &Config) -> Buffers {
    let (t, h, e, f) = (c.tokens, c.hidden, c.experts, c.inter);
    let n = t * c.top_k;
    let nb = n.div_ceil(PERM_BLOCK);
    let mut rng = Rng::new(c.seed);
    let x = Buf::from_fn(t * h, |_| rng.int_in(64) as f32 / 64.0);
    let wr = Buf::from_fn(h * e, |_| rng.int_in(8) as f32 / 64.0);
    let s1 = 1.0 / (h as f32).sqrt();
    let w1 = Buf::from_fn(e * h * 2 * f, |_| rng.symmetric() * s1);
    let s2 = 1.0 / (f as f32).sqrt();
    let w2 = Buf::from_fn(e * f * h, |_| rng.symmetric() * s2);
    Buffers {
        x,
        wr,
        w1,
        w2,
        bias: Buf::zeroed(e),
        logits: Buf::zeroed(t * e),
        weights: Buf::zeroed(n),
        ids: Buf::zeroed(n),
        block_counts: Buf::zeroed(nb * e),
        offsets: Buf::zeroed(e + 1),
        block_base: Buf::zeroed(nb * e),
        pos: Buf::zeroed(n),
        src: Buf::zeroed(n),
        xp: Buf::zeroed(n * h),
        gate_up: Buf::zeroed(n * 2 * f),
        act: Buf::zeroed(n * f),
        yp: Buf::zeroed(n * h),
        out: Buf::zeroed(t * h),
    }
}

struct Bundles {
    matmul: Bundle,
    routing: Bundle,
    permute: Bundle,
    gemm: Bundle,
    swiglu: Bundle,
    combine: Bundle,
}

/// One kernel launch's record.
struct Timing {
    name: String,
    grid: [u32; 3],
    time: Duration,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn grid(x: usize, y: usize) -> [u32; 3] {
    [x as u32, y as u32, 1]
}

/// Runs the whole layer once through the kernels; returns each launch's time.
fn forward(c: &Config, k: &Bundles, b: &mut Buffers) -> Result<Vec<Timing>, String> {
    let (t, h, e, f, topk) = (c.tokens, c.hidden, c.experts, c.inter, c.top_k);
    let n = t * topk;
    let nb = n.div_ceil(PERM_BLOCK);
    let i = |v: usize| Arg::i32(v as i32);
    let mut log = Vec::new();
    let mut launch = |name: &str,
                      bundle: &Bundle,
                      kernel: &str,
                      g: [u32; 3],
                      args: &[Arg]|
     -> Result<(), String> {
        let kern = bundle.kernel(kernel).map_err(err)?;
        let (r, time) = progress::run(name, None, || kern.launch(g, args));
        r.map_err(|e| format!("{name}: {e}"))?;
        log.push(Timing { name: name.to_string(), grid: g, time });
        Ok(())
    };
    launch(
        "router logits (matmul)",
        &k.matmul,
        "matmul",
        grid(t.div_ceil(ROUTER_BM), e.div_ceil(ROUTER_BN)),
        &[Arg::slice(&b.x), Arg::slice(&b.wr), Arg::slice_mut(&mut b.logits), i(t), i(e), i(h)],
    )?;
    match c.routing {
        Routing::Softmax => launch(
            "softmax_topk_routing",
            &k.routing,
            "softmax_topk_routing",
            grid(t, 1),
            &[
                Arg::slice(&b.logits),
                Arg::slice_mut(&mut b.weights),
                Arg::slice_mut(&mut b.ids),
                i(e),
                Arg::i64(e as i64),
                Arg::f32(1.0),
            ],
        )?,
        Routing::Sigmoid => launch(
            "sigmoid_topk_routing",
            &k.routing,
            "sigmoid_topk_routing",
            grid(t, 1),
            &[
                Arg::slice(&b.logits),
                Arg::slice(&b.bias),
                Arg::slice_mut(&mut b.weights),
                Arg::slice_mut(&mut b.ids),
                i(e),
                Arg::i64(e as i64),
                Arg::f32(2.5),
            ],
        )?,
    }
    launch(
        "expert_histogram",
        &k.permute,
        "expert_histogram",
        grid(nb, 1),
        &[Arg::slice(&b.ids), Arg::slice_mut(&mut b.block_counts), i(n), i(e)],
    )?;
    launch(
        "expert_offsets",
        &k.permute,
        "expert_offsets",
        grid(1, 1),
        &[
            Arg::slice(&b.block_counts),
            Arg::slice_mut(&mut b.offsets),
            Arg::slice_mut(&mut b.block_base),
            i(nb),
            i(e),
        ],
    )?;
    launch(
        "dispatch_index",
        &k.permute,
        "dispatch_index",
        grid(nb, 1),
        &[
            Arg::slice(&b.ids),
            Arg::slice(&b.block_base),
            Arg::slice_mut(&mut b.pos),
            Arg::slice_mut(&mut b.src),
            i(n),
            i(e),
        ],
    )?;
    launch(
        "permute_rows",
        &k.permute,
        "permute_rows",
        grid(n.div_ceil(ROWS_BR), h.div_ceil(ROWS_BH)),
        &[Arg::slice(&b.x), Arg::slice(&b.src), Arg::slice_mut(&mut b.xp), i(n), i(h), i(topk)],
    )?;
    // Tiles never cross experts: at most cdiv(n, BM) + E of them, the extra programs idle.
    let [bm, bn, _] = c.gemm;
    let tiles = n.div_ceil(bm) + e;
    launch(
        "grouped_gemm (gate, up)",
        &k.gemm,
        "grouped_gemm",
        grid(tiles, (2 * f).div_ceil(bn)),
        &[
            Arg::slice(&b.xp),
            Arg::slice(&b.w1),
            Arg::slice_mut(&mut b.gate_up),
            Arg::slice(&b.offsets),
            i(e),
            i(2 * f),
            i(h),
        ],
    )?;
    launch(
        "swiglu",
        &k.swiglu,
        "swiglu",
        grid(n.div_ceil(SWIGLU_BR), f.div_ceil(SWIGLU_B)),
        &[Arg::slice(&b.gate_up), Arg::slice_mut(&mut b.act), i(n), i(f)],
    )?;
    launch(
        "grouped_gemm (down)",
        &k.gemm,
        "grouped_gemm",
        grid(tiles, h.div_ceil(bn)),
        &[
            Arg::slice(&b.act),
            Arg::slice(&b.w2),
            Arg::slice_mut(&mut b.yp),
            Arg::slice(&b.offsets),
            i(e),
            i(h),
            i(f),
        ],
    )?;
    launch(
        "combine",
        &k.combine,
        "combine",
        grid(t, h.div_ceil(COMBINE_B)),
        &[
            Arg::slice(&b.yp),
            Arg::slice(&b.pos),
            Arg::slice(&b.weights),
            Arg::slice_mut(&mut b.out),
            i(h),
            i(topk),
        ],
    )?;
    Ok(log)
}

/// Floating-point operations of a launch (matrix products count 2 per multiply-add).
fn flops(c: &Config, name: &str) -> Option<f64> {
    let n = (c.tokens * c.top_k) as f64;
    let (t, h, e, f) = (c.tokens as f64, c.hidden as f64, c.experts as f64, c.inter as f64);
    match name {
        "router logits (matmul)" => Some(2.0 * t * h * e),
        "grouped_gemm (gate, up)" => Some(2.0 * n * h * 2.0 * f),
        "grouped_gemm (down)" => Some(2.0 * n * f * h),
        _ => None,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run() -> Result<bool, String> {
    let Some(c) = parse_args()? else { return Ok(true) };
    let routing = match c.routing {
        Routing::Softmax => "softmax top-k",
        Routing::Sigmoid => "sigmoid top-k, renormalised, x2.5",
    };
    println!(
        "MoE layer forward: {} tokens, hidden {}, {} experts, top-{} ({routing}), expert hidden {}, f32",
        c.tokens, c.hidden, c.experts, c.top_k, c.inter
    );

    let tkc = kernels::tkc(c.tkc.clone())?;
    let specs = specs(&c);
    for (n, s) in specs.iter().enumerate() {
        let label = format!("[{}/{}] {}", n + 1, specs.len(), s.command());
        if s.up_to_date(&tkc) {
            eprintln!("{label}: up to date");
            continue;
        }
        eprintln!("{label}");
        let (r, _) = progress::run(&label, None, || s.build(&tkc));
        r?;
    }
    let rt = Runtime::with_threads(Device::Cpu, c.threads).map_err(err)?;
    let load = |i: usize| rt.load(specs[i].dir()).map_err(err);
    let bundles = Bundles {
        matmul: load(0)?,
        routing: load(1)?,
        permute: load(2)?,
        gemm: load(3)?,
        swiglu: load(4)?,
        combine: load(5)?,
    };
    println!("kernels: {} (CPU, {} threads)", kernels::bundle_root().display(), rt.num_threads());

    let (mut b, t_data) = progress::run("generating inputs", None, || make_buffers(&c));
    eprintln!("inputs: {:.1} s", t_data.as_secs_f64());

    let mut best: Option<Vec<Timing>> = None;
    for _ in 0..c.runs {
        let log = forward(&c, &bundles, &mut b)?;
        best = Some(match best {
            None => log,
            Some(prev) => prev
                .into_iter()
                .zip(log)
                .map(|(p, l)| if l.time < p.time { l } else { p })
                .collect(),
        });
    }
    let log = best.expect("at least one run");

    println!();
    println!("{:<26} {:>14} {:>11} {:>10}", "kernel", "grid", "time (ms)", "GFLOP/s");
    let mut total = Duration::ZERO;
    for l in &log {
        total += l.time;
        let g = format!("{}x{}", l.grid[0], l.grid[1]);
        let rate = flops(&c, &l.name)
            .map(|fl| format!("{:.1}", fl / l.time.as_secs_f64() / 1e9))
            .unwrap_or_default();
        let row = format!("{:<26} {:>14} {:>11.2} {:>10}", l.name, g, ms(l.time), rate);
        println!("{}", row.trim_end());
    }
    println!("{:<26} {:>14} {:>11.2}", "total", "", ms(total));
    if c.runs > 1 {
        println!("(best of {} runs per kernel)", c.runs);
    }

    let layer = reference::Layer {
        tokens: c.tokens,
        hidden: c.hidden,
        experts: c.experts,
        top_k: c.top_k,
        inter: c.inter,
        routing: c.routing,
        renorm: c.routing == Routing::Sigmoid,
        scale: if c.routing == Routing::Sigmoid { 2.5 } else { 1.0 },
        x: &b.x,
        wr: &b.wr,
        w1: &b.w1,
        w2: &b.w2,
    };
    let counter = Counter::new(c.tokens * c.top_k);
    let (want, t_ref) = progress::run("Rust reference", Some(&counter), || {
        reference::forward(&layer, c.threads, &counter)
    });
    println!();
    println!(
        "Rust reference (plain loops, f64 accumulation, {} threads): {:.1} s",
        c.threads,
        t_ref.as_secs_f64()
    );
    let ids_differ = want.ids.iter().zip(b.ids.iter()).filter(|(a, b)| a != b).count();
    let mut max_err = 0.0f64;
    let mut max_out = 0.0f64;
    for (&g, &w) in b.out.iter().zip(&want.out) {
        let d = (g as f64 - w).abs();
        // NaN must fail the check.
        max_err = if d.is_nan() { f64::INFINITY } else { max_err.max(d) };
        max_out = max_out.max(w.abs());
    }
    println!(
        "expert choices: {} of {} (token, slot) pairs equal the reference's",
        want.ids.len() - ids_differ,
        want.ids.len()
    );
    let ok = ids_differ == 0 && max_err <= LIMIT;
    println!(
        "max abs error vs Rust reference: {max_err:.3e} (largest |output| {max_out:.3}; limit {LIMIT:.0e}): {}",
        if ok { "OK" } else { "FAILED" }
    );
    Ok(ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
