//! The cube path of `dot` on 910B: a kernel whose only block computations are matrix products
//! runs on the AI Cube core (`KERNEL_TYPE_AIC_ONLY`):
//!
//! - each `load` feeding a `dot` copies GM → L1 with `DataCopy(…, Nd2NzParams)` (ND → NZ), then
//!   L1 → L0A with `LoadData` (NZ → Zz) for the left operand, L1 → L0B with `LoadData(…,
//!   ifTranspose)` (16-bit types) or `LoadDataWithTranspose` (f32, from 16-row blocks) for the
//!   right one (NZ → Zn);
//! - the accumulator chain (`zeros` → loop-carried value → `dot` → … → `store`) lives in one L0C
//!   buffer: `Mmad` zeroes it on the first product (`cmatrixInitVal`) and accumulates after;
//! - the store is a `Fixpipe` L0C → GM with NZ → ND conversion (and the f32 → f16/bf16 cast of a
//!   `cast` before the store, through `quantPre`).
//!
//! Masks must give each row a prefix of valid columns (`row_len`). At run time a scalar scan of
//! the rows decides between one copy of the whole valid rectangle (the usual ragged edge) and one
//! copy per row (gathered rows); when any element of the tile is masked off, the L1 tile is first
//! filled with zeros (`InitConstValue`), which is the `other` value the cube path requires. The
//! `Mmad` sizes are the static tile sizes, so the product is exactly that of the tiles.
//!
//! A kernel with any other block work (vector ops, data-dependent integer blocks) keeps the
//! vector `dot`: the AI Cube core has no Unified Buffer, and a mixed AIC/AIV kernel (GM
//! workspace plus cross-core flags) is not generated yet.

use super::{err, Emitter, Pipe, R};
use crate::cxx::ctype;
use std::collections::{HashMap, HashSet};
use tk_diag::{Diagnostic, Span};
use tk_ir::{ConstValue, DType, Elem, Op, OpId, Value, ValueDef};

/// Which side of the product a loaded tile is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    A,
    B,
}

/// A `load` whose tile goes to the cube.
#[derive(Clone, Debug)]
pub(super) struct Operand {
    pub role: Role,
    pub dtype: DType,
    pub rows: u32,
    pub cols: u32,
}

impl Operand {
    fn c0(&self) -> u32 {
        32 / self.dtype.size_bytes()
    }

    /// f32 right operands are laid out in L1 as 16-row blocks of NZ strips, so that two strips
    /// of 8 columns form the 16x16 squares `LoadDataWithTranspose` turns into Zn fractals.
    fn blocked(&self) -> bool {
        self.role == Role::B && self.dtype.size_bytes() == 4
    }

    /// Rows per NZ block in L1 (the `dstNzC0Stride` of the copy, in 32-byte units).
    fn block_rows(&self) -> u32 {
        if self.blocked() {
            16
        } else {
            self.rows.div_ceil(16) * 16
        }
    }

    /// Padded column count of the L1 layout.
    fn cols_pad(&self) -> u32 {
        if self.blocked() {
            self.cols.div_ceil(16) * 16
        } else {
            self.cols.div_ceil(self.c0()) * self.c0()
        }
    }

    /// Element offset of row `r` (a C++ expression) in the L1 layout.
    fn l1_row(&self, r: &str) -> String {
        if self.blocked() {
            format!("(({r}) / 16) * {} + (({r}) % 16) * 8", 16 * self.cols_pad())
        } else {
            format!("({r}) * {}", self.c0())
        }
    }

    pub fn l1_bytes(&self) -> u64 {
        let rows = u64::from(self.rows.div_ceil(16) * 16);
        rows * u64::from(self.cols_pad()) * u64::from(self.dtype.size_bytes())
    }

    /// L0A (Zz: 16 x C0 fractals) or L0B (Zn; f32 keeps K padded to 16) bytes.
    pub fn l0_bytes(&self) -> u64 {
        let sz = u64::from(self.dtype.size_bytes());
        let r16 = u64::from(self.rows.div_ceil(16) * 16);
        match self.role {
            Role::A => r16 * u64::from(self.cols.div_ceil(self.c0()) * self.c0()) * sz,
            Role::B => r16 * u64::from(self.cols.div_ceil(16) * 16) * sz,
        }
    }
}

/// One accumulator: an L0C buffer holding an `m x n` f32 block.
#[derive(Clone, Debug)]
pub(super) struct Chain {
    pub m: u32,
    pub n: u32,
    pub span: Span,
}

