//! The builtin functions of the language (`load`, `exp`, `sum`, `dot`, `topk`, ...): argument
//! checking in the user's terms and lowering to IR ops. Each builtin's semantics are in the book's
//! language reference; the IR op docs in `tk_ir::ops` state the same rules.

use crate::lower::FnLower;
use crate::program::ItemRef;
use crate::val::{broadcast_shapes, promote, show_shape, Strength, TypeView, Val};
use tk_diag::{Diagnostic, Span};
use tk_ir::{
    AtomicOp, ConstValue, DType, DotPrecision, Elem, Op, ReduceKind, Type, UnaryOp, Value,
};
use tk_syntax::ast;

impl FnLower<'_, '_> {
    pub fn lower_call(&mut self, callee: &ast::Ident, args: &[ast::Arg], span: Span) -> Val {
        let name = callee.name.as_str();
        if self.lookup(name).is_none() {
            if let Some(ItemRef::Func(_)) = self.prog.items.get(name) {
                return self.call_helper_expr(callee, args, span);
            }
        }
        let unary = UnaryOp::from_name(name).filter(|op| op.float_only() || *op == UnaryOp::Abs);
        if let Some(op) = unary {
            let mut a = match self.bind_args(name, &["x"], args, span, false) {
                Some(a) => a,
                None => return Val::Error,
            };
            let (x, xs) = a.take(0).expect("required");
            return self.math_unary(op, name, x, xs, span);
        }
        match name {
            "program_id" | "num_programs" => {
                let Some(a) = self.bind_args(name, &["axis"], args, span, false) else {
                    return Val::Error;
                };
                let (v, s) = a.get(0).cloned().expect("required");
                let Some(axis) = self.const_int(&v, s, "the axis") else { return Val::Error };
                if !(0..=2).contains(&axis) {
                    let d = Diagnostic::error(
                        "E0510",
                        format!("grid axis must be 0, 1 or 2, not {axis}"),
                        s,
                    )
                    .with_label("out of range");
                    return self.error(d);
                }
                let op = if name == "program_id" {
                    Op::ProgramId { axis: axis as u8 }
                } else {
                    Op::NumPrograms { axis: axis as u8 }
                };
                let t = Type::scalar(DType::I32);
                let r = self.emit1(op, t.clone(), span);
                self.ir(r, t, Strength::Strong)
            }
            "arange" => {
                let Some(a) = self.bind_args(name, &["start", "end"], args, span, false) else {
                    return Val::Error;
                };
                let (sv, ss) = a.get(0).cloned().expect("required");
                let (ev, es) = a.get(1).cloned().expect("required");
                let (Some(start), Some(end)) = (
                    self.const_int(&sv, ss, "`arange` start"),
                    self.const_int(&ev, es, "`arange` end"),
                ) else {
                    return Val::Error;
                };
                if end <= start {
                    let d = Diagnostic::error(
                        "E0511",
                        format!("`arange({start}, {end})` is empty"),
                        span,
                    )
                    .with_label("end must be greater than start");
                    return self.error(d);
                }
                // Any two i64 bounds: the difference needs i128.
                let n = end as i128 - start as i128;
                if n > crate::lower::MAX_BLOCK_ELEMS as i128
                    || start < i32::MIN as i64
                    || end > i32::MAX as i64 + 1
                {
                    let d = Diagnostic::error(
                        "E0512",
                        format!("`arange({start}, {end})` is too large for a block"),
                        span,
                    );
                    return self.error(d);
                }
                let t = Type::block(DType::I32, vec![n as u32]);
                let r = self.emit1(Op::Arange { start, end }, t.clone(), span);
                self.ir(r, t, Strength::Strong)
            }
            "zeros" | "full" => {
                let params: &[&str] = if name == "zeros" {
                    &["shape", "dtype?"]
                } else {
                    &["shape", "value", "dtype?"]
                };
                let Some(mut a) = self.bind_args(name, params, args, span, false) else {
                    return Val::Error;
                };
                let (shv, shs) = a.take(0).expect("required");
                let Some(shape) = self.shape_arg(&shv, shs) else { return Val::Error };
                let dt_index = params.len() - 1;
                let dtype = match a.take(dt_index) {
                    Some((Val::DType(d), _)) => Some(d),
                    Some((other, s)) => {
                        let mut d = Diagnostic::error(
                            "E0513",
                            format!(
                                "`dtype` must be a type name such as `f32`, not {}",
                                self.describe(&other)
                            ),
                            s,
                        );
                        if let Val::Str(text) = &other {
                            if DType::from_name(text).is_some() {
                                d = d.with_help(format!("write the type without quotes: `{text}`"));
                            }
                        }
                        return self.error(d);
                    }
                    None => None,
                };
                let value = if name == "zeros" {
                    let d = dtype.unwrap_or(DType::F32);
                    Val::Const { value: zero_of(d), dtype: d, strength: Strength::Strong }
                } else {
                    let (v, vs) = a.take(1).expect("required");
                    let Some(view) = self.view(&v) else {
                        let d = Diagnostic::error(
                            "E0514",
                            format!("`full` needs a scalar value, not {}", self.describe(&v)),
                            vs,
                        );
                        return self.error(d);
                    };
                    if !view.shape.is_empty() || view.elem.is_ptr() {
                        let d = Diagnostic::error(
                            "E0514",
                            format!("`full` needs a scalar value, not `{}`", view.to_type()),
                            vs,
                        )
                        .with_help("use `broadcast_to(x, shape)` to repeat a block");
                        return self.error(d);
                    }
                    let d = dtype.unwrap_or(view.dtype().expect("scalar"));
                    let tgt = Type::scalar(d);
                    let Some(c) = self.coerce(v, &tgt, vs, "the fill value") else {
                        return Val::Error;
                    };
                    let t = Type::block(d, shape.clone());
                    if !self.check_shape(&shape, shs) {
                        return Val::Error;
                    }
                    let r = self.emit1(Op::Splat { value: c }, t.clone(), span);
                    return self.ir(r, t, Strength::Strong);
                };
                if !self.check_shape(&shape, shs) {
                    return Val::Error;
                }
                let Some((c, ct)) = self.materialize(&value, span) else { return Val::Error };
                let t = ct.with_shape(shape);
                let r = self.emit1(Op::Splat { value: c }, t.clone(), span);
                self.ir(r, t, Strength::Strong)
            }
            "load" => self.builtin_load(args, span),
            "store" => self.builtin_store(args, span),
            "atomic_add" | "atomic_max" | "atomic_min" | "atomic_xchg" | "atomic_cas" => {
                self.builtin_atomic(name, args, span)
            }
            "minimum" | "maximum" => {
                let Some(mut a) = self.bind_args(name, &["a", "b"], args, span, false) else {
                    return Val::Error;
                };
                let xs = vec![a.take(0).expect("required"), a.take(1).expect("required")];
                let Some((vals, dt, strength, shape)) = self.unify(name, xs, span) else {
                    return Val::Error;
                };
                if dt.is_bool() {
                    let d = Diagnostic::error(
                        "E0515",
                        format!("`{name}` needs numbers, not bools"),
                        span,
                    );
                    return self.error(d);
                }
                let op =
                    if name == "minimum" { tk_ir::BinaryOp::Min } else { tk_ir::BinaryOp::Max };
                let t = Type::block(dt, shape.clone());
                let r = self.emit1(Op::Binary { op, lhs: vals[0], rhs: vals[1] }, t.clone(), span);
                self.ir(r, t, strength)
            }
            "fma" => {
                let Some(mut a) = self.bind_args(name, &["a", "b", "c"], args, span, false) else {
                    return Val::Error;
                };
                let xs = vec![a.take(0).expect("a"), a.take(1).expect("b"), a.take(2).expect("c")];
                let Some((vals, dt, strength, shape)) = self.unify(name, xs, span) else {
                    return Val::Error;
                };
                if !dt.is_float() {
                    let d = Diagnostic::error(
                        "E0516",
                        format!("`fma` needs floating-point operands, not `{dt}`"),
                        span,
                    )
                    .with_help("write `a * b + c` for integers");
                    return self.error(d);
                }
                let t = Type::block(dt, shape);
                let r = self.emit1(Op::Fma { a: vals[0], b: vals[1], c: vals[2] }, t.clone(), span);
                self.ir(r, t, strength)
            }
            "where" => {
                let Some(mut a) = self.bind_args(name, &["cond", "a", "b"], args, span, false)
                else {
                    return Val::Error;
                };
                let (cv, cs) = a.take(0).expect("cond");
                let Some(cview) = self.view(&cv) else {
                    return self.not_a_value(&cv, cs, "the condition");
                };
                if cview.dtype() != Some(DType::Bool) {
                    let d = Diagnostic::error(
                        "E0517",
                        format!("the condition of `where` must be bool, not `{}`", cview.to_type()),
                        cs,
                    )
                    .with_help("compare explicitly, e.g. `x > 0`");
                    return self.error(d);
                }
                let xs = vec![a.take(1).expect("a"), a.take(2).expect("b")];
                let Some((vals, dt, strength, shape)) =
                    self.unify_with_shape(name, xs, &cview.shape, span)
                else {
                    return Val::Error;
                };
                let ct = Type::block(DType::Bool, shape.clone());
                let Some(c) = self.coerce(cv, &ct, cs, "the condition") else { return Val::Error };
                let t = Type::block(dt, shape);
                let r = self.emit1(
                    Op::Select { cond: c, on_true: vals[0], on_false: vals[1] },
                    t.clone(),
                    span,
                );
                self.ir(r, t, strength)
            }
            "sum" | "max" | "min" | "argmax" | "argmin" => self.builtin_reduce(name, args, span),
            "reduce" | "scan" => self.builtin_reduce_with(name, args, span),
            "cumsum" => {
                let Some(mut a) =
                    self.bind_args(name, &["x", "axis?", "reverse?"], args, span, false)
                else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
                let Some(axis) = self.axis_arg(a.take(1), t.rank(), span, name) else {
                    return Val::Error;
                };
                let reverse = match a.take(2) {
                    Some((rv, rs)) => match self.const_bool(&rv, rs, "`reverse`") {
                        Some(b) => b,
                        None => return Val::Error,
                    },
                    None => false,
                };
                if t.elem.dtype().is_some_and(|d| d.is_bool()) {
                    let d = Diagnostic::error("E0518", "`cumsum` needs numbers, not bools", xs)
                        .with_help("convert with `as i32` first");
                    return self.error(d);
                }
                let r = self.emit1(Op::Cumsum { axis, value: v, reverse }, t.clone(), span);
                self.ir(r, t, Strength::Strong)
            }
            "topk" => {
                let Some(mut a) = self.bind_args(name, &["x", "k"], args, span, false) else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let (kv, ks) = a.take(1).expect("k");
                let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
                let Some(k) = self.const_int(&kv, ks, "`k`") else { return Val::Error };
                let last = *t.shape.last().expect("block") as i64;
                if k < 1 || k > last {
                    let d = Diagnostic::error(
                        "E0519",
                        format!("`k` = {k} is out of range for a last dimension of {last}"),
                        ks,
                    )
                    .with_label(format!("must be between 1 and {last}"));
                    return self.error(d);
                }
                if t.elem.dtype().is_some_and(|d| d.is_bool()) || t.elem.is_ptr() {
                    let d =
                        Diagnostic::error("E0520", format!("`topk` needs numbers, not `{t}`"), xs);
                    return self.error(d);
                }
                let mut shape = t.shape.clone();
                *shape.last_mut().expect("block") = k as u32;
                let vt = t.with_shape(shape.clone());
                let it = Type::block(DType::I32, shape);
                let rs =
                    self.emit(Op::TopK { value: v, k: k as u32 }, &[vt.clone(), it.clone()], span);
                Val::Tuple(vec![
                    self.ir(rs[0], vt, Strength::Strong),
                    self.ir(rs[1], it, Strength::Strong),
                ])
            }
            "sort" => {
                let Some(mut a) = self.bind_args(name, &["x", "descending?"], args, span, false)
                else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
                let descending = match a.take(1) {
                    Some((dv, ds)) => match self.const_bool(&dv, ds, "`descending`") {
                        Some(b) => b,
                        None => return Val::Error,
                    },
                    None => false,
                };
                // The IR's `sort` takes numbers only, as `topk` does.
                if t.elem.is_ptr() || t.elem.dtype().is_some_and(|d| d.is_bool()) {
                    let d =
                        Diagnostic::error("E0520", format!("`sort` needs numbers, not `{t}`"), xs);
                    return self.error(d);
                }
                let it = Type::block(DType::I32, t.shape.clone());
                let rs =
                    self.emit(Op::Sort { value: v, descending }, &[t.clone(), it.clone()], span);
                Val::Tuple(vec![
                    self.ir(rs[0], t, Strength::Strong),
                    self.ir(rs[1], it, Strength::Strong),
                ])
            }
            "histogram" => {
                let Some(mut a) = self.bind_args(name, &["x", "bins", "mask?"], args, span, false)
                else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let (bv, bs) = a.take(1).expect("bins");
                let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
                if !t.elem.dtype().is_some_and(|d| d.is_int()) {
                    let d = Diagnostic::error(
                        "E0521",
                        format!("`histogram` counts integers, but this is `{t}`"),
                        xs,
                    )
                    .with_help("convert bin indices with `as i32`");
                    return self.error(d);
                }
                let Some(bins) = self.const_int(&bv, bs, "`bins`") else { return Val::Error };
                if bins < 1 || bins > crate::lower::MAX_BLOCK_ELEMS as i64 {
                    let d = Diagnostic::error(
                        "E0522",
                        format!("`bins` must be at least 1, not {bins}"),
                        bs,
                    );
                    return self.error(d);
                }
                let mask = match a.take(2) {
                    Some((mv, ms)) => match self.coerce(
                        mv,
                        &Type::block(DType::Bool, t.shape.clone()),
                        ms,
                        "the mask",
                    ) {
                        Some(m) => Some(m),
                        None => return Val::Error,
                    },
                    None => None,
                };
                let rt = Type::block(DType::I32, vec![bins as u32]);
                let r = self.emit1(
                    Op::Histogram { value: v, bins: bins as u32, mask },
                    rt.clone(),
                    span,
                );
                self.ir(r, rt, Strength::Strong)
            }
            "dot" => self.builtin_dot(args, span),
            "reshape" | "broadcast_to" => {
                let Some(mut a) = self.bind_args(name, &["x", "shape"], args, span, false) else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let (sv, ss) = a.take(1).expect("shape");
                let Some(shape) = self.shape_arg(&sv, ss) else { return Val::Error };
                if !self.check_shape(&shape, ss) {
                    return Val::Error;
                }
                let Some(view) = self.view(&x) else {
                    return self.not_a_value(&x, xs, "the input");
                };
                let Some((v, t)) = self.materialize(&x, xs) else { return Val::Error };
                if name == "reshape" {
                    let n: u64 = shape.iter().map(|&d| d as u64).product();
                    if n != t.numel() {
                        let d = Diagnostic::error(
                            "E0523",
                            format!(
                                "cannot reshape `{t}` ({} elements) to {} ({n} elements)",
                                t.numel(),
                                show_shape(&shape)
                            ),
                            span,
                        )
                        .with_label("element counts differ");
                        return self.error(d);
                    }
                    let nt = t.with_shape(shape);
                    let r = if t.is_scalar() {
                        self.emit1(Op::Splat { value: v }, nt.clone(), span)
                    } else {
                        self.emit1(Op::Reshape { value: v }, nt.clone(), span)
                    };
                    return self.ir(r, nt, view.strength);
                }
                if broadcast_shapes(&t.shape, &shape).as_deref() != Some(&shape[..]) {
                    let d = Diagnostic::error(
                        "E0524",
                        format!("cannot broadcast `{t}` to {}", show_shape(&shape)),
                        span,
                    )
                    .with_note("each dimension, aligned from the right, must be equal or 1");
                    return self.error(d);
                }
                let r = self.broadcast_value(v, &t, &shape, span);
                self.ir(r, t.with_shape(shape), view.strength)
            }
            "trans" | "permute" => {
                let params: &[&str] = if name == "trans" { &["x"] } else { &["x", "dims"] };
                let Some(mut a) = self.bind_args(name, params, args, span, false) else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
                let perm: Vec<u8> = if name == "trans" {
                    if t.rank() < 2 {
                        let d = Diagnostic::error(
                            "E0525",
                            format!(
                                "`trans` needs at least 2 dimensions, but `{t}` has {}",
                                t.rank()
                            ),
                            xs,
                        )
                        .with_help("add a dimension first with `x[:, None]`");
                        return self.error(d);
                    }
                    let mut p: Vec<u8> = (0..t.rank() as u8).collect();
                    let n = p.len();
                    p.swap(n - 1, n - 2);
                    p
                } else {
                    let (pv, ps) = a.take(1).expect("dims");
                    let Some(dims) = self.shape_arg(&pv, ps) else { return Val::Error };
                    let mut seen = vec![false; t.rank()];
                    let valid = dims.len() == t.rank()
                        && dims.iter().all(|&d| {
                            (d as usize) < t.rank()
                                && !std::mem::replace(&mut seen[d as usize], true)
                        });
                    if !valid {
                        let d = Diagnostic::error(
                            "E0526",
                            format!(
                                "{} is not a permutation of the {} dimensions of `{t}`",
                                show_shape(&dims),
                                t.rank()
                            ),
                            ps,
                        );
                        return self.error(d);
                    }
                    dims.iter().map(|&d| d as u8).collect()
                };
                let shape: Vec<u32> = perm.iter().map(|&p| t.shape[p as usize]).collect();
                let nt = t.with_shape(shape);
                let r = self.emit1(Op::Permute { value: v, perm }, nt.clone(), span);
                self.ir(r, nt, Strength::Strong)
            }
            "expand_dims" => {
                let Some(mut a) = self.bind_args(name, &["x", "axis"], args, span, false) else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("x");
                let (av, as_) = a.take(1).expect("axis");
                let Some(view) = self.view(&x) else {
                    return self.not_a_value(&x, xs, "the input");
                };
                let Some(axis) = self.const_int(&av, as_, "the axis") else { return Val::Error };
                if axis < 0 || axis as usize > view.shape.len() {
                    let d = Diagnostic::error(
                        "E0527",
                        format!(
                            "axis {axis} is out of range for inserting into `{}`",
                            view.to_type()
                        ),
                        as_,
                    );
                    return self.error(d);
                }
                let Some((v, t)) = self.materialize(&x, xs) else { return Val::Error };
                let mut shape = t.shape.clone();
                shape.insert(axis as usize, 1);
                if !self.check_shape(&shape, span) {
                    return Val::Error;
                }
                let nt = t.with_shape(shape);
                let r = self.emit1(Op::ExpandDims { value: v, axis: axis as u8 }, nt.clone(), span);
                self.ir(r, nt, view.strength)
            }
            "cdiv" => {
                let Some(mut a) = self.bind_args(name, &["a", "b"], args, span, false) else {
                    return Val::Error;
                };
                let (x, xs) = a.take(0).expect("a");
                let (y, ys) = a.take(1).expect("b");
                // (a + b - 1) / b, written with the ordinary operators so every rule applies.
                use tk_syntax::ast::BinOp;
                let one = Val::Const {
                    value: ConstValue::Int(1),
                    dtype: DType::I32,
                    strength: Strength::Weak,
                };
                let s = self.lower_binary(BinOp::Add, x, y.clone(), span, xs, ys);
                let s = self.lower_binary(BinOp::Sub, s, one, span, span, span);
                self.lower_binary(BinOp::Div, s, y, span, span, ys)
            }
            "multiple_of" => self.builtin_multiple_of(args, span),
            "static_assert" => {
                let Some(mut a) = self.bind_args(name, &["cond", "message?"], args, span, false)
                else {
                    return Val::Error;
                };
                let (cv, cs) = a.take(0).expect("cond");
                let msg = match a.take(1) {
                    Some((Val::Str(s), _)) => s,
                    Some((_, s)) => {
                        let d =
                            Diagnostic::error("E0528", "the message must be a string literal", s);
                        return self.error(d);
                    }
                    None => "static assertion failed".to_string(),
                };
                match cv {
                    Val::Const { value: ConstValue::Bool(true), .. } => Val::Unit,
                    Val::Const { value: ConstValue::Bool(false), .. } => {
                        let d = Diagnostic::error(
                            "E0529",
                            format!("static assertion failed: {msg}"),
                            cs,
                        )
                        .with_label("this is false");
                        self.error(d)
                    }
                    Val::Error => Val::Error,
                    Val::Ir { ty, .. } => {
                        let t = self.ty(ty);
                        let d = Diagnostic::error(
                            "E0530",
                            "`static_assert` needs a condition known at compile time",
                            cs,
                        )
                        .with_label(format!("this `{t}` is only known at run time"))
                        .with_help("use `device_assert` for conditions known only at run time");
                        self.error(d)
                    }
                    other => {
                        let d = Diagnostic::error(
                            "E0530",
                            format!(
                                "`static_assert` needs a `bool` condition, but this is {}",
                                self.describe(&other)
                            ),
                            cs,
                        )
                        .with_help("compare explicitly, e.g. `BLOCK % 16 == 0`");
                        self.error(d)
                    }
                }
            }
            "device_assert" => {
                let Some(mut a) = self.bind_args(name, &["cond", "message?"], args, span, false)
                else {
                    return Val::Error;
                };
                let (cv, cs) = a.take(0).expect("cond");
                let message = match a.take(1) {
                    Some((Val::Str(s), _)) => s,
                    Some((_, s)) => {
                        let d =
                            Diagnostic::error("E0528", "the message must be a string literal", s);
                        return self.error(d);
                    }
                    None => "device assertion failed".to_string(),
                };
                let Some(view) = self.view(&cv) else {
                    return self.not_a_value(&cv, cs, "the condition");
                };
                if view.dtype() != Some(DType::Bool) {
                    let d = Diagnostic::error(
                        "E0531",
                        format!("`device_assert` needs a bool condition, not `{}`", view.to_type()),
                        cs,
                    );
                    return self.error(d);
                }
                let Some((c, _)) = self.materialize(&cv, cs) else { return Val::Error };
                self.emit(Op::DeviceAssert { cond: c, message }, &[], span);
                Val::Unit
            }
            "print" => {
                let Some(mut a) = self.bind_args(name, &["prefix"], args, span, true) else {
                    return Val::Error;
                };
                let prefix = match a.take(0) {
                    Some((Val::Str(s), _)) => s,
                    Some((_, s)) => {
                        let d = Diagnostic::error(
                            "E0528",
                            "the first argument of `print` must be a string literal",
                            s,
                        )
                        .with_help("write `print(\"x =\", x)`");
                        return self.error(d);
                    }
                    None => unreachable!("prefix is required"),
                };
                let mut values = Vec::new();
                for (v, s) in std::mem::take(&mut a.rest) {
                    let Some((x, _)) = self.expect_value(&v, s, "a printed argument") else {
                        return Val::Error;
                    };
                    values.push(x);
                }
                self.emit(Op::Print { prefix, values }, &[], span);
                Val::Unit
            }
            _ => {
                if let Some(b) = self.lookup(name) {
                    let d = Diagnostic::error(
                        "E0532",
                        format!("`{name}` is a variable, not a function"),
                        callee.span,
                    )
                    .with_secondary(b.span, "defined here");
                    return self.error(d);
                }
                let mut d = Diagnostic::error(
                    "E0533",
                    format!("cannot find function `{name}`"),
                    callee.span,
                )
                .with_label("unknown function");
                let best = crate::program::BUILTINS
                    .iter()
                    .map(|s| s.to_string())
                    .chain(self.prog.items.keys().cloned())
                    .min_by_key(|c| crate::expr::edit_distance(c, name));
                if let Some(b) = best {
                    if crate::expr::edit_distance(&b, name) <= 2 {
                        d = d.with_help(format!("did you mean `{b}`?"));
                    }
                }
                self.error(d)
            }
        }
    }

