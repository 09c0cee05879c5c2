//! Diagnostic codes of the syntax stage and the translation of lalrpop's parse errors into
//! messages in the user's terms.
//!
//! | code  | meaning |
//! |-------|---------|
//! | E0001 | unexpected character(s) that start no token |
//! | E0002 | unterminated string literal |
//! | E0003 | unterminated block comment |
//! | E0004 | integer literal does not fit in 64 bits |
//! | E0005 | malformed number literal (`0x` without digits, float out of range) |
//! | E0006 | unknown escape sequence in a string literal |
//! | E0007 | brackets nested more than [`crate::MAX_NESTING`] deep |
//! | E0008 | expression or statement nested too deeply (e.g. thousands of chained operators) |
//! | E0010 | unexpected token ("expected `;`, found `}`") |
//! | E0011 | unexpected end of file |
//! | E0012 | malformed `for` loop header (not `range(...)`/`static_range(...)`, wrong arguments) |
//! | E0013 | chained comparison such as `a < b < c` |

use crate::lexer::Tok;
use lalrpop_util::ParseError;
use tk_diag::{Diagnostic, FileId, Span};

/// The stable codes of syntax diagnostics (see the table in the module docs).
pub mod codes {
    pub const UNEXPECTED_CHAR: &str = "E0001";
    pub const UNTERMINATED_STRING: &str = "E0002";
    pub const UNTERMINATED_COMMENT: &str = "E0003";
    pub const INT_TOO_LARGE: &str = "E0004";
    pub const INVALID_NUMBER: &str = "E0005";
    pub const BAD_ESCAPE: &str = "E0006";
    pub const NESTING_TOO_DEEP: &str = "E0007";
    pub const TOO_COMPLEX: &str = "E0008";
    pub const UNEXPECTED_TOKEN: &str = "E0010";
    pub const UNEXPECTED_EOF: &str = "E0011";
    pub const BAD_FOR_LOOP: &str = "E0012";
    pub const CHAINED_COMPARISON: &str = "E0013";
}

/// The error type of the external-lexer interface. The lexer never fails (bad input becomes
/// [`Tok::Error`]), so no value of this type is ever built.
#[derive(Clone, Debug, PartialEq)]
pub enum Never {}

pub(crate) type RawError<'a> = ParseError<usize, Tok<'a>, Never>;

/// What the driver knows about the token stream, used to word parse errors.
pub(crate) struct ErrorContext<'t, 'a> {
    pub file: FileId,
    pub tokens: &'t [(usize, Tok<'a>, usize)],
    /// End of the text, where "end of file" points.
    pub eof: usize,
    /// Brackets still open at the end of the file: `(start, end, spelling)`.
    pub unclosed: &'t [(usize, usize, &'static str)],
}

/// Token groups that are named as a whole rather than listed one by one.
const EXPR_START: &[&str] = &["Ident", "Int", "Float", "Str", "\"(\"", "\"[\"", "\"-\"", "\"!\""];
const BINARY_OPS: &[&str] = &["\"+\"", "\"*\"", "\"==\"", "\"&&\"", "\"||\"", "\"<<\""];
const POSTFIX: &[&str] = &[
    "\"+\"", "\"-\"", "\"*\"", "\"/\"", "\"%\"", "\"&\"", "\"|\"", "\"^\"", "\"<<\"", "\">>\"",
    "\"&&\"", "\"||\"", "\"==\"", "\"!=\"", "\"<\"", "\"<=\"", "\">\"", "\">=\"", "\"as\"",
    "\"[\"",
];
const EXPR_ONLY: &[&str] = &["\"true\"", "\"false\"", "\"if\""];
const ITEM_START: &[&str] = &["\"import\"", "\"const\"", "\"kernel\"", "\"fn\""];
const STMT_START: &[&str] = &["\"let\"", "\"for\"", "\"if\"", "\"return\"", "\";\""];

/// Converts one lalrpop error into a diagnostic, or `None` when it only repeats an error the
/// lexer already reported.
pub(crate) fn convert(cx: &ErrorContext<'_, '_>, error: &RawError<'_>) -> Option<Diagnostic> {
    match error {
        ParseError::UnrecognizedToken { token: (start, tok, end), expected } => {
            if *tok == Tok::Error {
                return None;
            }
            let span = Span::new(cx.file, *start, *end);
            let found = tok.to_string();
            Some(unexpected(cx, span, Some(*start), &found, expected))
        }
        ParseError::UnrecognizedEof { expected, .. } => {
            let span = Span::new(cx.file, cx.eof, cx.eof);
            let mut d = unexpected(cx, span, None, "end of file", expected);
            d.code = codes::UNEXPECTED_EOF;
            if let Some(&(s, e, spelling)) = cx.unclosed.last() {
                d = d.with_secondary(
                    Span::new(cx.file, s, e),
                    format!("this `{spelling}` is never closed"),
                );
            }
            Some(d)
        }
        ParseError::ExtraToken { token: (start, tok, end) } => {
            if *tok == Tok::Error {
                return None;
            }
            Some(
                Diagnostic::error(
                    codes::UNEXPECTED_TOKEN,
                    format!("expected an item, found {tok}"),
                    Span::new(cx.file, *start, *end),
                )
                .with_label("unexpected here"),
            )
        }
        // The lexer is external and infallible; lalrpop only builds these for its own lexer.
        ParseError::InvalidToken { location } => Some(Diagnostic::error(
            codes::UNEXPECTED_CHAR,
            "invalid token",
            Span::new(cx.file, *location, *location),
        )),
        ParseError::User { error } => match *error {},
    }
}

