//! The reference interpreter for tk IR: the oracle every backend is compared against.
//!
//! [`run_kernel`] launches a kernel of a [`Module`] over a grid on host [`Buffer`]s. It favours
//! exactness and diagnostics over speed: every memory access is checked, reads of never-written
//! elements of poisoned outputs are reported, and every fault names the op's [`Span`], the
//! program and the lane.
//!
//! # Execution model
//!
//! - Programs run one after another, in row-major order over the grid with axis 0 fastest:
//!   `(0,0,0), (1,0,0), …, (0,1,0), …`. A grid with a zero dimension runs nothing. Because runs
//!   are sequential, atomics are trivially atomic, and a kernel whose result depends on the
//!   order of programs gets the result of this order.
//! - Scalar semantics (arithmetic, comparisons, casts, NaN rules, overflow errors) are exactly
//!   [`tk_ir::eval`]'s; see that module's documentation.
//!
//! # Memory
//!
//! - A pointer is a (parameter, element offset) pair; pointer arithmetic wraps and never fails.
//! - Every load, store and atomic checks all of its active lanes (bounds, and for reads the
//!   initialised flag) *before* any lane is read or written, so a faulting access touches
//!   nothing. Masked-off lanes are never checked, read or written.
//! - `load` without `other` yields 0 (`false`, `+0.0`) in masked-off lanes.
//! - When several active lanes of one `store` hit the same element, they are written in
//!   row-major lane order: the last one wins.
//! - Atomics apply lane by lane in row-major order (each lane sees the earlier lanes' writes)
//!   and return the old values (0 in masked-off lanes). `add` follows `eval` (float results
//!   round to the dtype, signed overflow is an error); `max`/`min` propagate NaN like `maximum`
//!   and `minimum`; the whole op is computed before memory is written. Every atomic reads its
//!   element, so an atomic on an uninitialised element is an error, `xchg` included.
//!   `atomic_cas` compares bit patterns, like the hardware (`-0.0` does not match `+0.0`, a NaN
//!   matches the same NaN).
//!
//! # Reductions and scans
//!
//! - `sum` of floats accumulates in `f64` in index order and rounds once to the dtype at the
//!   end; of integers it is exact, and a signed result that does not fit is an overflow error
//!   (unsigned sums wrap). Other targets sum in other orders: compare with tolerances.
//! - `max`/`min` fold with the NaN-propagating `maximum`/`minimum` (`max(-0, +0) = +0`).
//! - `argmax`/`argmin` return i32 indices; NaN counts as greater than every number for argmax
//!   and less than every number for argmin; ties (and `-0` vs `+0`) give the lowest index, so an
//!   all-NaN row gives 0.
//! - `reduce_with` folds in index order: `acc = x[0]`, then `acc = combine(acc, x[k])`.
//!   `scan_with` is the inclusive version of the same fold.
//! - `cumsum` adds in scan order with one rounding to the dtype per step (that is what a
//!   sequential scan in the dtype computes); integer overflow is an error.
//! - `topk` and `sort` are stable along the last axis: `topk` returns the `k` largest in
//!   descending order; `sort` ascending puts NaN last, descending puts NaN first; equal values
//!   (`-0 == +0`) keep their index order.
//! - `histogram` counts values in `[0, bins)` of unmasked lanes.
//! - `dot`: each output is `acc + Σ_k a[i,k]·b[k,j]`, accumulated in `f64` starting from `acc`
//!   with `k` ascending, rounded once to the accumulator dtype; the `tf32` precision option is
//!   computed as `ieee` (targets with tensor cores may differ within tolerance). Integer dots
//!   are exact and the result must fit the accumulator.
//!
//! # Control flow and checks
//!
//! - `for` loops evaluate their bounds at run time; a step that is not positive is an error.
//!   The induction variable runs `lo, lo+step, …` while it is below `hi` (compared as
//!   mathematical integers, so it never wraps).
//! - `call` executes the callee (helpers are normally inlined before any backend runs).
//! - `device_assert` fails the run with its message at the first false lane.
//! - `print` appends `pid (x, y, z) <prefix><values>` to [`RunReport::prints`] (and echoes it to
//!   stderr when [`RunOptions::echo_prints`] is set).

