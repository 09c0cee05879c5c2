//! The fusion plan: which block values are computed inside the loops that consume them (never
//! stored), and which are materialised as stack arrays, and in which loop.
//!
//! # Loops
//!
//! A *loop* runs over the index space of one block shape and evaluates element-wise expression
//! trees a vector of lanes at a time (`fused.rs`). Loops are anchored at ops:
//!
//! - a *root*: a block `store` (the loop runs over the stored shape) or a `sum`/`max`/`min`
//!   reduction (the loop runs over the operand's shape and accumulates);
//! - a value materialised in its *own* loop, anchored at its defining op.
//!
//! # Values
//!
//! A block value defined by a *fusible* op (`splat`, `broadcast`, `expand_dims`, a `reshape`
//! that only adds or drops size-1 dimensions, `arange`, element-wise arithmetic, comparisons,
//! `select`, `fma`, `cast`, `addptr`, `load`; integer `div`/`rem` only by a constant that
//! cannot trap) is one of:
//!
//! - **lazy**: recomputed in every loop that consumes it, never stored;
//! - **materialised in loop `L`**: computed and stored to its array while `L` runs (the first
//!   loop that consumes it), read back from the array by later consumers;
//! - **materialised in its own loop**, emitted where it is defined.
//!
//! Every other block value (results of reductions to blocks, `dot`, scans, sorts, loop-carried
//! values, ...) is an array.
//!
//! # Rules
//!
//! Consumers of a value are collected in reverse program order, through lazy users: a root or
//! a materialising loop that uses it (a *loop* use), an op that needs an array (`dot`, `sort`,
//! `yield`, ...: an *array* use), or an op in a nested region (`for` body, `if` branch: a
//! *nested* use, at the position of the enclosing op). Then:
//!
//! - a value with an array use is materialised (a cheap one is still recomputed by fused loops);
//! - a *cheap* value (no expensive arithmetic anywhere in its tree, and no load except
//!   *repeatable* ones) is lazy: index and mask arithmetic is recomputed rather than stored. A
//!   load is repeatable when every loop that needs it comes before the next store or atomic and
//!   none is in a nested region, no transcendental or float division consumes it, and it reads
//!   a contiguous block of at most 16 Ki elements: the row of a normalisation is read again from
//!   cache by each of its loops instead of being copied to the stack and read back;
//! - otherwise a value used in exactly one loop of its own region is lazy, unless it is a load
//!   and a store or atomic lies between the load and that loop (the load must see memory as it
//!   was at its place in the program);
//! - otherwise it is materialised, in the first loop that uses it when that loop has the value's
//!   shape, comes before every array or nested use and (for a load) before any later side
//!   effect; else in its own loop.
//!
//! Inside one loop, the lanes of a chunk load before they store: a store that overwrites memory
//! that the same fused loop reads at another element (a shifted in-place update within one
//! block) sees the lanes of earlier chunks already written. tk leaves that unspecified (lanes
//! of one store run in parallel threads on GPUs); the interpreter reads everything first.

use std::collections::{HashMap, HashSet};
use tk_ir::analysis::AxisInfoTable;
use tk_ir::ValueDef::Result;
use tk_ir::{BinaryOp, DType, Function, Module, Op, OpData, OpId, ReduceKind, RegionId};
use tk_ir::{UnaryOp, Value};

/// What happens to a fusible block value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Lazy,
    /// Stored to its array inside the loop anchored at this op.
    MatIn(OpId),
    /// Stored to its array by its own loop, emitted at its definition.
    MatOwn,
}

/// The plan of one kernel.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Decisions for the results of fusible ops with a block type.
    pub decision: HashMap<Value, Decision>,
    /// Values materialised inside the loop anchored at an op (in definition order).
    pub piggy: HashMap<OpId, Vec<Value>>,
    /// Number of operand uses of every value (for in-place updates).
    pub uses: HashMap<Value, u32>,
    /// Cheap fusible values: fused loops recompute them even when an array also holds them.
    pub cheap: HashSet<Value>,
}

impl Plan {
    pub fn decision(&self, v: Value) -> Option<Decision> {
        self.decision.get(&v).copied()
    }
}

/// A consumer of a value, seen from the value's region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Cp {
    /// Evaluated inside the loop anchored at this op.
    Loop(OpId),
    /// An op at this position needs the value as an array.
    Array(usize),
    /// An op nested in the op at this position uses it.
    Nested(usize),
}

