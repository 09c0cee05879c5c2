//! Every stdlib kernel, compiled from `stdlib/*.tk` with chosen `-D` values and run by the
//! reference interpreter over its whole grid on seeded random inputs, equals a reference written
//! directly in Rust (`reference/kernels.rs`: plain `f64` loops, independent of the IR).
//!
//! Each kernel is checked on at least five shapes, including sizes that are not multiples of the
//! block and blocks that are not powers of two. Outputs are poisoned buffers
//! ([`Buffer::uninit`]): every element the kernel should write must be written
//! (`RunReport::unwritten` is empty). Where a row stride leaves gaps, the gaps of the input hold
//! NaN (a kernel that read them would produce NaN) and the gaps of the output are pre-set to a
//! sentinel that must survive (a kernel that wrote them would change it).
//!
//! Tolerances (see [`assert_close`]): `f32` results within 1e-5 relative to the exact value,
//! plus an absolute floor: 1e-6 times the size of the terms combined where the kernel's formula
//! cancels (layernorm, matmul, GELU's `1 + erf`), and only a subnormal-sized 1e-36 elsewhere
//! (softmax, rmsnorm, SiLU, gating), so that a loose floor cannot hide a relative error in small
//! outputs such as softmax probabilities. Integer outputs (top-k ids) and `vector_add` (one
//! correctly rounded addition) are exact.

#[path = "reference/kernels.rs"]
mod reference;

use crate::common;

use half::f16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tk_driver::{compile_file, CompileOptions};
use tk_interp::{run_kernel, Arg, Buffer, ErrorKind, InterpError, RunOptions};
use tk_ir::{ConstValue, DType, FuncId, Module};

/// Relative tolerance for `f32` results. Each kernel applies a handful of operations, each
/// rounded once to `f32` (relative error 2^-24 ≈ 6e-8 per rounding), so honest results are
/// within a few 1e-7; 1e-5 leaves a wide margin while still catching any real mistake (a wrong
/// formula, a dropped or doubled element, a wrong mask) by orders of magnitude.
const REL: f64 = 1e-5;

/// Absolute floor for results computed by cancellation, per unit of the size of the terms
/// combined. A result near 0 obtained by cancellation (`d * inv * w + b` with `b ≈ -d * inv *
/// w`, a dot product of mixed signs, `1 + erf(x)` for very negative `x`) carries the rounding
/// error of its *terms*, not of itself, so no relative bound can hold there; 1e-6 is ~16 `f32`
/// ulps of a unit-sized term.
const ABS: f64 = 1e-6;

/// Absolute floor for results computed without cancellation (products, quotients, `exp`): only
/// a result that underflows into `f32`'s subnormals (below 1.2e-38, e.g. `exp(-100)`) loses
/// relative precision, and then by less than this. Everything else must meet [`REL`] alone.
const UNDERFLOW: f64 = 1e-36;

/// Written into the gaps of strided outputs; the kernels must leave it alone.
const SENTINEL: f32 = -777.0;

/// A kernel compiled from the stdlib.
struct Compiled {
    module: Module,
    kernel: FuncId,
    sources: tk_diag::Sources,
}

/// Compiles `kernel` from `stdlib/<file>` with `-D` overrides, through the whole pipeline.
fn compile(file: &str, kernel: &str, defines: &[(&str, String)]) -> Compiled {
    let stdlib = common::repo_root().join("stdlib");
    let opts = CompileOptions {
        defines: defines.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        kernels: vec![kernel.to_string()],
        stdlib_dir: Some(stdlib.clone()),
        ..Default::default()
    };
    let c = compile_file(&stdlib.join(file), &opts);
    assert!(!c.has_errors(), "{file} {kernel} {defines:?}:\n{}", c.render_plain());
    let module = c.optimized.expect("no errors, so the pipeline finished");
    let kernel = module.find(kernel).unwrap_or_else(|| panic!("no kernel `{kernel}` in {file}"));
    Compiled { module, kernel, sources: c.sources }
}

