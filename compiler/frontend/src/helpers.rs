//! Calls of helper `fn`s. Helpers are generic over shapes (and over compile-time arguments): each
//! distinct combination of argument types is lowered once into its own IR helper function, called
//! with `Op::Call`, and later inlined by the IR inliner. A helper whose result is a compile-time
//! constant and that has no side effects is folded at the call site instead, so that helpers can
//! compute shapes.

use crate::lower::{Binding, FnLower};
use crate::program::{ArgKey, ItemRef};
use crate::val::{Strength, Val};
use tk_diag::{Diagnostic, Span};
use tk_ir::{FuncKind, Function, Op, Type, Value};
use tk_syntax::ast::{self, FuncKindAst};

/// How deep helper calls may nest before we call it runaway recursion.
const MAX_DEPTH: usize = 48;

/// What an instantiation produced.
#[derive(Clone, Debug)]
pub enum Instance {
    /// Call this IR function; it has this many results.
    Func(tk_ir::FuncId, Vec<tk_ir::TypeId>),
    /// The result is known at compile time and the body has no effects.
    Consts(Vec<Val>),
    /// The body had errors (already reported).
    Failed,
}

impl FnLower<'_, '_> {
    pub fn call_helper_expr(&mut self, callee: &ast::Ident, args: &[ast::Arg], span: Span) -> Val {
        let mut vals = Vec::new();
        for a in args {
            if let Some(kw) = &a.name {
                let d = Diagnostic::error(
                    "E0701",
                    format!("helper `{}` takes positional arguments only", callee.name),
                    kw.span,
                )
                .with_help(format!("remove `{}:`", kw.name));
                return self.error(d);
            }
            vals.push((self.lower_expr(&a.value), a.value.span));
        }
        if vals.iter().any(|(v, _)| v.is_error()) {
            return Val::Error;
        }
        self.call_helper_vals(&callee.name, vals, span)
    }

    /// Calls helper `name` with already-lowered arguments.
    pub fn call_helper_vals(&mut self, name: &str, args: Vec<(Val, Span)>, span: Span) -> Val {
        let Some(ItemRef::Func(decl)) = self.prog.items.get(name).copied() else {
            let d = Diagnostic::error("E0702", format!("`{name}` is not a helper function"), span);
            return self.error(d);
        };
        if decl.kind == FuncKindAst::Kernel {
            let d = Diagnostic::error(
                "E0703",
                format!("`{name}` is a kernel; kernels are launched, not called"),
                span,
            )
            .with_secondary(decl.name.span, "kernel defined here")
            .with_help("move the shared code into a helper `fn` and call that from both kernels");
            return self.error(d);
        }
        if args.len() != decl.params.len() {
            let d = Diagnostic::error(
                "E0704",
                format!(
                    "`{name}` takes {} argument(s) but {} were given",
                    decl.params.len(),
                    args.len()
                ),
                span,
            )
            .with_secondary(decl.name.span, "defined here");
            return self.error(d);
        }
        // Check annotated parameter types and build the instantiation key.
        let mut keys = Vec::new();
        let mut coerced = Vec::new();
        for ((v, s), p) in args.into_iter().zip(&decl.params) {
            let v = match &p.ty {
                Some(ty) => match self.check_param_type(v, s, ty, &p.name.name) {
                    Some(v) => v,
                    None => return Val::Error,
                },
                None => v,
            };
            let key = match &v {
                Val::Ir { ty, .. } => ArgKey::Ir(*ty),
                Val::Const { value, dtype, .. } => {
                    let (tag, bits) = value.bits();
                    ArgKey::Const(*dtype, tag, bits)
                }
                Val::Func(f) => ArgKey::Func(f.clone()),
                Val::Error => return Val::Error,
                other => {
                    let d = Diagnostic::error(
                        "E0705",
                        format!("{} cannot be passed to a helper", self.describe(other)),
                        s,
                    );
                    return self.error(d);
                }
            };
            keys.push(key);
            coerced.push((v, s));
        }
        let cache_key = (name.to_string(), keys);
        let inst = match self.prog.instances_full.get(&cache_key) {
            Some(i) => i.clone(),
            None => {
                let i = self.instantiate(decl, &coerced, span);
                self.prog.instances_full.insert(cache_key, i.clone());
                i
            }
        };
        match inst {
            Instance::Failed => Val::Error,
            Instance::Consts(vs) => pack(vs),
            Instance::Func(fid, result_types) => {
                let call_args: Vec<Value> = coerced
                    .iter()
                    .filter_map(|(v, _)| match v {
                        Val::Ir { value, .. } => Some(*value),
                        _ => None,
                    })
                    .collect();
                let types: Vec<Type> = result_types.iter().map(|t| self.ty(*t)).collect();
                let results = self.emit(Op::Call { func: fid, args: call_args }, &types, span);
                let vals = results
                    .into_iter()
                    .zip(result_types)
                    .map(|(value, ty)| Val::Ir { value, ty, strength: Strength::Strong })
                    .collect();
                pack(vals)
            }
        }
    }

