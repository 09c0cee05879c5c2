//! Functions and modules: the arenas that own values, operations and regions.

use crate::{ConstValue, Op, Type, TypeId, TypeTable};
use tk_diag::Span;

/// Handle of an SSA value in its [`Function`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Value(pub u32);
/// Handle of an operation in its [`Function`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub u32);
/// Handle of a region (an ordered list of ops with arguments) in its [`Function`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub u32);
/// Handle of a function in its [`Module`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FuncId(pub u32);

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The function's parameter number `.0`.
    Param(u32),
    /// Result number `index` of `op`.
    Result { op: OpId, index: u32 },
    /// Argument number `index` of `region`.
    RegionArg { region: RegionId, index: u32 },
}

/// What the arena knows about a value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueData {
    pub ty: TypeId,
    pub def: ValueDef,
    /// The source variable it came from, if any: used by the printer for readable names.
    pub name: Option<String>,
}

/// An operation with its results and the source span that produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct OpData {
    pub op: Op,
    pub results: Vec<Value>,
    pub span: Span,
}

/// An ordered list of operations with arguments; the last op is always [`Op::Yield`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegionData {
    pub args: Vec<Value>,
    pub ops: Vec<OpId>,
}

/// Kernels are entry points launched over a grid; helpers are only called (and inlined away).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuncKind {
    Kernel,
    Helper,
}

/// A function parameter: kernels take scalars and pointers only.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: String,
    pub ty: TypeId,
    pub value: Value,
}

/// One function. Arenas only grow while building; passes that delete ops unlink them from their
/// region (`RegionData::ops`) and leave the arena entry behind, so handles never dangle.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    pub name: String,
    pub kind: FuncKind,
    pub params: Vec<Param>,
    /// Compile-time parameters and the values they were built with (recorded for the manifest).
    pub constexprs: Vec<(String, ConstValue)>,
    /// `multiple_of(param, n)` facts: integer parameter `.0` is a multiple of `.1` at every
    /// launch. The runtime checks them before launching; analyses may rely on them.
    pub param_multiples: Vec<(u32, u64)>,
    /// Types of the values the body yields (empty for kernels).
    pub results: Vec<TypeId>,
    pub body: RegionId,
    pub values: Vec<ValueData>,
    pub ops: Vec<OpData>,
    pub regions: Vec<RegionData>,
    pub span: Span,
}

impl Function {
    /// A function with an empty body region (the caller adds params and ops).
    pub fn new(name: impl Into<String>, kind: FuncKind, span: Span) -> Function {
        Function {
            name: name.into(),
            kind,
            params: Vec::new(),
            constexprs: Vec::new(),
            param_multiples: Vec::new(),
            results: Vec::new(),
            body: RegionId(0),
            values: Vec::new(),
            ops: Vec::new(),
            regions: vec![RegionData::default()],
            span,
        }
    }

    pub fn value(&self, v: Value) -> &ValueData {
        &self.values[v.0 as usize]
    }
    pub fn value_type(&self, v: Value) -> TypeId {
        self.values[v.0 as usize].ty
    }
    pub fn op(&self, id: OpId) -> &OpData {
        &self.ops[id.0 as usize]
    }
    pub fn op_mut(&mut self, id: OpId) -> &mut OpData {
        &mut self.ops[id.0 as usize]
    }
    pub fn region(&self, id: RegionId) -> &RegionData {
        &self.regions[id.0 as usize]
    }
    pub fn region_mut(&mut self, id: RegionId) -> &mut RegionData {
        &mut self.regions[id.0 as usize]
    }

    /// The op defining `v`, if it is an op result.
    pub fn defining_op(&self, v: Value) -> Option<OpId> {
        match self.value(v).def {
            ValueDef::Result { op, .. } => Some(op),
            _ => None,
        }
    }

    /// The constant value of `v` if it is defined by [`Op::Const`].
    pub fn as_const(&self, v: Value) -> Option<ConstValue> {
        let op = self.defining_op(v)?;
        match self.op(op).op {
            Op::Const { value } => Some(value),
            _ => None,
        }
    }

    pub fn new_value(&mut self, ty: TypeId, def: ValueDef) -> Value {
        self.values.push(ValueData { ty, def, name: None });
        Value(self.values.len() as u32 - 1)
    }

    pub fn add_param(&mut self, name: impl Into<String>, ty: TypeId) -> Value {
        let index = self.params.len() as u32;
        let v = self.new_value(ty, ValueDef::Param(index));
        let name = name.into();
        self.values[v.0 as usize].name = Some(name.clone());
        self.params.push(Param { name, ty, value: v });
        v
    }

    /// A new empty region with arguments of the given types.
    pub fn new_region(&mut self, arg_types: &[TypeId]) -> RegionId {
        let id = RegionId(self.regions.len() as u32);
        self.regions.push(RegionData::default());
        let args = arg_types
            .iter()
            .enumerate()
            .map(|(i, &t)| self.new_value(t, ValueDef::RegionArg { region: id, index: i as u32 }))
            .collect();
        self.regions[id.0 as usize].args = args;
        id
    }

    /// Creates an op with results of the given types and appends it to `region`.
    pub fn append_op(
        &mut self,
        region: RegionId,
        op: Op,
        result_types: &[TypeId],
        span: Span,
    ) -> OpId {
        let id = self.create_op(op, result_types, span);
        self.regions[region.0 as usize].ops.push(id);
        id
    }

    /// Creates an op in the arena without placing it in any region.
    pub fn create_op(&mut self, op: Op, result_types: &[TypeId], span: Span) -> OpId {
        let id = OpId(self.ops.len() as u32);
        let results = result_types
            .iter()
            .enumerate()
            .map(|(i, &t)| self.new_value(t, ValueDef::Result { op: id, index: i as u32 }))
            .collect();
        self.ops.push(OpData { op, results, span });
        id
    }

    /// Replaces every use of `from` by `to` in all ops of the function.
    pub fn replace_all_uses(&mut self, from: Value, to: Value) {
        for od in &mut self.ops {
            od.op.visit_operands_mut(|v| {
                if *v == from {
                    *v = to;
                }
            });
        }
    }

    /// Ops reachable from the body in program order, depth first (parents before nested ops).
    pub fn walk(&self) -> Vec<OpId> {
        let mut out = Vec::new();
        self.walk_region(self.body, &mut out);
        out
    }

    fn walk_region(&self, r: RegionId, out: &mut Vec<OpId>) {
        for &op in &self.region(r).ops {
            out.push(op);
            for sub in self.op(op).op.regions() {
                self.walk_region(sub, out);
            }
        }
    }
}

/// A compilation unit: interned types and functions (kernels and helpers).
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub types: TypeTable,
    pub functions: Vec<Function>,
}

impl Module {
    pub fn ty(&self, id: TypeId) -> &Type {
        self.types.get(id)
    }
    pub fn func(&self, id: FuncId) -> &Function {
        &self.functions[id.0 as usize]
    }
    pub fn kernels(&self) -> impl Iterator<Item = &Function> {
        self.functions.iter().filter(|f| f.kind == FuncKind::Kernel)
    }
    pub fn find(&self, name: &str) -> Option<FuncId> {
        self.functions.iter().position(|f| f.name == name).map(|i| FuncId(i as u32))
    }
}
