//! tk's block-level SSA IR (think Triton's TTIR): the one representation between the frontend and
//! every backend.
//!
//! - [`types`]: dtypes, block shapes, interned [`Type`]s.
//! - [`ops`]: the [`Op`] enum; each variant documents its operands, results and invariants.
//! - [`func`]: arenas (values, ops, regions) with typed `u32` handles; structured control flow as
//!   regions (`for` with loop-carried values, `if` with results).
//! - [`verify`]: the verifier (its invariants are listed at the top of that module).
//! - [`print`] / [`parse`]: the text form; `parse(print(m))` reproduces `m`.
//! - [`passes`]: inline, constant folding, CSE, DCE, canonicalisation.
//! - [`analysis`]: side tables shared by backends (contiguity, divisibility, constancy).
//!
//! The IR carries no target layouts: thread layouts (PTX) and buffer placement (Ascend) are added
//! inside the backends that need them.

pub mod func;
pub mod ops;
pub mod types;

pub use func::{
    FuncId, FuncKind, Function, Module, OpData, OpId, Param, RegionData, RegionId, Value,
    ValueData, ValueDef,
};
pub use ops::{AtomicOp, BinaryOp, CmpPred, ConstValue, DotPrecision, Op, ReduceKind, UnaryOp};
pub use types::{DType, Elem, Type, TypeId, TypeTable};

pub mod analysis;
pub mod eval;
pub mod parse;
pub mod passes;
pub mod print;
pub mod verify;
