//! Kernels aimed at the fused-loop lowering (`plan.rs`, `fused.rs`): broadcasts in two
//! dimensions, reductions along every axis with ragged tails, gathers and scatters, uniform
//! addresses, loads that must happen before a later store, narrow and 16-bit dtypes, bool masks
//! read from memory, shapes with a last dimension of 1, NaN and signed zeros in reductions, every
//! block size from 1 to 33 with ragged rows.
//! Every output is compared with the interpreter.

mod common;

use common::*;
use tk_backend_cpu::CpuOptions;
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

const SRC: &str = r#"
kernel bcast2d(x: *f32, y: *f32, z: *f32, o: *f32) {
    let r = arange(0, 6);
    let c = arange(0, 37);
    let a = load(x + r[:, None] * 37 + c[None, :]);
    let b = load(y + c);
    let col = load(z + r[:, None]);
    let t = a * b[None, :] + col;
    store(o + r[:, None] * 37 + c[None, :], t);
    store(o + 222 + c, sum(t, axis: 0));
    store(o + 259 + r, max(t, axis: 1));
    store(o + 265 + r, min(a, axis: 1) + sum(exp(a), axis: 1));
    store(o + 271 + c, max(a, axis: 0));
    store(o + 308, sum(sum(t, axis: 1), axis: 0));
    let sq = reshape(col, [6]);
    store(o + 309 + r, sq * 2.0);
    store(o + 315 + r[:, None], col + 1.0);
}

kernel gather(x: *f32, idx: *i32, y: *f32, n: i32) {
    let r = arange(0, 40);
    let m = r < n;
    let i = load(idx + r, mask: m, other: 0);
    let v = load(x + i, mask: m, other: 7.0);
    store(y + i, v * 2.0 + load(x + 0 * r), mask: m);
    store(y + 100 + r, v);
    let u = load(x + 5 + r / 8);
    store(y + 140 + r, u + (r % 8) as f32);
}

kernel order(x: *f32, y: *f32) {
    let r = arange(0, 20);
    let a = load(x + r);
    store(x + r, a + 1.0);
    let b = load(x + r);
    store(y + r, a * 10.0 + b);
    let c = load(x + 19 - r);
    store(x + r, b * 0.5);
    store(y + 20 + r, c);
}

kernel dtypes(a: *i8, b: *u16, h: *f16, bf: *bf16, mk: *bool, o: *i32, of: *f32, oh: *f16, ob: *bool) {
    let r = arange(0, 19);
    let m = load(mk + r);
    let x = load(a + r, mask: m, other: 3) as i32;
    let y = load(b + r) as i32;
    store(o + r, x * y + (y >> 2) - x / 3 + x % 5);
    store(o + 19 + r, where(m, x, -y));
    let hf = load(h + r, mask: m, other: 1.5);
    let bv = load(bf + r);
    store(of + r, (hf as f32) * (bv as f32) + tanh(bv as f32));
    store(oh + r, hf * hf + exp(hf), mask: r < 17);
    store(ob + r, (x > 0) ^ m);
    store(o + 38 + r, cumsum(x, axis: 0));
}

kernel reduce_rules(x: *f32, o: *f32, oi: *i32) {
    let r = arange(0, 24);
    let v = load(x + r);
    let m = reshape(v, [2, 12]);
    store(o + arange(0, 2), max(m, axis: 1));
    store(o + 2 + arange(0, 2), sum(m, axis: 1));
    store(o + 4 + arange(0, 12), min(m, axis: 0));
    store(o + 16, max(v, axis: 0));
    store(o + 17, sum(v, axis: 0));
    store(oi, sum(load(oi + 1 + r) * 3, axis: 0));
    store(oi + 1 + arange(0, 3), max(reshape(load(oi + 1 + arange(0, 9)), [3, 3]), axis: 1));
}

kernel nested(x: *f32, y: *f32, steps: i32, flag: i32) {
    let r = arange(0, 12);
    let e = exp(load(x + r) * 0.5);
    let idx = r * 2 + 1;
    let mut acc = zeros([12], f32);
    for s in range(0, steps) {
        let v = load(x + 12 + s * 12 + r);
        acc = acc + v * e + (idx as f32);
        store(y + 40 + r, acc);
    }
    let t = if flag > 0 { e * 2.0 + acc } else { acc - e };
    store(y + r, t);
    store(y + 12 + r, e + load(y + 40 + r));
}
"#;

fn module() -> tk_ir::Module {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fusion.tk");
    std::fs::write(&path, SRC).unwrap();
    frontend(&path, &[])
}

#[test]
fn broadcasts_and_reductions_in_two_dimensions() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut r = rng(11);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut r, 6 * 37, 2.0)),
        Buffer::from_slice(&randn(&mut r, 37, 2.0)),
        Buffer::from_slice(&randn(&mut r, 6, 2.0)),
        zeros(DType::F32, 330),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::Buf(3)];
    check(&m, &l, "bcast2d", [1, 1, 1], &args, &bufs, &[3], Tol { rtol: 1e-5, atol: 1e-5 });
}

