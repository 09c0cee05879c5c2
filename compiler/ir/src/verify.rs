//! The IR verifier. It runs after the frontend and after every pass in debug builds; a module
//! that passes can be printed, parsed back, interpreted and lowered by every backend.
//!
//! Invariants, grouped by the [`Rule`] an error reports:
//!
//! - [`Rule::Handles`]: every value, op, region, type and callee handle is in range; every region
//!   is the body of the function or of exactly one op, and contains no op twice; every op sits in
//!   at most one region. (These are checked first; if any fails, the other checks are skipped
//!   for that function, since they would index out of range.)
//! - [`Rule::Definition`]: `ValueDef` back-pointers agree with the IR: parameter `i` is
//!   `Param(i)` with the parameter's type, result `i` of op `o` is `Result { op: o, index: i }`,
//!   argument `i` of region `r` is `RegionArg { region: r, index: i }`.
//! - [`Rule::Terminator`]: every region ends with exactly one `yield`, and `yield` appears nowhere
//!   else.
//! - [`Rule::Dominance`]: every operand is defined before its use: a parameter, a result of an
//!   earlier op in the same or an enclosing region, or an argument of the same or an enclosing
//!   region. Values defined inside a nested region are not visible outside it.
//! - [`Rule::Shape`]: every type has rank 0 (scalar) or 1..=4 (block) and no dimension is 0.
//! - [`Rule::Arity`]: each op has the number of results its variant defines (`store`, `yield`,
//!   `device_assert` and `print` none; `topk` and `sort` two; `for` and `if` as many as they
//!   carry or yield; `call` as many as the callee returns; all others one).
//! - [`Rule::Type`]: the operand and result rules documented on each [`Op`] variant, including:
//!   constants match their scalar dtype (in range, floats already rounded); `program_id` and
//!   `num_programs` axes 0..=2 giving i32; `arange` gives `i32[end - start]` with `end > start`
//!   inside i32; element-wise ops have operands of exactly the result type (no implicit
//!   broadcasting); `splat` is scalar to block of the same element; `broadcast` keeps rank and
//!   elements and each operand dimension is 1 or the result's; `expand_dims` inserts a 1 at
//!   `axis <= rank`; `reshape` keeps element type and count; `permute` uses a permutation of
//!   `0..rank`; float-only unary ops need floats, `neg`/`abs` numbers, `not` ints or bool;
//!   arithmetic and `min`/`max` need numbers, `and`/`or`/`xor` ints or bool, `shl`/`shr` ints;
//!   `cmp` gives bool of the operands' shape; `select` takes a bool condition of the result
//!   shape; `fma` is floats only; `cast` keeps the shape and involves no pointers; `addptr` is a
//!   pointer plus an integer offset of the same shape; `load`/`store`/atomics take `*T` and `T`
//!   of the pointer's shape, a bool mask of that shape, `other` of the result type, and atomics
//!   act on ints or floats; reductions, scans, `topk` and `sort` take a block with `axis < rank`
//!   and give the documented result (`argmax`/`argmin` and indices are i32; `1 <= k <= ` the
//!   last dimension); `histogram` takes an int block and gives `i32[bins]`, `bins >= 1`; `dot` is
//!   `[M, K] x [K, N] + [M, N]` with f16/bf16/f32 inputs (same dtype) and an f32 accumulator, or
//!   i8 inputs and an i32 accumulator, `tf32` only for f32 inputs; `for` bounds and step are
//!   scalars of one integer dtype; `if` and `device_assert` conditions are bool (`if`: scalar).
//! - [`Rule::Region`]: region arguments and yields agree with the parent op. `for`: body
//!   arguments `[iv, carried...]` with the bound type and the `init` types, yields and results of
//!   the `init` types. `if`: both branches without arguments, each yielding the result types.
//!   `reduce_with`/`scan_with`: the combine region takes two scalars of the operand dtype and
//!   yields one, and neither it nor anything nested in it touches memory (load, store, atomics).
//! - [`Rule::Signature`]: the body region has no arguments and yields the declared result types;
//!   kernels return nothing and take only scalar and pointer (not block) parameters; parameter
//!   names and constexpr names are distinct within a function; `multiple_of` facts name integer
//!   scalar parameters with positive factors; function names are distinct
//!   within a module (calls and the text form refer to functions by name).
//! - [`Rule::Call`]: the callee is a helper; argument and result counts and types match its
//!   signature; there is no recursion (directly or through other helpers); with
//!   [`VerifyOptions::require_no_calls`] (after inlining) there are no calls at all.
//!
//! Errors name the function, the op (its printed results and mnemonic, e.g. `%3 = cmp`, using
//! the names the printer would print) and the broken rule.

use crate::print::{fmt_const, Names};
use crate::{
    BinaryOp, ConstValue, DType, DotPrecision, Elem, FuncId, FuncKind, Function, Module, Op, OpId,
    ReduceKind, RegionId, Type, TypeId, UnaryOp, Value, ValueDef,
};
use std::collections::HashSet;
use std::fmt;

/// What the verifier should additionally require.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Reject every `call` (true once the inliner has run, before any backend).
    pub require_no_calls: bool,
}

impl VerifyOptions {
    /// Options for IR after inlining: no calls remain.
    pub fn after_inlining() -> VerifyOptions {
        VerifyOptions { require_no_calls: true }
    }
}