/// Runs the kernel over the whole grid; the run must succeed and write every poisoned element.
fn run(k: &Compiled, grid: [u32; 3], args: &[Arg], bufs: &mut [Buffer], what: &str) {
    let report = run_kernel(&k.module, k.kernel, grid, args, bufs, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{what}: the run failed:\n{}", render(k, &e)));
    assert!(report.unwritten.is_empty(), "{what}: elements left unwritten: {:?}", report.unwritten);
    assert_eq!(report.programs, grid.iter().map(|&g| g as u64).product::<u64>(), "{what}");
}

/// An interpreter error as `tkc run` shows it (with the `.tk` file and line).
fn render(k: &Compiled, e: &InterpError) -> String {
    tk_diag::render_plain(&k.sources, &[e.to_diagnostic()])
}

/// `got[i]` is within `REL * |want[i]| + floor(i)` of `want[i]` for every `i`; on failure lists
/// the first few offenders.
fn assert_close(what: &str, got: &[f32], want: &[f64], floor: impl Fn(usize) -> f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = Vec::new();
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = REL * w.abs() + floor(i);
        let ok = (g as f64 - w).abs() <= tol;
        if !ok {
            bad.push(format!(
                "[{i}] got {g:e}, want {w:e} (|diff| {:e} > tol {tol:e})",
                (g as f64 - w).abs()
            ));
        }
    }
    let n = bad.len();
    bad.truncate(8);
    assert!(n == 0, "{what}: {n} of {} elements differ:\n{}", got.len(), bad.join("\n"));
}

/// `n` values uniform in `[lo, hi)`.
fn uniform(rng: &mut ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(lo..hi)).collect()
}

/// `rows` rows of `n_cols` values uniform in `[lo, hi)` at row stride `stride`, NaN in the gaps.
fn strided_rows(
    rng: &mut ChaCha8Rng,
    rows: usize,
    n_cols: usize,
    stride: usize,
    lo: f32,
    hi: f32,
) -> Vec<f32> {
    let mut x = vec![f32::NAN; rows * stride];
    for r in 0..rows {
        for v in &mut x[r * stride..r * stride + n_cols] {
            *v = rng.gen_range(lo..hi);
        }
    }
    x
}

/// A poisoned output of `rows * stride` f32s whose gaps (columns `n_cols..stride`) already hold
/// [`SENTINEL`].
fn strided_output(rows: usize, n_cols: usize, stride: usize) -> Buffer {
    let mut b = Buffer::uninit(DType::F32, rows * stride);
    for r in 0..rows {
        for c in n_cols..stride {
            b.set(r * stride + c, ConstValue::Float(SENTINEL as f64)).expect("in range");
        }
    }
    b
}

/// Splits a strided output into its dense rows, checking that the gaps still hold the sentinel.
fn dense_rows(what: &str, y: &[f32], rows: usize, n_cols: usize, stride: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * n_cols);
    for r in 0..rows {
        out.extend_from_slice(&y[r * stride..r * stride + n_cols]);
        for c in n_cols..stride {
            assert_eq!(y[r * stride + c], SENTINEL, "{what}: gap element [{r}, {c}] was written");
        }
    }
    out
}

fn cdiv(a: usize, b: usize) -> u32 {
    a.div_ceil(b) as u32
}

#[test]
fn the_erf_reference_matches_published_values() {
    // Values from Abramowitz & Stegun / high-precision tables, to check the reference itself.
    let cases = [
        (0.5, reference::erf(0.5), 0.520_499_877_813_046_5),
        (1.0, reference::erf(1.0), 0.842_700_792_949_714_9),
        (2.0, reference::erf(2.0), 0.995_322_265_018_952_7),
        (-1.5, reference::erf(-1.5), -0.966_105_146_475_310_7),
        (2.5, reference::erfc(2.5), 4.069_520_174_449_59e-4),
        (3.0, reference::erfc(3.0), 2.209_049_699_858_544e-5),
        (5.0, reference::erfc(5.0), 1.537_459_794_428_035e-12),
        (2.4, reference::erfc(2.4), 6.885_138_966_450_786e-4),
    ];
    for (x, got, want) in cases {
        assert!(
            (got - want).abs() <= 1e-13 * want.abs(),
            "erf/erfc({x}): got {got:e}, want {want:e}"
        );
    }
}

