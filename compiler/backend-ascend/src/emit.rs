//! Lowering of one kernel to Ascend C.
//!
//! # Value classes
//!
//! - **Scalars** become C++ variables on the scalar unit (`sN`); pointer scalars are an element
//!   offset (`oN`) from a pointer parameter's `GlobalTensor`.
//! - **Index blocks** (integer, bool and pointer blocks computed from `arange`, splats, program
//!   ids, parameters, and element-wise from integer/bool data tiles) are not materialised:
//!   [`Emitter::ix`] turns them into a C++ expression of one element at a symbolic index (reading
//!   the data tiles with `GetValue`, whose UB blocks are kept alive until the expression's last
//!   use), which is what address computation, masks, integer reductions and the scalar fallbacks
//!   need; a `[256, 256]` comparison of two loaded id vectors costs no UB. The contiguity
//!   analysis of `tk_ir::analysis` then decides whether a load or store moves whole rows with
//!   `DataCopy`/`DataCopyPad` or element by element on the scalar unit.
//! - **Tiles** (float blocks, and integer/bool blocks that hold data) live in UB: loads in `VECIN`
//!   queues, stored results in `VECOUT` queues (double-buffered when the code loops), everything
//!   else in one `VECCALC` `TBuf` placed by the static allocator of [`crate::layout`].
//! - On 910B, kernels whose block work is matrix products run on the cube core instead
//!   (`cube.rs`); ops without a vector form (cumsum, combine-function reductions and scans,
//!   histogram) run on the scalar unit and atomics become DMA atomics (`extra.rs`).
//!
//! # Structure of a kernel
//!
//! Program ids are folded onto the cores: `for (task = GetBlockIdx(); task < total; task +=
//! GetBlockNum())`. Ops that do not depend on the program id (loads of parameters the kernel never
//! stores to, masks, `device_assert`s on scalars) are hoisted out of that loop, so that e.g. the
//! RMSNorm weight row is read once per core instead of once per row.
//!
//! # Synchronisation
//!
//! Queue `EnQue`/`DeQue` order the copy-in → compute → copy-out pipes as in the canonical
//! samples; for `TBuf` tiles the emitter tracks, per tile, which pipe wrote it last and inserts a
//! `SetFlag`/`WaitFlag` pair (or `PipeBarrier<PIPE_V>` within the vector pipe) before a read by
//! another pipe. This is conservative and not checked by the simulator beyond flag pairing.

mod cube;
mod extra;

pub use cube::CubeUsage;

use crate::cxx::{self, ctype};
use crate::layout::{CalcAlloc, Layout, Liveness};
use crate::{AscendOptions, Soc};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use tk_diag::{Diagnostic, Span};
use tk_ir::analysis::{self, AxisInfoTable, ParamHints};
use tk_ir::{
    BinaryOp, CmpPred, DType, Elem, Function, Module, Op, OpId, ReduceKind, RegionId, Type,
    UnaryOp, Value, ValueDef,
};

type R<T> = Result<T, Box<Diagnostic>>;

/// What [`emit_kernel`] produces for one kernel.
pub struct Emitted {
    pub body: String,
    pub ub_bytes: u64,
    pub remarks: Vec<Diagnostic>,
    /// UB users, largest first: (span of the op, bytes, description).
    pub ub_users: Vec<(Span, u64, String)>,
    pub double_buffered: bool,
    /// The kernel runs on the cube core (`dot` through L1/L0/Mmad/Fixpipe); what it needs there.
    pub cube: Option<CubeUsage>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pipe {
    S,
    V,
    Mte2,
    Mte3,
}

impl Pipe {
    fn name(self) -> &'static str {
        match self {
            Pipe::S => "S",
            Pipe::V => "V",
            Pipe::Mte2 => "MTE2",
            Pipe::Mte3 => "MTE3",
        }
    }
}

#[derive(Clone, Debug)]
struct Tile {
    var: String,
    dtype: DType,
    layout: Layout,
    /// Byte offset in the calc buffer (None for queue tensors).
    calc_off: Option<u64>,
}

struct Queue {
    name: String,
    pos: &'static str,
    bytes: u64,
}

#[derive(Default)]
struct Scope {
    /// Tiles created in this scope (memoised splats, lazily materialised values) to forget at exit.
    memo: Vec<Value>,
    /// Queue tensors allocated in this scope: (queue, var) to free at exit.
    frees: Vec<(String, String)>,
}

struct Emitter<'a> {
    m: &'a Module,
    f: &'a Function,
    soc: Soc,
    info: AxisInfoTable,
    lv: Liveness,
    out: String,
    ind: usize,
    scal: HashMap<Value, String>,
    sptr: HashMap<Value, (usize, String)>,
    tiles: HashMap<Value, Tile>,
    pending_deque: HashMap<String, (String, DType)>,
    enqueued_out: HashSet<String>,
    out_queue_of: HashMap<String, String>,
    calc: CalcAlloc,
    queues: Vec<Queue>,
    ub_users: Vec<(Span, u64, String)>,
    remarks: Vec<Diagnostic>,
    scopes: Vec<Scope>,
    hoisted: HashSet<OpId>,
    written_params: HashSet<usize>,
    store_uses: HashMap<Value, Vec<OpId>>,
    /// Every op using a value.
    all_uses: HashMap<Value, Vec<OpId>>,
    /// Calc-buffer offsets of the tiles a lazy block reads.
    lazy_refs: HashMap<Value, Vec<u64>>,
    double_buffer: bool,
    looping: bool,
    pos: u32,
    region_end: u32,
    next: u32,
    // Synchronisation bookkeeping (see the module doc).
    epoch: HashMap<Pipe, u64>,
    synced: HashMap<(Pipe, Pipe), u64>,
    written: HashMap<String, (Pipe, u64)>,
    v_barrier: u64,
    pending_reads: Vec<String>,
    calc_dma_in_loop: bool,
    scratch: Option<String>,
    /// The next result tile may take the place of an operand dying at this op.
    reuse_ok: bool,
    /// The cube plan when the kernel runs on the AI Cube core.
    cube: Option<cube::Plan>,
    /// Cube operands loaded into L0A/L0B and waiting for their dot: value → (queue, tensor).
    cube_l0: HashMap<Value, (String, String)>,
    /// Accumulator chains started so far.
    cube_chains: HashMap<usize, cube::ChainVars>,
}

const MAX_QUEUES_PER_POS: usize = 4;

/// Emits the body of kernel `f` (everything inside the `extern "C"` function).
pub fn emit_kernel(
    m: &Module,
    f: &Function,
    opts: &AscendOptions,
    double_buffer: bool,
) -> R<Emitted> {
    let info = analysis::analyze(m, f, &ParamHints::none());
    let lv = Liveness::compute(f);
    let mut e = Emitter {
        m,
        f,
        soc: opts.soc,
        info,
        lv,
        out: String::new(),
        ind: 1,
        scal: HashMap::new(),
        sptr: HashMap::new(),
        tiles: HashMap::new(),
        pending_deque: HashMap::new(),
        enqueued_out: HashSet::new(),
        out_queue_of: HashMap::new(),
        calc: CalcAlloc::default(),
        queues: Vec::new(),
        ub_users: Vec::new(),
        remarks: Vec::new(),
        scopes: vec![Scope::default()],
        hoisted: HashSet::new(),
        written_params: HashSet::new(),
        store_uses: HashMap::new(),
        all_uses: HashMap::new(),
        lazy_refs: HashMap::new(),
        double_buffer,
        looping: false,
        pos: 0,
        region_end: u32::MAX,
        next: 0,
        epoch: HashMap::new(),
        synced: HashMap::new(),
        written: HashMap::new(),
        v_barrier: 0,
        pending_reads: Vec::new(),
        calc_dma_in_loop: false,
        scratch: None,
        reuse_ok: false,
        cube: None,
        cube_l0: HashMap::new(),
        cube_chains: HashMap::new(),
    };
    match e.plan_cube()? {
        Ok(plan) => e.cube = Some(plan),
        Err(why) => {
            let span = f
                .walk()
                .into_iter()
                .find(|&o| matches!(f.op(o).op, Op::Dot { .. }))
                .map(|o| f.op(o).span)
                .unwrap_or(f.span);
            e.cube_remark(&why, span);
        }
    }
    e.prepare()?;
    e.kernel()
}

fn err(code: &'static str, msg: impl Into<String>, span: Span) -> Box<Diagnostic> {
    Box::new(Diagnostic::error(code, msg, span))
}

impl<'a> Emitter<'a> {
    // ---- small utilities --------------------------------------------------------------------

