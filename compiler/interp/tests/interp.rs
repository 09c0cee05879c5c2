//! Whole-kernel tests of the interpreter on IR built with the `Function` API. Expected values are
//! computed independently (by hand or with plain Rust loops), never by the interpreter.

mod builder;

use builder::B;
use tk_interp::{run_kernel, Access, Arg, Buffer, ErrorKind, InterpError, RunOptions, RunReport};
use tk_ir::eval::EvalError;
use tk_ir::{
    AtomicOp, BinaryOp, CmpPred, ConstValue, DType, DotPrecision, FuncKind, Module, Op, ReduceKind,
    Type, UnaryOp,
};

fn run(
    m: &Module,
    k: tk_ir::FuncId,
    grid: [u32; 3],
    args: &[Arg],
    bufs: &mut [Buffer],
) -> Result<RunReport, InterpError> {
    run_kernel(m, k, grid, args, bufs, &RunOptions::default())
}

/// `out[i] = x[i] + y[i]` for `i < n`, BLOCK elements per program, masked tail.
fn vector_add(block: u32, masked: bool) -> (Module, tk_ir::FuncId, Vec<tk_diag::Span>) {
    let mut b = B::kernel("add");
    let x = b.ptr("x", DType::F32);
    let y = b.ptr("y", DType::F32);
    let out = b.ptr("out", DType::F32);
    let n = b.scalar("n", DType::I32);
    let pid = b.pid(0);
    let bs = b.ci(DType::I32, block as i64);
    let start = b.bin(BinaryOp::Mul, pid, bs);
    let start = b.splat(start, &[block]);
    let ar = b.arange(0, block as i64);
    let offs = b.bin(BinaryOp::Add, start, ar);
    let nn = b.splat(n, &[block]);
    let mask = b.cmp(CmpPred::Lt, offs, nn);
    let mask = if masked { Some(mask) } else { None };
    let px = b.addptr(x, offs);
    let vx = b.load(px, mask, None);
    let sx = b.last_span;
    let py = b.addptr(y, offs);
    let vy = b.load(py, mask, None);
    let sum = b.bin(BinaryOp::Add, vx, vy);
    let po = b.addptr(out, offs);
    b.store(po, sum, mask);
    let so = b.last_span;
    let (m, k) = b.finish();
    (m, k, vec![sx, so])
}

#[test]
fn vector_add_with_ragged_tail() {
    let n = 1000usize;
    let xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.25).collect();
    let ys: Vec<f32> = (0..n).map(|i| 1.0 / (i as f32 + 1.0)).collect();
    let (m, k, _) = vector_add(64, true);
    let mut bufs =
        vec![Buffer::from_slice(&xs), Buffer::from_slice(&ys), Buffer::uninit(DType::F32, n)];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::i32(n as i32)];
    let grid = [n.div_ceil(64) as u32, 1, 1];
    let report = run(&m, k, grid, &args, &mut bufs).unwrap();
    assert_eq!(report.programs, 16);
    assert!(report.unwritten.is_empty(), "{:?}", report.unwritten);
    let want: Vec<f32> = xs.iter().zip(&ys).map(|(a, b)| a + b).collect();
    assert_eq!(bufs[2].to_vec::<f32>().unwrap(), want);
}

#[test]
fn out_of_bounds_load_names_the_element_and_reads_nothing() {
    let n = 1000usize;
    let (m, k, spans) = vector_add(64, false);
    let mut bufs = vec![
        Buffer::from_slice(&vec![1.0f32; n]),
        Buffer::from_slice(&vec![2.0f32; n]),
        Buffer::uninit(DType::F32, n),
    ];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::i32(n as i32)];
    let e = run(&m, k, [16, 1, 1], &args, &mut bufs).unwrap_err();
    // Program 15 covers 960..1024; lane 40 is element 1000, the first past the end.
    assert_eq!(
        *e.kind,
        ErrorKind::OutOfBounds {
            access: Access::Load,
            param: "x".into(),
            buffer: 0,
            index: 1000,
            len: 1000
        }
    );
    assert_eq!(e.program, Some([15, 0, 0]));
    assert_eq!(e.lane, Some(vec![40]));
    assert_eq!(e.span, spans[0]);
    let text = e.to_string();
    assert!(text.contains("x[1000]") && text.contains("1000 elements"), "{text}");
    assert!(text.contains("program (15, 0, 0)") && text.contains("lane [40]"), "{text}");
    // Programs 0..15 stored their blocks; program 15 faulted before its store.
    assert_eq!(bufs[2].uninit_count(), 40);
    assert_eq!(bufs[2].first_uninit(), Some(960));
    assert_eq!(e.to_diagnostic().code, "R0002");
}

#[test]
fn out_of_bounds_store_writes_nothing() {
    // out has 100 elements; the store covers 64..128 in program 1 with no mask.
    let mut b = B::kernel("k");
    let out = b.ptr("out", DType::I32);
    let pid = b.pid(0);
    let c64 = b.ci(DType::I32, 64);
    let base = b.bin(BinaryOp::Mul, pid, c64);
    let base = b.splat(base, &[64]);
    let ar = b.arange(0, 64);
    let offs = b.bin(BinaryOp::Add, base, ar);
    let p = b.addptr(out, offs);
    b.store(p, offs, None);
    let s = b.last_span;
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::uninit(DType::I32, 100)];
    let e = run(&m, k, [2, 1, 1], &[Arg::Buffer(0)], &mut bufs).unwrap_err();
    assert!(matches!(*e.kind, ErrorKind::OutOfBounds { access: Access::Store, index: 100, .. }));
    assert_eq!((e.span, e.lane.clone()), (s, Some(vec![36])));
    // Elements 64..100 were in bounds but the faulting store wrote none of them.
    assert_eq!(bufs[0].uninit_count(), 36);
    assert_eq!(bufs[0].get(63), Some(ConstValue::Int(63)));
    assert_eq!(bufs[0].get(64), None);
}

