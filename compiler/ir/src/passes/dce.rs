//! Dead-code elimination by liveness marking (an "aggressive" DCE: nothing is live until proven).
//!
//! Rules:
//! - Roots: ops with side effects ([`Op::has_side_effects`]: stores, atomics, asserts, prints,
//!   calls) and the function body's final `yield` (the function's results).
//! - An op with regions (`for`, `if`, `reduce_with`, `scan_with`) counts as side-effecting when any
//!   op nested in it does; such an op is always kept, and so are its nested side effects.
//! - Otherwise an op is live when one of its results is used by a live op; a live op makes all its
//!   operands live, except the following, which are tracked per slot:
//!   - `for`: loop-carried slot `i` is live when result `i` is live or the body argument for slot
//!     `i` is used by a live op; only live slots keep their `init`, body argument, `yield` operand
//!     and result. `lo`, `hi` and `step` stay live with the loop. Dead slots are removed from the
//!     op (results and region arguments are renumbered), so an accumulator that only feeds itself
//!     disappears.
//!   - `if`: result `j` is live when used; dead results are removed together with the matching
//!     operand of both branches' `yield`.
//! - Every op that is not live is unlinked from its region. A `for` with no live slot and no side
//!   effect is removed entirely, which also removes its run-time `step > 0` check: like any unused
//!   pure op that could fail, a dead loop has no behaviour left to preserve.
//! - `reduce_with` / `scan_with` combine regions are kept whole when the op is live (their
//!   arguments are fixed by the op's contract).

use super::{for_each_function, region_parents};
use crate::{Function, Module, Op, OpId, RegionId, Value, ValueDef};
use std::collections::{HashMap, HashSet};

/// Runs DCE on every function. Returns whether anything was removed.
pub fn run(m: &mut Module) -> bool {
    for_each_function(m, |_, f| run_function(f))
}

/// Runs DCE on one function.
pub fn run_function(f: &mut Function) -> bool {
    let parents = region_parents(f);
    let effects = nested_side_effects(f);
    let yield_parents =
        parents.iter().filter_map(|(&r, &p)| f.region(r).ops.last().map(|&y| (y, p))).collect();
    let mut live = Liveness {
        parents: &parents,
        yield_parents,
        live_ops: HashSet::new(),
        live_values: HashSet::new(),
        live_slots: HashSet::new(),
        work: Vec::new(),
    };
    // Roots.
    if let Some(&y) = f.region(f.body).ops.last() {
        live.mark_op(f, y);
    }
    for id in f.walk() {
        let op = &f.op(id).op;
        let root = match op {
            Op::Yield { .. } => false,
            _ if op.has_side_effects() => true,
            _ => effects.contains(&id),
        };
        if root {
            live.mark_op(f, id);
        }
    }
    live.propagate(f);
    let Liveness { live_ops, live_slots, .. } = live;

    let mut changed = false;
    sweep_region(f, f.body, &live_ops, &live_slots, &mut changed);
    changed
}

/// Region ops that contain a side effect somewhere inside.
fn nested_side_effects(f: &Function) -> HashSet<OpId> {
    fn visit(f: &Function, r: RegionId, out: &mut HashSet<OpId>) -> bool {
        let mut any = false;
        for &id in &f.region(r).ops {
            let op = &f.op(id).op;
            let mut inner = false;
            for sub in op.regions() {
                inner |= visit(f, sub, out);
            }
            if inner {
                out.insert(id);
            }
            if inner || (op.has_side_effects() && !matches!(op, Op::Yield { .. })) {
                any = true;
            }
        }
        any
    }
    let mut out = HashSet::new();
    visit(f, f.body, &mut out);
    out
}

struct Liveness<'a> {
    parents: &'a HashMap<RegionId, OpId>,
    /// Terminator of each nested region -> the op owning that region.
    yield_parents: HashMap<OpId, OpId>,
    live_ops: HashSet<OpId>,
    live_values: HashSet<Value>,
    /// (op, slot) pairs: loop-carried slots of `for` ops and results of `if` ops that are live.
    live_slots: HashSet<(OpId, usize)>,
    work: Vec<Value>,
}

