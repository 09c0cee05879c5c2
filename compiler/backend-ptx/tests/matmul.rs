//! `dot` on PTX against the interpreter: the FMA path (f32) and the tensor-core path
//! (`ldmatrix` + `mma.sync` for f16, bf16 and tf32 inputs), with ragged M, N, K, tiles that are
//! not powers of two, and every warp count.

mod common;

use common::*;
use tk_backend_ptx::exec::ExecStats;
use tk_backend_ptx::Options;
use tk_ir::{DType, Module};

fn run_module(
    m: &Module,
    kernel: &str,
    dt: DType,
    tiles: (u32, u32, u32),
    mnk: (usize, usize, usize),
    warps: u32,
    tol: f64,
) -> ExecStats {
    let (bm, bn, _) = tiles;
    let (m_, n_, k_) = mnk;
    check(
        m,
        kernel,
        [m_.div_ceil(bm as usize) as u32, n_.div_ceil(bn as usize) as u32, 1],
        &[
            TArg::Rand(dt, m_ * k_),
            TArg::Rand(dt, k_ * n_),
            TArg::Zeros(DType::F32, m_ * n_),
            TArg::I32(m_ as i32),
            TArg::I32(n_ as i32),
            TArg::I32(k_ as i32),
        ],
        &Options { num_warps: warps, ..Default::default() },
        (m_ * 31 + n_) as u64,
        tol,
    )
    .stats
}

fn defs(tiles: (u32, u32, u32)) -> [(&'static str, String); 3] {
    [("BM", tiles.0.to_string()), ("BN", tiles.1.to_string()), ("BK", tiles.2.to_string())]
}

fn run(
    kernel: &str,
    dt: DType,
    tiles: (u32, u32, u32),
    mnk: (usize, usize, usize),
    warps: u32,
) -> ExecStats {
    let d = defs(tiles);
    let d: Vec<(&str, &str)> = d.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let m = compile("matmul.tk", &d);
    // f32 accumulation of K products of magnitude up to 16, against f64 in the interpreter.
    run_module(&m, kernel, dt, tiles, mnk, warps, if dt == DType::F32 { 2e-4 } else { 1e-5 })
}

/// The stdlib matmul with another input dtype and precision.
fn variant(dt: &str, precision: &str) -> String {
    format!(
        "kernel mm<BM: i32, BN: i32, BK: i32>(a: *{dt}, b: *{dt}, c: *f32, M: i32, N: i32, K: i32) {{
    let rm = program_id(0) * BM + arange(0, BM);
    let rn = program_id(1) * BN + arange(0, BN);
    let rk = arange(0, BK);
    let mut acc = zeros([BM, BN], f32);
    for k in range(0, K, BK) {{
        let ka = k + rk;
        let a_tile = load(a + (rm[:, None] as i64) * K + ka[None, :], mask: rm[:, None] < M && ka[None, :] < K, other: 0.0);
        let b_tile = load(b + (ka[:, None] as i64) * N + rn[None, :], mask: ka[:, None] < K && rn[None, :] < N, other: 0.0);
        acc = dot(a_tile, b_tile, acc, precision: \"{precision}\");
    }}
    store(c + (rm[:, None] as i64) * N + rn[None, :], acc, mask: rm[:, None] < M && rn[None, :] < N);
}}
"
    )
}

fn run_variant(
    dt: DType,
    precision: &str,
    tiles: (u32, u32, u32),
    mnk: (usize, usize, usize),
    warps: u32,
    tol: f64,
) -> ExecStats {
    let d = defs(tiles);
    let d: Vec<(&str, &str)> = d.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let m = compile_src(&variant(&dt.to_string(), precision), &d);
    run_module(&m, "mm", dt, tiles, mnk, warps, tol)
}

#[test]
fn matmul_f32_matches_interpreter() {
    for (tiles, mnk, w) in [
        ((32, 32, 32), (64, 64, 64), 4),
        ((32, 32, 32), (45, 37, 70), 4),
        ((16, 24, 8), (33, 50, 19), 2),
        ((64, 64, 16), (70, 65, 17), 8),
    ] {
        let st = run("matmul", DType::F32, tiles, mnk, w);
        assert_eq!(st.mma, 0, "f32 with ieee precision stays on the FMA path");
    }
}

#[test]
fn matmul_f16_uses_mma_and_matches_interpreter() {
    // The stdlib defaults (64, 64, 32), 4 warps: 2 x 2 warps of 32 x 32, so per CTA and k
    // step of 16: 4 warps x (2 A + 2 B) ldmatrix.x4 and 4 x 8 mma.
    let st = run("matmul_f16", DType::F16, (64, 64, 32), (64, 128, 64), 4);
    let ctas_ksteps = 2 * (64 / 32) * (32 / 16);
    assert_eq!(st.mma, ctas_ksteps * 4 * 8);
    assert_eq!(st.ldmatrix, ctas_ksteps * 4 * 4);
    // Ragged sizes, non-power-of-two tiles (padding to 64 x 64 x 32 with zero K padding).
    for (tiles, mnk, w) in [
        ((64, 64, 32), (50, 70, 45), 4),
        ((48, 40, 24), (50, 70, 45), 4),
        ((32, 16, 16), (40, 20, 33), 1),
        ((32, 16, 16), (40, 20, 33), 2),
        ((64, 64, 32), (70, 65, 33), 8),
        ((128, 64, 32), (130, 64, 40), 16),
        // Fewer 8-column tiles than warps: warps replicate columns, owners store.
        ((16, 8, 16), (20, 9, 17), 4),
        ((16, 24, 48), (16, 24, 100), 4),
    ] {
        let st = run("matmul_f16", DType::F16, tiles, mnk, w);
        assert!(st.mma > 0, "{tiles:?} {w} warps: expected the mma path");
    }
}