    // ---- argument helpers ---------------------------------------------------------------------

    pub fn not_a_value(&mut self, v: &Val, span: Span, what: &str) -> Val {
        if v.is_error() {
            return Val::Error;
        }
        let d = Diagnostic::error(
            "E0401",
            format!("{what} must be a value, but this is {}", self.describe(v)),
            span,
        )
        .with_label("not a value");
        self.error(d)
    }

    /// A compile-time integer (axis, size, k).
    pub fn const_int(&mut self, v: &Val, span: Span, what: &str) -> Option<i64> {
        match v {
            Val::Const { value: ConstValue::Int(i), dtype, .. } if dtype.is_int() => Some(*i),
            Val::Error => None,
            Val::Ir { .. } => {
                let d = Diagnostic::error(
                    "E0534",
                    format!("{what} must be known at compile time"),
                    span,
                )
                .with_label("this is a run-time value")
                .with_help(
                    "use a literal, a `const`, or a compile-time parameter such as `<BLOCK: i32>`",
                );
                self.error(d);
                None
            }
            other => {
                let d = Diagnostic::error(
                    "E0535",
                    format!("{what} must be an integer, but this is {}", self.describe(other)),
                    span,
                );
                self.error(d);
                None
            }
        }
    }

    pub fn const_bool(&mut self, v: &Val, span: Span, what: &str) -> Option<bool> {
        match v {
            Val::Const { value: ConstValue::Bool(b), .. } => Some(*b),
            Val::Error => None,
            other => {
                let d = Diagnostic::error(
                    "E0536",
                    format!(
                        "{what} must be `true` or `false` known at compile time, but this is {}",
                        self.describe(other)
                    ),
                    span,
                );
                self.error(d);
                None
            }
        }
    }