impl Chain {
    pub fn l0c_bytes(&self) -> u64 {
        u64::from(self.m.div_ceil(16) * 16) * u64::from(self.n.div_ceil(16) * 16) * 4
    }
}

/// What runs on the cube, found by [`Emitter::plan_cube`].
#[derive(Default)]
pub(super) struct Plan {
    pub operands: HashMap<Value, Operand>,
    /// Dots on the cube → their chain.
    pub dots: HashMap<OpId, usize>,
    /// Values held in a chain's L0C buffer (dot results, loop-carried values, loop results).
    pub acc: HashMap<Value, usize>,
    /// f32 → f16/bf16 casts of chain values, applied by Fixpipe on the way out.
    pub casts: HashMap<Value, usize>,
    pub chains: Vec<Chain>,
}

/// Bytes each cube memory needs (one buffer of every queue), and the dot that needs the most.
#[derive(Clone, Debug, Default)]
pub struct CubeUsage {
    pub l1: u64,
    pub l0a: u64,
    pub l0b: u64,
    pub l0c: u64,
    pub span: Span,
}

/// Run-time state of a chain during emission: its L0C tensor, the "nothing accumulated yet"
/// flag, and whether it went through its queue towards Fixpipe.
#[derive(Clone, Debug)]
pub(super) struct ChainVars {
    pub queue: String,
    pub var: String,
    pub fresh: String,
    pub enqueued: bool,
}

