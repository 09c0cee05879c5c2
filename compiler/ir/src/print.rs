//! The IR text printer. [`crate::parse`] reads what this writes, and for a module that verifies
//! `print_module(&parse_module(&print_module(m))?) == print_module(m)`.
//!
//! # Syntax
//!
//! One function after another, one op per line, nested regions indented by two spaces. Spans are
//! not printed; `//` starts a comment (the parser skips it).
//!
//! ```text
//! module    := function*
//! function  := ("kernel" | "helper") "@" name "(" [param ("," param)*] ")"
//!              ["constexpr" "(" [name "=" literal ("," name "=" literal)*] ")"]
//!              ["multiple_of" "(" value "=" int ("," value "=" int)* ")"]
//!              ["->" "(" [type ("," type)*] ")"] region
//! param     := value ":" type
//! region    := "{" op* "}"                       // the last op is `yield`
//! op        := [value ("," value)* "="] body [":" type ("," type)*] region-part
//! value     := "%" [A-Za-z0-9_]+                  // `%7` has no name hint, `%acc` has "acc"
//! name      := identifier | string                // function and constexpr names
//! type      := ["*"] dtype ["[" dim ("," dim)* "]"]  // f32, *f16, i32[16, 128], *f32[64]
//! literal   := "true" | "false" | integer | float | ["-"] "inf" | "nan" | "nan(0x<16 hex>)"
//! string    := '"' (char | \" | \\ | \n | \t | \r | \0 | \u{hex})* '"'
//! ```
//!
//! The result type list is present exactly when the op has results; for ops with regions it
//! comes before the regions. Op bodies (`%v` is an operand, `[..]` is optional):
//!
//! ```text
//! const <literal>                      program_id <axis>            num_programs <axis>
//! arange <start>, <end>                splat %v                     broadcast %v
//! expand_dims %v, axis <a>             reshape %v                   permute %v, perm [1, 0]
//! <unary> %v                           <binary> %a, %b              cmp <pred> %a, %b
//! select %c, %t, %f                    fma %a, %b, %c               cast %v
//! addptr %p, %off                      load %p[, mask %m][, other %o]
//! store %p, %v[, mask %m]              atomic <add|max|min|xchg> %p, %v[, mask %m]
//! atomic_cas %p, %cmp, %v[, mask %m]   reduce <sum|max|min|argmax|argmin> %v, axis <a>
//! cumsum %v, axis <a>[, reverse]       topk %v, k <k>               sort %v[, descending]
//! histogram %v, bins <n>[, mask %m]    dot %a, %b, %acc[, precision <ieee|tf32>]
//! reduce_with %v, axis <a> : T combine(%x: t, %y: t) { ... }
//! scan_with %v, axis <a> : T combine(%x: t, %y: t) { ... }
//! for %iv = %lo to %hi step %s [iter_args(%c = %init, ...)] [: T, ...] { ... }
//! if %cond [: T, ...] { ... } else { ... }
//! yield [%v, ...]                      call @name(%a, ...)
//! device_assert %c, "message"          print "prefix"[, %v, ...]
//! ```
//!
//! `for` takes its induction variable's type from `%lo` and its carried values' types from the
//! result types. Constants print floats so that they read back bit for bit (`-0.0`, `1e-7`,
//! `inf`, `nan`, and `nan(0x...)` for a NaN with a non-default payload); `u64` constants print
//! unsigned. Names: a value with a name hint prints as the hint made into an identifier
//! (`[A-Za-z0-9_]`, never starting with a digit) plus `_1`, `_2`, ... if already taken in the
//! function; other values are numbered `%0`, `%1`, ... in text order. Printing never panics, even
//! on IR that does not verify; dangling handles print as `%?7`, `@?3`, `?type9` (not parseable).

use crate::{ConstValue, DType, FuncKind, Function, Module, Op, OpId, RegionId, TypeId, Value};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Prints every function of the module, separated by blank lines.
pub fn print_module(m: &Module) -> String {
    let mut out = String::new();
    for (i, f) in m.functions.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&print_function(m, f));
    }
    out
}

/// Prints one function (`m` supplies the type table and callee names).
pub fn print_function(m: &Module, f: &Function) -> String {
    let names = Names::new(f);
    let mut p = Printer { m, f, names: &names, out: String::new(), seen: HashSet::new() };
    p.function();
    p.out
}

/// Printed names (`%...`) of a function's values, assigned in text order. The verifier uses the
/// same names in its messages so that they match the printed IR.
pub(crate) struct Names {
    names: HashMap<Value, String>,
}

