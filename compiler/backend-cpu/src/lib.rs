//! The CPU backend of tk: IR → LLVM IR (through inkwell, LLVM 19) → object file → shared library.
//!
//! [`compile_module`] lowers every kernel of an optimised [`tk_ir::Module`] (after the default pass
//! pipeline: no `call` ops remain) to one exported C function, optimises the LLVM module for the
//! chosen CPU with a short pass pipeline of its own (see [`CpuOptions::opt_level`]), emits an
//! object file and links it into a shared library: in process (`elf.rs`, a small linker for
//! exactly what these objects contain), else with the system linker (`ld -shared`, then `cc
//! -shared`); `$CC -shared` when `$CC` is set. [`emit_llvm_ir`] returns the LLVM IR text instead.
//!
//! # ABI of a compiled kernel
//!
//! For a kernel `k` the library exports
//!
//! ```c
//! int32_t tk_k(const void* const* args,        // one entry per kernel parameter
//!              const int32_t* program_id,      // [3]: this program's id along axes 0, 1, 2
//!              const int32_t* num_programs);   // [3]: the grid
//! ```
//!
//! `args[i]` points at the value of parameter `i`: for a scalar, at the scalar in its memory
//! format (bool is one byte, 0 or 1; f16/bf16 their 16-bit patterns); for a pointer parameter, at
//! the pointer (a `T**` in C terms). The runtime calls the function once per program id, from any
//! number of threads at once (the function keeps no global state). It returns 0 on success, or
//! `n > 0`: the program stopped at trap site `n - 1`, described by [`CpuKernel::traps`] (a failed
//! `device_assert`, a `for` step that is not positive, an integer division by zero or `MIN / -1`).
//! Memory written before the trap stays written. Materialised block values live on the stack
//! (fused ones never exist as a whole): [`CpuKernel::stack_bytes`] is an upper bound of the frame
//! size the runtime's threads need (plus a little for libm calls).
//!
//! # Semantics
//!
//! Element-wise arithmetic, casts, comparisons and NaN rules follow [`tk_ir::eval`] with these
//! documented differences (the interpreter reports the first two as errors; compiled code is not
//! checked for them, for speed):
//!
//! - signed integer `add`/`sub`/`mul`/`neg`/`abs` wrap in two's complement;
//! - integer `sum`, `cumsum` and integer `dot` wrap in the dtype;
//! - float `sum` accumulates in the dtype (f32 for f16/bf16) reassociated: one partial sum per
//!   vector lane (and per accumulator, up to four), combined by a fixed tree at the end, so the
//!   order depends on the vector width of the target (8 lanes with AVX2, 16 with AVX-512), not on
//!   the run; `dot` uses fused multiply-adds in f32 (`k` ascending); the interpreter accumulates
//!   in f64, so results differ within the usual summation tolerance;
//! - f32, f16 and bf16 `exp`, `exp2`, `log`, `log2`, `tanh`, `erf`, `sigmoid` are inline f32
//!   polynomials (`vmath.rs`, within 1 ulp of the correctly rounded f32 result, 2 for `sigmoid`;
//!   f16/bf16 round that f32 result, so they can differ from the interpreter in rare ties), the
//!   same bits on every host; their `sin`/`cos` are inline f64 polynomials rounded once
//!   (lanes beyond 2^20 in magnitude call the C library); f64 transcendentals call the C library
//!   and round once, like the interpreter (whose `erf` is its own: results may differ by one
//!   ulp of f64 before rounding); `rsqrt` computes `1/sqrt` in f64 and rounds once;
//! - f16/bf16 `fma` computes in f64 and rounds (a double rounding that can differ in the last
//!   bit in rare ties); int → f16/bf16 and f64 → bf16 casts may round twice through f32;
//! - `print` is ignored; `device_assert` is checked unless [`CpuOptions::checks`] is off.
//!
//! Masked-off lanes of `load`, `store` and atomics are never dereferenced. Atomics are sequentially
//! consistent; float atomics other than `xchg` are compare-and-swap loops (so `max`/`min` keep the
//! NaN-propagating rules).
//!
//! Memory order: every load happens before any store or atomic that follows it in the program,
//! and after every one before it. Within one `store`, the loads that feed it are fused into the
//! store's loop and run a vector chunk at a time, each chunk loading before it stores: a store
//! that overwrites memory the same expression reads *at another element* (a shifted or reversed
//! update in place, `store(x + r, load(x + n - 1 - r))`) sees earlier chunks already written.
//! Such overlap is unspecified in tk (on GPUs the lanes of one store are separate threads); an
//! element-wise update in place (`store(p, f(load(p)))`) is exact.
//!
//! # Code generation
//!
//! `plan.rs` decides, per kernel, which block values are *fused* (computed inside the loops that
//! consume them, never stored) and which are materialised as stack arrays (values with several
//! consumers that are expensive to recompute, operands of non-element-wise ops). Loops are
//! anchored at `store`s, at `sum`/`max`/`min` reductions, and at materialised values
//! (`fused.rs`): they run over one block shape, scalar loops outside and vector chunks of the
//! native width along the last dimension, with a masked tail chunk. Loads and stores become
//! vector accesses where the axis analysis proves contiguity (plain ones when every lane of the
//! mask is on, `llvm.masked.load`/`store` otherwise), one scalar access where it proves a
//! uniform address, and gathers/scatters elsewhere. A loop whose masks have a block-wide test
//! (`offs < n` and the like) is emitted twice: without mask tests for the programs where the
//! test passes, and in general. Reductions keep vector accumulators and
//! reduce horizontally at the end. Lane semantics (`lanes.rs`) are written once for scalars and
//! vectors; f32 transcendentals are inline polynomials (`vmath.rs`). `dot` is a register-blocked
//! micro-kernel (`dot.rs`: 6 rows × 2 vectors of accumulators, broadcast `a`, vector rows of `b`,
//! in place on a loop-carried accumulator). Everything else (arg-reductions, scans, sorts,
//! histograms, atomics, loops, `if`) is lowered on arrays in `codegen.rs`.

