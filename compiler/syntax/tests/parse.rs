//! The parser produces the expected AST for every construct of the surface syntax.

mod common;

use common::*;
use tk_diag::Span;
use tk_syntax::ast::*;

fn sp(start: usize, end: usize) -> Span {
    Span::new(FILE, start, end)
}

#[test]
fn example_program_parses() {
    let file = parse_ok(include_str!("example.tk"));
    let kinds: Vec<String> = file
        .items
        .iter()
        .map(|i| match i {
            Item::Import(i) => format!("import {:?}", i.target),
            Item::Const(c) => format!("const {}", c.name.name),
            Item::Func(f) => format!("{:?} {}", f.kind, f.name.name),
        })
        .collect();
    assert_eq!(kinds.len(), 5);
    assert!(kinds[0].starts_with("import Module"));
    assert_eq!(&kinds[1..], ["const WARPS", "Kernel softmax", "Helper gelu", "Kernel mm"]);

    let Item::Func(mm) = &file.items[4] else { panic!() };
    let shown: Vec<String> = mm.body.stmts.iter().map(show_stmt).collect();
    assert_eq!(shown.len(), 10);
    assert_eq!(shown[3], "(let mut acc (call zeros [BM BN] f32))");
    assert_eq!(
        shown[4],
        "(for k 0 K BK {(let a_tile (call load (+ (+ a (* (index rm : None) K)) \
         (index (+ k rk) None :)) mask=(&& (< (index rm : None) M) (< (index (+ k rk) None :) K)) \
         other=0.0)) (= acc (call dot a_tile a_tile acc)) (+= acc 1.0)})"
    );
    assert_eq!(shown[5], "(let (vals idx) (call topk acc 8))");
    assert_eq!(
        shown[6],
        "(if (== pm 0) {(call store c acc);} {(if (> pm 3) {(call print \"hi\" pm);} \
         {(call device_assert (< pm 9) \"bad\");})})"
    );
    assert_eq!(shown[7], "(static_for i 0 4 {(let t (as i f32))})");
    assert_eq!(shown[8], "(let s (if (> pm 0) {1} {2}))");
    assert_eq!(shown[9], "(let v (>> (+ 4096 1000) 2))");
}

#[test]
fn imports() {
    let file = parse_ok("import activations;\nimport \"lib/my \\\"x\\\".tk\";");
    assert_eq!(
        file.items[0],
        Item::Import(Import {
            target: ImportTarget::Module(Ident { name: "activations".into(), span: sp(7, 18) }),
            span: sp(0, 19),
        })
    );
    let Item::Import(i) = &file.items[1] else { panic!() };
    assert_eq!(i.target, ImportTarget::Path("lib/my \"x\".tk".into()));
    assert_eq!(i.span, sp(20, 45));
}

#[test]
fn consts() {
    let file = parse_ok("const A: i32 = 4;\nconst B = -1.5e3;");
    let Item::Const(a) = &file.items[0] else { panic!() };
    assert_eq!(a.name.name, "A");
    assert_eq!(a.ty.as_ref().map(show_type).as_deref(), Some("i32"));
    assert_eq!(show_expr(&a.value), "4");
    assert_eq!(a.span, sp(0, 17));
    let Item::Const(b) = &file.items[1] else { panic!() };
    assert!(b.ty.is_none());
    assert_eq!(show_expr(&b.value), "(neg 1500.0)");
}

