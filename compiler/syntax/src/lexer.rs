//! The `.tk` lexer: a logos token definition plus a pass that turns lexing failures into
//! diagnostics.
//!
//! [`lex`] never fails: a character that starts no token becomes a [`Tok::Error`] token (and an
//! `E0001` diagnostic), so the parser still sees where something was and can keep going without
//! reporting the same spot twice. Literal *values* are checked here (integer overflow, bad escapes)
//! so that every bad literal is reported even if the parser later skips over it; the grammar then
//! decodes them again with the infallible helpers at the bottom of this file.

use crate::errors::codes;
use logos::{FilterResult, Logos};
use std::fmt;
use tk_diag::{Diagnostic, FileId, Span};

/// Why logos could not produce a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LexError {
    /// A character that starts no token.
    #[default]
    Unexpected,
    /// A `"` without its closing `"`; the token runs to the end of the file.
    UnterminatedString,
    /// A `/*` without its `*/`; the comment runs to the end of the file.
    UnterminatedComment,
}

/// One token. Literals keep their source text; see [`int_value`], [`float_value`], [`str_value`].
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\x0C]+")]
#[logos(skip r"//[^\n]*")]
pub enum Tok<'a> {
    #[token("/*", block_comment)]
    BlockComment,

    #[token("import")]
    Import,
    #[token("const")]
    Const,
    #[token("kernel")]
    Kernel,
    #[token("fn")]
    Fn,
    #[token("let")]
    Let,
    #[token("mut")]
    Mut,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("return")]
    Return,
    #[token("as")]
    As,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("None")]
    NoneKw,

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token(",")]
    Comma,
    #[token(";")]
    Semi,
    #[token(":")]
    Colon,
    #[token("#")]
    Hash,
    #[token("->")]
    Arrow,
    #[token("=")]
    Assign,

    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("&")]
    Amp,
    #[token("|")]
    Pipe,
    #[token("^")]
    Caret,
    #[token("<<")]
    Shl,
    #[token(">>")]
    Shr,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
    #[token("!")]
    Bang,
    #[token("==")]
    EqEq,
    #[token("!=")]
    Ne,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,

    #[token("+=")]
    PlusEq,
    #[token("-=")]
    MinusEq,
    #[token("*=")]
    StarEq,
    #[token("/=")]
    SlashEq,
    #[token("%=")]
    PercentEq,
    #[token("&=")]
    AmpEq,
    #[token("|=")]
    PipeEq,
    #[token("^=")]
    CaretEq,
    #[token("<<=")]
    ShlEq,
    #[token(">>=")]
    ShrEq,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice())]
    Ident(&'a str),
    #[regex(r"[0-9][0-9_]*", |lex| lex.slice())]
    #[regex(r"0[xX][0-9a-fA-F_]*", |lex| lex.slice())]
    Int(&'a str),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9][0-9_]*)?", |lex| lex.slice())]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9][0-9_]*", |lex| lex.slice())]
    Float(&'a str),
    /// The whole literal including quotes.
    #[token("\"", string)]
    Str(&'a str),

    /// `'a'`: not a token of the language; [`lex`] reports it and turns it into [`Tok::Error`].
    #[regex(r"'[^'\n]*'")]
    SingleQuoted,

    /// Never produced by logos: [`lex`] puts it where input could not be lexed.
    Error,
}

fn block_comment<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> FilterResult<(), LexError> {
    let rest = lex.remainder();
    match rest.find("*/") {
        Some(i) => {
            lex.bump(i + 2);
            FilterResult::Skip
        }
        None => {
            lex.bump(rest.len());
            FilterResult::Error(LexError::UnterminatedComment)
        }
    }
}

fn string<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<&'a str, LexError> {
    let rest = lex.remainder();
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                lex.bump(i + 1);
                return Ok(lex.slice());
            }
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    lex.bump(rest.len());
    Err(LexError::UnterminatedString)
}

/// A token with its byte range `[start, end)`.
pub type Spanned<'a> = (usize, Tok<'a>, usize);

/// The result of lexing a whole file.
#[derive(Debug)]
pub struct Lexed<'a> {
    pub tokens: Vec<Spanned<'a>>,
    pub diagnostics: Vec<Diagnostic>,
    /// An unterminated string or comment swallowed the rest of the file, so errors "at end of
    /// file" are consequences of that one mistake.
    pub ate_rest_of_file: bool,
}

