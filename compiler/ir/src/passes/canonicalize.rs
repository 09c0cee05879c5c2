//! Canonicalisation: local rewrites that are exact for every input, including NaN, `-0.0`,
//! infinities and the run-time errors the interpreter reports.
//!
//! "Constant" below means an [`Op::Const`] for scalars or an [`Op::Splat`] of one for blocks (the
//! canonical block constant). Rules, by op:
//!
//! - **Shape ops.** `broadcast`, `reshape` or `cast` to the operand's own type → the operand;
//!   `permute` by the identity → the operand. `broadcast`, `reshape`, `permute` and `expand_dims`
//!   of a `splat` → one `splat` of the result type. `broadcast(broadcast(x))` → `broadcast(x)`;
//!   `reshape(reshape(x))` → `reshape(x)`; `permute(permute(x))` → one `permute` (or `x`).
//! - **Splat hoisting.** An element-wise op whose block operands are all `splat`s computes the same
//!   value in every lane, so it becomes the scalar op plus one `splat`: `binary`, `cmp`, `select`,
//!   `fma`, `cast`, and the exactly rounded unary ops (`neg`, `not`, `abs`, `floor`, `ceil`,
//!   `sqrt`). Transcendental unary ops are not hoisted so that a block keeps one implementation of
//!   `exp` etc. per target. A failing scalar op (division by zero) fails exactly when the block op
//!   would, since blocks have at least one element.
//! - **Integer identities** (wrapping arithmetic, so none of these hides or creates an overflow):
//!   `x+0`, `0+x`, `x-0`, `x*1`, `1*x`, `x/1`, `x|0`, `x^0`, `x&~0`, `x<<0`, `x>>0`, `x&x`, `x|x`,
//!   `min(x,x)`, `max(x,x)` → `x`; `x*0`, `0*x`, `x-x`, `x^x`, `x&0`, `x%1` → `0`; `x|~0` → `~0`.
//! - **Bool identities:** `x&true`, `x|false`, `x^false`, `x&x`, `x|x` → `x`; `x&false` → `false`;
//!   `x|true` → `true`; `x^x` → `false`.
//! - **Float identities**, only those exact for every input: `x*1.0`, `1.0*x`, `x/1.0`, `x-0.0`,
//!   `x+(-0.0)`, `(-0.0)+x`, `min(x,x)`, `max(x,x)` → `x`. Not `x+0.0` (`-0.0+0.0` is `+0.0`), not
//!   `x*0.0` (NaN, infinities, sign), not `x-x` (NaN, infinities).
//! - **Operand order:** a commutative integer or bool op with a constant left operand and a
//!   non-constant right operand is swapped, so constants are on the right (helps CSE and backends).
//! - **Comparisons:** `cmp` of a value with itself, for integers, bools and pointers (never floats:
//!   NaN ≠ NaN), → `true` for `eq`/`le`/`ge` and `false` for `ne`/`lt`/`gt`.
//! - **Select:** constant condition → the chosen operand; equal operands → that operand;
//!   `select(c, true, false)` → `c`.
//! - **Unary:** `neg(neg(x))` → `x` for floats (a sign flip) and unsigned integers (wrapping); not
//!   for signed integers, where `neg(MIN)` is an overflow error; `not(not(x))` → `x`; `abs(abs(x))`, `floor(floor(x))`, `ceil(ceil(x))` → the inner op.
//! - **Casts:** `cast(cast(x: T) to U) to T` → `x` when every `T` is exactly representable in `U`:
//!   integer to an integer at least as wide, bool to any number, float to a wider float, and an
//!   integer to a float whose significand holds all of its values.
//! - **Pointers:** `addptr(p, 0)` → `p`.

use super::{elem_dtype, for_each_function, uniform_const, Builder, Subst};
use crate::{
    BinaryOp, CmpPred, ConstValue, DType, Elem, Function, Module, Op, OpId, RegionId, TypeId,
    TypeTable, UnaryOp, Value,
};

/// Runs canonicalisation on every function. Returns whether anything changed.
pub fn run(m: &mut Module) -> bool {
    for_each_function(m, run_function)
}

/// Runs canonicalisation on one function (one sweep; the pipeline iterates).
pub fn run_function(types: &mut TypeTable, f: &mut Function) -> bool {
    let mut subst = Subst::default();
    let mut changed = false;
    canon_region(types, f, f.body, &mut subst, &mut changed);
    subst.apply_all(f);
    changed
}