#[test]
fn vector_add_equals_reference() {
    // (n, BLOCK): ragged tails, a single element, exact multiples, a 1-wide block.
    let shapes = [(1000, 160), (1, 160), (160, 160), (161, 160), (4097, 1024), (50, 7), (3, 1)];
    for (seed, &(n, block)) in shapes.iter().enumerate() {
        let what = format!("vector_add n={n} BLOCK={block}");
        let k = compile("vector_add.tk", "vector_add", &[("BLOCK", block.to_string())]);
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed as u64);
        let x = uniform(&mut rng, n, -100.0, 100.0);
        let y = uniform(&mut rng, n, -100.0, 100.0);
        let mut bufs =
            vec![Buffer::from_slice(&x), Buffer::from_slice(&y), Buffer::uninit(DType::F32, n)];
        let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::i64(n as i64)];
        run(&k, [cdiv(n, block), 1, 1], &args, &mut bufs, &what);
        let got = bufs[2].to_vec::<f32>().unwrap();
        // The sum of two f32s is exact in f64, and f32 addition is that sum rounded once, so the
        // kernel must match bit for bit.
        for i in 0..n {
            let want = (x[i] as f64 + y[i] as f64) as f32;
            assert_eq!(
                got[i].to_bits(),
                want.to_bits(),
                "{what}: [{i}] got {} want {want}",
                got[i]
            );
        }
    }
}

/// Runs one of the element-wise activation kernels (`x`, `y`, `n: i64`) on several shapes;
/// `floor(x)` is the absolute tolerance floor for input `x`.
fn check_activation(kernel: &str, f: fn(f64) -> f64, floor: fn(f64) -> f64, seed: u64) {
    // (n, BLOCK)
    let shapes = [(1000, 160), (1, 160), (320, 160), (100, 48), (333, 100)];
    for (s, &(n, block)) in shapes.iter().enumerate() {
        let what = format!("{kernel} n={n} BLOCK={block}");
        let k = compile("activations.tk", kernel, &[("BLOCK", block.to_string())]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + s as u64);
        let mut x = uniform(&mut rng, n, -6.0, 6.0);
        // Far tails, where GELU's `1 + erf` cancels and SiLU's sigmoid underflows.
        for (v, special) in x.iter_mut().zip([0.0, -0.0, 1.0, -1.0, 30.0, -30.0, 88.0, -88.0, -9.5])
        {
            *v = special;
        }
        let mut bufs = vec![Buffer::from_slice(&x), Buffer::uninit(DType::F32, n)];
        let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::i64(n as i64)];
        run(&k, [cdiv(n, block), 1, 1], &args, &mut bufs, &what);
        let got = bufs[1].to_vec::<f32>().unwrap();
        let want: Vec<f64> = x.iter().map(|&v| f(v as f64)).collect();
        assert_close(&what, &got, &want, |i| floor(x[i] as f64));
    }
}

#[test]
fn gelu_kernel_equals_reference() {
    // `1 + erf(x / sqrt 2)` cancels for negative `x` (the kernel rounds `erf` to f32 first), and
    // the error is then scaled by `0.5 x`.
    check_activation("gelu_kernel", reference::gelu, |x| ABS * x.abs().max(1.0), 200);
}

#[test]
fn silu_kernel_equals_reference() {
    // `x * sigmoid(x)`: no cancellation; `sigmoid(-88)` is an f32 subnormal.
    check_activation("silu_kernel", reference::silu, |_| UNDERFLOW, 300);
}

