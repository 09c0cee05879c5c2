//! The operations of the block-level IR.
//!
//! Every operation is one variant of [`Op`]; its operands are [`Value`] handles stored in the
//! variant, its results are listed in [`crate::OpData::results`]. "Block" means a value whose type
//! has a non-empty shape; "scalar" means rank 0. Unless a variant says otherwise, operands of an
//! element-wise op have exactly the result's shape (the frontend inserts explicit [`Op::Splat`] and
//! [`Op::Broadcast`]); the IR itself has no implicit broadcasting.

use crate::{RegionId, Value};
use std::fmt;

/// A compile-time scalar constant. Integers are stored sign- or zero-extended to 64 bits according
/// to the result dtype; floats as `f64` already rounded to the result dtype.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ConstValue {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl ConstValue {
    /// Bitwise identity, so that `NaN == NaN` and `0.0 != -0.0` (for CSE and hashing).
    pub fn bits(&self) -> (u8, u64) {
        match *self {
            ConstValue::Bool(b) => (0, b as u64),
            ConstValue::Int(i) => (1, i as u64),
            ConstValue::Float(f) => (2, f.to_bits()),
        }
    }
}

/// Element-wise operations with one operand; result type equals the operand type unless noted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// Arithmetic negation (wrapping for integers).
    Neg,
    /// Logical not for bool, bitwise not for integers.
    Not,
    Abs,
    // Floating point only:
    Exp,
    Exp2,
    Log,
    Log2,
    Sqrt,
    Rsqrt,
    Sin,
    Cos,
    Tanh,
    Erf,
    Sigmoid,
    Floor,
    Ceil,
}

impl UnaryOp {
    pub const ALL: [UnaryOp; 16] = [
        UnaryOp::Neg,
        UnaryOp::Not,
        UnaryOp::Abs,
        UnaryOp::Exp,
        UnaryOp::Exp2,
        UnaryOp::Log,
        UnaryOp::Log2,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Sigmoid,
        UnaryOp::Floor,
        UnaryOp::Ceil,
    ];
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Not => "not",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Exp2 => "exp2",
            UnaryOp::Log => "log",
            UnaryOp::Log2 => "log2",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Erf => "erf",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
        }
    }
    pub fn from_name(s: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|o| o.name() == s)
    }
    /// True for the ops defined on floating-point operands only.
    pub fn float_only(self) -> bool {
        !matches!(self, UnaryOp::Neg | UnaryOp::Not | UnaryOp::Abs)
    }
}

/// Element-wise operations with two operands of the same type; the result has that type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// Wrapping for integers; the interpreter reports signed overflow (see the book).
    Add,
    Sub,
    Mul,
    /// Integers: truncates toward zero (C semantics); division by zero is an error.
    Div,
    /// Integers: sign follows the dividend (C semantics). Floats: `fmod`.
    Rem,
    /// Bitwise for integers, logical for bool.
    And,
    Or,
    Xor,
    /// Integers only; shifting by >= the bit width yields 0 (`Shl`) or the sign fill (`Shr`).
    Shl,
    /// Arithmetic for signed, logical for unsigned.
    Shr,
    /// NaN-propagating minimum: if either operand is NaN the result is NaN; `min(-0.0, 0.0) = -0.0`.
    Min,
    /// NaN-propagating maximum; `max(-0.0, 0.0) = 0.0`.
    Max,
}

impl BinaryOp {
    pub const ALL: [BinaryOp; 12] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Rem,
        BinaryOp::And,
        BinaryOp::Or,
        BinaryOp::Xor,
        BinaryOp::Shl,
        BinaryOp::Shr,
        BinaryOp::Min,
        BinaryOp::Max,
    ];
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Rem => "rem",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Xor => "xor",
            BinaryOp::Shl => "shl",
            BinaryOp::Shr => "shr",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
        }
    }
    pub fn from_name(s: &str) -> Option<BinaryOp> {
        BinaryOp::ALL.iter().copied().find(|o| o.name() == s)
    }
    pub fn is_commutative(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Mul
                | BinaryOp::And
                | BinaryOp::Or
                | BinaryOp::Xor
                | BinaryOp::Min
                | BinaryOp::Max
        )
    }
}

