//! Fused loops: element-wise expression trees evaluated a vector of lanes at a time inside the
//! loops that consume them (see `plan.rs` for which values are fused).
//!
//! A loop runs over one block shape: the outer dimensions are scalar loops, the last dimension
//! is split into *chunks* of `W` lanes (`W` = the native f32 vector width, 8 with AVX2 and 16
//! with AVX-512, or less for short dimensions) plus one masked tail chunk. Inside a chunk,
//! [`Gen::eval`] computes a value at the chunk's coordinates: every value is seen through a
//! *map* that says which loop dimension indexes each of its dimensions (`None` for a size-1
//! dimension), which is how `broadcast`, `expand_dims` and squeezing `reshape`s are free. A value
//! whose dimensions do not include the loop's last one is a scalar in the chunk (one per row,
//! splat when combined with lanes). Values are memoised per chunk, so a tree shared by several
//! consumers in one loop is computed once.
//!
//! Memory accesses use the axis analysis (`tk_ir::analysis`): a pointer block whose contiguity
//! along the vector dimension is a multiple of `W` is a vector load or store at the address of
//! the chunk's first lane (aligned as far as its divisibility proves); one whose constancy is a
//! multiple of `W` is one scalar access; anything else is a gather or scatter. Masked accesses
//! test whether every lane is on and use a plain vector access then, `llvm.masked.load` /
//! `llvm.masked.store` otherwise (on AVX2 a masked store is much slower than a plain one); the
//! tail chunk always uses masked accesses, so no lane past the block is ever touched.
//!
//! When every mask of a loop's accesses is an `and` of comparisons between an index that the
//! axis analysis shows increasing along one dimension and a bound (`offs < n`, `rows[:, None] <
//! M && cols[None, :] < N`), one scalar test before the loop says whether the whole block is on;
//! the loop is then emitted twice (`versioned`): a copy with those masks known true (plain
//! accesses, no per-chunk test, `where(mask, a, b)` folded to `a`) and the general copy. Loops
//! that also evaluate transcendentals or float divisions keep one copy (their arithmetic hides
//! the tests, and code size is compile time).
//!
//! Reductions accumulate whole vectors (four independent accumulators for long rows, to hide
//! the add latency) and reduce horizontally at the end by halving shuffles; `max`/`min` use
//! `llvm.maximum`/`llvm.minimum` lane-wise, which propagate NaN like tk's rules. A float sum is
//! therefore reassociated: partial sums per lane and accumulator, then a fixed tree.

use crate::codegen::{Gen, Lv, R};
use crate::lanes::{iv, lanes, pv, V};
use crate::plan::squeezed;
use inkwell::values::{IntValue, PointerValue};
use tk_ir::{BinaryOp, DType, Elem, Op, OpData, OpId, ReduceKind, Type, UnaryOp, Value};

/// The coordinates of the chunk being emitted.
#[derive(Clone, Debug)]
pub(crate) struct Chunk<'ctx> {
    /// One i64 per loop dimension; the last is the chunk's first index.
    pub coords: Vec<IntValue<'ctx>>,
    /// Lanes along the last loop dimension (1 = scalar loop).
    pub w: u32,
    /// In the tail chunk: which lanes exist (a constant `<w x i1>`).
    pub valid: Option<V<'ctx>>,
}

/// For every dimension of a value, the loop dimension that indexes it (`None`: size 1).
pub(crate) type Map = Vec<Option<u8>>;

/// The body of a chunk loop: gets the chunk's first index and the tail's lane mask.
type ChunkBody<'b, 'a, 'ctx> =
    dyn FnMut(&mut Gen<'a, 'ctx>, IntValue<'ctx>, Option<V<'ctx>>) -> R<()> + 'b;

/// Chunks per iteration of an element-wise loop.
const ELEMENTWISE_UNROLL: u64 = 2;

/// Number of independent vector accumulators of a reduction along the vector dimension.
const REDUCE_ACCS: u64 = 4;

fn row_major_strides(shape: &[u32]) -> Vec<u64> {
    let mut s = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as u64;
    }
    s
}

fn pow2_part(n: u64) -> u64 {
    if n == 0 {
        1 << 62
    } else {
        n & n.wrapping_neg()
    }
}

/// Identity map of a rank-`r` loop value.
fn ident(r: usize) -> Map {
    (0..r).map(|d| Some(d as u8)).collect()
}

impl<'a, 'ctx> Gen<'a, 'ctx> {
    /// Lanes of a loop whose last dimension has `n` elements.
    pub(crate) fn loop_w(&self, n: u32) -> u32 {
        if n <= 1 {
            1
        } else {
            self.vw.min(n.next_power_of_two())
        }
    }

