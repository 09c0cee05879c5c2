//! The IR text parser: reads the syntax documented in [`crate::print`] back into a [`Module`].
//!
//! The parser checks syntax and name resolution only (every `%name` used is defined earlier in
//! the same function, every `@callee` exists, names are not defined twice); type rules are the
//! verifier's job, so IR that does not verify can still be written down in tests. Types are
//! interned into the new module's table, parsed spans are [`Span::DUMMY`], and name hints come
//! from the text (`%acc` gets the hint `acc`, `%7` none).
//!
//! A few conveniences for hand-written text: `//` comments; a missing `else { ... }` of an `if`
//! means an empty one (`yield`); float constants are rounded to their result dtype
//! (`const 0.1 : f32` stores the f32 nearest 0.1) and integer literals are accepted for float
//! constants. Any input, even random bytes, gives `Ok` or a [`ParseError`]; never a panic.

use crate::{
    AtomicOp, BinaryOp, CmpPred, ConstValue, DType, DotPrecision, Elem, FuncId, FuncKind, Function,
    Module, Op, OpId, ReduceKind, RegionId, Type, TypeId, UnaryOp, Value,
};
use std::collections::HashMap;
use std::fmt;
use tk_diag::Span;

/// Regions nested deeper than this are rejected, so the recursive descent cannot overflow the
/// stack on hostile input.
const MAX_DEPTH: usize = 64;

/// A syntax or name-resolution error at a 1-based line and column (columns count characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole module (any number of kernels and helpers, in order).
pub fn parse_module(text: &str) -> Result<Module, ParseError> {
    let toks = lex(text)?;
    let mut p = Parser { toks, pos: 0, module: Module::default(), depth: 0 };
    p.module()?;
    Ok(p.module)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: u32,
    col: u32,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// `%name` (without the `%`).
    Value(String),
    /// `@name` or `@"name"` (without the `@` and quotes).
    Func(String),
    Ident(String),
    /// Raw number text, including a leading `-`.
    Num(String),
    Str(String),
    Punct(char),
    Arrow,
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Value(s) => write!(f, "`%{s}`"),
            Tok::Func(s) => write!(f, "`@{s}`"),
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Num(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "string {}", crate::print::quote(s)),
            Tok::Punct(c) => write!(f, "`{c}`"),
            Tok::Arrow => write!(f, "`->`"),
            Tok::Eof => write!(f, "end of input"),
        }
    }
}

fn err<T>(pos: Pos, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError { line: pos.line, col: pos.col, message: message.into() })
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn lex(text: &str) -> Result<Vec<(Tok, Pos)>, ParseError> {
    let cs: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    // Advances over `n` characters, none of which is a newline.
    macro_rules! adv {
        ($n:expr) => {{
            i += $n;
            col += $n as u32;
        }};
    }
    while i < cs.len() {
        let c = cs[i];
        let pos = Pos { line, col };
        let at = |k: usize| cs.get(i + k).copied();
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
        } else if c.is_whitespace() {
            adv!(1);
        } else if c == '/' && at(1) == Some('/') {
            while i < cs.len() && cs[i] != '\n' {
                adv!(1);
            }
        } else if c == '%' {
            let n = cs[i + 1..].iter().take_while(|&&c| is_word(c)).count();
            if n == 0 {
                return err(pos, "expected a value name after `%`");
            }
            toks.push((Tok::Value(cs[i + 1..i + 1 + n].iter().collect()), pos));
            adv!(1 + n);
        } else if c == '@' {
            if at(1) == Some('"') {
                adv!(1);
                let (s, n) = lex_string(&cs[i..], Pos { line, col })?;
                toks.push((Tok::Func(s), pos));
                adv!(n);
            } else {
                let n = cs[i + 1..].iter().take_while(|&&c| is_word(c)).count();
                if n == 0 {
                    return err(pos, "expected a function name after `@`");
                }
                toks.push((Tok::Func(cs[i + 1..i + 1 + n].iter().collect()), pos));
                adv!(1 + n);
            }
        } else if c == '"' {
            let (s, n) = lex_string(&cs[i..], pos)?;
            toks.push((Tok::Str(s), pos));
            adv!(n);
        } else if c.is_ascii_digit() || (c == '-' && at(1).is_some_and(|d| d.is_ascii_digit())) {
            let n = lex_number(&cs[i..]);
            toks.push((Tok::Num(cs[i..i + n].iter().collect()), pos));
            adv!(n);
        } else if c == '-' && at(1) == Some('>') {
            toks.push((Tok::Arrow, pos));
            adv!(2);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let n = cs[i..].iter().take_while(|&&c| is_word(c)).count();
            toks.push((Tok::Ident(cs[i..i + n].iter().collect()), pos));
            adv!(n);
        } else if "(){}[],:=*-".contains(c) {
            toks.push((Tok::Punct(c), pos));
            adv!(1);
        } else {
            return err(pos, format!("unexpected character {c:?}"));
        }
    }
    toks.push((Tok::Eof, Pos { line, col }));
    Ok(toks)
}

