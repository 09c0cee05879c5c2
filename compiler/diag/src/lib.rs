//! Spans, source files and diagnostics for the tk compiler.
//!
//! Every compiler stage reports problems as [`Diagnostic`] values that point into [`Sources`] through
//! [`Span`]s. This crate is the only one that knows about `codespan-reporting`: stages build
//! diagnostics, and [`render`] turns them into text (plain for tests and snapshots, coloured for a
//! terminal). Nothing here prints or touches the file system.

mod render;
mod source;

pub use render::{render, render_plain, ColorChoice};
pub use source::{FileId, LineCol, SourceFile, Sources};

/// A half-open byte range `[start, end)` in one source file.
///
/// Spans are small and `Copy` so that every AST node and IR operation can carry one.
/// [`Span::DUMMY`] marks compiler-synthesised code with no source location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// A span that points nowhere; diagnostics on it render without a source snippet.
    pub const DUMMY: Span = Span { file: FileId(u32::MAX), start: 0, end: 0 };

    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start: start as u32, end: end as u32 }
    }

    pub fn is_dummy(self) -> bool {
        self.file.0 == u32::MAX
    }

    /// The smallest span covering both; if they are in different files, `self` wins.
    pub fn to(self, other: Span) -> Span {
        if self.is_dummy() {
            return other;
        }
        if other.is_dummy() || other.file != self.file {
            return self;
        }
        Span { file: self.file, start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

/// How bad a diagnostic is. Errors stop compilation after the stage that produced them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    /// A compiler remark: information about a decision (e.g. "gather instead of DataCopy").
    Remark,
}

/// A secondary label: another span with its own short message.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One problem found in a tk program, in the user's terms.
///
/// `message` says what is wrong (with shapes and dtypes written out), `span` points at the code
/// responsible, `labels` point at related code, and `help` says how to fix it when a fix is clear.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable short code, e.g. `E0203`, so that users and tests can refer to an error kind.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// Text under the primary caret; empty means "repeat nothing".
    pub span_label: String,
    pub labels: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            span_label: String::new(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message, span) }
    }

    pub fn remark(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic { severity: Severity::Remark, ..Diagnostic::error(code, message, span) }
    }

    /// Text shown under the primary span.
    pub fn with_label(mut self, text: impl Into<String>) -> Diagnostic {
        self.span_label = text.into();
        self
    }

    pub fn with_secondary(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: text.into() });
        self
    }

    pub fn with_note(mut self, text: impl Into<String>) -> Diagnostic {
        self.notes.push(text.into());
        self
    }

    pub fn with_help(mut self, text: impl Into<String>) -> Diagnostic {
        self.help = Some(text.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// A list of diagnostics collected by a stage. Stages keep going after an error where they can,
/// so that one run reports several problems.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }
    pub fn extend(&mut self, other: impl IntoIterator<Item = Diagnostic>) {
        self.items.extend(other);
    }
}