/// Lexes `text` completely. Comments and whitespace are dropped.
pub fn lex(file: FileId, text: &str) -> Lexed<'_> {
    let mut out = Lexed { tokens: Vec::new(), diagnostics: Vec::new(), ate_rest_of_file: false };
    let mut lexer = Tok::lexer(text);
    // A run of adjacent unexpected characters is one token and one diagnostic.
    let mut pending_bad: Option<(usize, usize)> = None;
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let (start, end) = char_aligned(text, range.start, range.end);
        match result {
            Err(LexError::Unexpected) => {
                pending_bad = match pending_bad {
                    Some((s, e)) if e == start => Some((s, end)),
                    Some((s, e)) => {
                        flush_bad(file, text, s, e, &mut out);
                        Some((start, end))
                    }
                    None => Some((start, end)),
                };
                continue;
            }
            _ => {
                if let Some((s, e)) = pending_bad.take() {
                    flush_bad(file, text, s, e, &mut out);
                }
            }
        }
        match result {
            Ok(Tok::SingleQuoted) => {
                let quoted: String = text[start..end].chars().take(40).collect();
                out.diagnostics.push(
                    Diagnostic::error(
                        codes::UNEXPECTED_CHAR,
                        format!("unexpected character literal `{quoted}`"),
                        Span::new(file, start, end),
                    )
                    .with_label("tk has no character literals")
                    .with_help("string literals use double quotes: \"...\""),
                );
                out.tokens.push((start, Tok::Error, end));
            }
            Ok(tok) => {
                check_literal(file, &tok, start, &mut out.diagnostics);
                out.tokens.push((start, tok, end));
            }
            Err(LexError::UnterminatedString) => {
                out.ate_rest_of_file = true;
                out.diagnostics.push(
                    Diagnostic::error(
                        codes::UNTERMINATED_STRING,
                        "unterminated string literal",
                        Span::new(file, start, (start + 1).min(end)),
                    )
                    .with_label("this string is never closed")
                    .with_help("add a closing `\"`"),
                );
                out.tokens.push((start, Tok::Error, end));
            }
            Err(LexError::UnterminatedComment) => {
                out.ate_rest_of_file = true;
                out.diagnostics.push(
                    Diagnostic::error(
                        codes::UNTERMINATED_COMMENT,
                        "unterminated block comment",
                        Span::new(file, start, (start + 2).min(end)),
                    )
                    .with_label("this comment is never closed")
                    .with_help("add `*/` where the comment should end"),
                );
            }
            Err(LexError::Unexpected) => {}
        }
    }
    if let Some((s, e)) = pending_bad.take() {
        flush_bad(file, text, s, e, &mut out);
    }
    out
}

