//! Scalar semantics of tk: the single source of truth for what every element-wise operation, cast
//! and comparison computes. The constant folder and the reference interpreter both call these
//! functions, and every backend is tested against them.
//!
//! # Representation
//!
//! Values are [`ConstValue`]s: `Bool` for `bool`, `Int(i64)` for every integer dtype, `Float(f64)`
//! for every float dtype.
//!
//! - Integers are held sign-extended (signed dtypes) or zero-extended (unsigned dtypes) to 64
//!   bits, so an `i8` holds `-128..=127` and a `u32` holds `0..=u32::MAX`. A `u64` holds its bit
//!   pattern (values of 2^63 and above appear negative in the `i64`).
//! - Floats are held in `f64` and are always exactly representable in their dtype.
//!
//! The functions assume their operands already follow these rules (use [`normalize`] otherwise);
//! a value of the wrong kind for the dtype is an [`EvalError::BadOperand`].
//!
//! # Integers
//!
//! - Unsigned `add`/`sub`/`mul`/`neg` wrap modulo 2^bits.
//! - Signed `add`/`sub`/`mul`/`neg`/`abs` that leave the dtype's range are an error
//!   ([`EvalError::SignedOverflow`]): signed overflow is an error in the interpreter and debug
//!   builds; cast to `i64` for offsets past 2^31.
//! - `div` truncates toward zero, `rem` takes the sign of the dividend (C semantics):
//!   `-7 / 2 == -3`, `-7 % 2 == -1`, `7 % -2 == 1`. Division or remainder by zero is
//!   [`EvalError::DivisionByZero`]; `MIN / -1` and `MIN % -1` are [`EvalError::DivisionOverflow`]
//!   (the quotient does not fit; C leaves both undefined and x86 traps on both).
//! - `and`/`or`/`xor`/`not` are bitwise; results stay in range because the extension is preserved.
//! - `shl`/`shr` take the shift amount as an unsigned number of bits (a negative signed amount is
//!   a huge amount). Amounts `>= bits` give 0 for `shl` and logical `shr` (unsigned), and the sign
//!   fill (0 or -1) for arithmetic `shr` (signed). `shl` drops bits shifted out (no overflow error).
//! - `min`/`max` compare by value.
//!
//! # Bool
//!
//! `and`/`or`/`xor`/`not` are logical, `min` is `and`, `max` is `or`; comparisons order
//! `false < true`. Arithmetic on bool is [`EvalError::Unsupported`].
//!
//! # Floats
//!
//! Every operation computes in `f64` and rounds once to the dtype, round to nearest, ties to even
//! (`f32` via `as f32`; `f16`/`bf16` by an exact rounding routine in this module, because the
//! `half` crate's `f64` conversions ignore the low 32 mantissa bits and so mis-round near ties).
//! For `+ - * /` this equals the correctly rounded operation in the dtype (f64 has more than
//! 2p+2 bits). [`fma`] rounds `a*b+c` exactly once to the dtype.
//!
//! - `rem` is `fmod` (Rust `%`): the result has the dividend's sign and is exact.
//! - `min`/`max` propagate NaN (either operand NaN gives NaN); `min(-0, +0) = -0` and
//!   `max(-0, +0) = +0`.
//! - Division by zero follows IEEE 754 (±inf or NaN); it is not an error.
//! - `exp exp2 log log2 sqrt sin cos tanh` use the host's `f64` functions, `rsqrt` is
//!   `1 / sqrt(x)`, `sigmoid` is `1 / (1 + exp(-x))`, `erf` is this module's own `f64`
//!   implementation (Taylor series in double-double below 2.5, a continued fraction for `erfc`
//!   up to 6, 1 beyond; within one f64 ulp), then the result is rounded to the dtype. For `f16`/`bf16`/`f32` results this
//!   is correctly rounded except in vanishingly rare cases; `f64` results may differ from other
//!   libms by an ulp.
//! - `abs`, `neg`, `floor`, `ceil` are exact.
//!
//! Comparisons follow IEEE 754: any comparison with NaN is false except `ne`, which is true;
//! `-0 == +0`.
//!
//! # Casts ([`cast`], infallible)
//!
//! - float → narrower float: round to nearest, ties to even (overflow gives ±inf).
//! - float → int: truncate toward zero, saturate at the dtype's range, NaN → 0.
//! - int → float: round to nearest, ties to even, with a single rounding (no double rounding
//!   through `f64` for `bf16`/`f16`/`f32`).
//! - int → int: two's complement truncation or extension.
//! - anything → bool: `x != 0` (so NaN → true, -0.0 → false); bool → number: 0 or 1.

use crate::ops::{BinaryOp, CmpPred, ConstValue, UnaryOp};
use crate::types::DType;
use std::fmt;

/// Why a scalar operation has no defined result.
#[derive(Clone, Debug, PartialEq)]
pub enum EvalError {
    /// A signed integer `add`/`sub`/`mul`/`neg`/`abs` left the dtype's range. `expr` shows the
    /// operation with its operands, e.g. `2147483647 + 1`.
    SignedOverflow { dtype: DType, expr: String },
    /// Integer division or remainder by zero.
    DivisionByZero { dtype: DType, expr: String },
    /// `MIN / -1` or `MIN % -1` for a signed dtype.
    DivisionOverflow { dtype: DType, expr: String },
    /// The operation is not defined on this dtype (e.g. `exp` on an integer, `shl` on a float).
    Unsupported { op: &'static str, dtype: DType },
    /// An operand of the wrong kind for the dtype (e.g. a `Float` where an `i32` was expected).
    BadOperand { dtype: DType, value: ConstValue },
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::SignedOverflow { dtype, expr } => write!(
                f,
                "signed overflow: {expr} does not fit in {dtype} (cast to i64 for offsets past 2^31)"
            ),
            EvalError::DivisionByZero { dtype, expr } => {
                write!(f, "integer division by zero: {expr} ({dtype})")
            }
            EvalError::DivisionOverflow { dtype, expr } => {
                write!(f, "integer division overflow: {expr} does not fit in {dtype}")
            }
            EvalError::Unsupported { op, dtype } => write!(f, "`{op}` is not defined on {dtype}"),
            EvalError::BadOperand { dtype, value } => {
                write!(f, "value {value} is not a valid {dtype}")
            }
        }
    }
}

impl std::error::Error for EvalError {}

// ---------------------------------------------------------------------------------------------
// Integer helpers
// ---------------------------------------------------------------------------------------------

/// Truncates `v` to the width of the integer dtype `dt` and re-extends it (two's complement).
/// Bool gives 0 or 1 (`v != 0`); floats return `v` unchanged.
pub fn wrap_int(dt: DType, v: i64) -> i64 {
    match dt {
        DType::I8 => v as i8 as i64,
        DType::I16 => v as i16 as i64,
        DType::I32 => v as i32 as i64,
        DType::U8 => v as u8 as i64,
        DType::U16 => v as u16 as i64,
        DType::U32 => v as u32 as i64,
        DType::Bool => (v != 0) as i64,
        _ => v,
    }
}

