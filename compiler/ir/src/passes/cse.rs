//! Common-subexpression elimination.
//!
//! Rules:
//! - Candidates are ops without side effects and without regions, other than `load` (a load is
//!   never merged: a store or atomic between two loads of the same pointer would change the second
//!   one's value, and loads are rarely duplicated by the frontend anyway).
//! - Two candidates are equal when they have the same variant and attributes, the same operands and
//!   the same result types. Constants compare by [`crate::ConstValue::bits`], so `0.0` and `-0.0`
//!   stay distinct and a NaN matches a NaN with the same payload.
//! - Operands of commutative integer and bool operations (`add`, `mul`, `and`, `or`, `xor`, `min`,
//!   `max`) are compared as an unordered pair. Float operations are not, to keep the NaN payload
//!   that a target returns for two NaN operands exactly as written.
//! - Scoping follows structured control flow: an op may be replaced by an equal op from the same
//!   region or any enclosing region that came before it, never by one inside a nested region (a
//!   value defined in a loop body or branch does not exist after it).

use super::{elem_dtype, for_each_function, Subst};
use crate::{Function, Module, Op, OpId, RegionId, TypeId, TypeTable, Value};
use std::collections::HashMap;

/// Runs CSE on every function. Returns whether anything was merged.
pub fn run(m: &mut Module) -> bool {
    for_each_function(m, |types, f| run_function(types, f))
}

/// Runs CSE on one function.
pub fn run_function(types: &TypeTable, f: &mut Function) -> bool {
    let mut subst = Subst::default();
    let mut scopes: Vec<HashMap<Key, Vec<Value>>> = Vec::new();
    let changed = cse_region(types, f, f.body, &mut scopes, &mut subst);
    subst.apply_all(f);
    changed
}

/// Identity of an op for CSE: its variant and attributes with operands, and its result types.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    /// `Debug` text of the op, which names the variant, every attribute and every operand; floats
    /// only occur in constants, which are keyed by bits instead.
    op: String,
    results: Vec<TypeId>,
}

fn key_of(types: &TypeTable, f: &Function, id: OpId) -> Option<Key> {
    let od = f.op(id);
    let op = &od.op;
    if op.has_side_effects() || !op.regions().is_empty() || matches!(op, Op::Load { .. }) {
        return None;
    }
    let text = match op {
        Op::Const { value } => format!("const {:?}", value.bits()),
        Op::Binary { op: bop, lhs, rhs } if bop.is_commutative() => {
            let exact = elem_dtype(types, f, *lhs).is_some_and(|d| d.is_int() || d.is_bool());
            let (a, b) = if exact && rhs < lhs { (rhs, lhs) } else { (lhs, rhs) };
            format!("{} {:?} {:?}", bop.name(), a, b)
        }
        _ => format!("{op:?}"),
    };
    Some(Key { op: text, results: od.results.iter().map(|&r| f.value_type(r)).collect() })
}

fn cse_region(
    types: &TypeTable,
    f: &mut Function,
    region: RegionId,
    scopes: &mut Vec<HashMap<Key, Vec<Value>>>,
    subst: &mut Subst,
) -> bool {
    scopes.push(HashMap::new());
    let mut changed = false;
    let old = std::mem::take(&mut f.region_mut(region).ops);
    let mut out = Vec::with_capacity(old.len());
    for id in old {
        subst.apply(f, id);
        if let Some(key) = key_of(types, f, id) {
            if let Some(prev) = scopes.iter().rev().find_map(|s| s.get(&key)) {
                let results = f.op(id).results.clone();
                for (r, p) in results.into_iter().zip(prev.clone()) {
                    subst.insert(r, p);
                }
                changed = true;
                continue;
            }
            let results = f.op(id).results.clone();
            if let Some(top) = scopes.last_mut() {
                top.insert(key, results);
            }
        }
        out.push(id);
        for r in f.op(id).op.regions() {
            changed |= cse_region(types, f, r, scopes, subst);
        }
    }
    f.region_mut(region).ops = out;
    scopes.pop();
    changed
}
