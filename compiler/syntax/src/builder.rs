//! AST construction helpers called from the grammar's actions.
//!
//! Every expression, type, statement and block is built through [`Ctx`] together with its tree
//! depth ([`D`]). Bracket nesting and runs of prefix operators are bounded before parsing, but
//! binary-operator and `else if` chains are not (`a + a + ... + a` with 100 000 terms is a
//! 100 000-deep tree whose recursive `Drop` alone would overflow the stack). So a node that would be deeper than [`MAX_AST_DEPTH`] is replaced by a
//! shallow placeholder and reported once: no tree built here, kept or dropped, is ever deeper
//! than the limit, and later recursive passes can rely on that.

use crate::ast::*;
use crate::errors::{codes, Never};
use crate::lexer::Tok;
use lalrpop_util::ErrorRecovery;
use tk_diag::{Diagnostic, FileId, Span};

/// The deepest AST the parser builds, counting expression, type, statement and block nodes.
/// 128 nested brackets need at most about 2 levels each.
pub const MAX_AST_DEPTH: u32 = 320;

/// One `if cond { ... }` of an `if`/`else if` chain, with the offset of its `if`.
pub type IfLink = (usize, D<Expr>, D<Block>);

/// A node with the depth of the tree below it (a leaf has depth 1).
#[derive(Clone, Debug)]
pub struct D<T> {
    pub node: T,
    pub depth: u32,
}

/// State shared by the grammar actions.
pub struct Ctx<'a> {
    pub file: FileId,
    /// Diagnostics from the actions themselves (not from error recovery).
    pub diags: Vec<Diagnostic>,
    /// Error-recovery events, converted to diagnostics once parsing is over. The offset is set
    /// for errors in a `for` header: where the header's iterator should have started.
    pub recovered: Vec<(Option<usize>, ErrorRecovery<usize, Tok<'a>, Never>)>,
    too_deep_reported: bool,
}