mod buffer;
mod error;
mod exec;
mod value;

pub use buffer::{Buffer, HostElem};
pub use error::{Access, ErrorKind, InterpError};

use exec::Machine;
use tk_ir::{eval, ConstValue, DType, Elem, FuncId, FuncKind, Module};
use value::{Data, Ptr, Tensor};

/// One kernel argument.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A scalar parameter's value, in [`tk_ir::eval`]'s representation (integers must be in
    /// the dtype's range; floats are rounded to the dtype).
    Scalar(DType, ConstValue),
    /// A pointer parameter: the index of its buffer in the `buffers` slice of [`run_kernel`].
    /// Several parameters may share one buffer.
    Buffer(usize),
}

impl Arg {
    pub fn i32(v: i32) -> Arg {
        Arg::Scalar(DType::I32, ConstValue::Int(v as i64))
    }
    pub fn i64(v: i64) -> Arg {
        Arg::Scalar(DType::I64, ConstValue::Int(v))
    }
    pub fn u32(v: u32) -> Arg {
        Arg::Scalar(DType::U32, ConstValue::Int(v as i64))
    }
    pub fn f32(v: f32) -> Arg {
        Arg::Scalar(DType::F32, ConstValue::Float(v as f64))
    }
    pub fn f64(v: f64) -> Arg {
        Arg::Scalar(DType::F64, ConstValue::Float(v))
    }
    pub fn bool(v: bool) -> Arg {
        Arg::Scalar(DType::Bool, ConstValue::Bool(v))
    }
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Also write every `print` line to stderr as it happens.
    pub echo_prints: bool,
    /// Fail with [`ErrorKind::OpLimit`] after this many executed operations (all programs
    /// together); guards tests and fuzzers against runaway loops.
    pub max_ops: Option<u64>,
}

/// A poisoned buffer that still has unwritten elements after the run.
#[derive(Clone, Debug, PartialEq)]
pub struct Unwritten {
    /// Index into the `buffers` slice.
    pub buffer: usize,
    /// The parameters bound to it.
    pub params: Vec<String>,
    /// How many elements were never written.
    pub count: usize,
    /// The first unwritten element.
    pub first: usize,
    /// The buffer's length.
    pub len: usize,
}

/// What a successful run produced besides the buffers' contents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunReport {
    /// `print` output, in execution order.
    pub prints: Vec<String>,
    /// Every poisoned argument buffer with elements that were never written (callers decide
    /// whether that is an error).
    pub unwritten: Vec<Unwritten>,
    /// Number of programs run.
    pub programs: u64,
    /// Number of operations executed (all programs).
    pub ops: u64,
}

