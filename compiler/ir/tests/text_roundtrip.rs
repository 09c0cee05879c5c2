//! Round-trip tests of the IR text form: modules built through the `Function` API that use every
//! op variant and attribute, hand-written `.tkir` files under `tests/ir/`, exact constants and
//! strings, parse errors with positions, and random/truncated input that must never panic.

use tk_diag::Span;
use tk_ir::parse::parse_module;
use tk_ir::print::{print_function, print_module};
use tk_ir::verify::verify_module;
use tk_ir::*;

/// Builds one function through the public API, interning types into the module.
struct B<'m> {
    m: &'m mut Module,
    f: Function,
}

impl<'m> B<'m> {
    fn new(m: &'m mut Module, name: &str, kind: FuncKind) -> B<'m> {
        B { m, f: Function::new(name, kind, Span::DUMMY) }
    }
    fn t(&mut self, t: Type) -> TypeId {
        self.m.types.intern(t)
    }
    fn param(&mut self, name: &str, t: Type) -> Value {
        let id = self.t(t);
        self.f.add_param(name, id)
    }
    fn ops(&mut self, r: RegionId, op: Op, tys: &[Type]) -> Vec<Value> {
        let ids: Vec<TypeId> = tys.iter().map(|t| self.m.types.intern(t.clone())).collect();
        let id = self.f.append_op(r, op, &ids, Span::DUMMY);
        self.f.op(id).results.clone()
    }
    fn op(&mut self, r: RegionId, op: Op, ty: Type) -> Value {
        self.ops(r, op, &[ty])[0]
    }
    fn void(&mut self, r: RegionId, op: Op) {
        self.ops(r, op, &[]);
    }
    fn named(&mut self, r: RegionId, name: &str, op: Op, ty: Type) -> Value {
        let v = self.op(r, op, ty);
        self.f.values[v.0 as usize].name = Some(name.to_string());
        v
    }
    fn region(&mut self, args: &[Type]) -> RegionId {
        let ids: Vec<TypeId> = args.iter().map(|t| self.m.types.intern(t.clone())).collect();
        self.f.new_region(&ids)
    }
    fn cnst(&mut self, r: RegionId, value: ConstValue, d: DType) -> Value {
        self.op(r, Op::Const { value }, Type::scalar(d))
    }
    fn finish(self) {
        self.m.functions.push(self.f);
    }
}

fn s(d: DType) -> Type {
    Type::scalar(d)
}
fn blk(d: DType, shape: &[u32]) -> Type {
    Type::block(d, shape.to_vec())
}
fn ptr(d: DType, shape: &[u32]) -> Type {
    Type { elem: Elem::Ptr(d), shape: shape.to_vec() }
}

/// A helper `@axpy(%a: f32[16], %s: f32) -> (f32[16], f32)` and a kernel using every op variant.
fn every_op_module() -> Module {
    use DType::*;
    let mut m = Module::default();

    let mut h = B::new(&mut m, "axpy", FuncKind::Helper);
    let a = h.param("a", blk(F32, &[16]));
    let sc = h.param("s", s(F32));
    h.f.results = vec![h.t(blk(F32, &[16])), h.t(s(F32))];
    let body = h.f.body;
    let ss = h.op(body, Op::Splat { value: sc }, blk(F32, &[16]));
    let r = h.op(body, Op::Binary { op: BinaryOp::Mul, lhs: a, rhs: ss }, blk(F32, &[16]));
    h.void(body, Op::Yield { values: vec![r, sc] });
    h.finish();

    let mut k = B::new(&mut m, "every", FuncKind::Kernel);
    let x = k.param("x", ptr(F32, &[]));
    let idx = k.param("idx", ptr(I32, &[]));
    let n = k.param("n.cols", s(I32)); // not an identifier: printed sanitized
    let lo = k.param("lo", s(I64));
    k.f.constexprs = vec![
        ("BLOCK".into(), ConstValue::Int(16)),
        ("EPS".into(), ConstValue::Float(1e-6)),
        ("NEG_ZERO".into(), ConstValue::Float(-0.0)),
        ("FLAG".into(), ConstValue::Bool(true)),
        ("odd name".into(), ConstValue::Float(f64::NEG_INFINITY)),
    ];
    let b = k.f.body;

    // Constants: every dtype class, signed zero, infinities, NaNs with payloads, extremes.
    let consts = [
        (ConstValue::Float(1.5), F32),
        (ConstValue::Float(f64::NAN), F32),
        (ConstValue::Float(f64::NEG_INFINITY), F32),
        (ConstValue::Float(f64::INFINITY), F64),
        (ConstValue::Float(-0.0), F64),
        (ConstValue::Float(f64::from_bits(0x7ff8_0000_0000_0001)), F64),
        (ConstValue::Float(f64::from_bits(0xfff8_0000_0000_0000)), F64),
        (ConstValue::Float(1e-300), F64),
        (ConstValue::Float(f64::MAX), F64),
        (ConstValue::Float(5e-324), F64),
        (ConstValue::Float(0.1f32 as f64), F32),
        (ConstValue::Float(half::f16::from_f64(0.1).to_f64()), F16),
        (ConstValue::Float(half::bf16::from_f64(-3.3).to_f64()), BF16),
        (ConstValue::Bool(false), Bool),
        (ConstValue::Int(i64::MIN), I64),
        (ConstValue::Int(-1), U64),
        (ConstValue::Int(255), U8),
        (ConstValue::Int(-128), I8),
        (ConstValue::Int(65535), U16),
        (ConstValue::Int(-7), I16),
        (ConstValue::Int(4294967295), U32),
    ];
    for (v, d) in consts {
        k.cnst(b, v, d);
    }
    let zero = k.named(b, "zero", Op::Const { value: ConstValue::Float(0.0) }, s(F32));
    let one_i = k.cnst(b, ConstValue::Int(1), I32);
    let t = k.cnst(b, ConstValue::Bool(true), Bool);

    let pid = k.named(b, "pid", Op::ProgramId { axis: 0 }, s(I32));
    k.op(b, Op::NumPrograms { axis: 2 }, s(I32));
    let ar = k.named(b, "cols", Op::Arange { start: 0, end: 16 }, blk(I32, &[16]));
    k.op(b, Op::Arange { start: -5, end: 3 }, blk(I32, &[8]));
    let nn = k.op(b, Op::Splat { value: n }, blk(I32, &[16]));
    let mask =
        k.named(b, "mask", Op::Cmp { pred: CmpPred::Lt, lhs: ar, rhs: nn }, blk(Bool, &[16]));
    for pred in CmpPred::ALL {
        k.op(b, Op::Cmp { pred, lhs: ar, rhs: nn }, blk(Bool, &[16]));
    }
    let xs = k.op(b, Op::Splat { value: x }, ptr(F32, &[16]));
    let xp = k.named(b, "xp", Op::AddPtr { ptr: xs, offset: ar }, ptr(F32, &[16]));
    k.op(b, Op::AddPtr { ptr: x, offset: lo }, ptr(F32, &[]));
    let other = k.op(b, Op::Splat { value: zero }, blk(F32, &[16]));
    let v = k.named(
        b,
        "v",
        Op::Load { ptr: xp, mask: Some(mask), other: Some(other) },
        blk(F32, &[16]),
    );
    k.op(b, Op::Load { ptr: xp, mask: None, other: None }, blk(F32, &[16]));
    k.op(b, Op::Load { ptr: xp, mask: Some(mask), other: None }, blk(F32, &[16]));
    k.op(b, Op::Load { ptr: xp, mask: None, other: Some(other) }, blk(F32, &[16]));
    k.op(b, Op::Load { ptr: x, mask: None, other: None }, s(F32));

    // Every unary op: float ones on f32, the others on ints / bool.
    for op in UnaryOp::ALL {
        let (value, ty) = match op {
            UnaryOp::Not => (mask, blk(Bool, &[16])),
            UnaryOp::Neg | UnaryOp::Abs => (ar, blk(I32, &[16])),
            _ => (v, blk(F32, &[16])),
        };
        // Equal name hints must be uniquified by the printer.
        k.named(b, "u", Op::Unary { op, value }, ty);
    }
    for op in BinaryOp::ALL {
        let (l, ty) = match op {
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Shl | BinaryOp::Shr => {
                (ar, blk(I32, &[16]))
            }
            _ => (v, blk(F32, &[16])),
        };
        k.op(b, Op::Binary { op, lhs: l, rhs: l }, ty);
    }
    k.op(b, Op::Binary { op: BinaryOp::Xor, lhs: mask, rhs: mask }, blk(Bool, &[16]));
    let sel = k.op(b, Op::Select { cond: mask, on_true: v, on_false: other }, blk(F32, &[16]));
    k.op(b, Op::Fma { a: v, b: sel, c: v }, blk(F32, &[16]));
    let h16 = k.op(b, Op::Cast { value: v }, blk(F16, &[16]));
    k.op(b, Op::Cast { value: pid }, s(F64));
    let ed = k.op(b, Op::ExpandDims { value: v, axis: 1 }, blk(F32, &[16, 1]));
    k.op(b, Op::ExpandDims { value: zero, axis: 0 }, blk(F32, &[1]));
    let bc = k.op(b, Op::Broadcast { value: ed }, blk(F32, &[16, 4]));
    let rs = k.op(b, Op::Reshape { value: bc }, blk(F32, &[4, 16]));
    let pm = k.op(b, Op::Permute { value: rs, perm: vec![1, 0] }, blk(F32, &[16, 4]));
    let r3 = k.op(b, Op::Reshape { value: rs }, blk(F32, &[2, 2, 16]));
    k.op(b, Op::Permute { value: r3, perm: vec![2, 0, 1] }, blk(F32, &[16, 2, 2]));

    k.void(b, Op::Store { ptr: xp, value: v, mask: Some(mask) });
    k.void(b, Op::Store { ptr: xp, value: v, mask: None });
    k.void(b, Op::Store { ptr: x, value: zero, mask: None });
    for op in AtomicOp::ALL {
        k.op(b, Op::Atomic { op, ptr: xp, value: v, mask: Some(mask) }, blk(F32, &[16]));
        k.op(b, Op::Atomic { op, ptr: xp, value: v, mask: None }, blk(F32, &[16]));
    }
    let is = k.op(b, Op::Splat { value: idx }, ptr(I32, &[16]));
    let ip = k.op(b, Op::AddPtr { ptr: is, offset: ar }, ptr(I32, &[16]));
    k.op(b, Op::AtomicCas { ptr: ip, cmp: ar, value: nn, mask: Some(mask) }, blk(I32, &[16]));
    k.op(b, Op::AtomicCas { ptr: idx, cmp: one_i, value: pid, mask: None }, s(I32));

    for kind in ReduceKind::ALL {
        let d = if matches!(kind, ReduceKind::Argmax | ReduceKind::Argmin) { I32 } else { F32 };
        k.op(b, Op::Reduce { kind, axis: 0, value: v }, s(d));
        k.op(b, Op::Reduce { kind, axis: 1, value: pm }, blk(d, &[16]));
    }
    let comb = k.region(&[s(F32), s(F32)]);
    let (ca, cb) = (k.f.region(comb).args[0], k.f.region(comb).args[1]);
    k.f.values[ca.0 as usize].name = Some("acc".into());
    let cs = k.op(comb, Op::Binary { op: BinaryOp::Max, lhs: ca, rhs: cb }, s(F32));
    k.void(comb, Op::Yield { values: vec![cs] });
    k.op(b, Op::ReduceWith { axis: 0, value: pm, combine: comb }, blk(F32, &[4]));
    k.op(b, Op::Cumsum { axis: 0, value: v, reverse: false }, blk(F32, &[16]));
    k.op(b, Op::Cumsum { axis: 1, value: pm, reverse: true }, blk(F32, &[16, 4]));
    let comb2 = k.region(&[s(I32), s(I32)]);
    let (ca, cb) = (k.f.region(comb2).args[0], k.f.region(comb2).args[1]);
    let cs = k.op(comb2, Op::Binary { op: BinaryOp::Add, lhs: ca, rhs: cb }, s(I32));
    k.void(comb2, Op::Yield { values: vec![cs] });
    k.op(b, Op::ScanWith { axis: 0, value: ar, combine: comb2 }, blk(I32, &[16]));
    let tk = k.ops(b, Op::TopK { value: v, k: 4 }, &[blk(F32, &[4]), blk(I32, &[4])]);
    k.f.values[tk[0].0 as usize].name = Some("top".into());
    k.f.values[tk[1].0 as usize].name = Some("top".into());
    k.ops(b, Op::TopK { value: pm, k: 4 }, &[blk(F32, &[16, 4]), blk(I32, &[16, 4])]);
    k.ops(b, Op::Sort { value: v, descending: false }, &[blk(F32, &[16]), blk(I32, &[16])]);
    k.ops(b, Op::Sort { value: ar, descending: true }, &[blk(I32, &[16]), blk(I32, &[16])]);
    k.op(b, Op::Histogram { value: ar, bins: 8, mask: Some(mask) }, blk(I32, &[8]));
    k.op(b, Op::Histogram { value: ar, bins: 3, mask: None }, blk(I32, &[3]));

    let a16 = k.op(b, Op::Splat { value: zero }, blk(F32, &[16, 16]));
    let ah = k.op(b, Op::Cast { value: a16 }, blk(F16, &[16, 16]));
    let abf = k.op(b, Op::Cast { value: a16 }, blk(BF16, &[16, 16]));
    let a8 = k.op(b, Op::Cast { value: a16 }, blk(I8, &[16, 16]));
    let acc32 = k.op(b, Op::Cast { value: a16 }, blk(I32, &[16, 16]));
    let d1 = k.op(
        b,
        Op::Dot { a: ah, b: ah, acc: a16, precision: DotPrecision::Ieee },
        blk(F32, &[16, 16]),
    );
    k.op(
        b,
        Op::Dot { a: abf, b: abf, acc: d1, precision: DotPrecision::Ieee },
        blk(F32, &[16, 16]),
    );
    k.op(
        b,
        Op::Dot { a: a16, b: a16, acc: d1, precision: DotPrecision::Tf32 },
        blk(F32, &[16, 16]),
    );
    k.op(
        b,
        Op::Dot { a: a8, b: a8, acc: acc32, precision: DotPrecision::Ieee },
        blk(I32, &[16, 16]),
    );

    // for with two carried values and an `if` with results inside; values of enclosing regions
    // are used from inside.
    let hi = k.cnst(b, ConstValue::Int(10), I64);
    let st = k.cnst(b, ConstValue::Int(2), I64);
    let body = k.region(&[s(I64), blk(F32, &[16]), s(I32)]);
    let args = k.f.region(body).args.clone();
    k.f.values[args[0].0 as usize].name = Some("i".into());
    k.f.values[args[1].0 as usize].name = Some("acc".into()); // clashes with the combine arg
    let c = k.op(body, Op::Cmp { pred: CmpPred::Lt, lhs: args[0], rhs: hi }, s(Bool));
    let then_r = k.region(&[]);
    let added =
        k.op(then_r, Op::Binary { op: BinaryOp::Add, lhs: args[1], rhs: v }, blk(F32, &[16]));
    k.void(then_r, Op::Yield { values: vec![added, pid] });
    let else_r = k.region(&[]);
    k.void(else_r, Op::Yield { values: vec![args[1], args[2]] });
    let ifr = k.ops(
        body,
        Op::If { cond: c, then_body: then_r, else_body: else_r },
        &[blk(F32, &[16]), s(I32)],
    );
    k.void(body, Op::Yield { values: ifr.clone() });
    let fr = k.ops(
        b,
        Op::For { lo, hi, step: st, init: vec![v, pid], body },
        &[blk(F32, &[16]), s(I32)],
    );
    k.f.values[fr[0].0 as usize].name = Some("acc".into());

    // for without carried values, if without results, nested.
    let body2 = k.region(&[s(I32)]);
    let then2 = k.region(&[]);
    k.void(then2, Op::Print { prefix: "in loop".into(), values: vec![] });
    k.void(then2, Op::Yield { values: vec![] });
    let else2 = k.region(&[]);
    k.void(else2, Op::Yield { values: vec![] });
    k.void(body2, Op::If { cond: t, then_body: then2, else_body: else2 });
    k.void(body2, Op::Yield { values: vec![] });
    k.void(b, Op::For { lo: pid, hi: n, step: one_i, init: vec![], body: body2 });

    let helper = m_find(&k, "axpy");
    let cr =
        k.ops(b, Op::Call { func: helper, args: vec![fr[0], zero] }, &[blk(F32, &[16]), s(F32)]);
    // Results unused: a call still states them.
    k.ops(b, Op::Call { func: helper, args: vec![cr[0], cr[1]] }, &[blk(F32, &[16]), s(F32)]);
    k.void(
        b,
        Op::DeviceAssert {
            cond: mask,
            message: "quote \" backslash \\ nl \n tab \t \u{1} ünï".into(),
        },
    );
    k.void(b, Op::DeviceAssert { cond: t, message: String::new() });
    k.void(b, Op::Print { prefix: "v = ".into(), values: vec![v, pid, h16] });
    k.void(b, Op::Yield { values: vec![] });
    k.finish();
    m
}

fn m_find(b: &B<'_>, name: &str) -> FuncId {
    b.m.find(name).expect("helper defined first")
}

fn roundtrip(m: &Module) -> (String, Module) {
    let text = print_module(m);
    let m2 = match parse_module(&text) {
        Ok(m2) => m2,
        Err(e) => panic!("printed text does not parse: {e}\n{text}"),
    };
    let text2 = print_module(&m2);
    assert_eq!(text, text2, "print(parse(print(m))) != print(m)");
    (text, m2)
}

#[test]
fn every_op_roundtrips() {
    let m = every_op_module();
    if let Err(es) = verify_module(&m) {
        for e in &es {
            eprintln!("{e}");
        }
        panic!("the every-op module must verify");
    }
    let (text, m2) = roundtrip(&m);
    verify_module(&m2).expect("parsed module verifies");

    // Every variant appears in the text.
    for mn in [
        "const",
        "program_id",
        "num_programs",
        "arange",
        "splat",
        "broadcast",
        "expand_dims",
        "reshape",
        "permute",
        "cmp",
        "select",
        "fma",
        "cast",
        "addptr",
        "load",
        "store",
        "atomic add",
        "atomic max",
        "atomic min",
        "atomic xchg",
        "atomic_cas",
        "reduce sum",
        "reduce argmin",
        "reduce_with",
        "cumsum",
        "scan_with",
        "topk",
        "sort",
        "histogram",
        "dot",
        "for",
        "if",
        "yield",
        "call @axpy",
        "device_assert",
        "print",
        "precision tf32",
        "descending",
        "reverse",
        "combine(",
    ] {
        assert!(text.contains(mn), "missing `{mn}` in:\n{text}");
    }
    for op in UnaryOp::ALL {
        assert!(text.contains(&format!(" = {} ", op.name())), "unary {}", op.name());
    }
    for op in BinaryOp::ALL {
        assert!(text.contains(&format!(" = {} ", op.name())), "binary {}", op.name());
    }

    // Same structure: as many live ops of each mnemonic, same signatures and constexprs.
    for (f1, f2) in m.functions.iter().zip(&m2.functions) {
        let mn = |f: &Function| -> Vec<&'static str> {
            f.walk().iter().map(|&o| f.op(o).op.mnemonic()).collect()
        };
        assert_eq!(mn(f1), mn(f2));
        assert_eq!(f1.name, f2.name);
        assert_eq!(f1.kind, f2.kind);
        assert_eq!(f1.params.len(), f2.params.len());
        let bits = |f: &Function| -> Vec<(String, (u8, u64))> {
            f.constexprs.iter().map(|(n, v)| (n.clone(), v.bits())).collect()
        };
        assert_eq!(bits(f1), bits(f2));
    }
}