    /// A shape list `[a, b]` of compile-time positive integers.
    pub fn shape_arg(&mut self, v: &Val, span: Span) -> Option<Vec<u32>> {
        let items = match v {
            Val::List(items) => items.clone(),
            Val::Error => return None,
            Val::Const { .. } => vec![(v.clone(), span)],
            other => {
                let d = Diagnostic::error(
                    "E0537",
                    format!(
                        "expected a shape list such as `[16, 32]`, found {}",
                        self.describe(other)
                    ),
                    span,
                );
                self.error(d);
                return None;
            }
        };
        let mut out = Vec::new();
        for (x, s) in items {
            let n = self.const_int(&x, s, "a shape dimension")?;
            if n < 0 || n > u32::MAX as i64 {
                let d =
                    Diagnostic::error("E0538", format!("shape dimension {n} is out of range"), s);
                self.error(d);
                return None;
            }
            out.push(n as u32);
        }
        Some(out)
    }

    /// A block (rank >= 1) argument, materialised.
    fn block_arg(&mut self, v: &Val, span: Span, fname: &str) -> Option<(Value, Type)> {
        let view = match self.view(v) {
            Some(x) => x,
            None => {
                self.not_a_value(v, span, "the input");
                return None;
            }
        };
        if view.shape.is_empty() {
            let d = Diagnostic::error(
                "E0539",
                format!("`{fname}` needs a block, but this is the scalar `{}`", view.to_type()),
                span,
            )
            .with_help(
                "blocks come from `arange`, `zeros`, `full` or loads through pointer blocks",
            );
            self.error(d);
            return None;
        }
        self.materialize(v, span)
    }

