//! Lowering from the block IR to the per-thread IR ([`crate::pir`]).
//!
//! Ops with effects or with a fixed placement (loads, stores, atomics, reductions, `dot`, `topk`,
//! loops and ifs) are lowered in program order and *anchor* their results in a [`View`]. Pure
//! block ops (arange, splat, broadcast, expand_dims, permute, element-wise math, casts, pointer
//! arithmetic) are lowered on demand, in the view their consumer asks for, and memoised per
//! (value, view) in a cache scoped to the region being lowered (so a value first computed inside
//! a loop body is recomputed, not read from a register a zero-trip loop never wrote). A request
//! for an anchored value in a different view goes through shared memory ([`Lower::convert`]).
//! Scalars are uniform: every thread computes the same value, so they are lowered eagerly.
//!
//! Shared memory is one scratch buffer reused by every exchange; each exchange is
//! `bar.sync; write; bar.sync; read`, so a later exchange never overwrites data an earlier one is
//! still reading.

use crate::layout::{Layout, View};
use crate::pir::*;
use crate::{Options, PtxError};
use std::collections::{HashMap, HashSet};
use tk_diag::Span;
use tk_ir::analysis::AxisInfoTable;
use tk_ir::{
    AtomicOp, BinaryOp, CmpPred, ConstValue, DType, DotPrecision, Elem, Function, Module, Op, OpId,
    ReduceKind, RegionId, UnaryOp, Value, ValueDef,
};

type Res<T> = Result<T, PtxError>;

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2: f32 = std::f32::consts::LN_2;
/// Longest FMA-path `dot` k loop that is unrolled.
const MAX_UNROLLED_K: u32 = 64;
/// Static shared memory a kernel may use without opting in to more (`0xc000`).
const SMEM_LIMIT: u32 = 48 * 1024;

/// A predicate known at compile time or held in a register.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pv {
    True,
    False,
    R(Reg),
}

/// What a reduction combines.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Comb {
    Sum,
    Max,
    Min,
    /// (value, index) pairs; `max` picks the larger value, ties and NaN rules as the IR says.
    Arg {
        max: bool,
    },
}

/// A partial reduction: the value and, for arg reductions, its index.
#[derive(Clone, Copy, Debug)]
struct Part {
    v: Opnd,
    i: Opnd,
}

/// How a `dot` runs on tensor cores (see [`Lower::dot_mma`]).
#[derive(Clone, Debug)]
struct MmaPlan {
    kind: MmaKind,
    /// The accumulator's layout: `spt [1, 2]`, `tpw [8, 4]`, `wpc [wm, wn]`, so that one warp's
    /// 16 x 8 `mma.sync` C fragments are rows `(2i + h) 8 wm + 8 warp_m + lane / 4` and columns
    /// `c 8 wn + 8 warp_n + 2 (lane % 4) + j` of the block (`h`, `j` in 0..2).
    layout: Layout,
    wm: u32,
    wn: u32,
}

/// The register class and instruction type of a scalar dtype.
pub(crate) fn dtype_ty(dt: DType) -> Option<(RegClass, Ty)> {
    Some(match dt {
        DType::Bool => (RegClass::Pred, Ty::Pred),
        DType::I32 => (RegClass::B32, Ty::S32),
        DType::U32 => (RegClass::B32, Ty::U32),
        DType::I64 => (RegClass::B64, Ty::S64),
        DType::U64 => (RegClass::B64, Ty::U64),
        DType::F16 => (RegClass::B16, Ty::F16),
        DType::BF16 => (RegClass::B16, Ty::BF16),
        DType::F32 => (RegClass::F32, Ty::F32),
        DType::F64 => (RegClass::F64, Ty::F64),
        DType::I8 | DType::I16 | DType::U8 | DType::U16 => return None,
    })
}

/// How a value of `dt` sits in global memory (bool as one byte).
fn mem_ty(dt: DType) -> Ty {
    match dt {
        DType::Bool => Ty::U8,
        DType::F16 | DType::BF16 => Ty::B16,
        _ => dtype_ty(dt).map(|x| x.1).unwrap_or(Ty::B32),
    }
}

pub(crate) struct Lower<'a> {
    m: &'a Module,
    f: &'a Function,
    info: AxisInfoTable,
    num_warps: u32,
    regs: Vec<RegClass>,
    prologue: Vec<Inst>,
    stack: Vec<Vec<Inst>>,
    layouts: Vec<Layout>,
    layout_ids: HashMap<Layout, usize>,
    tparts: HashMap<(usize, usize), Opnd>,
    owners: HashMap<usize, Pv>,
    scalars: HashMap<Value, Opnd>,
    blocks: HashMap<Value, (View, Vec<Opnd>)>,
    /// `topk` results as `k` uniform scalars each, materialised in whatever view is asked for.
    lists: HashMap<Value, Vec<Opnd>>,
    cache: Vec<HashMap<(Value, View), Vec<Opnd>>>,
    smem_bytes: u32,
    smem_base: Reg,
    lane: Reg,
    warp: Reg,
    tid: Reg,
    min_version: u32,
    /// Layouts that loop- and branch-carried blocks should use (the tensor-core accumulator
    /// layout for values that flow into and out of an `mma` dot), by value.
    pref: HashMap<Value, Layout>,
    /// Layout ids of `mma` accumulators (stores of such values use them directly).
    mma_layouts: HashSet<usize>,
}

fn unsupported(what: impl std::fmt::Display, span: Span) -> PtxError {
    PtxError { message: format!("not yet supported on PTX: {what}"), span }
}

impl<'a> Lower<'a> {
    pub(crate) fn new(m: &'a Module, f: &'a Function, info: AxisInfoTable, opts: &Options) -> Self {
        let mut l = Lower {
            m,
            f,
            info,
            num_warps: opts.num_warps,
            regs: Vec::new(),
            prologue: Vec::new(),
            stack: vec![Vec::new()],
            layouts: Vec::new(),
            layout_ids: HashMap::new(),
            tparts: HashMap::new(),
            owners: HashMap::new(),
            scalars: HashMap::new(),
            blocks: HashMap::new(),
            lists: HashMap::new(),
            cache: vec![HashMap::new()],
            smem_bytes: 0,
            smem_base: Reg(0),
            lane: Reg(0),
            warp: Reg(0),
            tid: Reg(0),
            min_version: 70,
            pref: HashMap::new(),
            mma_layouts: HashSet::new(),
        };
        l.tid = l.reg(RegClass::B32);
        l.lane = l.reg(RegClass::B32);
        l.warp = l.reg(RegClass::B32);
        l.smem_base = l.reg(RegClass::B32);
        let (tid, lane, warp, sb) = (l.tid, l.lane, l.warp, l.smem_base);
        l.prologue.push(Inst::Sreg { dst: tid, sreg: SReg::TidX });
        l.prologue.push(bin(BinOp::And, Ty::B32, lane, tid.into(), Opnd::Imm(31)));
        l.prologue.push(bin(BinOp::Shr, Ty::U32, warp, tid.into(), Opnd::Imm(5)));
        l.prologue.push(Inst::SmemBase { dst: sb });
        l
    }

    /// Lowers the whole kernel.
    pub(crate) fn run(mut self) -> Res<Kernel> {
        let f = self.f;
        let mut params = Vec::new();
        for (i, p) in f.params.iter().enumerate() {
            let ty = self.m.ty(p.ty).clone();
            let (class, pty, is_ptr) = match ty.elem {
                Elem::Ptr(_) => (RegClass::B64, Ty::U64, true),
                Elem::Scalar(DType::Bool) => (RegClass::B32, Ty::U8, false),
                Elem::Scalar(dt) => {
                    let (c, t) = dtype_ty(dt)
                        .ok_or_else(|| unsupported(format!("a parameter of type {dt}"), f.span))?;
                    (c, t, false)
                }
            };
            params.push(ParamDecl { name: p.name.clone(), ty: pty, is_ptr });
            let r = self.reg(class);
            self.prologue.push(Inst::LdParam { ty: pty, dst: r, index: i as u32 });
            if ty.elem == Elem::Scalar(DType::Bool) {
                let p = self.reg(RegClass::Pred);
                self.prologue.push(Inst::Setp {
                    cmp: Cmp::Ne,
                    ty: Ty::U32,
                    dst: p,
                    a: r.into(),
                    b: Opnd::Imm(0),
                });
                self.scalars.insert(p_value(f, i), p.into());
            } else {
                self.scalars.insert(p_value(f, i), r.into());
            }
        }
        self.plan_layouts();
        let yields = self.region(f.body)?;
        if !yields.is_empty() {
            return Err(unsupported("a kernel that returns values", f.span));
        }
        let body = self.stack.pop().unwrap_or_default();
        let mut all = std::mem::take(&mut self.prologue);
        all.extend(body);
        if self.smem_bytes > SMEM_LIMIT {
            return Err(PtxError {
                message: format!(
                    "kernel `{}` needs {} bytes of shared memory for its block exchanges; the \
                     limit is {SMEM_LIMIT} (use smaller blocks)",
                    f.name, self.smem_bytes
                ),
                span: f.span,
            });
        }
        Ok(Kernel {
            name: f.name.clone(),
            params,
            regs: self.regs,
            body: all,
            threads: 32 * self.num_warps,
            smem_bytes: self.smem_bytes,
            min_version: self.min_version,
        })
    }

    // ---- small helpers ---------------------------------------------------------------------

    fn reg(&mut self, c: RegClass) -> Reg {
        self.regs.push(c);
        Reg(self.regs.len() as u32 - 1)
    }

    fn emit(&mut self, i: Inst) {
        if let Some(top) = self.stack.last_mut() {
            top.push(i);
        }
    }

    fn in_reg(&mut self, o: Opnd, class: RegClass, ty: Ty) -> Reg {
        match o {
            Opnd::Reg(r) => r,
            Opnd::Imm(_) => {
                let r = self.reg(class);
                let mty = match ty {
                    Ty::F16 | Ty::BF16 => Ty::B16,
                    t => t,
                };
                self.emit(Inst::Mov { ty: mty, dst: r, src: o });
                r
            }
        }
    }

    fn value_elem(&self, v: Value) -> Elem {
        self.m.ty(self.f.value_type(v)).elem
    }

    fn value_shape(&self, v: Value) -> Vec<u32> {
        self.m.ty(self.f.value_type(v)).shape.clone()
    }

    fn dt_of(&self, v: Value, span: Span) -> Res<(DType, RegClass, Ty)> {
        match self.value_elem(v) {
            Elem::Scalar(dt) => {
                let (c, t) =
                    dtype_ty(dt).ok_or_else(|| unsupported(format!("dtype {dt}"), span))?;
                Ok((dt, c, t))
            }
            Elem::Ptr(_) => Ok((DType::U64, RegClass::B64, Ty::U64)),
        }
    }

    fn layout_id(&mut self, l: Layout) -> usize {
        if let Some(&id) = self.layout_ids.get(&l) {
            return id;
        }
        self.layouts.push(l.clone());
        self.layout_ids.insert(l, self.layouts.len() - 1);
        self.layouts.len() - 1
    }

    fn natural_view(&mut self, shape: &[u32]) -> View {
        let l = Layout::natural(shape, self.num_warps);
        let id = self.layout_id(l);
        View { layout: id, map: (0..shape.len()).map(|d| Some(d as u8)).collect() }
    }

    fn slots(&self, view: &View) -> usize {
        self.layouts[view.layout].slots()
    }

    /// The thread part of coordinate `d` of layout `lid` (computed once, in the prologue).
    fn tpart(&mut self, lid: usize, d: usize) -> Opnd {
        if let Some(&o) = self.tparts.get(&(lid, d)) {
            return o;
        }
        let l = self.layouts[lid].clone();
        let o = if l.tpw[d] * l.wpc[d] == 1 {
            Opnd::Imm(0)
        } else {
            let coord = self.thread_coord(&l, d);
            let r = self.reg(RegClass::B32);
            let mut code = Vec::new();
            let shift = l.spt[d].trailing_zeros();
            code.push(bin(BinOp::Shl, Ty::B32, r, coord.into(), Opnd::Imm(u64::from(shift))));
            code.push(bin(BinOp::And, Ty::B32, r, r.into(), Opnd::Imm(u64::from(l.padded[d] - 1))));
            self.prologue.extend(code);
            r.into()
        };
        self.tparts.insert((lid, d), o);
        o
    }

    /// `warp_d * tpw_d + lane_d` (before scaling by `spt` and wrapping), in the prologue.
    fn thread_coord(&mut self, l: &Layout, d: usize) -> Reg {
        let (lane, warp) = (self.lane, self.warp);
        let ln = self.reg(RegClass::B32);
        let wn = self.reg(RegClass::B32);
        let c = self.reg(RegClass::B32);
        let code = vec![
            bin(BinOp::Shr, Ty::U32, ln, lane.into(), Opnd::Imm(u64::from(l.lane_shift[d]))),
            bin(BinOp::And, Ty::B32, ln, ln.into(), Opnd::Imm(u64::from(l.tpw[d] - 1))),
            bin(BinOp::Shr, Ty::U32, wn, warp.into(), Opnd::Imm(u64::from(l.warp_shift[d]))),
            bin(BinOp::And, Ty::B32, wn, wn.into(), Opnd::Imm(u64::from(l.wpc[d] - 1))),
            Inst::Fma {
                ty: Ty::U32,
                dst: c,
                a: wn.into(),
                b: Opnd::Imm(u64::from(l.tpw[d])),
                c: ln.into(),
            },
        ];
        self.prologue.extend(code);
        c
    }

    /// Whether this thread is the owner of its elements of layout `lid` (not a replica).
    fn owner(&mut self, lid: usize) -> Pv {
        if let Some(&p) = self.owners.get(&lid) {
            return p;
        }
        let l = self.layouts[lid].clone();
        let mut acc = Pv::True;
        for d in 0..l.rank() {
            if !l.replicated(d) {
                continue;
            }
            let c = self.thread_coord(&l, d);
            let p = self.reg(RegClass::Pred);
            self.prologue.push(Inst::Setp {
                cmp: Cmp::Lt,
                ty: Ty::U32,
                dst: p,
                a: c.into(),
                b: Opnd::Imm(u64::from(l.padded[d] / l.spt[d])),
            });
            acc = match acc {
                Pv::True => Pv::R(p),
                Pv::R(q) => {
                    let r = self.reg(RegClass::Pred);
                    self.prologue.push(bin(BinOp::And, Ty::Pred, r, q.into(), p.into()));
                    Pv::R(r)
                }
                Pv::False => Pv::False,
            };
        }
        self.owners.insert(lid, acc);
        acc
    }

