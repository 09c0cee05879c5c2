//! Every stdlib kernel: emitted Ascend C compiles with g++ -Wall -Werror against the simulation
//! header, and its results equal the interpreter's on seeded random inputs (ragged and
//! non-power-of-two sizes, more programs than cores). Each kernel is also run at a larger size,
//! and the GM traffic the simulation counts is compared with the minimum (every input read once,
//! every output written once): vector add, softmax and RMSNorm must stay within 1.1x of it.
//! The rows printed here (`cargo test -p tk-backend-ascend --test stdlib -- --nocapture
//! --test-threads 1 | grep '^|'`) are the table of `bench/ascend-traffic.md`.

mod common;

use common::{check, check_all, traffic_row, Case, TArg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_backend_ascend::AscendOptions;
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

fn randf(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Buffer {
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(lo..hi)).collect();
    Buffer::from_slice(&v)
}

fn filled(n: usize, x: f32) -> Buffer {
    Buffer::from_slice(&vec![x; n])
}

fn i32s(v: i32) -> TArg {
    TArg::Scalar(DType::I32, ConstValue::Int(v as i64))
}
fn i64s(v: i64) -> TArg {
    TArg::Scalar(DType::I64, ConstValue::Int(v))
}
fn f32s(v: f32) -> TArg {
    TArg::Scalar(DType::F32, ConstValue::Float(v as f64))
}

fn vector_add_case(rng: &mut ChaCha8Rng, n: usize, block_dim: u32) -> Case<'static> {
    Case {
        file: "vector_add.tk",
        kernel: "vector_add",
        defines: &[("BLOCK", "160")],
        args: vec![
            TArg::Buf(randf(rng, n, -4.0, 4.0)),
            TArg::Buf(randf(rng, n, -4.0, 4.0)),
            TArg::Buf(filled(n, -7.0)),
            i64s(n as i64),
        ],
        grid: [n.div_ceil(160) as u32, 1, 1],
        block_dim,
        rtol: 0.0,
        atol: 0.0,
    }
}

#[test]
fn vector_add_matches_and_moves_minimum_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    // 1000 = 6.25 blocks of 160 on 3 cores; 300000 on 48 cores.
    let sizes = [(1000usize, 3u32), (300_000, 48)];
    let cases: Vec<Case> = sizes.iter().map(|&(n, b)| vector_add_case(&mut rng, n, b)).collect();
    let stats = check_all(&cases, &AscendOptions::default());
    for ((n, b), st) in sizes.iter().zip(&stats) {
        let sz = format!("n={n}, BLOCK=160, {b} cores");
        let r = traffic_row("vector_add", &sz, st, 3 * *n as u64 * 4);
        assert!(r <= 1.1, "vector_add ({sz}) moves {r:.3}x the minimum");
    }
}

#[test]
fn gelu_and_silu_match() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for kernel in ["gelu_kernel", "silu_kernel"] {
        let n = 777usize;
        let case = Case {
            file: "activations.tk",
            kernel,
            defines: &[("BLOCK", "160")],
            args: vec![
                TArg::Buf(randf(&mut rng, n, -5.0, 5.0)),
                TArg::Buf(filled(n, -7.0)),
                i64s(n as i64),
            ],
            grid: [5, 1, 1],
            block_dim: 2,
            rtol: 1e-5,
            atol: 1e-6,
        };
        let st = check(&case, &AscendOptions::default());
        let r = traffic_row(kernel, &format!("n={n}, BLOCK=160, 2 cores"), &st, 2 * n as u64 * 4);
        assert!(r <= 1.1, "{kernel} moves {r:.3}x the minimum");
    }
}

#[test]
fn softmax_matches_and_moves_minimum_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // (rows, cols, stride, cores): ragged rows with a padded stride, then many rows.
    let sizes = [(37usize, 150usize, 153usize, 4u32), (2048, 150, 150, 48)];
    let cases: Vec<Case> = sizes
        .iter()
        .map(|&(rows, cols, stride, cores)| Case {
            file: "softmax.tk",
            kernel: "softmax",
            defines: &[("BLOCK", "160"), ("ALIGNED", "false")],
            args: vec![
                TArg::Buf(randf(&mut rng, rows * stride, -6.0, 6.0)),
                TArg::Buf(filled(rows * stride, -7.0)),
                i32s(cols as i32),
                i64s(stride as i64),
            ],
            grid: [rows as u32, 1, 1],
            block_dim: cores,
            rtol: 1e-5,
            atol: 1e-7,
        })
        .collect();
    let stats = check_all(&cases, &AscendOptions::default());
    for (&(rows, cols, stride, cores), st) in sizes.iter().zip(&stats) {
        let sz = format!("{rows}x{cols} (stride {stride}), BLOCK=160, {cores} cores");
        let r = traffic_row("softmax", &sz, st, 2 * (rows * cols) as u64 * 4);
        assert!(r <= 1.1, "softmax ({sz}) moves {r:.3}x the minimum");
    }
}