#[test]
fn function_signatures() {
    let src = "#[autotune(BLOCK = [64, 128], num_warps = [4, 8],)]\n#[inline]\n\
               kernel k<B: i32 = 64, C: i32 = -1, D: bool = true, E: i32 = (B * 2), F: i64 = N,>\
               (x: *f32, n: i32,) {}\n\
               fn h(a, b: f32[B, 16]) -> (f32, *i32) { a }";
    let file = parse_ok(src);
    let Item::Func(k) = &file.items[0] else { panic!() };
    assert_eq!(k.kind, FuncKindAst::Kernel);
    assert_eq!(k.attributes.len(), 2);
    assert_eq!(k.attributes[0].name.name, "autotune");
    let args: Vec<String> =
        k.attributes[0].args.iter().map(|(n, e)| format!("{}={}", n.name, show_expr(e))).collect();
    assert_eq!(args, ["BLOCK=[64 128]", "num_warps=[4 8]"]);
    assert_eq!(k.attributes[0].span, sp(0, 51));
    assert_eq!(k.attributes[1].name.name, "inline");
    assert!(k.attributes[1].args.is_empty());
    let cps: Vec<String> = k
        .const_params
        .iter()
        .map(|c| {
            format!(
                "{}:{}={}",
                c.name.name,
                show_type(&c.ty),
                c.default.as_ref().map(show_expr).unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(cps, ["B:i32=64", "C:i32=(neg 1)", "D:bool=true", "E:i32=(* B 2)", "F:i64=N"]);
    let ps: Vec<String> = k
        .params
        .iter()
        .map(|p| format!("{}:{}", p.name.name, p.ty.as_ref().map(show_type).unwrap_or_default()))
        .collect();
    assert_eq!(ps, ["x:*f32", "n:i32"]);
    assert!(k.ret.is_none());
    // The function span starts at `kernel`, after the attributes.
    assert_eq!(&src[k.span.start as usize..k.span.start as usize + 6], "kernel");
    assert!(src[..k.span.end as usize].ends_with("{}"));

    let Item::Func(h) = &file.items[1] else { panic!() };
    assert_eq!(h.kind, FuncKindAst::Helper);
    assert!(h.const_params.is_empty());
    assert!(h.params[0].ty.is_none());
    assert_eq!(h.params[1].ty.as_ref().map(show_type).as_deref(), Some("f32[B 16]"));
    assert_eq!(h.ret.as_ref().map(show_type).as_deref(), Some("(f32, *i32)"));
    assert_eq!(show_block(&h.body), "{a}");
}

#[test]
fn const_param_without_default() {
    let file = parse_ok("kernel k<BLOCK: i32>(x: *f32) {}");
    let Item::Func(k) = &file.items[0] else { panic!() };
    assert_eq!(k.const_params[0].name.name, "BLOCK");
    assert!(k.const_params[0].default.is_none());
}

#[test]
fn let_forms() {
    let b = body(
        "fn f() { let a = 1; let mut b: f32[4] = 2.0; let (c, d) = t; let (e) = 3; \
         let (g,) = u; let mut (h, i,): (f32, f32) = v; }",
    );
    let shown: Vec<String> = b.stmts.iter().map(show_stmt).collect();
    assert_eq!(
        shown,
        [
            "(let a 1)",
            "(let mut b: f32[4] 2.0)",
            "(let (c d) t)",
            "(let e 3)",
            "(let (g) u)",
            "(let mut (h i): (f32, f32) v)",
        ]
    );
    assert_eq!(b.stmts[0].span, sp(9, 19));
}

#[test]
fn assignments() {
    let b = body(
        "fn f() { a = 1; a += 1; a -= 1; a *= 1; a /= 1; a %= 1; a &= 1; a |= 1; a ^= 1; \
         a <<= 1; a >>= 1; }",
    );
    let ops: Vec<Option<BinOp>> = b
        .stmts
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Assign { op, .. } => *op,
            other => panic!("not an assignment: {other:?}"),
        })
        .collect();
    use BinOp::*;
    assert_eq!(
        ops,
        [
            None,
            Some(Add),
            Some(Sub),
            Some(Mul),
            Some(Div),
            Some(Rem),
            Some(BitAnd),
            Some(BitOr),
            Some(BitXor),
            Some(Shl),
            Some(Shr)
        ]
    );
}

#[test]
fn for_loops() {
    let b = body(
        "fn f() { for i in range(0, n) { x += i; } for j in static_range(0, 8, 2,) {} \
         for k in range(a + 1, b * 2, s) {} }",
    );
    let shown: Vec<String> = b.stmts.iter().map(show_stmt).collect();
    assert_eq!(
        shown,
        ["(for i 0 n {(+= x i)})", "(static_for j 0 8 2 {})", "(for k (+ a 1) (* b 2) s {})"]
    );
}

#[test]
fn if_statements() {
    let b = body(
        "fn f() { if a { x = 1; } if b { } else { y(); } \
         if c { } else if d { } else if e { z(); } else { w(); } }",
    );
    let shown: Vec<String> = b.stmts.iter().map(show_stmt).collect();
    assert_eq!(
        shown,
        [
            "(if a {(= x 1)})",
            "(if b {} {(call y);})",
            "(if c {} {(if d {} {(if e {(call z);} {(call w);})})})",
        ]
    );
    // The synthesized else block of `else if` spans the inner `if`.
    let StmtKind::If { else_block: Some(eb), .. } = &b.stmts[2].kind else { panic!() };
    assert_eq!(eb.stmts.len(), 1);
    assert_eq!(eb.span, eb.stmts[0].span);
}

#[test]
fn if_at_statement_position_is_a_statement() {
    let b = body("fn f(c) { if c { 1 } else { 2 } }");
    assert!(b.tail.is_none());
    assert_eq!(show_stmt(&b.stmts[0]), "(if c {1} {2})");
}

#[test]
fn if_expressions() {
    assert_eq!(sx("if c { a } else { b }"), "(if c {a} {b})");
    assert_eq!(
        sx("if c { a } else if d { let t = 1; t } else { b }"),
        "(if c {a} {(if d {(let t 1) t} {b})})"
    );
    assert_eq!(sx("f(if c { 1 } else { 2 }, k: 3)"), "(call f (if c {1} {2}) k=3)");
    assert_eq!(sx("(if c { 1 } else { 2 }) + 1"), "(+ (if c {1} {2}) 1)");
}

#[test]
fn return_and_expression_statements() {
    let b = body("fn f() { store(p, v); return; return x + 1; ; g(); }");
    let shown: Vec<String> = b.stmts.iter().map(show_stmt).collect();
    assert_eq!(shown, ["(call store p v);", "(return)", "(return (+ x 1))", "(call g);"]);
}

#[test]
fn block_tail() {
    let b = body("fn f(x) { let y = x; y * 2 }");
    assert_eq!(show_block(&b), "{(let y x) (* y 2)}");
    assert_eq!(b.span, sp(8, 28));
}

#[test]
fn precedence() {
    assert_eq!(sx("a + b * c"), "(+ a (* b c))");
    assert_eq!(sx("a * b + c"), "(+ (* a b) c)");
    assert_eq!(sx("a - b - c"), "(- (- a b) c)");
    assert_eq!(sx("x as f16 * y"), "(* (as x f16) y)");
    assert_eq!(sx("y * x as f16"), "(* y (as x f16))");
    assert_eq!(sx("-x as f32"), "(as (neg x) f32)");
    assert_eq!(sx("x as i32 as *f32"), "(as (as x i32) *f32)");
    assert_eq!(sx("-a[:, None]"), "(neg (index a : None))");
    assert_eq!(sx("!a[None][:]"), "(not (index (index a None) :))");
    assert_eq!(sx("- -a"), "(neg (neg a))");
    assert_eq!(sx("a || b && c"), "(|| a (&& b c))");
    assert_eq!(sx("a && b || c"), "(|| (&& a b) c)");
    assert_eq!(sx("a < b && c >= d"), "(&& (< a b) (>= c d))");
    assert_eq!(sx("a | b ^ c & d"), "(| a (^ b (& c d)))");
    assert_eq!(sx("a == b | c"), "(== a (| b c))");
    assert_eq!(sx("1 << 2 + 3"), "(<< 1 (+ 2 3))");
    assert_eq!(sx("a & b << c"), "(& a (<< b c))");
    assert_eq!(sx("a % b / c * d"), "(* (/ (% a b) c) d)");
    assert_eq!(sx("(a + b) * c"), "(* (+ a b) c)");
    assert_eq!(sx("(a < b) == (c < d)"), "(== (< a b) (< c d))");
    assert_eq!(sx("a != b"), "(!= a b)");
    assert_eq!(sx("a <= b"), "(<= a b)");
    assert_eq!(sx("a > b"), "(> a b)");
    assert_eq!(sx("a >> 1"), "(>> a 1)");
}

#[test]
fn primaries() {
    assert_eq!(sx("0x10_00"), "4096");
    assert_eq!(sx("0XfF"), "255");
    assert_eq!(sx("1_000"), "1000");
    assert_eq!(sx("18446744073709551615"), "18446744073709551615");
    assert_eq!(sx("1.0"), "1.0");
    assert_eq!(sx("1e-5"), "1e-5");
    assert_eq!(sx("2.5E3"), "2500.0");
    assert_eq!(sx("true"), "true");
    assert_eq!(sx("false"), "false");
    assert_eq!(sx(r#""a\"b\\c\n""#), r#""a\"b\\c\n""#);
    assert_eq!(sx("inf"), "inf");
    assert_eq!(sx("-nan"), "(neg nan)");
    assert_eq!(sx("(a)"), "a");
    assert_eq!(sx("()"), "(tuple )");
    assert_eq!(sx("(a,)"), "(tuple a)");
    assert_eq!(sx("(a, b, c)"), "(tuple a b c)");
    assert_eq!(sx("[]"), "[]");
    assert_eq!(sx("[a, 1, [2]]"), "[a 1 [2]]");
    assert_eq!(sx("f()"), "(call f)");
    assert_eq!(sx("f(a, b: 2, c,)"), "(call f a b=2 c)");
    assert_eq!(sx("f(x)[:, None,]"), "(index (call f x) : None)");
}

#[test]
fn expression_spans() {
    let e = expr("a + b * c");
    // `fn f() { let _x = ` is 18 bytes.
    assert_eq!(e.span, sp(18, 27));
    let ExprKind::Binary(_, a, bc) = &e.kind else { panic!() };
    assert_eq!(a.span, sp(18, 19));
    assert_eq!(bc.span, sp(22, 27));

    // Parentheses are not a node, but the parent's span covers them.
    let e = expr("(k + rk)[None, :]");
    assert_eq!(e.span, sp(18, 35));
    let ExprKind::Index(inner, items) = &e.kind else { panic!() };
    assert_eq!(inner.span, sp(19, 25));
    assert_eq!(items, &[IndexItem::NewAxis(sp(27, 31)), IndexItem::Full(sp(33, 34))]);

    let e = expr("load(p, mask: m)");
    let ExprKind::Call(f, args) = &e.kind else { panic!() };
    assert_eq!(f.span, sp(18, 22));
    assert_eq!(args[1].name.as_ref().map(|n| n.span), Some(sp(26, 30)));
    assert_eq!(args[1].value.span, sp(32, 33));
}

#[test]
fn comments_anywhere() {
    let file = parse_ok(
        "// leading\nkernel /* inline */ k(/* none */) { // trailing\n let /**/ x = 1; /* multi\n \
         line */ }\n// end",
    );
    assert_eq!(file.items.len(), 1);
}

#[test]
fn empty_file() {
    assert_eq!(parse_ok(""), File { items: vec![] });
    assert_eq!(parse_ok("  // only a comment\n"), File { items: vec![] });
}

#[test]
fn deep_but_allowed_nesting() {
    // 127 parentheses inside the body's braces: exactly the limit of 128 brackets.
    let src = format!("fn f() {{ {}x{} }}", "(".repeat(127), ")".repeat(127));
    assert_eq!(show_block(&body(&src)), "{x}");
    // Long but flat code is fine.
    let sum = vec!["a"; 200].join(" + ");
    parse_ok(&format!("fn f() {{ {sum} }}"));
}