    fn check_param_type(
        &mut self,
        v: Val,
        span: Span,
        ty: &ast::TypeExpr,
        pname: &str,
    ) -> Option<Val> {
        if v.is_error() {
            return None;
        }
        let view = self.view(&v);
        match &ty.kind {
            // `x: f32` accepts any shape with that dtype (helpers are generic over shapes).
            ast::TypeExprKind::Named(_) => {
                let d = self.resolve_dtype_name(ty)?;
                let view = view?;
                if view.dtype() == Some(d) {
                    return Some(v);
                }
                if view.strength == Strength::Weak && !view.elem.is_ptr() {
                    return Some(self.cast_val(v, d, span));
                }
                let diag = Diagnostic::error(
                    "E0706",
                    format!(
                        "parameter `{pname}` expects `{d}` elements, but this argument is {}",
                        self.describe(&v)
                    ),
                    span,
                )
                .with_secondary(ty.span, "declared here")
                .with_help(format!("convert the argument with `as {d}`"));
                self.error(diag);
                None
            }
            _ => {
                let t = self.resolve_value_type(ty)?;
                let ok = view.as_ref().is_some_and(|w| w.elem == t.elem && w.shape == t.shape);
                if ok {
                    return Some(v);
                }
                let diag = Diagnostic::error(
                    "E0706",
                    format!(
                        "parameter `{pname}` expects `{t}`, but this argument is {}",
                        self.describe(&v)
                    ),
                    span,
                )
                .with_secondary(ty.span, "declared here");
                self.error(diag);
                None
            }
        }
    }

    fn instantiate(
        &mut self,
        decl: &ast::FuncDecl,
        args: &[(Val, Span)],
        call_span: Span,
    ) -> Instance {
        if self.prog.depth >= MAX_DEPTH {
            let d = Diagnostic::error(
                "E0707",
                format!("helper calls nest deeper than {MAX_DEPTH} levels"),
                call_span,
            )
            .with_note(format!(
                "`{}` probably calls itself; helpers are inlined, so recursion is not supported",
                decl.name.name
            ));
            self.error(d);
            return Instance::Failed;
        }
        let n_before = self.prog.diags.items.iter().filter(|d| d.is_error()).count();
        let mut func = Function::new(decl.name.name.clone(), FuncKind::Helper, decl.span);
        let mut bindings = Vec::new();
        for ((v, _), p) in args.iter().zip(&decl.params) {
            let val = match v {
                Val::Ir { ty, strength, .. } => {
                    let pv = func.add_param(p.name.name.clone(), *ty);
                    Val::Ir { value: pv, ty: *ty, strength: *strength }
                }
                other => other.clone(),
            };
            bindings.push((p.name.clone(), val));
        }
        self.prog.depth += 1;
        let (func, result) = {
            let mut sub = FnLower::new(self.prog, func);
            sub.call_site = Some(call_span);
            for cp in &decl.const_params {
                match &cp.default {
                    Some(e) => {
                        let v = sub.lower_expr(e);
                        sub.bind_val(&cp.name, v, false);
                    }
                    None => {
                        let d = Diagnostic::error("E0708", "compile-time parameters of a helper need a default", cp.span)
                            .with_help("pass the value as an ordinary argument instead; helpers are specialised per constant argument");
                        sub.error(d);
                        // Uses of the parameter in the body are not further errors.
                        sub.bind_val(&cp.name, Val::Error, false);
                    }
                }
            }
            for (name, val) in bindings {
                sub.bind(&name.name, Binding { val, mutable: false, span: name.span });
            }
            let body = &decl.body;
            let result = sub.with_scope(|this| this.lower_block_value(body));
            (sub.func, result)
        };
        self.prog.depth -= 1;
        let n_after = self.prog.diags.items.iter().filter(|d| d.is_error()).count();
        if n_after > n_before || result.is_error() {
            return Instance::Failed;
        }
        let results = match result {
            Val::Tuple(xs) => xs,
            Val::Unit => Vec::new(),
            other => vec![other],
        };
        let has_effects = func.walk().iter().any(|&op| func.op(op).op.has_side_effects());
        if !has_effects
            && !results.is_empty()
            && results.iter().all(|v| matches!(v, Val::Const { .. }))
        {
            return Instance::Consts(results);
        }
        let mut func = func;
        let mut values = Vec::new();
        let mut types = Vec::new();
        {
            let mut sub = FnLower::new(self.prog, func);
            for v in &results {
                match sub.materialize(v, decl.span) {
                    Some((x, t)) => {
                        values.push(x);
                        types.push(sub.intern(t));
                    }
                    None => {
                        let d = Diagnostic::error(
                            "E0709",
                            format!(
                                "a helper must return values, but this one returns {}",
                                sub.describe(v)
                            ),
                            decl.body.span,
                        );
                        sub.error(d);
                        return Instance::Failed;
                    }
                }
            }
            sub.emit(Op::Yield { values }, &[], decl.body.span);
            func = sub.func;
        }
        func.results = types.clone();
        let id = tk_ir::FuncId(self.prog.module.functions.len() as u32);
        func.name = unique_name(&self.prog.module, &decl.name.name);
        self.prog.module.functions.push(func);
        Instance::Func(id, types)
    }
}

fn pack(mut vals: Vec<Val>) -> Val {
    match vals.len() {
        0 => Val::Unit,
        1 => vals.pop().expect("one"),
        _ => Val::Tuple(vals),
    }
}

/// `gelu`, then `gelu.1`, `gelu.2`, ... for further instantiations.
fn unique_name(m: &tk_ir::Module, base: &str) -> String {
    if m.find(base).is_none() {
        return base.to_string();
    }
    (1..).map(|i| format!("{base}.{i}")).find(|n| m.find(n).is_none()).expect("unbounded")
}