#[test]
fn rmsnorm_matches_and_moves_minimum_bytes() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let sizes = [(64usize, 150usize, 4u32), (4096, 150, 48)];
    let cases: Vec<Case> = sizes
        .iter()
        .map(|&(rows, cols, cores)| Case {
            file: "rmsnorm.tk",
            kernel: "rmsnorm",
            defines: &[("BLOCK", "160"), ("ALIGNED", "false")],
            args: vec![
                TArg::Buf(randf(&mut rng, rows * cols, -3.0, 3.0)),
                TArg::Buf(randf(&mut rng, cols, 0.5, 1.5)),
                TArg::Buf(filled(rows * cols, -7.0)),
                i32s(cols as i32),
                i64s(cols as i64),
                f32s(1e-5),
            ],
            grid: [rows as u32, 1, 1],
            block_dim: cores,
            rtol: 1e-5,
            atol: 1e-6,
        })
        .collect();
    let stats = check_all(&cases, &AscendOptions::default());
    for (&(rows, cols, cores), st) in sizes.iter().zip(&stats) {
        let sz = format!("{rows}x{cols}, BLOCK=160, {cores} cores");
        // x read and y written once; the weight row is needed at least once.
        let r = traffic_row("rmsnorm", &sz, st, (2 * rows * cols + cols) as u64 * 4);
        assert!(r <= 1.1, "rmsnorm ({sz}) moves {r:.3}x the minimum");
    }
}

#[test]
fn layernorm_matches() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let sizes = [(19usize, 150usize, 3u32), (2048, 150, 48)];
    let cases: Vec<Case> = sizes
        .iter()
        .map(|&(rows, cols, cores)| Case {
            file: "layernorm.tk",
            kernel: "layernorm",
            defines: &[("BLOCK", "160"), ("ALIGNED", "false")],
            args: vec![
                TArg::Buf(randf(&mut rng, rows * cols, -3.0, 3.0)),
                TArg::Buf(randf(&mut rng, cols, 0.5, 1.5)),
                TArg::Buf(randf(&mut rng, cols, -0.5, 0.5)),
                TArg::Buf(filled(rows * cols, -7.0)),
                i32s(cols as i32),
                i64s(cols as i64),
                f32s(1e-5),
            ],
            grid: [rows as u32, 1, 1],
            block_dim: cores,
            rtol: 1e-4,
            atol: 1e-5,
        })
        .collect();
    let stats = check_all(&cases, &AscendOptions::default());
    for (&(rows, cols, cores), st) in sizes.iter().zip(&stats) {
        let sz = format!("{rows}x{cols}, BLOCK=160, {cores} cores");
        let r = traffic_row("layernorm", &sz, st, (2 * rows * cols + 2 * cols) as u64 * 4);
        assert!(r <= 1.1, "layernorm ({sz}) moves {r:.3}x the minimum");
    }
}

#[test]
fn topk_gating_matches() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (tokens, experts, k) = (20usize, 150usize, 8usize);
    let case = Case {
        file: "moe_gating.tk",
        kernel: "topk_gating",
        defines: &[("BLOCK_E", "160"), ("K", "8")],
        args: vec![
            TArg::Buf(randf(&mut rng, tokens * 160, -3.0, 3.0)),
            TArg::Buf(filled(tokens * k, -7.0)),
            TArg::Buf(Buffer::from_slice(&vec![-1i32; tokens * k])),
            i32s(experts as i32),
            i64s(160),
        ],
        grid: [tokens as u32, 1, 1],
        block_dim: 3,
        rtol: 1e-5,
        atol: 1e-7,
    };
    let st = check(&case, &AscendOptions::default());
    let sz = format!("{tokens} tokens x {experts} experts, K={k}, 3 cores");
    let r = traffic_row("topk_gating", &sz, &st, (tokens * experts + 2 * tokens * k) as u64 * 4);
    assert!(r <= 1.1, "topk_gating moves {r:.3}x the minimum");
}

