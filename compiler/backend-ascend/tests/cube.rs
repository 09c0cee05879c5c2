//! The cube path of `dot` (910B): which kernels take it, what it emits, its compile-time
//! capacity check, and runs in the simulation against the interpreter for the cases the stdlib
//! matmuls do not cover (bf16 inputs with an f16 result, tiles that are not multiples of 16,
//! gathered rows, an empty k loop).

mod common;

use common::{check, check_all, Case, TArg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use tk_backend_ascend::{AscendOptions, Soc};
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

fn emit(
    file: &str,
    defines: &[(&str, &str)],
    soc: Soc,
) -> (tk_driver::Compilation, Result<tk_backend_ascend::AscendOutput, Vec<tk_diag::Diagnostic>>) {
    let opts = tk_driver::CompileOptions {
        defines: defines.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect(),
        ..Default::default()
    };
    let c = tk_driver::compile_file(&common::stdlib(file), &opts);
    assert!(!c.has_errors(), "{}", c.render_plain());
    let m = c.optimized.clone().unwrap();
    let r = tk_backend_ascend::compile_module(&m, &AscendOptions { soc, double_buffer: true });
    (c, r)
}

fn i32s(v: i64) -> TArg {
    TArg::Scalar(DType::I32, ConstValue::Int(v))
}

/// Writes a kernel source to a temporary file (kept alive by the returned guard).
fn source(name: &str, text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let p = path.to_str().unwrap().to_string();
    (dir, p)
}

#[test]
fn stdlib_matmuls_run_on_the_cube_of_910b_and_on_the_vector_unit_of_310p() {
    let (_, r) = emit("matmul.tk", &[], Soc::Ascend910B);
    let out = r.unwrap_or_else(|d| panic!("{d:#?}"));
    for k in &out.kernels {
        assert!(k.cube, "{} should run on the cube", k.name);
        assert_eq!(k.ub_bytes, 0);
        for needle in [
            "KERNEL_TASK_TYPE_DEFAULT(KERNEL_TYPE_AIC_ONLY)",
            "AscendC::Nd2NzParams(",
            "AscendC::LoadData(",
            "AscendC::Mmad(",
            "AscendC::Fixpipe<float, float, AscendC::CFG_ROW_MAJOR>(",
            "TPosition::CO1",
        ] {
            assert!(k.kernel_cpp.contains(needle), "{}: no `{needle}`", k.name);
        }
        assert!(!k.kernel_cpp.contains("VECIN") && !k.kernel_cpp.contains("Axpy"));
        assert!(k.host_cpp.contains("_CORES = 24;"), "cube kernels launch on the 24 AIC");
    }
    // f32 right operands go through the transposing load of 16x16 squares.
    let f32k = out.kernels.iter().find(|k| k.name == "matmul").unwrap();
    assert!(f32k.kernel_cpp.contains("AscendC::LoadDataWithTranspose("));
    assert!(!out.remarks.iter().any(|d| d.code == "RA008"), "{:#?}", out.remarks);

    let (_, r) = emit("matmul.tk", &[], Soc::Ascend310P);
    let out = r.unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(out.kernels.iter().all(|k| !k.cube && k.kernel_cpp.contains("Axpy")));
    let ra008: Vec<_> = out.remarks.iter().filter(|d| d.code == "RA008").collect();
    assert_eq!(ra008.len(), 2, "{:#?}", out.remarks);
    assert!(ra008[0].notes.iter().any(|n| n.contains("Fixpipe")), "{:#?}", ra008[0]);
}

const SCALED: &str = r#"
kernel mm<BM: i32 = 32, BN: i32 = 32, BK: i32 = 32>(a: *f16, b: *f16, c: *f32, M: i32, N: i32, K: i32, alpha: f32) {
    let rm = program_id(0) * BM + arange(0, BM);
    let rn = program_id(1) * BN + arange(0, BN);
    let rk = arange(0, BK);
    let mut acc = zeros([BM, BN], f32);
    for k in range(0, K, BK) {
        let ka = k + rk;
        let a_tile = load(a + (rm[:, None] as i64) * K + ka[None, :], mask: rm[:, None] < M && ka[None, :] < K, other: 0.0);
        let b_tile = load(b + (ka[:, None] as i64) * N + rn[None, :], mask: ka[:, None] < K && rn[None, :] < N, other: 0.0);
        acc = dot(a_tile, b_tile, acc);
    }
    store(c + (rm[:, None] as i64) * N + rn[None, :], acc * alpha, mask: rm[:, None] < M && rn[None, :] < N);
}
"#;

#[test]
fn kernels_with_vector_work_keep_the_vector_dot_with_a_remark() {
    // The epilogue `acc * alpha` needs the vector unit, which the cube core does not have.
    let (_dir, path) = source("mm_scaled.tk", SCALED);
    let m = common::compile(std::path::Path::new(&path), &[]);
    let out = tk_backend_ascend::compile_module(&m, &AscendOptions::default())
        .unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(!out.kernels[0].cube);
    let d = out.remarks.iter().find(|d| d.code == "RA008").expect("RA008 remark");
    assert!(d.notes.iter().any(|n| n.contains("`mul`") && n.contains("vector unit")), "{d:#?}");
}

#[test]
fn tiles_too_large_for_l0c_are_a_compile_error_at_the_dot() {
    // 256 x 256 f32 accumulator = 256 KB > the 128 KB L0C of a 910B.
    let (c, r) = emit("matmul.tk", &[("BM", "256"), ("BN", "256"), ("BK", "32")], Soc::Ascend910B);
    let diags = r.expect_err("must not fit");
    let text = tk_diag::render_plain(&c.sources, &diags);
    eprintln!("{text}");
    assert!(text.contains("EA101") && text.contains("L0C"), "{text}");
    assert!(text.contains("131072"), "names the capacity: {text}");
    assert!(text.contains("acc = dot(a_tile, b_tile, acc)"), "points at the dot: {text}");
    // Tiles that fit double-buffered only singly fall back with a remark.
    let (_, r) = emit("matmul.tk", &[("BM", "160"), ("BN", "160"), ("BK", "32")], Soc::Ascend910B);
    let out = r.unwrap_or_else(|d| panic!("{d:#?}"));
    assert!(out.kernels[0].cube && !out.kernels[0].double_buffered);
    assert!(out.remarks.iter().any(|d| d.code == "RA010"), "{:#?}", out.remarks);
}

#[test]
fn f32_tiles_that_are_not_multiples_of_16_and_an_empty_k_loop() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let defines: &[(&str, &str)] = &[("BM", "24"), ("BN", "40"), ("BK", "24")];
    let mut cases = Vec::new();
    for &(m, n, k) in &[(50usize, 70usize, 61usize), (24, 40, 0), (5, 3, 7)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        cases.push(Case {
            file: "matmul.tk",
            kernel: "matmul",
            defines,
            args: vec![
                TArg::Buf(Buffer::from_slice(&a)),
                TArg::Buf(Buffer::from_slice(&b)),
                TArg::Buf(Buffer::from_slice(&vec![-7.0f32; m * n])),
                i32s(m as i64),
                i32s(n as i64),
                i32s(k as i64),
            ],
            grid: [m.div_ceil(24) as u32, n.div_ceil(40) as u32, 1],
            block_dim: 2,
            rtol: 1e-5,
            atol: 1e-5,
        });
    }
    let stats = check_all(&cases, &AscendOptions::default());
    assert!(stats[0].gm_to_l1 > 0 && stats[0].l0c_to_gm == 50 * 70 * 4);
    // K = 0: nothing is accumulated; the zeros are written on the scalar unit.
    assert_eq!((stats[1].gm_to_l1, stats[1].gm_scalar_write), (0, 24 * 40 * 4));
}

