//! `dot` as a register-blocked micro-kernel.
//!
//! `out = acc + a @ b` with `a: [M, K]`, `b: [K, N]` and `acc, out: [M, N]`, all stack arrays in
//! row-major order (the operands of a `dot` are always materialised, see `plan.rs`). The result
//! is computed in tiles of `MR` rows × `NV` vectors of `W` lanes (6 × 16 with AVX2: twelve
//! accumulator registers, two for a row of `b`, one for a broadcast element of `a`): the tile
//! of `acc` is loaded into registers, every `k` adds `a[i, k] · b[k, j..j+W]` with a fused
//! multiply-add, and the tile is stored once at the end. Tiles at the bottom edge have fewer
//! rows, tiles at the right edge fewer vectors, the last one stored with a lane mask (loads may
//! read past a row: those lanes only feed lanes that are never stored, and every array has a
//! vector of padding at its end). Inputs of a narrower type (f16, bf16, i8) are converted as
//! they are loaded; every product is one `fma` in f32 (or a wrapping multiply-add in i32), in
//! `k` order, as the crate's semantics say.
//!
//! When `acc` has no other use and owns its array (a loop-carried value or a fresh result), the
//! tile is written back in place, so that `acc = dot(a, b, acc)` in a loop copies nothing.

use crate::codegen::{Gen, Lv, R};
use crate::lanes::V;
use inkwell::values::{IntValue, PointerValue};
use tk_ir::{DType, Elem, Op, OpData, Value, ValueDef};

/// Rows of a micro-tile.
const MR: u64 = 6;
/// Vectors of a micro-tile along a row.
const NV: u64 = 2;
/// Unrolling of the `k` loop.
const KU: u64 = 4;

struct Dot<'ctx> {
    pa: PointerValue<'ctx>,
    pb: PointerValue<'ctx>,
    pc: PointerValue<'ctx>,
    out: PointerValue<'ctx>,
    adt: DType,
    bdt: DType,
    cdt: DType,
    k: u64,
    n: u64,
    w: u32,
}

impl<'a, 'ctx> Gen<'a, 'ctx> {
    /// True if `v` has one use and its array belongs to it alone.
    fn owns_array(&self, v: Value) -> bool {
        if self.plan.uses.get(&v).copied().unwrap_or(0) != 1 {
            return false;
        }
        match self.f.value(v).def {
            ValueDef::RegionArg { region, .. } => self
                .f
                .walk()
                .iter()
                .any(|&o| matches!(&self.f.op(o).op, Op::For { body, .. } if *body == region)),
            ValueDef::Result { op, .. } => {
                let od = self.f.op(op);
                matches!(od.op, Op::Dot { .. })
                    || crate::plan::is_fusible(self.ir, self.f, &self.info, od)
            }
            ValueDef::Param(_) => false,
        }
    }

    pub(crate) fn emit_dot_tiled(&mut self, od: &OpData, a: Value, b: Value, acc: Value) -> R<()> {
        let (aty, bty) = (self.ty(a)?, self.ty(b)?);
        let (&[m, ka], &[kb, nn]) = (aty.shape.as_slice(), bty.shape.as_slice()) else {
            return Err(self.mal("dot needs 2-D operands"));
        };
        if ka != kb {
            return Err(self.mal("dot inner dimensions differ"));
        }
        let (adt, bdt) = (self.dtype(a)?, self.dtype(b)?);
        let rv = self.res(od, 0)?;
        let rty = self.ty(rv)?;
        let cdt = self.dtype(rv)?;
        if cdt.is_float() != adt.is_float() || bdt.is_float() != adt.is_float() {
            return Err(self.unsup(format!("dot of {adt} and {bdt} into {cdt}")));
        }
        let pc = self.block_of(acc)?;
        let out = if self.owns_array(acc) { pc } else { self.alloc(rty.elem, rty.numel())? };
        let w = if cdt.bits() == 64 { (self.vw / 2).max(1) } else { self.vw };
        let d = Dot {
            pa: self.block_of(a)?,
            pb: self.block_of(b)?,
            pc,
            out,
            adt,
            bdt,
            cdt,
            k: ka as u64,
            n: nn as u64,
            w,
        };
        let m = m as u64;
        let (full_rows, rest_rows) = (m / MR, m % MR);
        if full_rows > 0 {
            self.emit_loop(0, full_rows, |g, t| {
                let i0 = g.sc.b.build_int_mul(t, g.i64c(MR), "i0")?;
                g.dot_row_tiles(&d, i0, MR)
            })?;
        }
        if rest_rows > 0 {
            self.dot_row_tiles(&d, self.i64c(full_rows * MR), rest_rows)?;
        }
        self.set(rv, Lv::B(out))
    }

    /// All the column tiles of `rows` rows starting at `i0`.
    fn dot_row_tiles(&mut self, d: &Dot<'ctx>, i0: IntValue<'ctx>, rows: u64) -> R<()> {
        let tile = NV * d.w as u64;
        let (full, rest) = (d.n / tile, d.n % tile);
        if full > 0 {
            self.emit_loop(0, full, |g, t| {
                let j0 = g.sc.b.build_int_mul(t, g.i64c(tile), "j0")?;
                g.dot_tile(d, i0, j0, rows, NV, d.w as u64)
            })?;
        }
        if rest > 0 {
            let vecs = rest.div_ceil(d.w as u64);
            let last = rest - (vecs - 1) * d.w as u64;
            self.dot_tile(d, i0, self.i64c(full * tile), rows, vecs, last)?;
        }
        Ok(())
    }

