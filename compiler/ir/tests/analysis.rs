//! Tests of the axis-info analysis on the address patterns kernels use: 1-D blocks, 2-D tiles,
//! masked tails, non-power-of-two blocks, gathers, loops and integer index arithmetic. Expected
//! numbers are derived by hand in the comments from the definitions in `tk_ir::analysis`.

use tk_diag::Span;
use tk_ir::analysis::{analyze, AxisInfo, AxisInfoTable, ParamHints, MAX_DIVISIBILITY};
use tk_ir::verify::verify_module;
use tk_ir::{
    BinaryOp, CmpPred, ConstValue, DType, Elem, FuncKind, Function, Module, Op, RegionId, Type,
    TypeId, Value,
};

struct B {
    m: Module,
    f: Function,
}

impl B {
    fn new() -> B {
        B { m: Module::default(), f: Function::new("k", FuncKind::Kernel, Span::DUMMY) }
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
    fn body(&self) -> RegionId {
        self.f.body
    }
    fn op(&mut self, r: RegionId, op: Op, ty: TypeId) -> Value {
        let id = self.f.append_op(r, op, &[ty], Span::DUMMY);
        self.f.op(id).results[0]
    }
    fn int(&mut self, r: RegionId, d: DType, v: i64) -> Value {
        let t = self.t(d, &[]);
        self.op(r, Op::Const { value: ConstValue::Int(v) }, t)
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
    fn broadcast(&mut self, r: RegionId, value: Value, shape: &[u32]) -> Value {
        let elem = self.m.ty(self.f.value_type(value)).elem;
        let t = self.m.types.intern(Type { elem, shape: shape.to_vec() });
        self.op(r, Op::Broadcast { value }, t)
    }
    fn expand(&mut self, r: RegionId, value: Value, axis: u8) -> Value {
        let t = self.m.ty(self.f.value_type(value)).clone();
        let mut shape = t.shape.clone();
        shape.insert(axis as usize, 1);
        let nt = self.m.types.intern(t.with_shape(shape));
        self.op(r, Op::ExpandDims { value, axis }, nt)
    }
    fn arange(&mut self, r: RegionId, start: i64, end: i64) -> Value {
        let t = self.t(DType::I32, &[(end - start) as u32]);
        self.op(r, Op::Arange { start, end }, t)
    }
    fn addptr(&mut self, r: RegionId, ptr: Value, offset: Value) -> Value {
        let t = self.f.value_type(ptr);
        self.op(r, Op::AddPtr { ptr, offset }, t)
    }
    fn pid(&mut self, r: RegionId) -> Value {
        let t = self.t(DType::I32, &[]);
        self.op(r, Op::ProgramId { axis: 0 }, t)
    }
    fn cmp(&mut self, r: RegionId, pred: CmpPred, lhs: Value, rhs: Value) -> Value {
        let shape = self.m.ty(self.f.value_type(lhs)).shape.clone();
        let t = self.t(DType::Bool, &shape);
        self.op(r, Op::Cmp { pred, lhs, rhs }, t)
    }
    fn load(&mut self, r: RegionId, ptr: Value, mask: Option<Value>) -> Value {
        let t = self.m.ty(self.f.value_type(ptr)).clone();
        let Elem::Ptr(d) = t.elem else { panic!("not a pointer") };
        let rt = self.m.types.intern(Type::block(d, t.shape));
        self.op(r, Op::Load { ptr, mask, other: None }, rt)
    }
    fn store(&mut self, r: RegionId, ptr: Value, value: Value, mask: Option<Value>) {
        self.f.append_op(r, Op::Store { ptr, value, mask }, &[], Span::DUMMY);
    }
    /// Finishes the body and analyses it.
    fn run(mut self, hints: &ParamHints) -> (Module, AxisInfoTable) {
        let body = self.f.body;
        self.f.append_op(body, Op::Yield { values: vec![] }, &[], Span::DUMMY);
        self.m.functions.push(self.f);
        if let Err(e) = verify_module(&self.m) {
            panic!("verifier: {e:#?}");
        }
        let table = analyze(&self.m, &self.m.functions[0], hints);
        (self.m, table)
    }
}

fn info(t: &AxisInfoTable, v: Value) -> &AxisInfo {
    t.get(v).expect("analysed")
}

/// (contiguity, divisibility, constancy) of `v`.
fn ccd(t: &AxisInfoTable, v: Value) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
    let i = info(t, v);
    (i.contiguity.clone(), i.divisibility.clone(), i.constancy.clone())
}

/// `x + pid * block + arange(0, block)` for an `f32` pointer `x`; returns (builder, offsets, ptr).
fn block_pointer(block: u32, elem: DType) -> (B, Value, Value) {
    let mut b = B::new();
    let pt = b.pt(elem, &[]);
    let x = b.param("x", pt);
    let body = b.body();
    let pid = b.pid(body);
    let bl = b.int(body, DType::I32, block as i64);
    let base = b.bin(body, BinaryOp::Mul, pid, bl);
    let sb = b.splat(body, base, &[block]);
    let ar = b.arange(body, 0, block as i64);
    let offs = b.bin(body, BinaryOp::Add, sb, ar);
    let xs = b.splat(body, x, &[block]);
    let ptr = b.addptr(body, xs, offs);
    (b, offs, ptr)
}

#[test]
fn one_d_block_pointer_is_contiguous_and_16_byte_aligned() {
    // pid * 128: divisible by 128 (pid has divisibility 1). offs: contiguity 128, its run start
    // pid*128 divisible by 128. ptr: x is 16-byte aligned, offsets add 128 * 4 = 512 bytes, so the
    // run start is divisible by min(16, 512) = 16 bytes.
    let (mut b, offs, ptr) = block_pointer(128, DType::F32);
    let l = b.load(b.body(), ptr, None);
    b.store(b.f.body, ptr, l, None);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, offs), (vec![128], vec![128], vec![1]));
    assert!(info(&t, offs).non_negative);
    assert_eq!(ccd(&t, ptr), (vec![128], vec![16], vec![1]));
    // 16-byte vectors of f32: 4 lanes; a 64-byte budget is still capped by the 16-byte alignment.
    assert_eq!(t.vector_width(ptr, 4, 16), 4);
    assert_eq!(t.vector_width(ptr, 4, 64), 4);
    assert_eq!(t.vector_width(ptr, 4, 8), 2);
    // The loaded data itself is unknown.
    assert_eq!(ccd(&t, l), (vec![1], vec![1], vec![1]));
}

