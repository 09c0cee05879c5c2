//! A small IR builder for the interpreter's tests, written over the `Function` API directly so
//! the tests do not depend on the frontend. Every op gets its own span (`start = op number`),
//! so tests can check which op an error points at.

#![allow(dead_code)]

use tk_diag::{FileId, Span};
use tk_ir::{
    BinaryOp, CmpPred, ConstValue, DType, Elem, FuncId, FuncKind, Function, Module, Op, RegionId,
    Type, TypeId, Value,
};

pub struct B {
    pub m: Module,
    pub f: Function,
    regions: Vec<RegionId>,
    next_span: u32,
    pub last_span: Span,
}

pub fn span(n: u32) -> Span {
    Span { file: FileId(0), start: n, end: n + 1 }
}

impl B {
    pub fn kernel(name: &str) -> B {
        B::with_module(Module::default(), name, FuncKind::Kernel)
    }

    pub fn with_module(m: Module, name: &str, kind: FuncKind) -> B {
        let f = Function::new(name, kind, span(9999));
        let body = f.body;
        B { m, f, regions: vec![body], next_span: 1, last_span: Span::DUMMY }
    }

    pub fn ty(&mut self, t: Type) -> TypeId {
        self.m.types.intern(t)
    }

    pub fn t(&self, v: Value) -> Type {
        self.m.ty(self.f.value_type(v)).clone()
    }

    pub fn param(&mut self, name: &str, elem: Elem) -> Value {
        let ty = self.ty(Type { elem, shape: vec![] });
        self.f.add_param(name, ty)
    }

    pub fn ptr(&mut self, name: &str, dt: DType) -> Value {
        self.param(name, Elem::Ptr(dt))
    }

    pub fn scalar(&mut self, name: &str, dt: DType) -> Value {
        self.param(name, Elem::Scalar(dt))
    }

    /// Appends `op` to the current region with results of the given types.
    pub fn op(&mut self, op: Op, results: &[Type]) -> Vec<Value> {
        let tys: Vec<TypeId> = results.iter().map(|t| self.ty(t.clone())).collect();
        let s = span(self.next_span);
        self.next_span += 1;
        self.last_span = s;
        let region = *self.regions.last().unwrap();
        let id = self.f.append_op(region, op, &tys, s);
        self.f.op(id).results.clone()
    }

    pub fn op1(&mut self, op: Op, result: Type) -> Value {
        self.op(op, &[result])[0]
    }

    pub fn c(&mut self, dt: DType, v: ConstValue) -> Value {
        self.op1(Op::Const { value: v }, Type::scalar(dt))
    }
    pub fn ci(&mut self, dt: DType, v: i64) -> Value {
        self.c(dt, ConstValue::Int(v))
    }
    pub fn cf(&mut self, dt: DType, v: f64) -> Value {
        self.c(dt, ConstValue::Float(v))
    }

    pub fn pid(&mut self, axis: u8) -> Value {
        self.op1(Op::ProgramId { axis }, Type::scalar(DType::I32))
    }

    pub fn arange(&mut self, start: i64, end: i64) -> Value {
        let n = (end - start) as u32;
        self.op1(Op::Arange { start, end }, Type::block(DType::I32, vec![n]))
    }

    pub fn splat(&mut self, v: Value, shape: &[u32]) -> Value {
        let t = self.t(v).with_shape(shape.to_vec());
        self.op1(Op::Splat { value: v }, t)
    }

    pub fn broadcast(&mut self, v: Value, shape: &[u32]) -> Value {
        let t = self.t(v).with_shape(shape.to_vec());
        self.op1(Op::Broadcast { value: v }, t)
    }

    pub fn expand(&mut self, v: Value, axis: u8) -> Value {
        let mut t = self.t(v);
        t.shape.insert(axis as usize, 1);
        self.op1(Op::ExpandDims { value: v, axis }, t)
    }

    pub fn reshape(&mut self, v: Value, shape: &[u32]) -> Value {
        let t = self.t(v).with_shape(shape.to_vec());
        self.op1(Op::Reshape { value: v }, t)
    }

    pub fn bin(&mut self, op: BinaryOp, a: Value, b: Value) -> Value {
        let t = self.t(a);
        self.op1(Op::Binary { op, lhs: a, rhs: b }, t)
    }