    fn ty(&self, v: Value) -> &'a Type {
        self.m.ty(self.f.value_type(v))
    }

    fn dtype(&self, v: Value) -> R<DType> {
        match self.ty(v).elem {
            Elem::Scalar(d) => Ok(d),
            Elem::Ptr(_) => {
                Err(err("EA001", "internal: expected a number, found a pointer", self.f.span))
            }
        }
    }

    fn def_op(&self, v: Value) -> Option<OpId> {
        self.f.defining_op(v)
    }

    fn span_of(&self, v: Value) -> Span {
        self.def_op(v).map(|o| self.f.op(o).span).unwrap_or(self.f.span)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn line(&mut self, s: impl AsRef<str>) {
        for _ in 0..self.ind {
            self.out.push_str("    ");
        }
        self.out.push_str(s.as_ref());
        self.out.push('\n');
    }

    fn open(&mut self, s: impl AsRef<str>) {
        if s.as_ref().is_empty() {
            self.line("{");
        } else {
            self.line(format!("{} {{", s.as_ref()));
        }
        self.ind += 1;
    }

    fn close(&mut self) {
        self.ind -= 1;
        self.line("}");
    }

    fn remark(&mut self, code: &'static str, msg: impl Into<String>, span: Span) {
        self.remarks.push(Diagnostic::remark(code, msg, span));
    }

    fn vname(v: Value) -> String {
        format!("v{}", v.0)
    }

    // ---- preparation ------------------------------------------------------------------------

    fn prepare(&mut self) -> R<()> {
        for op in self.f.walk() {
            let od = self.f.op(op);
            for v in od.op.operands() {
                self.all_uses.entry(v).or_default().push(op);
            }
            match &od.op {
                Op::Store { ptr, value, .. } => {
                    self.store_uses.entry(*value).or_default().push(op);
                    if let Some(p) = self.ptr_base(*ptr) {
                        self.written_params.insert(p);
                    }
                }
                Op::Atomic { ptr, .. } | Op::AtomicCas { ptr, .. } => {
                    if let Some(p) = self.ptr_base(*ptr) {
                        self.written_params.insert(p);
                    }
                }
                _ => {}
            }
        }
        // Hoist program-id-invariant ops of the body out of the core loop.
        let mut variant: HashSet<Value> = HashSet::new();
        for &op in &self.f.region(self.f.body).ops {
            let od = self.f.op(op);
            let depends = od.op.operands().iter().any(|v| variant.contains(v));
            let kind_ok = match &od.op {
                Op::ProgramId { .. }
                | Op::Store { .. }
                | Op::Atomic { .. }
                | Op::AtomicCas { .. }
                | Op::Print { .. }
                | Op::For { .. }
                | Op::If { .. }
                | Op::Yield { .. }
                | Op::Call { .. } => false,
                Op::Load { ptr, .. } => {
                    self.ptr_base(*ptr).is_some_and(|p| !self.written_params.contains(&p))
                        && !self
                            .cube
                            .as_ref()
                            .is_some_and(|c| od.results.iter().any(|r| c.operands.contains_key(r)))
                }
                _ => true,
            };
            if depends || !kind_ok {
                variant.extend(od.results.iter().copied());
            } else if !matches!(od.op, Op::Yield { .. }) {
                self.hoisted.insert(op);
            }
        }
        Ok(())
    }

    /// The pointer parameter a pointer value is based on.
    fn ptr_base(&self, v: Value) -> Option<usize> {
        match self.f.value(v).def {
            ValueDef::Param(i) => Some(i as usize),
            ValueDef::Result { op, .. } => match &self.f.op(op).op {
                Op::AddPtr { ptr, .. } => self.ptr_base(*ptr),
                Op::Splat { value }
                | Op::Broadcast { value }
                | Op::ExpandDims { value, .. }
                | Op::Reshape { value }
                | Op::Permute { value, .. } => self.ptr_base(*value),
                _ => None,
            },
            ValueDef::RegionArg { .. } => None,
        }
    }

    // ---- the kernel ---------------------------------------------------------------------------

    fn kernel(mut self) -> R<Emitted> {
        let f = self.f;
        for (i, p) in f.params.iter().enumerate() {
            let t = self.m.ty(p.ty);
            match t.elem {
                Elem::Ptr(_) => {
                    self.sptr.insert(p.value, (i, "(int64_t)0".to_string()));
                }
                Elem::Scalar(_) => {
                    self.scal.insert(p.value, format!("p_{}", cxx::ident(&p.name)));
                }
            }
        }
        // Hoisted part, then the core loop.
        let hoisted: Vec<OpId> =
            f.region(f.body).ops.iter().copied().filter(|o| self.hoisted.contains(o)).collect();
        self.open("if (AscendC::GetBlockIdx() < tk_total)");
        self.scopes.push(Scope::default());
        for &op in &hoisted {
            self.pos = self.lv.pos[&op];
            self.region_end = u32::MAX;
            self.emit_op(op, true)?;
        }
        self.looping = true;
        self.open(
            "for (int64_t tk_task = AscendC::GetBlockIdx(); tk_task < tk_total; tk_task += AscendC::GetBlockNum())",
        );
        self.scopes.push(Scope::default());
        self.line("[[maybe_unused]] const int32_t pid0 = (int32_t)(tk_task % tk_grid0);");
        self.line(
            "[[maybe_unused]] const int32_t pid1 = (int32_t)((tk_task / tk_grid0) % tk_grid1);",
        );
        self.line("[[maybe_unused]] const int32_t pid2 = (int32_t)(tk_task / ((int64_t)tk_grid0 * tk_grid1));");
        let rest: Vec<OpId> =
            f.region(f.body).ops.iter().copied().filter(|o| !self.hoisted.contains(o)).collect();
        self.emit_ops(&rest, f.body, u32::MAX - 1)?;
        self.exit_scope();
        self.loop_end_sync();
        self.close();
        self.exit_scope();
        self.close();

        // Prologue: pipe, queues, calc buffer; assembled now that sizes are known.
        let mut pro = String::new();
        let w = &mut pro;
        let _ = writeln!(w, "    AscendC::TPipe tk_pipe;");
        let nbuf = if self.double_buffer { 2 } else { 1 };
        let mut total: u64 = 0;
        for q in &self.queues {
            let _ = writeln!(w, "    AscendC::TQue<AscendC::TPosition::{}, 1> {};", q.pos, q.name);
            let _ = writeln!(w, "    tk_pipe.InitBuffer({}, {nbuf}, {});", q.name, q.bytes);
            if matches!(q.pos, "VECIN" | "VECOUT") {
                total += q.bytes * nbuf;
            }
        }
        if self.calc.peak > 0 {
            let _ = writeln!(w, "    AscendC::TBuf<AscendC::TPosition::VECCALC> tk_calc;");
            let _ = writeln!(w, "    tk_pipe.InitBuffer(tk_calc, {});", self.calc.peak);
            total += self.calc.peak;
        }
        self.ub_users.sort_by_key(|u| std::cmp::Reverse(u.1));
        let body = finish_unused(&format!("{pro}{}", self.out));
        let cube = self.cube.as_ref().map(|p| Self::cube_usage(p, nbuf));
        Ok(Emitted {
            body,
            ub_bytes: total,
            remarks: self.remarks,
            ub_users: self.ub_users,
            double_buffered: self.double_buffer,
            cube,
        })
    }

    fn exit_scope(&mut self) {
        // DeQue whatever was loaded but never used, then free this scope's queue tensors.
        let sc = self.scopes.pop().unwrap_or_default();
        for (q, var) in &sc.frees {
            if let Some((qq, d)) = self.pending_deque.remove(var) {
                let ty = tile_ctype(d);
                self.line(format!("{var} = {qq}.DeQue<{ty}>();"));
            }
            self.line(format!("{q}.FreeTensor({var});"));
        }
        for v in sc.memo {
            self.tiles.remove(&v);
        }
    }

    fn emit_ops(&mut self, ops: &[OpId], region: RegionId, end: u32) -> R<()> {
        let _ = region;
        let saved_end = self.region_end;
        self.region_end = end;
        for &op in ops {
            self.pos = self.lv.pos[&op];
            if matches!(self.f.op(op).op, Op::Yield { .. }) {
                continue;
            }
            self.emit_op(op, false)?;
        }
        self.region_end = saved_end;
        Ok(())
    }

    /// Synchronisation at the end of a loop iteration: a later iteration's vector/scalar writes
    /// must not overtake this iteration's copy-out from TBuf tiles.
    fn loop_end_sync(&mut self) {
        if self.calc_dma_in_loop {
            self.line("AscendC::SetFlag<AscendC::HardEvent::MTE3_V>(0);");
            self.line("AscendC::WaitFlag<AscendC::HardEvent::MTE3_V>(0);");
            self.line("AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(0);");
            self.line("AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(0);");
            self.calc_dma_in_loop = false;
        }
    }

    // ---- synchronisation ------------------------------------------------------------------------

    fn did(&mut self, var: &str, pipe: Pipe) {
        let e = self.epoch.entry(pipe).or_insert(0);
        *e += 1;
        let e = *e;
        self.written.insert(var.to_string(), (pipe, e));
    }

    fn work(&mut self, pipe: Pipe) {
        *self.epoch.entry(pipe).or_insert(0) += 1;
    }

    fn read(&mut self, var: &str, reader: Pipe) {
        let Some(&(w, e)) = self.written.get(var) else { return };
        if w == reader {
            if reader == Pipe::V && e > self.v_barrier {
                self.line("AscendC::PipeBarrier<AscendC::PIPE_V>();");
                self.v_barrier = self.epoch.get(&Pipe::V).copied().unwrap_or(0);
            }
            return;
        }
        let s = self.synced.get(&(w, reader)).copied().unwrap_or(0);
        if e > s {
            let ev = format!("{}_{}", w.name(), reader.name());
            self.line(format!("AscendC::SetFlag<AscendC::HardEvent::{ev}>(0);"));
            self.line(format!("AscendC::WaitFlag<AscendC::HardEvent::{ev}>(0);"));
            let now = self.epoch.get(&w).copied().unwrap_or(0);
            self.synced.insert((w, reader), now);
        }
    }

    fn flush_reads(&mut self, reader: Pipe) {
        let reads = std::mem::take(&mut self.pending_reads);
        for r in reads {
            self.read(&r, reader);
        }
    }

    // ---- tiles --------------------------------------------------------------------------------

    /// The C++ variable of a tile, DeQue'ing it first if its copy-in is still in flight.
    fn use_tile(&mut self, var: &str) {
        if let Some((q, d)) = self.pending_deque.remove(var) {
            let ty = tile_ctype(d);
            self.line(format!("{var} = {q}.DeQue<{ty}>();"));
            // DeQue waits for the copy-in.
            self.written.remove(var);
        }
    }

    fn new_queue(&mut self, pos: &'static str, bytes: u64, span: Span) -> Option<String> {
        let n = self.queues.iter().filter(|q| q.pos == pos).count();
        if n >= MAX_QUEUES_PER_POS {
            return None;
        }
        let name = format!("tk_q{}{}", if pos == "VECIN" { "in" } else { "out" }, n);
        self.queues.push(Queue { name: name.clone(), pos, bytes });
        let nbuf = if self.double_buffer { 2 } else { 1 };
        self.ub_users.push((span, bytes * nbuf, format!("{name} ({pos}, {nbuf} buffer(s))")));
        Some(name)
    }

    /// Declares a tile in the calc buffer, live from now through `until`.
    fn calc_tile(
        &mut self,
        var: &str,
        d: DType,
        layout: &Layout,
        until: u32,
        span: Span,
        what: &str,
    ) -> Tile {
        let bytes = layout.alloc_bytes(d);
        let reuse = std::mem::take(&mut self.reuse_ok);
        let off = self.calc.alloc(bytes, self.pos, until, reuse);
        let ty = tile_ctype(d);
        let elems = layout.alloc_elems(d);
        self.line(format!(
            "AscendC::LocalTensor<{ty}> {var} = tk_calc.GetWithOffset<{ty}>({elems}, {off});"
        ));
        self.ub_users.push((span, bytes, what.to_string()));
        Tile { var: var.to_string(), dtype: d, layout: layout.clone(), calc_off: Some(off) }
    }

    /// A temporary calc tile that lives only during the current op.
    fn temp_tile(&mut self, d: DType, layout: &Layout, span: Span, what: &str) -> Tile {
        let var = self.fresh("tk_tmp");
        let pos = self.pos;
        self.calc_tile(&var, d, layout, pos, span, what)
    }

    /// Creates the tile of an op result. Results that are stored in the same region go to a
    /// `VECOUT` queue (so copy-out overlaps the next iteration's compute), others to the calc buffer.
    fn result_tile(&mut self, v: Value, d: DType) -> R<Tile> {
        let span = self.span_of(v);
        self.check_storage(d, span)?;
        let layout = Layout::of(&self.ty(v).shape);
        let var = Self::vname(v);
        let op = self.def_op(v);
        let here = op.and_then(|o| self.lv.op_region.get(&o).copied());
        let stored_here = self
            .store_uses
            .get(&v)
            .is_some_and(|uses| uses.iter().any(|u| self.lv.op_region.get(u).copied() == here));
        let hoisted = op.is_some_and(|o| self.hoisted.contains(&o));
        if stored_here && self.looping && !hoisted && d != DType::Bool {
            let bytes = layout.alloc_bytes(d);
            if let Some(q) = self.new_queue("VECOUT", bytes, span) {
                let ty = tile_ctype(d);
                self.line(format!("AscendC::LocalTensor<{ty}> {var} = {q}.AllocTensor<{ty}>();"));
                if let Some(sc) = self.scopes.last_mut() {
                    sc.frees.push((q.clone(), var.clone()));
                }
                self.out_queue_of.insert(var.clone(), q);
                let t = Tile { var, dtype: d, layout, calc_off: None };
                self.tiles.insert(v, t.clone());
                return Ok(t);
            }
        }
        let until =
            if hoisted { u32::MAX } else { self.lv.last_use.get(&v).copied().unwrap_or(self.pos) };
        let t = self.calc_tile(
            &var,
            d,
            &layout,
            until,
            span,
            &format!("result of `{}`", self.op_name(v)),
        );
        self.tiles.insert(v, t.clone());
        Ok(t)
    }

    fn op_name(&self, v: Value) -> &'static str {
        self.def_op(v).map(|o| self.f.op(o).op.mnemonic()).unwrap_or("argument")
    }

    fn check_storage(&self, d: DType, span: Span) -> R<()> {
        if d == DType::BF16 && !self.soc.has_bf16() {
            return Err(err(
                "EA010",
                format!(
                    "{} has no bf16 support: this block cannot be stored or computed",
                    self.soc
                ),
                span,
            ));
        }
        Ok(())
    }

    /// Checks that the vector unit can compute on `d` (after bf16 is widened to f32).
    fn check_compute(&self, d: DType, what: &str, span: Span) -> R<()> {
        self.check_storage(d, span)?;
        match d {
            DType::F32 | DType::F16 | DType::BF16 => Ok(()),
            _ => Err(Box::new(
                Diagnostic::error(
                    "EA011",
                    format!(
                        "the {} vector unit cannot compute `{what}` on {d} blocks",
                        self.soc
                    ),
                    span,
                )
                .with_note("vector arithmetic on Ascend exists for f16 and f32 (bf16 is computed through f32)")
                .with_help("cast the block to f32 first"),
            )),
        }
    }

    /// The float value of a splat-like block (`splat`, or a `broadcast` of one), if it is one.
    fn splat_scalar(&mut self, v: Value) -> R<Option<String>> {
        if self.tiles.contains_key(&v) {
            return Ok(None);
        }
        let Some(op) = self.def_op(v) else { return Ok(None) };
        match &self.f.op(op).op {
            Op::Splat { value } => Ok(Some(self.ix(*value, &[])?)),
            Op::Broadcast { value } | Op::ExpandDims { value, .. } | Op::Reshape { value } => {
                self.splat_scalar(*value)
            }
            _ => Ok(None),
        }
    }

    /// The tile holding `v`, materialising splats and index blocks on demand.
    fn tile(&mut self, v: Value) -> R<Tile> {
        if let Some(t) = self.tiles.get(&v).cloned() {
            self.use_tile(&t.var);
            return Ok(t);
        }
        let d = self.dtype(v)?;
        let span = self.span_of(v);
        let layout = Layout::of(&self.ty(v).shape);
        let until = self.region_end;
        if let Some(s) = self.splat_scalar(v)? {
            let var = self.fresh("tk_splat");
            let t = self.calc_tile(&var, d, &layout, until, span, "broadcast scalar");
            let ty = ctype(d);
            self.line(format!("AscendC::Duplicate<{ty}>({var}, ({ty})({s}), {});", layout.count()));
            self.did(&var, Pipe::V);
            self.memo(v, t.clone());
            return Ok(t);
        }
        // Index blocks: a few vector fast paths, else the scalar unit.
        if let Some(op) = self.def_op(v) {
            if let Op::Cast { value } = &self.f.op(op).op {
                if let Some(Op::Arange { start, .. }) =
                    self.def_op(*value).map(|o| &self.f.op(o).op)
                {
                    if layout.rows == 1 && matches!(d, DType::F32 | DType::F16 | DType::I32) {
                        let var = self.fresh("tk_iota");
                        let t = self.calc_tile(&var, d, &layout, until, span, "index vector");
                        let ty = ctype(d);
                        self.line(format!(
                            "AscendC::CreateVecIndex<{ty}>({var}, ({ty})({start}), {});",
                            layout.cols
                        ));
                        self.did(&var, Pipe::V);
                        self.memo(v, t.clone());
                        return Ok(t);
                    }
                }
            }
            if d == DType::Bool && layout.rows == 1 {
                if let Some(len) = self.row_len(v, &[])? {
                    return self.prefix_mask_tile(v, &layout, &len, until, span);
                }
            }
        }
        let var = self.fresh("tk_mat");
        let t = self.calc_tile(&var, d, &layout, until, span, "materialised index block");
        self.remark(
            "RA003",
            format!("{d} block computed element by element on the scalar unit"),
            span,
        );
        self.scalar_fill(&t, v)?;
        self.memo(v, t.clone());
        Ok(t)
    }

    fn memo(&mut self, v: Value, t: Tile) {
        self.tiles.insert(v, t);
        if let Some(sc) = self.scopes.last_mut() {
            sc.memo.push(v);
        }
    }

    /// `mask[j] = j < len` as a UB bit mask: an index vector compared with the length.
    fn prefix_mask_tile(
        &mut self,
        v: Value,
        layout: &Layout,
        len: &str,
        until: u32,
        span: Span,
    ) -> R<Tile> {
        let n256 = layout.cols.div_ceil(64) * 64;
        let iota = self.fresh("tk_iota");
        let il = Layout::of(&[n256]);
        let it = self.calc_tile(&iota, DType::F32, &il, until, span, "index vector for a mask");
        self.line(format!("AscendC::CreateVecIndex<float>({iota}, 0.0f, {n256});"));
        self.did(&it.var, Pipe::V);
        let var = self.fresh("tk_mask");
        let t = self.calc_tile(&var, DType::Bool, layout, until, span, "mask bits");
        self.read(&iota, Pipe::V);
        self.line(format!(
            "AscendC::Compares({var}, {iota}, (float)({len}), AscendC::CMPMODE::LT, {n256});"
        ));
        self.did(&var, Pipe::V);
        self.memo(v, t.clone());
        Ok(t)
    }

    /// Fills `t` with the elements of index block `v`, one `SetValue` each.
    fn scalar_fill(&mut self, t: &Tile, v: Value) -> R<()> {
        let shape = self.ty(v).shape.clone();
        let idx: Vec<String> = (0..shape.len()).map(|d| format!("tk_i{d}")).collect();
        let e = self.ix(v, &idx)?;
        let flat = flat_expr(&t.layout, &idx);
        self.flush_reads(Pipe::S);
        self.read(&t.var.clone(), Pipe::S);
        self.open_loops(&shape, &idx);
        if t.dtype == DType::Bool {
            self.line(format!(
                "const uint32_t tk_b = {flat}; const uint8_t tk_old = {v}.GetValue(tk_b / 8); {v}.SetValue(tk_b / 8, (uint8_t)(({e}) ? (tk_old | (1u << (tk_b % 8))) : (tk_old & ~(1u << (tk_b % 8)))));",
                v = t.var
            ));
        } else {
            let ty = ctype(t.dtype);
            self.line(format!("{}.SetValue({flat}, ({ty})({e}));", t.var));
        }
        self.close_loops(shape.len());
        self.did(&t.var.clone(), Pipe::S);
        Ok(())
    }

    fn open_loops(&mut self, shape: &[u32], idx: &[String]) {
        for (d, n) in shape.iter().enumerate() {
            self.open(format!("for (int32_t {i} = 0; {i} < {n}; ++{i})", i = idx[d]));
        }
    }

    fn close_loops(&mut self, n: usize) {
        for _ in 0..n {
            self.close();
        }
    }

    // ---- index expressions --------------------------------------------------------------------

    /// A C++ expression for element `idx` of integer/bool/pointer value `v` (pointers: the
    /// element offset from their parameter). Reads of tiles are recorded in `pending_reads`.
    fn ix(&mut self, v: Value, idx: &[String]) -> R<String> {
        if let Some(s) = self.scal.get(&v) {
            return Ok(s.clone());
        }
        if let Some((_, o)) = self.sptr.get(&v) {
            return Ok(o.clone());
        }
        if let Some(t) = self.tiles.get(&v).cloned() {
            self.use_tile(&t.var);
            self.pending_reads.push(t.var.clone());
            let flat = flat_expr(&t.layout, idx);
            return Ok(if t.dtype == DType::Bool {
                format!("((({}.GetValue(({flat}) / 8) >> (({flat}) % 8)) & 1u) != 0)", t.var)
            } else {
                format!("{}.GetValue({flat})", t.var)
            });
        }
        let Some(op) = self.def_op(v) else {
            return Err(err(
                "EA002",
                "internal: value without a definition in the Ascend backend",
                self.f.span,
            ));
        };
        let od = self.f.op(op);
        let span = od.span;
        let ty = self.ty(v);
        let rd = ty.elem.dtype();
        let cty = rd.map(ctype).unwrap_or("int64_t");
        Ok(match &od.op {
            Op::Const { value } => cxx::literal(rd.unwrap_or(DType::I64), *value),
            Op::ProgramId { axis } => format!("pid{axis}"),
            Op::NumPrograms { axis } => format!("tk_grid{axis}"),
            Op::Arange { start, .. } => {
                format!("((int32_t)({start} + {}))", idx.first().map(String::as_str).unwrap_or("0"))
            }
            Op::Splat { value } => self.ix(*value, &[])?,
            Op::Broadcast { value } => {
                let os = self.ty(*value).shape.clone();
                let oi: Vec<String> = os
                    .iter()
                    .zip(idx)
                    .zip(&ty.shape)
                    .map(|((&o, i), &n)| if o == 1 && n != 1 { "0".to_string() } else { i.clone() })
                    .collect();
                self.ix(*value, &oi)?
            }
            Op::ExpandDims { value, axis } => {
                let mut oi = idx.to_vec();
                if (*axis as usize) < oi.len() {
                    oi.remove(*axis as usize);
                }
                self.ix(*value, &oi)?
            }
            Op::Reshape { value } => {
                let os = self.ty(*value).shape.clone();
                let flat = logical_flat(&ty.shape, idx);
                let mut oi = Vec::new();
                let mut stride: u64 = os.iter().map(|&x| u64::from(x)).product();
                for &n in &os {
                    stride /= u64::from(n);
                    oi.push(format!("((int32_t)((({flat}) / {stride}) % {n}))"));
                }
                self.ix(*value, &oi)?
            }
            Op::Permute { value, perm } => {
                let mut oi = vec![String::from("0"); idx.len()];
                for (i, &p) in perm.iter().enumerate() {
                    if let (Some(slot), Some(x)) = (oi.get_mut(p as usize), idx.get(i)) {
                        *slot = x.clone();
                    }
                }
                self.ix(*value, &oi)?
            }
            Op::AddPtr { ptr, offset } => {
                let p = self.ix(*ptr, idx)?;
                let o = self.ix(*offset, idx)?;
                format!("((int64_t)({p}) + (int64_t)({o}))")
            }
            Op::Unary { op: u, value } => {
                let a = self.ix(*value, idx)?;
                let d = rd.unwrap_or(DType::I64);
                match u {
                    UnaryOp::Neg if d.is_float() => float_expr(d, &format!("-(float)({a})")),
                    UnaryOp::Neg => format!("(({cty})(-({a})))"),
                    UnaryOp::Not if d == DType::Bool => format!("(!({a}))"),
                    UnaryOp::Not => format!("(({cty})(~({a})))"),
                    UnaryOp::Abs if d.is_float() => float_expr(
                        d,
                        &format!("((float)({a}) < 0.0f ? -(float)({a}) : (float)({a}))"),
                    ),
                    UnaryOp::Abs => format!("(({a}) < 0 ? ({cty})(-({a})) : ({a}))"),
                    _ => {
                        return Err(err(
                            "EA020",
                            format!(
                                "`{}` of a scalar is not supported in this position on Ascend",
                                u.name()
                            ),
                            span,
                        ))
                    }
                }
            }
            Op::Binary { op: b, lhs, rhs } => {
                let a = self.ix(*lhs, idx)?;
                let c = self.ix(*rhs, idx)?;
                let d = rd.unwrap_or(DType::I64);
                binary_expr(*b, d, &a, &c).ok_or_else(|| {
                    err(
                        "EA021",
                        format!("`{}` on {d} is not supported by the Ascend backend", b.name()),
                        span,
                    )
                })?
            }
            Op::Cmp { pred, lhs, rhs } => {
                let a = self.ix(*lhs, idx)?;
                let c = self.ix(*rhs, idx)?;
                let ld = self.dtype(*lhs)?;
                let (a, c) = if ld.is_float() && ld != DType::F64 {
                    (format!("(float)({a})"), format!("(float)({c})"))
                } else {
                    (a, c)
                };
                format!("(({a}) {} ({c}))", cmp_op(*pred))
            }
            Op::Select { cond, on_true, on_false } => {
                let c = self.ix(*cond, idx)?;
                let a = self.ix(*on_true, idx)?;
                let b = self.ix(*on_false, idx)?;
                format!("(({c}) ? ({a}) : ({b}))")
            }
            Op::Cast { value } => {
                let a = self.ix(*value, idx)?;
                let from = self.dtype(*value)?;
                cast_expr(from, rd.unwrap_or(DType::I64), &a)
            }
            _ => {
                return Err(err(
                    "EA022",
                    format!(
                        "internal: `{}` has no per-element form in the Ascend backend",
                        od.op.mnemonic()
                    ),
                    span,
                ))
            }
        })
    }

    /// Per-row number of leading `true`s of a mask whose rows are prefixes (`arange < n`,
    /// `and`s of those, and row-constant conditions), as a C++ expression; `None` if the mask is
    /// not of that form. `rows` are the index expressions of the leading dimensions.
    fn row_len(&mut self, mask: Value, rows: &[String]) -> R<Option<String>> {
        let shape = self.ty(mask).shape.clone();
        let cols = *shape.last().unwrap_or(&1);
        let last = |t: &AxisInfoTable, v: Value, which: u8| -> u64 {
            t.get(v)
                .and_then(|i| match which {
                    0 => i.contiguity.last().copied(),
                    _ => i.constancy.last().copied(),
                })
                .unwrap_or(1)
        };
        let mut at0 = rows.to_vec();
        at0.push("0".to_string());
        if shape.is_empty() {
            let c = self.ix(mask, &[])?;
            return Ok(Some(format!("(({c}) ? (int64_t)1 : (int64_t)0)")));
        }
        if last(&self.info, mask, 1) >= u64::from(cols) {
            let c = self.ix(mask, &at0)?;
            return Ok(Some(format!("(({c}) ? (int64_t){cols} : (int64_t)0)")));
        }
        let Some(op) = self.def_op(mask) else { return Ok(None) };
        match self.f.op(op).op.clone() {
            Op::Cmp { pred, lhs, rhs } => {
                // Normalise to `run < bound` / `run <= bound`.
                let (run, bound, inclusive) = match pred {
                    CmpPred::Lt => (lhs, rhs, false),
                    CmpPred::Le => (lhs, rhs, true),
                    CmpPred::Gt => (rhs, lhs, false),
                    CmpPred::Ge => (rhs, lhs, true),
                    _ => return Ok(None),
                };
                if !self.dtype(run)?.is_int() {
                    return Ok(None);
                }
                if last(&self.info, run, 0) < u64::from(cols)
                    || last(&self.info, bound, 1) < u64::from(cols)
                {
                    return Ok(None);
                }
                let r0 = self.ix(run, &at0)?;
                let b0 = self.ix(bound, &at0)?;
                let plus = if inclusive { " + 1" } else { "" };
                Ok(Some(format!("tk_clamp_len((int64_t)({b0}) - (int64_t)({r0}){plus}, {cols})")))
            }
            Op::Binary { op: BinaryOp::And, lhs, rhs } => {
                let (Some(a), Some(b)) = (self.row_len(lhs, rows)?, self.row_len(rhs, rows)?)
                else {
                    return Ok(None);
                };
                Ok(Some(format!("tk_min_len({a}, {b})")))
            }
            Op::Broadcast { value } => {
                let os = self.ty(value).shape.clone();
                if os.last() != shape.last() {
                    return Ok(None);
                }
                let oi: Vec<String> = os[..os.len() - 1]
                    .iter()
                    .zip(rows)
                    .zip(&shape)
                    .map(|((&o, i), &n)| if o == 1 && n != 1 { "0".to_string() } else { i.clone() })
                    .collect();
                self.row_len(value, &oi)
            }
            Op::ExpandDims { value, axis } => {
                if axis as usize >= shape.len() - 1 {
                    return Ok(None);
                }
                let mut oi = rows.to_vec();
                oi.remove(axis as usize);
                self.row_len(value, &oi)
            }
            _ => Ok(None),
        }
    }

    // ---- ops ----------------------------------------------------------------------------------

    fn emit_op(&mut self, op: OpId, hoisted: bool) -> R<()> {
        let od = self.f.op(op);
        let span = od.span;
        let results = od.results.clone();
        let opk = od.op.clone();
        // Scalars and index blocks.
        if let Some(&r) = results.first() {
            let ty = self.ty(r);
            let lazy = match ty.elem {
                Elem::Ptr(_) => true,
                Elem::Scalar(d) => !ty.is_scalar() && self.is_index_op(&opk, d),
            };
            if lazy && !ty.is_scalar() {
                self.keep_lazy_refs(r, &opk);
                return Ok(());
            }
            if ty.is_scalar()
                && !matches!(
                    opk,
                    Op::For { .. }
                        | Op::If { .. }
                        | Op::Load { .. }
                        | Op::Reduce { .. }
                        | Op::ReduceWith { .. }
                        | Op::Atomic { .. }
                        | Op::AtomicCas { .. }
                        | Op::Call { .. }
                )
            {
                return self.emit_scalar(op, r);
            }
        }
        let _ = hoisted;
        if let Some(plan) = &self.cube {
            match &opk {
                Op::Load { ptr, mask, .. } if plan.operands.contains_key(&results[0]) => {
                    return self.emit_cube_load(op, *ptr, *mask, results[0]);
                }
                Op::Dot { a, b, .. } if plan.dots.contains_key(&op) => {
                    return self.emit_cube_dot(op, *a, *b);
                }
                Op::Cast { .. } if plan.casts.contains_key(&results[0]) => return Ok(()),
                Op::Store { ptr, value, mask } => {
                    if let Some(c) = self.cube_store_chain(*value) {
                        return self.emit_cube_store(op, *ptr, *value, *mask, c);
                    }
                }
                _ => {}
            }
        }
        match opk {
            Op::Load { ptr, mask, other } => self.emit_load(op, ptr, mask, other, results[0]),
            Op::Store { ptr, value, mask } => self.emit_store(op, ptr, value, mask),
            Op::Splat { .. } | Op::Broadcast { .. } if self.splat_scalar(results[0])?.is_some() => Ok(()),
            Op::Broadcast { value } => self.emit_broadcast(results[0], value, span),
            Op::ExpandDims { value, .. } | Op::Reshape { value } => self.emit_reshape(results[0], value, span),
            Op::Permute { .. } => {
                let d = self.dtype(results[0])?;
                let t = self.result_tile(results[0], d)?;
                self.remark("RA004", "permute moves elements one by one on the scalar unit", span);
                self.scalar_copy(&t, results[0])
            }
            Op::Unary { op: u, value } => self.emit_unary(results[0], u, value, span),
            Op::Binary { op: b, lhs, rhs } => self.emit_binary(results[0], b, lhs, rhs, span),
            Op::Fma { a, b, c } => {
                let d = self.dtype(results[0])?;
                self.check_compute(d, "fma", span)?;
                let t = self.result_tile(results[0], d)?;
                let ta = self.tile(a)?;
                let tb = self.tile(b)?;
                let tc = self.tile(c)?;
                self.remark("RA005", "fma is a Mul then an Add on the vector unit (two roundings)", span);
                self.vec(&format!("AscendC::Mul({}, {}, {}, {})", t.var, ta.var, tb.var, t.layout.count()), &[&ta.var, &tb.var], &t.var);
                self.vec(&format!("AscendC::Add({}, {}, {}, {})", t.var, t.var, tc.var, t.layout.count()), &[&t.var, &tc.var], &t.var);
                Ok(())
            }
            Op::Cmp { pred, lhs, rhs } => self.emit_cmp(results[0], pred, lhs, rhs, span),
            Op::Select { cond, on_true, on_false } => self.emit_select(results[0], cond, on_true, on_false, span),
            Op::Cast { value } if self.fused_cast(results[0], value) => {
                // Read element by element by the reductions that use it: keep the source tile
                // alive until the last of them.
                if let Some(off) = self.tiles.get(&value).and_then(|t| t.calc_off) {
                    let until = self.lv.last_use.get(&results[0]).copied().unwrap_or(self.pos);
                    self.calc.extend(off, until);
                }
                Ok(())
            }
            Op::Cast { value } => self.emit_cast(results[0], value, span),
            Op::Reduce { kind, axis, value } => self.emit_reduce(results[0], kind, axis, value, span),
            Op::TopK { value, k } => self.emit_select_rows(&results, value, k, true, span),
            Op::Sort { value, descending } => {
                let n = *self.ty(value).shape.last().unwrap_or(&1);
                self.emit_select_rows(&results, value, n, descending, span)
            }
            Op::Dot { a, b, acc, .. } => self.emit_dot(results[0], a, b, acc, span),
            Op::Cumsum { axis, value, reverse } => {
                self.emit_fold(op, results[0], axis, value, None, true, reverse)
            }
            Op::ReduceWith { axis, value, combine } => {
                self.emit_fold(op, results[0], axis, value, Some(combine), false, false)
            }
            Op::ScanWith { axis, value, combine } => {
                self.emit_fold(op, results[0], axis, value, Some(combine), true, false)
            }
            Op::Histogram { value, bins, mask } => {
                self.emit_histogram(op, results[0], value, bins, mask)
            }
            Op::Atomic { op: aop, ptr, value, mask } => {
                self.emit_atomic(op, Some(aop), ptr, value, mask)
            }
            Op::AtomicCas { ptr, value, mask, .. } => self.emit_atomic(op, None, ptr, value, mask),
            Op::For { lo, hi, step, init, body } => self.emit_for(op, lo, hi, step, &init, body, &results),
            Op::If { cond, then_body, else_body } => self.emit_if(op, cond, then_body, else_body, &results),
            Op::DeviceAssert { cond, message } => {
                let msg = cxx::string_literal(&message);
                if self.ty(cond).is_scalar() {
                    let c = self.ix(cond, &[])?;
                    self.flush_reads(Pipe::S);
                    self.line(format!("TK_DEVICE_ASSERT({c}, {msg});"));
                } else {
                    let shape = self.ty(cond).shape.clone();
                    let idx: Vec<String> = (0..shape.len()).map(|d| format!("tk_i{d}")).collect();
                    let c = self.ix(cond, &idx)?;
                    self.flush_reads(Pipe::S);
                    self.open_loops(&shape, &idx);
                    self.line(format!("TK_DEVICE_ASSERT({c}, {msg});"));
                    self.close_loops(shape.len());
                }
                Ok(())
            }
            Op::Print { .. } => {
                self.remark("RA006", "print is ignored by the Ascend backend", span);
                Ok(())
            }
            Op::Yield { .. } => Ok(()),
            other => Err(Box::new(
                Diagnostic::error(
                    "EA030",
                    format!("`{}` is not supported by the Ascend backend yet", other.mnemonic()),
                    span,
                )
                .with_note("supported: element-wise math, loads/stores, reductions and scans (also with combine functions), topk, sort, histogram, dot, atomic add/max/min, for, if"),
            )),
        }
    }

    /// A lazy block reads the tiles of its operands (directly or through lazy operands) wherever
    /// it is used: those tiles' calc blocks must live until its last use.
    fn keep_lazy_refs(&mut self, r: Value, op: &Op) {
        let until = self.lv.last_use.get(&r).copied().unwrap_or(self.pos);
        let mut refs = Vec::new();
        for v in op.operands() {
            if let Some(off) = self.tiles.get(&v).and_then(|t| t.calc_off) {
                refs.push(off);
            }
            if let Some(rs) = self.lazy_refs.get(&v) {
                refs.extend(rs.iter().copied());
            }
        }
        for &off in &refs {
            self.calc.extend(off, until);
        }
        if !refs.is_empty() {
            self.lazy_refs.insert(r, refs);
        }
    }

    /// A cast of a bool/integer tile to an integer dtype whose only users are integer
    /// reductions in the same region (e.g. `sum(mask as i32, axis)`): the reductions run on the
    /// scalar unit anyway, so they read the source tile through the cast instead of a
    /// materialised copy, which for counting masks would be 32 times the size of the bits.
    fn fused_cast(&self, r: Value, value: Value) -> bool {
        let (Ok(rd), Ok(vd)) = (self.dtype(r), self.dtype(value)) else { return false };
        if rd.is_float() || rd == DType::Bool || vd.is_float() || self.ty(r).is_scalar() {
            return false;
        }
        if !self.tiles.contains_key(&value) {
            return false;
        }
        let here = self.def_op(r).and_then(|o| self.lv.op_region.get(&o).copied());
        let uses = self.all_uses.get(&r).map(Vec::as_slice).unwrap_or(&[]);
        !uses.is_empty()
            && uses.iter().all(|&u| {
                matches!(
                    self.f.op(u).op,
                    Op::Reduce { kind: ReduceKind::Sum | ReduceKind::Max | ReduceKind::Min, .. }
                ) && self.lv.op_region.get(&u).copied() == here
            })
    }

    /// True if an op producing a `d` block can stay an index expression.
    fn is_index_op(&self, op: &Op, d: DType) -> bool {
        if d.is_float() {
            return false;
        }
        // Integer and bool data tiles count too: the element expression reads them with
        // GetValue (their calc blocks are kept alive, see `keep_lazy_refs`), which is what the
        // scalar unit would do to materialise the result anyway, without the memory of e.g. a
        // [256, 256] comparison of two broadcast vectors.
        let operands_lazy = op.operands().iter().all(|&v| {
            let t = self.ty(v);
            t.is_scalar()
                || match t.elem {
                    Elem::Ptr(_) => true,
                    Elem::Scalar(od) => {
                        !od.is_float() && (self.tiles.contains_key(&v) || self.is_lazy_value(v))
                    }
                }
        });
        matches!(
            op,
            Op::Arange { .. }
                | Op::Splat { .. }
                | Op::Broadcast { .. }
                | Op::ExpandDims { .. }
                | Op::Reshape { .. }
                | Op::Permute { .. }
                | Op::Unary { .. }
                | Op::Binary { .. }
                | Op::Cmp { .. }
                | Op::Select { .. }
                | Op::Cast { .. }
                | Op::AddPtr { .. }
        ) && operands_lazy
    }

    fn is_lazy_value(&self, v: Value) -> bool {
        if self.tiles.contains_key(&v) {
            return false;
        }
        match self.f.value(v).def {
            ValueDef::Param(_) => true,
            ValueDef::RegionArg { .. } => self.scal.contains_key(&v),
            ValueDef::Result { op, .. } => {
                let o = &self.f.op(op).op;
                match self.ty(v).elem {
                    Elem::Ptr(_) => true,
                    Elem::Scalar(d) => self.ty(v).is_scalar() || self.is_index_op(o, d),
                }
            }
        }
    }

    fn emit_scalar(&mut self, op: OpId, r: Value) -> R<()> {
        let od = self.f.op(op);
        let ty = self.ty(r);
        if let Elem::Ptr(_) = ty.elem {
            let base = self.ptr_base(r).ok_or_else(|| {
                err("EA003", "pointer does not derive from one kernel parameter", od.span)
            })?;
            let e = self.ix_def(r)?;
            let var = format!("o{}", r.0);
            self.flush_reads(Pipe::S);
            self.line(format!("@@U:{var}@@const int64_t {var} = {e};"));
            self.sptr.insert(r, (base, var));
            return Ok(());
        }
        let d = self.dtype(r)?;
        let var = format!("s{}", r.0);
        let cty = ctype(d);
        match &od.op {
            Op::Const { .. } | Op::ProgramId { .. } | Op::NumPrograms { .. } => {
                let e = self.ix_def(r)?;
                self.scal.insert(r, e);
                return Ok(());
            }
            Op::Unary { op: u, value } if d.is_float() && u.float_only() => {
                let a = self.ix(*value, &[])?;
                self.flush_reads(Pipe::S);
                return self.scalar_via_vector(&var, d, *u, &a, od.span, r);
            }
            _ => {}
        }
        let e = self.ix_def(r)?;
        self.flush_reads(Pipe::S);
        self.line(format!("@@U:{var}@@const {cty} {var} = {e};"));
        self.scal.insert(r, var);
        Ok(())
    }

    /// The per-element expression of `v` from its defining op (ignoring any variable bound to it).
    fn ix_def(&mut self, v: Value) -> R<String> {
        let saved_s = self.scal.remove(&v);
        let saved_p = self.sptr.remove(&v);
        let r = self.ix(v, &[]);
        if let Some(s) = saved_s {
            self.scal.insert(v, s);
        }
        if let Some(p) = saved_p {
            self.sptr.insert(v, p);
        }
        r
    }

    /// A transcendental of a scalar: the scalar unit has none, so it runs as an 8-lane vector op
    /// on a scratch block.
    fn scalar_via_vector(
        &mut self,
        var: &str,
        d: DType,
        u: UnaryOp,
        a: &str,
        span: Span,
        r: Value,
    ) -> R<()> {
        let scr = self.scratch(span);
        let steps = unary_steps(u).ok_or_else(|| {
            err("EA023", format!("`{}` is not supported by the Ascend backend yet", u.name()), span)
        })?;
        self.read(&scr, Pipe::V);
        self.line(format!("AscendC::Duplicate<float>({scr}, (float)({a}), 8);"));
        self.did(&scr, Pipe::V);
        for s in steps {
            self.read(&scr, Pipe::V);
            self.line(format!("{};", step_call(&s, "float", &scr, &scr, 8)));
            self.did(&scr, Pipe::V);
        }
        self.read(&scr, Pipe::S);
        let cty = ctype(d);
        self.line(format!("@@U:{var}@@const {cty} {var} = ({cty})({scr}.GetValue(0));"));
        self.scal.insert(r, var.to_string());
        Ok(())
    }

    fn scratch(&mut self, span: Span) -> String {
        if let Some(s) = &self.scratch {
            return s.clone();
        }
        // Declared at kernel scope so that every use can share it.
        let off = self.calc.alloc(256, 0, u32::MAX, false);
        self.ub_users.push((span, 256, "scalar scratch".to_string()));
        let decl = format!(
            "        AscendC::LocalTensor<float> tk_scr = tk_calc.GetWithOffset<float>(64, {off});\n"
        );
        // Insert right after the `if` that opens the kernel body (first line of `out`).
        let first_nl = self.out.find('\n').map(|i| i + 1).unwrap_or(0);
        self.out.insert_str(first_nl, &decl);
        self.scratch = Some("tk_scr".to_string());
        "tk_scr".to_string()
    }

    /// Emits one vector instruction: syncs its inputs, records its output.
    fn vec(&mut self, call: &str, inputs: &[&str], output: &str) {
        for i in inputs {
            self.read(i, Pipe::V);
        }
        // Writing a tile another pipe still reads is ordered by the queues or loop-end flags.
        self.line(format!("{call};"));
        self.did(output, Pipe::V);
    }

    fn emit_load(
        &mut self,
        op: OpId,
        ptr: Value,
        mask: Option<Value>,
        other: Option<Value>,
        r: Value,
    ) -> R<()> {
        let span = self.f.op(op).span;
        let ty = self.ty(r).clone();
        let d = self.dtype(r)?;
        let base = self.ptr_base(ptr).ok_or_else(|| {
            err("EA003", "the pointer of this load does not derive from one kernel parameter", span)
        })?;
        let g = self.gvar(base);
        if ty.is_scalar() {
            let off = self.ix(ptr, &[])?;
            let val = if d == DType::Bool {
                format!("({g}.GetValue({off}) != 0)")
            } else {
                format!("{g}.GetValue({off})")
            };
            let e = match mask {
                Some(mk) => {
                    let c = self.ix(mk, &[])?;
                    let o = match other {
                        Some(o) => self.ix(o, &[])?,
                        None => cxx::literal(d, tk_ir::ConstValue::Int(0)),
                    };
                    format!("(({c}) ? ({val}) : ({o}))")
                }
                None => val,
            };
            self.flush_reads(Pipe::S);
            let var = format!("s{}", r.0);
            self.line(format!("@@U:{var}@@const {} {var} = {e};", ctype(d)));
            self.scal.insert(r, var);
            return Ok(());
        }
        self.check_storage(d, span)?;
        if d == DType::Bool {
            return Err(err(
                "EA031",
                "loading bool blocks is not supported by the Ascend backend yet",
                span,
            ));
        }
        let layout = Layout::of(&ty.shape);
        let cols = layout.cols;
        let esz = d.size_bytes();
        let per_blk = 32 / esz;
        // Storage: a VECIN queue inside the core loop, else the calc buffer.
        let hoisted = self.hoisted.contains(&op);
        let var = Self::vname(r);
        let cty = ctype(d);
        let mut queue = None;
        if self.looping && !hoisted {
            queue = self.new_queue("VECIN", layout.alloc_bytes(d), span);
        }
        let tile = match &queue {
            Some(q) => {
                self.line(format!("AscendC::LocalTensor<{cty}> {var} = {q}.AllocTensor<{cty}>();"));
                if let Some(sc) = self.scopes.last_mut() {
                    sc.frees.push((q.clone(), var.clone()));
                }
                Tile { var: var.clone(), dtype: d, layout: layout.clone(), calc_off: None }
            }
            None => {
                let until = if hoisted {
                    u32::MAX
                } else {
                    self.lv.last_use.get(&r).copied().unwrap_or(self.pos)
                };
                if self.looping {
                    self.calc_dma_in_loop = true;
                }
                self.calc_tile(&var, d, &layout, until, span, "loaded block")
            }
        };
        self.tiles.insert(r, tile.clone());
        let rank = ty.shape.len();
        let rows_idx: Vec<String> = (0..rank - 1).map(|i| format!("tk_r{i}")).collect();
        let contiguous = cols == 1
            || self.info.get(ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1)
                >= u64::from(cols);
        let len = match mask {
            None => Some(format!("(int64_t){cols}")),
            Some(mk) => self.row_len(mk, &rows_idx)?,
        };
        let other_s = match other {
            Some(o) => self.splat_scalar(o)?.map(Some),
            None => Some(None),
        };
        if let (true, Some(len), Some(other_s)) = (contiguous, len.clone(), other_s) {
            let mut at0 = rows_idx.clone();
            at0.push("0".to_string());
            let addr = self.ix(ptr, &at0)?;
            self.flush_reads(Pipe::S);
            if mask.is_some() {
                if let Some(o) = &other_s {
                    self.line(format!(
                        "AscendC::Duplicate<{cty}>({var}, ({cty})({o}), {});",
                        layout.count()
                    ));
                    self.did(&var, Pipe::V);
                    self.read(&var, Pipe::Mte2);
                }
            }
            self.open("");
            self.open_loops(&ty.shape[..rank - 1], &rows_idx);
            let row = row_offset(&layout, &rows_idx);
            let dst = if row == "0" { var.clone() } else { format!("{var}[{row}]") };
            let full_aligned = mask.is_none() && (u64::from(cols) * u64::from(esz)) % 32 == 0;
            if full_aligned {
                self.line(format!("AscendC::DataCopy({dst}, {g}[{addr}], {cols});"));
            } else if self.soc.has_datacopypad() {
                self.line(format!("const int64_t tk_len = {len};"));
                let pad = match &other_s {
                    Some(o) if mask.is_some() => format!(
                        "AscendC::DataCopyPadExtParams<{cty}>(true, 0, tk_rpad(tk_len, {per_blk}), ({cty})({o}))"
                    ),
                    _ => format!("AscendC::DataCopyPadExtParams<{cty}>(false, 0, 0, ({cty})(0))"),
                };
                self.open("if (tk_len > 0)");
                self.line(format!(
                    "AscendC::DataCopyPad({dst}, {g}[{addr}], AscendC::DataCopyExtParams(1, (uint32_t)(tk_len * {esz}), 0, 0, 0), {pad});"
                ));
                self.close();
            } else {
                self.remark(
                    "RA002",
                    format!("{} has no DataCopyPad: the unaligned tail of this load is read on the scalar unit", self.soc),
                    span,
                );
                self.line(format!("const int64_t tk_len = {len};"));
                self.line(format!("const int64_t tk_full = tk_len / {per_blk} * {per_blk};"));
                self.line(format!(
                    "if (tk_full > 0) AscendC::DataCopy({dst}, {g}[{addr}], (uint32_t)tk_full);"
                ));
                self.line("AscendC::SetFlag<AscendC::HardEvent::MTE2_S>(0);");
                self.line("AscendC::WaitFlag<AscendC::HardEvent::MTE2_S>(0);");
                self.line(format!(
                    "for (int64_t tk_j = tk_full; tk_j < tk_len; ++tk_j) {dst}.SetValue((uint32_t)tk_j, {g}.GetValue({addr} + tk_j));"
                ));
            }
            self.close_loops(rank - 1);
            self.close();
            self.work(Pipe::Mte2);
            if !full_aligned && !self.soc.has_datacopypad() {
                self.did(&var, Pipe::S);
            } else {
                self.did(&var, Pipe::Mte2);
            }
        } else {
            // Gather on the scalar unit.
            self.remark(
                "RA001",
                if contiguous {
                    "masked load whose mask is not a per-row prefix: lowered to scalar GM reads".to_string()
                } else {
                    "load is not contiguous along its last dimension: lowered to scalar GM reads (gather fallback)".to_string()
                },
                span,
            );
            let idx: Vec<String> = (0..rank).map(|i| format!("tk_i{i}")).collect();
            let addr = self.ix(ptr, &idx)?;
            let m = match mask {
                Some(mk) => Some(self.ix(mk, &idx)?),
                None => None,
            };
            let o = match other {
                Some(o) => {
                    if self.dtype(o)?.is_float()
                        && !self.tiles.contains_key(&o)
                        && self.splat_scalar(o)?.is_none()
                    {
                        let t = self.tile(o)?;
                        self.pending_reads.push(t.var.clone());
                        format!("{}.GetValue({})", t.var, flat_expr(&t.layout, &idx))
                    } else if let Some(s) = self.splat_scalar(o)? {
                        s
                    } else {
                        self.ix(o, &idx)?
                    }
                }
                None => cxx::literal(d, tk_ir::ConstValue::Int(0)),
            };
            self.flush_reads(Pipe::S);
            let flat = flat_expr(&layout, &idx);
            self.open_loops(&ty.shape, &idx);
            match m {
                Some(m) => self.line(format!(
                    "{var}.SetValue({flat}, ({m}) ? {g}.GetValue({addr}) : ({cty})({o}));"
                )),
                None => self.line(format!("{var}.SetValue({flat}, {g}.GetValue({addr}));")),
            }
            self.close_loops(rank);
            self.did(&var, Pipe::S);
        }
        if let Some(q) = queue {
            self.line(format!("{q}.EnQue({var});"));
            self.pending_deque.insert(var.clone(), (q, d));
            self.written.remove(&var);
        }
        Ok(())
    }

    fn gvar(&self, param: usize) -> String {
        format!("g_{}", cxx::ident(&self.f.params[param].name))
    }

    fn emit_store(&mut self, op: OpId, ptr: Value, value: Value, mask: Option<Value>) -> R<()> {
        let span = self.f.op(op).span;
        let base = self.ptr_base(ptr).ok_or_else(|| {
            err(
                "EA003",
                "the pointer of this store does not derive from one kernel parameter",
                span,
            )
        })?;
        let g = self.gvar(base);
        let ty = self.ty(value).clone();
        let d = self.dtype(value)?;
        if ty.is_scalar() {
            let off = self.ix(ptr, &[])?;
            let v = self.ix(value, &[])?;
            let v = if d == DType::Bool { format!("(uint8_t)({v})") } else { v };
            let c = match mask {
                Some(mk) => Some(self.ix(mk, &[])?),
                None => None,
            };
            self.flush_reads(Pipe::S);
            match c {
                Some(c) => self.line(format!("if ({c}) {g}.SetValue({off}, {v});")),
                None => self.line(format!("{g}.SetValue({off}, {v});")),
            }
            return Ok(());
        }
        if d == DType::Bool {
            return Err(err(
                "EA031",
                "storing bool blocks is not supported by the Ascend backend yet",
                span,
            ));
        }
        let t = self.tile(value)?;
        // A tile computed into a VECOUT queue goes through EnQue/DeQue (V -> MTE3 order).
        if let Some(q) = self.out_queue_of.get(&t.var).cloned() {
            if self.enqueued_out.insert(t.var.clone()) {
                let cty = ctype(d);
                self.line(format!("{q}.EnQue({});", t.var));
                self.line(format!("{} = {q}.DeQue<{cty}>();", t.var));
                self.written.remove(&t.var);
            }
        } else if self.looping {
            self.calc_dma_in_loop = true;
        }
        let layout = t.layout.clone();
        let cols = layout.cols;
        let esz = d.size_bytes();
        let per_blk = 32 / esz;
        let rank = ty.shape.len();
        let rows_idx: Vec<String> = (0..rank - 1).map(|i| format!("tk_r{i}")).collect();
        let contiguous = cols == 1
            || self.info.get(ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1)
                >= u64::from(cols);
        let len = match mask {
            None => Some(format!("(int64_t){cols}")),
            Some(mk) => self.row_len(mk, &rows_idx)?,
        };
        if let (true, Some(len)) = (contiguous, len) {
            let mut at0 = rows_idx.clone();
            at0.push("0".to_string());
            let addr = self.ix(ptr, &at0)?;
            self.flush_reads(Pipe::S);
            self.read(&t.var, Pipe::Mte3);
            self.open("");
            self.open_loops(&ty.shape[..rank - 1], &rows_idx);
            let row = row_offset(&layout, &rows_idx);
            let src = if row == "0" { t.var.clone() } else { format!("{}[{row}]", t.var) };
            let full_aligned = mask.is_none() && (u64::from(cols) * u64::from(esz)) % 32 == 0;
            if full_aligned {
                self.line(format!("AscendC::DataCopy({g}[{addr}], {src}, {cols});"));
            } else if self.soc.has_datacopypad() {
                self.line(format!("const int64_t tk_len = {len};"));
                self.line(format!(
                    "if (tk_len > 0) AscendC::DataCopyPad({g}[{addr}], {src}, AscendC::DataCopyExtParams(1, (uint32_t)(tk_len * {esz}), 0, 0, 0));"
                ));
            } else {
                self.remark(
                    "RA002",
                    format!("{} has no DataCopyPad: the unaligned tail of this store is written on the scalar unit", self.soc),
                    span,
                );
                self.line(format!("const int64_t tk_len = {len};"));
                self.line(format!("const int64_t tk_full = tk_len / {per_blk} * {per_blk};"));
                self.line(format!(
                    "if (tk_full > 0) AscendC::DataCopy({g}[{addr}], {src}, (uint32_t)tk_full);"
                ));
                self.line("AscendC::SetFlag<AscendC::HardEvent::V_S>(0);");
                self.line("AscendC::WaitFlag<AscendC::HardEvent::V_S>(0);");
                self.line(format!(
                    "for (int64_t tk_j = tk_full; tk_j < tk_len; ++tk_j) {g}.SetValue({addr} + tk_j, {src}.GetValue((uint32_t)tk_j));"
                ));
            }
            self.close_loops(rank - 1);
            self.close();
            self.work(Pipe::Mte3);
        } else {
            self.remark(
                "RA001",
                "store is not a contiguous per-row prefix: lowered to scalar GM writes (scatter fallback)",
                span,
            );
            let idx: Vec<String> = (0..rank).map(|i| format!("tk_i{i}")).collect();
            let addr = self.ix(ptr, &idx)?;
            let m = match mask {
                Some(mk) => Some(self.ix(mk, &idx)?),
                None => None,
            };
            self.pending_reads.push(t.var.clone());
            self.flush_reads(Pipe::S);
            let flat = flat_expr(&layout, &idx);
            self.open_loops(&ty.shape, &idx);
            match m {
                Some(m) => {
                    self.line(format!("if ({m}) {g}.SetValue({addr}, {}.GetValue({flat}));", t.var))
                }
                None => self.line(format!("{g}.SetValue({addr}, {}.GetValue({flat}));", t.var)),
            }
            self.close_loops(rank);
        }
        Ok(())
    }

    fn emit_broadcast(&mut self, r: Value, value: Value, span: Span) -> R<()> {
        let d = self.dtype(r)?;
        let os = self.ty(value).shape.clone();
        let rs = self.ty(r).shape.clone();
        let src = self.tile(value)?;
        let t = self.result_tile(r, d)?;
        let cty = ctype(d);
        let rank = rs.len();
        if rank >= 2 && os[rank - 1] == rs[rank - 1] && os[..rank - 1].iter().all(|&x| x == 1) {
            // [1, C] -> [R, C]: copy the row.
            self.read(&src.var, Pipe::V);
            for row in 0..t.layout.rows {
                let off = row * t.layout.pitch;
                self.line(format!(
                    "AscendC::Muls<{cty}>({}[{off}], {}, ({cty})(1.0f), {});",
                    t.var, src.var, t.layout.cols
                ));
            }
            self.did(&t.var, Pipe::V);
            return Ok(());
        }
        if rank >= 1 && os[rank - 1] == 1 && rs[rank - 1] != 1 && os[..rank - 1] == rs[..rank - 1] {
            // [R, 1] -> [R, C]: one Duplicate per row of the row's scalar.
            self.read(&src.var, Pipe::S);
            self.open(format!("for (uint32_t tk_r = 0; tk_r < {}; ++tk_r)", t.layout.rows));
            self.line(format!(
                "const {cty} tk_s = {}.GetValue(tk_r * {});",
                src.var, src.layout.pitch
            ));
            self.line(format!(
                "AscendC::Duplicate<{cty}>({}[tk_r * {}], tk_s, {});",
                t.var, t.layout.pitch, t.layout.cols
            ));
            self.close();
            self.did(&t.var, Pipe::V);
            return Ok(());
        }
        self.remark("RA004", "broadcast moves elements one by one on the scalar unit", span);
        self.scalar_copy(&t, r)
    }

    /// Copies element by element: `t[i] = value-of(r's operand at the mapped index)`.
    fn scalar_copy(&mut self, t: &Tile, r: Value) -> R<()> {
        let shape = self.ty(r).shape.clone();
        let idx: Vec<String> = (0..shape.len()).map(|d| format!("tk_i{d}")).collect();
        // Evaluate the defining op's per-element expression with float operands read from tiles.
        let e = self.ix_def_tiles(r, &idx)?;
        let flat = flat_expr(&t.layout, &idx);
        self.flush_reads(Pipe::S);
        self.read(&t.var.clone(), Pipe::S);
        self.open_loops(&shape, &idx);
        self.line(format!("{}.SetValue({flat}, {e});", t.var));
        self.close_loops(shape.len());
        self.did(&t.var.clone(), Pipe::S);
        Ok(())
    }

    /// Like [`Self::ix`] on the defining op of `r` (a data movement op), reading float operands
    /// from their tiles.
    fn ix_def_tiles(&mut self, r: Value, idx: &[String]) -> R<String> {
        let op = self.def_op(r).ok_or_else(|| err("EA002", "internal: no op", self.f.span))?;
        let operand = self.f.op(op).op.operands()[0];
        if !self.tiles.contains_key(&operand) && self.dtype(operand)?.is_float() {
            self.tile(operand)?;
        }
        let t = self.tiles.remove(&r);
        let res = self.ix(r, idx);
        if let Some(t) = t {
            self.tiles.insert(r, t);
        }
        res
    }

    fn emit_reshape(&mut self, r: Value, value: Value, span: Span) -> R<()> {
        let d = self.dtype(r)?;
        let lr = Layout::of(&self.ty(r).shape);
        let src = self.tile(value)?;
        if src.layout.rows == lr.rows && src.layout.cols == lr.cols && src.layout.pitch == lr.pitch
        {
            // Same rows in UB: an alias, which keeps the storage alive as long as it is used.
            if let Some(off) = src.calc_off {
                let until = self.lv.last_use.get(&r).copied().unwrap_or(self.pos);
                self.calc.extend(off, until);
            }
            let mut t = src.clone();
            t.layout = lr;
            self.tiles.insert(r, t);
            return Ok(());
        }
        let t = self.result_tile(r, d)?;
        self.remark(
            "RA004",
            "reshape changes the row layout: elements move one by one on the scalar unit",
            span,
        );
        self.scalar_copy(&t, r)
    }

    /// bf16 operands are widened to f32 temporaries; returns the tile to compute on.
    fn compute_operand(&mut self, v: Value, span: Span) -> R<Tile> {
        let t = self.tile(v)?;
        if t.dtype != DType::BF16 {
            return Ok(t);
        }
        let w = self.temp_tile(DType::F32, &t.layout, span, "bf16 widened to f32");
        self.vec(
            &format!(
                "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_NONE, {})",
                w.var,
                t.var,
                t.layout.count()
            ),
            &[&t.var],
            &w.var,
        );
        Ok(w)
    }

    /// The tile a result is computed into (an f32 temporary for a bf16 result), and a closure
    /// step to narrow it back.
    fn compute_result(&mut self, r: Value, d: DType, span: Span) -> R<(Tile, Option<Tile>)> {
        let t = self.result_tile(r, d)?;
        if d == DType::BF16 {
            let w = self.temp_tile(DType::F32, &t.layout, span, "bf16 result computed in f32");
            Ok((w, Some(t)))
        } else {
            Ok((t, None))
        }
    }

    /// [`Self::compute_result`] for an element-wise op: the result may overwrite an operand
    /// that dies here.
    fn compute_result_in_place(
        &mut self,
        r: Value,
        d: DType,
        span: Span,
    ) -> R<(Tile, Option<Tile>)> {
        self.reuse_ok = d != DType::BF16;
        let res = self.compute_result(r, d, span);
        self.reuse_ok = false;
        res
    }

    fn narrow(&mut self, w: &Tile, fin: Option<Tile>) {
        if let Some(t) = fin {
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_RINT, {})",
                    t.var,
                    w.var,
                    t.layout.count()
                ),
                &[&w.var],
                &t.var,
            );
        }
    }

    fn emit_unary(&mut self, r: Value, u: UnaryOp, value: Value, span: Span) -> R<()> {
        let d = self.dtype(r)?;
        self.check_compute(d, u.name(), span)?;
        let steps = unary_steps(u).ok_or_else(|| {
            err("EA023", format!("`{}` is not supported by the Ascend backend yet", u.name()), span)
        })?;
        let src = self.compute_operand(value, span)?;
        let (w, fin) = self.compute_result_in_place(r, d, span)?;
        let n = w.layout.count();
        let mut cur = src.var.clone();
        let wty = ctype(w.dtype);
        for s in steps {
            let call = step_call(&s, wty, &w.var, &cur, n);
            let c = cur.clone();
            self.vec(&call, &[&c], &w.var);
            cur = w.var.clone();
        }
        self.narrow(&w, fin);
        Ok(())
    }

    fn emit_binary(&mut self, r: Value, b: BinaryOp, lhs: Value, rhs: Value, span: Span) -> R<()> {
        let d = self.dtype(r)?;
        if !d.is_float() {
            // Integer data blocks: int32 Add/Sub/Mul/Max/Min on the vector unit, else scalar.
            let t = self.result_tile(r, d)?;
            let vec_ok = d == DType::I32
                && matches!(
                    b,
                    BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min
                );
            if vec_ok {
                let a = self.tile(lhs)?;
                let c = self.tile(rhs)?;
                let api = api_name(b);
                self.vec(
                    &format!(
                        "AscendC::{api}({}, {}, {}, {})",
                        t.var,
                        a.var,
                        c.var,
                        t.layout.count()
                    ),
                    &[&a.var, &c.var],
                    &t.var,
                );
                return Ok(());
            }
            self.remark(
                "RA003",
                format!("`{}` on {d} blocks runs on the scalar unit", b.name()),
                span,
            );
            let shape = self.ty(r).shape.clone();
            let idx: Vec<String> = (0..shape.len()).map(|i| format!("tk_i{i}")).collect();
            let a = self.ix(lhs, &idx)?;
            let c = self.ix(rhs, &idx)?;
            let e = binary_expr(b, d, &a, &c)
                .ok_or_else(|| err("EA021", format!("`{}` on {d}", b.name()), span))?;
            self.flush_reads(Pipe::S);
            let flat = flat_expr(&t.layout, &idx);
            self.open_loops(&shape, &idx);
            self.line(format!("{}.SetValue({flat}, {e});", t.var));
            self.close_loops(shape.len());
            self.did(&t.var, Pipe::S);
            return Ok(());
        }
        self.check_compute(d, b.name(), span)?;
        let cty = if d == DType::BF16 { "float" } else { ctype(d) };
        let ls = self.splat_scalar(lhs)?;
        let rs = self.splat_scalar(rhs)?;
        if !matches!(
            b,
            BinaryOp::Add
                | BinaryOp::Sub
                | BinaryOp::Mul
                | BinaryOp::Div
                | BinaryOp::Max
                | BinaryOp::Min
        ) {
            return Err(err(
                "EA021",
                format!("`{}` on {d} blocks is not supported by the Ascend backend yet", b.name()),
                span,
            ));
        }
        // Tensor op scalar forms (no Subs/Divs on A2: use Adds(-s), and Duplicate + Div).
        let scalar_form = match (&ls, &rs, b) {
            (None, Some(s), BinaryOp::Add) | (Some(s), None, BinaryOp::Add) => {
                Some(("Adds", s.clone(), ls.is_some()))
            }
            (None, Some(s), BinaryOp::Mul) | (Some(s), None, BinaryOp::Mul) => {
                Some(("Muls", s.clone(), ls.is_some()))
            }
            (None, Some(s), BinaryOp::Max) | (Some(s), None, BinaryOp::Max) => {
                Some(("Maxs", s.clone(), ls.is_some()))
            }
            (None, Some(s), BinaryOp::Min) | (Some(s), None, BinaryOp::Min) => {
                Some(("Mins", s.clone(), ls.is_some()))
            }
            (None, Some(s), BinaryOp::Sub) => Some(("Adds", format!("-(float)({s})"), false)),
            _ => None,
        };
        if let Some((api, s, scalar_left)) = scalar_form {
            let src = self.compute_operand(if scalar_left { rhs } else { lhs }, span)?;
            let (w, fin) = self.compute_result_in_place(r, d, span)?;
            let n = w.layout.count();
            self.vec(
                &format!("AscendC::{api}<{cty}>({}, {}, ({cty})({s}), {n})", w.var, src.var),
                &[&src.var],
                &w.var,
            );
            self.narrow(&w, fin);
            return Ok(());
        }
        if let (Some(s), None, BinaryOp::Sub) = (&ls, &rs, b) {
            // s - x = (-1 * x) + s, both steps exact.
            let src = self.compute_operand(rhs, span)?;
            let (w, fin) = self.compute_result_in_place(r, d, span)?;
            let n = w.layout.count();
            self.vec(
                &format!("AscendC::Muls<{cty}>({}, {}, ({cty})(-1.0f), {n})", w.var, src.var),
                &[&src.var],
                &w.var,
            );
            self.vec(
                &format!("AscendC::Adds<{cty}>({}, {}, ({cty})({s}), {n})", w.var, w.var),
                &[&w.var],
                &w.var,
            );
            self.narrow(&w, fin);
            return Ok(());
        }
        let a = self.compute_operand(lhs, span)?;
        let c = self.compute_operand(rhs, span)?;
        let (w, fin) = self.compute_result_in_place(r, d, span)?;
        let api = api_name(b);
        self.vec(
            &format!("AscendC::{api}({}, {}, {}, {})", w.var, a.var, c.var, w.layout.count()),
            &[&a.var, &c.var],
            &w.var,
        );
        self.narrow(&w, fin);
        Ok(())
    }

    fn emit_cmp(&mut self, r: Value, pred: CmpPred, lhs: Value, rhs: Value, span: Span) -> R<()> {
        let d = self.dtype(lhs)?;
        let t = self.result_tile(r, DType::Bool)?;
        let n256 = cmp_count(&t.layout, d);
        if matches!(d, DType::F32 | DType::F16) {
            let ls = self.splat_scalar(lhs)?;
            let rs = self.splat_scalar(rhs)?;
            let cty = ctype(d);
            match (ls, rs) {
                (None, Some(s)) => {
                    let a = self.tile(lhs)?;
                    self.vec(
                        &format!(
                            "AscendC::Compares({}, {}, ({cty})({s}), AscendC::CMPMODE::{}, {n256})",
                            t.var,
                            a.var,
                            cmp_mode(pred)
                        ),
                        &[&a.var],
                        &t.var,
                    );
                }
                (Some(s), None) => {
                    let a = self.tile(rhs)?;
                    self.vec(
                        &format!(
                            "AscendC::Compares({}, {}, ({cty})({s}), AscendC::CMPMODE::{}, {n256})",
                            t.var,
                            a.var,
                            cmp_mode(swap_pred(pred))
                        ),
                        &[&a.var],
                        &t.var,
                    );
                }
                _ => {
                    let a = self.tile(lhs)?;
                    let b = self.tile(rhs)?;
                    self.vec(
                        &format!(
                            "AscendC::Compare({}, {}, {}, AscendC::CMPMODE::{}, {n256})",
                            t.var,
                            a.var,
                            b.var,
                            cmp_mode(pred)
                        ),
                        &[&a.var, &b.var],
                        &t.var,
                    );
                }
            }
            return Ok(());
        }
        self.remark("RA003", format!("comparison of {d} blocks runs on the scalar unit"), span);
        let shape = self.ty(r).shape.clone();
        let idx: Vec<String> = (0..shape.len()).map(|i| format!("tk_i{i}")).collect();
        let a = self.ix(lhs, &idx)?;
        let b = self.ix(rhs, &idx)?;
        let e = format!("(({a}) {} ({b}))", cmp_op(pred));
        self.fill_bits(&t, &shape, &idx, &e)
    }

    fn fill_bits(&mut self, t: &Tile, shape: &[u32], idx: &[String], e: &str) -> R<()> {
        let flat = flat_expr(&t.layout, idx);
        self.flush_reads(Pipe::S);
        self.open_loops(shape, idx);
        self.line(format!(
            "const uint32_t tk_b = {flat}; const uint8_t tk_old = {v}.GetValue(tk_b / 8); {v}.SetValue(tk_b / 8, (uint8_t)(({e}) ? (tk_old | (1u << (tk_b % 8))) : (tk_old & ~(1u << (tk_b % 8)))));",
            v = t.var
        ));
        self.close_loops(shape.len());
        self.did(&t.var.clone(), Pipe::S);
        Ok(())
    }

    fn emit_select(
        &mut self,
        r: Value,
        cond: Value,
        on_true: Value,
        on_false: Value,
        span: Span,
    ) -> R<()> {
        let d = self.dtype(r)?;
        if !matches!(d, DType::F32 | DType::F16) {
            let t = self.result_tile(r, d)?;
            self.remark("RA003", format!("select on {d} blocks runs on the scalar unit"), span);
            let shape = self.ty(r).shape.clone();
            let idx: Vec<String> = (0..shape.len()).map(|i| format!("tk_i{i}")).collect();
            let c = self.ix(cond, &idx)?;
            let a = self.ix_or_tile(on_true, &idx)?;
            let b = self.ix_or_tile(on_false, &idx)?;
            self.flush_reads(Pipe::S);
            let flat = flat_expr(&t.layout, &idx);
            self.open_loops(&shape, &idx);
            self.line(format!("{}.SetValue({flat}, ({c}) ? ({a}) : ({b}));", t.var));
            self.close_loops(shape.len());
            self.did(&t.var, Pipe::S);
            return Ok(());
        }
        let m = self.tile(cond)?;
        let a = self.tile(on_true)?;
        let fs = self.splat_scalar(on_false)?;
        let t = self.result_tile(r, d)?;
        let n256 = cmp_count(&t.layout, d);
        let cty = ctype(d);
        match fs {
            Some(s) => self.vec(
                &format!("AscendC::Select({}, {}, {}, ({cty})({s}), AscendC::SELMODE::VSEL_TENSOR_SCALAR_MODE, {n256})", t.var, m.var, a.var),
                &[&m.var, &a.var],
                &t.var,
            ),
            None => {
                let b = self.tile(on_false)?;
                self.vec(
                    &format!("AscendC::Select({}, {}, {}, {}, AscendC::SELMODE::VSEL_TENSOR_TENSOR_MODE, {n256})", t.var, m.var, a.var, b.var),
                    &[&m.var, &a.var, &b.var],
                    &t.var,
                )
            }
        }
        Ok(())
    }

    fn ix_or_tile(&mut self, v: Value, idx: &[String]) -> R<String> {
        if self.dtype(v)?.is_float() && !self.tiles.contains_key(&v) {
            if let Some(s) = self.splat_scalar(v)? {
                return Ok(s);
            }
        }
        self.ix(v, idx)
    }

    fn emit_cast(&mut self, r: Value, value: Value, span: Span) -> R<()> {
        let to = self.dtype(r)?;
        let from = self.dtype(value)?;
        if let Some(s) = self.splat_scalar(value)? {
            let _ = s;
            // A cast of a splat stays a splat: materialise lazily where needed.
            let t = self.result_tile(r, to)?;
            let e = cast_expr(from, to, &self.splat_scalar(value)?.unwrap_or_default());
            let cty = ctype(to);
            self.line(format!(
                "AscendC::Duplicate<{cty}>({}, ({cty})({e}), {});",
                t.var,
                t.layout.count()
            ));
            self.did(&t.var, Pipe::V);
            return Ok(());
        }
        let mode = match (from, to) {
            (DType::F16, DType::F32) | (DType::BF16, DType::F32) | (DType::I32, DType::F32) => {
                Some("CAST_NONE")
            }
            (DType::F32, DType::F16) | (DType::F32, DType::BF16) => Some("CAST_RINT"),
            (DType::F32, DType::I32) => Some("CAST_TRUNC"),
            _ => None,
        };
        if let Some(mode) = mode {
            self.check_storage(to, span)?;
            let src = self.tile(value)?;
            let t = self.result_tile(r, to)?;
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::{mode}, {})",
                    t.var,
                    src.var,
                    t.layout.count()
                ),
                &[&src.var],
                &t.var,
            );
            return Ok(());
        }
        if from.is_float() && to.is_float() {
            // Through f32 (e.g. f16 <-> bf16): both steps are exact or round once.
            let src = self.tile(value)?;
            let w = self.temp_tile(DType::F32, &src.layout, span, "cast through f32");
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_NONE, {})",
                    w.var,
                    src.var,
                    w.layout.count()
                ),
                &[&src.var],
                &w.var,
            );
            let t = self.result_tile(r, to)?;
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_RINT, {})",
                    t.var,
                    w.var,
                    t.layout.count()
                ),
                &[&w.var],
                &t.var,
            );
            return Ok(());
        }
        // Index blocks cast to floats, and other pairs: the scalar unit.
        self.check_storage(to, span)?;
        let t = self.result_tile(r, to)?;
        self.remark("RA003", format!("cast {from} -> {to} runs on the scalar unit"), span);
        let shape = self.ty(r).shape.clone();
        let idx: Vec<String> = (0..shape.len()).map(|i| format!("tk_i{i}")).collect();
        let a = self.ix(value, &idx)?;
        let e = cast_expr(from, to, &a);
        self.flush_reads(Pipe::S);
        let flat = flat_expr(&t.layout, &idx);
        self.open_loops(&shape, &idx);
        self.line(format!("{}.SetValue({flat}, {e});", t.var));
        self.close_loops(shape.len());
        self.did(&t.var, Pipe::S);
        Ok(())
    }

    fn emit_reduce(
        &mut self,
        r: Value,
        kind: ReduceKind,
        axis: u8,
        value: Value,
        span: Span,
    ) -> R<()> {
        let d = self.dtype(value)?;
        let shape = self.ty(value).shape.clone();
        let rank = shape.len();
        let rd = self.dtype(r)?;
        let vector = matches!(d, DType::F32 | DType::F16)
            && (axis as usize == rank - 1)
            && matches!(kind, ReduceKind::Sum | ReduceKind::Max | ReduceKind::Min);
        if vector {
            let src = self.tile(value)?;
            let cty = ctype(d);
            let dl = Layout::of(&[8]);
            let dst = self.temp_tile(d, &dl, span, "reduce result");
            // sharedTmpBuffer: the documented minimum, two elements per 256-byte repeat (value and
            // index for ReduceMax/Min), rounded to a 32-byte block.
            let per_rep = 256 / d.size_bytes();
            let per_blk = 32 / d.size_bytes();
            let reps = src.layout.cols.div_ceil(per_rep);
            let tl = Layout::of(&[(2 * reps).div_ceil(per_blk) * per_blk]);
            let tmp = self.temp_tile(d, &tl, span, "reduce scratch (sharedTmpBuffer)");
            let api = match kind {
                ReduceKind::Sum => "ReduceSum",
                ReduceKind::Max => "ReduceMax",
                _ => "ReduceMin",
            };
            let cols = src.layout.cols;
            if rank == 1 {
                self.vec(
                    &format!(
                        "AscendC::{api}<{cty}>({}, {}, {}, {cols})",
                        dst.var, src.var, tmp.var
                    ),
                    &[&src.var],
                    &dst.var,
                );
                self.read(&dst.var, Pipe::S);
                let var = format!("s{}", r.0);
                self.line(format!("@@U:{var}@@const {cty} {var} = {}.GetValue(0);", dst.var));
                self.scal.insert(r, var);
                return Ok(());
            }
            let t = self.result_tile(r, rd)?;
            self.read(&src.var, Pipe::V);
            let rows = src.layout.rows;
            let pitch = src.layout.pitch;
            let lead: Vec<u32> = shape[..rank - 1].to_vec();
            let ridx: Vec<String> = (0..rank - 1).map(|i| format!("tk_r{i}")).collect();
            let dflat = flat_expr(&t.layout, &ridx);
            let _ = rows;
            self.open_loops(&lead, &ridx);
            let sflat = row_offset(&src.layout, &ridx);
            self.line(format!(
                "AscendC::{api}<{cty}>({}, {}[{sflat}], {}, {cols});",
                dst.var, src.var, tmp.var
            ));
            self.line("AscendC::SetFlag<AscendC::HardEvent::V_S>(0);");
            self.line("AscendC::WaitFlag<AscendC::HardEvent::V_S>(0);");
            self.line(format!("{}.SetValue({dflat}, {}.GetValue(0));", t.var, dst.var));
            self.close_loops(rank - 1);
            let _ = pitch;
            self.work(Pipe::V);
            self.did(&t.var, Pipe::S);
            return Ok(());
        }
        // Scalar unit: any dtype, any axis, argmax/argmin.
        self.remark(
            "RA003",
            format!("reduce {} of {d} runs on the scalar unit", kind.name()),
            span,
        );
        let rshape = self.ty(r).shape.clone();
        let oidx: Vec<String> = (0..rshape.len()).map(|i| format!("tk_o{i}")).collect();
        let mut iidx = oidx.clone();
        iidx.insert(axis as usize, "tk_k".to_string());
        let x = if d.is_float() {
            let t = self.tile(value)?;
            self.pending_reads.push(t.var.clone());
            format!("{}.GetValue({})", t.var, flat_expr(&t.layout, &iidx))
        } else {
            self.ix(value, &iidx)?
        };
        let n = shape[axis as usize];
        let cty = ctype(d);
        let comb = match kind {
            ReduceKind::Sum => format!("tk_acc = ({cty})(tk_acc + tk_x);"),
            ReduceKind::Max if d.is_float() => {
                format!("tk_acc = ({cty})tk_fmax((float)tk_acc, (float)tk_x);")
            }
            ReduceKind::Min if d.is_float() => {
                format!("tk_acc = ({cty})tk_fmin((float)tk_acc, (float)tk_x);")
            }
            ReduceKind::Max => "tk_acc = tk_imax(tk_acc, tk_x);".to_string(),
            ReduceKind::Min => "tk_acc = tk_imin(tk_acc, tk_x);".to_string(),
            ReduceKind::Argmax => {
                "if (tk_before(tk_x, tk_k, tk_acc, tk_arg, true)) { tk_acc = tk_x; tk_arg = tk_k; }"
                    .to_string()
            }
            ReduceKind::Argmin => {
                "if (tk_before(tk_acc, tk_arg, tk_x, tk_k, true)) { tk_acc = tk_x; tk_arg = tk_k; }"
                    .to_string()
            }
        };
        let result_expr = if matches!(kind, ReduceKind::Argmax | ReduceKind::Argmin) {
            "tk_arg"
        } else {
            "tk_acc"
        };
        self.flush_reads(Pipe::S);
        if rshape.is_empty() {
            let var = format!("s{}", r.0);
            self.line(format!("{} {var};", ctype(rd)));
            self.open("");
            self.reduce_body(&x, cty, n, &comb);
            self.line(format!("{var} = {result_expr};"));
            self.close();
            self.scal.insert(r, var);
        } else {
            let t = self.result_tile(r, rd)?;
            let flat = flat_expr(&t.layout, &oidx);
            self.open_loops(&rshape, &oidx);
            self.reduce_body(&x, cty, n, &comb);
            self.line(format!("{}.SetValue({flat}, {result_expr});", t.var));
            self.close_loops(rshape.len());
            self.did(&t.var, Pipe::S);
        }
        Ok(())
    }

    fn reduce_body(&mut self, x: &str, cty: &str, n: u32, comb: &str) {
        let x0 = x.replace("tk_k", "0");
        self.line(format!("{cty} tk_acc = {x0};"));
        self.line("[[maybe_unused]] int32_t tk_arg = 0;");
        self.open(format!("for (int32_t tk_k = 1; tk_k < {n}; ++tk_k)"));
        self.line(format!("const {cty} tk_x = {x};"));
        self.line(comb);
        self.close();
    }

    /// `topk` and `sort` by repeated selection on the scalar unit.
    fn emit_select_rows(
        &mut self,
        results: &[Value],
        value: Value,
        k: u32,
        desc: bool,
        span: Span,
    ) -> R<()> {
        let d = self.dtype(value)?;
        let src = self.tile(value)?;
        let vt = self.result_tile(results[0], d)?;
        let it = self.result_tile(results[1], DType::I32)?;
        let cty = ctype(d);
        let rows = src.layout.rows;
        let n = src.layout.cols;
        // Sort32/MrgSort exist on A2/A3 for half and float; runs of 4095 proposals per merge.
        let vector =
            self.soc == Soc::Ascend910B && matches!(d, DType::F32 | DType::F16) && n <= 4096;
        let mut scratch = None;
        if vector {
            self.remark(
                "RA007",
                "topk/sort run on the vector unit (Sort32 and MrgSort passes); a row holding NaN or an infinity is selected on the scalar unit instead",
                span,
            );
            let n32 = n.div_ceil(32) * 32;
            let sc = self.temp_tile(d, &Layout::of(&[n32]), span, "sort scores");
            let ix = self.temp_tile(DType::I32, &Layout::of(&[n32]), span, "sort indices");
            // Proposals are 8 bytes: 2 floats or 4 halves each.
            let per = 8 / d.size_bytes();
            let pa = self.temp_tile(d, &Layout::of(&[n32 * per]), span, "sort proposals");
            let pb = self.temp_tile(d, &Layout::of(&[n32 * per]), span, "sort proposals");
            self.read(&src.var, Pipe::V);
            scratch = Some((sc.var, ix.var, pa.var, pb.var, n32));
        } else {
            self.remark(
                "RA007",
                if self.soc == Soc::Ascend910B {
                    format!("topk/sort of {d} rows of {n} run on the scalar unit (repeated selection): the vector sort takes f16/f32 rows of at most 4096")
                } else {
                    format!("topk/sort run on the scalar unit (repeated selection): {} has no Sort32/MrgSort", self.soc)
                },
                span,
            );
        }
        self.read(&src.var, Pipe::S);
        self.read(&vt.var, Pipe::S);
        self.read(&it.var, Pipe::S);
        self.open(format!("for (uint32_t tk_r = 0; tk_r < {rows}; ++tk_r)"));
        let select = format!(
            "tk_select_row<{cty}>({}, {}, tk_r * {}, {}, tk_r * {}, {n}, {k}, {desc});",
            vt.var, it.var, vt.layout.pitch, src.var, src.layout.pitch
        );
        match scratch {
            Some((sc, ix, pa, pb, n32)) => {
                self.open(format!(
                    "if (!tk_vsort_row<{cty}>({}, {}, tk_r * {}, {}, tk_r * {}, {n}, {k}, {desc}, {sc}, {ix}, {pa}, {pb}, {n32}))",
                    vt.var, it.var, vt.layout.pitch, src.var, src.layout.pitch
                ));
                self.line(select);
                self.close();
            }
            None => self.line(select),
        }
        self.close();
        self.did(&vt.var, Pipe::S);
        self.did(&it.var, Pipe::S);
        Ok(())
    }

    /// `acc + a @ b` on the vector unit: one `Axpy` per (row of a, k).
    fn emit_dot(&mut self, r: Value, a: Value, b: Value, acc: Value, span: Span) -> R<()> {
        let ad = self.dtype(a)?;
        let accd = self.dtype(acc)?;
        if accd != DType::F32 {
            return Err(err(
                "EA032",
                format!("dot with a {accd} accumulator is not supported by the Ascend backend yet"),
                span,
            ));
        }
        self.check_storage(ad, span)?;
        let at = self.tile(a)?;
        let bt = self.tile(b)?;
        let ct = self.tile(acc)?;
        let (m, kk) = (at.layout.rows, at.layout.cols);
        let n = bt.layout.cols;
        let (af, bf) = if ad == DType::F32 {
            (at.clone(), bt.clone())
        } else {
            let af = self.temp_tile(DType::F32, &at.layout, span, "dot operand widened to f32");
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_NONE, {})",
                    af.var,
                    at.var,
                    at.layout.count()
                ),
                &[&at.var],
                &af.var,
            );
            let bf = self.temp_tile(DType::F32, &bt.layout, span, "dot operand widened to f32");
            self.vec(
                &format!(
                    "AscendC::Cast({}, {}, AscendC::RoundMode::CAST_NONE, {})",
                    bf.var,
                    bt.var,
                    bt.layout.count()
                ),
                &[&bt.var],
                &bf.var,
            );
            (af, bf)
        };
        let t = self.result_tile(r, DType::F32)?;
        let elems = t.layout.alloc_elems(DType::F32);
        self.vec(&format!("AscendC::DataCopy({}, {}, {elems})", t.var, ct.var), &[&ct.var], &t.var);
        self.read(&af.var, Pipe::S);
        self.read(&bf.var, Pipe::V);
        self.read(&t.var, Pipe::V);
        self.open(format!("for (uint32_t tk_m = 0; tk_m < {m}; ++tk_m)"));
        self.open(format!("for (uint32_t tk_k = 0; tk_k < {kk}; ++tk_k)"));
        self.line(format!(
            "const float tk_a = {}.GetValue(tk_m * {} + tk_k);",
            af.var, af.layout.pitch
        ));
        self.line(format!(
            "AscendC::Axpy<float, float>({}[tk_m * {}], {}[tk_k * {}], tk_a, {n});",
            t.var, t.layout.pitch, bf.var, bf.layout.pitch
        ));
        self.line("AscendC::PipeBarrier<AscendC::PIPE_V>();");
        self.close();
        self.close();
        self.did(&t.var, Pipe::V);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_for(
        &mut self,
        op: OpId,
        lo: Value,
        hi: Value,
        step: Value,
        init: &[Value],
        body: RegionId,
        results: &[Value],
    ) -> R<()> {
        let span = self.f.op(op).span;
        let ivd = self.dtype(lo)?;
        let ivt = ctype(ivd);
        let l = self.ix(lo, &[])?;
        let h = self.ix(hi, &[])?;
        let s = self.ix(step, &[])?;
        self.flush_reads(Pipe::S);
        let until = results
            .iter()
            .filter_map(|r| self.lv.last_use.get(r).copied())
            .max()
            .unwrap_or(0)
            .max(self.lv.end[&op]);
        // Carried values: scalars in variables, blocks in tiles that outlive the loop.
        let args = self.f.region(body).args.clone();
        let mut carried: Vec<(Value, Value, Option<Tile>, String)> = Vec::new();
        for (i, (&iv, &r)) in init.iter().zip(results).enumerate() {
            let arg = args[i + 1];
            if let Some(c) = self.cube.as_ref().and_then(|p| p.acc.get(&arg)).copied() {
                // An accumulator in L0C, updated in place by the dots of the body.
                if !self.cube_chains.contains_key(&c) {
                    self.cube_chain_start(c, span);
                }
                carried.push((arg, r, None, String::new()));
                continue;
            }
            let ty = self.ty(r).clone();
            if let Elem::Ptr(_) = ty.elem {
                return Err(err(
                    "EA033",
                    "loop-carried pointers are not supported by the Ascend backend yet",
                    span,
                ));
            }
            let d = self.dtype(r)?;
            if ty.is_scalar() {
                let e = self.ix(iv, &[])?;
                self.flush_reads(Pipe::S);
                let var = format!("c{}", r.0);
                self.line(format!("{} {var} = {e};", ctype(d)));
                self.scal.insert(arg, var.clone());
                self.scal.insert(r, var.clone());
                carried.push((arg, r, None, var));
            } else {
                let layout = Layout::of(&ty.shape);
                let var = format!("c{}", r.0);
                let t = self.calc_tile(&var, d, &layout, until, span, "loop-carried block");
                self.init_copy(&t, iv)?;
                self.tiles.insert(arg, t.clone());
                self.tiles.insert(r, t.clone());
                carried.push((arg, r, Some(t), var));
            }
        }
        let iv = args[0];
        let ivar = format!("i{}", iv.0);
        self.scal.insert(iv, ivar.clone());
        self.line(format!("TK_DEVICE_ASSERT(({s}) > 0, \"for: the step must be positive\");"));
        self.open(format!("for ({ivt} {ivar} = {l}; {ivar} < {h}; {ivar} += {s})"));
        self.scopes.push(Scope::default());
        let was_looping = self.looping;
        self.looping = true;
        let ops = self.f.region(body).ops.clone();
        self.emit_ops(&ops, body, self.lv.end[&op])?;
        // Yield into the carried storage.
        let yielded = match ops.last().map(|&o| &self.f.op(o).op) {
            Some(Op::Yield { values }) => values.clone(),
            _ => Vec::new(),
        };
        let mut scalar_assign = Vec::new();
        for ((_, _, tile, var), &y) in carried.iter().zip(&yielded) {
            match tile {
                None if var.is_empty() => {}
                None => {
                    let e = self.ix(y, &[])?;
                    scalar_assign.push((var.clone(), e));
                }
                Some(t) => {
                    let yt = self.tile(y)?;
                    if yt.var != t.var {
                        let elems = t.layout.alloc_elems(t.dtype);
                        self.vec(
                            &format!("AscendC::DataCopy({}, {}, {elems})", t.var, yt.var),
                            &[&yt.var],
                            &t.var,
                        );
                    }
                }
            }
        }
        self.flush_reads(Pipe::S);
        // Two-phase so that yields reading other carried scalars see the old values.
        let tmps: Vec<String> = scalar_assign
            .iter()
            .map(|(v, e)| {
                let tmp = format!("{v}_next");
                self.line(format!("const auto {tmp} = {e};"));
                tmp
            })
            .collect();
        for ((v, _), tmp) in scalar_assign.iter().zip(tmps) {
            self.line(format!("{v} = {tmp};"));
        }
        self.exit_scope();
        if self.cube.is_none() {
            self.line("AscendC::PipeBarrier<AscendC::PIPE_V>();");
        }
        self.loop_end_sync();
        self.looping = was_looping;
        self.close();
        // Anything written inside the loop may be unsynced after it.
        self.epoch.entry(Pipe::V).and_modify(|e| *e += 1);
        Ok(())
    }

    fn init_copy(&mut self, t: &Tile, init: Value) -> R<()> {
        let cty = ctype(t.dtype);
        if let Some(s) = self.splat_scalar(init)? {
            self.line(format!(
                "AscendC::Duplicate<{cty}>({}, ({cty})({s}), {});",
                t.var,
                t.layout.count()
            ));
            self.did(&t.var, Pipe::V);
            return Ok(());
        }
        let it = self.tile(init)?;
        let elems = t.layout.alloc_elems(t.dtype);
        self.vec(&format!("AscendC::DataCopy({}, {}, {elems})", t.var, it.var), &[&it.var], &t.var);
        Ok(())
    }

    fn emit_if(
        &mut self,
        op: OpId,
        cond: Value,
        then_body: RegionId,
        else_body: RegionId,
        results: &[Value],
    ) -> R<()> {
        let span = self.f.op(op).span;
        let c = self.ix(cond, &[])?;
        self.flush_reads(Pipe::S);
        let until =
            results.iter().filter_map(|r| self.lv.last_use.get(r).copied()).max().unwrap_or(0);
        let mut outs: Vec<(Option<Tile>, String)> = Vec::new();
        for &r in results {
            let ty = self.ty(r).clone();
            if let Elem::Ptr(_) = ty.elem {
                return Err(err(
                    "EA033",
                    "pointer results of `if` are not supported by the Ascend backend yet",
                    span,
                ));
            }
            let d = self.dtype(r)?;
            let var = format!("f{}", r.0);
            if ty.is_scalar() {
                self.line(format!(
                    "{} {var} = {};",
                    ctype(d),
                    cxx::literal(d, tk_ir::ConstValue::Int(0))
                ));
                self.scal.insert(r, var.clone());
                outs.push((None, var));
            } else {
                let t = self.calc_tile(
                    &var,
                    d,
                    &Layout::of(&ty.shape),
                    until.max(self.lv.end[&op]),
                    span,
                    "`if` result",
                );
                outs.push((Some(t.clone()), var));
            }
        }
        for (i, body) in [then_body, else_body].into_iter().enumerate() {
            if i == 0 {
                self.open(format!("if ({c})"));
            } else {
                self.ind -= 1;
                self.line("} else {");
                self.ind += 1;
            }
            self.scopes.push(Scope::default());
            let ops = self.f.region(body).ops.clone();
            self.emit_ops(&ops, body, self.lv.end[&op])?;
            let yielded = match ops.last().map(|&o| &self.f.op(o).op) {
                Some(Op::Yield { values }) => values.clone(),
                _ => Vec::new(),
            };
            for ((tile, var), &y) in outs.iter().zip(&yielded) {
                match tile {
                    None => {
                        let e = self.ix(y, &[])?;
                        self.flush_reads(Pipe::S);
                        self.line(format!("{var} = {e};"));
                    }
                    Some(t) => {
                        let t = t.clone();
                        self.init_copy(&t, y)?;
                    }
                }
            }
            self.exit_scope();
        }
        self.close();
        for ((tile, _), &r) in outs.iter().zip(results) {
            if let Some(t) = tile {
                self.tiles.insert(r, t.clone());
            }
        }
        Ok(())
    }
}

