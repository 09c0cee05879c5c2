//! Inlining: every [`Op::Call`] is replaced by a copy of the callee's body.
//!
//! Rules:
//! - The call graph is checked before anything changes: a call to a missing function, to a kernel,
//!   with the wrong number of arguments or results, or any cycle of calls (recursion, direct or
//!   mutual) is a [`PassError`] and leaves the module untouched. tk helpers are generic over shapes
//!   and always inlined, so recursion can never be compiled.
//! - Callees are inlined before their callers (bottom-up over the call graph), so each copied body
//!   is already call-free and one copy per call site suffices.
//! - The copy gets fresh values, ops and regions in the caller's arenas; callee parameters map to
//!   the call's arguments, and the values of the callee body's final `yield` replace the call's
//!   results. Nested regions (`for`, `if`, combine functions) are copied recursively.
//! - Spans and value names are kept: an inlined op still points into the helper's source, which is
//!   where a diagnostic about it belongs.
//! - Afterwards no call remains anywhere, so every [`FuncKind::Helper`] function is unused and is
//!   removed from the module (kernels keep their relative order; no `FuncId` needs rewriting since
//!   only calls hold them).

use super::{callee_index, PassError, Subst};
use crate::{FuncKind, Function, Module, Op, OpId, RegionId, Value};
use std::collections::HashMap;

/// Inlines all calls and removes the helpers. Returns whether the module changed.
pub fn run(m: &mut Module) -> Result<bool, PassError> {
    let order = check_call_graph(m)?;
    let mut changed = false;
    for fi in order {
        if inline_calls_in(m, fi) {
            changed = true;
        }
    }
    let before = m.functions.len();
    m.functions.retain(|f| f.kind != FuncKind::Helper);
    Ok(changed || m.functions.len() != before)
}

/// Checks every call (callee exists and is a helper, counts match) and that there is no
/// recursion, without changing anything. [`run`] does this first; the pipeline calls it before
/// verifying its input so that a recursive program gets this error, which has a span.
pub fn check_calls(m: &Module) -> Result<(), PassError> {
    check_call_graph(m).map(|_| ())
}

/// Calls made by function `fi`: (callee index, span of the call).
fn calls_of(m: &Module, fi: usize) -> Result<Vec<(usize, tk_diag::Span)>, PassError> {
    let f = &m.functions[fi];
    let mut out = Vec::new();
    for id in f.walk() {
        let od = f.op(id);
        if let Op::Call { func, args } = &od.op {
            let Some(ci) = callee_index(m, *func) else {
                return Err(PassError::UnknownCallee {
                    caller: f.name.clone(),
                    callee: func.0,
                    span: od.span,
                });
            };
            let callee = &m.functions[ci];
            if callee.kind == FuncKind::Kernel {
                return Err(PassError::CallToKernel {
                    caller: f.name.clone(),
                    callee: callee.name.clone(),
                    span: od.span,
                });
            }
            if callee.params.len() != args.len() || callee.results.len() != od.results.len() {
                return Err(PassError::CallArity {
                    caller: f.name.clone(),
                    callee: callee.name.clone(),
                    span: od.span,
                });
            }
            out.push((ci, od.span));
        }
    }
    Ok(out)
}