/// The mathematical value of an integer held per the representation rules.
pub fn int_value(dt: DType, v: i64) -> i128 {
    if dt == DType::U64 {
        v as u64 as i128
    } else {
        v as i128
    }
}

/// The range `[min, max]` of an integer dtype (bool: `[0, 1]`).
pub fn int_range(dt: DType) -> (i128, i128) {
    match dt {
        DType::I8 => (i8::MIN as i128, i8::MAX as i128),
        DType::I16 => (i16::MIN as i128, i16::MAX as i128),
        DType::I32 => (i32::MIN as i128, i32::MAX as i128),
        DType::I64 => (i64::MIN as i128, i64::MAX as i128),
        DType::U8 => (0, u8::MAX as i128),
        DType::U16 => (0, u16::MAX as i128),
        DType::U32 => (0, u32::MAX as i128),
        DType::U64 => (0, u64::MAX as i128),
        _ => (0, 1),
    }
}

/// Converts an in-range mathematical value to the representation (`u64` as its bit pattern).
fn from_int_value(v: i128) -> i64 {
    v as i64
}

fn show_int(dt: DType, v: i64) -> String {
    int_value(dt, v).to_string()
}

/// Applies a unary op to an integer of dtype `dt` (signed or unsigned).
pub fn unary_int(op: UnaryOp, dt: DType, x: i64) -> Result<i64, EvalError> {
    let signed = dt.is_signed_int();
    match op {
        UnaryOp::Neg => {
            if signed {
                let r = -(x as i128);
                check_signed(dt, r, || format!("-({x})"))
            } else {
                Ok(wrap_int(dt, (x as u64).wrapping_neg() as i64))
            }
        }
        UnaryOp::Not => Ok(wrap_int(dt, !x)),
        UnaryOp::Abs => {
            if signed {
                let r = (x as i128).abs();
                check_signed(dt, r, || format!("abs({x})"))
            } else {
                Ok(x)
            }
        }
        _ => Err(EvalError::Unsupported { op: op.name(), dtype: dt }),
    }
}

fn check_signed(dt: DType, r: i128, expr: impl FnOnce() -> String) -> Result<i64, EvalError> {
    let (lo, hi) = int_range(dt);
    if r < lo || r > hi {
        Err(EvalError::SignedOverflow { dtype: dt, expr: expr() })
    } else {
        Ok(r as i64)
    }
}

/// Applies a binary op to two integers of dtype `dt` (signed or unsigned).
pub fn binary_int(op: BinaryOp, dt: DType, a: i64, b: i64) -> Result<i64, EvalError> {
    let signed = dt.is_signed_int();
    let bits = dt.bits();
    let sym = |s: &str| format!("{} {s} {}", show_int(dt, a), show_int(dt, b));
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul => {
            if signed {
                let (x, y) = (a as i128, b as i128);
                let (r, s) = match op {
                    BinaryOp::Add => (x + y, "+"),
                    BinaryOp::Sub => (x - y, "-"),
                    _ => (x * y, "*"),
                };
                check_signed(dt, r, || sym(s))
            } else {
                let (x, y) = (a as u64, b as u64);
                let r = match op {
                    BinaryOp::Add => x.wrapping_add(y),
                    BinaryOp::Sub => x.wrapping_sub(y),
                    _ => x.wrapping_mul(y),
                };
                Ok(wrap_int(dt, r as i64))
            }
        }
        BinaryOp::Div | BinaryOp::Rem => {
            let s = if op == BinaryOp::Div { "/" } else { "%" };
            if b == 0 {
                return Err(EvalError::DivisionByZero { dtype: dt, expr: sym(s) });
            }
            let (x, y) = (int_value(dt, a), int_value(dt, b));
            if signed && x == int_range(dt).0 && y == -1 {
                return Err(EvalError::DivisionOverflow { dtype: dt, expr: sym(s) });
            }
            // i128 `/` and `%` truncate toward zero and give the remainder the dividend's sign.
            let r = if op == BinaryOp::Div { x / y } else { x % y };
            Ok(from_int_value(r))
        }
        BinaryOp::And => Ok(a & b),
        BinaryOp::Or => Ok(a | b),
        BinaryOp::Xor => Ok(a ^ b),
        BinaryOp::Shl | BinaryOp::Shr => {
            // The amount is unsigned: reinterpret within the dtype's width.
            let amount = (b as u64) & width_mask(bits);
            if op == BinaryOp::Shl {
                if amount >= bits as u64 {
                    Ok(0)
                } else {
                    Ok(wrap_int(dt, ((a as u64) << amount) as i64))
                }
            } else if signed {
                if amount >= bits as u64 {
                    Ok(if a < 0 { -1 } else { 0 })
                } else {
                    Ok(a >> amount)
                }
            } else if amount >= bits as u64 {
                Ok(0)
            } else {
                Ok(((a as u64) >> amount) as i64)
            }
        }
        BinaryOp::Min | BinaryOp::Max => {
            let (x, y) = (int_value(dt, a), int_value(dt, b));
            let pick_a = if op == BinaryOp::Min { x <= y } else { x >= y };
            Ok(if pick_a { a } else { b })
        }
    }
}

fn width_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Applies a unary op to a bool (only `not` is defined).
pub fn unary_bool(op: UnaryOp, x: bool) -> Result<bool, EvalError> {
    match op {
        UnaryOp::Not => Ok(!x),
        _ => Err(EvalError::Unsupported { op: op.name(), dtype: DType::Bool }),
    }
}

/// Applies a binary op to two bools: logical `and`/`or`/`xor`, `min` = and, `max` = or.
pub fn binary_bool(op: BinaryOp, a: bool, b: bool) -> Result<bool, EvalError> {
    match op {
        BinaryOp::And | BinaryOp::Min => Ok(a && b),
        BinaryOp::Or | BinaryOp::Max => Ok(a || b),
        BinaryOp::Xor => Ok(a != b),
        _ => Err(EvalError::Unsupported { op: op.name(), dtype: DType::Bool }),
    }
}

// ---------------------------------------------------------------------------------------------
// Float helpers
// ---------------------------------------------------------------------------------------------

/// Rounds `x` to the nearest value of the float dtype `dt` (ties to even; overflow gives ±inf,
/// NaN stays NaN). Non-float dtypes return `x` unchanged.
pub fn round_float(dt: DType, x: f64) -> f64 {
    match dt {
        DType::F64 => x,
        DType::F32 => x as f32 as f64,
        // f16: 10 fraction bits, normal exponents -14..=15.
        DType::F16 => round_to_format(x, 10, -14, 15),
        // bf16: 7 fraction bits, normal exponents -126..=127.
        DType::BF16 => round_to_format(x, 7, -126, 127),
        _ => x,
    }
}

