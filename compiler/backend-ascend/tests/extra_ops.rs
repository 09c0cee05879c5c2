//! The ops Ascend lowers on the scalar unit or through DMA atomics: `cumsum` (both directions,
//! f32 and i32), `reduce`/`scan` with combine functions, `histogram`, and `atomic_add`/
//! `atomic_max` (scalar, whole rows, scattered) from several cores into one buffer, against the
//! interpreter; atomics Ascend cannot do are errors at the `.tk` line.

mod common;

use common::{check_all, Case, TArg};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_backend_ascend::{AscendOptions, Soc};
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

const OPS: &str = r#"
fn mx(a, b) { maximum(a, b) }
fn mul(a, b) { a * b }

kernel scans<R: i32 = 4, C: i32 = 40>(x: *f32, k: *i32, ys: *f32, yr: *f32, yi: *i32, ym: *f32, yp: *f32, red: *f32) {
    let r = arange(0, R);
    let c = arange(0, C);
    let off = (program_id(0) * R + r)[:, None] * C + c[None, :];
    let v = load(x + off);
    let n = load(k + off);
    store(ys + off, cumsum(v, axis: 1));
    store(yr + off, cumsum(v, axis: 0, reverse: true));
    store(yi + off, cumsum(n, axis: 1));
    store(ym + off, scan(v, axis: 1, combine: mx));
    store(yp + off, scan(v * 0.5 + 1.0, axis: 0, combine: mul));
    store(red + program_id(0) * C + c, reduce(v, axis: 0, combine: mx));
}

kernel hist<N: i32 = 100, B: i32 = 24>(ids: *i32, counts: *i32, n: i32) {
    let j = program_id(0) * N + arange(0, N);
    let v = load(ids + j, mask: j < n, other: 0);
    store(counts + program_id(0) * B + arange(0, B), histogram(v, B, mask: j < n));
}

kernel atomics<N: i32 = 64, B: i32 = 24>(x: *f32, ids: *i32, total: *f32, rows: *f32, bins: *f32, best: *i32, n: i32) {
    let j = program_id(0) * N + arange(0, N);
    let m = j < n;
    let v = load(x + j, mask: m, other: 0.0);
    let id = load(ids + j, mask: m, other: 0);
    atomic_add(total, sum(v, axis: 0));
    atomic_add(rows + arange(0, N), v, mask: m);
    atomic_add(bins + id, v, mask: m);
    atomic_max(best + id, j, mask: m);
}
"#;

fn source() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ops.tk");
    std::fs::write(&p, OPS).unwrap();
    let s = p.to_str().unwrap().to_string();
    (dir, s)
}

fn f32s(rng: &mut ChaCha8Rng, n: usize) -> Buffer {
    Buffer::from_slice(&(0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect::<Vec<_>>())
}

#[test]
fn scans_reductions_with_combine_and_histograms_match_the_interpreter() {
    let (_dir, path) = source();
    let mut rng = ChaCha8Rng::seed_from_u64(51);
    let (progs, r, c) = (3usize, 4usize, 40usize);
    let n = progs * r * c;
    let ints: Vec<i32> = (0..n).map(|_| rng.gen_range(-1000..1000)).collect();
    let scans = Case {
        file: &path,
        kernel: "scans",
        defines: &[],
        args: vec![
            TArg::Buf(f32s(&mut rng, n)),
            TArg::Buf(Buffer::from_slice(&ints)),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; n])),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; n])),
            TArg::Buf(Buffer::from_slice(&vec![-7i32; n])),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; n])),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; n])),
            TArg::Buf(Buffer::from_slice(&vec![-7.0f32; progs * c])),
        ],
        grid: [progs as u32, 1, 1],
        block_dim: 2,
        // Same operations in the same order as the interpreter.
        rtol: 0.0,
        atol: 0.0,
    };
    check_all(&[scans], &AscendOptions::default());

    let total = 250usize;
    let ids: Vec<i32> = (0..total).map(|_| rng.gen_range(-3..27)).collect();
    let hist = Case {
        file: &path,
        kernel: "hist",
        defines: &[],
        args: vec![
            TArg::Buf(Buffer::from_slice(&ids)),
            TArg::Buf(Buffer::from_slice(&vec![-1i32; 3 * 24])),
            TArg::Scalar(DType::I32, ConstValue::Int(total as i64)),
        ],
        grid: [3, 1, 1],
        block_dim: 2,
        rtol: 0.0,
        atol: 0.0,
    };
    check_all(&[hist], &AscendOptions::default());
}

#[test]
fn atomics_from_several_cores_match_the_interpreter() {
    let (_dir, path) = source();
    let mut rng = ChaCha8Rng::seed_from_u64(52);
    let n = 300usize;
    // Values on a grid of 1/8 so that f32 sums are exact in any order.
    let x: Vec<f32> = (0..n).map(|_| rng.gen_range(-64..64) as f32 / 8.0).collect();
    let ids: Vec<i32> = (0..n).map(|_| rng.gen_range(0..24)).collect();
    let case = Case {
        file: &path,
        kernel: "atomics",
        defines: &[],
        args: vec![
            TArg::Buf(Buffer::from_slice(&x)),
            TArg::Buf(Buffer::from_slice(&ids)),
            TArg::Buf(Buffer::from_slice(&[1.5f32])),
            TArg::Buf(Buffer::from_slice(&[0.25f32; 64])),
            TArg::Buf(Buffer::from_slice(&[0.0f32; 24])),
            TArg::Buf(Buffer::from_slice(&[-1i32; 24])),
            TArg::Scalar(DType::I32, ConstValue::Int(n as i64)),
        ],
        grid: [n.div_ceil(64) as u32, 1, 1],
        block_dim: 3,
        rtol: 0.0,
        atol: 0.0,
    };
    check_all(&[case], &AscendOptions::default());
}

#[test]
fn atomics_ascend_cannot_do_are_errors_at_the_line() {
    let src = "kernel k(p: *i32, q: *i32) {\n    let old = atomic_add(p, 1);\n    store(q, old);\n}\n\nkernel x(p: *i32) {\n    atomic_xchg(p, 3);\n}\n";
    let c = tk_driver::compile_source("k.tk", src, &Default::default());
    assert!(!c.has_errors(), "{}", c.render_plain());
    let m = c.optimized.clone().unwrap();
    let diags = tk_backend_ascend::compile_module(&m, &AscendOptions::default()).unwrap_err();
    let text = tk_diag::render_plain(&c.sources, &diags);
    assert!(
        text.contains("EA034") && text.contains("k.tk:2") && text.contains("return nothing"),
        "{text}"
    );
    assert!(text.contains("atomic_xchg is not available") && text.contains("k.tk:7"), "{text}");
    let on310 = tk_backend_ascend::compile_module(
        &m,
        &AscendOptions { soc: Soc::Ascend310P, double_buffer: true },
    )
    .unwrap_err();
    assert!(!on310.is_empty());
}
