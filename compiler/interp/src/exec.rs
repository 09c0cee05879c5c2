//! The executor: runs one program instance of a kernel, op by op.
//!
//! Each function activation keeps a `Vec<Option<Tensor>>` indexed by [`Value`] id, so operand
//! lookups are array indexing. Regions (loop bodies, branches, combine functions) run in the
//! activation of the function that owns them. Every fault is returned as an [`InterpError`]
//! carrying the op's span and the faulting lane; the caller adds the program id.
//!
//! The precise semantics (accumulation orders, NaN rules, lane order of aliasing stores) are
//! documented in the crate root.

use crate::buffer::Buffer;
use crate::error::{Access, ErrorKind, InterpError};
use crate::value::{numel, strided_indices, strides, unravel, Data, Ptr, Tensor};
use std::cmp::Ordering;
use std::collections::HashMap;
use tk_diag::Span;
use tk_ir::eval::{self, EvalError};
use tk_ir::{
    AtomicOp, BinaryOp, ConstValue, DType, Elem, FuncId, Function, Module, Op, OpData, ReduceKind,
    RegionId, Type, Value,
};

/// Calls nested deeper than this are reported as malformed (helpers are not recursive).
const MAX_CALL_DEPTH: u32 = 64;

type Vals = Vec<Option<Tensor>>;

/// State shared by all programs of one launch.
pub(crate) struct Machine<'a> {
    pub module: &'a Module,
    pub buffers: &'a mut [Buffer],
    /// For each kernel parameter: the buffer it is bound to (`None` for scalars).
    pub param_buffer: Vec<Option<usize>>,
    pub param_names: Vec<String>,
    pub grid: [u32; 3],
    pub pid: [u32; 3],
    pub prints: Vec<String>,
    pub echo: bool,
    pub max_ops: Option<u64>,
    pub ops: u64,
    pub depth: u32,
}

fn malformed(msg: impl Into<String>, span: Span) -> InterpError {
    InterpError::malformed(msg, span)
}

fn get(vals: &[Option<Tensor>], v: Value, span: Span) -> Result<&Tensor, InterpError> {
    vals.get(v.0 as usize)
        .and_then(Option::as_ref)
        .ok_or_else(|| malformed(format!("value %{} is used before it is defined", v.0), span))
}

fn lane_error(kind: ErrorKind, span: Span, shape: &[u32], i: usize) -> InterpError {
    InterpError { kind: Box::new(kind), span, program: None, lane: Some(unravel(i, shape)) }
}

fn eval_error(op: &'static str, e: EvalError, span: Span, shape: &[u32], i: usize) -> InterpError {
    lane_error(ErrorKind::Eval { op, error: e }, span, shape, i)
}

fn scalar_dtype(t: &Tensor, what: &str, span: Span) -> Result<DType, InterpError> {
    t.dtype().ok_or_else(|| malformed(format!("{what} must be a number, not a pointer"), span))
}

fn bools<'t>(t: &'t Tensor, what: &str, n: usize, span: Span) -> Result<&'t [bool], InterpError> {
    match &t.data {
        Data::Bool(b) if b.len() == n => Ok(b),
        d => Err(malformed(
            format!("{what} must be a bool block of {n} elements, got {} {}", d.len(), d.kind()),
            span,
        )),
    }
}

fn same_len(a: usize, b: usize, span: Span) -> Result<(), InterpError> {
    if a == b {
        Ok(())
    } else {
        Err(malformed(format!("operands have {a} and {b} elements"), span))
    }
}

/// `(outer, n, inner)`: element `(o, k, i)` along `axis` is at `o*n*inner + k*inner + i`.
fn axis_geometry(
    shape: &[u32],
    axis: u8,
    span: Span,
) -> Result<(usize, usize, usize), InterpError> {
    let a = axis as usize;
    if a >= shape.len() {
        return Err(malformed(format!("axis {axis} out of range for rank {}", shape.len()), span));
    }
    let outer = numel(&shape[..a]);
    let inner = numel(&shape[a + 1..]);
    Ok((outer, shape[a] as usize, inner))
}