/// What a rewrite did to the op.
enum Action {
    /// Nothing applies.
    Keep,
    /// The op was changed in place and stays.
    Modified,
    /// The op goes; its results are replaced by these values.
    Replace(Vec<Value>),
}

fn canon_region(
    types: &mut TypeTable,
    f: &mut Function,
    region: RegionId,
    subst: &mut Subst,
    changed: &mut bool,
) {
    let old = std::mem::take(&mut f.region_mut(region).ops);
    let mut out = Vec::with_capacity(old.len());
    for id in old {
        subst.apply(f, id);
        let span = f.op(id).span;
        let action = {
            let mut b = Builder { types: &mut *types, f: &mut *f, out: &mut out, span };
            rewrite(&mut b, id)
        };
        match action {
            Action::Keep => {}
            Action::Modified => *changed = true,
            Action::Replace(values) => {
                let results = f.op(id).results.clone();
                for (r, v) in results.into_iter().zip(values) {
                    subst.insert(r, v);
                }
                *changed = true;
                continue;
            }
        }
        out.push(id);
        for r in f.op(id).op.regions() {
            canon_region(types, f, r, subst, changed);
        }
    }
    f.region_mut(region).ops = out;
}

fn result_type(f: &Function, id: OpId) -> Option<TypeId> {
    f.op(id).results.first().map(|&r| f.value_type(r))
}

/// The operand of a `splat` defining `v`.
fn splat_source(f: &Function, v: Value) -> Option<Value> {
    match f.op(f.defining_op(v)?).op {
        Op::Splat { value } => Some(value),
        _ => None,
    }
}

fn defining(f: &Function, v: Value) -> Option<&Op> {
    f.defining_op(v).map(|id| &f.op(id).op)
}

fn rewrite(b: &mut Builder<'_>, id: OpId) -> Action {
    let Some(rty) = result_type(b.f, id) else { return Action::Keep };
    let op = b.f.op(id).op.clone();
    if let Some(a) = rewrite_shape(b, id, &op, rty) {
        return a;
    }
    if let Some(a) = hoist_splats(b, &op, rty) {
        return a;
    }
    let one = |v: Value| Action::Replace(vec![v]);
    match op {
        Op::Cast { value } => {
            if b.f.value_type(value) == rty {
                return one(value);
            }
            if let Some(Op::Cast { value: x }) = defining(b.f, value) {
                let x = *x;
                let (Some(t), Some(u)) =
                    (elem_dtype(b.types, b.f, x), elem_dtype(b.types, b.f, value))
                else {
                    return Action::Keep;
                };
                if b.f.value_type(x) == rty && cast_roundtrip_exact(t, u) {
                    return one(x);
                }
            }
            Action::Keep
        }
        Op::Unary { op: uop, value } => {
            if let Some(Op::Unary { op: inner, value: x }) = defining(b.f, value) {
                let (inner, x) = (*inner, *x);
                // Signed negation of MIN is an overflow error, which `x` alone would hide.
                let neg_exact = elem_dtype(b.types, b.f, x).is_some_and(|d| !d.is_signed_int());
                match (uop, inner) {
                    (UnaryOp::Neg, UnaryOp::Neg) if neg_exact => return one(x),
                    (UnaryOp::Not, UnaryOp::Not) => return one(x),
                    (UnaryOp::Abs, UnaryOp::Abs)
                    | (UnaryOp::Floor, UnaryOp::Floor)
                    | (UnaryOp::Ceil, UnaryOp::Ceil) => return one(value),
                    _ => {}
                }
            }
            Action::Keep
        }
        Op::Binary { op: bop, lhs, rhs } => rewrite_binary(b, id, bop, lhs, rhs, rty),
        Op::Cmp { pred, lhs, rhs } => {
            if lhs != rhs {
                return Action::Keep;
            }
            let exact = match b.types.get(b.f.value_type(lhs)).elem {
                Elem::Ptr(_) => true,
                Elem::Scalar(d) => !d.is_float(),
            };
            if !exact {
                return Action::Keep;
            }
            let r = matches!(pred, CmpPred::Eq | CmpPred::Le | CmpPred::Ge);
            one(b.constant(ConstValue::Bool(r), rty))
        }
        Op::Select { cond, on_true, on_false } => {
            if let Some(ConstValue::Bool(c)) = uniform_const(b.f, cond) {
                return one(if c { on_true } else { on_false });
            }
            if on_true == on_false {
                return one(on_true);
            }
            if b.f.value_type(cond) == rty
                && uniform_const(b.f, on_true) == Some(ConstValue::Bool(true))
                && uniform_const(b.f, on_false) == Some(ConstValue::Bool(false))
            {
                return one(cond);
            }
            Action::Keep
        }
        Op::AddPtr { ptr, offset } => {
            if uniform_const(b.f, offset) == Some(ConstValue::Int(0)) {
                return one(ptr);
            }
            Action::Keep
        }
        _ => Action::Keep,
    }
}