fn round_to(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

impl<'a> Emitter<'a> {
    /// Whether `v` is a splat (possibly broadcast) of the float constant 0.
    fn is_zero_splat(&self, v: Value) -> bool {
        let Some(op) = self.def_op(v) else { return false };
        match &self.f.op(op).op {
            Op::Splat { value } => match self.def_op(*value).map(|o| &self.f.op(o).op) {
                Some(Op::Const { value: ConstValue::Float(x) }) => *x == 0.0,
                Some(Op::Const { value: ConstValue::Int(0) }) => true,
                _ => false,
            },
            Op::Broadcast { value } | Op::ExpandDims { value, .. } | Op::Reshape { value } => {
                self.is_zero_splat(*value)
            }
            _ => false,
        }
    }

    fn uses_map(&self) -> HashMap<Value, Vec<OpId>> {
        let mut uses: HashMap<Value, Vec<OpId>> = HashMap::new();
        for op in self.f.walk() {
            for v in self.f.op(op).op.operands() {
                uses.entry(v).or_default().push(op);
            }
        }
        uses
    }

    /// Decides whether this kernel runs on the cube. `Ok(None)` with a reason keeps the vector
    /// `dot` (the reason becomes a remark); an error is a program the cube cannot hold (too large
    /// tiles), reported at the `dot`.
    pub(super) fn plan_cube(&mut self) -> R<Result<Plan, String>> {
        // Planning asks for row-length expressions before anything is emitted: stand-ins for
        // every scalar and pointer parameter let `ix` build them.
        let (saved_scal, saved_sptr) = (self.scal.clone(), self.sptr.clone());
        for (i, p) in self.f.params.iter().enumerate() {
            match self.m.ty(p.ty).elem {
                Elem::Ptr(_) => {
                    self.sptr.insert(p.value, (i, "(int64_t)0".to_string()));
                }
                Elem::Scalar(_) => {
                    self.scal.insert(p.value, "tk_plan".to_string());
                }
            }
        }
        for op in self.f.walk() {
            let od = self.f.op(op);
            let mut vals = od.results.clone();
            for r in od.op.regions() {
                vals.extend(self.f.region(r).args.iter().copied());
            }
            for v in vals {
                if self.ty(v).is_scalar() && !matches!(self.ty(v).elem, Elem::Ptr(_)) {
                    self.scal.entry(v).or_insert_with(|| "tk_plan".to_string());
                }
            }
        }
        let plan = self.plan_cube_inner();
        self.scal = saved_scal;
        self.sptr = saved_sptr;
        self.pending_reads.clear();
        plan
    }

    fn plan_cube_inner(&mut self) -> R<Result<Plan, String>> {
        let dots: Vec<OpId> = self
            .f
            .walk()
            .into_iter()
            .filter(|&o| matches!(self.f.op(o).op, Op::Dot { .. }))
            .collect();
        if dots.is_empty() {
            return Ok(Err(String::new()));
        }
        if !self.soc.has_fixpipe() {
            return Ok(Err(format!(
                "{} has no Fixpipe from L0C to GM (the coupled cube writes through the Unified Buffer), which tk does not generate yet",
                self.soc
            )));
        }
        let uses = self.uses_map();
        let uses_of = |v: Value| uses.get(&v).cloned().unwrap_or_default();
        let op_region = self.lv.op_region.clone();
        let region_of = |o: OpId| op_region.get(&o).copied();
        let mut plan = Plan::default();
        for &d in &dots {
            let Op::Dot { a, b, acc, .. } = self.f.op(d).op.clone() else { continue };
            let (ad, bd, accd) = (self.dtype(a)?, self.dtype(b)?, self.dtype(acc)?);
            if ad != bd
                || accd != DType::F32
                || !matches!(ad, DType::F16 | DType::BF16 | DType::F32)
            {
                return Ok(Err(format!(
                    "the cube path takes f16, bf16 or f32 operands with an f32 accumulator, not {ad} x {bd} -> {accd}"
                )));
            }
            let (m, f) = (self.m, self.f);
            let shape = |v: Value| m.ty(f.value_type(v)).shape.clone();
            let (sa, sb) = (shape(a), shape(b));
            if sa.len() != 2 || sb.len() != 2 {
                return Ok(Err("the cube path takes 2-D operands".into()));
            }
            if sa[0] < 2 {
                return Ok(Err(
                    "a 1-row left operand would put Mmad in GEMV mode; the vector dot handles it"
                        .into(),
                ));
            }
            for (v, role) in [(a, Role::A), (b, Role::B)] {
                let Some(lop) = self.def_op(v) else {
                    return Ok(Err("a dot operand is not a load".into()));
                };
                let Op::Load { ptr, mask, other } = self.f.op(lop).op.clone() else {
                    return Ok(Err(
                        "a dot operand is computed, not loaded (the cube core has no vector unit)"
                            .into(),
                    ));
                };
                if uses_of(v) != vec![d] || region_of(lop) != region_of(d) {
                    return Ok(Err(
                        "a loaded dot operand is used elsewhere or outside the dot's loop body"
                            .into(),
                    ));
                }
                if let (Some(_), Some(o)) = (mask, other) {
                    if !self.is_zero_splat(o) {
                        return Ok(Err("the cube path fills masked-off operand elements with zeros; this load's `other` is not 0".into()));
                    }
                }
                let s = shape(v);
                if !self.cube_rows_ok(ptr, mask, &s)? {
                    return Ok(Err("an operand load is not a per-row contiguous prefix (the cube copies rows with Nd2Nz)".into()));
                }
                let o = Operand { role, dtype: ad, rows: s[0], cols: s[1] };
                if o.cols.div_ceil(o.c0()) > 255 || o.rows.div_ceil(16) > 255 {
                    return Ok(Err(
                        "an operand tile is too large for one LoadData (255 fractals per repeat)"
                            .into(),
                    ));
                }
                plan.operands.insert(v, o);
            }
            // The accumulator chain.
            let sc = shape(acc);
            let chain = if self.is_zero_splat(acc) {
                plan.chains.push(Chain { m: sc[0], n: sc[1], span: self.f.op(d).span });
                plan.chains.len() - 1
            } else if let Some(&c) = plan.acc.get(&acc) {
                c
            } else if let ValueDef::RegionArg { region, index } = self.f.value(acc).def {
                // A loop-carried accumulator: init is zeros or an earlier chain value, the loop
                // yields this dot's result in the same position.
                let Some(&fop) = self.lv.region_parent.get(&region) else {
                    return Ok(Err("unexpected accumulator".into()));
                };
                let Op::For { init, body, .. } = self.f.op(fop).op.clone() else {
                    return Ok(Err(
                        "the accumulator is carried by something else than a for loop".into()
                    ));
                };
                let pos = index as usize;
                if pos == 0 || pos > init.len() || body != region {
                    return Ok(Err("unexpected accumulator".into()));
                }
                let yielded =
                    self.f.region(body).ops.last().and_then(|&o| match &self.f.op(o).op {
                        Op::Yield { values } => values.get(pos - 1).copied(),
                        _ => None,
                    });
                let r = self.f.op(d).results[0];
                if yielded != Some(r) {
                    return Ok(Err(
                        "the loop does not carry the dot's result back into its accumulator".into(),
                    ));
                }
                let c = if self.is_zero_splat(init[pos - 1]) {
                    plan.chains.push(Chain { m: sc[0], n: sc[1], span: self.f.op(d).span });
                    plan.chains.len() - 1
                } else if let Some(&c) = plan.acc.get(&init[pos - 1]) {
                    c
                } else {
                    return Ok(Err("the accumulator does not start as zeros".into()));
                };
                plan.acc.insert(acc, c);
                plan.acc.insert(self.f.op(fop).results[pos - 1], c);
                c
            } else {
                return Ok(Err("the accumulator does not start as zeros".into()));
            };
            if uses_of(acc).len() != 1 && !self.is_zero_splat(acc) {
                return Ok(Err(
                    "the accumulator is used besides the dot (it is updated in place)".into()
                ));
            }
            plan.acc.insert(self.f.op(d).results[0], chain);
            plan.dots.insert(d, chain);
        }
        // Chain values may only flow into dots, loops, stores and casts for stores.
        for (&v, &c) in plan.acc.clone().iter() {
            for u in uses_of(v) {
                match self.f.op(u).op.clone() {
                    Op::Dot { acc, .. } if acc == v && plan.dots.contains_key(&u) => {}
                    Op::Yield { .. } | Op::For { .. } => {}
                    Op::Store { value, ptr, mask } if value == v => {
                        let s = self.ty(v).shape.clone();
                        if !self.cube_rows_ok(ptr, mask, &s)? {
                            return Ok(Err(
                                "the accumulator's store is not a per-row contiguous prefix".into(),
                            ));
                        }
                    }
                    Op::Cast { value } if value == v => {
                        let r = self.f.op(u).results[0];
                        let rd = self.dtype(r)?;
                        if !matches!(rd, DType::F16 | DType::BF16) {
                            return Ok(Err(format!("the accumulator is cast to {rd}")));
                        }
                        for su in uses_of(r) {
                            match self.f.op(su).op.clone() {
                                Op::Store { value, ptr, mask } if value == r => {
                                    let s = self.ty(r).shape.clone();
                                    if !self.cube_rows_ok(ptr, mask, &s)? {
                                        return Ok(Err("the accumulator's store is not a per-row contiguous prefix".into()));
                                    }
                                }
                                _ => {
                                    return Ok(Err(
                                        "the cast accumulator is used besides a store".into()
                                    ))
                                }
                            }
                        }
                        plan.casts.insert(r, c);
                    }
                    _ => {
                        return Ok(Err(format!(
                            "the accumulator is used by `{}`, which needs the vector unit",
                            self.f.op(u).op.mnemonic()
                        )))
                    }
                }
            }
        }
        // Every other block of the kernel must be an index computation (scalar unit) or a
        // constant splat that is only used as `other`/initial value of the cube path.
        let cube_vals: HashSet<Value> =
            plan.operands.keys().chain(plan.acc.keys()).chain(plan.casts.keys()).copied().collect();
        for op in self.f.walk() {
            let od = self.f.op(op);
            for &r in &od.results {
                let ty = self.ty(r);
                if ty.is_scalar() || cube_vals.contains(&r) {
                    continue;
                }
                let d = match ty.elem {
                    Elem::Ptr(_) => continue,
                    Elem::Scalar(d) => d,
                };
                if self.is_index_op(&od.op, d) {
                    continue;
                }
                if self.is_zero_splat(r)
                    && uses_of(r).iter().all(|&u| match &self.f.op(u).op {
                        Op::Load { other: Some(o), .. } => {
                            *o == r && cube_vals.contains(&self.f.op(u).results[0])
                        }
                        Op::For { .. } | Op::Dot { .. } => true,
                        Op::Broadcast { .. } | Op::ExpandDims { .. } | Op::Reshape { .. } => true,
                        _ => false,
                    })
                {
                    continue;
                }
                return Ok(Err(format!(
                    "the kernel also computes a {d} block with `{}`, which needs the vector unit; the cube core has none and mixed cube/vector kernels are not generated yet",
                    od.op.mnemonic()
                )));
            }
        }
        Ok(Ok(plan))
    }

    /// The mask gives every row a contiguous prefix and the pointer is contiguous along rows.
    fn cube_rows_ok(&mut self, ptr: Value, mask: Option<Value>, shape: &[u32]) -> R<bool> {
        if shape.len() != 2 {
            return Ok(false);
        }
        let cols = shape[1];
        let contiguous = cols == 1
            || self.info.get(ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1)
                >= u64::from(cols);
        let ok = match mask {
            None => true,
            Some(mk) => self.row_len(mk, &["tk_r".to_string()])?.is_some(),
        };
        self.pending_reads.clear();
        Ok(contiguous && ok)
    }

    /// Bytes the plan needs in each cube memory with `nbuf` buffers per queue (each buffer
    /// aligned as the simulation and the hardware require).
    pub(super) fn cube_usage(plan: &Plan, nbuf: u64) -> CubeUsage {
        let mut u = CubeUsage::default();
        let mut biggest = 0;
        for o in plan.operands.values() {
            u.l1 += round_to(o.l1_bytes(), 32) * nbuf;
            match o.role {
                Role::A => u.l0a += round_to(o.l0_bytes(), 512) * nbuf,
                Role::B => u.l0b += round_to(o.l0_bytes(), 512) * nbuf,
            }
        }
        for c in &plan.chains {
            u.l0c += round_to(c.l0c_bytes(), 1024) * nbuf;
            if c.l0c_bytes() >= biggest {
                biggest = c.l0c_bytes();
                u.span = c.span;
            }
        }
        u
    }

    fn cube_queue(&mut self, pos: &'static str, bytes: u64, span: Span) -> String {
        let n = self.queues.iter().filter(|q| q.pos == pos).count();
        let name = format!("tk_q{}_{n}", pos.to_ascii_lowercase());
        self.queues.push(super::Queue { name: name.clone(), pos, bytes });
        let _ = span;
        name
    }

    /// Emits the scan of a 2-D access's rows (see the module doc). Returns the prefix `p` of the
    /// variables it declares: `p_a0` (offset of row 0), `p_pitch`, `p_vr`/`p_vc` (valid rows and
    /// columns when the valid part is a rectangle), `p_rect`, `p_full` (nothing masked off), and
    /// the per-row length and address expressions in terms of a row variable `p_r`.
    fn cube_scan(
        &mut self,
        ptr: Value,
        mask: Option<Value>,
        rows: u32,
        cols: u32,
    ) -> R<(String, String, String)> {
        let p = self.fresh("tk_s");
        let row = format!("{p}_r");
        let len = match mask {
            None => format!("(int64_t){cols}"),
            Some(mk) => self.row_len(mk, std::slice::from_ref(&row))?.ok_or_else(|| {
                err("EA001", "internal: cube access without a row-prefix mask", self.f.span)
            })?,
        };
        let addr = self.ix(ptr, &[row.clone(), "0".to_string()])?;
        let a0 = self.ix(ptr, &["0".to_string(), "0".to_string()])?;
        let a1 = self.ix(ptr, &["1".to_string(), "0".to_string()])?;
        self.flush_reads(Pipe::S);
        self.line(format!("const int64_t {p}_a0 = {a0};"));
        if rows > 1 {
            self.line(format!("const int64_t {p}_pitch = (int64_t)({a1}) - {p}_a0;"));
        } else {
            self.line(format!("const int64_t {p}_pitch = 0;"));
        }
        self.line(format!(
            "int64_t {p}_vr = 0;\n{ind}int64_t {p}_vc = 0;\n{ind}bool {p}_rect = true;\n{ind}bool {p}_full = true;",
            ind = "    ".repeat(self.ind)
        ));
        self.open(format!("for (int32_t {row} = 0; {row} < {rows}; ++{row})"));
        self.line(format!("const int64_t {p}_len = {len};"));
        self.line(format!("if ({p}_len != {cols}) {p}_full = false;"));
        self.open(format!("if ({p}_len > 0)"));
        self.line(format!(
            "if ({row} != {p}_vr || ({row} > 0 && {p}_len != {p}_vc) || (int64_t)({addr}) != {p}_a0 + (int64_t){row} * {p}_pitch) {p}_rect = false;"
        ));
        self.line(format!("if ({row} == 0) {p}_vc = {p}_len;"));
        self.line(format!("{p}_vr = {row} + 1;"));
        self.close();
        self.close();
        // Nd2Nz's srcDValue and Fixpipe's dstStride are 16-bit / positive.
        self.line(format!(
            "if ({p}_vr > 1 && ({p}_pitch < {p}_vc || {p}_pitch > 65535)) {p}_rect = false;"
        ));
        self.line(format!("(void){p}_full;"));
        Ok((p, len, addr))
    }

    /// A `load` feeding the cube: GM → L1 (Nd2Nz) → L0A/L0B, left in its L0 queue for the dot.
    pub(super) fn emit_cube_load(
        &mut self,
        op: OpId,
        ptr: Value,
        mask: Option<Value>,
        r: Value,
    ) -> R<()> {
        let span = self.f.op(op).span;
        let o = self
            .cube
            .as_ref()
            .and_then(|p| p.operands.get(&r))
            .cloned()
            .ok_or_else(|| err("EA001", "internal: cube load without a plan", span))?;
        let base = self.ptr_base(ptr).ok_or_else(|| {
            err("EA003", "the pointer of this load does not derive from one kernel parameter", span)
        })?;
        let g = self.gvar(base);
        let cty = ctype(o.dtype);
        let (l1pos, l0pos) = match o.role {
            Role::A => ("A1", "A2"),
            Role::B => ("B1", "B2"),
        };
        let q1 = self.cube_queue(l1pos, round_to(o.l1_bytes(), 32), span);
        let q0 = self.cube_queue(l0pos, round_to(o.l0_bytes(), 512), span);
        let v = Self::vname(r);
        let l1 = format!("{v}_l1");
        self.line(format!("AscendC::LocalTensor<{cty}> {l1} = {q1}.AllocTensor<{cty}>();"));
        self.open("");
        let (p, len, addr) = self.cube_scan(ptr, mask, o.rows, o.cols)?;
        let blocks32 = round_to(o.l1_bytes(), 32) / 32;
        self.line(format!(
            "if (!{p}_full) AscendC::InitConstValue({l1}, AscendC::InitConstValueParams<{cty}>(1, {blocks32}, 0, ({cty})(0.0f)));"
        ));
        let h = o.block_rows();
        self.open(format!("if ({p}_rect)"));
        let src_d = format!("(uint16_t)({p}_vr > 1 ? {p}_pitch : {p}_vc)");
        if o.blocked() {
            self.open(format!("for (int64_t {p}_b = 0; {p}_b * 16 < {p}_vr; ++{p}_b)"));
            self.line(format!(
                "AscendC::DataCopy({l1}[{p}_b * {}], {g}[{p}_a0 + {p}_b * 16 * {p}_pitch], AscendC::Nd2NzParams(1, (uint16_t)tk_min_len({p}_vr - {p}_b * 16, 16), (uint16_t){p}_vc, 0, {src_d}, 16, 1, 0));",
                16 * o.cols_pad()
            ));
            self.close();
        } else {
            self.line(format!(
                "if ({p}_vr > 0) AscendC::DataCopy({l1}, {g}[{p}_a0], AscendC::Nd2NzParams(1, (uint16_t){p}_vr, (uint16_t){p}_vc, 0, {src_d}, {h}, 1, 0));"
            ));
        }
        self.ind -= 1;
        self.line("} else {");
        self.ind += 1;
        let row = format!("{p}_r");
        self.open(format!("for (int32_t {row} = 0; {row} < {}; ++{row})", o.rows));
        self.line(format!("const int64_t {p}_len = {len};"));
        self.line(format!(
            "if ({p}_len > 0) AscendC::DataCopy({l1}[{}], {g}[{addr}], AscendC::Nd2NzParams(1, 1, (uint16_t){p}_len, 0, (uint16_t){p}_len, {h}, 1, 0));",
            o.l1_row(&row)
        ));
        self.close();
        self.close();
        self.line(format!("{q1}.EnQue({l1});"));
        self.line(format!("{l1} = {q1}.DeQue<{cty}>();"));
        self.close();
        // L1 -> L0.
        let l0 = format!("{v}_l0");
        self.line(format!("AscendC::LocalTensor<{cty}> {l0} = {q0}.AllocTensor<{cty}>();"));
        let fr = 512 / o.dtype.size_bytes();
        let m1 = o.rows.div_ceil(16);
        match (o.role, o.blocked()) {
            (Role::A, _) => {
                let k1 = o.cols.div_ceil(o.c0());
                self.open(format!("for (uint32_t tk_f = 0; tk_f < {m1}; ++tk_f)"));
                self.line(format!(
                    "AscendC::LoadData2DParams tk_ld;\n{i}tk_ld.repeatTimes = {k1};\n{i}tk_ld.srcStride = {m1};\n{i}tk_ld.ifTranspose = false;\n{i}AscendC::LoadData({l0}[tk_f * {}], {l1}[tk_f * {fr}], tk_ld);",
                    k1 * fr,
                    i = "    ".repeat(self.ind)
                ));
                self.close();
            }
            (Role::B, false) => {
                // NZ fractal (k1, n1) sits at n1 * K1 + k1; Zn wants it transposed at k1 * N1 + n1.
                let n1 = o.cols.div_ceil(16);
                self.open(format!("for (uint32_t tk_f = 0; tk_f < {m1}; ++tk_f)"));
                self.line(format!(
                    "AscendC::LoadData2DParams tk_ld;\n{i}tk_ld.repeatTimes = {n1};\n{i}tk_ld.srcStride = {m1};\n{i}tk_ld.ifTranspose = true;\n{i}AscendC::LoadData({l0}[tk_f * {}], {l1}[tk_f * {fr}], tk_ld);",
                    n1 * fr,
                    i = "    ".repeat(self.ind)
                ));
                self.close();
            }
            (Role::B, true) => {
                // 16-row block b, squares (b, n1) -> Zn fractals (2b, n1) and (2b + 1, n1).
                let n1 = o.cols.div_ceil(16);
                self.open(format!("for (uint32_t tk_f = 0; tk_f < {m1}; ++tk_f)"));
                self.line(format!(
                    "AscendC::LoadData2dTransposeParams tk_ld;\n{i}tk_ld.repeatTimes = {n1};\n{i}tk_ld.srcStride = 1;\n{i}tk_ld.dstGap = 0;\n{i}tk_ld.dstFracGap = {};\n{i}AscendC::LoadDataWithTranspose({l0}[tk_f * {}], {l1}[tk_f * {}], tk_ld);",
                    n1 - 1,
                    2 * n1 * fr,
                    2 * n1 * fr,
                    i = "    ".repeat(self.ind)
                ));
                self.close();
            }
        }
        self.line(format!("{q0}.EnQue({l0});"));
        self.line(format!("{q1}.FreeTensor({l1});"));
        self.pending_deque.insert(l0.clone(), (q0.clone(), o.dtype));
        self.cube_l0.insert(r, (q0, l0));
        Ok(())
    }

    /// Allocates the L0C buffer of a chain that starts here.
    pub(super) fn cube_chain_start(&mut self, chain: usize, span: Span) -> ChainVars {
        let bytes = self.cube.as_ref().map(|p| p.chains[chain].l0c_bytes()).unwrap_or(0);
        let q = self.cube_queue("CO1", round_to(bytes, 1024), span);
        let var = format!("tk_acc{chain}");
        let fresh = format!("tk_acc{chain}_fresh");
        self.line(format!("AscendC::LocalTensor<float> {var} = {q}.AllocTensor<float>();"));
        self.line(format!("bool {fresh} = true;"));
        if let Some(sc) = self.scopes.last_mut() {
            sc.frees.push((q.clone(), var.clone()));
        }
        let cv = ChainVars { queue: q, var, fresh, enqueued: false };
        self.cube_chains.insert(chain, cv.clone());
        cv
    }

    /// `acc + a @ b` on the cube: `Mmad` into the chain's L0C buffer.
    pub(super) fn emit_cube_dot(&mut self, op: OpId, a: Value, b: Value) -> R<()> {
        let span = self.f.op(op).span;
        let chain = self
            .cube
            .as_ref()
            .and_then(|p| p.dots.get(&op))
            .copied()
            .ok_or_else(|| err("EA001", "internal: cube dot without a plan", span))?;
        let cv = match self.cube_chains.get(&chain) {
            Some(cv) => cv.clone(),
            None => self.cube_chain_start(chain, span),
        };
        let (qa, la) = self
            .cube_l0
            .remove(&a)
            .ok_or_else(|| err("EA001", "internal: cube operand not loaded", span))?;
        let (qb, lb) = self
            .cube_l0
            .remove(&b)
            .ok_or_else(|| err("EA001", "internal: cube operand not loaded", span))?;
        self.use_tile(&la);
        self.use_tile(&lb);
        let (sa, sb) = (self.ty(a).shape.clone(), self.ty(b).shape.clone());
        let (m, k, n) = (sa[0], sa[1], sb[1]);
        self.open("");
        self.line("AscendC::MmadParams tk_mp;");
        self.line(format!(
            "tk_mp.m = {m};\n{i}tk_mp.n = {n};\n{i}tk_mp.k = {k};",
            i = "    ".repeat(self.ind)
        ));
        self.line(format!("tk_mp.cmatrixInitVal = {};", cv.fresh));
        self.line("tk_mp.cmatrixSource = false;");
        if (m / 16) * (n / 16) < 10 {
            // Small products: the next Mmad on the same L0C must wait for this one.
            self.line("AscendC::PipeBarrier<AscendC::PIPE_M>();");
        }
        self.line(format!("AscendC::Mmad({}, {la}, {lb}, tk_mp);", cv.var));
        self.line(format!("{} = false;", cv.fresh));
        self.close();
        self.line(format!("{qa}.FreeTensor({la});"));
        self.line(format!("{qb}.FreeTensor({lb});"));
        Ok(())
    }

    /// A store of an accumulator (or of its f16/bf16 cast): Fixpipe L0C → GM.
    pub(super) fn emit_cube_store(
        &mut self,
        op: OpId,
        ptr: Value,
        value: Value,
        mask: Option<Value>,
        chain: usize,
    ) -> R<()> {
        let span = self.f.op(op).span;
        let base = self.ptr_base(ptr).ok_or_else(|| {
            err(
                "EA003",
                "the pointer of this store does not derive from one kernel parameter",
                span,
            )
        })?;
        let g = self.gvar(base);
        let d = self.dtype(value)?;
        let quant = match d {
            DType::F16 => "QuantMode_t::F322F16",
            DType::BF16 => "QuantMode_t::F322BF16",
            _ => "QuantMode_t::NoQuant",
        };
        let cty = ctype(d);
        let shape = self.ty(value).shape.clone();
        let (rows, cols) = (shape[0], shape[1]);
        let r16 = rows.div_ceil(16) * 16;
        let mut cv = match self.cube_chains.get(&chain) {
            Some(cv) => cv.clone(),
            None => self.cube_chain_start(chain, span),
        };
        self.open("");
        let (p, len, addr) = self.cube_scan(ptr, mask, rows, cols)?;
        let row = format!("{p}_r");
        self.open(format!("if ({})", cv.fresh));
        // No product was accumulated (a loop without iterations): the value is still zeros.
        self.open(format!("for (int32_t {row} = 0; {row} < {rows}; ++{row})"));
        self.line(format!("const int64_t {p}_len = {len};"));
        self.line(format!(
            "for (int64_t tk_j = 0; tk_j < {p}_len; ++tk_j) {g}.SetValue({addr} + tk_j, ({cty})(0.0f));"
        ));
        self.close();
        self.ind -= 1;
        self.line("} else {");
        self.ind += 1;
        if !cv.enqueued {
            self.line(format!("{}.EnQue({});", cv.queue, cv.var));
            self.line(format!("{} = {}.DeQue<float>();", cv.var, cv.queue));
            cv.enqueued = true;
            self.cube_chains.insert(chain, cv.clone());
        }
        self.line("AscendC::FixpipeParamsV220 tk_fp;");
        self.line(format!("tk_fp.srcStride = {r16};"));
        self.line(format!("tk_fp.quantPre = {quant};"));
        self.line("tk_fp.ndNum = 1;");
        self.open(format!("if ({p}_rect)"));
        self.line(format!("tk_fp.nSize = (uint16_t){p}_vc;"));
        self.line(format!("tk_fp.mSize = (uint16_t){p}_vr;"));
        self.line(format!("tk_fp.dstStride = (uint32_t)({p}_vr > 1 ? {p}_pitch : {p}_vc);"));
        self.line(format!(
            "if ({p}_vr > 0) AscendC::Fixpipe<{cty}, float, AscendC::CFG_ROW_MAJOR>({g}[{p}_a0], {}, tk_fp);",
            cv.var
        ));
        self.ind -= 1;
        self.line("} else {");
        self.ind += 1;
        self.open(format!("for (int32_t {row} = 0; {row} < {rows}; ++{row})"));
        self.line(format!("const int64_t {p}_len = {len};"));
        self.line(format!("tk_fp.nSize = (uint16_t){p}_len;"));
        self.line("tk_fp.mSize = 1;");
        self.line(format!("tk_fp.dstStride = (uint32_t)tk_imax<int64_t>({p}_len, 1);"));
        self.line(format!(
            "if ({p}_len > 0) AscendC::Fixpipe<{cty}, float, AscendC::CFG_ROW_MAJOR>({g}[{addr}], {}[{row} * 16], tk_fp);",
            cv.var
        ));
        self.close();
        self.close();
        self.close();
        self.close();
        Ok(())
    }

    /// The chain a stored value belongs to (an accumulator or its cast), in cube mode.
    pub(super) fn cube_store_chain(&self, value: Value) -> Option<usize> {
        let p = self.cube.as_ref()?;
        p.acc.get(&value).or_else(|| p.casts.get(&value)).copied()
    }

    /// Reports the cube decision: a remark when a kernel with `dot` stays on the vector unit.
    pub(super) fn cube_remark(&mut self, why: &str, span: Span) {
        if why.is_empty() {
            return;
        }
        self.remarks.push(
            Diagnostic::remark(
                "RA008",
                "dot runs on the vector unit (Axpy per row and k step), not on the cube",
                span,
            )
            .with_note(why.to_string()),
        );
    }
}