#[test]
fn masked_off_lanes_are_never_checked() {
    // Lanes whose offsets are wildly out of bounds (negative, or past 2^40) are masked off.
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let out = b.ptr("out", DType::F32);
    let off_p = b.ptr("offs", DType::I64);
    let offs = b.load_n(off_p, 4);
    let zero = b.ci(DType::I64, 0);
    let zero = b.splat(zero, &[4]);
    let lim = b.ci(DType::I64, 4);
    let lim = b.splat(lim, &[4]);
    let ge = b.cmp(CmpPred::Ge, offs, zero);
    let lt = b.cmp(CmpPred::Lt, offs, lim);
    let mask = b.bin(BinaryOp::And, ge, lt);
    let other = b.cf(DType::F32, -1.0);
    let other = b.splat(other, &[4]);
    let px = b.addptr(x, offs);
    let v = b.load(px, Some(mask), Some(other));
    let v2 = b.load(px, Some(mask), None);
    let po = b.addptr(out, offs);
    b.store(po, v, Some(mask));
    let ar = b.arange(0, 4);
    let c4 = b.ci(DType::I32, 4);
    let c4 = b.splat(c4, &[4]);
    let ar4 = b.bin(BinaryOp::Add, ar, c4);
    let po2 = b.addptr(out, ar4);
    b.store(po2, v2, None);
    let ar8 = b.bin(BinaryOp::Add, ar4, c4);
    let po3 = b.addptr(out, ar8);
    b.store(po3, v, None);
    let (m, k) = b.finish();
    let mut bufs = vec![
        Buffer::from_slice(&[10.0f32, 11.0, 12.0, 13.0]),
        Buffer::uninit(DType::F32, 12),
        Buffer::from_slice(&[2i64, -5, 1 << 40, 0]),
    ];
    let r = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs);
    let r = r.unwrap();
    assert_eq!(r.unwritten.len(), 1);
    assert_eq!((r.unwritten[0].count, r.unwritten[0].first), (2, 1));
    let got = bufs[1].values();
    let f = |x: f64| Some(ConstValue::Float(x));
    // Masked store: only out[2] and out[0] written.
    assert_eq!(&got[..4], &[f(10.0), None, f(12.0), None]);
    // Load without `other` gives 0 in masked-off lanes; with `other`, the other value.
    assert_eq!(&got[4..8], &[f(12.0), f(0.0), f(0.0), f(10.0)]);
    assert_eq!(&got[8..], &[f(12.0), f(-1.0), f(-1.0), f(10.0)]);
}

#[test]
fn reading_an_uninitialised_element_is_an_error() {
    let mut b = B::kernel("k");
    let y = b.ptr("y", DType::F32);
    let out = b.ptr("out", DType::F32);
    let v = b.load_n(y, 8);
    let s = b.last_span;
    b.store_all(out, v);
    let (m, k) = b.finish();
    let mut ybuf = Buffer::uninit(DType::F32, 8);
    for i in [0, 1, 2, 3, 4, 6, 7] {
        ybuf.set(i, ConstValue::Float(1.0)).unwrap();
    }
    let mut bufs = vec![ybuf, Buffer::zeroed(DType::F32, 8)];
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap_err();
    assert_eq!(
        *e.kind,
        ErrorKind::Uninitialised { access: Access::Load, param: "y".into(), buffer: 0, index: 5 }
    );
    assert_eq!((e.span, e.lane.clone()), (s, Some(vec![5])));
    assert!(e.to_string().contains("read of uninitialised element y[5]"), "{e}");
    assert_eq!(bufs[1].to_vec::<f32>().unwrap(), vec![0.0; 8]);
}

#[test]
fn unwritten_outputs_are_reported() {
    let mut b = B::kernel("half");
    let out = b.ptr("out", DType::F32);
    let alias = b.ptr("alias", DType::F32);
    let one = b.cf(DType::F32, 1.0);
    let one = b.splat(one, &[6]);
    b.store_all(out, one);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::uninit(DType::F32, 10)];
    let r = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(0)], &mut bufs).unwrap();
    assert_eq!(r.unwritten.len(), 1);
    let u = &r.unwritten[0];
    assert_eq!((u.buffer, u.count, u.first, u.len), (0, 4, 6, 10));
    assert_eq!(u.params, vec!["out".to_string(), "alias".to_string()]);
    let _ = alias;
}

fn nan() -> f64 {
    f64::NAN
}

/// Bitwise equality of float lists (so NaN matches NaN and -0 differs from +0).
fn same_bits(a: &[f32], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == (*y as f32).to_bits())
}

