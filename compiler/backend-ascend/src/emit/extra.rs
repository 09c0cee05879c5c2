//! The ops without a vector form on Ascend, lowered on the scalar unit (each with a remark):
//! `cumsum`, `reduce`/`scan` with a user combine function, `histogram`; and atomics, which
//! become DMA atomics: `SetAtomicAdd/Max/Min<T>()`, then `DataCopyPad` UB → GM (one row, or one
//! element from its own 32-byte slot for scattered addresses), then `SetAtomicNone()`.
//!
//! Ascend's DMA atomics return nothing, so an atomic whose old values are used, `atomic_xchg`
//! and `atomic_cas` are errors; so are atomics on 310P, which lacks `DataCopyPad`.

use super::{err, flat_expr, Emitter, Pipe, Scope, R};
use crate::cxx::ctype;
use crate::layout::Layout;
use crate::Soc;
use tk_diag::Diagnostic;
use tk_ir::{AtomicOp, BinaryOp, DType, Op, OpId, RegionId, Value};

impl<'a> Emitter<'a> {
    /// Element `idx` of `v` as a C++ expression (a tile read or an index expression).
    fn elem(&mut self, v: Value, idx: &[String]) -> R<String> {
        if self.dtype(v)?.is_float()
            && !self.tiles.contains_key(&v)
            && self.splat_scalar(v)?.is_none()
        {
            let t = self.tile(v)?;
            self.pending_reads.push(t.var.clone());
            return Ok(format!("{}.GetValue({})", t.var, flat_expr(&t.layout, idx)));
        }
        if let Some(t) = self.tiles.get(&v).cloned() {
            if t.dtype.is_float() {
                self.use_tile(&t.var);
                self.pending_reads.push(t.var.clone());
                return Ok(format!("{}.GetValue({})", t.var, flat_expr(&t.layout, idx)));
            }
        }
        self.ix_or_tile(v, idx)
    }