/// Runs kernel `kernel` of `module` over `grid` (see the crate doc for the semantics).
///
/// `args` has one entry per kernel parameter: scalars by value, pointers as indices into
/// `buffers`, which the kernel reads and writes in place. On error the buffers hold whatever
/// the programs before the fault wrote; the faulting access itself wrote nothing.
pub fn run_kernel(
    module: &Module,
    kernel: FuncId,
    grid: [u32; 3],
    args: &[Arg],
    buffers: &mut [Buffer],
    opts: &RunOptions,
) -> Result<RunReport, InterpError> {
    let f = module
        .functions
        .get(kernel.0 as usize)
        .ok_or_else(|| InterpError::bad_args(format!("no function #{} in the module", kernel.0)))?;
    let fail = |msg: String| {
        let mut e = InterpError::bad_args(msg);
        e.span = f.span;
        e
    };
    if f.kind != FuncKind::Kernel {
        return Err(fail(format!("`{}` is a helper function, not a kernel", f.name)));
    }
    if args.len() != f.params.len() {
        return Err(fail(format!(
            "kernel `{}` takes {} arguments, got {}",
            f.name,
            f.params.len(),
            args.len()
        )));
    }
    for (axis, &g) in grid.iter().enumerate() {
        if g > i32::MAX as u32 {
            return Err(fail(format!("grid size {g} along axis {axis} exceeds i32::MAX")));
        }
    }
    let mut param_values = Vec::with_capacity(args.len());
    let mut param_buffer = Vec::with_capacity(args.len());
    for (i, (p, a)) in f.params.iter().zip(args).enumerate() {
        let ty = module
            .types
            .try_get(p.ty)
            .ok_or_else(|| fail(format!("parameter `{}` has an unknown type", p.name)))?;
        let what = format!("argument {i} (`{}: {ty}`) of kernel `{}`", p.name, f.name);
        if !ty.shape.is_empty() {
            return Err(fail(format!("{what}: kernels take scalars and pointers only")));
        }
        match (ty.elem, a) {
            (Elem::Scalar(dt), Arg::Scalar(adt, v)) => {
                if *adt != dt {
                    return Err(fail(format!(
                        "{what}: expected a scalar of type {dt}, got one of type {adt}"
                    )));
                }
                let v = check_scalar(dt, *v).map_err(|m| fail(format!("{what}: {m}")))?;
                param_values.push(Tensor::scalar(dt, v));
                param_buffer.push(None);
            }
            (Elem::Ptr(dt), Arg::Buffer(b)) => {
                let buf = buffers.get(*b).ok_or_else(|| {
                    fail(format!("{what}: buffer {b} does not exist ({} buffers)", buffers.len()))
                })?;
                if buf.dtype() != dt {
                    return Err(fail(format!(
                        "{what}: expected a buffer of {dt}, got buffer {b} of {}",
                        buf.dtype()
                    )));
                }
                param_values.push(Tensor {
                    elem: Elem::Ptr(dt),
                    shape: Vec::new(),
                    data: Data::Ptr(vec![Ptr { param: i as u32, offset: 0 }]),
                });
                param_buffer.push(Some(*b));
            }
            (Elem::Scalar(dt), Arg::Buffer(b)) => {
                return Err(fail(format!("{what}: expected a scalar of type {dt}, got buffer {b}")))
            }
            (Elem::Ptr(dt), Arg::Scalar(adt, _)) => {
                return Err(fail(format!(
                    "{what}: expected a buffer of {dt}, got a scalar of type {adt}"
                )))
            }
        }
    }
    let mut m = Machine {
        module,
        buffers,
        param_buffer,
        param_names: f.params.iter().map(|p| p.name.clone()).collect(),
        grid,
        pid: [0; 3],
        prints: Vec::new(),
        echo: opts.echo_prints,
        max_ops: opts.max_ops,
        ops: 0,
        depth: 0,
    };
    let mut programs = 0u64;
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for x in 0..grid[0] {
                m.pid = [x, y, z];
                m.call(kernel, param_values.clone(), f.span).map_err(|mut e| {
                    e.program.get_or_insert([x, y, z]);
                    e
                })?;
                programs += 1;
            }
        }
    }
    let mut unwritten = Vec::new();
    let mut seen: Vec<usize> = m.param_buffer.iter().flatten().copied().collect();
    seen.sort_unstable();
    seen.dedup();
    for b in seen {
        let buf = &m.buffers[b];
        if let Some(first) = buf.first_uninit() {
            let params = f
                .params
                .iter()
                .zip(&m.param_buffer)
                .filter(|(_, pb)| **pb == Some(b))
                .map(|(p, _)| p.name.clone())
                .collect();
            unwritten.push(Unwritten {
                buffer: b,
                params,
                count: buf.uninit_count(),
                first,
                len: buf.len(),
            });
        }
    }
    Ok(RunReport { prints: m.prints, unwritten, programs, ops: m.ops })
}

/// Checks a scalar argument's value against its dtype: integers must be in range, bools must
/// be bools, floats are rounded to the dtype.
fn check_scalar(dt: DType, v: ConstValue) -> Result<ConstValue, String> {
    match v {
        ConstValue::Int(i) if dt.is_int() => {
            if eval::wrap_int(dt, i) == i {
                Ok(v)
            } else {
                Err(format!("{i} is out of range for {dt}"))
            }
        }
        ConstValue::Float(x) if dt.is_float() => Ok(ConstValue::Float(eval::round_float(dt, x))),
        ConstValue::Bool(_) if dt.is_bool() => Ok(v),
        _ => Err(format!("{v} is not a {dt} value")),
    }
}