/// Replaces `@@U:name@@` markers: `[[maybe_unused]] ` when `name` is never used elsewhere.
fn finish_unused(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("@@U:") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 4..];
        let Some(j) = after.find("@@") else {
            out.push_str(&rest[i..]);
            return out;
        };
        let name = &after[..j];
        let uses = count_word(text, name);
        if uses <= 1 {
            out.push_str("[[maybe_unused]] ");
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

fn count_word(text: &str, w: &str) -> usize {
    let b = text.as_bytes();
    let mut n = 0;
    let mut start = 0;
    while let Some(i) = text[start..].find(w) {
        let s = start + i;
        let e = s + w.len();
        let before =
            s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_' || b[s - 1] == b':');
        let after = e >= b.len() || !(b[e].is_ascii_alphanumeric() || b[e] == b'_');
        if before && after {
            n += 1;
        }
        start = e;
    }
    n
}

/// The C++ element type of a tile (bool tiles are bit masks).
fn tile_ctype(d: DType) -> &'static str {
    if d == DType::Bool {
        "uint8_t"
    } else {
        ctype(d)
    }
}

/// Flat padded UB index of element `idx` of a tile.
fn flat_expr(l: &Layout, idx: &[String]) -> String {
    if idx.is_empty() {
        return "0".to_string();
    }
    let n = idx.len();
    let row = row_index(l.shape.get(..n - 1).unwrap_or(&[]), &idx[..n - 1]);
    let col = &idx[n - 1];
    if row == "0" {
        format!("(uint32_t)({col})")
    } else {
        format!("(uint32_t)(({row}) * {} + ({col}))", l.pitch)
    }
}

