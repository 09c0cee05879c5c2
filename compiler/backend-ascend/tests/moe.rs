//! The Mixture-of-Experts stdlib kernels on Ascend (910B), chained as one layer: routing, the
//! permutation (histogram, offsets, dispatch index, row gather), the grouped GEMM (on the cube),
//! SwiGLU, the inverse permutation and the combine. Every kernel's simulated outputs equal the
//! interpreter's; each stage gets its inputs from the interpreter's run of the previous one, so
//! that the ids, offsets and positions are the real, consistent ones.

mod common;

use common::{check_all, compile, run_interp, stdlib, Case, TArg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_backend_ascend::AscendOptions;
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

const T: usize = 37; // tokens
const E: usize = 20; // experts
const K: usize = 4; // experts per token
const N: usize = T * K; // routed rows
const HIDDEN: usize = 96;
const INTER: usize = 80;
const BLOCK: usize = 64; // permutation block (histogram and dispatch must agree)

fn i32s(v: usize) -> TArg {
    TArg::Scalar(DType::I32, ConstValue::Int(v as i64))
}
fn cdiv(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}
fn f32buf(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Buffer {
    Buffer::from_slice(&(0..n).map(|_| rng.gen_range(lo..hi)).collect::<Vec<f32>>())
}
fn poison_f32(n: usize) -> Buffer {
    Buffer::from_slice(&vec![-7.0f32; n])
}
fn poison_i32(n: usize) -> Buffer {
    Buffer::from_slice(&vec![-1i32; n])
}

/// Checks `kernel` in the simulation against the interpreter and returns the interpreter's
/// buffers (by parameter index) for the next stage.
fn stage(
    file: &'static str,
    kernel: &'static str,
    defines: &'static [(&'static str, &'static str)],
    args: Vec<TArg>,
    grid: [u32; 3],
    tol: f64,
) -> Vec<Option<Buffer>> {
    let case = Case {
        file,
        kernel,
        defines,
        args: args.clone(),
        grid,
        block_dim: 3,
        rtol: tol,
        atol: tol,
    };
    check_all(&[case], &AscendOptions::default());
    let m = compile(&stdlib(file), defines);
    run_interp(&m, kernel, &args, grid)
}

fn buf(bufs: &[Option<Buffer>], i: usize) -> Buffer {
    bufs[i].clone().expect("a buffer parameter")
}

#[test]
fn a_moe_layer_runs_on_ascend_and_matches_the_interpreter() {
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    // Routing (both variants; the sigmoid one feeds the rest).
    let logits = f32buf(&mut rng, T * E, -3.0, 3.0);
    let routing: &[(&str, &str)] = &[("BLOCK_E", "32"), ("K", "4")];
    stage(
        "moe_routing.tk",
        "softmax_topk_routing",
        routing,
        vec![
            TArg::Buf(logits.clone()),
            TArg::Buf(poison_f32(T * K)),
            TArg::Buf(poison_i32(T * K)),
            i32s(E),
            TArg::Scalar(DType::I64, ConstValue::Int(E as i64)),
            TArg::Scalar(DType::F32, ConstValue::Float(1.0)),
        ],
        [T as u32, 1, 1],
        1e-5,
    );
    let r = stage(
        "moe_routing.tk",
        "sigmoid_topk_routing",
        routing,
        vec![
            TArg::Buf(logits),
            TArg::Buf(f32buf(&mut rng, E, -0.5, 0.5)),
            TArg::Buf(poison_f32(T * K)),
            TArg::Buf(poison_i32(T * K)),
            i32s(E),
            TArg::Scalar(DType::I64, ConstValue::Int(E as i64)),
            TArg::Scalar(DType::F32, ConstValue::Float(2.5)),
        ],
        [T as u32, 1, 1],
        1e-5,
    );
    let (weights, ids) = (buf(&r, 2), buf(&r, 3));

    // Permutation.
    let perm: &[(&str, &str)] = &[("BLOCK", "64"), ("BLOCK_E", "32")];
    let nb = N.div_ceil(BLOCK);
    let h = stage(
        "moe_permute.tk",
        "expert_histogram",
        perm,
        vec![TArg::Buf(ids.clone()), TArg::Buf(poison_i32(nb * E)), i32s(N), i32s(E)],
        [nb as u32, 1, 1],
        0.0,
    );
    let o = stage(
        "moe_permute.tk",
        "expert_offsets",
        perm,
        vec![
            TArg::Buf(buf(&h, 1)),
            TArg::Buf(poison_i32(E + 1)),
            TArg::Buf(poison_i32(nb * E)),
            i32s(nb),
            i32s(E),
        ],
        [1, 1, 1],
        0.0,
    );
    let (offsets, block_base) = (buf(&o, 1), buf(&o, 2));
    let d = stage(
        "moe_permute.tk",
        "dispatch_index",
        perm,
        vec![
            TArg::Buf(ids),
            TArg::Buf(block_base),
            TArg::Buf(poison_i32(N)),
            TArg::Buf(poison_i32(N)),
            i32s(N),
            i32s(E),
        ],
        [nb as u32, 1, 1],
        0.0,
    );
    let (pos, src) = (buf(&d, 2), buf(&d, 3));
    let rows: &[(&str, &str)] = &[("BLOCK_R", "8"), ("BLOCK_H", "64")];
    let x = f32buf(&mut rng, T * HIDDEN, -1.0, 1.0);
    let p = stage(
        "moe_permute.tk",
        "permute_rows",
        rows,
        vec![
            TArg::Buf(x),
            TArg::Buf(src),
            TArg::Buf(poison_f32(N * HIDDEN)),
            i32s(N),
            i32s(HIDDEN),
            i32s(K),
        ],
        [cdiv(N, 8), cdiv(HIDDEN, 64), 1],
        0.0,
    );
    let xp = buf(&p, 2);

    // Expert MLP: gate and up projections in one grouped GEMM (cube), then SwiGLU.
    let w = f32buf(&mut rng, E * HIDDEN * 2 * INTER, -0.2, 0.2);
    let g = stage(
        "moe_grouped_gemm.tk",
        "grouped_gemm",
        &[],
        vec![
            TArg::Buf(xp.clone()),
            TArg::Buf(w),
            TArg::Buf(poison_f32(N * 2 * INTER)),
            TArg::Buf(offsets),
            i32s(E),
            i32s(2 * INTER),
            i32s(HIDDEN),
        ],
        [cdiv(N, 32) + E as u32, cdiv(2 * INTER, 64), 1],
        1e-4,
    );
    stage(
        "moe_swiglu.tk",
        "swiglu",
        &[("BLOCK_R", "4"), ("BLOCK", "64")],
        vec![TArg::Buf(buf(&g, 2)), TArg::Buf(poison_f32(N * INTER)), i32s(N), i32s(INTER)],
        [cdiv(N, 4), cdiv(INTER, 64), 1],
        1e-5,
    );

    // Back to token order, and the weighted combine (the permuted rows stand in for the down
    // projection's output).
    stage(
        "moe_permute.tk",
        "unpermute_rows",
        rows,
        vec![
            TArg::Buf(xp.clone()),
            TArg::Buf(pos.clone()),
            TArg::Buf(poison_f32(N * HIDDEN)),
            i32s(N),
            i32s(HIDDEN),
        ],
        [cdiv(N, 8), cdiv(HIDDEN, 64), 1],
        0.0,
    );
    stage(
        "moe_combine.tk",
        "combine",
        &[("BLOCK", "64")],
        vec![
            TArg::Buf(xp),
            TArg::Buf(pos),
            TArg::Buf(weights),
            TArg::Buf(poison_f32(T * HIDDEN)),
            i32s(HIDDEN),
            i32s(K),
        ],
        [T as u32, cdiv(HIDDEN, 64), 1],
        1e-5,
    );
}

#[test]
fn the_grouped_gemm_runs_on_the_cube_and_every_moe_kernel_builds_with_its_defaults() {
    let m = compile(&stdlib("moe_grouped_gemm.tk"), &[]);
    let out = tk_backend_ascend::compile_module(&m, &AscendOptions::default())
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(out.kernels[0].cube, "{:#?}", out.remarks);
    // Default block sizes (dispatch_index compares 256 x 256 ids): all fit the UB. The remarks
    // say what runs on the scalar unit (`--nocapture` shows them).
    for file in ["moe_routing.tk", "moe_permute.tk", "moe_swiglu.tk", "moe_combine.tk"] {
        let m = compile(&stdlib(file), &[]);
        let out = tk_backend_ascend::compile_module(&m, &AscendOptions::default())
            .unwrap_or_else(|d| panic!("{file}: {d:#?}"));
        for k in &out.kernels {
            eprintln!("{file} {}: {} UB bytes", k.name, k.ub_bytes);
        }
        for r in &out.remarks {
            eprintln!("  {}: {}", r.code, r.message);
        }
    }
}