#[test]
fn small_blocks_limit_alignment() {
    // block 2: pid * 2 is only known even, so the run start is 2 * 4 = 8-byte aligned: 2 lanes.
    let (b, offs, ptr) = block_pointer(2, DType::F32);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, offs), (vec![2], vec![2], vec![1]));
    assert_eq!(ccd(&t, ptr), (vec![2], vec![8], vec![1]));
    assert_eq!(t.vector_width(ptr, 4, 16), 2);
    // f64 block of 1: a single element, no vector.
    let (b, _, ptr) = block_pointer(1, DType::F64);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(t.vector_width(ptr, 8, 16), 1);
}

#[test]
fn non_power_of_two_blocks() {
    // block 160 = 32 * 5: pid * 160 is divisible by 32; contiguity 160; bytes: min(16, 32*4).
    // A vector must divide the run: largest power of two dividing 160 is 32, so the limit is the
    // 16-byte alignment: 4 f32 lanes, 8 f16 lanes.
    let (b, offs, ptr) = block_pointer(160, DType::F32);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, offs), (vec![160], vec![32], vec![1]));
    assert_eq!(ccd(&t, ptr), (vec![160], vec![16], vec![1]));
    assert_eq!(t.vector_width(ptr, 4, 16), 4);
    assert_eq!(t.vector_width(ptr, 2, 16), 8);
    // block 100 = 4 * 25: pid * 100 divisible by 4, 4 * 2 = 8 bytes for f16 -> 4 lanes; for f32
    // 16 bytes and contiguity 100 (whose power-of-two part is 4) -> 4 lanes.
    let (b, _, ptr) = block_pointer(100, DType::F16);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, ptr), (vec![100], vec![8], vec![1]));
    assert_eq!(t.vector_width(ptr, 2, 16), 4);
    // block 6: contiguity 6, power-of-two part 2 -> vectors of 2 so none straddles a run.
    let (b, _, ptr) = block_pointer(6, DType::F32);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, ptr).0, vec![6]);
    assert_eq!(t.vector_width(ptr, 4, 16), 2);
}

#[test]
fn masked_ragged_tail() {
    // mask = offs < n. With nothing known about n the mask can change at any element: constancy
    // 1, so a target with one predicate per vector cannot vectorise, while per-lane masking can.
    // With the runtime's `n % 16 == 0` specialisation: runs of gcd(128, 128, min(128, 16)) = 16.
    for (hints, mask_k, masked_w) in [
        (ParamHints::none(), 1, 1),
        (ParamHints::none().with_divisibility(1, 16), 16, 4),
        (ParamHints::none().with_divisibility(1, 2), 2, 2),
    ] {
        let (mut b, offs, ptr) = block_pointer(128, DType::F32);
        let it = b.t(DType::I32, &[]);
        let n = b.param("n", it);
        let body = b.body();
        let sn = b.splat(body, n, &[128]);
        let mask = b.cmp(body, CmpPred::Lt, offs, sn);
        let v = b.load(body, ptr, Some(mask));
        b.store(body, ptr, v, Some(mask));
        let (_, t) = b.run(&hints);
        assert_eq!(info(&t, mask).constancy, vec![mask_k]);
        assert_eq!(t.vector_width(ptr, 4, 16), 4, "the pointer itself is unaffected");
        assert_eq!(t.masked_vector_width(ptr, Some(mask), 4, 16), masked_w);
        assert_eq!(t.masked_vector_width(ptr, None, 4, 16), 4);
    }
}

#[test]
fn mask_le_needs_a_known_bound() {
    // offs <= 63 is true for offs 0..=63: runs of 64 equal booleans in a block of 128 (offs =
    // arange(0, 128)); offs <= n with unknown n: 1; offs >= 64 flips at 64: runs of 64.
    let mut b = B::new();
    let it = b.t(DType::I32, &[]);
    let n = b.param("n", it);
    let body = b.body();
    let ar = b.arange(body, 0, 128);
    let c63 = b.int(body, DType::I32, 63);
    let c64 = b.int(body, DType::I32, 64);
    let s63 = b.splat(body, c63, &[128]);
    let s64 = b.splat(body, c64, &[128]);
    let sn = b.splat(body, n, &[128]);
    let le = b.cmp(body, CmpPred::Le, ar, s63);
    let le_n = b.cmp(body, CmpPred::Le, ar, sn);
    let ge = b.cmp(body, CmpPred::Ge, ar, s64);
    let gt_mirror = b.cmp(body, CmpPred::Gt, s64, ar); // 64 > offs == offs < 64
    let eq = b.cmp(body, CmpPred::Eq, ar, s64);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(info(&t, le).constancy, vec![64]);
    assert_eq!(info(&t, le_n).constancy, vec![1]);
    assert_eq!(info(&t, ge).constancy, vec![64]);
    assert_eq!(info(&t, gt_mirror).constancy, vec![64]);
    assert_eq!(info(&t, eq).constancy, vec![1]);
}