/// Comparison predicates. Result is bool with the operands' shape. Any comparison with NaN is
/// false except `Ne`, which is true (IEEE 754).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpPred {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpPred {
    pub const ALL: [CmpPred; 6] =
        [CmpPred::Eq, CmpPred::Ne, CmpPred::Lt, CmpPred::Le, CmpPred::Gt, CmpPred::Ge];
    pub fn name(self) -> &'static str {
        match self {
            CmpPred::Eq => "eq",
            CmpPred::Ne => "ne",
            CmpPred::Lt => "lt",
            CmpPred::Le => "le",
            CmpPred::Gt => "gt",
            CmpPred::Ge => "ge",
        }
    }
    pub fn from_name(s: &str) -> Option<CmpPred> {
        CmpPred::ALL.iter().copied().find(|o| o.name() == s)
    }
}

/// Built-in reductions along one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum; the order of additions is unspecified for floats (tolerances apply across targets).
    Sum,
    /// NaN-propagating maximum.
    Max,
    /// NaN-propagating minimum.
    Min,
    /// Index (i32) of the maximum. NaN counts as greater than every number; ties and several NaNs
    /// give the lowest index.
    Argmax,
    /// Index (i32) of the minimum. NaN counts as less than every number; ties give the lowest index.
    Argmin,
}

impl ReduceKind {
    pub const ALL: [ReduceKind; 5] =
        [ReduceKind::Sum, ReduceKind::Max, ReduceKind::Min, ReduceKind::Argmax, ReduceKind::Argmin];
    pub fn name(self) -> &'static str {
        match self {
            ReduceKind::Sum => "sum",
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
            ReduceKind::Argmax => "argmax",
            ReduceKind::Argmin => "argmin",
        }
    }
    pub fn from_name(s: &str) -> Option<ReduceKind> {
        ReduceKind::ALL.iter().copied().find(|o| o.name() == s)
    }
}

/// Read-modify-write atomics on global memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Max,
    Min,
    Xchg,
}

impl AtomicOp {
    pub const ALL: [AtomicOp; 4] = [AtomicOp::Add, AtomicOp::Max, AtomicOp::Min, AtomicOp::Xchg];
    pub fn name(self) -> &'static str {
        match self {
            AtomicOp::Add => "add",
            AtomicOp::Max => "max",
            AtomicOp::Min => "min",
            AtomicOp::Xchg => "xchg",
        }
    }
    pub fn from_name(s: &str) -> Option<AtomicOp> {
        AtomicOp::ALL.iter().copied().find(|o| o.name() == s)
    }
}

/// Precision of an f32 `dot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DotPrecision {
    /// Full f32 products and sums (the default, on every target).
    Ieee,
    /// Inputs rounded to tf32 on GPUs that have tensor cores; other targets compute `Ieee`.
    Tf32,
}

