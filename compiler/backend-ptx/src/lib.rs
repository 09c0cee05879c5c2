//! The PTX backend of tk: layout assignment, lowering to per-thread code, and PTX text.
//!
//! Pipeline per kernel: the axis analysis of `tk_ir` (contiguity, divisibility, constancy) →
//! [`lower`](crate::lower) assigns each block a thread [`layout`] and lowers every op to the
//! per-thread IR of [`pir`] → [`ptx`] prints it. The same per-thread program runs on the CPU in
//! [`exec`], which is how tests compare the backend with the reference interpreter without a
//! GPU. The input is IR after the default pass pipeline (no `call` ops).
//!
//! `dot` with f16 or bf16 inputs (and f32 inputs with `precision: "tf32"`) runs on tensor
//! cores: the operands go through shared memory, `ldmatrix` loads the fragments and one
//! `mma.sync.m16n8k16` (`m16n8k8` for tf32) per 16 x 8 accumulator tile accumulates in f32; the
//! accumulator keeps the mma fragment layout across loop iterations and is stored from it.
//! f32 `ieee` dots and blocks below 16 x 8 x k use an FMA loop over shared memory.
//!
//! Kernel ABI: parameters in order (pointers `.u64`, scalars by type, bool as `.u8`), one CTA of
//! `32 * num_warps` threads per program, `program_id(a)` = `%ctaid`, `num_programs(a)` =
//! `%nctaid`. Pointer parameters are assumed 16-byte aligned (the runtime checks it).

pub mod exec;
pub mod layout;
mod lower;
pub mod pir;
pub mod ptx;

use std::fmt;
use tk_diag::{Diagnostic, Span};
use tk_ir::analysis::{analyze, ParamHints};
use tk_ir::{FuncKind, Function, Module, Op};

/// GPU architecture to emit for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Sm80,
    Sm90,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm80 => "sm_80",
            Arch::Sm90 => "sm_90",
        }
    }
    /// Parses `sm_80` / `sm_90`.
    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "sm_80" => Some(Arch::Sm80),
            "sm_90" => Some(Arch::Sm90),
            _ => None,
        }
    }
}

/// Backend options (`--arch`, `--num-warps`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub arch: Arch,
    /// Warps per CTA: 1, 2, 4, 8 or 16.
    pub num_warps: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options { arch: Arch::Sm80, num_warps: 4 }
    }
}

/// Why a kernel cannot be compiled for PTX, pointing at the op (or kernel) responsible.
#[derive(Clone, Debug, PartialEq)]
pub struct PtxError {
    pub message: String,
    pub span: Span,
}

impl PtxError {
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic::error("E-PTX", self.message.clone(), self.span)
    }
}

impl fmt::Display for PtxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PtxError {}

/// Lowers one kernel to per-thread form.
pub fn lower_kernel(m: &Module, f: &Function, opts: &Options) -> Result<pir::Kernel, PtxError> {
    if f.kind != FuncKind::Kernel {
        return Err(PtxError { message: format!("`{}` is not a kernel", f.name), span: f.span });
    }
    if !matches!(opts.num_warps, 1 | 2 | 4 | 8 | 16) {
        return Err(PtxError {
            message: format!("--num-warps must be 1, 2, 4, 8 or 16, not {}", opts.num_warps),
            span: f.span,
        });
    }
    for id in f.walk() {
        if let Op::Call { .. } = f.op(id).op {
            return Err(PtxError {
                message: "internal: `call` reached the PTX backend (run the inliner first)".into(),
                span: f.op(id).span,
            });
        }
    }
    let info = analyze(m, f, &ParamHints::none());
    lower::Lower::new(m, f, info, opts).run()
}

/// Compiles every kernel of `m` into one PTX module.
pub fn compile_module(m: &Module, opts: &Options) -> Result<String, PtxError> {
    let mut ks = Vec::new();
    for f in m.kernels() {
        ks.push(lower_kernel(m, f, opts)?);
    }
    Ok(ptx::print_module(&ks, opts.arch))
}