    /// The `axis` argument of a reduction or scan: defaults to 0 for rank-1 blocks, required otherwise.
    fn axis_arg(
        &mut self,
        arg: Option<(Val, Span)>,
        rank: usize,
        call_span: Span,
        fname: &str,
    ) -> Option<u8> {
        match arg {
            None if rank == 1 => Some(0),
            None => {
                let d = Diagnostic::error(
                    "E0540",
                    format!("`{fname}` of a rank-{rank} block needs an axis"),
                    call_span,
                )
                .with_help(format!("write e.g. `{fname}(x, axis: {})`", rank - 1));
                self.error(d);
                None
            }
            Some((v, s)) => {
                let written = self.const_int(&v, s, "the axis")?;
                let a = if written < 0 { written.saturating_add(rank as i64) } else { written };
                if a < 0 || a as usize >= rank {
                    let d = Diagnostic::error(
                        "E0541",
                        format!("axis {written} is out of range for a block of rank {rank}"),
                        s,
                    )
                    .with_label(format!("must be in 0..{rank}"));
                    self.error(d);
                    return None;
                }
                Some(a as u8)
            }
        }
    }

    /// Promotes several element-wise operands to one dtype and broadcasts them to one shape.
    fn unify(
        &mut self,
        fname: &str,
        xs: Vec<(Val, Span)>,
        span: Span,
    ) -> Option<(Vec<Value>, DType, Strength, Vec<u32>)> {
        self.unify_with_shape(fname, xs, &[], span)
    }

