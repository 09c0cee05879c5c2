//! The per-function lowering context and the conversions every construct shares: emitting ops,
//! materialising constants, implicit conversion, broadcasting and casts.

use crate::program::Program;
use crate::val::{broadcast_shapes, show_shape, Strength, TypeView, Val};
use std::collections::HashMap;
use tk_diag::{Diagnostic, Span};
use tk_ir::{ConstValue, DType, Elem, Function, Op, RegionId, Type, TypeId, Value};

/// A name in scope.
#[derive(Clone, Debug)]
pub struct Binding {
    pub val: Val,
    pub mutable: bool,
    pub span: Span,
}

/// Lowers one function body (a kernel or one helper instantiation) into `func`.
pub struct FnLower<'p, 'a> {
    pub prog: &'p mut Program<'a>,
    pub func: Function,
    /// Where new ops are appended.
    pub region: RegionId,
    pub scopes: Vec<HashMap<String, Binding>>,
    /// For helpers: the call that instantiated this body (added as a note to its errors).
    pub call_site: Option<Span>,
}

/// Largest block the language accepts (elements); larger blocks are surely a mistake.
pub const MAX_BLOCK_ELEMS: u64 = 1 << 24;

impl<'p, 'a> FnLower<'p, 'a> {
    pub fn new(prog: &'p mut Program<'a>, func: Function) -> FnLower<'p, 'a> {
        let region = func.body;
        FnLower { prog, func, region, scopes: vec![HashMap::new()], call_site: None }
    }

    // ---- diagnostics -------------------------------------------------------------------------

    pub fn error(&mut self, mut d: Diagnostic) -> Val {
        if let Some(site) = self.call_site {
            if d.span != site && d.labels.iter().all(|l| l.span != site) {
                d = d.with_secondary(site, "in this call of the helper");
            }
        }
        self.prog.error(d);
        Val::Error
    }

    // ---- types ------------------------------------------------------------------------------

    pub fn intern(&mut self, t: Type) -> TypeId {
        self.prog.module.types.intern(t)
    }

    pub fn ty(&self, id: TypeId) -> Type {
        self.prog.module.types.get(id).clone()
    }

    /// The element, shape and strength of a value, or `None` for non-values (and errors).
    pub fn view(&self, v: &Val) -> Option<TypeView> {
        match v {
            Val::Ir { ty, strength, .. } => Some(TypeView::of_type(&self.ty(*ty), *strength)),
            Val::Const { dtype, strength, .. } => Some(TypeView::scalar(*dtype, *strength)),
            _ => None,
        }
    }

    pub fn describe(&self, v: &Val) -> String {
        match v {
            Val::Ir { ty, .. } => format!("`{}`", self.ty(*ty)),
            Val::Const { dtype, strength: Strength::Weak, .. } => format!("a `{dtype}` literal"),
            Val::Const { dtype, .. } => format!("`{dtype}`"),
            Val::Tuple(xs) => format!("a tuple of {} values", xs.len()),
            Val::DType(d) => format!("the type name `{d}`"),
            Val::Str(_) => "a string".to_string(),
            Val::List(_) => "a list".to_string(),
            Val::Func(f) => format!("the function `{f}`"),
            Val::Unit => "nothing (this expression has no value)".to_string(),
            Val::Error => "an erroneous value".to_string(),
        }
    }

    // ---- emission ---------------------------------------------------------------------------

    pub fn emit(&mut self, op: Op, results: &[Type], span: Span) -> Vec<Value> {
        let ids: Vec<TypeId> = results.iter().map(|t| self.intern(t.clone())).collect();
        let id = self.func.append_op(self.region, op, &ids, span);
        self.func.op(id).results.clone()
    }

    pub fn emit1(&mut self, op: Op, result: Type, span: Span) -> Value {
        self.emit(op, &[result], span)[0]
    }

    pub fn ir(&mut self, value: Value, ty: Type, strength: Strength) -> Val {
        let ty = self.intern(ty);
        Val::Ir { value, ty, strength }
    }

    /// The IR value of `v` (emitting a constant if needed), with its type.
    pub fn materialize(&mut self, v: &Val, span: Span) -> Option<(Value, Type)> {
        match v {
            Val::Ir { value, ty, .. } => Some((*value, self.ty(*ty))),
            Val::Const { value, dtype, .. } => {
                let t = Type::scalar(*dtype);
                Some((self.emit1(Op::Const { value: *value }, t.clone(), span), t))
            }
            _ => None,
        }
    }

