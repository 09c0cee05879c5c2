//! Element-wise stdlib kernels on PTX: ptxas-clean for sm_80/sm_90, vectorised where the axis
//! analysis allows, and equal to the interpreter on seeded inputs (ragged sizes included).

mod common;

use common::*;
use tk_backend_ptx::Options;
use tk_ir::DType;

fn cdiv(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

#[test]
fn vector_add_matches_interpreter() {
    for (block, n, warps) in [
        (1024, 5000, 4),
        (1024, 4096, 4),
        (160, 1000, 4),
        (160, 321, 2),
        (64, 70, 1),
        (256, 256, 8),
    ] {
        let m = compile("vector_add.tk", &[("BLOCK", &block.to_string())]);
        let opts = Options { num_warps: warps, ..Default::default() };
        let o = check(
            &m,
            "vector_add",
            [cdiv(n, block), 1, 1],
            &[
                TArg::Rand(DType::F32, n),
                TArg::Rand(DType::F32, n),
                TArg::Zeros(DType::F32, n),
                TArg::I64(n as i64),
            ],
            &opts,
            n as u64,
            0.0,
        );
        if block == 1024 {
            assert!(o.stats.loads[4] > 0 && o.stats.stores[4] > 0, "{:?}", o.stats);
            assert!(o.ptx.contains("ld.global.v4.f32"));
        }
    }
}

#[test]
fn activations_match_interpreter() {
    for kernel in ["gelu_kernel", "silu_kernel"] {
        for (block, n) in [(1024, 3000), (160, 500)] {
            let m = compile("activations.tk", &[("BLOCK", &block.to_string())]);
            check(
                &m,
                kernel,
                [cdiv(n, block), 1, 1],
                &[TArg::Rand(DType::F32, n), TArg::Zeros(DType::F32, n), TArg::I64(n as i64)],
                &Options::default(),
                7,
                2e-6,
            );
        }
    }
}

#[test]
fn elementwise_kernels_assemble_without_spills() {
    for file in ["vector_add.tk", "activations.tk"] {
        for block in ["1024", "160"] {
            let m = compile(file, &[("BLOCK", block)]);
            assemble_all(&m, &Options::default(), &format!("{file}-{block}"));
        }
    }
}