#[test]
fn topk_sort_argmax_nan_and_ties() {
    let data = [1.0, nan(), 3.0, 3.0, -0.0, 0.0, nan(), -1.0];
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let vout = b.ptr("v", DType::F32);
    let iout = b.ptr("i", DType::I32);
    let v = b.load_n(x, 8);
    let f8 = Type::block(DType::F32, vec![8]);
    let i8t = Type::block(DType::I32, vec![8]);
    let topk = b.op(
        Op::TopK { value: v, k: 3 },
        &[Type::block(DType::F32, vec![3]), Type::block(DType::I32, vec![3])],
    );
    let asc = b.op(Op::Sort { value: v, descending: false }, &[f8.clone(), i8t.clone()]);
    let desc = b.op(Op::Sort { value: v, descending: true }, &[f8, i8t]);
    let amax =
        b.op1(Op::Reduce { kind: ReduceKind::Argmax, axis: 0, value: v }, Type::scalar(DType::I32));
    let amin =
        b.op1(Op::Reduce { kind: ReduceKind::Argmin, axis: 0, value: v }, Type::scalar(DType::I32));
    let mx =
        b.op1(Op::Reduce { kind: ReduceKind::Max, axis: 0, value: v }, Type::scalar(DType::F32));
    // Values: topk(3) at 0..3, asc at 3..11, desc at 11..19, max at 19.
    let all_v = [(topk[0], 0), (asc[0], 3), (desc[0], 11), (mx, 19)];
    let all_i = [(topk[1], 0), (asc[1], 3), (desc[1], 11), (amax, 19), (amin, 20)];
    for (val, at) in all_v {
        let n = b.t(val).numel() as u32;
        let val = if b.t(val).rank() == 0 { b.reshape(val, &[1]) } else { val };
        let offs = b.arange(at, at + n as i64);
        let p = b.addptr(vout, offs);
        b.store(p, val, None);
    }
    for (val, at) in all_i {
        let n = b.t(val).numel() as u32;
        let val = if b.t(val).rank() == 0 { b.reshape(val, &[1]) } else { val };
        let offs = b.arange(at, at + n as i64);
        let p = b.addptr(iout, offs);
        b.store(p, val, None);
    }
    let (m, k) = b.finish();
    let xs: Vec<f32> = data.iter().map(|&d| d as f32).collect();
    let mut bufs = vec![
        Buffer::from_slice(&xs),
        Buffer::uninit(DType::F32, 20),
        Buffer::uninit(DType::I32, 21),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    let vals = bufs[1].to_vec::<f32>().unwrap();
    let idx = bufs[2].to_vec::<i32>().unwrap();
    // topk: NaN is the largest, ties keep index order.
    assert!(same_bits(&vals[0..3], &[nan(), nan(), 3.0]), "{vals:?}");
    assert_eq!(&idx[0..3], &[1, 6, 2]);
    // Ascending: NaN last, -0 and +0 equal (index order kept).
    assert!(same_bits(&vals[3..11], &[-1.0, -0.0, 0.0, 1.0, 3.0, 3.0, nan(), nan()]), "{vals:?}");
    assert_eq!(&idx[3..11], &[7, 4, 5, 0, 2, 3, 1, 6]);
    // Descending: NaN first, ties in index order.
    assert!(same_bits(&vals[11..19], &[nan(), nan(), 3.0, 3.0, 1.0, -0.0, 0.0, -1.0]));
    assert_eq!(&idx[11..19], &[1, 6, 2, 3, 0, 4, 5, 7]);
    // max propagates NaN; argmax and argmin both pick the first NaN.
    assert!(vals[19].is_nan());
    assert_eq!(&idx[19..21], &[1, 1]);
}

/// Runs `f(value)` on a loaded f32 block of `xs` and returns the i32 scalar result.
fn arg_reduce(kind: ReduceKind, xs: &[f32]) -> i32 {
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let o = b.ptr("o", DType::I32);
    let v = b.load_n(x, xs.len() as u32);
    let r = b.op1(Op::Reduce { kind, axis: 0, value: v }, Type::scalar(DType::I32));
    b.store_all(o, r);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(xs), Buffer::uninit(DType::I32, 1)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    bufs[1].to_vec::<i32>().unwrap()[0]
}

#[test]
fn argmax_argmin_ties_and_all_nan() {
    let n = f32::NAN;
    assert_eq!(arg_reduce(ReduceKind::Argmax, &[2.0, -1.0, 5.0, 5.0, -1.0]), 2);
    assert_eq!(arg_reduce(ReduceKind::Argmin, &[2.0, -1.0, 5.0, 5.0, -1.0]), 1);
    assert_eq!(arg_reduce(ReduceKind::Argmax, &[n, n, n]), 0);
    assert_eq!(arg_reduce(ReduceKind::Argmin, &[n, n, n]), 0);
    assert_eq!(arg_reduce(ReduceKind::Argmin, &[3.0, 1.0, n]), 2);
    assert_eq!(arg_reduce(ReduceKind::Argmax, &[-0.0, 0.0]), 0);
    assert_eq!(arg_reduce(ReduceKind::Argmax, &[7.0]), 0);
}

#[test]
fn topk_rows_of_any_size() {
    // Two rows of 5 (not a power of two), k = 4.
    let rows = [[0.5f32, 9.0, -3.0, 9.0, 4.0], [1.0, 2.0, 3.0, 4.0, 5.0]];
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let vo = b.ptr("v", DType::F32);
    let io = b.ptr("i", DType::I32);
    let v = b.load_n(x, 10);
    let v = b.reshape(v, &[2, 5]);
    let r = b.op(
        Op::TopK { value: v, k: 4 },
        &[Type::block(DType::F32, vec![2, 4]), Type::block(DType::I32, vec![2, 4])],
    );
    b.store_all(vo, r[0]);
    b.store_all(io, r[1]);
    let (m, k) = b.finish();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut bufs = vec![
        Buffer::from_slice(&flat),
        Buffer::uninit(DType::F32, 8),
        Buffer::uninit(DType::I32, 8),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    assert_eq!(bufs[1].to_vec::<f32>().unwrap(), vec![9.0, 9.0, 4.0, 0.5, 5.0, 4.0, 3.0, 2.0]);
    assert_eq!(bufs[2].to_vec::<i32>().unwrap(), vec![1, 3, 4, 0, 4, 3, 2, 1]);
}

fn int_binary_kernel(op: BinaryOp, dt: DType, n: u32) -> (Module, tk_ir::FuncId, tk_diag::Span) {
    let mut b = B::kernel("k");
    let a = b.ptr("a", dt);
    let c = b.ptr("b", dt);
    let o = b.ptr("o", dt);
    let va = b.load_n(a, n);
    let vb = b.load_n(c, n);
    let r = b.bin(op, va, vb);
    let s = b.last_span;
    b.store_all(o, r);
    let (m, k) = b.finish();
    (m, k, s)
}

#[test]
fn integer_division_with_negative_operands() {
    let a = [-7i32, 7, -7, 7, -8, 0];
    let d = [2i32, -2, -2, 2, 3, -5];
    for (op, want) in
        [(BinaryOp::Div, [-3i32, -3, 3, 3, -2, 0]), (BinaryOp::Rem, [-1i32, 1, -1, 1, -2, 0])]
    {
        let (m, k, _) = int_binary_kernel(op, DType::I32, 6);
        let mut bufs =
            vec![Buffer::from_slice(&a), Buffer::from_slice(&d), Buffer::uninit(DType::I32, 6)];
        run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs)
            .unwrap();
        assert_eq!(bufs[2].to_vec::<i32>().unwrap(), want.to_vec(), "{op:?}");
    }
    // Division by zero in lane 2 is an error naming the op and the lane.
    let (m, k, s) = int_binary_kernel(BinaryOp::Div, DType::I32, 3);
    let mut bufs = vec![
        Buffer::from_slice(&[1i32, 2, 3]),
        Buffer::from_slice(&[1i32, 1, 0]),
        Buffer::uninit(DType::I32, 3),
    ];
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs)
        .unwrap_err();
    assert!(matches!(
        *e.kind,
        ErrorKind::Eval { op: "div", error: EvalError::DivisionByZero { .. } }
    ));
    assert_eq!((e.span, e.lane), (s, Some(vec![2])));
}

#[test]
fn i32_offset_overflow_is_an_error_but_i64_offsets_reach_past_2_pow_31() {
    // off = pid * stride + 5 with stride = 2^30 and pid = 2: 2^31 + 5 overflows i32.
    let build = |wide: bool| {
        let mut b = B::kernel("k");
        let p = b.ptr("p", DType::U8);
        let stride = b.scalar("stride", if wide { DType::I64 } else { DType::I32 });
        let pid = b.pid(0);
        let pid = if wide { b.cast(pid, DType::I64) } else { pid };
        let off = b.bin(BinaryOp::Mul, pid, stride);
        let s = b.last_span;
        let five = b.ci(if wide { DType::I64 } else { DType::I32 }, 5);
        let off = b.bin(BinaryOp::Add, off, five);
        let q = b.addptr(p, off);
        let old = b.load(q, None, None);
        let seven = b.ci(DType::U8, 7);
        let new = b.bin(BinaryOp::Add, old, seven);
        b.store(q, new, None);
        let (m, k) = b.finish();
        (m, k, s)
    };
    let len = (1usize << 31) + 16;
    let (m, k, s) = build(false);
    let mut bufs = vec![Buffer::zeroed(DType::U8, len)];
    let e = run(&m, k, [3, 1, 1], &[Arg::Buffer(0), Arg::i32(1 << 30)], &mut bufs).unwrap_err();
    assert!(
        matches!(
            &*e.kind,
            ErrorKind::Eval {
                op: "mul",
                error: EvalError::SignedOverflow { dtype: DType::I32, .. }
            }
        ),
        "{e}"
    );
    assert_eq!((e.span, e.program), (s, Some([2, 0, 0])));
    assert!(e.to_string().contains("cast to i64"), "{e}");

    // A fresh buffer: the failed run's programs 0 and 1 already wrote theirs.
    drop(bufs);
    let mut bufs = vec![Buffer::zeroed(DType::U8, len)];
    let (m, k, _) = build(true);
    let r = run(&m, k, [3, 1, 1], &[Arg::Buffer(0), Arg::i64(1 << 30)], &mut bufs).unwrap();
    assert_eq!(r.programs, 3);
    let b = &bufs[0];
    for at in [5usize, (1 << 30) + 5, (1 << 31) + 5] {
        assert_eq!(b.get(at), Some(ConstValue::Int(7)), "element {at}");
    }
    assert_eq!(b.get((1 << 31) + 4), Some(ConstValue::Int(0)));
}

