//! Tests of the IR passes: each builds a small function with the `Function` API, runs one pass (or
//! the default pipeline), and checks which ops remain, which values were substituted, and that
//! the result still verifies. Expected constants are worked out by hand in the comments.

use tk_diag::{FileId, Span};
use tk_ir::passes::{self, canonicalize, const_fold, cse, dce, inline, PassError};
use tk_ir::verify::{verify_module, verify_module_with, VerifyOptions};
use tk_ir::{
    BinaryOp, CmpPred, ConstValue, DType, Elem, FuncId, FuncKind, Function, Module, Op, OpId,
    RegionId, Type, TypeId, UnaryOp, Value,
};

/// Builds one function inside a module.
struct B {
    m: Module,
    f: Function,
}

impl B {
    fn new(name: &str, kind: FuncKind) -> B {
        B { m: Module::default(), f: Function::new(name, kind, Span::DUMMY) }
    }
    fn t(&mut self, d: DType, shape: &[u32]) -> TypeId {
        self.m.types.intern(Type::block(d, shape.to_vec()))
    }
    fn pt(&mut self, d: DType, shape: &[u32]) -> TypeId {
        self.m.types.intern(Type { elem: Elem::Ptr(d), shape: shape.to_vec() })
    }
    fn param(&mut self, name: &str, ty: TypeId) -> Value {
        self.f.add_param(name, ty)
    }
    fn ops(&mut self, r: RegionId, op: Op, tys: &[TypeId]) -> Vec<Value> {
        let id = self.f.append_op(r, op, tys, Span::DUMMY);
        self.f.op(id).results.clone()
    }
    fn op(&mut self, r: RegionId, op: Op, ty: TypeId) -> Value {
        self.ops(r, op, &[ty])[0]
    }
    fn konst(&mut self, r: RegionId, d: DType, value: ConstValue) -> Value {
        let t = self.t(d, &[]);
        self.op(r, Op::Const { value }, t)
    }
    fn int(&mut self, r: RegionId, d: DType, v: i64) -> Value {
        self.konst(r, d, ConstValue::Int(v))
    }
    fn float(&mut self, r: RegionId, d: DType, v: f64) -> Value {
        self.konst(r, d, ConstValue::Float(v))
    }
    fn bin(&mut self, r: RegionId, op: BinaryOp, lhs: Value, rhs: Value) -> Value {
        let t = self.f.value_type(lhs);
        self.op(r, Op::Binary { op, lhs, rhs }, t)
    }
    fn splat(&mut self, r: RegionId, value: Value, shape: &[u32]) -> Value {
        let elem = self.m.ty(self.f.value_type(value)).elem;
        let t = self.m.types.intern(Type { elem, shape: shape.to_vec() });
        self.op(r, Op::Splat { value }, t)
    }
    fn store(&mut self, r: RegionId, ptr: Value, value: Value) {
        self.ops(r, Op::Store { ptr, value, mask: None }, &[]);
    }
    fn yield_(&mut self, r: RegionId, values: Vec<Value>) {
        self.ops(r, Op::Yield { values }, &[]);
    }
    fn body(&self) -> RegionId {
        self.f.body
    }
    fn finish(mut self) -> Module {
        self.m.functions.push(self.f);
        self.m
    }
}

fn kernel(m: &Module) -> &Function {
    m.kernels().next().expect("a kernel")
}

/// Mnemonics of the ops reachable from the body, in walk order.
fn mnemonics(f: &Function) -> Vec<&'static str> {
    f.walk().into_iter().map(|id| f.op(id).op.mnemonic()).collect()
}

fn count(f: &Function, mnemonic: &str) -> usize {
    mnemonics(f).into_iter().filter(|m| *m == mnemonic).count()
}

/// The linked op whose mnemonic is `mnemonic` (exactly one must exist).
fn only(f: &Function, mnemonic: &str) -> OpId {
    let ids: Vec<OpId> =
        f.walk().into_iter().filter(|&id| f.op(id).op.mnemonic() == mnemonic).collect();
    assert_eq!(ids.len(), 1, "expected one `{mnemonic}` in {:?}", mnemonics(f));
    ids[0]
}

/// The value stored by the (single) store of the kernel.
fn stored_value(f: &Function) -> Value {
    match f.op(only(f, "store")).op {
        Op::Store { value, .. } => value,
        _ => unreachable!(),
    }
}

fn verified(m: &Module) {
    if let Err(errors) = verify_module(m) {
        panic!("verifier: {errors:#?}");
    }
}

/// A kernel `k(out: *T)` whose body computes something and stores it through `out`.
fn store_kernel(d: DType, build: impl FnOnce(&mut B, RegionId) -> Value) -> Module {
    let mut b = B::new("k", FuncKind::Kernel);
    let pt = b.pt(d, &[]);
    let out = b.param("out", pt);
    let body = b.body();
    let v = build(&mut b, body);
    b.store(body, out, v);
    b.yield_(body, vec![]);
    b.finish()
}

fn const_of(f: &Function, v: Value) -> Option<ConstValue> {
    f.as_const(v)
}

// ---------------------------------------------------------------------------------------------
// Inlining
// ---------------------------------------------------------------------------------------------

/// Module with helper `inc(x: i32) -> i32 { x + 1 }` (its add has span 10..20 of file 7) and
/// kernel `k(out: *i32, a: i32)` storing `inc(inc(a))`.
fn inc_module() -> Module {
    let mut m = Module::default();
    let i32t = m.types.intern(Type::scalar(DType::I32));
    let pi32 = m.types.intern(Type { elem: Elem::Ptr(DType::I32), shape: vec![] });
    let helper_span = Span::new(FileId(7), 10, 20);
    let mut h = Function::new("inc", FuncKind::Helper, helper_span);
    h.results = vec![i32t];
    let x = h.add_param("x", i32t);
    let body = h.body;
    let one = h.append_op(body, Op::Const { value: ConstValue::Int(1) }, &[i32t], helper_span);
    let one = h.op(one).results[0];
    let add =
        h.append_op(body, Op::Binary { op: BinaryOp::Add, lhs: x, rhs: one }, &[i32t], helper_span);
    let sum = h.op(add).results[0];
    h.append_op(body, Op::Yield { values: vec![sum] }, &[], helper_span);
    m.functions.push(h);

    let mut k = Function::new("k", FuncKind::Kernel, Span::DUMMY);
    let out = k.add_param("out", pi32);
    let a = k.add_param("a", i32t);
    let body = k.body;
    let c1 = k.append_op(body, Op::Call { func: FuncId(0), args: vec![a] }, &[i32t], Span::DUMMY);
    let r1 = k.op(c1).results[0];
    let c2 = k.append_op(body, Op::Call { func: FuncId(0), args: vec![r1] }, &[i32t], Span::DUMMY);
    let r2 = k.op(c2).results[0];
    k.append_op(body, Op::Store { ptr: out, value: r2, mask: None }, &[], Span::DUMMY);
    k.append_op(body, Op::Yield { values: vec![] }, &[], Span::DUMMY);
    m.functions.push(k);
    m
}

#[test]
fn inline_replaces_calls_and_drops_helpers() {
    let mut m = inc_module();
    verified(&m);
    assert_eq!(inline::run(&mut m), Ok(true));
    assert_eq!(m.functions.len(), 1, "the helper is gone");
    let f = kernel(&m);
    assert_eq!(count(f, "call"), 0);
    assert_eq!(count(f, "add"), 2);
    assert_eq!(count(f, "const"), 2);
    // The store now takes the second inlined add, whose lhs is the first inlined add, whose lhs
    // is the parameter `a`.
    let v = stored_value(f);
    let Op::Binary { op: BinaryOp::Add, lhs: inner, .. } = f.op(f.defining_op(v).unwrap()).op
    else {
        panic!("stored value is not an add")
    };
    let Op::Binary { op: BinaryOp::Add, lhs, .. } = f.op(f.defining_op(inner).unwrap()).op else {
        panic!("inner is not an add")
    };
    assert_eq!(lhs, f.params[1].value);
    // Spans still point into the helper.
    assert_eq!(f.op(f.defining_op(v).unwrap()).span, Span::new(FileId(7), 10, 20));
    assert!(verify_module_with(&m, &VerifyOptions::after_inlining()).is_ok());
}

