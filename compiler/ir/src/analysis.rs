//! Axis info: per-dimension contiguity, divisibility and constancy of integer and pointer values
//! (Triton's `AxisInfo`), computed once per function and shared by every backend. It decides
//! vector loads and stores on the CPU, `ld.global.v4` on PTX and `DataCopy` versus a gather on
//! Ascend.
//!
//! # What the numbers mean
//!
//! Every value gets one entry per dimension (a scalar gets one entry, as if it had shape `[1]`).
//! Along dimension `d` of size `n`, look at each 1-D slice (all other coordinates fixed):
//!
//! - `contiguity[d] = c`: the slice splits into runs of `c` elements starting at multiples of `c`,
//!   and within a run each element is the previous one plus 1 (for pointers: plus one element).
//! - `constancy[d] = k`: the slice splits into runs of `k` elements starting at multiples of `k`,
//!   and all elements of a run are equal.
//! - `divisibility[d] = p`, a power of two: every element at a position that is a multiple of `c`
//!   (the first element of each contiguous run; every element when `c == 1`) is divisible by `p`.
//!   For pointers `p` counts BYTES, so it is the alignment of those addresses.
//!
//! `c` and `k` always divide `n` (runs tile the dimension exactly, also for sizes that are not
//! powers of two, such as 160), and `p <= `[`MAX_DIVISIBILITY`] (a value known to be 0 gets the
//! maximum). Floats and bools get `c = 1`, `p = 1` and a meaningful `k` (a mask's constancy decides
//! whether one predicate can guard a whole vector). Extra facts: [`AxisInfo::constant`] (the value
//! of an integer or bool known at compile time) and [`AxisInfo::non_negative`].
//!
//! Everything is conservative: a claim is made only when it holds for every execution. Integer
//! arithmetic is assumed not to overflow, because signed overflow is an error in tk (see
//! [`crate::eval`]); address arithmetic is 64-bit.
//!
//! # ABI assumptions (checked by the runtime at launch)
//!
//! - Every pointer parameter is aligned to [`PTR_PARAM_ALIGN`] = 16 bytes (any allocator gives at
//!   least that); the runtime rejects a misaligned pointer argument instead of running code that
//!   assumed alignment. [`ParamHints`] can raise this when the runtime specialises on it.
//! - Integer parameters have divisibility 1 unless [`ParamHints`] says otherwise (the runtime may
//!   specialise a kernel for, e.g., `stride % 16 == 0`, and must then check it at launch).
//!
//! # Transfer rules
//!
//! - `const v`: `p = 2^tz(v)`, `k` whole. `arange(s, e)`: `c = e - s`, `p = 2^tz(s)`.
//!   `program_id`, `num_programs`: scalar, `p = 1`, non-negative.
//! - `splat`: `k` = the dimension, `p` = the scalar's. `broadcast`: broadcast dimensions get
//!   `c = 1`, `k` whole. `expand_dims`: the new dimension gets `c = k = 1` and the divisibility
//!   of every element. `permute`: entries permuted. `reshape`: exact when only size-1 dimensions
//!   are added or removed, otherwise only constants and element divisibility survive.
//! - `add`/`addptr` (offsets scaled by the element size for `p`): `c = max(gcd(c_a, k_b),
//!   gcd(k_a, c_b))`, `k = gcd(k_a, k_b)`, `p = gcd` of both sides' divisibility at the new run
//!   starts. `sub`: `c = gcd(c_a, k_b)`.
//! - `mul`: `c = 1` unless one side is the constant 1; `p = p_a * p_b` (element-wise). `shl` by a
//!   constant `s`: `p * 2^s`.
//! - `div`, `shr` by a constant, `rem`, `and` with a low-bit mask `2^n - 1` or an alignment mask
//!   `-2^n`: a contiguous run of non-negative values whose start is divisible by `g` and a divisor
//!   divisible by `g` gives runs of `g` equal quotients (`div`, `shr`, alignment `and`) or of `g`
//!   contiguous remainders (`rem`, low-bit `and`). `shr` and `and` floor, so they need no sign
//!   condition; `div` and `rem` truncate toward zero, so they need the dividend non-negative.
//! - `cmp` `lt`/`ge` of a contiguous run against a run-constant bound divisible by `g`, or
//!   `le`/`gt` against a constant `n` with `n + 1` divisible by `g`: runs of `g` equal booleans
//!   (the mask `offs < n` of a ragged tail is vector-uniform when `n` is a multiple of the width).
//! - `select`: the meet of both sides, `c` limited by the condition's constancy; a constant
//!   condition picks a side. `cast`: widening integer casts that keep every value keep everything;
//!   other casts keep `k` (and element divisibility for integer truncation).
//! - `load`, `atomic`, `dot`, scans, `topk`, `sort`, `histogram`, calls: unknown (`c = k = p = 1`).
//!   `reduce`: keeps `k` of the other dimensions.
//! - `for`: the induction variable has `p = gcd(p_lo, p_step)`; loop-carried values are iterated
//!   to a fixed point of `meet(init, yield)`; results are that meet. `if`: results are the meet of
//!   both branches.