/// Widens `[start, end)` to whole characters so that slicing `text` with it cannot panic.
fn char_aligned(text: &str, start: usize, end: usize) -> (usize, usize) {
    let mut start = start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = end.clamp(start, text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    (start, end)
}

fn flush_bad(file: FileId, text: &str, start: usize, end: usize, out: &mut Lexed<'_>) {
    let bad = &text[start..end];
    let count = bad.chars().count();
    let shown: String = bad.chars().flat_map(char::escape_debug).take(40).collect();
    let message = if count == 1 {
        format!("unexpected character `{shown}`")
    } else {
        format!("unexpected characters `{shown}`")
    };
    let mut d = Diagnostic::error(codes::UNEXPECTED_CHAR, message, Span::new(file, start, end))
        .with_label("not part of any token");
    if bad.starts_with('\'') {
        d = d.with_help("string literals use double quotes: \"...\"");
    } else if bad.starts_with('.') {
        d = d.with_help("tk has no `.` operator; call functions as `f(x)`");
    }
    out.diagnostics.push(d);
    out.tokens.push((start, Tok::Error, end));
}

fn check_literal(file: FileId, tok: &Tok<'_>, start: usize, diags: &mut Vec<Diagnostic>) {
    let span = |len: usize| Span::new(file, start, start + len);
    match tok {
        Tok::Int(s) => {
            if let Err(e) = parse_int(s) {
                let d = match e {
                    IntError::NoDigits => Diagnostic::error(
                        codes::INVALID_NUMBER,
                        "hexadecimal literal has no digits",
                        span(s.len()),
                    )
                    .with_help("write digits after `0x`, e.g. `0x1F`"),
                    IntError::TooLarge => Diagnostic::error(
                        codes::INT_TOO_LARGE,
                        format!("integer literal `{s}` is too large"),
                        span(s.len()),
                    )
                    .with_label("does not fit in 64 bits")
                    .with_note("the largest integer literal is 18446744073709551615 (0xFFFF_FFFF_FFFF_FFFF)"),
                };
                diags.push(d);
            }
        }
        Tok::Float(s) if !float_value(s).is_finite() => {
            diags.push(
                Diagnostic::error(
                    codes::INVALID_NUMBER,
                    format!("float literal `{s}` is out of range for f64"),
                    span(s.len()),
                )
                .with_label("rounds to infinity")
                .with_help("use the name `inf` for an infinite value"),
            );
        }
        Tok::Str(s) => {
            for (offset, len, message) in string_errors(s) {
                diags.push(
                    Diagnostic::error(
                        codes::BAD_ESCAPE,
                        message,
                        Span::new(file, start + offset, start + offset + len),
                    )
                    .with_help("the escapes are `\\\"`, `\\\\` and `\\n`"),
                );
            }
        }
        _ => {}
    }
}

enum IntError {
    NoDigits,
    TooLarge,
}

fn parse_int(s: &str) -> Result<u64, IntError> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (s, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix).ok_or(IntError::NoDigits)?;
        value = value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .ok_or(IntError::TooLarge)?;
        any = true;
    }
    if any {
        Ok(value)
    } else {
        Err(IntError::NoDigits)
    }
}

/// The value of an integer literal token; 0 if it is invalid (already reported by [`lex`]).
pub fn int_value(s: &str) -> u64 {
    parse_int(s).unwrap_or(0)
}

/// The value of a float literal token (infinite if out of range, which [`lex`] reports).
pub fn float_value(s: &str) -> f64 {
    let cleaned: String = s.chars().filter(|&c| c != '_').collect();
    cleaned.parse().unwrap_or(0.0)
}

/// The contents of a string literal token (quotes included), with escapes decoded. Unknown
/// escapes (reported by [`lex`]) are kept as written.
pub fn str_value(s: &str) -> String {
    let inner = s.strip_prefix('"').unwrap_or(s);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// `(byte offset in the token, byte length, message)` for every unknown escape in a string token.
fn string_errors(s: &str) -> Vec<(usize, usize, String)> {
    let mut errors = Vec::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some((_, 'n' | '"' | '\\')) => {}
            Some((_, other)) => {
                let shown: String = other.escape_debug().collect();
                errors.push((i, 1 + other.len_utf8(), format!("unknown escape `\\{shown}`")));
            }
            None => {}
        }
    }
    errors
}

impl fmt::Display for Tok<'_> {
    /// How a token is named in "found ..." messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "identifier `{s}`"),
            Tok::Int(s) => write!(f, "integer literal `{s}`"),
            Tok::Float(s) => write!(f, "float literal `{s}`"),
            Tok::Str(_) => write!(f, "string literal"),
            Tok::Error | Tok::BlockComment | Tok::SingleQuoted => write!(f, "invalid input"),
            other => match other.text() {
                Some(t) if t.starts_with(|c: char| c.is_ascii_alphabetic()) => {
                    write!(f, "keyword `{t}`")
                }
                Some(t) => write!(f, "`{t}`"),
                None => write!(f, "invalid input"),
            },
        }
    }
}

