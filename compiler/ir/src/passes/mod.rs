//! IR-to-IR passes and the default pipeline.
//!
//! | pass | module | what it does |
//! |------|--------|--------------|
//! | inlining | [`inline`] | replaces every [`Op::Call`] with the callee's body, then drops helpers |
//! | canonicalisation | [`canonicalize`] | exact algebraic identities, shape-op folding, canonical operand order |
//! | constant folding | [`const_fold`] | evaluates ops on constants with [`crate::eval`]; folds constant `for`/`if` |
//! | CSE | [`cse`] | merges identical pure ops (scoped: outer values may be reused inside regions) |
//! | DCE | [`dce`] | removes ops whose results are never used and that have no side effects |
//!
//! Every pass preserves the program's observable behaviour exactly, including NaN propagation, the
//! sign of zero and run-time errors that the interpreter reports (integer division by zero, signed
//! overflow): when a rewrite could change any of those it is not done. The one exception is shared
//! with every optimising compiler: DCE removes an unused pure op even if that op would have failed
//! at run time (an unused `x / 0` disappears), because an erroneous program has no behaviour to
//! preserve.
//!
//! Passes delete ops by unlinking them from their region's op list; the arena entries stay (see
//! [`crate::func`]), so handles never dangle. Each pass returns whether it changed anything, which
//! [`run_default_pipeline`] uses to iterate to a fixed point.
//!
//! Passes expect IR that the verifier accepts (the driver verifies the frontend's output); on
//! malformed IR they may panic. In debug builds [`run_default_pipeline`] verifies its input and the
//! module after every pass, and reports a pass that broke an invariant as [`PassError::Verify`].

use crate::verify::{verify_module_with, VerifyOptions};
use crate::{ConstValue, DType, Elem, FuncId, Function, Module, Op, OpId, RegionId, Value};
use std::collections::HashMap;
use std::fmt;
use tk_diag::Span;

pub mod canonicalize;
pub mod const_fold;
pub mod cse;
pub mod dce;
pub mod inline;

/// How many rounds of canonicalise / fold / CSE / DCE the default pipeline runs at most. Each
/// round only ever shrinks or simplifies the IR, so real kernels settle in two or three.
pub const MAX_PIPELINE_ROUNDS: usize = 8;

/// A pass that could not do its job; the module is left unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassError {
    /// Helper functions call each other in a cycle (`chain` names them, first = last).
    RecursiveCall { chain: Vec<String>, span: Span },
    /// A call names a function the module does not have.
    UnknownCallee { caller: String, callee: u32, span: Span },
    /// A call's argument or result count differs from the callee's signature.
    CallArity { caller: String, callee: String, span: Span },
    /// A call targets a kernel; kernels are entry points and cannot be called.
    CallToKernel { caller: String, callee: String, span: Span },
    /// Debug builds only: the verifier rejected the module after `pass` (`"input"`: before any
    /// pass ran). Anything but `"input"` is a compiler bug in that pass.
    Verify { pass: &'static str, errors: Vec<String> },
}

impl PassError {
    /// The source span the error points at.
    pub fn span(&self) -> Span {
        match self {
            PassError::RecursiveCall { span, .. }
            | PassError::UnknownCallee { span, .. }
            | PassError::CallArity { span, .. }
            | PassError::CallToKernel { span, .. } => *span,
            PassError::Verify { .. } => Span::DUMMY,
        }
    }
}

impl fmt::Display for PassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassError::RecursiveCall { chain, .. } => write!(
                f,
                "helper functions are inlined, so they cannot be recursive: {}",
                chain.join(" -> ")
            ),
            PassError::UnknownCallee { caller, callee, .. } => {
                write!(f, "`{caller}` calls function #{callee}, which does not exist")
            }
            PassError::CallArity { caller, callee, .. } => write!(
                f,
                "`{caller}` calls `{callee}` with a number of arguments or results that does not \
                 match its signature"
            ),
            PassError::CallToKernel { caller, callee, .. } => {
                write!(f, "`{caller}` calls kernel `{callee}`; only helper functions can be called")
            }
            PassError::Verify { pass: "input", errors } => {
                write!(f, "the IR given to the optimiser is invalid: {}", errors.join("; "))
            }
            PassError::Verify { pass, errors } => write!(
                f,
                "internal compiler error: the IR is invalid after the `{pass}` pass: {}",
                errors.join("; ")
            ),
        }
    }
}

impl std::error::Error for PassError {}