use crate::eval;
use crate::{
    BinaryOp, CmpPred, ConstValue, DType, Elem, Function, Module, Op, OpId, ReduceKind, RegionId,
    Type, UnaryOp, Value,
};
use std::collections::{HashMap, HashSet};

/// Cap on divisibility; a value known to be 0 is divisible by this.
pub const MAX_DIVISIBILITY: u64 = 1 << 62;

/// Byte alignment assumed for every pointer parameter (an ABI rule the runtime checks at launch).
pub const PTR_PARAM_ALIGN: u64 = 16;

/// How many times a loop body is re-analysed before its carried values are given up as unknown.
const MAX_LOOP_ITERATIONS: usize = 16;

/// Contiguity, divisibility and constancy of one value, one entry per dimension (see the module
/// documentation for the exact meaning).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AxisInfo {
    pub contiguity: Vec<u64>,
    pub divisibility: Vec<u64>,
    pub constancy: Vec<u64>,
    /// The value of every element, when it is a known integer (or bool, as 0/1).
    pub constant: Option<i64>,
    /// Every element is >= 0 (as a mathematical integer; always true for unsigned dtypes).
    pub non_negative: bool,
}

/// Facts about integer and pointer parameters that the caller (the runtime's specialisation)
/// guarantees, keyed by parameter index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamHints {
    /// Divisibility (a power of two; other numbers are rounded down to one) of integer
    /// parameters, and byte alignment of pointer parameters (overriding [`PTR_PARAM_ALIGN`]).
    pub divisibility: HashMap<u32, u64>,
    /// Integer parameters known to be >= 0.
    pub non_negative: HashSet<u32>,
}

impl ParamHints {
    /// No facts beyond the ABI rules.
    pub fn none() -> ParamHints {
        ParamHints::default()
    }
    /// Adds "parameter `index` is divisible by `d`" (or aligned to `d` bytes for a pointer).
    pub fn with_divisibility(mut self, index: u32, d: u64) -> ParamHints {
        self.divisibility.insert(index, d);
        self
    }
    /// Adds "parameter `index` is non-negative".
    pub fn with_non_negative(mut self, index: u32) -> ParamHints {
        self.non_negative.insert(index);
        self
    }
}

/// The analysis result: one [`AxisInfo`] per value of the function that is reachable from its
/// body.
#[derive(Clone, Debug, Default)]
pub struct AxisInfoTable {
    infos: Vec<Option<AxisInfo>>,
}

impl AxisInfoTable {
    /// The info of `v`, if `v` was analysed (every parameter and every value defined in a linked
    /// region is).
    pub fn get(&self, v: Value) -> Option<&AxisInfo> {
        self.infos.get(v.0 as usize).and_then(|i| i.as_ref())
    }

    /// How many consecutive elements along the last dimension of the pointer block `ptr` can be
    /// accessed as one aligned vector of at most `max_bytes` bytes: a power of two that divides
    /// the contiguity (so vectors never straddle runs or the end of the block), with the first
    /// address of every vector aligned to the vector size. 1 means scalar accesses.
    pub fn vector_width(&self, ptr: Value, elem_bytes: u32, max_bytes: u32) -> u32 {
        let Some(info) = self.get(ptr) else { return 1 };
        let (Some(&c), Some(&p)) = (info.contiguity.last(), info.divisibility.last()) else {
            return 1;
        };
        let elem = u64::from(elem_bytes.max(1));
        let by_contiguity = pow2_part(c);
        let by_alignment = if elem.is_power_of_two() { (p / elem).max(1) } else { 1 };
        let by_size = (u64::from(max_bytes) / elem).max(1);
        let w = by_contiguity.min(by_alignment).min(by_size);
        prev_pow2(w).min(u64::from(u32::MAX)) as u32
    }

