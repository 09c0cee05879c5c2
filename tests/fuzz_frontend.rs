//! Bounded, seeded fuzzing of the whole front half of the compiler: lexing, parsing, checking,
//! lowering, IR verification and the pass pipeline (`tk_driver::compile_source`).
//!
//! Four generators feed it, each deterministic from a fixed seed:
//! - **soup**: random sequences of the language's tokens, keywords, builtins, names and literals;
//! - **mutants**: the stdlib kernels with a few token- or byte-level edits (delete, duplicate,
//!   swap, replace, numbers set to 0 / -1 / huge, dtypes swapped), sometimes with `-D` overrides;
//! - **bytes**: raw random bytes (read as lossy UTF-8, as the driver reads files);
//! - **typed**: random kernels built with some knowledge of shapes and dtypes, so that many of them
//!   get through checking and exercise lowering and the passes (and the rest exercise type errors).
//!
//! Every input must compile without a panic and without an internal compiler error (`ICE...`), and
//! an input without errors must come out with optimised, verified IR. The first input of each
//! distinct failure is reported with its program, so it can be reproduced with `tkc check`.
//! `TK_FUZZ_SCALE=N` runs N times as many programs (same seeds) for a longer local search;
//! `fuzz/` holds the coverage-guided (cargo-fuzz) version.
//!
//! Valid programs that once failed are kept in [`VALID_REGRESSIONS`]; wrong ones become cases in
//! `tests/cases/diagnostics/`.

use crate::diagnostics::panic_message;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;
use tk_driver::{compile_source, CompileOptions};

/// Programs per generator: 20,000 in all (at least 10,000 are required), about 10 s in the test
/// profile on a 2-core machine.
const SOUP: usize = 4000;
const MUTANTS: usize = 8000;
const BYTES: usize = 2000;
const TYPED: usize = 6000;

const KEYWORDS: &[&str] = &[
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
];
const PUNCT: &[&str] = &[
    "(", ")", "[", "]", "{", "}", ",", ";", ":", "#", "->", "=", "+", "-", "*", "/", "%", "&", "|",
    "^", "<<", ">>", "&&", "||", "!", "==", "!=", "<", "<=", ">", ">=", "+=", "-=", "*=", "/=",
    "%=", "&=", "|=", "^=", "<<=", ">>=",
];
/// The builtin names, from the frontend itself so the fuzzer never goes stale.
use tk_frontend::BUILTINS;
const DTYPES: &[&str] =
    &["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f16", "bf16", "f32", "f64"];
const NAMES: &[&str] = &[
    "x", "y", "n", "offs", "mask", "acc", "BLOCK", "K", "v", "i", "inf", "nan", "axis", "mask",
    "other", "k", "a",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "16",
    "64",
    "160",
    "1024",
    "4096",
    "65536",
    "16777216",
    "16777217",
    "2147483647",
    "2147483648",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "99999999999999999999",
    "0x",
    "0xFF",
    "0xFFFFFFFFFFFFFFFF",
    "1_000",
    "0.5",
    "1e30",
    "1e400",
    "1.5e-45",
    "3.0",
];
const STRINGS: &[&str] =
    &["\"ieee\"", "\"tf32\"", "\"msg\"", "\"\\q\"", "\"unterminated", "\"\"", "'c'"];

/// The stdlib and example kernels, embedded so the test does not depend on the working directory.
const SEEDS: &[(&str, &str)] = &[
    ("vector_add.tk", include_str!("../stdlib/vector_add.tk")),
    ("activations.tk", include_str!("../stdlib/activations.tk")),
    ("softmax.tk", include_str!("../stdlib/softmax.tk")),
    ("layernorm.tk", include_str!("../stdlib/layernorm.tk")),
    ("rmsnorm.tk", include_str!("../stdlib/rmsnorm.tk")),
    ("matmul.tk", include_str!("../stdlib/matmul.tk")),
    ("moe_gating.tk", include_str!("../stdlib/moe_gating.tk")),
    ("swiglu.tk", include_str!("../examples/swiglu.tk")),
];

/// A program generator: the source text and the `-D` overrides to compile it with.
type Generator = dyn FnMut(&mut ChaCha8Rng) -> (String, Vec<(String, String)>);

/// Compiles one input; `Ok(true)` when it compiled without errors, `Err` describes a panic, an
/// ICE, or a success without verified IR.
fn check(text: &str, defines: &[(String, String)]) -> Result<bool, String> {
    let opts = CompileOptions { defines: defines.to_vec(), ..CompileOptions::default() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let c = compile_source("fuzz.tk", text, &opts);
        let ices: Vec<String> = c
            .diagnostics
            .iter()
            .filter(|d| d.code.starts_with("ICE"))
            .map(|d| format!("{}: {} {:?}", d.code, d.message, d.notes))
            .collect();
        // Rendering is part of reporting: it must not panic either (e.g. on a span that splits
        // a multi-byte character).
        let _ = c.render_plain();
        (c.has_errors(), c.optimized.is_some(), ices, misplaced(&c))
    }));
    match result {
        Err(payload) => Err(format!("panic: {}", panic_message(payload.as_ref()))),
        Ok((_, _, _, Some(bad))) => Err(bad),
        Ok((_, _, ices, _)) if !ices.is_empty() => {
            Err(format!("internal compiler error: {}", ices.join("; ")))
        }
        Ok((false, false, _, _)) => Err("no errors, but no optimised IR either".to_string()),
        Ok((has_errors, _, _, _)) => Ok(!has_errors),
    }
}

