//! Lowering of expressions: literals, names, operators (with promotion and broadcasting),
//! indexing, casts, tuples, lists and `if` expressions. Calls are in `builtins.rs` and `helpers.rs`.

use crate::lower::{Binding, FnLower};
use crate::program::ItemRef;
use crate::val::{broadcast_shapes, promote, show_shape, PromoteError, Strength, TypeView, Val};
use tk_diag::{Diagnostic, Span};
use tk_ir::{BinaryOp, CmpPred, ConstValue, DType, Elem, Op, Type, UnaryOp};
use tk_syntax::ast::{self, BinOp, Expr, ExprKind, IndexItem, UnOp};

impl FnLower<'_, '_> {
    pub fn lower_expr(&mut self, e: &Expr) -> Val {
        match &e.kind {
            ExprKind::Int(i) => {
                if *i > i64::MAX as u64 {
                    let d = Diagnostic::error(
                        "E0410",
                        format!("integer literal {i} is larger than i64 allows"),
                        e.span,
                    )
                    .with_help("write it as a smaller literal and cast, or use a u64 parameter");
                    return self.error(d);
                }
                let dtype = if *i <= i32::MAX as u64 { DType::I32 } else { DType::I64 };
                Val::Const { value: ConstValue::Int(*i as i64), dtype, strength: Strength::Weak }
            }
            ExprKind::Float(f) => Val::Const {
                value: ConstValue::Float(*f as f32 as f64),
                dtype: DType::F32,
                strength: Strength::Weak,
            },
            ExprKind::Bool(b) => Val::Const {
                value: ConstValue::Bool(*b),
                dtype: DType::Bool,
                strength: Strength::Strong,
            },
            ExprKind::Str(s) => Val::Str(s.clone()),
            ExprKind::Name(id) => self.lower_name(id),
            ExprKind::Unary(op, x) => {
                let v = self.lower_expr(x);
                self.lower_unary(*op, v, e.span, x.span)
            }
            ExprKind::Binary(op, a, b) => {
                let va = self.lower_expr(a);
                let vb = self.lower_expr(b);
                self.lower_binary(*op, va, vb, e.span, a.span, b.span)
            }
            ExprKind::Call(callee, args) => self.lower_call(callee, args, e.span),
            ExprKind::Index(base, items) => {
                let v = self.lower_expr(base);
                self.lower_index(v, items, e.span, base.span)
            }
            ExprKind::Cast(x, ty) => {
                let v = self.lower_expr(x);
                let target = match self.resolve_dtype_name(ty) {
                    Some(d) => d,
                    None => return Val::Error,
                };
                if v.is_error() {
                    return v;
                }
                if self.view(&v).is_none() {
                    let d = Diagnostic::error(
                        "E0411",
                        format!("cannot cast {}", self.describe(&v)),
                        x.span,
                    )
                    .with_label("not a value");
                    return self.error(d);
                }
                self.cast_val(v, target, e.span)
            }
            ExprKind::List(xs) => {
                Val::List(xs.iter().map(|x| (self.lower_expr(x), x.span)).collect())
            }
            ExprKind::Tuple(xs) => Val::Tuple(xs.iter().map(|x| self.lower_expr(x)).collect()),
            ExprKind::If(c, then_b, else_b) => self.lower_if_expr(c, then_b, else_b, e.span),
        }
    }

    fn lower_name(&mut self, id: &ast::Ident) -> Val {
        if let Some(b) = self.lookup(&id.name) {
            return b.val.clone();
        }
        match id.name.as_str() {
            "inf" => {
                return Val::Const {
                    value: ConstValue::Float(f64::INFINITY),
                    dtype: DType::F32,
                    strength: Strength::Weak,
                }
            }
            "nan" => {
                return Val::Const {
                    value: ConstValue::Float(f64::NAN),
                    dtype: DType::F32,
                    strength: Strength::Weak,
                }
            }
            _ => {}
        }
        if let Some(d) = DType::from_name(&id.name) {
            return Val::DType(d);
        }
        match self.prog.items.get(&id.name).copied() {
            Some(ItemRef::Const(c)) => return self.global_const(c),
            Some(ItemRef::Func(f)) => return Val::Func(f.name.name.clone()),
            None => {}
        }
        let mut d =
            Diagnostic::error("E0412", format!("cannot find `{}` in this scope", id.name), id.span)
                .with_label("not defined");
        if let Some(s) = self.similar_name(&id.name) {
            d = d.with_help(format!("a similar name exists: `{s}`"));
        }
        self.error(d)
    }