/// Length of the number at the start of `cs`: `-?digits(.digits*)?([eE][+-]?digits)?` or a
/// `0x` hex integer. Validity is checked when the text is converted.
fn lex_number(cs: &[char]) -> usize {
    let mut n = usize::from(cs[0] == '-');
    if cs.get(n) == Some(&'0') && matches!(cs.get(n + 1), Some('x' | 'X')) {
        n += 2;
        while cs.get(n).is_some_and(|c| c.is_ascii_hexdigit()) {
            n += 1;
        }
        return n;
    }
    while cs.get(n).is_some_and(|c| c.is_ascii_digit()) {
        n += 1;
    }
    if cs.get(n) == Some(&'.') {
        n += 1;
        while cs.get(n).is_some_and(|c| c.is_ascii_digit()) {
            n += 1;
        }
    }
    if matches!(cs.get(n), Some('e' | 'E')) {
        let mut k = n + 1;
        if matches!(cs.get(k), Some('+' | '-')) {
            k += 1;
        }
        if cs.get(k).is_some_and(|c| c.is_ascii_digit()) {
            n = k;
            while cs.get(n).is_some_and(|c| c.is_ascii_digit()) {
                n += 1;
            }
        }
    }
    n
}

/// Reads a string literal starting at the opening quote; returns its value and its length in
/// characters. Strings do not span lines (the printer escapes newlines).
fn lex_string(cs: &[char], pos: Pos) -> Result<(String, usize), ParseError> {
    let mut s = String::new();
    let mut i = 1;
    let here = |i: usize| Pos { line: pos.line, col: pos.col + i as u32 };
    loop {
        match cs.get(i) {
            None | Some('\n') => return err(pos, "unterminated string"),
            Some('"') => return Ok((s, i + 1)),
            Some('\\') => {
                let c = match cs.get(i + 1) {
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('0') => '\0',
                    Some('u') => {
                        if cs.get(i + 2) != Some(&'{') {
                            return err(here(i), "expected `{` after `\\u`");
                        }
                        let hex: String =
                            cs[i + 3..].iter().take_while(|c| c.is_ascii_hexdigit()).collect();
                        let close = i + 3 + hex.len();
                        if cs.get(close) != Some(&'}') || hex.is_empty() || hex.len() > 6 {
                            return err(here(i), "malformed `\\u{...}` escape");
                        }
                        let c = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        let Some(c) = c else {
                            return err(here(i), format!("`\\u{{{hex}}}` is not a character"));
                        };
                        s.push(c);
                        i = close + 1;
                        continue;
                    }
                    Some(c) => return err(here(i), format!("unknown escape `\\{c}`")),
                    None => return err(pos, "unterminated string"),
                };
                s.push(c);
                i += 2;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A literal before it meets its dtype.
#[derive(Clone, Copy, Debug)]
enum Lit {
    Bool(bool),
    Int(i128),
    Float(f64),
}

/// Rounds `x` to the nearest value of a float dtype (NaNs keep their payload).
pub(crate) fn round_to(x: f64, d: DType) -> f64 {
    if x.is_nan() {
        return x;
    }
    match d {
        DType::F32 => x as f32 as f64,
        DType::F16 => half::f16::from_f64(x).to_f64(),
        DType::BF16 => half::bf16::from_f64(x).to_f64(),
        _ => x,
    }
}

fn lit_to_const(lit: Lit, dtype: Option<DType>, pos: Pos) -> Result<ConstValue, ParseError> {
    let float_dtype = dtype.filter(|d| d.is_float());
    Ok(match lit {
        Lit::Bool(b) => ConstValue::Bool(b),
        Lit::Float(x) => ConstValue::Float(float_dtype.map_or(x, |d| round_to(x, d))),
        Lit::Int(i) => match float_dtype {
            Some(d) => ConstValue::Float(round_to(i as f64, d)),
            None => {
                if let Ok(v) = i64::try_from(i) {
                    ConstValue::Int(v)
                } else if let (Some(DType::U64), Ok(v)) = (dtype, u64::try_from(i)) {
                    // u64 constants are stored as their bit pattern.
                    ConstValue::Int(v as i64)
                } else {
                    return err(pos, format!("integer literal {i} does not fit in 64 bits"));
                }
            }
        },
    })
}

/// Per-function parsing state.
struct FnState {
    f: Function,
    names: HashMap<String, Value>,
    /// Calls whose callee is resolved once every function is known.
    calls: Vec<(OpId, String, Pos)>,
}

impl FnState {
    fn define(&mut self, name: &str, pos: Pos, v: Value) -> Result<(), ParseError> {
        if self.names.contains_key(name) {
            return err(pos, format!("value `%{name}` is defined twice"));
        }
        self.names.insert(name.to_string(), v);
        // Numbers are positions, not names: they get no hint, so the printer renumbers them.
        let hint = if name.starts_with(|c: char| c.is_ascii_digit()) {
            None
        } else {
            Some(name.to_string())
        };
        self.f.values[v.0 as usize].name = hint;
        Ok(())
    }
}

struct Parser {
    toks: Vec<(Tok, Pos)>,
    pos: usize,
    module: Module,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn here(&self) -> Pos {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn next(&mut self) -> (Tok, Pos) {
        let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn unexpected<T>(&self, what: &str) -> Result<T, ParseError> {
        err(self.here(), format!("expected {what}, found {}", self.peek()))
    }

    fn is_punct(&self, c: char) -> bool {
        *self.peek() == Tok::Punct(c)
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.next();
        }
        yes
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let yes = self.is_kw(kw);
        if yes {
            self.next();
        }
        yes
    }

    fn expect_punct(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            self.unexpected(&format!("`{c}`"))
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), ParseError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            self.unexpected(&format!("`{kw}`"))
        }
    }

    fn ident(&mut self, what: &str) -> Result<(String, Pos), ParseError> {
        match self.peek().clone() {
            Tok::Ident(s) => Ok((s, self.next().1)),
            _ => self.unexpected(what),
        }
    }

    /// A `%name` being defined (not yet resolved).
    fn value_name(&mut self) -> Result<(String, Pos), ParseError> {
        match self.peek().clone() {
            Tok::Value(s) => Ok((s, self.next().1)),
            _ => self.unexpected("a value name like `%x`"),
        }
    }

    /// A `%name` being used: must be defined earlier in this function.
    fn use_value(&mut self, st: &FnState) -> Result<Value, ParseError> {
        let (name, pos) = self.value_name()?;
        match st.names.get(&name) {
            Some(&v) => Ok(v),
            None => err(pos, format!("use of undefined value `%{name}`")),
        }
    }

    fn uint<T: TryFrom<u64>>(&mut self, what: &str) -> Result<T, ParseError> {
        let pos = self.here();
        match self.peek().clone() {
            Tok::Num(s) => {
                self.next();
                let v = s.parse::<u64>().ok().and_then(|v| T::try_from(v).ok());
                match v {
                    Some(v) => Ok(v),
                    None => err(pos, format!("`{s}` is not a valid {what}")),
                }
            }
            _ => self.unexpected(what),
        }
    }

    fn int(&mut self, what: &str) -> Result<i64, ParseError> {
        let pos = self.here();
        match self.peek().clone() {
            Tok::Num(s) => {
                self.next();
                match s.parse::<i64>() {
                    Ok(v) => Ok(v),
                    Err(_) => err(pos, format!("`{s}` is not a valid {what}")),
                }
            }
            _ => self.unexpected(what),
        }
    }

    /// `, <kw> <uint>`
    fn kw_uint<T: TryFrom<u64>>(&mut self, kw: &str, what: &str) -> Result<T, ParseError> {
        self.expect_punct(',')?;
        self.expect_kw(kw)?;
        self.uint(what)
    }

    fn literal(&mut self) -> Result<(Lit, Pos), ParseError> {
        let pos = self.here();
        let lit = match self.next().0 {
            Tok::Ident(s) if s == "true" => Lit::Bool(true),
            Tok::Ident(s) if s == "false" => Lit::Bool(false),
            Tok::Ident(s) if s == "inf" => Lit::Float(f64::INFINITY),
            Tok::Punct('-') if self.is_kw("inf") => {
                self.next();
                Lit::Float(f64::NEG_INFINITY)
            }
            Tok::Ident(s) if s == "nan" => {
                if self.eat_punct('(') {
                    let bpos = self.here();
                    let bits = match self.next().0 {
                        Tok::Num(h) if h.starts_with("0x") || h.starts_with("0X") => {
                            u64::from_str_radix(&h[2..], 16).ok()
                        }
                        _ => None,
                    };
                    let Some(bits) = bits.filter(|&b| f64::from_bits(b).is_nan()) else {
                        return err(bpos, "expected the bits of a NaN, like `0x7ff8000000000001`");
                    };
                    self.expect_punct(')')?;
                    Lit::Float(f64::from_bits(bits))
                } else {
                    Lit::Float(f64::NAN)
                }
            }
            Tok::Num(s) if s.starts_with("0x") || s.starts_with("0X") => {
                match u64::from_str_radix(&s[2..], 16) {
                    Ok(v) => Lit::Int(v as i128),
                    Err(_) => return err(pos, format!("malformed hex literal `{s}`")),
                }
            }
            Tok::Num(s) if s.contains(['.', 'e', 'E']) => match s.parse::<f64>() {
                Ok(x) => Lit::Float(x),
                Err(_) => return err(pos, format!("malformed float literal `{s}`")),
            },
            Tok::Num(s) => match s.parse::<i128>() {
                Ok(v) => Lit::Int(v),
                Err(_) => return err(pos, format!("integer literal `{s}` is too large")),
            },
            t => return err(pos, format!("expected a constant, found {t}")),
        };
        Ok((lit, pos))
    }

    fn ty(&mut self) -> Result<TypeId, ParseError> {
        let is_ptr = self.eat_punct('*');
        let (name, pos) = self.ident("a type")?;
        let Some(d) = DType::from_name(&name) else {
            return err(pos, format!("unknown dtype `{name}`"));
        };
        let mut shape = Vec::new();
        if self.eat_punct('[') {
            loop {
                shape.push(self.uint::<u32>("dimension")?);
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct(']')?;
        }
        let elem = if is_ptr { Elem::Ptr(d) } else { Elem::Scalar(d) };
        Ok(self.module.types.intern(Type { elem, shape }))
    }

    fn module(&mut self) -> Result<(), ParseError> {
        let mut states = Vec::new();
        let mut seen: HashMap<String, ()> = HashMap::new();
        while *self.peek() != Tok::Eof {
            let (st, name_pos) = self.function()?;
            if seen.insert(st.f.name.clone(), ()).is_some() {
                return err(name_pos, format!("function `@{}` is defined twice", st.f.name));
            }
            states.push(st);
        }
        let ids: HashMap<String, FuncId> = states
            .iter()
            .enumerate()
            .map(|(i, st)| (st.f.name.clone(), FuncId(i as u32)))
            .collect();
        for mut st in states {
            for (op, name, pos) in std::mem::take(&mut st.calls) {
                let Some(&id) = ids.get(&name) else {
                    return err(pos, format!("call to unknown function `@{name}`"));
                };
                if let Op::Call { func, .. } = &mut st.f.op_mut(op).op {
                    *func = id;
                }
            }
            self.module.functions.push(st.f);
        }
        Ok(())
    }

    fn function(&mut self) -> Result<(FnState, Pos), ParseError> {
        let kind = if self.eat_kw("kernel") {
            FuncKind::Kernel
        } else if self.eat_kw("helper") {
            FuncKind::Helper
        } else {
            return self.unexpected("`kernel` or `helper`");
        };
        let name_pos = self.here();
        let name = match self.next().0 {
            Tok::Func(s) => s,
            t => return err(name_pos, format!("expected a function name like `@f`, found {t}")),
        };
        let mut st = FnState {
            f: Function::new(name, kind, Span::DUMMY),
            names: HashMap::new(),
            calls: Vec::new(),
        };
        self.expect_punct('(')?;
        if !self.eat_punct(')') {
            loop {
                let (pname, pos) = self.value_name()?;
                self.expect_punct(':')?;
                let ty = self.ty()?;
                let v = st.f.add_param(pname.clone(), ty);
                st.define(&pname, pos, v)?;
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct(')')?;
        }
        if self.eat_kw("constexpr") {
            self.expect_punct('(')?;
            if !self.eat_punct(')') {
                loop {
                    let cname = match self.next() {
                        (Tok::Ident(s) | Tok::Str(s), _) => s,
                        (t, pos) => {
                            return err(pos, format!("expected a constexpr name, found {t}"))
                        }
                    };
                    self.expect_punct('=')?;
                    let (lit, pos) = self.literal()?;
                    st.f.constexprs.push((cname, lit_to_const(lit, None, pos)?));
                    if !self.eat_punct(',') {
                        break;
                    }
                }
                self.expect_punct(')')?;
            }
        }
        if self.eat_kw("multiple_of") {
            self.expect_punct('(')?;
            loop {
                let vpos = self.here();
                let v = self.use_value(&st)?;
                let Some(index) = st.f.params.iter().position(|p| p.value == v) else {
                    return err(
                        vpos,
                        "`multiple_of` names a value that is not a parameter".to_string(),
                    );
                };
                self.expect_punct('=')?;
                let (lit, pos) = self.literal()?;
                let n = match lit_to_const(lit, None, pos)? {
                    ConstValue::Int(n) if n > 0 => n as u64,
                    _ => {
                        return err(
                            pos,
                            "a `multiple_of` factor must be a positive integer".to_string(),
                        )
                    }
                };
                st.f.param_multiples.push((index as u32, n));
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct(')')?;
        }
        if *self.peek() == Tok::Arrow {
            self.next();
            self.expect_punct('(')?;
            if !self.eat_punct(')') {
                loop {
                    let t = self.ty()?;
                    st.f.results.push(t);
                    if !self.eat_punct(',') {
                        break;
                    }
                }
                self.expect_punct(')')?;
            }
        }
        let body = st.f.body;
        self.region(&mut st, body)?;
        Ok((st, name_pos))
    }

    /// `{ op* }` appended to `r` (whose arguments are already defined).
    fn region(&mut self, st: &mut FnState, r: RegionId) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return err(self.here(), format!("regions nested more than {MAX_DEPTH} deep"));
        }
        self.depth += 1;
        self.expect_punct('{')?;
        while !self.eat_punct('}') {
            self.op(st, r)?;
        }
        self.depth -= 1;
        Ok(())
    }

    /// A new region with the given arguments, defined under their names, then its body.
    fn region_with_args(
        &mut self,
        st: &mut FnState,
        args: &[(String, Pos, TypeId)],
    ) -> Result<RegionId, ParseError> {
        let types: Vec<TypeId> = args.iter().map(|a| a.2).collect();
        let r = st.f.new_region(&types);
        for (i, (name, pos, _)) in args.iter().enumerate() {
            let v = st.f.region(r).args[i];
            st.define(name, *pos, v)?;
        }
        self.region(st, r)?;
        Ok(r)
    }

    /// `: T, ...` when the op has `n` results; nothing when it has none.
    fn result_types(&mut self, n: usize) -> Result<Vec<TypeId>, ParseError> {
        if n == 0 {
            if self.is_punct(':') {
                return err(self.here(), "an op without results takes no result types");
            }
            return Ok(Vec::new());
        }
        if !self.is_punct(':') {
            return self.unexpected(&format!("`:` and {n} result type(s)"));
        }
        let colon = self.next().1;
        let mut ts = vec![self.ty()?];
        while self.is_punct(',') {
            self.next();
            ts.push(self.ty()?);
        }
        if ts.len() != n {
            return err(colon, format!("{n} result name(s) but {} result type(s)", ts.len()));
        }
        Ok(ts)
    }

    /// `, mask %m` if present.
    fn opt_mask(&mut self, st: &FnState) -> Result<Option<Value>, ParseError> {
        if self.is_punct(',')
            && matches!(&self.toks.get(self.pos + 1), Some((Tok::Ident(s), _)) if s == "mask")
        {
            self.next();
            self.next();
            return Ok(Some(self.use_value(st)?));
        }
        Ok(None)
    }

    /// `, <kw>` if present.
    fn opt_flag(&mut self, kw: &str) -> bool {
        if self.is_punct(',')
            && matches!(&self.toks.get(self.pos + 1), Some((Tok::Ident(s), _)) if s == kw)
        {
            self.next();
            self.next();
            return true;
        }
        false
    }

    fn combine_region(&mut self, st: &mut FnState) -> Result<RegionId, ParseError> {
        self.expect_kw("combine")?;
        let args = self.typed_args()?;
        self.region_with_args(st, &args)
    }

    /// `(%a: T, ...)`
    fn typed_args(&mut self) -> Result<Vec<(String, Pos, TypeId)>, ParseError> {
        self.expect_punct('(')?;
        let mut args = Vec::new();
        if !self.eat_punct(')') {
            loop {
                let (n, pos) = self.value_name()?;
                self.expect_punct(':')?;
                let t = self.ty()?;
                args.push((n, pos, t));
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct(')')?;
        }
        Ok(args)
    }

    fn values_list(&mut self, st: &FnState) -> Result<Vec<Value>, ParseError> {
        let mut vs = vec![self.use_value(st)?];
        while self.eat_punct(',') {
            vs.push(self.use_value(st)?);
        }
        Ok(vs)
    }

    fn op(&mut self, st: &mut FnState, region: RegionId) -> Result<(), ParseError> {
        let mut results = Vec::new();
        if matches!(self.peek(), Tok::Value(_)) {
            loop {
                results.push(self.value_name()?);
                if !self.eat_punct(',') {
                    break;
                }
            }
            self.expect_punct('=')?;
        }
        let n = results.len();
        let (mn, mpos) = self.ident("an operation")?;
        let mut call_name = None;
        let (op, tys) = match mn.as_str() {
            "const" => {
                let (lit, pos) = self.literal()?;
                let tys = self.result_types(n)?;
                let dtype = tys.first().and_then(|&t| self.module.types.get(t).elem.dtype());
                (Op::Const { value: lit_to_const(lit, dtype, pos)? }, tys)
            }
            "program_id" | "num_programs" => {
                let axis = self.uint("axis")?;
                let op = if mn == "program_id" {
                    Op::ProgramId { axis }
                } else {
                    Op::NumPrograms { axis }
                };
                (op, self.result_types(n)?)
            }
            "arange" => {
                let start = self.int("start")?;
                self.expect_punct(',')?;
                let end = self.int("end")?;
                (Op::Arange { start, end }, self.result_types(n)?)
            }
            "splat" | "broadcast" | "reshape" | "cast" => {
                let value = self.use_value(st)?;
                let op = match mn.as_str() {
                    "splat" => Op::Splat { value },
                    "broadcast" => Op::Broadcast { value },
                    "reshape" => Op::Reshape { value },
                    _ => Op::Cast { value },
                };
                (op, self.result_types(n)?)
            }
            "expand_dims" => {
                let value = self.use_value(st)?;
                let axis = self.kw_uint("axis", "axis")?;
                (Op::ExpandDims { value, axis }, self.result_types(n)?)
            }
            "permute" => {
                let value = self.use_value(st)?;
                self.expect_punct(',')?;
                self.expect_kw("perm")?;
                self.expect_punct('[')?;
                let mut perm = Vec::new();
                if !self.eat_punct(']') {
                    loop {
                        perm.push(self.uint("axis")?);
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                    self.expect_punct(']')?;
                }
                (Op::Permute { value, perm }, self.result_types(n)?)
            }
            "cmp" => {
                let (p, ppos) = self.ident("a comparison predicate")?;
                let Some(pred) = CmpPred::from_name(&p) else {
                    return err(ppos, format!("unknown comparison predicate `{p}`"));
                };
                let lhs = self.use_value(st)?;
                self.expect_punct(',')?;
                let rhs = self.use_value(st)?;
                (Op::Cmp { pred, lhs, rhs }, self.result_types(n)?)
            }
            "select" | "fma" => {
                let a = self.use_value(st)?;
                self.expect_punct(',')?;
                let b = self.use_value(st)?;
                self.expect_punct(',')?;
                let c = self.use_value(st)?;
                let op = if mn == "select" {
                    Op::Select { cond: a, on_true: b, on_false: c }
                } else {
                    Op::Fma { a, b, c }
                };
                (op, self.result_types(n)?)
            }
            "addptr" => {
                let ptr = self.use_value(st)?;
                self.expect_punct(',')?;
                let offset = self.use_value(st)?;
                (Op::AddPtr { ptr, offset }, self.result_types(n)?)
            }
            "load" => {
                let ptr = self.use_value(st)?;
                let mask = self.opt_mask(st)?;
                let other = if self.opt_flag("other") { Some(self.use_value(st)?) } else { None };
                (Op::Load { ptr, mask, other }, self.result_types(n)?)
            }
            "store" => {
                let ptr = self.use_value(st)?;
                self.expect_punct(',')?;
                let value = self.use_value(st)?;
                let mask = self.opt_mask(st)?;
                (Op::Store { ptr, value, mask }, self.result_types(n)?)
            }
            "atomic" => {
                let (k, kpos) = self.ident("an atomic operation")?;
                let Some(op) = AtomicOp::from_name(&k) else {
                    return err(kpos, format!("unknown atomic operation `{k}`"));
                };
                let ptr = self.use_value(st)?;
                self.expect_punct(',')?;
                let value = self.use_value(st)?;
                let mask = self.opt_mask(st)?;
                (Op::Atomic { op, ptr, value, mask }, self.result_types(n)?)
            }
            "atomic_cas" => {
                let ptr = self.use_value(st)?;
                self.expect_punct(',')?;
                let cmp = self.use_value(st)?;
                self.expect_punct(',')?;
                let value = self.use_value(st)?;
                let mask = self.opt_mask(st)?;
                (Op::AtomicCas { ptr, cmp, value, mask }, self.result_types(n)?)
            }
            "reduce" => {
                let (k, kpos) = self.ident("a reduction kind")?;
                let Some(kind) = ReduceKind::from_name(&k) else {
                    return err(kpos, format!("unknown reduction `{k}`"));
                };
                let value = self.use_value(st)?;
                let axis = self.kw_uint("axis", "axis")?;
                (Op::Reduce { kind, axis, value }, self.result_types(n)?)
            }
            "reduce_with" | "scan_with" => {
                let value = self.use_value(st)?;
                let axis = self.kw_uint("axis", "axis")?;
                let tys = self.result_types(n)?;
                let combine = self.combine_region(st)?;
                let op = if mn == "reduce_with" {
                    Op::ReduceWith { axis, value, combine }
                } else {
                    Op::ScanWith { axis, value, combine }
                };
                (op, tys)
            }
            "cumsum" => {
                let value = self.use_value(st)?;
                let axis = self.kw_uint("axis", "axis")?;
                let reverse = self.opt_flag("reverse");
                (Op::Cumsum { axis, value, reverse }, self.result_types(n)?)
            }
            "topk" => {
                let value = self.use_value(st)?;
                let k = self.kw_uint("k", "k")?;
                (Op::TopK { value, k }, self.result_types(n)?)
            }
            "sort" => {
                let value = self.use_value(st)?;
                let descending = self.opt_flag("descending");
                (Op::Sort { value, descending }, self.result_types(n)?)
            }
            "histogram" => {
                let value = self.use_value(st)?;
                let bins = self.kw_uint("bins", "bin count")?;
                let mask = self.opt_mask(st)?;
                (Op::Histogram { value, bins, mask }, self.result_types(n)?)
            }
            "dot" => {
                let a = self.use_value(st)?;
                self.expect_punct(',')?;
                let b = self.use_value(st)?;
                self.expect_punct(',')?;
                let acc = self.use_value(st)?;
                let mut precision = DotPrecision::Ieee;
                if self.opt_flag("precision") {
                    let (p, ppos) = self.ident("`ieee` or `tf32`")?;
                    precision = match p.as_str() {
                        "ieee" => DotPrecision::Ieee,
                        "tf32" => DotPrecision::Tf32,
                        _ => return err(ppos, format!("unknown dot precision `{p}`")),
                    };
                }
                (Op::Dot { a, b, acc, precision }, self.result_types(n)?)
            }
            "for" => {
                let (iv, ivpos) = self.value_name()?;
                self.expect_punct('=')?;
                let lo = self.use_value(st)?;
                self.expect_kw("to")?;
                let hi = self.use_value(st)?;
                self.expect_kw("step")?;
                let step = self.use_value(st)?;
                let mut carried = Vec::new();
                let mut init = Vec::new();
                if self.eat_kw("iter_args") {
                    self.expect_punct('(')?;
                    loop {
                        carried.push(self.value_name()?);
                        self.expect_punct('=')?;
                        init.push(self.use_value(st)?);
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                    self.expect_punct(')')?;
                }
                let tpos = self.here();
                let tys = self.result_types(n)?;
                if tys.len() != init.len() {
                    return err(
                        tpos,
                        format!(
                            "`for` has {} iter_args but {} results; they must match",
                            init.len(),
                            tys.len()
                        ),
                    );
                }
                let mut args = vec![(iv, ivpos, st.f.value_type(lo))];
                for ((name, pos), &t) in carried.into_iter().zip(&tys) {
                    args.push((name, pos, t));
                }
                let body = self.region_with_args(st, &args)?;
                (Op::For { lo, hi, step, init, body }, tys)
            }
            "if" => {
                let cond = self.use_value(st)?;
                let tys = self.result_types(n)?;
                let then_body = self.region_with_args(st, &[])?;
                let else_body = if self.eat_kw("else") {
                    self.region_with_args(st, &[])?
                } else {
                    let r = st.f.new_region(&[]);
                    st.f.append_op(r, Op::Yield { values: Vec::new() }, &[], Span::DUMMY);
                    r
                };
                (Op::If { cond, then_body, else_body }, tys)
            }
            "yield" => {
                let values = if matches!(self.peek(), Tok::Value(_)) && !self.results_ahead() {
                    self.values_list(st)?
                } else {
                    Vec::new()
                };
                (Op::Yield { values }, self.result_types(n)?)
            }
            "call" => {
                let (name, pos) = match self.next() {
                    (Tok::Func(s), pos) => (s, pos),
                    (t, pos) => return err(pos, format!("expected a callee like `@f`, found {t}")),
                };
                self.expect_punct('(')?;
                let args = if self.eat_punct(')') {
                    Vec::new()
                } else {
                    let vs = self.values_list(st)?;
                    self.expect_punct(')')?;
                    vs
                };
                call_name = Some((name, pos));
                // The callee is patched in once the whole module is read.
                (Op::Call { func: FuncId(u32::MAX), args }, self.result_types(n)?)
            }
            "device_assert" => {
                let cond = self.use_value(st)?;
                self.expect_punct(',')?;
                let message = self.string()?;
                (Op::DeviceAssert { cond, message }, self.result_types(n)?)
            }
            "print" => {
                let prefix = self.string()?;
                let mut values = Vec::new();
                while self.eat_punct(',') {
                    values.push(self.use_value(st)?);
                }
                (Op::Print { prefix, values }, self.result_types(n)?)
            }
            other => {
                if let Some(op) = UnaryOp::from_name(other) {
                    let value = self.use_value(st)?;
                    (Op::Unary { op, value }, self.result_types(n)?)
                } else if let Some(op) = BinaryOp::from_name(other) {
                    let lhs = self.use_value(st)?;
                    self.expect_punct(',')?;
                    let rhs = self.use_value(st)?;
                    (Op::Binary { op, lhs, rhs }, self.result_types(n)?)
                } else {
                    return err(mpos, format!("unknown operation `{other}`"));
                }
            }
        };
        let id = st.f.append_op(region, op, &tys, Span::DUMMY);
        if let Some((name, pos)) = call_name {
            st.calls.push((id, name, pos));
        }
        // Results are defined after the op's regions: they are not visible inside them.
        for (i, (name, pos)) in results.iter().enumerate() {
            let v = st.f.op(id).results[i];
            st.define(name, *pos, v)?;
        }
        Ok(())
    }

    /// True if the tokens ahead are `%a, %b =`: the results of the next op, not operands of a
    /// bare `yield` (which can only be followed by another op in IR that does not verify).
    fn results_ahead(&self) -> bool {
        let mut i = self.pos;
        loop {
            match self.toks.get(i) {
                Some((Tok::Value(_), _)) => i += 1,
                _ => return false,
            }
            match self.toks.get(i) {
                Some((Tok::Punct(','), _)) => i += 1,
                Some((Tok::Punct('='), _)) => return true,
                _ => return false,
            }
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            Tok::Str(s) => {
                self.next();
                Ok(s)
            }
            _ => self.unexpected("a string"),
        }
    }
}