#[test]
fn softmax_equals_reference() {
    // (rows, n_cols, BLOCK, stride, lo, hi): a 1000-wide row in a 1000 block, a padded stride,
    // a single column, ragged small rows, and large logits (exp would overflow f32 without the
    // max subtraction).
    let shapes = [
        (6, 1000, 1000, 1000, -10.0, 10.0),
        (3, 1000, 1024, 1007, -10.0, 10.0),
        (5, 1, 1, 1, -10.0, 10.0),
        (4, 37, 64, 40, -3.0, 3.0),
        (7, 160, 160, 160, 80.0, 100.0),
        // Differences `x - max` up to 100: the kernel rounds each to f32 before `exp`, a
        // relative error of up to 100 * 2^-24 ≈ 6e-6 in the output, still inside REL.
        (2, 999, 1000, 999, -50.0, 50.0),
    ];
    for (s, &(rows, n_cols, block, stride, lo, hi)) in shapes.iter().enumerate() {
        let what = format!("softmax rows={rows} n_cols={n_cols} BLOCK={block} stride={stride}");
        // Strides that are multiples of 4 use the aligned (vectorisable) build, others opt out.
        let aligned = (stride % 4 == 0).to_string();
        let k =
            compile("softmax.tk", "softmax", &[("BLOCK", block.to_string()), ("ALIGNED", aligned)]);
        let mut rng = ChaCha8Rng::seed_from_u64(400 + s as u64);
        let x = strided_rows(&mut rng, rows, n_cols, stride, lo, hi);
        let mut bufs = vec![Buffer::from_slice(&x), strided_output(rows, n_cols, stride)];
        let args =
            [Arg::Buffer(0), Arg::Buffer(1), Arg::i32(n_cols as i32), Arg::i64(stride as i64)];
        run(&k, [rows as u32, 1, 1], &args, &mut bufs, &what);
        let y = bufs[1].to_vec::<f32>().unwrap();
        let got = dense_rows(&what, &y, rows, n_cols, stride);
        let want = reference::softmax(&x, rows, n_cols, stride);
        assert_close(&what, &got, &want, |_| UNDERFLOW);
    }
}

#[test]
fn softmax_with_a_stride_breaking_multiple_of_fails_clearly() {
    // The default (ALIGNED) build declares `multiple_of(stride, 4)`; the interpreter checks it.
    let k = compile("softmax.tk", "softmax", &[("BLOCK", "64".to_string())]);
    let x = vec![0.5f32; 2 * 63];
    let mut bufs = vec![Buffer::from_slice(&x), Buffer::uninit(DType::F32, 2 * 63)];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::i32(60), Arg::i64(63)];
    let e = run_kernel(&k.module, k.kernel, [2, 1, 1], &args, &mut bufs, &RunOptions::default())
        .expect_err("stride 63 is not a multiple of 4");
    match &*e.kind {
        ErrorKind::AssertFailed { message } => {
            assert_eq!(message, "`stride` must be a multiple of 4 (declared with multiple_of)")
        }
        other => panic!("expected the multiple_of assertion, got {other:?}: {e}"),
    }
}

#[test]
fn softmax_row_longer_than_block_fails_with_a_clear_device_assert() {
    let k = compile("softmax.tk", "softmax", &[("BLOCK", "64".to_string())]);
    let (rows, n_cols) = (2, 100);
    let x = vec![0.5f32; rows * n_cols];
    let mut bufs = vec![Buffer::from_slice(&x), Buffer::uninit(DType::F32, rows * n_cols)];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::i32(n_cols as i32), Arg::i64(n_cols as i64)];
    let e = run_kernel(
        &k.module,
        k.kernel,
        [rows as u32, 1, 1],
        &args,
        &mut bufs,
        &RunOptions::default(),
    )
    .expect_err("n_cols > BLOCK must fail");
    match &*e.kind {
        ErrorKind::AssertFailed { message } => assert_eq!(
            message,
            "softmax: the row is longer than BLOCK; rebuild with a larger -D BLOCK"
        ),
        other => panic!("expected a device_assert failure, got {other:?}: {e}"),
    }
    assert_eq!(e.program, Some([0, 0, 0]), "the first program fails");
    let rendered = render(&k, &e);
    assert!(
        rendered.contains("device_assert failed: softmax: the row is longer than BLOCK"),
        "{rendered}"
    );
    assert!(rendered.contains("softmax.tk:5:"), "the message names the assert's line:\n{rendered}");
    assert_eq!(bufs[1].uninit_count(), rows * n_cols, "nothing is stored before the assert");
}