    /// [`AxisInfoTable::vector_width`], further limited so that the mask (if any) is the same
    /// for every element of a vector: what a target with one predicate per vector access (PTX)
    /// can use.
    pub fn masked_vector_width(
        &self,
        ptr: Value,
        mask: Option<Value>,
        elem_bytes: u32,
        max_bytes: u32,
    ) -> u32 {
        let w = self.vector_width(ptr, elem_bytes, max_bytes);
        let Some(mask) = mask else { return w };
        let k = self.get(mask).and_then(|i| i.constancy.last().copied()).unwrap_or(1);
        w.min(prev_pow2(pow2_part(k)).min(u64::from(u32::MAX)) as u32).max(1)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Largest power of two dividing `n` (`MAX_DIVISIBILITY` for 0).
fn pow2_part(n: u64) -> u64 {
    if n == 0 {
        MAX_DIVISIBILITY
    } else {
        (n & n.wrapping_neg()).min(MAX_DIVISIBILITY)
    }
}

/// Largest power of two dividing the integer `v` (`MAX_DIVISIBILITY` for 0).
fn pow2_divisor(v: i64) -> u64 {
    pow2_part(v.unsigned_abs())
}

fn prev_pow2(n: u64) -> u64 {
    if n == 0 {
        1
    } else {
        1 << (63 - n.leading_zeros())
    }
}

impl AxisInfo {
    /// Nothing known, for a value with `dims` entries.
    pub fn unknown(dims: usize) -> AxisInfo {
        AxisInfo {
            contiguity: vec![1; dims],
            divisibility: vec![1; dims],
            constancy: vec![1; dims],
            constant: None,
            non_negative: false,
        }
    }

    fn dims(&self) -> usize {
        self.contiguity.len()
    }

    /// Divisibility of the elements at positions that are multiples of `q` along `d`.
    fn div_at(&self, d: usize, q: u64) -> u64 {
        let (c, p) = (self.contiguity[d], self.divisibility[d]);
        if gcd(q, c) == c {
            p
        } else {
            // Those positions are run starts plus multiples of gcd(q, c).
            p.min(pow2_part(gcd(q, c)))
        }
    }

    /// Divisibility of every element (derived from dimension `d`).
    fn elem_div(&self, d: usize) -> u64 {
        self.div_at(d, 1)
    }

    /// Divisibility of every element: any dimension's per-element bound holds for all elements.
    fn elem_div_all(&self) -> u64 {
        (0..self.dims()).map(|d| self.elem_div(d)).max().unwrap_or(1)
    }

    /// The best facts true of both `self` and `other` (same shape).
    fn meet(&self, other: &AxisInfo) -> AxisInfo {
        let n = self.dims().min(other.dims());
        let mut r = AxisInfo::unknown(n);
        for d in 0..n {
            let c = gcd(self.contiguity[d], other.contiguity[d]);
            r.contiguity[d] = c;
            r.constancy[d] = gcd(self.constancy[d], other.constancy[d]);
            r.divisibility[d] = self.div_at(d, c).min(other.div_at(d, c));
        }
        r.constant = if self.constant == other.constant { self.constant } else { None };
        r.non_negative = self.non_negative && other.non_negative;
        r
    }
}

/// Entries of a type: its shape, or `[1]` for a scalar.
fn dims_of(t: &Type) -> Vec<u64> {
    if t.shape.is_empty() {
        vec![1]
    } else {
        t.shape.iter().map(|&s| u64::from(s)).collect()
    }
}

/// Computes axis info for every value of `f` (a function of `m`).
pub fn analyze(m: &Module, f: &Function, hints: &ParamHints) -> AxisInfoTable {
    // The kernel's own `multiple_of` facts join the caller's hints (the runtime checks them).
    let merged;
    let hints = if f.param_multiples.is_empty() {
        hints
    } else {
        let mut h = hints.clone();
        for &(i, n) in &f.param_multiples {
            let d = h.divisibility.entry(i).or_insert(1);
            *d = (*d).max(n);
        }
        merged = h;
        &merged
    };
    let mut a = Analyzer { m, f, infos: vec![None; f.values.len()] };
    for (i, p) in f.params.iter().enumerate() {
        let info = a.param_info(i as u32, p.value, hints);
        a.set(p.value, info);
    }
    a.region(f.body);
    AxisInfoTable { infos: a.infos }
}

struct Analyzer<'a> {
    m: &'a Module,
    f: &'a Function,
    infos: Vec<Option<AxisInfo>>,
}

impl Analyzer<'_> {
    fn ty(&self, v: Value) -> &Type {
        self.m.ty(self.f.value_type(v))
    }

    fn dtype(&self, v: Value) -> Option<DType> {
        self.ty(v).elem.dtype()
    }

    /// The info of `v`, or unknown when it was never computed (malformed IR stays panic-free).
    fn get(&self, v: Value) -> AxisInfo {
        match self.infos.get(v.0 as usize) {
            Some(Some(i)) => i.clone(),
            _ => AxisInfo::unknown(dims_of(self.ty(v)).len()),
        }
    }