#[test]
fn inline_then_pipeline_folds_the_helper_arithmetic() {
    let mut m = inc_module();
    passes::run_default_pipeline(&mut m).unwrap();
    let f = kernel(&m);
    // inc(inc(a)) = (a + 1) + 1; constants are not reassociated (that could hide an overflow),
    // so two adds remain, sharing one CSE'd constant 1.
    assert_eq!(count(f, "add"), 2);
    assert_eq!(count(f, "const"), 1);
    verified(&m);
}

#[test]
fn inline_copies_nested_regions_and_helpers_calling_helpers() {
    // helper `sum_to(n: i32) -> i32 { let mut s = 0; for i in range(0, n, 1) { s = s + i }; s }`
    // helper `twice(n) -> i32 { sum_to(n) + sum_to(n) }`
    // kernel k(out: *i32, n: i32) { if n > 0 { store(out, twice(n)) } }
    let mut m = Module::default();
    let i32t = m.types.intern(Type::scalar(DType::I32));
    let boolt = m.types.intern(Type::scalar(DType::Bool));
    let pi32 = m.types.intern(Type { elem: Elem::Ptr(DType::I32), shape: vec![] });
    let sp = Span::DUMMY;

    let mut h = Function::new("sum_to", FuncKind::Helper, sp);
    h.results = vec![i32t];
    let n = h.add_param("n", i32t);
    let body = h.body;
    let zero = h.append_op(body, Op::Const { value: ConstValue::Int(0) }, &[i32t], sp);
    let zero = h.op(zero).results[0];
    let one = h.append_op(body, Op::Const { value: ConstValue::Int(1) }, &[i32t], sp);
    let one = h.op(one).results[0];
    let lb = h.new_region(&[i32t, i32t]);
    let (iv, s) = (h.region(lb).args[0], h.region(lb).args[1]);
    let add = h.append_op(lb, Op::Binary { op: BinaryOp::Add, lhs: s, rhs: iv }, &[i32t], sp);
    let s2 = h.op(add).results[0];
    h.append_op(lb, Op::Yield { values: vec![s2] }, &[], sp);
    let fo = h.append_op(
        body,
        Op::For { lo: zero, hi: n, step: one, init: vec![zero], body: lb },
        &[i32t],
        sp,
    );
    let total = h.op(fo).results[0];
    h.append_op(body, Op::Yield { values: vec![total] }, &[], sp);
    m.functions.push(h);

    let mut t = Function::new("twice", FuncKind::Helper, sp);
    t.results = vec![i32t];
    let n = t.add_param("n", i32t);
    let body = t.body;
    let c1 = t.append_op(body, Op::Call { func: FuncId(0), args: vec![n] }, &[i32t], sp);
    let c2 = t.append_op(body, Op::Call { func: FuncId(0), args: vec![n] }, &[i32t], sp);
    let (a, b) = (t.op(c1).results[0], t.op(c2).results[0]);
    let add = t.append_op(body, Op::Binary { op: BinaryOp::Add, lhs: a, rhs: b }, &[i32t], sp);
    let r = t.op(add).results[0];
    t.append_op(body, Op::Yield { values: vec![r] }, &[], sp);
    m.functions.push(t);

    let mut k = Function::new("k", FuncKind::Kernel, sp);
    let out = k.add_param("out", pi32);
    let n = k.add_param("n", i32t);
    let body = k.body;
    let z = k.append_op(body, Op::Const { value: ConstValue::Int(0) }, &[i32t], sp);
    let z = k.op(z).results[0];
    let gt = k.append_op(body, Op::Cmp { pred: CmpPred::Gt, lhs: n, rhs: z }, &[boolt], sp);
    let cond = k.op(gt).results[0];
    let then_r = k.new_region(&[]);
    let else_r = k.new_region(&[]);
    let call = k.append_op(then_r, Op::Call { func: FuncId(1), args: vec![n] }, &[i32t], sp);
    let v = k.op(call).results[0];
    k.append_op(then_r, Op::Store { ptr: out, value: v, mask: None }, &[], sp);
    k.append_op(then_r, Op::Yield { values: vec![] }, &[], sp);
    k.append_op(else_r, Op::Yield { values: vec![] }, &[], sp);
    k.append_op(body, Op::If { cond, then_body: then_r, else_body: else_r }, &[], sp);
    k.append_op(body, Op::Yield { values: vec![] }, &[], sp);
    m.functions.push(k);
    verified(&m);

    assert_eq!(inline::run(&mut m), Ok(true));
    assert_eq!(m.functions.len(), 1);
    let f = kernel(&m);
    assert_eq!(count(f, "call"), 0);
    assert_eq!(count(f, "for"), 2, "one loop per inlined sum_to: {:?}", mnemonics(f));
    assert_eq!(count(f, "add"), 3);
    assert!(verify_module_with(&m, &VerifyOptions::after_inlining()).is_ok());
    // The two loops are identical pure computations but have regions, so CSE keeps both; the
    // full pipeline still verifies.
    passes::run_default_pipeline(&mut m).unwrap();
    verified(&m);
    assert_eq!(count(kernel(&m), "for"), 2);
}