const BF16_TO_F16: &str = r#"
kernel mm<BM: i32 = 32, BN: i32 = 48, BK: i32 = 32>(a: *bf16, b: *bf16, c: *f16, M: i32, N: i32, K: i32) {
    let rm = program_id(0) * BM + arange(0, BM);
    let rn = program_id(1) * BN + arange(0, BN);
    let rk = arange(0, BK);
    let mut acc = zeros([BM, BN], f32);
    for k in range(0, K, BK) {
        let ka = k + rk;
        let a_tile = load(a + (rm[:, None] as i64) * K + ka[None, :], mask: rm[:, None] < M && ka[None, :] < K, other: 0.0);
        let b_tile = load(b + (ka[:, None] as i64) * N + rn[None, :], mask: ka[:, None] < K && rn[None, :] < N, other: 0.0);
        acc = dot(a_tile, b_tile, acc);
    }
    store(c + (rm[:, None] as i64) * N + rn[None, :], acc as f16, mask: rm[:, None] < M && rn[None, :] < N);
}
"#;

#[test]
fn bf16_inputs_with_an_f16_result_through_fixpipe() {
    let (_dir, path) = source("mm_bf16.tk", BF16_TO_F16);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let (m, n, k) = (45usize, 100usize, 70usize);
    let a: Vec<half::bf16> =
        (0..m * k).map(|_| half::bf16::from_f32(rng.gen_range(-1.0..1.0))).collect();
    let b: Vec<half::bf16> =
        (0..k * n).map(|_| half::bf16::from_f32(rng.gen_range(-1.0..1.0))).collect();
    let case = Case {
        file: &path,
        kernel: "mm",
        defines: &[],
        args: vec![
            TArg::Buf(Buffer::from_slice(&a)),
            TArg::Buf(Buffer::from_slice(&b)),
            TArg::Buf(Buffer::from_slice(&vec![half::f16::from_f32(-7.0); m * n])),
            i32s(m as i64),
            i32s(n as i64),
            i32s(k as i64),
        ],
        grid: [m.div_ceil(32) as u32, n.div_ceil(48) as u32, 1],
        block_dim: 3,
        // The f32 sums are exact products summed in a different order than the interpreter's;
        // one f16 ulp of difference after rounding is possible.
        rtol: 2e-3,
        atol: 2e-3,
    };
    let st = check(&case, &AscendOptions::default());
    assert_eq!(st.l0c_to_gm, (m * n * 2) as u64, "f16 results leave through Fixpipe");
    let m2 = common::compile(std::path::Path::new(&path), &[]);
    let out = tk_backend_ascend::compile_module(&m2, &AscendOptions::default()).unwrap();
    assert!(out.kernels[0].kernel_cpp.contains("QuantMode_t::F322F16"));
}