    /// Coordinate along value dimension `vd` of slot `s` in `view` (an i32).
    fn coord(&mut self, view: &View, vd: usize, s: usize) -> Opnd {
        let Some(pd) = view.map[vd] else { return Opnd::Imm(0) };
        let pd = pd as usize;
        let sp = self.layouts[view.layout].slot_part(s, pd);
        match self.tpart(view.layout, pd) {
            Opnd::Imm(t) => Opnd::Imm(t + u64::from(sp)),
            Opnd::Reg(t) => {
                if sp == 0 {
                    return t.into();
                }
                let r = self.reg(RegClass::B32);
                self.emit(bin(BinOp::Add, Ty::S32, r, t.into(), Opnd::Imm(u64::from(sp))));
                r.into()
            }
        }
    }

    /// Whether slot `s` of `view` is a real element (not padding up to a power of two).
    fn valid(&mut self, view: &View, s: usize) -> Pv {
        let l = self.layouts[view.layout].clone();
        let mut acc = Pv::True;
        for pd in view.map.iter().flatten() {
            let pd = *pd as usize;
            if l.shape[pd] == l.padded[pd] {
                continue;
            }
            let sp = l.slot_part(s, pd);
            let p = if sp >= l.shape[pd] {
                Pv::False
            } else {
                match self.tpart(view.layout, pd) {
                    Opnd::Imm(t) => {
                        if t + u64::from(sp) < u64::from(l.shape[pd]) {
                            Pv::True
                        } else {
                            Pv::False
                        }
                    }
                    Opnd::Reg(t) => {
                        let r = self.reg(RegClass::Pred);
                        self.emit(Inst::Setp {
                            cmp: Cmp::Lt,
                            ty: Ty::U32,
                            dst: r,
                            a: t.into(),
                            b: Opnd::Imm(u64::from(l.shape[pd] - sp)),
                        });
                        Pv::R(r)
                    }
                }
            };
            acc = self.and_pv(acc, p);
        }
        acc
    }

    fn and_pv(&mut self, a: Pv, b: Pv) -> Pv {
        match (a, b) {
            (Pv::False, _) | (_, Pv::False) => Pv::False,
            (Pv::True, x) | (x, Pv::True) => x,
            (Pv::R(x), Pv::R(y)) => {
                let r = self.reg(RegClass::Pred);
                self.emit(bin(BinOp::And, Ty::Pred, r, x.into(), y.into()));
                Pv::R(r)
            }
        }
    }

    fn pv_of(&mut self, o: Opnd) -> Pv {
        match o {
            Opnd::Imm(0) => Pv::False,
            Opnd::Imm(_) => Pv::True,
            Opnd::Reg(r) => Pv::R(r),
        }
    }

    fn shared(&mut self, bytes: u32) {
        self.smem_bytes = self.smem_bytes.max(bytes.next_multiple_of(16));
    }

    // ---- regions and ops -------------------------------------------------------------------

    /// Lowers the ops of `r` (except its terminator) and returns what it yields.
    fn region(&mut self, r: RegionId) -> Res<Vec<Value>> {
        let ops = self.f.region(r).ops.clone();
        for id in ops {
            if let Op::Yield { values } = &self.f.op(id).op {
                return Ok(values.clone());
            }
            self.op(id)?;
        }
        Ok(Vec::new())
    }

    fn op(&mut self, id: OpId) -> Res<()> {
        let od = self.f.op(id);
        let span = od.span;
        let results = od.results.clone();
        let block_result = results.first().map(|&v| !self.value_shape(v).is_empty());
        match &od.op {
            Op::Const { value } => {
                let v = results[0];
                let (dt, _, _) = self.dt_of(v, span)?;
                self.scalars.insert(v, Opnd::Imm(const_bits(dt, *value)));
            }
            Op::ProgramId { axis } | Op::NumPrograms { axis } => {
                let r = self.reg(RegClass::B32);
                let sreg = if matches!(od.op, Op::ProgramId { .. }) {
                    SReg::CtaId(*axis)
                } else {
                    SReg::NCtaId(*axis)
                };
                self.emit(Inst::Sreg { dst: r, sreg });
                self.scalars.insert(results[0], r.into());
            }
            Op::Arange { .. }
            | Op::Splat { .. }
            | Op::Broadcast { .. }
            | Op::ExpandDims { .. }
            | Op::Reshape { .. }
            | Op::Permute { .. } => {}
            Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Cmp { .. }
            | Op::Select { .. }
            | Op::Fma { .. }
            | Op::Cast { .. }
            | Op::AddPtr { .. } => {
                if block_result == Some(false) {
                    let args: Vec<Opnd> = od
                        .op
                        .operands()
                        .iter()
                        .map(|&a| self.scalar(a, span))
                        .collect::<Res<_>>()?;
                    let o = self.elem_op(id, &args)?;
                    self.scalars.insert(results[0], o);
                }
            }
            Op::Load { ptr, mask, other } => self.load(id, *ptr, *mask, *other)?,
            Op::Store { ptr, value, mask } => self.store(*ptr, *value, *mask, span)?,
            Op::Reduce { kind, axis, value } => {
                let comb = match kind {
                    ReduceKind::Sum => Comb::Sum,
                    ReduceKind::Max => Comb::Max,
                    ReduceKind::Min => Comb::Min,
                    ReduceKind::Argmax => Comb::Arg { max: true },
                    ReduceKind::Argmin => Comb::Arg { max: false },
                };
                self.reduce(comb, *axis as usize, *value, results[0], span)?;
            }
            Op::Dot { a, b, acc, precision } => match self.mma_plan(*a, *b, *acc, *precision) {
                Some(plan) => self.dot_mma(&plan, *a, *b, *acc, results[0], span)?,
                None => self.dot(*a, *b, *acc, results[0], span)?,
            },
            Op::Atomic { op, ptr, value, mask } => {
                let aop = match op {
                    AtomicOp::Add => AtomOp::Add,
                    AtomicOp::Max => AtomOp::Max,
                    AtomicOp::Min => AtomOp::Min,
                    AtomicOp::Xchg => AtomOp::Exch,
                };
                self.atomic(aop, *ptr, None, *value, *mask, results[0], span)?
            }
            Op::AtomicCas { ptr, cmp, value, mask } => {
                self.atomic(AtomOp::Cas, *ptr, Some(*cmp), *value, *mask, results[0], span)?
            }
            Op::TopK { value, k } => self.topk(*value, *k, &results, span)?,
            Op::For { lo, hi, step, init, body } => {
                self.for_loop(*lo, *hi, *step, init, *body, &results, span)?
            }
            Op::If { cond, then_body, else_body } => {
                self.if_op(*cond, *then_body, *else_body, &results, span)?
            }
            // Checks and prints are debug-build features; release PTX drops them.
            Op::DeviceAssert { .. } | Op::Print { .. } => {}
            other => return Err(unsupported(format!("`{}`", other.mnemonic()), span)),
        }
        Ok(())
    }

    fn scalar(&mut self, v: Value, span: Span) -> Res<Opnd> {
        self.scalars.get(&v).copied().ok_or_else(|| PtxError {
            message: format!("internal: scalar %{} has no register", v.0),
            span,
        })
    }

    /// The registers of value `v` in `view`, one per slot.
    fn get(&mut self, v: Value, view: &View, span: Span) -> Res<Vec<Opnd>> {
        let n = self.slots(view);
        if self.value_shape(v).is_empty() {
            let s = self.scalar(v, span)?;
            return Ok(vec![s; n]);
        }
        if let Some((aview, regs)) = self.blocks.get(&v).cloned() {
            if aview == *view {
                return Ok(regs);
            }
            for scope in self.cache.iter().rev() {
                if let Some(r) = scope.get(&(v, view.clone())) {
                    return Ok(r.clone());
                }
            }
            let out = self.convert(v, &aview, &regs, view, span)?;
            self.cache.last_mut().map(|c| c.insert((v, view.clone()), out.clone()));
            return Ok(out);
        }
        if let Some(list) = self.lists.get(&v).cloned() {
            let (_, c, t) = self.dt_of(v, span)?;
            let mut out = Vec::with_capacity(n);
            for s in 0..n {
                let e = self.coord(view, 0, s);
                out.push(self.pick(&list, e, c, t));
            }
            return Ok(out);
        }
        for scope in self.cache.iter().rev() {
            if let Some(r) = scope.get(&(v, view.clone())) {
                return Ok(r.clone());
            }
        }
        let out = self.compute(v, view, span)?;
        self.cache.last_mut().map(|c| c.insert((v, view.clone()), out.clone()));
        Ok(out)
    }

    /// `list[e]` for a runtime index `e` (a chain of selects).
    fn pick(&mut self, list: &[Opnd], e: Opnd, c: RegClass, t: Ty) -> Opnd {
        if let Opnd::Imm(i) = e {
            return list.get(i as usize).copied().unwrap_or(list[0]);
        }
        let mut cur = list[0];
        for (j, &x) in list.iter().enumerate().skip(1) {
            let p = self.reg(RegClass::Pred);
            self.emit(Inst::Setp {
                cmp: Cmp::Eq,
                ty: Ty::S32,
                dst: p,
                a: e,
                b: Opnd::Imm(j as u64),
            });
            let r = self.reg(c);
            self.select(t, r, p, x, cur);
            cur = r.into();
        }
        cur
    }

    fn select(&mut self, t: Ty, dst: Reg, cond: Reg, a: Opnd, b: Opnd) {
        if t == Ty::Pred {
            // (c & a) | (!c & b)
            let nc = self.reg(RegClass::Pred);
            let x = self.reg(RegClass::Pred);
            let y = self.reg(RegClass::Pred);
            self.emit(Inst::Unary { op: UnOp::Not, ty: Ty::Pred, dst: nc, a: cond.into() });
            self.emit(bin(BinOp::And, Ty::Pred, x, cond.into(), a));
            self.emit(bin(BinOp::And, Ty::Pred, y, nc.into(), b));
            self.emit(bin(BinOp::Or, Ty::Pred, dst, x.into(), y.into()));
        } else {
            let st = if matches!(t, Ty::F16 | Ty::BF16) { Ty::B16 } else { t };
            self.emit(Inst::Selp { ty: st, dst, a, b, cond });
        }
    }

    /// Computes a pure block value in `view`.
    fn compute(&mut self, v: Value, view: &View, span: Span) -> Res<Vec<Opnd>> {
        let op_id = match self.f.value(v).def {
            ValueDef::Result { op, .. } => op,
            _ => {
                return Err(PtxError {
                    message: format!("internal: block %{} has no placement", v.0),
                    span,
                })
            }
        };
        let od = self.f.op(op_id);
        let span = od.span;
        let n = self.slots(view);
        let shape = self.value_shape(v);
        match &od.op {
            Op::Arange { start, .. } => {
                let mut out = Vec::with_capacity(n);
                for s in 0..n {
                    let c = self.coord(view, 0, s);
                    out.push(match c {
                        Opnd::Imm(x) => Opnd::int(x as i64 + start),
                        Opnd::Reg(_) if *start == 0 => c,
                        Opnd::Reg(_) => {
                            let r = self.reg(RegClass::B32);
                            self.emit(bin(BinOp::Add, Ty::S32, r, c, Opnd::int(*start)));
                            r.into()
                        }
                    });
                }
                Ok(out)
            }
            Op::Splat { value } => {
                let s = self.scalar(*value, span)?;
                Ok(vec![s; n])
            }
            Op::Broadcast { value } => {
                let src = self.value_shape(*value);
                let map = (0..src.len())
                    .map(|d| if src[d] == 1 && shape[d] != 1 { None } else { view.map[d] })
                    .collect();
                self.get(*value, &View { layout: view.layout, map }, span)
            }
            Op::ExpandDims { value, axis } => {
                let mut map = view.map.clone();
                map.remove(*axis as usize);
                self.get(*value, &View { layout: view.layout, map }, span)
            }
            Op::Permute { value, perm } => {
                let mut map = vec![None; perm.len()];
                for (i, &p) in perm.iter().enumerate() {
                    map[p as usize] = view.map[i];
                }
                self.get(*value, &View { layout: view.layout, map }, span)
            }
            Op::Reshape { value } => {
                // Only reshapes that add or remove size-1 dimensions are a change of view.
                let src = self.value_shape(*value);
                let a: Vec<usize> = (0..src.len()).filter(|&d| src[d] != 1).collect();
                let b: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
                if a.len() != b.len() || a.iter().zip(&b).any(|(&x, &y)| src[x] != shape[y]) {
                    return Err(unsupported("a reshape that moves elements", span));
                }
                let mut map = vec![None; src.len()];
                for (&x, &y) in a.iter().zip(&b) {
                    map[x] = view.map[y];
                }
                self.get(*value, &View { layout: view.layout, map }, span)
            }
            Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Cmp { .. }
            | Op::Select { .. }
            | Op::Fma { .. }
            | Op::Cast { .. }
            | Op::AddPtr { .. } => {
                let operands = od.op.operands();
                let mut cols = Vec::with_capacity(operands.len());
                for a in operands {
                    cols.push(self.get(a, view, span)?);
                }
                let mut out = Vec::with_capacity(n);
                for s in 0..n {
                    let args: Vec<Opnd> = cols.iter().map(|c| c[s]).collect();
                    out.push(self.elem_op(op_id, &args)?);
                }
                Ok(out)
            }
            other => Err(PtxError {
                message: format!(
                    "internal: `{}` result used before it was lowered",
                    other.mnemonic()
                ),
                span,
            }),
        }
    }

    // ---- element-wise ----------------------------------------------------------------------

