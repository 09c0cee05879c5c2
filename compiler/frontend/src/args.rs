//! Call arguments: matching positional and keyword arguments against a builtin's signature.

use crate::lower::FnLower;
use crate::val::Val;
use tk_diag::{Diagnostic, Span};
use tk_syntax::ast;

/// Lowered arguments of one call, bound to parameter names.
pub struct Args {
    /// Per parameter of the signature: the value and its span, if given.
    pub vals: Vec<Option<(Val, Span)>>,
    /// Any extra positional arguments (for variadic builtins like `print`).
    pub rest: Vec<(Val, Span)>,
}

impl Args {
    pub fn get(&self, i: usize) -> Option<&(Val, Span)> {
        self.vals.get(i).and_then(|x| x.as_ref())
    }
    pub fn take(&mut self, i: usize) -> Option<(Val, Span)> {
        self.vals.get_mut(i).and_then(|x| x.take())
    }
}

impl FnLower<'_, '_> {
    /// Binds `args` to `params` (names; a trailing `?` marks optional ones). Reports unknown
    /// keywords, duplicates, too many or missing arguments. Returns `None` after an error.
    pub fn bind_args(
        &mut self,
        fname: &str,
        params: &[&str],
        args: &[ast::Arg],
        call_span: Span,
        variadic: bool,
    ) -> Option<Args> {
        let names: Vec<&str> = params.iter().map(|p| p.trim_end_matches('?')).collect();
        let mut vals: Vec<Option<(Val, Span)>> = vec![None; params.len()];
        let mut rest = Vec::new();
        let mut ok = true;
        let mut next_pos = 0;
        for a in args {
            let v = self.lower_expr(&a.value);
            match &a.name {
                None => {
                    if next_pos < params.len() {
                        vals[next_pos] = Some((v, a.value.span));
                        next_pos += 1;
                    } else if variadic {
                        rest.push((v, a.value.span));
                    } else {
                        let d = Diagnostic::error(
                            "E0501",
                            format!("`{fname}` takes at most {} argument(s)", params.len()),
                            a.value.span,
                        )
                        .with_label("unexpected argument")
                        .with_note(format!("signature: {}", signature(fname, params)));
                        self.error(d);
                        ok = false;
                    }
                }
                Some(kw) => match names.iter().position(|n| *n == kw.name) {
                    Some(i) if vals[i].is_none() => vals[i] = Some((v, a.value.span)),
                    Some(_) => {
                        let d = Diagnostic::error(
                            "E0502",
                            format!("argument `{}` is given twice", kw.name),
                            kw.span,
                        )
                        .with_note(format!("signature: {}", signature(fname, params)));
                        self.error(d);
                        ok = false;
                    }
                    None => {
                        let mut d = Diagnostic::error(
                            "E0503",
                            format!("`{fname}` has no parameter named `{}`", kw.name),
                            kw.span,
                        )
                        .with_label("unknown keyword")
                        .with_note(format!("signature: {}", signature(fname, params)));
                        if let Some(best) =
                            names.iter().min_by_key(|n| crate::expr::edit_distance(n, &kw.name))
                        {
                            if crate::expr::edit_distance(best, &kw.name) <= 2 {
                                d = d.with_help(format!("did you mean `{best}`?"));
                            }
                        }
                        self.error(d);
                        ok = false;
                    }
                },
            }
        }
        for (i, p) in params.iter().enumerate() {
            if vals[i].is_none() && !p.ends_with('?') {
                let d = Diagnostic::error(
                    "E0504",
                    format!("`{fname}` is missing the argument `{p}`"),
                    call_span,
                )
                .with_label(format!("`{p}` not given"))
                .with_note(format!("signature: {}", signature(fname, params)));
                self.error(d);
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        // An erroneous argument was already reported; stop quietly.
        if vals.iter().flatten().any(|(v, _)| v.is_error())
            || rest.iter().any(|(v, _)| v.is_error())
        {
            return None;
        }
        Some(Args { vals, rest })
    }
}

/// `load(ptr, mask?, other?)` as shown in notes.
pub fn signature(fname: &str, params: &[&str]) -> String {
    format!("{fname}({})", params.join(", "))
}