    pub fn cmp(&mut self, pred: CmpPred, a: Value, b: Value) -> Value {
        let t = self.t(a).with_elem(Elem::Scalar(DType::Bool));
        self.op1(Op::Cmp { pred, lhs: a, rhs: b }, t)
    }

    pub fn cast(&mut self, v: Value, dt: DType) -> Value {
        let t = self.t(v).with_elem(Elem::Scalar(dt));
        self.op1(Op::Cast { value: v }, t)
    }

    pub fn addptr(&mut self, p: Value, off: Value) -> Value {
        let t = self.t(p).with_shape(self.t(off).shape);
        let p = if self.t(p).shape.is_empty() && !t.shape.is_empty() {
            let shape = t.shape.clone();
            self.splat(p, &shape)
        } else {
            p
        };
        self.op1(Op::AddPtr { ptr: p, offset: off }, t)
    }

    pub fn load(&mut self, p: Value, mask: Option<Value>, other: Option<Value>) -> Value {
        let pt = self.t(p);
        let Elem::Ptr(dt) = pt.elem else { panic!("load of non-pointer") };
        self.op1(Op::Load { ptr: p, mask, other }, pt.with_elem(Elem::Scalar(dt)))
    }

    pub fn store(&mut self, p: Value, v: Value, mask: Option<Value>) {
        self.op(Op::Store { ptr: p, value: v, mask }, &[]);
    }

    /// Loads elements `0..n` of `ptr` as a rank-1 block (no mask).
    pub fn load_n(&mut self, ptr: Value, n: u32) -> Value {
        let offs = self.arange(0, n as i64);
        let p = self.addptr(ptr, offs);
        self.load(p, None, None)
    }

    /// Stores a block of any shape to elements `0..numel` of `ptr`, row-major.
    pub fn store_all(&mut self, ptr: Value, v: Value) {
        let n = self.t(v).numel() as u32;
        let flat = if self.t(v).rank() == 1 { v } else { self.reshape(v, &[n]) };
        let offs = self.arange(0, n as i64);
        let p = self.addptr(ptr, offs);
        self.store(p, flat, None);
    }

    /// `for iv in range(lo, hi, step)` carrying `init`; `body` returns the next carried values.
    pub fn for_loop(
        &mut self,
        lo: Value,
        hi: Value,
        step: Value,
        init: &[Value],
        body: impl FnOnce(&mut B, Value, &[Value]) -> Vec<Value>,
    ) -> Vec<Value> {
        let mut arg_tys = vec![self.f.value_type(lo)];
        arg_tys.extend(init.iter().map(|&v| self.f.value_type(v)));
        let region = self.f.new_region(&arg_tys);
        let args = self.f.region(region).args.clone();
        self.regions.push(region);
        let ys = body(self, args[0], &args[1..]);
        self.op(Op::Yield { values: ys }, &[]);
        self.regions.pop();
        let tys: Vec<Type> = init.iter().map(|&v| self.t(v)).collect();
        self.op(Op::For { lo, hi, step, init: init.to_vec(), body: region }, &tys)
    }

    /// A region with the given argument types whose body is built by `body`.
    pub fn region(
        &mut self,
        arg_tys: &[Type],
        body: impl FnOnce(&mut B, &[Value]) -> Vec<Value>,
    ) -> RegionId {
        let tys: Vec<TypeId> = arg_tys.iter().map(|t| self.ty(t.clone())).collect();
        let region = self.f.new_region(&tys);
        let args = self.f.region(region).args.clone();
        self.regions.push(region);
        let ys = body(self, &args);
        self.op(Op::Yield { values: ys }, &[]);
        self.regions.pop();
        region
    }

    /// Ends the body and adds the function to the module.
    pub fn finish(self) -> (Module, FuncId) {
        self.finish_with(vec![])
    }

    /// Ends the body yielding `values` (for helpers) and adds the function to the module.
    pub fn finish_with(mut self, values: Vec<Value>) -> (Module, FuncId) {
        self.f.results = values.iter().map(|&v| self.f.value_type(v)).collect();
        self.op(Op::Yield { values }, &[]);
        let id = FuncId(self.m.functions.len() as u32);
        self.m.functions.push(self.f);
        (self.m, id)
    }
}