    /// A name in scope close to `name` (edit distance 1-2), for "did you mean" hints.
    fn similar_name(&self, name: &str) -> Option<String> {
        let mut best: Option<(usize, String)> = None;
        let candidates = self
            .scopes
            .iter()
            .flat_map(|s| s.keys().cloned())
            .chain(self.prog.items.keys().cloned())
            .chain(crate::program::BUILTINS.iter().map(|s| s.to_string()));
        for c in candidates {
            let dist = edit_distance(name, &c);
            if dist <= 2 && dist < name.len() && best.as_ref().is_none_or(|(b, _)| dist < *b) {
                best = Some((dist, c));
            }
        }
        best.map(|(_, s)| s)
    }

    pub fn global_const(&mut self, c: &ast::ConstDecl) -> Val {
        let name = c.name.name.clone();
        if let Some(v) = self.prog.const_values.get(&name) {
            return match v {
                Some((value, dtype)) => {
                    Val::Const { value: *value, dtype: *dtype, strength: Strength::Strong }
                }
                None => Val::Error,
            };
        }
        if self.prog.evaluating.contains(&name) {
            let d = Diagnostic::error(
                "E0413",
                format!("the constant `{name}` is defined in terms of itself"),
                c.name.span,
            );
            self.prog.const_values.insert(name, None);
            return self.error(d);
        }
        self.prog.evaluating.push(name.clone());
        let saved = std::mem::replace(&mut self.scopes, vec![Default::default()]);
        let mut v = self.lower_expr(&c.value);
        self.scopes = saved;
        self.prog.evaluating.pop();
        if let (Some(ty), Val::Const { .. }) = (&c.ty, &v) {
            if let Some(d) = self.resolve_dtype_name(ty) {
                v = self.cast_val(v, d, c.value.span);
            }
        }
        let result = match v {
            Val::Const { value, dtype, .. } => Some((value, dtype)),
            Val::Error => None,
            other => {
                let d = Diagnostic::error(
                    "E0414",
                    format!(
                        "a `const` must be a compile-time scalar, but this is {}",
                        self.describe(&other)
                    ),
                    c.value.span,
                );
                self.error(d);
                None
            }
        };
        self.prog.const_values.insert(name, result);
        match result {
            Some((value, dtype)) => Val::Const { value, dtype, strength: Strength::Strong },
            None => Val::Error,
        }
    }

    /// A written type that must be a plain dtype (`f16`).
    pub fn resolve_dtype_name(&mut self, ty: &ast::TypeExpr) -> Option<DType> {
        if let ast::TypeExprKind::Named(id) = &ty.kind {
            if let Some(d) = DType::from_name(&id.name) {
                return Some(d);
            }
            let mut d = Diagnostic::error("E0415", format!("unknown type `{}`", id.name), ty.span)
                .with_label("not a scalar type")
                .with_note(
                    "scalar types: bool, i8, i16, i32, i64, u8, u16, u32, u64, f16, bf16, f32, f64",
                );
            if let Some(s) = similar_dtype(&id.name) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.error(d);
            return None;
        }
        let d = Diagnostic::error(
            "E0415",
            "expected a scalar type such as `f32`, `i32` or `bool`",
            ty.span,
        )
        .with_label("not a scalar type")
        .with_note("scalar types: bool, i8, i16, i32, i64, u8, u16, u32, u64, f16, bf16, f32, f64");
        self.error(d);
        None
    }