/// UB element offset of row `rows` of a tile.
fn row_offset(l: &Layout, rows: &[String]) -> String {
    let r = row_index(&l.shape[..rows.len()], rows);
    if r == "0" {
        r
    } else {
        format!("(uint32_t)(({r}) * {})", l.pitch)
    }
}

/// Row-major linear index over the leading dimensions.
fn row_index(dims: &[u32], idx: &[String]) -> String {
    let mut e = String::new();
    for (d, i) in dims.iter().zip(idx) {
        if e.is_empty() {
            e = i.clone();
        } else {
            e = format!("({e}) * {d} + ({i})");
        }
    }
    if e.is_empty() {
        "0".to_string()
    } else {
        e
    }
}

/// Row-major linear index over a whole logical shape.
fn logical_flat(shape: &[u32], idx: &[String]) -> String {
    let mut e = String::from("(int64_t)0");
    for (d, i) in shape.iter().zip(idx) {
        e = format!("({e}) * {d} + ({i})");
    }
    e
}

fn cmp_op(p: CmpPred) -> &'static str {
    match p {
        CmpPred::Eq => "==",
        CmpPred::Ne => "!=",
        CmpPred::Lt => "<",
        CmpPred::Le => "<=",
        CmpPred::Gt => ">",
        CmpPred::Ge => ">=",
    }
}