impl<'a> Ctx<'a> {
    pub fn new(file: FileId) -> Ctx<'a> {
        Ctx { file, diags: Vec::new(), recovered: Vec::new(), too_deep_reported: false }
    }

    pub fn span(&self, l: usize, r: usize) -> Span {
        Span::new(self.file, l, r)
    }

    pub fn ident(&self, name: &str, l: usize, r: usize) -> Ident {
        Ident { name: name.to_string(), span: self.span(l, r) }
    }

    /// Returns whether `depth` is acceptable, reporting the first violation.
    fn depth_ok(&mut self, depth: u32, l: usize, r: usize) -> bool {
        if depth <= MAX_AST_DEPTH {
            return true;
        }
        if !self.too_deep_reported {
            self.too_deep_reported = true;
            let d = Diagnostic::error(
                codes::TOO_COMPLEX,
                "this code is nested too deeply",
                self.span(l, r),
            )
            .with_note(format!(
                "the compiler accepts at most {MAX_AST_DEPTH} levels of nested expressions and statements"
            ))
            .with_help("split the expression into several `let` statements");
            self.diags.push(d);
        }
        false
    }

    pub fn expr(&mut self, kind: ExprKind, l: usize, r: usize, child_depth: u32) -> D<Expr> {
        let span = self.span(l, r);
        let depth = child_depth.saturating_add(1);
        if self.depth_ok(depth, l, r) {
            D { node: Expr { kind, span }, depth }
        } else {
            D { node: Expr { kind: ExprKind::Int(0), span }, depth: 1 }
        }
    }

    pub fn binary(&mut self, op: BinOp, a: D<Expr>, b: D<Expr>, l: usize, r: usize) -> D<Expr> {
        let depth = a.depth.max(b.depth);
        self.expr(ExprKind::Binary(op, Box::new(a.node), Box::new(b.node)), l, r, depth)
    }

    pub fn unary(&mut self, op: UnOp, a: D<Expr>, l: usize, r: usize) -> D<Expr> {
        let depth = a.depth;
        self.expr(ExprKind::Unary(op, Box::new(a.node)), l, r, depth)
    }

    /// A list of expressions (call arguments, list and tuple elements) and their deepest depth.
    pub fn unzip(items: Vec<D<Expr>>) -> (Vec<Expr>, u32) {
        let depth = items.iter().map(|d| d.depth).max().unwrap_or(0);
        (items.into_iter().map(|d| d.node).collect(), depth)
    }

    pub fn call(
        &mut self,
        callee: Ident,
        args: Vec<(Option<Ident>, D<Expr>)>,
        l: usize,
        r: usize,
    ) -> D<Expr> {
        let depth = args.iter().map(|(_, v)| v.depth).max().unwrap_or(0);
        let args = args.into_iter().map(|(name, v)| Arg { name, value: v.node }).collect();
        self.expr(ExprKind::Call(callee, args), l, r, depth)
    }

    pub fn ty(&mut self, kind: TypeExprKind, l: usize, r: usize, child_depth: u32) -> D<TypeExpr> {
        let span = self.span(l, r);
        let depth = child_depth.saturating_add(1);
        if self.depth_ok(depth, l, r) {
            D { node: TypeExpr { kind, span }, depth }
        } else {
            let name = Ident { name: "<error>".to_string(), span };
            D { node: TypeExpr { kind: TypeExprKind::Named(name), span }, depth: 1 }
        }
    }

    pub fn stmt(&mut self, kind: StmtKind, l: usize, r: usize, child_depth: u32) -> D<Stmt> {
        let span = self.span(l, r);
        let depth = child_depth.saturating_add(1);
        if self.depth_ok(depth, l, r) {
            D { node: Stmt { kind, span }, depth }
        } else {
            let placeholder = Expr { kind: ExprKind::Int(0), span };
            D { node: Stmt { kind: StmtKind::Expr(placeholder), span }, depth: 2 }
        }
    }

    pub fn block(
        &mut self,
        stmts: Vec<D<Stmt>>,
        tail: Option<D<Expr>>,
        l: usize,
        r: usize,
    ) -> D<Block> {
        let span = self.span(l, r);
        let depth = stmts
            .iter()
            .map(|s| s.depth)
            .chain(tail.as_ref().map(|t| t.depth))
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        if self.depth_ok(depth, l, r) {
            let stmts = stmts.into_iter().map(|s| s.node).collect();
            D { node: Block { stmts, tail: tail.map(|t| Box::new(t.node)), span }, depth }
        } else {
            D { node: Block { stmts: Vec::new(), tail: None, span }, depth: 1 }
        }
    }

    /// `if c0 { } else if c1 { } ... [else { }]` ending at `r`, nested from the inside out
    /// without recursion: `else if` becomes an `else` block holding just the inner `if`.
    pub fn if_stmt_chain(
        &mut self,
        head: IfLink,
        links: Vec<IfLink>,
        last: Option<D<Block>>,
        r: usize,
    ) -> D<Stmt> {
        let mut else_block = last;
        for (l, c, t) in links.into_iter().rev() {
            let inner = self.if_stmt(l, c, t, else_block.take(), r);
            let span = inner.node.span;
            else_block = Some(self.block(vec![inner], None, span.start as usize, r));
        }
        let (l, c, t) = head;
        self.if_stmt(l, c, t, else_block, r)
    }

    fn if_stmt(
        &mut self,
        l: usize,
        c: D<Expr>,
        t: D<Block>,
        else_block: Option<D<Block>>,
        r: usize,
    ) -> D<Stmt> {
        let depth = c.depth.max(t.depth).max(else_block.as_ref().map_or(0, |b| b.depth));
        let kind = StmtKind::If {
            cond: c.node,
            then_block: t.node,
            else_block: else_block.map(|b| b.node),
        };
        self.stmt(kind, l, r, depth)
    }

    /// The expression form of [`Ctx::if_stmt_chain`]: `else if` becomes an `else` block whose
    /// tail is the inner `if`.
    pub fn if_expr_chain(
        &mut self,
        head: IfLink,
        links: Vec<IfLink>,
        last: D<Block>,
        r: usize,
    ) -> D<Expr> {
        let mut else_block = last;
        for (l, c, t) in links.into_iter().rev() {
            let inner = self.if_expr(l, c, t, else_block, r);
            let span = inner.node.span;
            else_block = self.block(Vec::new(), Some(inner), span.start as usize, r);
        }
        let (l, c, t) = head;
        self.if_expr(l, c, t, else_block, r)
    }

    fn if_expr(&mut self, l: usize, c: D<Expr>, t: D<Block>, e: D<Block>, r: usize) -> D<Expr> {
        let depth = c.depth.max(t.depth).max(e.depth);
        self.expr(ExprKind::If(Box::new(c.node), t.node, e.node), l, r, depth)
    }

    /// `for var in name(args) body`: only `range` and `static_range` with 2 or 3 positional
    /// arguments are loops.
    #[allow(clippy::too_many_arguments)]
    pub fn for_loop(
        &mut self,
        var: Ident,
        iter: Ident,
        args: Vec<(Option<Ident>, D<Expr>)>,
        args_span: (usize, usize),
        body: D<Block>,
        l: usize,
        r: usize,
    ) -> D<Stmt> {
        let is_static = match iter.name.as_str() {
            "range" => false,
            "static_range" => true,
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_FOR_LOOP,
                        format!("expected `range(...)` or `static_range(...)`, found `{}`", iter.name),
                        iter.span,
                    )
                    .with_label("a `for` loop iterates over a range")
                    .with_help("write `for i in range(lo, hi)` or `for i in static_range(lo, hi)` (unrolled)"),
                );
                return self.stmt(StmtKind::Expr(placeholder(iter.span)), l, r, 1);
            }
        };
        if let Some((Some(name), _)) = args.iter().find(|(name, _)| name.is_some()) {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_FOR_LOOP,
                    format!("`{}` takes no keyword arguments", iter.name),
                    name.span,
                )
                .with_help(format!(
                    "write `{}(lo, hi)` or `{}(lo, hi, step)`",
                    iter.name, iter.name
                )),
            );
            return self.stmt(StmtKind::Expr(placeholder(iter.span)), l, r, 1);
        }
        if !(2..=3).contains(&args.len()) {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_FOR_LOOP,
                    format!("`{}` takes 2 or 3 arguments, found {}", iter.name, args.len()),
                    self.span(args_span.0, args_span.1),
                )
                .with_help(format!(
                    "write `{}(lo, hi)` or `{}(lo, hi, step)`",
                    iter.name, iter.name
                )),
            );
            return self.stmt(StmtKind::Expr(placeholder(iter.span)), l, r, 1);
        }
        let mut values = args.into_iter().map(|(_, v)| v);
        let (Some(lo), Some(hi)) = (values.next(), values.next()) else {
            return self.stmt(StmtKind::Expr(placeholder(iter.span)), l, r, 1);
        };
        let step = values.next();
        let depth =
            lo.depth.max(hi.depth).max(body.depth).max(step.as_ref().map_or(0, |s| s.depth));
        let kind = StmtKind::For {
            var,
            is_static,
            lo: lo.node,
            hi: hi.node,
            step: step.map(|s| s.node),
            body: body.node,
        };
        self.stmt(kind, l, r, depth)
    }

    /// `l op r` for a comparison; `a < b < c` is rejected because its meaning is not what it
    /// reads as. A comparison operand written without parentheses starts where the whole
    /// expression starts (`l`); one in parentheses starts after the `(`.
    pub fn comparison(&mut self, op: BinOp, a: D<Expr>, b: D<Expr>, l: usize, r: usize) -> D<Expr> {
        let unparenthesised_cmp = |e: &Expr| {
            matches!(
                e.kind,
                ExprKind::Binary(
                    BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge,
                    _,
                    _
                )
            ) && e.span.start as usize == l
        };
        if unparenthesised_cmp(&a.node) {
            // Report each chain once, at its first link.
            let reported = match &a.node.kind {
                ExprKind::Binary(_, inner, _) => unparenthesised_cmp(inner),
                _ => false,
            };
            if !reported {
                self.diags.push(
                    Diagnostic::error(
                        codes::CHAINED_COMPARISON,
                        "comparison operators cannot be chained",
                        self.span(l, r),
                    )
                    .with_help("combine two comparisons with `&&`, e.g. `a < b && b < c`"),
                );
            }
        }
        self.binary(op, a, b, l, r)
    }

    /// Records a recovered syntax error; it becomes a diagnostic once parsing is over.
    pub fn recover(&mut self, e: ErrorRecovery<usize, Tok<'a>, Never>) {
        self.recovered.push((None, e));
    }

    /// Records a syntax error after `for var in`; `at` is the end of `in`.
    pub fn recover_for_header(&mut self, at: usize, e: ErrorRecovery<usize, Tok<'a>, Never>) {
        self.recovered.push((Some(at), e));
    }
}

fn placeholder(span: Span) -> Expr {
    Expr { kind: ExprKind::Int(0), span }
}