    /// Like [`Self::materialize`], but reports non-values.
    pub fn expect_value(&mut self, v: &Val, span: Span, what: &str) -> Option<(Value, Type)> {
        if v.is_error() {
            return None;
        }
        match self.materialize(v, span) {
            Some(x) => Some(x),
            None => {
                let d = Diagnostic::error(
                    "E0401",
                    format!("{what} must be a value, but this is {}", self.describe(v)),
                    span,
                )
                .with_label("not a value");
                self.error(d);
                None
            }
        }
    }

    /// Broadcasts an IR value to `shape` (splat for scalars; leading size-1 dims then broadcast).
    /// The caller has checked that the shapes are compatible.
    pub fn broadcast_value(&mut self, v: Value, ty: &Type, shape: &[u32], span: Span) -> Value {
        if ty.shape == shape {
            return v;
        }
        if ty.shape.is_empty() {
            return self.emit1(Op::Splat { value: v }, ty.with_shape(shape.to_vec()), span);
        }
        let mut cur = v;
        let mut cur_shape = ty.shape.clone();
        while cur_shape.len() < shape.len() {
            cur_shape.insert(0, 1);
            cur = self.emit1(
                Op::ExpandDims { value: cur, axis: 0 },
                ty.with_shape(cur_shape.clone()),
                span,
            );
        }
        if cur_shape != shape {
            cur = self.emit1(Op::Broadcast { value: cur }, ty.with_shape(shape.to_vec()), span);
        }
        cur
    }

    /// Explicit or implicit conversion of a value to dtype `to` (shape unchanged).
    pub fn cast_val(&mut self, v: Val, to: DType, span: Span) -> Val {
        match v {
            Val::Const { value, dtype, .. } => {
                let value = tk_ir::eval::cast(dtype, to, value);
                Val::Const { value, dtype: to, strength: Strength::Strong }
            }
            Val::Ir { value, ty, .. } => {
                let t = self.ty(ty);
                match t.elem {
                    Elem::Scalar(d) if d == to => Val::Ir { value, ty, strength: Strength::Strong },
                    Elem::Scalar(_) => {
                        let nt = t.with_elem(Elem::Scalar(to));
                        let r = self.emit1(Op::Cast { value }, nt.clone(), span);
                        self.ir(r, nt, Strength::Strong)
                    }
                    Elem::Ptr(_) => {
                        let d = Diagnostic::error(
                            "E0402",
                            format!("cannot cast a pointer `{t}` to `{to}`"),
                            span,
                        )
                        .with_label("pointer")
                        .with_help("pointers only move by adding integer offsets");
                        self.error(d)
                    }
                }
            }
            other => other,
        }
    }

    /// Converts `v` to exactly `target` the way an assignment, a store or `other:` does: a literal
    /// takes the target dtype (it must fit), a strong dtype must already match, and the shape is
    /// broadcast. `what` names the value in messages ("the stored value").
    pub fn coerce(&mut self, v: Val, target: &Type, span: Span, what: &str) -> Option<Value> {
        if v.is_error() {
            return None;
        }
        let view = match self.view(&v) {
            Some(x) => x,
            None => {
                self.expect_value(&v, span, what);
                return None;
            }
        };
        let tdt = match target.elem {
            Elem::Scalar(d) => d,
            Elem::Ptr(_) => {
                if view.elem == target.elem {
                    let (val, ty) = self.materialize(&v, span)?;
                    return self.coerce_shape(val, &ty, target, span, what);
                }
                let d = Diagnostic::error(
                    "E0403",
                    format!("{what} has type {} but `{target}` is needed", self.describe(&v)),
                    span,
                );
                self.error(d);
                return None;
            }
        };
        let v = match view.elem {
            Elem::Scalar(d) if d == tdt => v,
            Elem::Scalar(d) if view.strength == Strength::Weak => {
                if let Val::Const { value, .. } = &v {
                    if !literal_fits(*value, d, tdt) {
                        let d = Diagnostic::error(
                            "E0404",
                            format!("the literal {value} does not fit in `{tdt}`"),
                            span,
                        )
                        .with_label(format!("out of range for `{tdt}`"));
                        self.error(d);
                        return None;
                    }
                }
                self.cast_val(v, tdt, span)
            }
            _ => {
                let d = Diagnostic::error(
                    "E0405",
                    format!(
                        "{what} is {} but `{}` is expected",
                        self.describe(&v),
                        Type::scalar(tdt)
                    ),
                    span,
                )
                .with_label(format!("expected element type `{tdt}`"))
                .with_help(format!("convert it explicitly with `as {tdt}`"));
                self.error(d);
                return None;
            }
        };
        let (val, ty) = self.materialize(&v, span)?;
        self.coerce_shape(val, &ty, target, span, what)
    }