impl Liveness<'_> {
    fn mark_value(&mut self, v: Value) {
        if self.live_values.insert(v) {
            self.work.push(v);
        }
    }

    fn mark_op(&mut self, f: &Function, id: OpId) {
        if !self.live_ops.insert(id) {
            return;
        }
        match &f.op(id).op {
            Op::For { lo, hi, step, .. } => {
                self.mark_value(*lo);
                self.mark_value(*hi);
                self.mark_value(*step);
            }
            Op::If { cond, .. } => self.mark_value(*cond),
            Op::ReduceWith { value, combine, .. } | Op::ScanWith { value, combine, .. } => {
                self.mark_value(*value);
                if let Some(&y) = f.region(*combine).ops.last() {
                    self.mark_op(f, y);
                }
            }
            Op::Yield { values } => {
                // A yield's operands are live per slot of its parent; the function body's yield
                // (no parent) and combine-region yields keep everything.
                let slotted = self
                    .yield_parents
                    .get(&id)
                    .is_some_and(|&p| matches!(f.op(p).op, Op::For { .. } | Op::If { .. }));
                if !slotted {
                    for &v in values {
                        self.mark_value(v);
                    }
                }
            }
            op => {
                for v in op.operands() {
                    self.mark_value(v);
                }
            }
        }
    }

    /// Marks slot `slot` of the `for` / `if` op `id` live, with everything that carries it.
    fn mark_slot(&mut self, f: &Function, id: OpId, slot: usize) {
        self.mark_op(f, id);
        if !self.live_slots.insert((id, slot)) {
            return;
        }
        match &f.op(id).op {
            Op::For { init, body, .. } => {
                if let Some(&v) = init.get(slot) {
                    self.mark_value(v);
                }
                self.mark_yield_operand(f, *body, slot);
            }
            Op::If { then_body, else_body, .. } => {
                self.mark_yield_operand(f, *then_body, slot);
                self.mark_yield_operand(f, *else_body, slot);
            }
            _ => {}
        }
    }

    fn mark_yield_operand(&mut self, f: &Function, region: RegionId, slot: usize) {
        if let Some(&y) = f.region(region).ops.last() {
            self.live_ops.insert(y);
            if let Op::Yield { values } = &f.op(y).op {
                if let Some(&v) = values.get(slot) {
                    self.mark_value(v);
                }
            }
        }
    }

    fn propagate(&mut self, f: &Function) {
        while let Some(v) = self.work.pop() {
            match f.value(v).def {
                ValueDef::Param(_) => {}
                ValueDef::Result { op, index } => match f.op(op).op {
                    Op::For { .. } | Op::If { .. } => self.mark_slot(f, op, index as usize),
                    _ => self.mark_op(f, op),
                },
                ValueDef::RegionArg { region, index } => {
                    let Some(&p) = self.parents.get(&region) else { continue };
                    match f.op(p).op {
                        Op::For { .. } if index > 0 => self.mark_slot(f, p, index as usize - 1),
                        _ => self.mark_op(f, p),
                    }
                }
            }
        }
    }
}

fn sweep_region(
    f: &mut Function,
    region: RegionId,
    live_ops: &HashSet<OpId>,
    live_slots: &HashSet<(OpId, usize)>,
    changed: &mut bool,
) {
    let old = std::mem::take(&mut f.region_mut(region).ops);
    let n = old.len();
    let mut out = Vec::with_capacity(n);
    for (i, id) in old.into_iter().enumerate() {
        // The terminator always stays: every region ends in a yield.
        if !live_ops.contains(&id) && i + 1 != n {
            *changed = true;
            continue;
        }
        match f.op(id).op.clone() {
            Op::For { .. } => *changed |= shrink_for(f, id, live_slots),
            Op::If { .. } => *changed |= shrink_if(f, id, live_slots),
            _ => {}
        }
        for r in f.op(id).op.regions() {
            sweep_region(f, r, live_ops, live_slots, changed);
        }
        out.push(id);
    }
    f.region_mut(region).ops = out;
}

/// Drops the dead loop-carried slots of a live `for`.
fn shrink_for(f: &mut Function, id: OpId, live_slots: &HashSet<(OpId, usize)>) -> bool {
    let Op::For { init, body, .. } = &f.op(id).op else { return false };
    let (n, body) = (init.len(), *body);
    let keep: Vec<bool> = (0..n).map(|s| live_slots.contains(&(id, s))).collect();
    if keep.iter().all(|&k| k) {
        return false;
    }
    if let Op::For { init, .. } = &mut f.op_mut(id).op {
        retain_by(init, &keep);
    }
    // Body arguments: the induction variable (index 0) always stays.
    let mut arg_keep = vec![true];
    arg_keep.extend(&keep);
    let mut args = std::mem::take(&mut f.region_mut(body).args);
    retain_by(&mut args, &arg_keep);
    for (i, &a) in args.iter().enumerate() {
        f.values[a.0 as usize].def = ValueDef::RegionArg { region: body, index: i as u32 };
    }
    f.region_mut(body).args = args;
    shrink_yield(f, body, &keep);
    shrink_results(f, id, &keep);
    true
}

/// Drops the dead results of a live `if`.
fn shrink_if(f: &mut Function, id: OpId, live_slots: &HashSet<(OpId, usize)>) -> bool {
    let Op::If { then_body, else_body, .. } = f.op(id).op else { return false };
    let n = f.op(id).results.len();
    let keep: Vec<bool> = (0..n).map(|s| live_slots.contains(&(id, s))).collect();
    if keep.iter().all(|&k| k) {
        return false;
    }
    shrink_yield(f, then_body, &keep);
    shrink_yield(f, else_body, &keep);
    shrink_results(f, id, &keep);
    true
}

fn shrink_yield(f: &mut Function, region: RegionId, keep: &[bool]) {
    if let Some(&y) = f.region(region).ops.last() {
        if let Op::Yield { values } = &mut f.op_mut(y).op {
            if values.len() == keep.len() {
                retain_by(values, keep);
            }
        }
    }
}

fn shrink_results(f: &mut Function, id: OpId, keep: &[bool]) {
    let mut results = std::mem::take(&mut f.op_mut(id).results);
    retain_by(&mut results, keep);
    for (i, &r) in results.iter().enumerate() {
        f.values[r.0 as usize].def = ValueDef::Result { op: id, index: i as u32 };
    }
    f.op_mut(id).results = results;
}

fn retain_by<T>(v: &mut Vec<T>, keep: &[bool]) {
    let mut i = 0;
    v.retain(|_| {
        let k = keep.get(i).copied().unwrap_or(true);
        i += 1;
        k
    });
}
