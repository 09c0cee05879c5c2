//! Lane semantics in LLVM IR: one function per kind of element-wise op, each emitting the exact
//! tk rule of [`tk_ir::eval`]. Every function works on a scalar or on a vector of lanes alike
//! (`<W x T>`), which is how the fused loops of `fused.rs` and the scalar code of `codegen.rs`
//! share one definition of the semantics.
//!
//! inkwell's typed builder API distinguishes scalar and vector values at the type level, so the
//! instructions here are built through the LLVM C API (`inkwell::llvm_sys`) on
//! [`BasicValueEnum`]s, whose variant already says scalar or vector. Constants take the shape of
//! the value they combine with ([`Sc::cf`], [`Sc::ci`]).
//!
//! f16 and bf16 compute in f32 (exact for `+ - * / sqrt`: f32 has more than twice their
//! precision plus two bits) and round back after every op. f32 transcendentals are the inline
//! polynomials of `vmath.rs`; f64 ones call the C library per lane. bf16 conversions are
//! emitted inline (round to nearest even, NaN stays NaN) because the system libgcc may lack
//! `__truncsfbf2`.

use crate::codegen::R;
use crate::vmath;
use crate::CpuError;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::llvm_sys::core as llc;
use inkwell::llvm_sys::prelude::{LLVMTypeRef, LLVMValueRef};
use inkwell::llvm_sys::{LLVMIntPredicate, LLVMOpcode, LLVMRealPredicate};
use inkwell::module::Module;
use inkwell::types::{AsTypeRef, BasicTypeEnum};
use inkwell::values::{AsValueRef, BasicMetadataValueEnum, BasicValueEnum, ValueKind};
use inkwell::values::{IntValue, PointerValue};
use inkwell::AddressSpace;
use tk_ir::{BinaryOp, CmpPred, ConstValue, DType, Elem, ReduceKind, UnaryOp};

/// A lane value: a scalar or a vector.
pub(crate) type V<'ctx> = BasicValueEnum<'ctx>;
/// A lane type: a scalar or a vector type.
pub(crate) type T<'ctx> = BasicTypeEnum<'ctx>;

const NONAME: *const std::ffi::c_char = c"".as_ptr();

pub(crate) fn iv(v: BasicValueEnum<'_>) -> R<IntValue<'_>> {
    match v {
        BasicValueEnum::IntValue(i) => Ok(i),
        other => Err(CpuError::Llvm(format!("expected an integer value, got {other:?}"))),
    }
}

pub(crate) fn pv(v: BasicValueEnum<'_>) -> R<PointerValue<'_>> {
    match v {
        BasicValueEnum::PointerValue(p) => Ok(p),
        other => Err(CpuError::Llvm(format!("expected a pointer value, got {other:?}"))),
    }
}

/// Number of lanes of `v` (1 for a scalar).
pub(crate) fn lanes(v: V<'_>) -> u32 {
    match v {
        BasicValueEnum::VectorValue(x) => x.get_type().get_size(),
        _ => 1,
    }
}

/// Integer comparison predicates (signedness chosen by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ip {
    Eq,
    Ne,
    Slt,
    Sle,
    Sgt,
    Sge,
    Ult,
    Ule,
    Ugt,
    Uge,
}

/// Float comparison predicates: `O*` false on NaN, `U*` true on NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fp {
    Oeq,
    Une,
    Olt,
    Ole,
    Ogt,
    Oge,
    Ult,
    Ugt,
    Ord,
    Uno,
}

/// The lane emitter: context, module (for declarations) and the body builder.
pub(crate) struct Sc<'a, 'ctx> {
    pub cx: &'ctx Context,
    pub m: &'a Module<'ctx>,
    pub b: Builder<'ctx>,
}

fn unsup(what: String) -> CpuError {
    CpuError::Unsupported { kernel: String::new(), what }
}

impl<'a, 'ctx> Sc<'a, 'ctx> {
    // ---- raw construction ---------------------------------------------------------------------

