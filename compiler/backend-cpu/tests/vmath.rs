//! Error bounds of the inline f32 transcendentals (`src/vmath.rs`), measured in ulps against the
//! interpreter's definition (f64 functions rounded once to f32) over dense sweeps: a fine grid over
//! each function's interesting range, a stride through every float's bit pattern (subnormals,
//! huge values, both signs) and the special values. The measured maxima are printed; the
//! assertions are the bounds documented in `vmath.rs`.

mod common;

use common::*;
use tk_backend_cpu::CpuOptions;
use tk_interp::Buffer;
use tk_ir::{DType, UnaryOp};

const BLOCK: usize = 1024;

fn kernel_src(f: &str) -> String {
    format!(
        "kernel k(x: *f32, y: *f32, n: i64) {{
            let offs = (program_id(0) as i64) * {BLOCK} + arange(0, {BLOCK});
            let m = offs < n;
            store(y + offs, {f}(load(x + offs, mask: m, other: 0.0)), mask: m);
        }}"
    )
}

/// Monotonic integer image of a float (so that adjacent floats differ by 1).
fn ord(x: f32) -> i64 {
    let b = x.to_bits() as i32 as i64;
    if b < 0 {
        i32::MIN as i64 - b
    } else {
        b
    }
}

fn ulps(want: f32, got: f32) -> u64 {
    if want.is_nan() || got.is_nan() {
        return if want.is_nan() && got.is_nan() { 0 } else { u64::MAX };
    }
    (ord(want) - ord(got)).unsigned_abs()
}

fn inputs(lo: f32, hi: f32) -> Vec<f32> {
    let mut v = Vec::new();
    let n = 1 << 20;
    for i in 0..=n {
        v.push(lo + (hi - lo) * (i as f32 / n as f32));
    }
    // Every float's bit pattern with a stride (both signs, subnormals, infinities, NaNs).
    let mut b: u64 = 0;
    while b < (1u64 << 32) {
        v.push(f32::from_bits(b as u32));
        b += 4093;
    }
    v.extend([0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-45]);
    v.extend([1.0, -1.0, 0.5, 2.0, 88.72283, 88.72284, -87.33655, -103.97208, -104.0]);
    v.extend([0.625, -0.625, 0.927_734_4, -0.927_734_4, 9.0, 4.0, 0.707_106_77]);
    v
}

fn measure(name: &str, op: UnaryOp, lo: f32, hi: f32, bound: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.tk");
    std::fs::write(&path, kernel_src(name)).unwrap();
    let m = frontend(&path, &[]);
    let l = load(&m, &CpuOptions::default());
    let xs = inputs(lo, hi);
    let n = xs.len();
    let bufs = vec![Buffer::from_slice(&xs), zeros(DType::F32, n)];
    let grid = [n.div_ceil(BLOCK) as u32, 1, 1];
    let out = run_cpu(&l, "k", grid, &[A::Buf(0), A::Buf(1), A::I64(n as i64)], &bufs).unwrap();
    let mut worst = (0u64, 0.0f32, 0.0f32, 0.0f32);
    for (i, &x) in xs.iter().enumerate() {
        let want = tk_ir::eval::unary_float(op, DType::F32, x as f64).unwrap() as f32;
        let got = match out[1].get(i).unwrap() {
            tk_ir::ConstValue::Float(g) => g as f32,
            other => panic!("{other:?}"),
        };
        let u = ulps(want, got);
        if u > worst.0 {
            worst = (u, x, want, got);
        }
    }
    eprintln!(
        "{name}: max error {} ulp (x = {:e}: want {:e}, got {:e}) over {n} inputs",
        worst.0, worst.1, worst.2, worst.3
    );
    assert!(worst.0 <= bound, "{name}: {} ulp > {bound} at x = {:e}", worst.0, worst.1);
}

#[test]
fn exp_within_1_ulp() {
    measure("exp", UnaryOp::Exp, -110.0, 95.0, 1);
}

#[test]
fn exp2_within_1_ulp() {
    measure("exp2", UnaryOp::Exp2, -155.0, 130.0, 1);
}

#[test]
fn log_within_1_ulp() {
    measure("log", UnaryOp::Log, 0.0, 4.0, 1);
}

#[test]
fn log2_within_1_ulp() {
    measure("log2", UnaryOp::Log2, 0.0, 4.0, 1);
}

#[test]
fn tanh_within_1_ulp() {
    measure("tanh", UnaryOp::Tanh, -10.0, 10.0, 1);
}

#[test]
fn sigmoid_within_2_ulp() {
    measure("sigmoid", UnaryOp::Sigmoid, -110.0, 110.0, 2);
}

#[test]
fn erf_within_1_ulp() {
    measure("erf", UnaryOp::Erf, -5.0, 5.0, 1);
}

#[test]
fn sin_within_1_ulp() {
    measure("sin", UnaryOp::Sin, -200.0, 200.0, 1);
}

#[test]
fn cos_within_1_ulp() {
    measure("cos", UnaryOp::Cos, -200.0, 200.0, 1);
}
