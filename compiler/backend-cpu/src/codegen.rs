//! Lowering of tk IR kernels to LLVM IR: the kernel function, regions, control flow, and the ops
//! that are not fused (reductions with indices or user functions, scans, sorts, histograms,
//! atomics, loops, `if`; `dot` is in `dot.rs`).
//!
//! Scalars are SSA values (bool is `i1` in registers, one byte in memory). A block value is either
//! *lazy* (computed inside the fused loops that consume it, `fused.rs`, as planned by `plan.rs`)
//! or a stack array (`alloca` in the entry block) of its elements in memory format, padded by
//! one vector so that the tail chunk of a loop may read past the end. Loop-carried values and
//! `if` results live in slots written by `yield`. Lane semantics are in `lanes.rs`.

use crate::fused::{Chunk, Map};
use crate::lanes::{iv, pv, Sc};
use crate::plan::{self, Decision, Plan};
use crate::target::Machine;
use crate::{CpuError, CpuKernel, CpuOptions, Trap, TrapKind};
use inkwell::basic_block::BasicBlock;
use inkwell::builder::{Builder, BuilderError};
use inkwell::context::Context;
use inkwell::module::{Linkage, Module as LModule};
use inkwell::types::BasicType;
use inkwell::values::{BasicValueEnum, FunctionValue, IntValue, PointerValue};
use inkwell::{AddressSpace, AtomicOrdering, AtomicRMWBinOp, IntPredicate};
use std::collections::HashMap;
use tk_ir::analysis::{self, AxisInfoTable, ParamHints};
use tk_ir::{
    eval, AtomicOp, DType, Elem, FuncKind, Function, Op, OpData, ReduceKind, RegionId, Type, Value,
};

pub(crate) type R<T> = Result<T, CpuError>;

impl From<BuilderError> for CpuError {
    fn from(e: BuilderError) -> Self {
        CpuError::Llvm(format!("IR builder: {e}"))
    }
}

/// A lowered IR value: an SSA scalar, the stack array of a block, or a lazy block (computed
/// inside fused loops; see `fused.rs`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Lv<'ctx> {
    S(BasicValueEnum<'ctx>),
    B(PointerValue<'ctx>),
    L,
}

/// Lowers every kernel of `m` into a fresh LLVM module.
pub(crate) fn lower_module<'ctx>(
    ctx: &'ctx Context,
    m: &tk_ir::Module,
    opts: &CpuOptions,
    tm: &Machine,
) -> R<(LModule<'ctx>, Vec<CpuKernel>)> {
    let module = ctx.create_module("tk");
    module.set_triple(&tm.machine.get_triple());
    module.set_data_layout(&tm.machine.get_target_data().get_data_layout());
    let mut kernels = Vec::new();
    for f in m.functions.iter().filter(|f| f.kind == FuncKind::Kernel) {
        kernels.push(lower_kernel(ctx, &module, m, f, opts, tm.vector_lanes())?);
    }
    Ok((module, kernels))
}

fn lower_kernel<'ctx>(
    ctx: &'ctx Context,
    module: &LModule<'ctx>,
    ir: &tk_ir::Module,
    f: &Function,
    opts: &CpuOptions,
    vw: u32,
) -> R<CpuKernel> {
    let ptr = ctx.ptr_type(AddressSpace::default());
    let fn_ty = ctx.i32_type().fn_type(&[ptr.into(), ptr.into(), ptr.into()], false);
    let symbol = format!("tk_{}", f.name);
    if module.get_function(&symbol).is_some() {
        return Err(CpuError::Malformed {
            kernel: f.name.clone(),
            what: "two kernels with this name".into(),
        });
    }
    let func = module.add_function(&symbol, fn_ty, Some(Linkage::External));
    let entry = ctx.append_basic_block(func, "entry");
    let start = ctx.append_basic_block(func, "start");
    let b = ctx.create_builder();
    let ab = ctx.create_builder();
    b.position_at_end(entry);
    let i32t = ctx.i32_type();
    let param = |i: u32| -> R<PointerValue<'ctx>> {
        pv(func.get_nth_param(i).ok_or_else(|| CpuError::Llvm("missing parameter".into()))?)
    };
    let (args, pid_p, np_p) = (param(0)?, param(1)?, param(2)?);
    let mut pid = Vec::new();
    let mut nprog = Vec::new();
    for a in 0..3u64 {
        let idx = [ctx.i64_type().const_int(a, false)];
        // SAFETY (of the generated code): the ABI passes arrays of three i32.
        let p = unsafe { b.build_in_bounds_gep(i32t, pid_p, &idx, "pid.p")? };
        pid.push(iv(b.build_load(i32t, p, "pid")?)?);
        let p = unsafe { b.build_in_bounds_gep(i32t, np_p, &idx, "np.p")? };
        nprog.push(iv(b.build_load(i32t, p, "nprog")?)?);
    }
    let sc = Sc { cx: ctx, m: module, b };
    let mut g = Gen {
        sc,
        ab,
        ir,
        f,
        func,
        vals: vec![None; f.values.len()],
        pid: [pid[0], pid[1], pid[2]],
        nprog: [nprog[0], nprog[1], nprog[2]],
        traps: Vec::new(),
        stack_bytes: 0,
        checks: opts.checks,
        plan: Plan::default(),
        info: AxisInfoTable::default(),
        vw,
        chunk: None,
        memo: HashMap::new(),
        forced: Default::default(),
    };
    g.info = analysis::analyze(ir, f, &ParamHints::none());
    g.plan = plan::plan(ir, f, &g.info);
    for (i, p) in f.params.iter().enumerate() {
        let ty = g.ir.types.try_get(p.ty).ok_or_else(|| g.mal("parameter type unknown"))?.clone();
        if !ty.is_scalar() {
            return Err(g.unsup(format!("block parameter `{}`", p.name)));
        }
        let idx = [ctx.i64_type().const_int(i as u64, false)];
        let slot = unsafe { g.sc.b.build_in_bounds_gep(ptr, args, &idx, "arg.p")? };
        let at = pv(g.sc.b.build_load(ptr, slot, &p.name)?)?;
        let v = g.load_mem(at, ty.elem)?;
        g.set(p.value, Lv::S(v))?;
    }
    g.ab.position_at_end(entry);
    g.sc.b.position_at_end(start);
    let ys = g.emit_region(f.body, Vec::new())?;
    if !ys.is_empty() {
        return Err(g.mal("a kernel body yields values"));
    }
    g.sc.b.build_return(Some(&i32t.const_zero()))?;
    // The entry block holds parameter loads and every alloca; it falls through to the body.
    g.sc.b.position_at_end(entry);
    g.sc.b.build_unconditional_branch(start)?;
    Ok(CpuKernel { name: f.name.clone(), symbol, traps: g.traps, stack_bytes: g.stack_bytes })
}