    /// Stores `info` for `v` after enforcing the invariants against `v`'s type.
    fn set(&mut self, v: Value, mut info: AxisInfo) {
        let t = self.ty(v).clone();
        let dims = dims_of(&t);
        if info.dims() != dims.len() {
            let keep_nn = info.non_negative;
            let div = info.elem_div_all();
            let constant = info.constant;
            info = AxisInfo::unknown(dims.len());
            info.divisibility = vec![div; dims.len()];
            info.non_negative = keep_nn;
            info.constant = constant;
        }
        let unsigned = matches!(t.elem, Elem::Scalar(d) if d.is_unsigned_int() || d.is_bool());
        if unsigned {
            info.non_negative = true;
        }
        let numeric = match t.elem {
            Elem::Ptr(_) => true,
            Elem::Scalar(d) => d.is_int(),
        };
        if let Some(c) = info.constant {
            info.non_negative |= c >= 0;
        }
        for (d, &n) in dims.iter().enumerate() {
            if info.constant.is_some() {
                info.contiguity[d] = 1;
                info.constancy[d] = n;
                info.divisibility[d] = pow2_divisor(info.constant.unwrap_or(0));
            }
            info.contiguity[d] = gcd(info.contiguity[d].max(1), n);
            info.constancy[d] = gcd(info.constancy[d].max(1), n);
            info.divisibility[d] = prev_pow2(info.divisibility[d].clamp(1, MAX_DIVISIBILITY));
            if !numeric {
                info.contiguity[d] = 1;
                info.divisibility[d] = 1;
            }
        }
        if let Some(slot) = self.infos.get_mut(v.0 as usize) {
            *slot = Some(info);
        }
    }

    fn set_unknown(&mut self, v: Value) {
        let n = dims_of(self.ty(v)).len();
        self.set(v, AxisInfo::unknown(n));
    }

    fn param_info(&self, index: u32, v: Value, hints: &ParamHints) -> AxisInfo {
        let n = dims_of(self.ty(v)).len();
        let mut info = AxisInfo::unknown(n);
        let base = match self.ty(v).elem {
            Elem::Ptr(_) => PTR_PARAM_ALIGN,
            Elem::Scalar(_) => 1,
        };
        let div = hints.divisibility.get(&index).copied().unwrap_or(base).max(1);
        info.divisibility = vec![prev_pow2(div); n];
        info.non_negative = hints.non_negative.contains(&index);
        info
    }

    fn region(&mut self, r: RegionId) {
        for &id in &self.f.region(r).ops {
            self.op(id);
        }
    }

    /// The infos of the values the terminator of `r` yields.
    fn yielded(&self, r: RegionId) -> Vec<AxisInfo> {
        match self.f.region(r).ops.last().map(|&y| &self.f.op(y).op) {
            Some(Op::Yield { values }) => values.iter().map(|&v| self.get(v)).collect(),
            _ => Vec::new(),
        }
    }

    fn op(&mut self, id: OpId) {
        let od = self.f.op(id);
        let results = od.results.clone();
        match &od.op {
            Op::For { lo, hi: _, step, init, body } => {
                self.for_op(*lo, *step, init, *body, &results);
                return;
            }
            Op::If { then_body, else_body, .. } => {
                self.region(*then_body);
                self.region(*else_body);
                let (t, e) = (self.yielded(*then_body), self.yielded(*else_body));
                for (i, &r) in results.iter().enumerate() {
                    match (t.get(i), e.get(i)) {
                        (Some(a), Some(b)) => {
                            let m = a.meet(b);
                            self.set(r, m);
                        }
                        _ => self.set_unknown(r),
                    }
                }
                return;
            }
            Op::ReduceWith { combine, .. } | Op::ScanWith { combine, .. } => {
                for &a in &self.f.region(*combine).args.clone() {
                    self.set_unknown(a);
                }
                self.region(*combine);
            }
            _ => {}
        }
        let info = if results.len() == 1 { self.transfer(&od.op, results[0]) } else { None };
        match info {
            Some(i) => self.set(results[0], i),
            None => results.iter().for_each(|&r| self.set_unknown(r)),
        }
    }

    fn for_op(
        &mut self,
        lo: Value,
        step: Value,
        init: &[Value],
        body: RegionId,
        results: &[Value],
    ) {
        let args = self.f.region(body).args.clone();
        if let Some(&iv) = args.first() {
            let (l, s) = (self.get(lo), self.get(step));
            let mut info = AxisInfo::unknown(1);
            info.divisibility[0] = l.elem_div(0).min(s.elem_div(0));
            // The step is checked to be positive at run time, so iv >= lo.
            info.non_negative = l.non_negative;
            self.set(iv, info);
        }
        let mut carried: Vec<AxisInfo> = init.iter().map(|&v| self.get(v)).collect();
        let mut converged = false;
        for _ in 0..MAX_LOOP_ITERATIONS {
            for (i, c) in carried.iter().enumerate() {
                if let Some(&a) = args.get(i + 1) {
                    self.set(a, c.clone());
                }
            }
            self.region(body);
            let y = self.yielded(body);
            // Re-read what `set` stored so that normalisation does not look like a change.
            let current: Vec<AxisInfo> =
                args.iter().skip(1).take(carried.len()).map(|&a| self.get(a)).collect();
            let next: Vec<AxisInfo> = current
                .iter()
                .enumerate()
                .map(|(i, c)| y.get(i).map_or_else(|| AxisInfo::unknown(c.dims()), |y| c.meet(y)))
                .collect();
            if next == current {
                converged = true;
                break;
            }
            carried = next;
        }
        if !converged {
            for &a in args.iter().skip(1) {
                self.set_unknown(a);
            }
            self.region(body);
        }
        let y = self.yielded(body);
        for (i, &r) in results.iter().enumerate() {
            let arg = args.get(i + 1).map(|&a| self.get(a));
            match (arg, y.get(i)) {
                (Some(a), Some(y)) => {
                    let m = a.meet(y);
                    self.set(r, m);
                }
                _ => self.set_unknown(r),
            }
        }
    }