/// Total order used by argmax/topk/sort on floats: NaN above every number, `-0 == +0`.
fn cmp_nan_high(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Compares elements `i` and `j` of one block with NaN above every number.
fn cmp_elems(d: &Data, dt: DType, i: usize, j: usize) -> Ordering {
    match d {
        Data::Float(v) => cmp_nan_high(v[i], v[j]),
        Data::Int(v) => eval::int_value(dt, v[i]).cmp(&eval::int_value(dt, v[j])),
        Data::Bool(v) => v[i].cmp(&v[j]),
        Data::Ptr(_) => Ordering::Equal,
    }
}

impl<'a> Machine<'a> {
    fn tick(&mut self, span: Span) -> Result<(), InterpError> {
        self.ops += 1;
        match self.max_ops {
            Some(limit) if self.ops > limit => {
                Err(InterpError::new(ErrorKind::OpLimit { limit }, span))
            }
            _ => Ok(()),
        }
    }

    /// Runs function `fid` with the given argument values; returns what its body yields.
    pub fn call(
        &mut self,
        fid: FuncId,
        args: Vec<Tensor>,
        span: Span,
    ) -> Result<Vec<Tensor>, InterpError> {
        let module = self.module;
        let f = module
            .functions
            .get(fid.0 as usize)
            .ok_or_else(|| malformed(format!("call of unknown function #{}", fid.0), span))?;
        if args.len() != f.params.len() {
            return Err(malformed(
                format!("`{}` takes {} arguments, got {}", f.name, f.params.len(), args.len()),
                span,
            ));
        }
        if self.depth >= MAX_CALL_DEPTH {
            return Err(malformed(format!("calls nested deeper than {MAX_CALL_DEPTH}"), span));
        }
        let mut vals: Vals = vec![None; f.values.len()];
        for (p, a) in f.params.iter().zip(args) {
            let slot = vals
                .get_mut(p.value.0 as usize)
                .ok_or_else(|| malformed(format!("parameter `{}` has no value", p.name), span))?;
            *slot = Some(a);
        }
        self.depth += 1;
        let r = self.exec_region(f, &mut vals, f.body, Vec::new());
        self.depth -= 1;
        r
    }

    fn exec_region(
        &mut self,
        f: &'a Function,
        vals: &mut Vals,
        region: RegionId,
        args: Vec<Tensor>,
    ) -> Result<Vec<Tensor>, InterpError> {
        let r = f
            .regions
            .get(region.0 as usize)
            .ok_or_else(|| malformed(format!("unknown region #{}", region.0), f.span))?;
        if r.args.len() != args.len() {
            return Err(malformed(
                format!("region takes {} arguments, got {}", r.args.len(), args.len()),
                f.span,
            ));
        }
        for (v, t) in r.args.iter().zip(args) {
            let slot = vals
                .get_mut(v.0 as usize)
                .ok_or_else(|| malformed("region argument out of range", f.span))?;
            *slot = Some(t);
        }
        for &op_id in &r.ops {
            let od = f
                .ops
                .get(op_id.0 as usize)
                .ok_or_else(|| malformed(format!("unknown op #{}", op_id.0), f.span))?;
            self.tick(od.span)?;
            if let Op::Yield { values } = &od.op {
                return values.iter().map(|&v| get(vals, v, od.span).cloned()).collect();
            }
            let results = self.exec_op(f, vals, od)?;
            if results.len() != od.results.len() {
                return Err(malformed(
                    format!(
                        "`{}` produced {} results but has {}",
                        od.op.mnemonic(),
                        results.len(),
                        od.results.len()
                    ),
                    od.span,
                ));
            }
            for (v, t) in od.results.iter().zip(results) {
                let slot = vals
                    .get_mut(v.0 as usize)
                    .ok_or_else(|| malformed("result value out of range", od.span))?;
                *slot = Some(t);
            }
        }
        Err(malformed("region does not end with `yield`", f.span))
    }

    fn result_type(&self, f: &Function, od: &OpData, i: usize) -> Result<&'a Type, InterpError> {
        let module = self.module;
        let v = od.results.get(i).ok_or_else(|| {
            malformed(format!("`{}` is missing result {i}", od.op.mnemonic()), od.span)
        })?;
        let vd = f
            .values
            .get(v.0 as usize)
            .ok_or_else(|| malformed("result value out of range", od.span))?;
        module.types.try_get(vd.ty).ok_or_else(|| malformed("result type out of range", od.span))
    }

    /// A tensor of type `ty` holding `data`, after checking the element count.
    fn make(ty: &Type, data: Data, span: Span) -> Result<Tensor, InterpError> {
        if numel(&ty.shape) != data.len() {
            return Err(malformed(
                format!(
                    "result type {ty} has {} elements, computed {}",
                    numel(&ty.shape),
                    data.len()
                ),
                span,
            ));
        }
        Ok(Tensor { elem: ty.elem, shape: ty.shape.clone(), data })
    }

    fn exec_op(
        &mut self,
        f: &'a Function,
        vals: &mut Vals,
        od: &'a OpData,
    ) -> Result<Vec<Tensor>, InterpError> {
        let span = od.span;
        let g = |v: Value| get(vals, v, span);
        let one = |t: Tensor| Ok(vec![t]);
        match &od.op {
            Op::Const { value } => {
                let ty = self.result_type(f, od, 0)?;
                let dt = ty
                    .elem
                    .dtype()
                    .ok_or_else(|| malformed("a constant cannot be a pointer", span))?;
                let v = eval::normalize(dt, *value);
                one(Self::make(ty, Data::from_consts(dt, std::iter::once(v)), span)?)
            }
            Op::ProgramId { axis } | Op::NumPrograms { axis } => {
                let ty = self.result_type(f, od, 0)?;
                let a = *axis as usize;
                if a > 2 {
                    return Err(malformed(format!("grid axis {axis} is not 0, 1 or 2"), span));
                }
                let v =
                    if matches!(od.op, Op::ProgramId { .. }) { self.pid[a] } else { self.grid[a] };
                one(Self::make(ty, Data::Int(vec![v as i64]), span)?)
            }
            Op::Arange { start, end } => {
                let ty = self.result_type(f, od, 0)?;
                if end <= start || *start < i32::MIN as i64 || *end > i32::MAX as i64 + 1 {
                    return Err(malformed(format!("bad arange [{start}, {end})"), span));
                }
                one(Self::make(ty, Data::Int((*start..*end).collect()), span)?)
            }
            Op::Splat { value } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                if x.len() != 1 {
                    return Err(malformed("splat of a non-scalar", span));
                }
                one(Self::make(ty, x.data.repeat(0, numel(&ty.shape)), span)?)
            }
            Op::Broadcast { value } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                if x.shape.len() != ty.shape.len()
                    || x.shape.iter().zip(&ty.shape).any(|(&i, &o)| i != 1 && i != o)
                {
                    return Err(malformed(
                        format!("cannot broadcast {:?} to {:?}", x.shape, ty.shape),
                        span,
                    ));
                }
                let st: Vec<usize> = strides(&x.shape)
                    .into_iter()
                    .zip(&x.shape)
                    .map(|(s, &d)| if d == 1 { 0 } else { s })
                    .collect();
                let idx = strided_indices(&ty.shape, &st);
                one(Self::make(ty, x.data.gather(&idx), span)?)
            }
            Op::ExpandDims { value, .. } | Op::Reshape { value } => {
                let ty = self.result_type(f, od, 0)?;
                one(Self::make(ty, g(*value)?.data.clone(), span)?)
            }
            Op::Permute { value, perm } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                let rank = x.shape.len();
                let mut seen = vec![false; rank];
                for &p in perm {
                    if (p as usize) >= rank || seen[p as usize] {
                        return Err(malformed(format!("{perm:?} is not a permutation"), span));
                    }
                    seen[p as usize] = true;
                }
                let expect: Vec<u32> = perm.iter().map(|&p| x.shape[p as usize]).collect();
                if perm.len() != rank || expect != ty.shape {
                    return Err(malformed(format!("{perm:?} does not give {:?}", ty.shape), span));
                }
                let s = strides(&x.shape);
                let st: Vec<usize> = perm.iter().map(|&p| s[p as usize]).collect();
                let idx = strided_indices(&ty.shape, &st);
                one(Self::make(ty, x.data.gather(&idx), span)?)
            }
            Op::Unary { op, value } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                let dt = scalar_dtype(x, "the operand", span)?;
                let name = op.name();
                let err = |(i, e)| eval_error(name, e, span, &x.shape, i);
                let data = match &x.data {
                    Data::Float(v) => Data::Float(
                        v.iter()
                            .enumerate()
                            .map(|(i, &a)| eval::unary_float(*op, dt, a).map_err(|e| (i, e)))
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    Data::Int(v) => Data::Int(
                        v.iter()
                            .enumerate()
                            .map(|(i, &a)| eval::unary_int(*op, dt, a).map_err(|e| (i, e)))
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    Data::Bool(v) => Data::Bool(
                        v.iter()
                            .enumerate()
                            .map(|(i, &a)| eval::unary_bool(*op, a).map_err(|e| (i, e)))
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    Data::Ptr(_) => return Err(malformed("unary op on pointers", span)),
                };
                one(Self::make(ty, data, span)?)
            }
            Op::Binary { op, lhs, rhs } => {
                let ty = self.result_type(f, od, 0)?;
                let (a, b) = (g(*lhs)?, g(*rhs)?);
                let dt = scalar_dtype(a, "the left operand", span)?;
                same_len(a.len(), b.len(), span)?;
                let name = op.name();
                let err = |(i, e)| eval_error(name, e, span, &a.shape, i);
                let data = match (&a.data, &b.data) {
                    (Data::Float(x), Data::Float(y)) => Data::Float(
                        x.iter()
                            .zip(y)
                            .enumerate()
                            .map(|(i, (&p, &q))| {
                                eval::binary_float(*op, dt, p, q).map_err(|e| (i, e))
                            })
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    (Data::Int(x), Data::Int(y)) => Data::Int(
                        x.iter()
                            .zip(y)
                            .enumerate()
                            .map(|(i, (&p, &q))| {
                                eval::binary_int(*op, dt, p, q).map_err(|e| (i, e))
                            })
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    (Data::Bool(x), Data::Bool(y)) => Data::Bool(
                        x.iter()
                            .zip(y)
                            .enumerate()
                            .map(|(i, (&p, &q))| eval::binary_bool(*op, p, q).map_err(|e| (i, e)))
                            .collect::<Result<_, _>>()
                            .map_err(err)?,
                    ),
                    (x, y) => {
                        return Err(malformed(
                            format!("`{name}` of {} and {} operands", x.kind(), y.kind()),
                            span,
                        ))
                    }
                };
                one(Self::make(ty, data, span)?)
            }
            Op::Cmp { pred, lhs, rhs } => {
                let ty = self.result_type(f, od, 0)?;
                let (a, b) = (g(*lhs)?, g(*rhs)?);
                same_len(a.len(), b.len(), span)?;
                let data = match (&a.data, &b.data) {
                    (Data::Float(x), Data::Float(y)) => {
                        x.iter().zip(y).map(|(&p, &q)| eval::cmp_float(*pred, p, q)).collect()
                    }
                    (Data::Int(x), Data::Int(y)) => {
                        let dt = scalar_dtype(a, "the left operand", span)?;
                        x.iter().zip(y).map(|(&p, &q)| eval::cmp_int(*pred, dt, p, q)).collect()
                    }
                    (Data::Bool(x), Data::Bool(y)) => x
                        .iter()
                        .zip(y)
                        .map(|(&p, &q)| eval::cmp_int(*pred, DType::I64, p as i64, q as i64))
                        .collect(),
                    (Data::Ptr(x), Data::Ptr(y)) => x
                        .iter()
                        .zip(y)
                        .map(|(p, q)| {
                            // Pointers into different buffers compare by parameter, then offset.
                            let (p, q) = ((p.param as i64, p.offset), (q.param as i64, q.offset));
                            match pred {
                                tk_ir::CmpPred::Eq => p == q,
                                tk_ir::CmpPred::Ne => p != q,
                                tk_ir::CmpPred::Lt => p < q,
                                tk_ir::CmpPred::Le => p <= q,
                                tk_ir::CmpPred::Gt => p > q,
                                tk_ir::CmpPred::Ge => p >= q,
                            }
                        })
                        .collect(),
                    (x, y) => {
                        return Err(malformed(
                            format!("comparison of {} and {} operands", x.kind(), y.kind()),
                            span,
                        ))
                    }
                };
                one(Self::make(ty, Data::Bool(data), span)?)
            }
            Op::Select { cond, on_true, on_false } => {
                let ty = self.result_type(f, od, 0)?;
                let (t, e) = (g(*on_true)?, g(*on_false)?);
                same_len(t.len(), e.len(), span)?;
                let c = bools(g(*cond)?, "the select condition", t.len(), span)?;
                macro_rules! sel {
                    ($x:expr, $y:expr, $k:ident) => {
                        Data::$k(
                            c.iter()
                                .zip($x.iter().zip($y))
                                .map(|(&c, (&p, &q))| if c { p } else { q })
                                .collect(),
                        )
                    };
                }
                let data = match (&t.data, &e.data) {
                    (Data::Bool(x), Data::Bool(y)) => sel!(x, y, Bool),
                    (Data::Int(x), Data::Int(y)) => sel!(x, y, Int),
                    (Data::Float(x), Data::Float(y)) => sel!(x, y, Float),
                    (Data::Ptr(x), Data::Ptr(y)) => sel!(x, y, Ptr),
                    _ => return Err(malformed("select of different kinds of values", span)),
                };
                one(Self::make(ty, data, span)?)
            }
            Op::Fma { a, b, c } => {
                let ty = self.result_type(f, od, 0)?;
                let (x, y, z) = (g(*a)?, g(*b)?, g(*c)?);
                let dt = scalar_dtype(x, "the operand", span)?;
                same_len(x.len(), y.len(), span)?;
                same_len(x.len(), z.len(), span)?;
                let data = match (&x.data, &y.data, &z.data) {
                    (Data::Float(p), Data::Float(q), Data::Float(r)) => Data::Float(
                        (0..p.len()).map(|i| eval::fma_float(dt, p[i], q[i], r[i])).collect(),
                    ),
                    _ => {
                        let e = EvalError::Unsupported { op: "fma", dtype: dt };
                        return Err(eval_error("fma", e, span, &x.shape, 0));
                    }
                };
                one(Self::make(ty, data, span)?)
            }
            Op::Cast { value } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                let from = scalar_dtype(x, "a cast operand", span)?;
                let to = ty.elem.dtype().ok_or_else(|| malformed("cast to a pointer", span))?;
                let data = if from == to {
                    x.data.clone()
                } else {
                    let n = x.len();
                    Data::from_consts(
                        to,
                        (0..n).map(|i| {
                            eval::cast(from, to, x.data.get(i).unwrap_or(ConstValue::Int(0)))
                        }),
                    )
                };
                one(Self::make(ty, data, span)?)
            }
            Op::AddPtr { ptr, offset } => {
                let ty = self.result_type(f, od, 0)?;
                let (p, o) = (g(*ptr)?, g(*offset)?);
                same_len(p.len(), o.len(), span)?;
                let data = match (&p.data, &o.data) {
                    (Data::Ptr(p), Data::Int(o)) => Data::Ptr(
                        p.iter()
                            .zip(o)
                            .map(|(p, &o)| Ptr { param: p.param, offset: p.offset.wrapping_add(o) })
                            .collect(),
                    ),
                    _ => {
                        return Err(malformed("addptr needs a pointer and an integer offset", span))
                    }
                };
                one(Self::make(ty, data, span)?)
            }
            Op::Load { ptr, mask, other } => {
                let ty = self.result_type(f, od, 0)?;
                let p = g(*ptr)?;
                let m = match mask {
                    Some(m) => Some(bools(g(*m)?, "the load mask", p.len(), span)?),
                    None => None,
                };
                let o = match other {
                    Some(o) => Some(g(*o)?),
                    None => None,
                };
                let data = self.load(p, m, o, ty, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::Store { ptr, value, mask } => {
                let p = g(*ptr)?;
                let v = g(*value)?;
                let m = match mask {
                    Some(m) => Some(bools(g(*m)?, "the store mask", p.len(), span)?),
                    None => None,
                };
                self.store(p, v, m, span)?;
                Ok(Vec::new())
            }
            Op::Atomic { op, ptr, value, mask } => {
                let ty = self.result_type(f, od, 0)?;
                let p = g(*ptr)?;
                let v = g(*value)?;
                let m = match mask {
                    Some(m) => Some(bools(g(*m)?, "the atomic mask", p.len(), span)?),
                    None => None,
                };
                let data = self.atomic(Some(*op), p, None, v, m, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::AtomicCas { ptr, cmp, value, mask } => {
                let ty = self.result_type(f, od, 0)?;
                let p = g(*ptr)?;
                let c = g(*cmp)?;
                let v = g(*value)?;
                let m = match mask {
                    Some(m) => Some(bools(g(*m)?, "the atomic mask", p.len(), span)?),
                    None => None,
                };
                let data = self.atomic(None, p, Some(c), v, m, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::Reduce { kind, axis, value } => {
                let ty = self.result_type(f, od, 0)?;
                let data = reduce(*kind, *axis, g(*value)?, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::Cumsum { axis, value, reverse } => {
                let ty = self.result_type(f, od, 0)?;
                let data = cumsum(*axis, g(*value)?, *reverse, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::ReduceWith { axis, value, combine } | Op::ScanWith { axis, value, combine } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?.clone();
                let scan = matches!(od.op, Op::ScanWith { .. });
                let data = self.combine_along(f, vals, &x, *axis, *combine, scan, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::TopK { value, k } => {
                let (tv, ti) = (self.result_type(f, od, 0)?, self.result_type(f, od, 1)?);
                let x = g(*value)?;
                let (vals_out, idx_out) = sort_last(x, Some(*k), true, span)?;
                Ok(vec![Self::make(tv, vals_out, span)?, Self::make(ti, idx_out, span)?])
            }
            Op::Sort { value, descending } => {
                let (tv, ti) = (self.result_type(f, od, 0)?, self.result_type(f, od, 1)?);
                let x = g(*value)?;
                let (vals_out, idx_out) = sort_last(x, None, *descending, span)?;
                Ok(vec![Self::make(tv, vals_out, span)?, Self::make(ti, idx_out, span)?])
            }
            Op::Histogram { value, bins, mask } => {
                let ty = self.result_type(f, od, 0)?;
                let x = g(*value)?;
                let dt = scalar_dtype(x, "the histogram operand", span)?;
                let m = match mask {
                    Some(m) => Some(bools(g(*m)?, "the histogram mask", x.len(), span)?),
                    None => None,
                };
                let Data::Int(v) = &x.data else {
                    return Err(malformed("histogram of a non-integer block", span));
                };
                let mut counts = vec![0i64; *bins as usize];
                for (i, &e) in v.iter().enumerate() {
                    if m.is_some_and(|m| !m[i]) {
                        continue;
                    }
                    let e = eval::int_value(dt, e);
                    if e >= 0 && e < *bins as i128 {
                        counts[e as usize] += 1;
                    }
                }
                one(Self::make(ty, Data::Int(counts), span)?)
            }
            Op::Dot { a, b, acc, .. } => {
                let ty = self.result_type(f, od, 0)?;
                let data = dot(g(*a)?, g(*b)?, g(*acc)?, span)?;
                one(Self::make(ty, data, span)?)
            }
            Op::For { lo, hi, step, init, body } => {
                let lo_t = g(*lo)?;
                let dt = scalar_dtype(lo_t, "the loop bound", span)?;
                let scalar_int = |t: &Tensor| match &t.data {
                    Data::Int(v) if v.len() == 1 => Ok(eval::int_value(dt, v[0])),
                    _ => Err(malformed("loop bounds must be integer scalars", span)),
                };
                let (l, h, s) = (scalar_int(lo_t)?, scalar_int(g(*hi)?)?, scalar_int(g(*step)?)?);
                if s <= 0 {
                    return Err(InterpError::new(ErrorKind::BadStep { step: s }, span));
                }
                let mut carried: Vec<Tensor> =
                    init.iter().map(|&v| get(vals, v, span).cloned()).collect::<Result<_, _>>()?;
                let mut iv = l;
                while iv < h {
                    let mut args = Vec::with_capacity(carried.len() + 1);
                    args.push(Tensor::scalar(dt, ConstValue::Int(iv as i64)));
                    args.extend(carried);
                    carried = self.exec_region(f, vals, *body, args)?;
                    iv += s;
                }
                Ok(carried)
            }
            Op::If { cond, then_body, else_body } => {
                let c = bools(g(*cond)?, "the if condition", 1, span)?[0];
                self.exec_region(f, vals, if c { *then_body } else { *else_body }, Vec::new())
            }
            Op::Yield { .. } => Err(malformed("`yield` in the middle of a region", span)),
            Op::Call { func, args } => {
                let a: Vec<Tensor> =
                    args.iter().map(|&v| get(vals, v, span).cloned()).collect::<Result<_, _>>()?;
                self.call(*func, a, span)
            }
            Op::DeviceAssert { cond, message } => {
                let c = g(*cond)?;
                let b = bools(c, "the assert condition", c.len(), span)?;
                if let Some(i) = b.iter().position(|&x| !x) {
                    let kind = ErrorKind::AssertFailed { message: message.clone() };
                    return Err(lane_error(kind, span, &c.shape, i));
                }
                Ok(Vec::new())
            }
            Op::Print { prefix, values } => {
                let parts: Vec<String> = values
                    .iter()
                    .map(|&v| g(v).map(|t| self.format_tensor(t)))
                    .collect::<Result<_, _>>()?;
                let [x, y, z] = self.pid;
                let line = format!("pid ({x}, {y}, {z}) {prefix}{}", parts.join(" "));
                if self.echo {
                    eprintln!("{line}");
                }
                self.prints.push(line);
                Ok(Vec::new())
            }
        }
    }

    /// The buffer and element index of lane `i`'s pointer, or the out-of-bounds fault.
    fn resolve(
        &self,
        p: Ptr,
        dt: DType,
        access: Access,
        span: Span,
        shape: &[u32],
        i: usize,
    ) -> Result<(usize, usize), InterpError> {
        let b =
            self.param_buffer.get(p.param as usize).copied().flatten().ok_or_else(|| {
                malformed("pointer that does not come from a buffer parameter", span)
            })?;
        let buf = &self.buffers[b];
        if buf.dtype() != dt {
            return Err(malformed(format!("{} access to a {} buffer", dt, buf.dtype()), span));
        }
        if p.offset < 0 || p.offset as u64 >= buf.len() as u64 {
            let kind = ErrorKind::OutOfBounds {
                access,
                param: self.param_names[p.param as usize].clone(),
                buffer: b,
                index: p.offset,
                len: buf.len(),
            };
            return Err(lane_error(kind, span, shape, i));
        }
        Ok((b, p.offset as usize))
    }

    /// Resolves every active lane (bounds, and initialisation when `reads`), before any access.
    #[allow(clippy::too_many_arguments)]
    fn check_lanes(
        &self,
        ptrs: &[Ptr],
        mask: Option<&[bool]>,
        dt: DType,
        access: Access,
        reads: bool,
        span: Span,
        shape: &[u32],
    ) -> Result<Vec<Option<(usize, usize)>>, InterpError> {
        let mut out = Vec::with_capacity(ptrs.len());
        for (i, &p) in ptrs.iter().enumerate() {
            if mask.is_some_and(|m| !m[i]) {
                out.push(None);
                continue;
            }
            let (b, idx) = self.resolve(p, dt, access, span, shape, i)?;
            out.push(Some((b, idx)));
        }
        if reads {
            for (i, t) in out.iter().enumerate() {
                if let Some((b, idx)) = *t {
                    if !self.buffers[b].is_init(idx) {
                        let kind = ErrorKind::Uninitialised {
                            access,
                            param: self.param_names[ptrs[i].param as usize].clone(),
                            buffer: b,
                            index: idx as i64,
                        };
                        return Err(lane_error(kind, span, shape, i));
                    }
                }
            }
        }
        Ok(out)
    }

    fn ptr_parts(p: &Tensor, span: Span) -> Result<(&[Ptr], DType), InterpError> {
        match (&p.data, p.elem) {
            (Data::Ptr(v), Elem::Ptr(dt)) => Ok((v, dt)),
            _ => Err(malformed("memory access through a non-pointer", span)),
        }
    }

    fn load(
        &self,
        p: &Tensor,
        mask: Option<&[bool]>,
        other: Option<&Tensor>,
        ty: &Type,
        span: Span,
    ) -> Result<Data, InterpError> {
        let (ptrs, dt) = Self::ptr_parts(p, span)?;
        if ty.elem != Elem::Scalar(dt) {
            return Err(malformed(format!("load of {dt} typed {ty}"), span));
        }
        if let Some(o) = other {
            same_len(o.len(), ptrs.len(), span)?;
            if o.elem != Elem::Scalar(dt) {
                return Err(malformed(format!("`other` must be {dt}"), span));
            }
        }
        let lanes = self.check_lanes(ptrs, mask, dt, Access::Load, true, span, &p.shape)?;
        let bufs = &*self.buffers;
        let data = match (dt.is_float(), dt.is_bool(), other.map(|o| &o.data)) {
            (true, _, o) => {
                let fill = |i: usize| match o {
                    Some(Data::Float(v)) => v[i],
                    _ => 0.0,
                };
                Data::Float(
                    lanes
                        .iter()
                        .enumerate()
                        .map(|(i, l)| l.map_or_else(|| fill(i), |(b, x)| bufs[b].read_float(x)))
                        .collect(),
                )
            }
            (_, true, o) => {
                let fill = |i: usize| match o {
                    Some(Data::Bool(v)) => v[i],
                    _ => false,
                };
                Data::Bool(
                    lanes
                        .iter()
                        .enumerate()
                        .map(|(i, l)| l.map_or_else(|| fill(i), |(b, x)| bufs[b].read_bool(x)))
                        .collect(),
                )
            }
            (_, _, o) => {
                let fill = |i: usize| match o {
                    Some(Data::Int(v)) => v[i],
                    _ => 0,
                };
                Data::Int(
                    lanes
                        .iter()
                        .enumerate()
                        .map(|(i, l)| l.map_or_else(|| fill(i), |(b, x)| bufs[b].read_int(x)))
                        .collect(),
                )
            }
        };
        Ok(data)
    }

    fn store(
        &mut self,
        p: &Tensor,
        v: &Tensor,
        mask: Option<&[bool]>,
        span: Span,
    ) -> Result<(), InterpError> {
        let (ptrs, dt) = Self::ptr_parts(p, span)?;
        same_len(ptrs.len(), v.len(), span)?;
        if v.elem != Elem::Scalar(dt) {
            return Err(malformed(format!("store of {} through *{dt}", v.elem), span));
        }
        let lanes = self.check_lanes(ptrs, mask, dt, Access::Store, false, span, &p.shape)?;
        // Lanes are written in row-major order, so when several lanes hit one element the last
        // active lane wins.
        for (i, l) in lanes.iter().enumerate() {
            if let Some((b, x)) = *l {
                let buf = &mut self.buffers[b];
                match &v.data {
                    Data::Float(d) => buf.write_float(x, d[i]),
                    Data::Int(d) => buf.write_int(x, d[i]),
                    Data::Bool(d) => buf.write_bool(x, d[i]),
                    Data::Ptr(_) => return Err(malformed("store of a pointer", span)),
                }
            }
        }
        Ok(())
    }

    /// An atomic RMW (`op` is `Some`) or compare-and-swap (`cmp` is `Some`). Lanes apply one
    /// after another in row-major order; the whole op is computed before anything is written,
    /// so a fault in any lane leaves memory untouched.
    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &mut self,
        op: Option<AtomicOp>,
        p: &Tensor,
        cmp: Option<&Tensor>,
        v: &Tensor,
        mask: Option<&[bool]>,
        span: Span,
    ) -> Result<Data, InterpError> {
        let (ptrs, dt) = Self::ptr_parts(p, span)?;
        same_len(ptrs.len(), v.len(), span)?;
        if v.elem != Elem::Scalar(dt) {
            return Err(malformed(format!("atomic with {} through *{dt}", v.elem), span));
        }
        if let Some(c) = cmp {
            same_len(ptrs.len(), c.len(), span)?;
        }
        let lanes = self.check_lanes(ptrs, mask, dt, Access::Atomic, true, span, &p.shape)?;
        let mut pending: HashMap<(usize, usize), ConstValue> = HashMap::new();
        let mut olds = Vec::with_capacity(ptrs.len());
        for (i, l) in lanes.iter().enumerate() {
            let Some(key) = *l else {
                olds.push(eval::zero(dt));
                continue;
            };
            let old = match pending.get(&key) {
                Some(&o) => o,
                None => self.buffers[key.0].read(key.1),
            };
            let val = v.data.get(i).ok_or_else(|| malformed("atomic on pointers", span))?;
            let new = match (op, cmp) {
                (Some(AtomicOp::Xchg), _) => val,
                (Some(o), _) => {
                    let bop = match o {
                        AtomicOp::Add => BinaryOp::Add,
                        AtomicOp::Max => BinaryOp::Max,
                        _ => BinaryOp::Min,
                    };
                    eval::binary(bop, dt, old, val)
                        .map_err(|e| eval_error("atomic", e, span, &p.shape, i))?
                }
                (None, Some(c)) => {
                    let expected =
                        c.data.get(i).ok_or_else(|| malformed("cas on pointers", span))?;
                    // Compare-and-swap compares bit patterns, as the hardware does.
                    if old.bits() == expected.bits() {
                        val
                    } else {
                        old
                    }
                }
                (None, None) => return Err(malformed("atomic without an operation", span)),
            };
            pending.insert(key, new);
            olds.push(old);
        }
        for ((b, x), val) in pending {
            self.buffers[b].write(x, val);
        }
        Ok(Data::from_consts(dt, olds.into_iter()))
    }

    /// `reduce_with` (fold) or `scan_with` (inclusive scan) along `axis`, calling `combine`.
    #[allow(clippy::too_many_arguments)]
    fn combine_along(
        &mut self,
        f: &'a Function,
        vals: &mut Vals,
        x: &Tensor,
        axis: u8,
        combine: RegionId,
        scan: bool,
        span: Span,
    ) -> Result<Data, InterpError> {
        let dt = scalar_dtype(x, "the reduced block", span)?;
        let (outer, n, inner) = axis_geometry(&x.shape, axis, span)?;
        let mut out = Vec::with_capacity(if scan { x.len() } else { outer * inner });
        let mut scanned = vec![ConstValue::Int(0); if scan { x.len() } else { 0 }];
        let elem = |i: usize| x.data.get(i).ok_or_else(|| malformed("reduce of pointers", span));
        for o in 0..outer {
            for j in 0..inner {
                let base = o * n * inner + j;
                let mut acc = elem(base)?;
                if scan {
                    scanned[base] = acc;
                }
                for k in 1..n {
                    let pos = base + k * inner;
                    let args = vec![Tensor::scalar(dt, acc), Tensor::scalar(dt, elem(pos)?)];
                    let r = self.exec_region(f, vals, combine, args)?;
                    acc = match r.as_slice() {
                        [t] if t.len() == 1 => t.data.get(0).unwrap_or(acc),
                        _ => return Err(malformed("combine must yield one scalar", span)),
                    };
                    acc = eval::normalize(dt, acc);
                    if scan {
                        scanned[pos] = acc;
                    }
                }
                if !scan {
                    out.push(acc);
                }
            }
        }
        let vals_out = if scan { scanned } else { out };
        Ok(Data::from_consts(dt, vals_out.into_iter()))
    }

    fn format_tensor(&self, t: &Tensor) -> String {
        let n = t.len();
        let item = |i: usize| -> String {
            match (&t.data, t.elem) {
                (Data::Ptr(p), _) => {
                    let name = self.param_names.get(p[i].param as usize).map_or("?", |s| s);
                    format!("{name}+{}", p[i].offset)
                }
                (Data::Float(v), Elem::Scalar(DType::F64)) => format_float(v[i], false),
                (Data::Float(v), _) => format_float(v[i], true),
                (Data::Int(v), Elem::Scalar(dt)) => eval::int_value(dt, v[i]).to_string(),
                (Data::Int(v), _) => v[i].to_string(),
                (Data::Bool(v), _) => v[i].to_string(),
            }
        };
        if t.shape.is_empty() {
            return if n == 1 { item(0) } else { String::new() };
        }
        fn nest(shape: &[u32], base: usize, item: &dyn Fn(usize) -> String) -> String {
            let inner = numel(&shape[1..]);
            let parts: Vec<String> = (0..shape[0] as usize)
                .map(|k| {
                    if shape.len() == 1 {
                        item(base + k)
                    } else {
                        nest(&shape[1..], base + k * inner, item)
                    }
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        nest(&t.shape, 0, &item)
    }
}

/// Shortest text that reads back to the value in its dtype (`f32` text for f32/f16/bf16).
fn format_float(x: f64, narrow: bool) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x < 0.0 { "-inf" } else { "inf" }.into()
    } else if narrow {
        format!("{:?}", x as f32)
    } else {
        format!("{x:?}")
    }
}

/// Built-in reductions; see the crate doc for the accumulation rules.
fn reduce(kind: ReduceKind, axis: u8, x: &Tensor, span: Span) -> Result<Data, InterpError> {
    let dt = scalar_dtype(x, "the reduced block", span)?;
    let (outer, n, inner) = axis_geometry(&x.shape, axis, span)?;
    let lanes = outer * inner;
    let at = |o: usize, j: usize, k: usize| o * n * inner + k * inner + j;
    let name = kind.name();
    match kind {
        ReduceKind::Argmax | ReduceKind::Argmin => {
            let mut out = Vec::with_capacity(lanes);
            for o in 0..outer {
                for j in 0..inner {
                    let mut best = 0usize;
                    for k in 1..n {
                        let ord = match &x.data {
                            // argmin puts NaN below every number: compare with NaN-low order.
                            Data::Float(v) if kind == ReduceKind::Argmin => {
                                let (a, b) = (v[at(o, j, k)], v[at(o, j, best)]);
                                match (a.is_nan(), b.is_nan()) {
                                    (_, true) => Ordering::Equal,
                                    (true, false) => Ordering::Less,
                                    _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
                                }
                            }
                            d => cmp_elems(d, dt, at(o, j, k), at(o, j, best)),
                        };
                        let better = if kind == ReduceKind::Argmax {
                            ord == Ordering::Greater
                        } else {
                            ord == Ordering::Less
                        };
                        if better {
                            best = k;
                        }
                    }
                    out.push(best as i64);
                }
            }
            Ok(Data::Int(out))
        }
        ReduceKind::Sum => match &x.data {
            Data::Float(v) => {
                // Accumulate in f64 in index order, round once to the dtype.
                let mut out = Vec::with_capacity(lanes);
                for o in 0..outer {
                    for j in 0..inner {
                        let s: f64 = (0..n).map(|k| v[at(o, j, k)]).sum();
                        out.push(eval::round_float(dt, s));
                    }
                }
                Ok(Data::Float(out))
            }
            Data::Int(v) => {
                // Exact sum; only the final result must fit (signed) or wraps (unsigned).
                let mut out = Vec::with_capacity(lanes);
                for o in 0..outer {
                    for j in 0..inner {
                        let s: i128 = (0..n).map(|k| eval::int_value(dt, v[at(o, j, k)])).sum();
                        let (lo, hi) = eval::int_range(dt);
                        if dt.is_signed_int() && (s < lo || s > hi) {
                            let e =
                                EvalError::SignedOverflow { dtype: dt, expr: format!("sum = {s}") };
                            return Err(eval_error(name, e, span, &x.shape, at(o, j, 0)));
                        }
                        out.push(eval::wrap_int(dt, s as i64));
                    }
                }
                Ok(Data::Int(out))
            }
            _ => {
                let e = EvalError::Unsupported { op: "sum", dtype: dt };
                Err(eval_error(name, e, span, &x.shape, 0))
            }
        },
        ReduceKind::Max | ReduceKind::Min => {
            let bop = if kind == ReduceKind::Max { BinaryOp::Max } else { BinaryOp::Min };
            let mut out = Vec::with_capacity(lanes);
            for o in 0..outer {
                for j in 0..inner {
                    let mut acc = x.data.get(at(o, j, 0)).unwrap_or(ConstValue::Int(0));
                    for k in 1..n {
                        let e = x.data.get(at(o, j, k)).unwrap_or(ConstValue::Int(0));
                        acc = eval::binary(bop, dt, acc, e)
                            .map_err(|e| eval_error(name, e, span, &x.shape, at(o, j, k)))?;
                    }
                    out.push(acc);
                }
            }
            Ok(Data::from_consts(dt, out.into_iter()))
        }
    }
}

/// Inclusive prefix sum; floats round to the dtype after every addition, integers follow
/// [`eval::binary`] (signed overflow is an error).
fn cumsum(axis: u8, x: &Tensor, reverse: bool, span: Span) -> Result<Data, InterpError> {
    let dt = scalar_dtype(x, "the scanned block", span)?;
    let (outer, n, inner) = axis_geometry(&x.shape, axis, span)?;
    let mut out: Vec<ConstValue> =
        (0..x.len()).map(|i| x.data.get(i).unwrap_or(ConstValue::Int(0))).collect();
    for o in 0..outer {
        for j in 0..inner {
            let pos = |k: usize| o * n * inner + (if reverse { n - 1 - k } else { k }) * inner + j;
            for k in 1..n {
                let (prev, cur) = (pos(k - 1), pos(k));
                out[cur] = eval::binary(BinaryOp::Add, dt, out[prev], out[cur])
                    .map_err(|e| eval_error("cumsum", e, span, &x.shape, cur))?;
            }
        }
    }
    Ok(Data::from_consts(dt, out.into_iter()))
}

/// Sort (or top-k when `k` is `Some`) along the last axis. Stable; descending puts NaN first,
/// ascending puts it last. Returns the values and the i32 source indices.
fn sort_last(
    x: &Tensor,
    k: Option<u32>,
    descending: bool,
    span: Span,
) -> Result<(Data, Data), InterpError> {
    let dt = scalar_dtype(x, "the sorted block", span)?;
    let n = *x.shape.last().ok_or_else(|| malformed("sort of a scalar", span))? as usize;
    let keep = match k {
        Some(k) if k == 0 || k as usize > n => {
            return Err(malformed(format!("topk with k = {k} of {n} elements"), span))
        }
        Some(k) => k as usize,
        None => n,
    };
    let rows = x.len() / n.max(1);
    let mut idx_all = Vec::with_capacity(rows * keep);
    let mut src = Vec::with_capacity(rows * keep);
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for r in 0..rows {
        order.clear();
        order.extend(r * n..r * n + n);
        // `sort_by` is stable, so equal keys keep their index order in both directions.
        if descending {
            order.sort_by(|&i, &j| cmp_elems(&x.data, dt, j, i));
        } else {
            order.sort_by(|&i, &j| cmp_elems(&x.data, dt, i, j));
        }
        for &i in &order[..keep] {
            src.push(i);
            idx_all.push((i - r * n) as i64);
        }
    }
    Ok((x.data.gather(&src), Data::Int(idx_all)))
}

/// `acc + a @ b`: floats accumulate in f64 (starting from `acc`, `k` ascending) and round once
/// to the accumulator dtype; integers are exact and the result must fit.
fn dot(a: &Tensor, b: &Tensor, acc: &Tensor, span: Span) -> Result<Data, InterpError> {
    let (&[m, ka], &[kb, nn], &[am, an]) =
        (a.shape.as_slice(), b.shape.as_slice(), acc.shape.as_slice())
    else {
        return Err(malformed("dot needs 2-D operands", span));
    };
    if ka != kb || am != m || an != nn {
        return Err(malformed(
            format!("dot of {:?} and {:?} into {:?}", a.shape, b.shape, acc.shape),
            span,
        ));
    }
    let (m, kk, n) = (m as usize, ka as usize, nn as usize);
    let adt = scalar_dtype(acc, "the accumulator", span)?;
    match (&a.data, &b.data, &acc.data) {
        (Data::Float(x), Data::Float(y), Data::Float(c)) => {
            let mut out = Vec::with_capacity(m * n);
            for i in 0..m {
                for j in 0..n {
                    let mut s = c[i * n + j];
                    for k in 0..kk {
                        s += x[i * kk + k] * y[k * n + j];
                    }
                    out.push(eval::round_float(adt, s));
                }
            }
            Ok(Data::Float(out))
        }
        (Data::Int(x), Data::Int(y), Data::Int(c)) => {
            let (xdt, ydt) = (scalar_dtype(a, "a", span)?, scalar_dtype(b, "b", span)?);
            let (lo, hi) = eval::int_range(adt);
            let mut out = Vec::with_capacity(m * n);
            for i in 0..m {
                for j in 0..n {
                    let mut s = eval::int_value(adt, c[i * n + j]);
                    for k in 0..kk {
                        let p = eval::int_value(xdt, x[i * kk + k])
                            * eval::int_value(ydt, y[k * n + j]);
                        s = s.saturating_add(p);
                    }
                    if adt.is_signed_int() && (s < lo || s > hi) {
                        let e =
                            EvalError::SignedOverflow { dtype: adt, expr: format!("dot = {s}") };
                        return Err(eval_error("dot", e, span, &acc.shape, i * n + j));
                    }
                    out.push(eval::wrap_int(adt, s as i64));
                }
            }
            Ok(Data::Int(out))
        }
        _ => Err(malformed("dot operands must be all float or all integer", span)),
    }
}