    pub fn lower_unary(&mut self, op: UnOp, v: Val, span: Span, arg_span: Span) -> Val {
        if v.is_error() {
            return v;
        }
        let Some(view) = self.view(&v) else {
            let d = Diagnostic::error(
                "E0416",
                format!("cannot apply `{}` to {}", unop_symbol(op), self.describe(&v)),
                arg_span,
            );
            return self.error(d);
        };
        let dt = match view.elem {
            Elem::Scalar(d) => d,
            Elem::Ptr(_) => {
                let d = Diagnostic::error(
                    "E0416",
                    format!("cannot apply `{}` to a pointer", unop_symbol(op)),
                    arg_span,
                )
                .with_label(format!("`{}`", view.to_type()));
                return self.error(d);
            }
        };
        let irop = match op {
            UnOp::Neg => {
                if dt.is_bool() || dt.is_unsigned_int() && view.strength == Strength::Strong {
                    let d = Diagnostic::error(
                        "E0417",
                        format!("cannot negate a value of type `{dt}`"),
                        arg_span,
                    )
                    .with_label(format!("`{}`", view.to_type()))
                    .with_help(if dt.is_bool() {
                        "use `!` for logical not"
                    } else {
                        "cast to a signed type first"
                    });
                    return self.error(d);
                }
                UnaryOp::Neg
            }
            UnOp::Not => {
                if dt.is_float() {
                    let d = Diagnostic::error(
                        "E0418",
                        format!("`!` needs a bool or an integer, not `{dt}`"),
                        arg_span,
                    )
                    .with_label(format!("`{}`", view.to_type()))
                    .with_help("compare explicitly, e.g. `x == 0.0`");
                    return self.error(d);
                }
                UnaryOp::Not
            }
        };
        self.apply_unary(irop, v, view, span)
    }

    /// Applies an IR unary op (folding constants), the result keeping the operand's type.
    pub fn apply_unary(&mut self, op: UnaryOp, v: Val, view: TypeView, span: Span) -> Val {
        if let Val::Const { value, dtype, strength } = v {
            match tk_ir::eval::unary(op, dtype, value) {
                Ok(r) => return Val::Const { value: r, dtype, strength },
                Err(err) => {
                    let d = Diagnostic::error(
                        "E0419",
                        format!("this constant expression fails: {err}"),
                        span,
                    );
                    return self.error(d);
                }
            }
        }
        let Some((x, ty)) = self.materialize(&v, span) else { return Val::Error };
        let r = self.emit1(Op::Unary { op, value: x }, ty.clone(), span);
        self.ir(r, ty, view.strength)
    }

