//! No input makes the parser panic or overflow the stack: random bytes, random token soups,
//! mutated programs and pathologically deep or long code.
//!
//! Every result is checked for well-formed diagnostics (non-empty, spans inside the text on
//! character boundaries) and rendered, since rendering slices the text with those spans.

mod common;

use common::*;
use tk_syntax::parse_file;

/// xorshift64*: a deterministic generator so that failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn check(text: &str) {
    match parse_file(FILE, text) {
        Ok(_) => {}
        Err(diags) => {
            assert!(!diags.is_empty(), "Err without diagnostics for {text:?}");
            for d in &diags {
                let (s, e) = (d.span.start as usize, d.span.end as usize);
                assert_eq!(d.span.file, FILE);
                assert!(s <= e && e <= text.len(), "span {s}..{e} outside {text:?}");
                assert!(
                    text.is_char_boundary(s) && text.is_char_boundary(e),
                    "span {s}..{e} splits a character in {text:?}"
                );
                assert!(d.code.starts_with('E'), "{d:?}");
            }
            // Rendering is slow on single lines of hundreds of kilobytes, and is only here to
            // check that the spans are usable.
            if text.len() <= 10_000 {
                let rendered = render(text, &diags);
                assert!(rendered.contains("error["), "{rendered}");
            }
        }
    }
}

const VOCAB: &[&str] = &[
    "import",
    "const",
    "kernel",
    "fn",
    "let",
    "mut",
    "for",
    "in",
    "if",
    "else",
    "return",
    "as",
    "true",
    "false",
    "None",
    "range",
    "static_range",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ":",
    "#",
    "->",
    "=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "|",
    "^",
    "<<",
    ">>",
    "&&",
    "||",
    "!",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+=",
    "-=",
    "<<=",
    ">>=",
    "x",
    "y",
    "f32",
    "load",
    "0",
    "1.5",
    "0x1F",
    "1e-5",
    "99999999999999999999999",
    "\"s\"",
    "\"unterminated",
    "/* c */",
    "/* open",
    "// line\n",
    "@",
    "'c'",
    "\u{e9}",
    "\\",
    ".",
    "0x",
];

#[test]
fn random_bytes() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let len = rng.below(120);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn random_ascii() {
    let mut rng = Rng(42);
    let alphabet = b"abcxyz019_ \n\t(){}[]<>=+-*/%&|^!:;,#.\"'\\";
    for _ in 0..3000 {
        let len = rng.below(80);
        let text: String = (0..len).map(|_| alphabet[rng.below(alphabet.len())] as char).collect();
        check(&text);
    }
}

#[test]
fn token_soup() {
    let mut rng = Rng(7);
    for _ in 0..4000 {
        let len = rng.below(60);
        let words: Vec<&str> = (0..len).map(|_| VOCAB[rng.below(VOCAB.len())]).collect();
        check(&words.join(" "));
    }
}

#[test]
fn mutated_programs() {
    let base = include_str!("example.tk");
    let tokens: Vec<&str> =
        base.split_inclusive(|c: char| !c.is_alphanumeric() && c != '_').collect();
    let mut rng = Rng(1234);
    for _ in 0..1500 {
        let mut t: Vec<&str> = tokens.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(t.len());
            match rng.below(3) {
                0 => {
                    t.remove(i);
                }
                1 => t.insert(i, VOCAB[rng.below(VOCAB.len())]),
                _ => {
                    let j = rng.below(t.len());
                    t.swap(i, j);
                }
            }
        }
        check(&t.concat());
    }
}

/// Builds `prefix * n + middle + suffix * n`.
fn nest(prefix: &str, middle: &str, suffix: &str, n: usize) -> String {
    format!("{}{middle}{}", prefix.repeat(n), suffix.repeat(n))
}

#[test]
fn deep_brackets_are_rejected() {
    for (open, close) in [("(", ")"), ("[", "]"), ("{", "}"), ("f(", ")")] {
        let text = format!("fn f() {{ let a = {}; }}", nest(open, "x", close, 100_000));
        let diags = parse_err(&text);
        assert_eq!(diags.last().map(|d| d.code), Some("E0007"));
        check(&text);
        // Unbalanced: only openers.
        check(&open.repeat(100_000));
    }
}

#[test]
fn long_operator_chains_are_rejected_not_overflowed() {
    let n = 100_000;
    let cases = [
        format!("fn f() {{ {} }}", vec!["a"; n].join(" + ")),
        format!("fn f() {{ {} }}", vec!["a"; n].join(" || ")),
        format!("fn f() {{ let x = {}a; }}", "-".repeat(n)),
        format!("fn f() {{ let x = {}a; }}", "!".repeat(n)),
        format!("fn f() {{ let x = a{}; }}", " as f32".repeat(n)),
        format!("fn f() {{ let x = a{}; }}", "[:]".repeat(n)),
        format!("fn f(x: {}f32) {{ }}", "*".repeat(n)),
        format!("fn f() {{ if a {{ }}{} }}", " else if a { }".repeat(n / 10)),
        format!(
            "fn f() {{ let x = if a {{ 1 }}{} else {{ 2 }}; }}",
            " else if a { 1 }".repeat(n / 10)
        ),
        format!("fn f() {{ let x = {}; }}", vec!["a"; n].join(" < ")),
    ];
    for text in &cases {
        let diags = parse_err(text);
        assert!(
            diags.iter().any(|d| d.code == "E0008"),
            "{}",
            render(text, &diags[..diags.len().min(3)])
        );
        assert!(diags.iter().filter(|d| d.code == "E0008").count() == 1);
        check(text);
    }
}

/// Inputs on which error recovery could go quadratic (deep parser stacks, many dropped tokens,
/// many errors). They finish in well under a second each when it is linear.
#[test]
fn adversarial_recovery_stays_linear() {
    let n = 50_000;
    let cases = [
        format!("fn f() {{ let x = {}{} }}", "-".repeat(n), ")".repeat(n)),
        format!("fn f() {{ if a {{}}{}{} }}", " else if a {}".repeat(n), ")".repeat(n)),
        format!("fn f(x: {}{}", "*".repeat(n), ")".repeat(n)),
        format!("{}{}{}", "fn f() {".repeat(127), "-".repeat(n), ")".repeat(n)),
        format!("{}{}", "fn f() { if a { ".repeat(63), ")".repeat(n)),
        format!("fn f() {{ {} {} }}", "if a { ".repeat(126), "let = ;".repeat(n / 10)),
        format!("fn f() {{ {} {} }}", "f(".repeat(126), ", , ".repeat(n)),
        format!("fn f() {{ {} {} }}", "f([(".repeat(42), "} ".repeat(n)),
    ];
    for text in &cases {
        check(text);
    }
}

#[test]
fn long_flat_code_is_fine() {
    let n = 20_000;
    parse_ok(&format!("fn f() {{ let x = [{}]; }}", vec!["a"; n].join(", ")));
    parse_ok(&format!("fn f() {{ g({}); }}", vec!["a"; n].join(", ")));
    parse_ok(&format!("fn f() {{ {} }}", "let a = b + c * d;\n".repeat(n)));
    parse_ok(&"fn f() { if a { } }\n".repeat(n / 10));
}

#[test]
fn many_errors_do_not_blow_up() {
    let text = "fn f() { let = ; }\n".repeat(5000);
    let diags = parse_err(&text);
    assert_eq!(diags.len(), 5000);
    let text = "@".repeat(100_000);
    assert_eq!(parse_err(&text).len(), 1);
}