/// Rules for `broadcast`, `reshape`, `permute`, `expand_dims`.
fn rewrite_shape(b: &mut Builder<'_>, id: OpId, op: &Op, rty: TypeId) -> Option<Action> {
    let value = match op {
        Op::Broadcast { value }
        | Op::Reshape { value }
        | Op::Permute { value, .. }
        | Op::ExpandDims { value, .. } => *value,
        _ => return None,
    };
    let same_type = b.f.value_type(value) == rty;
    if same_type && !matches!(op, Op::Permute { .. } | Op::ExpandDims { .. }) {
        return Some(Action::Replace(vec![value]));
    }
    if let Some(s) = splat_source(b.f, value) {
        return Some(Action::Replace(vec![b.emit(Op::Splat { value: s }, rty)]));
    }
    match (op, defining(b.f, value)) {
        (Op::Permute { perm, .. }, _) if is_identity(perm) => Some(Action::Replace(vec![value])),
        (Op::Broadcast { .. }, Some(Op::Broadcast { value: x }))
        | (Op::Reshape { .. }, Some(Op::Reshape { value: x })) => {
            let x = *x;
            if b.f.value_type(x) == rty {
                return Some(Action::Replace(vec![x]));
            }
            set_single_operand(b.f, id, x);
            Some(Action::Modified)
        }
        (Op::Permute { perm, .. }, Some(Op::Permute { value: x, perm: inner })) => {
            // Result dim i is this operand's dim perm[i], which is x's dim inner[perm[i]].
            let composed: Option<Vec<u8>> =
                perm.iter().map(|&p| inner.get(p as usize).copied()).collect();
            let composed = composed?;
            let x = *x;
            if is_identity(&composed) {
                return Some(Action::Replace(vec![x]));
            }
            b.f.op_mut(id).op = Op::Permute { value: x, perm: composed };
            Some(Action::Modified)
        }
        _ => None,
    }
}

fn set_single_operand(f: &mut Function, id: OpId, x: Value) {
    f.op_mut(id).op.visit_operands_mut(|v| *v = x);
}

fn is_identity(perm: &[u8]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| p as usize == i)
}

/// Element-wise op on `splat`s only → scalar op + `splat`.
fn hoist_splats(b: &mut Builder<'_>, op: &Op, rty: TypeId) -> Option<Action> {
    let hoistable = match op {
        Op::Unary { op: u, .. } => matches!(
            u,
            UnaryOp::Neg
                | UnaryOp::Not
                | UnaryOp::Abs
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Sqrt
        ),
        Op::Binary { .. }
        | Op::Cmp { .. }
        | Op::Select { .. }
        | Op::Fma { .. }
        | Op::Cast { .. } => true,
        _ => false,
    };
    let rt = b.types.get(rty).clone();
    if !hoistable || rt.is_scalar() {
        return None;
    }
    let operands = op.operands();
    let sources: Option<Vec<Value>> = operands.iter().map(|&v| splat_source(b.f, v)).collect();
    let sources = sources?;
    let mut scalar_op = op.clone();
    let mut i = 0;
    scalar_op.visit_operands_mut(|v| {
        *v = sources[i];
        i += 1;
    });
    let sty = b.types.intern(rt.with_shape(Vec::new()));
    let s = b.emit(scalar_op, sty);
    Some(Action::Replace(vec![b.emit(Op::Splat { value: s }, rty)]))
}

fn is_int_const(c: Option<ConstValue>, x: i64) -> bool {
    c == Some(ConstValue::Int(x))
}

fn is_float_const_bits(c: Option<ConstValue>, x: f64) -> bool {
    matches!(c, Some(ConstValue::Float(v)) if v.to_bits() == x.to_bits())
}

/// All bits set, as stored for `d` (sign-extended for signed, zero-extended for unsigned).
fn all_ones(d: DType) -> i64 {
    if d.is_unsigned_int() && d.bits() < 64 {
        ((1u64 << d.bits()) - 1) as i64
    } else {
        -1
    }
}