/// Constants come back bit for bit, including NaN payloads and signed zeros.
#[test]
fn constants_are_exact() {
    let m = every_op_module();
    let (_, m2) = roundtrip(&m);
    let consts = |m: &Module| -> Vec<(u8, u64)> {
        let f = &m.functions[1];
        f.walk()
            .iter()
            .filter_map(|&o| match f.op(o).op {
                Op::Const { value } => Some(value.bits()),
                _ => None,
            })
            .collect()
    };
    let (c1, c2) = (consts(&m), consts(&m2));
    assert_eq!(c1, c2);
    assert!(c2.contains(&(2, (-0.0f64).to_bits())));
    assert!(c2.contains(&(2, 0x7ff8_0000_0000_0001)));
    assert!(c2.contains(&(2, 0xfff8_0000_0000_0000)));
    assert!(c2.contains(&(2, f64::NEG_INFINITY.to_bits())));
    assert!(c2.contains(&(1, u64::MAX)));
    assert!(c2.contains(&(1, i64::MIN as u64)));
}

#[test]
fn exact_text_of_a_small_kernel() {
    use DType::*;
    let mut m = Module::default();
    let mut k = B::new(&mut m, "softmax", FuncKind::Kernel);
    let x = k.param("x", ptr(F32, &[]));
    let y = k.param("y", ptr(F32, &[]));
    let n = k.param("n_cols", s(I32));
    k.f.constexprs = vec![("BLOCK".into(), ConstValue::Int(8))];
    let b = k.f.body;
    let cols = k.named(b, "cols", Op::Arange { start: 0, end: 8 }, blk(I32, &[8]));
    let nn = k.op(b, Op::Splat { value: n }, blk(I32, &[8]));
    let mask =
        k.named(b, "mask", Op::Cmp { pred: CmpPred::Lt, lhs: cols, rhs: nn }, blk(Bool, &[8]));
    let ninf = k.cnst(b, ConstValue::Float(f64::NEG_INFINITY), F32);
    let other = k.op(b, Op::Splat { value: ninf }, blk(F32, &[8]));
    let xs = k.op(b, Op::Splat { value: x }, ptr(F32, &[8]));
    let xp = k.op(b, Op::AddPtr { ptr: xs, offset: cols }, ptr(F32, &[8]));
    let v =
        k.named(b, "v", Op::Load { ptr: xp, mask: Some(mask), other: Some(other) }, blk(F32, &[8]));
    let mx = k.op(b, Op::Reduce { kind: ReduceKind::Max, axis: 0, value: v }, s(F32));
    let mxs = k.op(b, Op::Splat { value: mx }, blk(F32, &[8]));
    let d = k.op(b, Op::Binary { op: BinaryOp::Sub, lhs: v, rhs: mxs }, blk(F32, &[8]));
    let e = k.named(b, "e", Op::Unary { op: UnaryOp::Exp, value: d }, blk(F32, &[8]));
    let sm = k.op(b, Op::Reduce { kind: ReduceKind::Sum, axis: 0, value: e }, s(F32));
    let sms = k.op(b, Op::Splat { value: sm }, blk(F32, &[8]));
    let out = k.op(b, Op::Binary { op: BinaryOp::Div, lhs: e, rhs: sms }, blk(F32, &[8]));
    let ys = k.op(b, Op::Splat { value: y }, ptr(F32, &[8]));
    let yp = k.op(b, Op::AddPtr { ptr: ys, offset: cols }, ptr(F32, &[8]));
    k.void(b, Op::Store { ptr: yp, value: out, mask: Some(mask) });
    k.void(b, Op::Yield { values: vec![] });
    k.finish();
    verify_module(&m).unwrap();
    let want = "\
kernel @softmax(%x: *f32, %y: *f32, %n_cols: i32) constexpr(BLOCK = 8) {
  %cols = arange 0, 8 : i32[8]
  %0 = splat %n_cols : i32[8]
  %mask = cmp lt %cols, %0 : bool[8]
  %1 = const -inf : f32
  %2 = splat %1 : f32[8]
  %3 = splat %x : *f32[8]
  %4 = addptr %3, %cols : *f32[8]
  %v = load %4, mask %mask, other %2 : f32[8]
  %5 = reduce max %v, axis 0 : f32
  %6 = splat %5 : f32[8]
  %7 = sub %v, %6 : f32[8]
  %e = exp %7 : f32[8]
  %8 = reduce sum %e, axis 0 : f32
  %9 = splat %8 : f32[8]
  %10 = div %e, %9 : f32[8]
  %11 = splat %y : *f32[8]
  %12 = addptr %11, %cols : *f32[8]
  store %12, %10, mask %mask
  yield
}
";
    assert_eq!(print_module(&m), want);
    assert_eq!(print_function(&m, &m.functions[0]), want);
    roundtrip(&m);
}