    fn wrap(&self, r: LLVMValueRef) -> V<'ctx> {
        // SAFETY: `r` was just built in this context by the LLVM C API and is a first-class value.
        unsafe { V::new(r) }
    }
    fn wrap_ty(&self, r: LLVMTypeRef) -> T<'ctx> {
        // SAFETY: `r` is a first-class type of this context.
        unsafe { T::new(r) }
    }

    /// The element type of a vector type (the type itself for a scalar).
    pub fn scalar_ty(&self, t: T<'ctx>) -> T<'ctx> {
        match t {
            BasicTypeEnum::VectorType(v) => v.get_element_type(),
            other => other,
        }
    }
    /// `scalar` with `lanes` lanes (the scalar type itself for 1 lane).
    pub fn vty(&self, scalar: T<'ctx>, lanes: u32) -> T<'ctx> {
        if lanes <= 1 {
            return scalar;
        }
        // SAFETY: a vector of a first-class scalar type.
        self.wrap_ty(unsafe { llc::LLVMVectorType(scalar.as_type_ref(), lanes) })
    }
    /// `scalar` with as many lanes as `like` has.
    pub fn like(&self, scalar: T<'ctx>, like: V<'ctx>) -> T<'ctx> {
        self.vty(scalar, lanes(like))
    }

    /// A constant of scalar type `ty` with `lanes` lanes (float types take `f`, others `i`).
    fn cst(&self, ty: T<'ctx>, lanes: u32, i: u64, f: f64) -> V<'ctx> {
        let st = self.scalar_ty(ty);
        // SAFETY: constants of a matching scalar type; the vector is made of `lanes` copies.
        unsafe {
            let c = match st {
                BasicTypeEnum::FloatType(_) => llc::LLVMConstReal(st.as_type_ref(), f),
                BasicTypeEnum::IntType(_) => llc::LLVMConstInt(st.as_type_ref(), i, 0),
                _ => llc::LLVMConstNull(st.as_type_ref()),
            };
            if lanes <= 1 {
                return self.wrap(c);
            }
            let mut v = vec![c; lanes as usize];
            self.wrap(llc::LLVMConstVector(v.as_mut_ptr(), lanes))
        }
    }
    /// The float constant `x` shaped like `like` (a float scalar or vector).
    pub fn cf(&self, like: V<'ctx>, x: f64) -> V<'ctx> {
        self.cst(like.get_type(), lanes(like), 0, x)
    }
    /// The integer constant `x` (two's complement bits) shaped like `like`.
    pub fn ci(&self, like: V<'ctx>, x: u64) -> V<'ctx> {
        self.cst(like.get_type(), lanes(like), x, 0.0)
    }
    /// The constant `x` of scalar type `ty` with `lanes` lanes.
    pub fn ci_t(&self, ty: T<'ctx>, lanes: u32, x: u64) -> V<'ctx> {
        self.cst(ty, lanes, x, 0.0)
    }
    pub fn cf_t(&self, ty: T<'ctx>, lanes: u32, x: f64) -> V<'ctx> {
        self.cst(ty, lanes, 0, x)
    }
    /// `true` shaped like `like` (an `i1` of its lanes).
    pub fn all_true(&self, n: u32) -> V<'ctx> {
        self.ci_t(self.cx.bool_type().into(), n, 1)
    }

    /// `s` copied into `n` lanes (`s` itself when `n == 1` or `s` already has `n` lanes).
    pub fn splat(&self, s: V<'ctx>, n: u32) -> V<'ctx> {
        if n <= 1 || lanes(s) == n {
            return s;
        }
        let vt = self.vty(s.get_type(), n);
        // SAFETY: insertelement into poison, then a zero shuffle mask of `n` lanes.
        unsafe {
            let r = s.as_value_ref();
            if llc::LLVMIsConstant(r) != 0 {
                let mut v = vec![r; n as usize];
                return self.wrap(llc::LLVMConstVector(v.as_mut_ptr(), n));
            }
            let poison = llc::LLVMGetPoison(vt.as_type_ref());
            let zero = llc::LLVMConstInt(self.cx.i32_type().as_type_ref(), 0, 0);
            let ins = llc::LLVMBuildInsertElement(self.b.as_mut_ptr(), poison, r, zero, NONAME);
            let mask = self.ci_t(self.cx.i32_type().into(), n, 0).as_value_ref();
            let mask = if n == 1 { zero } else { mask };
            self.wrap(llc::LLVMBuildShuffleVector(self.b.as_mut_ptr(), ins, poison, mask, NONAME))
        }
    }

    /// `<a[mask[0]], ...>` from the lanes of `a` then `b`.
    pub fn shuffle(&self, a: V<'ctx>, b: V<'ctx>, mask: &[u32]) -> V<'ctx> {
        let i32t = self.cx.i32_type();
        // SAFETY: constant i32 indices below 2 * lanes(a).
        unsafe {
            let mut m: Vec<LLVMValueRef> =
                mask.iter().map(|&i| llc::LLVMConstInt(i32t.as_type_ref(), i as u64, 0)).collect();
            let mv = llc::LLVMConstVector(m.as_mut_ptr(), m.len() as u32);
            self.wrap(llc::LLVMBuildShuffleVector(
                self.b.as_mut_ptr(),
                a.as_value_ref(),
                b.as_value_ref(),
                mv,
                NONAME,
            ))
        }
    }
    /// Lane `i` of a vector.
    pub fn extract(&self, v: V<'ctx>, i: u32) -> V<'ctx> {
        if lanes(v) == 1 {
            return v;
        }
        let idx = self.cx.i32_type().const_int(i as u64, false);
        // SAFETY: a constant in-range index into a vector.
        self.wrap(unsafe {
            llc::LLVMBuildExtractElement(
                self.b.as_mut_ptr(),
                v.as_value_ref(),
                idx.as_value_ref(),
                NONAME,
            )
        })
    }
    /// `v` with lane `i` replaced by `x`.
    pub fn insert(&self, v: V<'ctx>, x: V<'ctx>, i: u32) -> V<'ctx> {
        let idx = self.cx.i32_type().const_int(i as u64, false);
        // SAFETY: `x` has `v`'s element type; the index is in range.
        self.wrap(unsafe {
            llc::LLVMBuildInsertElement(
                self.b.as_mut_ptr(),
                v.as_value_ref(),
                x.as_value_ref(),
                idx.as_value_ref(),
                NONAME,
            )
        })
    }
    /// `&p[idx]` for elements of type `elem` (pointer and index may be vectors).
    pub fn gep(&self, elem: T<'ctx>, p: V<'ctx>, idx: V<'ctx>) -> V<'ctx> {
        let mut i = [idx.as_value_ref()];
        // SAFETY: plain address arithmetic (not inbounds); `p` is a pointer (vector) and `idx`
        // an i64 (vector) of matching lanes.
        self.wrap(unsafe {
            llc::LLVMBuildGEP2(
                self.b.as_mut_ptr(),
                elem.as_type_ref(),
                p.as_value_ref(),
                i.as_mut_ptr(),
                1,
                NONAME,
            )
        })
    }

    /// Sets the alignment of a load (or store) instruction.
    pub fn set_align(&self, inst: V<'ctx>, bytes: u32) {
        // SAFETY: `inst` is a load or store built by this emitter.
        unsafe { llc::LLVMSetAlignment(inst.as_value_ref(), bytes) }
    }

    /// A poison value of type `t`.
    pub fn poison(&self, t: T<'ctx>) -> V<'ctx> {
        // SAFETY: any first-class type has a poison value.
        self.wrap(unsafe { llc::LLVMGetPoison(t.as_type_ref()) })
    }

    fn bin(&self, op: LLVMOpcode, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        // SAFETY: callers pass operands of one type that suits `op`.
        self.wrap(unsafe {
            llc::LLVMBuildBinOp(self.b.as_mut_ptr(), op, a.as_value_ref(), b.as_value_ref(), NONAME)
        })
    }
    pub fn add(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMAdd, a, b)
    }
    pub fn sub(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMSub, a, b)
    }
    pub fn mul(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMMul, a, b)
    }
    pub fn and(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMAnd, a, b)
    }
    pub fn or(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMOr, a, b)
    }
    pub fn xor(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMXor, a, b)
    }
    pub fn shl(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMShl, a, b)
    }
    pub fn lshr(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMLShr, a, b)
    }
    pub fn ashr(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMAShr, a, b)
    }
    pub fn fadd(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMFAdd, a, b)
    }
    pub fn fsub(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMFSub, a, b)
    }
    pub fn fmul(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMFMul, a, b)
    }
    pub fn fdiv(&self, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        self.bin(LLVMOpcode::LLVMFDiv, a, b)
    }
    pub fn fneg(&self, a: V<'ctx>) -> V<'ctx> {
        // SAFETY: a float operand.
        self.wrap(unsafe { llc::LLVMBuildFNeg(self.b.as_mut_ptr(), a.as_value_ref(), NONAME) })
    }
    pub fn not(&self, a: V<'ctx>) -> V<'ctx> {
        // SAFETY: an integer operand.
        self.wrap(unsafe { llc::LLVMBuildNot(self.b.as_mut_ptr(), a.as_value_ref(), NONAME) })
    }
    pub fn neg(&self, a: V<'ctx>) -> V<'ctx> {
        // SAFETY: an integer operand.
        self.wrap(unsafe { llc::LLVMBuildNeg(self.b.as_mut_ptr(), a.as_value_ref(), NONAME) })
    }
    /// `a * b + c` with one rounding (`llvm.fma`).
    pub fn vfma(&self, a: V<'ctx>, b: V<'ctx>, c: V<'ctx>) -> R<V<'ctx>> {
        self.intrinsic("llvm.fma", &[a.get_type()], &[a, b, c])
    }

    /// A conversion `op` of `v` to the scalar type `to` (with `v`'s lanes).
    pub fn conv(&self, op: LLVMOpcode, v: V<'ctx>, to: T<'ctx>) -> V<'ctx> {
        let t = self.like(self.scalar_ty(to), v);
        if t == v.get_type() {
            return v;
        }
        // SAFETY: callers pick an opcode valid between the two types.
        self.wrap(unsafe {
            llc::LLVMBuildCast(self.b.as_mut_ptr(), op, v.as_value_ref(), t.as_type_ref(), NONAME)
        })
    }
    pub fn bitcast(&self, v: V<'ctx>, to: T<'ctx>) -> V<'ctx> {
        self.conv(LLVMOpcode::LLVMBitCast, v, to)
    }
    fn f32t(&self) -> T<'ctx> {
        self.cx.f32_type().into()
    }
    fn f64t(&self) -> T<'ctx> {
        self.cx.f64_type().into()
    }
    fn i32t(&self) -> T<'ctx> {
        self.cx.i32_type().into()
    }
    fn i16t(&self) -> T<'ctx> {
        self.cx.i16_type().into()
    }

    pub fn icmp(&self, p: Ip, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        use LLVMIntPredicate::*;
        let p = match p {
            Ip::Eq => LLVMIntEQ,
            Ip::Ne => LLVMIntNE,
            Ip::Slt => LLVMIntSLT,
            Ip::Sle => LLVMIntSLE,
            Ip::Sgt => LLVMIntSGT,
            Ip::Sge => LLVMIntSGE,
            Ip::Ult => LLVMIntULT,
            Ip::Ule => LLVMIntULE,
            Ip::Ugt => LLVMIntUGT,
            Ip::Uge => LLVMIntUGE,
        };
        // SAFETY: integer (or pointer) operands of one type.
        self.wrap(unsafe {
            llc::LLVMBuildICmp(self.b.as_mut_ptr(), p, a.as_value_ref(), b.as_value_ref(), NONAME)
        })
    }
    pub fn fcmp(&self, p: Fp, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        use LLVMRealPredicate::*;
        let p = match p {
            Fp::Oeq => LLVMRealOEQ,
            Fp::Une => LLVMRealUNE,
            Fp::Olt => LLVMRealOLT,
            Fp::Ole => LLVMRealOLE,
            Fp::Ogt => LLVMRealOGT,
            Fp::Oge => LLVMRealOGE,
            Fp::Ult => LLVMRealULT,
            Fp::Ugt => LLVMRealUGT,
            Fp::Ord => LLVMRealORD,
            Fp::Uno => LLVMRealUNO,
        };
        // SAFETY: float operands of one type.
        self.wrap(unsafe {
            llc::LLVMBuildFCmp(self.b.as_mut_ptr(), p, a.as_value_ref(), b.as_value_ref(), NONAME)
        })
    }
    /// `c ? a : b`; `c` is an `i1` scalar or has the lanes of `a`.
    pub fn sel(&self, c: V<'ctx>, a: V<'ctx>, b: V<'ctx>) -> V<'ctx> {
        // SAFETY: `a` and `b` share a type; `c` is i1 or a vector of i1 of their lanes.
        self.wrap(unsafe {
            llc::LLVMBuildSelect(
                self.b.as_mut_ptr(),
                c.as_value_ref(),
                a.as_value_ref(),
                b.as_value_ref(),
                NONAME,
            )
        })
    }

    pub fn intrinsic(&self, name: &str, overloads: &[T<'ctx>], args: &[V<'ctx>]) -> R<V<'ctx>> {
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(self.m, overloads))
            .ok_or_else(|| CpuError::Llvm(format!("intrinsic {name} not found")))?;
        let args: Vec<BasicMetadataValueEnum<'ctx>> = args.iter().map(|&a| a.into()).collect();
        match self.b.build_call(f, &args, "")?.try_as_basic_value() {
            ValueKind::Basic(v) => Ok(v),
            ValueKind::Instruction(_) => Err(CpuError::Llvm(format!("{name} returns nothing"))),
        }
    }
    /// Calls an intrinsic that returns nothing.
    pub fn intrinsic_void(&self, name: &str, overloads: &[T<'ctx>], args: &[V<'ctx>]) -> R<()> {
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(self.m, overloads))
            .ok_or_else(|| CpuError::Llvm(format!("intrinsic {name} not found")))?;
        let args: Vec<BasicMetadataValueEnum<'ctx>> = args.iter().map(|&a| a.into()).collect();
        self.b.build_call(f, &args, "")?;
        Ok(())
    }
    /// `llvm.<name>` overloaded on `x`'s type, with one operand.
    pub fn un_intr(&self, name: &str, x: V<'ctx>) -> R<V<'ctx>> {
        self.intrinsic(name, &[x.get_type()], &[x])
    }
    /// `llvm.<name>` overloaded on `x`'s type, with two operands.
    pub fn bin_intr(&self, name: &str, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        self.intrinsic(name, &[x.get_type()], &[x, y])
    }

    /// `fast`, or what `slow` computes (in its own block) when `cond` holds.
    pub fn select_slow(
        &self,
        cond: IntValue<'ctx>,
        fast: V<'ctx>,
        slow: impl FnOnce(&Self) -> R<V<'ctx>>,
    ) -> R<V<'ctx>> {
        let cur = self.b.get_insert_block().ok_or_else(|| CpuError::Llvm("no block".into()))?;
        let func = cur.get_parent().ok_or_else(|| CpuError::Llvm("no function".into()))?;
        let sb = self.cx.append_basic_block(func, "slow");
        let mb = self.cx.append_basic_block(func, "slow.end");
        self.b.build_conditional_branch(cond, sb, mb)?;
        self.b.position_at_end(sb);
        let y = slow(self)?;
        let send = self.b.get_insert_block().ok_or_else(|| CpuError::Llvm("no block".into()))?;
        self.b.build_unconditional_branch(mb)?;
        self.b.position_at_end(mb);
        let phi = self.b.build_phi(fast.get_type(), "slow.r")?;
        phi.add_incoming(&[(&fast, cur), (&y, send)]);
        Ok(phi.as_basic_value())
    }

    /// Applies `f` to every lane of `v` (scalar code, for operations without a vector form).
    pub fn map_lanes(&self, v: V<'ctx>, f: impl Fn(V<'ctx>) -> R<V<'ctx>>) -> R<V<'ctx>> {
        let n = lanes(v);
        if n == 1 {
            return f(v);
        }
        let mut out: Option<V<'ctx>> = None;
        for i in 0..n {
            let r = f(self.extract(v, i))?;
            let acc = match out {
                Some(o) => o,
                None => self.poison(self.vty(r.get_type(), n)),
            };
            out = Some(self.insert(acc, r, i));
        }
        out.ok_or_else(|| CpuError::Llvm("empty vector".into()))
    }

    // ---- types ------------------------------------------------------------------------------

    /// Register type of an element: `i1` for bool.
    pub fn reg_ty(&self, e: Elem) -> BasicTypeEnum<'ctx> {
        match e {
            Elem::Ptr(_) => self.cx.ptr_type(AddressSpace::default()).into(),
            Elem::Scalar(d) => match d {
                DType::Bool => self.cx.bool_type().into(),
                DType::I8 | DType::U8 => self.cx.i8_type().into(),
                DType::I16 | DType::U16 => self.cx.i16_type().into(),
                DType::I32 | DType::U32 => self.cx.i32_type().into(),
                DType::I64 | DType::U64 => self.cx.i64_type().into(),
                DType::F16 => self.cx.f16_type().into(),
                DType::BF16 => self.cx.bf16_type().into(),
                DType::F32 => self.cx.f32_type().into(),
                DType::F64 => self.cx.f64_type().into(),
            },
        }
    }
    /// Memory type of an element: bool is one byte.
    pub fn mem_ty(&self, e: Elem) -> BasicTypeEnum<'ctx> {
        if e == Elem::Scalar(DType::Bool) {
            self.cx.i8_type().into()
        } else {
            self.reg_ty(e)
        }
    }
    /// The float type a float dtype computes in (f32 for f16/bf16/f32).
    fn cty(&self, dt: DType) -> T<'ctx> {
        if dt == DType::F64 {
            self.f64t()
        } else {
            self.f32t()
        }
    }

    pub fn constant(&self, dt: DType, v: ConstValue) -> BasicValueEnum<'ctx> {
        let t = self.reg_ty(Elem::Scalar(dt));
        match (v, t) {
            (ConstValue::Bool(b), BasicTypeEnum::IntType(it)) => {
                it.const_int(b as u64, false).into()
            }
            (ConstValue::Int(i), BasicTypeEnum::IntType(it)) => it.const_int(i as u64, true).into(),
            (ConstValue::Float(x), BasicTypeEnum::FloatType(ft)) => ft.const_float(x).into(),
            (ConstValue::Int(i), BasicTypeEnum::FloatType(ft)) => ft.const_float(i as f64).into(),
            (ConstValue::Float(x), BasicTypeEnum::IntType(it)) => {
                it.const_int(x as i64 as u64, true).into()
            }
            (ConstValue::Bool(b), BasicTypeEnum::FloatType(ft)) => {
                ft.const_float(b as u8 as f64).into()
            }
            (_, t) => t.const_zero(),
        }
    }

    /// Calls the C library's `double name(double)` on every lane of an f64 value.
    fn libm(&self, name: &str, x: V<'ctx>) -> R<V<'ctx>> {
        let f64t = self.cx.f64_type();
        let f = self.m.get_function(name).unwrap_or_else(|| {
            self.m.add_function(name, f64t.fn_type(&[f64t.into()], false), None)
        });
        self.map_lanes(x, |l| match self.b.build_call(f, &[l.into()], name)?.try_as_basic_value() {
            ValueKind::Basic(v) => Ok(v),
            ValueKind::Instruction(_) => Err(CpuError::Llvm(format!("{name} returns nothing"))),
        })
    }

    // ---- conversions ------------------------------------------------------------------------

    fn bf16_to_f32(&self, v: V<'ctx>) -> V<'ctx> {
        let bits = self.bitcast(v, self.i16t());
        let w = self.conv(LLVMOpcode::LLVMZExt, bits, self.i32t());
        let s = self.shl(w, self.ci(w, 16));
        self.bitcast(s, self.f32t())
    }

    fn f32_to_bf16(&self, v: V<'ctx>) -> V<'ctx> {
        let bits = self.bitcast(v, self.i32t());
        let hi = self.lshr(bits, self.ci(bits, 16));
        let lsb = self.and(hi, self.ci(bits, 1));
        let bias = self.add(lsb, self.ci(bits, 0x7fff));
        let rounded = self.add(bits, bias);
        let r = self.lshr(rounded, self.ci(bits, 16));
        let quiet = self.or(hi, self.ci(bits, 0x40));
        let isnan = self.fcmp(Fp::Uno, v, v);
        let r = self.sel(isnan, quiet, r);
        let r16 = self.conv(LLVMOpcode::LLVMTrunc, r, self.i16t());
        self.bitcast(r16, self.cx.bf16_type().into())
    }

    /// A float of dtype `dt` widened (exactly) to its compute type.
    pub fn to_c(&self, dt: DType, v: V<'ctx>) -> R<V<'ctx>> {
        Ok(match dt {
            DType::F16 => self.conv(LLVMOpcode::LLVMFPExt, v, self.f32t()),
            DType::BF16 => self.bf16_to_f32(v),
            _ => v,
        })
    }
    /// A float of dtype `dt` widened exactly to f64.
    fn to_f64(&self, dt: DType, v: V<'ctx>) -> R<V<'ctx>> {
        let c = self.to_c(dt, v)?;
        Ok(self.conv(LLVMOpcode::LLVMFPExt, c, self.f64t()))
    }
    /// Rounds an f32 or f64 value to the float dtype `dt` (nearest, ties to even).
    pub fn round_to(&self, dt: DType, f: V<'ctx>) -> R<V<'ctx>> {
        let wide = self.scalar_ty(f.get_type()) == self.f64t();
        let trunc = LLVMOpcode::LLVMFPTrunc;
        Ok(match dt {
            DType::F64 => self.conv(LLVMOpcode::LLVMFPExt, f, self.f64t()),
            DType::F32 => self.conv(trunc, f, self.f32t()),
            DType::F16 => self.conv(trunc, f, self.cx.f16_type().into()),
            DType::BF16 => {
                let f = if wide { self.conv(trunc, f, self.f32t()) } else { f };
                self.f32_to_bf16(f)
            }
            _ => return Err(unsup(format!("float result of dtype {dt}"))),
        })
    }

    /// An integer of dtype `dt` extended to i64 by its signedness (bool zero-extends).
    pub fn to_i64(&self, dt: DType, x: V<'ctx>) -> R<V<'ctx>> {
        let i64t: T<'ctx> = self.cx.i64_type().into();
        let op = if dt.is_signed_int() { LLVMOpcode::LLVMSExt } else { LLVMOpcode::LLVMZExt };
        Ok(self.conv(op, x, i64t))
    }

    // ---- element-wise ops -------------------------------------------------------------------

    pub fn unary(&self, op: UnaryOp, dt: DType, x: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_bool() {
            return match op {
                UnaryOp::Not => Ok(self.not(x)),
                _ => Err(unsup(format!("{} on bool", op.name()))),
            };
        }
        if dt.is_int() {
            return Ok(match op {
                UnaryOp::Neg => self.neg(x),
                UnaryOp::Not => self.not(x),
                UnaryOp::Abs if dt.is_signed_int() => {
                    let isneg = self.icmp(Ip::Slt, x, self.ci(x, 0));
                    self.sel(isneg, self.neg(x), x)
                }
                UnaryOp::Abs => x,
                _ => return Err(unsup(format!("{} on {dt}", op.name()))),
            });
        }
        let c = self.to_c(dt, x)?;
        if dt == DType::F64 {
            let via_libm = |name: &str| self.libm(name, c);
            let one = self.cf(c, 1.0);
            return match op {
                UnaryOp::Not => Err(unsup(format!("not on {dt}"))),
                UnaryOp::Neg => Ok(self.fneg(c)),
                UnaryOp::Abs => self.un_intr("llvm.fabs", c),
                UnaryOp::Sqrt => self.un_intr("llvm.sqrt", c),
                UnaryOp::Floor => self.un_intr("llvm.floor", c),
                UnaryOp::Ceil => self.un_intr("llvm.ceil", c),
                UnaryOp::Exp => via_libm("exp"),
                UnaryOp::Exp2 => via_libm("exp2"),
                UnaryOp::Log => via_libm("log"),
                UnaryOp::Log2 => via_libm("log2"),
                UnaryOp::Sin => via_libm("sin"),
                UnaryOp::Cos => via_libm("cos"),
                UnaryOp::Tanh => via_libm("tanh"),
                UnaryOp::Erf => via_libm("erf"),
                UnaryOp::Rsqrt => Ok(self.fdiv(one, self.un_intr("llvm.sqrt", c)?)),
                UnaryOp::Sigmoid => {
                    let e = self.libm("exp", self.fneg(c))?;
                    Ok(self.fdiv(one, self.fadd(one, e)))
                }
            };
        }
        // f32, f16 and bf16 compute in f32 and round once to the dtype.
        let r = match op {
            UnaryOp::Not => return Err(unsup(format!("not on {dt}"))),
            UnaryOp::Neg => self.fneg(c),
            UnaryOp::Abs => self.un_intr("llvm.fabs", c)?,
            UnaryOp::Sqrt => self.un_intr("llvm.sqrt", c)?,
            UnaryOp::Floor => self.un_intr("llvm.floor", c)?,
            UnaryOp::Ceil => self.un_intr("llvm.ceil", c)?,
            UnaryOp::Exp => vmath::exp(self, c)?,
            UnaryOp::Exp2 => vmath::exp2(self, c)?,
            UnaryOp::Log => vmath::log(self, c)?,
            UnaryOp::Log2 => vmath::log2(self, c)?,
            UnaryOp::Tanh => vmath::tanh(self, c)?,
            UnaryOp::Erf => vmath::erf(self, c)?,
            UnaryOp::Sigmoid => vmath::sigmoid(self, c)?,
            UnaryOp::Sin | UnaryOp::Cos => {
                let name = if op == UnaryOp::Sin { "sin" } else { "cos" };
                let d = self.to_f64(dt, x)?;
                // Inline below 2^20; lanes beyond (and NaN) take the C library's exact
                // reduction, on a branch that no ordinary input reaches.
                let a = self.un_intr("llvm.fabs", d)?;
                let big = self.fcmp(Fp::Ugt, a, self.cf(a, 1048576.0));
                let any = if lanes(big) == 1 {
                    big
                } else {
                    self.intrinsic("llvm.vector.reduce.or", &[big.get_type()], &[big])?
                };
                let fast = vmath::sin_cos_f64(self, d, op == UnaryOp::Cos)?;
                self.select_slow(iv(any)?, fast, |s| s.libm(name, d))?
            }
            UnaryOp::Rsqrt => {
                // In f64, like the interpreter: 1/sqrt rounded once to f32 is then exact.
                let d = self.to_f64(dt, x)?;
                let s = self.un_intr("llvm.sqrt", d)?;
                self.fdiv(self.cf(d, 1.0), s)
            }
        };
        self.round_to(dt, r)
    }

    /// `a op b`; the second result is set for integer `div`/`rem` and is true in a lane that
    /// divides by zero or computes `MIN / -1` (that lane's value is then meaningless).
    pub fn binary(
        &self,
        op: BinaryOp,
        dt: DType,
        a: V<'ctx>,
        bv: V<'ctx>,
    ) -> R<(V<'ctx>, Option<V<'ctx>>)> {
        if dt.is_bool() {
            let r = match op {
                BinaryOp::And | BinaryOp::Min => self.and(a, bv),
                BinaryOp::Or | BinaryOp::Max => self.or(a, bv),
                BinaryOp::Xor => self.xor(a, bv),
                _ => return Err(unsup(format!("{} on bool", op.name()))),
            };
            return Ok((r, None));
        }
        if dt.is_int() {
            let (x, y) = (a, bv);
            let signed = dt.is_signed_int();
            let bits = dt.bits() as u64;
            let r = match op {
                BinaryOp::Add => self.add(x, y),
                BinaryOp::Sub => self.sub(x, y),
                BinaryOp::Mul => self.mul(x, y),
                BinaryOp::And => self.and(x, y),
                BinaryOp::Or => self.or(x, y),
                BinaryOp::Xor => self.xor(x, y),
                BinaryOp::Div | BinaryOp::Rem => {
                    let mut bad = self.icmp(Ip::Eq, y, self.ci(y, 0));
                    if signed {
                        let is_min = self.icmp(Ip::Eq, x, self.ci(x, 1u64 << (bits - 1)));
                        let m1 = self.icmp(Ip::Eq, y, self.ci(y, u64::MAX));
                        bad = self.or(bad, self.and(is_min, m1));
                    }
                    let safe = self.sel(bad, self.ci(y, 1), y);
                    let opc = match (op, signed) {
                        (BinaryOp::Div, true) => LLVMOpcode::LLVMSDiv,
                        (BinaryOp::Div, false) => LLVMOpcode::LLVMUDiv,
                        (_, true) => LLVMOpcode::LLVMSRem,
                        (_, false) => LLVMOpcode::LLVMURem,
                    };
                    return Ok((self.bin(opc, x, safe), Some(bad)));
                }
                BinaryOp::Shl | BinaryOp::Shr => {
                    let inr = self.icmp(Ip::Ult, y, self.ci(y, bits));
                    let amt = self.sel(inr, y, self.ci(y, 0));
                    let (shifted, fill) = if op == BinaryOp::Shl {
                        (self.shl(x, amt), self.ci(x, 0))
                    } else if signed {
                        (self.ashr(x, amt), self.ashr(x, self.ci(x, bits - 1)))
                    } else {
                        (self.lshr(x, amt), self.ci(x, 0))
                    };
                    self.sel(inr, shifted, fill)
                }
                BinaryOp::Min | BinaryOp::Max => {
                    let pred = match (op, signed) {
                        (BinaryOp::Min, true) => Ip::Sle,
                        (BinaryOp::Min, false) => Ip::Ule,
                        (_, true) => Ip::Sge,
                        (_, false) => Ip::Uge,
                    };
                    self.sel(self.icmp(pred, x, y), x, y)
                }
            };
            return Ok((r, None));
        }
        let (x, y) = (self.to_c(dt, a)?, self.to_c(dt, bv)?);
        let r = match op {
            BinaryOp::Add => self.fadd(x, y),
            BinaryOp::Sub => self.fsub(x, y),
            BinaryOp::Mul => self.fmul(x, y),
            BinaryOp::Div => self.fdiv(x, y),
            BinaryOp::Rem => self.bin(LLVMOpcode::LLVMFRem, x, y),
            BinaryOp::Min => self.bin_intr("llvm.minimum", x, y)?,
            BinaryOp::Max => self.bin_intr("llvm.maximum", x, y)?,
            _ => return Err(unsup(format!("{} on {dt}", op.name()))),
        };
        Ok((self.round_to(dt, r)?, None))
    }

    pub fn cmp(&self, pred: CmpPred, dt: DType, a: V<'ctx>, bv: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_float() {
            let p = match pred {
                CmpPred::Eq => Fp::Oeq,
                CmpPred::Ne => Fp::Une,
                CmpPred::Lt => Fp::Olt,
                CmpPred::Le => Fp::Ole,
                CmpPred::Gt => Fp::Ogt,
                CmpPred::Ge => Fp::Oge,
            };
            let (x, y) = (self.to_c(dt, a)?, self.to_c(dt, bv)?);
            return Ok(self.fcmp(p, x, y));
        }
        let signed = dt.is_signed_int();
        let p = match (pred, signed) {
            (CmpPred::Eq, _) => Ip::Eq,
            (CmpPred::Ne, _) => Ip::Ne,
            (CmpPred::Lt, true) => Ip::Slt,
            (CmpPred::Le, true) => Ip::Sle,
            (CmpPred::Gt, true) => Ip::Sgt,
            (CmpPred::Ge, true) => Ip::Sge,
            (CmpPred::Lt, false) => Ip::Ult,
            (CmpPred::Le, false) => Ip::Ule,
            (CmpPred::Gt, false) => Ip::Ugt,
            (CmpPred::Ge, false) => Ip::Uge,
        };
        Ok(self.icmp(p, a, bv))
    }

    /// `a * b + c` rounded once (f32/f64); f16/bf16 compute in f64 and round.
    pub fn fma(&self, dt: DType, a: V<'ctx>, bv: V<'ctx>, c: V<'ctx>) -> R<V<'ctx>> {
        if !dt.is_float() {
            return Err(unsup(format!("fma on {dt}")));
        }
        let (x, y, z) = if matches!(dt, DType::F32 | DType::F64) {
            (a, bv, c)
        } else {
            (self.to_f64(dt, a)?, self.to_f64(dt, bv)?, self.to_f64(dt, c)?)
        };
        let r = self.vfma(x, y, z)?;
        self.round_to(dt, r)
    }

    /// Converts `v` from dtype `from` to `to` with [`tk_ir::eval::cast`]'s rules.
    pub fn cast(&self, from: DType, to: DType, v: V<'ctx>) -> R<V<'ctx>> {
        if from == to {
            return Ok(v);
        }
        let to_ty = self.reg_ty(Elem::Scalar(to));
        if to.is_bool() {
            return Ok(if from.is_float() {
                let c = self.to_c(from, v)?;
                self.fcmp(Fp::Une, c, self.cf(c, 0.0))
            } else {
                self.icmp(Ip::Ne, v, self.ci(v, 0))
            });
        }
        if from.is_float() {
            let c = self.to_c(from, v)?;
            if to.is_float() {
                return self.round_to(to, c);
            }
            let name = if to.is_signed_int() { "llvm.fptosi.sat" } else { "llvm.fptoui.sat" };
            return self.intrinsic(name, &[self.like(to_ty, c), c.get_type()], &[c]);
        }
        // From an integer or bool.
        let signed = from.is_signed_int();
        if to.is_float() {
            let target = if to == DType::F64 { self.f64t() } else { self.f32t() };
            let op = if signed { LLVMOpcode::LLVMSIToFP } else { LLVMOpcode::LLVMUIToFP };
            let f = self.conv(op, v, target);
            return self.round_to(to, f);
        }
        let (fw, tw) = (if from.is_bool() { 1 } else { from.bits() }, to.bits());
        Ok(if tw < fw {
            self.conv(LLVMOpcode::LLVMTrunc, v, to_ty)
        } else if tw > fw {
            let op = if signed { LLVMOpcode::LLVMSExt } else { LLVMOpcode::LLVMZExt };
            self.conv(op, v, to_ty)
        } else {
            v
        })
    }

    /// Accumulator type of a reduction over dtype `dt`.
    pub fn acc_ty(&self, dt: DType) -> BasicTypeEnum<'ctx> {
        if dt.is_float() {
            self.cty(dt)
        } else {
            self.reg_ty(Elem::Scalar(dt))
        }
    }
    pub fn to_acc(&self, dt: DType, v: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_float() {
            self.to_c(dt, v)
        } else {
            Ok(v)
        }
    }
    pub fn round_acc(&self, dt: DType, v: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_float() {
            self.round_to(dt, v)
        } else {
            Ok(v)
        }
    }
    /// The identity of `sum`/`max`/`min` over `dt`, in the accumulator type with `n` lanes.
    pub fn acc_identity(&self, kind: ReduceKind, dt: DType, n: u32) -> R<V<'ctx>> {
        let t = self.acc_ty(dt);
        if dt.is_float() {
            let x = match kind {
                // -0.0 keeps a sum of negative zeros negative.
                ReduceKind::Sum => -0.0,
                ReduceKind::Max => f64::NEG_INFINITY,
                ReduceKind::Min => f64::INFINITY,
                _ => return Err(unsup(format!("{} as an accumulation", kind.name()))),
            };
            return Ok(self.cf_t(t, n, x));
        }
        let bits = if dt.is_bool() { 1 } else { dt.bits() };
        let ones = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let x = match (kind, dt.is_signed_int()) {
            (ReduceKind::Sum, _) => 0,
            (ReduceKind::Max, true) => 1u64 << (bits - 1),
            (ReduceKind::Max, false) => 0,
            (ReduceKind::Min, true) => ones >> 1,
            (ReduceKind::Min, false) => ones,
            _ => return Err(unsup(format!("{} as an accumulation", kind.name()))),
        };
        Ok(self.ci_t(t, n, x))
    }
    /// One step of `sum`/`max`/`min` in the accumulator type.
    pub fn accumulate(&self, kind: ReduceKind, dt: DType, acc: V<'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
        let op = match kind {
            ReduceKind::Sum => BinaryOp::Add,
            ReduceKind::Max => BinaryOp::Max,
            ReduceKind::Min => BinaryOp::Min,
            _ => return Err(unsup(format!("{} as an accumulation", kind.name()))),
        };
        if dt.is_float() {
            return Ok(match op {
                BinaryOp::Add => self.fadd(acc, x),
                BinaryOp::Max => self.bin_intr("llvm.maximum", acc, x)?,
                _ => self.bin_intr("llvm.minimum", acc, x)?,
            });
        }
        Ok(self.binary(op, dt, acc, x)?.0)
    }

    /// `x > y` with NaN above every number (and `-0 == +0`): argmax, top-k and sort order.
    pub fn gt_nan_high(&self, dt: DType, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_float() {
            let (x, y) = (self.to_c(dt, x)?, self.to_c(dt, y)?);
            let y_num = self.fcmp(Fp::Ord, y, y);
            return Ok(self.and(y_num, self.fcmp(Fp::Ugt, x, y)));
        }
        let p = if dt.is_signed_int() { Ip::Sgt } else { Ip::Ugt };
        Ok(self.icmp(p, x, y))
    }

    /// `x < y` with NaN below every number: argmin order.
    pub fn lt_nan_low(&self, dt: DType, x: V<'ctx>, y: V<'ctx>) -> R<V<'ctx>> {
        if dt.is_float() {
            let (x, y) = (self.to_c(dt, x)?, self.to_c(dt, y)?);
            let y_num = self.fcmp(Fp::Ord, y, y);
            return Ok(self.and(y_num, self.fcmp(Fp::Ult, x, y)));
        }
        let p = if dt.is_signed_int() { Ip::Slt } else { Ip::Ult };
        Ok(self.icmp(p, x, y))
    }
}