impl Names {
    pub(crate) fn new(f: &Function) -> Names {
        let mut b = NameBuilder {
            f,
            names: HashMap::new(),
            taken: HashSet::new(),
            next_suffix: HashMap::new(),
            next_number: 0,
            seen: HashSet::new(),
        };
        for p in &f.params {
            b.define(p.value, Some(&p.name));
        }
        b.region(f.body);
        Names { names: b.names }
    }

    /// `%name` of `v`; values never defined in the printed text get `%?<index>`.
    pub(crate) fn get(&self, v: Value) -> String {
        match self.names.get(&v) {
            Some(n) => format!("%{n}"),
            None => format!("%?{}", v.0),
        }
    }

    /// `%a, %b = mnemonic` (or just the mnemonic for ops without results): how errors name ops.
    pub(crate) fn describe_op(&self, f: &Function, id: OpId) -> String {
        let Some(od) = f.ops.get(id.0 as usize) else {
            return format!("<op #{}>", id.0);
        };
        if od.results.is_empty() {
            return od.op.mnemonic().to_string();
        }
        let rs: Vec<String> = od.results.iter().map(|&v| self.get(v)).collect();
        format!("{} = {}", rs.join(", "), od.op.mnemonic())
    }
}

struct NameBuilder<'a> {
    f: &'a Function,
    names: HashMap<Value, String>,
    taken: HashSet<String>,
    /// Next `_k` suffix to try per base name, so that many equal hints stay linear.
    next_suffix: HashMap<String, u32>,
    next_number: u32,
    seen: HashSet<RegionId>,
}

impl NameBuilder<'_> {
    fn define(&mut self, v: Value, fallback: Option<&str>) {
        if self.names.contains_key(&v) {
            return;
        }
        let hint = self.f.values.get(v.0 as usize).and_then(|d| d.name.as_deref()).or(fallback);
        let name = match hint {
            Some(h) => {
                let base = sanitize(h);
                if self.taken.contains(&base) {
                    let mut k = self.next_suffix.get(&base).copied().unwrap_or(1);
                    loop {
                        let cand = format!("{base}_{k}");
                        k += 1;
                        if !self.taken.contains(&cand) {
                            self.next_suffix.insert(base, k);
                            break cand;
                        }
                    }
                } else {
                    base
                }
            }
            // Sanitized hints never start with a digit, so numbers cannot collide with them.
            None => {
                let n = self.next_number.to_string();
                self.next_number += 1;
                n
            }
        };
        self.taken.insert(name.clone());
        self.names.insert(v, name);
    }

    fn region(&mut self, r: RegionId) {
        if !self.seen.insert(r) {
            return;
        }
        let Some(rd) = self.f.regions.get(r.0 as usize) else { return };
        for &a in &rd.args {
            self.define(a, None);
        }
        for &op in &rd.ops {
            let Some(od) = self.f.ops.get(op.0 as usize) else { continue };
            for &v in &od.results {
                self.define(v, None);
            }
            for sub in od.op.regions() {
                self.region(sub);
            }
        }
    }
}