/// The traffic of a tiled product: A is read once per column of tiles, B once per row of tiles,
/// C written once (`sz`: bytes per input element). Also the "each input once" minimum.
fn matmul_minimums(m: usize, n: usize, k: usize, bm: usize, bn: usize, sz: usize) -> (u64, u64) {
    let (gm, gn) = (m.div_ceil(bm), n.div_ceil(bn));
    let tiled = (m * k * sz * gn + k * n * sz * gm + m * n * 4) as u64;
    let once = ((m * k + k * n) * sz + m * n * 4) as u64;
    (tiled, once)
}

fn matmul_case(
    kernel: &'static str,
    m: usize,
    n: usize,
    k: usize,
    tile: usize,
    f16: bool,
    seed: u64,
) -> Case<'static> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (a, b) = if f16 {
        let a: Vec<half::f16> =
            (0..m * k).map(|_| half::f16::from_f32(rng.gen_range(-1.0..1.0))).collect();
        let b: Vec<half::f16> =
            (0..k * n).map(|_| half::f16::from_f32(rng.gen_range(-1.0..1.0))).collect();
        (Buffer::from_slice(&a), Buffer::from_slice(&b))
    } else {
        (randf(&mut rng, m * k, -1.0, 1.0), randf(&mut rng, k * n, -1.0, 1.0))
    };
    Case {
        file: "matmul.tk",
        kernel,
        defines: &[],
        args: vec![
            TArg::Buf(a),
            TArg::Buf(b),
            TArg::Buf(filled(m * n, -7.0)),
            i32s(m as i32),
            i32s(n as i32),
            i32s(k as i32),
        ],
        grid: [m.div_ceil(tile) as u32, n.div_ceil(tile) as u32, 1],
        block_dim: 3,
        rtol: 1e-4,
        atol: 1e-4,
    }
}

fn matmul_check(kernel: &'static str, tile: usize, f16: bool, sizes: &[(usize, usize, usize)]) {
    let cases: Vec<Case> = sizes
        .iter()
        .enumerate()
        .map(|(i, &(m, n, k))| matmul_case(kernel, m, n, k, tile, f16, 7 + i as u64))
        .collect();
    let stats = check_all(&cases, &AscendOptions::default());
    let sz = if f16 { 2 } else { 4 };
    for (&(m, n, k), st) in sizes.iter().zip(&stats) {
        let (tiled, once) = matmul_minimums(m, n, k, tile, tile, sz);
        let label = format!("M={m} N={n} K={k}, {tile}x{tile} tiles, 3 cores");
        let r = traffic_row(kernel, &label, st, once);
        // The tiles re-read A and B by design; beyond that nothing may be moved twice.
        let rt = st.gm_bytes() as f64 / tiled as f64;
        println!("|   (vs. the {tile}x{tile} tiling's own minimum of {tiled} bytes) | | | | | | | {rt:.3} |");
        assert!(rt <= 1.1 && r >= 1.0, "{kernel} ({label}) moves {rt:.3}x the tiled minimum");
    }
}

#[test]
fn matmul_f32_matches() {
    matmul_check("matmul", 32, false, &[(45, 37, 50), (96, 64, 130)]);
}

#[test]
fn matmul_f16_matches() {
    matmul_check("matmul_f16", 64, true, &[(70, 65, 40), (128, 192, 200)]);
}

#[test]
fn example_swiglu_matches() {
    // examples/swiglu.tk imports the stdlib `silu` helper: a fused element-wise chain.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 500usize;
    let case = Case {
        file: "../examples/swiglu.tk",
        kernel: "swiglu",
        defines: &[("BLOCK", "96")],
        args: vec![
            TArg::Buf(randf(&mut rng, n, -4.0, 4.0)),
            TArg::Buf(randf(&mut rng, n, -4.0, 4.0)),
            TArg::Buf(filled(n, -7.0)),
            i64s(n as i64),
        ],
        grid: [6, 1, 1],
        block_dim: 4,
        rtol: 1e-5,
        atol: 1e-6,
    };
    let st = check(&case, &AscendOptions::default());
    let r = traffic_row(
        "swiglu (example)",
        &format!("n={n}, BLOCK=96, 4 cores"),
        &st,
        3 * n as u64 * 4,
    );
    assert!(r <= 1.1, "swiglu moves {r:.3}x the minimum");
}