#[test]
fn reductions_over_size_one_dims() {
    // x: [[1, 2, 3, 4]] as [1, 4]; reduce axis 0 (size 1) and its transpose [4, 1] on axis 1.
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::I32);
    let o = b.ptr("o", DType::I32);
    let v = b.load_n(x, 4);
    let row = b.reshape(v, &[1, 4]);
    let col = b.reshape(v, &[4, 1]);
    let t4 = Type::block(DType::I32, vec![4]);
    let s0 = b.op1(Op::Reduce { kind: ReduceKind::Sum, axis: 0, value: row }, t4.clone());
    let s1 = b.op1(Op::Reduce { kind: ReduceKind::Max, axis: 1, value: col }, t4.clone());
    let a0 = b.op1(Op::Reduce { kind: ReduceKind::Argmax, axis: 0, value: row }, t4.clone());
    let c0 = b.op1(
        Op::Cumsum { axis: 0, value: row, reverse: false },
        Type::block(DType::I32, vec![1, 4]),
    );
    let one = b.reshape(s0, &[4]);
    let single = b.op1(
        Op::Reduce { kind: ReduceKind::Sum, axis: 1, value: row },
        Type::block(DType::I32, vec![1]),
    );
    let total = b.op1(
        Op::Reduce { kind: ReduceKind::Sum, axis: 0, value: single },
        Type::scalar(DType::I32),
    );
    let total = b.reshape(total, &[1]);
    let all = [one, s1, a0];
    for (i, v) in all.iter().enumerate() {
        let offs = b.arange(4 * i as i64, 4 * i as i64 + 4);
        let p = b.addptr(o, offs);
        b.store(p, *v, None);
    }
    let c0 = b.reshape(c0, &[4]);
    let offs = b.arange(12, 16);
    let p = b.addptr(o, offs);
    b.store(p, c0, None);
    let offs = b.arange(16, 17);
    let p = b.addptr(o, offs);
    b.store(p, total, None);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[1i32, 2, 3, 4]), Buffer::uninit(DType::I32, 17)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    assert_eq!(
        bufs[1].to_vec::<i32>().unwrap(),
        vec![1, 2, 3, 4, 1, 2, 3, 4, 0, 0, 0, 0, 1, 2, 3, 4, 10]
    );
}

#[test]
fn float_sum_rounds_once_but_cumsum_rounds_every_step() {
    // [1, 2^-24, 2^-24]: in f64 the sum is 1 + 2^-23 (an f32); a step-by-step f32 scan rounds
    // 1 + 2^-24 to 1 (tie to even) twice.
    let t = 2f32.powi(-24);
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let o = b.ptr("o", DType::F32);
    let v = b.load_n(x, 3);
    let s =
        b.op1(Op::Reduce { kind: ReduceKind::Sum, axis: 0, value: v }, Type::scalar(DType::F32));
    let c =
        b.op1(Op::Cumsum { axis: 0, value: v, reverse: false }, Type::block(DType::F32, vec![3]));
    let rc =
        b.op1(Op::Cumsum { axis: 0, value: v, reverse: true }, Type::block(DType::F32, vec![3]));
    let s = b.reshape(s, &[1]);
    let offs = b.arange(0, 1);
    let p = b.addptr(o, offs);
    b.store(p, s, None);
    for (at, val) in [(1, c), (4, rc)] {
        let offs = b.arange(at, at + 3);
        let p = b.addptr(o, offs);
        b.store(p, val, None);
    }
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[1.0f32, t, t]), Buffer::uninit(DType::F32, 7)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    // Reverse scan: t, t + t = 2^-23, 1 + 2^-23.
    assert_eq!(
        bufs[1].to_vec::<f32>().unwrap(),
        vec![1.0 + 2.0 * t, 1.0, 1.0, 1.0, 1.0 + 2.0 * t, 2.0 * t, t]
    );
}

#[test]
fn for_loop_with_runtime_bounds_and_carried_values() {
    // acc = 0; prod = 1.0; for i in range(lo, hi, 3) { acc += i; prod *= 2 } with hi loaded
    // from memory.
    let mut b = B::kernel("k");
    let bounds = b.ptr("bounds", DType::I32);
    let o = b.ptr("o", DType::I32);
    let of = b.ptr("of", DType::F32);
    let lo = b.scalar("lo", DType::I32);
    let hi = b.load(bounds, None, None);
    let step = b.ci(DType::I32, 3);
    let acc0 = b.ci(DType::I32, 0);
    let prod0 = b.cf(DType::F32, 1.0);
    let r = b.for_loop(lo, hi, step, &[acc0, prod0], |b, iv, c| {
        let acc = b.bin(BinaryOp::Add, c[0], iv);
        let two = b.cf(DType::F32, 2.0);
        let prod = b.bin(BinaryOp::Mul, c[1], two);
        vec![acc, prod]
    });
    b.store(o, r[0], None);
    b.store(of, r[1], None);
    let (m, k) = b.finish();
    let go = |lo: i32, hi: i32| {
        let mut bufs = vec![
            Buffer::from_slice(&[hi]),
            Buffer::uninit(DType::I32, 1),
            Buffer::uninit(DType::F32, 1),
        ];
        let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::i32(lo)];
        run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap();
        (bufs[1].to_vec::<i32>().unwrap()[0], bufs[2].to_vec::<f32>().unwrap()[0])
    };
    // i = 2, 5, 8, 11: sum 26, 4 trips.
    assert_eq!(go(2, 12), (26, 16.0));
    // -4, -1, 2: sum -3, 3 trips.
    assert_eq!(go(-4, 3), (-3, 8.0));
    // No trip: the initial values.
    assert_eq!(go(5, 5), (0, 1.0));
    assert_eq!(go(9, -9), (0, 1.0));
}