    /// `cumsum`, `reduce` with a combine function, `scan` with a combine function: a scalar loop
    /// along `axis` for every other index, combining in index order (reversed for a reverse
    /// cumsum), exactly as the interpreter does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit_fold(
        &mut self,
        op: OpId,
        r: Value,
        axis: u8,
        value: Value,
        combine: Option<RegionId>,
        scan: bool,
        reverse: bool,
    ) -> R<()> {
        let span = self.f.op(op).span;
        let d = self.dtype(value)?;
        let what = match (combine.is_some(), scan) {
            (false, _) => "cumsum",
            (true, true) => "scan with a combine function",
            (true, false) => "reduce with a combine function",
        };
        self.remark("RA011", format!("{what} on {d} runs on the scalar unit"), span);
        let shape = self.ty(value).shape.clone();
        let axis = axis as usize;
        let n = shape[axis];
        let outer: Vec<u32> =
            shape.iter().enumerate().filter(|&(i, _)| i != axis).map(|(_, &s)| s).collect();
        let oidx: Vec<String> = (0..outer.len()).map(|i| format!("tk_f{i}")).collect();
        let at = |k: &str| {
            let mut v = oidx.clone();
            v.insert(axis, k.to_string());
            v
        };
        let kk = if reverse { format!("({} - 1 - tk_k)", n) } else { "tk_k".to_string() };
        let first = if reverse { format!("{}", n - 1) } else { "0".to_string() };
        let x0 = self.elem(value, &at(&first))?;
        let x = self.elem(value, &at(&kk))?;
        let cty = ctype(d);
        // Storage of the result: a scalar, or a tile indexed like the operand (scan) or like the
        // operand without `axis` (reduce).
        let rt = if scan || !outer.is_empty() { Some(self.result_tile(r, d)?) } else { None };
        self.flush_reads(Pipe::S);
        if let Some(t) = &rt {
            let v = t.var.clone();
            self.read(&v, Pipe::S);
        }
        let res = format!("s{}", r.0);
        if rt.is_none() {
            self.line(format!("{cty} {res};"));
        }
        let store = |e: &mut Self, idx: &[String]| -> String {
            match &rt {
                Some(t) => format!("{}.SetValue({}, tk_acc);", t.var, flat_expr(&t.layout, idx)),
                None => {
                    let _ = e;
                    format!("{res} = tk_acc;")
                }
            }
        };
        self.open_loops(&outer, &oidx);
        self.line(format!("{cty} tk_acc = {x0};"));
        if scan {
            let s = store(self, &at(&first));
            self.line(s);
        }
        self.open(format!("for (int32_t tk_k = 1; tk_k < {n}; ++tk_k)"));
        self.line(format!("const {cty} tk_x = {x};"));
        match combine {
            None => {
                let e =
                    super::binary_expr(BinaryOp::Add, d, "tk_acc", "tk_x").ok_or_else(|| {
                        err(
                            "EA021",
                            format!("cumsum on {d} is not supported by the Ascend backend"),
                            span,
                        )
                    })?;
                self.line(format!("tk_acc = {e};"));
            }
            Some(body) => {
                let args = self.f.region(body).args.clone();
                if args.len() != 2 {
                    return Err(err(
                        "EA001",
                        "internal: a combine region takes two arguments",
                        span,
                    ));
                }
                self.scal.insert(args[0], "tk_acc".to_string());
                self.scal.insert(args[1], "tk_x".to_string());
                let ops = self.f.region(body).ops.clone();
                let saved = self.pos;
                self.scopes.push(Scope::default());
                self.emit_ops(&ops, body, self.lv.end[&op])?;
                let y = match ops.last().map(|&o| &self.f.op(o).op) {
                    Some(Op::Yield { values }) if values.len() == 1 => values[0],
                    _ => {
                        return Err(err(
                            "EA001",
                            "internal: a combine region yields one value",
                            span,
                        ))
                    }
                };
                let e = self.ix(y, &[])?;
                self.flush_reads(Pipe::S);
                self.line(format!("tk_acc = ({cty})({e});"));
                self.exit_scope();
                self.pos = saved;
            }
        }
        if scan {
            let s = store(self, &at(&kk));
            self.line(s);
        }
        self.close();
        if !scan {
            let s = store(self, &oidx);
            self.line(s);
        }
        self.close_loops(outer.len());
        match &rt {
            Some(t) => {
                let v = t.var.clone();
                self.did(&v, Pipe::S);
            }
            None => {
                self.scal.insert(r, res);
            }
        }
        Ok(())
    }

    /// `histogram(x, bins, mask)`: counts on the scalar unit into a zeroed i32 tile.
    pub(super) fn emit_histogram(
        &mut self,
        op: OpId,
        r: Value,
        value: Value,
        bins: u32,
        mask: Option<Value>,
    ) -> R<()> {
        let span = self.f.op(op).span;
        self.remark("RA011", "histogram runs on the scalar unit", span);
        let shape = self.ty(value).shape.clone();
        let idx: Vec<String> = (0..shape.len()).map(|i| format!("tk_i{i}")).collect();
        let v = self.ix_or_tile(value, &idx)?;
        let m = match mask {
            Some(mk) => Some(self.ix(mk, &idx)?),
            None => None,
        };
        let t = self.result_tile(r, DType::I32)?;
        self.line(format!("AscendC::Duplicate<int32_t>({}, (int32_t)0, {bins});", t.var));
        self.did(&t.var, Pipe::V);
        self.flush_reads(Pipe::S);
        self.read(&t.var, Pipe::S);
        self.open_loops(&shape, &idx);
        let body = format!(
            "const int64_t tk_b = (int64_t)({v}); if (tk_b >= 0 && tk_b < {bins}) {t}.SetValue((uint32_t)tk_b, {t}.GetValue((uint32_t)tk_b) + 1);",
            t = t.var
        );
        match m {
            Some(m) => self.line(format!("if ({m}) {{ {body} }}")),
            None => self.line(body),
        }
        self.close_loops(shape.len());
        self.did(&t.var, Pipe::S);
        Ok(())
    }

    /// An atomic read-modify-write whose old values nobody reads: DMA atomics.
    pub(super) fn emit_atomic(
        &mut self,
        op: OpId,
        aop: Option<AtomicOp>,
        ptr: Value,
        value: Value,
        mask: Option<Value>,
    ) -> R<()> {
        let od = self.f.op(op);
        let span = od.span;
        let used = od.results.iter().any(|r| self.all_uses.get(r).is_some_and(|u| !u.is_empty()));
        let d = self.dtype(value)?;
        let unsupported = |msg: String| -> R<()> {
            Err(Box::new(
                Diagnostic::error("EA034", msg, span)
                    .with_note("Ascend's atomics are DMA atomics: SetAtomicAdd/SetAtomicMax/SetAtomicMin make a copy from the Unified Buffer to GM add to (or take the max/min with) what GM holds, and return nothing"),
            ))
        };
        let set = match aop {
            Some(AtomicOp::Add) => "SetAtomicAdd",
            Some(AtomicOp::Max) => "SetAtomicMax",
            Some(AtomicOp::Min) => "SetAtomicMin",
            Some(AtomicOp::Xchg) => {
                return unsupported("atomic_xchg is not available on Ascend".to_string())
            }
            None => return unsupported("atomic_cas is not available on Ascend".to_string()),
        };
        if used {
            return unsupported(
                "the old values returned by this atomic are used, but Ascend's atomics return nothing"
                    .to_string(),
            );
        }
        if !matches!(d, DType::F32 | DType::F16 | DType::I32) {
            return unsupported(format!(
                "atomics on {d} are not available on Ascend (f32, f16 and i32 are)"
            ));
        }
        if self.soc != Soc::Ascend910B {
            return Err(err(
                "EA035",
                format!("atomics need DataCopyPad, which {} lacks", self.soc),
                span,
            ));
        }
        let base = self.ptr_base(ptr).ok_or_else(|| {
            err(
                "EA003",
                "the pointer of this atomic does not derive from one kernel parameter",
                span,
            )
        })?;
        let g = self.gvar(base);
        let cty = ctype(d);
        let esz = d.size_bytes();
        let per_blk = 32 / esz;
        let shape = self.ty(value).shape.clone();
        if self.looping {
            self.calc_dma_in_loop = true;
        }
        if shape.is_empty() {
            let v = self.ix_or_tile(value, &[])?;
            let c = match mask {
                Some(mk) => self.ix(mk, &[])?,
                None => "true".to_string(),
            };
            let off = self.ix(ptr, &[])?;
            let t = self.temp_tile(d, &Layout::of(&[per_blk]), span, "atomic operand");
            self.flush_reads(Pipe::S);
            self.read(&t.var, Pipe::S);
            self.open(format!("if ({c})"));
            self.line(format!("{}.SetValue(0, ({cty})({v}));", t.var));
            self.line("AscendC::SetFlag<AscendC::HardEvent::S_MTE3>(0);");
            self.line("AscendC::WaitFlag<AscendC::HardEvent::S_MTE3>(0);");
            self.line(format!("AscendC::{set}<{cty}>();"));
            self.line(format!(
                "AscendC::DataCopyPad({g}[{off}], {}, AscendC::DataCopyExtParams(1, {esz}, 0, 0, 0));",
                t.var
            ));
            self.line("AscendC::SetAtomicNone();");
            self.close();
            self.after_atomic();
            return Ok(());
        }
        self.remark(
            "RA012",
            format!("atomic through DMA atomics ({set}, then DataCopyPad per row or per element)"),
            span,
        );
        let rank = shape.len();
        let cols = *shape.last().unwrap_or(&1);
        let rows_idx: Vec<String> = (0..rank - 1).map(|i| format!("tk_r{i}")).collect();
        let contiguous = cols == 1
            || self.info.get(ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1)
                >= u64::from(cols);
        let len = match mask {
            None => Some(format!("(int64_t){cols}")),
            Some(mk) => self.row_len(mk, &rows_idx)?,
        };
        if let (true, Some(len), true) =
            (contiguous, len, d.is_float() || self.tiles.contains_key(&value))
        {
            // Whole rows.
            let t = self.tile(value)?;
            let mut at0 = rows_idx.clone();
            at0.push("0".to_string());
            let addr = self.ix(ptr, &at0)?;
            self.flush_reads(Pipe::S);
            self.read(&t.var, Pipe::Mte3);
            self.line(format!("AscendC::{set}<{cty}>();"));
            self.open("");
            self.open_loops(&shape[..rank - 1], &rows_idx);
            let row = super::row_offset(&t.layout, &rows_idx);
            let src = if row == "0" { t.var.clone() } else { format!("{}[{row}]", t.var) };
            self.line(format!("const int64_t tk_len = {len};"));
            self.line(format!(
                "if (tk_len > 0) AscendC::DataCopyPad({g}[{addr}], {src}, AscendC::DataCopyExtParams(1, (uint32_t)(tk_len * {esz}), 0, 0, 0));"
            ));
            self.close_loops(rank - 1);
            self.close();
            self.line("AscendC::SetAtomicNone();");
            self.after_atomic();
            return Ok(());
        }
        // Scattered: every element from its own 32-byte slot, one DataCopyPad each.
        let idx: Vec<String> = (0..rank).map(|i| format!("tk_i{i}")).collect();
        let total: u32 = shape.iter().product();
        let slots = self.temp_tile(d, &Layout::of(&[total * per_blk]), span, "atomic slots");
        let v = self.elem(value, &idx)?;
        let addr = self.ix(ptr, &idx)?;
        let m = match mask {
            Some(mk) => Some(self.ix(mk, &idx)?),
            None => None,
        };
        let flat = super::logical_flat(&shape, &idx);
        self.flush_reads(Pipe::S);
        self.read(&slots.var, Pipe::S);
        self.open_loops(&shape, &idx);
        self.line(format!(
            "{}.SetValue((uint32_t)(({flat}) * {per_blk}), ({cty})({v}));",
            slots.var
        ));
        self.close_loops(rank);
        self.line("AscendC::SetFlag<AscendC::HardEvent::S_MTE3>(0);");
        self.line("AscendC::WaitFlag<AscendC::HardEvent::S_MTE3>(0);");
        self.line(format!("AscendC::{set}<{cty}>();"));
        self.open_loops(&shape, &idx);
        let copy = format!(
            "AscendC::DataCopyPad({g}[{addr}], {}[(uint32_t)(({flat}) * {per_blk})], AscendC::DataCopyExtParams(1, {esz}, 0, 0, 0));",
            slots.var
        );
        match m {
            Some(m) => self.line(format!("if ({m}) {copy}")),
            None => self.line(copy),
        }
        self.close_loops(rank);
        self.line("AscendC::SetAtomicNone();");
        self.after_atomic();
        Ok(())
    }

    /// The copy-out of an atomic reads UB tiles that later ops may overwrite (temporaries are
    /// freed right after): wait for it before any vector or scalar work.
    fn after_atomic(&mut self) {
        self.line("AscendC::SetFlag<AscendC::HardEvent::MTE3_V>(0);");
        self.line("AscendC::WaitFlag<AscendC::HardEvent::MTE3_V>(0);");
        self.line("AscendC::SetFlag<AscendC::HardEvent::MTE3_S>(0);");
        self.line("AscendC::WaitFlag<AscendC::HardEvent::MTE3_S>(0);");
        self.work(Pipe::Mte3);
    }
}