/// True if the op defines a block that can be evaluated lane by lane inside a loop.
pub(crate) fn is_fusible(m: &Module, f: &Function, info: &AxisInfoTable, od: &OpData) -> bool {
    let ty = |v: Value| m.ty(f.value_type(v));
    let Some(&res) = od.results.first() else { return false };
    if ty(res).is_scalar() {
        return false;
    }
    match &od.op {
        Op::Splat { .. }
        | Op::Broadcast { .. }
        | Op::ExpandDims { .. }
        | Op::Arange { .. }
        | Op::Unary { .. }
        | Op::Cmp { .. }
        | Op::Select { .. }
        | Op::Fma { .. }
        | Op::Cast { .. }
        | Op::AddPtr { .. }
        | Op::Load { .. } => true,
        Op::Reshape { value } => {
            let s = &ty(*value).shape;
            s.is_empty() || squeezed(s) == squeezed(&ty(res).shape)
        }
        Op::Binary { op, rhs, .. } => {
            let dt = ty(*rhs).elem.dtype();
            match (op, dt) {
                (BinaryOp::Div | BinaryOp::Rem, Some(d)) if d.is_int() => {
                    let c = info.get(*rhs).and_then(|i| i.constant);
                    // A constant divisor that is neither 0 nor -1 (for signed types) never traps.
                    matches!(c, Some(c) if c != 0 && (c != -1 || d.is_unsigned_int()))
                }
                _ => true,
            }
        }
        _ => false,
    }
}

/// Non-1 dimensions of a shape, in order.
pub(crate) fn squeezed(shape: &[u32]) -> Vec<u32> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// True if the op is a loop root of this backend.
pub(crate) fn is_root(m: &Module, f: &Function, op: &Op) -> bool {
    match op {
        Op::Store { value, .. } => !m.ty(f.value_type(*value)).is_scalar(),
        Op::Reduce { kind, value, .. } => {
            matches!(kind, ReduceKind::Sum | ReduceKind::Max | ReduceKind::Min)
                && !matches!(m.ty(f.value_type(*value)).elem.dtype(), Some(DType::Bool))
        }
        _ => false,
    }
}

struct Planner<'a> {
    m: &'a Module,
    f: &'a Function,
    info: &'a AxisInfoTable,
    plan: Plan,
    /// Region and position of every linked op.
    place: HashMap<OpId, (RegionId, usize)>,
    /// The op owning each nested region.
    parent: HashMap<RegionId, OpId>,
    /// Ops that write memory (directly or in nested regions).
    effects: HashSet<OpId>,
    cheap: HashMap<Value, bool>,
    /// Consumers of every lazy value (in its region).
    cps: HashMap<Value, Vec<Cp>>,
    /// Users of every value (op ids, any region).
    users: HashMap<Value, Vec<OpId>>,
    /// Last position a fusible value is needed at in its region, whether a nested region needs
    /// it, and whether an expensive op (see `expensive`) consumes it on the way to a loop.
    maxuse: HashMap<Value, (usize, bool, bool)>,
}

/// Largest block a load may have to be repeated rather than stored (64 KiB of f32).
const RELOAD_MAX_ELEMS: u64 = 16384;

/// Builds the fusion plan of `f`.
pub(crate) fn plan(m: &Module, f: &Function, info: &AxisInfoTable) -> Plan {
    let mut p = Planner {
        m,
        f,
        info,
        plan: Plan::default(),
        place: HashMap::new(),
        parent: HashMap::new(),
        effects: HashSet::new(),
        cheap: HashMap::new(),
        cps: HashMap::new(),
        users: HashMap::new(),
        maxuse: HashMap::new(),
    };
    p.index(f.body);
    p.reach(f.body);
    p.cheapen(f.body);
    p.region(f.body);
    p.plan
}

