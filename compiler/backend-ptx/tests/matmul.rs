//! `dot` on PTX (FMA path through shared memory) for the stdlib matmuls, with ragged M, N, K and
//! tiles that are not powers of two, against the interpreter.

mod common;

use common::*;
use tk_backend_ptx::Options;
use tk_ir::DType;

fn run(kernel: &str, dt: DType, tiles: (u32, u32, u32), mnk: (usize, usize, usize), warps: u32) {
    let (bm, bn, bk) = tiles;
    let (m_, n_, k_) = mnk;
    let m = compile(
        "matmul.tk",
        &[("BM", &bm.to_string()), ("BN", &bn.to_string()), ("BK", &bk.to_string())],
    );
    check(
        &m,
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
        // f32 accumulation of K products of magnitude up to 16, against f64 in the interpreter.
        if dt == DType::F32 { 2e-4 } else { 1e-5 },
    );
}

#[test]
fn matmul_f32_matches_interpreter() {
    run("matmul", DType::F32, (32, 32, 32), (64, 64, 64), 4);
    run("matmul", DType::F32, (32, 32, 32), (45, 37, 70), 4);
    run("matmul", DType::F32, (16, 24, 8), (33, 50, 19), 2);
    run("matmul", DType::F32, (64, 64, 16), (70, 65, 17), 8);
}

#[test]
fn matmul_f16_matches_interpreter() {
    run("matmul_f16", DType::F16, (64, 64, 32), (64, 128, 64), 4);
    run("matmul_f16", DType::F16, (64, 64, 32), (50, 70, 45), 4);
    run("matmul_f16", DType::F16, (32, 16, 16), (40, 20, 33), 1);
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
}
