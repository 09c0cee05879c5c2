//! `topk` and `sort` on the vector unit of 910B (Sort32 + MrgSort passes) against the
//! interpreter: ascending and descending, ties (lower index first), rows longer than one merge
//! pass, f16, and rows holding NaN or infinities, which go to the scalar selection.

mod common;

use common::{check_all, Case, TArg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_backend_ascend::{AscendOptions, Soc};
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

const SORTS: &str = r#"
kernel sort_rows<BLOCK: i32 = 600, DESC: bool = true>(x: *f32, y: *f32, ix: *i32, n: i32) {
    let r = program_id(0) as i64;
    let c = arange(0, BLOCK);
    let v = load(x + r * BLOCK + c, mask: c < n, other: 0.0);
    let (s, i) = sort(v, descending: DESC);
    store(y + r * BLOCK + c, s);
    store(ix + r * BLOCK + c, i);
}

kernel topk_rows<BLOCK: i32 = 600, K: i32 = 10>(x: *f16, y: *f16, ix: *i32) {
    let r = program_id(0) as i64;
    let c = arange(0, BLOCK);
    let v = load(x + r * BLOCK + c);
    let (s, i) = topk(v, K);
    let o = arange(0, K);
    store(y + r * K + o, s);
    store(ix + r * K + o, i);
}
"#;

fn source() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sorts.tk");
    std::fs::write(&p, SORTS).unwrap();
    let s = p.to_str().unwrap().to_string();
    (dir, s)
}

/// Rows of 600: random values, many ties (values from a small set), then NaN and infinities.
fn rows(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut x: Vec<f32> = (0..600).map(|_| rng.gen_range(-100.0..100.0)).collect();
    x.extend((0..600).map(|_| (rng.gen_range(0..5) as f32) - 2.0));
    let mut special: Vec<f32> = (0..600).map(|_| rng.gen_range(-1.0..1.0)).collect();
    special[7] = f32::NAN;
    special[100] = f32::INFINITY;
    special[300] = f32::NEG_INFINITY;
    x.extend(special);
    let mut inf: Vec<f32> = (0..600).map(|_| rng.gen_range(0..3) as f32).collect();
    inf[0] = f32::INFINITY;
    inf[599] = f32::INFINITY;
    x.extend(inf);
    x
}

#[test]
fn sort_and_topk_match_the_interpreter_on_the_vector_unit() {
    let (_dir, path) = source();
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let x = rows(&mut rng);
    let nrows = x.len() / 600;
    for desc in ["true", "false"] {
        let defines: Vec<(&str, &str)> = vec![("DESC", desc)];
        let defines: &'static [(&'static str, &'static str)] =
            Box::leak(defines.into_boxed_slice());
        // n = 600 (whole rows, 19 groups of 32 and three merge passes) and n = 37 (a masked
        // tail: the zeros fill the rest of the block and tie with each other).
        let cases: Vec<Case> = [600i64, 37]
            .iter()
            .map(|&n| Case {
                file: &path,
                kernel: "sort_rows",
                defines,
                args: vec![
                    TArg::Buf(Buffer::from_slice(&x)),
                    TArg::Buf(Buffer::from_slice(&vec![-7.0f32; x.len()])),
                    TArg::Buf(Buffer::from_slice(&vec![-1i32; x.len()])),
                    TArg::Scalar(DType::I32, ConstValue::Int(n)),
                ],
                grid: [nrows as u32, 1, 1],
                block_dim: 2,
                rtol: 0.0,
                atol: 0.0,
            })
            .collect();
        let stats = check_all(&cases, &AscendOptions::default());
        // Two of the four rows are finite: one Sort32 and three merge passes each (19 runs of
        // 32 -> 5 runs in 5 merges -> 2 runs in 1 merge and a copy -> 1 run in 1 merge); the
        // rows with NaN or infinities are selected on the scalar unit.
        assert_eq!(stats[0].sort, 2 * (1 + 5 + 1 + 1), "{:?}", stats[0]);
    }
    let xh: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
    let case = Case {
        file: &path,
        kernel: "topk_rows",
        defines: &[],
        args: vec![
            TArg::Buf(Buffer::from_slice(&xh)),
            TArg::Buf(Buffer::from_slice(&vec![half::f16::from_f32(-7.0); nrows * 10])),
            TArg::Buf(Buffer::from_slice(&vec![-1i32; nrows * 10])),
        ],
        grid: [nrows as u32, 1, 1],
        block_dim: 3,
        rtol: 0.0,
        atol: 0.0,
    };
    let st = check_all(&[case], &AscendOptions::default());
    assert!(st[0].sort > 0);
}

#[test]
fn the_vector_sort_is_chosen_on_910b_only() {
    let (_dir, path) = source();
    let m = common::compile(std::path::Path::new(&path), &[]);
    let out = tk_backend_ascend::compile_module(&m, &AscendOptions::default()).unwrap();
    assert!(out.kernels.iter().all(|k| k.kernel_cpp.contains("if (!tk_vsort_row<")));
    let out = tk_backend_ascend::compile_module(
        &m,
        &AscendOptions { soc: Soc::Ascend310P, double_buffer: true },
    )
    .unwrap();
    assert!(out.kernels.iter().all(|k| !k.kernel_cpp.contains("if (!tk_vsort_row<")));
    assert!(out.remarks.iter().any(|d| d.code == "RA007" && d.message.contains("no Sort32")));
}
