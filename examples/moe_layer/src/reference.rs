//! The plain Rust reference of the layer: the same mathematics written directly, with f64
//! accumulation, sharing no code with the kernels. Routing is computed per token; the expert MLPs
//! run expert by expert over the tokens routed to each (so a weight row is reused from cache by a
//! few tokens at a time), on a few threads.

use crate::progress::Counter;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How the router's logits become expert scores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Softmax over the experts; the top k probabilities.
    Softmax,
    /// Sigmoid scores; the top k (the kernel's selection bias is zero here).
    Sigmoid,
}

/// Shapes and inputs of one layer.
pub struct Layer<'a> {
    pub tokens: usize,
    pub hidden: usize,
    pub experts: usize,
    pub top_k: usize,
    pub inter: usize,
    pub routing: Routing,
    pub renorm: bool,
    pub scale: f64,
    /// [tokens, hidden]
    pub x: &'a [f32],
    /// Router weights [hidden, experts].
    pub wr: &'a [f32],
    /// Gate and up projections [experts, hidden, 2 * inter] (gate columns first).
    pub w1: &'a [f32],
    /// Down projections [experts, inter, hidden].
    pub w2: &'a [f32],
}

/// The reference's results.
pub struct Output {
    /// [tokens, top_k] expert ids, best first (equal scores: lower id first).
    pub ids: Vec<i32>,
    /// [tokens, hidden]
    pub out: Vec<f64>,
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Routes one token: (expert ids, weights).
fn route(l: &Layer, t: usize) -> (Vec<usize>, Vec<f64>) {
    let xt = &l.x[t * l.hidden..(t + 1) * l.hidden];
    let logits: Vec<f64> = (0..l.experts)
        .map(|e| (0..l.hidden).map(|q| xt[q] as f64 * l.wr[q * l.experts + e] as f64).sum())
        .collect();
    let scores: Vec<f64> = match l.routing {
        Routing::Softmax => {
            let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let p: Vec<f64> = logits.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = p.iter().sum();
            p.iter().map(|v| v / z).collect()
        }
        Routing::Sigmoid => logits.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect(),
    };
    let mut order: Vec<usize> = (0..l.experts).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(l.top_k);
    let sum: f64 = order.iter().map(|&e| scores[e]).sum();
    let w = order.iter().map(|&e| if l.renorm { scores[e] / sum } else { scores[e] } * l.scale);
    let w = w.collect();
    (order, w)
}

/// Splits `0..n` over `threads` workers that take the next index from a shared counter; returns
/// every worker's results.
fn parallel<T: Send>(n: usize, threads: usize, f: impl Fn(usize) -> T + Sync) -> Vec<(usize, T)> {
    let next = AtomicUsize::new(0);
    let mut all = Vec::with_capacity(n);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        mine.push((i, f(i)));
                    }
                    mine
                })
            })
            .collect();
        for w in workers {
            all.extend(w.join().expect("a reference worker panicked"));
        }
    });
    all
}

/// Tokens per tile of the expert MLPs: each weight row read once per tile.
const TILE: usize = 8;

/// One expert's MLP on a few tokens: `down(silu(gate(x)) * up(x))` for each, in f64.
fn expert_mlp(l: &Layer, w1: &[f32], w2: &[f32], toks: &[usize]) -> Vec<Vec<f64>> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (just checked).
        return unsafe { expert_mlp_avx2(l, w1, w2, toks) };
    }
    expert_mlp_body(l, w1, w2, toks)
}

/// The same code compiled for AVX2 (4 f64 lanes instead of SSE2's 2); no FMA, so the results
/// are those of the plain build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn expert_mlp_avx2(l: &Layer, w1: &[f32], w2: &[f32], toks: &[usize]) -> Vec<Vec<f64>> {
    expert_mlp_body(l, w1, w2, toks)
}

#[inline(always)]
fn expert_mlp_body(l: &Layer, w1: &[f32], w2: &[f32], toks: &[usize]) -> Vec<Vec<f64>> {
    let (h, f) = (l.hidden, l.inter);
    let mut gu = vec![vec![0.0f64; 2 * f]; toks.len()];
    for q in 0..h {
        let wrow = &w1[q * 2 * f..(q + 1) * 2 * f];
        for (acc, &tok) in gu.iter_mut().zip(toks) {
            let a = l.x[tok * h + q] as f64;
            for (s, &w) in acc.iter_mut().zip(wrow) {
                *s += a * w as f64;
            }
        }
    }
    let act: Vec<Vec<f64>> =
        gu.iter().map(|g| (0..f).map(|c| silu(g[c]) * g[f + c]).collect()).collect();
    let mut y = vec![vec![0.0f64; h]; toks.len()];
    for c in 0..f {
        let wrow = &w2[c * h..(c + 1) * h];
        for (acc, a) in y.iter_mut().zip(&act) {
            let a = a[c];
            for (s, &w) in acc.iter_mut().zip(wrow) {
                *s += a * w as f64;
            }
        }
    }
    y
}

/// Runs the layer; `progress` counts (token, slot) pairs done.
pub fn forward(l: &Layer, threads: usize, progress: &Counter) -> Output {
    let (t, h, f) = (l.tokens, l.hidden, l.inter);
    let mut routes = parallel(t, threads, |tok| route(l, tok));
    routes.sort_by_key(|r| r.0);
    let ids: Vec<i32> = routes.iter().flat_map(|(_, (e, _))| e.iter().map(|&e| e as i32)).collect();
    // The (token, weight) pairs of each expert.
    let mut by_expert: Vec<Vec<(usize, f64)>> = vec![Vec::new(); l.experts];
    for (tok, (es, ws)) in &routes {
        for (&e, &w) in es.iter().zip(ws) {
            by_expert[e].push((*tok, w));
        }
    }
    let partial = parallel(l.experts, threads, |e| {
        let pairs = &by_expert[e];
        let w1 = &l.w1[e * h * 2 * f..(e + 1) * h * 2 * f];
        let w2 = &l.w2[e * f * h..(e + 1) * f * h];
        // Weighted expert outputs of this expert's tokens, as (token, row).
        let mut rows = Vec::with_capacity(pairs.len());
        for tile in pairs.chunks(TILE) {
            let toks: Vec<usize> = tile.iter().map(|p| p.0).collect();
            let y = expert_mlp(l, w1, w2, &toks);
            for (row, &(tok, w)) in y.into_iter().zip(tile) {
                rows.push((tok, row.into_iter().map(|v| v * w).collect::<Vec<f64>>()));
            }
            progress.add(tile.len());
        }
        rows
    });
    let mut out = vec![0.0f64; t * h];
    for (_, rows) in partial {
        for (tok, row) in rows {
            for (o, v) in out[tok * h..(tok + 1) * h].iter_mut().zip(row) {
                *o += v;
            }
        }
    }
    Output { ids, out }
}