    fn unify_with_shape(
        &mut self,
        fname: &str,
        xs: Vec<(Val, Span)>,
        extra_shape: &[u32],
        span: Span,
    ) -> Option<(Vec<Value>, DType, Strength, Vec<u32>)> {
        let mut views: Vec<TypeView> = Vec::new();
        for (v, s) in &xs {
            match self.view(v) {
                Some(w) if !w.elem.is_ptr() => views.push(w),
                Some(w) => {
                    let d = Diagnostic::error(
                        "E0542",
                        format!("`{fname}` needs numbers, not the pointer `{}`", w.to_type()),
                        *s,
                    );
                    self.error(d);
                    return None;
                }
                None => {
                    self.not_a_value(v, *s, "an operand");
                    return None;
                }
            }
        }
        let mut shape = extra_shape.to_vec();
        let (mut dt, mut st) = (views[0].dtype().expect("scalar elem"), views[0].strength);
        for w in &views {
            shape = match broadcast_shapes(&shape, &w.shape) {
                Some(s) => s,
                None => {
                    let shapes: Vec<String> =
                        views.iter().map(|w| format!("`{}`", w.to_type())).collect();
                    let d = Diagnostic::error(
                        "E0421",
                        format!(
                            "cannot broadcast the operands of `{fname}`: {}",
                            shapes.join(", ")
                        ),
                        span,
                    )
                    .with_help("use `x[:, None]` or `x[None, :]` to add a dimension");
                    self.error(d);
                    return None;
                }
            };
        }
        for w in &views[1..] {
            match promote(dt, st, w.dtype().expect("scalar elem"), w.strength) {
                Ok((d, s)) => {
                    dt = d;
                    st = s;
                }
                Err(_) => {
                    let d = Diagnostic::error(
                        "E0422",
                        format!("`{fname}` mixes signed and unsigned integers"),
                        span,
                    )
                    .with_help("convert one operand explicitly with `as`");
                    self.error(d);
                    return None;
                }
            }
        }
        let target = Type::block(dt, shape.clone());
        let mut out = Vec::new();
        for (v, s) in xs {
            let v = if self.view(&v).and_then(|w| w.dtype()) != Some(dt) {
                self.cast_val(v, dt, s)
            } else {
                v
            };
            let (x, t) = self.materialize(&v, s)?;
            out.push(self.broadcast_value(x, &t, &target.shape, s));
        }
        Some((out, dt, st, shape))
    }