#[test]
fn layernorm_equals_reference() {
    // (rows, n_cols, BLOCK, stride, eps): a full 1000 block, a 768 row in a 1000 block with a
    // padded stride, one column (variance 0: y = b), ragged small rows, a big eps.
    let shapes = [
        (4, 1000, 1000, 1000, 1e-5),
        (3, 768, 1000, 770, 1e-6),
        (5, 1, 16, 1, 1e-5),
        (6, 37, 48, 37, 1e-5),
        (3, 160, 160, 200, 0.5),
    ];
    for (s, &(rows, n_cols, block, stride, eps)) in shapes.iter().enumerate() {
        let what = format!("layernorm rows={rows} n_cols={n_cols} BLOCK={block} stride={stride}");
        // Strides that are multiples of 4 use the aligned (vectorisable) build, others opt out.
        let aligned = (stride % 4 == 0).to_string();
        let k = compile(
            "layernorm.tk",
            "layernorm",
            &[("BLOCK", block.to_string()), ("ALIGNED", aligned)],
        );
        let mut rng = ChaCha8Rng::seed_from_u64(500 + s as u64);
        let x = strided_rows(&mut rng, rows, n_cols, stride, -3.0, 5.0);
        let w = uniform(&mut rng, n_cols, 0.5, 1.5);
        let b = uniform(&mut rng, n_cols, -1.0, 1.0);
        let mut bufs = vec![
            Buffer::from_slice(&x),
            Buffer::from_slice(&w),
            Buffer::from_slice(&b),
            strided_output(rows, n_cols, stride),
        ];
        let args = [
            Arg::Buffer(0),
            Arg::Buffer(1),
            Arg::Buffer(2),
            Arg::Buffer(3),
            Arg::i32(n_cols as i32),
            Arg::i64(stride as i64),
            Arg::f32(eps),
        ];
        run(&k, [rows as u32, 1, 1], &args, &mut bufs, &what);
        let y = bufs[3].to_vec::<f32>().unwrap();
        let got = dense_rows(&what, &y, rows, n_cols, stride);
        let (want, mag) = reference::layernorm(&x, &w, &b, rows, n_cols, stride, eps);
        assert_close(&what, &got, &want, |i| ABS * mag[i]);
    }
}

#[test]
fn rmsnorm_equals_reference() {
    // (rows, n_cols, BLOCK, stride, eps)
    let shapes = [
        (4, 1000, 1000, 1000, 1e-6),
        (3, 768, 1000, 770, 1e-5),
        (5, 1, 16, 1, 1e-6),
        (6, 37, 48, 37, 1e-6),
        (3, 160, 160, 200, 0.5),
    ];
    for (s, &(rows, n_cols, block, stride, eps)) in shapes.iter().enumerate() {
        let what = format!("rmsnorm rows={rows} n_cols={n_cols} BLOCK={block} stride={stride}");
        // Strides that are multiples of 4 use the aligned (vectorisable) build, others opt out.
        let aligned = (stride % 4 == 0).to_string();
        let k =
            compile("rmsnorm.tk", "rmsnorm", &[("BLOCK", block.to_string()), ("ALIGNED", aligned)]);
        let mut rng = ChaCha8Rng::seed_from_u64(600 + s as u64);
        let x = strided_rows(&mut rng, rows, n_cols, stride, -4.0, 4.0);
        let w = uniform(&mut rng, n_cols, -1.5, 1.5);
        let mut bufs = vec![
            Buffer::from_slice(&x),
            Buffer::from_slice(&w),
            strided_output(rows, n_cols, stride),
        ];
        let args = [
            Arg::Buffer(0),
            Arg::Buffer(1),
            Arg::Buffer(2),
            Arg::i32(n_cols as i32),
            Arg::i64(stride as i64),
            Arg::f32(eps),
        ];
        run(&k, [rows as u32, 1, 1], &args, &mut bufs, &what);
        let y = bufs[2].to_vec::<f32>().unwrap();
        let got = dense_rows(&what, &y, rows, n_cols, stride);
        let want = reference::rmsnorm(&x, &w, rows, n_cols, stride, eps);
        // A product of three factors: no cancellation.
        assert_close(&what, &got, &want, |_| UNDERFLOW);
    }
}