/// Validates every call and returns the functions in callee-before-caller order.
fn check_call_graph(m: &Module) -> Result<Vec<usize>, PassError> {
    let n = m.functions.len();
    let mut edges = Vec::with_capacity(n);
    for fi in 0..n {
        edges.push(calls_of(m, fi)?);
    }
    // Iterative depth-first search with colours; a grey successor closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; n];
    let mut order = Vec::with_capacity(n);
    for root in 0..n {
        if colour[root] != Colour::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&(callee, span)) = edges[node].get(*next) {
                *next += 1;
                match colour[callee] {
                    Colour::White => {
                        colour[callee] = Colour::Grey;
                        stack.push((callee, 0));
                    }
                    Colour::Grey => {
                        let start = stack.iter().position(|&(f, _)| f == callee).unwrap_or(0);
                        let mut chain: Vec<String> = stack[start..]
                            .iter()
                            .map(|&(f, _)| m.functions[f].name.clone())
                            .collect();
                        chain.push(m.functions[callee].name.clone());
                        return Err(PassError::RecursiveCall { chain, span });
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// Inlines every call in function `fi`, whose callees are already call-free.
fn inline_calls_in(m: &mut Module, fi: usize) -> bool {
    let has_calls = m.functions[fi]
        .walk()
        .iter()
        .any(|&id| matches!(m.functions[fi].op(id).op, Op::Call { .. }));
    if !has_calls {
        return false;
    }
    // Callees differ from the caller (no recursion), so cloning them is the simplest way to hold
    // both borrows; helper bodies are small.
    let mut callees: HashMap<usize, Function> = HashMap::new();
    for id in m.functions[fi].walk() {
        if let Op::Call { func, .. } = &m.functions[fi].op(id).op {
            let ci = func.0 as usize;
            callees.entry(ci).or_insert_with(|| m.functions[ci].clone());
        }
    }
    let f = &mut m.functions[fi];
    let mut subst = Subst::default();
    inline_region(f, f.body, &callees, &mut subst);
    subst.apply_all(f);
    true
}

fn inline_region(
    f: &mut Function,
    region: RegionId,
    callees: &HashMap<usize, Function>,
    subst: &mut Subst,
) {
    let old = std::mem::take(&mut f.region_mut(region).ops);
    let mut out = Vec::with_capacity(old.len());
    for id in old {
        subst.apply(f, id);
        if let Op::Call { func, args } = f.op(id).op.clone() {
            let callee = &callees[&(func.0 as usize)];
            let mut map: HashMap<Value, Value> = HashMap::new();
            for (p, a) in callee.params.iter().zip(&args) {
                map.insert(p.value, *a);
            }
            let yielded = copy_ops(f, callee, callee.body, &mut map, &mut out);
            let results = f.op(id).results.clone();
            for (r, y) in results.into_iter().zip(yielded) {
                subst.insert(r, y);
            }
            continue;
        }
        out.push(id);
        for r in f.op(id).op.regions() {
            inline_region(f, r, callees, subst);
        }
    }
    f.region_mut(region).ops = out;
}

/// Copies the ops of `src_region` of `callee` into `f`, appending them to `out`, except the final
/// `yield`, whose (mapped) values are returned.
fn copy_ops(
    f: &mut Function,
    callee: &Function,
    src_region: RegionId,
    map: &mut HashMap<Value, Value>,
    out: &mut Vec<OpId>,
) -> Vec<Value> {
    let mut yielded = Vec::new();
    for &sid in &callee.region(src_region).ops {
        let sod = callee.op(sid);
        if let Op::Yield { values } = &sod.op {
            yielded = values.iter().map(|v| map.get(v).copied().unwrap_or(*v)).collect();
            continue;
        }
        let id = copy_op(f, callee, sid, map);
        out.push(id);
    }
    yielded
}

/// Copies one op (with its nested regions, yields included) into `f` without linking it.
fn copy_op(
    f: &mut Function,
    callee: &Function,
    sid: OpId,
    map: &mut HashMap<Value, Value>,
) -> OpId {
    let sod = callee.op(sid);
    let mut op = sod.op.clone();
    // Regions first: their copies get new ids that the op must refer to.
    let mut region_map: HashMap<RegionId, RegionId> = HashMap::new();
    for r in sod.op.regions() {
        let src = callee.region(r);
        let arg_types: Vec<_> = src.args.iter().map(|&a| callee.value_type(a)).collect();
        let nr = f.new_region(&arg_types);
        let new_args = f.region(nr).args.clone();
        for (&a, &na) in src.args.iter().zip(&new_args) {
            map.insert(a, na);
            f.values[na.0 as usize].name = callee.value(a).name.clone();
        }
        let mut ops = Vec::with_capacity(src.ops.len());
        for &inner in &src.ops {
            ops.push(copy_op(f, callee, inner, map));
        }
        f.region_mut(nr).ops = ops;
        region_map.insert(r, nr);
    }
    match &mut op {
        Op::ReduceWith { combine, .. } | Op::ScanWith { combine, .. } => {
            *combine = region_map[combine];
        }
        Op::For { body, .. } => *body = region_map[body],
        Op::If { then_body, else_body, .. } => {
            *then_body = region_map[then_body];
            *else_body = region_map[else_body];
        }
        _ => {}
    }
    // Operands are defined before use (SSA dominance), so they are already mapped; values from
    // outside the callee cannot occur.
    op.visit_operands_mut(|v| {
        if let Some(&n) = map.get(v) {
            *v = n;
        }
    });
    let result_types: Vec<_> = sod.results.iter().map(|&r| callee.value_type(r)).collect();
    let id = f.create_op(op, &result_types, sod.span);
    let new_results = f.op(id).results.clone();
    for (&r, &nr) in sod.results.iter().zip(&new_results) {
        map.insert(r, nr);
        f.values[nr.0 as usize].name = callee.value(r).name.clone();
    }
    id
}