/// 2-D tile `a + rm[:, None] * K + rk[None, :]` with rm = pid * 32 + arange(32), rk =
/// arange(16); returns (builder, offsets, pointer).
fn tile(b: &mut B) -> (Value, Value) {
    let pt = b.pt(DType::F32, &[]);
    let a = b.param("a", pt);
    let it = b.t(DType::I32, &[]);
    let k = b.param("K", it);
    let body = b.body();
    let pid = b.pid(body);
    let c32 = b.int(body, DType::I32, 32);
    let base = b.bin(body, BinaryOp::Mul, pid, c32);
    let sb = b.splat(body, base, &[32]);
    let ar = b.arange(body, 0, 32);
    let rm = b.bin(body, BinaryOp::Add, sb, ar);
    let rk = b.arange(body, 0, 16);
    let rm2 = b.expand(body, rm, 1); // [32, 1]
    let sk = b.splat(body, k, &[32, 1]);
    let row = b.bin(body, BinaryOp::Mul, rm2, sk); // [32, 1]
    let row = b.broadcast(body, row, &[32, 16]);
    let col = b.expand(body, rk, 0); // [1, 16]
    let col = b.broadcast(body, col, &[32, 16]);
    let offs = b.bin(body, BinaryOp::Add, row, col);
    let sa = b.splat(body, a, &[32, 16]);
    let ptr = b.addptr(body, sa, offs);
    (offs, ptr)
}

#[test]
fn two_d_tile_is_contiguous_along_the_last_dim() {
    // With K % 16 == 0 (param 1): row = rm * K has every element divisible by 16 (rm elements
    // are only divisible by 1, K by 16); col has contiguity 16 along dim 1 starting at 0. So
    // offs: dim 1 contiguity 16, run starts divisible by 16; dim 0 contiguity 1 (rows are K
    // apart), every element at a run start... i.e. every element of column 0 divisible by 16,
    // but dim 0's bound covers all elements, and column 1 is odd: divisibility 1.
    // ptr: dim 1 bytes min(16, 16 * 4) = 16 -> 4 f32 lanes.
    let mut b = B::new();
    let (offs, ptr) = tile(&mut b);
    let (_, t) = b.run(&ParamHints::none().with_divisibility(1, 16));
    assert_eq!(ccd(&t, offs), (vec![1, 16], vec![1, 16], vec![1, 1]));
    assert_eq!(ccd(&t, ptr), (vec![1, 16], vec![4, 16], vec![1, 1]));
    assert_eq!(t.vector_width(ptr, 4, 16), 4);

    // Without the hint the row starts are arbitrary: 4-byte alignment only -> scalar f32 access
    // (still contiguous: a target may use unaligned vectors if it wants).
    let mut b = B::new();
    let (offs, ptr) = tile(&mut b);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, offs), (vec![1, 16], vec![1, 1], vec![1, 1]));
    assert_eq!(ccd(&t, ptr), (vec![1, 16], vec![4, 4], vec![1, 1]));
    assert_eq!(t.vector_width(ptr, 4, 16), 1);
}

#[test]
fn broadcast_and_expand_dims_track_constancy() {
    // rm[:, None] broadcast to [32, 16]: constant along dim 1 (16), contiguous along dim 0 (32).
    let mut b = B::new();
    let body = b.body();
    let ar = b.arange(body, 0, 32);
    let e = b.expand(body, ar, 1);
    let bc = b.broadcast(body, e, &[32, 16]);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, e), (vec![32, 1], vec![MAX_DIVISIBILITY, 1], vec![1, 1]));
    assert_eq!(ccd(&t, bc), (vec![32, 1], vec![MAX_DIVISIBILITY, 1], vec![1, 16]));
}

#[test]
fn gather_is_not_contiguous() {
    // idx = load(i + arange(64)); ptr = x + idx: nothing known about idx -> contiguity 1, and the
    // addresses are only 4-byte aligned (x is 16-aligned, idx * 4 is a multiple of 4).
    let mut b = B::new();
    let pf = b.pt(DType::F32, &[]);
    let pi = b.pt(DType::I32, &[]);
    let x = b.param("x", pf);
    let i = b.param("i", pi);
    let body = b.body();
    let ar = b.arange(body, 0, 64);
    let si = b.splat(body, i, &[64]);
    let ip = b.addptr(body, si, ar);
    let idx = b.load(body, ip, None);
    let sx = b.splat(body, x, &[64]);
    let ptr = b.addptr(body, sx, idx);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, ip), (vec![64], vec![16], vec![1]));
    assert_eq!(ccd(&t, ptr), (vec![1], vec![4], vec![1]));
    assert_eq!(t.vector_width(ptr, 4, 16), 1);
    assert_eq!(t.vector_width(ip, 4, 16), 4);
}