const GATHERED: &str = r#"
// Rows of A and C visited in a scrambled order ((r * 5) % M): not affine, so every row is copied
// (and written back) on its own.
kernel mm<BM: i32 = 16, BN: i32 = 32, BK: i32 = 32>(a: *f16, b: *f16, c: *f32, M: i32, N: i32, K: i32) {
    let rm = program_id(0) * BM + arange(0, BM);
    let rs = (rm * 5) % M;
    let rn = program_id(1) * BN + arange(0, BN);
    let rk = arange(0, BK);
    let mut acc = zeros([BM, BN], f32);
    for k in range(0, K, BK) {
        let ka = k + rk;
        let a_tile = load(a + (rs[:, None] as i64) * K + ka[None, :], mask: rm[:, None] < M && ka[None, :] < K, other: 0.0);
        let b_tile = load(b + (ka[:, None] as i64) * N + rn[None, :], mask: ka[:, None] < K && rn[None, :] < N, other: 0.0);
        acc = dot(a_tile, b_tile, acc);
    }
    store(c + (rs[:, None] as i64) * N + rn[None, :], acc, mask: rm[:, None] < M && rn[None, :] < N);
}
"#;

#[test]
fn gathered_rows_are_copied_one_by_one() {
    let (_dir, path) = source("mm_gather.tk", GATHERED);
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    let (m, n, k) = (37usize, 50usize, 40usize);
    let a: Vec<half::f16> =
        (0..m * k).map(|_| half::f16::from_f32(rng.gen_range(-1.0..1.0))).collect();
    let b: Vec<half::f16> =
        (0..k * n).map(|_| half::f16::from_f32(rng.gen_range(-1.0..1.0))).collect();
    let case = Case {
        file: &path,
        kernel: "mm",
        defines: &[],
        args: vec![
            TArg::Buf(Buffer::from_slice(&a)),
            TArg::Buf(Buffer::from_slice(&b)),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; m * n])),
            i32s(m as i64),
            i32s(n as i64),
            i32s(k as i64),
        ],
        grid: [m.div_ceil(16) as u32, n.div_ceil(32) as u32, 1],
        block_dim: 3,
        rtol: 1e-5,
        atol: 1e-5,
    };
    let st = check(&case, &AscendOptions::default());
    // Every valid element crosses once per tile that needs it: A once per column of tiles, B
    // once per row of tiles.
    let want = (m * k * 2 * n.div_ceil(32) + k * n * 2 * m.div_ceil(16)) as u64;
    assert_eq!(st.gm_to_l1, want);
    assert_eq!(st.l0c_to_gm, (m * n * 4) as u64);
}