mod codegen;
mod dot;
mod elf;
mod fused;
mod lanes;
mod plan;
mod target;
mod vmath;

use std::fmt;

pub use target::host_description;

/// Which CPU the code is generated for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum CpuTarget {
    /// The machine the compiler runs on (its CPU name and every feature it has).
    #[default]
    Host,
    /// A portable x86-64 baseline: `x86-64-v3` (AVX2, FMA, F16C), runs on any x86-64 CPU since
    /// about 2015.
    Baseline,
    /// An explicit LLVM CPU name and feature string (e.g. `"skylake-avx512"`, `"+avx512f"`).
    Named { cpu: String, features: String },
}

/// Options of a CPU compilation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    pub target: CpuTarget,
    /// Optimisation level, 0..=3 (values above 3 mean 3). 0 runs no LLVM pass; 1 to 3 run the
    /// backend's pipeline (SROA, early CSE, instcombine, loop rotation with LICM, GVN, CFG
    /// simplification: the emitted code is already vectorised and unrolled where it pays, so
    /// LLVM's vectorisers and unrollers, most of `default<O3>`'s time, are not needed), and set
    /// the code generator's level.
    pub opt_level: u8,
    /// Check `device_assert`s (a failing one makes the kernel return its trap code).
    pub checks: bool,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions { target: CpuTarget::Host, opt_level: 3, checks: true }
    }
}

/// Why a program stopped early; see [`CpuKernel::traps`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// A `device_assert` found a false lane.
    AssertFailed,
    /// A `for` loop's step was zero or negative.
    NonPositiveStep,
    /// Integer division or remainder by zero, or `MIN / -1` (`MIN % -1`).
    IntegerDivision,
}

/// One place in a kernel that can stop a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    pub kind: TrapKind,
    /// What to tell the user (the assert's message, or a description of the fault).
    pub message: String,
}

/// One compiled kernel of a [`CpuArtifact`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuKernel {
    /// The kernel's tk name.
    pub name: String,
    /// The exported symbol (`tk_<name>`).
    pub symbol: String,
    /// Trap sites: a return value `n > 0` of the kernel function means `traps[n - 1]`.
    pub traps: Vec<Trap>,
    /// Bytes of stack the kernel's block values take (an upper bound, before LLVM reuses slots).
    pub stack_bytes: u64,
}

/// A linked shared library with its kernels and the target it was built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuArtifact {
    /// The bytes of the shared library (an ELF `.so` on Linux).
    pub library: Vec<u8>,
    pub kernels: Vec<CpuKernel>,
    /// LLVM target triple, e.g. `x86_64-unknown-linux-gnu`.
    pub triple: String,
    /// LLVM CPU name the code was tuned and built for.
    pub cpu: String,
    /// LLVM feature string the code may use.
    pub features: String,
}

/// Everything that can go wrong in the CPU backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuError {
    /// The IR uses something this backend does not compile (yet).
    Unsupported { kernel: String, what: String },
    /// The IR breaks an invariant the verifier should have caught.
    Malformed { kernel: String, what: String },
    /// LLVM refused something (target lookup, verification, pass pipeline, object emission).
    Llvm(String),
    /// The system linker failed or could not be run.
    Link(String),
    /// Reading or writing a temporary file failed.
    Io(String),
}

impl fmt::Display for CpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuError::Unsupported { kernel, what } => {
                write!(f, "kernel `{kernel}`: not supported by the CPU backend: {what}")
            }
            CpuError::Malformed { kernel, what } => {
                write!(f, "kernel `{kernel}`: malformed IR: {what}")
            }
            CpuError::Llvm(m) => write!(f, "LLVM: {m}"),
            CpuError::Link(m) => write!(f, "linking the shared library: {m}"),
            CpuError::Io(m) => write!(f, "I/O: {m}"),
        }
    }
}

impl std::error::Error for CpuError {}

/// Compiles every kernel of `m` into one shared library.
pub fn compile_module(m: &tk_ir::Module, opts: &CpuOptions) -> Result<CpuArtifact, CpuError> {
    let ctx = inkwell::context::Context::create();
    let tm = target::machine(opts)?;
    let (module, kernels) = codegen::lower_module(&ctx, m, opts, &tm)?;
    target::optimize(&module, &tm, opts)?;
    let object = target::emit_object(&module, &tm.machine)?;
    let library = target::link_shared(&object)?;
    Ok(CpuArtifact {
        library,
        kernels,
        triple: tm.triple.clone(),
        cpu: tm.cpu.clone(),
        features: tm.features.clone(),
    })
}

/// The LLVM IR of `m`'s kernels as text, after the optimisation pipeline of `opts` (none at
/// `opt_level` 0).
pub fn emit_llvm_ir(m: &tk_ir::Module, opts: &CpuOptions) -> Result<String, CpuError> {
    let ctx = inkwell::context::Context::create();
    let tm = target::machine(opts)?;
    let (module, _) = codegen::lower_module(&ctx, m, opts, &tm)?;
    target::optimize(&module, &tm, opts)?;
    Ok(module.print_to_string().to_string())
}