#[test]
fn pointer_params_are_16_byte_aligned_unless_hinted() {
    let mut b = B::new();
    let pf = b.pt(DType::F32, &[]);
    let x = b.param("x", pf);
    let y = b.param("y", pf);
    let it = b.t(DType::I32, &[]);
    let s = b.param("s", it);
    let (_, t) = b.run(&ParamHints::none().with_divisibility(1, 64).with_non_negative(2));
    assert_eq!(info(&t, x).divisibility, vec![16]);
    assert_eq!(info(&t, y).divisibility, vec![64]);
    assert_eq!(info(&t, s).divisibility, vec![1]);
    assert!(info(&t, s).non_negative);
    assert!(!info(&t, x).non_negative);
}

#[test]
fn loops_keep_pointer_increments_and_iv_divisibility() {
    // for k in range(0, K, 32) carrying p = x + arange(16) { p = p + 16 } :
    // iv divisibility gcd(lo = 0 -> max, step 32) = 32; p stays contiguous (16) and 16-byte
    // aligned (increments of 16 * 4 = 64 bytes), and so does the loop result.
    let mut b = B::new();
    let pf = b.pt(DType::F32, &[]);
    let x = b.param("x", pf);
    let it = b.t(DType::I32, &[]);
    let kk = b.param("K", it);
    let body = b.body();
    let ar = b.arange(body, 0, 16);
    let sx = b.splat(body, x, &[16]);
    let p0 = b.addptr(body, sx, ar);
    let zero = b.int(body, DType::I32, 0);
    let step = b.int(body, DType::I32, 32);
    let p16 = b.f.value_type(p0);
    let lb = b.f.new_region(&[it, p16]);
    let args = b.f.region(lb).args.clone();
    let sixteen = b.int(lb, DType::I32, 16);
    let s16 = b.splat(lb, sixteen, &[16]);
    let next = b.addptr(lb, args[1], s16);
    let v = b.load(lb, args[1], None);
    b.store(lb, args[1], v, None);
    b.f.append_op(lb, Op::Yield { values: vec![next] }, &[], Span::DUMMY);
    let fo = b.f.append_op(
        body,
        Op::For { lo: zero, hi: kk, step, init: vec![p0], body: lb },
        &[p16],
        Span::DUMMY,
    );
    let res = b.f.op(fo).results[0];
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(info(&t, args[0]).divisibility, vec![32]);
    assert!(info(&t, args[0]).non_negative);
    assert_eq!(ccd(&t, args[1]), (vec![16], vec![16], vec![1]));
    assert_eq!(ccd(&t, next), (vec![16], vec![16], vec![1]));
    assert_eq!(ccd(&t, res), (vec![16], vec![16], vec![1]));
    assert_eq!(t.vector_width(args[1], 4, 16), 4);
}

#[test]
fn loop_carried_values_meet_with_their_updates() {
    // p = x + arange(16) carried; p = p + 1 each iteration (offsets by one element): contiguity
    // stays 16, but alignment drops to 4 bytes after the first iteration.
    let mut b = B::new();
    let pf = b.pt(DType::F32, &[]);
    let x = b.param("x", pf);
    let it = b.t(DType::I32, &[]);
    let kk = b.param("K", it);
    let body = b.body();
    let ar = b.arange(body, 0, 16);
    let sx = b.splat(body, x, &[16]);
    let p0 = b.addptr(body, sx, ar);
    let zero = b.int(body, DType::I32, 0);
    let one = b.int(body, DType::I32, 1);
    let p16 = b.f.value_type(p0);
    let lb = b.f.new_region(&[it, p16]);
    let args = b.f.region(lb).args.clone();
    let s1 = b.splat(lb, one, &[16]);
    let next = b.addptr(lb, args[1], s1);
    b.f.append_op(lb, Op::Yield { values: vec![next] }, &[], Span::DUMMY);
    let fo = b.f.append_op(
        body,
        Op::For { lo: zero, hi: kk, step: one, init: vec![p0], body: lb },
        &[p16],
        Span::DUMMY,
    );
    let res = b.f.op(fo).results[0];
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, args[1]), (vec![16], vec![4], vec![1]));
    assert_eq!(ccd(&t, res), (vec![16], vec![4], vec![1]));
    assert_eq!(info(&t, args[0]).divisibility, vec![1]);
}