#[test]
fn non_positive_loop_step_is_an_error() {
    let mut b = B::kernel("k");
    let step = b.scalar("step", DType::I32);
    let lo = b.ci(DType::I32, 0);
    let hi = b.ci(DType::I32, 10);
    b.for_loop(lo, hi, step, &[], |_, _, _| vec![]);
    let s = b.last_span;
    let (m, k) = b.finish();
    for st in [0, -1] {
        let e = run(&m, k, [1, 1, 1], &[Arg::i32(st)], &mut []).unwrap_err();
        assert_eq!(*e.kind, ErrorKind::BadStep { step: st as i128 });
        assert_eq!(e.span, s);
    }
}

#[test]
fn dot_matches_a_hand_computed_product() {
    // a = [[1, 2, 3], [4, 5, 6]], b = [[7, 8], [9, 10], [11, 12]], acc = [[1, 0], [0, -1]]
    // a@b = [[58, 64], [139, 154]].
    let mut b = B::kernel("k");
    let pa = b.ptr("a", DType::F32);
    let pb = b.ptr("b", DType::F32);
    let pc = b.ptr("c", DType::F32);
    let po = b.ptr("o", DType::F32);
    let va = b.load_n(pa, 6);
    let va = b.reshape(va, &[2, 3]);
    let vb = b.load_n(pb, 6);
    let vb = b.reshape(vb, &[3, 2]);
    let vc = b.load_n(pc, 4);
    let vc = b.reshape(vc, &[2, 2]);
    let d = b.op1(
        Op::Dot { a: va, b: vb, acc: vc, precision: DotPrecision::Ieee },
        Type::block(DType::F32, vec![2, 2]),
    );
    b.store_all(po, d);
    let (m, k) = b.finish();
    let mut bufs = vec![
        Buffer::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]),
        Buffer::from_slice(&[7.0f32, 8.0, 9.0, 10.0, 11.0, 12.0]),
        Buffer::from_slice(&[1.0f32, 0.0, 0.0, -1.0]),
        Buffer::uninit(DType::F32, 4),
    ];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::Buffer(3)];
    run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap();
    assert_eq!(bufs[3].to_vec::<f32>().unwrap(), vec![59.0, 64.0, 139.0, 153.0]);
}

#[test]
fn dot_accumulates_in_f64_and_rounds_once() {
    // [1, 2^-24, 2^-24] . [1, 1, 1] = 1 + 2^-23 exactly; an f32 running sum would give 1.
    let t = 2f32.powi(-24);
    let mut b = B::kernel("k");
    let pa = b.ptr("a", DType::F32);
    let pb = b.ptr("b", DType::F32);
    let po = b.ptr("o", DType::F32);
    let va = b.load_n(pa, 3);
    let va = b.reshape(va, &[1, 3]);
    let vb = b.load_n(pb, 3);
    let vb = b.reshape(vb, &[3, 1]);
    let z = b.cf(DType::F32, 0.0);
    let z = b.splat(z, &[1, 1]);
    let d = b.op1(
        Op::Dot { a: va, b: vb, acc: z, precision: DotPrecision::Tf32 },
        Type::block(DType::F32, vec![1, 1]),
    );
    b.store_all(po, d);
    let (m, k) = b.finish();
    let mut bufs = vec![
        Buffer::from_slice(&[1.0f32, t, t]),
        Buffer::from_slice(&[1.0f32, 1.0, 1.0]),
        Buffer::uninit(DType::F32, 1),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    assert_eq!(bufs[2].to_vec::<f32>().unwrap(), vec![1.0 + 2.0 * t]);
}

#[test]
fn int8_dot_is_exact_in_i32() {
    // a = [[127, -128]], b = [[127], [-128]]: 127*127 + 128*128 = 32513, plus acc 5.
    let mut b = B::kernel("k");
    let pa = b.ptr("a", DType::I8);
    let po = b.ptr("o", DType::I32);
    let va = b.load_n(pa, 2);
    let a2 = b.reshape(va, &[1, 2]);
    let b2 = b.reshape(va, &[2, 1]);
    let acc = b.ci(DType::I32, 5);
    let acc = b.splat(acc, &[1, 1]);
    let d = b.op1(
        Op::Dot { a: a2, b: b2, acc, precision: DotPrecision::Ieee },
        Type::block(DType::I32, vec![1, 1]),
    );
    b.store_all(po, d);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[127i8, -128]), Buffer::uninit(DType::I32, 1)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    assert_eq!(bufs[1].to_vec::<i32>().unwrap(), vec![32518]);
}

#[test]
fn shape_ops_broadcast_expand_permute() {
    // outer[i, j] = r[i] * 10 + c[j] for r = [0, 1], c = [0, 1, 2]; then transpose to [3, 2].
    let mut b = B::kernel("k");
    let o = b.ptr("o", DType::I32);
    let r = b.arange(0, 2);
    let c = b.arange(0, 3);
    let ten = b.ci(DType::I32, 10);
    let ten = b.splat(ten, &[2]);
    let r10 = b.bin(BinaryOp::Mul, r, ten);
    let rc = b.expand(r10, 1); // [2, 1]
    let cr = b.expand(c, 0); // [1, 3]
    let rb = b.broadcast(rc, &[2, 3]);
    let cb = b.broadcast(cr, &[2, 3]);
    let outer = b.bin(BinaryOp::Add, rb, cb);
    let tr =
        b.op1(Op::Permute { value: outer, perm: vec![1, 0] }, Type::block(DType::I32, vec![3, 2]));
    let flat = b.reshape(outer, &[6]);
    let offs = b.arange(0, 6);
    let p = b.addptr(o, offs);
    b.store(p, flat, None);
    let flat = b.reshape(tr, &[6]);
    let offs = b.arange(6, 12);
    let p = b.addptr(o, offs);
    b.store(p, flat, None);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::uninit(DType::I32, 12)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0)], &mut bufs).unwrap();
    assert_eq!(bufs[0].to_vec::<i32>().unwrap(), vec![0, 1, 2, 10, 11, 12, 0, 10, 1, 11, 2, 12]);
}

#[test]
fn grid_order_is_row_major_with_axis_0_fastest() {
    // Each program appends (x, y, z) via print; order must be x fastest.
    let mut b = B::kernel("k");
    let x = b.pid(0);
    let y = b.pid(1);
    let z = b.pid(2);
    let nx = b.op1(Op::NumPrograms { axis: 0 }, Type::scalar(DType::I32));
    b.op(Op::Print { prefix: "ids ".into(), values: vec![x, y, z, nx] }, &[]);
    let (m, k) = b.finish();
    let r = run(&m, k, [2, 2, 1], &[], &mut []).unwrap();
    assert_eq!(
        r.prints,
        vec![
            "pid (0, 0, 0) ids 0 0 0 2",
            "pid (1, 0, 0) ids 1 0 0 2",
            "pid (0, 1, 0) ids 0 1 0 2",
            "pid (1, 1, 0) ids 1 1 0 2",
        ]
    );
    let r = run(&m, k, [0, 5, 1], &[], &mut []).unwrap();
    assert_eq!(r.programs, 0);
}

