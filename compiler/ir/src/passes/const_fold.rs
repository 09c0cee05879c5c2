//! Constant folding with the scalar semantics of [`crate::eval`] (the same functions the
//! interpreter runs, so a folded program computes exactly what the unfolded one would).
//!
//! Rules:
//! - `unary`, `binary`, `cmp`, `cast`, `select` and `fma` whose operands are all scalar constants
//!   become one `const`. When `eval` reports an error (integer division by zero, signed overflow,
//!   `MIN / -1`, an op undefined on the dtype) the op is left alone, so the error still happens at
//!   run time, where the interpreter can point at it. Ops on pointers are never folded.
//! - Block constants are `splat`s of a `const` and stay that way. Element-wise ops on `splat`s are
//!   first turned into scalar ops by [`super::canonicalize`]'s splat hoisting, then folded here.
//! - `for` whose `lo`, `hi` and `step` are constants with `step > 0` and `lo >= hi` (compared in
//!   the bounds' dtype, so unsigned bounds compare as unsigned) runs zero times: its results become
//!   its `init` values and the loop is removed. A non-positive constant step is left for the
//!   run-time check to report.
//! - `if` on a constant condition is replaced by the taken branch: its ops move in front of the
//!   `if`, and the values its `yield` returns replace the `if`'s results.

use super::{elem_dtype, for_each_function, Subst};
use crate::eval;
use crate::{CmpPred, ConstValue, Function, Module, Op, OpId, RegionId, TypeTable, Value};

/// Runs constant folding on every function. Returns whether anything was folded.
pub fn run(m: &mut Module) -> bool {
    for_each_function(m, |types, f| run_function(types, f))
}

/// Runs constant folding on one function (one sweep; the pipeline iterates).
pub fn run_function(types: &TypeTable, f: &mut Function) -> bool {
    let mut subst = Subst::default();
    let mut changed = false;
    fold_region(types, f, f.body, &mut subst, &mut changed);
    subst.apply_all(f);
    changed
}

fn fold_region(
    types: &TypeTable,
    f: &mut Function,
    region: RegionId,
    subst: &mut Subst,
    changed: &mut bool,
) {
    let old = std::mem::take(&mut f.region_mut(region).ops);
    let mut out = Vec::with_capacity(old.len());
    for id in old {
        subst.apply(f, id);
        if let Some(value) = fold_scalar(types, f, id) {
            // Reuse the op in place: same result value, same span, no new arena entries.
            f.op_mut(id).op = Op::Const { value };
            *changed = true;
            out.push(id);
            continue;
        }
        match f.op(id).op.clone() {
            Op::For { lo, hi, step, init, .. } if zero_trip(types, f, lo, hi, step) => {
                let results = f.op(id).results.clone();
                for (r, v) in results.into_iter().zip(init) {
                    subst.insert(r, v);
                }
                *changed = true;
                continue;
            }
            Op::If { cond, then_body, else_body } => {
                if let Some(ConstValue::Bool(c)) = f.as_const(subst.resolve(cond)) {
                    let taken = if c { then_body } else { else_body };
                    let ops = f.region(taken).ops.clone();
                    let results = f.op(id).results.clone();
                    for &inner in &ops {
                        if let Op::Yield { values } = &f.op(inner).op {
                            for (&r, &v) in results.iter().zip(values) {
                                subst.insert(r, v);
                            }
                        } else {
                            // Folded again on the next round, after the substitutions apply.
                            out.push(inner);
                        }
                    }
                    *changed = true;
                    continue;
                }
            }
            _ => {}
        }
        out.push(id);
        for r in f.op(id).op.regions() {
            fold_region(types, f, r, subst, changed);
        }
    }
    f.region_mut(region).ops = out;
}

/// The constant a scalar element-wise op on constants evaluates to, if it is defined.
fn fold_scalar(types: &TypeTable, f: &Function, id: OpId) -> Option<ConstValue> {
    let od = f.op(id);
    let &[result] = od.results.as_slice() else { return None };
    if !types.get(f.value_type(result)).is_scalar() {
        return None;
    }
    let c = |v: Value| f.as_const(v);
    let dt = |v: Value| elem_dtype(types, f, v);
    match od.op {
        Op::Unary { op, value } => eval::unary(op, dt(value)?, c(value)?).ok(),
        Op::Binary { op, lhs, rhs } => eval::binary(op, dt(lhs)?, c(lhs)?, c(rhs)?).ok(),
        Op::Cmp { pred, lhs, rhs } => {
            eval::cmp(pred, dt(lhs)?, c(lhs)?, c(rhs)?).ok().map(ConstValue::Bool)
        }
        Op::Cast { value } => Some(eval::cast(dt(value)?, dt(result)?, c(value)?)),
        Op::Select { cond, on_true, on_false } => match c(cond)? {
            ConstValue::Bool(b) => {
                let chosen = if b { on_true } else { on_false };
                // Only a constant choice folds to a constant; other selects are canonicalised.
                c(chosen)
            }
            _ => None,
        },
        Op::Fma { a, b, c: addend } => eval::fma(dt(a)?, c(a)?, c(b)?, c(addend)?).ok(),
        _ => None,
    }
}

/// Whether a `for` with these bounds certainly runs zero times and has a valid constant step.
fn zero_trip(types: &TypeTable, f: &Function, lo: Value, hi: Value, step: Value) -> bool {
    let Some(dt) = elem_dtype(types, f, lo) else { return false };
    let (Some(ConstValue::Int(l)), Some(ConstValue::Int(h)), Some(ConstValue::Int(s))) =
        (f.as_const(lo), f.as_const(hi), f.as_const(step))
    else {
        return false;
    };
    dt.is_int() && eval::cmp_int(CmpPred::Gt, dt, s, 0) && eval::cmp_int(CmpPred::Ge, dt, l, h)
}