/// Round to nearest even into a binary format with `frac` fraction bits and normal exponents
/// `emin..=emax` (gradual underflow below `emin`). Exact: scaling by powers of two is exact in
/// f64 for these formats, so the only rounding is `round_ties_even`.
fn round_to_format(x: f64, frac: i32, emin: i32, emax: i32) -> f64 {
    if !x.is_finite() || x == 0.0 {
        return x;
    }
    let a = x.abs();
    let e = exponent_of(a);
    if e > emax {
        return f64::INFINITY.copysign(x);
    }
    // Far below the smallest subnormal (2^(emin-frac)): rounds to zero, and scaling below would
    // underflow f64 itself.
    if e < emin - frac - 2 {
        return 0.0f64.copysign(x);
    }
    let q = e.max(emin) - frac;
    let scaled = a * pow2(-q);
    let r = scaled.round_ties_even() * pow2(q);
    let max = (2.0 - pow2(-frac)) * pow2(emax);
    let r = if r > max { f64::INFINITY } else { r };
    r.copysign(x)
}

/// `floor(log2(a))` for a finite positive `a` (f64 subnormals included).
fn exponent_of(a: f64) -> i32 {
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    if biased == 0 {
        let mant = bits & ((1u64 << 52) - 1);
        // A subnormal is `mant * 2^-1074`: its exponent is the top set bit's position - 1074.
        (63 - mant.leading_zeros() as i32) - 1074
    } else {
        biased - 1023
    }
}

/// 2^e as an f64 for -1074 <= e <= 1023.
fn pow2(e: i32) -> f64 {
    if e >= -1022 {
        f64::from_bits(((e + 1023) as u64) << 52)
    } else {
        f64::from_bits(1u64 << (e + 1074))
    }
}

/// The neighbour of finite `x` one ulp toward `+inf` (`up`) or `-inf`.
fn next_toward(x: f64, up: bool) -> f64 {
    if x == 0.0 {
        let tiny = f64::from_bits(1);
        return if up { tiny } else { -tiny };
    }
    let bits = x.to_bits();
    let away_from_zero = (x > 0.0) == up;
    f64::from_bits(if away_from_zero { bits + 1 } else { bits - 1 })
}

/// Applies a unary op to a float of dtype `dt`: computed in f64, rounded once to `dt`.
pub fn unary_float(op: UnaryOp, dt: DType, x: f64) -> Result<f64, EvalError> {
    let r = match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Not => return Err(EvalError::Unsupported { op: op.name(), dtype: dt }),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Exp2 => x.exp2(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log2 => x.log2(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Erf => erf(x),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
    };
    Ok(round_float(dt, r))
}

/// Applies a binary op to two floats of dtype `dt`: computed in f64, rounded once to `dt`.
pub fn binary_float(op: BinaryOp, dt: DType, a: f64, b: f64) -> Result<f64, EvalError> {
    let r = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Rem => a % b,
        BinaryOp::Min => float_min(a, b),
        BinaryOp::Max => float_max(a, b),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Shl | BinaryOp::Shr => {
            return Err(EvalError::Unsupported { op: op.name(), dtype: dt })
        }
    };
    Ok(round_float(dt, r))
}

/// NaN-propagating minimum with `min(-0, +0) = -0`.
pub fn float_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        // Equal values differ at most in the sign of zero: prefer the negative one.
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

/// NaN-propagating maximum with `max(-0, +0) = +0`.
pub fn float_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_positive() {
            a
        } else {
            b
        }
    } else if a > b {
        a
    } else {
        b
    }
}

/// `a * b + c` for floats of dtype `dt`, rounded exactly once to `dt`.
pub fn fma_float(dt: DType, a: f64, b: f64, c: f64) -> f64 {
    if dt == DType::F64 {
        return a.mul_add(b, c);
    }
    // For f32/f16/bf16 operands `a * b` is exact in f64. `p + c` is computed exactly as `s + e`
    // (two-sum) and then rounded to odd in f64, which makes the final rounding to a format with
    // at most 51 fraction bits equal to a single correct rounding of the exact result.
    let p = a * b;
    let s = p + c;
    if !s.is_finite() {
        return round_float(dt, s);
    }
    let bb = s - p;
    let e = (p - (s - bb)) + (c - bb);
    let odd = if e == 0.0 || s.to_bits() & 1 == 1 { s } else { next_toward(s, e > 0.0) };
    round_float(dt, odd)
}

/// The error function in f64 (accurate to a few ulps; exact at 0, ±1 beyond |x| = 6).
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 2.5 {
        erf_series(a)
    } else if a < 6.0 {
        1.0 - erfc_continued_fraction(a)
    } else {
        1.0
    };
    r.copysign(x)
}

/// `exp(-a²)` with the rounding error of `a²` compensated.
fn exp_neg_square(a: f64) -> f64 {
    let p = a * a;
    let err = a.mul_add(a, -p);
    (-p).exp() * (1.0 - err)
}

/// A double-double number `hi + lo` with `|lo| <= ulp(hi) / 2` (about 106 significant bits).
#[derive(Clone, Copy)]
struct Dd {
    hi: f64,
    lo: f64,
}

impl Dd {
    fn two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        let bb = s - a;
        Dd { hi: s, lo: (a - (s - bb)) + (b - bb) }
    }
    fn quick_two_sum(a: f64, b: f64) -> Dd {
        let s = a + b;
        Dd { hi: s, lo: b - (s - a) }
    }
    fn add(self, o: Dd) -> Dd {
        let s = Dd::two_sum(self.hi, o.hi);
        let t = Dd::two_sum(self.lo, o.lo);
        let u = Dd::quick_two_sum(s.hi, s.lo + t.hi);
        Dd::quick_two_sum(u.hi, u.lo + t.lo)
    }
    fn neg(self) -> Dd {
        Dd { hi: -self.hi, lo: -self.lo }
    }
    fn mul(self, o: Dd) -> Dd {
        let p = self.hi * o.hi;
        let e = self.hi.mul_add(o.hi, -p);
        Dd::quick_two_sum(p, e + (self.hi * o.lo + self.lo * o.hi))
    }
    fn div_f(self, d: f64) -> Dd {
        let q1 = self.hi / d;
        // Remainder self - q1 * d, computed exactly for the high part.
        let p = q1 * d;
        let pe = q1.mul_add(d, -p);
        let r = Dd::two_sum(self.hi, -p);
        let q2 = (r.hi + (r.lo - pe + self.lo)) / d;
        Dd::quick_two_sum(q1, q2)
    }
}

/// 2/√π as a double-double.
const TWO_OVER_SQRT_PI: Dd = Dd { hi: std::f64::consts::FRAC_2_SQRT_PI, lo: 1.533545961316588e-17 };