#[test]
fn print_formats_blocks_per_dtype() {
    let mut b = B::kernel("k");
    let a = b.arange(0, 4);
    let a = b.reshape(a, &[2, 2]);
    let f = b.cf(DType::F32, 0.1f32 as f64);
    let h = b.cf(DType::F16, f64::NEG_INFINITY);
    let u = b.ci(DType::U64, -1);
    let t = b.c(DType::Bool, ConstValue::Bool(true));
    b.op(Op::Print { prefix: "v: ".into(), values: vec![a, f, h, u, t] }, &[]);
    let (m, k) = b.finish();
    let r = run(&m, k, [1, 1, 1], &[], &mut []).unwrap();
    assert_eq!(
        r.prints,
        vec!["pid (0, 0, 0) v: [[0, 1], [2, 3]] 0.1 -inf 18446744073709551615 true"]
    );
}

#[test]
fn device_assert_reports_message_and_lane() {
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::I32);
    let v = b.load_n(x, 4);
    let z = b.ci(DType::I32, 0);
    let z = b.splat(z, &[4]);
    let ok = b.cmp(CmpPred::Ge, v, z);
    b.op(Op::DeviceAssert { cond: ok, message: "x must be non-negative".into() }, &[]);
    let s = b.last_span;
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[0i32, 3, -1, -2])];
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0)], &mut bufs).unwrap_err();
    assert_eq!(*e.kind, ErrorKind::AssertFailed { message: "x must be non-negative".into() });
    assert_eq!((e.span, e.lane.clone(), e.program), (s, Some(vec![2]), Some([0, 0, 0])));
    assert_eq!(
        e.to_string(),
        "device_assert failed: x must be non-negative (in program (0, 0, 0), lane [2])"
    );
}

#[test]
fn atomics_apply_lane_by_lane() {
    // Four lanes add 1.5 to counts[idx[i]] with idx = [0, 2, 0, 0]; old values are returned.
    let mut b = B::kernel("k");
    let counts = b.ptr("counts", DType::F32);
    let idx = b.ptr("idx", DType::I32);
    let olds = b.ptr("olds", DType::F32);
    let mx = b.ptr("mx", DType::F32);
    let i = b.load_n(idx, 4);
    let p = b.addptr(counts, i);
    let v = b.cf(DType::F32, 1.5);
    let v = b.splat(v, &[4]);
    let old = b.op1(
        Op::Atomic { op: AtomicOp::Add, ptr: p, value: v, mask: None },
        Type::block(DType::F32, vec![4]),
    );
    b.store_all(olds, old);
    // atomic max with a NaN lane propagates NaN; masked lane 3 does nothing.
    let mv = b.load_n(mx, 4);
    let zero = b.ci(DType::I32, 0);
    let zero = b.splat(zero, &[4]);
    let p0 = b.addptr(counts, zero);
    let three = b.ci(DType::I32, 3);
    let three = b.splat(three, &[4]);
    let ar = b.arange(0, 4);
    let m3 = b.cmp(CmpPred::Lt, ar, three);
    let one = b.ci(DType::I32, 1);
    let one = b.splat(one, &[4]);
    let p1 = b.addptr(counts, one);
    b.op1(
        Op::Atomic { op: AtomicOp::Max, ptr: p1, value: mv, mask: Some(m3) },
        Type::block(DType::F32, vec![4]),
    );
    // CAS on counts[3]: expects 0.0 in every lane; only the first succeeds.
    let cmpv = b.cf(DType::F32, 0.0);
    let cmpv = b.splat(cmpv, &[4]);
    let newv = b.cast(ar, DType::F32);
    let c3 = b.addptr(counts, three);
    let cas_old = b.op1(
        Op::AtomicCas { ptr: c3, cmp: cmpv, value: newv, mask: None },
        Type::block(DType::F32, vec![4]),
    );
    let offs = b.arange(4, 8);
    let po = b.addptr(olds, offs);
    b.store(po, cas_old, None);
    let _ = p0;
    let (m, k) = b.finish();
    let mut bufs = vec![
        Buffer::from_slice(&[0.0f32, 5.0, 0.0, 0.0]),
        Buffer::from_slice(&[0i32, 2, 0, 0]),
        Buffer::uninit(DType::F32, 8),
        Buffer::from_slice(&[1.0f32, f32::NAN, 2.0, 100.0]),
    ];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::Buffer(3)];
    run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap();
    let c = bufs[0].to_vec::<f32>().unwrap();
    assert_eq!(c[0], 4.5);
    assert!(c[1].is_nan());
    assert_eq!((c[2], c[3]), (1.5, 1.0));
    // The CAS lanes: lane 0 swaps 0.0 -> 0.0 (value 0), lane 1 sees 0.0 and writes 1.0,
    // lanes 2 and 3 see 1.0 and fail.
    assert_eq!(bufs[2].to_vec::<f32>().unwrap(), vec![0.0, 0.0, 1.5, 3.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn atomic_with_an_out_of_bounds_lane_writes_nothing() {
    let mut b = B::kernel("k");
    let c = b.ptr("c", DType::I32);
    let i = b.ptr("i", DType::I32);
    let idx = b.load_n(i, 3);
    let p = b.addptr(c, idx);
    let one = b.ci(DType::I32, 1);
    let one = b.splat(one, &[3]);
    b.op1(
        Op::Atomic { op: AtomicOp::Add, ptr: p, value: one, mask: None },
        Type::block(DType::I32, vec![3]),
    );
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[0i32, 0]), Buffer::from_slice(&[0i32, 1, 2])];
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap_err();
    assert!(matches!(
        *e.kind,
        ErrorKind::OutOfBounds { access: Access::Atomic, index: 2, len: 2, .. }
    ));
    assert_eq!(bufs[0].to_vec::<i32>().unwrap(), vec![0, 0]);
}

#[test]
fn histogram_counts_unmasked_in_range_values() {
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::I32);
    let o = b.ptr("o", DType::I32);
    let v = b.load_n(x, 8);
    let ar = b.arange(0, 8);
    let seven = b.ci(DType::I32, 7);
    let seven = b.splat(seven, &[8]);
    let mask = b.cmp(CmpPred::Lt, ar, seven);
    let h = b.op1(
        Op::Histogram { value: v, bins: 4, mask: Some(mask) },
        Type::block(DType::I32, vec![4]),
    );
    b.store_all(o, h);
    let (m, k) = b.finish();
    // Lane 7 (value 0) is masked off; -1 and 4 are out of range.
    let mut bufs =
        vec![Buffer::from_slice(&[0i32, 1, 1, 3, -1, 4, 3, 0]), Buffer::uninit(DType::I32, 4)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    assert_eq!(bufs[1].to_vec::<i32>().unwrap(), vec![1, 2, 0, 2]);
}