#[test]
fn names_are_sanitized_and_uniquified() {
    use DType::*;
    let mut m = Module::default();
    let mut k = B::new(&mut m, "names", FuncKind::Kernel);
    k.param("a.b", s(I32));
    k.param("a_b", s(I32));
    let b = k.f.body;
    for hint in ["x", "x", "x_1", "", "9lives", "ü", "x"] {
        k.named(b, hint, Op::Const { value: ConstValue::Int(0) }, s(I32));
    }
    k.op(b, Op::Const { value: ConstValue::Int(1) }, s(I32));
    k.void(b, Op::Yield { values: vec![] });
    k.finish();
    let (text, _) = roundtrip(&m);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "kernel @names(%a_b: i32, %a_b_1: i32) {");
    let defs: Vec<&str> =
        lines[1..9].iter().map(|l| l.split(" = ").next().unwrap().trim()).collect();
    assert_eq!(defs, ["%x", "%x_1", "%x_1_1", "%_", "%_9lives", "%__1", "%x_2", "%0"]);
}

#[test]
fn handwritten_files_roundtrip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ir");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ir exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tkir"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 3, "expected hand-written IR files in {}", dir.display());
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap();
        let m = parse_module(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Err(es) = verify_module(&m) {
            let es: Vec<String> = es.iter().map(|e| e.to_string()).collect();
            panic!("{} does not verify:\n{}", p.display(), es.join("\n"));
        }
        // The files are written in printed form, so they are fixed points already.
        assert_eq!(print_module(&m), text, "{} is not in canonical form", p.display());
        roundtrip(&m);
    }
}