    fn chunk(&self) -> R<&Chunk<'ctx>> {
        self.chunk.as_ref().ok_or_else(|| self.mal("a fused value used outside a loop"))
    }

    fn enter(&mut self, coords: Vec<IntValue<'ctx>>, w: u32, valid: Option<V<'ctx>>) {
        self.chunk = Some(Chunk { coords, w, valid });
        self.memo.clear();
    }

    fn leave(&mut self) {
        self.chunk = None;
        self.memo.clear();
    }

    /// The dimension of a value that runs along the chunk's lanes, if any.
    fn vdim(&self, map: &Map) -> R<Option<usize>> {
        let last = self.chunk()?.coords.len().saturating_sub(1) as u8;
        Ok(map.iter().position(|&m| m == Some(last)))
    }

    /// Lanes a value seen through `map` has when `lanes` are wanted.
    fn sub_lanes(&self, map: &Map, lanes: u32) -> R<u32> {
        Ok(if lanes > 1 && self.vdim(map)?.is_some() { lanes } else { 1 })
    }

    fn coord(&self, d: Option<u8>) -> R<IntValue<'ctx>> {
        match d {
            None => Ok(self.i64c(0)),
            Some(k) => self
                .chunk()?
                .coords
                .get(k as usize)
                .copied()
                .ok_or_else(|| self.mal("loop coordinate out of range")),
        }
    }

    /// Row-major element offset of the chunk's (first) element in a value of `shape`.
    fn flat(&self, shape: &[u32], map: &Map) -> R<IntValue<'ctx>> {
        let strides = row_major_strides(shape);
        let mut off: Option<IntValue<'ctx>> = None;
        for (d, &m) in map.iter().enumerate() {
            if m.is_none() || shape[d] == 1 {
                continue;
            }
            let c = self.coord(m)?;
            let t = if strides[d] == 1 {
                c
            } else {
                self.sc.b.build_int_mul(c, self.i64c(strides[d]), "st")?
            };
            off = Some(match off {
                None => t,
                Some(o) => self.sc.b.build_int_add(o, t, "off")?,
            });
        }
        Ok(off.unwrap_or_else(|| self.i64c(0)))
    }

    /// `v` at the chunk through `map`, with exactly `lanes` lanes (scalars are splat).
    pub(crate) fn ev(&mut self, v: Value, map: &Map, lanes: u32) -> R<V<'ctx>> {
        let l = self.sub_lanes(map, lanes)?;
        let x = self.eval(v, map, l)?;
        Ok(self.sc.splat(x, lanes))
    }

    /// `v` at the chunk through `map`: `lanes` lanes if the map reaches the vector dimension
    /// (the caller passes 1 otherwise), else one value (the first lane's, for a vector value).
    pub(crate) fn eval(&mut self, v: Value, map: &Map, lanes: u32) -> R<V<'ctx>> {
        let ty = self.ty(v)?;
        if ty.is_scalar() {
            return self.scalar(v);
        }
        if self.forced.contains(&v) {
            // A mask this version of the loop knows to be on everywhere.
            return Ok(self.sc.all_true(lanes));
        }
        let key = (v, map.clone(), lanes);
        if let Some(&x) = self.memo.get(&key) {
            return Ok(x);
        }
        let x = match self.get(v)? {
            Lv::B(_) if self.plan.cheap.contains(&v) => self.compute(v, map, lanes)?,
            Lv::B(arr) => self.read_array(arr, ty, map, lanes)?,
            Lv::S(_) => return Err(self.mal(format!("%{} is a block held as a scalar", v.0))),
            Lv::L => self.compute(v, map, lanes)?,
        };
        self.memo.insert(key, x);
        Ok(x)
    }

    fn read_array(
        &mut self,
        arr: PointerValue<'ctx>,
        ty: &Type,
        map: &Map,
        lanes: u32,
    ) -> R<V<'ctx>> {
        let off = self.flat(&ty.shape, map)?;
        let p = self.elem_ptr(arr, ty.elem, off)?;
        if lanes == 1 {
            return self.load_mem(p, ty.elem);
        }
        let mt = self.sc.vty(self.sc.mem_ty(ty.elem), lanes);
        let x = self.sc.b.build_load(mt, p, "vld")?;
        self.sc.set_align(x, self.elem_bytes(ty.elem));
        Ok(self.mem_to_reg(ty.elem, x))
    }

    fn elem_bytes(&self, e: Elem) -> u32 {
        match e {
            Elem::Ptr(_) => 8,
            Elem::Scalar(d) => d.size_bytes(),
        }
    }

    /// Memory lanes (bool as i8) to register lanes (bool as i1).
    fn mem_to_reg(&self, e: Elem, x: V<'ctx>) -> V<'ctx> {
        if e == Elem::Scalar(DType::Bool) {
            self.sc.icmp(crate::lanes::Ip::Ne, x, self.sc.ci(x, 0))
        } else {
            x
        }
    }
    fn reg_to_mem(&self, e: Elem, x: V<'ctx>) -> V<'ctx> {
        if e == Elem::Scalar(DType::Bool) {
            self.sc.conv(inkwell::llvm_sys::LLVMOpcode::LLVMZExt, x, self.sc.cx.i8_type().into())
        } else {
            x
        }
    }

    /// Evaluates the defining op of a lazy value.
    fn compute(&mut self, v: Value, map: &Map, lanes: u32) -> R<V<'ctx>> {
        let f = self.f;
        let id = f.defining_op(v).ok_or_else(|| self.mal("lazy value without an op"))?;
        let od: &'a OpData = f.op(id);
        let rty = self.ty(v)?;
        match &od.op {
            Op::Splat { value } => {
                let s = self.scalar(*value)?;
                Ok(self.sc.splat(s, lanes))
            }
            Op::Arange { start, .. } => {
                let i32t = self.sc.cx.i32_type();
                let c = self.coord(map[0])?;
                let c32 = self.sc.b.build_int_truncate(c, i32t, "ar")?;
                let base =
                    self.sc.b.build_int_add(c32, i32t.const_int(*start as u64, true), "ar")?;
                if lanes == 1 {
                    return Ok(base.into());
                }
                let steps: Vec<IntValue<'ctx>> =
                    (0..lanes).map(|i| i32t.const_int(i as u64, false)).collect();
                let steps = inkwell::types::VectorType::const_vector(&steps);
                Ok(self.sc.add(self.sc.splat(base.into(), lanes), steps.into()))
            }
            Op::Broadcast { value } => {
                let src = self.ty(*value)?;
                let xmap: Map = map
                    .iter()
                    .enumerate()
                    .map(|(d, &m)| if src.shape[d] == 1 { None } else { m })
                    .collect();
                self.ev(*value, &xmap, lanes)
            }
            Op::ExpandDims { value, axis } => {
                if self.ty(*value)?.is_scalar() {
                    let s = self.scalar(*value)?;
                    return Ok(self.sc.splat(s, lanes));
                }
                let mut xmap = map.clone();
                if (*axis as usize) < xmap.len() {
                    xmap.remove(*axis as usize);
                }
                self.ev(*value, &xmap, lanes)
            }
            Op::Reshape { value } => {
                let src = self.ty(*value)?;
                if src.is_scalar() {
                    let s = self.scalar(*value)?;
                    return Ok(self.sc.splat(s, lanes));
                }
                let res_dims: Vec<usize> =
                    (0..rty.shape.len()).filter(|&d| rty.shape[d] != 1).collect();
                if squeezed(&src.shape).len() != res_dims.len() {
                    return Err(self.mal("reshape fused across non-unit dimensions"));
                }
                let mut k = 0;
                let mut xmap = Map::new();
                for &s in &src.shape {
                    if s == 1 {
                        xmap.push(None);
                    } else {
                        xmap.push(map[res_dims[k]]);
                        k += 1;
                    }
                }
                self.ev(*value, &xmap, lanes)
            }
            Op::Unary { op, value } => {
                let dt = self.dtype(*value)?;
                let x = self.eval(*value, map, lanes)?;
                self.sc.unary(*op, dt, x)
            }
            Op::Binary { op, lhs, rhs } => {
                let dt = self.dtype(*lhs)?;
                let a = self.eval(*lhs, map, lanes)?;
                let b = self.eval(*rhs, map, lanes)?;
                // Fused integer division has a constant divisor that cannot trap (plan.rs).
                Ok(self.sc.binary(*op, dt, a, b)?.0)
            }
            Op::Cmp { pred, lhs, rhs } => {
                let dt = self.dtype(*lhs)?;
                let a = self.eval(*lhs, map, lanes)?;
                let b = self.eval(*rhs, map, lanes)?;
                self.sc.cmp(*pred, dt, a, b)
            }
            Op::Select { cond, on_true, on_false } => {
                let c = self.eval(*cond, map, lanes)?;
                let a = self.eval(*on_true, map, lanes)?;
                let b = self.eval(*on_false, map, lanes)?;
                Ok(self.sc.sel(c, a, b))
            }
            Op::Fma { a, b, c } => {
                let dt = self.dtype(*a)?;
                let x = self.eval(*a, map, lanes)?;
                let y = self.eval(*b, map, lanes)?;
                let z = self.eval(*c, map, lanes)?;
                self.sc.fma(dt, x, y, z)
            }
            Op::Cast { value } => {
                let from = self.dtype(*value)?;
                let to = self.dtype(v)?;
                let x = self.eval(*value, map, lanes)?;
                self.sc.cast(from, to, x)
            }
            Op::AddPtr { ptr, offset } => {
                let Elem::Ptr(dt) = self.ty(*ptr)?.elem else {
                    return Err(self.mal("addptr of a non-pointer"));
                };
                let odt = self.dtype(*offset)?;
                let p = self.eval(*ptr, map, lanes)?;
                let o = self.eval(*offset, map, lanes)?;
                let o = self.sc.to_i64(odt, o)?;
                Ok(self.sc.gep(self.sc.mem_ty(Elem::Scalar(dt)), p, o))
            }
            Op::Load { ptr, mask, other } => self.fused_load(v, *ptr, *mask, *other, map, lanes),
            _ => Err(self.mal(format!("`{}` is not fusible", od.op.mnemonic()))),
        }
    }

    /// The mask of a masked access at the chunk: the user's mask (if any) and the tail's.
    fn access_mask(&mut self, mask: Option<Value>, map: &Map, lanes: u32) -> R<Option<V<'ctx>>> {
        let m = match mask {
            Some(m) if !self.forced.contains(&m) => Some(self.ev(m, map, lanes)?),
            _ => None,
        };
        let valid = if lanes > 1 { self.chunk()?.valid } else { None };
        Ok(match (m, valid) {
            (Some(m), Some(v)) => Some(self.sc.and(m, v)),
            (a, b) => a.or(b),
        })
    }

    /// Whether every lane of the (user) mask is on in a full chunk. An `and` of masks is split,
    /// so that a part that is one value per row (`rows < M` in `rows[:, None] < M && cols < N`)
    /// is tested as a scalar instead of being widened to lanes first.
    fn all_lanes(&mut self, mask: Option<Value>, map: &Map, lanes: u32) -> R<IntValue<'ctx>> {
        let Some(m) = mask.filter(|m| !self.forced.contains(m)) else {
            return Ok(self.sc.cx.bool_type().const_int(1, false));
        };
        let l = self.sub_lanes(map, lanes)?;
        if l == 1 {
            return iv(self.eval(m, map, 1)?);
        }
        let lazy = matches!(self.get(m)?, Lv::L) || self.plan.cheap.contains(&m);
        if lazy {
            if let Some(id) = self.f.defining_op(m) {
                match &self.f.op(id).op {
                    Op::Binary { op: tk_ir::BinaryOp::And, lhs, rhs } => {
                        let (lhs, rhs) = (*lhs, *rhs);
                        let a = self.all_lanes(Some(lhs), map, l)?;
                        let b = self.all_lanes(Some(rhs), map, l)?;
                        return Ok(self.sc.b.build_and(a, b, "all")?);
                    }
                    Op::Broadcast { value } => {
                        let value = *value;
                        let src = self.ty(value)?;
                        let xmap: Map = map
                            .iter()
                            .enumerate()
                            .map(|(d, &mm)| if src.shape[d] == 1 { None } else { mm })
                            .collect();
                        return self.all_lanes(Some(value), &xmap, l);
                    }
                    _ => {}
                }
            }
        }
        let v = self.eval(m, map, l)?;
        iv(self.sc.intrinsic("llvm.vector.reduce.and", &[v.get_type()], &[v])?)
    }

    /// How a pointer block is accessed along the chunk: contiguous (with the alignment of the
    /// first lane in bytes), uniform, or neither.
    fn access_kind(&self, ptr: Value, map: &Map, lanes: u32, elem_bytes: u32) -> R<Access> {
        if lanes == 1 {
            return Ok(Access::Scalar);
        }
        let Some(d) = self.vdim(map)? else { return Ok(Access::Uniform) };
        let Some(info) = self.info.get(ptr) else { return Ok(Access::Gather) };
        let l = lanes as u64;
        let (c, k, p) = (
            info.contiguity.get(d).copied().unwrap_or(1),
            info.constancy.get(d).copied().unwrap_or(1),
            info.divisibility.get(d).copied().unwrap_or(1),
        );
        if c % l == 0 {
            let align = p.min(pow2_part(l * elem_bytes as u64)).max(elem_bytes as u64);
            return Ok(Access::Contiguous(align.min(1 << 12) as u32));
        }
        if k % l == 0 {
            return Ok(Access::Uniform);
        }
        Ok(Access::Gather)
    }

    fn fused_load(
        &mut self,
        v: Value,
        ptr: Value,
        mask: Option<Value>,
        other: Option<Value>,
        map: &Map,
        lanes: u32,
    ) -> R<V<'ctx>> {
        let elem = self.ty(v)?.elem;
        let eb = self.elem_bytes(elem);
        let kind = self.access_kind(ptr, map, lanes, eb)?;
        let m = self.access_mask(mask, map, lanes)?;
        let reg = self.sc.reg_ty(elem);
        let other_v = match other {
            Some(o) => self.ev(o, map, lanes)?,
            None => self.sc.vty(reg, lanes).const_zero(),
        };
        match kind {
            Access::Scalar | Access::Uniform => {
                let p = pv(self.ev(ptr, map, 1)?)?;
                let any = match m {
                    None => None,
                    Some(m) if lanes == 1 => Some(m),
                    Some(m) => {
                        Some(self.sc.intrinsic("llvm.vector.reduce.or", &[m.get_type()], &[m])?)
                    }
                };
                let zero = reg.const_zero();
                let x = match any {
                    None => self.load_mem(p, elem)?,
                    Some(a) => self.emit_guarded(iv(a)?, |g| g.load_mem(p, elem), zero)?,
                };
                let x = self.sc.splat(x, lanes);
                Ok(match m {
                    Some(m) => self.sc.sel(m, x, other_v),
                    None => x,
                })
            }
            Access::Contiguous(align) => {
                let p = pv(self.ev(ptr, map, 1)?)?;
                let mt = self.sc.vty(self.sc.mem_ty(elem), lanes);
                let plain = |g: &mut Self| -> R<V<'ctx>> {
                    let x = g.sc.b.build_load(mt, p, "vld")?;
                    g.sc.set_align(x, align);
                    Ok(g.mem_to_reg(elem, x))
                };
                let Some(m) = m else { return plain(self) };
                let masked = |g: &mut Self| -> R<V<'ctx>> {
                    let pass = g.reg_to_mem(elem, other_v);
                    let al = g.sc.cx.i32_type().const_int(align as u64, false).into();
                    let x = g.sc.intrinsic(
                        "llvm.masked.load",
                        &[mt, p.get_type().into()],
                        &[p.into(), al, m, pass],
                    )?;
                    Ok(g.mem_to_reg(elem, x))
                };
                if self.chunk()?.valid.is_some() {
                    return masked(self);
                }
                let all = self.all_lanes(mask, map, lanes)?;
                self.branch(all, plain, masked)
            }
            Access::Gather => {
                let ps = self.ev(ptr, map, lanes)?;
                let m = match m {
                    Some(m) => m,
                    None => self.sc.all_true(lanes),
                };
                let mt = self.sc.vty(self.sc.mem_ty(elem), lanes);
                let pass = self.reg_to_mem(elem, other_v);
                let al = self.sc.cx.i32_type().const_int(eb as u64, false).into();
                let x = self.sc.intrinsic(
                    "llvm.masked.gather",
                    &[mt, ps.get_type()],
                    &[ps, al, m, pass],
                )?;
                Ok(self.mem_to_reg(elem, x))
            }
        }
    }

    /// `cond ? then() : other()` with each side in its own block.
    fn branch(
        &mut self,
        cond: IntValue<'ctx>,
        then: impl FnOnce(&mut Self) -> R<V<'ctx>>,
        other: impl FnOnce(&mut Self) -> R<V<'ctx>>,
    ) -> R<V<'ctx>> {
        let tb = self.block("b.then");
        let eb = self.block("b.else");
        let mb = self.block("b.end");
        self.sc.b.build_conditional_branch(cond, tb, eb)?;
        self.sc.b.position_at_end(tb);
        let x = then(self)?;
        let tend = self.current()?;
        self.sc.b.build_unconditional_branch(mb)?;
        self.sc.b.position_at_end(eb);
        let y = other(self)?;
        let eend = self.current()?;
        self.sc.b.build_unconditional_branch(mb)?;
        self.sc.b.position_at_end(mb);
        let phi = self.sc.b.build_phi(x.get_type(), "br")?;
        phi.add_incoming(&[(&x, tend), (&y, eend)]);
        Ok(phi.as_basic_value())
    }

    // ---- loop nests ---------------------------------------------------------------------------

    /// Nested scalar loops over `sizes`, calling `body` with the indices (i64).
    fn nest(
        &mut self,
        sizes: &[u64],
        body: &mut dyn FnMut(&mut Self, &[IntValue<'ctx>]) -> R<()>,
    ) -> R<()> {
        self.nest_rec(sizes, Vec::new(), body)
    }

    fn nest_rec(
        &mut self,
        sizes: &[u64],
        idx: Vec<IntValue<'ctx>>,
        body: &mut dyn FnMut(&mut Self, &[IntValue<'ctx>]) -> R<()>,
    ) -> R<()> {
        if idx.len() == sizes.len() {
            return body(self, &idx);
        }
        let n = sizes[idx.len()];
        self.emit_loop(0, n, |g, i| {
            let mut next = idx.clone();
            next.push(i);
            g.nest_rec(sizes, next, body)
        })
    }

    /// The chunks of a dimension of `n` elements: full chunks of `w` lanes in a loop (`unroll`
    /// chunks per iteration, the pass pipeline does not unroll), then the tail (with its
    /// constant lane mask). `body` gets the first index and the tail mask.
    fn chunks(&mut self, n: u64, w: u32, unroll: u64, body: &mut ChunkBody<'_, 'a, 'ctx>) -> R<()> {
        let w64 = w as u64;
        let (full, rem) = (n / w64, n % w64);
        let u = unroll.max(1);
        let (iters, left) = (full / u, full % u);
        if iters > 0 {
            self.emit_loop(0, iters, |g, c| {
                let base = if w64 * u == 1 {
                    c
                } else {
                    g.sc.b.build_int_mul(c, g.i64c(w64 * u), "j0")?
                };
                for k in 0..u {
                    let j0 = if k == 0 {
                        base
                    } else {
                        g.sc.b.build_int_add(base, g.i64c(k * w64), "j0")?
                    };
                    body(g, j0, None)?;
                }
                Ok(())
            })?;
        }
        for k in iters * u..iters * u + left {
            body(self, self.i64c(k * w64), None)?;
        }
        if rem > 0 {
            let bt = self.sc.cx.bool_type();
            let lanes: Vec<IntValue<'ctx>> =
                (0..w64).map(|i| bt.const_int((i < rem) as u64, false)).collect();
            let valid = inkwell::types::VectorType::const_vector(&lanes);
            body(self, self.i64c(full * w64), Some(valid.into()))?;
        }
        Ok(())
    }

    /// Stores the chunk of `v` (at the loop's identity coordinates) into its array.
    fn write_chunk(&mut self, v: Value, arr: PointerValue<'ctx>) -> R<()> {
        let ty = self.ty(v)?;
        let map = ident(ty.shape.len());
        let w = self.chunk()?.w;
        let x = self.ev(v, &map, w)?;
        let off = self.flat(&ty.shape, &map)?;
        let p = self.elem_ptr(arr, ty.elem, off)?;
        if w == 1 {
            return self.store_mem(p, ty.elem, x);
        }
        let xm = self.reg_to_mem(ty.elem, x);
        match self.chunk()?.valid {
            None => {
                let st = self.sc.b.build_store(p, xm)?;
                let _ = st.set_alignment(self.elem_bytes(ty.elem));
            }
            Some(valid) => {
                let al = self.sc.cx.i32_type().const_int(self.elem_bytes(ty.elem) as u64, false);
                self.sc.intrinsic_void(
                    "llvm.masked.store",
                    &[xm.get_type(), p.get_type().into()],
                    &[xm, p.into(), al.into(), valid],
                )?;
            }
        }
        Ok(())
    }

    /// Arrays for the values materialised inside the loop anchored at `anchor`.
    fn piggy_arrays(&mut self, anchor: OpId) -> R<Vec<(Value, PointerValue<'ctx>)>> {
        let vs = self.plan.piggy.get(&anchor).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for v in vs {
            let ty = self.ty(v)?;
            let arr = self.alloc(ty.elem, ty.numel())?;
            out.push((v, arr));
        }
        Ok(out)
    }

    fn write_piggy(&mut self, arrs: &[(Value, PointerValue<'ctx>)]) -> R<()> {
        for &(v, arr) in arrs {
            self.write_chunk(v, arr)?;
        }
        Ok(())
    }

    fn publish(&mut self, arrs: Vec<(Value, PointerValue<'ctx>)>) -> R<()> {
        for (v, arr) in arrs {
            self.set(v, Lv::B(arr))?;
        }
        Ok(())
    }

    /// The masks of the loads reached from `roots` through fused values (and `extra`), or none
    /// when the loop also computes something expensive (a transcendental function, a float
    /// division), whose cost hides the mask tests: such loops are not worth two copies.
    fn access_masks(&self, roots: &[Value], extra: Option<Value>) -> R<Vec<Value>> {
        let mut out: Vec<Value> = extra.into_iter().collect();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<Value> = roots.to_vec();
        stack.extend(extra);
        while let Some(v) = stack.pop() {
            if !seen.insert(v) || self.ty(v)?.is_scalar() {
                continue;
            }
            let fused = matches!(self.get(v)?, Lv::L) || self.plan.cheap.contains(&v);
            let Some(id) = self.f.defining_op(v).filter(|_| fused) else { continue };
            let op = &self.f.op(id).op;
            match op {
                Op::Load { mask: Some(m), .. } if !out.contains(m) => out.push(*m),
                Op::Unary { op, .. }
                    if op.float_only()
                        && !matches!(op, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Sqrt) =>
                {
                    return Ok(Vec::new());
                }
                Op::Binary { op: BinaryOp::Div | BinaryOp::Rem, lhs, .. }
                    if self.dtype(*lhs).is_ok_and(|d| d.is_float()) =>
                {
                    return Ok(Vec::new());
                }
                _ => {}
            }
            stack.extend(op.operands());
        }
        Ok(out)
    }

    /// `v` (a block) at one element, as a scalar, outside any loop.
    fn eval_at(&mut self, v: Value, index: &[u64]) -> R<V<'ctx>> {
        let saved = (self.chunk.take(), std::mem::take(&mut self.memo));
        self.chunk = Some(Chunk {
            coords: index.iter().map(|&i| self.i64c(i)).collect(),
            w: 1,
            valid: None,
        });
        let r = self.eval(v, &ident(index.len()), 1);
        (self.chunk, self.memo) = saved;
        r
    }

    /// The largest (or smallest) element of `v` as a scalar, when the axis analysis says where
    /// it is: `v` is one value, or increases by one along a single dimension and is constant
    /// along the others.
    fn extreme(&mut self, v: Value, largest: bool) -> R<Option<V<'ctx>>> {
        let shape = self.ty(v)?.shape.clone();
        let Some(info) = self.info.get(v) else { return Ok(None) };
        let mut index = vec![0u64; shape.len()];
        let mut varying = 0;
        for (d, &n) in shape.iter().enumerate() {
            let n = n as u64;
            if n == 1 || info.constancy.get(d) == Some(&n) {
                continue;
            }
            if info.contiguity.get(d) != Some(&n) {
                return Ok(None);
            }
            varying += 1;
            if largest {
                index[d] = n - 1;
            }
        }
        if varying > 1 {
            return Ok(None);
        }
        Ok(Some(self.eval_at(v, &index)?))
    }

    /// A scalar that is true when every element of the mask `m` is on, computed once before a
    /// loop, for masks built from `and`s of comparisons between an index that increases along
    /// one dimension and a bound (`offs < n`, `rows[:, None] < M && cols[None, :] < N`).
    fn block_all(&mut self, m: Value) -> R<Option<IntValue<'ctx>>> {
        if self.ty(m)?.is_scalar() {
            return Ok(Some(iv(self.scalar(m)?)?));
        }
        let fused = matches!(self.get(m)?, Lv::L) || self.plan.cheap.contains(&m);
        let Some(id) = self.f.defining_op(m).filter(|_| fused) else { return Ok(None) };
        let f = self.f;
        match &f.op(id).op {
            Op::Splat { value } => Ok(Some(iv(self.scalar(*value)?)?)),
            Op::Broadcast { value } | Op::ExpandDims { value, .. } | Op::Reshape { value } => {
                self.block_all(*value)
            }
            Op::Binary { op: tk_ir::BinaryOp::And, lhs, rhs } => {
                let (Some(a), Some(b)) = (self.block_all(*lhs)?, self.block_all(*rhs)?) else {
                    return Ok(None);
                };
                Ok(Some(self.sc.b.build_and(a, b, "ball")?))
            }
            Op::Cmp { pred, lhs, rhs } => {
                use tk_ir::CmpPred::*;
                let lhs_largest = match pred {
                    Lt | Le => true,
                    Gt | Ge => false,
                    Eq | Ne => return Ok(None),
                };
                let dt = self.dtype(*lhs)?;
                let (Some(a), Some(b)) =
                    (self.extreme(*lhs, lhs_largest)?, self.extreme(*rhs, !lhs_largest)?)
                else {
                    return Ok(None);
                };
                Ok(Some(iv(self.sc.cmp(*pred, dt, a, b)?)?))
            }
            _ => Ok(None),
        }
    }

    /// Emits a loop `body` once, or twice when every mask of the loop's memory accesses has a
    /// block-wide test (`block_all`): a first copy for the programs whose masks are on
    /// everywhere (no mask tests, `where(mask, a, b)` is `a`), and the general one.
    fn versioned(&mut self, masks: Vec<Value>, body: &mut dyn FnMut(&mut Self) -> R<()>) -> R<()> {
        if masks.is_empty() {
            return body(self);
        }
        let mut all = None;
        for &m in &masks {
            let Some(c) = self.block_all(m)? else { return body(self) };
            all = Some(match all {
                None => c,
                Some(a) => self.sc.b.build_and(a, c, "ball")?,
            });
        }
        let Some(all) = all else { return body(self) };
        let fast = self.block("all.on");
        let slow = self.block("some.off");
        let end = self.block("versions.end");
        self.sc.b.build_conditional_branch(all, fast, slow)?;
        self.sc.b.position_at_end(fast);
        self.forced = masks.iter().copied().collect();
        let r = body(self);
        self.forced.clear();
        r?;
        self.sc.b.build_unconditional_branch(end)?;
        self.sc.b.position_at_end(slow);
        body(self)?;
        self.sc.b.build_unconditional_branch(end)?;
        self.sc.b.position_at_end(end);
        Ok(())
    }

    /// A loop over `shape` calling `body` once per chunk (after entering it).
    fn elementwise_loop(
        &mut self,
        shape: &[u32],
        body: &mut dyn FnMut(&mut Self) -> R<()>,
    ) -> R<()> {
        let r = shape.len();
        let outer: Vec<u64> = shape[..r - 1].iter().map(|&d| d as u64).collect();
        let n = shape[r - 1];
        let w = self.loop_w(n);
        self.nest(&outer, &mut |g, oc| {
            let oc = oc.to_vec();
            g.chunks(n as u64, w, ELEMENTWISE_UNROLL, &mut |g, j0, valid| {
                let mut coords = oc.clone();
                coords.push(j0);
                g.enter(coords, w, valid);
                body(g)
            })
        })?;
        self.leave();
        Ok(())
    }

    /// Materialises `v` in its own loop (and what the plan puts in that loop too).
    pub(crate) fn emit_mat_own(&mut self, id: OpId, v: Value) -> R<()> {
        let ty = self.ty(v)?;
        let arr = self.alloc(ty.elem, ty.numel())?;
        let mut arrs = self.piggy_arrays(id)?;
        arrs.retain(|a| a.0 != v);
        arrs.insert(0, (v, arr));
        let shape = ty.shape.clone();
        let roots: Vec<Value> = arrs.iter().map(|a| a.0).collect();
        let masks = self.access_masks(&roots, None)?;
        self.versioned(masks, &mut |g| g.elementwise_loop(&shape, &mut |g| g.write_piggy(&arrs)))?;
        self.publish(arrs)
    }

    /// Computes the fused value `v` into the array `arr` (a loop-carried slot).
    pub(crate) fn emit_mat_into(&mut self, v: Value, arr: PointerValue<'ctx>) -> R<()> {
        let shape = self.ty(v)?.shape.clone();
        let masks = self.access_masks(&[v], None)?;
        self.versioned(masks, &mut |g| g.elementwise_loop(&shape, &mut |g| g.write_chunk(v, arr)))
    }

    /// A block `store` as a fused loop.
    pub(crate) fn emit_store_root(
        &mut self,
        id: OpId,
        ptr: Value,
        value: Value,
        mask: Option<Value>,
    ) -> R<()> {
        let ty = self.ty(value)?;
        let elem = ty.elem;
        let eb = self.elem_bytes(elem);
        let arrs = self.piggy_arrays(id)?;
        let shape = ty.shape.clone();
        let map = ident(shape.len());
        let masks = self.access_masks(&[ptr, value], mask)?;
        self.versioned(masks, &mut |g| {
            g.elementwise_loop(&shape, &mut |g| {
                let w = g.chunk()?.w;
                let x = g.ev(value, &map, w)?;
                let m = g.access_mask(mask, &map, w)?;
                let xm = g.reg_to_mem(elem, x);
                match g.access_kind(ptr, &map, w, eb)? {
                    Access::Scalar => {
                        let p = pv(g.ev(ptr, &map, 1)?)?;
                        match m {
                            None => g.store_mem(p, elem, x)?,
                            Some(m) => g.emit_if(iv(m)?, |g| g.store_mem(p, elem, x))?,
                        }
                    }
                    Access::Contiguous(align) => {
                        let p = pv(g.ev(ptr, &map, 1)?)?;
                        let plain = |g: &mut Self| -> R<()> {
                            let st = g.sc.b.build_store(p, xm)?;
                            let _ = st.set_alignment(align);
                            Ok(())
                        };
                        let masked = |g: &mut Self, m: V<'ctx>| -> R<()> {
                            let al = g.sc.cx.i32_type().const_int(align as u64, false).into();
                            g.sc.intrinsic_void(
                                "llvm.masked.store",
                                &[xm.get_type(), p.get_type().into()],
                                &[xm, p.into(), al, m],
                            )
                        };
                        match m {
                            None => plain(g)?,
                            Some(m) if g.chunk()?.valid.is_some() => masked(g, m)?,
                            Some(m) => {
                                let all = g.all_lanes(mask, &map, w)?;
                                let tb = g.block("st.all");
                                let eb = g.block("st.some");
                                let mb = g.block("st.end");
                                g.sc.b.build_conditional_branch(all, tb, eb)?;
                                g.sc.b.position_at_end(tb);
                                plain(g)?;
                                g.sc.b.build_unconditional_branch(mb)?;
                                g.sc.b.position_at_end(eb);
                                masked(g, m)?;
                                g.sc.b.build_unconditional_branch(mb)?;
                                g.sc.b.position_at_end(mb);
                            }
                        }
                    }
                    Access::Uniform | Access::Gather => {
                        // Lanes to one address are written in lane order (the last one wins), as
                        // `llvm.masked.scatter` defines.
                        let ps = g.ev(ptr, &map, w)?;
                        let m = match m {
                            Some(m) => m,
                            None => g.sc.all_true(w),
                        };
                        let al = g.sc.cx.i32_type().const_int(eb as u64, false).into();
                        g.sc.intrinsic_void(
                            "llvm.masked.scatter",
                            &[xm.get_type(), ps.get_type()],
                            &[xm, ps, al, m],
                        )?;
                    }
                }
                g.write_piggy(&arrs)
            })
        })?;
        self.publish(arrs)
    }

    /// `sum`/`max`/`min` along `axis` as a fused loop with vector accumulators.
    pub(crate) fn emit_reduce_root(
        &mut self,
        id: OpId,
        od: &OpData,
        kind: ReduceKind,
        axis: u8,
        value: Value,
    ) -> R<()> {
        let xty = self.ty(value)?;
        let dt = self.dtype(value)?;
        let shape = xty.shape.clone();
        let r = shape.len();
        let a = axis as usize;
        if a >= r {
            return Err(self.mal("reduce axis"));
        }
        let rv = self.res(od, 0)?;
        let rty = self.ty(rv)?;
        let arrs = self.piggy_arrays(id)?;
        let out = if rty.is_scalar() { None } else { Some(self.alloc(rty.elem, rty.numel())?) };
        let n = shape[r - 1];
        let w = self.loop_w(n);
        let map = ident(r);
        let acc_t = self.sc.vty(self.sc.acc_ty(dt), w);
        let ident_v = self.sc.acc_identity(kind, dt, w)?;
        let res_slot = if rty.is_scalar() {
            Some(self.ab.build_alloca(self.sc.reg_ty(rty.elem), "red")?)
        } else {
            None
        };
        let masks = self.access_masks(&[value], None)?;
        self.versioned(masks, &mut |g| {
            if a == r - 1 {
                let outer: Vec<u64> = shape[..r - 1].iter().map(|&d| d as u64).collect();
                let full = n as u64 / w as u64;
                let naccs = if full >= 2 * REDUCE_ACCS { REDUCE_ACCS } else { 1 };
                let accs: Vec<PointerValue<'ctx>> = (0..naccs)
                    .map(|_| g.ab.build_alloca(acc_t, "acc"))
                    .collect::<Result<_, _>>()?;
                g.nest(&outer, &mut |g, oc| {
                    for &acc in &accs {
                        g.sc.b.build_store(acc, ident_v)?;
                    }
                    let step = |g: &mut Self, acc: PointerValue<'ctx>| -> R<()> {
                        let x = g.ev(value, &map, w)?;
                        let mut x = g.sc.to_acc(dt, x)?;
                        if let Some(valid) = g.chunk()?.valid {
                            x = g.sc.sel(valid, x, ident_v);
                        }
                        let cur = g.sc.b.build_load(acc_t, acc, "acc")?;
                        let nv = g.sc.accumulate(kind, dt, cur, x)?;
                        g.sc.b.build_store(acc, nv)?;
                        g.write_piggy(&arrs)
                    };
                    let oc = oc.to_vec();
                    let unrolled = full / naccs;
                    if naccs > 1 {
                        g.emit_loop(0, unrolled, |g, c| {
                            for (u, &acc) in accs.iter().enumerate() {
                                let base =
                                    g.sc.b.build_int_mul(c, g.i64c(naccs * w as u64), "c")?;
                                let j0 = g.sc.b.build_int_add(
                                    base,
                                    g.i64c(u as u64 * w as u64),
                                    "j0",
                                )?;
                                let mut coords = oc.clone();
                                coords.push(j0);
                                g.enter(coords, w, None);
                                step(g, acc)?;
                            }
                            Ok(())
                        })?;
                    }
                    let done = if naccs > 1 { unrolled * naccs * w as u64 } else { 0 };
                    let rest = n as u64 - done;
                    let acc0 = accs[0];
                    g.chunks(rest, w, 1, &mut |g, j, valid| {
                        let j0 = g.sc.b.build_int_add(j, g.i64c(done), "j0")?;
                        let mut coords = oc.clone();
                        coords.push(j0);
                        g.enter(coords, w, valid);
                        step(g, acc0)
                    })?;
                    g.leave();
                    let mut tot = g.sc.b.build_load(acc_t, accs[0], "acc")?;
                    for &acc in &accs[1..] {
                        let x = g.sc.b.build_load(acc_t, acc, "acc")?;
                        tot = g.sc.accumulate(kind, dt, tot, x)?;
                    }
                    let s = g.hreduce(kind, dt, tot)?;
                    let s = g.sc.round_acc(dt, s)?;
                    match out {
                        Some(arr) => {
                            let strides = row_major_strides(&rty.shape);
                            let mut o = g.i64c(0);
                            for (d, &c) in oc.iter().enumerate() {
                                let t = g.sc.b.build_int_mul(c, g.i64c(strides[d]), "o")?;
                                o = g.sc.b.build_int_add(o, t, "o")?;
                            }
                            g.store_at(arr, rty.elem, o, s)?;
                        }
                        None => {
                            if let Some(slot) = res_slot {
                                g.sc.b.build_store(slot, s)?;
                            }
                        }
                    }
                    Ok(())
                })?;
            } else {
                let out = out.ok_or_else(|| g.mal("reduce of a block to a scalar"))?;
                let dims: Vec<usize> = (0..r - 1).filter(|&d| d != a).collect();
                let sizes: Vec<u64> = dims.iter().map(|&d| shape[d] as u64).collect();
                let acc = g.ab.build_alloca(acc_t, "acc")?;
                let rstrides = row_major_strides(&rty.shape);
                g.nest(&sizes, &mut |g, oc| {
                    let oc = oc.to_vec();
                    g.chunks(n as u64, w, 1, &mut |g, j0, valid| {
                        g.sc.b.build_store(acc, ident_v)?;
                        g.emit_loop(0, shape[a] as u64, |g, k| {
                            let mut coords = Vec::with_capacity(r);
                            let mut it = oc.iter();
                            for d in 0..r - 1 {
                                coords.push(if d == a { k } else { *it.next().unwrap_or(&k) });
                            }
                            coords.push(j0);
                            g.enter(coords, w, valid);
                            let x = g.ev(value, &map, w)?;
                            let x = g.sc.to_acc(dt, x)?;
                            let cur = g.sc.b.build_load(acc_t, acc, "acc")?;
                            let nv = g.sc.accumulate(kind, dt, cur, x)?;
                            g.sc.b.build_store(acc, nv)?;
                            g.write_piggy(&arrs)
                        })?;
                        g.leave();
                        let tot = g.sc.b.build_load(acc_t, acc, "acc")?;
                        let s = g.sc.round_acc(dt, tot)?;
                        // Result coordinates: the outer ones, then j0.
                        let mut o = j0;
                        for (i, &c) in oc.iter().enumerate() {
                            let t = g.sc.b.build_int_mul(c, g.i64c(rstrides[i]), "o")?;
                            o = g.sc.b.build_int_add(o, t, "o")?;
                        }
                        let p = g.elem_ptr(out, rty.elem, o)?;
                        let sm = g.reg_to_mem(rty.elem, s);
                        if w == 1 {
                            g.sc.b.build_store(p, sm)?;
                            return Ok(());
                        }
                        match valid {
                            None => {
                                let st = g.sc.b.build_store(p, sm)?;
                                let _ = st.set_alignment(g.elem_bytes(rty.elem));
                            }
                            Some(valid) => {
                                let al =
                                    g.sc.cx
                                        .i32_type()
                                        .const_int(g.elem_bytes(rty.elem) as u64, false);
                                g.sc.intrinsic_void(
                                    "llvm.masked.store",
                                    &[sm.get_type(), p.get_type().into()],
                                    &[sm, p.into(), al.into(), valid],
                                )?;
                            }
                        }
                        Ok(())
                    })
                })?;
            }
            Ok(())
        })?;
        self.publish(arrs)?;
        match (out, res_slot) {
            (Some(arr), _) => self.set(rv, Lv::B(arr)),
            (None, Some(slot)) => {
                let s = self.sc.b.build_load(self.sc.reg_ty(rty.elem), slot, "red")?;
                self.set(rv, Lv::S(s))
            }
            (None, None) => Err(self.mal("reduction produced nothing")),
        }
    }

    /// Horizontal `sum`/`max`/`min` of a vector accumulator by halving shuffles.
    fn hreduce(&mut self, kind: ReduceKind, dt: DType, v: V<'ctx>) -> R<V<'ctx>> {
        let mut v = v;
        let mut n = lanes(v);
        if n == 1 {
            return Ok(v);
        }
        while n > 2 {
            let h = n / 2;
            let lo: Vec<u32> = (0..h).collect();
            let hi: Vec<u32> = (h..n).collect();
            let a = self.sc.shuffle(v, v, &lo);
            let b = self.sc.shuffle(v, v, &hi);
            v = self.sc.accumulate(kind, dt, a, b)?;
            n = h;
        }
        let (a, b) = (self.sc.extract(v, 0), self.sc.extract(v, 1));
        self.sc.accumulate(kind, dt, a, b)
    }
}

/// How a fused load or store reaches memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// One element (scalar loop).
    Scalar,
    /// One address for every lane.
    Uniform,
    /// Consecutive elements from the first lane's address, aligned to this many bytes.
    Contiguous(u32),
    /// Anything else: one address per lane.
    Gather,
}