/// erf(a) = 2/√π · Σ_{n≥0} (-1)^n a^(2n+1) / (n! (2n+1)), summed in double-double. For
/// a < 2.5 the cancellation costs fewer than 6 of the ~106 bits, so the f64 result is within
/// about half an ulp.
fn erf_series(a: f64) -> f64 {
    let a2 = Dd { hi: a, lo: 0.0 }.mul(Dd { hi: a, lo: 0.0 });
    let mut power = Dd { hi: a, lo: 0.0 }; // a^(2n+1) / n!
    let mut sum = power;
    let mut n = 0.0f64;
    while n < 200.0 {
        n += 1.0;
        power = power.mul(a2).div_f(n);
        let term = power.div_f(2.0 * n + 1.0);
        sum = sum.add(if n % 2.0 == 1.0 { term.neg() } else { term });
        if term.hi.abs() < sum.hi.abs() * 1e-34 {
            break;
        }
    }
    let r = TWO_OVER_SQRT_PI.mul(sum);
    r.hi + r.lo
}

/// erfc(a) = e^{-a²}/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + …)))), evaluated bottom-up; for
/// a ≥ 2.5 a fixed depth of 80 converges beyond f64 precision.
fn erfc_continued_fraction(a: f64) -> f64 {
    let mut t = a;
    let mut k = 80.0f64;
    while k >= 1.0 {
        t = a + (k * 0.5) / t;
        k -= 1.0;
    }
    0.5 * std::f64::consts::FRAC_2_SQRT_PI * exp_neg_square(a) / t
}

/// Converts an integer (mathematical value `v`) to the float dtype `to` with one rounding.
fn int_to_float(to: DType, v: i128) -> f64 {
    match to {
        DType::F64 => v as f64,
        DType::F32 => v as f32 as f64,
        _ => {
            // Round to odd into 53 bits, then round to the (much narrower) target: equal to a
            // single rounding of `v`.
            let m = v.unsigned_abs();
            let shift = (128 - m.leading_zeros()).saturating_sub(53);
            let mut top = m >> shift;
            if shift > 0 && m & ((1u128 << shift) - 1) != 0 {
                top |= 1;
            }
            let f = (top as f64) * pow2(shift as i32);
            round_float(to, if v < 0 { -f } else { f })
        }
    }
}

/// Converts a float (already in `f64`) to the integer dtype `to`: truncation toward zero,
/// saturation at the range, NaN → 0.
fn float_to_int(to: DType, x: f64) -> i64 {
    match to {
        DType::I8 => x as i8 as i64,
        DType::I16 => x as i16 as i64,
        DType::I32 => x as i32 as i64,
        DType::I64 => x as i64,
        DType::U8 => x as u8 as i64,
        DType::U16 => x as u16 as i64,
        DType::U32 => x as u32 as i64,
        DType::U64 => x as u64 as i64,
        _ => (x != 0.0) as i64,
    }
}

// ---------------------------------------------------------------------------------------------
// The ConstValue API
// ---------------------------------------------------------------------------------------------

fn expect_int(dt: DType, x: ConstValue) -> Result<i64, EvalError> {
    match x {
        ConstValue::Int(i) => Ok(i),
        _ => Err(EvalError::BadOperand { dtype: dt, value: x }),
    }
}

fn expect_float(dt: DType, x: ConstValue) -> Result<f64, EvalError> {
    match x {
        ConstValue::Float(f) => Ok(f),
        _ => Err(EvalError::BadOperand { dtype: dt, value: x }),
    }
}

fn expect_bool(x: ConstValue) -> Result<bool, EvalError> {
    match x {
        ConstValue::Bool(b) => Ok(b),
        _ => Err(EvalError::BadOperand { dtype: DType::Bool, value: x }),
    }
}

/// `op x` for a value of dtype `dt` (the result has dtype `dt`).
pub fn unary(op: UnaryOp, dt: DType, x: ConstValue) -> Result<ConstValue, EvalError> {
    if dt.is_float() {
        Ok(ConstValue::Float(unary_float(op, dt, expect_float(dt, x)?)?))
    } else if dt.is_bool() {
        Ok(ConstValue::Bool(unary_bool(op, expect_bool(x)?)?))
    } else {
        Ok(ConstValue::Int(unary_int(op, dt, expect_int(dt, x)?)?))
    }
}

/// `a op b` for two values of dtype `dt` (the result has dtype `dt`).
pub fn binary(
    op: BinaryOp,
    dt: DType,
    a: ConstValue,
    b: ConstValue,
) -> Result<ConstValue, EvalError> {
    if dt.is_float() {
        let (x, y) = (expect_float(dt, a)?, expect_float(dt, b)?);
        Ok(ConstValue::Float(binary_float(op, dt, x, y)?))
    } else if dt.is_bool() {
        Ok(ConstValue::Bool(binary_bool(op, expect_bool(a)?, expect_bool(b)?)?))
    } else {
        let (x, y) = (expect_int(dt, a)?, expect_int(dt, b)?);
        Ok(ConstValue::Int(binary_int(op, dt, x, y)?))
    }
}

/// Compares two ints of dtype `dt`.
pub fn cmp_int(pred: CmpPred, dt: DType, a: i64, b: i64) -> bool {
    let (x, y) = (int_value(dt, a), int_value(dt, b));
    match pred {
        CmpPred::Eq => x == y,
        CmpPred::Ne => x != y,
        CmpPred::Lt => x < y,
        CmpPred::Le => x <= y,
        CmpPred::Gt => x > y,
        CmpPred::Ge => x >= y,
    }
}

/// Compares two floats per IEEE 754 (NaN: only `ne` is true).
pub fn cmp_float(pred: CmpPred, a: f64, b: f64) -> bool {
    match pred {
        CmpPred::Eq => a == b,
        CmpPred::Ne => a != b,
        CmpPred::Lt => a < b,
        CmpPred::Le => a <= b,
        CmpPred::Gt => a > b,
        CmpPred::Ge => a >= b,
    }
}

/// `a pred b` for two values of dtype `dt`.
pub fn cmp(pred: CmpPred, dt: DType, a: ConstValue, b: ConstValue) -> Result<bool, EvalError> {
    if dt.is_float() {
        Ok(cmp_float(pred, expect_float(dt, a)?, expect_float(dt, b)?))
    } else if dt.is_bool() {
        let (x, y) = (expect_bool(a)? as i64, expect_bool(b)? as i64);
        Ok(cmp_int(pred, DType::I64, x, y))
    } else {
        Ok(cmp_int(pred, dt, expect_int(dt, a)?, expect_int(dt, b)?))
    }
}

/// Fused `a * b + c` with one rounding; floats only.
pub fn fma(
    dt: DType,
    a: ConstValue,
    b: ConstValue,
    c: ConstValue,
) -> Result<ConstValue, EvalError> {
    if !dt.is_float() {
        return Err(EvalError::Unsupported { op: "fma", dtype: dt });
    }
    let (x, y, z) = (expect_float(dt, a)?, expect_float(dt, b)?, expect_float(dt, c)?);
    Ok(ConstValue::Float(fma_float(dt, x, y, z)))
}

