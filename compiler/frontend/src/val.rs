//! Values as the frontend sees them while lowering: IR values, compile-time constants, and the
//! few non-value things a builtin can take (dtypes, strings, shape lists, functions).

use tk_diag::Span;
use tk_ir::{ConstValue, DType, Elem, Type, TypeId, Value};

/// A "weak" type comes from a literal: `2` or `0.5` take the type of the other operand, as in
/// Triton and JAX, instead of forcing their default (i32 / f32) on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strength {
    Weak,
    Strong,
}

/// The result of lowering an expression.
#[derive(Clone, Debug)]
pub enum Val {
    /// A run-time value in the IR.
    Ir { value: Value, ty: TypeId, strength: Strength },
    /// A scalar known at compile time (literals, compile-time parameters, folded arithmetic).
    Const { value: ConstValue, dtype: DType, strength: Strength },
    /// Several values (`topk` results, tuple returns).
    Tuple(Vec<Val>),
    /// A dtype name used as an argument (`zeros([4], f16)`).
    DType(DType),
    /// A string literal (messages).
    Str(String),
    /// A `[a, b]` list (shapes, permutations).
    List(Vec<(Val, Span)>),
    /// A helper function named as an argument (`reduce(x, 0, combine: add)`).
    Func(String),
    /// The value of a statement-like call (`store`), or of a helper without a result.
    Unit,
    /// Produced after an error has been reported; every use of it is silent, so that one mistake
    /// gives one diagnostic.
    Error,
}

impl Val {
    pub fn is_error(&self) -> bool {
        matches!(self, Val::Error)
    }
}

/// What a value looks like to the type rules: element, shape, and strength.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeView {
    pub elem: Elem,
    pub shape: Vec<u32>,
    pub strength: Strength,
}

impl TypeView {
    pub fn of_type(t: &Type, strength: Strength) -> TypeView {
        TypeView { elem: t.elem, shape: t.shape.clone(), strength }
    }
    pub fn scalar(d: DType, strength: Strength) -> TypeView {
        TypeView { elem: Elem::Scalar(d), shape: Vec::new(), strength }
    }
    pub fn to_type(&self) -> Type {
        Type { elem: self.elem, shape: self.shape.clone() }
    }
    pub fn dtype(&self) -> Option<DType> {
        self.elem.dtype()
    }
}

/// Writes a type the way users write it: `f32`, `*f16`, `i32[16, 128]`.
pub fn show_type(t: &Type) -> String {
    t.to_string()
}

/// Kinds ordered for promotion: bool < integer < float.
fn kind_rank(d: DType) -> u8 {
    if d.is_bool() {
        0
    } else if d.is_int() {
        1
    } else {
        2
    }
}

/// Why two dtypes cannot be combined.
#[derive(Clone, Debug, PartialEq)]
pub enum PromoteError {
    /// Signed and unsigned integers mixed without a cast.
    MixedSignedness(DType, DType),
}

/// The dtype of `a op b` for arithmetic and comparisons, following the book's promotion rules:
/// a weak (literal) operand adopts the other side's dtype unless it is of a higher kind (an int
/// literal with a float becomes that float; a float literal with an int becomes f32); two strong
/// operands promote to the wider of the same kind, or to the float for int-with-float; mixing
/// signed and unsigned integers is an error.
pub fn promote(
    a: DType,
    sa: Strength,
    b: DType,
    sb: Strength,
) -> Result<(DType, Strength), PromoteError> {
    use Strength::*;
    match (sa, sb) {
        (Weak, Strong) => Ok((adopt(a, b), Strong)),
        (Strong, Weak) => Ok((adopt(b, a), Strong)),
        (Weak, Weak) => {
            let d = if kind_rank(a) >= kind_rank(b) { a } else { b };
            Ok((d, Weak))
        }
        (Strong, Strong) => promote_strong(a, b).map(|d| (d, Strong)),
    }
}

/// The dtype a weak operand of dtype `weak` takes next to a strong one of dtype `strong`.
fn adopt(weak: DType, strong: DType) -> DType {
    if kind_rank(weak) <= kind_rank(strong) {
        strong
    } else if weak.is_float() {
        DType::F32.max_float(strong)
    } else {
        weak
    }
}

trait MaxFloat {
    fn max_float(self, other: DType) -> DType;
}
impl MaxFloat for DType {
    fn max_float(self, other: DType) -> DType {
        if other.is_float() && other.bits() > self.bits() {
            other
        } else {
            self
        }
    }
}

fn promote_strong(a: DType, b: DType) -> Result<DType, PromoteError> {
    if a == b {
        return Ok(a);
    }
    let (ka, kb) = (kind_rank(a), kind_rank(b));
    if ka != kb {
        return Ok(if ka > kb { a } else { b });
    }
    if a.is_float() {
        // f16 with bf16 has no common 16-bit type: go to f32.
        if a.bits() == b.bits() {
            return Ok(DType::F32);
        }
        return Ok(if a.bits() > b.bits() { a } else { b });
    }
    if a.is_int() {
        if a.is_signed_int() != b.is_signed_int() {
            return Err(PromoteError::MixedSignedness(a, b));
        }
        return Ok(if a.bits() >= b.bits() { a } else { b });
    }
    Ok(a)
}

/// NumPy broadcasting of two shapes (aligned from the right; each dim equal or 1).
pub fn broadcast_shapes(a: &[u32], b: &[u32]) -> Option<Vec<u32>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i < rank - a.len() { 1 } else { a[i - (rank - a.len())] };
        let db = if i < rank - b.len() { 1 } else { b[i - (rank - b.len())] };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Whether shape `from` broadcasts to exactly `to`.
pub fn broadcasts_to(from: &[u32], to: &[u32]) -> bool {
    broadcast_shapes(from, to).as_deref() == Some(to)
}

/// `[16, 128]` as users write shapes.
pub fn show_shape(s: &[u32]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Strength::*;

    #[test]
    fn literal_adopts_other_side() {
        assert_eq!(promote(DType::I32, Weak, DType::I64, Strong), Ok((DType::I64, Strong)));
        assert_eq!(promote(DType::F32, Strong, DType::I32, Weak), Ok((DType::F32, Strong)));
        assert_eq!(promote(DType::F16, Strong, DType::F32, Weak), Ok((DType::F16, Strong)));
        assert_eq!(promote(DType::I64, Strong, DType::F32, Weak), Ok((DType::F32, Strong)));
        assert_eq!(promote(DType::I32, Weak, DType::F32, Weak), Ok((DType::F32, Weak)));
    }

    #[test]
    fn strong_promotion() {
        assert_eq!(promote(DType::I32, Strong, DType::I64, Strong), Ok((DType::I64, Strong)));
        assert_eq!(promote(DType::F16, Strong, DType::BF16, Strong), Ok((DType::F32, Strong)));
        assert_eq!(promote(DType::I32, Strong, DType::F16, Strong), Ok((DType::F16, Strong)));
        assert!(promote(DType::I32, Strong, DType::U32, Strong).is_err());
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shapes(&[16, 1], &[1, 8]), Some(vec![16, 8]));
        assert_eq!(broadcast_shapes(&[], &[4]), Some(vec![4]));
        assert_eq!(broadcast_shapes(&[3], &[2, 3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shapes(&[16], &[8]), None);
    }
}
