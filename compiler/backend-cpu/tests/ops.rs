//! Ops beyond the stdlib kernels (scans, sorts with NaN and ties, arg-reductions, integer
//! division/shift rules, saturating casts, histograms, runtime loops with carried blocks, `if`,
//! user combine functions, atomics, transcendentals), compiled and compared with the interpreter.

mod common;

use common::*;
use tk_backend_cpu::{CpuOptions, TrapKind};
use tk_interp::Buffer;
use tk_ir::DType;

const SRC: &str = r#"
fn fmax(a, b) { maximum(a, b) }
fn add(a, b) { a + b }

kernel scans(x: *f32, y: *f32, yi: *i32) {
    let r = arange(0, 16);
    let q = arange(0, 4);
    let v = load(x + r);
    let m = reshape(v, [4, 4]);
    store(y + r, reshape(cumsum(m, axis: 1), [16]));
    store(y + 16 + r, reshape(cumsum(m, axis: 0, reverse: true), [16]));
    let (s, si) = sort(v);
    store(y + 32 + r, s);
    store(yi + r, si);
    let (d, di) = sort(v, descending: true);
    store(y + 48 + r, d);
    store(yi + 16 + r, di);
    store(yi + 32 + q, argmax(m, axis: 1));
    store(yi + 36 + q, argmin(m, axis: 0));
    store(y + 64 + q, max(m, axis: 1));
    store(y + 68 + q, min(m, axis: 0));
    store(y + 72 + r, reshape(permute(m, [1, 0]), [16]));
    store(y + 88 + q, reduce(m, 1, combine: fmax));
    store(y + 92 + r, reshape(scan(m, 0, combine: add), [16]));
    let (t, ti) = topk(v, 5);
    store(y + 108 + arange(0, 5), t);
    store(yi + 40 + arange(0, 5), ti);
    store(y + 113 + q, sum(m, axis: 0));
}

kernel ints(a: *i32, b: *i32, o: *i32, h: *i32, n: i32) {
    let r = arange(0, 32);
    let x = load(a + r);
    let y = load(b + r);
    store(o + r, x / y);
    store(o + 32 + r, x % y);
    store(o + 64 + r, x << (y & 63));
    store(o + 96 + r, x >> (y & 63));
    store(o + 128 + r, minimum(x, y));
    store(o + 160 + r, abs(x));
    store(o + 192 + r, ((x as f32) * 1.5e9) as i32);
    store(o + 224 + r, (x as u8) as i32);
    store(o + 256 + r, where(x > y, x, y) ^ 5);
    store(h + arange(0, 8), histogram(x, 8, mask: r < n));
}

kernel div(a: *i32, b: *i32, o: *i32) {
    let r = arange(0, 4);
    store(o + r, load(a + r) / load(b + r));
}

kernel loops(x: *f32, y: *f32, lo: i32, hi: i32, step: i32) {
    let r = arange(0, 8);
    let mut acc = zeros([8], f32);
    let mut prev = zeros([8], f32);
    let mut cnt = 0;
    for i in range(lo, hi, step) {
        let t = acc;
        acc = prev + load(x + i * 8 + r);
        prev = t;
        cnt += 1;
    }
    let s = if cnt > 2 { acc * 2.0 } else { acc - prev };
    store(y + r, s);
    store(y + 8 + r, prev);
    store(y + 16, cnt as f32);
    store(y + 17 + r, exp(s) + log(abs(s) + 1.0) + tanh(s) + erf(s) + sigmoid(s));
    store(y + 25 + r, fma(s, prev, 0.5) + floor(s) + ceil(prev) + sqrt(abs(s)) + rsqrt(abs(s) + 1.0));
    store(y + 33 + r, sin(s) + cos(prev) + exp2(s) + log2(abs(s) + 2.0));
}

kernel atomics(p: *f32, q: *i32, v: *f32, w: *i32, olds: *i32) {
    let r = arange(0, 16);
    let slot = r % 4;
    let x = load(v + r);
    let k = load(w + r);
    atomic_add(p + slot, x);
    atomic_max(p + 4 + slot, x);
    atomic_min(q + slot, k);
    let o = atomic_add(q + 4 + slot, k, mask: r < 12);
    atomic_cas(q + 8 + slot, 0, k);
    atomic_xchg(q + 12 + r, k);
    store(olds + r, where(r < 12, 1, 0));
}

kernel halfs(a: *bf16, b: *f16, o: *f32, ob: *bf16, oh: *f16) {
    let r = arange(0, 16);
    let x = load(a + r);
    let y = load(b + r);
    store(o + r, (x as f32) + (y as f32));
    store(ob + r, x * x + 1.0);
    store(ob + 16 + r, ((y as f32) * 100.0) as bf16);
    store(ob + 32 + r, exp(x) - maximum(x, 0.5));
    store(oh + r, y / 3.0);
    store(oh + 16 + r, sqrt(abs(y)) + (x as f16));
    store(o + 16 + r, ((x as f32) * 1000.0) as i8 as f32);
}
"#;