/// (M, N, K, BM, BN, BK): ragged edges on every axis with non-power-of-two tiles, a 1x1x1
/// product, K smaller than BK, one exact tile, several k steps with a ragged last one, and a
/// larger 3x2 grid of 32x40 tiles over six k steps.
const MATMUL_SHAPES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (37, 45, 29, 16, 24, 8),
    (1, 1, 1, 16, 16, 16),
    (5, 7, 3, 8, 8, 8),
    (33, 17, 50, 12, 20, 10),
    (32, 32, 32, 32, 32, 32),
    (20, 3, 70, 16, 16, 16),
    (96, 80, 130, 32, 40, 24),
];

/// Runs `matmul` (f32 inputs) or `matmul_f16` (inputs rounded to f16 on the host) on every
/// shape of [`MATMUL_SHAPES`].
fn check_matmul(kernel: &str, f16_inputs: bool, seed: u64) {
    for (s, &(m, n, kk, bm, bn, bk)) in MATMUL_SHAPES.iter().enumerate() {
        let what = format!("{kernel} M={m} N={n} K={kk} BM={bm} BN={bn} BK={bk}");
        let defines = [("BM", bm.to_string()), ("BN", bn.to_string()), ("BK", bk.to_string())];
        let k = compile("matmul.tk", kernel, &defines);
        let mut rng = ChaCha8Rng::seed_from_u64(seed + s as u64);
        let a = uniform(&mut rng, m * kk, -1.0, 1.0);
        let b = uniform(&mut rng, kk * n, -1.0, 1.0);
        let (buf_a, buf_b, a64, b64): (Buffer, Buffer, Vec<f64>, Vec<f64>) = if f16_inputs {
            // The host rounds to f16 (nearest, ties to even); the reference uses exactly the
            // values the kernel reads.
            let ah: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
            let bh: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
            (
                Buffer::from_slice(&ah),
                Buffer::from_slice(&bh),
                ah.iter().map(|v| v.to_f64()).collect(),
                bh.iter().map(|v| v.to_f64()).collect(),
            )
        } else {
            (
                Buffer::from_slice(&a),
                Buffer::from_slice(&b),
                a.iter().map(|&v| v as f64).collect(),
                b.iter().map(|&v| v as f64).collect(),
            )
        };
        let mut bufs = vec![buf_a, buf_b, Buffer::uninit(DType::F32, m * n)];
        let args = [
            Arg::Buffer(0),
            Arg::Buffer(1),
            Arg::Buffer(2),
            Arg::i32(m as i32),
            Arg::i32(n as i32),
            Arg::i32(kk as i32),
        ];
        run(&k, [cdiv(m, bm), cdiv(n, bn), 1], &args, &mut bufs, &what);
        let got = bufs[2].to_vec::<f32>().unwrap();
        let (want, mag) = reference::matmul(&a64, &b64, m, n, kk);
        // Term size: sum |a b| over k, since the accumulator is rounded to f32 after every k
        // step and mixed-sign products cancel.
        assert_close(&what, &got, &want, |i| ABS * mag[i]);
    }
}

#[test]
fn matmul_equals_reference() {
    check_matmul("matmul", false, 700);
}

#[test]
fn matmul_f16_equals_reference() {
    check_matmul("matmul_f16", true, 800);
}

