//! Errors of a kernel run: bad launch arguments, and faults found while executing (out-of-bounds
//! or uninitialised accesses, scalar-semantics errors, failed `device_assert`s, bad loop steps).
//!
//! Faults carry the faulting operation's [`Span`] (the driver turns it into `file:line`), the
//! program id, and the lane (multi-index into the op's block) where the fault happened.

use std::fmt;
use tk_diag::{Diagnostic, Span};
use tk_ir::eval::EvalError;

/// Which kind of memory access faulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Load,
    Store,
    Atomic,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Load => "load",
            Access::Store => "store",
            Access::Atomic => "atomic",
        }
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// The launch arguments do not match the kernel's parameters, or a buffer is unusable.
    BadArgs(String),
    /// An access through a pointer into `param` (bound to `buffers[buffer]`) at element `index`,
    /// outside `0..len`.
    OutOfBounds { access: Access, param: String, buffer: usize, index: i64, len: usize },
    /// A read (load or atomic) of an element never written since the buffer was created poisoned.
    Uninitialised { access: Access, param: String, buffer: usize, index: i64 },
    /// A scalar operation has no defined result (signed overflow, division by zero, ...).
    Eval { op: &'static str, error: EvalError },
    /// A `for` loop with a step that is not positive.
    BadStep { step: i128 },
    /// A `device_assert` found a false element.
    AssertFailed { message: String },
    /// The run executed more operations than [`crate::RunOptions::max_ops`] allows.
    OpLimit { limit: u64 },
    /// The IR is not well formed (the verifier would reject it).
    Malformed(String),
}

/// A failed launch or a fault during a run.
#[derive(Clone, Debug, PartialEq)]
pub struct InterpError {
    /// Boxed so that `Result<_, InterpError>` stays small on the interpreter's hot paths.
    pub kind: Box<ErrorKind>,
    /// The operation that faulted (the kernel's span for argument errors); may be dummy.
    pub span: Span,
    /// `[x, y, z]` of the program that faulted, if the fault happened while running one.
    pub program: Option<[u32; 3]>,
    /// Multi-index of the faulting element in the op's block (empty for scalars).
    pub lane: Option<Vec<u32>>,
}

impl InterpError {
    pub(crate) fn new(kind: ErrorKind, span: Span) -> InterpError {
        InterpError { kind: Box::new(kind), span, program: None, lane: None }
    }

    pub(crate) fn bad_args(msg: impl Into<String>) -> InterpError {
        InterpError::new(ErrorKind::BadArgs(msg.into()), Span::DUMMY)
    }

    pub(crate) fn malformed(msg: impl Into<String>, span: Span) -> InterpError {
        InterpError::new(ErrorKind::Malformed(msg.into()), span)
    }

    /// The error message without location (what `Display` prints before the program and lane).
    pub fn message(&self) -> String {
        match &*self.kind {
            ErrorKind::BadArgs(m) => format!("bad kernel arguments: {m}"),
            ErrorKind::OutOfBounds { access, param, buffer, index, len } => format!(
                "out-of-bounds {}: element {param}[{index}] is outside `{param}` (buffer {buffer}, \
                 {len} elements)",
                access.name()
            ),
            ErrorKind::Uninitialised { access, param, buffer, index } => format!(
                "read of uninitialised element {param}[{index}] (buffer {buffer}) by {}",
                match access {
                    Access::Atomic => "an atomic",
                    Access::Load | Access::Store => "a load",
                }
            ),
            ErrorKind::Eval { op, error } => format!("`{op}`: {error}"),
            ErrorKind::BadStep { step } => {
                format!("for loop step must be positive, but it is {step}")
            }
            ErrorKind::AssertFailed { message } => format!("device_assert failed: {message}"),
            ErrorKind::OpLimit { limit } => {
                format!("the run exceeded the limit of {limit} executed operations")
            }
            ErrorKind::Malformed(m) => format!("malformed IR: {m}"),
        }
    }

    /// Stable diagnostic code of the error kind.
    pub fn code(&self) -> &'static str {
        match *self.kind {
            ErrorKind::BadArgs(_) => "R0001",
            ErrorKind::OutOfBounds { .. } => "R0002",
            ErrorKind::Uninitialised { .. } => "R0003",
            ErrorKind::Eval { .. } => "R0004",
            ErrorKind::BadStep { .. } => "R0005",
            ErrorKind::AssertFailed { .. } => "R0006",
            ErrorKind::OpLimit { .. } => "R0007",
            ErrorKind::Malformed(_) => "R0008",
        }
    }

    /// The error as a diagnostic at its span, with the program and lane as a note.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let mut d = Diagnostic::error(self.code(), self.message(), self.span);
        if let Some(w) = self.location() {
            d = d.with_note(w);
        }
        d
    }

    fn location(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some([x, y, z]) = self.program {
            parts.push(format!("program ({x}, {y}, {z})"));
        }
        if let Some(lane) = &self.lane {
            if !lane.is_empty() {
                let l: Vec<String> = lane.iter().map(u32::to_string).collect();
                parts.push(format!("lane [{}]", l.join(", ")));
            }
        }
        if parts.is_empty() {
            None
        } else {
            Some(format!("in {}", parts.join(", ")))
        }
    }
}

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())?;
        if let Some(w) = self.location() {
            write!(f, " ({w})")?;
        }
        Ok(())
    }
}

impl std::error::Error for InterpError {}