/// Makes a name hint into `[A-Za-z_][A-Za-z0-9_]*`; identity on names this printer emitted.
fn sanitize(h: &str) -> String {
    let mut s: String =
        h.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// True for `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_ident(s: &str) -> bool {
    let mut cs = s.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A function or constexpr name: bare if it is an identifier, quoted otherwise.
fn fmt_name(s: &str) -> String {
    if is_ident(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

/// A string literal with escapes for quotes, backslashes and control characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A float literal that parses back to the same bits.
pub(crate) fn fmt_float(x: f64) -> String {
    if x.is_nan() {
        if x.to_bits() == f64::NAN.to_bits() {
            "nan".to_string()
        } else {
            format!("nan(0x{:016x})", x.to_bits())
        }
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        // `{:?}` is the shortest text that reads back as the same f64, and always contains `.` or
        // `e`, which is how the parser tells a float literal from an integer.
        format!("{x:?}")
    }
}

/// A constant literal; `dtype` is the result dtype where known (`u64` prints unsigned).
pub(crate) fn fmt_const(v: ConstValue, dtype: Option<DType>) -> String {
    match v {
        ConstValue::Bool(b) => b.to_string(),
        ConstValue::Int(i) if dtype == Some(DType::U64) => (i as u64).to_string(),
        ConstValue::Int(i) => i.to_string(),
        ConstValue::Float(x) => fmt_float(x),
    }
}

struct Printer<'a> {
    m: &'a Module,
    f: &'a Function,
    names: &'a Names,
    out: String,
    /// Regions already printed: malformed IR may share or nest a region in itself.
    seen: HashSet<RegionId>,
}

impl Printer<'_> {
    fn ty(&self, t: TypeId) -> String {
        match self.m.types.try_get(t) {
            Some(t) => t.to_string(),
            None => format!("?type{}", t.0),
        }
    }

    fn vty(&self, v: Value) -> String {
        match self.f.values.get(v.0 as usize) {
            Some(d) => self.ty(d.ty),
            None => format!("?type(%?{})", v.0),
        }
    }

    fn v(&self, v: Value) -> String {
        self.names.get(v)
    }

    fn vs(&self, vs: &[Value]) -> String {
        vs.iter().map(|&v| self.v(v)).collect::<Vec<_>>().join(", ")
    }

    fn function(&mut self) {
        let f = self.f;
        let kind = match f.kind {
            FuncKind::Kernel => "kernel",
            FuncKind::Helper => "helper",
        };
        let params: Vec<String> =
            f.params.iter().map(|p| format!("{}: {}", self.v(p.value), self.ty(p.ty))).collect();
        let _ = write!(self.out, "{kind} @{}({})", fmt_name(&f.name), params.join(", "));
        if !f.constexprs.is_empty() {
            let cs: Vec<String> = f
                .constexprs
                .iter()
                .map(|(n, v)| format!("{} = {}", fmt_name(n), fmt_const(*v, None)))
                .collect();
            let _ = write!(self.out, " constexpr({})", cs.join(", "));
        }
        if !f.param_multiples.is_empty() {
            let ms: Vec<String> = f
                .param_multiples
                .iter()
                .filter_map(|&(i, n)| {
                    f.params.get(i as usize).map(|p| format!("{} = {n}", self.v(p.value)))
                })
                .collect();
            let _ = write!(self.out, " multiple_of({})", ms.join(", "));
        }
        if !f.results.is_empty() {
            let rs: Vec<String> = f.results.iter().map(|&t| self.ty(t)).collect();
            let _ = write!(self.out, " -> ({})", rs.join(", "));
        }
        self.out.push(' ');
        self.region(f.body, 0);
        self.out.push('\n');
    }

    /// Prints `{`, the ops indented one level deeper than `depth`, and `}` (no newline after).
    fn region(&mut self, r: RegionId, depth: usize) {
        self.out.push_str("{\n");
        if self.seen.insert(r) {
            if let Some(rd) = self.f.regions.get(r.0 as usize) {
                for &op in &rd.ops {
                    self.op(op, depth + 1);
                }
            }
        } else {
            self.indent(depth + 1);
            let _ = writeln!(self.out, "// region #{} already printed", r.0);
        }
        self.indent(depth);
        self.out.push('}');
    }

    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn op(&mut self, id: OpId, depth: usize) {
        self.indent(depth);
        let Some(od) = self.f.ops.get(id.0 as usize) else {
            let _ = writeln!(self.out, "// missing op #{}", id.0);
            return;
        };
        if !od.results.is_empty() {
            let _ = write!(self.out, "{} = ", self.vs(&od.results));
        }
        let mask = |p: &Self, m: &Option<Value>| match m {
            Some(m) => format!(", mask {}", p.v(*m)),
            None => String::new(),
        };
        let body = match &od.op {
            Op::Const { value } => {
                let dtype = od
                    .results
                    .first()
                    .and_then(|&v| self.f.values.get(v.0 as usize))
                    .and_then(|d| self.m.types.try_get(d.ty))
                    .and_then(|t| t.elem.dtype());
                format!("const {}", fmt_const(*value, dtype))
            }
            Op::ProgramId { axis } => format!("program_id {axis}"),
            Op::NumPrograms { axis } => format!("num_programs {axis}"),
            Op::Arange { start, end } => format!("arange {start}, {end}"),
            Op::Splat { value }
            | Op::Broadcast { value }
            | Op::Reshape { value }
            | Op::Cast { value } => {
                format!("{} {}", od.op.mnemonic(), self.v(*value))
            }
            Op::ExpandDims { value, axis } => {
                format!("expand_dims {}, axis {axis}", self.v(*value))
            }
            Op::Permute { value, perm } => {
                let ps: Vec<String> = perm.iter().map(|p| p.to_string()).collect();
                format!("permute {}, perm [{}]", self.v(*value), ps.join(", "))
            }
            Op::Unary { op, value } => format!("{} {}", op.name(), self.v(*value)),
            Op::Binary { op, lhs, rhs } => {
                format!("{} {}, {}", op.name(), self.v(*lhs), self.v(*rhs))
            }
            Op::Cmp { pred, lhs, rhs } => {
                format!("cmp {} {}, {}", pred.name(), self.v(*lhs), self.v(*rhs))
            }
            Op::Select { cond, on_true, on_false } => {
                format!("select {}", self.vs(&[*cond, *on_true, *on_false]))
            }
            Op::Fma { a, b, c } => format!("fma {}", self.vs(&[*a, *b, *c])),
            Op::AddPtr { ptr, offset } => format!("addptr {}", self.vs(&[*ptr, *offset])),
            Op::Load { ptr, mask: m, other } => {
                let mut s = format!("load {}{}", self.v(*ptr), mask(self, m));
                if let Some(o) = other {
                    let _ = write!(s, ", other {}", self.v(*o));
                }
                s
            }
            Op::Store { ptr, value, mask: m } => {
                format!("store {}{}", self.vs(&[*ptr, *value]), mask(self, m))
            }
            Op::Atomic { op, ptr, value, mask: m } => {
                format!("atomic {} {}{}", op.name(), self.vs(&[*ptr, *value]), mask(self, m))
            }
            Op::AtomicCas { ptr, cmp, value, mask: m } => {
                format!("atomic_cas {}{}", self.vs(&[*ptr, *cmp, *value]), mask(self, m))
            }
            Op::Reduce { kind, axis, value } => {
                format!("reduce {} {}, axis {axis}", kind.name(), self.v(*value))
            }
            Op::ReduceWith { axis, value, .. } | Op::ScanWith { axis, value, .. } => {
                format!("{} {}, axis {axis}", od.op.mnemonic(), self.v(*value))
            }
            Op::Cumsum { axis, value, reverse } => format!(
                "cumsum {}, axis {axis}{}",
                self.v(*value),
                if *reverse { ", reverse" } else { "" }
            ),
            Op::TopK { value, k } => format!("topk {}, k {k}", self.v(*value)),
            Op::Sort { value, descending } => {
                format!("sort {}{}", self.v(*value), if *descending { ", descending" } else { "" })
            }
            Op::Histogram { value, bins, mask: m } => {
                format!("histogram {}, bins {bins}{}", self.v(*value), mask(self, m))
            }
            Op::Dot { a, b, acc, precision } => {
                let p = match precision {
                    crate::DotPrecision::Ieee => "",
                    crate::DotPrecision::Tf32 => ", precision tf32",
                };
                format!("dot {}{p}", self.vs(&[*a, *b, *acc]))
            }
            Op::For { lo, hi, step, init, body } => {
                let args = self.f.regions.get(body.0 as usize).map(|r| r.args.as_slice());
                let args = args.unwrap_or(&[]);
                let iv = match args.first() {
                    Some(&a) => self.v(a),
                    None => "%?iv".to_string(),
                };
                let mut s =
                    format!("for {iv} = {} to {} step {}", self.v(*lo), self.v(*hi), self.v(*step));
                if !init.is_empty() {
                    let pairs: Vec<String> = init
                        .iter()
                        .enumerate()
                        .map(|(i, &x)| {
                            let a = match args.get(i + 1) {
                                Some(&a) => self.v(a),
                                None => "%?arg".to_string(),
                            };
                            format!("{a} = {}", self.v(x))
                        })
                        .collect();
                    let _ = write!(s, " iter_args({})", pairs.join(", "));
                }
                s
            }
            Op::If { cond, .. } => format!("if {}", self.v(*cond)),
            Op::Yield { values } => {
                if values.is_empty() {
                    "yield".to_string()
                } else {
                    format!("yield {}", self.vs(values))
                }
            }
            Op::Call { func, args } => {
                let name = match self.m.functions.get(func.0 as usize) {
                    Some(g) => fmt_name(&g.name),
                    None => format!("?{}", func.0),
                };
                format!("call @{name}({})", self.vs(args))
            }
            Op::DeviceAssert { cond, message } => {
                format!("device_assert {}, {}", self.v(*cond), quote(message))
            }
            Op::Print { prefix, values } => {
                let mut s = format!("print {}", quote(prefix));
                for &v in values {
                    let _ = write!(s, ", {}", self.v(v));
                }
                s
            }
        };
        self.out.push_str(&body);
        if !od.results.is_empty() {
            let ts: Vec<String> = od.results.iter().map(|&v| self.vty(v)).collect();
            let _ = write!(self.out, " : {}", ts.join(", "));
        }
        match &od.op {
            Op::ReduceWith { combine, .. } | Op::ScanWith { combine, .. } => {
                let args = self.f.regions.get(combine.0 as usize).map(|r| r.args.clone());
                let args: Vec<String> = args
                    .unwrap_or_default()
                    .iter()
                    .map(|&a| format!("{}: {}", self.v(a), self.vty(a)))
                    .collect();
                let _ = write!(self.out, " combine({}) ", args.join(", "));
                self.region(*combine, depth);
            }
            Op::For { body, .. } => {
                self.out.push(' ');
                self.region(*body, depth);
            }
            Op::If { then_body, else_body, .. } => {
                self.out.push(' ');
                self.region(*then_body, depth);
                self.out.push_str(" else ");
                self.region(*else_body, depth);
            }
            _ => {}
        }
        self.out.push('\n');
    }
}
