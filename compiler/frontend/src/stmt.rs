//! Lowering of statements and blocks: `let`, assignment, run-time `for` loops with loop-carried
//! `let mut` values, compile-time unrolled `static_range` loops, `if` statements, `return`.
//!
//! Mutable variables become SSA values: a loop or `if` that assigns an outer `let mut` variable
//! carries it as an iteration argument or an `if` result, so the IR stays purely functional.

use crate::lower::{Binding, FnLower};
use crate::val::{broadcast_shapes, promote, Strength, Val};
use tk_diag::{Diagnostic, Span};
use tk_ir::{ConstValue, DType, Op, Type, Value};
use tk_syntax::ast::{self, Block, Pattern, Stmt, StmtKind};

/// Most iterations a `static_range` loop may unroll to.
const MAX_UNROLL: i64 = 4096;

impl FnLower<'_, '_> {
    /// Lowers a block's statements and returns its value: the tail expression, or the value of a
    /// final `return`, or of a final `if`/`else` whose branches end in values (as in Rust, the
    /// parser reads an `if` that starts a statement as a statement), or `Unit`.
    pub fn lower_block_value(&mut self, b: &Block) -> Val {
        self.lower_block(b, true)
    }

    fn lower_block(&mut self, b: &Block, want_value: bool) -> Val {
        let n = b.stmts.len();
        for (i, s) in b.stmts.iter().enumerate() {
            if let (true, true, StmtKind::If { cond, then_block, else_block: Some(e) }) =
                (want_value, i + 1 == n && b.tail.is_none(), &s.kind)
            {
                if ends_in_value(then_block) && ends_in_value(e) {
                    return self.lower_if(cond, then_block, Some(e), true, s.span);
                }
            }
            if let StmtKind::Return(e) = &s.kind {
                if i + 1 != n || b.tail.is_some() {
                    let d = Diagnostic::error(
                        "E0601",
                        "`return` must be the last statement of a function",
                        s.span,
                    )
                    .with_help(
                        "put the remaining code in an `if`/`else`, or use masks to skip work",
                    );
                    return self.error(d);
                }
                return match e {
                    Some(e) => self.lower_expr(e),
                    None => Val::Unit,
                };
            }
            self.lower_stmt(s);
        }
        match &b.tail {
            Some(e) => self.lower_expr(e),
            None => Val::Unit,
        }
    }