/// The invariant class an error belongs to (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    Handles,
    Definition,
    Terminator,
    Dominance,
    Shape,
    Arity,
    Type,
    Region,
    Signature,
    Call,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Handles => "handles",
            Rule::Definition => "definition",
            Rule::Terminator => "terminator",
            Rule::Dominance => "dominance",
            Rule::Shape => "shape",
            Rule::Arity => "arity",
            Rule::Type => "type",
            Rule::Region => "region",
            Rule::Signature => "signature",
            Rule::Call => "call",
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// The function's name.
    pub function: String,
    /// The op as printed, `%3 = cmp` or `store`; `None` for function- and module-level errors.
    pub op: Option<String>,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in @{}", self.function)?;
        if let Some(op) = &self.op {
            write!(f, ", at `{op}`")?;
        }
        write!(f, ": [{}] {}", self.rule.name(), self.message)
    }
}

impl std::error::Error for VerifyError {}

/// Verifies every function and the module-level rules with default options.
pub fn verify_module(m: &Module) -> Result<(), Vec<VerifyError>> {
    verify_module_with(m, &VerifyOptions::default())
}

/// Verifies every function and the module-level rules (distinct names, no recursion).
pub fn verify_module_with(m: &Module, opts: &VerifyOptions) -> Result<(), Vec<VerifyError>> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    for f in &m.functions {
        if !seen.insert(f.name.as_str()) {
            errors.push(VerifyError {
                function: f.name.clone(),
                op: None,
                rule: Rule::Signature,
                message: format!("another function is also named `@{}`", f.name),
            });
        }
        if let Err(es) = verify_function_with(m, f, opts) {
            errors.extend(es);
        }
    }
    errors.extend(call_cycles(m));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Verifies one function of `m` with default options (module-level rules are not checked).
pub fn verify_function(m: &Module, f: &Function) -> Result<(), Vec<VerifyError>> {
    verify_function_with(m, f, &VerifyOptions::default())
}

/// Verifies one function of `m` (module-level rules are not checked).
pub fn verify_function_with(
    m: &Module,
    f: &Function,
    opts: &VerifyOptions,
) -> Result<(), Vec<VerifyError>> {
    let mut c = Checker {
        m,
        f,
        opts,
        names: Names::new(f),
        errors: Vec::new(),
        defined: vec![false; f.values.len()],
        scope: Vec::new(),
    };
    if c.handles() {
        c.function();
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(c.errors)
    }
}

/// Callees of the calls placed in `f`'s regions (bounds-checked: runs on unverified IR).
fn callees(f: &Function) -> Vec<FuncId> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![f.body];
    while let Some(r) = stack.pop() {
        if !seen.insert(r) {
            continue;
        }
        let Some(rd) = f.regions.get(r.0 as usize) else { continue };
        for &op in &rd.ops {
            let Some(od) = f.ops.get(op.0 as usize) else { continue };
            if let Op::Call { func, .. } = od.op {
                out.push(func);
            }
            stack.extend(od.op.regions());
        }
    }
    out
}

/// One error per call cycle found (recursion cannot be inlined).
fn call_cycles(m: &Module) -> Vec<VerifyError> {
    let n = m.functions.len();
    let graph: Vec<Vec<usize>> = m
        .functions
        .iter()
        .map(|f| callees(f).into_iter().map(|c| c.0 as usize).filter(|&c| c < n).collect())
        .collect();
    // 0 = unvisited, 1 = on the DFS path, 2 = done.
    let mut color = vec![0u8; n];
    let mut errors = Vec::new();
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        color[start] = 1;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&succ) = graph[node].get(*next) {
                *next += 1;
                match color[succ] {
                    0 => {
                        color[succ] = 1;
                        path.push((succ, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&(x, _)| x == succ).unwrap_or(0);
                        let mut names: Vec<String> = path[from..]
                            .iter()
                            .map(|&(x, _)| format!("@{}", m.functions[x].name))
                            .collect();
                        names.push(format!("@{}", m.functions[succ].name));
                        errors.push(VerifyError {
                            function: m.functions[succ].name.clone(),
                            op: None,
                            rule: Rule::Call,
                            message: format!(
                                "recursive calls cannot be inlined: {}",
                                names.join(" -> ")
                            ),
                        });
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                path.pop();
            }
        }
    }
    errors
}

fn is_num(d: DType) -> bool {
    d.is_int() || d.is_float()
}

fn dtype_of(t: &Type) -> Option<DType> {
    t.elem.dtype()
}

fn shape_str(s: &[u32]) -> String {
    let ds: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", ds.join(", "))
}

/// Checks that a constant belongs to `d` (see [`ConstValue`]'s storage rules).
fn const_fits(v: ConstValue, d: DType) -> Result<(), String> {
    let lit = fmt_const(v, Some(d));
    match v {
        ConstValue::Bool(_) if d == DType::Bool => Ok(()),
        ConstValue::Int(i) if d.is_int() => {
            let range: Option<(i64, i64)> = match d {
                DType::I8 => Some((i8::MIN.into(), i8::MAX.into())),
                DType::I16 => Some((i16::MIN.into(), i16::MAX.into())),
                DType::I32 => Some((i32::MIN.into(), i32::MAX.into())),
                DType::U8 => Some((0, u8::MAX.into())),
                DType::U16 => Some((0, u16::MAX.into())),
                DType::U32 => Some((0, u32::MAX.into())),
                _ => None,
            };
            match range {
                Some((lo, hi)) if i < lo || i > hi => {
                    Err(format!("constant {lit} is out of range for {d} ({lo}..={hi})"))
                }
                _ => Ok(()),
            }
        }
        ConstValue::Float(x) if d.is_float() => {
            if x.is_nan() || crate::parse::round_to(x, d).to_bits() == x.to_bits() {
                Ok(())
            } else {
                Err(format!(
                    "constant {lit} is not a {d} value; float constants are stored already \
                     rounded to their dtype"
                ))
            }
        }
        _ => Err(format!("constant {lit} does not match the result dtype {d}")),
    }
}