pub(crate) struct Gen<'a, 'ctx> {
    pub sc: Sc<'a, 'ctx>,
    /// Builder for allocas, at the end of the entry block.
    pub ab: Builder<'ctx>,
    pub ir: &'a tk_ir::Module,
    pub f: &'a Function,
    pub func: FunctionValue<'ctx>,
    pub vals: Vec<Option<Lv<'ctx>>>,
    pub pid: [IntValue<'ctx>; 3],
    pub nprog: [IntValue<'ctx>; 3],
    pub traps: Vec<Trap>,
    pub stack_bytes: u64,
    pub checks: bool,
    /// What is fused and what is materialised.
    pub plan: Plan,
    /// Contiguity, divisibility and constancy of every value.
    pub info: AxisInfoTable,
    /// Lanes of a native vector of 32-bit elements.
    pub vw: u32,
    /// The chunk of the fused loop being emitted.
    pub chunk: Option<Chunk<'ctx>>,
    /// Values computed in the current chunk, by value, map and lanes.
    pub memo: HashMap<(Value, Map, u32), BasicValueEnum<'ctx>>,
    /// Masks known to be on everywhere in the loop version being emitted.
    pub forced: std::collections::HashSet<Value>,
}

/// `(outer, n, inner)` of `shape` around `axis`.
fn geometry(shape: &[u32], axis: u8) -> Option<(u64, u64, u64)> {
    let a = axis as usize;
    if a >= shape.len() {
        return None;
    }
    let p = |s: &[u32]| s.iter().map(|&d| d as u64).product::<u64>();
    Some((p(&shape[..a]), shape[a] as u64, p(&shape[a + 1..])))
}

fn row_major_strides(shape: &[u32]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as u64;
    }
    s
}

impl<'a, 'ctx> Gen<'a, 'ctx> {
    pub(crate) fn unsup(&self, what: impl Into<String>) -> CpuError {
        CpuError::Unsupported { kernel: self.f.name.clone(), what: what.into() }
    }
    pub(crate) fn mal(&self, what: impl Into<String>) -> CpuError {
        CpuError::Malformed { kernel: self.f.name.clone(), what: what.into() }
    }

    // ---- values and types -------------------------------------------------------------------