    /// Info of the single result `r` of `op`; `None` means unknown.
    fn transfer(&self, op: &Op, r: Value) -> Option<AxisInfo> {
        let rdims = dims_of(self.ty(r));
        let n = rdims.len();
        let mut out = AxisInfo::unknown(n);
        match op {
            Op::Const { value } => {
                out.constant = match *value {
                    ConstValue::Int(i) => Some(i),
                    ConstValue::Bool(b) => Some(i64::from(b)),
                    ConstValue::Float(_) => None,
                };
            }
            Op::ProgramId { .. } | Op::NumPrograms { .. } => out.non_negative = true,
            Op::Arange { start, end } => {
                out.contiguity[0] = end.saturating_sub(*start).max(1) as u64;
                out.divisibility[0] = pow2_divisor(*start);
                out.non_negative = *start >= 0;
                if end.saturating_sub(*start) == 1 {
                    out.constant = Some(*start);
                }
            }
            Op::Splat { value } => {
                let s = self.get(*value);
                out.constancy = rdims.clone();
                out.divisibility = vec![s.elem_div_all(); n];
                out.constant = s.constant;
                out.non_negative = s.non_negative;
            }
            Op::Broadcast { value } => {
                let s = self.get(*value);
                let sdims = dims_of(self.ty(*value));
                if s.dims() != n {
                    return None;
                }
                out = s.clone();
                for d in 0..n {
                    if sdims[d] == 1 && rdims[d] != 1 {
                        out.contiguity[d] = 1;
                        out.constancy[d] = rdims[d];
                        out.divisibility[d] = s.elem_div_all();
                    }
                }
            }
            Op::ExpandDims { value, axis } => {
                let s = self.get(*value);
                if self.ty(*value).is_scalar() {
                    out = s;
                } else {
                    let ax = (*axis as usize).min(s.dims());
                    let div = s.elem_div_all();
                    out = s;
                    out.contiguity.insert(ax, 1);
                    out.constancy.insert(ax, 1);
                    out.divisibility.insert(ax, div);
                }
            }
            Op::Reshape { value } => {
                let s = self.get(*value);
                let sdims = dims_of(self.ty(*value));
                let big = |ds: &[u64]| ds.iter().copied().filter(|&x| x != 1).collect::<Vec<_>>();
                let div = s.elem_div_all();
                out.divisibility = vec![div; n];
                out.constant = s.constant;
                out.non_negative = s.non_negative;
                if big(&sdims) == big(&rdims) {
                    // Only size-1 dimensions move: map the others in order.
                    let mut src = (0..sdims.len()).filter(|&d| sdims[d] != 1);
                    for (d, &size) in rdims.iter().enumerate() {
                        if size != 1 {
                            if let Some(sd) = src.next() {
                                out.contiguity[d] = s.contiguity[sd];
                                out.constancy[d] = s.constancy[sd];
                                out.divisibility[d] = s.divisibility[sd];
                            }
                        }
                    }
                }
            }
            Op::Permute { value, perm } => {
                let s = self.get(*value);
                if perm.len() != n || perm.iter().any(|&p| p as usize >= s.dims()) {
                    return None;
                }
                for (d, &p) in perm.iter().enumerate() {
                    out.contiguity[d] = s.contiguity[p as usize];
                    out.constancy[d] = s.constancy[p as usize];
                    out.divisibility[d] = s.divisibility[p as usize];
                }
                out.constant = s.constant;
                out.non_negative = s.non_negative;
            }
            Op::Unary { op: u, value } => {
                let s = self.get(*value);
                out.constancy = s.constancy.clone();
                match u {
                    UnaryOp::Neg | UnaryOp::Abs => {
                        for d in 0..n {
                            out.divisibility[d] = s.elem_div(d);
                        }
                        out.non_negative = *u == UnaryOp::Abs;
                    }
                    _ => {}
                }
                out.constant = self.fold(|dt, c| eval::unary(*u, dt, c[0]).ok(), &[*value], r);
            }
            Op::Binary { op: b, lhs, rhs } => return self.binary(*b, *lhs, *rhs, r),
            Op::Cmp { pred, lhs, rhs } => return self.cmp(*pred, *lhs, *rhs, r),
            Op::Select { cond, on_true, on_false } => {
                let (c, t, e) = (self.get(*cond), self.get(*on_true), self.get(*on_false));
                if c.dims() != n || t.dims() != n || e.dims() != n {
                    return None;
                }
                match c.constant {
                    Some(0) => return Some(e),
                    Some(_) => return Some(t),
                    None => {}
                }
                for d in 0..n {
                    let cc = gcd(gcd(t.contiguity[d], e.contiguity[d]), c.constancy[d]);
                    out.contiguity[d] = cc;
                    out.constancy[d] = gcd(gcd(t.constancy[d], e.constancy[d]), c.constancy[d]);
                    out.divisibility[d] = t.div_at(d, cc).min(e.div_at(d, cc));
                }
                out.constant = if t.constant == e.constant { t.constant } else { None };
                out.non_negative = t.non_negative && e.non_negative;
            }
            Op::Fma { a, b, c } => {
                let (a, b, c) = (self.get(*a), self.get(*b), self.get(*c));
                for d in 0..n.min(a.dims()).min(b.dims()).min(c.dims()) {
                    out.constancy[d] = gcd(gcd(a.constancy[d], b.constancy[d]), c.constancy[d]);
                }
            }
            Op::Cast { value } => return self.cast(*value, r),
            Op::AddPtr { ptr, offset } => {
                let elem = match self.ty(*ptr).elem {
                    Elem::Ptr(d) => u64::from(d.size_bytes()),
                    Elem::Scalar(_) => return None,
                };
                let (p, o) = (self.get(*ptr), self.get(*offset));
                if p.dims() != n || o.dims() != n {
                    return None;
                }
                // A narrow unsigned offset is extended to 64 bits before scaling; a run of it
                // that crossed the sign bit would not stay contiguous, so require aligned runs.
                let narrow_unsigned =
                    self.dtype(*offset).is_some_and(|d| d.is_unsigned_int() && d.bits() < 64);
                for d in 0..n {
                    let mut c = gcd(p.contiguity[d], o.constancy[d])
                        .max(gcd(p.constancy[d], o.contiguity[d]));
                    if narrow_unsigned && o.contiguity[d] > 1 {
                        c = gcd(c, o.div_at(d, c));
                    }
                    out.contiguity[d] = c;
                    out.constancy[d] = gcd(p.constancy[d], o.constancy[d]);
                    let od = o.div_at(d, c).saturating_mul(elem).min(MAX_DIVISIBILITY);
                    out.divisibility[d] = p.div_at(d, c).min(od);
                }
            }
            Op::Reduce { kind, axis, value } => {
                let s = self.get(*value);
                let ax = *axis as usize;
                if ax >= s.dims() {
                    return None;
                }
                let mut k = s.constancy.clone();
                k.remove(ax);
                if k.len() == n {
                    out.constancy = k;
                }
                match kind {
                    ReduceKind::Sum | ReduceKind::Max | ReduceKind::Min => {
                        out.divisibility = vec![s.elem_div_all(); n];
                        out.non_negative = s.non_negative;
                    }
                    ReduceKind::Argmax | ReduceKind::Argmin => out.non_negative = true,
                }
            }
            _ => return None,
        }
        Some(out)
    }