/// Runs inline, then canonicalise → const-fold → CSE → DCE until nothing changes (at most
/// [`MAX_PIPELINE_ROUNDS`] rounds). Returns whether anything changed. Debug builds verify the
/// module before and after every pass.
pub fn run_default_pipeline(m: &mut Module) -> Result<bool, PassError> {
    inline::check_calls(m)?;
    check(m, "input", &VerifyOptions::default())?;
    let mut changed = inline::run(m)?;
    let after = VerifyOptions::after_inlining();
    check(m, "inline", &after)?;
    let passes: [(&'static str, ModulePass); 4] = [
        ("canonicalize", canonicalize::run),
        ("const_fold", const_fold::run),
        ("cse", cse::run),
        ("dce", dce::run),
    ];
    for _ in 0..MAX_PIPELINE_ROUNDS {
        let mut round = false;
        for (name, pass) in passes {
            if pass(m) {
                round = true;
                check(m, name, &after)?;
            }
        }
        changed |= round;
        if !round {
            break;
        }
    }
    Ok(changed)
}

/// A pass over a whole module; returns whether it changed anything.
pub type ModulePass = fn(&mut Module) -> bool;

/// Verifies `m` in debug builds.
fn check(m: &Module, pass: &'static str, opts: &VerifyOptions) -> Result<(), PassError> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    verify_module_with(m, opts).map_err(|errors| PassError::Verify {
        pass,
        errors: errors.iter().map(|e| e.to_string()).collect(),
    })
}

/// Value substitutions decided by a pass, applied to every linked op when the pass finishes.
///
/// Passes walk ops in program order and also apply the map to each op before looking at it, so that
/// rewrites see through earlier ones; the final [`Subst::apply_all`] catches uses the walk did not
/// visit (ops moved out of a folded `if`, for instance).
#[derive(Default)]
pub(crate) struct Subst {
    map: HashMap<Value, Value>,
}

impl Subst {
    pub(crate) fn insert(&mut self, from: Value, to: Value) {
        let to = self.resolve(to);
        if from != to {
            self.map.insert(from, to);
        }
    }

    pub(crate) fn resolve(&self, mut v: Value) -> Value {
        // Chains are short and acyclic: `insert` always points at an already-resolved value.
        while let Some(&t) = self.map.get(&v) {
            v = t;
        }
        v
    }

    /// Substitutes the operands of one op; returns whether any changed.
    pub(crate) fn apply(&self, f: &mut Function, id: OpId) -> bool {
        if self.map.is_empty() {
            return false;
        }
        let mut changed = false;
        f.op_mut(id).op.visit_operands_mut(|v| {
            let r = self.resolve(*v);
            if r != *v {
                *v = r;
                changed = true;
            }
        });
        changed
    }

    /// Substitutes operands in every op reachable from the body.
    pub(crate) fn apply_all(&self, f: &mut Function) {
        if self.map.is_empty() {
            return;
        }
        for id in f.walk() {
            self.apply(f, id);
        }
    }
}

/// The value of `v` if every element of it is one known constant: an [`Op::Const`], or an
/// [`Op::Splat`] of one.
pub(crate) fn uniform_const(f: &Function, v: Value) -> Option<ConstValue> {
    let def = f.defining_op(v)?;
    match &f.op(def).op {
        Op::Const { value } => Some(*value),
        Op::Splat { value } => f.as_const(*value),
        _ => None,
    }
}

/// The scalar dtype of a value's elements (`None` for pointers).
pub(crate) fn elem_dtype(m_types: &crate::TypeTable, f: &Function, v: Value) -> Option<DType> {
    match m_types.get(f.value_type(v)).elem {
        Elem::Scalar(d) => Some(d),
        Elem::Ptr(_) => None,
    }
}

/// Appends ops to a region under construction, for rewrites that materialise new values.
pub(crate) struct Builder<'a> {
    pub types: &'a mut crate::TypeTable,
    pub f: &'a mut Function,
    /// The region's new op list; emitted ops go at its end (just before the op being rewritten).
    pub out: &'a mut Vec<OpId>,
    pub span: Span,
}

impl Builder<'_> {
    /// Creates `op` with one result of type `ty` and returns that result.
    pub fn emit(&mut self, op: Op, ty: crate::TypeId) -> Value {
        let id = self.f.create_op(op, &[ty], self.span);
        self.out.push(id);
        self.f.op(id).results[0]
    }

    /// A constant with the type `ty` (a scalar `const`, or a `splat` of one for a block).
    pub fn constant(&mut self, value: ConstValue, ty: crate::TypeId) -> Value {
        let t = self.types.get(ty).clone();
        if t.is_scalar() {
            self.emit(Op::Const { value }, ty)
        } else {
            let sty = self.types.intern(t.with_shape(Vec::new()));
            let s = self.emit(Op::Const { value }, sty);
            self.emit(Op::Splat { value: s }, ty)
        }
    }
}

/// Visits every function of the module with split borrows of the type table and the function.
pub(crate) fn for_each_function(
    m: &mut Module,
    mut pass: impl FnMut(&mut crate::TypeTable, &mut Function) -> bool,
) -> bool {
    let Module { types, functions } = m;
    let mut changed = false;
    for f in functions.iter_mut() {
        changed |= pass(types, f);
    }
    changed
}

/// Owning op of every nested region reachable from the body.
pub(crate) fn region_parents(f: &Function) -> HashMap<RegionId, OpId> {
    let mut out = HashMap::new();
    for id in f.walk() {
        for r in f.op(id).op.regions() {
            out.insert(r, id);
        }
    }
    out
}

/// Index of the callee, checked against the module.
pub(crate) fn callee_index(m: &Module, func: FuncId) -> Option<usize> {
    ((func.0 as usize) < m.functions.len()).then_some(func.0 as usize)
}