/// An operation. Operand and result rules are stated per variant; the verifier checks them.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A scalar constant. Result: a scalar of any dtype.
    Const { value: ConstValue },
    /// `program_id(axis)`: the program's index along `axis` (0..=2). Result: i32 scalar.
    ProgramId { axis: u8 },
    /// `num_programs(axis)`: the grid size along `axis` (0..=2). Result: i32 scalar.
    NumPrograms { axis: u8 },
    /// `[start, end)` as a rank-1 i32 block of `end - start` elements (end > start).
    Arange { start: i64, end: i64 },
    /// A scalar copied into every element. Result: block with the scalar's element type.
    Splat { value: Value },
    /// A block whose size-1 dimensions are repeated to the result shape (same rank; every operand
    /// dimension is 1 or equal to the result's).
    Broadcast { value: Value },
    /// Inserts a size-1 dimension at `axis` (0..=rank). Result rank = operand rank + 1 (<= 4).
    ExpandDims { value: Value, axis: u8 },
    /// Same elements in row-major order, new shape with the same element count.
    Reshape { value: Value },
    /// Result dim `i` is operand dim `perm[i]`; `perm` is a permutation of `0..rank`.
    Permute { value: Value, perm: Vec<u8> },
    /// Element-wise unary op; see [`UnaryOp`].
    Unary { op: UnaryOp, value: Value },
    /// Element-wise binary op; operands and result share one type.
    Binary { op: BinaryOp, lhs: Value, rhs: Value },
    /// Element-wise comparison of two same-typed operands. Result: bool with their shape.
    Cmp { pred: CmpPred, lhs: Value, rhs: Value },
    /// `cond ? on_true : on_false` per element; `cond` is bool with the result shape.
    Select { cond: Value, on_true: Value, on_false: Value },
    /// Fused `a * b + c` with one rounding; floats only, all operands of the result type.
    Fma { a: Value, b: Value, c: Value },
    /// Converts to the result's dtype (same shape). Float->int truncates toward zero and saturates,
    /// NaN -> 0; narrowing float casts round to nearest, ties to even; int->bool is `!= 0`.
    Cast { value: Value },
    /// Pointer plus element offset: `ptr` is a pointer scalar or block, `offset` any integer of the
    /// same shape (sign-extended to 64 bits before scaling by the element size). Result: `ptr`'s type.
    AddPtr { ptr: Value, offset: Value },
    /// Loads each element through a pointer block. Lanes where `mask` is false are never
    /// dereferenced and yield `other` (or an unspecified value when `other` is absent).
    /// `mask` is bool and `other` has the result type; both have the pointer's shape.
    Load { ptr: Value, mask: Option<Value>, other: Option<Value> },
    /// Stores `value` through `ptr` where `mask` is true. No results.
    Store { ptr: Value, value: Value, mask: Option<Value> },
    /// Atomic read-modify-write where `mask` is true; result: the old values (unspecified where
    /// masked off). Each element is one atomic operation, even if a target replicates it.
    Atomic { op: AtomicOp, ptr: Value, value: Value, mask: Option<Value> },
    /// Atomic compare-and-swap: where `mask` is true and `*ptr == cmp`, stores `value`.
    /// Result: the old values.
    AtomicCas { ptr: Value, cmp: Value, value: Value, mask: Option<Value> },
    /// Reduces `axis` away (result rank = operand rank - 1; a rank-1 operand gives a scalar).
    /// Argmax/argmin give i32; the others keep the dtype.
    Reduce { kind: ReduceKind, axis: u8, value: Value },
    /// Reduction with a user combine function: `combine` has two scalar arguments (accumulator,
    /// element) of the element dtype and yields one. Elements are combined in index order.
    ReduceWith { axis: u8, value: Value, combine: RegionId },
    /// Inclusive prefix sum along `axis` (result type = operand type); `reverse` scans from the end.
    Cumsum { axis: u8, value: Value, reverse: bool },
    /// Inclusive associative scan with a user combine region (same shape as `ReduceWith`).
    ScanWith { axis: u8, value: Value, combine: RegionId },
    /// The `k` largest elements along the last axis, in descending order. Results: values (operand
    /// dtype) and i32 indices, last dimension `k` (1 <= k <= size). NaN is greater than every
    /// number; equal values keep their index order (the lower index first).
    TopK { value: Value, k: u32 },
    /// Stable sort along the last axis. Results: sorted values and the i32 source indices.
    /// Ascending puts NaN last, descending puts NaN first.
    Sort { value: Value, descending: bool },
    /// Counts of each value in `[0, bins)` of an integer block (any shape), flattened.
    /// Values outside the range and masked-off lanes are not counted. Result: i32[bins].
    Histogram { value: Value, bins: u32, mask: Option<Value> },
    /// `acc + a @ b` for `a: [M, K]`, `b: [K, N]`, `acc: [M, N]`. Inputs f16, bf16 or f32 (same
    /// dtype), accumulator f32; or i8 inputs with an i32 accumulator.
    Dot { a: Value, b: Value, acc: Value, precision: DotPrecision },
    /// `for iv in range(lo, hi, step)` with loop-carried values. `lo`, `hi`, `step` are scalars of
    /// one integer dtype; `step` > 0 (checked at run time). `body` takes `[iv, carried...]` and
    /// yields the next carried values; results are the final carried values (`init` if no trip).
    For { lo: Value, hi: Value, step: Value, init: Vec<Value>, body: RegionId },
    /// Runs `then_body` or `else_body` (both without arguments) by a bool scalar; results are what
    /// the taken branch yields.
    If { cond: Value, then_body: RegionId, else_body: RegionId },
    /// Terminates every region: the values flow to the parent op's results (or the function's).
    Yield { values: Vec<Value> },
    /// Calls a helper function; removed by the inliner before any backend runs.
    Call { func: crate::FuncId, args: Vec<Value> },
    /// Fails the launch with `message` if any element of the bool operand is false (checked by the
    /// interpreter and debug builds; removed in release builds).
    DeviceAssert { cond: Value, message: String },
    /// Prints the values with a prefix (interpreter and debug builds).
    Print { prefix: String, values: Vec<Value> },
}