#[test]
fn reduce_with_and_scan_with_call_the_combine_region() {
    // combine(acc, x) = acc * 2 + x, which is not associative-commutative: checks index order.
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::I32);
    let o = b.ptr("o", DType::I32);
    let v = b.load_n(x, 4);
    let s = Type::scalar(DType::I32);
    let comb = |b: &mut B| {
        b.region(&[s.clone(), s.clone()], |b, a| {
            let two = b.ci(DType::I32, 2);
            let d = b.bin(BinaryOp::Mul, a[0], two);
            vec![b.bin(BinaryOp::Add, d, a[1])]
        })
    };
    let r1 = comb(&mut b);
    let red = b.op1(Op::ReduceWith { axis: 0, value: v, combine: r1 }, s.clone());
    let r2 = comb(&mut b);
    let scan =
        b.op1(Op::ScanWith { axis: 0, value: v, combine: r2 }, Type::block(DType::I32, vec![4]));
    let red = b.reshape(red, &[1]);
    let offs = b.arange(0, 1);
    let p = b.addptr(o, offs);
    b.store(p, red, None);
    let offs = b.arange(1, 5);
    let p = b.addptr(o, offs);
    b.store(p, scan, None);
    let (m, k) = b.finish();
    let mut bufs = vec![Buffer::from_slice(&[1i32, 0, 1, 1]), Buffer::uninit(DType::I32, 5)];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1)], &mut bufs).unwrap();
    // Binary 1011 = 11; prefixes 1, 10b = 2, 101b = 5, 1011b = 11.
    assert_eq!(bufs[1].to_vec::<i32>().unwrap(), vec![11, 1, 2, 5, 11]);
}

#[test]
fn if_and_call() {
    // helper double(v: f32[4]) -> f32[4]; kernel: out = flag ? double(x) : -x.
    let mut m0 = Module::default();
    // Build the helper over a block parameter.
    {
        let mut hb = B::with_module(m0, "double", FuncKind::Helper);
        let t = hb.ty(Type::block(DType::F32, vec![4]));
        let v = hb.f.add_param("v", t);
        let two = hb.cf(DType::F32, 2.0);
        let two = hb.splat(two, &[4]);
        let r = hb.bin(BinaryOp::Mul, v, two);
        let (m, _) = hb.finish_with(vec![r]);
        m0 = m;
    }
    let helper = tk_ir::FuncId(0);
    let mut b = B::with_module(m0, "k", FuncKind::Kernel);
    let x = b.ptr("x", DType::F32);
    let o = b.ptr("o", DType::F32);
    let flag = b.scalar("flag", DType::Bool);
    let v = b.load_n(x, 4);
    let t4 = Type::block(DType::F32, vec![4]);
    let then_r =
        b.region(&[], |b, _| vec![b.op1(Op::Call { func: helper, args: vec![v] }, t4.clone())]);
    let else_r =
        b.region(&[], |b, _| vec![b.op1(Op::Unary { op: UnaryOp::Neg, value: v }, t4.clone())]);
    let r = b.op1(Op::If { cond: flag, then_body: then_r, else_body: else_r }, t4.clone());
    b.store_all(o, r);
    let (m, k) = b.finish();
    for (flag, want) in [(true, vec![2.0f32, -4.0, 6.0, 0.0]), (false, vec![-1.0, 2.0, -3.0, -0.0])]
    {
        let mut bufs =
            vec![Buffer::from_slice(&[1.0f32, -2.0, 3.0, 0.0]), Buffer::uninit(DType::F32, 4)];
        run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::bool(flag)], &mut bufs)
            .unwrap();
        let got = bufs[1].to_vec::<f32>().unwrap();
        assert_eq!(
            got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            want.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
    }
}

#[test]
fn casts_and_float_semantics_in_blocks() {
    // f32 -> f16 with ties, f32 -> i32 saturation and NaN, i32 -> bool.
    let p = |e: i32| 2f32.powi(e);
    let xs = [1.0 + p(-11), 1.0 + 3.0 * p(-11), 1e10, f32::NAN, -2.7];
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F32);
    let oh = b.ptr("oh", DType::F16);
    let oi = b.ptr("oi", DType::I32);
    let ob = b.ptr("ob", DType::Bool);
    let v = b.load_n(x, 5);
    let h = b.cast(v, DType::F16);
    let i = b.cast(v, DType::I32);
    let bl = b.cast(i, DType::Bool);
    b.store_all(oh, h);
    b.store_all(oi, i);
    b.store_all(ob, bl);
    let (m, k) = b.finish();
    let mut bufs = vec![
        Buffer::from_slice(&xs),
        Buffer::uninit(DType::F16, 5),
        Buffer::uninit(DType::I32, 5),
        Buffer::uninit(DType::Bool, 5),
    ];
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::Buffer(3)];
    run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap();
    let h: Vec<f32> = bufs[1].to_vec::<half::f16>().unwrap().iter().map(|x| x.to_f32()).collect();
    assert_eq!(&h[..2], &[1.0, 1.0 + p(-9)]);
    assert_eq!(h[2], f32::INFINITY);
    assert!(h[3].is_nan());
    assert_eq!(h[4], -1382.0 / 512.0); // nearest f16 to -2.7 (ulp 2^-9 in [2, 4))
    assert_eq!(bufs[2].to_vec::<i32>().unwrap(), vec![1, 1, i32::MAX, 0, -2]);
    assert_eq!(bufs[3].to_vec::<bool>().unwrap(), vec![true, true, true, false, true]);
}

#[test]
fn argument_validation() {
    let (m, k, _) = vector_add(64, true);
    let mut bufs = vec![
        Buffer::zeroed(DType::F32, 4),
        Buffer::zeroed(DType::F32, 4),
        Buffer::zeroed(DType::I32, 4),
    ];
    let bad = |e: InterpError| match *e.kind {
        ErrorKind::BadArgs(m) => m,
        k => panic!("{k:?}"),
    };
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0)], &mut bufs).unwrap_err();
    assert!(bad(e).contains("takes 4 arguments, got 1"));
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2), Arg::i32(4)];
    let e = run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap_err();
    assert!(bad(e).contains("expected a buffer of f32, got buffer 2 of i32"));
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(7), Arg::i32(4)];
    assert!(bad(run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap_err())
        .contains("buffer 7 does not exist"));
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(0), Arg::i64(4)];
    assert!(bad(run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap_err())
        .contains("expected a scalar of type i32, got one of type i64"));
    let args = [
        Arg::Buffer(0),
        Arg::Buffer(1),
        Arg::Buffer(0),
        Arg::Scalar(DType::I32, ConstValue::Int(1 << 40)),
    ];
    assert!(
        bad(run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap_err()).contains("out of range for i32")
    );
    let args = [Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(0), Arg::Buffer(1)];
    assert!(bad(run(&m, k, [1, 1, 1], &args, &mut bufs).unwrap_err())
        .contains("expected a scalar of type i32, got buffer 1"));
}