    /// One element of an element-wise op, given its operands' registers.
    fn elem_op(&mut self, id: OpId, args: &[Opnd]) -> Res<Opnd> {
        let od = self.f.op(id);
        let span = od.span;
        let res = od.results[0];
        match &od.op {
            Op::Unary { op, value } => {
                let (dt, c, t) = self.dt_of(*value, span)?;
                self.unary(*op, dt, c, t, args[0], span)
            }
            Op::Binary { op, lhs, .. } => {
                let (dt, c, t) = self.dt_of(*lhs, span)?;
                self.binary(*op, dt, c, t, args[0], args[1], span)
            }
            Op::Cmp { pred, lhs, .. } => {
                let (dt, c, t) = self.dt_of(*lhs, span)?;
                self.cmp(*pred, dt, c, t, args[0], args[1], span)
            }
            Op::Select { .. } => {
                let (_, c, t) = self.dt_of(res, span)?;
                match args[0] {
                    Opnd::Imm(0) => Ok(args[2]),
                    Opnd::Imm(_) => Ok(args[1]),
                    Opnd::Reg(p) => {
                        let r = self.reg(c);
                        self.select(t, r, p, args[1], args[2]);
                        Ok(r.into())
                    }
                }
            }
            Op::Fma { .. } => {
                let (dt, c, t) = self.dt_of(res, span)?;
                if matches!(dt, DType::F16 | DType::BF16) {
                    let a = self.up(args[0], t);
                    let b = self.up(args[1], t);
                    let cc = self.up(args[2], t);
                    let r = self.reg(RegClass::F32);
                    self.emit(Inst::Fma { ty: Ty::F32, dst: r, a, b, c: cc });
                    return Ok(self.down(r.into(), t));
                }
                let r = self.reg(c);
                self.emit(Inst::Fma { ty: t, dst: r, a: args[0], b: args[1], c: args[2] });
                Ok(r.into())
            }
            Op::Cast { value } => {
                let (from, _, ft) = self.dt_of(*value, span)?;
                let (to, tc, tt) = self.dt_of(res, span)?;
                self.cast(from, ft, to, tc, tt, args[0])
            }
            Op::AddPtr { offset, .. } => {
                let Elem::Ptr(pd) = self.value_elem(res) else {
                    return Err(unsupported("addptr on a non-pointer", span));
                };
                let eb = u64::from(pd.size_bytes());
                let (odt, _, _) = self.dt_of(*offset, span)?;
                let r = self.reg(RegClass::B64);
                if let Opnd::Imm(o) = args[1] {
                    let off = match odt {
                        DType::I32 => i64::from(o as i32),
                        DType::U32 => i64::from(o as u32),
                        _ => o as i64,
                    };
                    self.emit(bin(BinOp::Add, Ty::S64, r, args[0], Opnd::int(off * eb as i64)));
                    return Ok(r.into());
                }
                match odt {
                    DType::I32 | DType::U32 => {
                        let t = self.reg(RegClass::B64);
                        let ty = if odt == DType::I32 { Ty::S32 } else { Ty::U32 };
                        self.emit(Inst::MulWide { ty, dst: t, a: args[1], b: Opnd::Imm(eb) });
                        self.emit(bin(BinOp::Add, Ty::S64, r, args[0], t.into()));
                    }
                    DType::I64 | DType::U64 => {
                        self.emit(Inst::Fma {
                            ty: Ty::S64,
                            dst: r,
                            a: args[1],
                            b: Opnd::Imm(eb),
                            c: args[0],
                        });
                    }
                    d => return Err(unsupported(format!("pointer offsets of type {d}"), span)),
                }
                Ok(r.into())
            }
            other => Err(unsupported(format!("`{}` per element", other.mnemonic()), span)),
        }
    }

    /// f16/bf16 -> f32 (other types unchanged).
    fn up(&mut self, a: Opnd, t: Ty) -> Opnd {
        if !matches!(t, Ty::F16 | Ty::BF16) {
            return a;
        }
        if t == Ty::BF16 {
            self.min_version = self.min_version.max(71);
        }
        let a = self.in_reg(a, RegClass::B16, t);
        let r = self.reg(RegClass::F32);
        self.emit(Inst::Cvt { round: Round::None, dty: Ty::F32, sty: t, dst: r, src: a.into() });
        r.into()
    }

    /// f32 -> f16/bf16 with round to nearest even.
    fn down(&mut self, a: Opnd, t: Ty) -> Opnd {
        if !matches!(t, Ty::F16 | Ty::BF16) {
            return a;
        }
        let r = self.reg(RegClass::B16);
        self.emit(Inst::Cvt { round: Round::Rn, dty: t, sty: Ty::F32, dst: r, src: a });
        r.into()
    }

    fn un(&mut self, op: UnOp, ty: Ty, a: Opnd) -> Opnd {
        let class = if ty == Ty::F64 { RegClass::F64 } else { RegClass::F32 };
        let r = self.reg(class);
        self.emit(Inst::Unary { op, ty, dst: r, a });
        r.into()
    }

    fn bf(&mut self, op: BinOp, a: Opnd, b: Opnd) -> Opnd {
        let r = self.reg(RegClass::F32);
        self.emit(bin(op, Ty::F32, r, a, b));
        r.into()
    }

    fn ff(&mut self, a: Opnd, b: Opnd, c: Opnd) -> Opnd {
        let r = self.reg(RegClass::F32);
        self.emit(Inst::Fma { ty: Ty::F32, dst: r, a, b, c });
        r.into()
    }

    fn ex2_of_scaled(&mut self, x: Opnd, scale: f32) -> Opnd {
        let t = self.bf(BinOp::Mul, x, Opnd::f32(scale));
        self.un(UnOp::Ex2, Ty::F32, t)
    }

    fn unary(
        &mut self,
        op: UnaryOp,
        dt: DType,
        c: RegClass,
        t: Ty,
        a: Opnd,
        span: Span,
    ) -> Res<Opnd> {
        if dt == DType::Bool {
            if op != UnaryOp::Not {
                return Err(unsupported(format!("`{}` on bool", op.name()), span));
            }
            let r = self.reg(RegClass::Pred);
            self.emit(Inst::Unary { op: UnOp::Not, ty: Ty::Pred, dst: r, a });
            return Ok(r.into());
        }
        if dt.is_int() {
            let uop = match op {
                UnaryOp::Neg => UnOp::Neg,
                UnaryOp::Not => UnOp::Not,
                UnaryOp::Abs if dt.is_unsigned_int() => return Ok(a),
                UnaryOp::Abs => UnOp::Abs,
                _ => return Err(unsupported(format!("`{}` on {dt}", op.name()), span)),
            };
            let r = self.reg(c);
            self.emit(Inst::Unary { op: uop, ty: t, dst: r, a });
            return Ok(r.into());
        }
        if dt == DType::F64 {
            let uop = match op {
                UnaryOp::Neg => UnOp::Neg,
                UnaryOp::Abs => UnOp::Abs,
                UnaryOp::Sqrt => UnOp::Sqrt,
                UnaryOp::Floor | UnaryOp::Ceil => {
                    let r = self.reg(c);
                    let round = if op == UnaryOp::Floor { Round::Rmi } else { Round::Rpi };
                    self.emit(Inst::Cvt { round, dty: t, sty: t, dst: r, src: a });
                    return Ok(r.into());
                }
                _ => return Err(unsupported(format!("`{}` on f64", op.name()), span)),
            };
            return Ok(self.un(uop, Ty::F64, a));
        }
        // f32, and f16/bf16 computed in f32 with one rounding at the end.
        let x = self.up(a, t);
        let y = match op {
            UnaryOp::Neg => self.un(UnOp::Neg, Ty::F32, x),
            UnaryOp::Abs => self.un(UnOp::Abs, Ty::F32, x),
            UnaryOp::Not => return Err(unsupported("`not` on floats", span)),
            UnaryOp::Exp => self.ex2_of_scaled(x, LOG2E),
            UnaryOp::Exp2 => self.un(UnOp::Ex2, Ty::F32, x),
            UnaryOp::Log => {
                let l = self.un(UnOp::Lg2, Ty::F32, x);
                self.bf(BinOp::Mul, l, Opnd::f32(LN2))
            }
            UnaryOp::Log2 => self.un(UnOp::Lg2, Ty::F32, x),
            UnaryOp::Sqrt => self.un(UnOp::Sqrt, Ty::F32, x),
            UnaryOp::Rsqrt => self.un(UnOp::Rsqrt, Ty::F32, x),
            UnaryOp::Sin => self.un(UnOp::Sin, Ty::F32, x),
            UnaryOp::Cos => self.un(UnOp::Cos, Ty::F32, x),
            UnaryOp::Floor | UnaryOp::Ceil => {
                let r = self.reg(RegClass::F32);
                let round = if op == UnaryOp::Floor { Round::Rmi } else { Round::Rpi };
                self.emit(Inst::Cvt { round, dty: Ty::F32, sty: Ty::F32, dst: r, src: x });
                r.into()
            }
            UnaryOp::Sigmoid => {
                // 1 / (1 + 2^(-x log2 e))
                let e = self.ex2_of_scaled(x, -LOG2E);
                let d = self.bf(BinOp::Add, e, Opnd::f32(1.0));
                self.un(UnOp::Rcp, Ty::F32, d)
            }
            UnaryOp::Tanh => {
                // sign(x) * (1 - 2 / (2^(2|x| log2 e) + 1))
                let ax = self.un(UnOp::Abs, Ty::F32, x);
                let e = self.ex2_of_scaled(ax, 2.0 * LOG2E);
                let d = self.bf(BinOp::Add, e, Opnd::f32(1.0));
                let q = self.un(UnOp::Rcp, Ty::F32, d);
                let m = self.ff(q, Opnd::f32(-2.0), Opnd::f32(1.0));
                self.bf(BinOp::CopySign, x, m)
            }
            UnaryOp::Erf => {
                // Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
                let ax = self.un(UnOp::Abs, Ty::F32, x);
                let d = self.ff(ax, Opnd::f32(0.327_591_1), Opnd::f32(1.0));
                let tt = self.un(UnOp::Rcp, Ty::F32, d);
                let mut p = Opnd::f32(1.061_405_4);
                for k in [-1.453_152_1f32, 1.421_413_8, -0.284_496_72, 0.254_829_6] {
                    p = self.ff(p, tt, Opnd::f32(k));
                }
                p = self.bf(BinOp::Mul, p, tt);
                let sq = self.bf(BinOp::Mul, ax, ax);
                let e = self.ex2_of_scaled(sq, -LOG2E);
                let ne = self.neg_reg(e);
                let r = self.ff(p, ne.into(), Opnd::f32(1.0));
                self.bf(BinOp::CopySign, x, r)
            }
        };
        Ok(self.down(y, t))
    }

