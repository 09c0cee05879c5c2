//! `dot` through the register-blocked micro-kernel (`src/dot.rs`): shapes that leave partial
//! tiles at the bottom and right edges, narrow inputs (f16, bf16 into f32; i8 into i32), an
//! accumulator that is used again after the `dot` (no update in place) and one carried by a loop
//! (updated in place). Compared with the interpreter.

mod common;

use common::*;
use tk_backend_cpu::CpuOptions;
use tk_interp::Buffer;
use tk_ir::{ConstValue, DType};

const SRC: &str = r#"
kernel shapes(a: *f32, b: *f32, c: *f32, o: *f32) {
    let i = arange(0, 13);
    let k = arange(0, 5);
    let j = arange(0, 37);
    let x = load(a + i[:, None] * 5 + k[None, :]);
    let y = load(b + k[:, None] * 37 + j[None, :]);
    let acc = load(c + i[:, None] * 37 + j[None, :]);
    let d = dot(x, y, acc);
    store(o + i[:, None] * 37 + j[None, :], d + acc);
    let one = dot(load(a + 3 + k[None, :]), y, zeros([1, 37], f32));
    store(o + 481 + j, reshape(one, [37]));
}

kernel narrow(a: *bf16, b: *f16, p: *i8, q: *i8, o: *f32, oi: *i32) {
    let i = arange(0, 9);
    let k = arange(0, 20);
    let j = arange(0, 18);
    let x = load(a + i[:, None] * 20 + k[None, :]);
    let y = load(b + k[:, None] * 18 + j[None, :]);
    store(o + i[:, None] * 18 + j[None, :], dot(x as f32, y as f32, zeros([9, 18], f32)));
    let u = load(p + i[:, None] * 20 + k[None, :]);
    let v = load(q + k[:, None] * 18 + j[None, :]);
    store(oi + i[:, None] * 18 + j[None, :], dot(u, v, zeros([9, 18], i32)));
}

kernel looped(a: *f32, b: *f32, o: *f32, steps: i32) {
    let i = arange(0, 8);
    let k = arange(0, 4);
    let j = arange(0, 24);
    let mut acc = zeros([8, 24], f32);
    for s in range(0, steps) {
        let x = load(a + s * 32 + i[:, None] * 4 + k[None, :]);
        let y = load(b + s * 96 + k[:, None] * 24 + j[None, :]);
        acc = dot(x, y, acc);
    }
    store(o + i[:, None] * 24 + j[None, :], acc);
}
"#;

fn module() -> tk_ir::Module {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dot.tk");
    std::fs::write(&path, SRC).unwrap();
    frontend(&path, &[])
}

const TOL: Tol = Tol { rtol: 1e-5, atol: 1e-5 };

#[test]
fn partial_tiles_and_a_reused_accumulator() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut r = rng(21);
    let bufs = vec![
        Buffer::from_slice(&randn(&mut r, 13 * 5, 1.0)),
        Buffer::from_slice(&randn(&mut r, 5 * 37, 1.0)),
        Buffer::from_slice(&randn(&mut r, 13 * 37, 1.0)),
        zeros(DType::F32, 13 * 37 + 37),
    ];
    let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::Buf(3)];
    check(&m, &l, "shapes", [1, 1, 1], &args, &bufs, &[3], TOL);
}

#[test]
fn half_and_int8_inputs() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut r = rng(22);
    let f = |r: &mut _, dt, n| {
        let v: Vec<ConstValue> =
            randn(r, n, 1.0).into_iter().map(|x| ConstValue::Float(x as f64)).collect();
        Buffer::from_values(dt, &v)
    };
    let ints = |n: usize, s: i64| -> Buffer {
        let v: Vec<ConstValue> =
            (0..n as i64).map(|i| ConstValue::Int((i * s) % 255 - 127)).collect();
        Buffer::from_values(DType::I8, &v)
    };
    let bufs = vec![
        f(&mut r, DType::BF16, 9 * 20),
        f(&mut r, DType::F16, 20 * 18),
        ints(9 * 20, 37),
        ints(20 * 18, 91),
        zeros(DType::F32, 9 * 18),
        zeros(DType::I32, 9 * 18),
    ];
    let args: Vec<A> = (0..6).map(A::Buf).collect();
    check(&m, &l, "narrow", [1, 1, 1], &args, &bufs, &[4, 5], TOL);
}

#[test]
fn accumulator_carried_by_a_loop() {
    let m = module();
    let l = load(&m, &CpuOptions::default());
    let mut r = rng(23);
    for steps in [0, 1, 3] {
        let bufs = vec![
            Buffer::from_slice(&randn(&mut r, 3 * 32, 1.0)),
            Buffer::from_slice(&randn(&mut r, 3 * 96, 1.0)),
            zeros(DType::F32, 8 * 24),
        ];
        let args = [A::Buf(0), A::Buf(1), A::Buf(2), A::I32(steps)];
        let want = run_interp(&m, "looped", [1, 1, 1], &args, &bufs);
        let got = run_cpu(&l, "looped", [1, 1, 1], &args, &bufs).unwrap();
        compare("looped", &want[2], &got[2], TOL);
    }
}