    /// The constant result of an element-wise op whose operands are all known constants.
    fn fold(
        &self,
        eval_fn: impl FnOnce(DType, &[ConstValue]) -> Option<ConstValue>,
        operands: &[Value],
        r: Value,
    ) -> Option<i64> {
        let dt = self.dtype(operands[0])?;
        let rdt = self.dtype(r)?;
        if !(rdt.is_int() || rdt.is_bool()) {
            return None;
        }
        let cs: Option<Vec<ConstValue>> = operands
            .iter()
            .map(|&v| {
                let c = self.get(v).constant?;
                let d = self.dtype(v)?;
                Some(if d.is_bool() { ConstValue::Bool(c != 0) } else { ConstValue::Int(c) })
            })
            .collect();
        match eval_fn(dt, &cs?)? {
            ConstValue::Int(i) => Some(i),
            ConstValue::Bool(b) => Some(i64::from(b)),
            ConstValue::Float(_) => None,
        }
    }

    fn binary(&self, b: BinaryOp, lhs: Value, rhs: Value, r: Value) -> Option<AxisInfo> {
        let (x, y) = (self.get(lhs), self.get(rhs));
        let n = dims_of(self.ty(r)).len();
        if x.dims() != n || y.dims() != n {
            return None;
        }
        let dt = self.dtype(r)?;
        let mut out = AxisInfo::unknown(n);
        out.constant = self.fold(|dt, c| eval::binary(b, dt, c[0], c[1]).ok(), &[lhs, rhs], r);
        if !dt.is_int() {
            for d in 0..n {
                out.constancy[d] = gcd(x.constancy[d], y.constancy[d]);
            }
            return Some(out);
        }
        // Dividends and masks that behave like floor division / modulo for runs.
        let sign_ok = x.non_negative || dt.is_unsigned_int();
        let yc = y.constant;
        for d in 0..n {
            let (cx, cy, kx, ky) =
                (x.contiguity[d], y.contiguity[d], x.constancy[d], y.constancy[d]);
            let mut k = gcd(kx, ky);
            let mut c = 1;
            let mut p = 1;
            // Runs of `g` values of x, starting at multiples of `g`, where y is constant and
            // divisible by `g`.
            let run_g = |ydiv: u64| gcd(gcd(cx, ky), x.divisibility[d].min(ydiv));
            match b {
                BinaryOp::Add => {
                    c = gcd(cx, ky).max(gcd(kx, cy));
                    p = x.div_at(d, c).min(y.div_at(d, c));
                }
                BinaryOp::Sub => {
                    c = gcd(cx, ky);
                    p = x.div_at(d, c).min(y.div_at(d, c));
                }
                BinaryOp::Mul => {
                    if yc == Some(1) {
                        (c, p) = (cx, x.divisibility[d]);
                    } else if x.constant == Some(1) {
                        (c, p) = (cy, y.divisibility[d]);
                    } else {
                        p = x.elem_div(d).saturating_mul(y.elem_div(d));
                    }
                }
                BinaryOp::Div => {
                    if yc == Some(1) {
                        (c, p) = (cx, x.divisibility[d]);
                    } else {
                        if sign_ok && y.non_negative {
                            k = k.max(run_g(y.elem_div(d)));
                        }
                        if let Some(q) = yc.filter(|&q| q > 0 && (q as u64).is_power_of_two()) {
                            let e = x.elem_div(d);
                            p = if e >= q as u64 { e / q as u64 } else { 1 };
                        }
                    }
                }
                BinaryOp::Rem => {
                    if sign_ok {
                        c = run_g(y.elem_div(d));
                    }
                    p = x.div_at(d, c).min(y.elem_div(d));
                }
                BinaryOp::Shl => match yc.filter(|&s| (0..64).contains(&s)) {
                    Some(0) => (c, p) = (cx, x.divisibility[d]),
                    Some(s) => p = x.elem_div(d).saturating_mul(1u64 << s.min(62)),
                    None => p = x.elem_div(d),
                },
                BinaryOp::Shr => match yc.filter(|&s| (0..64).contains(&s)) {
                    Some(0) => (c, p) = (cx, x.divisibility[d]),
                    Some(s) => {
                        let two_s = 1u64 << s.min(62);
                        k = k.max(run_g(two_s));
                        let e = x.elem_div(d);
                        p = if e == MAX_DIVISIBILITY { e } else { (e >> s.min(62)).max(1) };
                    }
                    None => {}
                },
                BinaryOp::And => {
                    p = x.elem_div(d).max(y.elem_div(d));
                    match yc.map(|m| mask_kind(dt, m)) {
                        Some(MaskKind::Low(two_n)) => {
                            c = run_g(two_n);
                            let px = x.div_at(d, c);
                            p = if px >= two_n { MAX_DIVISIBILITY } else { px };
                        }
                        Some(MaskKind::Align(two_n)) => k = k.max(run_g(two_n)),
                        _ => {}
                    }
                }
                BinaryOp::Or | BinaryOp::Xor | BinaryOp::Min | BinaryOp::Max => {
                    p = x.elem_div(d).min(y.elem_div(d));
                }
            }
            if dt.is_unsigned_int() && matches!(b, BinaryOp::Add | BinaryOp::Sub) && c > 1 {
                // Unsigned arithmetic wraps instead of failing: keep only runs that cannot
                // straddle a multiple of 2^bits, i.e. whose start is divisible by their length.
                let c2 = gcd(c, p);
                if c2 < c {
                    (c, p) = (c2, c2);
                }
            }
            out.contiguity[d] = c;
            out.constancy[d] = k;
            out.divisibility[d] = p;
        }
        out.non_negative = match b {
            BinaryOp::Add | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Or | BinaryOp::Min => {
                x.non_negative && y.non_negative
            }
            BinaryOp::Rem | BinaryOp::Shr => x.non_negative,
            BinaryOp::Max => x.non_negative || y.non_negative,
            BinaryOp::And => {
                x.non_negative
                    || y.non_negative
                    || matches!(yc.map(|m| mask_kind(dt, m)), Some(MaskKind::Low(_)))
            }
            BinaryOp::Sub | BinaryOp::Xor | BinaryOp::Shl => false,
        };
        Some(out)
    }