    pub(crate) fn ty(&self, v: Value) -> R<&'a Type> {
        let vd = self.f.values.get(v.0 as usize).ok_or_else(|| self.mal("value out of range"))?;
        self.ir.types.try_get(vd.ty).ok_or_else(|| self.mal("type out of range"))
    }
    pub(crate) fn dtype(&self, v: Value) -> R<DType> {
        self.ty(v)?.elem.dtype().ok_or_else(|| self.mal("a number was expected, not a pointer"))
    }
    pub(crate) fn get(&self, v: Value) -> R<Lv<'ctx>> {
        self.vals
            .get(v.0 as usize)
            .copied()
            .flatten()
            .ok_or_else(|| self.mal(format!("%{} used before it is defined", v.0)))
    }
    pub(crate) fn set(&mut self, v: Value, lv: Lv<'ctx>) -> R<()> {
        let slot = self.vals.get_mut(v.0 as usize);
        match slot {
            Some(s) => {
                *s = Some(lv);
                Ok(())
            }
            None => Err(self.mal("result value out of range")),
        }
    }
    pub(crate) fn scalar(&self, v: Value) -> R<BasicValueEnum<'ctx>> {
        match self.get(v)? {
            Lv::S(x) => Ok(x),
            Lv::B(_) | Lv::L => Err(self.mal(format!("%{} should be a scalar", v.0))),
        }
    }
    pub(crate) fn res(&self, od: &OpData, i: usize) -> R<Value> {
        od.results.get(i).copied().ok_or_else(|| self.mal(format!("missing result {i}")))
    }
    pub(crate) fn i64c(&self, n: u64) -> IntValue<'ctx> {
        self.sc.cx.i64_type().const_int(n, false)
    }

    // ---- memory -----------------------------------------------------------------------------

    /// A stack array of `n` elements in the entry block.
    pub(crate) fn alloc(&mut self, elem: Elem, n: u64) -> R<PointerValue<'ctx>> {
        // One vector of padding: a loop's tail chunk may read (never use) lanes past the end.
        let n = n + self.vw as u64;
        let n32 = u32::try_from(n).map_err(|_| self.unsup(format!("a block of {n} elements")))?;
        let size = match elem {
            Elem::Ptr(_) => 8,
            Elem::Scalar(d) => d.size_bytes() as u64,
        };
        self.stack_bytes += n * size;
        let ty = self.sc.mem_ty(elem).array_type(n32);
        let p = self.ab.build_alloca(ty, "blk")?;
        if let Some(i) = p.as_instruction() {
            let _ = i.set_alignment(64);
        }
        Ok(p)
    }
    pub(crate) fn elem_ptr(
        &self,
        base: PointerValue<'ctx>,
        elem: Elem,
        idx: IntValue<'ctx>,
    ) -> R<PointerValue<'ctx>> {
        // SAFETY (of the generated code): indices stay within the block's array.
        Ok(unsafe { self.sc.b.build_in_bounds_gep(self.sc.mem_ty(elem), base, &[idx], "ep")? })
    }
    pub(crate) fn load_mem(&self, p: PointerValue<'ctx>, elem: Elem) -> R<BasicValueEnum<'ctx>> {
        let v = self.sc.b.build_load(self.sc.mem_ty(elem), p, "ld")?;
        if elem == Elem::Scalar(DType::Bool) {
            let z = self.sc.cx.i8_type().const_zero();
            return Ok(self.sc.b.build_int_compare(IntPredicate::NE, iv(v)?, z, "b")?.into());
        }
        Ok(v)
    }
    pub(crate) fn store_mem(
        &self,
        p: PointerValue<'ctx>,
        elem: Elem,
        v: BasicValueEnum<'ctx>,
    ) -> R<()> {
        let v = if elem == Elem::Scalar(DType::Bool) {
            self.sc.b.build_int_z_extend(iv(v)?, self.sc.cx.i8_type(), "b8")?.into()
        } else {
            v
        };
        self.sc.b.build_store(p, v)?;
        Ok(())
    }
    /// Element `idx` of `v` (a scalar ignores `idx`).
    pub(crate) fn elem_at(&self, v: Value, idx: IntValue<'ctx>) -> R<BasicValueEnum<'ctx>> {
        match self.get(v)? {
            Lv::S(x) => Ok(x),
            Lv::B(p) => {
                let elem = self.ty(v)?.elem;
                self.load_mem(self.elem_ptr(p, elem, idx)?, elem)
            }
            Lv::L => Err(self.mal(format!("%{} is fused but read as an array", v.0))),
        }
    }
    pub(crate) fn store_at(
        &self,
        buf: PointerValue<'ctx>,
        elem: Elem,
        idx: IntValue<'ctx>,
        v: BasicValueEnum<'ctx>,
    ) -> R<()> {
        self.store_mem(self.elem_ptr(buf, elem, idx)?, elem, v)
    }
    fn bytes(&self, ty: &Type) -> u64 {
        let size = match ty.elem {
            Elem::Ptr(_) => 8,
            Elem::Scalar(d) => d.size_bytes() as u64,
        };
        ty.numel() * size
    }
    /// Copies a lowered value into a slot made by [`Gen::alloc`] for type `ty`.
    fn copy_into(&self, dst: PointerValue<'ctx>, src: Lv<'ctx>, ty: &Type) -> R<()> {
        match src {
            Lv::S(x) => self.store_at(dst, ty.elem, self.i64c(0), x),
            Lv::B(p) => {
                if p != dst {
                    self.sc.b.build_memcpy(dst, 1, p, 1, self.i64c(self.bytes(ty)))?;
                }
                Ok(())
            }
            Lv::L => Err(self.mal("a fused value copied as an array")),
        }
    }
    /// The value of a result slot: a scalar is loaded, a block is the array itself.
    fn read_slot(&self, slot: PointerValue<'ctx>, ty: &Type) -> R<Lv<'ctx>> {
        if ty.is_scalar() {
            Ok(Lv::S(self.load_elem0(slot, ty.elem)?))
        } else {
            Ok(Lv::B(slot))
        }
    }
    fn load_elem0(&self, slot: PointerValue<'ctx>, elem: Elem) -> R<BasicValueEnum<'ctx>> {
        self.load_mem(self.elem_ptr(slot, elem, self.i64c(0))?, elem)
    }

    // ---- control flow -----------------------------------------------------------------------

    pub(crate) fn block(&self, name: &str) -> BasicBlock<'ctx> {
        self.sc.cx.append_basic_block(self.func, name)
    }
    pub(crate) fn current(&self) -> R<BasicBlock<'ctx>> {
        self.sc.b.get_insert_block().ok_or_else(|| CpuError::Llvm("builder has no block".into()))
    }

    /// `for i in lo..hi` (i64, `lo < hi` not required).
    pub(crate) fn emit_loop(
        &mut self,
        lo: u64,
        hi: u64,
        mut body: impl FnMut(&mut Self, IntValue<'ctx>) -> R<()>,
    ) -> R<()> {
        if hi <= lo {
            return Ok(());
        }
        if hi - lo == 1 {
            return body(self, self.i64c(lo));
        }
        let pre = self.current()?;
        let header = self.block("loop");
        let exit = self.block("loop.end");
        self.sc.b.build_unconditional_branch(header)?;
        self.sc.b.position_at_end(header);
        let i64t = self.sc.cx.i64_type();
        let phi = self.sc.b.build_phi(i64t, "i")?;
        let i = iv(phi.as_basic_value())?;
        body(self, i)?;
        let next = self.sc.b.build_int_add(i, self.i64c(1), "i.next")?;
        let latch = self.current()?;
        let more = self.sc.b.build_int_compare(IntPredicate::ULT, next, self.i64c(hi), "more")?;
        self.sc.b.build_conditional_branch(more, header, exit)?;
        phi.add_incoming(&[(&self.i64c(lo), pre), (&next, latch)]);
        self.sc.b.position_at_end(exit);
        Ok(())
    }

    /// Runs `then` only where `cond` holds.
    pub(crate) fn emit_if(
        &mut self,
        cond: IntValue<'ctx>,
        then: impl FnOnce(&mut Self) -> R<()>,
    ) -> R<()> {
        let tb = self.block("then");
        let mb = self.block("endif");
        self.sc.b.build_conditional_branch(cond, tb, mb)?;
        self.sc.b.position_at_end(tb);
        then(self)?;
        self.sc.b.build_unconditional_branch(mb)?;
        self.sc.b.position_at_end(mb);
        Ok(())
    }

    /// `cond ? then() : other` where `then` may touch memory that `cond` guards.
    pub(crate) fn emit_guarded(
        &mut self,
        cond: IntValue<'ctx>,
        then: impl FnOnce(&mut Self) -> R<BasicValueEnum<'ctx>>,
        other: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let pre = self.current()?;
        let tb = self.block("then");
        let mb = self.block("merge");
        self.sc.b.build_conditional_branch(cond, tb, mb)?;
        self.sc.b.position_at_end(tb);
        let v = then(self)?;
        let tend = self.current()?;
        self.sc.b.build_unconditional_branch(mb)?;
        self.sc.b.position_at_end(mb);
        let phi = self.sc.b.build_phi(v.get_type(), "g")?;
        phi.add_incoming(&[(&v, tend), (&other, pre)]);
        Ok(phi.as_basic_value())
    }

    /// Returns trap code `site + 1` from the kernel when `cond` holds.
    fn trap_if(&mut self, cond: IntValue<'ctx>, kind: TrapKind, message: String) -> R<()> {
        self.traps.push(Trap { kind, message });
        let code = self.traps.len() as u64;
        let tb = self.block("trap");
        let cont = self.block("cont");
        self.sc.b.build_conditional_branch(cond, tb, cont)?;
        self.sc.b.position_at_end(tb);
        self.sc.b.build_return(Some(&self.sc.cx.i32_type().const_int(code, false)))?;
        self.sc.b.position_at_end(cont);
        Ok(())
    }

    fn emit_region(&mut self, r: RegionId, args: Vec<Lv<'ctx>>) -> R<Vec<Lv<'ctx>>> {
        let f = self.f;
        let rd = f.regions.get(r.0 as usize).ok_or_else(|| self.mal("region out of range"))?;
        if rd.args.len() != args.len() {
            return Err(self.mal("region argument count"));
        }
        for (&v, a) in rd.args.iter().zip(args) {
            self.set(v, a)?;
        }
        for &op in &rd.ops {
            let od = f.ops.get(op.0 as usize).ok_or_else(|| self.mal("op out of range"))?;
            if let Op::Yield { values } = &od.op {
                return values.iter().map(|&v| self.get(v)).collect();
            }
            self.emit_planned(op, od)?;
        }
        Err(self.mal("region without yield"))
    }

    // ---- ops --------------------------------------------------------------------------------

    /// Emits one op as the plan says: fused values wait for their loop, roots and values
    /// materialised in their own loop run a fused loop, everything else is lowered on arrays.
    fn emit_planned(&mut self, id: tk_ir::OpId, od: &'a OpData) -> R<()> {
        if plan::is_fusible(self.ir, self.f, &self.info, od) {
            let v = self.res(od, 0)?;
            return match self.plan.decision(v) {
                Some(Decision::MatOwn) => {
                    self.set(v, Lv::L)?;
                    self.emit_mat_own(id, v)
                }
                _ => self.set(v, Lv::L),
            };
        }
        if plan::is_root(self.ir, self.f, &od.op) {
            return match &od.op {
                Op::Store { ptr, value, mask } => self.emit_store_root(id, *ptr, *value, *mask),
                Op::Reduce { kind, axis, value } => {
                    self.emit_reduce_root(id, od, *kind, *axis, *value)
                }
                _ => Err(self.mal("unknown loop root")),
            };
        }
        self.emit_op(od)
    }

    /// A result slot for result `i` of `od`, with its type.
    fn sink(&mut self, od: &OpData, i: usize) -> R<(Value, &'a Type, PointerValue<'ctx>)> {
        let v = self.res(od, i)?;
        let ty = self.ty(v)?;
        let p = self.alloc(ty.elem, ty.numel())?;
        Ok((v, ty, p))
    }
    fn finish(&mut self, v: Value, ty: &Type, slot: PointerValue<'ctx>) -> R<()> {
        let lv = self.read_slot(slot, ty)?;
        self.set(v, lv)
    }

    /// An element-wise op: `f` maps the lanes' operand values to the result (and an optional
    /// "bad lane" flag that makes the op trap with `trap`).
    fn elementwise(
        &mut self,
        od: &OpData,
        operands: &[Value],
        trap: Option<(TrapKind, String)>,
        f: impl Fn(
            &Sc<'a, 'ctx>,
            &[BasicValueEnum<'ctx>],
        ) -> R<(BasicValueEnum<'ctx>, Option<IntValue<'ctx>>)>,
    ) -> R<()> {
        let (rv, ty, out) = self.sink(od, 0)?;
        let flag = match trap {
            Some(_) => {
                let p = self.ab.build_alloca(self.sc.cx.bool_type(), "bad")?;
                self.sc.b.build_store(p, self.sc.cx.bool_type().const_zero())?;
                Some(p)
            }
            None => None,
        };
        let elem = ty.elem;
        self.emit_loop(0, ty.numel(), |g, i| {
            let xs = operands.iter().map(|&v| g.elem_at(v, i)).collect::<R<Vec<_>>>()?;
            let (r, bad) = f(&g.sc, &xs)?;
            g.store_at(out, elem, i, r)?;
            if let (Some(p), Some(bad)) = (flag, bad) {
                let t = g.sc.cx.bool_type();
                let old = iv(g.sc.b.build_load(t, p, "bad")?)?;
                let new = g.sc.b.build_or(old, bad, "bad")?;
                g.sc.b.build_store(p, new)?;
            }
            Ok(())
        })?;
        if let (Some(p), Some((kind, msg))) = (flag, trap) {
            let bad = iv(self.sc.b.build_load(self.sc.cx.bool_type(), p, "bad")?)?;
            self.trap_if(bad, kind, msg)?;
        }
        self.finish(rv, ty, out)
    }

    fn emit_op(&mut self, od: &'a OpData) -> R<()> {
        match &od.op {
            Op::Const { value } => {
                let r = self.res(od, 0)?;
                let dt = self.dtype(r)?;
                let c = self.sc.constant(dt, eval::normalize(dt, *value));
                self.set(r, Lv::S(c))
            }
            Op::ProgramId { axis } | Op::NumPrograms { axis } => {
                let a = *axis as usize;
                if a > 2 {
                    return Err(self.mal(format!("grid axis {axis}")));
                }
                let v =
                    if matches!(od.op, Op::ProgramId { .. }) { self.pid[a] } else { self.nprog[a] };
                self.set(self.res(od, 0)?, Lv::S(v.into()))
            }
            Op::Arange { start, end } => {
                let (rv, ty, out) = self.sink(od, 0)?;
                if end <= start {
                    return Err(self.mal("empty arange"));
                }
                let i32t = self.sc.cx.i32_type();
                let s = *start;
                self.emit_loop(0, (end - start) as u64, |g, i| {
                    let i32v = g.sc.b.build_int_truncate(i, i32t, "i32")?;
                    let x = g.sc.b.build_int_add(i32v, i32t.const_int(s as u64, true), "ar")?;
                    g.store_at(out, ty.elem, i, x.into())
                })?;
                self.finish(rv, ty, out)
            }
            Op::Splat { value } => self.elementwise(od, &[*value], None, |_, x| Ok((x[0], None))),
            Op::Broadcast { value } => {
                let src = self.ty(*value)?;
                let st: Vec<u64> = row_major_strides(&src.shape)
                    .into_iter()
                    .zip(&src.shape)
                    .map(|(s, &d)| if d == 1 { 0 } else { s })
                    .collect();
                self.gather(od, *value, st)
            }
            Op::Permute { value, perm } => {
                let src = self.ty(*value)?;
                let s = row_major_strides(&src.shape);
                let st = perm
                    .iter()
                    .map(|&p| s.get(p as usize).copied().ok_or_else(|| self.mal("bad permutation")))
                    .collect::<R<Vec<_>>>()?;
                self.gather(od, *value, st)
            }
            Op::ExpandDims { value, .. } | Op::Reshape { value } => {
                let r = self.res(od, 0)?;
                let rty = self.ty(r)?;
                match (self.get(*value)?, rty.is_scalar()) {
                    (Lv::B(p), true) => {
                        let x = self.load_mem(p, rty.elem)?;
                        self.set(r, Lv::S(x))
                    }
                    (Lv::S(_), false) => {
                        self.elementwise(od, &[*value], None, |_, x| Ok((x[0], None)))
                    }
                    (lv, _) => self.set(r, lv),
                }
            }
            Op::Unary { op, value } => {
                let (op, dt) = (*op, self.dtype(*value)?);
                self.elementwise(od, &[*value], None, move |sc, x| {
                    Ok((sc.unary(op, dt, x[0])?, None))
                })
            }
            Op::Binary { op, lhs, rhs } => {
                let (op, dt) = (*op, self.dtype(*lhs)?);
                let trap = (dt.is_int()
                    && matches!(op, tk_ir::BinaryOp::Div | tk_ir::BinaryOp::Rem))
                .then(|| {
                    (
                        TrapKind::IntegerDivision,
                        format!("integer {} by zero or overflow ({dt})", op.name()),
                    )
                });
                self.elementwise(od, &[*lhs, *rhs], trap, move |sc, x| {
                    let (r, bad) = sc.binary(op, dt, x[0], x[1])?;
                    Ok((r, bad.map(iv).transpose()?))
                })
            }
            Op::Cmp { pred, lhs, rhs } => {
                let (pred, dt) = (*pred, self.dtype(*lhs)?);
                self.elementwise(od, &[*lhs, *rhs], None, move |sc, x| {
                    Ok((sc.cmp(pred, dt, x[0], x[1])?, None))
                })
            }
            Op::Select { cond, on_true, on_false } => {
                self.elementwise(od, &[*cond, *on_true, *on_false], None, |sc, x| {
                    Ok((sc.b.build_select(iv(x[0])?, x[1], x[2], "sel")?, None))
                })
            }
            Op::Fma { a, b, c } => {
                let dt = self.dtype(*a)?;
                self.elementwise(od, &[*a, *b, *c], None, move |sc, x| {
                    Ok((sc.fma(dt, x[0], x[1], x[2])?, None))
                })
            }
            Op::Cast { value } => {
                let from = self.dtype(*value)?;
                let to = self.dtype(self.res(od, 0)?)?;
                self.elementwise(od, &[*value], None, move |sc, x| {
                    Ok((sc.cast(from, to, x[0])?, None))
                })
            }
            Op::AddPtr { ptr, offset } => {
                let Elem::Ptr(dt) = self.ty(*ptr)?.elem else {
                    return Err(self.mal("addptr of a non-pointer"));
                };
                let odt = self.dtype(*offset)?;
                self.elementwise(od, &[*ptr, *offset], None, move |sc, x| {
                    let off = iv(sc.to_i64(odt, x[1])?)?;
                    let t = sc.mem_ty(Elem::Scalar(dt));
                    // SAFETY (of the generated code): pointer arithmetic only; not inbounds.
                    let p = unsafe { sc.b.build_gep(t, pv(x[0])?, &[off], "addptr")? };
                    Ok((p.into(), None))
                })
            }
            Op::Load { ptr, mask, other } => self.emit_load(od, *ptr, *mask, *other),
            Op::Store { ptr, value, mask } => self.emit_store(*ptr, *value, *mask),
            Op::Atomic { op, ptr, value, mask } => {
                self.emit_atomic(od, Some(*op), *ptr, None, *value, *mask)
            }
            Op::AtomicCas { ptr, cmp, value, mask } => {
                self.emit_atomic(od, None, *ptr, Some(*cmp), *value, *mask)
            }
            Op::Reduce { kind, axis, value } => self.emit_reduce(od, *kind, *axis, *value),
            Op::ReduceWith { axis, value, combine } => {
                self.emit_combine(od, *axis, *value, *combine, false)
            }
            Op::ScanWith { axis, value, combine } => {
                self.emit_combine(od, *axis, *value, *combine, true)
            }
            Op::Cumsum { axis, value, reverse } => self.emit_cumsum(od, *axis, *value, *reverse),
            Op::TopK { value, k } => self.emit_sort(od, *value, Some(*k), true),
            Op::Sort { value, descending } => self.emit_sort(od, *value, None, *descending),
            Op::Histogram { value, bins, mask } => self.emit_histogram(od, *value, *bins, *mask),
            Op::Dot { a, b, acc, .. } => self.emit_dot_tiled(od, *a, *b, *acc),
            Op::For { lo, hi, step, init, body } => self.emit_for(od, *lo, *hi, *step, init, *body),
            Op::If { cond, then_body, else_body } => {
                self.emit_ifop(od, *cond, *then_body, *else_body)
            }
            Op::Yield { .. } => Err(self.mal("yield in the middle of a region")),
            Op::Call { .. } => Err(self.unsup("`call` (run the inliner before the CPU backend)")),
            Op::DeviceAssert { cond, message } => {
                if !self.checks {
                    return Ok(());
                }
                let n = self.ty(*cond)?.numel();
                let t = self.sc.cx.bool_type();
                let all = self.ab.build_alloca(t, "all")?;
                self.sc.b.build_store(all, t.const_int(1, false))?;
                self.emit_loop(0, n, |g, i| {
                    let c = iv(g.elem_at(*cond, i)?)?;
                    let old = iv(g.sc.b.build_load(t, all, "all")?)?;
                    let new = g.sc.b.build_and(old, c, "all")?;
                    g.sc.b.build_store(all, new)?;
                    Ok(())
                })?;
                let ok = iv(self.sc.b.build_load(t, all, "all")?)?;
                let failed = self.sc.b.build_not(ok, "failed")?;
                self.trap_if(failed, TrapKind::AssertFailed, message.clone())
            }
            Op::Print { .. } => Ok(()),
        }
    }

    /// Result lane `i` (row-major) reads the operand at `Σ idx_d · strides[d]`.
    fn gather(&mut self, od: &OpData, value: Value, strides: Vec<u64>) -> R<()> {
        let (rv, ty, out) = self.sink(od, 0)?;
        if strides.len() != ty.shape.len() {
            return Err(self.mal("rank mismatch"));
        }
        let src = match self.get(value)? {
            Lv::B(p) => p,
            Lv::S(_) | Lv::L => return Err(self.mal("broadcast/permute of a non-array")),
        };
        let dst_strides = row_major_strides(&ty.shape);
        let shape = ty.shape.clone();
        let elem = ty.elem;
        self.emit_loop(0, ty.numel(), |g, i| {
            let b = &g.sc.b;
            let mut off = g.i64c(0);
            for d in 0..shape.len() {
                if strides[d] == 0 {
                    continue;
                }
                let q = b.build_int_unsigned_div(i, g.i64c(dst_strides[d]), "q")?;
                let idx = b.build_int_unsigned_rem(q, g.i64c(shape[d] as u64), "idx")?;
                let t = b.build_int_mul(idx, g.i64c(strides[d]), "t")?;
                off = b.build_int_add(off, t, "off")?;
            }
            let x = g.load_mem(g.elem_ptr(src, elem, off)?, elem)?;
            g.store_at(out, elem, i, x)
        })?;
        self.finish(rv, ty, out)
    }

    fn mask_at(&self, mask: Option<Value>, i: IntValue<'ctx>) -> R<Option<IntValue<'ctx>>> {
        mask.map(|m| self.elem_at(m, i).and_then(iv)).transpose()
    }

    fn emit_load(
        &mut self,
        od: &OpData,
        ptr: Value,
        mask: Option<Value>,
        other: Option<Value>,
    ) -> R<()> {
        let (rv, ty, out) = self.sink(od, 0)?;
        let elem = ty.elem;
        self.emit_loop(0, ty.numel(), |g, i| {
            let p = pv(g.elem_at(ptr, i)?)?;
            let x = match g.mask_at(mask, i)? {
                None => g.load_mem(p, elem)?,
                Some(m) => {
                    let o = match other {
                        Some(o) => g.elem_at(o, i)?,
                        None => g.sc.reg_ty(elem).const_zero(),
                    };
                    g.emit_guarded(m, |g| g.load_mem(p, elem), o)?
                }
            };
            g.store_at(out, elem, i, x)
        })?;
        self.finish(rv, ty, out)
    }

    fn emit_store(&mut self, ptr: Value, value: Value, mask: Option<Value>) -> R<()> {
        let ty = self.ty(value)?;
        let elem = ty.elem;
        self.emit_loop(0, ty.numel(), |g, i| {
            let p = pv(g.elem_at(ptr, i)?)?;
            let x = g.elem_at(value, i)?;
            match g.mask_at(mask, i)? {
                None => g.store_mem(p, elem, x),
                Some(m) => g.emit_if(m, |g| g.store_mem(p, elem, x)),
            }
        })
    }

    fn emit_atomic(
        &mut self,
        od: &OpData,
        op: Option<AtomicOp>,
        ptr: Value,
        cmp: Option<Value>,
        value: Value,
        mask: Option<Value>,
    ) -> R<()> {
        let (rv, ty, out) = self.sink(od, 0)?;
        let Elem::Scalar(dt) = ty.elem else {
            return Err(self.mal("atomic result is a pointer"));
        };
        if dt.is_bool() && op == Some(AtomicOp::Add) {
            return Err(self.unsup("atomic add on bool"));
        }
        let elem = ty.elem;
        self.emit_loop(0, ty.numel(), |g, i| {
            let p = pv(g.elem_at(ptr, i)?)?;
            let x = g.elem_at(value, i)?;
            let c = cmp.map(|c| g.elem_at(c, i)).transpose()?;
            let zero = g.sc.reg_ty(elem).const_zero();
            let old = match g.mask_at(mask, i)? {
                None => g.atomic_lane(op, dt, p, c, x)?,
                Some(m) => g.emit_guarded(m, |g| g.atomic_lane(op, dt, p, c, x), zero)?,
            };
            g.store_at(out, elem, i, old)
        })?;
        self.finish(rv, ty, out)
    }

    /// One atomic operation on `*p`; returns the old value (register form).
    fn atomic_lane(
        &mut self,
        op: Option<AtomicOp>,
        dt: DType,
        p: PointerValue<'ctx>,
        cmp: Option<BasicValueEnum<'ctx>>,
        x: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let sc = &self.sc;
        let ord = AtomicOrdering::SequentiallyConsistent;
        let bits_ty = match dt.bits() {
            8 => sc.cx.i8_type(),
            16 => sc.cx.i16_type(),
            32 => sc.cx.i32_type(),
            _ => sc.cx.i64_type(),
        };
        let to_bits = |v: BasicValueEnum<'ctx>| -> R<IntValue<'ctx>> {
            if dt.is_bool() {
                Ok(sc.b.build_int_z_extend(iv(v)?, bits_ty, "b8")?)
            } else if dt.is_float() {
                Ok(iv(sc.b.build_bit_cast(v, bits_ty, "bits")?)?)
            } else {
                iv(v)
            }
        };
        let from_bits = |v: IntValue<'ctx>| -> R<BasicValueEnum<'ctx>> {
            if dt.is_bool() {
                Ok(sc.b.build_int_compare(IntPredicate::NE, v, bits_ty.const_zero(), "b")?.into())
            } else if dt.is_float() {
                Ok(sc.b.build_bit_cast(v, sc.reg_ty(Elem::Scalar(dt)), "f")?)
            } else {
                Ok(v.into())
            }
        };
        if let Some(c) = cmp {
            let r = sc.b.build_cmpxchg(p, to_bits(c)?, to_bits(x)?, ord, ord)?;
            let old = iv(sc.b.build_extract_value(r, 0, "old")?)?;
            return from_bits(old);
        }
        let op = op.ok_or_else(|| self.mal("atomic without an operation"))?;
        let rmw = match (op, dt.is_float(), dt.is_signed_int(), dt.is_bool()) {
            (AtomicOp::Xchg, ..) => Some(AtomicRMWBinOp::Xchg),
            (_, true, ..) => None,
            (AtomicOp::Add, ..) => Some(AtomicRMWBinOp::Add),
            (AtomicOp::Max, _, _, true) => Some(AtomicRMWBinOp::Or),
            (AtomicOp::Min, _, _, true) => Some(AtomicRMWBinOp::And),
            (AtomicOp::Max, _, true, _) => Some(AtomicRMWBinOp::Max),
            (AtomicOp::Min, _, true, _) => Some(AtomicRMWBinOp::Min),
            (AtomicOp::Max, ..) => Some(AtomicRMWBinOp::UMax),
            (AtomicOp::Min, ..) => Some(AtomicRMWBinOp::UMin),
        };
        if let Some(rmw) = rmw {
            let old = sc.b.build_atomicrmw(rmw, p, to_bits(x)?, ord)?;
            return from_bits(old);
        }
        // Float add/max/min: a compare-and-swap loop computing the new value with tk's rules.
        let bop = match op {
            AtomicOp::Add => tk_ir::BinaryOp::Add,
            AtomicOp::Max => tk_ir::BinaryOp::Max,
            _ => tk_ir::BinaryOp::Min,
        };
        let init = iv(sc.b.build_load(bits_ty, p, "cur")?)?;
        if let Some(inst) = init.as_instruction() {
            let _ = inst.set_alignment(dt.size_bytes());
            let _ = inst.set_atomic_ordering(AtomicOrdering::Monotonic);
        }
        let pre = self.current()?;
        let lp = self.block("cas");
        let done = self.block("cas.done");
        let sc = &self.sc;
        sc.b.build_unconditional_branch(lp)?;
        sc.b.position_at_end(lp);
        let phi = sc.b.build_phi(bits_ty, "seen")?;
        let seen = iv(phi.as_basic_value())?;
        let old = from_bits(seen)?;
        let (new, _) = sc.binary(bop, dt, old, x)?;
        let r = sc.b.build_cmpxchg(p, seen, to_bits(new)?, ord, ord)?;
        let got = iv(sc.b.build_extract_value(r, 0, "got")?)?;
        let ok = iv(sc.b.build_extract_value(r, 1, "ok")?)?;
        phi.add_incoming(&[(&init, pre), (&got, lp)]);
        sc.b.build_conditional_branch(ok, done, lp)?;
        sc.b.position_at_end(done);
        Ok(old)
    }

    fn emit_reduce(&mut self, od: &OpData, kind: ReduceKind, axis: u8, value: Value) -> R<()> {
        let xty = self.ty(value)?;
        let dt = self.dtype(value)?;
        let (outer, n, inner) =
            geometry(&xty.shape, axis).ok_or_else(|| self.mal("reduce axis"))?;
        let (rv, ty, out) = self.sink(od, 0)?;
        let xe = xty.elem;
        let is_arg = matches!(kind, ReduceKind::Argmax | ReduceKind::Argmin);
        if kind == ReduceKind::Sum && dt.is_bool() {
            return Err(self.unsup("sum of bool"));
        }
        let acc_ty = if is_arg { self.sc.reg_ty(xe) } else { self.sc.acc_ty(dt) };
        let acc = self.ab.build_alloca(acc_ty, "acc")?;
        let best = self.ab.build_alloca(self.sc.cx.i32_type(), "best")?;
        let src = self.block_of(value)?;
        self.emit_loop(0, outer, |g, o| {
            g.emit_loop(0, inner, |g, j| {
                let b = &g.sc.b;
                let base =
                    b.build_int_add(b.build_int_mul(o, g.i64c(n * inner), "ob")?, j, "base")?;
                let x0 = g.load_mem(g.elem_ptr(src, xe, base)?, xe)?;
                let x0 = if is_arg { x0 } else { g.sc.to_acc(dt, x0)? };
                g.sc.b.build_store(acc, x0)?;
                g.sc.b.build_store(best, g.sc.cx.i32_type().const_zero())?;
                g.emit_loop(1, n, |g, k| {
                    let b = &g.sc.b;
                    let pos =
                        b.build_int_add(base, b.build_int_mul(k, g.i64c(inner), "ki")?, "pos")?;
                    let x = g.load_mem(g.elem_ptr(src, xe, pos)?, xe)?;
                    let cur = g.sc.b.build_load(acc_ty, acc, "acc")?;
                    if is_arg {
                        let better = iv(if kind == ReduceKind::Argmax {
                            g.sc.gt_nan_high(dt, x, cur)?
                        } else {
                            g.sc.lt_nan_low(dt, x, cur)?
                        })?;
                        let nv = g.sc.b.build_select(better, x, cur, "bv")?;
                        g.sc.b.build_store(acc, nv)?;
                        let i32t = g.sc.cx.i32_type();
                        let k32 = g.sc.b.build_int_truncate(k, i32t, "k")?;
                        let bi = g.sc.b.build_load(i32t, best, "best")?;
                        let ni = g.sc.b.build_select(better, k32.into(), bi, "bi")?;
                        g.sc.b.build_store(best, ni)?;
                    } else {
                        let x = g.sc.to_acc(dt, x)?;
                        let nv = g.sc.accumulate(kind, dt, cur, x)?;
                        g.sc.b.build_store(acc, nv)?;
                    }
                    Ok(())
                })?;
                let b = &g.sc.b;
                let oi = b.build_int_add(b.build_int_mul(o, g.i64c(inner), "oi")?, j, "oi")?;
                let r = if is_arg {
                    b.build_load(g.sc.cx.i32_type(), best, "best")?
                } else {
                    let a = b.build_load(acc_ty, acc, "acc")?;
                    g.sc.round_acc(dt, a)?
                };
                g.store_at(out, ty.elem, oi, r)
            })
        })?;
        self.finish(rv, ty, out)
    }

    pub(crate) fn block_of(&self, v: Value) -> R<PointerValue<'ctx>> {
        match self.get(v)? {
            Lv::B(p) => Ok(p),
            Lv::S(_) | Lv::L => Err(self.mal(format!("%{} should be an array", v.0))),
        }
    }

    /// `reduce_with` (fold) or `scan_with` (inclusive scan) with a combine region.
    fn emit_combine(
        &mut self,
        od: &OpData,
        axis: u8,
        value: Value,
        combine: RegionId,
        scan: bool,
    ) -> R<()> {
        let xty = self.ty(value)?;
        let (outer, n, inner) =
            geometry(&xty.shape, axis).ok_or_else(|| self.mal("reduce axis"))?;
        let (rv, ty, out) = self.sink(od, 0)?;
        let xe = xty.elem;
        let acc = self.ab.build_alloca(self.sc.reg_ty(xe), "acc")?;
        let src = self.block_of(value)?;
        self.emit_loop(0, outer, |g, o| {
            g.emit_loop(0, inner, |g, j| {
                let b = &g.sc.b;
                let base =
                    b.build_int_add(b.build_int_mul(o, g.i64c(n * inner), "ob")?, j, "base")?;
                let x0 = g.load_mem(g.elem_ptr(src, xe, base)?, xe)?;
                g.sc.b.build_store(acc, x0)?;
                if scan {
                    g.store_at(out, xe, base, x0)?;
                }
                g.emit_loop(1, n, |g, k| {
                    let b = &g.sc.b;
                    let pos =
                        b.build_int_add(base, b.build_int_mul(k, g.i64c(inner), "ki")?, "pos")?;
                    let x = g.load_mem(g.elem_ptr(src, xe, pos)?, xe)?;
                    let cur = g.sc.b.build_load(g.sc.reg_ty(xe), acc, "acc")?;
                    let ys = g.emit_region(combine, vec![Lv::S(cur), Lv::S(x)])?;
                    let y = match ys.as_slice() {
                        [Lv::S(y)] => *y,
                        _ => return Err(g.mal("combine must yield one scalar")),
                    };
                    g.sc.b.build_store(acc, y)?;
                    if scan {
                        g.store_at(out, xe, pos, y)?;
                    }
                    Ok(())
                })?;
                if !scan {
                    let b = &g.sc.b;
                    let oi = b.build_int_add(b.build_int_mul(o, g.i64c(inner), "oi")?, j, "oi")?;
                    let a = g.sc.b.build_load(g.sc.reg_ty(xe), acc, "acc")?;
                    g.store_at(out, xe, oi, a)?;
                }
                Ok(())
            })
        })?;
        self.finish(rv, ty, out)
    }

    fn emit_cumsum(&mut self, od: &OpData, axis: u8, value: Value, reverse: bool) -> R<()> {
        let xty = self.ty(value)?;
        let dt = self.dtype(value)?;
        if dt.is_bool() {
            return Err(self.unsup("cumsum of bool"));
        }
        let (outer, n, inner) =
            geometry(&xty.shape, axis).ok_or_else(|| self.mal("cumsum axis"))?;
        let (rv, ty, out) = self.sink(od, 0)?;
        let xe = xty.elem;
        let acc = self.ab.build_alloca(self.sc.reg_ty(xe), "acc")?;
        let src = self.block_of(value)?;
        self.emit_loop(0, outer, |g, o| {
            g.emit_loop(0, inner, |g, j| {
                let b = &g.sc.b;
                let base =
                    b.build_int_add(b.build_int_mul(o, g.i64c(n * inner), "ob")?, j, "base")?;
                let pos = |g: &Self, k: IntValue<'ctx>| -> R<IntValue<'ctx>> {
                    let b = &g.sc.b;
                    let k = if reverse { b.build_int_sub(g.i64c(n - 1), k, "rk")? } else { k };
                    Ok(b.build_int_add(base, b.build_int_mul(k, g.i64c(inner), "ki")?, "pos")?)
                };
                let p0 = pos(g, g.i64c(0))?;
                let x0 = g.load_mem(g.elem_ptr(src, xe, p0)?, xe)?;
                g.sc.b.build_store(acc, x0)?;
                g.store_at(out, xe, p0, x0)?;
                g.emit_loop(1, n, |g, k| {
                    let p = pos(g, k)?;
                    let x = g.load_mem(g.elem_ptr(src, xe, p)?, xe)?;
                    let cur = g.sc.b.build_load(g.sc.reg_ty(xe), acc, "acc")?;
                    let (y, _) = g.sc.binary(tk_ir::BinaryOp::Add, dt, cur, x)?;
                    g.sc.b.build_store(acc, y)?;
                    g.store_at(out, xe, p, y)
                })
            })
        })?;
        self.finish(rv, ty, out)
    }

    /// Stable insertion sort of each row (last axis); `k` keeps the first `k` (top-k).
    fn emit_sort(&mut self, od: &OpData, value: Value, k: Option<u32>, descending: bool) -> R<()> {
        let xty = self.ty(value)?;
        let dt = self.dtype(value)?;
        let n = *xty.shape.last().ok_or_else(|| self.mal("sort of a scalar"))? as u64;
        let keep = match k {
            Some(k) if k == 0 || k as u64 > n => {
                return Err(self.mal(format!("topk k = {k} of {n}")))
            }
            Some(k) => k as u64,
            None => n,
        };
        let rows = xty.numel() / n.max(1);
        let (vv, vty, vout) = self.sink(od, 0)?;
        let (iv_, ity, iout) = self.sink(od, 1)?;
        let xe = xty.elem;
        let ie = Elem::Scalar(DType::I32);
        let sv = self.alloc(xe, n)?;
        let si = self.alloc(ie, n)?;
        let jslot = self.ab.build_alloca(self.sc.cx.i64_type(), "j")?;
        let src = self.block_of(value)?;
        let i32t = self.sc.cx.i32_type();
        self.emit_loop(0, rows, |g, r| {
            let row = g.sc.b.build_int_mul(r, g.i64c(n), "row")?;
            g.emit_loop(0, n, |g, t| {
                let at = g.sc.b.build_int_add(row, t, "at")?;
                let x = g.load_mem(g.elem_ptr(src, xe, at)?, xe)?;
                g.store_at(sv, xe, t, x)?;
                let t32 = g.sc.b.build_int_truncate(t, i32t, "t")?;
                g.store_at(si, ie, t, t32.into())
            })?;
            g.emit_loop(1, n, |g, i| {
                let key = g.load_mem(g.elem_ptr(sv, xe, i)?, xe)?;
                let keyi = g.load_mem(g.elem_ptr(si, ie, i)?, ie)?;
                g.sc.b.build_store(jslot, i)?;
                let header = g.block("ins");
                let check = g.block("ins.check");
                let shift = g.block("ins.shift");
                let done = g.block("ins.done");
                g.sc.b.build_unconditional_branch(header)?;
                g.sc.b.position_at_end(header);
                let j = iv(g.sc.b.build_load(g.sc.cx.i64_type(), jslot, "j")?)?;
                let pos = g.sc.b.build_int_compare(IntPredicate::SGT, j, g.i64c(0), "pos")?;
                g.sc.b.build_conditional_branch(pos, check, done)?;
                g.sc.b.position_at_end(check);
                let jm = g.sc.b.build_int_sub(j, g.i64c(1), "jm")?;
                let prev = g.load_mem(g.elem_ptr(sv, xe, jm)?, xe)?;
                let before = iv(if descending {
                    g.sc.gt_nan_high(dt, key, prev)?
                } else {
                    g.sc.gt_nan_high(dt, prev, key)?
                })?;
                g.sc.b.build_conditional_branch(before, shift, done)?;
                g.sc.b.position_at_end(shift);
                g.store_at(sv, xe, j, prev)?;
                let pi = g.load_mem(g.elem_ptr(si, ie, jm)?, ie)?;
                g.store_at(si, ie, j, pi)?;
                g.sc.b.build_store(jslot, jm)?;
                g.sc.b.build_unconditional_branch(header)?;
                g.sc.b.position_at_end(done);
                let j = iv(g.sc.b.build_load(g.sc.cx.i64_type(), jslot, "j")?)?;
                g.store_at(sv, xe, j, key)?;
                g.store_at(si, ie, j, keyi)
            })?;
            let orow = g.sc.b.build_int_mul(r, g.i64c(keep), "orow")?;
            g.emit_loop(0, keep, |g, t| {
                let at = g.sc.b.build_int_add(orow, t, "at")?;
                let x = g.load_mem(g.elem_ptr(sv, xe, t)?, xe)?;
                g.store_at(vout, xe, at, x)?;
                let i = g.load_mem(g.elem_ptr(si, ie, t)?, ie)?;
                g.store_at(iout, ie, at, i)
            })
        })?;
        self.finish(vv, vty, vout)?;
        self.finish(iv_, ity, iout)
    }

    fn emit_histogram(
        &mut self,
        od: &OpData,
        value: Value,
        bins: u32,
        mask: Option<Value>,
    ) -> R<()> {
        let dt = self.dtype(value)?;
        if !dt.is_int() {
            return Err(self.unsup(format!("histogram of {dt}")));
        }
        let n = self.ty(value)?.numel();
        let (rv, ty, out) = self.sink(od, 0)?;
        let i8z = self.sc.cx.i8_type().const_zero();
        self.sc.b.build_memset(out, 4, i8z, self.i64c(bins as u64 * 4))?;
        let ie = Elem::Scalar(DType::I32);
        self.emit_loop(0, n, |g, i| {
            let x = iv(g.elem_at(value, i)?)?;
            let x64 = iv(g.sc.to_i64(dt, x.into())?)?;
            let b = &g.sc.b;
            let nb = g.i64c(bins as u64);
            let mut ok = if dt.is_signed_int() {
                let ge = b.build_int_compare(IntPredicate::SGE, x64, g.i64c(0), "ge")?;
                let lt = b.build_int_compare(IntPredicate::SLT, x64, nb, "lt")?;
                b.build_and(ge, lt, "in")?
            } else {
                b.build_int_compare(IntPredicate::ULT, x64, nb, "in")?
            };
            if let Some(m) = g.mask_at(mask, i)? {
                ok = g.sc.b.build_and(ok, m, "in")?;
            }
            g.emit_if(ok, |g| {
                let p = g.elem_ptr(out, ie, x64)?;
                let c = iv(g.load_mem(p, ie)?)?;
                let c1 = g.sc.b.build_int_add(c, g.sc.cx.i32_type().const_int(1, false), "c")?;
                g.store_mem(p, ie, c1.into())
            })
        })?;
        self.finish(rv, ty, out)
    }

    fn emit_for(
        &mut self,
        od: &OpData,
        lo: Value,
        hi: Value,
        step: Value,
        init: &[Value],
        body: RegionId,
    ) -> R<()> {
        let dt = self.dtype(lo)?;
        if !dt.is_int() {
            return Err(self.mal("for bounds must be integers"));
        }
        let signed = dt.is_signed_int();
        let (lo_v, hi_v, step_v) =
            (iv(self.scalar(lo)?)?, iv(self.scalar(hi)?)?, iv(self.scalar(step)?)?);
        let mut slots = Vec::with_capacity(init.len());
        for (i, &v) in init.iter().enumerate() {
            let r = self.res(od, i)?;
            let ty = self.ty(r)?;
            let slot = self.alloc(ty.elem, ty.numel())?;
            match self.get(v)? {
                // A fused initial value (`zeros(...)`) is computed straight into the slot.
                Lv::L => self.emit_mat_into(v, slot)?,
                lv => self.copy_into(slot, lv, ty)?,
            }
            slots.push((r, ty, slot));
        }
        let zero = step_v.get_type().const_zero();
        let bad_step = self.sc.b.build_int_compare(
            if signed { IntPredicate::SLE } else { IntPredicate::EQ },
            step_v,
            zero,
            "badstep",
        )?;
        self.trap_if(bad_step, TrapKind::NonPositiveStep, "`for` step is not positive".into())?;
        let pre = self.current()?;
        let header = self.block("for");
        let bodyb = self.block("for.body");
        let exit = self.block("for.end");
        self.sc.b.build_unconditional_branch(header)?;
        self.sc.b.position_at_end(header);
        let phi = self.sc.b.build_phi(lo_v.get_type(), "iv")?;
        let ivv = iv(phi.as_basic_value())?;
        let lt = if signed { IntPredicate::SLT } else { IntPredicate::ULT };
        let c = self.sc.b.build_int_compare(lt, ivv, hi_v, "c")?;
        self.sc.b.build_conditional_branch(c, bodyb, exit)?;
        self.sc.b.position_at_end(bodyb);
        let mut args = vec![Lv::S(ivv.into())];
        for &(_, ty, slot) in &slots {
            args.push(self.read_slot(slot, ty)?);
        }
        let ys = self.emit_region(body, args)?;
        if ys.len() != slots.len() {
            return Err(self.mal("for body yields the wrong number of values"));
        }
        // A yielded block that is another carried slot must be read before any slot is written.
        let slot_ptrs: Vec<PointerValue<'ctx>> = slots.iter().map(|s| s.2).collect();
        let mut staged = Vec::new();
        for (i, (&y, &(_, ty, slot))) in ys.iter().zip(&slots).enumerate() {
            if let Lv::B(p) = y {
                if p != slot && slot_ptrs.contains(&p) {
                    let tmp = self.alloc(ty.elem, ty.numel())?;
                    self.copy_into(tmp, y, ty)?;
                    staged.push((i, tmp));
                }
            }
        }
        for (i, (&y, &(_, ty, slot))) in ys.iter().zip(&slots).enumerate() {
            if !staged.iter().any(|s| s.0 == i) {
                self.copy_into(slot, y, ty)?;
            }
        }
        for &(i, tmp) in &staged {
            let (_, ty, slot) = slots[i];
            self.copy_into(slot, Lv::B(tmp), ty)?;
        }
        let name = if signed { "llvm.sadd.with.overflow" } else { "llvm.uadd.with.overflow" };
        let r = self.sc.intrinsic(name, &[lo_v.get_type().into()], &[ivv.into(), step_v.into()])?;
        let sv = r.into_struct_value();
        let next = iv(self.sc.b.build_extract_value(sv, 0, "next")?)?;
        let ov = iv(self.sc.b.build_extract_value(sv, 1, "ov")?)?;
        let latch = self.current()?;
        self.sc.b.build_conditional_branch(ov, exit, header)?;
        phi.add_incoming(&[(&lo_v, pre), (&next, latch)]);
        self.sc.b.position_at_end(exit);
        for (r, ty, slot) in slots {
            let lv = self.read_slot(slot, ty)?;
            self.set(r, lv)?;
        }
        Ok(())
    }

    fn emit_ifop(&mut self, od: &OpData, cond: Value, then_r: RegionId, else_r: RegionId) -> R<()> {
        let c = iv(self.scalar(cond)?)?;
        let mut slots = Vec::new();
        for i in 0..od.results.len() {
            let r = self.res(od, i)?;
            let ty = self.ty(r)?;
            let slot = self.alloc(ty.elem, ty.numel())?;
            slots.push((r, ty, slot));
        }
        let tb = self.block("if.then");
        let eb = self.block("if.else");
        let mb = self.block("if.end");
        self.sc.b.build_conditional_branch(c, tb, eb)?;
        for (bb, region) in [(tb, then_r), (eb, else_r)] {
            self.sc.b.position_at_end(bb);
            let ys = self.emit_region(region, Vec::new())?;
            if ys.len() != slots.len() {
                return Err(self.mal("if branch yields the wrong number of values"));
            }
            for (&y, &(_, ty, slot)) in ys.iter().zip(&slots) {
                self.copy_into(slot, y, ty)?;
            }
            self.sc.b.build_unconditional_branch(mb)?;
        }
        self.sc.b.position_at_end(mb);
        for (r, ty, slot) in slots {
            let lv = self.read_slot(slot, ty)?;
            self.set(r, lv)?;
        }
        Ok(())
    }
}