/// Runs `topk_gating` on `tokens` rows of `logits` (row stride `stride`) and checks the weights
/// (within tolerance) and the expert ids (exactly) against the reference.
#[allow(clippy::too_many_arguments)]
fn check_gating(
    what: &str,
    logits: &[f32],
    tokens: usize,
    n_experts: usize,
    stride: usize,
    block_e: usize,
    k: usize,
    renorm: bool,
) -> (Vec<f32>, Vec<i32>) {
    let defines =
        [("BLOCK_E", block_e.to_string()), ("K", k.to_string()), ("RENORM", renorm.to_string())];
    let kern = compile("moe_gating.tk", "topk_gating", &defines);
    let mut bufs = vec![
        Buffer::from_slice(logits),
        Buffer::uninit(DType::F32, tokens * k),
        Buffer::uninit(DType::I32, tokens * k),
    ];
    let args = [
        Arg::Buffer(0),
        Arg::Buffer(1),
        Arg::Buffer(2),
        Arg::i32(n_experts as i32),
        Arg::i64(stride as i64),
    ];
    run(&kern, [tokens as u32, 1, 1], &args, &mut bufs, what);
    let weights = bufs[1].to_vec::<f32>().unwrap();
    let ids = bufs[2].to_vec::<i32>().unwrap();
    let (want_w, want_ids) = reference::topk_gating(logits, tokens, n_experts, stride, k, renorm);
    assert_eq!(ids, want_ids, "{what}: expert ids");
    // Quotients of exps: no cancellation.
    assert_close(what, &weights, &want_w, |_| UNDERFLOW);
    (weights, ids)
}

#[test]
fn topk_gating_equals_reference() {
    // (E, BLOCK_E, K, stride): E=160 (not a power of two), E=8 with every K, E=256, fewer
    // experts than BLOCK_E (masked lanes must never be chosen), a padded row stride.
    let mut configs =
        vec![(160, 160, 6, 160), (256, 256, 8, 256), (100, 128, 4, 100), (60, 64, 2, 67)];
    configs.extend((1..=8).map(|k| (8, 8, k, 8)));
    let tokens = 12;
    let mut seed = 900;
    for &(e, block_e, k, stride) in &configs {
        for renorm in [false, true] {
            seed += 1;
            let what = format!(
                "topk_gating E={e} BLOCK_E={block_e} K={k} stride={stride} RENORM={renorm}"
            );
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let logits = strided_rows(&mut rng, tokens, e, stride, -4.0, 4.0);
            check_gating(&what, &logits, tokens, e, stride, block_e, k, renorm);
        }
    }
}

#[test]
fn topk_gating_orders_equal_probabilities_by_lower_expert_id() {
    // Equal logits give bit-identical probabilities, so only the tie rule decides the order:
    // the lower expert id comes first. Expected ids are worked out by hand.
    let logits: Vec<f32> = vec![1.0, 3.0, 3.0, 0.0, 3.0, 1.0, -2.0, 3.0];
    for (k, want) in [
        (2, vec![1, 2]),
        (4, vec![1, 2, 4, 7]),
        (6, vec![1, 2, 4, 7, 0, 5]),
        (8, vec![1, 2, 4, 7, 0, 5, 3, 6]),
    ] {
        let what = format!("ties E=8 K={k}");
        let (_, ids) = check_gating(&what, &logits, 1, 8, 8, 8, k, false);
        assert_eq!(ids, want, "{what}");
    }

    // All 160 experts equal: every probability is 1/160 and the ids are 0..K; renormalised,
    // each weight is 1/K.
    let flat = vec![0.25f32; 160];
    let (w, ids) = check_gating("all equal E=160 K=6", &flat, 1, 160, 160, 160, 6, true);
    assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
    for v in w {
        assert!((v as f64 - 1.0 / 6.0).abs() <= REL / 6.0, "renormalised equal weights: {v}");
    }

    // Three tied maxima far apart, the rest tied lower: the maxima by id, then the lowest ids.
    // Two tokens with a padded stride; the second token's ties sit at different places.
    let mut two = vec![0.0f32; 2 * 170];
    for i in [150, 3, 77] {
        two[i] = 2.0;
    }
    for i in [159, 100, 0, 42] {
        two[170 + i] = 5.0;
    }
    let (_, ids) = check_gating("ties E=160 K=6, two tokens", &two, 2, 160, 170, 160, 6, false);
    assert_eq!(ids, vec![3, 77, 150, 0, 1, 2, 0, 42, 100, 159, 1, 2]);
}