/// A diagnostic whose span is not a range of its file, described; `None` when all are in place.
/// Diagnostics without a location at all are allowed only for `-D` overrides, which have none.
fn misplaced(c: &tk_driver::Compilation) -> Option<String> {
    let files: Vec<usize> = c.sources.iter().map(|(_, f)| f.text.len()).collect();
    c.diagnostics.iter().find_map(|d| {
        let s = d.span;
        let ok = if s.is_dummy() {
            d.code.starts_with("W08") || d.code.starts_with("E08") || d.code.starts_with("ICE")
        } else {
            files
                .get(s.file.0 as usize)
                .is_some_and(|&len| s.start <= s.end && s.end as usize <= len)
        };
        (!ok).then(|| format!("diagnostic {} `{}` has the span {s:?}", d.code, d.message))
    })
}

/// Runs `count` inputs from `generate`; returns how many compiled cleanly, and the failures (the
/// first input of each distinct kind of failure, at most [`MAX_REPORTED`]).
fn run(
    what: &str,
    seed: u64,
    count: usize,
    mut generate: impl FnMut(&mut ChaCha8Rng) -> (String, Vec<(String, String)>),
) -> (usize, Vec<String>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut clean = 0;
    let mut kinds: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for i in 0..count {
        let (text, defines) = generate(&mut rng);
        match check(&text, &defines) {
            Ok(ok) => clean += usize::from(ok),
            Err(why) => {
                let kind: String = why.chars().filter(|c| !c.is_ascii_digit()).take(120).collect();
                if kinds.contains(&kind) || failures.len() >= MAX_REPORTED {
                    continue;
                }
                kinds.push(kind);
                failures.push(format!(
                    "{what} #{i} (seed {seed:#x}): {why}\ndefines: {defines:?}\nprogram ({} bytes):\n{text}\n--- escaped: {text:?}",
                    text.len()
                ));
            }
        }
    }
    (clean, failures)
}

/// Distinct failures reported per generator.
const MAX_REPORTED: usize = 4;

fn pick<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs.choose(rng).copied().unwrap_or("")
}