fn cmp_mode(p: CmpPred) -> &'static str {
    match p {
        CmpPred::Eq => "EQ",
        CmpPred::Ne => "NE",
        CmpPred::Lt => "LT",
        CmpPred::Le => "LE",
        CmpPred::Gt => "GT",
        CmpPred::Ge => "GE",
    }
}

fn swap_pred(p: CmpPred) -> CmpPred {
    match p {
        CmpPred::Lt => CmpPred::Gt,
        CmpPred::Le => CmpPred::Ge,
        CmpPred::Gt => CmpPred::Lt,
        CmpPred::Ge => CmpPred::Le,
        x => x,
    }
}

/// Element count for Compare/Select: the tile's count rounded up to whole 256-byte repeats.
fn cmp_count(l: &Layout, d: DType) -> u64 {
    let per = 256 / u64::from(d.size_bytes().max(1));
    l.count().div_ceil(per) * per
}

fn api_name(b: BinaryOp) -> &'static str {
    match b {
        BinaryOp::Add => "Add",
        BinaryOp::Sub => "Sub",
        BinaryOp::Mul => "Mul",
        BinaryOp::Div => "Div",
        BinaryOp::Max => "Max",
        _ => "Min",
    }
}

/// A float expression in dtype `d` from a float-valued expression.
fn float_expr(d: DType, e: &str) -> String {
    match d {
        DType::F32 => format!("({e})"),
        DType::F64 => format!("((double)({e}))"),
        _ => format!("(({})({e}))", ctype(d)),
    }
}