/// Converts `x`, a value of dtype `from`, to dtype `to` (see the module doc for the rules).
///
/// Infallible: an operand of the wrong kind for `from` is read by its own kind (a `Float` as a
/// float, an `Int` as an `i64`, a `Bool` as 0/1).
pub fn cast(from: DType, to: DType, x: ConstValue) -> ConstValue {
    enum Num {
        Int(i128),
        Float(f64),
    }
    let n = match x {
        ConstValue::Bool(b) => Num::Int(b as i128),
        ConstValue::Int(i) => {
            if from.is_int() {
                Num::Int(int_value(from, i))
            } else {
                Num::Int(i as i128)
            }
        }
        ConstValue::Float(f) => Num::Float(f),
    };
    match (n, to) {
        (Num::Int(v), DType::Bool) => ConstValue::Bool(v != 0),
        (Num::Float(f), DType::Bool) => ConstValue::Bool(f != 0.0),
        (Num::Int(v), t) if t.is_float() => ConstValue::Float(int_to_float(t, v)),
        (Num::Float(f), t) if t.is_float() => ConstValue::Float(round_float(t, f)),
        // int -> int: two's complement truncation/extension of the 64-bit pattern.
        (Num::Int(v), t) => ConstValue::Int(wrap_int(t, v as i64)),
        (Num::Float(f), t) => ConstValue::Int(float_to_int(t, f)),
    }
}

/// The value of dtype `dt` that `x` denotes: integers wrap to the dtype's width, floats round to
/// nearest even; a value of another kind is converted as by [`cast`] from its natural type
/// (`Int` as `i64`, `Float` as `f64`, `Bool`).
pub fn normalize(dt: DType, x: ConstValue) -> ConstValue {
    let from = match x {
        ConstValue::Bool(_) => DType::Bool,
        ConstValue::Int(_) => DType::I64,
        ConstValue::Float(_) => DType::F64,
    };
    cast(from, dt, x)
}

