//! Plain-Rust references for the stdlib kernels: loops over `f64`, written from the kernels'
//! documented mathematics (the comment at the top of each `.tk` file), never through the IR,
//! `tk_ir::eval` or the interpreter, so that agreement is evidence and not a tautology.
//!
//! Every function takes the kernel's inputs as the host holds them (`f32`, or `f16` widened
//! exactly to `f64`) and returns the mathematically exact result computed in `f64`; the test
//! decides how close the kernel's `f32` output must be.

use std::f64::consts::PI;

/// `erf(x)`: Rust's std has none, and borrowing `tk_ir::eval`'s would make the GELU check
/// circular. Maclaurin series below 2.5 (at most ~3 digits lost to cancellation there), and
/// `1 - erfc` above it.
pub fn erf(x: f64) -> f64 {
    if x < 0.0 {
        -erf(-x)
    } else if x < 2.5 {
        erf_series(x)
    } else {
        1.0 - erfc_cf(x)
    }
}

/// `erfc(x) = 1 - erf(x)` without cancellation for large `x` (what GELU of a large negative
/// input needs: `1 + erf(-t)` is tiny).
pub fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        2.0 - erfc(-x)
    } else if x < 2.5 {
        // erf(x) < 0.99960 here, so erfc >= 4e-4 and the subtraction loses < 4 digits.
        1.0 - erf_series(x)
    } else {
        erfc_cf(x)
    }
}

/// `2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))`.
fn erf_series(x: f64) -> f64 {
    let x2 = x * x;
    let mut power = x; // (-1)^n x^(2n+1) / n!
    let mut sum = x;
    for n in 1..200 {
        power *= -x2 / n as f64;
        let term = power / (2 * n + 1) as f64;
        sum += term;
        if term.abs() < 1e-17 * sum.abs() {
            break;
        }
    }
    sum * 2.0 / PI.sqrt()
}

/// Laplace's continued fraction `erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/
/// (x + ...))))`, evaluated bottom-up; 100 levels are far more than `x >= 2.5` needs for f64.
fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for k in (1..=100).rev() {
        f = x + (k as f64 / 2.0) / f;
    }
    (-x * x).exp() / PI.sqrt() / f
}

/// GELU, exact form: `x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) = 0.5 x erfc(-x / sqrt 2)`; the
/// `erfc` form keeps full relative precision for negative `x`.
pub fn gelu(x: f64) -> f64 {
    0.5 * x * erfc(-x / 2f64.sqrt())
}

/// SiLU: `x * sigmoid(x) = x / (1 + exp(-x))`.
pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

/// Row softmax of `rows` rows of `n_cols` values at row stride `stride`; the result is dense
/// (`rows * n_cols`).
pub fn softmax(x: &[f32], rows: usize, n_cols: usize, stride: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * n_cols);
    for r in 0..rows {
        let row: Vec<f64> = x[r * stride..r * stride + n_cols].iter().map(|&v| v as f64).collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// LayerNorm per row with the biased variance: `(x - mean) / sqrt(var + eps) * w + b`. Also
/// returns, per element, `|(x - mean) / sqrt(var + eps) * w| + |b|`: the size of the terms the
/// kernel adds, which bounds its rounding error when they cancel.
pub fn layernorm(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    rows: usize,
    n_cols: usize,
    stride: usize,
    eps: f32,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = Vec::with_capacity(rows * n_cols);
    let mut mag = Vec::with_capacity(rows * n_cols);
    for r in 0..rows {
        let row: Vec<f64> = x[r * stride..r * stride + n_cols].iter().map(|&v| v as f64).collect();
        let n = n_cols as f64;
        let mean = row.iter().sum::<f64>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (c, v) in row.iter().enumerate() {
            let scaled = (v - mean) * inv * w[c] as f64;
            out.push(scaled + b[c] as f64);
            mag.push(scaled.abs() + (b[c] as f64).abs());
        }
    }
    (out, mag)
}

/// RMSNorm per row: `x / sqrt(mean(x^2) + eps) * w`.
pub fn rmsnorm(
    x: &[f32],
    w: &[f32],
    rows: usize,
    n_cols: usize,
    stride: usize,
    eps: f32,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows * n_cols);
    for r in 0..rows {
        let row: Vec<f64> = x[r * stride..r * stride + n_cols].iter().map(|&v| v as f64).collect();
        let ms = row.iter().map(|v| v * v).sum::<f64>() / n_cols as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        out.extend(row.iter().enumerate().map(|(c, v)| v * inv * w[c] as f64));
    }
    out
}

/// `C = A @ B` for row-major `A[m, k]`, `B[k, n]`, summed exactly enough in `f64` (products of
/// `f32`s are exact in `f64`). Also returns `sum_k |a[i,k] b[k,j]|` per element: the size of
/// the terms, which bounds the rounding error of any summation order when they cancel.
pub fn matmul(a: &[f64], b: &[f64], m: usize, n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut c = vec![0.0; m * n];
    let mut mag = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let t = a[i * k + p] * b[p * n + j];
                c[i * n + j] += t;
                mag[i * n + j] += t.abs();
            }
        }
    }
    (c, mag)
}

/// MoE top-k gating for `tokens` rows of `n_experts` logits at row stride `stride`: softmax over
/// the experts, then the `k` largest probabilities in descending order, **equal probabilities
/// ordered by the lower expert id first**, optionally renormalised to sum to 1. Returns
/// (`weights[tokens * k]`, `ids[tokens * k]`).
pub fn topk_gating(
    logits: &[f32],
    tokens: usize,
    n_experts: usize,
    stride: usize,
    k: usize,
    renorm: bool,
) -> (Vec<f64>, Vec<i32>) {
    let mut weights = Vec::with_capacity(tokens * k);
    let mut ids = Vec::with_capacity(tokens * k);
    for t in 0..tokens {
        let probs = softmax(&logits[t * stride..], 1, n_experts, stride);
        let mut order: Vec<usize> = (0..n_experts).collect();
        // Descending probability, then ascending id: the documented tie rule, spelled out
        // rather than relying on sort stability.
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]).then(i.cmp(&j)));
        order.truncate(k);
        let total: f64 = order.iter().map(|&i| probs[i]).sum();
        for &i in &order {
            weights.push(if renorm { probs[i] / total } else { probs[i] });
            ids.push(i as i32);
        }
    }
    (weights, ids)
}