    fn cmp(&self, pred: CmpPred, lhs: Value, rhs: Value, r: Value) -> Option<AxisInfo> {
        let (x, y) = (self.get(lhs), self.get(rhs));
        let n = dims_of(self.ty(r)).len();
        if x.dims() != n || y.dims() != n {
            return None;
        }
        let mut out = AxisInfo::unknown(n);
        out.constant = self.fold(
            |dt, c| eval::cmp(pred, dt, c[0], c[1]).ok().map(ConstValue::Bool),
            &[lhs, rhs],
            r,
        );
        let integral = match self.ty(lhs).elem {
            Elem::Ptr(_) => true,
            Elem::Scalar(d) => d.is_int(),
        };
        // `bound OP run` is `run OP' bound` with the predicate mirrored.
        let mirror = |p: CmpPred| match p {
            CmpPred::Lt => CmpPred::Gt,
            CmpPred::Gt => CmpPred::Lt,
            CmpPred::Le => CmpPred::Ge,
            CmpPred::Ge => CmpPred::Le,
            other => other,
        };
        for d in 0..n {
            let mut k = gcd(x.constancy[d], y.constancy[d]);
            if integral {
                for (run, bound, p) in [(&x, &y, pred), (&y, &x, mirror(pred))] {
                    if run.contiguity[d] <= 1 {
                        continue;
                    }
                    // The result flips between `t - 1` and `t`; runs of `g` aligned values
                    // whose start and `t` are multiples of `g` never straddle `t`.
                    let t_div = match p {
                        CmpPred::Lt | CmpPred::Ge => Some(bound.elem_div(d)),
                        CmpPred::Le | CmpPred::Gt => {
                            bound.constant.and_then(|v| v.checked_add(1)).map(pow2_divisor)
                        }
                        CmpPred::Eq | CmpPred::Ne => None,
                    };
                    if let Some(t_div) = t_div {
                        let g = gcd(
                            gcd(run.contiguity[d], bound.constancy[d]),
                            run.divisibility[d].min(t_div),
                        );
                        k = k.max(g);
                    }
                }
            }
            out.constancy[d] = k;
        }
        Some(out)
    }