/// The zero of dtype `dt` (`false`, `0` or `+0.0`).
pub fn zero(dt: DType) -> ConstValue {
    if dt.is_float() {
        ConstValue::Float(0.0)
    } else if dt.is_bool() {
        ConstValue::Bool(false)
    } else {
        ConstValue::Int(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConstValue::{Bool as B, Float as F, Int as I};

    fn bin(op: BinaryOp, dt: DType, a: ConstValue, b: ConstValue) -> ConstValue {
        binary(op, dt, a, b).unwrap()
    }

    #[test]
    fn c_division_and_remainder() {
        assert_eq!(bin(BinaryOp::Div, DType::I32, I(-7), I(2)), I(-3));
        assert_eq!(bin(BinaryOp::Rem, DType::I32, I(-7), I(2)), I(-1));
        assert_eq!(bin(BinaryOp::Div, DType::I32, I(7), I(-2)), I(-3));
        assert_eq!(bin(BinaryOp::Rem, DType::I32, I(7), I(-2)), I(1));
        assert_eq!(bin(BinaryOp::Rem, DType::I64, I(-7), I(-2)), I(-1));
        assert_eq!(bin(BinaryOp::Div, DType::U32, I(4294967295), I(2)), I(2147483647));
        // u64::MAX / 3 = 6148914691236517205
        assert_eq!(bin(BinaryOp::Div, DType::U64, I(-1), I(3)), I(6148914691236517205));
        assert!(matches!(
            binary(BinaryOp::Div, DType::I32, I(1), I(0)),
            Err(EvalError::DivisionByZero { .. })
        ));
        assert!(matches!(
            binary(BinaryOp::Rem, DType::U8, I(1), I(0)),
            Err(EvalError::DivisionByZero { .. })
        ));
        assert!(matches!(
            binary(BinaryOp::Div, DType::I32, I(-2147483648), I(-1)),
            Err(EvalError::DivisionOverflow { .. })
        ));
        assert!(matches!(
            binary(BinaryOp::Rem, DType::I8, I(-128), I(-1)),
            Err(EvalError::DivisionOverflow { .. })
        ));
        assert_eq!(bin(BinaryOp::Div, DType::I64, I(-2147483648), I(-1)), I(2147483648));
    }

    #[test]
    fn signed_overflow_is_an_error_unsigned_wraps() {
        let e = binary(BinaryOp::Add, DType::I32, I(2147483647), I(1)).unwrap_err();
        assert_eq!(
            e,
            EvalError::SignedOverflow { dtype: DType::I32, expr: "2147483647 + 1".into() }
        );
        assert!(e.to_string().contains("cast to i64"));
        assert_eq!(bin(BinaryOp::Add, DType::I64, I(2147483647), I(1)), I(2147483648));
        assert!(binary(BinaryOp::Sub, DType::I8, I(-128), I(1)).is_err());
        assert!(binary(BinaryOp::Mul, DType::I16, I(256), I(128)).is_err());
        assert_eq!(bin(BinaryOp::Mul, DType::I16, I(256), I(-128)), I(-32768));
        assert!(binary(BinaryOp::Mul, DType::I64, I(1 << 32), I(1 << 31)).is_err());
        assert!(unary(UnaryOp::Neg, DType::I32, I(-2147483648)).is_err());
        assert!(unary(UnaryOp::Abs, DType::I8, I(-128)).is_err());
        assert_eq!(unary(UnaryOp::Abs, DType::I8, I(-127)).unwrap(), I(127));
        // Unsigned wraps modulo 2^bits.
        assert_eq!(bin(BinaryOp::Add, DType::U8, I(255), I(1)), I(0));
        assert_eq!(bin(BinaryOp::Sub, DType::U32, I(0), I(1)), I(4294967295));
        assert_eq!(bin(BinaryOp::Mul, DType::U16, I(300), I(300)), I(90000 % 65536));
        assert_eq!(bin(BinaryOp::Add, DType::U64, I(-1), I(2)), I(1));
        assert_eq!(unary(UnaryOp::Neg, DType::U8, I(1)).unwrap(), I(255));
    }

    #[test]
    fn bit_ops_and_shifts() {
        assert_eq!(bin(BinaryOp::And, DType::I32, I(12), I(10)), I(8));
        assert_eq!(bin(BinaryOp::Or, DType::I32, I(12), I(10)), I(14));
        assert_eq!(bin(BinaryOp::Xor, DType::U8, I(255), I(15)), I(240));
        assert_eq!(unary(UnaryOp::Not, DType::U8, I(0)).unwrap(), I(255));
        assert_eq!(unary(UnaryOp::Not, DType::I32, I(0)).unwrap(), I(-1));
        assert_eq!(bin(BinaryOp::Shl, DType::I32, I(1), I(31)), I(-2147483648));
        assert_eq!(bin(BinaryOp::Shl, DType::I32, I(1), I(32)), I(0));
        assert_eq!(bin(BinaryOp::Shl, DType::U8, I(3), I(7)), I(128));
        assert_eq!(bin(BinaryOp::Shl, DType::U8, I(1), I(200)), I(0));
        assert_eq!(bin(BinaryOp::Shr, DType::I32, I(-8), I(1)), I(-4));
        assert_eq!(bin(BinaryOp::Shr, DType::I32, I(-8), I(40)), I(-1));
        assert_eq!(bin(BinaryOp::Shr, DType::I32, I(8), I(40)), I(0));
        assert_eq!(bin(BinaryOp::Shr, DType::I32, I(-1), I(-1)), I(-1));
        assert_eq!(bin(BinaryOp::Shr, DType::U32, I(4294967295), I(28)), I(15));
        assert_eq!(bin(BinaryOp::Shr, DType::U32, I(4294967295), I(32)), I(0));
        assert_eq!(bin(BinaryOp::Shr, DType::U64, I(-1), I(63)), I(1));
        assert_eq!(bin(BinaryOp::Shl, DType::I64, I(1), I(64)), I(0));
        assert_eq!(bin(BinaryOp::Min, DType::U64, I(-1), I(5)), I(5));
        assert_eq!(bin(BinaryOp::Max, DType::I8, I(-1), I(5)), I(5));
    }

    #[test]
    fn bool_ops_are_logical() {
        assert_eq!(bin(BinaryOp::And, DType::Bool, B(true), B(false)), B(false));
        assert_eq!(bin(BinaryOp::Or, DType::Bool, B(true), B(false)), B(true));
        assert_eq!(bin(BinaryOp::Xor, DType::Bool, B(true), B(true)), B(false));
        assert_eq!(unary(UnaryOp::Not, DType::Bool, B(true)).unwrap(), B(false));
        assert!(binary(BinaryOp::Add, DType::Bool, B(true), B(true)).is_err());
        assert!(cmp(CmpPred::Lt, DType::Bool, B(false), B(true)).unwrap());
    }

    #[test]
    fn bad_operands_and_unsupported_ops() {
        assert!(matches!(
            binary(BinaryOp::Add, DType::I32, F(1.0), I(1)),
            Err(EvalError::BadOperand { .. })
        ));
        assert!(matches!(
            unary(UnaryOp::Exp, DType::I32, I(1)),
            Err(EvalError::Unsupported { op: "exp", .. })
        ));
        assert!(binary(BinaryOp::Shl, DType::F32, F(1.0), F(1.0)).is_err());
        assert!(fma(DType::I32, I(1), I(1), I(1)).is_err());
    }

    #[test]
    fn float_arithmetic_rounds_to_dtype() {
        // 1 + 2^-24 is a tie in f32 and rounds to even (1.0); in f64 it is exact.
        let t = 2f64.powi(-24);
        assert_eq!(bin(BinaryOp::Add, DType::F32, F(1.0), F(t)), F(1.0));
        assert_eq!(bin(BinaryOp::Add, DType::F64, F(1.0), F(t)), F(1.0 + t));
        // 0.1 + 0.2 in f32 is 0.3000000119 (the f32 nearest 0.3), computed once from f64.
        let (a, b) = (0.1f32 as f64, 0.2f32 as f64);
        assert_eq!(bin(BinaryOp::Add, DType::F32, F(a), F(b)), F(0.3f32 as f64));
        assert_eq!(bin(BinaryOp::Div, DType::F32, F(1.0), F(3.0)), F((1.0f32 / 3.0) as f64));
        assert_eq!(bin(BinaryOp::Div, DType::F32, F(1.0), F(0.0)), F(f64::INFINITY));
        assert_eq!(bin(BinaryOp::Rem, DType::F32, F(-7.5), F(2.0)), F(-1.5));
        assert_eq!(bin(BinaryOp::Rem, DType::F64, F(7.5), F(-2.0)), F(1.5));
        // f16 overflow: 65504 * 2 = inf.
        assert_eq!(bin(BinaryOp::Mul, DType::F16, F(65504.0), F(2.0)), F(f64::INFINITY));
    }

    #[test]
    fn min_max_nan_and_signed_zero() {
        for dt in [DType::F32, DType::F16, DType::F64] {
            let nan = F(f64::NAN);
            for (a, b) in [(nan, F(1.0)), (F(1.0), nan), (nan, nan)] {
                for op in [BinaryOp::Min, BinaryOp::Max] {
                    match bin(op, dt, a, b) {
                        F(x) => assert!(x.is_nan()),
                        v => panic!("{v:?}"),
                    }
                }
            }
            let min = |a, b| match bin(BinaryOp::Min, dt, F(a), F(b)) {
                F(x) => x,
                _ => unreachable!(),
            };
            let max = |a, b| match bin(BinaryOp::Max, dt, F(a), F(b)) {
                F(x) => x,
                _ => unreachable!(),
            };
            assert!(min(-0.0, 0.0).is_sign_negative());
            assert!(min(0.0, -0.0).is_sign_negative());
            assert!(max(-0.0, 0.0).is_sign_positive());
            assert!(max(0.0, -0.0).is_sign_positive());
            assert_eq!(min(2.0, -3.0), -3.0);
            assert_eq!(max(2.0, -3.0), 2.0);
        }
    }

    #[test]
    fn comparisons() {
        let nan = F(f64::NAN);
        for p in CmpPred::ALL {
            let r = cmp(p, DType::F32, nan, F(1.0)).unwrap();
            assert_eq!(r, p == CmpPred::Ne, "{p:?}");
        }
        assert!(cmp(CmpPred::Eq, DType::F32, F(-0.0), F(0.0)).unwrap());
        // u64: 2^64-1 (held as -1) is greater than 1.
        assert!(cmp(CmpPred::Gt, DType::U64, I(-1), I(1)).unwrap());
        assert!(cmp(CmpPred::Lt, DType::I64, I(-1), I(1)).unwrap());
    }

    #[test]
    fn casts_float_to_float_round_ties_to_even() {
        let p = |e: i32| 2f64.powi(e);
        // f64 -> f32: 1 + 2^-24 is a tie between 1 and 1 + 2^-23: even is 1.
        assert_eq!(cast(DType::F64, DType::F32, F(1.0 + p(-24))), F(1.0));
        // 1 + 3*2^-24 is a tie between 1+2^-23 (odd) and 1+2^-22 (even).
        assert_eq!(cast(DType::F64, DType::F32, F(1.0 + 3.0 * p(-24))), F(1.0 + p(-22)));
        // Just above the tie rounds up.
        assert_eq!(cast(DType::F64, DType::F32, F(1.0 + p(-24) + p(-50))), F(1.0 + p(-23)));
        // f32 -> f16 (10 fraction bits): ulp at 1 is 2^-10.
        assert_eq!(cast(DType::F32, DType::F16, F(1.0 + p(-11))), F(1.0));
        assert_eq!(cast(DType::F32, DType::F16, F(1.0 + 3.0 * p(-11))), F(1.0 + p(-9)));
        assert_eq!(cast(DType::F32, DType::F16, F(1.0 + p(-11) + p(-20))), F(1.0 + p(-10)));
        // No double rounding: 1 + 2^-11 + 2^-40 is above the tie (through f32 it would be a tie).
        assert_eq!(cast(DType::F64, DType::F16, F(1.0 + p(-11) + p(-40))), F(1.0 + p(-10)));
        // f32 -> bf16 (7 fraction bits): ulp at 1 is 2^-7.
        assert_eq!(cast(DType::F32, DType::BF16, F(1.0 + p(-8))), F(1.0));
        assert_eq!(cast(DType::F32, DType::BF16, F(1.0 + 3.0 * p(-8))), F(1.0 + p(-6)));
        assert_eq!(cast(DType::F64, DType::BF16, F(1.0 + p(-8) + p(-45))), F(1.0 + p(-7)));
        // Overflow: f16 max is 65504; 65519 rounds down, 65520 (the tie) rounds to inf.
        assert_eq!(cast(DType::F32, DType::F16, F(65519.0)), F(65504.0));
        assert_eq!(cast(DType::F32, DType::F16, F(65520.0)), F(f64::INFINITY));
        assert_eq!(cast(DType::F32, DType::F16, F(-1e6)), F(f64::NEG_INFINITY));
        assert_eq!(cast(DType::F64, DType::F32, F(1e300)), F(f64::INFINITY));
        // f16 subnormals: smallest is 2^-24; 2^-25 is a tie with 0 (even) -> 0; 3*2^-26 -> 2^-24.
        assert_eq!(cast(DType::F32, DType::F16, F(p(-25))), F(0.0));
        assert_eq!(cast(DType::F32, DType::F16, F(3.0 * p(-26))), F(p(-24)));
        assert_eq!(cast(DType::F32, DType::F16, F(3.0 * p(-25))), F(p(-23)));
        match cast(DType::F32, DType::F16, F(-p(-30))) {
            F(x) => assert!(x == 0.0 && x.is_sign_negative()),
            v => panic!("{v:?}"),
        }
        // bf16 keeps f32's exponent range: 1e38 stays finite, 3.4e38 rounds up to inf?
        // bf16 max is (2 - 2^-7) * 2^127 = 3.3895313892515355e38.
        assert_eq!(
            cast(DType::F32, DType::BF16, F(3.3895313892515355e38)),
            F(3.3895313892515355e38)
        );
        assert_eq!(cast(DType::F32, DType::BF16, F(f32::MAX as f64)), F(f64::INFINITY));
        match cast(DType::F32, DType::BF16, F(f64::NAN)) {
            F(x) => assert!(x.is_nan()),
            v => panic!("{v:?}"),
        }
        // Widening is exact.
        assert_eq!(cast(DType::F16, DType::F64, F(1.0 + p(-10))), F(1.0 + p(-10)));
    }

    #[test]
    fn casts_float_to_int_truncate_and_saturate() {
        assert_eq!(cast(DType::F32, DType::I32, F(-2.7)), I(-2));
        assert_eq!(cast(DType::F32, DType::I32, F(2.7)), I(2));
        assert_eq!(cast(DType::F32, DType::I32, F(1e20)), I(2147483647));
        assert_eq!(cast(DType::F32, DType::I32, F(-1e20)), I(-2147483648));
        assert_eq!(cast(DType::F32, DType::I32, F(f64::NAN)), I(0));
        assert_eq!(cast(DType::F32, DType::U8, F(-5.0)), I(0));
        assert_eq!(cast(DType::F32, DType::U8, F(300.0)), I(255));
        assert_eq!(cast(DType::F32, DType::I8, F(-300.0)), I(-128));
        assert_eq!(cast(DType::F64, DType::U64, F(1e30)), I(-1)); // u64::MAX bit pattern
        assert_eq!(cast(DType::F64, DType::I64, F(f64::NEG_INFINITY)), I(i64::MIN));
    }

    #[test]
    fn casts_int_to_float_round_once() {
        // 2^24 + 1 is a tie in f32 -> 2^24; 2^24 + 3 -> 2^24 + 4.
        assert_eq!(cast(DType::I32, DType::F32, I(16777217)), F(16777216.0));
        assert_eq!(cast(DType::I32, DType::F32, I(16777219)), F(16777220.0));
        // u64::MAX -> f32 is 2^64.
        assert_eq!(cast(DType::U64, DType::F32, I(-1)), F(2f64.powi(64)));
        assert_eq!(cast(DType::U64, DType::F64, I(-1)), F(2f64.powi(64)));
        // bf16: 2^62 + 2^54 + 1 is just above the tie between 2^62 and 2^62 + 2^55; through f64
        // it would become the tie and round (to even) down.
        let v = (1i64 << 62) + (1i64 << 54) + 1;
        assert_eq!(cast(DType::I64, DType::BF16, I(v)), F(2f64.powi(62) + 2f64.powi(55)));
        assert_eq!(cast(DType::I64, DType::BF16, I(-v)), F(-(2f64.powi(62) + 2f64.powi(55))));
        // f16: 2049 is a tie between 2048 and 2050 -> 2048; 65520 -> inf.
        assert_eq!(cast(DType::I32, DType::F16, I(2049)), F(2048.0));
        assert_eq!(cast(DType::I32, DType::F16, I(2051)), F(2052.0));
        assert_eq!(cast(DType::I32, DType::F16, I(65520)), F(f64::INFINITY));
        assert_eq!(cast(DType::I8, DType::F16, I(-128)), F(-128.0));
    }

    #[test]
    fn casts_int_to_int_and_bool() {
        assert_eq!(cast(DType::I32, DType::I8, I(300)), I(44));
        assert_eq!(cast(DType::I32, DType::U8, I(-1)), I(255));
        assert_eq!(cast(DType::U32, DType::I32, I(4294967295)), I(-1));
        assert_eq!(cast(DType::I32, DType::U64, I(-1)), I(-1)); // 2^64-1 bit pattern
        assert_eq!(cast(DType::I8, DType::I64, I(-5)), I(-5));
        assert_eq!(cast(DType::U64, DType::I64, I(-1)), I(-1));
        assert_eq!(cast(DType::U64, DType::U32, I(-1)), I(4294967295));
        assert_eq!(cast(DType::I32, DType::Bool, I(-3)), B(true));
        assert_eq!(cast(DType::I32, DType::Bool, I(0)), B(false));
        assert_eq!(cast(DType::F32, DType::Bool, F(f64::NAN)), B(true));
        assert_eq!(cast(DType::F32, DType::Bool, F(-0.0)), B(false));
        assert_eq!(cast(DType::F32, DType::Bool, F(0.5)), B(true));
        assert_eq!(cast(DType::Bool, DType::F32, B(true)), F(1.0));
        assert_eq!(cast(DType::Bool, DType::I32, B(false)), I(0));
        assert_eq!(cast(DType::Bool, DType::U8, B(true)), I(1));
    }

    #[test]
    fn normalize_wraps_and_rounds() {
        assert_eq!(normalize(DType::U8, I(257)), I(1));
        assert_eq!(normalize(DType::I8, I(128)), I(-128));
        assert_eq!(normalize(DType::F32, F(0.1)), F(0.1f32 as f64));
        assert_eq!(normalize(DType::F16, F(1.0 + 2f64.powi(-11))), F(1.0));
        assert_eq!(normalize(DType::F32, I(3)), F(3.0));
        assert_eq!(normalize(DType::Bool, B(true)), B(true));
    }

    #[test]
    fn fma_rounds_once() {
        let p = |e: i32| 2f64.powi(e);
        // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24: in f32 (ulp 2^-23) the 2^-24 is an exact tie and
        // rounds to even, 1 + 2^-11.
        let a = 1.0 + p(-12);
        assert_eq!(fma(DType::F32, F(a), F(a), F(0.0)).unwrap(), F(1.0 + p(-11)));
        // a = 1 + 2^-23: a*a = 1 + 2^-22 + 2^-46. With c = 2^-24 the exact value is
        // 1 + 2^-22 + 2^-24 + 2^-46, just above the tie: rounds up to 1 + 3*2^-23. Rounding the
        // product to f32 first (1 + 2^-22) would make it a tie and give 1 + 2^-22.
        let a = 1.0 + p(-23);
        assert_eq!(fma(DType::F32, F(a), F(a), F(p(-24))).unwrap(), F(1.0 + 3.0 * p(-23)));
        // c = 2^-23 + 2^-24: exact 1 + 2^-22 + 2^-23 + 2^-24 + 2^-46 -> up to 1 + 2^-21.
        assert_eq!(fma(DType::F32, F(a), F(a), F(p(-23) + p(-24))).unwrap(), F(1.0 + p(-21)));
        // A huge c makes the product's bits fall below f64 precision entirely:
        // 2^60 + (1 + 2^-23)^2 ... in f32 it rounds to 2^60.
        assert_eq!(fma(DType::F32, F(a), F(a), F(p(60))).unwrap(), F(p(60)));
        // f64 uses the hardware/libm fma: 0.1*10 - 1 exactly is 2^-54 (not 0).
        assert_eq!(fma(DType::F64, F(0.1), F(10.0), F(-1.0)).unwrap(), F(p(-54)));
    }

    #[test]
    fn fma_round_to_odd_decides_ties() {
        let p = |e: i32| 2f64.powi(e);
        // f16: 3 * 683 = 2049 is a tie between 2048 and 2050 (ulp 2). Adding the smallest f16
        // subnormal 2^-24 is lost in the f64 sum (ulp 2^-41 there), but decides the rounding:
        // 2049 + 2^-24 -> 2050, 2049 - 2^-24 -> 2048.
        assert_eq!(fma(DType::F16, F(3.0), F(683.0), F(p(-24))).unwrap(), F(2050.0));
        assert_eq!(fma(DType::F16, F(3.0), F(683.0), F(-p(-24))).unwrap(), F(2048.0));
        assert_eq!(fma(DType::F16, F(3.0), F(683.0), F(0.0)).unwrap(), F(2048.0));
        // f32: 97 * 172961 = 2^24 + 1, a tie between 2^24 and 2^24 + 2; +-2^-149 decides.
        let big = 16777216.0;
        assert_eq!(fma(DType::F32, F(97.0), F(172961.0), F(p(-149))).unwrap(), F(big + 2.0));
        assert_eq!(fma(DType::F32, F(97.0), F(172961.0), F(-p(-149))).unwrap(), F(big));
        // bf16 (7 fraction bits, ulp 4 at 512): 3 * 171 = 513 rounds to 512.
        assert_eq!(fma(DType::BF16, F(3.0), F(171.0), F(0.0)).unwrap(), F(512.0));
        // 514 is the tie between 512 and 516: even (512) without c, 516 with a tiny positive c.
        assert_eq!(fma(DType::BF16, F(2.0), F(257.0), F(0.0)).unwrap(), F(512.0));
        assert_eq!(fma(DType::BF16, F(2.0), F(257.0), F(p(-130))).unwrap(), F(516.0));
    }

    #[test]
    fn transcendentals() {
        let f = |op, x: f64| match unary(op, DType::F32, F(x)).unwrap() {
            F(v) => v,
            _ => unreachable!(),
        };
        assert_eq!(f(UnaryOp::Exp, 0.0), 1.0);
        assert_eq!(f(UnaryOp::Exp, 1.0), std::f32::consts::E as f64);
        assert_eq!(f(UnaryOp::Exp2, 10.0), 1024.0);
        assert_eq!(f(UnaryOp::Log2, 8.0), 3.0);
        assert_eq!(f(UnaryOp::Log, 1.0), 0.0);
        assert!(f(UnaryOp::Log, -1.0).is_nan());
        assert_eq!(f(UnaryOp::Log, 0.0), f64::NEG_INFINITY);
        assert_eq!(f(UnaryOp::Sqrt, 2.0), std::f32::consts::SQRT_2 as f64);
        assert_eq!(f(UnaryOp::Rsqrt, 4.0), 0.5);
        assert_eq!(f(UnaryOp::Rsqrt, 0.0), f64::INFINITY);
        assert_eq!(f(UnaryOp::Sigmoid, 0.0), 0.5);
        assert_eq!(f(UnaryOp::Sigmoid, -1000.0), 0.0);
        assert_eq!(f(UnaryOp::Sigmoid, 1000.0), 1.0);
        assert_eq!(f(UnaryOp::Tanh, 20.0), 1.0);
        assert_eq!(f(UnaryOp::Abs, -2.5), 2.5);
        assert_eq!(f(UnaryOp::Floor, -2.5), -3.0);
        assert_eq!(f(UnaryOp::Ceil, -2.5), -2.0);
        assert_eq!(f(UnaryOp::Neg, 0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(f(UnaryOp::Sin, 0.0), 0.0);
        assert_eq!(f(UnaryOp::Cos, 0.0), 1.0);
        // f16 rounding of a transcendental: exp(1) = 2.71828... -> nearest f16 is 2.71875.
        assert_eq!(unary(UnaryOp::Exp, DType::F16, F(1.0)).unwrap(), F(2.71875));
    }

    #[test]
    fn erf_values() {
        // Reference values of erf (from tables, rounded to f64).
        let cases: [(f64, f64); 11] = [
            (0.0, 0.0),
            (1e-10, 1.1283791670955126e-10),
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (4.0, 0.9999999845827421),
            (6.0, 1.0),
            (f64::INFINITY, 1.0),
        ];
        for (x, want) in cases {
            let got = erf(x);
            let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
            assert!(ulps <= 2, "erf({x}) = {got:e}, want {want:e} ({ulps} ulps)");
            assert_eq!(erf(-x), -got);
        }
        assert!(erf(f64::NAN).is_nan());
        assert!(erf(-0.0).is_sign_negative());
        // Rounded to f32: erf(1) = 0.84270079... -> f32 0.8427008.
        assert_eq!(unary(UnaryOp::Erf, DType::F32, F(1.0)).unwrap(), F(0.8427008f32 as f64));
    }

    #[test]
    fn exponent_and_pow2_helpers() {
        assert_eq!(exponent_of(1.0), 0);
        assert_eq!(exponent_of(0.75), -1);
        assert_eq!(exponent_of(f64::MIN_POSITIVE), -1022);
        assert_eq!(exponent_of(f64::from_bits(1)), -1074);
        assert_eq!(exponent_of(f64::from_bits(3)), -1073);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(10), 1024.0);
    }
}
