//! Lowering of a kernel: compile-time parameters (defaults and `-D` overrides), run-time
//! parameters (scalars and pointers only), and the body.

use crate::lower::{Binding, FnLower};
use crate::val::{Strength, Val};
use tk_diag::{Diagnostic, Span};
use tk_ir::{ConstValue, DType, Elem, FuncKind, Function, Op, Type};
use tk_syntax::ast;

impl FnLower<'_, '_> {
    /// Lowers kernel `decl` into `self.func` (which the caller created as a kernel).
    pub fn lower_kernel(&mut self, decl: &ast::FuncDecl) {
        for cp in &decl.const_params {
            let Some(dt) = self.resolve_dtype_name(&cp.ty) else { continue };
            let value = match self.prog.defines.get(&cp.name.name).cloned() {
                Some(text) => match parse_define(&text, dt) {
                    Some(v) => Some(v),
                    None => {
                        let d = Diagnostic::error(
                            "E0801",
                            format!("-D {}={text} is not a valid `{dt}`", cp.name.name),
                            cp.span,
                        )
                        .with_label(format!("declared as `{dt}` here"));
                        self.error(d);
                        None
                    }
                },
                None => match &cp.default {
                    Some(e) => {
                        let v = self.lower_expr(e);
                        match v {
                            Val::Const { .. } => self.cast_const(v, dt, e.span),
                            Val::Error => None,
                            other => {
                                let d = Diagnostic::error(
                                    "E0802",
                                    format!("the default of `{}` must be a compile-time constant, but this is {}", cp.name.name, self.describe(&other)),
                                    e.span,
                                );
                                self.error(d);
                                None
                            }
                        }
                    }
                    None => {
                        let d = Diagnostic::error(
                            "E0803",
                            format!("compile-time parameter `{}` has no value", cp.name.name),
                            cp.span,
                        )
                        .with_help(format!(
                            "give it a default (`{}: {dt} = 128`) or pass `-D {}=128`",
                            cp.name.name, cp.name.name
                        ));
                        self.error(d);
                        None
                    }
                },
            };
            let val = match value {
                Some(v) => {
                    self.func.constexprs.push((cp.name.name.clone(), v));
                    Val::Const { value: v, dtype: dt, strength: Strength::Strong }
                }
                None => Val::Error,
            };
            self.bind(&cp.name.name, Binding { val, mutable: false, span: cp.name.span });
        }
        for p in &decl.params {
            let Some(ty) = &p.ty else {
                let d = Diagnostic::error(
                    "E0804",
                    format!("kernel parameter `{}` needs a type", p.name.name),
                    p.span,
                )
                .with_help(format!(
                    "write e.g. `{}: *f32` for a buffer or `{}: i32` for a scalar",
                    p.name.name, p.name.name
                ));
                self.error(d);
                self.bind(
                    &p.name.name,
                    Binding { val: Val::Error, mutable: false, span: p.name.span },
                );
                continue;
            };
            let t = match &ty.kind {
                ast::TypeExprKind::Named(_) => self.resolve_dtype_name(ty).map(Type::scalar),
                ast::TypeExprKind::Ptr(inner) => self
                    .resolve_dtype_name(inner)
                    .map(|d| Type { elem: Elem::Ptr(d), shape: vec![] }),
                _ => {
                    let d = Diagnostic::error(
                        "E0805",
                        format!("kernel parameter `{}` must be a scalar or a pointer", p.name.name),
                        ty.span,
                    )
                    .with_help(
                        "pass blocks through memory: take a pointer `*f32` and `load` from it",
                    );
                    self.error(d);
                    None
                }
            };
            let val = match t {
                Some(t) => {
                    let id = self.intern(t);
                    let v = self.func.add_param(p.name.name.clone(), id);
                    Val::Ir { value: v, ty: id, strength: Strength::Strong }
                }
                None => Val::Error,
            };
            self.bind(&p.name.name, Binding { val, mutable: false, span: p.name.span });
        }
        if let Some(ret) = &decl.ret {
            let d = Diagnostic::error("E0806", "kernels do not return values", ret.span)
                .with_help("write results to memory with `store`");
            self.error(d);
        }
        let v = self.with_scope(|this| this.lower_block_value(&decl.body));
        if !matches!(v, Val::Unit | Val::Error) {
            let span = match (&decl.body.tail, decl.body.stmts.last()) {
                (Some(t), _) => t.span,
                (None, Some(s)) => s.span,
                (None, None) => decl.body.span,
            };
            let d = Diagnostic::error("E0806", "kernels do not return values", span)
                .with_help("write results to memory with `store`, or add `;`");
            self.error(d);
        }
        self.emit(Op::Yield { values: vec![] }, &[], decl.body.span);
    }

    fn cast_const(&mut self, v: Val, dt: DType, span: Span) -> Option<ConstValue> {
        let Val::Const { value, dtype, .. } = v else { return None };
        if dtype.is_float() && !dt.is_float() {
            let d = Diagnostic::error(
                "E0807",
                format!("this default is of type `{dtype}`, but the parameter is of type `{dt}`"),
                span,
            )
            .with_label(format!("`{dtype}`"))
            .with_help(if dt.is_bool() {
                "write `true` or `false`"
            } else {
                "write an integer, e.g. `128`"
            });
            self.error(d);
            return None;
        }
        Some(tk_ir::eval::cast(dtype, dt, value))
    }
}

/// Parses the text of `-D NAME=VALUE` as a value of `dt`.
pub fn parse_define(text: &str, dt: DType) -> Option<ConstValue> {
    let t = text.trim();
    if dt.is_bool() {
        return match t {
            "true" | "1" => Some(ConstValue::Bool(true)),
            "false" | "0" => Some(ConstValue::Bool(false)),
            _ => None,
        };
    }
    if dt.is_float() {
        let f: f64 = t.parse().ok()?;
        return Some(tk_ir::eval::cast(DType::F64, dt, ConstValue::Float(f)));
    }
    let cleaned = t.replace('_', "");
    let i: i128 = if let Some(h) = cleaned.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()?
    } else {
        cleaned.parse().ok()?
    };
    let bits = dt.bits();
    let (min, max) = if dt.is_signed_int() {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    } else {
        (0, (1i128 << bits) - 1)
    };
    if i < min || i > max {
        return None;
    }
    Some(ConstValue::Int(i as i64))
}

/// A fresh kernel function named after the declaration.
pub fn new_kernel(decl: &ast::FuncDecl) -> Function {
    Function::new(decl.name.name.clone(), FuncKind::Kernel, decl.span)
}