fn unexpected(
    cx: &ErrorContext<'_, '_>,
    span: Span,
    found_at: Option<usize>,
    found: &str,
    expected: &[String],
) -> Diagnostic {
    let has = |t: &str| expected.iter().any(|e| e == t);
    let has_all = |group: &[&str]| group.iter().all(|t| has(t));

    // Missing `;` is the most common mistake; say only that, as rustc does. (At the start of a
    // statement `;` is expected too, as an empty statement; that is not this case.)
    if has("\";\"") && !has("\",\"") && !has("\"let\"") {
        let mut d = Diagnostic::error(
            codes::UNEXPECTED_TOKEN,
            format!("expected `;`, found {found}"),
            span,
        )
        .with_label("unexpected here");
        if ASSIGN_OPS
            .iter()
            .any(|op| found.strip_prefix('`').and_then(|f| f.strip_suffix('`')) == Some(op))
        {
            return d.with_help("only a variable can be assigned to, as in `x = value;`");
        }
        if let Some(prev_end) = found_at.and_then(|at| previous_token_end(cx, at)) {
            d = d.with_secondary(Span::new(cx.file, prev_end, prev_end), "expected `;` here");
        }
        return d.with_help("end the statement with `;`");
    }

    let mut names: Vec<String> = Vec::new();
    let mut skip: Vec<&str> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    if has_all(ITEM_START) {
        skip.extend(ITEM_START);
        skip.push("\"#\"");
        groups.push("an item (`kernel`, `fn`, `const` or `import`)".to_string());
    }
    if has_all(STMT_START) {
        skip.extend(STMT_START);
        skip.extend(EXPR_START);
        skip.extend(EXPR_ONLY);
        groups.push("a statement".to_string());
    } else if has_all(EXPR_START) {
        skip.extend(EXPR_START);
        skip.extend(EXPR_ONLY);
        groups.push("an expression".to_string());
    }
    let operators = has_all(BINARY_OPS);
    if operators {
        // After a name, `(` (call) and `:` (keyword argument) are possible too, but listing them
        // next to "`,` or `)`" only confuses.
        skip.extend(POSTFIX);
        skip.extend(["\"(\"", "\":\""]);
    }
    for e in expected {
        if !skip.contains(&e.as_str()) {
            names.push(expected_name(e));
        }
    }
    names.extend(groups);
    if names.is_empty() && operators {
        names.push("an operator".to_string());
    }
    let listed = list(&names);
    let message = if listed.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {listed}, found {found}")
    };
    let mut d =
        Diagnostic::error(codes::UNEXPECTED_TOKEN, message, span).with_label("unexpected here");

    if has("\":\"") && has("\"None\"") && !has("Ident") {
        d = d.with_help(
            "an index holds only `:` (keep a dimension) and `None` (add one), e.g. `x[:, None]`",
        );
    } else if has("\">\"") && has("\",\"") && expected.len() == 2 && is_operator(found) {
        d = d.with_help(
            "a default that is not a literal or a name must be in parentheses, e.g. `<B: i32 = (2 * 64)>`",
        );
    } else if found == "keyword `None`" {
        d = d.with_note("`None` only means \"new axis\" inside index brackets, as in `x[:, None]`");
    } else if found == "keyword `if`" && has("Ident") {
        d = d.with_help(
            "an `if` expression used as an operand must be in parentheses: `(if c { a } else { b })`",
        );
    }
    d
}

const ASSIGN_OPS: &[&str] = &["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="];

/// Whether a "found ..." description names a binary operator token.
fn is_operator(found: &str) -> bool {
    let spelled = found.strip_prefix('`').and_then(|f| f.strip_suffix('`'));
    spelled.is_some_and(|op| POSTFIX.iter().any(|p| p.trim_matches('"') == op))
}

fn previous_token_end(cx: &ErrorContext<'_, '_>, at: usize) -> Option<usize> {
    let i = cx.tokens.partition_point(|(s, _, _)| *s < at);
    i.checked_sub(1).map(|j| cx.tokens[j].2)
}

/// The readable name of a terminal as lalrpop spells it in `expected` lists.
fn expected_name(terminal: &str) -> String {
    match terminal {
        "Ident" => "identifier".to_string(),
        "Int" => "integer literal".to_string(),
        "Float" => "float literal".to_string(),
        "Str" => "string literal".to_string(),
        t => match t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => format!("`{}`", inner.replace("\\\"", "\"")),
            None => t.to_string(),
        },
    }
}

/// "a", "a or b", "one of a, b or c" (at most eight names, then a count).
fn list(names: &[String]) -> String {
    const MAX: usize = 8;
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        _ if names.len() > MAX => {
            format!("one of {}, or {} others", names[..MAX].join(", "), names.len() - MAX)
        }
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_terminals() {
        assert_eq!(expected_name("\";\""), "`;`");
        assert_eq!(expected_name("Ident"), "identifier");
        assert_eq!(list(&["`)`".to_string(), "`,`".to_string()]), "`)` or `,`");
        assert_eq!(list(&["a".to_string(), "b".to_string(), "c".to_string()]), "one of a, b or c");
    }
}