    /// One micro-tile: `rows` rows from `i0`, `vecs` vectors from column `j0`, the last vector
    /// with `last` valid lanes.
    fn dot_tile(
        &mut self,
        d: &Dot<'ctx>,
        i0: IntValue<'ctx>,
        j0: IntValue<'ctx>,
        rows: u64,
        vecs: u64,
        last: u64,
    ) -> R<()> {
        let w = d.w;
        let ce = Elem::Scalar(d.cdt);
        let ct = self.sc.reg_ty(ce);
        let vt = self.sc.vty(ct, w);
        let mut accs: Vec<Vec<PointerValue<'ctx>>> = Vec::new();
        // Offsets of the tile's rows in `acc`/`out`.
        let mut row_off = Vec::new();
        for r in 0..rows {
            let i = self.sc.b.build_int_add(i0, self.i64c(r), "i")?;
            let o = self.sc.b.build_int_mul(i, self.i64c(d.n), "ro")?;
            row_off.push(self.sc.b.build_int_add(o, j0, "ro")?);
            let mut row = Vec::new();
            for v in 0..vecs {
                let slot = self.ab.build_alloca(vt, "dacc")?;
                let off =
                    self.sc.b.build_int_add(row_off[r as usize], self.i64c(v * w as u64), "o")?;
                let p = self.elem_ptr(d.pc, ce, off)?;
                let x = self.sc.b.build_load(vt, p, "c")?;
                self.sc.set_align(x, d.cdt.size_bytes());
                self.sc.b.build_store(slot, x)?;
                row.push(slot);
            }
            accs.push(row);
        }
        let (ae, be) = (Elem::Scalar(d.adt), Elem::Scalar(d.bdt));
        let a_rows: Vec<IntValue<'ctx>> = (0..rows)
            .map(|r| {
                let i = self.sc.b.build_int_add(i0, self.i64c(r), "i")?;
                Ok(self.sc.b.build_int_mul(i, self.i64c(d.k), "ar")?)
            })
            .collect::<R<_>>()?;
        let step = |g: &mut Self, k: IntValue<'ctx>| -> R<()> {
            let brow = g.sc.b.build_int_mul(k, g.i64c(d.n), "br")?;
            let brow = g.sc.b.build_int_add(brow, j0, "br")?;
            let mut bv: Vec<V<'ctx>> = Vec::new();
            let bmt = g.sc.vty(g.sc.mem_ty(be), w);
            for v in 0..vecs {
                let off = g.sc.b.build_int_add(brow, g.i64c(v * w as u64), "bo")?;
                let p = g.elem_ptr(d.pb, be, off)?;
                let x = g.sc.b.build_load(bmt, p, "b")?;
                g.sc.set_align(x, d.bdt.size_bytes());
                bv.push(g.sc.cast(d.bdt, d.cdt, x)?);
            }
            for r in 0..rows as usize {
                let off = g.sc.b.build_int_add(a_rows[r], k, "ao")?;
                let x = g.load_mem(g.elem_ptr(d.pa, ae, off)?, ae)?;
                let x = g.sc.cast(d.adt, d.cdt, x)?;
                let xs = g.sc.splat(x, w);
                for (v, &bx) in bv.iter().enumerate() {
                    let slot = accs[r][v];
                    let c = g.sc.b.build_load(vt, slot, "c")?;
                    let nc = if d.cdt.is_float() {
                        g.sc.vfma(xs, bx, c)?
                    } else {
                        g.sc.add(c, g.sc.mul(xs, bx))
                    };
                    g.sc.b.build_store(slot, nc)?;
                }
            }
            Ok(())
        };
        // The k loop unrolled by KU: the pass pipeline does not unroll.
        let (kfull, krest) = (d.k / KU, d.k % KU);
        if kfull > 0 {
            self.emit_loop(0, kfull, |g, kk| {
                let base = g.sc.b.build_int_mul(kk, g.i64c(KU), "k")?;
                for u in 0..KU {
                    let k = g.sc.b.build_int_add(base, g.i64c(u), "k")?;
                    step(g, k)?;
                }
                Ok(())
            })?;
        }
        for k in kfull * KU..kfull * KU + krest {
            step(self, self.i64c(k))?;
        }
        for r in 0..rows as usize {
            for v in 0..vecs {
                let x = self.sc.b.build_load(vt, accs[r][v as usize], "c")?;
                let off = self.sc.b.build_int_add(row_off[r], self.i64c(v * w as u64), "o")?;
                let p = self.elem_ptr(d.out, ce, off)?;
                if v + 1 == vecs && last < w as u64 {
                    let bt = self.sc.cx.bool_type();
                    let lanes: Vec<IntValue<'ctx>> =
                        (0..w as u64).map(|i| bt.const_int((i < last) as u64, false)).collect();
                    let mask = inkwell::types::VectorType::const_vector(&lanes);
                    let al = self.sc.cx.i32_type().const_int(d.cdt.size_bytes() as u64, false);
                    self.sc.intrinsic_void(
                        "llvm.masked.store",
                        &[vt, p.get_type().into()],
                        &[x, p.into(), al.into(), mask.into()],
                    )?;
                } else {
                    let st = self.sc.b.build_store(p, x)?;
                    let _ = st.set_alignment(d.cdt.size_bytes());
                }
            }
        }
        Ok(())
    }
}
