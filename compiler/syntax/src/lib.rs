//! The `.tk` surface syntax: a logos lexer, a lalrpop grammar and the spanned AST.
//!
//! Entry point: [`parse_file`], which returns the AST or diagnostics (several where the parser can
//! recover). This crate knows nothing about types or names.
//!
//! Parsing never panics and never recurses on the input: the lexer and the LR parser are
//! iterative, bracket nesting is bounded ([`MAX_NESTING`]) before parsing starts, and the tree
//! depth is bounded while it is built ([`MAX_AST_DEPTH`]), so passes that recurse over the AST
//! are safe on any input. Diagnostic codes are listed in [`errors`].

pub mod ast;
mod builder;
pub mod errors;
pub mod lexer;

lalrpop_util::lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_qualifications, unused_parens)]
    grammar
);

pub use builder::MAX_AST_DEPTH;

use errors::{codes, ErrorContext};
use lexer::Tok;
use tk_diag::{Diagnostic, FileId, Span};

/// The deepest bracket nesting (`(`, `[`, `{` together) a file may have.
pub const MAX_NESTING: usize = 128;

/// Parses one `.tk` file. Spans in the AST and the diagnostics are byte offsets into `text`,
/// tagged with `file`.
///
/// On failure every problem found is reported (lexical errors, and syntax errors at each point
/// where the parser could resynchronise), sorted by position.
pub fn parse_file(file: FileId, text: &str) -> Result<ast::File, Vec<Diagnostic>> {
    let lexed = lexer::lex(file, text);
    let mut diags = lexed.diagnostics;

    let unclosed = match check_nesting(file, &lexed.tokens) {
        Ok(unclosed) => unclosed,
        Err(d) => {
            diags.push(*d);
            return Err(sorted(diags));
        }
    };

    let mut cx = builder::Ctx::new(file);
    let tokens = lexed.tokens.iter().cloned().map(Ok::<_, errors::Never>);
    let result = grammar::FileParser::new().parse(&mut cx, tokens);

    let ecx = ErrorContext { file, tokens: &lexed.tokens, eof: text.len(), unclosed: &unclosed };
    let keep = |d: &Diagnostic| !(lexed.ate_rest_of_file && d.code == codes::UNEXPECTED_EOF);
    for (for_header, recovery) in &cx.recovered {
        let d = match for_header {
            Some(at) => for_header_error(&ecx, *at, &recovery.error),
            None => errors::convert(&ecx, &recovery.error),
        };
        diags.extend(d.filter(keep));
    }
    diags.append(&mut cx.diags);
    match result {
        Ok(ast) if diags.is_empty() => Ok(ast),
        Ok(_) => Err(sorted(diags)),
        Err(e) => {
            diags.extend(errors::convert(&ecx, &e).filter(keep));
            if diags.is_empty() {
                // Unreachable in practice (every lalrpop error converts), but never claim success.
                diags.push(Diagnostic::error(
                    codes::UNEXPECTED_TOKEN,
                    "syntax error",
                    Span::new(file, 0, 0),
                ));
            }
            Err(sorted(diags))
        }
    }
}

/// Bounds the parser's stack in one pass over the tokens, so that neither the parser nor anything
/// after it can recurse or backtrack deeply: brackets may nest at most [`MAX_NESTING`] deep, and
/// a run of prefix operators (`-`, `!`, `*`) longer than [`MAX_AST_DEPTH`] could only build a
/// tree that is too deep anyway. Returns the brackets left open at the end (for "unclosed"
/// labels).
fn check_nesting(
    file: FileId,
    tokens: &[lexer::Spanned<'_>],
) -> Result<Vec<(usize, usize, &'static str)>, Box<Diagnostic>> {
    let mut open: Vec<(usize, usize, &'static str)> = Vec::new();
    let mut prefix_run: Option<(usize, usize)> = None;
    for (start, tok, end) in tokens {
        if matches!(tok, Tok::Minus | Tok::Bang | Tok::Star) {
            let (run_start, count) = prefix_run.map_or((*start, 1), |(s, n)| (s, n + 1));
            if count > MAX_AST_DEPTH as usize {
                return Err(Box::new(
                    Diagnostic::error(
                        codes::TOO_COMPLEX,
                        "this code is nested too deeply",
                        Span::new(file, run_start, *end),
                    )
                    .with_label(format!("more than {MAX_AST_DEPTH} operators in a row")),
                ));
            }
            prefix_run = Some((run_start, count));
        } else {
            prefix_run = None;
        }
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                if open.len() >= MAX_NESTING {
                    let outer = open[0];
                    return Err(Box::new(
                        Diagnostic::error(
                            codes::NESTING_TOO_DEEP,
                            format!("brackets are nested more than {MAX_NESTING} levels deep"),
                            Span::new(file, *start, *end),
                        )
                        .with_label(format!("level {} starts here", MAX_NESTING + 1))
                        .with_secondary(Span::new(file, outer.0, outer.1), "outermost bracket")
                        .with_help("split the code into helper functions or `let` statements"),
                    ));
                }
                open.push((*start, *end, tok.text().unwrap_or("(")));
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                open.pop();
            }
            _ => {}
        }
    }
    Ok(open)
}

/// The message for an error right after `for var in`: the loop must name a range.
fn for_header_error(
    cx: &ErrorContext<'_, '_>,
    at: usize,
    error: &errors::RawError<'_>,
) -> Option<Diagnostic> {
    let first_after = cx.tokens.get(cx.tokens.partition_point(|(s, _, _)| *s < at));
    let (start, tok, end) = match error {
        lalrpop_util::ParseError::UnrecognizedToken { token, .. } => token,
        _ => return errors::convert(cx, error),
    };
    if first_after.map(|(s, _, _)| *s) != Some(*start) || *tok == Tok::Error {
        return errors::convert(cx, error);
    }
    Some(
        Diagnostic::error(
            codes::BAD_FOR_LOOP,
            format!("expected `range(...)` or `static_range(...)`, found {tok}"),
            Span::new(cx.file, *start, *end),
        )
        .with_label("a `for` loop iterates over a range")
        .with_help("write `for i in range(lo, hi)` or `for i in static_range(lo, hi)` (unrolled)"),
    )
}

fn sorted(mut diags: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    diags.dedup_by(|a, b| a.code == b.code && a.span == b.span);
    diags
}