fn module() -> tk_ir::Module {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.tk");
    std::fs::write(&path, SRC).unwrap();
    frontend(&path, &[])
}

#[test]
fn scans_sorts_and_reductions() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut v = randn(&mut rng(5), 16, 5.0);
    v[3] = f32::NAN;
    v[9] = v[2];
    v[12] = v[2];
    v[14] = -0.0;
    v[15] = 0.0;
    let bufs = vec![Buffer::from_slice(&v), zeros(DType::F32, 120), zeros(DType::I32, 48)];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2)];
    check(&m, &l, "scans", [1, 1, 1], &args, &bufs, &[1, 2], F32_TOL);
}

#[test]
fn integer_rules_casts_and_histogram() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let a: Vec<i32> = (0..32).map(|i| (i * 37 % 23) - 11).collect();
    let b: Vec<i32> = (0..32).map(|i| if i % 5 == 0 { -3 } else { (i * 7 % 13) + 1 }).collect();
    let bufs = vec![
        Buffer::from_slice(&a),
        Buffer::from_slice(&b),
        zeros(DType::I32, 288),
        zeros(DType::I32, 8),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::Buf(3), A::I32(29)];
    check(&m, &l, "ints", [1, 1, 1], &args, &bufs, &[2, 3], F32_TOL);
}

#[test]
fn integer_division_by_zero_and_overflow_trap() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    for (a, b) in [([7, 8, 9, 10], [1, 2, 0, 3]), ([i32::MIN, 1, 1, 1], [-1, 1, 1, 1])] {
        let bufs = vec![Buffer::from_slice(&a), Buffer::from_slice(&b), zeros(DType::I32, 4)];
        let rc = run_cpu(&l, "div", [1, 1, 1], &[A::Buf(0), A::Buf(1), A::Buf(2)], &bufs)
            .expect_err("must trap");
        let k = l.artifact.kernels.iter().find(|k| k.name == "div").unwrap();
        assert_eq!(k.traps[(rc - 1) as usize].kind, TrapKind::IntegerDivision);
    }
}

#[test]
fn runtime_loops_if_and_math() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let x = randn(&mut rng(6), 8 * 12, 1.5);
    for (lo, hi, step) in [(0, 12, 1), (1, 12, 4), (5, 5, 1), (3, 10, 3), (0, 1, 1)] {
        let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 41)];
        let args = [A::Buf(0), A::Buf(1), A::I32(lo), A::I32(hi), A::I32(step)];
        check(&m, &l, "loops", [1, 1, 1], &args, &bufs, &[1], F32_TOL);
    }
    let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 41)];
    let args = [A::Buf(0), A::Buf(1), A::I32(0), A::I32(4), A::I32(0)];
    let rc = run_cpu(&l, "loops", [1, 1, 1], &args, &bufs).expect_err("step 0 must trap");
    let k = l.artifact.kernels.iter().find(|k| k.name == "loops").unwrap();
    assert_eq!(k.traps[(rc - 1) as usize].kind, TrapKind::NonPositiveStep);
}

#[test]
fn atomics_match_sequential_semantics() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    // Values with exact f32 sums in any order, so the comparison does not depend on lane order.
    let v: Vec<f32> = (0..16).map(|i| (i as f32 - 7.0) * 0.5).collect();
    let w: Vec<i32> = (0..16).map(|i| (i * 5 % 11) - 4).collect();
    let bufs = vec![
        zeros(DType::F32, 8),
        zeros(DType::I32, 28),
        Buffer::from_slice(&v),
        Buffer::from_slice(&w),
        zeros(DType::I32, 16),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::Buf(3), A::Buf(4)];
    check(&m, &l, "atomics", [3, 1, 1], &args, &bufs, &[0, 1, 4], Tol { rtol: 0.0, atol: 0.0 });
}

#[test]
fn f16_and_bf16_round_like_the_interpreter() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut r = rng(9);
    let vals = |r: &mut _| -> Vec<tk_ir::ConstValue> {
        let mut v: Vec<tk_ir::ConstValue> =
            randn(r, 16, 3.0).into_iter().map(|x| tk_ir::ConstValue::Float(x as f64)).collect();
        v[5] = tk_ir::ConstValue::Float(f64::NAN);
        v[6] = tk_ir::ConstValue::Float(-0.0);
        v[7] = tk_ir::ConstValue::Float(1.0e4);
        v
    };
    let bufs = vec![
        Buffer::from_values(DType::BF16, &vals(&mut r)),
        Buffer::from_values(DType::F16, &vals(&mut r)),
        zeros(DType::F32, 32),
        zeros(DType::BF16, 48),
        zeros(DType::F16, 32),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::Buf(3), A::Buf(4)];
    // Every result is rounded to its 16-bit dtype on both sides: exact.
    check(&m, &l, "halfs", [1, 1, 1], &args, &bufs, &[2, 3, 4], Tol { rtol: 0.0, atol: 0.0 });
}