    fn math_unary(&mut self, op: UnaryOp, name: &str, x: Val, xs: Span, span: Span) -> Val {
        let Some(view) = self.view(&x) else { return self.not_a_value(&x, xs, "the argument") };
        let dt = match view.elem {
            Elem::Scalar(d) => d,
            Elem::Ptr(_) => {
                let d = Diagnostic::error(
                    "E0543",
                    format!("`{name}` needs numbers, not the pointer `{}`", view.to_type()),
                    xs,
                )
                .with_help("load the values first with `load(ptr)`");
                return self.error(d);
            }
        };
        if op.float_only() && !dt.is_float() {
            if view.strength == Strength::Weak {
                let x = self.cast_val(x, DType::F32, xs);
                let v = self.view(&x).expect("value");
                return self.apply_unary(op, x, TypeView { strength: Strength::Weak, ..v }, span);
            }
            let d = Diagnostic::error(
                "E0544",
                format!(
                    "`{name}` is defined on floating-point values, but this is `{}`",
                    view.to_type()
                ),
                xs,
            )
            .with_label(format!("`{}`", view.to_type()))
            .with_help(format!("convert first: `{name}(x as f32)`"));
            return self.error(d);
        }
        if op == UnaryOp::Abs && dt.is_bool() {
            let d = Diagnostic::error("E0544", "`abs` is not defined on bools", xs);
            return self.error(d);
        }
        self.apply_unary(op, x, view, span)
    }

    fn builtin_load(&mut self, args: &[ast::Arg], span: Span) -> Val {
        let Some(mut a) = self.bind_args("load", &["ptr", "mask?", "other?"], args, span, false)
        else {
            return Val::Error;
        };
        let (p, ps) = a.take(0).expect("ptr");
        let Some((pv, pt)) = self.pointer_arg(&p, ps, "load") else { return Val::Error };
        let Elem::Ptr(dt) = pt.elem else { unreachable!("pointer_arg checks") };
        let mask = match a.take(1) {
            Some((m, ms)) => match self.coerce_mask(m, &pt.shape, ms) {
                Some(m) => Some(m),
                None => return Val::Error,
            },
            None => None,
        };
        let other = match a.take(2) {
            Some((o, os)) => {
                match self.coerce(o, &Type::block(dt, pt.shape.clone()), os, "`other`") {
                    Some(o) => Some(o),
                    None => return Val::Error,
                }
            }
            None => None,
        };
        let t = Type::block(dt, pt.shape.clone());
        let r = self.emit1(Op::Load { ptr: pv, mask, other }, t.clone(), span);
        self.ir(r, t, Strength::Strong)
    }

    fn builtin_store(&mut self, args: &[ast::Arg], span: Span) -> Val {
        let Some(mut a) = self.bind_args("store", &["ptr", "value", "mask?"], args, span, false)
        else {
            return Val::Error;
        };
        let (p, ps) = a.take(0).expect("ptr");
        let (v, vs) = a.take(1).expect("value");
        let Some((pv, pt)) = self.pointer_arg(&p, ps, "store") else { return Val::Error };
        let Elem::Ptr(dt) = pt.elem else { unreachable!("pointer_arg checks") };
        let Some(val) = self.coerce(v, &Type::block(dt, pt.shape.clone()), vs, "the stored value")
        else {
            return Val::Error;
        };
        let mask = match a.take(2) {
            Some((m, ms)) => match self.coerce_mask(m, &pt.shape, ms) {
                Some(m) => Some(m),
                None => return Val::Error,
            },
            None => None,
        };
        self.emit(Op::Store { ptr: pv, value: val, mask }, &[], span);
        Val::Unit
    }

    fn builtin_atomic(&mut self, name: &str, args: &[ast::Arg], span: Span) -> Val {
        let is_cas = name == "atomic_cas";
        let params: &[&str] =
            if is_cas { &["ptr", "cmp", "value", "mask?"] } else { &["ptr", "value", "mask?"] };
        let Some(mut a) = self.bind_args(name, params, args, span, false) else {
            return Val::Error;
        };
        let (p, ps) = a.take(0).expect("ptr");
        let Some((pv, pt)) = self.pointer_arg(&p, ps, name) else { return Val::Error };
        let Elem::Ptr(dt) = pt.elem else { unreachable!("pointer_arg checks") };
        if dt.is_bool()
            || dt.bits() < 32 && !(name == "atomic_add" && matches!(dt, DType::F16 | DType::BF16))
        {
            let d = Diagnostic::error(
                "E0545",
                format!("`{name}` is not available on `{dt}` elements"),
                ps,
            )
            .with_note(
                "atomics work on 32- and 64-bit integers and floats (and f16/bf16 for atomic_add)",
            );
            return self.error(d);
        }
        let vt = Type::block(dt, pt.shape.clone());
        let mut n = 1;
        let cmp = if is_cas {
            n = 2;
            let (c, cs) = a.take(1).expect("cmp");
            match self.coerce(c, &vt, cs, "the compared value") {
                Some(c) => Some(c),
                None => return Val::Error,
            }
        } else {
            None
        };
        let (v, vs) = a.take(n).expect("value");
        let Some(val) = self.coerce(v, &vt, vs, "the value") else { return Val::Error };
        let mask = match a.take(n + 1) {
            Some((m, ms)) => match self.coerce_mask(m, &pt.shape, ms) {
                Some(m) => Some(m),
                None => return Val::Error,
            },
            None => None,
        };
        let op = match name {
            "atomic_add" => Op::Atomic { op: AtomicOp::Add, ptr: pv, value: val, mask },
            "atomic_max" => Op::Atomic { op: AtomicOp::Max, ptr: pv, value: val, mask },
            "atomic_min" => Op::Atomic { op: AtomicOp::Min, ptr: pv, value: val, mask },
            "atomic_xchg" => Op::Atomic { op: AtomicOp::Xchg, ptr: pv, value: val, mask },
            _ => Op::AtomicCas { ptr: pv, cmp: cmp.expect("cas"), value: val, mask },
        };
        let r = self.emit1(op, vt.clone(), span);
        self.ir(r, vt, Strength::Strong)
    }

    fn pointer_arg(&mut self, p: &Val, span: Span, fname: &str) -> Option<(Value, Type)> {
        let view = match self.view(p) {
            Some(v) => v,
            None => {
                self.not_a_value(p, span, "the pointer");
                return None;
            }
        };
        if !view.elem.is_ptr() {
            let d = Diagnostic::error(
                "E0546",
                format!("`{fname}` needs a pointer, but this is `{}`", view.to_type()),
                span,
            )
            .with_label("not a pointer")
            .with_help("pass a pointer parameter plus offsets, e.g. `x + offsets`");
            self.error(d);
            return None;
        }
        self.materialize(p, span)
    }

