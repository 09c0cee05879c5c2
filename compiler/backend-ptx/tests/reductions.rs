//! Row kernels with reductions (softmax, rmsnorm, layernorm) and MoE top-k gating on PTX:
//! in-thread, butterfly and cross-warp combination, compared with the interpreter, including
//! ragged rows and blocks that are not powers of two.

mod common;

use common::*;
use tk_backend_ptx::Options;
use tk_ir::DType;

const CASES: [(u32, usize, u32); 6] =
    [(1024, 1000, 4), (1024, 1024, 8), (160, 160, 4), (160, 97, 2), (64, 33, 1), (8, 5, 4)];

#[test]
fn softmax_matches_interpreter() {
    for (block, n_cols, warps) in CASES {
        let m = compile("softmax.tk", &[("BLOCK", &block.to_string()), ("ALIGNED", "false")]);
        let rows = 3;
        let stride = n_cols + 3;
        let o = check(
            &m,
            "softmax",
            [rows, 1, 1],
            &[
                TArg::Rand(DType::F32, rows as usize * stride),
                TArg::Zeros(DType::F32, rows as usize * stride),
                TArg::I32(n_cols as i32),
                TArg::I64(stride as i64),
            ],
            &Options { num_warps: warps, ..Default::default() },
            block as u64,
            2e-6,
        );
        assert!(o.stats.shuffles > 0 || block <= 8, "{:?}", o.stats);
    }
}

#[test]
fn rmsnorm_and_layernorm_match_interpreter() {
    for (block, n_cols, warps) in CASES {
        let d = [("BLOCK", block.to_string()), ("ALIGNED", "false".to_string())];
        let d: Vec<(&str, &str)> = d.iter().map(|(a, b)| (*a, b.as_str())).collect();
        let rows = 2u32;
        let stride = n_cols;
        let opts = Options { num_warps: warps, ..Default::default() };
        let m = compile("rmsnorm.tk", &d);
        check(
            &m,
            "rmsnorm",
            [rows, 1, 1],
            &[
                TArg::Rand(DType::F32, rows as usize * stride),
                TArg::Rand(DType::F32, n_cols),
                TArg::Zeros(DType::F32, rows as usize * stride),
                TArg::I32(n_cols as i32),
                TArg::I64(stride as i64),
                TArg::F32(1e-5),
            ],
            &opts,
            3,
            1e-5,
        );
        let m = compile("layernorm.tk", &d);
        check(
            &m,
            "layernorm",
            [rows, 1, 1],
            &[
                TArg::Rand(DType::F32, rows as usize * stride),
                TArg::Rand(DType::F32, n_cols),
                TArg::Rand(DType::F32, n_cols),
                TArg::Zeros(DType::F32, rows as usize * stride),
                TArg::I32(n_cols as i32),
                TArg::I64(stride as i64),
                TArg::F32(1e-5),
            ],
            &opts,
            4,
            1e-5,
        );
    }
}

#[test]
fn topk_gating_matches_interpreter() {
    for (block_e, n_experts, k, renorm, warps) in [
        (64, 64, 8, "false", 4),
        (64, 60, 2, "true", 4),
        (256, 160, 8, "true", 4),
        (8, 8, 8, "false", 1),
    ] {
        let m = compile(
            "moe_gating.tk",
            &[("BLOCK_E", &block_e.to_string()), ("K", &k.to_string()), ("RENORM", renorm)],
        );
        let tokens = 5usize;
        let stride = n_experts + 1;
        // Repeated logits make ties, which must resolve to the lower expert id.
        let mut logits: Vec<f32> =
            (0..tokens * stride).map(|i| ((i * 7919) % 13) as f32 * 0.25).collect();
        logits[3] = f32::NEG_INFINITY;
        check(
            &m,
            "topk_gating",
            [tokens as u32, 1, 1],
            &[
                TArg::F32s(logits),
                TArg::Zeros(DType::F32, tokens * k),
                TArg::Zeros(DType::I32, tokens * k),
                TArg::I32(n_experts as i32),
                TArg::I64(stride as i64),
            ],
            &Options { num_warps: warps, ..Default::default() },
            9,
            2e-6,
        );
    }
}

#[test]
fn row_kernels_assemble_without_spills() {
    for (file, defs) in [
        ("softmax.tk", vec![("BLOCK", "1024")]),
        ("softmax.tk", vec![("BLOCK", "160")]),
        ("rmsnorm.tk", vec![("BLOCK", "1024")]),
        ("layernorm.tk", vec![("BLOCK", "1536")]),
        ("moe_gating.tk", vec![("BLOCK_E", "256"), ("K", "8")]),
    ] {
        let m = compile(file, &defs);
        for warps in [4, 8] {
            assemble_all(&m, &Options { num_warps: warps, ..Default::default() }, file);
        }
    }
}