impl Planner<'_> {
    fn shape(&self, v: Value) -> &[u32] {
        &self.m.ty(self.f.value_type(v)).shape
    }
    fn is_block(&self, v: Value) -> bool {
        !self.shape(v).is_empty()
    }
    fn op(&self, id: OpId) -> &Op {
        &self.f.op(id).op
    }

    /// Records places, parents, users, effects and cheapness (forward, parents first).
    fn index(&mut self, r: RegionId) -> bool {
        let mut any_effect = false;
        let ops = self.f.region(r).ops.clone();
        for (pos, &id) in ops.iter().enumerate() {
            self.place.insert(id, (r, pos));
            let od = self.f.op(id);
            for v in od.op.operands() {
                self.users.entry(v).or_default().push(id);
                *self.plan.uses.entry(v).or_default() += 1;
            }
            let mut eff =
                matches!(od.op, Op::Store { .. } | Op::Atomic { .. } | Op::AtomicCas { .. });
            for sub in od.op.regions() {
                self.parent.insert(sub, id);
                eff |= self.index(sub);
            }
            if eff {
                self.effects.insert(id);
                any_effect = true;
            }
        }
        any_effect
    }

    /// Last position (in its region) where each fusible value is needed, through fusible users,
    /// and whether a nested region needs it (backward, so users come first).
    fn reach(&mut self, r: RegionId) {
        let ops = self.f.region(r).ops.clone();
        for &id in ops.iter().rev() {
            let od = self.f.op(id);
            for sub in od.op.regions() {
                self.reach(sub);
            }
            let Some(&v) = od.results.first() else { continue };
            if !self.fusible_here(id) {
                continue;
            }
            let (mut last, mut nested, mut costly) = (0usize, false, false);
            for &u in self.users.get(&v).map(|u| u.as_slice()).unwrap_or(&[]) {
                let Some((pos, n)) = self.anchor(r, u) else { continue };
                last = last.max(pos);
                nested |= n;
                if let Some(&w) = self.f.op(u).results.first() {
                    if !n && self.fusible_here(u) {
                        costly |= self.expensive(u);
                        let (l2, n2, c2) =
                            self.maxuse.get(&w).copied().unwrap_or((pos, false, false));
                        last = last.max(l2);
                        nested |= n2;
                        costly |= c2;
                    }
                }
            }
            self.maxuse.insert(v, (last, nested, costly));
        }
    }

    /// Which fusible values are cheap (forward, operands first).
    fn cheapen(&mut self, r: RegionId) {
        let ops = self.f.region(r).ops.clone();
        for &id in &ops {
            if let Some(&res) = self.f.op(id).results.first() {
                let c = self.is_block(res) && self.fusible_here(id) && self.cheap_op(id);
                self.cheap.insert(res, c);
                if c {
                    self.plan.cheap.insert(res);
                }
            }
            for sub in self.f.op(id).op.regions() {
                self.cheapen(sub);
            }
        }
    }

    /// A load that may be repeated in every loop that needs it instead of being stored: every
    /// such loop comes before the next store or atomic (so it reads the same memory), none is in
    /// a nested region, and it is a contiguous access of a block small enough to stay in cache
    /// between the loops (a row of a normalisation, say).
    fn reloadable(&self, id: OpId) -> bool {
        let od = self.f.op(id);
        let (Op::Load { ptr, .. }, Some(&v)) = (&od.op, od.results.first()) else { return false };
        let shape = self.shape(v);
        let numel: u64 = shape.iter().map(|&d| d as u64).product();
        let last = shape.last().copied().unwrap_or(1) as u64;
        let c = self.info.get(*ptr).and_then(|i| i.contiguity.last().copied()).unwrap_or(1);
        if numel > RELOAD_MAX_ELEMS || !(c >= 8 || c == last) {
            return false;
        }
        let Some(&(r, pos)) = self.place.get(&id) else { return false };
        match self.maxuse.get(&v) {
            Some(&(lastuse, false, false)) => lastuse <= self.next_effect(r, pos + 1),
            _ => false,
        }
    }

    /// Transcendental functions and float division: their loops are not versioned (see
    /// `fused.rs`), so a load repeated there would keep its mask tests; an array is cheaper.
    fn expensive(&self, id: OpId) -> bool {
        match self.op(id) {
            Op::Unary { op, .. } => {
                op.float_only() && !matches!(op, UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Sqrt)
            }
            Op::Binary { op: BinaryOp::Div | BinaryOp::Rem, .. } => self.float_result(id),
            _ => false,
        }
    }

    fn fusible_here(&self, id: OpId) -> bool {
        is_fusible(self.m, self.f, self.info, self.f.op(id))
    }

    /// Cheap ops whose fusible operands are all cheap.
    fn cheap_op(&self, id: OpId) -> bool {
        let op = self.op(id);
        let kind_ok = match op {
            Op::Splat { .. }
            | Op::Broadcast { .. }
            | Op::ExpandDims { .. }
            | Op::Reshape { .. }
            | Op::Arange { .. }
            | Op::Cast { .. }
            | Op::AddPtr { .. }
            | Op::Cmp { .. }
            | Op::Select { .. } => true,
            Op::Unary { op, .. } => matches!(op, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs),
            Op::Load { .. } => self.reloadable(id),
            Op::Binary { op, .. } => match op {
                BinaryOp::Rem => false,
                BinaryOp::Div => !self.float_result(id),
                _ => true,
            },
            _ => false,
        };
        kind_ok
            && op.operands().iter().all(|v| match self.f.value(*v).def {
                Result { op: d, .. } => {
                    !self.fusible_here(d) || self.cheap.get(v).copied().unwrap_or(false)
                }
                _ => true,
            })
    }

    fn float_result(&self, id: OpId) -> bool {
        self.f.op(id).results.first().is_some_and(|&r| {
            self.m.ty(self.f.value_type(r)).elem.dtype().is_some_and(|d| d.is_float())
        })
    }

    /// Position of the op in `r` that is `user` or encloses it; None if `user` is not in `r`.
    fn anchor(&self, r: RegionId, user: OpId) -> Option<(usize, bool)> {
        let mut cur = user;
        let mut nested = false;
        loop {
            let &(ur, pos) = self.place.get(&cur)?;
            if ur == r {
                return Some((pos, nested));
            }
            cur = *self.parent.get(&ur)?;
            nested = true;
        }
    }

    /// Position of the loop anchored at `id` (in its region).
    fn pos(&self, id: OpId) -> usize {
        self.place.get(&id).map(|p| p.1).unwrap_or(usize::MAX)
    }

    /// Shape of the loop anchored at `id`.
    fn loop_shape(&self, id: OpId) -> Vec<u32> {
        match self.op(id) {
            Op::Store { value, .. } | Op::Reduce { value, .. } => self.shape(*value).to_vec(),
            _ => self.f.op(id).results.first().map(|&r| self.shape(r).to_vec()).unwrap_or_default(),
        }
    }

    /// Position of the first op at or after `pos` in `r` that writes memory.
    fn next_effect(&self, r: RegionId, pos: usize) -> usize {
        let ops = &self.f.region(r).ops;
        (pos..ops.len()).find(|&i| self.effects.contains(&ops[i])).unwrap_or(usize::MAX)
    }

    fn region(&mut self, r: RegionId) {
        let ops = self.f.region(r).ops.clone();
        for (pos, &id) in ops.iter().enumerate().rev() {
            let od = self.f.op(id);
            if let Some(&res) = od.results.first() {
                if self.fusible_here(id) {
                    self.decide(r, pos, id, res);
                }
            }
            for sub in od.op.regions() {
                self.region(sub);
            }
        }
    }

    fn consumers(&self, r: RegionId, v: Value) -> Vec<Cp> {
        let mut out = Vec::new();
        for &u in self.users.get(&v).map(|u| u.as_slice()).unwrap_or(&[]) {
            let Some((pos, nested)) = self.anchor(r, u) else { continue };
            if nested {
                out.push(Cp::Nested(pos));
                continue;
            }
            let uop = self.op(u);
            if matches!(uop, Op::Print { .. }) {
                // `print` is ignored by this backend: it needs nothing.
                continue;
            }
            if let Op::For { init, .. } = uop {
                if init.contains(&v) && self.cheap.get(&v).copied().unwrap_or(false) {
                    // A cheap initial value is computed straight into the loop's slot.
                    continue;
                }
            }
            if is_root(self.m, self.f, uop) {
                out.push(Cp::Loop(u));
                continue;
            }
            let ures = self.f.op(u).results.first().copied();
            match ures.and_then(|w| self.plan.decision(w).map(|d| (w, d))) {
                Some((w, Decision::Lazy)) => {
                    out.extend(self.cps.get(&w).cloned().unwrap_or_default());
                }
                Some((_, Decision::MatIn(l))) => out.push(Cp::Loop(l)),
                Some((_, Decision::MatOwn)) => out.push(Cp::Loop(u)),
                None => out.push(Cp::Array(pos)),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn decide(&mut self, r: RegionId, pos: usize, id: OpId, v: Value) {
        let cps = self.consumers(r, v);
        let has_array = cps.iter().any(|c| matches!(c, Cp::Array(_)));
        let nested = cps.iter().any(|c| matches!(c, Cp::Nested(_)));
        let mut loops: Vec<OpId> = cps
            .iter()
            .filter_map(|c| match c {
                Cp::Loop(l) => Some(*l),
                _ => None,
            })
            .collect();
        loops.sort_by_key(|&l| self.pos(l));
        let is_load = matches!(self.op(id), Op::Load { .. });
        let limit = if is_load { self.next_effect(r, pos + 1) } else { usize::MAX };
        let cheap = self.cheap.get(&v).copied().unwrap_or(false);
        if !has_array
            && (cheap
                || (!nested && loops.len() <= 1 && loops.iter().all(|&l| self.pos(l) <= limit)))
        {
            self.plan.decision.insert(v, Decision::Lazy);
            self.cps.insert(v, cps);
            return;
        }
        let first_other = cps
            .iter()
            .filter_map(|c| match c {
                Cp::Array(p) | Cp::Nested(p) => Some(*p),
                Cp::Loop(_) => None,
            })
            .min()
            .unwrap_or(usize::MAX);
        let shape = self.shape(v).to_vec();
        let within = loops.first().copied().filter(|&l| {
            let lp = self.pos(l);
            lp < first_other && lp <= limit && self.loop_shape(l) == shape
        });
        match within {
            Some(l) => {
                self.plan.decision.insert(v, Decision::MatIn(l));
                self.plan.piggy.entry(l).or_default().insert(0, v);
            }
            None => {
                self.plan.decision.insert(v, Decision::MatOwn);
            }
        }
    }
}