    pub fn lower_binary(
        &mut self,
        op: BinOp,
        a: Val,
        b: Val,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Val {
        if a.is_error() || b.is_error() {
            return Val::Error;
        }
        let (Some(va), Some(vb)) = (self.view(&a), self.view(&b)) else {
            let bad = if self.view(&a).is_none() { (&a, sa) } else { (&b, sb) };
            let d = Diagnostic::error(
                "E0420",
                format!(
                    "`{}` needs values on both sides, but this is {}",
                    op.symbol(),
                    self.describe(bad.0)
                ),
                bad.1,
            )
            .with_label("not a value");
            return self.error(d);
        };
        // Pointer arithmetic.
        if va.elem.is_ptr() || vb.elem.is_ptr() {
            return self.lower_ptr_arith(op, a, va, b, vb, span, sa, sb);
        }
        let shape = match broadcast_shapes(&va.shape, &vb.shape) {
            Some(s) => s,
            None => {
                let d = Diagnostic::error(
                    "E0421",
                    format!(
                        "cannot broadcast `{}` with `{}` in `{}`",
                        va.to_type(),
                        vb.to_type(),
                        op.symbol()
                    ),
                    span,
                )
                .with_secondary(sa, format!("shape {}", show_shape(&va.shape)))
                .with_secondary(sb, format!("shape {}", show_shape(&vb.shape)))
                .with_note("shapes broadcast when, from the right, each pair of dimensions is equal or one of them is 1")
                .with_help("use `x[:, None]` or `x[None, :]` to add a dimension, or `reshape`");
                return self.error(d);
            }
        };
        let (da, db) = (va.dtype().unwrap_or(DType::I32), vb.dtype().unwrap_or(DType::I32));
        let (dt, strength) = match promote(da, va.strength, db, vb.strength) {
            Ok(x) => x,
            Err(PromoteError::MixedSignedness(x, y)) => {
                let d = Diagnostic::error(
                    "E0422",
                    format!(
                        "`{}` mixes signed and unsigned integers: `{}` and `{}`",
                        op.symbol(),
                        va.to_type(),
                        vb.to_type()
                    ),
                    span,
                )
                .with_secondary(sa, format!("`{x}`"))
                .with_secondary(sb, format!("`{y}`"))
                .with_help(format!("convert one side explicitly, e.g. `as {x}`"));
                return self.error(d);
            }
        };
        // Type rules per operator class.
        let class_error = |this: &mut Self, need: &str, help: &str| {
            let d = Diagnostic::error(
                "E0423",
                format!(
                    "`{}` needs {need}, but the operands are `{}` and `{}`",
                    op.symbol(),
                    va.to_type(),
                    vb.to_type()
                ),
                span,
            )
            .with_help(help.to_string());
            this.error(d)
        };
        match op {
            BinOp::And | BinOp::Or => {
                if da != DType::Bool || db != DType::Bool {
                    return class_error(
                        self,
                        "bool operands",
                        "compare first, e.g. `x != 0`; use `&` / `|` for bitwise operations",
                    );
                }
            }
            BinOp::BitAnd | BinOp::BitOr | BinOp::BitXor => {
                if dt.is_float() {
                    return class_error(
                        self,
                        "integer or bool operands",
                        "bitwise operations are not defined on floats",
                    );
                }
            }
            BinOp::Shl | BinOp::Shr => {
                if !dt.is_int() {
                    return class_error(
                        self,
                        "integer operands",
                        "shifts are defined on integers only",
                    );
                }
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                if dt.is_bool() {
                    return class_error(self, "numbers", "convert the bools with `as i32` first");
                }
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {}
        }
        // Literals must fit the dtype they adopt.
        for (v, vw, s) in [(&a, &va, sa), (&b, &vb, sb)] {
            if let Val::Const { value, dtype, strength: Strength::Weak } = v {
                if strength == Strength::Strong && !crate::lower::literal_fits(*value, *dtype, dt) {
                    let d = Diagnostic::error(
                        "E0404",
                        format!("the literal {value} does not fit in `{dt}`"),
                        s,
                    )
                    .with_label(format!("out of range for `{dt}`"));
                    return self.error(d);
                }
                let _ = vw;
            }
        }
        let a = self.cast_if_needed(a, dt, span);
        let b = self.cast_if_needed(b, dt, span);
        let (ir_op, is_cmp): (Result<BinaryOp, CmpPred>, bool) = match op {
            BinOp::Add => (Ok(BinaryOp::Add), false),
            BinOp::Sub => (Ok(BinaryOp::Sub), false),
            BinOp::Mul => (Ok(BinaryOp::Mul), false),
            BinOp::Div => (Ok(BinaryOp::Div), false),
            BinOp::Rem => (Ok(BinaryOp::Rem), false),
            BinOp::BitAnd | BinOp::And => (Ok(BinaryOp::And), false),
            BinOp::BitOr | BinOp::Or => (Ok(BinaryOp::Or), false),
            BinOp::BitXor => (Ok(BinaryOp::Xor), false),
            BinOp::Shl => (Ok(BinaryOp::Shl), false),
            BinOp::Shr => (Ok(BinaryOp::Shr), false),
            BinOp::Eq => (Err(CmpPred::Eq), true),
            BinOp::Ne => (Err(CmpPred::Ne), true),
            BinOp::Lt => (Err(CmpPred::Lt), true),
            BinOp::Le => (Err(CmpPred::Le), true),
            BinOp::Gt => (Err(CmpPred::Gt), true),
            BinOp::Ge => (Err(CmpPred::Ge), true),
        };
        let _ = is_cmp;
        self.apply_binary(ir_op, a, b, dt, strength, &shape, span)
    }

    fn cast_if_needed(&mut self, v: Val, dt: DType, span: Span) -> Val {
        match self.view(&v) {
            Some(view) if view.dtype() != Some(dt) => self.cast_val(v, dt, span),
            _ => v,
        }
    }

    /// Applies a binary op or comparison to operands already of dtype `dt`, folding constants and
    /// broadcasting blocks to `shape`.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_binary(
        &mut self,
        op: Result<BinaryOp, CmpPred>,
        a: Val,
        b: Val,
        dt: DType,
        strength: Strength,
        shape: &[u32],
        span: Span,
    ) -> Val {
        if let (Val::Const { value: x, .. }, Val::Const { value: y, .. }) = (&a, &b) {
            let r = match op {
                Ok(bop) => tk_ir::eval::binary(bop, dt, *x, *y).map(|v| (v, dt, strength)),
                Err(pred) => tk_ir::eval::cmp(pred, dt, *x, *y)
                    .map(|v| (ConstValue::Bool(v), DType::Bool, Strength::Strong)),
            };
            return match r {
                Ok((value, dtype, strength)) => Val::Const { value, dtype, strength },
                Err(err) => {
                    let d = Diagnostic::error(
                        "E0419",
                        format!("this constant expression fails: {err}"),
                        span,
                    )
                    .with_help(
                        "a compile-time value is computed while compiling; fix the operands",
                    );
                    self.error(d)
                }
            };
        }
        let Some((x, tx)) = self.materialize(&a, span) else { return Val::Error };
        let Some((y, ty)) = self.materialize(&b, span) else { return Val::Error };
        let x = self.broadcast_value(x, &tx, shape, span);
        let y = self.broadcast_value(y, &ty, shape, span);
        match op {
            Ok(bop) => {
                let t = Type::block(dt, shape.to_vec());
                let r = self.emit1(Op::Binary { op: bop, lhs: x, rhs: y }, t.clone(), span);
                self.ir(r, t, strength)
            }
            Err(pred) => {
                let t = Type::block(DType::Bool, shape.to_vec());
                let r = self.emit1(Op::Cmp { pred, lhs: x, rhs: y }, t.clone(), span);
                self.ir(r, t, Strength::Strong)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn lower_ptr_arith(
        &mut self,
        op: BinOp,
        a: Val,
        va: TypeView,
        b: Val,
        vb: TypeView,
        span: Span,
        sa: Span,
        sb: Span,
    ) -> Val {
        let (ptr, pv, off, ov, off_span) = match (va.elem.is_ptr(), vb.elem.is_ptr(), op) {
            (true, false, BinOp::Add | BinOp::Sub) => (a, va.clone(), b, vb.clone(), sb),
            (false, true, BinOp::Add) => (b, vb.clone(), a, va.clone(), sa),
            _ => {
                let d = Diagnostic::error(
                    "E0424",
                    format!("`{}` is not defined on `{}` and `{}`", op.symbol(), va.to_type(), vb.to_type()),
                    span,
                )
                .with_note("pointers support `ptr + offset`, `offset + ptr` and `ptr - offset` with integer offsets")
                .with_help("load the values first with `load(ptr)`");
                return self.error(d);
            }
        };
        let odt = ov.dtype().unwrap_or(DType::I32);
        if !odt.is_int() {
            let d = Diagnostic::error(
                "E0425",
                format!("pointer offsets must be integers, not `{}`", ov.to_type()),
                off_span,
            )
            .with_label(format!("`{}`", ov.to_type()))
            .with_help("convert the offset with `as i32` or `as i64`");
            return self.error(d);
        }
        let Some(shape) = broadcast_shapes(&pv.shape, &ov.shape) else {
            let d = Diagnostic::error(
                "E0421",
                format!(
                    "cannot broadcast `{}` with `{}` in `{}`",
                    pv.to_type(),
                    ov.to_type(),
                    op.symbol()
                ),
                span,
            )
            .with_secondary(sa, format!("shape {}", show_shape(&va.shape)))
            .with_secondary(sb, format!("shape {}", show_shape(&vb.shape)))
            .with_help("use `x[:, None]` or `x[None, :]` to add a dimension");
            return self.error(d);
        };
        let off = if op == BinOp::Sub {
            let view = self.view(&off).expect("checked above");
            self.apply_unary(UnaryOp::Neg, off, view, off_span)
        } else {
            off
        };
        let Some((p, pt)) = self.materialize(&ptr, span) else { return Val::Error };
        let Some((o, ot)) = self.materialize(&off, span) else { return Val::Error };
        let p = self.broadcast_value(p, &pt, &shape, span);
        let o = self.broadcast_value(o, &ot, &shape, span);
        let t = pt.with_shape(shape);
        let r = self.emit1(Op::AddPtr { ptr: p, offset: o }, t.clone(), span);
        self.ir(r, t, Strength::Strong)
    }

    fn lower_index(&mut self, v: Val, items: &[IndexItem], span: Span, base_span: Span) -> Val {
        if v.is_error() {
            return v;
        }
        let Some(view) = self.view(&v) else {
            let d = Diagnostic::error(
                "E0426",
                format!("cannot index {}", self.describe(&v)),
                base_span,
            );
            return self.error(d);
        };
        let kept = items.iter().filter(|i| matches!(i, IndexItem::Full(_))).count();
        if kept != view.shape.len() {
            let d = Diagnostic::error(
                "E0427",
                format!(
                    "this index has {kept} `:` but the value `{}` has {} dimension(s)",
                    view.to_type(),
                    view.shape.len()
                ),
                span,
            )
            .with_note("indexing only reshapes: write one `:` per existing dimension and `None` for each new one")
            .with_help(if view.shape.len() == 1 { "for a rank-1 block write `x[:, None]` or `x[None, :]`" } else { "e.g. `x[:, :, None]`" });
            return self.error(d);
        }
        let Some((mut x, mut t)) = self.materialize(&v, span) else { return Val::Error };
        let mut shape = Vec::new();
        for (pos, item) in items.iter().enumerate() {
            match item {
                IndexItem::Full(_) => shape.push(t.shape[shape.len()]),
                IndexItem::NewAxis(_) => {
                    let _ = pos;
                    let axis = shape.len();
                    let mut ns = t.shape.clone();
                    ns.insert(axis, 1);
                    if !self.check_shape(&ns, span) {
                        return Val::Error;
                    }
                    let nt = t.with_shape(ns);
                    x = self.emit1(Op::ExpandDims { value: x, axis: axis as u8 }, nt.clone(), span);
                    t = nt;
                    shape.push(1);
                }
            }
        }
        self.ir(x, t, view.strength)
    }

    fn lower_if_expr(
        &mut self,
        c: &Expr,
        then_b: &ast::Block,
        else_b: &ast::Block,
        span: Span,
    ) -> Val {
        self.lower_if(c, then_b, Some(else_b), true, span)
    }

    /// A bool scalar for `if`/`where` conditions, with a helpful error for blocks.
    pub fn scalar_condition(&mut self, cond: &Val, span: Span) -> Option<tk_ir::Value> {
        if cond.is_error() {
            return None;
        }
        let view = self.view(cond)?;
        if view.dtype() != Some(DType::Bool) || !view.shape.is_empty() {
            let mut d = Diagnostic::error(
                "E0430",
                format!(
                    "an `if` condition must be a `bool` scalar, but this is `{}`",
                    view.to_type()
                ),
                span,
            )
            .with_label(format!("`{}`", view.to_type()));
            d = if !view.shape.is_empty() {
                d.with_help("for element-wise choice use `where(cond, a, b)`; to test a whole block reduce it first")
            } else {
                d.with_help("compare explicitly, e.g. `x != 0`")
            };
            self.error(d);
            return None;
        }
        self.materialize(cond, span).map(|(v, _)| v)
    }

    pub fn bind_val(&mut self, name: &ast::Ident, val: Val, mutable: bool) {
        self.bind(&name.name, Binding { val, mutable, span: name.span });
    }
}

fn unop_symbol(op: UnOp) -> &'static str {
    match op {
        UnOp::Neg => "-",
        UnOp::Not => "!",
    }
}

/// The tk spelling of a dtype written the NumPy / C / PyTorch way (`float32`, `half`, `int`), or
/// one typo away from a dtype name.
fn similar_dtype(name: &str) -> Option<&'static str> {
    const ALIASES: &[(&str, &str)] = &[
        ("float", "f32"),
        ("float32", "f32"),
        ("float16", "f16"),
        ("half", "f16"),
        ("bfloat16", "bf16"),
        ("float64", "f64"),
        ("double", "f64"),
        ("int", "i32"),
        ("int8", "i8"),
        ("int16", "i16"),
        ("int32", "i32"),
        ("int64", "i64"),
        ("long", "i64"),
        ("uint8", "u8"),
        ("uint16", "u16"),
        ("uint32", "u32"),
        ("uint64", "u64"),
        ("boolean", "bool"),
    ];
    let lower = name.to_ascii_lowercase();
    if let Some((_, d)) = ALIASES.iter().find(|(a, _)| *a == lower) {
        return Some(d);
    }
    const NAMES: &[&str] = &[
        "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "bf16", "f32", "f64",
    ];
    NAMES.iter().copied().find(|n| edit_distance(n, &lower) == 1)
}

/// Levenshtein distance, for name suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}