impl Tok<'_> {
    /// The fixed spelling of a keyword or punctuation token.
    pub fn text(&self) -> Option<&'static str> {
        Some(match self {
            Tok::Import => "import",
            Tok::Const => "const",
            Tok::Kernel => "kernel",
            Tok::Fn => "fn",
            Tok::Let => "let",
            Tok::Mut => "mut",
            Tok::For => "for",
            Tok::In => "in",
            Tok::If => "if",
            Tok::Else => "else",
            Tok::Return => "return",
            Tok::As => "as",
            Tok::True => "true",
            Tok::False => "false",
            Tok::NoneKw => "None",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Comma => ",",
            Tok::Semi => ";",
            Tok::Colon => ":",
            Tok::Hash => "#",
            Tok::Arrow => "->",
            Tok::Assign => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Amp => "&",
            Tok::Pipe => "|",
            Tok::Caret => "^",
            Tok::Shl => "<<",
            Tok::Shr => ">>",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::PlusEq => "+=",
            Tok::MinusEq => "-=",
            Tok::StarEq => "*=",
            Tok::SlashEq => "/=",
            Tok::PercentEq => "%=",
            Tok::AmpEq => "&=",
            Tok::PipeEq => "|=",
            Tok::CaretEq => "^=",
            Tok::ShlEq => "<<=",
            Tok::ShrEq => ">>=",
            Tok::BlockComment
            | Tok::Ident(_)
            | Tok::Int(_)
            | Tok::Float(_)
            | Tok::Str(_)
            | Tok::SingleQuoted
            | Tok::Error => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok<'_>> {
        lex(FileId(0), text).tokens.into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn operators_take_the_longest_match() {
        assert_eq!(
            kinds("<<= >>= << <= < -> -= && & ||"),
            vec![
                Tok::ShlEq,
                Tok::ShrEq,
                Tok::Shl,
                Tok::Le,
                Tok::Lt,
                Tok::Arrow,
                Tok::MinusEq,
                Tok::AndAnd,
                Tok::Amp,
                Tok::OrOr
            ]
        );
    }

    #[test]
    fn keywords_and_identifiers() {
        assert_eq!(
            kinds("let letter None range inf _x"),
            vec![
                Tok::Let,
                Tok::Ident("letter"),
                Tok::NoneKw,
                Tok::Ident("range"),
                Tok::Ident("inf"),
                Tok::Ident("_x")
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("0x10_00 1_000 1.0 1e-5 2.5E3 7"),
            vec![
                Tok::Int("0x10_00"),
                Tok::Int("1_000"),
                Tok::Float("1.0"),
                Tok::Float("1e-5"),
                Tok::Float("2.5E3"),
                Tok::Int("7")
            ]
        );
        assert_eq!(int_value("0x10_00"), 4096);
        assert_eq!(int_value("18446744073709551615"), u64::MAX);
        assert_eq!(float_value("2.5E3"), 2500.0);
        assert_eq!(float_value("1e-5"), 0.00001);
    }

    #[test]
    fn comments_are_skipped() {
        assert_eq!(kinds("a // b\n/* c\n d */ e"), vec![Tok::Ident("a"), Tok::Ident("e")]);
    }

    #[test]
    fn string_escapes() {
        assert_eq!(str_value(r#""a\"b\\c\nd""#), "a\"b\\c\nd");
        let lexed = lex(FileId(0), r#""x\ty""#);
        assert_eq!(lexed.diagnostics.len(), 1);
        assert_eq!(lexed.diagnostics[0].message, "unknown escape `\\t`");
        assert_eq!((lexed.diagnostics[0].span.start, lexed.diagnostics[0].span.end), (2, 4));
    }

    #[test]
    fn bad_characters_merge_into_one_error_token() {
        let lexed = lex(FileId(0), "a @$ b é");
        let toks: Vec<_> = lexed.tokens.iter().map(|(s, t, e)| (*s, t.clone(), *e)).collect();
        assert_eq!(
            toks,
            vec![
                (0, Tok::Ident("a"), 1),
                (2, Tok::Error, 4),
                (5, Tok::Ident("b"), 6),
                (7, Tok::Error, 9)
            ]
        );
        assert_eq!(lexed.diagnostics.len(), 2);
        assert_eq!(lexed.diagnostics[0].message, "unexpected characters `@$`");
        assert_eq!(lexed.diagnostics[1].message, "unexpected character `é`");
    }

    #[test]
    fn unterminated_literals() {
        let lexed = lex(FileId(0), "a \"abc");
        assert!(lexed.ate_rest_of_file);
        assert_eq!(lexed.diagnostics[0].code, codes::UNTERMINATED_STRING);
        let lexed = lex(FileId(0), "a /* abc");
        assert_eq!(lexed.diagnostics[0].code, codes::UNTERMINATED_COMMENT);
        assert_eq!(lexed.tokens.len(), 1);
    }

    #[test]
    fn integer_overflow_is_reported() {
        let lexed = lex(FileId(0), "18446744073709551616 0x");
        let codes: Vec<_> = lexed.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, vec![codes::INT_TOO_LARGE, codes::INVALID_NUMBER]);
    }
}