#[test]
fn comments_else_and_literal_conveniences() {
    let text = "
// a comment
kernel @k(%p: *f32) { // trailing comment
  %c = const 0.1 : f32
  %i = const 3 : f64
  %h = const 65504.0 : f16
  %t = const true : bool
  %x = const 0xff : u8
  %d = const 4.9406564584124654e-324 : f64
  if %t {
    store %p, %c
    yield
  }
  yield
}
";
    let m = parse_module(text).unwrap();
    verify_module(&m).unwrap();
    let f = &m.functions[0];
    let cs: Vec<ConstValue> = f
        .walk()
        .iter()
        .filter_map(|&o| match f.op(o).op {
            Op::Const { value } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(cs[0], ConstValue::Float(0.1f32 as f64));
    assert_eq!(cs[1], ConstValue::Float(3.0));
    assert_eq!(cs[2], ConstValue::Float(65504.0));
    assert_eq!(cs[4], ConstValue::Int(255));
    assert_eq!(cs[5], ConstValue::Float(5e-324));
    let printed = print_module(&m);
    assert!(printed.contains("%c = const 0.10000000149011612 : f32"), "{printed}");
    assert!(printed.contains("} else {\n    yield\n  }"), "{printed}");
    roundtrip(&m);
}

#[test]
fn string_escapes_roundtrip() {
    let text = r#"kernel @k(%c: bool) {
  device_assert %c, "a\"b\\c\nd\te\r\0\u{7f}\u{1F600}é"
  print "", %c
  yield
}
"#;
    let m = parse_module(text).unwrap();
    let f = &m.functions[0];
    let msg = f.walk().iter().find_map(|&o| match &f.op(o).op {
        Op::DeviceAssert { message, .. } => Some(message.clone()),
        _ => None,
    });
    assert_eq!(msg.unwrap(), "a\"b\\c\nd\te\r\0\u{7f}\u{1F600}é");
    let printed = print_module(&m);
    assert!(printed.contains(r#""a\"b\\c\nd\te\r\0\u{7f}😀é""#), "{printed}");
    roundtrip(&m);
}

fn parse_err(text: &str) -> (u32, u32, String) {
    match parse_module(text) {
        Ok(_) => panic!("expected a parse error for:\n{text}"),
        Err(e) => (e.line, e.col, e.message),
    }
}

#[test]
fn parse_errors_have_positions() {
    let (l, c, msg) = parse_err("kernel @k() {\n  %a = add %b, %b : i32\n  yield\n}\n");
    assert_eq!((l, c), (2, 12));
    assert!(msg.contains("undefined value `%b`"), "{msg}");

    let (l, c, msg) = parse_err("kernel @k() {\n  %a = frob : i32\n}");
    assert_eq!((l, c), (2, 8));
    assert!(msg.contains("unknown operation `frob`"), "{msg}");

    let (l, c, msg) = parse_err("kernel @k(%p: *f33) {\n}");
    assert_eq!((l, c), (1, 16));
    assert!(msg.contains("unknown dtype `f33`"), "{msg}");

    let (l, c, msg) =
        parse_err("kernel @k() {\n  %a = const 1 : i32\n  %a = const 2 : i32\n  yield\n}");
    assert_eq!((l, c), (3, 3));
    assert!(msg.contains("defined twice"), "{msg}");

    let (l, _, msg) = parse_err("kernel @k() {\n  %x = call @nope() : i32\n  yield\n}");
    assert_eq!(l, 2);
    assert!(msg.contains("unknown function `@nope`"), "{msg}");

    let (l, c, msg) = parse_err("kernel @k() {\n  %a, %b = const 1 : i32\n}");
    assert_eq!((l, c), (2, 20));
    assert!(msg.contains("2 result name(s) but 1 result type(s)"), "{msg}");

    let (_, _, msg) = parse_err("kernel @k() {\n  %a = const 1 : i32\n");
    assert!(msg.contains("end of input"), "{msg}");

    let (l, c, msg) = parse_err("kernel @k() {\n  print \"abc\n}");
    assert_eq!((l, c), (2, 9));
    assert!(msg.contains("unterminated string"), "{msg}");

    let (_, _, msg) = parse_err("kernel @k() { %a = const 99999999999999999999 : i64 yield }");
    assert!(msg.contains("does not fit in 64 bits"), "{msg}");

    let (_, _, msg) = parse_err("kernel @k() { %a = program_id 300 : i32 yield }");
    assert!(msg.contains("not a valid axis"), "{msg}");

    let (_, _, msg) = parse_err("kernel @k() { yield }\nhelper @k() { yield }");
    assert!(msg.contains("defined twice"), "{msg}");

    let (l, c, msg) = parse_err("kernel @k() {\n  # \n}");
    assert_eq!((l, c), (2, 3));
    assert!(msg.contains("unexpected character"), "{msg}");
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let mut text = String::from("kernel @k(%c: bool) {\n");
    for _ in 0..10_000 {
        text.push_str("if %c {\n");
    }
    let (_, _, msg) = parse_err(&text);
    assert!(msg.contains("nested more than"), "{msg}");
}

/// A small deterministic generator (xorshift64*), so the test needs no extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parsing must return (Ok or Err), never panic, on truncations, mutations and random bytes.
#[test]
fn random_and_truncated_input_never_panics() {
    let text = print_module(&every_op_module());
    let chars: Vec<char> = text.chars().collect();
    // Every prefix (by characters, so always valid UTF-8).
    for i in 0..chars.len() {
        let prefix: String = chars[..i].iter().collect();
        let _ = parse_module(&prefix);
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<char> = "%@\"\\{}()[],:=*-0123456789.exnaif _\n\t\u{1}ü😀".chars().collect();
    for _ in 0..3000 {
        let mut cs = chars.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(cs.len());
            match rng.below(3) {
                0 => cs[at] = alphabet[rng.below(alphabet.len())],
                1 => {
                    cs.remove(at);
                }
                _ => cs.insert(at, alphabet[rng.below(alphabet.len())]),
            }
        }
        let s: String = cs.into_iter().collect();
        if let Ok(m) = parse_module(&s) {
            // Whatever parses must also print, verify and reprint without panicking.
            let _ = verify_module(&m);
            let _ = print_module(&m);
        }
    }
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let s = String::from_utf8_lossy(&bytes);
        let _ = parse_module(&s);
    }
    // Token soup: plausible tokens in random order.
    let toks = [
        "kernel",
        "helper",
        "@f",
        "(",
        ")",
        "{",
        "}",
        "%a",
        "%0",
        "=",
        ":",
        ",",
        "f32",
        "*i32",
        "[",
        "]",
        "16",
        "-1",
        "1.5",
        "nan",
        "inf",
        "-",
        "for",
        "to",
        "step",
        "iter_args",
        "if",
        "else",
        "yield",
        "const",
        "load",
        "mask",
        "other",
        "call",
        "combine",
        "reduce_with",
        "axis",
        "\"s\"",
        "->",
        "constexpr",
        "nan(0x7ff8000000000001)",
        "splat",
        "add",
    ];
    for _ in 0..3000 {
        let n = rng.below(40);
        let s: Vec<&str> = (0..n).map(|_| toks[rng.below(toks.len())]).collect();
        if let Ok(m) = parse_module(&s.join(" ")) {
            let _ = verify_module(&m);
            let _ = print_module(&m);
        }
    }
}