#[test]
fn integer_index_arithmetic() {
    // offs = pid * 128 + arange(128) (non-negative).
    //   offs % N with N % 16 == 0: runs of gcd(128, min(128, 16)) = 16 contiguous values.
    //   offs / 4: runs of 4 equal values (quotients of a run starting at a multiple of 4).
    //   offs >> 3: runs of 8 equal values. offs & 7: runs of 8 contiguous values.
    //   offs & -8: runs of 8 equal values, each divisible by 8.
    //   offs * 4: contiguity 1, every element divisible by 4 (offs elements only by 1).
    //   (offs + 1) << 2: every element divisible by 4.
    let mut b = B::new();
    let it = b.t(DType::I32, &[]);
    let nn = b.param("N", it);
    let body = b.body();
    let pid = b.pid(body);
    let c128 = b.int(body, DType::I32, 128);
    let base = b.bin(body, BinaryOp::Mul, pid, c128);
    let sb = b.splat(body, base, &[128]);
    let ar = b.arange(body, 0, 128);
    let offs = b.bin(body, BinaryOp::Add, sb, ar);
    let sn = b.splat(body, nn, &[128]);
    let rem = b.bin(body, BinaryOp::Rem, offs, sn);
    let konst = |b: &mut B, v: i64| {
        let c = b.int(body, DType::I32, v);
        b.splat(body, c, &[128])
    };
    let c4 = konst(&mut b, 4);
    let c3 = konst(&mut b, 3);
    let c7 = konst(&mut b, 7);
    let cm8 = konst(&mut b, -8);
    let c1 = konst(&mut b, 1);
    let c2 = konst(&mut b, 2);
    let div = b.bin(body, BinaryOp::Div, offs, c4);
    let shr = b.bin(body, BinaryOp::Shr, offs, c3);
    let and_low = b.bin(body, BinaryOp::And, offs, c7);
    let and_align = b.bin(body, BinaryOp::And, offs, cm8);
    let mul = b.bin(body, BinaryOp::Mul, offs, c4);
    let plus1 = b.bin(body, BinaryOp::Add, offs, c1);
    let shl = b.bin(body, BinaryOp::Shl, plus1, c2);
    let (_, t) = b.run(&ParamHints::none().with_divisibility(0, 16));
    assert_eq!(ccd(&t, rem), (vec![16], vec![16], vec![1]));
    assert_eq!(ccd(&t, div).2, vec![4]);
    assert_eq!(ccd(&t, shr).2, vec![8]);
    assert_eq!(ccd(&t, and_low), (vec![8], vec![MAX_DIVISIBILITY], vec![1]));
    assert_eq!(ccd(&t, and_align), (vec![1], vec![8], vec![8]));
    assert_eq!(ccd(&t, mul), (vec![1], vec![4], vec![1]));
    assert_eq!(ccd(&t, plus1), (vec![128], vec![1], vec![1]));
    assert_eq!(ccd(&t, shl), (vec![1], vec![4], vec![1]));
}

#[test]
fn signed_division_of_possibly_negative_values_claims_nothing() {
    // x - 100 + arange(128) may be negative: truncating division by 4 does not give aligned runs
    // (-8..-5 / 4 = -2, -1, -1, -1), and the remainder's runs break at zero.
    let mut b = B::new();
    let it = b.t(DType::I32, &[]);
    let x = b.param("x", it);
    let body = b.body();
    let sx = b.splat(body, x, &[128]);
    let ar = b.arange(body, 0, 128);
    let v = b.bin(body, BinaryOp::Add, sx, ar);
    let four = b.int(body, DType::I32, 4);
    let s4 = b.splat(body, four, &[128]);
    let div = b.bin(body, BinaryOp::Div, v, s4);
    let rem = b.bin(body, BinaryOp::Rem, v, s4);
    let shr = b.bin(body, BinaryOp::Shr, v, s4);
    let (_, t) = b.run(&ParamHints::none().with_divisibility(0, 16));
    assert_eq!(ccd(&t, v), (vec![128], vec![16], vec![1]));
    assert_eq!(ccd(&t, div).2, vec![1]);
    assert_eq!(ccd(&t, rem).0, vec![1]);
    // Arithmetic shift floors, so it is fine with negative values: runs of 16 (= 2^4).
    assert_eq!(ccd(&t, shr).2, vec![16]);
}

#[test]
fn unsigned_wrapping_limits_contiguity() {
    // u32: x + arange(128) with x % 4 == 0 could wrap past 2^32 inside a run of 128; only runs
    // of 4 whose start is a multiple of 4 are safe.
    let mut b = B::new();
    let ut = b.t(DType::U32, &[]);
    let x = b.param("x", ut);
    let body = b.body();
    let sx = b.splat(body, x, &[128]);
    let ar = b.arange(body, 0, 128);
    let t128 = b.t(DType::U32, &[128]);
    let aru = b.op(body, Op::Cast { value: ar }, t128);
    let v = b.bin(body, BinaryOp::Add, sx, aru);
    let (_, t) = b.run(&ParamHints::none().with_divisibility(0, 4));
    // i32 -> u32 of a non-negative arange keeps everything.
    assert_eq!(ccd(&t, aru), (vec![128], vec![MAX_DIVISIBILITY], vec![1]));
    assert_eq!(ccd(&t, v), (vec![4], vec![4], vec![1]));
}

#[test]
fn casts_select_and_constants() {
    let mut b = B::new();
    let bt = b.t(DType::Bool, &[]);
    let c = b.param("c", bt);
    let body = b.body();
    let ar = b.arange(body, 0, 64);
    let t64 = b.t(DType::I64, &[64]);
    let t8 = b.t(DType::I8, &[64]);
    let wide = b.op(body, Op::Cast { value: ar }, t64);
    let narrow = b.op(body, Op::Cast { value: ar }, t8);
    let c48 = b.int(body, DType::I32, 48);
    let s48 = b.splat(body, c48, &[64]);
    let shifted = b.bin(body, BinaryOp::Add, ar, s48);
    let sc = b.splat(body, c, &[64]);
    let b64 = b.t(DType::I32, &[64]);
    let sel = b.op(body, Op::Select { cond: sc, on_true: ar, on_false: shifted }, b64);
    let (_, t) = b.run(&ParamHints::none());
    assert_eq!(ccd(&t, wide), ccd(&t, ar));
    // Narrowing may wrap: contiguity is dropped, constancy and element divisibility kept.
    assert_eq!(ccd(&t, narrow), (vec![1], vec![1], vec![1]));
    // 48 is divisible by 16: the meet of runs starting at 0 and at 48 is contiguity 64 with
    // starts divisible by 16; the condition is uniform (splat of a scalar).
    assert_eq!(ccd(&t, s48), (vec![1], vec![16], vec![64]));
    assert_eq!(info(&t, s48).constant, Some(48));
    assert_eq!(ccd(&t, sel), (vec![64], vec![16], vec![1]));
    assert_eq!(info(&t, sc).constancy, vec![64]);
}