    fn coerce_shape(
        &mut self,
        val: Value,
        ty: &Type,
        target: &Type,
        span: Span,
        what: &str,
    ) -> Option<Value> {
        match broadcast_shapes(&ty.shape, &target.shape) {
            Some(s) if s == target.shape => {
                Some(self.broadcast_value(val, ty, &target.shape, span))
            }
            _ => {
                let d = Diagnostic::error(
                    "E0406",
                    format!(
                        "{what} has shape {} which does not broadcast to {}",
                        show_shape(&ty.shape),
                        show_shape(&target.shape)
                    ),
                    span,
                )
                .with_label(format!("shape {}", show_shape(&ty.shape)))
                .with_note(format!("the destination is `{target}`"));
                self.error(d);
                None
            }
        }
    }

    /// Checks a new block shape against the language limits (rank 1..=4, size).
    pub fn check_shape(&mut self, shape: &[u32], span: Span) -> bool {
        if shape.is_empty() {
            self.error(
                Diagnostic::error("E0407", "a block shape needs at least one dimension", span)
                    .with_label("shape []")
                    .with_help("for a single value use a scalar, e.g. `0.0` or `x as f32`"),
            );
            return false;
        }
        if shape.len() > 4 {
            self.error(
                Diagnostic::error(
                    "E0407",
                    format!("blocks have at most 4 dimensions, this one has {}", shape.len()),
                    span,
                )
                .with_label(format!("shape {}", show_shape(shape))),
            );
            return false;
        }
        if shape.contains(&0) {
            self.error(
                Diagnostic::error(
                    "E0408",
                    format!("block shape {} has a zero dimension", show_shape(shape)),
                    span,
                )
                .with_label("every dimension must be at least 1"),
            );
            return false;
        }
        // At most 4 dims (checked above) of at most 32 bits each: the product fits in u128.
        let n: u128 = shape.iter().map(|&d| d as u128).product();
        if n > MAX_BLOCK_ELEMS as u128 {
            self.error(
                Diagnostic::error(
                    "E0409",
                    format!(
                        "block shape {} has {n} elements, more than the limit of {MAX_BLOCK_ELEMS}",
                        show_shape(shape)
                    ),
                    span,
                )
                .with_help("split the work into smaller blocks with a loop"),
            );
            return false;
        }
        true
    }

    // ---- scopes -----------------------------------------------------------------------------

    pub fn lookup(&self, name: &str) -> Option<&Binding> {
        self.scopes.iter().rev().find_map(|s| s.get(name))
    }

    pub fn bind(&mut self, name: &str, b: Binding) {
        self.scopes.last_mut().expect("scope stack is never empty").insert(name.to_string(), b);
    }

    /// Updates the innermost binding of `name` in place (assignment to a `let mut`).
    pub fn rebind(&mut self, name: &str, val: Val) {
        for s in self.scopes.iter_mut().rev() {
            if let Some(b) = s.get_mut(name) {
                b.val = val;
                return;
            }
        }
    }

    pub fn with_scope<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.scopes.push(HashMap::new());
        let r = f(self);
        self.scopes.pop();
        r
    }

    /// Runs `f` with new ops going to `region`.
    pub fn in_region<T>(&mut self, region: RegionId, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.region;
        self.region = region;
        let r = f(self);
        self.region = saved;
        r
    }
}

/// Whether a literal of dtype `from` keeps its value in dtype `to`.
pub fn literal_fits(v: ConstValue, from: DType, to: DType) -> bool {
    match v {
        ConstValue::Int(i) => {
            if to.is_float() || to.is_bool() && (i == 0 || i == 1) {
                return true;
            }
            if to.is_bool() {
                return false;
            }
            let _ = from;
            let bits = to.bits();
            if to.is_signed_int() {
                let min = -(1i128 << (bits - 1));
                let max = (1i128 << (bits - 1)) - 1;
                (min..=max).contains(&(i as i128))
            } else {
                let max = if bits == 64 { u64::MAX as i128 } else { (1i128 << bits) - 1 };
                (0..=max).contains(&(i as i128))
            }
        }
        ConstValue::Float(_) => to.is_float(),
        ConstValue::Bool(_) => true,
    }
}