fn binary_expr(b: BinaryOp, d: DType, a: &str, c: &str) -> Option<String> {
    let cty = ctype(d);
    if d.is_float() {
        let (fa, fc) = if d == DType::F64 {
            (a.to_string(), c.to_string())
        } else {
            (format!("(float)({a})"), format!("(float)({c})"))
        };
        let sym = match b {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Max => return Some(float_expr(d, &format!("tk_fmax({fa}, {fc})"))),
            BinaryOp::Min => return Some(float_expr(d, &format!("tk_fmin({fa}, {fc})"))),
            _ => return None,
        };
        return Some(float_expr(d, &format!("{fa} {sym} {fc}")));
    }
    if d == DType::Bool {
        return Some(match b {
            BinaryOp::And => format!("(({a}) && ({c}))"),
            BinaryOp::Or => format!("(({a}) || ({c}))"),
            BinaryOp::Xor => format!("(({a}) != ({c}))"),
            _ => return None,
        });
    }
    Some(match b {
        BinaryOp::Add => format!("(({cty})(({a}) + ({c})))"),
        BinaryOp::Sub => format!("(({cty})(({a}) - ({c})))"),
        BinaryOp::Mul => format!("(({cty})(({a}) * ({c})))"),
        BinaryOp::Div => format!("(({cty})(({a}) / ({c})))"),
        BinaryOp::Rem => format!("(({cty})(({a}) % ({c})))"),
        BinaryOp::And => format!("(({cty})(({a}) & ({c})))"),
        BinaryOp::Or => format!("(({cty})(({a}) | ({c})))"),
        BinaryOp::Xor => format!("(({cty})(({a}) ^ ({c})))"),
        BinaryOp::Shl => format!("tk_shl<{cty}>({a}, (int64_t)({c}))"),
        BinaryOp::Shr => format!("tk_shr<{cty}>({a}, (int64_t)({c}))"),
        BinaryOp::Min => format!("tk_imin<{cty}>({a}, {c})"),
        BinaryOp::Max => format!("tk_imax<{cty}>({a}, {c})"),
    })
}