fn rewrite_binary(
    b: &mut Builder<'_>,
    id: OpId,
    bop: BinaryOp,
    lhs: Value,
    rhs: Value,
    rty: TypeId,
) -> Action {
    let Some(d) = elem_dtype(b.types, b.f, lhs) else { return Action::Keep };
    let (cl, cr) = (uniform_const(b.f, lhs), uniform_const(b.f, rhs));
    let one = |v: Value| Action::Replace(vec![v]);
    use BinaryOp::*;
    if lhs == rhs && matches!(bop, Min | Max) {
        return one(lhs);
    }
    if d.is_int() {
        let ones = all_ones(d);
        if lhs == rhs {
            match bop {
                And | Or => return one(lhs),
                Sub | Xor => return one(b.constant(ConstValue::Int(0), rty)),
                _ => {}
            }
        }
        let zero_c = |c| is_int_const(c, 0);
        let one_c = |c| is_int_const(c, 1);
        match bop {
            Add if zero_c(cr) => return one(lhs),
            Add if zero_c(cl) => return one(rhs),
            Sub | Or | Xor | Shl | Shr if zero_c(cr) => return one(lhs),
            Or | Xor if zero_c(cl) => return one(rhs),
            Mul | Div if one_c(cr) => return one(lhs),
            Mul if one_c(cl) => return one(rhs),
            Mul | And if zero_c(cr) || zero_c(cl) => {
                return one(b.constant(ConstValue::Int(0), rty));
            }
            Rem if one_c(cr) => return one(b.constant(ConstValue::Int(0), rty)),
            And if is_int_const(cr, ones) => return one(lhs),
            And if is_int_const(cl, ones) => return one(rhs),
            Or if is_int_const(cr, ones) => return one(rhs),
            Or if is_int_const(cl, ones) => return one(lhs),
            _ => {}
        }
    } else if d.is_bool() {
        if lhs == rhs {
            match bop {
                And | Or => return one(lhs),
                Xor => return one(b.constant(ConstValue::Bool(false), rty)),
                _ => {}
            }
        }
        let (t, fl) = (Some(ConstValue::Bool(true)), Some(ConstValue::Bool(false)));
        match bop {
            And if cr == t => return one(lhs),
            And if cl == t => return one(rhs),
            And if cr == fl => return one(rhs),
            And if cl == fl => return one(lhs),
            Or | Xor if cr == fl => return one(lhs),
            Or | Xor if cl == fl => return one(rhs),
            Or if cr == t => return one(rhs),
            Or if cl == t => return one(lhs),
            _ => {}
        }
    } else if d.is_float() {
        match bop {
            Mul | Div if is_float_const_bits(cr, 1.0) => return one(lhs),
            Mul if is_float_const_bits(cl, 1.0) => return one(rhs),
            Sub if is_float_const_bits(cr, 0.0) => return one(lhs),
            Add if is_float_const_bits(cr, -0.0) => return one(lhs),
            Add if is_float_const_bits(cl, -0.0) => return one(rhs),
            _ => {}
        }
        return Action::Keep;
    }
    // Constants to the right for commutative integer / bool ops.
    if bop.is_commutative() && cl.is_some() && cr.is_none() {
        b.f.op_mut(id).op = Op::Binary { op: bop, lhs: rhs, rhs: lhs };
        return Action::Modified;
    }
    Action::Keep
}

/// Significand precision (including the implicit bit) of a float dtype.
fn significand_bits(d: DType) -> u32 {
    match d {
        DType::F16 => 11,
        DType::BF16 => 8,
        DType::F32 => 24,
        DType::F64 => 53,
        _ => 0,
    }
}

/// Whether `cast(cast(x: t) to u) to t == x` for every `x`.
fn cast_roundtrip_exact(t: DType, u: DType) -> bool {
    if t.is_bool() {
        // bool -> number gives 0 or 1, number -> bool is `!= 0`.
        return u.is_int() || u.is_float();
    }
    if t.is_int() && u.is_int() {
        return u.bits() >= t.bits();
    }
    if t.is_int() && u.is_float() {
        let magnitude_bits = if t.is_signed_int() { t.bits() - 1 } else { t.bits() };
        return magnitude_bits <= significand_bits(u);
    }
    if t.is_float() && u.is_float() {
        return match t {
            DType::F16 | DType::BF16 => matches!(u, DType::F32 | DType::F64),
            DType::F32 => u == DType::F64,
            _ => false,
        };
    }
    false
}