    fn neg_reg(&mut self, a: Opnd) -> Reg {
        let r = self.reg(RegClass::F32);
        self.emit(Inst::Unary { op: UnOp::Neg, ty: Ty::F32, dst: r, a });
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn binary(
        &mut self,
        op: BinaryOp,
        dt: DType,
        c: RegClass,
        t: Ty,
        a: Opnd,
        b: Opnd,
        span: Span,
    ) -> Res<Opnd> {
        if dt == DType::Bool {
            let bop = match op {
                BinaryOp::And | BinaryOp::Min => BinOp::And,
                BinaryOp::Or | BinaryOp::Max => BinOp::Or,
                BinaryOp::Xor => BinOp::Xor,
                _ => return Err(unsupported(format!("`{}` on bool", op.name()), span)),
            };
            let r = self.reg(RegClass::Pred);
            self.emit(bin(bop, Ty::Pred, r, a, b));
            return Ok(r.into());
        }
        if dt.is_float() {
            let bop = match op {
                BinaryOp::Add => BinOp::Add,
                BinaryOp::Sub => BinOp::Sub,
                BinaryOp::Mul => BinOp::Mul,
                BinaryOp::Div => BinOp::Div,
                BinaryOp::Min => BinOp::Min,
                BinaryOp::Max => BinOp::Max,
                _ => return Err(unsupported(format!("`{}` on {dt}", op.name()), span)),
            };
            if dt == DType::F64 {
                let r = self.reg(c);
                self.emit(bin(bop, Ty::F64, r, a, b));
                return Ok(r.into());
            }
            let x = self.up(a, t);
            let y = self.up(b, t);
            let z = self.bf(bop, x, y);
            return Ok(self.down(z, t));
        }
        let bop = match op {
            BinaryOp::Add => BinOp::Add,
            BinaryOp::Sub => BinOp::Sub,
            BinaryOp::Mul => BinOp::Mul,
            BinaryOp::Div => BinOp::Div,
            BinaryOp::Rem => BinOp::Rem,
            BinaryOp::And => BinOp::And,
            BinaryOp::Or => BinOp::Or,
            BinaryOp::Xor => BinOp::Xor,
            BinaryOp::Shl => BinOp::Shl,
            BinaryOp::Shr => BinOp::Shr,
            BinaryOp::Min => BinOp::Min,
            BinaryOp::Max => BinOp::Max,
        };
        let mut b = b;
        if matches!(bop, BinOp::Shl | BinOp::Shr) && c == RegClass::B64 {
            // PTX shift amounts are u32; clamp first so that huge amounts still shift everything out.
            b = match b {
                Opnd::Imm(x) => Opnd::Imm(if (x as i64) < 0 { 64 } else { x.min(64) }),
                Opnd::Reg(_) => {
                    let m = self.reg(RegClass::B64);
                    self.emit(bin(BinOp::Min, Ty::U64, m, b, Opnd::Imm(64)));
                    let r = self.reg(RegClass::B32);
                    self.emit(Inst::Cvt {
                        round: Round::None,
                        dty: Ty::U32,
                        sty: Ty::U64,
                        dst: r,
                        src: m.into(),
                    });
                    r.into()
                }
            };
        } else if matches!(bop, BinOp::Shl | BinOp::Shr) && dt.is_signed_int() {
            // A negative amount is huge as u32, which PTX clamps like the IR wants.
            if let Opnd::Imm(x) = b {
                b = Opnd::Imm(if (x as i64) < 0 { 32 } else { x.min(32) });
            }
        }
        let r = self.reg(c);
        self.emit(bin(bop, t, r, a, b));
        Ok(r.into())
    }

    #[allow(clippy::too_many_arguments)]
    fn cmp(
        &mut self,
        pred: CmpPred,
        dt: DType,
        _c: RegClass,
        t: Ty,
        a: Opnd,
        b: Opnd,
        span: Span,
    ) -> Res<Opnd> {
        let r = self.reg(RegClass::Pred);
        if dt == DType::Bool {
            match pred {
                CmpPred::Eq | CmpPred::Ne => {
                    self.emit(bin(BinOp::Xor, Ty::Pred, r, a, b));
                    if pred == CmpPred::Eq {
                        let q = self.reg(RegClass::Pred);
                        self.emit(Inst::Unary { op: UnOp::Not, ty: Ty::Pred, dst: q, a: r.into() });
                        return Ok(q.into());
                    }
                    return Ok(r.into());
                }
                _ => return Err(unsupported("ordering comparisons of bools", span)),
            }
        }
        let cmp = match pred {
            CmpPred::Eq => Cmp::Eq,
            CmpPred::Ne => Cmp::Ne,
            CmpPred::Lt => Cmp::Lt,
            CmpPred::Le => Cmp::Le,
            CmpPred::Gt => Cmp::Gt,
            CmpPred::Ge => Cmp::Ge,
        };
        let (a, b, t) = if matches!(t, Ty::F16 | Ty::BF16) {
            (self.up(a, t), self.up(b, t), Ty::F32)
        } else {
            (a, b, t)
        };
        self.emit(Inst::Setp { cmp, ty: t, dst: r, a, b });
        Ok(r.into())
    }

    fn cast(&mut self, from: DType, ft: Ty, to: DType, tc: RegClass, tt: Ty, a: Opnd) -> Res<Opnd> {
        if from == to {
            return Ok(a);
        }
        if to == DType::Bool {
            let r = self.reg(RegClass::Pred);
            let (a, ft) =
                if matches!(ft, Ty::F16 | Ty::BF16) { (self.up(a, ft), Ty::F32) } else { (a, ft) };
            self.emit(Inst::Setp { cmp: Cmp::Ne, ty: ft, dst: r, a, b: Opnd::Imm(0) });
            return Ok(r.into());
        }
        if from == DType::Bool {
            let p = match a {
                Opnd::Reg(p) => p,
                Opnd::Imm(x) => {
                    let one =
                        if to.is_float() { const_bits(to, ConstValue::Float(1.0)) } else { 1 };
                    return Ok(Opnd::Imm(if x != 0 { one } else { 0 }));
                }
            };
            let (one, st) = match tt {
                Ty::F32 => (Opnd::f32(1.0), Ty::F32),
                Ty::F64 => (Opnd::Imm(1f64.to_bits()), Ty::F64),
                Ty::F16 | Ty::BF16 => (Opnd::Imm(const_bits(to, ConstValue::Float(1.0))), Ty::B16),
                t => (Opnd::Imm(1), t),
            };
            let r = self.reg(tc);
            self.emit(Inst::Selp { ty: st, dst: r, a: one, b: Opnd::Imm(0), cond: p });
            return Ok(r.into());
        }
        if from.is_int() && to.is_int() && from.bits() == to.bits() {
            return Ok(a);
        }
        // f16 <-> bf16 goes through f32 (exact up, one rounding down).
        if matches!(ft, Ty::F16 | Ty::BF16) && matches!(tt, Ty::F16 | Ty::BF16) {
            let x = self.up(a, ft);
            return Ok(self.down(x, tt));
        }
        let round = if from.is_float() && to.is_int() {
            Round::Rzi
        } else if to.is_float() && (from.is_int() || from.bits() > to.bits()) {
            Round::Rn
        } else {
            Round::None
        };
        if ft == Ty::BF16 {
            self.min_version = self.min_version.max(71);
        }
        let a = match a {
            Opnd::Imm(_) if matches!(ft, Ty::F16 | Ty::BF16) => {
                self.in_reg(a, RegClass::B16, ft).into()
            }
            _ => a,
        };
        let r = self.reg(tc);
        self.emit(Inst::Cvt { round, dty: tt, sty: ft, dst: r, src: a });
        Ok(r.into())
    }

    // ---- memory ----------------------------------------------------------------------------

    fn load(&mut self, id: OpId, ptr: Value, mask: Option<Value>, other: Option<Value>) -> Res<()> {
        let od = self.f.op(id);
        let span = od.span;
        let res = od.results[0];
        let (dt, c, _t) = self.dt_of(res, span)?;
        let mty = mem_ty(dt);
        let shape = self.value_shape(res);
        if shape.is_empty() {
            let p = self.scalar(ptr, span)?;
            let pm = match mask {
                Some(m) => {
                    let o = self.scalar(m, span)?;
                    self.pv_of(o)
                }
                None => Pv::True,
            };
            let o = match other {
                Some(o) => self.scalar(o, span)?,
                None => Opnd::Imm(0),
            };
            let r = self.load_group(dt, c, mty, &[o], p, pm)?;
            self.scalars.insert(res, r[0]);
            return Ok(());
        }
        let view = self.natural_view(&shape);
        let n = self.slots(&view);
        let ptrs = self.get(ptr, &view, span)?;
        let masks = match mask {
            Some(m) => Some(self.get(m, &view, span)?),
            None => None,
        };
        let others = match other {
            Some(o) => self.get(o, &view, span)?,
            None => vec![Opnd::Imm(0); n],
        };
        let (w, uniform) = self.vec_width(ptr, mask, dt, &view);
        let run = self.contiguous_run(ptr, &view);
        let mut out = Vec::with_capacity(n);
        let mut s = 0;
        while s < n {
            let valid = self.valid(&view, s);
            let Some(m) = masks.as_ref().filter(|_| !uniform) else {
                let mut p = valid;
                if let Some(m) = &masks {
                    let mp = self.pv_of(m[s]);
                    p = self.and_pv(p, mp);
                }
                let a = self.slot_addr(&ptrs, &view, s, run, mty.bytes());
                let r = self.load_group(dt, c, mty, &others[s..s + w], a, p)?;
                out.extend(r);
                s += w;
                continue;
            };
            // The mask may differ inside a vector: one vector access when every lane is on,
            // else per-element accesses for the lanes that are on.
            let (all, parts) = self.split_mask(valid, &m[s..s + w]);
            let lty = self.ld_ty(c, mty);
            let mut dsts = Vec::with_capacity(w);
            for j in 0..w {
                let d = self.reg(c);
                let mv = self.mov_ty(d);
                self.emit(Inst::Mov { ty: mv, dst: d, src: others[s + j] });
                dsts.push(d);
            }
            if all != Pv::False {
                let a = self.in_reg(ptrs[s], RegClass::B64, Ty::U64);
                let pred = if let Pv::R(p) = all { Some(p) } else { None };
                self.emit(Inst::LdGlobal { ty: lty, dsts: dsts.clone(), addr: a, pred });
            }
            for (j, pj) in parts.into_iter().enumerate() {
                if pj == Pv::False {
                    continue;
                }
                let a = self.slot_addr(&ptrs, &view, s + j, run, mty.bytes());
                let a = self.in_reg(a, RegClass::B64, Ty::U64);
                let pred = if let Pv::R(p) = pj { Some(p) } else { None };
                self.emit(Inst::LdGlobal { ty: lty, dsts: vec![dsts[j]], addr: a, pred });
            }
            let r: Vec<Opnd> = dsts.into_iter().map(Opnd::Reg).collect();
            out.extend(r);
            s += w;
        }
        self.blocks.insert(res, (view, out));
        Ok(())
    }

    /// Loads `other.len()` consecutive elements at `addr` where `p` holds; `other` is written
    /// into the destinations first, so a predicated-off access leaves it there.
    fn load_group(
        &mut self,
        dt: DType,
        c: RegClass,
        mty: Ty,
        other: &[Opnd],
        addr: Opnd,
        p: Pv,
    ) -> Res<Vec<Opnd>> {
        if p == Pv::False {
            return Ok(other.to_vec());
        }
        let addr = self.in_reg(addr, RegClass::B64, Ty::U64);
        let pred = match p {
            Pv::R(r) => Some(r),
            _ => None,
        };
        if dt == DType::Bool {
            let byte = self.reg(RegClass::B32);
            let init = match other[0] {
                Opnd::Imm(x) => Opnd::Imm(x),
                Opnd::Reg(o) => {
                    let t = self.reg(RegClass::B32);
                    self.emit(Inst::Selp {
                        ty: Ty::U32,
                        dst: t,
                        a: Opnd::Imm(1),
                        b: Opnd::Imm(0),
                        cond: o,
                    });
                    t.into()
                }
            };
            self.emit(Inst::Mov { ty: Ty::U32, dst: byte, src: init });
            self.emit(Inst::LdGlobal { ty: Ty::U8, dsts: vec![byte], addr, pred });
            let r = self.reg(RegClass::Pred);
            self.emit(Inst::Setp {
                cmp: Cmp::Ne,
                ty: Ty::U32,
                dst: r,
                a: byte.into(),
                b: Opnd::Imm(0),
            });
            return Ok(vec![r.into()]);
        }
        let mov_ty = match c {
            RegClass::B16 => Ty::B16,
            RegClass::B32 => Ty::B32,
            RegClass::B64 => Ty::B64,
            RegClass::F32 => Ty::F32,
            RegClass::F64 => Ty::F64,
            RegClass::Pred => Ty::Pred,
        };
        let mut dsts = Vec::with_capacity(other.len());
        for &o in other {
            let r = self.reg(c);
            if pred.is_some() {
                self.emit(Inst::Mov { ty: mov_ty, dst: r, src: o });
            }
            dsts.push(r);
        }
        let lty = if c == RegClass::F32 || c == RegClass::F64 { mov_ty } else { mty };
        self.emit(Inst::LdGlobal { ty: lty, dsts: dsts.clone(), addr, pred });
        Ok(dsts.into_iter().map(Opnd::Reg).collect())
    }

    /// Elements per vector access: what the axis analysis proves, within one thread's run.
    /// Also says whether the mask is uniform over each vector (else accesses are split).
    fn vec_width(&self, ptr: Value, mask: Option<Value>, dt: DType, view: &View) -> (usize, bool) {
        if dt == DType::Bool {
            return (1, true);
        }
        let l = &self.layouts[view.layout];
        let last = l.rank() - 1;
        let w = self.info.vector_width(ptr, dt.size_bytes(), 16).min(l.spt[last]).max(1);
        let wm = self.info.masked_vector_width(ptr, mask, dt.size_bytes(), 16);
        (w as usize, wm >= w)
    }

    /// Elements of a thread's run along the last dimension whose addresses are consecutive
    /// (the axis analysis's contiguity, within `spt`): a power of two.
    fn contiguous_run(&self, ptr: Value, view: &View) -> usize {
        let l = &self.layouts[view.layout];
        let last = l.rank() - 1;
        if view.map.last().copied().flatten() != Some(last as u8) {
            return 1;
        }
        let c = self.info.get(ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1);
        let c = if c == 0 { u64::MAX } else { c & c.wrapping_neg() };
        c.min(u64::from(l.spt[last])).max(1) as usize
    }

    /// The address of slot `s`: inside a contiguous run, the run's first address plus a
    /// constant (ptxas folds it into the access, and the per-slot address arithmetic of the
    /// other slots becomes dead code).
    fn slot_addr(&mut self, ptrs: &[Opnd], view: &View, s: usize, run: usize, eb: u32) -> Opnd {
        if run <= 1 {
            return ptrs[s];
        }
        let l = &self.layouts[view.layout];
        let last = l.rank() - 1;
        let j = l.slot_local(s)[last] % l.spt[last];
        let k = j as usize % run;
        if k == 0 {
            return ptrs[s];
        }
        let base = self.in_reg(ptrs[s - k], RegClass::B64, Ty::U64);
        let r = self.reg(RegClass::B64);
        self.emit(bin(BinOp::Add, Ty::S64, r, base.into(), Opnd::Imm((k as u64) * u64::from(eb))));
        r.into()
    }

    fn store(&mut self, ptr: Value, value: Value, mask: Option<Value>, span: Span) -> Res<()> {
        let (dt, c, t) = self.dt_of(value, span)?;
        let mty = mem_ty(dt);
        let shape = self.value_shape(value);
        if shape.is_empty() {
            // Every thread holds the scalar; thread 0 writes it.
            let p = self.scalar(ptr, span)?;
            let v = self.scalar(value, span)?;
            let mut pm = match mask {
                Some(m) => {
                    let o = self.scalar(m, span)?;
                    self.pv_of(o)
                }
                None => Pv::True,
            };
            let first = self.first_thread();
            pm = self.and_pv(pm, first);
            self.store_group(dt, c, t, mty, &[v], p, pm);
            return Ok(());
        }
        // An mma accumulator is stored from its own layout rather than converted.
        let view = match self.mma_view_of(value, 8) {
            Some(v) => v,
            None => self.natural_view(&shape),
        };
        let n = self.slots(&view);
        let ptrs = self.get(ptr, &view, span)?;
        let vals = self.get(value, &view, span)?;
        let masks = match mask {
            Some(m) => Some(self.get(m, &view, span)?),
            None => None,
        };
        let owner = self.owner(view.layout);
        let (w, uniform) = self.vec_width(ptr, mask, dt, &view);
        let run = self.contiguous_run(ptr, &view);
        let mut s = 0;
        while s < n {
            let valid = self.valid(&view, s);
            let valid = self.and_pv(valid, owner);
            let Some(m) = masks.as_ref().filter(|_| !uniform) else {
                let mut p = valid;
                if let Some(m) = &masks {
                    let mp = self.pv_of(m[s]);
                    p = self.and_pv(p, mp);
                }
                let a = self.slot_addr(&ptrs, &view, s, run, mty.bytes());
                self.store_group(dt, c, t, mty, &vals[s..s + w], a, p);
                s += w;
                continue;
            };
            let (all, parts) = self.split_mask(valid, &m[s..s + w]);
            self.store_group(dt, c, t, mty, &vals[s..s + w], ptrs[s], all);
            for (j, pj) in parts.into_iter().enumerate() {
                let a = self.slot_addr(&ptrs, &view, s + j, run, mty.bytes());
                self.store_group(dt, c, t, mty, &vals[s + j..s + j + 1], a, pj);
            }
            s += w;
        }
        Ok(())
    }

    /// For a vector whose mask lanes may differ: the predicate "every lane on" and, per lane,
    /// "this lane on but not every lane".
    fn split_mask(&mut self, valid: Pv, mask: &[Opnd]) -> (Pv, Vec<Pv>) {
        let lanes: Vec<Pv> = mask
            .iter()
            .map(|&o| {
                let p = self.pv_of(o);
                self.and_pv(valid, p)
            })
            .collect();
        let mut all = Pv::True;
        for &p in &lanes {
            all = self.and_pv(all, p);
        }
        let not_all = match all {
            Pv::True => Pv::False,
            Pv::False => Pv::True,
            Pv::R(r) => {
                let n = self.reg(RegClass::Pred);
                self.emit(Inst::Unary { op: UnOp::Not, ty: Ty::Pred, dst: n, a: r.into() });
                Pv::R(n)
            }
        };
        let parts = lanes.into_iter().map(|p| self.and_pv(p, not_all)).collect();
        (all, parts)
    }

    fn ld_ty(&self, c: RegClass, mty: Ty) -> Ty {
        match c {
            RegClass::F32 => Ty::F32,
            RegClass::F64 => Ty::F64,
            _ => mty,
        }
    }

    fn first_thread(&mut self) -> Pv {
        let r = self.reg(RegClass::Pred);
        let tid = self.tid;
        self.emit(Inst::Setp { cmp: Cmp::Eq, ty: Ty::U32, dst: r, a: tid.into(), b: Opnd::Imm(0) });
        Pv::R(r)
    }

    #[allow(clippy::too_many_arguments)]
    fn store_group(
        &mut self,
        dt: DType,
        c: RegClass,
        t: Ty,
        mty: Ty,
        vals: &[Opnd],
        addr: Opnd,
        p: Pv,
    ) {
        if p == Pv::False {
            return;
        }
        let addr = self.in_reg(addr, RegClass::B64, Ty::U64);
        let pred = match p {
            Pv::R(r) => Some(r),
            _ => None,
        };
        let srcs: Vec<Opnd> = if dt == DType::Bool {
            vals.iter()
                .map(|&v| match v {
                    Opnd::Imm(x) => Opnd::Imm(u64::from(x != 0)),
                    Opnd::Reg(b) => {
                        let r = self.reg(RegClass::B32);
                        self.emit(Inst::Selp {
                            ty: Ty::U32,
                            dst: r,
                            a: Opnd::Imm(1),
                            b: Opnd::Imm(0),
                            cond: b,
                        });
                        r.into()
                    }
                })
                .collect()
        } else {
            vals.iter().map(|&v| Opnd::Reg(self.in_reg(v, c, t))).collect()
        };
        let sty = if c == RegClass::F32 || c == RegClass::F64 { t } else { mty };
        self.emit(Inst::StGlobal { ty: sty, srcs, addr, pred });
    }

    // ---- atomics ---------------------------------------------------------------------------

    /// One atomic per element, issued by the element's owner thread only; the old value is
    /// then broadcast through shared memory to every thread that holds a copy.
    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &mut self,
        op: AtomOp,
        ptr: Value,
        cmp: Option<Value>,
        value: Value,
        mask: Option<Value>,
        res: Value,
        span: Span,
    ) -> Res<()> {
        let (dt, c, t) = self.dt_of(value, span)?;
        let ty = match (dt, op) {
            (DType::F32, AtomOp::Add | AtomOp::Exch | AtomOp::Cas) => Ty::F32,
            (DType::I32, _) => Ty::S32,
            (DType::U32, _) => Ty::U32,
            (DType::I64 | DType::U64, AtomOp::Add) => Ty::U64,
            (DType::I64, _) => Ty::S64,
            (DType::U64, _) => Ty::U64,
            _ => return Err(unsupported(format!("atomic {op:?} on {dt}"), span)),
        };
        let (sty, eb) = Self::smem_ty(c);
        let shape = self.value_shape(value);
        if shape.is_empty() {
            let p = self.scalar(ptr, span)?;
            let v = self.scalar(value, span)?;
            let cm = match cmp {
                Some(x) => self.scalar(x, span)?,
                None => Opnd::Imm(0),
            };
            let mut pm = match mask {
                Some(m) => {
                    let o = self.scalar(m, span)?;
                    self.pv_of(o)
                }
                None => Pv::True,
            };
            let first = self.first_thread();
            pm = self.and_pv(pm, first);
            let old = self.atom_one(op, ty, c, t, p, cm, v, pm);
            self.shared(16);
            let sb = self.smem_base;
            let fp = if let Pv::R(r) = first { Some(r) } else { None };
            self.emit(Inst::Bar);
            self.emit(Inst::StShared { ty: sty, src: old.into(), addr: sb, off: 0, pred: fp });
            self.emit(Inst::Bar);
            let r = self.smem_load(c, sty, sb, 0, None);
            self.scalars.insert(res, r);
            return Ok(());
        }
        // An mma accumulator is stored from its own layout rather than converted.
        let view = match self.mma_view_of(value, 8) {
            Some(v) => v,
            None => self.natural_view(&shape),
        };
        let n = self.slots(&view);
        let ptrs = self.get(ptr, &view, span)?;
        let vals = self.get(value, &view, span)?;
        let cmps = match cmp {
            Some(x) => self.get(x, &view, span)?,
            None => vec![Opnd::Imm(0); n],
        };
        let masks = match mask {
            Some(m) => Some(self.get(m, &view, span)?),
            None => None,
        };
        let owner = self.owner(view.layout);
        let mut olds = Vec::with_capacity(n);
        for s in 0..n {
            let mut p = self.valid(&view, s);
            p = self.and_pv(p, owner);
            if let Some(m) = &masks {
                let mp = self.pv_of(m[s]);
                p = self.and_pv(p, mp);
            }
            olds.push(self.atom_one(op, ty, c, t, ptrs[s], cmps[s], vals[s], p));
        }
        let l = self.layouts[view.layout].clone();
        let replicated = (0..l.rank()).any(|d| l.replicated(d));
        let out = if replicated {
            let numel: u32 = shape.iter().map(|&d| d.max(1).next_power_of_two()).product();
            self.shared(numel * eb);
            self.emit(Inst::Bar);
            let (base, consts) = self.scratch_offsets(&view, &shape, eb);
            let op_ = if let Pv::R(r) = owner { Some(r) } else { None };
            for (s, &o) in olds.iter().enumerate() {
                self.emit(Inst::StShared {
                    ty: sty,
                    src: o.into(),
                    addr: base,
                    off: consts[s],
                    pred: op_,
                });
            }
            self.emit(Inst::Bar);
            consts.iter().map(|&off| self.smem_load(c, sty, base, off, None)).collect()
        } else {
            olds.into_iter().map(Opnd::Reg).collect()
        };
        self.blocks.insert(res, (view, out));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn atom_one(
        &mut self,
        op: AtomOp,
        ty: Ty,
        c: RegClass,
        t: Ty,
        addr: Opnd,
        cmp: Opnd,
        val: Opnd,
        p: Pv,
    ) -> Reg {
        let old = self.reg(c);
        let mv = self.mov_ty(old);
        self.emit(Inst::Mov { ty: mv, dst: old, src: Opnd::Imm(0) });
        if p == Pv::False {
            return old;
        }
        let addr = self.in_reg(addr, RegClass::B64, Ty::U64);
        let (a, b) = if op == AtomOp::Cas {
            (Opnd::Reg(self.in_reg(cmp, c, t)), Opnd::Reg(self.in_reg(val, c, t)))
        } else {
            (Opnd::Reg(self.in_reg(val, c, t)), Opnd::Imm(0))
        };
        let pred = if let Pv::R(r) = p { Some(r) } else { None };
        self.emit(Inst::Atom { op, ty, dst: old, addr, a, b, pred });
        old
    }

    // ---- shared-memory exchange ------------------------------------------------------------

    /// Byte offset (thread part, per-slot constants) of each slot's element in a row-major
    /// scratch array of the padded `shape`, read through `view`.
    fn scratch_offsets(&mut self, view: &View, shape: &[u32], eb: u32) -> (Reg, Vec<u32>) {
        let padded: Vec<u32> = shape.iter().map(|&d| d.max(1).next_power_of_two()).collect();
        let mut strides = vec![eb; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * padded[d + 1];
        }
        self.scratch_offsets_strided(view, &strides)
    }

    /// Like [`Lower::scratch_offsets`] with explicit byte strides per value dimension.
    fn scratch_offsets_strided(&mut self, view: &View, strides: &[u32]) -> (Reg, Vec<u32>) {
        let base = self.reg(RegClass::B32);
        let sb = self.smem_base;
        self.emit(Inst::Mov { ty: Ty::U32, dst: base, src: sb.into() });
        for (vd, pd) in view.map.iter().enumerate() {
            let Some(pd) = pd else { continue };
            if let Opnd::Reg(t) = self.tpart(view.layout, *pd as usize) {
                self.emit(Inst::Fma {
                    ty: Ty::U32,
                    dst: base,
                    a: t.into(),
                    b: Opnd::Imm(u64::from(strides[vd])),
                    c: base.into(),
                });
            }
        }
        let l = self.layouts[view.layout].clone();
        let consts = (0..l.slots())
            .map(|s| {
                view.map
                    .iter()
                    .enumerate()
                    .map(|(vd, pd)| match pd {
                        Some(pd) => l.slot_part(s, *pd as usize) * strides[vd],
                        None => 0,
                    })
                    .sum()
            })
            .collect();
        (base, consts)
    }

    fn smem_ty(c: RegClass) -> (Ty, u32) {
        match c {
            RegClass::Pred | RegClass::B32 => (Ty::B32, 4),
            RegClass::B16 => (Ty::B16, 2),
            RegClass::B64 => (Ty::B64, 8),
            RegClass::F32 => (Ty::F32, 4),
            RegClass::F64 => (Ty::F64, 8),
        }
    }

    /// Moves a block from one view to another through shared memory.
    fn convert(
        &mut self,
        v: Value,
        from: &View,
        regs: &[Opnd],
        to: &View,
        span: Span,
    ) -> Res<Vec<Opnd>> {
        let (_, c, t) = self.dt_of(v, span)?;
        let shape = self.value_shape(v);
        let (sty, eb) = Self::smem_ty(c);
        let numel: u32 = shape.iter().map(|&d| d.max(1).next_power_of_two()).product();
        self.shared(numel * eb);
        self.emit(Inst::Bar);
        let (wbase, wconst) = self.scratch_offsets(from, &shape, eb);
        for (s, &o) in regs.iter().enumerate() {
            let src = self.smem_value(o, c, t);
            self.emit(Inst::StShared { ty: sty, src, addr: wbase, off: wconst[s], pred: None });
        }
        self.emit(Inst::Bar);
        let (rbase, rconst) = self.scratch_offsets(to, &shape, eb);
        let mut out = Vec::with_capacity(rconst.len());
        for off in rconst {
            out.push(self.smem_load(c, sty, rbase, off, None));
        }
        Ok(out)
    }

    /// A value as shared memory stores it (preds as 0/1 words).
    fn smem_value(&mut self, o: Opnd, c: RegClass, t: Ty) -> Opnd {
        if c == RegClass::Pred {
            return match o {
                Opnd::Imm(x) => Opnd::Imm(u64::from(x != 0)),
                Opnd::Reg(p) => {
                    let r = self.reg(RegClass::B32);
                    self.emit(Inst::Selp {
                        ty: Ty::U32,
                        dst: r,
                        a: Opnd::Imm(1),
                        b: Opnd::Imm(0),
                        cond: p,
                    });
                    r.into()
                }
            };
        }
        Opnd::Reg(self.in_reg(o, c, t))
    }

    fn smem_load(&mut self, c: RegClass, sty: Ty, addr: Reg, off: u32, pred: Option<Reg>) -> Opnd {
        if c == RegClass::Pred {
            let w = self.reg(RegClass::B32);
            self.emit(Inst::LdShared { ty: Ty::B32, dst: w, addr, off, pred });
            let p = self.reg(RegClass::Pred);
            self.emit(Inst::Setp {
                cmp: Cmp::Ne,
                ty: Ty::U32,
                dst: p,
                a: w.into(),
                b: Opnd::Imm(0),
            });
            return p.into();
        }
        let r = self.reg(c);
        self.emit(Inst::LdShared { ty: sty, dst: r, addr, off, pred });
        r.into()
    }

    // ---- reductions ------------------------------------------------------------------------

    fn identity(&self, comb: Comb, t: Ty) -> Part {
        let v = match (comb, t) {
            (Comb::Sum, _) => Opnd::Imm(0),
            (Comb::Max | Comb::Arg { max: true }, Ty::F32) => Opnd::f32(f32::NEG_INFINITY),
            (Comb::Min | Comb::Arg { max: false }, Ty::F32) => Opnd::f32(f32::INFINITY),
            (Comb::Max | Comb::Arg { max: true }, Ty::S32) => Opnd::int(i64::from(i32::MIN)),
            (Comb::Min | Comb::Arg { max: false }, Ty::S32) => Opnd::int(i64::from(i32::MAX)),
            (Comb::Max | Comb::Arg { max: true }, _) => Opnd::Imm(0),
            (Comb::Min | Comb::Arg { max: false }, _) => Opnd::Imm(u64::from(u32::MAX)),
        };
        Part { v, i: Opnd::int(i64::from(i32::MAX)) }
    }

    fn combine(&mut self, comb: Comb, c: RegClass, t: Ty, a: Part, b: Part) -> Part {
        match comb {
            Comb::Sum | Comb::Max | Comb::Min => {
                let op = match comb {
                    Comb::Sum => BinOp::Add,
                    Comb::Max => BinOp::Max,
                    _ => BinOp::Min,
                };
                let r = self.reg(c);
                self.emit(bin(op, t, r, a.v, b.v));
                Part { v: r.into(), i: a.i }
            }
            Comb::Arg { max } => {
                // b wins if strictly better, or equal with a lower index; NaN beats numbers.
                let better = self.reg(RegClass::Pred);
                let cmp = if max { Cmp::Gt } else { Cmp::Lt };
                self.emit(Inst::Setp { cmp, ty: t, dst: better, a: b.v, b: a.v });
                let eq = self.reg(RegClass::Pred);
                self.emit(Inst::Setp { cmp: Cmp::Eq, ty: t, dst: eq, a: b.v, b: a.v });
                let lower = self.reg(RegClass::Pred);
                self.emit(Inst::Setp { cmp: Cmp::Lt, ty: Ty::S32, dst: lower, a: b.i, b: a.i });
                let tie = self.reg(RegClass::Pred);
                self.emit(bin(BinOp::And, Ty::Pred, tie, eq.into(), lower.into()));
                let win = self.reg(RegClass::Pred);
                self.emit(bin(BinOp::Or, Ty::Pred, win, better.into(), tie.into()));
                let win = if t == Ty::F32 {
                    let na = self.reg(RegClass::Pred);
                    self.emit(Inst::Setp { cmp: Cmp::Nan, ty: t, dst: na, a: a.v, b: a.v });
                    let nb = self.reg(RegClass::Pred);
                    self.emit(Inst::Setp { cmp: Cmp::Nan, ty: t, dst: nb, a: b.v, b: b.v });
                    // nb && (!na || lower)
                    let nna = self.reg(RegClass::Pred);
                    self.emit(Inst::Unary { op: UnOp::Not, ty: Ty::Pred, dst: nna, a: na.into() });
                    let x = self.reg(RegClass::Pred);
                    self.emit(bin(BinOp::Or, Ty::Pred, x, nna.into(), lower.into()));
                    let y = self.reg(RegClass::Pred);
                    self.emit(bin(BinOp::And, Ty::Pred, y, nb.into(), x.into()));
                    // A NaN accumulator only loses to another NaN with a lower index.
                    let keep = self.reg(RegClass::Pred);
                    self.emit(bin(BinOp::And, Ty::Pred, keep, win.into(), nna.into()));
                    let w2 = self.reg(RegClass::Pred);
                    self.emit(bin(BinOp::Or, Ty::Pred, w2, keep.into(), y.into()));
                    w2
                } else {
                    win
                };
                let v = self.reg(c);
                self.emit(Inst::Selp { ty: t, dst: v, a: b.v, b: a.v, cond: win });
                let i = self.reg(RegClass::B32);
                self.emit(Inst::Selp { ty: Ty::S32, dst: i, a: b.i, b: a.i, cond: win });
                Part { v: v.into(), i: i.into() }
            }
        }
    }

    /// Reduces `parts` (one per result group, in `lid`'s layout) across the lanes and warps
    /// along `axis`. Afterwards every thread holds the full result of its groups.
    #[allow(clippy::too_many_arguments)]
    fn reduce_across(
        &mut self,
        comb: Comb,
        c: RegClass,
        t: Ty,
        lid: usize,
        axis: usize,
        parts: &mut [Part],
        group_view: Option<(&View, &[u32], &[usize])>,
    ) {
        let l = self.layouts[lid].clone();
        let steps = l.unique_lanes(axis).trailing_zeros();
        let arg = matches!(comb, Comb::Arg { .. });
        for b in 0..steps {
            let mask = 1u32 << (l.lane_shift[axis] + b);
            for p in parts.iter_mut() {
                let v = self.in_reg(p.v, c, t);
                let ov = self.reg(c);
                self.emit(Inst::ShflBfly { dst: ov, src: v, lane_mask: mask });
                let oi = if arg {
                    let i = self.in_reg(p.i, RegClass::B32, Ty::S32);
                    let oi = self.reg(RegClass::B32);
                    self.emit(Inst::ShflBfly { dst: oi, src: i, lane_mask: mask });
                    oi.into()
                } else {
                    p.i
                };
                *p = self.combine(
                    comb,
                    c,
                    t,
                    Part { v: v.into(), i: p.i },
                    Part { v: ov.into(), i: oi },
                );
            }
        }
        let uw = l.unique_warps(axis);
        if uw <= 1 {
            return;
        }
        // Across warps: row `warp_axis` of a [wpc, groups] scratch, then every thread folds
        // the unique rows in order.
        let (sty, eb) = Self::smem_ty(c);
        let (gshape, gmap, gslots): (Vec<u32>, Option<&View>, Vec<usize>) = match group_view {
            Some((v, shape, slots)) => (shape.to_vec(), Some(v), slots.to_vec()),
            None => (vec![1], None, vec![0]),
        };
        let gnum: u32 = gshape.iter().map(|&d| d.max(1).next_power_of_two()).product();
        let row_bytes = gnum * eb;
        let idx_base = (l.wpc[axis] * row_bytes).next_multiple_of(16);
        let total = if arg { idx_base + l.wpc[axis] * gnum * 4 } else { idx_base };
        self.shared(total);
        let (base, consts) = match gmap {
            Some(v) => self.scratch_offsets(v, &gshape, eb),
            None => {
                let r = self.reg(RegClass::B32);
                let sb = self.smem_base;
                self.emit(Inst::Mov { ty: Ty::U32, dst: r, src: sb.into() });
                (r, vec![0])
            }
        };
        // Index rows use 4-byte entries at the same element positions.
        let wa = self.reg(RegClass::B32);
        let warp = self.warp;
        self.emit(bin(
            BinOp::Shr,
            Ty::U32,
            wa,
            warp.into(),
            Opnd::Imm(u64::from(l.warp_shift[axis])),
        ));
        self.emit(bin(BinOp::And, Ty::B32, wa, wa.into(), Opnd::Imm(u64::from(l.wpc[axis] - 1))));
        let wrow = self.reg(RegClass::B32);
        self.emit(Inst::Fma {
            ty: Ty::U32,
            dst: wrow,
            a: wa.into(),
            b: Opnd::Imm(u64::from(row_bytes)),
            c: base.into(),
        });
        self.emit(Inst::Bar);
        for (g, p) in parts.iter().enumerate() {
            let off = consts[gslots[g]];
            let v = self.in_reg(p.v, c, t);
            self.emit(Inst::StShared { ty: sty, src: v.into(), addr: wrow, off, pred: None });
            if arg {
                let i = self.in_reg(p.i, RegClass::B32, Ty::S32);
                // Index entries sit at idx_base + (value offset / eb) * 4.
                let ioff_r = self.index_addr(wrow, eb, idx_base);
                self.emit(Inst::StShared {
                    ty: Ty::B32,
                    src: i.into(),
                    addr: ioff_r,
                    off: off / eb * 4,
                    pred: None,
                });
            }
        }
        self.emit(Inst::Bar);
        for (g, p) in parts.iter_mut().enumerate() {
            let off = consts[gslots[g]];
            let mut acc: Option<Part> = None;
            for w in 0..uw {
                let o = off + w * row_bytes;
                let v = self.smem_load(c, sty, base, o, None);
                let i = if arg {
                    let ib = self.index_addr(base, eb, idx_base);
                    let r = self.reg(RegClass::B32);
                    self.emit(Inst::LdShared {
                        ty: Ty::B32,
                        dst: r,
                        addr: ib,
                        off: o / eb * 4,
                        pred: None,
                    });
                    r.into()
                } else {
                    Opnd::Imm(0)
                };
                let part = Part { v, i };
                acc = Some(match acc {
                    None => part,
                    Some(a) => self.combine(comb, c, t, a, part),
                });
            }
            if let Some(a) = acc {
                *p = a;
            }
        }
    }

    /// Address of the index entry matching the value entry at `addr` (see `reduce_across`).
    fn index_addr(&mut self, addr: Reg, eb: u32, idx_base: u32) -> Reg {
        // (addr - smem) / eb * 4 + smem + idx_base
        let sb = self.smem_base;
        let r = self.reg(RegClass::B32);
        self.emit(bin(BinOp::Sub, Ty::U32, r, addr.into(), sb.into()));
        if eb != 4 {
            self.emit(bin(BinOp::Div, Ty::U32, r, r.into(), Opnd::Imm(u64::from(eb / 4).max(1))));
        }
        self.emit(bin(BinOp::Add, Ty::U32, r, r.into(), sb.into()));
        self.emit(bin(BinOp::Add, Ty::U32, r, r.into(), Opnd::Imm(u64::from(idx_base))));
        r
    }

    fn reduce(&mut self, comb: Comb, axis: usize, x: Value, res: Value, span: Span) -> Res<()> {
        let (_, c, t) = self.dt_of(x, span)?;
        if !matches!(t, Ty::F32 | Ty::S32 | Ty::U32) {
            return Err(unsupported(format!("reductions of {t} blocks"), span));
        }
        let shape = self.value_shape(x);
        let view = self.natural_view(&shape);
        let xs = self.get(x, &view, span)?;
        let l = self.layouts[view.layout].clone();
        // Group slots by their local coordinates off the axis.
        let mut groups: Vec<(Vec<u32>, Vec<usize>)> = Vec::new();
        for s in 0..l.slots() {
            let mut key = l.slot_local(s);
            key[axis] = 0;
            match groups.iter_mut().find(|g| g.0 == key) {
                Some(g) => g.1.push(s),
                None => groups.push((key, vec![s])),
            }
        }
        let ident = self.identity(comb, t);
        let arg = matches!(comb, Comb::Arg { .. });
        let mut parts = Vec::with_capacity(groups.len());
        for (_, slots) in &groups {
            let mut acc: Option<Part> = None;
            for &s in slots {
                let i = if arg { self.coord(&view, axis, s) } else { Opnd::Imm(0) };
                let valid =
                    self.valid(&View { layout: view.layout, map: vec![Some(axis as u8)] }, s);
                let cand = match valid {
                    Pv::False => continue,
                    Pv::True => Part { v: xs[s], i },
                    Pv::R(p) => {
                        let v = self.reg(c);
                        self.emit(Inst::Selp { ty: t, dst: v, a: xs[s], b: ident.v, cond: p });
                        let i = if arg {
                            let r = self.reg(RegClass::B32);
                            self.emit(Inst::Selp {
                                ty: Ty::S32,
                                dst: r,
                                a: i,
                                b: ident.i,
                                cond: p,
                            });
                            r.into()
                        } else {
                            i
                        };
                        Part { v: v.into(), i }
                    }
                };
                acc = Some(match acc {
                    None => cand,
                    Some(a) => self.combine(comb, c, t, a, cand),
                });
            }
            parts.push(acc.unwrap_or(ident));
        }
        let mut rshape = shape.clone();
        rshape.remove(axis);
        let mut rmap = view.map.clone();
        rmap.remove(axis);
        let rview = View { layout: view.layout, map: rmap };
        let first_slots: Vec<usize> = groups.iter().map(|g| g.1[0]).collect();
        let gv =
            if rshape.is_empty() { None } else { Some((&rview, &rshape[..], &first_slots[..])) };
        self.reduce_across(comb, c, t, view.layout, axis, &mut parts, gv);
        let out_c = if arg { RegClass::B32 } else { c };
        let pick = |p: &Part| if arg { p.i } else { p.v };
        if rshape.is_empty() {
            let o = pick(&parts[0]);
            let o = Opnd::Reg(self.in_reg(o, out_c, if arg { Ty::S32 } else { t }));
            self.scalars.insert(res, o);
        } else {
            let mut regs = vec![Opnd::Imm(0); l.slots()];
            for (g, (_, slots)) in groups.iter().enumerate() {
                for &s in slots {
                    regs[s] = pick(&parts[g]);
                }
            }
            self.blocks.insert(res, (rview, regs));
        }
        Ok(())
    }

    fn topk(&mut self, x: Value, k: u32, results: &[Value], span: Span) -> Res<()> {
        let (_, c, t) = self.dt_of(x, span)?;
        let shape = self.value_shape(x);
        if shape.len() != 1 {
            return Err(unsupported("topk of a block with rank > 1", span));
        }
        if !matches!(t, Ty::F32 | Ty::S32 | Ty::U32) {
            return Err(unsupported(format!("topk of {t} blocks"), span));
        }
        let view = self.natural_view(&shape);
        let xs = self.get(x, &view, span)?;
        let n = xs.len();
        let comb = Comb::Arg { max: true };
        let ident = self.identity(comb, t);
        let idx: Vec<Opnd> = (0..n).map(|s| self.coord(&view, 0, s)).collect();
        // Taken (or padding) slots drop out of later rounds.
        let mut live: Vec<Pv> = (0..n).map(|s| self.valid(&view, s)).collect();
        let (mut vals, mut ids) = (Vec::new(), Vec::new());
        for _ in 0..k {
            let mut acc: Option<Part> = None;
            for s in 0..n {
                let cand = match live[s] {
                    Pv::False => continue,
                    Pv::True => Part { v: xs[s], i: idx[s] },
                    Pv::R(p) => {
                        let v = self.reg(c);
                        self.emit(Inst::Selp { ty: t, dst: v, a: xs[s], b: ident.v, cond: p });
                        let i = self.reg(RegClass::B32);
                        self.emit(Inst::Selp {
                            ty: Ty::S32,
                            dst: i,
                            a: idx[s],
                            b: ident.i,
                            cond: p,
                        });
                        Part { v: v.into(), i: i.into() }
                    }
                };
                acc = Some(match acc {
                    None => cand,
                    Some(a) => self.combine(comb, c, t, a, cand),
                });
            }
            let mut parts = [acc.unwrap_or(ident)];
            self.reduce_across(comb, c, t, view.layout, 0, &mut parts, None);
            let v = Opnd::Reg(self.in_reg(parts[0].v, c, t));
            let i = Opnd::Reg(self.in_reg(parts[0].i, RegClass::B32, Ty::S32));
            vals.push(v);
            ids.push(i);
            for s in 0..n {
                if live[s] == Pv::False {
                    continue;
                }
                let ne = self.reg(RegClass::Pred);
                self.emit(Inst::Setp { cmp: Cmp::Ne, ty: Ty::S32, dst: ne, a: idx[s], b: i });
                live[s] = self.and_pv(live[s], Pv::R(ne));
            }
        }
        self.lists.insert(results[0], vals);
        self.lists.insert(results[1], ids);
        Ok(())
    }

    // ---- dot -------------------------------------------------------------------------------

    /// `acc + a @ b` on CUDA cores: both operands go to shared memory, then each thread runs a
    /// k loop of FMAs over its accumulator slots.
    fn dot(&mut self, a: Value, b: Value, acc: Value, res: Value, span: Span) -> Res<()> {
        let (adt, ac, at) = self.dt_of(a, span)?;
        let (_, rc, rt) = self.dt_of(acc, span)?;
        if rt != Ty::F32 || !matches!(adt, DType::F32 | DType::F16 | DType::BF16) {
            return Err(unsupported(format!("dot of {adt} into {rt}"), span));
        }
        let ash = self.value_shape(a);
        let bsh = self.value_shape(b);
        let csh = self.value_shape(acc);
        let (m, kk, n) = (ash[0], ash[1], bsh[1]);
        let av = self.natural_view(&ash);
        let bv = self.natural_view(&bsh);
        let cv = self.natural_view(&csh);
        let areg = self.get(a, &av, span)?;
        let breg = self.get(b, &bv, span)?;
        let creg = self.get(acc, &cv, span)?;
        let (sty, eb) = Self::smem_ty(ac);
        let (mp, kp, np) = (m.next_power_of_two(), kk.next_power_of_two(), n.next_power_of_two());
        let b_off = (mp * kp * eb).next_multiple_of(16);
        self.shared(b_off + kp * np * eb);
        self.emit(Inst::Bar);
        let (wa, ca) = self.scratch_offsets(&av, &ash, eb);
        for (s, &o) in areg.iter().enumerate() {
            let src = Opnd::Reg(self.in_reg(o, ac, at));
            self.emit(Inst::StShared { ty: sty, src, addr: wa, off: ca[s], pred: None });
        }
        let (wb, cb) = self.scratch_offsets(&bv, &bsh, eb);
        for (s, &o) in breg.iter().enumerate() {
            let src = Opnd::Reg(self.in_reg(o, ac, at));
            self.emit(Inst::StShared { ty: sty, src, addr: wb, off: cb[s] + b_off, pred: None });
        }
        self.emit(Inst::Bar);
        let l = self.layouts[cv.layout].clone();
        let out: Vec<Reg> = creg
            .iter()
            .map(|&o| {
                let r = self.reg(rc);
                self.emit(Inst::Mov { ty: Ty::F32, dst: r, src: o });
                r
            })
            .collect();
        // Distinct rows and columns this thread touches, as scratch byte addresses at k = 0.
        let mut rows: Vec<(u32, Reg)> = Vec::new();
        let mut cols: Vec<(u32, Reg)> = Vec::new();
        let slot_rc: Vec<(usize, usize)> = (0..l.slots())
            .map(|s| {
                let lc = l.slot_local(s);
                let ri = match rows.iter().position(|r| r.0 == lc[0]) {
                    Some(i) => i,
                    None => {
                        rows.push((lc[0], Reg(0)));
                        rows.len() - 1
                    }
                };
                let ci = match cols.iter().position(|c| c.0 == lc[1]) {
                    Some(i) => i,
                    None => {
                        cols.push((lc[1], Reg(0)));
                        cols.len() - 1
                    }
                };
                (ri, ci)
            })
            .collect();
        let sb = self.smem_base;
        for row in rows.iter_mut() {
            let s = l.slot_of(&[row.0, 0]);
            let i = self.coord(&cv, 0, s);
            let r = self.reg(RegClass::B32);
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: r,
                a: i,
                b: Opnd::Imm(u64::from(kp * eb)),
                c: sb.into(),
            });
            row.1 = r;
        }
        for col in cols.iter_mut() {
            let s = l.slot_of(&[0, col.0]);
            let j = self.coord(&cv, 1, s);
            let r = self.reg(RegClass::B32);
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: r,
                a: j,
                b: Opnd::Imm(u64::from(eb)),
                c: sb.into(),
            });
            self.emit(bin(BinOp::Add, Ty::U32, r, r.into(), Opnd::Imm(u64::from(b_off))));
            col.1 = r;
        }
        // Short k loops are unrolled (immediate shared offsets, loads scheduled ahead of the
        // FMAs); long ones step the row and column addresses.
        let unroll = kk <= MAX_UNROLLED_K;
        let iv = self.reg(RegClass::B32);
        if !unroll {
            self.stack.push(Vec::new());
        }
        for k in 0..if unroll { kk } else { 1 } {
            let mut av_k = Vec::new();
            for &(_, base) in &rows {
                let v = self.smem_load(ac, sty, base, k * eb, None);
                av_k.push(self.up(v, at));
            }
            let mut bv_k = Vec::new();
            for &(_, base) in &cols {
                let v = self.smem_load(ac, sty, base, k * np * eb, None);
                bv_k.push(self.up(v, at));
            }
            for (s, &(ri, ci)) in slot_rc.iter().enumerate() {
                self.emit(Inst::Fma {
                    ty: Ty::F32,
                    dst: out[s],
                    a: av_k[ri],
                    b: bv_k[ci],
                    c: out[s].into(),
                });
            }
        }
        if !unroll {
            for &(_, base) in &rows {
                self.emit(bin(BinOp::Add, Ty::U32, base, base.into(), Opnd::Imm(u64::from(eb))));
            }
            for &(_, base) in &cols {
                let step = Opnd::Imm(u64::from(np * eb));
                self.emit(bin(BinOp::Add, Ty::U32, base, base.into(), step));
            }
            let body = self.stack.pop().unwrap_or_default();
            self.emit(Inst::For {
                ty: Ty::S32,
                iv,
                lo: Opnd::Imm(0),
                hi: Opnd::Imm(u64::from(kk)),
                step: Opnd::Imm(1),
                body,
            });
        }
        self.blocks.insert(res, (cv, out.into_iter().map(Opnd::Reg).collect()));
        Ok(())
    }

    // ---- dot on tensor cores ---------------------------------------------------------------

    /// Whether `dot(a, b, acc)` runs on tensor cores, and how: f16 or bf16 inputs (and f32
    /// inputs with `precision: tf32`) into an f32 accumulator of at least 16 x 8 (padded)
    /// elements, with K padded to at least one instruction's k. Warps split M and N (M first
    /// while both are large) so that no warp is idle unless the block is smaller than the warps.
    fn mma_plan(&self, a: Value, b: Value, acc: Value, precision: DotPrecision) -> Option<MmaPlan> {
        let elem = |v: Value| match self.value_elem(v) {
            Elem::Scalar(dt) => Some(dt),
            Elem::Ptr(_) => None,
        };
        let (adt, bdt, cdt) = (elem(a)?, elem(b)?, elem(acc)?);
        if adt != bdt || cdt != DType::F32 {
            return None;
        }
        let kind = match (adt, precision) {
            (DType::F16, _) => MmaKind::F16,
            (DType::BF16, _) => MmaKind::BF16,
            (DType::F32, DotPrecision::Tf32) => MmaKind::Tf32,
            _ => return None,
        };
        let (ash, bsh) = (self.value_shape(a), self.value_shape(b));
        if ash.len() != 2 || bsh.len() != 2 {
            return None;
        }
        let mp = ash[0].max(1).next_power_of_two();
        let kp = ash[1].max(1).next_power_of_two();
        let np = bsh[1].max(1).next_power_of_two();
        if mp < 16 || np < 8 || kp < kind.k() {
            return None;
        }
        let (mut wm, mut wn) = (1u32, 1u32);
        while wm * wn < self.num_warps {
            let can_m = mp / (2 * wm) >= 16;
            let can_n = np / (2 * wn) >= 8;
            if can_m && (!can_n || mp / wm >= np / wn) {
                wm *= 2;
            } else {
                // Past the block's width the extra warps replicate columns (owners store).
                wn *= 2;
            }
        }
        let layout = Layout::from_parts(&[ash[0], bsh[1]], vec![1, 2], vec![8, 4], vec![wm, wn]);
        Some(MmaPlan { kind, layout, wm, wn })
    }

    /// Chooses the layouts of loop- and branch-carried values: an `mma` accumulator keeps the
    /// tensor-core layout across iterations (no shared-memory round trip per iteration), and so
    /// does every value carried together with it.
    fn plan_layouts(&mut self) {
        let f = self.f;
        let ops = f.walk();
        for &id in &ops {
            if let Op::Dot { a, b, acc, precision } = &f.op(id).op {
                if let Some(plan) = self.mma_plan(*a, *b, *acc, *precision) {
                    self.pref.insert(f.op(id).results[0], plan.layout.clone());
                    self.pref.insert(*acc, plan.layout);
                }
            }
        }
        let yields = |r: RegionId| -> Vec<Value> {
            match f.region(r).ops.last().map(|&o| &f.op(o).op) {
                Some(Op::Yield { values }) => values.clone(),
                _ => Vec::new(),
            }
        };
        // Groups of values that share one carrier: (yield, init, loop arg, result) and (if
        // result, then yield, else yield).
        let mut groups: Vec<Vec<Value>> = Vec::new();
        for &id in &ops {
            let od = f.op(id);
            match &od.op {
                Op::For { body, init, .. } => {
                    let args = &f.region(*body).args;
                    for (i, y) in yields(*body).into_iter().enumerate() {
                        // The carrier is made from the init value.
                        let mut g = vec![y];
                        g.extend(init.get(i).copied());
                        g.extend(args.get(i + 1).copied());
                        g.extend(od.results.get(i).copied());
                        groups.push(g);
                    }
                }
                Op::If { then_body, else_body, .. } => {
                    let (t, e) = (yields(*then_body), yields(*else_body));
                    for (i, &r) in od.results.iter().enumerate() {
                        let mut g = vec![r];
                        g.extend(t.get(i).copied());
                        g.extend(e.get(i).copied());
                        groups.push(g);
                    }
                }
                _ => {}
            }
        }
        loop {
            let mut changed = false;
            for g in &groups {
                let Some(l) = g.iter().find_map(|v| self.pref.get(v).cloned()) else { continue };
                for v in g {
                    if !self.pref.contains_key(v) && self.value_shape(*v) == l.shape {
                        self.pref.insert(*v, l.clone());
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }

    /// The view of an `mma` accumulator that `v` (or an element-wise chain over it) is anchored
    /// in, so that a store of it needs no layout conversion.
    fn mma_view_of(&self, v: Value, depth: u32) -> Option<View> {
        if let Some((view, _)) = self.blocks.get(&v) {
            return self.mma_layouts.contains(&view.layout).then(|| view.clone());
        }
        if depth == 0 {
            return None;
        }
        let op = self.f.defining_op(v)?;
        match &self.f.op(op).op {
            Op::Unary { .. }
            | Op::Binary { .. }
            | Op::Cmp { .. }
            | Op::Select { .. }
            | Op::Fma { .. }
            | Op::Cast { .. } => {
                let shape = self.value_shape(v);
                self.f.op(op).op.operands().into_iter().find_map(|a| {
                    self.mma_view_of(a, depth - 1).filter(|_| self.value_shape(a) == shape)
                })
            }
            _ => None,
        }
    }

    /// `acc + a @ b` on tensor cores. Both operands go to shared memory (rows padded by 16 bytes
    /// so that the eight 16-byte rows an `ldmatrix` reads fall in distinct banks; padding
    /// along K is written as zeros, since it meets the other operand's padding); then for each
    /// k step every warp loads its A fragments with `ldmatrix.x4` and its B fragments with
    /// `ldmatrix.x4.trans` (f16/bf16; tf32 B is stored transposed and read without `.trans`,
    /// since `.trans` moves 16-bit halves) and issues one `mma.sync` per 16 x 8 tile of its
    /// accumulator, in place.
    fn dot_mma(
        &mut self,
        plan: &MmaPlan,
        a: Value,
        b: Value,
        acc: Value,
        res: Value,
        span: Span,
    ) -> Res<()> {
        let (_, ac, at) = self.dt_of(a, span)?;
        let ash = self.value_shape(a);
        let bsh = self.value_shape(b);
        let av = self.natural_view(&ash);
        let bv = self.natural_view(&bsh);
        let cl = self.layout_id(plan.layout.clone());
        self.mma_layouts.insert(cl);
        let cv = View { layout: cl, map: vec![Some(0), Some(1)] };
        let areg = self.get(a, &av, span)?;
        let breg = self.get(b, &bv, span)?;
        let creg = self.get(acc, &cv, span)?;
        let tf32 = plan.kind == MmaKind::Tf32;
        let (sty, eb) = if tf32 { (Ty::B32, 4) } else { (Ty::B16, 2) };
        let (mp, kp, np) =
            (plan.layout.padded[0], ash[1].next_power_of_two(), plan.layout.padded[1]);
        let (wm, wn) = (plan.wm, plan.wn);
        let a_stride = kp * eb + 16;
        let b_off = (mp * a_stride).next_multiple_of(16);
        // f16/bf16 B is [K][N]; tf32 B is [N][K].
        let b_stride = if tf32 { kp * 4 + 16 } else { np * eb + 16 };
        let b_rows = if tf32 { np } else { kp };
        self.shared(b_off + b_rows * b_stride);
        self.emit(Inst::Bar);
        let (wa, ca) = self.scratch_offsets_strided(&av, &[a_stride, eb]);
        let srcs: Vec<Opnd> =
            (0..areg.len()).map(|s| self.mma_operand(&av, s, areg[s], ac, at, tf32)).collect();
        self.smem_stores(sty, eb, &av, &srcs, wa, &ca, true);
        let bstr = if tf32 { [eb, b_stride] } else { [b_stride, eb] };
        let (wb, cb) = self.scratch_offsets_strided(&bv, &bstr);
        let cb: Vec<u32> = cb.iter().map(|c| c + b_off).collect();
        let srcs: Vec<Opnd> =
            (0..breg.len()).map(|s| self.mma_operand(&bv, s, breg[s], ac, at, tf32)).collect();
        self.smem_stores(sty, eb, &bv, &srcs, wb, &cb, !tf32);
        self.emit(Inst::Bar);

        // Per-lane row addresses: lane 8q + r gives row r of the q-th 8x8 matrix.
        let (lane, warp, sb) = (self.lane, self.warp, self.smem_base);
        let u = |x: u32| Opnd::Imm(u64::from(x));
        let r7 = self.reg(RegClass::B32);
        self.emit(bin(BinOp::And, Ty::B32, r7, lane.into(), u(7)));
        let q1 = self.reg(RegClass::B32);
        self.emit(bin(BinOp::Shr, Ty::U32, q1, lane.into(), u(3)));
        self.emit(bin(BinOp::And, Ty::B32, q1, q1.into(), u(1)));
        let q2 = self.reg(RegClass::B32);
        self.emit(bin(BinOp::Shr, Ty::U32, q2, lane.into(), u(4)));
        // 8 x the warp's row / column group (wrapped when warps replicate the block).
        let wrow = self.reg(RegClass::B32);
        self.emit(bin(BinOp::Shr, Ty::U32, wrow, warp.into(), u(wn.trailing_zeros())));
        self.emit(bin(BinOp::And, Ty::B32, wrow, wrow.into(), u(wm - 1)));
        self.emit(bin(BinOp::Shl, Ty::B32, wrow, wrow.into(), u(3)));
        let wcol = self.reg(RegClass::B32);
        self.emit(bin(BinOp::And, Ty::B32, wcol, warp.into(), u(wn - 1)));
        self.emit(bin(BinOp::Shl, Ty::B32, wcol, wcol.into(), u(3)));
        self.emit(bin(BinOp::And, Ty::B32, wcol, wcol.into(), u(np - 1)));
        // A: row (q & 1) 8 wm + 8 warp_m + r, column (q >> 1) 16 bytes.
        let abase = self.reg(RegClass::B32);
        self.emit(Inst::Fma {
            ty: Ty::U32,
            dst: abase,
            a: q1.into(),
            b: u(8 * wm),
            c: wrow.into(),
        });
        self.emit(bin(BinOp::Add, Ty::U32, abase, abase.into(), r7.into()));
        self.emit(Inst::Fma {
            ty: Ty::U32,
            dst: abase,
            a: abase.into(),
            b: u(a_stride),
            c: sb.into(),
        });
        self.emit(Inst::Fma { ty: Ty::U32, dst: abase, a: q2.into(), b: u(16), c: abase.into() });
        // B: f16 k row (q & 1) 8 + r, column (q >> 1) 8 wn + 8 warp_n; tf32 n row
        // (q >> 1) 8 wn + 8 warp_n + r, k bytes (q & 1) 16.
        let bbase = self.reg(RegClass::B32);
        let ncol = self.reg(RegClass::B32);
        self.emit(Inst::Fma { ty: Ty::U32, dst: ncol, a: q2.into(), b: u(8 * wn), c: wcol.into() });
        if tf32 {
            self.emit(bin(BinOp::Add, Ty::U32, bbase, ncol.into(), r7.into()));
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: bbase,
                a: bbase.into(),
                b: u(b_stride),
                c: sb.into(),
            });
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: bbase,
                a: q1.into(),
                b: u(16),
                c: bbase.into(),
            });
        } else {
            self.emit(Inst::Fma { ty: Ty::U32, dst: bbase, a: q1.into(), b: u(8), c: r7.into() });
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: bbase,
                a: bbase.into(),
                b: u(b_stride),
                c: sb.into(),
            });
            self.emit(Inst::Fma {
                ty: Ty::U32,
                dst: bbase,
                a: ncol.into(),
                b: u(eb),
                c: bbase.into(),
            });
        }
        self.emit(bin(BinOp::Add, Ty::U32, bbase, bbase.into(), u(b_off)));

        let l = plan.layout.clone();
        let out: Vec<Reg> = creg
            .iter()
            .map(|&o| {
                let r = self.reg(RegClass::F32);
                self.emit(Inst::Mov { ty: Ty::F32, dst: r, src: o });
                r
            })
            .collect();
        let (mtiles, ntiles) = (l.reps[0] / 2, l.reps[1]);
        let k = plan.kind.k();
        for kc in 0..kp / k {
            let mut afr = Vec::with_capacity(mtiles as usize);
            for i in 0..mtiles {
                let dsts: Vec<Reg> = (0..4).map(|_| self.reg(RegClass::B32)).collect();
                let off = i * 16 * wm * a_stride + kc * 32;
                self.emit(Inst::Ldmatrix { trans: false, dsts: dsts.clone(), addr: abase, off });
                afr.push(dsts);
            }
            let mut bfr: Vec<Vec<Reg>> = Vec::with_capacity(ntiles as usize);
            let kstep = if tf32 { kc * 32 } else { kc * 16 * b_stride };
            let tile_step = if tf32 { 8 * wn * b_stride } else { 8 * wn * eb };
            let mut c = 0;
            while c < ntiles {
                let n = if c + 1 < ntiles { 4 } else { 2 };
                let dsts: Vec<Reg> = (0..n).map(|_| self.reg(RegClass::B32)).collect();
                let off = c * tile_step + kstep;
                self.emit(Inst::Ldmatrix { trans: !tf32, dsts: dsts.clone(), addr: bbase, off });
                for pair in dsts.chunks(2) {
                    bfr.push(pair.to_vec());
                }
                c += n as u32 / 2;
            }
            for i in 0..mtiles {
                for (c, bf) in bfr.iter().enumerate() {
                    let d: Vec<Reg> = [(0, 0), (0, 1), (1, 0), (1, 1)]
                        .iter()
                        .map(|&(h, j)| out[l.slot_of(&[2 * i + h, 2 * c as u32 + j])])
                        .collect();
                    self.emit(Inst::Mma {
                        kind: plan.kind,
                        d: d.clone(),
                        a: afr[i as usize].clone(),
                        b: bf.clone(),
                        c: d,
                    });
                }
            }
        }
        self.blocks.insert(res, (cv, out.into_iter().map(Opnd::Reg).collect()));
        Ok(())
    }

    /// Stores one value per slot of `view` at `base + consts[s]`, as vectors of a thread's
    /// contiguous elements along the last dimension when `contiguous` (the last dimension has
    /// byte stride `eb`, and the caller guarantees `spt * eb` alignment of each run).
    #[allow(clippy::too_many_arguments)]
    fn smem_stores(
        &mut self,
        ty: Ty,
        eb: u32,
        view: &View,
        srcs: &[Opnd],
        base: Reg,
        consts: &[u32],
        contiguous: bool,
    ) {
        let l = &self.layouts[view.layout];
        let spt = l.spt[l.rank() - 1] as usize;
        let w = if contiguous && spt * eb as usize <= 16 { spt } else { 1 };
        let mut s = 0;
        while s < srcs.len() {
            let run = w > 1
                && s + w <= srcs.len()
                && (0..w).all(|j| consts[s + j] == consts[s] + j as u32 * eb);
            if run {
                let class = if eb == 2 { RegClass::B16 } else { RegClass::B32 };
                let v: Vec<Opnd> =
                    srcs[s..s + w].iter().map(|&o| Opnd::Reg(self.in_reg(o, class, ty))).collect();
                self.emit(Inst::StSharedV { ty, srcs: v, addr: base, off: consts[s] });
                s += w;
            } else {
                self.emit(Inst::StShared {
                    ty,
                    src: srcs[s],
                    addr: base,
                    off: consts[s],
                    pred: None,
                });
                s += 1;
            }
        }
    }

    /// Slot `s` of an mma operand as shared memory holds it: zero where the slot is padding
    /// (padding along K meets padding of the other operand, and 0 x garbage could be NaN),
    /// rounded to tf32 for the tf32 path.
    fn mma_operand(
        &mut self,
        view: &View,
        s: usize,
        o: Opnd,
        c: RegClass,
        t: Ty,
        tf32: bool,
    ) -> Opnd {
        let valid = self.valid(view, s);
        let v = match valid {
            Pv::False => return Opnd::Imm(0),
            Pv::True => o,
            Pv::R(p) => {
                let r = self.reg(c);
                self.select(t, r, p, o, Opnd::Imm(0));
                r.into()
            }
        };
        if tf32 {
            let r = self.reg(RegClass::B32);
            self.emit(Inst::Cvt { round: Round::Rna, dty: Ty::Tf32, sty: Ty::F32, dst: r, src: v });
            return r.into();
        }
        Opnd::Reg(self.in_reg(v, c, t))
    }

    // ---- control flow ----------------------------------------------------------------------

    /// Fresh registers for a carried value (scalar, or a block in its natural view).
    fn carrier(&mut self, v: Value, span: Span) -> Res<(Option<View>, Vec<Reg>)> {
        let (_, c, _) = self.dt_of(v, span)?;
        let shape = self.value_shape(v);
        if shape.is_empty() {
            return Ok((None, vec![self.reg(c)]));
        }
        let view = match self.pref.get(&v).cloned() {
            Some(l) => {
                let id = self.layout_id(l);
                View { layout: id, map: (0..shape.len()).map(|d| Some(d as u8)).collect() }
            }
            None => self.natural_view(&shape),
        };
        let n = self.slots(&view);
        Ok((Some(view), (0..n).map(|_| self.reg(c)).collect()))
    }

    fn assign(
        &mut self,
        v: Value,
        carrier: &(Option<View>, Vec<Reg>),
        span: Span,
    ) -> Res<Vec<(Reg, Opnd)>> {
        let vals = match &carrier.0 {
            None => vec![self.scalar(v, span)?],
            Some(view) => self.get(v, view, span)?,
        };
        Ok(carrier.1.iter().copied().zip(vals).collect())
    }

    fn mov_ty(&self, r: Reg) -> Ty {
        match self.regs[r.0 as usize] {
            RegClass::Pred => Ty::Pred,
            RegClass::B16 => Ty::B16,
            RegClass::B32 => Ty::B32,
            RegClass::B64 => Ty::B64,
            RegClass::F32 => Ty::F32,
            RegClass::F64 => Ty::F64,
        }
    }

    /// Moves `pairs` as a parallel assignment (sources read before any destination is written).
    fn parallel_move(&mut self, pairs: Vec<(Reg, Opnd)>) {
        let mut temps = Vec::with_capacity(pairs.len());
        for (d, s) in pairs {
            let needs_temp = s.reg().is_some();
            if needs_temp {
                let t = self.reg(self.regs[d.0 as usize]);
                let ty = self.mov_ty(d);
                self.emit(Inst::Mov { ty, dst: t, src: s });
                temps.push((d, Opnd::Reg(t)));
            } else {
                temps.push((d, s));
            }
        }
        for (d, s) in temps {
            let ty = self.mov_ty(d);
            self.emit(Inst::Mov { ty, dst: d, src: s });
        }
    }

    fn bind(&mut self, v: Value, carrier: &(Option<View>, Vec<Reg>)) {
        match &carrier.0 {
            None => {
                self.scalars.insert(v, carrier.1[0].into());
            }
            Some(view) => {
                self.blocks
                    .insert(v, (view.clone(), carrier.1.iter().map(|&r| r.into()).collect()));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn for_loop(
        &mut self,
        lo: Value,
        hi: Value,
        step: Value,
        init: &[Value],
        body: RegionId,
        results: &[Value],
        span: Span,
    ) -> Res<()> {
        let (_, ic, it) = self.dt_of(lo, span)?;
        let lo_o = self.scalar(lo, span)?;
        let hi_o = self.scalar(hi, span)?;
        let step_o = self.scalar(step, span)?;
        let mut carriers = Vec::with_capacity(init.len());
        let mut pairs = Vec::new();
        for &v in init {
            let car = self.carrier(v, span)?;
            pairs.extend(self.assign(v, &car, span)?);
            carriers.push(car);
        }
        self.parallel_move(pairs);
        let iv = self.reg(ic);
        let args = self.f.region(body).args.clone();
        self.scalars.insert(args[0], iv.into());
        for (a, car) in args[1..].iter().zip(&carriers) {
            self.bind(*a, car);
        }
        self.stack.push(Vec::new());
        self.cache.push(HashMap::new());
        let ys = self.region(body)?;
        let mut pairs = Vec::new();
        for (y, car) in ys.iter().zip(&carriers) {
            pairs.extend(self.assign(*y, car, span)?);
        }
        self.parallel_move(pairs);
        self.cache.pop();
        let insts = self.stack.pop().unwrap_or_default();
        self.emit(Inst::For { ty: it, iv, lo: lo_o, hi: hi_o, step: step_o, body: insts });
        for (r, car) in results.iter().zip(&carriers) {
            self.bind(*r, car);
        }
        Ok(())
    }

    fn if_op(
        &mut self,
        cond: Value,
        then_r: RegionId,
        else_r: RegionId,
        results: &[Value],
        span: Span,
    ) -> Res<()> {
        let c = self.scalar(cond, span)?;
        let mut carriers = Vec::with_capacity(results.len());
        for &r in results {
            carriers.push(self.carrier(r, span)?);
        }
        let mut bodies = Vec::new();
        for r in [then_r, else_r] {
            self.stack.push(Vec::new());
            self.cache.push(HashMap::new());
            let ys = self.region(r)?;
            let mut pairs = Vec::new();
            for (y, car) in ys.iter().zip(&carriers) {
                pairs.extend(self.assign(*y, car, span)?);
            }
            self.parallel_move(pairs);
            self.cache.pop();
            bodies.push(self.stack.pop().unwrap_or_default());
        }
        let else_body = bodies.pop().unwrap_or_default();
        let then_body = bodies.pop().unwrap_or_default();
        match c {
            Opnd::Imm(x) => {
                let chosen = if x != 0 { then_body } else { else_body };
                for i in chosen {
                    self.emit(i);
                }
            }
            Opnd::Reg(p) => self.emit(Inst::If { cond: p, then_body, else_body }),
        }
        for (r, car) in results.iter().zip(&carriers) {
            self.bind(*r, car);
        }
        Ok(())
    }
}

fn bin(op: BinOp, ty: Ty, dst: Reg, a: Opnd, b: Opnd) -> Inst {
    Inst::Binary { op, ty, dst, a, b }
}

fn p_value(f: &Function, i: usize) -> Value {
    f.params[i].value
}

/// Immediate bits of a constant in `dt`.
pub(crate) fn const_bits(dt: DType, v: ConstValue) -> u64 {
    match v {
        ConstValue::Bool(b) => u64::from(b),
        ConstValue::Int(i) => match dt {
            DType::F32 => u64::from((i as f32).to_bits()),
            DType::F64 => (i as f64).to_bits(),
            _ => i as u64,
        },
        ConstValue::Float(x) => match dt {
            DType::F32 => u64::from((x as f32).to_bits()),
            DType::F64 => x.to_bits(),
            DType::F16 => u64::from(half::f16::from_f64(x).to_bits()),
            DType::BF16 => u64::from(half::bf16::from_f64(x).to_bits()),
            _ => x as i64 as u64,
        },
    }
}