    pub fn lower_stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Let { mutable, pattern, ty, value } => {
                self.lower_let(*mutable, pattern, ty.as_ref(), value, s.span)
            }
            StmtKind::Assign { target, op, value } => self.lower_assign(target, *op, value),
            StmtKind::Expr(e) => {
                self.lower_expr(e);
            }
            StmtKind::For { var, is_static, lo, hi, step, body } => {
                if *is_static {
                    self.lower_static_for(var, lo, hi, step.as_ref(), body, s.span)
                } else {
                    self.lower_for(var, lo, hi, step.as_ref(), body, s.span)
                }
            }
            StmtKind::If { cond, then_block, else_block } => {
                self.lower_if(cond, then_block, else_block.as_ref(), false, s.span);
            }
            StmtKind::Return(_) => {
                let d = Diagnostic::error(
                    "E0601",
                    "`return` must be the last statement of a function",
                    s.span,
                )
                .with_help("put the remaining code in an `if`/`else`, or use masks to skip work");
                self.error(d);
            }
        }
    }

    fn lower_let(
        &mut self,
        mutable: bool,
        pattern: &Pattern,
        ty: Option<&ast::TypeExpr>,
        value: &ast::Expr,
        span: Span,
    ) {
        let mut v = self.lower_expr(value);
        if matches!(v, Val::Unit) {
            let d = Diagnostic::error("E0602", "this expression has no value to bind", value.span)
                .with_label("produces nothing")
                .with_note("`store`, `device_assert` and `print` are statements");
            v = self.error(d);
        }
        if let Some(ty) = ty {
            if !v.is_error() {
                if let Some(t) = self.resolve_value_type(ty) {
                    v = match self.coerce(v, &t, value.span, "the value") {
                        Some(x) => self.ir(x, t, Strength::Strong),
                        None => Val::Error,
                    };
                } else {
                    v = Val::Error;
                }
            }
        }
        match pattern {
            Pattern::Name(id) => {
                if mutable {
                    v = self.make_mutable(v, value.span);
                }
                self.name_hint(&v, &id.name);
                self.bind_val(id, v, mutable);
            }
            Pattern::Tuple(ids) => {
                let pattern_span = match (ids.first(), ids.last()) {
                    (Some(a), Some(b)) => a.span.to(b.span),
                    _ => span,
                };
                if mutable {
                    let d = Diagnostic::error(
                        "E0603",
                        "`let mut` binds one name at a time",
                        pattern_span,
                    )
                    .with_label("several names")
                    .with_help("write `let (a, b) = ...;` then `let mut x = a;`");
                    self.error(d);
                }
                match v {
                    Val::Tuple(items) if items.len() == ids.len() => {
                        for (id, it) in ids.iter().zip(items) {
                            self.bind_val(id, it, false);
                        }
                    }
                    Val::Error => {
                        for id in ids {
                            self.bind_val(id, Val::Error, false);
                        }
                    }
                    other => {
                        let d = Diagnostic::error(
                            "E0604",
                            format!(
                                "this pattern takes {} values, but the right side is {}",
                                ids.len(),
                                self.describe(&other)
                            ),
                            pattern_span,
                        )
                        .with_label(format!("{} names", ids.len()))
                        .with_secondary(value.span, self.describe(&other));
                        self.error(d);
                        for id in ids {
                            self.bind_val(id, Val::Error, false);
                        }
                    }
                }
            }
        }
    }

    /// Gives an unnamed IR value the source name it is bound to, so printed IR reads like the
    /// source (`%mask` rather than `%6`).
    fn name_hint(&mut self, v: &Val, name: &str) {
        if let Val::Ir { value, .. } = v {
            let data = &mut self.func.values[value.0 as usize];
            if data.name.is_none() {
                data.name = Some(name.to_string());
            }
        }
    }

    /// A written value type: `f32`, `*f16` or `f32[16, 32]` (dims are compile-time).
    pub fn resolve_value_type(&mut self, ty: &ast::TypeExpr) -> Option<Type> {
        match &ty.kind {
            ast::TypeExprKind::Named(_) => self.resolve_dtype_name(ty).map(Type::scalar),
            ast::TypeExprKind::Ptr(inner) => {
                let d = self.resolve_dtype_name(inner)?;
                Some(Type { elem: tk_ir::Elem::Ptr(d), shape: Vec::new() })
            }
            ast::TypeExprKind::Block(id, dims) => {
                let dt = match DType::from_name(&id.name) {
                    Some(d) => d,
                    None => {
                        let d = Diagnostic::error(
                            "E0415",
                            format!("unknown element type `{}`", id.name),
                            id.span,
                        );
                        self.error(d);
                        return None;
                    }
                };
                let mut shape = Vec::new();
                for e in dims {
                    let v = self.lower_expr(e);
                    let n = self.const_int(&v, e.span, "a block dimension")?;
                    if n < 1 || n > u32::MAX as i64 {
                        let d = Diagnostic::error(
                            "E0408",
                            format!("block dimension {n} must be at least 1"),
                            e.span,
                        );
                        self.error(d);
                        return None;
                    }
                    shape.push(n as u32);
                }
                if !self.check_shape(&shape, ty.span) {
                    return None;
                }
                Some(Type::block(dt, shape))
            }
            ast::TypeExprKind::Tuple(_) => {
                let d = Diagnostic::error("E0605", "a tuple type is not allowed here", ty.span);
                self.error(d);
                None
            }
        }
    }

    /// A `let mut` value lives in the IR with a definite type (literals take their default type).
    fn make_mutable(&mut self, v: Val, span: Span) -> Val {
        match v {
            Val::Const { .. } | Val::Ir { .. } => match self.materialize(&v, span) {
                Some((x, t)) => self.ir(x, t, Strength::Strong),
                None => Val::Error,
            },
            Val::Error => Val::Error,
            other => {
                let d = Diagnostic::error(
                    "E0606",
                    format!(
                        "a `let mut` variable must hold a value, not {}",
                        self.describe(&other)
                    ),
                    span,
                );
                self.error(d)
            }
        }
    }

    fn lower_assign(&mut self, target: &ast::Ident, op: Option<ast::BinOp>, value: &ast::Expr) {
        let Some(b) = self.lookup(&target.name).cloned() else {
            let v = self.lower_expr(value);
            let _ = v;
            let d = Diagnostic::error(
                "E0412",
                format!("cannot find `{}` in this scope", target.name),
                target.span,
            )
            .with_help(format!("declare it first with `let mut {} = ...;`", target.name));
            self.error(d);
            return;
        };
        if !b.mutable {
            self.lower_expr(value);
            let d = Diagnostic::error(
                "E0607",
                format!("cannot assign twice to the immutable variable `{}`", target.name),
                target.span,
            )
            .with_label("assigned here")
            .with_secondary(b.span, "first bound here")
            .with_help(format!("declare it mutable: `let mut {} = ...;`", target.name));
            self.error(d);
            return;
        }
        let rhs = self.lower_expr(value);
        let new = match op {
            Some(op) => {
                // The operation is `target op value`: point there, not at the whole statement.
                let op_span = target.span.to(value.span);
                self.lower_binary(op, b.val.clone(), rhs, op_span, target.span, value.span)
            }
            None => rhs,
        };
        if new.is_error() || b.val.is_error() {
            self.rebind(&target.name, Val::Error);
            return;
        }
        let Val::Ir { ty, .. } = b.val else { return };
        let t = self.ty(ty);
        let what = format!("the new value of `{}`", target.name);
        match self.coerce(new, &t, value.span, &what) {
            Some(x) => {
                let v = self.ir(x, t, Strength::Strong);
                self.rebind(&target.name, v);
            }
            None => self.rebind(&target.name, Val::Error),
        }
    }

    /// Names of outer `let mut` variables assigned anywhere inside `b` (in first-seen order).
    fn assigned_outer_vars(&self, b: &Block) -> Vec<String> {
        let mut names = Vec::new();
        collect_assigned(b, &mut names);
        names.retain(|n| {
            self.lookup(n).is_some_and(|bd| bd.mutable && matches!(bd.val, Val::Ir { .. }))
        });
        names
    }

    fn lower_for(
        &mut self,
        var: &ast::Ident,
        lo: &ast::Expr,
        hi: &ast::Expr,
        step: Option<&ast::Expr>,
        body: &Block,
        span: Span,
    ) {
        let lo_v = self.lower_expr(lo);
        let hi_v = self.lower_expr(hi);
        let step_v = match step {
            Some(e) => self.lower_expr(e),
            None => Val::Const {
                value: ConstValue::Int(1),
                dtype: DType::I32,
                strength: Strength::Weak,
            },
        };
        let step_span = step.map(|e| e.span).unwrap_or(span);
        if let Val::Const { value: ConstValue::Int(s), .. } = step_v {
            if s <= 0 {
                let d = Diagnostic::error(
                    "E0608",
                    format!("the loop step must be positive, not {s}"),
                    step_span,
                )
                .with_label("step");
                self.error(d);
                return;
            }
        }
        // All three bounds share one integer dtype.
        let bounds = [(lo_v, lo.span), (hi_v, hi.span), (step_v, step_span)];
        let mut dt = DType::I32;
        let mut strong_seen = false;
        for (v, s) in &bounds {
            if v.is_error() {
                return;
            }
            match self.view(v) {
                Some(w) if w.shape.is_empty() && w.dtype().is_some_and(|d| d.is_int()) => {
                    if w.strength == Strength::Strong {
                        let d = w.dtype().expect("int");
                        if strong_seen && d != dt {
                            if d.is_signed_int() != dt.is_signed_int() {
                                let diag = Diagnostic::error(
                                    "E0609",
                                    format!("loop bounds mix `{dt}` and `{d}`"),
                                    *s,
                                )
                                .with_help("convert the bounds to one type with `as`");
                                self.error(diag);
                                return;
                            }
                            dt = if d.bits() > dt.bits() { d } else { dt };
                        } else {
                            dt = d;
                        }
                        strong_seen = true;
                    }
                }
                _ => {
                    let diag = Diagnostic::error(
                        "E0610",
                        format!(
                            "loop bounds must be integer scalars, but this is {}",
                            self.describe(v)
                        ),
                        *s,
                    )
                    .with_help("blocks cannot be loop bounds; reduce them or load a scalar");
                    self.error(diag);
                    return;
                }
            }
        }
        let bt = Type::scalar(dt);
        let mut vals = Vec::new();
        for (v, s) in bounds {
            match self.coerce(v, &bt, s, "the loop bound") {
                Some(x) => vals.push(x),
                None => return,
            }
        }
        let carried = self.assigned_outer_vars(body);
        let mut init = Vec::new();
        let mut init_types = Vec::new();
        for n in &carried {
            if let Some(Binding { val: Val::Ir { value, ty, .. }, .. }) = self.lookup(n) {
                init.push(*value);
                init_types.push(*ty);
            }
        }
        let iv_ty = self.intern(bt.clone());
        let mut arg_types = vec![iv_ty];
        arg_types.extend(&init_types);
        let region = self.func.new_region(&arg_types);
        let rargs = self.func.region(region).args.clone();
        for (i, n) in carried.iter().enumerate() {
            self.rebind(
                n,
                Val::Ir { value: rargs[i + 1], ty: init_types[i], strength: Strength::Strong },
            );
        }
        let yields = self.in_region(region, |this| {
            this.with_scope(|this| {
                this.bind(
                    &var.name,
                    Binding {
                        val: Val::Ir { value: rargs[0], ty: iv_ty, strength: Strength::Strong },
                        mutable: false,
                        span: var.span,
                    },
                );
                this.lower_block_stmts(body);
            });
            this.current_values(&carried, &init_types, span)
        });
        let Some(yields) = yields else {
            for n in &carried {
                self.rebind(n, Val::Error);
            }
            return;
        };
        self.in_region(region, |this| this.emit(Op::Yield { values: yields }, &[], body.span));
        let id = self.func.append_op(
            self.region,
            Op::For { lo: vals[0], hi: vals[1], step: vals[2], init, body: region },
            &init_types,
            span,
        );
        let results = self.func.op(id).results.clone();
        for (i, n) in carried.iter().enumerate() {
            self.rebind(
                n,
                Val::Ir { value: results[i], ty: init_types[i], strength: Strength::Strong },
            );
        }
    }

    /// The current IR values of the named variables (all must still be values of their types).
    fn current_values(
        &mut self,
        names: &[String],
        types: &[tk_ir::TypeId],
        _span: Span,
    ) -> Option<Vec<Value>> {
        let mut out = Vec::new();
        for (n, t) in names.iter().zip(types) {
            match self.lookup(n).map(|b| b.val.clone()) {
                Some(Val::Ir { value, ty, .. }) if ty == *t => out.push(value),
                _ => return None,
            }
        }
        Some(out)
    }

    /// Statements of a block whose value is not used (loop bodies, `if` statements).
    fn lower_block_stmts(&mut self, b: &Block) {
        let v = self.lower_block(b, false);
        if let (Some(tail), false) = (&b.tail, v.is_error() || matches!(v, Val::Unit)) {
            let d = Diagnostic::warning(
                "W0601",
                "this value is computed and then discarded",
                tail.span,
            )
            .with_help("add `;` if this is intended, or bind it with `let`");
            self.prog.diags.push(d);
        }
    }

    fn lower_static_for(
        &mut self,
        var: &ast::Ident,
        lo: &ast::Expr,
        hi: &ast::Expr,
        step: Option<&ast::Expr>,
        body: &Block,
        span: Span,
    ) {
        let lo_v = self.lower_expr(lo);
        let hi_v = self.lower_expr(hi);
        let Some(l) = self.const_int(&lo_v, lo.span, "a `static_range` bound") else { return };
        let Some(h) = self.const_int(&hi_v, hi.span, "a `static_range` bound") else { return };
        let s = match step {
            Some(e) => {
                let v = self.lower_expr(e);
                match self.const_int(&v, e.span, "a `static_range` step") {
                    Some(s) => s,
                    None => return,
                }
            }
            None => 1,
        };
        if s <= 0 {
            let d = Diagnostic::error(
                "E0608",
                format!("the loop step must be positive, not {s}"),
                step.map(|e| e.span).unwrap_or(span),
            );
            self.error(d);
            return;
        }
        // Arbitrary i64 bounds: `h - l + s - 1` needs i128.
        let trips = if h > l { (h as i128 - l as i128 + s as i128 - 1) / s as i128 } else { 0 };
        if trips > MAX_UNROLL as i128 {
            let bounds = lo.span.to(step.map(|e| e.span).unwrap_or(hi.span));
            let d = Diagnostic::error(
                "E0611",
                format!("`static_range` would unroll {trips} iterations (limit {MAX_UNROLL})"),
                bounds,
            )
            .with_label(format!("{trips} iterations"))
            .with_help("use `range(...)` for a run-time loop");
            self.error(d);
            return;
        }
        let mut i = l;
        for _ in 0..trips {
            self.with_scope(|this| {
                this.bind(
                    &var.name,
                    Binding {
                        val: Val::Const {
                            value: ConstValue::Int(i),
                            dtype: DType::I32,
                            strength: Strength::Weak,
                        },
                        mutable: false,
                        span: var.span,
                    },
                );
                this.lower_block_stmts(body);
            });
            // The step after the last iteration may leave the i64 range; `i` is not read again.
            i = i.wrapping_add(s);
        }
    }

    /// An `if` as a statement (`want_value` false: branch values are discarded) or as an
    /// expression (both branches give a value of one type, or both give nothing). Outer `let mut`
    /// variables assigned in either branch leave the `if` as extra results.
    pub fn lower_if(
        &mut self,
        cond: &ast::Expr,
        then_b: &Block,
        else_b: Option<&Block>,
        want_value: bool,
        span: Span,
    ) -> Val {
        let c = self.lower_expr(cond);
        if let Val::Const { value: ConstValue::Bool(b), .. } = c {
            // Compile-time condition: only the taken branch exists.
            let taken = if b { Some(then_b) } else { else_b };
            return match taken {
                Some(blk) if want_value => self.with_scope(|this| this.lower_block_value(blk)),
                Some(blk) => {
                    self.with_scope(|this| this.lower_block_stmts(blk));
                    Val::Unit
                }
                None => Val::Unit,
            };
        }
        let Some(cv) = self.scalar_condition(&c, cond.span) else { return Val::Error };
        let mut carried = self.assigned_outer_vars(then_b);
        if let Some(e) = else_b {
            for n in self.assigned_outer_vars(e) {
                if !carried.contains(&n) {
                    carried.push(n);
                }
            }
        }
        let mut types = Vec::new();
        let mut before = Vec::new();
        for n in &carried {
            if let Some(Binding { val: v @ Val::Ir { ty, .. }, .. }) = self.lookup(n) {
                types.push(*ty);
                before.push(v.clone());
            }
        }
        let branch = |this: &mut Self, b: Option<&Block>| -> Val {
            match b {
                Some(b) if want_value => this.with_scope(|this| this.lower_block_value(b)),
                Some(b) => {
                    this.with_scope(|this| this.lower_block_stmts(b));
                    Val::Unit
                }
                None => Val::Unit,
            }
        };
        let then_r = self.func.new_region(&[]);
        let else_r = self.func.new_region(&[]);
        let (tv, then_vals) = self.in_region(then_r, |this| {
            let v = branch(this, Some(then_b));
            (v, this.current_values(&carried, &types, span))
        });
        for (n, v) in carried.iter().zip(&before) {
            self.rebind(n, v.clone());
        }
        let (ev, else_vals) = self.in_region(else_r, |this| {
            let v = branch(this, else_b);
            (v, this.current_values(&carried, &types, span))
        });
        // The branches' values, converted to one type inside their regions.
        let value = match (&then_vals, &else_vals) {
            (Some(_), Some(_)) if want_value => {
                let else_span = else_b.map(|b| b.span).unwrap_or(span);
                self.unify_branches(tv, ev, then_r, else_r, then_b.span, else_span, span)
            }
            (Some(_), Some(_)) => Some(None),
            _ => None,
        };
        let (Some(value), Some(mut tvals), Some(mut evals)) = (value, then_vals, else_vals) else {
            // The regions are abandoned: values assigned in them must not escape.
            for n in &carried {
                self.rebind(n, Val::Error);
            }
            return Val::Error;
        };
        let mut result_types = types.clone();
        if let Some((t, e, ty, _)) = &value {
            tvals.insert(0, *t);
            evals.insert(0, *e);
            result_types.insert(0, self.intern(ty.clone()));
        }
        self.in_region(then_r, |this| this.emit(Op::Yield { values: tvals }, &[], then_b.span));
        self.in_region(else_r, |this| {
            this.emit(Op::Yield { values: evals }, &[], else_b.map(|b| b.span).unwrap_or(span))
        });
        let id = self.func.append_op(
            self.region,
            Op::If { cond: cv, then_body: then_r, else_body: else_r },
            &result_types,
            span,
        );
        let results = self.func.op(id).results.clone();
        let offset = usize::from(value.is_some());
        for (i, n) in carried.iter().enumerate() {
            let v =
                Val::Ir { value: results[i + offset], ty: types[i], strength: Strength::Strong };
            self.rebind(n, v);
        }
        match value {
            Some((_, _, ty, strength)) => self.ir(results[0], ty, strength),
            None => Val::Unit,
        }
    }

    /// The values of the two branches of an `if` expression as one type: `Some(None)` when both
    /// give nothing, `Some(Some((then value, else value, type, strength)))` when both give values
    /// that convert to one type (the conversions are emitted in each branch's region), `None`
    /// after an error.
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn unify_branches(
        &mut self,
        tv: Val,
        ev: Val,
        then_r: tk_ir::RegionId,
        else_r: tk_ir::RegionId,
        then_span: Span,
        else_span: Span,
        span: Span,
    ) -> Option<Option<(Value, Value, Type, Strength)>> {
        if tv.is_error() || ev.is_error() {
            return None;
        }
        if matches!((&tv, &ev), (Val::Unit, Val::Unit)) {
            return Some(None);
        }
        let (Some(tw), Some(ew)) = (self.view(&tv), self.view(&ev)) else {
            let d = Diagnostic::error(
                "E0428",
                format!(
                    "both branches of an `if` expression must produce one value, but they give {} and {}",
                    self.describe(&tv),
                    self.describe(&ev)
                ),
                span,
            )
            .with_secondary(then_span, "`then` branch")
            .with_secondary(else_span, "`else` branch");
            self.error(d);
            return None;
        };
        // Like an assignment, no implicit conversion between strong dtypes; literals adapt.
        let strong_mismatch = tw.strength == Strength::Strong
            && ew.strength == Strength::Strong
            && tw.elem != ew.elem;
        let promoted = promote(
            tw.dtype().unwrap_or(DType::I32),
            tw.strength,
            ew.dtype().unwrap_or(DType::I32),
            ew.strength,
        );
        let shape = broadcast_shapes(&tw.shape, &ew.shape);
        let (Ok((dt, strength)), false, true, Some(shape)) =
            (promoted, strong_mismatch, tw.elem.is_ptr() == ew.elem.is_ptr(), shape)
        else {
            let d = Diagnostic::error(
                "E0429",
                format!(
                    "`if` branches have different types: `{}` and `{}`",
                    tw.to_type(),
                    ew.to_type()
                ),
                span,
            )
            .with_secondary(then_span, format!("`{}`", tw.to_type()))
            .with_secondary(else_span, format!("`{}`", ew.to_type()))
            .with_help("convert one branch with `as`, or broadcast it with `broadcast_to`");
            self.error(d);
            return None;
        };
        let elem = if tw.elem.is_ptr() { tw.elem } else { tk_ir::Elem::Scalar(dt) };
        let target = Type { elem, shape };
        let t =
            self.in_region(then_r, |this| this.coerce(tv, &target, then_span, "the `then` value"));
        let e =
            self.in_region(else_r, |this| this.coerce(ev, &target, else_span, "the `else` value"));
        Some(Some((t?, e?, target, strength)))
    }
}