fn cast_expr(from: DType, to: DType, a: &str) -> String {
    let cty = ctype(to);
    if to == DType::Bool {
        return if from.is_float() {
            format!("((float)({a}) != 0.0f)")
        } else {
            format!("(({a}) != 0)")
        };
    }
    if from.is_float() && !to.is_float() {
        let (lo, hi) = int_range(to);
        return format!("tk_f2i<{cty}>((float)({a}), {lo}, {hi})");
    }
    if to.is_float() {
        return match to {
            DType::F32 => format!("((float)({a}))"),
            DType::F64 => format!("((double)({a}))"),
            _ => format!("(({cty})((float)({a})))"),
        };
    }
    format!("(({cty})({a}))")
}

fn int_range(d: DType) -> (String, String) {
    let (lo, hi): (f64, f64) = match d {
        DType::I8 => (i8::MIN as f64, i8::MAX as f64),
        DType::I16 => (i16::MIN as f64, i16::MAX as f64),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        DType::I64 => (i64::MIN as f64, 9.223372036854775e18),
        DType::U8 => (0.0, u8::MAX as f64),
        DType::U16 => (0.0, u16::MAX as f64),
        DType::U32 => (0.0, u32::MAX as f64),
        _ => (0.0, 1.844_674_407_370_955e19),
    };
    (format!("{lo:?}"), format!("{hi:?}"))
}

