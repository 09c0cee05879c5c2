//! Syntax errors are reported in the user's terms, at the right span, several per file.

mod common;

use common::*;
use tk_diag::Diagnostic;

/// `(code, message, text under the primary span)` for each diagnostic.
fn summary(text: &str) -> Vec<(&'static str, String, String)> {
    parse_err(text)
        .iter()
        .map(|d| {
            let (s, e) = (d.span.start as usize, d.span.end as usize);
            (d.code, d.message.clone(), text[s..e].to_string())
        })
        .collect()
}

fn one(text: &str) -> Diagnostic {
    let diags = parse_err(text);
    assert_eq!(diags.len(), 1, "expected one error:\n{}", render(text, &diags));
    diags.into_iter().next().unwrap()
}

fn s(code: &'static str, msg: &str, at: &str) -> (&'static str, String, String) {
    (code, msg.to_string(), at.to_string())
}

#[test]
fn missing_semicolon_before_brace() {
    let text = "kernel f() { let x = 1 }";
    let d = one(text);
    assert_eq!(d.code, "E0010");
    assert_eq!(d.message, "expected `;`, found `}`");
    assert_eq!((d.span.start, d.span.end), (23, 24));
    assert_eq!(d.help.as_deref(), Some("end the statement with `;`"));
    // The secondary label points just after `1`.
    assert_eq!((d.labels[0].span.start, d.labels[0].span.end), (22, 22));
    let rendered = render(text, &[d]);
    assert!(rendered.contains("error[E0010]: expected `;`, found `}`"), "{rendered}");
    assert!(rendered.contains("help: end the statement with `;`"), "{rendered}");
}

#[test]
fn missing_semicolon_between_statements() {
    assert_eq!(
        summary("kernel f() {\n    let x = 1\n    let y = 2;\n    x = y\n}"),
        [
            s("E0010", "expected `;`, found keyword `let`", "let"),
            s("E0010", "expected `;`, found `}`", "}"),
        ]
    );
}

#[test]
fn several_errors_in_one_file() {
    let text = "\
kernel a(x: *f32) {
    foo(a b c);
    let y = ;
    let ok = 1;
}
const C = 1 2;
fn b() { bar(; }
kernel c(x y) { }
";
    assert_eq!(
        summary(text),
        [
            s("E0010", "expected `,` or `)`, found identifier `b`", "b"),
            s("E0010", "expected an expression, found `;`", ";"),
            s("E0010", "expected `;`, found integer literal `2`", "2"),
            s("E0010", "expected `)` or an expression, found `;`", ";"),
            s("E0010", "expected one of `,`, `)` or `:`, found identifier `y`", "y"),
        ]
    );
}

#[test]
fn errors_in_nested_blocks_resynchronise_at_the_brace() {
    assert_eq!(
        summary("fn f() { if c { g( } else { h(1 2); } let z = ; }"),
        [
            s("E0010", "expected `)` or an expression, found `}`", "}"),
            s("E0010", "expected `,` or `)`, found integer literal `2`", "2"),
            s("E0010", "expected an expression, found `;`", ";"),
        ]
    );
}

#[test]
fn unexpected_characters() {
    assert_eq!(
        summary("kernel f() { let x = a @ b; let y = c $$ d; }"),
        [
            s("E0001", "unexpected character `@`", "@"),
            s("E0001", "unexpected characters `$$`", "$$"),
        ]
    );
    let d = one("fn f() { let c = 'a'; }");
    assert_eq!(d.code, "E0001");
    assert_eq!(d.message, "unexpected character literal `'a'`");
    assert!(d.help.as_deref().unwrap_or("").contains("double quotes"));
}

#[test]
fn unterminated_string_and_comment() {
    assert_eq!(
        summary("fn f() { print(\"abc); }\n"),
        [s("E0002", "unterminated string literal", "\"")]
    );
    assert_eq!(
        summary("fn f() { } /* never closed"),
        [s("E0003", "unterminated block comment", "/*")]
    );
}