#[test]
fn gathers_scatters_and_uniform_addresses() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let x = randn(&mut rng(12), 64, 3.0);
    // A permutation of 0..40 (distinct scatter targets).
    let idx: Vec<i32> = (0..40).map(|i| (i * 17 + 3) % 40).collect();
    for n in [40, 33, 0] {
        let bufs = vec![Buffer::from_slice(&x), Buffer::from_slice(&idx), zeros(DType::F32, 180)];
        let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(n)];
        check(&m, &l, "gather", [1, 1, 1], &args, &bufs, &[2], F32_TOL);
    }
}

#[test]
fn loads_happen_before_later_stores() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let x = randn(&mut rng(13), 20, 3.0);
    let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 40)];
    check(&m, &l, "order", [1, 1, 1], &[A::Buf(0), A::Buf(1)], &bufs, &[0, 1], F32_TOL);
}

#[test]
fn narrow_and_half_dtypes_and_bool_masks() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let n = 19;
    let mut r = rng(14);
    let f = |r: &mut _, dt| {
        let v: Vec<ConstValue> =
            randn(r, n, 2.0).into_iter().map(|x| ConstValue::Float(x as f64)).collect();
        Buffer::from_values(dt, &v)
    };
    let a: Vec<ConstValue> = (0..n as i64).map(|i| ConstValue::Int(i * 29 % 255 - 127)).collect();
    let b: Vec<ConstValue> = (0..n as i64).map(|i| ConstValue::Int(i * 3001 % 65536)).collect();
    let mk: Vec<ConstValue> = (0..n).map(|i| ConstValue::Bool(i % 3 != 1)).collect();
    let bufs = vec![
        Buffer::from_values(DType::I8, &a),
        Buffer::from_values(DType::U16, &b),
        f(&mut r, DType::F16),
        f(&mut r, DType::BF16),
        Buffer::from_values(DType::Bool, &mk),
        zeros(DType::I32, 57),
        zeros(DType::F32, n),
        zeros(DType::F16, n),
        zeros(DType::Bool, n),
    ];
    let args: Vec<A> = (0..9).map(A::Buf).collect();
    // f16 results are rounded on both sides; exp(h) in f32 then f16 may differ in a rare tie.
    check(&m, &l, "dtypes", [1, 1, 1], &args, &bufs, &[5, 6, 7, 8], Tol { rtol: 1e-3, atol: 0.0 });
}

#[test]
fn reductions_keep_nan_and_signed_zero_rules() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut x = randn(&mut rng(15), 24, 3.0);
    x[5] = f32::NAN;
    x[14] = -0.0;
    for v in &mut x[12..24] {
        if *v > 0.0 {
            *v = -0.0;
        }
    }
    let ints: Vec<i32> = (0..25).map(|i| (i * 7919) % 1000 - 500).collect();
    let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 18), Buffer::from_slice(&ints)];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2)];
    check(&m, &l, "reduce_rules", [1, 1, 1], &args, &bufs, &[1, 2], F32_TOL);
}

#[test]
fn ragged_blocks_of_every_size_up_to_two_vectors() {
    let src = |b: u32| {
        format!(
            "kernel k(x: *f32, y: *f32, n: i32) {{
                let c = arange(0, {b});
                let m = c < n;
                let v = load(x + c, mask: m, other: -inf);
                let e = exp(v - max(v, axis: 0));
                store(y + c, e / sum(e, axis: 0), mask: m);
                store(y + 40 + c, v * 2.0, mask: m);
            }}"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    for b in 1..=33u32 {
        let path = dir.path().join(format!("k{b}.tk"));
        std::fs::write(&path, src(b)).unwrap();
        let m = frontend(&path, &[]);
        let l = load(&m, &CpuOptions::default());
        let x = randn(&mut rng(b as u64), 40, 3.0);
        for n in [b as i32, (b as i32 + 1) / 2] {
            let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 80)];
            check(&m, &l, "k", [1, 1, 1], &[A::Buf(0), A::Buf(1), A::I32(n)], &bufs, &[1], F32_TOL);
        }
    }
}

#[test]
fn values_used_inside_loops_and_branches() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let x = randn(&mut rng(16), 12 * 5, 2.0);
    for (steps, flag) in [(0, 1), (1, 0), (4, 1)] {
        let bufs = vec![Buffer::from_slice(&x), zeros(DType::F32, 52)];
        let args = [A::Buf(0), A::Buf(1), A::I32(steps), A::I32(flag)];
        check(&m, &l, "nested", [1, 1, 1], &args, &bufs, &[1], F32_TOL);
    }
}