/// One step of a unary op on the vector unit.
enum Step {
    Unary(&'static str),
    Muls(f64),
    Adds(f64),
}

/// The vector-API steps computing a unary op in place (`dst` may equal `src` after the first).
fn unary_steps(u: UnaryOp) -> Option<Vec<Step>> {
    use Step::*;
    Some(match u {
        UnaryOp::Neg => vec![Muls(-1.0)],
        UnaryOp::Abs => vec![Unary("Abs")],
        UnaryOp::Exp => vec![Unary("Exp")],
        UnaryOp::Exp2 => vec![Muls(std::f64::consts::LN_2), Unary("Exp")],
        UnaryOp::Log => vec![Unary("Ln")],
        UnaryOp::Log2 => vec![Unary("Ln"), Muls(std::f64::consts::LOG2_E)],
        UnaryOp::Sqrt => vec![Unary("Sqrt")],
        UnaryOp::Rsqrt => vec![Unary("Rsqrt")],
        UnaryOp::Sin => vec![Unary("Sin")],
        UnaryOp::Cos => vec![Unary("Cos")],
        UnaryOp::Tanh => vec![Unary("Tanh")],
        UnaryOp::Erf => vec![Unary("Erf")],
        // 1 / (1 + exp(-x)) with basic APIs.
        UnaryOp::Sigmoid => vec![Muls(-1.0), Unary("Exp"), Adds(1.0), Unary("Reciprocal")],
        UnaryOp::Floor => vec![Unary("Floor")],
        UnaryOp::Ceil => vec![Unary("Ceil")],
        UnaryOp::Not => return None,
    })
}

fn step_call(s: &Step, cty: &str, dst: &str, src: &str, n: u64) -> String {
    match s {
        Step::Unary(api) => format!("AscendC::{api}({dst}, {src}, {n})"),
        Step::Muls(c) => {
            format!(
                "AscendC::Muls<{cty}>({dst}, {src}, ({cty})({}), {n})",
                cxx::float_literal(DType::F32, *c)
            )
        }
        Step::Adds(c) => {
            format!(
                "AscendC::Adds<{cty}>({dst}, {src}, ({cty})({}), {n})",
                cxx::float_literal(DType::F32, *c)
            )
        }
    }
}