#[test]
fn op_limit_stops_runaway_loops() {
    let mut b = B::kernel("k");
    let lo = b.ci(DType::I64, 0);
    let hi = b.ci(DType::I64, i64::MAX);
    let st = b.ci(DType::I64, 1);
    b.for_loop(lo, hi, st, &[], |_, _, _| vec![]);
    let (m, k) = b.finish();
    let opts = RunOptions { max_ops: Some(10_000), ..RunOptions::default() };
    let e = run_kernel(&m, k, [1, 1, 1], &[], &mut [], &opts).unwrap_err();
    assert_eq!(*e.kind, ErrorKind::OpLimit { limit: 10_000 });
}

#[test]
fn malformed_ir_is_an_error_not_a_panic() {
    // A binary op whose operands have different element counts.
    let mut b = B::kernel("k");
    let a = b.arange(0, 4);
    let c = b.arange(0, 3);
    b.op1(Op::Binary { op: BinaryOp::Add, lhs: a, rhs: c }, Type::block(DType::I32, vec![4]));
    let s = b.last_span;
    let (m, k) = b.finish();
    let e = run(&m, k, [1, 1, 1], &[], &mut []).unwrap_err();
    assert!(matches!(*e.kind, ErrorKind::Malformed(_)));
    assert_eq!(e.span, s);
    // A region without a yield.
    let mut b = B::kernel("k");
    b.arange(0, 4);
    let (mut m, k) = b.finish();
    m.functions[0].regions[0].ops.pop();
    assert!(matches!(
        *run(&m, k, [1, 1, 1], &[], &mut []).unwrap_err().kind,
        ErrorKind::Malformed(_)
    ));
}

#[test]
fn select_fma_and_masked_reads_of_poisoned_memory() {
    // y is poisoned except y[0] and y[2]; the load masks off lanes 1 and 3, so it is fine.
    // r = select(x > 0, fma(x, x, 1), -x) in f16, where fma rounds once.
    let mut b = B::kernel("k");
    let x = b.ptr("x", DType::F16);
    let y = b.ptr("y", DType::F16);
    let o = b.ptr("o", DType::F16);
    let vx = b.load_n(x, 4);
    let ar = b.arange(0, 4);
    let two = b.ci(DType::I32, 2);
    let two = b.splat(two, &[4]);
    let parity = b.bin(BinaryOp::Rem, ar, two);
    let zero = b.ci(DType::I32, 0);
    let zero = b.splat(zero, &[4]);
    let even = b.cmp(CmpPred::Eq, parity, zero);
    let py = b.addptr(y, ar);
    let vy = b.load(py, Some(even), None);
    let fz = b.cf(DType::F16, 0.0);
    let fz = b.splat(fz, &[4]);
    let pos = b.cmp(CmpPred::Gt, vx, fz);
    let t = b.t(vx);
    let f = b.op1(Op::Fma { a: vx, b: vx, c: vy }, t.clone());
    let n = b.op1(Op::Unary { op: UnaryOp::Neg, value: vx }, t.clone());
    let r = b.op1(Op::Select { cond: pos, on_true: f, on_false: n }, t);
    b.store_all(o, r);
    let (m, k) = b.finish();
    let h = |v: f32| half::f16::from_f32(v);
    // x0 = 1 + 2^-10 (an f16): x0^2 + 2^-10 = 1 + 3*2^-10 + 2^-20, rounds to 1 + 3*2^-10.
    let x0 = 1.0 + 2f32.powi(-10);
    let mut ybuf = Buffer::uninit(DType::F16, 4);
    ybuf.set(0, ConstValue::Float(2f64.powi(-10))).unwrap();
    ybuf.set(2, ConstValue::Float(0.5)).unwrap();
    let mut bufs = vec![
        Buffer::from_slice(&[h(x0), h(2.0), h(-3.0), h(0.0)]),
        ybuf,
        Buffer::uninit(DType::F16, 4),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    let got: Vec<f32> = bufs[2].to_vec::<half::f16>().unwrap().iter().map(|v| v.to_f32()).collect();
    // Lane 1: masked y -> 0, fma(2, 2, 0) = 4. Lane 2: -(-3) = 3. Lane 3: -(0) = -0.
    assert_eq!(got[0], 1.0 + 3.0 * 2f32.powi(-10));
    assert_eq!(&got[1..3], &[4.0, 3.0]);
    assert!(got[3] == 0.0 && got[3].is_sign_negative());
}

#[test]
fn unsigned_and_narrow_integer_blocks() {
    // u8 wraps, i8 overflow errors, u32 shifts are logical.
    let (m, k, _) = int_binary_kernel(BinaryOp::Add, DType::U8, 3);
    let mut bufs = vec![
        Buffer::from_slice(&[250u8, 1, 128]),
        Buffer::from_slice(&[10u8, 2, 128]),
        Buffer::uninit(DType::U8, 3),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    assert_eq!(bufs[2].to_vec::<u8>().unwrap(), vec![4, 3, 0]);

    let (m, k, s) = int_binary_kernel(BinaryOp::Add, DType::I8, 3);
    let mut bufs = vec![
        Buffer::from_slice(&[100i8, 1, 1]),
        Buffer::from_slice(&[27i8, 2, 127]),
        Buffer::uninit(DType::I8, 3),
    ];
    let e = run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs)
        .unwrap_err();
    assert!(matches!(
        &*e.kind,
        ErrorKind::Eval { op: "add", error: EvalError::SignedOverflow { dtype: DType::I8, .. } }
    ));
    assert_eq!((e.span, e.lane), (s, Some(vec![2])));

    let (m, k, _) = int_binary_kernel(BinaryOp::Shr, DType::U32, 3);
    let mut bufs = vec![
        Buffer::from_slice(&[u32::MAX, 0x8000_0000, 7]),
        Buffer::from_slice(&[28u32, 31, 32]),
        Buffer::uninit(DType::U32, 3),
    ];
    run(&m, k, [1, 1, 1], &[Arg::Buffer(0), Arg::Buffer(1), Arg::Buffer(2)], &mut bufs).unwrap();
    assert_eq!(bufs[2].to_vec::<u32>().unwrap(), vec![15, 1, 0]);
}