#[test]
fn small_f16_tiles_fall_back_to_fma() {
    // M padded to 8 is below one mma tile: the FMA path must still be right.
    let st = run("matmul_f16", DType::F16, (8, 8, 8), (10, 9, 11), 1);
    assert_eq!(st.mma, 0);
}

#[test]
fn matmul_bf16_uses_mma_and_matches_interpreter() {
    for (tiles, mnk, w) in [((64, 64, 32), (64, 64, 64), 4), ((48, 24, 40), (50, 30, 70), 2)] {
        let st = run_variant(DType::BF16, "ieee", tiles, mnk, w, 1e-5);
        assert!(st.mma > 0);
    }
}

#[test]
fn matmul_tf32_uses_mma_and_matches_interpreter() {
    // tf32 keeps 10 mantissa bits: each product of inputs in [-4, 4) is off by up to 2^-10
    // relative (about 0.002 on average), and 64 of them add up to a few hundredths against the
    // interpreter's ieee products; a wrong fragment mapping is off by whole units.
    for (tiles, mnk, w) in [((64, 64, 32), (64, 64, 64), 4), ((32, 24, 12), (37, 30, 29), 4)] {
        let st = run_variant(DType::F32, "tf32", tiles, mnk, w, 0.1);
        assert!(st.mma > 0);
    }
    // The same kernel with ieee precision stays exact to f32 rounding and off tensor cores.
    let st = run_variant(DType::F32, "ieee", (32, 32, 32), (40, 40, 40), 4, 2e-4);
    assert_eq!(st.mma, 0);
}

#[test]
fn matmul_assembles_without_spills() {
    for defs in
        [[("BM", "32"), ("BN", "32"), ("BK", "32")], [("BM", "64"), ("BN", "64"), ("BK", "32")]]
    {
        let m = compile("matmul.tk", &defs);
        for warps in [4, 8] {
            assemble_all(&m, &Options { num_warps: warps, ..Default::default() }, "matmul");
        }
    }
    for (dt, p) in [("bf16", "ieee"), ("f32", "tf32")] {
        let m = compile_src(&variant(dt, p), &[("BM", "64"), ("BN", "64"), ("BK", "32")]);
        assemble_all(&m, &Options::default(), &format!("mm_{dt}_{p}"));
    }
}

/// Tensor-core dots outside the stdlib's loop shape: no accumulator, an accumulator loaded
/// from memory, an element-wise epilogue, a reduction of the product, and a dot under `if`.
#[test]
fn mma_results_flow_into_any_consumer() {
    let src = "kernel k<M: i32, N: i32, K: i32>(a: *f16, b: *f16, c: *f32, r: *f32, flag: bool) {
    let rm = arange(0, M);
    let rn = arange(0, N);
    let rk = arange(0, K);
    let at = load(a + rm[:, None] * K + rk[None, :]);
    let bt = load(b + rk[:, None] * N + rn[None, :]);
    let c_ptrs = c + rm[:, None] * N + rn[None, :];
    let mut acc = load(c_ptrs);
    if flag {
        acc = dot(at, bt, acc);
    }
    let p = dot(at, bt);
    store(c_ptrs, acc * 0.5 + p);
    store(r + rm, sum(p, axis: 1));
}
";
    for (m, n, k, w) in [(64u32, 32u32, 32u32, 4u32), (48, 24, 40, 2), (16, 8, 16, 1)] {
        let defs = [("M", m.to_string()), ("N", n.to_string()), ("K", k.to_string())];
        let d: Vec<(&str, &str)> = defs.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let module = compile_src(src, &d);
        for flag in [0, 1] {
            let (m, n, k) = (m as usize, n as usize, k as usize);
            let out = check(
                &module,
                "k",
                [1, 1, 1],
                &[
                    TArg::Rand(DType::F16, m * k),
                    TArg::Rand(DType::F16, k * n),
                    TArg::Rand(DType::F32, m * n),
                    TArg::Zeros(DType::F32, m),
                    TArg::Bool(flag == 1),
                ],
                &Options { num_warps: w, ..Default::default() },
                7 + flag,
                1e-5,
            );
            assert!(out.stats.mma > 0);
        }
        assemble_all(&module, &Options { num_warps: w, ..Default::default() }, "mma_consumers");
    }
}