/// Whether a block ends in a value: a tail expression, or an `if`/`else` statement whose branches
/// both end in values (`else if` chains included).
fn ends_in_value(b: &Block) -> bool {
    if b.tail.is_some() {
        return true;
    }
    match b.stmts.last().map(|s| &s.kind) {
        Some(StmtKind::If { then_block, else_block: Some(e), .. }) => {
            ends_in_value(then_block) && ends_in_value(e)
        }
        _ => false,
    }
}

/// Every assignment target inside a block, including nested loops and branches, and the blocks
/// of `if` expressions anywhere in its expressions. (The AST depth is bounded by the parser, so
/// the recursion is too.)
fn collect_assigned(b: &Block, out: &mut Vec<String>) {
    for s in &b.stmts {
        match &s.kind {
            StmtKind::Assign { target, value, .. } => {
                if !out.contains(&target.name) {
                    out.push(target.name.clone());
                }
                collect_assigned_expr(value, out);
            }
            StmtKind::For { lo, hi, step, body, .. } => {
                collect_assigned_expr(lo, out);
                collect_assigned_expr(hi, out);
                if let Some(st) = step {
                    collect_assigned_expr(st, out);
                }
                collect_assigned(body, out);
            }
            StmtKind::If { cond, then_block, else_block } => {
                collect_assigned_expr(cond, out);
                collect_assigned(then_block, out);
                if let Some(e) = else_block {
                    collect_assigned(e, out);
                }
            }
            StmtKind::Let { value, .. } => collect_assigned_expr(value, out),
            StmtKind::Expr(e) | StmtKind::Return(Some(e)) => collect_assigned_expr(e, out),
            StmtKind::Return(None) => {}
        }
    }
    if let Some(t) = &b.tail {
        collect_assigned_expr(t, out);
    }
}

fn collect_assigned_expr(e: &ast::Expr, out: &mut Vec<String>) {
    use ast::ExprKind as K;
    match &e.kind {
        K::Int(_) | K::Float(_) | K::Bool(_) | K::Str(_) | K::Name(_) => {}
        K::Unary(_, x) | K::Index(x, _) | K::Cast(x, _) => collect_assigned_expr(x, out),
        K::Binary(_, a, b) => {
            collect_assigned_expr(a, out);
            collect_assigned_expr(b, out);
        }
        K::Call(_, args) => args.iter().for_each(|a| collect_assigned_expr(&a.value, out)),
        K::List(xs) | K::Tuple(xs) => xs.iter().for_each(|x| collect_assigned_expr(x, out)),
        K::If(c, t, f) => {
            collect_assigned_expr(c, out);
            collect_assigned(t, out);
            collect_assigned(f, out);
        }
    }
}