    fn cast(&self, value: Value, r: Value) -> Option<AxisInfo> {
        let s = self.get(value);
        let n = dims_of(self.ty(r)).len();
        if s.dims() != n {
            return None;
        }
        let mut out = AxisInfo::unknown(n);
        out.constancy = s.constancy.clone();
        match (self.ty(value).elem, self.ty(r).elem) {
            (Elem::Scalar(from), Elem::Scalar(to)) if from.is_int() && to.is_int() => {
                let keeps_values = if from.is_unsigned_int() {
                    to.bits() > from.bits() || (to.is_unsigned_int() && to.bits() >= from.bits())
                } else {
                    (to.is_signed_int() && to.bits() >= from.bits())
                        || (s.non_negative && to.bits() >= from.bits())
                };
                if keeps_values {
                    return Some(s);
                }
                // Truncation and reinterpretation keep the low bits, hence divisibility.
                for d in 0..n {
                    out.divisibility[d] = s.elem_div(d);
                }
                out.constant = s.constant.map(|c| match eval::cast(from, to, ConstValue::Int(c)) {
                    ConstValue::Int(i) => i,
                    ConstValue::Bool(b) => i64::from(b),
                    ConstValue::Float(_) => 0,
                });
            }
            (Elem::Scalar(from), Elem::Scalar(to))
                if (from.is_int() || from.is_bool()) && (to.is_int() || to.is_bool()) =>
            {
                // bool -> int is 0/1; int -> bool is `!= 0`.
                out.constant = s.constant.map(|c| i64::from(c != 0));
                out.non_negative = true;
            }
            (Elem::Ptr(a), Elem::Ptr(b)) => {
                for d in 0..n {
                    out.divisibility[d] = s.divisibility[d];
                    if a.size_bytes() == b.size_bytes() {
                        out.contiguity[d] = s.contiguity[d];
                    } else {
                        out.divisibility[d] = s.elem_div(d);
                    }
                }
            }
            _ => {}
        }
        Some(out)
    }
}

/// Shapes of integer masks that `and` turns into modulo or align-down.
enum MaskKind {
    /// `2^n - 1` (n >= 1): `x & m == x mod 2^n` (floor modulo, any sign).
    Low(u64),
    /// `-2^n` (n >= 1): clears the low `n` bits (floor to a multiple of `2^n`).
    Align(u64),
    Other,
}

fn mask_kind(dt: DType, m: i64) -> MaskKind {
    let bits = dt.bits();
    let width = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let mu = (m as u64) & width;
    let low = mu.wrapping_add(1);
    // `2^n - 1` below the sign bit for signed types (the all-ones mask is the identity).
    if mu != 0 && mu != width && low.is_power_of_two() {
        return MaskKind::Low(low.min(MAX_DIVISIBILITY));
    }
    let inv = !mu & width;
    let two_n = inv.wrapping_add(1);
    if inv != 0 && mu != 0 && two_n.is_power_of_two() {
        return MaskKind::Align(two_n.min(MAX_DIVISIBILITY));
    }
    MaskKind::Other
}