/// `TK_FUZZ_SCALE=N` multiplies every count, for longer local runs (the seeds stay fixed, so a
/// larger scale runs the default inputs first, then more).
fn scale() -> usize {
    std::env::var("TK_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

// ---- (a) token soup -------------------------------------------------------------------------

fn soup(rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(0..60);
    let mut out = String::new();
    // Half of the inputs start like a kernel, so the parser gets past the item level.
    if rng.gen_bool(0.5) {
        out.push_str("kernel k<B: i32 = 16>(x: *f32, n: i32) { ");
    }
    for _ in 0..n {
        let tok = match rng.gen_range(0..10) {
            0 | 1 => pick(rng, KEYWORDS),
            2..=4 => pick(rng, PUNCT),
            5 => pick(rng, BUILTINS),
            6 => pick(rng, DTYPES),
            7 => pick(rng, NAMES),
            8 => pick(rng, NUMBERS),
            _ => pick(rng, STRINGS),
        };
        out.push_str(tok);
        out.push(if rng.gen_bool(0.1) { '\n' } else { ' ' });
    }
    if out.starts_with("kernel") && rng.gen_bool(0.7) {
        out.push('}');
    }
    out
}

// ---- (b) mutants of valid programs ----------------------------------------------------------

/// Byte ranges of the tokens of `text` (comments and whitespace are not tokens).
fn token_ranges(text: &str) -> Vec<(usize, usize)> {
    tk_syntax::lexer::lex(tk_diag::FileId(0), text)
        .tokens
        .iter()
        .map(|(s, _, e)| (*s, *e))
        .collect()
}

fn random_token(rng: &mut ChaCha8Rng) -> &'static str {
    match rng.gen_range(0..6) {
        0 => pick(rng, KEYWORDS),
        1 | 2 => pick(rng, PUNCT),
        3 => pick(rng, BUILTINS),
        4 => pick(rng, DTYPES),
        _ => pick(rng, NUMBERS),
    }
}

/// One edit of `text`, at token level when it has tokens.
fn mutate_once(rng: &mut ChaCha8Rng, text: &str) -> String {
    let toks = token_ranges(text);
    if toks.is_empty() || text.is_empty() {
        return format!("{text}{}", random_token(rng));
    }
    let (s, e) = toks[rng.gen_range(0..toks.len())];
    let tok = &text[s..e];
    let splice = |with: &str| format!("{}{}{}", &text[..s], with, &text[e..]);
    match rng.gen_range(0..10) {
        0 => splice(""),
        1 => splice(&format!("{tok} {tok}")),
        2 => {
            let (s2, e2) = toks[rng.gen_range(0..toks.len())];
            if s2 >= e {
                format!("{}{}{}{}{}", &text[..s], &text[s2..e2], &text[e..s2], tok, &text[e2..])
            } else if e2 <= s {
                format!("{}{}{}{}{}", &text[..s2], tok, &text[e2..s], &text[s2..e2], &text[e..])
            } else {
                splice("")
            }
        }
        3 => splice(random_token(rng)),
        4 => {
            // A number becomes an edge value.
            let nums: Vec<_> =
                toks.iter().filter(|(a, _)| text.as_bytes()[*a].is_ascii_digit()).collect();
            match nums.choose(rng) {
                Some(&&(a, b)) => {
                    let with = pick(
                        rng,
                        &[
                            "0",
                            "-1",
                            "1",
                            "3",
                            "160",
                            "4096",
                            "16777216",
                            "2147483648",
                            "99999999999",
                            "0.0",
                            "1e30",
                        ],
                    );
                    format!("{}{}{}", &text[..a], with, &text[b..])
                }
                None => splice(""),
            }
        }
        5 => {
            // A dtype becomes another dtype.
            let dts: Vec<_> =
                toks.iter().filter(|(a, b)| DTYPES.contains(&&text[*a..*b])).collect();
            match dts.choose(rng) {
                Some(&&(a, b)) => format!("{}{}{}", &text[..a], pick(rng, DTYPES), &text[b..]),
                None => splice(pick(rng, DTYPES)),
            }
        }
        6 => {
            // Delete a byte range (may cut tokens, comments and strings in half).
            let a = snap(text, rng.gen_range(0..text.len()));
            let b = snap(text, (a + rng.gen_range(1..40)).min(text.len()));
            format!("{}{}", &text[..a], &text[b..])
        }
        7 => {
            // Duplicate a byte range.
            let a = snap(text, rng.gen_range(0..text.len()));
            let b = snap(text, (a + rng.gen_range(1..80)).min(text.len()));
            format!("{}{}{}", &text[..b], &text[a..b], &text[b..])
        }
        8 => format!("{}{} {}", &text[..s], random_token(rng), &text[s..]),
        _ => {
            // Swap two statements' worth of text: everything between two `;`.
            let semis: Vec<usize> = text.match_indices(';').map(|(i, _)| i).collect();
            if semis.len() < 3 {
                return splice("");
            }
            let i = rng.gen_range(0..semis.len() - 2);
            let (a, b, c) = (semis[i] + 1, semis[i + 1] + 1, semis[i + 2] + 1);
            format!("{}{}{}{}", &text[..a], &text[b..c], &text[a..b], &text[c..])
        }
    }
}

/// The nearest char boundary at or below `i`.
fn snap(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutant(rng: &mut ChaCha8Rng) -> (String, Vec<(String, String)>) {
    let (_, seed_text) = SEEDS[rng.gen_range(0..SEEDS.len())];
    let mut text = seed_text.to_string();
    for _ in 0..rng.gen_range(1..=3) {
        text = mutate_once(rng, &text);
    }
    let mut defines = Vec::new();
    if rng.gen_bool(0.15) {
        let name = pick(rng, &["BLOCK", "BM", "BN", "BK", "K", "BLOCK_E", "RENORM", "NOPE"]);
        let value = pick(
            rng,
            &[
                "1",
                "3",
                "160",
                "0",
                "-1",
                "true",
                "1.5",
                "16777216",
                "99999999999999999999",
                "",
                "0x10",
            ],
        );
        defines.push((name.to_string(), value.to_string()));
    }
    (text, defines)
}

// ---- (c) raw bytes --------------------------------------------------------------------------

fn raw_bytes(rng: &mut ChaCha8Rng) -> String {
    let n = rng.gen_range(0..200);
    let bytes: Vec<u8> = (0..n)
        .map(|_| if rng.gen_bool(0.7) { rng.gen_range(0x20..0x7f) } else { rng.gen::<u8>() })
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---- (d) typed random kernels ---------------------------------------------------------------

/// What the generator believes about a value (it may be wrong on purpose: mistakes are fine).
#[derive(Clone, Debug)]
struct Ty {
    dt: &'static str,
    shape: Vec<u32>,
}

struct Gen<'r> {
    rng: &'r mut ChaCha8Rng,
    vars: Vec<(String, Ty)>,
    ptrs: Vec<(String, &'static str)>,
    helpers: Vec<(String, usize)>,
    next: usize,
    out: String,
    indent: usize,
}

const NUM_DTS: &[&str] = &["i32", "i64", "f32", "f16", "bf16", "f64", "u32", "i8", "u8"];
const FLOAT_DTS: &[&str] = &["f32", "f16", "bf16", "f64"];

impl Gen<'_> {
    fn fresh(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn dim(&mut self) -> u32 {
        *[1u32, 2, 3, 4, 8, 16, 32].choose(self.rng).expect("non-empty")
    }

    fn shape(&mut self) -> Vec<u32> {
        let rank = self.rng.gen_range(0..=2);
        (0..rank).map(|_| self.dim()).collect()
    }

    /// Offsets of `shape` (row-major) as an i32 or i64 block expression.
    fn offsets(&mut self, shape: &[u32]) -> String {
        let base = match shape.len() {
            0 => "0".to_string(),
            1 => format!("arange(0, {})", shape[0]),
            2 => format!(
                "arange(0, {})[:, None] * {} + arange(0, {})[None, :]",
                shape[0], shape[1], shape[1]
            ),
            _ => {
                let n: u32 = shape.iter().product();
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                format!("reshape(arange(0, {n}), [{}])", dims.join(", "))
            }
        };
        if self.rng.gen_bool(0.3) {
            format!("(program_id(0) as i64 * 64 + {base})")
        } else {
            base
        }
    }

    fn literal(&mut self, dt: &str) -> String {
        if dt == "bool" {
            return pick(self.rng, &["true", "false"]).to_string();
        }
        let options: &[&str] = match dt {
            _ if FLOAT_DTS.contains(&dt) => {
                &["0.0", "1.0", "0.5", "-2.5", "inf", "-inf", "nan", "1e30"]
            }
            "u8" => &["0", "1", "2", "7", "255"],
            "i8" => &["0", "1", "2", "-1", "127", "-128"],
            _ if dt.starts_with('u') => &["0", "1", "2", "7", "255", "65536"],
            _ => &["0", "1", "2", "7", "-1", "127", "65536", "2147483647"],
        };
        // A literal that does not fit now and then.
        if self.rng.gen_bool(0.02) {
            return "300".to_string();
        }
        pick(self.rng, options).to_string()
    }

    /// An expression of (roughly) dtype `dt` and shape `shape`.
    fn expr(&mut self, dt: &'static str, shape: &[u32], depth: usize) -> String {
        let leaf = depth == 0 || self.rng.gen_bool(0.25);
        if leaf {
            // Mostly exact matches; a scalar for a block now and then (it broadcasts in
            // arithmetic, and is an error for builtins that need blocks).
            let sloppy = self.rng.gen_bool(0.05);
            let matching: Vec<String> = self
                .vars
                .iter()
                .filter(|(_, t)| t.dt == dt && (t.shape == shape || sloppy && t.shape.is_empty()))
                .map(|(n, _)| n.clone())
                .collect();
            if let (Some(n), true) = (matching.choose(self.rng), self.rng.gen_bool(0.7)) {
                return n.clone();
            }
            if shape.is_empty() || sloppy {
                return self.literal(dt);
            }
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            let dims = dims.join(", ");
            let p: Vec<(String, &str)> =
                self.ptrs.iter().filter(|(_, d)| *d == dt).cloned().collect();
            return match (self.rng.gen_range(0..4), p.choose(self.rng)) {
                (0, _) => format!("zeros([{dims}], {dt})"),
                (1, _) | (2, None) => {
                    let lit = self.literal(dt);
                    format!("full([{dims}], {lit}, {dt})")
                }
                (2, Some((name, _))) => {
                    let offs = self.offsets(shape);
                    if self.rng.gen_bool(0.5) {
                        let lit = self.literal(dt);
                        format!("load({name} + {offs}, mask: {offs} < n, other: {lit})")
                    } else {
                        format!("load({name} + {offs})")
                    }
                }
                _ => {
                    let offs = self.offsets(shape);
                    format!("({offs} as {dt})")
                }
            };
        }
        let d = depth - 1;
        let is_float = FLOAT_DTS.contains(&dt);
        match self.rng.gen_range(0..18) {
            0..=3 => {
                let op = if is_float {
                    pick(self.rng, &["+", "-", "*", "/"])
                } else {
                    pick(self.rng, &["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"])
                };
                let a = self.expr(dt, shape, d);
                // The second operand may broadcast: a scalar or a size-1 dimension.
                let bshape: Vec<u32> =
                    if self.rng.gen_bool(0.3) { Vec::new() } else { shape.to_vec() };
                let b = self.expr(dt, &bshape, d);
                format!("({a} {op} {b})")
            }
            4 if is_float => {
                let f = pick(
                    self.rng,
                    &[
                        "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "erf",
                        "sigmoid", "floor", "ceil", "abs",
                    ],
                );
                let a = self.expr(dt, shape, d);
                format!("{f}({a})")
            }
            5 => {
                let from = pick(self.rng, NUM_DTS);
                let a = self.expr(from, shape, d);
                format!("({a} as {dt})")
            }
            6 => {
                let f = pick(self.rng, &["minimum", "maximum"]);
                let a = self.expr(dt, shape, d);
                let b = self.expr(dt, shape, d);
                format!("{f}({a}, {b})")
            }
            7 => {
                let a = self.expr(dt, shape, d);
                let b = self.expr(dt, shape, d);
                let c = self.expr(dt, shape, d);
                let e = self.expr(dt, shape, d);
                let cmp = pick(self.rng, &["<", "<=", "==", "!=", ">", ">="]);
                format!("where({a} {cmp} {b}, {c}, {e})")
            }
            8 => {
                // A reduction over an added axis.
                let mut s = shape.to_vec();
                let axis = self.rng.gen_range(0..=s.len());
                let extra = self.dim();
                s.insert(axis, extra);
                let f = pick(self.rng, &["sum", "max", "min"]);
                let a = self.expr(dt, &s, d);
                let keep = if self.rng.gen_bool(0.2) { ", keep_dims: false" } else { "" };
                format!("{f}({a}, axis: {axis}{keep})")
            }
            9 if shape.len() == 2 => {
                let a = self.expr(dt, &[shape[1], shape[0]], d);
                format!("trans({a})")
            }
            10 if !shape.is_empty() => {
                let n: u32 = shape.iter().product();
                let a = self.expr(dt, &[n], d);
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                format!("reshape({a}, [{}])", dims.join(", "))
            }
            11 if !shape.is_empty() && shape[0] == 1 => {
                let a = self.expr(dt, &shape[1..], d);
                if shape.len() == 2 {
                    format!("{a}[None, :]")
                } else {
                    format!("expand_dims({a}, 0)")
                }
            }
            12 if shape.len() == 2 && (dt == "f32" || dt == "i32") => {
                let k = self.dim();
                let (ind, acc) = if dt == "f32" {
                    (pick(self.rng, &["f32", "f16", "bf16"]), "f32")
                } else {
                    ("i8", "i32")
                };
                let a = self.expr(ind, &[shape[0], k], d);
                let b = self.expr(ind, &[k, shape[1]], d);
                if self.rng.gen_bool(0.5) {
                    let c = self.expr(acc, shape, d);
                    format!("dot({a}, {b}, {c})")
                } else {
                    format!("dot({a}, {b})")
                }
            }
            13 if !shape.is_empty() => {
                let a = self.expr(dt, shape, d);
                let ax = shape.len() - 1;
                format!("cumsum({a}, axis: {ax})")
            }
            14 if !self.helpers.is_empty() => {
                let (name, arity) = self.helpers.choose(self.rng).cloned().expect("non-empty");
                let args: Vec<String> = (0..arity).map(|_| self.expr(dt, shape, d)).collect();
                format!("{name}({})", args.join(", "))
            }
            15 => {
                let c = self.expr("i32", &[], d);
                let a = self.expr(dt, shape, d);
                let b = self.expr(dt, shape, d);
                format!("(if {c} > 0 {{ {a} }} else {{ {b} }})")
            }
            16 if !shape.is_empty() && is_float => {
                let a = self.expr(dt, shape, d);
                let s = self.expr(dt, &[], d);
                format!("fma({a}, {s}, {a})")
            }
            _ => {
                let a = self.expr(dt, shape, d);
                let neg = if is_float || dt.starts_with('i') { "-" } else { "" };
                format!("{neg}{a}")
            }
        }
    }

    fn stmt(&mut self, depth: usize) {
        let dt = pick(self.rng, NUM_DTS);
        let shape = self.shape();
        match self.rng.gen_range(0..14) {
            0..=2 => {
                let e = self.expr(dt, &shape, 3);
                let name = self.fresh("v");
                self.line(&format!("let {name} = {e};"));
                self.vars.push((name, Ty { dt, shape }));
            }
            3 => {
                // Store into a pointer of the same dtype (or not).
                let Some((p, pdt)) = self.ptrs.choose(self.rng).cloned() else { return };
                let e = self.expr(pdt, &shape, 3);
                let offs = self.offsets(&shape);
                if self.rng.gen_bool(0.5) {
                    self.line(&format!("store({p} + {offs}, {e}, mask: {offs} < n);"));
                } else {
                    self.line(&format!("store({p} + {offs}, {e});"));
                }
            }
            4 if depth > 0 => {
                // An accumulation loop.
                let acc = self.fresh("acc");
                let init = self.expr(dt, &shape, 1);
                self.line(&format!("let mut {acc} = {init};"));
                let iv = self.fresh("i");
                let (lo, hi, step) = (
                    pick(self.rng, &["0", "1", "n", "-3"]),
                    pick(self.rng, &["n", "4", "0", "K"]),
                    pick(self.rng, &["", ", 2", ", K", ", 1"]),
                );
                let kind = if self.rng.gen_bool(0.3) && !hi.starts_with('n') && lo != "n" {
                    "static_range"
                } else {
                    "range"
                };
                self.line(&format!("for {iv} in {kind}({lo}, {hi}{step}) {{"));
                self.indent += 1;
                self.vars.push((iv.clone(), Ty { dt: "i32", shape: Vec::new() }));
                let n_vars = self.vars.len();
                self.stmt(depth - 1);
                let e = self.expr(dt, &shape, 2);
                let op = pick(self.rng, &["=", "+=", "-=", "*="]);
                self.line(&format!("{acc} {op} {e};"));
                self.vars.truncate(n_vars - 1);
                self.indent -= 1;
                self.line("}");
                self.vars.push((acc, Ty { dt, shape }));
            }
            5 if depth > 0 => {
                // An `if` statement assigning an outer variable on one or both sides.
                let acc = self.fresh("m");
                let init = self.expr(dt, &shape, 1);
                self.line(&format!("let mut {acc} = {init};"));
                let c = self.expr("f32", &[], 2);
                self.line(&format!("if {c} > 0.0 {{"));
                self.indent += 1;
                let n_vars = self.vars.len();
                self.stmt(depth - 1);
                self.vars.truncate(n_vars);
                let e = self.expr(dt, &shape, 2);
                self.line(&format!("{acc} = {e};"));
                self.indent -= 1;
                if self.rng.gen_bool(0.5) {
                    self.line("} else {");
                    self.indent += 1;
                    let e = self.expr(dt, &shape, 2);
                    self.line(&format!("{acc} += {e};"));
                    self.indent -= 1;
                }
                self.line("}");
                self.vars.push((acc, Ty { dt, shape }));
            }
            6 => {
                // topk / sort / argmax on a rank-1 block.
                let n = self.dim();
                let e = self.expr(dt, &[n], 2);
                let (a, b) = (self.fresh("tv"), self.fresh("ti"));
                match self.rng.gen_range(0..3) {
                    0 => {
                        let k = self.rng.gen_range(1..=n);
                        self.line(&format!("let ({a}, {b}) = topk({e}, {k});"));
                        self.vars.push((a, Ty { dt, shape: vec![k] }));
                        self.vars.push((b, Ty { dt: "i32", shape: vec![k] }));
                    }
                    1 => {
                        let desc = pick(self.rng, &["true", "false"]);
                        self.line(&format!("let ({a}, {b}) = sort({e}, descending: {desc});"));
                        self.vars.push((a, Ty { dt, shape: vec![n] }));
                        self.vars.push((b, Ty { dt: "i32", shape: vec![n] }));
                    }
                    _ => {
                        let f = pick(self.rng, &["argmax", "argmin"]);
                        self.line(&format!("let {a} = {f}({e}, axis: 0);"));
                        self.vars.push((a, Ty { dt: "i32", shape: Vec::new() }));
                    }
                }
            }
            7 => {
                let e = self.expr("i32", &[], 2);
                match self.rng.gen_range(0..3) {
                    0 => self.line(&format!("device_assert({e} >= 0, \"non-negative\");")),
                    1 => self.line("static_assert(K > 0, \"K\");"),
                    _ => self.line(&format!("print(\"value\", {e});")),
                }
            }
            9 if depth > 0 => {
                // An `if` expression that also assigns an outer variable, inside a loop.
                let acc = self.fresh("c");
                let init = self.expr(dt, &shape, 1);
                self.line(&format!("let mut {acc} = {init};"));
                let iv = self.fresh("j");
                self.line(&format!("for {iv} in range(0, n) {{"));
                self.indent += 1;
                let a = self.expr(dt, &shape, 2);
                let b = self.expr(dt, &shape, 1);
                let r = self.fresh("r");
                let cond =
                    pick(self.rng, &[&*format!("{iv} > 2"), "n > 0", "K > 1", "true"]).to_string();
                self.line(&format!("let {r} = if {cond} {{ {acc} = {a}; {b} }} else {{ {b} }};"));
                self.line(&format!("{acc} += {r};"));
                self.indent -= 1;
                self.line("}");
                self.vars.push((acc, Ty { dt, shape }));
            }
            10 => {
                // Reshaping builtins and scalar helpers.
                let name = self.fresh("s");
                let e = match self.rng.gen_range(0..6) {
                    0 => {
                        let a = self.expr(dt, &[4], 2);
                        format!("broadcast_to({a}, [3, 4])")
                    }
                    1 => {
                        let a = self.expr(dt, &[2, 4], 2);
                        let p = pick(self.rng, &["[1, 0]", "[0, 1]", "[0, 0]", "[2, 0]"]);
                        format!("permute({a}, {p})")
                    }
                    2 => {
                        let a = self.expr(dt, &[4], 2);
                        let ax = pick(self.rng, &["0", "1", "2", "-1"]);
                        format!("expand_dims({a}, {ax})")
                    }
                    3 => {
                        let a = self.expr("i32", &[], 1);
                        format!("cdiv({a}, K) + num_programs(0) + program_id(1)")
                    }
                    4 => {
                        let a = self.expr(dt, &[2, 4], 2);
                        let ax = pick(self.rng, &["0", "1", "-1", "-2", "2"]);
                        let f = pick(self.rng, &["sum", "max", "argmin", "cumsum"]);
                        let kd = if f == "cumsum" { "reverse: true" } else { "keep_dims: true" };
                        format!("{f}({a}, axis: {ax}, {kd})")
                    }
                    _ => {
                        let a = self.expr("i32", &[16], 2);
                        let bins = pick(self.rng, &["4", "16", "K", "0"]);
                        format!("histogram({a}, {bins}, mask: {a} >= 0)")
                    }
                };
                self.line(&format!("let {name} = {e};"));
            }
            11 if !self.helpers.is_empty() || depth > 0 => {
                // A reduction with a combine helper; `add`/`mx` are always defined.
                let n = self.dim();
                let a = self.expr(dt, &[2, n], 2);
                let f = pick(self.rng, &["reduce", "scan"]);
                let h = pick(self.rng, &["add", "mx", "add", "mx", "pair", "h0"]);
                let ax = pick(self.rng, &["0", "1"]);
                let name = self.fresh("red");
                self.line(&format!("let {name} = {f}({a}, {ax}, combine: {h});"));
            }
            12 => {
                // Annotated and compile-time-dependent bindings.
                let name = self.fresh("t");
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                let ty = if shape.is_empty() {
                    dt.to_string()
                } else {
                    format!("{dt}[{}]", dims.join(", "))
                };
                let e = self.expr(dt, &shape, 2);
                if self.rng.gen_bool(0.5) {
                    self.line(&format!("let {name}: {ty} = {e};"));
                } else {
                    let other = self.expr(dt, &shape, 1);
                    self.line(&format!("let {name} = if K > 2 {{ {e} }} else {{ {other} }};"));
                }
                self.vars.push((name, Ty { dt, shape }));
            }
            _ => {
                // An atomic on an f32 or i32 pointer.
                let p: Vec<(String, &str)> =
                    self.ptrs.iter().filter(|(_, d)| *d == "f32" || *d == "i32").cloned().collect();
                let Some((name, pdt)) = p.choose(self.rng).cloned() else { return };
                let offs = self.offsets(&shape);
                let e = self.expr(pdt, &shape, 2);
                if self.rng.gen_bool(0.2) {
                    let c = self.expr(pdt, &shape, 1);
                    self.line(&format!("let old = atomic_cas({name} + {offs}, {c}, {e});"));
                } else {
                    let f =
                        pick(self.rng, &["atomic_add", "atomic_max", "atomic_min", "atomic_xchg"]);
                    self.line(&format!("{f}({name} + {offs}, {e}, mask: {offs} < n);"));
                }
            }
        }
    }
}

fn typed(rng: &mut ChaCha8Rng) -> (String, Vec<(String, String)>) {
    let mut g = Gen {
        rng,
        vars: Vec::new(),
        ptrs: Vec::new(),
        helpers: Vec::new(),
        next: 0,
        out: String::new(),
        indent: 0,
    };
    // Helpers: generic over shapes, instantiated per call.
    for h in 0..g.rng.gen_range(0..3) {
        let name = format!("h{h}");
        let arity = g.rng.gen_range(1..=2);
        let params: Vec<String> = (0..arity).map(|i| format!("p{i}")).collect();
        let body = match (arity, g.rng.gen_range(0..6)) {
            (1, 0) => "p0 * p0".to_string(),
            (1, 1) => "let t = p0 + p0;\n    t - p0".to_string(),
            (1, 2) => "if true { p0 } else { p0 + p0 }".to_string(),
            (1, 3) => {
                "let mut t = p0;\n    for i in static_range(0, 3) { t += p0; }\n    t".to_string()
            }
            (1, _) => "if SIZE > 2 { p0 } else if SIZE > 1 { p0 * p0 } else { -p0 }".to_string(),
            (_, 0) => "p0 * p1 + p0".to_string(),
            (_, 1) => "return minimum(p0, p1);".to_string(),
            (_, 2) => "(p0 + p1, p0 - p1)".to_string(),
            (_, 3) => "if p0 < p1 { p0 } else { p1 }".to_string(),
            (_, _) => "where(p0 < p1, p1, p0)".to_string(),
        };
        let typed_param = if g.rng.gen_bool(0.2) { ": f32" } else { "" };
        g.out.push_str(&format!(
            "fn {name}(p0{typed_param}{}) {{\n    {body}\n}}\n\n",
            if arity == 2 { ", p1" } else { "" }
        ));
        let _ = params;
        g.helpers.push((name, arity));
    }
    g.out.push_str("const SIZE: i32 = 3;\nfn add(a, b) { a + b }\nfn mx(a, b) { maximum(a, b) }\n");
    g.out.push_str("fn pair(a, b) { (a, b) }\n\n");
    let n_ptrs = g.rng.gen_range(1..=3);
    let mut params = Vec::new();
    for i in 0..n_ptrs {
        let dt = pick(g.rng, &["f32", "f32", "i32", "f16", "i64", "u8", "bf16"]);
        params.push(format!("p{i}: *{dt}"));
        g.ptrs.push((format!("p{i}"), dt));
    }
    params.push("n: i32".to_string());
    g.vars.push(("n".to_string(), Ty { dt: "i32", shape: Vec::new() }));
    let k = pick(g.rng, &["1", "2", "4", "16"]);
    g.vars.push(("K".to_string(), Ty { dt: "i32", shape: Vec::new() }));
    g.out.push_str(&format!("kernel k<K: i32 = {k}>({}) {{\n", params.join(", ")));
    g.indent = 1;
    for _ in 0..g.rng.gen_range(1..7) {
        g.stmt(2);
    }
    g.out.push_str("}\n");
    let mut defines = Vec::new();
    if g.rng.gen_bool(0.1) {
        defines.push(("K".to_string(), pick(g.rng, &["0", "3", "-2", "100000"]).to_string()));
    }
    // Some programs get a random edit, for errors deep inside otherwise plausible kernels.
    let mut text = g.out;
    if rng_edit(g.rng) {
        text = mutate_once(g.rng, &text);
    }
    (text, defines)
}

fn rng_edit(rng: &mut ChaCha8Rng) -> bool {
    rng.gen_bool(0.25)
}

#[test]
fn frontend_never_panics_on_generated_programs() {
    let start = Instant::now();
    let mut failures = Vec::new();
    let runs: [(&str, u64, usize, &mut Generator); 4] = [
        ("soup", 0x7c01, SOUP, &mut |r| (soup(r), Vec::new())),
        ("mutant", 0x7c02, MUTANTS, &mut mutant),
        ("bytes", 0x7c03, BYTES, &mut |r| (raw_bytes(r), Vec::new())),
        ("typed", 0x7c04, TYPED, &mut typed),
    ];
    let total: usize = runs.iter().map(|r| r.2).sum::<usize>() * scale();
    assert!(total >= 10_000, "the fuzz test must push at least 10,000 programs, not {total}");
    for (what, seed, count, generate) in runs {
        let gen_start = Instant::now();
        let count = count * scale();
        let (clean, found) = run(what, seed, count, generate);
        eprintln!(
            "fuzz_frontend: {what}: {count} programs ({clean} without errors) in {:.1} s",
            gen_start.elapsed().as_secs_f64()
        );
        failures.extend(found);
    }
    eprintln!("fuzz_frontend: {total} programs in {:.1} s", start.elapsed().as_secs_f64());
    assert!(failures.is_empty(), "{}", failures.join("\n\n=====\n\n"));
}

/// Valid programs that once broke the frontend (invalid IR or a panic); each must compile without
/// errors now. Wrong programs found by fuzzing live in `tests/cases/diagnostics/` instead.
const VALID_REGRESSIONS: &[(&str, &str)] = &[
    (
        "an assignment inside an `if` expression (its value escaped the branch: invalid IR)",
        "kernel k(x: *i32, c: bool) {
            let mut acc = 0;
            let y = if c { acc = acc + 1; 2 } else { 3 };
            store(x, acc + y);
        }",
    ),
    (
        "the same inside a loop, which must carry `acc` although the assignment is in an expression",
        "kernel k(x: *i32, c: bool, n: i32) {
            let mut acc = 0;
            for j in range(0, n) {
                let y = if c { acc = acc + 1; 2 } else { 3 };
                acc += y;
            }
            store(x, acc);
        }",
    ),
    (
        "a helper whose value is a final `if`/`else` chain (it returned nothing)",
        "fn clamp(i, n) {
            if i < 0 { 0 } else if i >= n { n - 1 } else { i }
        }
        kernel k(x: *i32, n: i32) {
            store(x, clamp(program_id(0) - 1, n));
        }",
    ),
    (
        "a kernel ending in an `if`/`else` whose branches end in stores",
        "kernel k(x: *f32, c: bool) {
            if c { store(x, 1.0) } else { store(x, 2.0) }
        }",
    ),
    (
        "a `static_range` whose last step would pass i64::MAX",
        "kernel k(x: *f32) {
            for i in static_range(9223372036854775000, 9223372036854775807, 1000) {
                store(x, 0.0);
            }
        }",
    ),
];

#[test]
fn programs_that_once_broke_the_frontend_compile() {
    let mut failures = Vec::new();
    for (what, text) in VALID_REGRESSIONS {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let c = compile_source("regression.tk", text, &CompileOptions::default());
            (c.has_errors(), c.optimized.is_some(), c.render_plain())
        }));
        match result {
            Err(payload) => {
                failures.push(format!("{what}: panic: {}", panic_message(payload.as_ref())))
            }
            Ok((true, _, rendered)) | Ok((false, false, rendered)) => {
                failures.push(format!("{what}:\n{rendered}"));
            }
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