// ---------------------------------------------------------------------------------------------
// Soundness on random programs: every claim must hold for concrete executions
// ---------------------------------------------------------------------------------------------

mod random {
    use super::*;
    use std::collections::HashMap;
    use tk_ir::eval;

    /// xorshift64*: a dependency-free, seeded generator.
    pub struct Rng(pub u64);

    impl Rng {
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())]
        }
        pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
            lo + (self.next() % (hi - lo + 1) as u64) as i64
        }
    }

    /// Facts the runtime would guarantee for each parameter of a generated kernel.
    #[derive(Clone, Copy, Debug)]
    pub enum ParamKind {
        /// A pointer aligned to this many bytes.
        Ptr(u64),
        /// An i32 divisible by the first number, non-negative if the flag is set.
        Int(u64, bool),
    }

    /// A random kernel computing i32 index blocks and f32 pointer blocks of one shape.
    pub fn program(rng: &mut Rng) -> (Module, Vec<ParamKind>, ParamHints) {
        let shape: Vec<u32> = match rng.below(3) {
            0 => vec![rng.pick(&[1, 4, 6, 8, 16, 160])],
            _ => vec![rng.pick(&[1, 2, 3, 4]), rng.pick(&[1, 4, 6, 8])],
        };
        let mut b = B::new();
        let it = b.t(DType::I32, &[]);
        let pf = b.pt(DType::F32, &[]);
        let bt = b.t(DType::I32, &shape);
        let mut kinds = Vec::new();
        let mut hints = ParamHints::none();
        let mut ptrs = Vec::new();
        let mut scalars = Vec::new();
        for i in 0..4u32 {
            if i == 0 || rng.below(3) == 0 {
                let align = rng.pick(&[16, 16, 32, 4]);
                if align != 16 {
                    hints = hints.with_divisibility(i, align);
                }
                ptrs.push(b.param(&format!("p{i}"), pf));
                kinds.push(ParamKind::Ptr(align));
            } else {
                let div = rng.pick(&[1, 1, 2, 16]);
                let nn = rng.below(2) == 0;
                if div != 1 {
                    hints = hints.with_divisibility(i, div);
                }
                if nn {
                    hints = hints.with_non_negative(i);
                }
                scalars.push(b.param(&format!("s{i}"), it));
                kinds.push(ParamKind::Int(div, nn));
            }
        }
        let pi = b.pt(DType::I32, &[]);
        let idxp = b.param("idx", pi);
        kinds.push(ParamKind::Ptr(16));
        let body = b.body();
        let pid = b.pid(body);
        scalars.push(pid);
        for c in [0, 1, 4, 16, 160, 7, -8, 3] {
            scalars.push(b.int(body, DType::I32, c));
        }
        let mut blocks: Vec<Value> = Vec::new();
        let mut pblocks: Vec<Value> = Vec::new();
        let full = |b: &mut B, v: Value, shape: &[u32]| {
            if b.m.ty(b.f.value_type(v)).shape == shape {
                v
            } else {
                b.broadcast(body, v, shape)
            }
        };
        for _ in 0..16 {
            let choice = rng.below(12);
            let v = match choice {
                0 | 1 => {
                    // arange along one dimension, broadcast to the full shape
                    let d = rng.below(shape.len());
                    let start = rng.pick(&[0, 0, 4, 3, -4]);
                    let ar = b.arange(body, start, start + shape[d] as i64);
                    let mut v = ar;
                    if shape.len() == 2 {
                        v = b.expand(body, v, if d == 0 { 1 } else { 0 });
                    }
                    full(&mut b, v, &shape)
                }
                2 | 3 => {
                    let s = rng.pick(&scalars);
                    let s = if rng.below(3) == 0 {
                        let k = rng.pick(&scalars);
                        b.bin(body, BinaryOp::Mul, s, k)
                    } else {
                        s
                    };
                    b.splat(body, s, &shape)
                }
                4 if !blocks.is_empty() => {
                    // Data loaded through a gathered *i32 block: unknown values.
                    let o = rng.pick(&blocks);
                    let sp = b.splat(body, idxp, &shape);
                    let p = b.addptr(body, sp, o);
                    b.load(body, p, None)
                }
                5..=8 if !blocks.is_empty() => {
                    let op = rng.pick(&BinaryOp::ALL);
                    let x = rng.pick(&blocks);
                    let y = rng.pick(&blocks);
                    b.bin(body, op, x, y)
                }
                9 if !blocks.is_empty() => {
                    let x = rng.pick(&blocks);
                    let y = rng.pick(&blocks);
                    let c = b.cmp(body, rng.pick(&CmpPred::ALL), x, y);
                    b.op(body, Op::Select { cond: c, on_true: x, on_false: y }, bt)
                }
                10 if !blocks.is_empty() => {
                    let x = rng.pick(&blocks);
                    let to = rng.pick(&[DType::I64, DType::I8, DType::U32, DType::U8, DType::I16]);
                    let tt = b.t(to, &shape);
                    let c = b.op(body, Op::Cast { value: x }, tt);
                    b.op(body, Op::Cast { value: c }, bt)
                }
                11 if !blocks.is_empty() && shape.len() == 2 => {
                    let x = rng.pick(&blocks);
                    let tt = b.t(DType::I32, &[shape[1], shape[0]]);
                    let p = b.op(body, Op::Permute { value: x, perm: vec![1, 0] }, tt);
                    if rng.below(2) == 0 {
                        b.op(body, Op::Permute { value: p, perm: vec![1, 0] }, bt)
                    } else {
                        let flat = b.t(DType::I32, &[shape[0] * shape[1]]);
                        let r = b.op(body, Op::Reshape { value: p }, flat);
                        b.op(body, Op::Reshape { value: r }, bt)
                    }
                }
                _ => {
                    // A pointer block: a pointer (param or earlier block) plus an offset block.
                    let Some(&o) = blocks.last() else { continue };
                    let p = if pblocks.is_empty() || rng.below(2) == 0 {
                        let p = rng.pick(&ptrs);
                        b.splat(body, p, &shape)
                    } else {
                        rng.pick(&pblocks)
                    };
                    let q = b.addptr(body, p, o);
                    pblocks.push(q);
                    continue;
                }
            };
            blocks.push(v);
        }
        let (m, _) = b.run(&hints);
        (m, kinds, hints)
    }

    /// Concrete lanes of every value (row-major), `None` if the run hit a run-time error.
    pub fn execute(
        m: &Module,
        kinds: &[ParamKind],
        rng: &mut Rng,
    ) -> Option<HashMap<Value, Vec<ConstValue>>> {
        let f = &m.functions[0];
        let mut vals: HashMap<Value, Vec<ConstValue>> = HashMap::new();
        for (p, k) in f.params.iter().zip(kinds) {
            let v = match *k {
                ParamKind::Ptr(align) => rng.range(1, 1000) * align as i64,
                ParamKind::Int(div, nn) => {
                    let lo = if nn { 0 } else { -50 };
                    rng.range(lo, 50) * div as i64
                }
            };
            vals.insert(p.value, vec![ConstValue::Int(v)]);
        }
        let pid = rng.range(0, 9);
        let ty = |v: Value| m.ty(f.value_type(v)).clone();
        let dt = |v: Value| ty(v).elem.dtype();
        for id in f.walk() {
            let od = f.op(id);
            let Some(&r) = od.results.first() else { continue };
            let rt = ty(r);
            let numel = rt.numel() as usize;
            let get = |v: Value| vals[&v].clone();
            let at = |x: &Vec<ConstValue>, i: usize| if x.len() == 1 { x[0] } else { x[i] };
            let lanes: Vec<ConstValue> = match &od.op {
                Op::Const { value } => vec![*value],
                Op::ProgramId { .. } => vec![ConstValue::Int(pid)],
                Op::Arange { start, end } => (*start..*end).map(ConstValue::Int).collect(),
                Op::Splat { value } => vec![get(*value)[0]; numel],
                Op::ExpandDims { value, .. } | Op::Reshape { value } => get(*value),
                Op::Broadcast { value } => {
                    let (x, os) = (get(*value), ty(*value).shape);
                    (0..numel)
                        .map(|i| {
                            let idx = unflatten(i, &rt.shape);
                            let src: Vec<u32> = idx
                                .iter()
                                .zip(&os)
                                .map(|(&k, &s)| if s == 1 { 0 } else { k })
                                .collect();
                            x[flatten(&src, &os)]
                        })
                        .collect()
                }
                Op::Permute { value, perm } => {
                    let (x, os) = (get(*value), ty(*value).shape);
                    (0..numel)
                        .map(|i| {
                            let idx = unflatten(i, &rt.shape);
                            let mut src = vec![0; os.len()];
                            for (d, &p) in perm.iter().enumerate() {
                                src[p as usize] = idx[d];
                            }
                            x[flatten(&src, &os)]
                        })
                        .collect()
                }
                Op::Binary { op, lhs, rhs } => {
                    let (x, y, d) = (get(*lhs), get(*rhs), dt(*lhs)?);
                    let mut out = Vec::with_capacity(numel);
                    for i in 0..numel {
                        out.push(eval::binary(*op, d, at(&x, i), at(&y, i)).ok()?);
                    }
                    out
                }
                Op::Cmp { pred, lhs, rhs } => {
                    let (x, y, d) = (get(*lhs), get(*rhs), dt(*lhs)?);
                    let mut out = Vec::with_capacity(numel);
                    for i in 0..numel {
                        out.push(ConstValue::Bool(eval::cmp(*pred, d, at(&x, i), at(&y, i)).ok()?));
                    }
                    out
                }
                Op::Select { cond, on_true, on_false } => {
                    let (c, x, y) = (get(*cond), get(*on_true), get(*on_false));
                    (0..numel)
                        .map(|i| {
                            if at(&c, i) == ConstValue::Bool(true) {
                                at(&x, i)
                            } else {
                                at(&y, i)
                            }
                        })
                        .collect()
                }
                Op::Cast { value } => {
                    let (from, to) = (dt(*value)?, rt.elem.dtype()?);
                    get(*value).iter().map(|&c| eval::cast(from, to, c)).collect()
                }
                Op::AddPtr { ptr, offset } => {
                    let Elem::Ptr(pd) = rt.elem else { return None };
                    let (p, o, od_) = (get(*ptr), get(*offset), dt(*offset)?);
                    (0..numel)
                        .map(|i| {
                            let ConstValue::Int(base) = at(&p, i) else { unreachable!() };
                            let ConstValue::Int(off) = at(&o, i) else { unreachable!() };
                            let off = eval::int_value(od_, off) as i64;
                            ConstValue::Int(base + off * pd.size_bytes() as i64)
                        })
                        .collect()
                }
                Op::Load { .. } => {
                    (0..numel).map(|_| ConstValue::Int(rng.range(-20, 20))).collect()
                }
                other => panic!("unexpected {other:?}"),
            };
            vals.insert(r, lanes);
        }
        Some(vals)
    }

    pub fn unflatten(mut i: usize, shape: &[u32]) -> Vec<u32> {
        let mut idx = vec![0; shape.len()];
        for d in (0..shape.len()).rev() {
            idx[d] = (i % shape[d] as usize) as u32;
            i /= shape[d] as usize;
        }
        idx
    }

    pub fn flatten(idx: &[u32], shape: &[u32]) -> usize {
        idx.iter().zip(shape).fold(0, |acc, (&k, &s)| acc * s as usize + k as usize)
    }

    /// `x` is a multiple of `m` (written out: `is_multiple_of` is newer than the MSRV).
    fn multiple(x: usize, m: usize) -> bool {
        x / m * m == x
    }

    /// Checks every claim of `info` against the concrete `lanes` of a value of type `t`.
    pub fn check(info: &AxisInfo, t: &Type, lanes: &[ConstValue]) -> Result<(), String> {
        let num = |c: ConstValue| -> i128 {
            match (c, t.elem) {
                (ConstValue::Int(i), Elem::Scalar(d)) => eval::int_value(d, i),
                (ConstValue::Int(i), Elem::Ptr(_)) => i as i128,
                (ConstValue::Bool(b), _) => b as i128,
                (ConstValue::Float(_), _) => 0,
            }
        };
        let step = match t.elem {
            Elem::Ptr(d) => d.size_bytes() as i128,
            _ => 1,
        };
        let is_float = matches!(t.elem, Elem::Scalar(d) if d.is_float());
        let shape: Vec<u32> = if t.shape.is_empty() { vec![1] } else { t.shape.clone() };
        if let Some(c) = info.constant {
            if lanes.iter().any(|&l| num(l) != c as i128) {
                return Err(format!("constant {c} but lanes {lanes:?}"));
            }
        }
        if info.non_negative && !is_float && lanes.iter().any(|&l| num(l) < 0) {
            return Err("claimed non-negative".into());
        }
        for d in 0..shape.len() {
            let (c, k, p) =
                (info.contiguity[d] as usize, info.constancy[d] as usize, info.divisibility[d]);
            if !multiple(shape[d] as usize, c)
                || !multiple(shape[d] as usize, k)
                || !p.is_power_of_two()
            {
                return Err(format!("dim {d}: c {c}, k {k}, p {p} do not fit {shape:?}"));
            }
            for i in 0..lanes.len() {
                let idx = unflatten(i, &shape);
                let pos = idx[d] as usize;
                let v = num(lanes[i]);
                if !multiple(pos, c) {
                    let mut prev = idx.clone();
                    prev[d] -= 1;
                    let pv = num(lanes[flatten(&prev, &shape)]);
                    if v != pv + step {
                        return Err(format!("dim {d}: contiguity {c} broken at {idx:?}"));
                    }
                } else if !is_float && v.rem_euclid(p as i128) != 0 {
                    return Err(format!("dim {d}: {v} at {idx:?} not divisible by {p}"));
                }
                if !multiple(pos, k) {
                    let mut prev = idx.clone();
                    prev[d] -= 1;
                    if lanes[flatten(&prev, &shape)].bits() != lanes[i].bits() {
                        return Err(format!("dim {d}: constancy {k} broken at {idx:?}"));
                    }
                }
            }
        }
        Ok(())
    }
}

#[test]
fn analysis_claims_hold_on_random_programs() {
    let mut rng = random::Rng(0xD1B5_4A32_D192_ED03);
    let mut checked = 0;
    let mut nontrivial = 0;
    for case in 0..1500 {
        let (m, kinds, hints) = random::program(&mut rng);
        let f = &m.functions[0];
        let table = analyze(&m, f, &hints);
        for _ in 0..6 {
            let Some(vals) = random::execute(&m, &kinds, &mut rng) else { continue };
            for (&v, lanes) in &vals {
                let i = table.get(v).expect("every value is analysed");
                let t = m.ty(f.value_type(v));
                if let Err(e) = random::check(i, t, lanes) {
                    panic!("case {case}: value {v:?}: {e}\ninfo {i:?}\nlanes {lanes:?}\n{f:#?}");
                }
                checked += 1;
                if i.contiguity.iter().any(|&c| c > 1) || i.divisibility.iter().any(|&p| p > 1) {
                    nontrivial += 1;
                }
            }
        }
    }
    assert!(checked > 50_000, "{checked}");
    assert!(nontrivial > checked / 4, "{nontrivial} of {checked}");
}