    fn coerce_mask(&mut self, m: Val, shape: &[u32], span: Span) -> Option<Value> {
        let view = match self.view(&m) {
            Some(v) => v,
            None => {
                self.not_a_value(&m, span, "the mask");
                return None;
            }
        };
        if view.dtype() != Some(DType::Bool) {
            let d = Diagnostic::error(
                "E0547",
                format!("a mask must be bool, but this is `{}`", view.to_type()),
                span,
            )
            .with_label("not bool")
            .with_help("build masks with comparisons, e.g. `offs < n`");
            self.error(d);
            return None;
        }
        self.coerce(m, &Type::block(DType::Bool, shape.to_vec()), span, "the mask")
    }

    fn builtin_reduce(&mut self, name: &str, args: &[ast::Arg], span: Span) -> Val {
        if (name == "max" || name == "min")
            && args.len() == 2
            && args.iter().all(|a| a.name.is_none())
        {
            // `max(a, b)` reads like the element-wise maximum; say so instead of a confusing axis error.
            let second = &args[1].value;
            if !matches!(second.kind, tk_syntax::ast::ExprKind::Int(_)) {
                let d = Diagnostic::error(
                    "E0548",
                    format!("`{name}` reduces one block along an axis"),
                    span,
                )
                .with_help(format!(
                    "for the element-wise {name} of two values use `{}imum(a, b)`",
                    name
                ));
                return self.error(d);
            }
        }
        let Some(mut a) = self.bind_args(name, &["x", "axis?", "keep_dims?"], args, span, false)
        else {
            return Val::Error;
        };
        let (x, xs) = a.take(0).expect("x");
        let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
        let Some(axis) = self.axis_arg(a.take(1), t.rank(), span, name) else { return Val::Error };
        let keep = match a.take(2) {
            Some((kv, ks)) => match self.const_bool(&kv, ks, "`keep_dims`") {
                Some(b) => b,
                None => return Val::Error,
            },
            None => false,
        };
        let dt = match t.elem {
            Elem::Scalar(d) if !d.is_bool() => d,
            _ => {
                let d = Diagnostic::error(
                    "E0549",
                    format!("`{name}` needs numbers, but this is `{t}`"),
                    xs,
                )
                .with_help("convert bools with `as i32` first");
                return self.error(d);
            }
        };
        let kind = ReduceKind::from_name(name).expect("reduction name");
        let rdt =
            if matches!(kind, ReduceKind::Argmax | ReduceKind::Argmin) { DType::I32 } else { dt };
        let mut shape = t.shape.clone();
        shape.remove(axis as usize);
        let rt = Type::block(rdt, shape.clone());
        let mut r = self.emit1(Op::Reduce { kind, axis, value: v }, rt.clone(), span);
        let mut rt = rt;
        if keep {
            shape.insert(axis as usize, 1);
            let kt = Type::block(rdt, shape);
            r = if rt.is_scalar() {
                self.emit1(Op::Splat { value: r }, kt.clone(), span)
            } else {
                self.emit1(Op::ExpandDims { value: r, axis }, kt.clone(), span)
            };
            rt = kt;
        }
        self.ir(r, rt, Strength::Strong)
    }

    fn builtin_reduce_with(&mut self, name: &str, args: &[ast::Arg], span: Span) -> Val {
        let Some(mut a) = self.bind_args(name, &["x", "axis", "combine"], args, span, false) else {
            return Val::Error;
        };
        let (x, xs) = a.take(0).expect("x");
        let Some((v, t)) = self.block_arg(&x, xs, name) else { return Val::Error };
        let Some(axis) = self.axis_arg(a.take(1), t.rank(), span, name) else { return Val::Error };
        let (fv, fs) = a.take(2).expect("combine");
        let Val::Func(fname) = fv else {
            let d = Diagnostic::error(
                "E0550",
                format!("`combine` must name a helper `fn`, but this is {}", self.describe(&fv)),
                fs,
            )
            .with_help("define `fn add(a, b) { a + b }` and pass `combine: add`");
            return self.error(d);
        };
        let Elem::Scalar(dt) = t.elem else {
            let d = Diagnostic::error(
                "E0549",
                format!("`{name}` needs numbers, but this is `{t}`"),
                xs,
            );
            return self.error(d);
        };
        let st = self.intern(Type::scalar(dt));
        let region = self.func.new_region(&[st, st]);
        let region_args = self.func.region(region).args.clone();
        let ok = self.in_region(region, |this| {
            let a0 = Val::Ir { value: region_args[0], ty: st, strength: Strength::Strong };
            let a1 = Val::Ir { value: region_args[1], ty: st, strength: Strength::Strong };
            let r = this.call_helper_vals(&fname, vec![(a0, fs), (a1, fs)], fs);
            let y = this.coerce(r, &Type::scalar(dt), fs, "the combine result")?;
            this.emit(Op::Yield { values: vec![y] }, &[], span);
            Some(())
        });
        if ok.is_none() {
            return Val::Error;
        }
        let (op, rt) = if name == "reduce" {
            let mut shape = t.shape.clone();
            shape.remove(axis as usize);
            (Op::ReduceWith { axis, value: v, combine: region }, Type::block(dt, shape))
        } else {
            (Op::ScanWith { axis, value: v, combine: region }, t.clone())
        };
        let r = self.emit1(op, rt.clone(), span);
        self.ir(r, rt, Strength::Strong)
    }

