//! Shared helpers for the parser tests: parsing with readable failures and a compact
//! S-expression rendering of the AST, so that expected shapes can be written by hand.

#![allow(dead_code)]

use tk_diag::{Diagnostic, FileId, Sources};
use tk_syntax::ast::*;

pub const FILE: FileId = FileId(0);

pub fn render(text: &str, diags: &[Diagnostic]) -> String {
    let mut sources = Sources::new();
    sources.add("test.tk", text);
    tk_diag::render_plain(&sources, diags)
}

/// Parses a file that must be valid.
pub fn parse_ok(text: &str) -> File {
    match tk_syntax::parse_file(FILE, text) {
        Ok(f) => f,
        Err(d) => panic!("unexpected errors:\n{}", render(text, &d)),
    }
}

/// Parses a file that must be invalid.
pub fn parse_err(text: &str) -> Vec<Diagnostic> {
    match tk_syntax::parse_file(FILE, text) {
        Ok(f) => panic!("expected errors, parsed {f:#?}"),
        Err(d) => d,
    }
}

/// The body of the only function in `text`.
pub fn body(text: &str) -> Block {
    match parse_ok(text).items.into_iter().next() {
        Some(Item::Func(f)) => f.body,
        other => panic!("expected a function, got {other:?}"),
    }
}

/// Parses `expr` as the value of `let _x = expr;` inside a helper.
pub fn expr(src: &str) -> Expr {
    let b = body(&format!("fn f() {{ let _x = {src}; }}"));
    match b.stmts.into_iter().next().map(|s| s.kind) {
        Some(StmtKind::Let { value, .. }) => value,
        other => panic!("expected a let, got {other:?}"),
    }
}

/// `expr` rendered as an S-expression.
pub fn sx(src: &str) -> String {
    show_expr(&expr(src))
}

pub fn show_expr(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => format!("{s:?}"),
        ExprKind::Name(n) => n.name.clone(),
        ExprKind::Unary(UnOp::Neg, a) => format!("(neg {})", show_expr(a)),
        ExprKind::Unary(UnOp::Not, a) => format!("(not {})", show_expr(a)),
        ExprKind::Binary(op, a, b) => {
            format!("({} {} {})", op.symbol(), show_expr(a), show_expr(b))
        }
        ExprKind::Call(f, args) => {
            let mut s = format!("(call {}", f.name);
            for a in args {
                s.push(' ');
                if let Some(n) = &a.name {
                    s.push_str(&n.name);
                    s.push('=');
                }
                s.push_str(&show_expr(&a.value));
            }
            s + ")"
        }
        ExprKind::Index(a, items) => {
            let items: Vec<_> = items
                .iter()
                .map(|i| match i {
                    IndexItem::Full(_) => ":",
                    IndexItem::NewAxis(_) => "None",
                })
                .collect();
            format!("(index {} {})", show_expr(a), items.join(" "))
        }
        ExprKind::Cast(a, t) => format!("(as {} {})", show_expr(a), show_type(t)),
        ExprKind::List(items) => format!("[{}]", join(items)),
        ExprKind::Tuple(items) => format!("(tuple {})", join(items)),
        ExprKind::If(c, t, e) => {
            format!("(if {} {} {})", show_expr(c), show_block(t), show_block(e))
        }
    }
}

fn join(items: &[Expr]) -> String {
    items.iter().map(show_expr).collect::<Vec<_>>().join(" ")
}

pub fn show_type(t: &TypeExpr) -> String {
    match &t.kind {
        TypeExprKind::Named(n) => n.name.clone(),
        TypeExprKind::Ptr(t) => format!("*{}", show_type(t)),
        TypeExprKind::Block(n, dims) => format!("{}[{}]", n.name, join(dims)),
        TypeExprKind::Tuple(ts) => {
            format!("({})", ts.iter().map(show_type).collect::<Vec<_>>().join(", "))
        }
    }
}

pub fn show_block(b: &Block) -> String {
    let mut parts: Vec<String> = b.stmts.iter().map(show_stmt).collect();
    if let Some(t) = &b.tail {
        parts.push(show_expr(t));
    }
    format!("{{{}}}", parts.join(" "))
}

pub fn show_stmt(s: &Stmt) -> String {
    match &s.kind {
        StmtKind::Let { mutable, pattern, ty, value } => {
            let pat = match pattern {
                Pattern::Name(n) => n.name.clone(),
                Pattern::Tuple(ns) => {
                    format!(
                        "({})",
                        ns.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(" ")
                    )
                }
            };
            let m = if *mutable { "mut " } else { "" };
            let ty = ty.as_ref().map(|t| format!(": {}", show_type(t))).unwrap_or_default();
            format!("(let {m}{pat}{ty} {})", show_expr(value))
        }
        StmtKind::Assign { target, op, value } => {
            let op = op.map(|o| format!("{}=", o.symbol())).unwrap_or_else(|| "=".to_string());
            format!("({op} {} {})", target.name, show_expr(value))
        }
        StmtKind::Expr(e) => format!("{};", show_expr(e)),
        StmtKind::For { var, is_static, lo, hi, step, body } => {
            let kw = if *is_static { "static_for" } else { "for" };
            let step = step.as_ref().map(|s| format!(" {}", show_expr(s))).unwrap_or_default();
            format!(
                "({kw} {} {} {}{step} {})",
                var.name,
                show_expr(lo),
                show_expr(hi),
                show_block(body)
            )
        }
        StmtKind::If { cond, then_block, else_block } => {
            let e = else_block.as_ref().map(|b| format!(" {}", show_block(b))).unwrap_or_default();
            format!("(if {} {}{e})", show_expr(cond), show_block(then_block))
        }
        StmtKind::Return(v) => match v {
            Some(v) => format!("(return {})", show_expr(v)),
            None => "(return)".to_string(),
        },
    }
}