#[test]
fn bad_literals() {
    assert_eq!(
        summary(
            "const A = 18446744073709551616;\nconst B = 0x1_0000_0000_0000_0000;\nconst C = 0x;"
        ),
        [
            s(
                "E0004",
                "integer literal `18446744073709551616` is too large",
                "18446744073709551616"
            ),
            s(
                "E0004",
                "integer literal `0x1_0000_0000_0000_0000` is too large",
                "0x1_0000_0000_0000_0000"
            ),
            s("E0005", "hexadecimal literal has no digits", "0x"),
        ]
    );
    assert_eq!(
        summary("const A = 1e400;"),
        [s("E0005", "float literal `1e400` is out of range for f64", "1e400")]
    );
    assert_eq!(summary(r#"const A = "a\tb";"#), [s("E0006", "unknown escape `\\t`", "\\t")]);
}

#[test]
fn bad_for_loops() {
    assert_eq!(
        summary("fn f() { for i in foo(0, 4) { } }"),
        [s("E0012", "expected `range(...)` or `static_range(...)`, found `foo`", "foo")]
    );
    assert_eq!(
        summary("fn f() { for i in 10 { } }"),
        [s(
            "E0012",
            "expected `range(...)` or `static_range(...)`, found integer literal `10`",
            "10"
        )]
    );
    assert_eq!(
        summary("fn f() { for i in range(4) { } for j in static_range(0, 1, 2, 3) { } }"),
        [
            s("E0012", "`range` takes 2 or 3 arguments, found 1", "(4)"),
            s("E0012", "`static_range` takes 2 or 3 arguments, found 4", "(0, 1, 2, 3)"),
        ]
    );
    assert_eq!(
        summary("fn f() { for i in range(0, n, step: 2) { } }"),
        [s("E0012", "`range` takes no keyword arguments", "step")]
    );
    // An error later in the header is an ordinary syntax error.
    assert_eq!(
        summary("fn f() { for i in range { } }"),
        [s("E0010", "expected `(`, found `{`", "{")]
    );
}

#[test]
fn chained_comparison() {
    let d = one("fn f() { let m = 0 < x < n; }");
    assert_eq!(d.code, "E0013");
    assert_eq!(d.message, "comparison operators cannot be chained");
    assert!(d.help.as_deref().unwrap_or("").contains("&&"));
    // Parenthesised, it is an ordinary (if unusual) comparison of a bool.
    parse_ok("fn f() { let m = (0 < x) == b; }");
}

#[test]
fn const_param_default_needs_parentheses() {
    let d = one("kernel k<B: i32 = 2 * 64>() { }");
    assert_eq!(d.message, "expected `,` or `>`, found `*`");
    assert!(d.help.as_deref().unwrap_or("").contains("(2 * 64)"));
}

#[test]
fn index_items() {
    let d = one("fn f() { let y = x[0]; }");
    assert_eq!(d.message, "expected `:` or `None`, found integer literal `0`");
    assert!(d.help.as_deref().unwrap_or("").contains("x[:, None]"));
    let d = one("fn f() { let y = None; }");
    assert_eq!(d.message, "expected an expression, found keyword `None`");
}

#[test]
fn item_level_errors() {
    assert_eq!(
        summary("let x = 1;\nkernel k() { }\n}"),
        [
            s(
                "E0010",
                "expected an item (`kernel`, `fn`, `const` or `import`), found keyword `let`",
                "let"
            ),
            s("E0010", "expected an item (`kernel`, `fn`, `const` or `import`), found `}`", "}"),
        ]
    );
    assert_eq!(
        summary("kernel 1() {}"),
        [s("E0010", "expected identifier, found integer literal `1`", "1")]
    );
    assert_eq!(
        summary("import;"),
        [s("E0010", "expected identifier or string literal, found `;`", ";")]
    );
}

#[test]
fn if_expression_needs_else() {
    assert_eq!(
        summary("fn f() { let x = if c { 1 }; }"),
        [s("E0010", "expected `else`, found `;`", ";")]
    );
}

#[test]
fn unexpected_end_of_file() {
    let text = "kernel f(x: *f32) {\n    let y = x;\n";
    let d = one(text);
    assert_eq!(d.code, "E0011");
    assert_eq!(d.message, "expected `}` or a statement, found end of file");
    assert_eq!((d.span.start as usize, d.span.end as usize), (text.len(), text.len()));
    assert_eq!(d.labels[0].message, "this `{` is never closed");
    assert_eq!((d.labels[0].span.start, d.labels[0].span.end), (18, 19));
}

#[test]
fn too_deep_nesting_is_rejected_before_parsing() {
    let text = format!("fn f() {{ {}x{} }}", "(".repeat(128), ")".repeat(128));
    let d = one(&text);
    assert_eq!(d.code, "E0007");
    assert_eq!(d.message, "brackets are nested more than 128 levels deep");
    // The 129th bracket: `{` plus 127 parentheses come before it.
    assert_eq!(d.span.start as usize, "fn f() { ".len() + 127);
}

#[test]
fn assigning_to_an_expression() {
    let d = one("fn f() { a[:, None] = 1; }");
    assert_eq!(d.message, "expected `;`, found `=`");
    assert_eq!(d.help.as_deref(), Some("only a variable can be assigned to, as in `x = value;`"));
}

#[test]
fn if_expression_as_operand_needs_parentheses() {
    let d = one("fn f() { let x = 1 + if c { 1 } else { 2 }; }");
    assert_eq!(d.message, "expected an expression, found keyword `if`");
    assert!(d.help.as_deref().unwrap_or("").contains("(if c { a } else { b })"));
    parse_ok("fn f() { let x = 1 + (if c { 1 } else { 2 }); }");
}