    fn builtin_dot(&mut self, args: &[ast::Arg], span: Span) -> Val {
        let Some(mut a) =
            self.bind_args("dot", &["a", "b", "acc?", "precision?"], args, span, false)
        else {
            return Val::Error;
        };
        let (av, as_) = a.take(0).expect("a");
        let (bv, bs) = a.take(1).expect("b");
        let Some((x, xt)) = self.block_arg(&av, as_, "dot") else { return Val::Error };
        let Some((y, yt)) = self.block_arg(&bv, bs, "dot") else { return Val::Error };
        if xt.rank() != 2 || yt.rank() != 2 {
            let d = Diagnostic::error(
                "E0551",
                format!("`dot` multiplies 2-D blocks, but got `{xt}` and `{yt}`"),
                span,
            )
            .with_secondary(as_, format!("`{xt}`"))
            .with_secondary(bs, format!("`{yt}`"));
            return self.error(d);
        }
        let (m, k, k2, n) = (xt.shape[0], xt.shape[1], yt.shape[0], yt.shape[1]);
        if k != k2 {
            let d = Diagnostic::error("E0552", format!("`dot` inner dimensions differ: `{xt}` times `{yt}` ({k} vs {k2})"), span)
                .with_secondary(as_, format!("{k} columns"))
                .with_secondary(bs, format!("{k2} rows"))
                .with_help("the first block must be [M, K] and the second [K, N]; `trans(b)` swaps a block's dimensions");
            return self.error(d);
        }
        let (Elem::Scalar(da), Elem::Scalar(db)) = (xt.elem, yt.elem) else { return Val::Error };
        if da != db {
            let d = Diagnostic::error(
                "E0553",
                format!("`dot` inputs must have one dtype, got `{da}` and `{db}`"),
                span,
            )
            .with_help(format!("convert one with `as {da}`"));
            return self.error(d);
        }
        let acc_dt = match da {
            DType::F16 | DType::BF16 | DType::F32 => DType::F32,
            DType::I8 => DType::I32,
            _ => {
                let d = Diagnostic::error(
                    "E0554",
                    format!("`dot` supports f16, bf16, f32 and i8 inputs, not `{da}`"),
                    as_,
                )
                .with_help("convert the inputs with `as f32`");
                return self.error(d);
            }
        };
        let at = Type::block(acc_dt, vec![m, n]);
        let acc = match a.take(2) {
            Some((cv, cs)) => {
                let Some(view) = self.view(&cv) else {
                    return self.not_a_value(&cv, cs, "the accumulator");
                };
                if view.dtype() != Some(acc_dt) || view.shape != at.shape {
                    let d = Diagnostic::error(
                        "E0555",
                        format!("the accumulator must be `{at}`, but this is `{}`", view.to_type()),
                        cs,
                    )
                    .with_help(format!("start from `zeros([{m}, {n}], {acc_dt})`"));
                    return self.error(d);
                }
                let Some((c, _)) = self.materialize(&cv, cs) else { return Val::Error };
                c
            }
            None => {
                let z =
                    self.emit1(Op::Const { value: zero_of(acc_dt) }, Type::scalar(acc_dt), span);
                self.emit1(Op::Splat { value: z }, at.clone(), span)
            }
        };
        let precision = match a.take(3) {
            None => DotPrecision::Ieee,
            Some((Val::Str(s), ps)) => match s.as_str() {
                "ieee" => DotPrecision::Ieee,
                "tf32" => DotPrecision::Tf32,
                _ => {
                    let d = Diagnostic::error("E0556", format!("unknown precision \"{s}\""), ps)
                        .with_help("use \"ieee\" (default) or \"tf32\"");
                    return self.error(d);
                }
            },
            Some((_, ps)) => {
                let d = Diagnostic::error(
                    "E0556",
                    "`precision` must be the string \"ieee\" or \"tf32\"",
                    ps,
                );
                return self.error(d);
            }
        };
        let r = self.emit1(Op::Dot { a: x, b: y, acc, precision }, at.clone(), span);
        self.ir(r, at, Strength::Strong)
    }
}

impl FnLower<'_, '_> {
    /// `multiple_of(param, n)`: declares that an integer kernel parameter is a multiple of `n` at
    /// every launch. Backends use it (e.g. to prove row starts aligned for vector loads); the
    /// runtime refuses launches that break it, and the interpreter checks it as an assertion.
    fn builtin_multiple_of(&mut self, args: &[ast::Arg], span: Span) -> Val {
        let Some(mut a) = self.bind_args("multiple_of", &["x", "n"], args, span, false) else {
            return Val::Error;
        };
        let (x, xs) = a.take(0).expect("x");
        let (nv, ns) = a.take(1).expect("n");
        let Some(n) = self.const_int(&nv, ns, "the factor") else { return Val::Error };
        if n < 1 {
            let d = Diagnostic::error("E0557", format!("the factor must be positive, not {n}"), ns);
            return self.error(d);
        }
        let param = match &x {
            Val::Ir { value, .. } => match self.func.value(*value).def {
                tk_ir::ValueDef::Param(i) if self.func.kind == tk_ir::FuncKind::Kernel => Some(i),
                _ => None,
            },
            _ => None,
        };
        let Some(index) = param else {
            let d = Diagnostic::error("E0558", "`multiple_of` applies to integer parameters of a kernel", xs)
                .with_label("not a kernel parameter")
                .with_help("pass the parameter itself, e.g. `multiple_of(stride, 4)` at the start of the kernel");
            return self.error(d);
        };
        let Some(view) = self.view(&x) else { return Val::Error };
        if !view.shape.is_empty() || !view.dtype().is_some_and(|d| d.is_int()) {
            let d = Diagnostic::error(
                "E0559",
                format!("`multiple_of` needs an integer scalar, but this is `{}`", view.to_type()),
                xs,
            );
            return self.error(d);
        }
        self.func.param_multiples.push((index, n as u64));
        let pname = self.func.params[index as usize].name.clone();
        // The interpreter and CPU debug builds check the fact like any assertion.
        let nval =
            Val::Const { value: ConstValue::Int(n), dtype: DType::I32, strength: Strength::Weak };
        let zero =
            Val::Const { value: ConstValue::Int(0), dtype: DType::I32, strength: Strength::Weak };
        let rem = self.lower_binary(tk_syntax::ast::BinOp::Rem, x.clone(), nval, span, xs, ns);
        let ok = self.lower_binary(tk_syntax::ast::BinOp::Eq, rem, zero, span, span, span);
        if let Some((c, _)) = self.materialize(&ok, span) {
            let message =
                format!("`{pname}` must be a multiple of {n} (declared with multiple_of)");
            self.emit(Op::DeviceAssert { cond: c, message }, &[], span);
        }
        x
    }
}

/// The zero of a dtype as a constant.
pub fn zero_of(d: DType) -> ConstValue {
    if d.is_float() {
        ConstValue::Float(0.0)
    } else if d.is_bool() {
        ConstValue::Bool(false)
    } else {
        ConstValue::Int(0)
    }
}