#[test]
fn inline_rejects_recursion_and_leaves_the_module_alone() {
    // f(x) = g(x); g(x) = f(x); kernel calls f.
    let mut m = Module::default();
    let i32t = m.types.intern(Type::scalar(DType::I32));
    for (name, callee) in [("f", 1), ("g", 0)] {
        let mut h = Function::new(name, FuncKind::Helper, Span::DUMMY);
        h.results = vec![i32t];
        let x = h.add_param("x", i32t);
        let body = h.body;
        let c = h.append_op(
            body,
            Op::Call { func: FuncId(callee), args: vec![x] },
            &[i32t],
            Span::DUMMY,
        );
        let r = h.op(c).results[0];
        h.append_op(body, Op::Yield { values: vec![r] }, &[], Span::DUMMY);
        m.functions.push(h);
    }
    let before = m.functions.clone();
    let err = inline::run(&mut m).unwrap_err();
    match &err {
        PassError::RecursiveCall { chain, .. } => {
            assert_eq!(chain, &["f".to_string(), "g".to_string(), "f".to_string()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("f -> g -> f"));
    assert_eq!(m.functions, before);
    assert!(matches!(passes::run_default_pipeline(&mut m), Err(PassError::RecursiveCall { .. })));
}

#[test]
fn inline_rejects_bad_calls() {
    let mut m = inc_module();
    // Call with two arguments instead of one.
    let k = &mut m.functions[1];
    let call = k.walk()[0];
    if let Op::Call { args, .. } = &mut k.op_mut(call).op {
        args.push(args[0]);
    }
    assert!(matches!(inline::run(&mut m), Err(PassError::CallArity { .. })));
    let mut m = inc_module();
    let k = &mut m.functions[1];
    let call = k.walk()[0];
    if let Op::Call { func, .. } = &mut k.op_mut(call).op {
        *func = FuncId(9);
    }
    assert!(matches!(inline::run(&mut m), Err(PassError::UnknownCallee { callee: 9, .. })));
}

// ---------------------------------------------------------------------------------------------
// DCE
// ---------------------------------------------------------------------------------------------

#[test]
fn dce_removes_unused_pure_ops_and_keeps_side_effects() {
    let mut b = B::new("k", FuncKind::Kernel);
    let pf = b.pt(DType::F32, &[]);
    let x = b.param("x", pf);
    let body = b.body();
    let f32t = b.t(DType::F32, &[]);
    let v = b.op(body, Op::Load { ptr: x, mask: None, other: None }, f32t);
    let unused = b.op(body, Op::Unary { op: UnaryOp::Exp, value: v }, f32t);
    let _unused2 = b.bin(body, BinaryOp::Mul, unused, unused);
    // A division by zero nobody uses: removed (an erroneous program has nothing to preserve).
    let a = b.int(body, DType::I32, 1);
    let z = b.int(body, DType::I32, 0);
    let _d = b.bin(body, BinaryOp::Div, a, z);
    let two = b.float(body, DType::F32, 2.0);
    let kept = b.bin(body, BinaryOp::Mul, v, two);
    b.store(body, x, kept);
    let tr = b.konst(body, DType::Bool, ConstValue::Bool(true));
    b.ops(body, Op::DeviceAssert { cond: tr, message: "m".into() }, &[]);
    b.ops(body, Op::Print { prefix: "p".into(), values: vec![] }, &[]);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    verified(&m);
    assert!(dce::run(&mut m));
    let f = kernel(&m);
    assert_eq!(
        mnemonics(f),
        ["load", "const", "mul", "store", "const", "device_assert", "print", "yield"]
    );
    assert!(!dce::run(&mut m), "second run changes nothing");
    verified(&m);
}

#[test]
fn dce_keeps_loops_with_side_effects_and_drops_dead_carried_values() {
    // for i in range(0, n, 1) carrying (acc, junk, used):
    //   store(out, acc); junk' = junk * 2 (feeds only itself); used' = used + i
    // after the loop only `used` is stored.
    let mut b = B::new("k", FuncKind::Kernel);
    let i32t = b.t(DType::I32, &[]);
    let pi = b.pt(DType::I32, &[]);
    let out = b.param("out", pi);
    let n = b.param("n", i32t);
    let body = b.body();
    let zero = b.int(body, DType::I32, 0);
    let one = b.int(body, DType::I32, 1);
    let two = b.int(body, DType::I32, 2);
    let lb = b.f.new_region(&[i32t, i32t, i32t, i32t]);
    let args = b.f.region(lb).args.clone();
    let (iv, acc, junk, used) = (args[0], args[1], args[2], args[3]);
    b.store(lb, out, acc);
    let junk2 = b.bin(lb, BinaryOp::Mul, junk, two);
    let used2 = b.bin(lb, BinaryOp::Add, used, iv);
    b.yield_(lb, vec![acc, junk2, used2]);
    let res = b.ops(
        body,
        Op::For { lo: zero, hi: n, step: one, init: vec![zero, one, zero], body: lb },
        &[i32t, i32t, i32t],
    );
    b.store(body, out, res[2]);
    // A pure loop whose result is unused disappears entirely.
    let lb2 = b.f.new_region(&[i32t, i32t]);
    let a2 = b.f.region(lb2).args.clone();
    let s = b.bin(lb2, BinaryOp::Add, a2[1], a2[0]);
    b.yield_(lb2, vec![s]);
    b.ops(body, Op::For { lo: zero, hi: n, step: one, init: vec![zero], body: lb2 }, &[i32t]);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    verified(&m);
    assert!(dce::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    assert_eq!(count(f, "for"), 1);
    assert_eq!(count(f, "mul"), 0, "junk is gone");
    let fo = only(f, "for");
    let Op::For { init, body: lb, .. } = &f.op(fo).op else { unreachable!() };
    // acc (read by the store) and used (read after the loop) remain, in that order.
    assert_eq!(init, &vec![zero, zero]);
    assert_eq!(f.region(*lb).args.len(), 3);
    assert_eq!(f.op(fo).results.len(), 2);
    // The store after the loop reads the second remaining result.
    let stores: Vec<OpId> =
        f.walk().into_iter().filter(|&id| f.op(id).op.mnemonic() == "store").collect();
    let Op::Store { value, .. } = f.op(stores[1]).op else { unreachable!() };
    assert_eq!(value, f.op(fo).results[1]);
}

#[test]
fn dce_drops_unused_if_results_and_empty_ifs() {
    let mut b = B::new("k", FuncKind::Kernel);
    let i32t = b.t(DType::I32, &[]);
    let bt = b.t(DType::Bool, &[]);
    let pi = b.pt(DType::I32, &[]);
    let out = b.param("out", pi);
    let c = b.param("c", bt);
    let body = b.body();
    let (tr, er) = (b.f.new_region(&[]), b.f.new_region(&[]));
    let one = b.int(tr, DType::I32, 1);
    let two = b.int(tr, DType::I32, 2);
    b.yield_(tr, vec![one, two]);
    let three = b.int(er, DType::I32, 3);
    let four = b.int(er, DType::I32, 4);
    b.yield_(er, vec![three, four]);
    let r = b.ops(body, Op::If { cond: c, then_body: tr, else_body: er }, &[i32t, i32t]);
    b.store(body, out, r[1]);
    // An if whose results are unused and has no side effects.
    let (tr2, er2) = (b.f.new_region(&[]), b.f.new_region(&[]));
    let five = b.int(tr2, DType::I32, 5);
    b.yield_(tr2, vec![five]);
    let six = b.int(er2, DType::I32, 6);
    b.yield_(er2, vec![six]);
    b.ops(body, Op::If { cond: c, then_body: tr2, else_body: er2 }, &[i32t]);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    assert!(dce::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    assert_eq!(count(f, "if"), 1);
    let iff = only(f, "if");
    assert_eq!(f.op(iff).results.len(), 1);
    assert_eq!(stored_value(f), f.op(iff).results[0]);
    // Each branch keeps only the constant it yields: 2 and 4.
    let consts: Vec<i64> = f
        .walk()
        .into_iter()
        .filter_map(|id| match f.op(id).op {
            Op::Const { value: ConstValue::Int(i) } => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(consts, [2, 4]);
}

// ---------------------------------------------------------------------------------------------
// CSE
// ---------------------------------------------------------------------------------------------

#[test]
fn cse_merges_equal_pure_ops() {
    let mut b = B::new("k", FuncKind::Kernel);
    let i32t = b.t(DType::I32, &[]);
    let pi = b.pt(DType::I32, &[]);
    let out = b.param("out", pi);
    let x = b.param("x", i32t);
    let y = b.param("y", i32t);
    let body = b.body();
    let a1 = b.bin(body, BinaryOp::Add, x, y);
    let a2 = b.bin(body, BinaryOp::Add, y, x); // commutative integer add: same value
    let s = b.bin(body, BinaryOp::Sub, a1, a2);
    let s2 = b.bin(body, BinaryOp::Sub, a2, a1);
    let m1 = b.bin(body, BinaryOp::Mul, s, s2);
    let p1 = b.ops(body, Op::ProgramId { axis: 0 }, &[i32t])[0];
    let p2 = b.ops(body, Op::ProgramId { axis: 0 }, &[i32t])[0];
    let p3 = b.ops(body, Op::ProgramId { axis: 1 }, &[i32t])[0];
    let q = b.bin(body, BinaryOp::Add, p1, p2);
    let q = b.bin(body, BinaryOp::Add, q, p3);
    let r = b.bin(body, BinaryOp::Add, m1, q);
    b.store(body, out, r);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    assert!(cse::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    // x+y once, a1-a2 once (both subs become a1 - a1), one program_id(0), one program_id(1).
    assert_eq!(count(f, "add"), 4);
    assert_eq!(count(f, "sub"), 1);
    assert_eq!(count(f, "program_id"), 2);
    let sub = only(f, "sub");
    let Op::Binary { lhs, rhs, .. } = f.op(sub).op else { unreachable!() };
    assert_eq!(lhs, rhs);
    assert_eq!(lhs, a1);
}

#[test]
fn cse_compares_constants_by_bits_and_never_merges_loads() {
    let mut b = B::new("k", FuncKind::Kernel);
    let pf = b.pt(DType::F32, &[]);
    let x = b.param("x", pf);
    let body = b.body();
    let z = b.float(body, DType::F32, 0.0);
    let nz = b.float(body, DType::F32, -0.0);
    let z2 = b.float(body, DType::F32, 0.0);
    let nan = b.float(body, DType::F32, f64::NAN);
    let nan2 = b.float(body, DType::F32, f64::NAN);
    let l1 = b.op(body, Op::Load { ptr: x, mask: None, other: None }, b.f.value_type(z));
    b.store(body, x, z);
    let l2 = b.op(body, Op::Load { ptr: x, mask: None, other: None }, b.f.value_type(z));
    // Float add is not treated as commutative: these stay two ops.
    let s1 = b.bin(body, BinaryOp::Add, l1, l2);
    let s2 = b.bin(body, BinaryOp::Add, l2, l1);
    for v in [nz, z2, nan, nan2, s1, s2] {
        b.store(body, x, v);
    }
    b.yield_(body, vec![]);
    let mut m = b.finish();
    assert!(cse::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    assert_eq!(count(f, "const"), 3, "0.0, -0.0 and one NaN");
    assert_eq!(count(f, "load"), 2);
    assert_eq!(count(f, "add"), 2);
    let stored: Vec<Value> = f
        .walk()
        .into_iter()
        .filter_map(|id| match f.op(id).op {
            Op::Store { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(stored[0], z);
    assert_eq!(stored[1], nz);
    assert_eq!(stored[2], z, "the second 0.0 is the first");
    assert_eq!(stored[3], nan);
    assert_eq!(stored[4], nan, "NaN with the same payload merges");
}

#[test]
fn cse_scopes_follow_regions() {
    // c = x * 3 outside; inside the loop body x * 3 again (reuses c) and x * 5; after the loop
    // x * 5 again, which must NOT reuse the one inside the loop.
    let mut b = B::new("k", FuncKind::Kernel);
    let i32t = b.t(DType::I32, &[]);
    let pi = b.pt(DType::I32, &[]);
    let out = b.param("out", pi);
    let x = b.param("x", i32t);
    let body = b.body();
    let three = b.int(body, DType::I32, 3);
    let five = b.int(body, DType::I32, 5);
    let zero = b.int(body, DType::I32, 0);
    let one = b.int(body, DType::I32, 1);
    let c = b.bin(body, BinaryOp::Mul, x, three);
    let lb = b.f.new_region(&[i32t]);
    let c_in = b.bin(lb, BinaryOp::Mul, x, three);
    let d_in = b.bin(lb, BinaryOp::Mul, x, five);
    b.store(lb, out, c_in);
    b.store(lb, out, d_in);
    b.yield_(lb, vec![]);
    b.ops(body, Op::For { lo: zero, hi: x, step: one, init: vec![], body: lb }, &[]);
    let d_out = b.bin(body, BinaryOp::Mul, x, five);
    b.store(body, out, d_out);
    b.store(body, out, c);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    assert!(cse::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    assert_eq!(count(f, "mul"), 3, "c, x*5 in the loop, x*5 after it");
    let lb_ops = &f.region(lb).ops;
    let Op::Store { value, .. } = f.op(lb_ops[1]).op else { panic!("{:?}", mnemonics(f)) };
    assert_eq!(value, c, "the loop reuses the outer product");
}

// ---------------------------------------------------------------------------------------------
// Constant folding
// ---------------------------------------------------------------------------------------------

#[test]
fn const_fold_scalar_arithmetic() {
    // (2 + 3) * 7 = 35 in i32.
    let mut m = store_kernel(DType::I32, |b, r| {
        let two = b.int(r, DType::I32, 2);
        let three = b.int(r, DType::I32, 3);
        let seven = b.int(r, DType::I32, 7);
        let s = b.bin(r, BinaryOp::Add, two, three);
        b.bin(r, BinaryOp::Mul, s, seven)
    });
    passes::run_default_pipeline(&mut m).unwrap();
    verified(&m);
    let f = kernel(&m);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Int(35)));
    assert_eq!(mnemonics(f), ["const", "store", "yield"]);
}

#[test]
fn const_fold_leaves_runtime_errors_for_run_time() {
    // 7 / 0 and i32::MAX + 1 both fail at run time: left alone.
    for (op, a, b_) in [(BinaryOp::Div, 7, 0), (BinaryOp::Add, i32::MAX as i64, 1)] {
        let mut m = store_kernel(DType::I32, |b, r| {
            let x = b.int(r, DType::I32, a);
            let y = b.int(r, DType::I32, b_);
            b.bin(r, op, x, y)
        });
        assert!(!const_fold::run(&mut m));
        passes::run_default_pipeline(&mut m).unwrap();
        assert_eq!(count(kernel(&m), op.name()), 1);
        verified(&m);
    }
    // Unsigned arithmetic wraps, so it folds: 250u8 + 10u8 = 4.
    let mut m = store_kernel(DType::U8, |b, r| {
        let x = b.int(r, DType::U8, 250);
        let y = b.int(r, DType::U8, 10);
        b.bin(r, BinaryOp::Add, x, y)
    });
    assert!(const_fold::run(&mut m));
    let f = kernel(&m);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Int(4)));
}

#[test]
fn const_fold_floats_nan_and_cmp() {
    // NaN + 1.0 = NaN; (NaN == NaN) = false; (NaN != NaN) = true; 1.0 / 0.0 = inf (not an error).
    let mut m = store_kernel(DType::F32, |b, r| {
        let nan = b.float(r, DType::F32, f64::NAN);
        let one = b.float(r, DType::F32, 1.0);
        b.bin(r, BinaryOp::Add, nan, one)
    });
    assert!(const_fold::run(&mut m));
    let f = kernel(&m);
    match const_of(f, stored_value(f)) {
        Some(ConstValue::Float(x)) => assert!(x.is_nan()),
        other => panic!("{other:?}"),
    }
    let mut m = store_kernel(DType::F32, |b, r| {
        let one = b.float(r, DType::F32, 1.0);
        let zero = b.float(r, DType::F32, 0.0);
        b.bin(r, BinaryOp::Div, one, zero)
    });
    assert!(const_fold::run(&mut m));
    let f = kernel(&m);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Float(f64::INFINITY)));
    for (pred, expect) in [(CmpPred::Eq, false), (CmpPred::Ne, true), (CmpPred::Lt, false)] {
        let mut m = store_kernel(DType::Bool, |b, r| {
            let nan = b.float(r, DType::F32, f64::NAN);
            let bt = b.t(DType::Bool, &[]);
            b.op(r, Op::Cmp { pred, lhs: nan, rhs: nan }, bt)
        });
        // canonicalize must not fold `cmp x, x` on floats; const-fold evaluates it correctly.
        assert!(!canonicalize::run(&mut m));
        assert!(const_fold::run(&mut m));
        let f = kernel(&m);
        assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Bool(expect)), "{pred:?}");
    }
}

#[test]
fn const_fold_casts_select_and_fma() {
    // cast(300: i32 -> u8) = 44; cast(-1.5: f32 -> i32) = -1 (truncation); cast(nan -> i32) = 0.
    for (from, to, v, expect) in [
        (DType::I32, DType::U8, ConstValue::Int(300), ConstValue::Int(44)),
        (DType::F32, DType::I32, ConstValue::Float(-1.5), ConstValue::Int(-1)),
        (DType::F32, DType::I32, ConstValue::Float(f64::NAN), ConstValue::Int(0)),
    ] {
        let mut m = store_kernel(to, |b, r| {
            let x = b.konst(r, from, v);
            let t = b.t(to, &[]);
            b.op(r, Op::Cast { value: x }, t)
        });
        assert!(const_fold::run(&mut m));
        let f = kernel(&m);
        assert_eq!(const_of(f, stored_value(f)), Some(expect));
    }
    // fma(2, 3, 1) = 7; select(false, 1.0, 2.0) = 2.0
    let mut m = store_kernel(DType::F32, |b, r| {
        let two = b.float(r, DType::F32, 2.0);
        let three = b.float(r, DType::F32, 3.0);
        let one = b.float(r, DType::F32, 1.0);
        let ft = b.t(DType::F32, &[]);
        let fma = b.op(r, Op::Fma { a: two, b: three, c: one }, ft);
        let no = b.konst(r, DType::Bool, ConstValue::Bool(false));
        let s = b.op(r, Op::Select { cond: no, on_true: one, on_false: two }, ft);
        b.bin(r, BinaryOp::Add, fma, s)
    });
    passes::run_default_pipeline(&mut m).unwrap();
    let f = kernel(&m);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Float(9.0)));
}

#[test]
fn const_fold_block_constants_stay_splats() {
    // splat(2) + splat(3) over f32[8] -> splat(5.0)
    let mut b = B::new("k", FuncKind::Kernel);
    let pt = b.pt(DType::F32, &[]);
    let out = b.param("out", pt);
    let body = b.body();
    let out = b.splat(body, out, &[8]);
    let two = b.float(body, DType::F32, 2.0);
    let three = b.float(body, DType::F32, 3.0);
    let s2 = b.splat(body, two, &[8]);
    let s3 = b.splat(body, three, &[8]);
    let sum = b.bin(body, BinaryOp::Add, s2, s3);
    b.store(body, out, sum);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    passes::run_default_pipeline(&mut m).unwrap();
    verified(&m);
    let f = kernel(&m);
    assert_eq!(mnemonics(f), ["splat", "const", "splat", "store", "yield"]);
    let Op::Splat { value } = f.op(f.defining_op(stored_value(f)).unwrap()).op else {
        unreachable!()
    };
    assert_eq!(const_of(f, value), Some(ConstValue::Float(5.0)));
}

#[test]
fn const_fold_zero_trip_loops_and_constant_ifs() {
    // for i in range(10, 3, 1) carrying s = 42 { s = s + i }  ->  42
    let mut m = store_kernel(DType::I32, |b, r| {
        let i32t = b.t(DType::I32, &[]);
        let lo = b.int(r, DType::I32, 10);
        let hi = b.int(r, DType::I32, 3);
        let step = b.int(r, DType::I32, 1);
        let init = b.int(r, DType::I32, 42);
        let lb = b.f.new_region(&[i32t, i32t]);
        let a = b.f.region(lb).args.clone();
        let s = b.bin(lb, BinaryOp::Add, a[1], a[0]);
        b.yield_(lb, vec![s]);
        b.ops(r, Op::For { lo, hi, step, init: vec![init], body: lb }, &[i32t])[0]
    });
    assert!(const_fold::run(&mut m));
    let f = kernel(&m);
    assert_eq!(count(f, "for"), 0);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Int(42)));
    verified(&m);

    // Unsigned bounds compare as unsigned: range(0, u32::MAX) is NOT empty (u32::MAX is stored
    // as 4294967295, not -1), and a zero step is left for the run-time check.
    for (lo, hi, step) in [(0, u32::MAX as i64, 1), (5, 1, 0)] {
        let mut m = store_kernel(DType::U32, |b, r| {
            let ut = b.t(DType::U32, &[]);
            let lo = b.int(r, DType::U32, lo);
            let hi = b.int(r, DType::U32, hi);
            let step = b.int(r, DType::U32, step);
            let lb = b.f.new_region(&[ut, ut]);
            let a = b.f.region(lb).args.clone();
            b.yield_(lb, vec![a[1]]);
            b.ops(r, Op::For { lo, hi, step, init: vec![lo], body: lb }, &[ut])[0]
        });
        const_fold::run(&mut m);
        assert_eq!(count(kernel(&m), "for"), 1);
    }

    // if false { yield 1 } else { t = 2 * 5; yield t }  ->  10 after the pipeline
    let mut m = store_kernel(DType::I32, |b, r| {
        let i32t = b.t(DType::I32, &[]);
        let c = b.konst(r, DType::Bool, ConstValue::Bool(false));
        let (tr, er) = (b.f.new_region(&[]), b.f.new_region(&[]));
        let one = b.int(tr, DType::I32, 1);
        b.yield_(tr, vec![one]);
        let two = b.int(er, DType::I32, 2);
        let five = b.int(er, DType::I32, 5);
        let t = b.bin(er, BinaryOp::Mul, two, five);
        b.yield_(er, vec![t]);
        b.ops(r, Op::If { cond: c, then_body: tr, else_body: er }, &[i32t])[0]
    });
    assert!(const_fold::run(&mut m));
    verified(&m);
    assert_eq!(count(kernel(&m), "if"), 0);
    assert_eq!(count(kernel(&m), "mul"), 1, "moved out, folded next round");
    passes::run_default_pipeline(&mut m).unwrap();
    let f = kernel(&m);
    assert_eq!(const_of(f, stored_value(f)), Some(ConstValue::Int(10)));
    assert_eq!(mnemonics(f), ["const", "store", "yield"]);
}

// ---------------------------------------------------------------------------------------------
// Canonicalisation
// ---------------------------------------------------------------------------------------------

/// Builds a kernel storing `op(x, c)` (or `op(c, x)`) for a parameter `x: d` and the constant `c`,
/// canonicalises it, and says whether the stored value became `x` itself.
fn identity_folds(d: DType, op: BinaryOp, c: ConstValue, const_on_left: bool) -> bool {
    let mut b = B::new("k", FuncKind::Kernel);
    let t = b.t(d, &[]);
    let pt = b.pt(d, &[]);
    let out = b.param("out", pt);
    let x = b.param("x", t);
    let body = b.body();
    let k = b.konst(body, d, c);
    let (lhs, rhs) = if const_on_left { (k, x) } else { (x, k) };
    let v = b.bin(body, op, lhs, rhs);
    b.store(body, out, v);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    canonicalize::run(&mut m);
    verified(&m);
    stored_value(kernel(&m)) == x
}

#[test]
fn canonicalize_float_identities_are_exact_only() {
    use BinaryOp::*;
    let f = |v: f64| ConstValue::Float(v);
    // Exact for every x (including -0.0, NaN, inf):
    assert!(identity_folds(DType::F32, Mul, f(1.0), false));
    assert!(identity_folds(DType::F32, Mul, f(1.0), true));
    assert!(identity_folds(DType::F32, Div, f(1.0), false));
    assert!(identity_folds(DType::F32, Sub, f(0.0), false));
    assert!(identity_folds(DType::F32, Add, f(-0.0), false));
    assert!(identity_folds(DType::F16, Add, f(-0.0), true));
    // Not identities: -0.0 + 0.0 = +0.0; x - (-0.0) = x + 0.0; 0.0 * x; 1.0 / x; 0.0 - x.
    assert!(!identity_folds(DType::F32, Add, f(0.0), false));
    assert!(!identity_folds(DType::F32, Add, f(0.0), true));
    assert!(!identity_folds(DType::F32, Sub, f(-0.0), false));
    assert!(!identity_folds(DType::F32, Mul, f(0.0), false));
    assert!(!identity_folds(DType::F32, Div, f(1.0), true));
    assert!(!identity_folds(DType::F32, Sub, f(0.0), true));
    assert!(!identity_folds(DType::F64, Mul, f(-1.0), false));
}

#[test]
fn canonicalize_integer_and_bool_identities() {
    use BinaryOp::*;
    let i = ConstValue::Int;
    assert!(identity_folds(DType::I32, Add, i(0), false));
    assert!(identity_folds(DType::I32, Add, i(0), true));
    assert!(identity_folds(DType::I64, Sub, i(0), false));
    assert!(identity_folds(DType::I32, Mul, i(1), true));
    assert!(identity_folds(DType::U8, Div, i(1), false));
    assert!(identity_folds(DType::I16, Or, i(0), false));
    assert!(identity_folds(DType::I16, Xor, i(0), true));
    assert!(identity_folds(DType::I32, And, i(-1), false));
    assert!(identity_folds(DType::U16, And, i(0xFFFF), false), "u16 all-ones");
    assert!(!identity_folds(DType::U16, And, i(0x7FFF), false));
    assert!(identity_folds(DType::U32, Shl, i(0), false));
    assert!(identity_folds(DType::I32, Shr, i(0), false));
    assert!(!identity_folds(DType::I32, Sub, i(0), true), "0 - x is a negation");
    assert!(!identity_folds(DType::I32, Div, i(1), true));
    assert!(!identity_folds(DType::I32, Mul, i(-1), false));
    let t = ConstValue::Bool;
    assert!(identity_folds(DType::Bool, And, t(true), false));
    assert!(identity_folds(DType::Bool, Or, t(false), true));
    assert!(identity_folds(DType::Bool, Xor, t(false), false));
    assert!(!identity_folds(DType::Bool, Xor, t(true), false));
}

#[test]
fn canonicalize_absorbing_and_self_rules() {
    // x * 0 -> 0, x - x -> 0, x ^ x -> 0, x & x -> x, min(x, x) -> x; x % 1 -> 0; x | ~0 -> ~0.
    use BinaryOp::*;
    let cases: Vec<(BinaryOp, Option<i64>, Option<i64>)> = vec![
        (Mul, Some(0), Some(0)),
        (Sub, None, Some(0)),
        (Xor, None, Some(0)),
        (Rem, Some(1), Some(0)),
        (Or, Some(-1), Some(-1)),
        (And, Some(0), Some(0)),
    ];
    for (op, k, expect) in cases {
        let mut m = store_kernel(DType::I32, |b, r| {
            // A loaded `x`, so that it is not a constant.
            let p = b.f.params[0].value;
            let t = b.t(DType::I32, &[]);
            let x = b.op(r, Op::Load { ptr: p, mask: None, other: None }, t);
            let rhs = match k {
                Some(c) => b.int(r, DType::I32, c),
                None => x,
            };
            b.bin(r, op, x, rhs)
        });
        passes::run_default_pipeline(&mut m).unwrap();
        verified(&m);
        let f = kernel(&m);
        assert_eq!(
            const_of(f, stored_value(f)),
            expect.map(ConstValue::Int),
            "{op:?} {k:?}: {:?}",
            mnemonics(f)
        );
    }
    // min(x, x) -> x even for floats (NaN-propagating min of equal operands is the operand).
    let mut m = store_kernel(DType::F32, |b, r| {
        let p = b.f.params[0].value;
        let t = b.t(DType::F32, &[]);
        let x = b.op(r, Op::Load { ptr: p, mask: None, other: None }, t);
        b.bin(r, Min, x, x)
    });
    assert!(canonicalize::run(&mut m));
    assert_eq!(count(kernel(&m), "min"), 0);
}

#[test]
fn canonicalize_shape_ops() {
    // x: f32[4, 8] loaded; broadcast(x) to the same type -> x; permute(x, [0, 1]) -> x;
    // permute(permute(x, [1, 0]), [1, 0]) -> x; broadcast(splat(c)) -> splat(c);
    // expand_dims(splat(c): [8]) -> splat(c): [1, 8]; reshape(reshape(x)) -> one reshape.
    let mut b = B::new("k", FuncKind::Kernel);
    let p = b.pt(DType::F32, &[]);
    let out = b.param("out", p);
    let body = b.body();
    let out = b.splat(body, out, &[4, 8]);
    let t48 = b.t(DType::F32, &[4, 8]);
    let t84 = b.t(DType::F32, &[8, 4]);
    let t32 = b.t(DType::F32, &[32]);
    let t18 = b.t(DType::F32, &[1, 8]);
    let x = b.op(body, Op::Load { ptr: out, mask: None, other: None }, t48);
    let b1 = b.op(body, Op::Broadcast { value: x }, t48);
    let p1 = b.op(body, Op::Permute { value: b1, perm: vec![0, 1] }, t48);
    let pt = b.op(body, Op::Permute { value: p1, perm: vec![1, 0] }, t84);
    let pp = b.op(body, Op::Permute { value: pt, perm: vec![1, 0] }, t48);
    let r1 = b.op(body, Op::Reshape { value: pp }, t32);
    let r2 = b.op(body, Op::Reshape { value: r1 }, t48);
    b.store(body, out, r2);
    let c = b.float(body, DType::F32, 1.5);
    let s8 = b.splat(body, c, &[8]);
    let e = b.op(body, Op::ExpandDims { value: s8, axis: 0 }, t18);
    let bc = b.op(body, Op::Broadcast { value: e }, t48);
    b.store(body, out, bc);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    verified(&m);
    passes::run_default_pipeline(&mut m).unwrap();
    verified(&m);
    let f = kernel(&m);
    assert_eq!(mnemonics(f), ["splat", "load", "store", "const", "splat", "store", "yield"]);
    let stores: Vec<Value> = f
        .walk()
        .into_iter()
        .filter_map(|id| match f.op(id).op {
            Op::Store { value, .. } => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(stores[0], x);
    assert_eq!(f.value_type(stores[1]), t48);
}

#[test]
fn canonicalize_splat_hoisting_keeps_transcendentals_per_block() {
    // exp(splat(x)) stays a block op; neg(splat(x)) becomes splat(neg(x)).
    let mut b = B::new("k", FuncKind::Kernel);
    let p = b.pt(DType::F32, &[]);
    let out = b.param("out", p);
    let ft = b.t(DType::F32, &[]);
    let x = b.param("x", ft);
    let body = b.body();
    let out = b.splat(body, out, &[16]);
    let s = b.splat(body, x, &[16]);
    let t16 = b.t(DType::F32, &[16]);
    let e = b.op(body, Op::Unary { op: UnaryOp::Exp, value: s }, t16);
    let n = b.op(body, Op::Unary { op: UnaryOp::Neg, value: e }, t16);
    let n2 = b.op(body, Op::Unary { op: UnaryOp::Neg, value: s }, t16);
    let sum = b.bin(body, BinaryOp::Add, n, n2);
    b.store(body, out, sum);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    passes::run_default_pipeline(&mut m).unwrap();
    verified(&m);
    let f = kernel(&m);
    let exp = only(f, "exp");
    assert_eq!(f.value_type(f.op(exp).results[0]), t16);
    // Exactly one neg is scalar (the hoisted one).
    let scalar_negs = f
        .walk()
        .into_iter()
        .filter(|&id| f.op(id).op.mnemonic() == "neg" && f.value_type(f.op(id).results[0]) == ft)
        .count();
    assert_eq!(scalar_negs, 1);
}

#[test]
fn canonicalize_cmp_select_and_unary_rules() {
    // cmp(x, x) on i32: eq -> true, lt -> false; on f32 it stays (NaN).
    for (d, pred, expect) in [
        (DType::I32, CmpPred::Eq, Some(true)),
        (DType::I32, CmpPred::Lt, Some(false)),
        (DType::I64, CmpPred::Ge, Some(true)),
        (DType::F32, CmpPred::Eq, None),
    ] {
        let mut m = store_kernel(DType::Bool, |b, r| {
            let t = b.t(d, &[]);
            let x = b.f.add_param("x", t);
            let bt = b.t(DType::Bool, &[]);
            b.op(r, Op::Cmp { pred, lhs: x, rhs: x }, bt)
        });
        canonicalize::run(&mut m);
        let f = kernel(&m);
        assert_eq!(const_of(f, stored_value(f)), expect.map(ConstValue::Bool), "{d} {pred:?}");
    }
    // neg(neg(x)): removed for f32 and u32, kept for i32 (neg(i32::MIN) is an overflow error).
    for (d, removed) in [(DType::F32, true), (DType::U32, true), (DType::I32, false)] {
        let mut m = store_kernel(d, |b, r| {
            let t = b.t(d, &[]);
            let x = b.f.add_param("x", t);
            let n = b.op(r, Op::Unary { op: UnaryOp::Neg, value: x }, t);
            b.op(r, Op::Unary { op: UnaryOp::Neg, value: n }, t)
        });
        passes::run_default_pipeline(&mut m).unwrap();
        let f = kernel(&m);
        assert_eq!(stored_value(f) == f.params[1].value, removed, "{d}");
    }
    // select(c, x, x) -> x; select(c, true, false) -> c
    let mut m = store_kernel(DType::Bool, |b, r| {
        let bt = b.t(DType::Bool, &[]);
        let c = b.f.add_param("c", bt);
        let y = b.f.add_param("y", bt);
        let s1 = b.op(r, Op::Select { cond: c, on_true: y, on_false: y }, bt);
        let t = b.konst(r, DType::Bool, ConstValue::Bool(true));
        let fl = b.konst(r, DType::Bool, ConstValue::Bool(false));
        let s2 = b.op(r, Op::Select { cond: c, on_true: t, on_false: fl }, bt);
        b.bin(r, BinaryOp::And, s1, s2)
    });
    passes::run_default_pipeline(&mut m).unwrap();
    let f = kernel(&m);
    let Op::Binary { lhs, rhs, .. } = f.op(f.defining_op(stored_value(f)).unwrap()).op else {
        panic!("{:?}", mnemonics(f))
    };
    assert_eq!((lhs, rhs), (f.params[2].value, f.params[1].value));
}

#[test]
fn canonicalize_cast_round_trips() {
    // cast(cast(x: T -> U) -> T) == x exactly when every T fits in U.
    for (t, u, removed) in [
        (DType::I32, DType::I64, true),
        (DType::I8, DType::U8, true),
        (DType::I64, DType::I32, false),
        (DType::F16, DType::F32, true),
        (DType::F32, DType::F16, false),
        (DType::I16, DType::F32, true),
        (DType::I32, DType::F32, false),
        (DType::U8, DType::BF16, true),
        (DType::U16, DType::BF16, false),
        (DType::Bool, DType::F32, true),
        (DType::F32, DType::I32, false),
    ] {
        let mut m = store_kernel(t, |b, r| {
            let tt = b.t(t, &[]);
            let ut = b.t(u, &[]);
            let x = b.f.add_param("x", tt);
            let c = b.op(r, Op::Cast { value: x }, ut);
            b.op(r, Op::Cast { value: c }, tt)
        });
        canonicalize::run(&mut m);
        let f = kernel(&m);
        assert_eq!(stored_value(f) == f.params[1].value, removed, "{t} -> {u} -> {t}");
    }
}

#[test]
fn canonicalize_moves_constants_right_and_drops_zero_offsets() {
    let mut b = B::new("k", FuncKind::Kernel);
    let it = b.t(DType::I32, &[]);
    let pt = b.pt(DType::I32, &[]);
    let out = b.param("out", pt);
    let x = b.param("x", it);
    let body = b.body();
    let five = b.int(body, DType::I32, 5);
    let zero = b.int(body, DType::I32, 0);
    let a = b.bin(body, BinaryOp::Add, five, x);
    let p = b.op(body, Op::AddPtr { ptr: out, offset: zero }, pt);
    b.store(body, p, a);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    assert!(canonicalize::run(&mut m));
    verified(&m);
    let f = kernel(&m);
    let add = only(f, "add");
    assert_eq!(f.op(add).op, Op::Binary { op: BinaryOp::Add, lhs: x, rhs: five });
    let Op::Store { ptr, .. } = f.op(only(f, "store")).op else { unreachable!() };
    assert_eq!(ptr, out);
}

// ---------------------------------------------------------------------------------------------
// Pipeline
// ---------------------------------------------------------------------------------------------

#[test]
fn pipeline_on_a_vector_add_kernel_keeps_it_intact_and_verified() {
    // offs = pid * 128 + arange(0, 128); z[offs] = x[offs] + y[offs] (mask offs < n), with a
    // duplicated offset computation and a dead op for the passes to clean up.
    let mut b = B::new("add", FuncKind::Kernel);
    let pf = b.pt(DType::F32, &[]);
    let it = b.t(DType::I32, &[]);
    let (x, y, z) = (b.param("x", pf), b.param("y", pf), b.param("z", pf));
    let n = b.param("n", it);
    let body = b.body();
    let t128 = b.t(DType::I32, &[128]);
    let b128 = b.t(DType::Bool, &[128]);
    let p128 = b.pt(DType::F32, &[128]);
    let f128 = b.t(DType::F32, &[128]);
    let offsets = |b: &mut B| {
        let pid = b.op(body, Op::ProgramId { axis: 0 }, it);
        let blk = b.int(body, DType::I32, 128);
        let base = b.bin(body, BinaryOp::Mul, pid, blk);
        let sb = b.splat(body, base, &[128]);
        let ar = b.op(body, Op::Arange { start: 0, end: 128 }, t128);
        b.bin(body, BinaryOp::Add, sb, ar)
    };
    let o1 = offsets(&mut b);
    let o2 = offsets(&mut b);
    let sn = b.splat(body, n, &[128]);
    let mask = b.op(body, Op::Cmp { pred: CmpPred::Lt, lhs: o1, rhs: sn }, b128);
    let ptr = |b: &mut B, base: Value, o: Value| {
        let s = b.splat(body, base, &[128]);
        b.op(body, Op::AddPtr { ptr: s, offset: o }, p128)
    };
    let px = ptr(&mut b, x, o1);
    let py = ptr(&mut b, y, o2);
    let pz = ptr(&mut b, z, o1);
    let lx = b.op(body, Op::Load { ptr: px, mask: Some(mask), other: None }, f128);
    let ly = b.op(body, Op::Load { ptr: py, mask: Some(mask), other: None }, f128);
    let _dead = b.bin(body, BinaryOp::Mul, lx, ly);
    let s = b.bin(body, BinaryOp::Add, lx, ly);
    b.ops(body, Op::Store { ptr: pz, value: s, mask: Some(mask) }, &[]);
    b.yield_(body, vec![]);
    let mut m = b.finish();
    verified(&m);
    assert!(passes::run_default_pipeline(&mut m).unwrap());
    verified(&m);
    let f = kernel(&m);
    assert_eq!(count(f, "program_id"), 1);
    assert_eq!(count(f, "arange"), 1);
    assert_eq!(count(f, "mul"), 1, "pid * 128 only; the dead product is gone");
    assert_eq!(count(f, "load"), 2);
    assert_eq!(count(f, "store"), 1);
    // Running again changes nothing.
    assert!(!passes::run_default_pipeline(&mut m).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Random programs: the pipeline must not change what a program computes
// ---------------------------------------------------------------------------------------------

/// xorshift64*: a dependency-free, seeded generator for the random programs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
}

const LANES: u32 = 4;

/// Interesting scalars of `d`, normalised to valid constants of that dtype.
fn specials(d: DType) -> Vec<ConstValue> {
    use tk_ir::eval::normalize;
    let raw: Vec<ConstValue> = if d.is_float() {
        [0.0, -0.0, 1.0, -1.0, 2.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e30, 3.0]
            .into_iter()
            .map(ConstValue::Float)
            .collect()
    } else if d.is_bool() {
        vec![ConstValue::Bool(false), ConstValue::Bool(true)]
    } else {
        let (lo, hi) = tk_ir::eval::int_range(d);
        [0, 1, -1, 2, 3, 7, 8, -8, 0x7F, 0xFF, 31, lo as i64, hi as i64, lo as i64 + 1]
            .into_iter()
            .map(ConstValue::Int)
            .collect()
    };
    raw.into_iter().map(|v| normalize(d, v)).collect()
}

/// A random straight-line kernel over one dtype `d`: parameters `a`, `b`, constants, splats,
/// aranges, unary/binary/cmp/select/cast/fma ops on scalars and `d[4]` blocks; every value
/// computed is stored.
fn random_program(rng: &mut Rng, d: DType) -> Module {
    let mut b = B::new("k", FuncKind::Kernel);
    let pt = b.pt(d, &[]);
    let out = b.param("out", pt);
    let st = b.t(d, &[]);
    let bt = b.t(d, &[LANES]);
    let pa = b.param("a", st);
    let pb = b.param("b", st);
    let body = b.body();
    let outs = b.splat(body, out, &[LANES]);
    let mut scalars = vec![pa, pb];
    let mut blocks: Vec<Value> = Vec::new();
    let specials = specials(d);
    let binops: Vec<BinaryOp> = if d.is_float() {
        vec![
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Rem,
            BinaryOp::Min,
            BinaryOp::Max,
        ]
    } else if d.is_bool() {
        vec![BinaryOp::And, BinaryOp::Or, BinaryOp::Xor]
    } else {
        BinaryOp::ALL.to_vec()
    };
    let unops: Vec<UnaryOp> = if d.is_float() {
        vec![UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Sqrt, UnaryOp::Exp]
    } else if d.is_bool() {
        vec![UnaryOp::Not]
    } else {
        vec![UnaryOp::Neg, UnaryOp::Not, UnaryOp::Abs]
    };
    for _ in 0..14 {
        let block = rng.below(2) == 0;
        let pool = if block && !blocks.is_empty() { blocks.clone() } else { scalars.clone() };
        let x = rng.pick(&pool);
        let y = rng.pick(&pool);
        let ty = b.f.value_type(x);
        let v = match rng.below(10) {
            0 | 1 => {
                let c = rng.pick(&specials);
                let k = b.konst(body, d, c);
                if block {
                    b.splat(body, k, &[LANES])
                } else {
                    k
                }
            }
            2 => {
                let s = rng.pick(&scalars);
                b.splat(body, s, &[LANES])
            }
            3 | 4 => {
                let op = rng.pick(&binops);
                // Same operand twice now and then, for the `x op x` rules.
                let y = if rng.below(4) == 0 { x } else { y };
                b.op(body, Op::Binary { op, lhs: x, rhs: y }, ty)
            }
            5 => {
                let op = rng.pick(&unops);
                b.op(body, Op::Unary { op, value: x }, ty)
            }
            6 => {
                let pred = rng.pick(&CmpPred::ALL);
                let shape = b.m.ty(ty).shape.clone();
                let boolt = b.t(DType::Bool, &shape);
                let c = b.op(body, Op::Cmp { pred, lhs: x, rhs: y }, boolt);
                b.op(body, Op::Select { cond: c, on_true: x, on_false: y }, ty)
            }
            7 => {
                // Round trip through another dtype.
                let u = rng.pick(&DType::ALL);
                let shape = b.m.ty(ty).shape.clone();
                let ut = b.t(u, &shape);
                let c = b.op(body, Op::Cast { value: x }, ut);
                b.op(body, Op::Cast { value: c }, ty)
            }
            8 if d.is_float() => {
                let z = rng.pick(&pool);
                b.op(body, Op::Fma { a: x, b: y, c: z }, ty)
            }
            8 | 9 if d == DType::I32 && block => {
                let start = rng.below(5) as i64 - 2;
                let at = b.t(DType::I32, &[LANES]);
                b.op(body, Op::Arange { start, end: start + LANES as i64 }, at)
            }
            _ => {
                let op = rng.pick(&binops);
                let k = b.konst(body, d, rng.pick(&specials));
                let k = if b.m.ty(ty).is_scalar() { k } else { b.splat(body, k, &[LANES]) };
                let (l, r) = if rng.below(2) == 0 { (x, k) } else { (k, x) };
                b.op(body, Op::Binary { op, lhs: l, rhs: r }, ty)
            }
        };
        // Every value is stored, so no op is dead and every run-time error must survive.
        if b.f.value_type(v) == bt {
            blocks.push(v);
            b.store(body, outs, v);
        } else {
            scalars.push(v);
            b.store(body, out, v);
        }
    }
    b.yield_(body, vec![]);
    b.finish()
}

/// Runs a straight-line kernel with `tk_ir::eval`; returns the stored blocks, or `Err` if any
/// op fails (division by zero, signed overflow...).
fn run_straight_line(m: &Module, args: &[ConstValue]) -> Result<Vec<Vec<ConstValue>>, String> {
    use std::collections::HashMap;
    use tk_ir::eval;
    let f = kernel(m);
    let mut vals: HashMap<Value, Vec<ConstValue>> = HashMap::new();
    for (p, a) in f.params.iter().skip(1).zip(args) {
        vals.insert(p.value, vec![*a]);
    }
    let dt = |v: Value| m.ty(f.value_type(v)).elem.dtype().expect("scalar dtype");
    let mut stored = Vec::new();
    for id in f.walk() {
        let od = f.op(id);
        let get = |v: Value| vals.get(&v).cloned().expect("defined");
        let lanes = |vs: &[Vec<ConstValue>]| vs.iter().map(|v| v.len()).max().unwrap_or(1);
        let at = |v: &Vec<ConstValue>, i: usize| if v.len() == 1 { v[0] } else { v[i] };
        let err = |e: eval::EvalError| e.to_string();
        let result: Vec<ConstValue> = match &od.op {
            Op::Const { value } => vec![*value],
            Op::Splat { value } => {
                if *value == f.params[0].value {
                    vec![] // the output pointer
                } else {
                    vec![get(*value)[0]; LANES as usize]
                }
            }
            Op::Arange { start, end } => (*start..*end).map(ConstValue::Int).collect(),
            Op::Unary { op, value } => {
                let x = get(*value);
                x.iter()
                    .map(|&c| eval::unary(*op, dt(*value), c))
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            Op::Binary { op, lhs, rhs } => {
                let (x, y) = (get(*lhs), get(*rhs));
                (0..lanes(&[x.clone(), y.clone()]))
                    .map(|i| eval::binary(*op, dt(*lhs), at(&x, i), at(&y, i)))
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            Op::Cmp { pred, lhs, rhs } => {
                let (x, y) = (get(*lhs), get(*rhs));
                (0..lanes(&[x.clone(), y.clone()]))
                    .map(|i| eval::cmp(*pred, dt(*lhs), at(&x, i), at(&y, i)).map(ConstValue::Bool))
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            Op::Select { cond, on_true, on_false } => {
                let (c, x, y) = (get(*cond), get(*on_true), get(*on_false));
                (0..lanes(&[c.clone(), x.clone(), y.clone()]))
                    .map(
                        |i| if at(&c, i) == ConstValue::Bool(true) { at(&x, i) } else { at(&y, i) },
                    )
                    .collect()
            }
            Op::Cast { value } => {
                let to = dt(od.results[0]);
                get(*value).iter().map(|&c| eval::cast(dt(*value), to, c)).collect()
            }
            Op::Fma { a, b, c } => {
                let (x, y, z) = (get(*a), get(*b), get(*c));
                (0..lanes(&[x.clone(), y.clone(), z.clone()]))
                    .map(|i| eval::fma(dt(*a), at(&x, i), at(&y, i), at(&z, i)))
                    .collect::<Result<_, _>>()
                    .map_err(err)?
            }
            Op::Store { value, .. } => {
                stored.push(get(*value));
                continue;
            }
            Op::Yield { .. } => continue,
            other => panic!("unexpected op in a straight-line test program: {other:?}"),
        };
        vals.insert(od.results[0], result);
    }
    Ok(stored)
}

/// Bitwise equality, except that every NaN equals every NaN (payloads are not specified).
fn same_bits(a: &[Vec<ConstValue>], b: &[Vec<ConstValue>]) -> bool {
    let nan = |c: &ConstValue| matches!(c, ConstValue::Float(x) if x.is_nan());
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.len() == y.len()
                && x.iter().zip(y).all(|(p, q)| (nan(p) && nan(q)) || p.bits() == q.bits())
        })
}

#[test]
fn pipeline_preserves_semantics_on_random_programs() {
    let dtypes = [
        DType::I32,
        DType::I8,
        DType::U8,
        DType::U32,
        DType::I64,
        DType::F32,
        DType::F16,
        DType::BF16,
        DType::F64,
        DType::Bool,
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut optimised_something = 0;
    let mut errors = 0;
    for case in 0..3000 {
        let d = dtypes[case % dtypes.len()];
        let original = random_program(&mut rng, d);
        verified(&original);
        let mut m = original.clone();
        let changed =
            passes::run_default_pipeline(&mut m).unwrap_or_else(|e| panic!("case {case}: {e}"));
        if changed {
            optimised_something += 1;
        }
        let sp = specials(d);
        for _ in 0..4 {
            let args = [rng.pick(&sp), rng.pick(&sp)];
            let before = run_straight_line(&original, &args);
            let after = run_straight_line(&m, &args);
            match (&before, &after) {
                (Ok(x), Ok(y)) => assert!(
                    same_bits(x, y),
                    "case {case} ({d}), args {args:?}: {x:?} became {y:?}\n{:#?}",
                    kernel(&m)
                ),
                (Err(_), Err(_)) => errors += 1,
                (Err(e), Ok(_)) => panic!("case {case} ({d}), args {args:?}: lost error {e}"),
                (Ok(_), Err(e)) => panic!("case {case} ({d}), args {args:?}: new error {e}"),
            }
        }
    }
    // Most runs complete, so the comparison is not vacuous.
    assert!(optimised_something > 2000, "{optimised_something}");
    assert!(errors < 3000 * 4 / 2, "{errors}");
}
