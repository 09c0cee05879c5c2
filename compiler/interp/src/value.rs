//! Runtime values of one program: blocks (and scalars, as rank-0 blocks) with typed storage.
//!
//! Elements are stored in row-major order in one of four vectors, in the evaluator's
//! representation ([`tk_ir::eval`]): `bool`, `i64` for every integer dtype, `f64` for every float
//! dtype, and [`Ptr`] for pointers. Element-wise loops match on the storage once per op, not once
//! per element.

use tk_ir::{ConstValue, DType, Elem};

/// A pointer: which kernel parameter it derives from, and an element offset into that
/// parameter's buffer. Pointer arithmetic wraps and never fails; only accesses are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ptr {
    pub param: u32,
    pub offset: i64,
}

/// Element storage of a block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Data {
    Bool(Vec<bool>),
    Int(Vec<i64>),
    Float(Vec<f64>),
    Ptr(Vec<Ptr>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Bool(v) => v.len(),
            Data::Int(v) => v.len(),
            Data::Float(v) => v.len(),
            Data::Ptr(v) => v.len(),
        }
    }

    /// The elements at `idx`, in that order.
    pub fn gather(&self, idx: &[usize]) -> Data {
        match self {
            Data::Bool(v) => Data::Bool(idx.iter().map(|&i| v[i]).collect()),
            Data::Int(v) => Data::Int(idx.iter().map(|&i| v[i]).collect()),
            Data::Float(v) => Data::Float(idx.iter().map(|&i| v[i]).collect()),
            Data::Ptr(v) => Data::Ptr(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    /// `n` copies of element `i`.
    pub fn repeat(&self, i: usize, n: usize) -> Data {
        match self {
            Data::Bool(v) => Data::Bool(vec![v[i]; n]),
            Data::Int(v) => Data::Int(vec![v[i]; n]),
            Data::Float(v) => Data::Float(vec![v[i]; n]),
            Data::Ptr(v) => Data::Ptr(vec![v[i]; n]),
        }
    }

    /// Element `i` as a constant (`None` for pointers).
    pub fn get(&self, i: usize) -> Option<ConstValue> {
        match self {
            Data::Bool(v) => Some(ConstValue::Bool(v[i])),
            Data::Int(v) => Some(ConstValue::Int(v[i])),
            Data::Float(v) => Some(ConstValue::Float(v[i])),
            Data::Ptr(_) => None,
        }
    }

    /// Storage for values of dtype `dt` (each of the kind that `dt` uses).
    pub fn from_consts(dt: DType, vals: impl Iterator<Item = ConstValue>) -> Data {
        if dt.is_float() {
            Data::Float(
                vals.map(|v| match v {
                    ConstValue::Float(f) => f,
                    ConstValue::Int(i) => i as f64,
                    ConstValue::Bool(b) => b as i64 as f64,
                })
                .collect(),
            )
        } else if dt.is_bool() {
            Data::Bool(vals.map(|v| v == ConstValue::Bool(true)).collect())
        } else {
            Data::Int(
                vals.map(|v| match v {
                    ConstValue::Int(i) => i,
                    ConstValue::Bool(b) => b as i64,
                    ConstValue::Float(f) => f as i64,
                })
                .collect(),
            )
        }
    }

    /// A short name of the storage kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Data::Bool(_) => "bool",
            Data::Int(_) => "integer",
            Data::Float(_) => "float",
            Data::Ptr(_) => "pointer",
        }
    }
}

/// A block value (a scalar has an empty shape and one element).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tensor {
    pub elem: Elem,
    pub shape: Vec<u32>,
    pub data: Data,
}

impl Tensor {
    pub fn scalar(dt: DType, v: ConstValue) -> Tensor {
        Tensor {
            elem: Elem::Scalar(dt),
            shape: Vec::new(),
            data: Data::from_consts(dt, std::iter::once(v)),
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The scalar dtype (`None` for pointers).
    pub fn dtype(&self) -> Option<DType> {
        self.elem.dtype()
    }
}

/// Number of elements of a shape.
pub(crate) fn numel(shape: &[u32]) -> usize {
    shape.iter().map(|&d| d as usize).product()
}

/// Row-major strides of a shape.
pub(crate) fn strides(shape: &[u32]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1] as usize;
    }
    s
}

/// Multi-index of flat row-major position `i`.
pub(crate) fn unravel(mut i: usize, shape: &[u32]) -> Vec<u32> {
    let mut idx = vec![0u32; shape.len()];
    for d in (0..shape.len()).rev() {
        let n = shape[d].max(1) as usize;
        idx[d] = (i % n) as u32;
        i /= n;
    }
    idx
}

/// For each position of `out_shape` in row-major order, `Σ index[d] * in_strides[d]`: the
/// source position for broadcasts (stride 0) and permutations (permuted strides).
pub(crate) fn strided_indices(out_shape: &[u32], in_strides: &[usize]) -> Vec<usize> {
    let n = numel(out_shape);
    let rank = out_shape.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0u32; rank];
    let mut pos = 0usize;
    for _ in 0..n {
        out.push(pos);
        // Odometer increment, last dimension fastest.
        for d in (0..rank).rev() {
            idx[d] += 1;
            pos += in_strides[d];
            if idx[d] < out_shape[d] {
                break;
            }
            pos -= in_strides[d] * idx[d] as usize;
            idx[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_helpers() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        // Transpose of a 2x3 block: read with strides (1, 3) over shape (3, 2).
        assert_eq!(strided_indices(&[3, 2], &[1, 3]), vec![0, 3, 1, 4, 2, 5]);
        // Broadcast of a [1, 3] block to [2, 3].
        assert_eq!(strided_indices(&[2, 3], &[0, 1]), vec![0, 1, 2, 0, 1, 2]);
        assert_eq!(strided_indices(&[], &[]), vec![0]);
    }
}