impl Op {
    /// The text-form mnemonic of the operation.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Const { .. } => "const",
            Op::ProgramId { .. } => "program_id",
            Op::NumPrograms { .. } => "num_programs",
            Op::Arange { .. } => "arange",
            Op::Splat { .. } => "splat",
            Op::Broadcast { .. } => "broadcast",
            Op::ExpandDims { .. } => "expand_dims",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Unary { op, .. } => op.name(),
            Op::Binary { op, .. } => op.name(),
            Op::Cmp { .. } => "cmp",
            Op::Select { .. } => "select",
            Op::Fma { .. } => "fma",
            Op::Cast { .. } => "cast",
            Op::AddPtr { .. } => "addptr",
            Op::Load { .. } => "load",
            Op::Store { .. } => "store",
            Op::Atomic { .. } => "atomic",
            Op::AtomicCas { .. } => "atomic_cas",
            Op::Reduce { .. } => "reduce",
            Op::ReduceWith { .. } => "reduce_with",
            Op::Cumsum { .. } => "cumsum",
            Op::ScanWith { .. } => "scan_with",
            Op::TopK { .. } => "topk",
            Op::Sort { .. } => "sort",
            Op::Histogram { .. } => "histogram",
            Op::Dot { .. } => "dot",
            Op::For { .. } => "for",
            Op::If { .. } => "if",
            Op::Yield { .. } => "yield",
            Op::Call { .. } => "call",
            Op::DeviceAssert { .. } => "device_assert",
            Op::Print { .. } => "print",
        }
    }

    /// All value operands, in a fixed order (the order of the fields above).
    pub fn operands(&self) -> Vec<Value> {
        let mut v = Vec::new();
        self.visit_operands(|x| v.push(*x));
        v
    }

    /// Visits every value operand.
    pub fn visit_operands(&self, mut f: impl FnMut(&Value)) {
        let mut g = |x: &Value| f(x);
        match self {
            Op::Const { .. }
            | Op::ProgramId { .. }
            | Op::NumPrograms { .. }
            | Op::Arange { .. } => {}
            Op::Splat { value }
            | Op::Broadcast { value }
            | Op::ExpandDims { value, .. }
            | Op::Reshape { value }
            | Op::Permute { value, .. }
            | Op::Unary { value, .. }
            | Op::Cast { value }
            | Op::Reduce { value, .. }
            | Op::ReduceWith { value, .. }
            | Op::Cumsum { value, .. }
            | Op::ScanWith { value, .. }
            | Op::TopK { value, .. }
            | Op::Sort { value, .. } => g(value),
            Op::Binary { lhs, rhs, .. } | Op::Cmp { lhs, rhs, .. } => {
                g(lhs);
                g(rhs);
            }
            Op::Select { cond, on_true, on_false } => {
                g(cond);
                g(on_true);
                g(on_false);
            }
            Op::Fma { a, b, c } => {
                g(a);
                g(b);
                g(c);
            }
            Op::AddPtr { ptr, offset } => {
                g(ptr);
                g(offset);
            }
            Op::Load { ptr, mask, other } => {
                g(ptr);
                mask.iter().for_each(&mut g);
                other.iter().for_each(&mut g);
            }
            Op::Store { ptr, value, mask } | Op::Atomic { ptr, value, mask, .. } => {
                g(ptr);
                g(value);
                mask.iter().for_each(&mut g);
            }
            Op::AtomicCas { ptr, cmp, value, mask } => {
                g(ptr);
                g(cmp);
                g(value);
                mask.iter().for_each(&mut g);
            }
            Op::Histogram { value, mask, .. } => {
                g(value);
                mask.iter().for_each(&mut g);
            }
            Op::Dot { a, b, acc, .. } => {
                g(a);
                g(b);
                g(acc);
            }
            Op::For { lo, hi, step, init, .. } => {
                g(lo);
                g(hi);
                g(step);
                init.iter().for_each(&mut g);
            }
            Op::If { cond, .. } => g(cond),
            Op::Yield { values } | Op::Print { values, .. } => values.iter().for_each(&mut g),
            Op::Call { args, .. } => args.iter().for_each(&mut g),
            Op::DeviceAssert { cond, .. } => g(cond),
        }
    }

    /// Visits every value operand mutably (for substitution by passes).
    pub fn visit_operands_mut(&mut self, mut f: impl FnMut(&mut Value)) {
        let mut g = |x: &mut Value| f(x);
        match self {
            Op::Const { .. }
            | Op::ProgramId { .. }
            | Op::NumPrograms { .. }
            | Op::Arange { .. } => {}
            Op::Splat { value }
            | Op::Broadcast { value }
            | Op::ExpandDims { value, .. }
            | Op::Reshape { value }
            | Op::Permute { value, .. }
            | Op::Unary { value, .. }
            | Op::Cast { value }
            | Op::Reduce { value, .. }
            | Op::ReduceWith { value, .. }
            | Op::Cumsum { value, .. }
            | Op::ScanWith { value, .. }
            | Op::TopK { value, .. }
            | Op::Sort { value, .. } => g(value),
            Op::Binary { lhs, rhs, .. } | Op::Cmp { lhs, rhs, .. } => {
                g(lhs);
                g(rhs);
            }
            Op::Select { cond, on_true, on_false } => {
                g(cond);
                g(on_true);
                g(on_false);
            }
            Op::Fma { a, b, c } => {
                g(a);
                g(b);
                g(c);
            }
            Op::AddPtr { ptr, offset } => {
                g(ptr);
                g(offset);
            }
            Op::Load { ptr, mask, other } => {
                g(ptr);
                mask.iter_mut().for_each(&mut g);
                other.iter_mut().for_each(&mut g);
            }
            Op::Store { ptr, value, mask } | Op::Atomic { ptr, value, mask, .. } => {
                g(ptr);
                g(value);
                mask.iter_mut().for_each(&mut g);
            }
            Op::AtomicCas { ptr, cmp, value, mask } => {
                g(ptr);
                g(cmp);
                g(value);
                mask.iter_mut().for_each(&mut g);
            }
            Op::Histogram { value, mask, .. } => {
                g(value);
                mask.iter_mut().for_each(&mut g);
            }
            Op::Dot { a, b, acc, .. } => {
                g(a);
                g(b);
                g(acc);
            }
            Op::For { lo, hi, step, init, .. } => {
                g(lo);
                g(hi);
                g(step);
                init.iter_mut().for_each(&mut g);
            }
            Op::If { cond, .. } => g(cond),
            Op::Yield { values } | Op::Print { values, .. } => values.iter_mut().for_each(&mut g),
            Op::Call { args, .. } => args.iter_mut().for_each(&mut g),
            Op::DeviceAssert { cond, .. } => g(cond),
        }
    }

    /// Nested regions, in order.
    pub fn regions(&self) -> Vec<RegionId> {
        match self {
            Op::ReduceWith { combine, .. } | Op::ScanWith { combine, .. } => vec![*combine],
            Op::For { body, .. } => vec![*body],
            Op::If { then_body, else_body, .. } => vec![*then_body, *else_body],
            _ => Vec::new(),
        }
    }

    /// True if the op touches memory, the outside world, or control flow, so that DCE must keep it
    /// even when its results are unused. `Load` is pure for DCE: an unused load can go.
    pub fn has_side_effects(&self) -> bool {
        matches!(
            self,
            Op::Store { .. }
                | Op::Atomic { .. }
                | Op::AtomicCas { .. }
                | Op::Yield { .. }
                | Op::Call { .. }
                | Op::DeviceAssert { .. }
                | Op::Print { .. }
        )
    }
}

impl fmt::Display for ConstValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConstValue::Bool(b) => write!(f, "{b}"),
            ConstValue::Int(i) => write!(f, "{i}"),
            ConstValue::Float(x) => {
                if x.is_nan() {
                    write!(f, "nan")
                } else if x.is_infinite() {
                    write!(f, "{}inf", if *x < 0.0 { "-" } else { "" })
                } else {
                    // `{:?}` prints the shortest text that parses back to the same f64.
                    write!(f, "{x:?}")
                }
            }
        }
    }
}