/// Pending errors of one op: (rule, message).
type Errs = Vec<(Rule, String)>;

/// Pushes an arity error unless `res` has `k` values.
fn arity(res: &[Value], k: usize, e: &mut Errs) -> bool {
    if res.len() == k {
        true
    } else {
        e.push((Rule::Arity, format!("expected {k} result(s), found {}", res.len())));
        false
    }
}

struct Checker<'a> {
    m: &'a Module,
    f: &'a Function,
    opts: &'a VerifyOptions,
    names: Names,
    errors: Vec<VerifyError>,
    /// Values visible at the current point of the walk.
    defined: Vec<bool>,
    /// Values defined so far, so that leaving a region forgets what it defined.
    scope: Vec<Value>,
}

impl<'a> Checker<'a> {
    fn err(&mut self, op: Option<OpId>, rule: Rule, message: impl Into<String>) {
        let op = op.map(|id| self.names.describe_op(self.f, id));
        self.errors.push(VerifyError {
            function: self.f.name.clone(),
            op,
            rule,
            message: message.into(),
        });
    }

    /// Valid once [`Checker::handles`] passed.
    fn ty(&self, v: Value) -> &'a Type {
        self.m.types.get(self.f.values[v.0 as usize].ty)
    }

    fn n(&self, v: Value) -> String {
        self.names.get(v)
    }

    /// Phase 1: handles in range and regions/ops linked once. False if anything is broken.
    fn handles(&mut self) -> bool {
        let (f, m) = (self.f, self.m);
        let before = self.errors.len();
        let (no, nr) = (f.ops.len(), f.regions.len());
        let value_ok =
            |v: Value| f.values.get(v.0 as usize).is_some_and(|d| m.types.try_get(d.ty).is_some());
        let mut bad: Vec<(Option<OpId>, String)> = Vec::new();
        for (i, p) in f.params.iter().enumerate() {
            if !value_ok(p.value) || m.types.try_get(p.ty).is_none() {
                bad.push((
                    None,
                    format!("parameter {i} (`{}`) has a dangling value or type", p.name),
                ));
            }
        }
        for (i, &t) in f.results.iter().enumerate() {
            if m.types.try_get(t).is_none() {
                bad.push((None, format!("result type {i} is dangling (type #{})", t.0)));
            }
        }
        if f.body.0 as usize >= nr {
            bad.push((None, format!("the body region #{} does not exist", f.body.0)));
        } else {
            let mut region_seen = vec![false; nr];
            let mut op_seen = vec![false; no];
            region_seen[f.body.0 as usize] = true;
            let mut stack: Vec<(RegionId, Option<OpId>)> = vec![(f.body, None)];
            while let Some((r, parent)) = stack.pop() {
                let rd = &f.regions[r.0 as usize];
                for &a in &rd.args {
                    if !value_ok(a) {
                        bad.push((parent, format!("region #{} has a dangling argument", r.0)));
                    }
                }
                for &op in &rd.ops {
                    if op.0 as usize >= no {
                        bad.push((parent, format!("region #{} lists missing op #{}", r.0, op.0)));
                        continue;
                    }
                    if std::mem::replace(&mut op_seen[op.0 as usize], true) {
                        bad.push((Some(op), "the op is placed in a region more than once".into()));
                        continue;
                    }
                    let od = &f.ops[op.0 as usize];
                    if !od.results.iter().all(|&v| value_ok(v)) {
                        bad.push((Some(op), "a result is a dangling value".into()));
                    }
                    if !od.op.operands().iter().all(|&v| value_ok(v)) {
                        bad.push((Some(op), "an operand is a dangling value".into()));
                    }
                    for sub in od.op.regions() {
                        match region_seen.get_mut(sub.0 as usize) {
                            None => bad.push((Some(op), format!("region #{} is missing", sub.0))),
                            Some(seen) if *seen => bad.push((
                                Some(op),
                                format!("region #{} is already used elsewhere", sub.0),
                            )),
                            Some(seen) => {
                                *seen = true;
                                stack.push((sub, Some(op)));
                            }
                        }
                    }
                    if let Op::Call { func, .. } = od.op {
                        if func.0 as usize >= m.functions.len() {
                            bad.push((Some(op), format!("calls missing function #{}", func.0)));
                        }
                    }
                }
            }
        }
        for (op, msg) in bad {
            self.err(op, Rule::Handles, msg);
        }
        self.errors.len() == before
    }

    fn define(&mut self, v: Value) {
        self.defined[v.0 as usize] = true;
        self.scope.push(v);
    }

    fn check_shape(&mut self, at: Option<OpId>, what: &str, t: &Type) {
        if t.rank() > 4 {
            self.err(at, Rule::Shape, format!("{what} has type {t}: blocks have rank 1..=4"));
        } else if t.shape.contains(&0) {
            self.err(at, Rule::Shape, format!("{what} has type {t}: dimensions must be >= 1"));
        }
    }

    fn function(&mut self) {
        let f = self.f;
        let mut names = HashSet::new();
        for (i, p) in f.params.iter().enumerate() {
            let vd = &f.values[p.value.0 as usize];
            let pt = self.m.types.get(p.ty);
            if vd.def != ValueDef::Param(i as u32) {
                self.err(
                    None,
                    Rule::Definition,
                    format!("parameter {i} (`{}`) records definition {:?}", p.name, vd.def),
                );
            }
            if vd.ty != p.ty {
                self.err(
                    None,
                    Rule::Definition,
                    format!("parameter `{}` is {pt} but its value is {}", p.name, self.ty(p.value)),
                );
            }
            self.check_shape(None, &format!("parameter `{}`", p.name), pt);
            if f.kind == FuncKind::Kernel && !pt.is_scalar() {
                self.err(
                    None,
                    Rule::Signature,
                    format!(
                        "kernel parameter `{}` is the block {pt}; kernels take scalars and \
                         pointers only",
                        p.name
                    ),
                );
            }
            if !names.insert(p.name.as_str()) {
                self.err(None, Rule::Signature, format!("two parameters are named `{}`", p.name));
            }
            self.define(p.value);
        }
        let mut cnames = HashSet::new();
        for (n, _) in &f.constexprs {
            if !cnames.insert(n.as_str()) {
                self.err(None, Rule::Signature, format!("two constexprs are named `{n}`"));
            }
        }
        for &(i, n) in &f.param_multiples {
            let ok = f.params.get(i as usize).is_some_and(|p| {
                let t = self.m.types.try_get(p.ty);
                t.is_some_and(|t| t.shape.is_empty() && t.elem.dtype().is_some_and(|d| d.is_int()))
            });
            if !ok || n == 0 {
                self.err(None, Rule::Signature, format!("`multiple_of` fact ({i}, {n}) must name an integer scalar parameter and a positive factor"));
            }
        }
        if f.kind == FuncKind::Kernel && !f.results.is_empty() {
            self.err(None, Rule::Signature, "kernels return nothing, but results are declared");
        }
        for (i, &t) in f.results.iter().enumerate() {
            self.check_shape(None, &format!("result {i}"), self.m.types.get(t));
        }
        if !f.region(f.body).args.is_empty() {
            self.err(None, Rule::Signature, "the function body region must have no arguments");
        }
        self.region(f.body, None, false);
        if let Some((y, vals)) = self.yield_of(f.body) {
            let got: Vec<&Type> = vals.iter().map(|&v| self.ty(v)).collect();
            let want: Vec<&Type> = f.results.iter().map(|&t| self.m.types.get(t)).collect();
            if got != want {
                self.err(
                    Some(y),
                    Rule::Signature,
                    format!(
                        "the body yields ({}) but the function returns ({})",
                        list(&got),
                        list(&want)
                    ),
                );
            }
        }
    }

    /// The terminating `yield` of a region and its values, if the region has one.
    fn yield_of(&self, r: RegionId) -> Option<(OpId, &'a [Value])> {
        let f = self.f;
        let &last = f.region(r).ops.last()?;
        match &f.op(last).op {
            Op::Yield { values } => Some((last, values.as_slice())),
            _ => None,
        }
    }

    fn region(&mut self, r: RegionId, parent: Option<OpId>, in_combine: bool) {
        let f = self.f;
        let mark = self.scope.len();
        let rd = f.region(r);
        for (i, &a) in rd.args.iter().enumerate() {
            let def = f.values[a.0 as usize].def;
            if def != (ValueDef::RegionArg { region: r, index: i as u32 }) {
                let msg = format!("region argument {} records definition {def:?}", self.n(a));
                self.err(parent, Rule::Definition, msg);
            }
            self.check_shape(parent, &format!("region argument {}", self.n(a)), self.ty(a));
            self.define(a);
        }
        let where_ = match parent {
            Some(_) => format!("region #{} of this op", r.0),
            None => "the function body".to_string(),
        };
        match rd.ops.last() {
            None => self.err(
                parent,
                Rule::Terminator,
                format!("{where_} is empty; it must end with `yield`"),
            ),
            Some(&last) if !matches!(f.op(last).op, Op::Yield { .. }) => self.err(
                parent,
                Rule::Terminator,
                format!("{where_} ends with `{}` instead of `yield`", f.op(last).op.mnemonic()),
            ),
            _ => {}
        }
        for (k, &op) in rd.ops.iter().enumerate() {
            if k + 1 != rd.ops.len() && matches!(f.op(op).op, Op::Yield { .. }) {
                self.err(
                    Some(op),
                    Rule::Terminator,
                    format!("`yield` must be the last op of its region ({where_})"),
                );
            }
            self.op(op, in_combine);
        }
        for v in self.scope.drain(mark..) {
            self.defined[v.0 as usize] = false;
        }
    }

    fn op(&mut self, id: OpId, in_combine: bool) {
        let f = self.f;
        let od = f.op(id);
        for v in od.op.operands() {
            if !self.defined[v.0 as usize] {
                let msg = format!(
                    "operand {} is not defined before this use (it is defined later, inside a \
                     nested region, or nowhere)",
                    self.n(v)
                );
                self.err(Some(id), Rule::Dominance, msg);
            }
        }
        for (i, &v) in od.results.iter().enumerate() {
            let def = f.values[v.0 as usize].def;
            if def != (ValueDef::Result { op: id, index: i as u32 }) {
                let msg = format!("result {} records definition {def:?}", self.n(v));
                self.err(Some(id), Rule::Definition, msg);
            }
            self.check_shape(Some(id), &format!("result {}", self.n(v)), self.ty(v));
        }
        if in_combine
            && matches!(
                od.op,
                Op::Load { .. } | Op::Store { .. } | Op::Atomic { .. } | Op::AtomicCas { .. }
            )
        {
            self.err(Some(id), Rule::Region, "combine regions must not access memory");
        }
        let mut e = Errs::new();
        self.rules(id, &mut e);
        for (rule, msg) in e {
            self.err(Some(id), rule, msg);
        }
        let combine = matches!(od.op, Op::ReduceWith { .. } | Op::ScanWith { .. });
        for sub in od.op.regions() {
            self.region(sub, Some(id), in_combine || combine);
        }
        for &v in &od.results {
            self.define(v);
        }
    }

    /// `mask` must be bool with the pointer's shape.
    fn mask(&self, mask: Option<Value>, shape: &[u32], e: &mut Errs) {
        if let Some(mv) = mask {
            let t = self.ty(mv);
            if t.elem != Elem::Scalar(DType::Bool) || t.shape != shape {
                e.push((
                    Rule::Type,
                    format!(
                        "mask {} is {t}; it must be {}",
                        self.n(mv),
                        Type::block(DType::Bool, shape.to_vec())
                    ),
                ));
            }
        }
    }

    /// Pushes an error unless `got == want`.
    fn same(&self, what: &str, got: &Type, want: &Type, e: &mut Errs) {
        if got != want {
            e.push((Rule::Type, format!("{what} is {got}, expected {want}")));
        }
    }

    /// The operand of a reduction/scan: a block with `axis < rank`. Returns it if so.
    fn axis_operand(&self, value: Value, axis: u8, e: &mut Errs) -> Option<&'a Type> {
        let t = self.ty(value);
        if t.is_scalar() || t.elem.is_ptr() {
            e.push((
                Rule::Type,
                format!("operand {} is {t}; expected a block of numbers", self.n(value)),
            ));
            return None;
        }
        if axis as usize >= t.rank() {
            e.push((
                Rule::Type,
                format!("axis {axis} is out of range for {t} (rank {})", t.rank()),
            ));
            return None;
        }
        Some(t)
    }

    fn combine(&self, r: RegionId, d: DType, e: &mut Errs) {
        let want = Type::scalar(d);
        let args: Vec<&Type> = self.f.region(r).args.iter().map(|&a| self.ty(a)).collect();
        if args.len() != 2 || args.iter().any(|&t| *t != want) {
            e.push((
                Rule::Region,
                format!("the combine region takes ({}); it must take ({d}, {d})", list(&args)),
            ));
        }
        if let Some((_, vals)) = self.yield_of(r) {
            let got: Vec<&Type> = vals.iter().map(|&v| self.ty(v)).collect();
            if got.len() != 1 || *got[0] != want {
                e.push((
                    Rule::Region,
                    format!("the combine region yields ({}); it must yield one {d}", list(&got)),
                ));
            }
        }
    }

    /// A region's yielded types must be `want` (`what` names the region in messages).
    fn yields(&self, r: RegionId, want: &[&Type], what: &str, e: &mut Errs) {
        if let Some((_, vals)) = self.yield_of(r) {
            let got: Vec<&Type> = vals.iter().map(|&v| self.ty(v)).collect();
            if got != want {
                e.push((
                    Rule::Region,
                    format!("{what} yields ({}) but must yield ({})", list(&got), list(want)),
                ));
            }
        }
    }

    fn rules(&self, id: OpId, e: &mut Errs) {
        let f = self.f;
        let od = f.op(id);
        let res = od.results.as_slice();
        let t = |v: Value| self.ty(v);
        let n = |v: Value| self.n(v);
        let ty_err = |e: &mut Errs, msg: String| e.push((Rule::Type, msg));
        match &od.op {
            Op::Const { value } => {
                if arity(res, 1, e) {
                    let r = t(res[0]);
                    match r.elem {
                        _ if !r.is_scalar() => {
                            ty_err(e, format!("a constant must be a scalar, not {r}"))
                        }
                        Elem::Ptr(_) => ty_err(e, format!("a constant cannot be a pointer ({r})")),
                        Elem::Scalar(d) => {
                            if let Err(msg) = const_fits(*value, d) {
                                ty_err(e, msg);
                            }
                        }
                    }
                }
            }
            Op::ProgramId { axis } | Op::NumPrograms { axis } => {
                if *axis > 2 {
                    ty_err(e, format!("grid axis {axis} is out of range 0..=2"));
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &Type::scalar(DType::I32), e);
                }
            }
            Op::Arange { start, end } => {
                if end <= start {
                    ty_err(e, format!("arange needs end > start, got {start}, {end}"));
                } else if *start < i32::MIN as i64 || *end > i32::MAX as i64 + 1 {
                    ty_err(e, format!("arange {start}, {end} has values outside i32"));
                } else if let Ok(len) = u32::try_from(end - start) {
                    if arity(res, 1, e) {
                        self.same("the result", t(res[0]), &Type::block(DType::I32, vec![len]), e);
                    }
                } else {
                    ty_err(e, format!("arange {start}, {end} has too many elements"));
                }
            }
            Op::Splat { value } => {
                let o = t(*value);
                if !o.is_scalar() {
                    ty_err(e, format!("splat operand {} is {o}; expected a scalar", n(*value)));
                } else if arity(res, 1, e) {
                    let r = t(res[0]);
                    if r.is_scalar() || r.elem != o.elem {
                        ty_err(
                            e,
                            format!("splat of {o} gives {r}; expected a block of {}", o.elem),
                        );
                    }
                }
            }
            Op::Broadcast { value } => {
                let o = t(*value);
                if o.is_scalar() {
                    ty_err(e, format!("broadcast operand {} is a scalar; use splat", n(*value)));
                } else if arity(res, 1, e) {
                    let r = t(res[0]);
                    let dims_ok = r.rank() == o.rank()
                        && o.shape.iter().zip(&r.shape).all(|(&a, &b)| a == 1 || a == b);
                    if r.elem != o.elem || !dims_ok {
                        ty_err(
                            e,
                            format!(
                                "cannot broadcast {o} to {r}: same element type and rank, and \
                                 each dimension 1 or equal"
                            ),
                        );
                    }
                }
            }
            Op::ExpandDims { value, axis } => {
                let o = t(*value);
                if *axis as usize > o.rank() {
                    ty_err(e, format!("expand_dims axis {axis} is out of range for {o}"));
                } else if arity(res, 1, e) {
                    let mut s = o.shape.clone();
                    s.insert(*axis as usize, 1);
                    self.same("the result", t(res[0]), &o.with_shape(s), e);
                }
            }
            Op::Reshape { value } => {
                let o = t(*value);
                if arity(res, 1, e) {
                    let r = t(res[0]);
                    if o.is_scalar() || r.is_scalar() || o.elem != r.elem || o.numel() != r.numel()
                    {
                        ty_err(
                            e,
                            format!(
                                "cannot reshape {o} to {r}: both blocks of one element type and \
                                 element count"
                            ),
                        );
                    }
                }
            }
            Op::Permute { value, perm } => {
                let o = t(*value);
                let mut sorted: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
                sorted.sort_unstable();
                if o.is_scalar() || sorted != (0..o.rank()).collect::<Vec<_>>() {
                    ty_err(e, format!("perm {perm:?} is not a permutation of the axes of {o}"));
                } else if arity(res, 1, e) {
                    let s = perm.iter().map(|&p| o.shape[p as usize]).collect();
                    self.same("the result", t(res[0]), &o.with_shape(s), e);
                }
            }
            Op::Unary { op, value } => {
                let o = t(*value);
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), o, e);
                }
                let ok = match dtype_of(o) {
                    None => false,
                    Some(d) if op.float_only() => d.is_float(),
                    Some(d) => match op {
                        UnaryOp::Not => d.is_int() || d.is_bool(),
                        _ => is_num(d),
                    },
                };
                if !ok {
                    let need = match op {
                        _ if op.float_only() => "floats",
                        UnaryOp::Not => "integers or bool",
                        _ => "integers or floats",
                    };
                    ty_err(e, format!("`{}` takes {need}, not {o}", op.name()));
                }
            }
            Op::Binary { op, lhs, rhs } => {
                let (l, r) = (t(*lhs), t(*rhs));
                if l != r {
                    ty_err(e, format!("operands must have one type, got {l} and {r}"));
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), l, e);
                }
                let (ok, need) = match (op, dtype_of(l)) {
                    (_, None) => (false, "numbers"),
                    (BinaryOp::And | BinaryOp::Or | BinaryOp::Xor, Some(d)) => {
                        (d.is_int() || d.is_bool(), "integers or bool")
                    }
                    (BinaryOp::Shl | BinaryOp::Shr, Some(d)) => (d.is_int(), "integers"),
                    (_, Some(d)) => (is_num(d), "integers or floats"),
                };
                if !ok {
                    ty_err(e, format!("`{}` takes {need}, not {l}", op.name()));
                }
            }
            Op::Cmp { lhs, rhs, .. } => {
                let (l, r) = (t(*lhs), t(*rhs));
                if l != r {
                    ty_err(e, format!("operands must have one type, got {l} and {r}"));
                }
                if l.elem.is_ptr() {
                    ty_err(e, format!("cmp does not compare pointers ({l})"));
                }
                if arity(res, 1, e) {
                    self.same(
                        "the result",
                        t(res[0]),
                        &Type::block(DType::Bool, l.shape.clone()),
                        e,
                    );
                }
            }
            Op::Select { cond, on_true, on_false } => {
                let (c, a, b) = (t(*cond), t(*on_true), t(*on_false));
                if a != b {
                    ty_err(e, format!("the two choices must have one type, got {a} and {b}"));
                }
                if arity(res, 1, e) {
                    let r = t(res[0]);
                    self.same("the result", r, a, e);
                    self.same("the condition", c, &Type::block(DType::Bool, r.shape.clone()), e);
                }
            }
            Op::Fma { a, b, c } => {
                let (ta, tb, tc) = (t(*a), t(*b), t(*c));
                if ta != tb || ta != tc {
                    ty_err(e, format!("fma operands must have one type, got {ta}, {tb}, {tc}"));
                }
                if !dtype_of(ta).is_some_and(|d| d.is_float()) {
                    ty_err(e, format!("fma takes floats, not {ta}"));
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), ta, e);
                }
            }
            Op::Cast { value } => {
                let o = t(*value);
                if arity(res, 1, e) {
                    let r = t(res[0]);
                    if o.elem.is_ptr() || r.elem.is_ptr() || o.shape != r.shape {
                        ty_err(e, format!("cannot cast {o} to {r}: same shape, no pointers"));
                    }
                }
            }
            Op::AddPtr { ptr, offset } => {
                let (p, o) = (t(*ptr), t(*offset));
                if !p.elem.is_ptr() {
                    ty_err(e, format!("addptr base {} is {p}, not a pointer", n(*ptr)));
                }
                if !dtype_of(o).is_some_and(|d| d.is_int()) || o.shape != p.shape {
                    ty_err(
                        e,
                        format!(
                            "addptr offset {} is {o}; it must be integers of the pointer's \
                             shape {}",
                            n(*offset),
                            shape_str(&p.shape)
                        ),
                    );
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), p, e);
                }
            }
            Op::Load { ptr, mask, other } => {
                let p = t(*ptr);
                let Elem::Ptr(d) = p.elem else {
                    ty_err(e, format!("load needs a pointer, got {p}"));
                    return;
                };
                let want = Type::block(d, p.shape.clone());
                self.mask(*mask, &p.shape, e);
                if let Some(o) = other {
                    self.same("`other`", t(*o), &want, e);
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &want, e);
                }
            }
            Op::Store { ptr, value, mask } => {
                arity(res, 0, e);
                let p = t(*ptr);
                let Elem::Ptr(d) = p.elem else {
                    ty_err(e, format!("store needs a pointer, got {p}"));
                    return;
                };
                self.same("the stored value", t(*value), &Type::block(d, p.shape.clone()), e);
                self.mask(*mask, &p.shape, e);
            }
            Op::Atomic { ptr, value, mask, .. } | Op::AtomicCas { ptr, value, mask, .. } => {
                let p = t(*ptr);
                let Elem::Ptr(d) = p.elem else {
                    ty_err(e, format!("{} needs a pointer, got {p}", od.op.mnemonic()));
                    return;
                };
                if !is_num(d) {
                    ty_err(e, format!("atomics act on integers or floats, not {d}"));
                }
                let want = Type::block(d, p.shape.clone());
                self.same("the value", t(*value), &want, e);
                if let Op::AtomicCas { cmp, .. } = &od.op {
                    self.same("the compared value", t(*cmp), &want, e);
                }
                self.mask(*mask, &p.shape, e);
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &want, e);
                }
            }
            Op::Reduce { kind, axis, value } => {
                let Some(o) = self.axis_operand(*value, *axis, e) else { return };
                let d = dtype_of(o).unwrap_or(DType::Bool);
                if !is_num(d) {
                    ty_err(e, format!("reduce {} takes numbers, not {o}", kind.name()));
                }
                let mut s = o.shape.clone();
                s.remove(*axis as usize);
                let rd = match kind {
                    ReduceKind::Argmax | ReduceKind::Argmin => DType::I32,
                    _ => d,
                };
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &Type::block(rd, s), e);
                }
            }
            Op::ReduceWith { axis, value, combine } | Op::ScanWith { axis, value, combine } => {
                let Some(o) = self.axis_operand(*value, *axis, e) else { return };
                let d = dtype_of(o).unwrap_or(DType::Bool);
                let want = if matches!(od.op, Op::ReduceWith { .. }) {
                    let mut s = o.shape.clone();
                    s.remove(*axis as usize);
                    Type::block(d, s)
                } else {
                    o.clone()
                };
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &want, e);
                }
                self.combine(*combine, d, e);
            }
            Op::Cumsum { axis, value, .. } => {
                let Some(o) = self.axis_operand(*value, *axis, e) else { return };
                if !dtype_of(o).is_some_and(is_num) {
                    ty_err(e, format!("cumsum takes numbers, not {o}"));
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), o, e);
                }
            }
            Op::TopK { value, k } => {
                let o = t(*value);
                if o.is_scalar() || !dtype_of(o).is_some_and(is_num) {
                    ty_err(e, format!("topk takes a block of numbers, not {o}"));
                    return;
                }
                let last = *o.shape.last().unwrap_or(&0);
                if *k < 1 || *k > last {
                    ty_err(
                        e,
                        format!("topk k = {k} must be in 1..={last} (the last dimension of {o})"),
                    );
                } else if arity(res, 2, e) {
                    let mut s = o.shape.clone();
                    *s.last_mut().unwrap_or(&mut 0) = *k;
                    self.same("the values result", t(res[0]), &o.with_shape(s.clone()), e);
                    self.same("the indices result", t(res[1]), &Type::block(DType::I32, s), e);
                }
            }
            Op::Sort { value, .. } => {
                let o = t(*value);
                if o.is_scalar() || !dtype_of(o).is_some_and(is_num) {
                    ty_err(e, format!("sort takes a block of numbers, not {o}"));
                } else if arity(res, 2, e) {
                    self.same("the values result", t(res[0]), o, e);
                    let want = Type::block(DType::I32, o.shape.clone());
                    self.same("the indices result", t(res[1]), &want, e);
                }
            }
            Op::Histogram { value, bins, mask } => {
                let o = t(*value);
                if o.is_scalar() || !dtype_of(o).is_some_and(|d| d.is_int()) {
                    ty_err(e, format!("histogram takes a block of integers, not {o}"));
                }
                self.mask(*mask, &o.shape, e);
                if *bins < 1 {
                    ty_err(e, "histogram needs bins >= 1".into());
                } else if arity(res, 1, e) {
                    self.same("the result", t(res[0]), &Type::block(DType::I32, vec![*bins]), e);
                }
            }
            Op::Dot { a, b, acc, precision } => {
                let (ta, tb, tc) = (t(*a), t(*b), t(*acc));
                if ta.rank() != 2 || tb.rank() != 2 || tc.rank() != 2 {
                    ty_err(e, format!("dot takes 2-D blocks, got {ta}, {tb}, {tc}"));
                    return;
                }
                let (m, k, k2, nn) = (ta.shape[0], ta.shape[1], tb.shape[0], tb.shape[1]);
                if k != k2 || tc.shape != [m, nn] {
                    ty_err(
                        e,
                        format!("dot shapes do not fit [M, K] x [K, N] + [M, N]: {ta}, {tb}, {tc}"),
                    );
                }
                let (da, db, dc) = (dtype_of(ta), dtype_of(tb), dtype_of(tc));
                let ok = da == db
                    && matches!(
                        (da, dc),
                        (Some(DType::F16 | DType::BF16 | DType::F32), Some(DType::F32))
                            | (Some(DType::I8), Some(DType::I32))
                    );
                if !ok {
                    ty_err(
                        e,
                        format!(
                            "dot takes f16/bf16/f32 inputs of one dtype with an f32 accumulator, \
                             or i8 inputs with an i32 accumulator; got {ta}, {tb}, {tc}"
                        ),
                    );
                }
                if *precision == DotPrecision::Tf32 && da != Some(DType::F32) {
                    ty_err(e, format!("precision tf32 needs f32 inputs, not {ta}"));
                }
                if arity(res, 1, e) {
                    self.same("the result", t(res[0]), tc, e);
                }
            }
            Op::For { lo, hi, step, init, body } => {
                let tl = t(*lo);
                for (what, v) in [("upper bound", *hi), ("step", *step)] {
                    if t(v) != tl {
                        ty_err(e, format!("the {what} is {}, but the lower bound is {tl}", t(v)));
                    }
                }
                if !tl.is_scalar() || !dtype_of(tl).is_some_and(|d| d.is_int()) {
                    ty_err(e, format!("loop bounds must be integer scalars, not {tl}"));
                }
                let carried: Vec<&Type> = init.iter().map(|&v| t(v)).collect();
                if res.len() != init.len() {
                    e.push((
                        Rule::Arity,
                        format!("{} results for {} loop-carried values", res.len(), init.len()),
                    ));
                } else {
                    let rt: Vec<&Type> = res.iter().map(|&v| t(v)).collect();
                    if rt != carried {
                        ty_err(
                            e,
                            format!(
                                "results are ({}) but the initial values are ({})",
                                list(&rt),
                                list(&carried)
                            ),
                        );
                    }
                }
                let args: Vec<&Type> = f.region(*body).args.iter().map(|&a| t(a)).collect();
                let mut want = vec![tl];
                want.extend(carried.iter().copied());
                if args != want {
                    e.push((
                        Rule::Region,
                        format!(
                            "the body takes ({}); it must take the induction variable and the \
                             carried values ({})",
                            list(&args),
                            list(&want)
                        ),
                    ));
                }
                self.yields(*body, &carried, "the loop body", e);
            }
            Op::If { cond, then_body, else_body } => {
                let c = t(*cond);
                if *c != Type::scalar(DType::Bool) {
                    ty_err(e, format!("the condition {} is {c}; expected a bool scalar", n(*cond)));
                }
                let rt: Vec<&Type> = res.iter().map(|&v| t(v)).collect();
                for (what, r) in [("the then branch", *then_body), ("the else branch", *else_body)]
                {
                    if !f.region(r).args.is_empty() {
                        e.push((Rule::Region, format!("{what} must have no arguments")));
                    }
                    self.yields(r, &rt, what, e);
                }
            }
            Op::Yield { .. } | Op::Print { .. } => {
                arity(res, 0, e);
            }
            Op::DeviceAssert { cond, .. } => {
                arity(res, 0, e);
                let c = t(*cond);
                if c.elem != Elem::Scalar(DType::Bool) {
                    ty_err(e, format!("device_assert takes bool, not {c}"));
                }
            }
            Op::Call { func, args } => {
                let callee = self.m.func(*func);
                if self.opts.require_no_calls {
                    e.push((
                        Rule::Call,
                        format!(
                            "call to @{} remains, but calls must be inlined by now",
                            callee.name
                        ),
                    ));
                }
                if callee.kind != FuncKind::Helper {
                    e.push((
                        Rule::Call,
                        format!("@{} is a kernel; only helpers can be called", callee.name),
                    ));
                }
                let ty_of = |id: TypeId| self.m.types.try_get(id);
                let got: Vec<Option<&Type>> = args.iter().map(|&v| Some(t(v))).collect();
                let want: Vec<Option<&Type>> = callee.params.iter().map(|p| ty_of(p.ty)).collect();
                if got != want {
                    e.push((
                        Rule::Call,
                        format!(
                            "arguments ({}) do not match the parameters of @{} ({})",
                            opt_list(&got),
                            callee.name,
                            opt_list(&want)
                        ),
                    ));
                }
                let rgot: Vec<Option<&Type>> = res.iter().map(|&v| Some(t(v))).collect();
                let rwant: Vec<Option<&Type>> = callee.results.iter().map(|&r| ty_of(r)).collect();
                if rgot != rwant {
                    e.push((
                        Rule::Call,
                        format!(
                            "results ({}) do not match what @{} returns ({})",
                            opt_list(&rgot),
                            callee.name,
                            opt_list(&rwant)
                        ),
                    ));
                }
            }
        }
    }
}

fn list(ts: &[&Type]) -> String {
    ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

fn opt_list(ts: &[Option<&Type>]) -> String {
    ts.iter()
        .map(|t| t.map_or_else(|| "?".to_string(), |t| t.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}
