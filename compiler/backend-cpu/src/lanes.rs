//! Scalar semantics in LLVM IR: one function per kind of element-wise op, each emitting the exact
//! tk rule of [`tk_ir::eval`] for one lane (the block lowering calls them inside its loops).
//!
//! f16 and bf16 compute in f32 (exact for `+ - * / sqrt`: f32 has more than twice their
//! precision plus two bits) and round back after every op; transcendentals compute in f64 through
//! the C library and round once. bf16 conversions are emitted inline (round to nearest even,
//! NaN stays NaN) because the system libgcc may lack `__truncsfbf2`.

use crate::codegen::R;
use crate::CpuError;
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::Module;
use inkwell::types::{BasicTypeEnum, FloatType};
use inkwell::values::ValueKind;
use inkwell::values::{BasicMetadataValueEnum, BasicValueEnum, FloatValue, IntValue, PointerValue};
use inkwell::{AddressSpace, FloatPredicate, IntPredicate};
use tk_ir::{BinaryOp, CmpPred, ConstValue, DType, Elem, ReduceKind, UnaryOp};

pub(crate) fn iv(v: BasicValueEnum<'_>) -> R<IntValue<'_>> {
    match v {
        BasicValueEnum::IntValue(i) => Ok(i),
        other => Err(CpuError::Llvm(format!("expected an integer value, got {other:?}"))),
    }
}

pub(crate) fn fv(v: BasicValueEnum<'_>) -> R<FloatValue<'_>> {
    match v {
        BasicValueEnum::FloatValue(f) => Ok(f),
        other => Err(CpuError::Llvm(format!("expected a float value, got {other:?}"))),
    }
}

pub(crate) fn pv(v: BasicValueEnum<'_>) -> R<PointerValue<'_>> {
    match v {
        BasicValueEnum::PointerValue(p) => Ok(p),
        other => Err(CpuError::Llvm(format!("expected a pointer value, got {other:?}"))),
    }
}

/// The scalar emitter: context, module (for declarations) and the body builder.
pub(crate) struct Sc<'a, 'ctx> {
    pub cx: &'ctx Context,
    pub m: &'a Module<'ctx>,
    pub b: Builder<'ctx>,
}

fn unsup(what: String) -> CpuError {
    CpuError::Unsupported { kernel: String::new(), what }
}

impl<'a, 'ctx> Sc<'a, 'ctx> {
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
    fn cty(&self, dt: DType) -> FloatType<'ctx> {
        if dt == DType::F64 {
            self.cx.f64_type()
        } else {
            self.cx.f32_type()
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

    pub fn intrinsic(
        &self,
        name: &str,
        overloads: &[BasicTypeEnum<'ctx>],
        args: &[BasicValueEnum<'ctx>],
    ) -> R<BasicValueEnum<'ctx>> {
        let f = Intrinsic::find(name)
            .and_then(|i| i.get_declaration(self.m, overloads))
            .ok_or_else(|| CpuError::Llvm(format!("intrinsic {name} not found")))?;
        let args: Vec<BasicMetadataValueEnum<'ctx>> = args.iter().map(|&a| a.into()).collect();
        match self.b.build_call(f, &args, name)?.try_as_basic_value() {
            ValueKind::Basic(v) => Ok(v),
            ValueKind::Instruction(_) => Err(CpuError::Llvm(format!("{name} returns nothing"))),
        }
    }

    /// Calls the C library's `double name(double)`.
    fn libm(&self, name: &str, x: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let f64t = self.cx.f64_type();
        let f = self.m.get_function(name).unwrap_or_else(|| {
            self.m.add_function(name, f64t.fn_type(&[f64t.into()], false), None)
        });
        match self.b.build_call(f, &[x.into()], name)?.try_as_basic_value() {
            ValueKind::Basic(v) => fv(v),
            ValueKind::Instruction(_) => Err(CpuError::Llvm(format!("{name} returns nothing"))),
        }
    }

    fn bf16_to_f32(&self, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let bits = iv(self.b.build_bit_cast(v, self.cx.i16_type(), "bf")?)?;
        let w = self.b.build_int_z_extend(bits, self.cx.i32_type(), "bfw")?;
        let s = self.b.build_left_shift(w, self.cx.i32_type().const_int(16, false), "bfs")?;
        fv(self.b.build_bit_cast(s, self.cx.f32_type(), "bf32")?)
    }

    fn f32_to_bf16(&self, v: FloatValue<'ctx>) -> R<FloatValue<'ctx>> {
        let i32t = self.cx.i32_type();
        let c = |x: u64| i32t.const_int(x, false);
        let bits = iv(self.b.build_bit_cast(v, i32t, "fb")?)?;
        let hi = self.b.build_right_shift(bits, c(16), false, "hi")?;
        let lsb = self.b.build_and(hi, c(1), "lsb")?;
        let bias = self.b.build_int_add(lsb, c(0x7fff), "bias")?;
        let rounded = self.b.build_int_add(bits, bias, "rnd")?;
        let r = self.b.build_right_shift(rounded, c(16), false, "r")?;
        let quiet = self.b.build_or(hi, c(0x40), "qnan")?;
        let isnan = self.b.build_float_compare(FloatPredicate::UNO, v, v, "nan")?;
        let r = iv(self.b.build_select(isnan, quiet, r, "r")?)?;
        let r16 = self.b.build_int_truncate(r, self.cx.i16_type(), "r16")?;
        fv(self.b.build_bit_cast(r16, self.cx.bf16_type(), "bf16")?)
    }

    /// A float of dtype `dt` widened (exactly) to its compute type.
    pub fn to_c(&self, dt: DType, v: BasicValueEnum<'ctx>) -> R<FloatValue<'ctx>> {
        let f = fv(v)?;
        match dt {
            DType::F16 => Ok(self.b.build_float_ext(f, self.cx.f32_type(), "h2f")?),
            DType::BF16 => self.bf16_to_f32(f),
            _ => Ok(f),
        }
    }
    /// A float of dtype `dt` widened exactly to f64.
    fn to_f64(&self, dt: DType, v: BasicValueEnum<'ctx>) -> R<FloatValue<'ctx>> {
        let c = self.to_c(dt, v)?;
        if dt == DType::F64 {
            Ok(c)
        } else {
            Ok(self.b.build_float_ext(c, self.cx.f64_type(), "f2d")?)
        }
    }
    /// Rounds an f32 or f64 value to the float dtype `dt` (nearest, ties to even).
    pub fn round_to(&self, dt: DType, f: FloatValue<'ctx>) -> R<BasicValueEnum<'ctx>> {
        let wide = f.get_type() == self.cx.f64_type();
        Ok(match dt {
            DType::F64 => {
                if wide {
                    f.into()
                } else {
                    self.b.build_float_ext(f, self.cx.f64_type(), "f2d")?.into()
                }
            }
            DType::F32 => {
                if wide {
                    self.b.build_float_trunc(f, self.cx.f32_type(), "d2f")?.into()
                } else {
                    f.into()
                }
            }
            DType::F16 => self.b.build_float_trunc(f, self.cx.f16_type(), "f2h")?.into(),
            DType::BF16 => {
                let f =
                    if wide { self.b.build_float_trunc(f, self.cx.f32_type(), "d2f")? } else { f };
                self.f32_to_bf16(f)?.into()
            }
            _ => return Err(unsup(format!("float result of dtype {dt}"))),
        })
    }

    /// An integer of dtype `dt` extended to i64 by its signedness (bool zero-extends).
    pub fn to_i64(&self, dt: DType, x: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let i64t = self.cx.i64_type();
        if x.get_type().get_bit_width() == 64 {
            Ok(x)
        } else if dt.is_signed_int() {
            Ok(self.b.build_int_s_extend(x, i64t, "sx")?)
        } else {
            Ok(self.b.build_int_z_extend(x, i64t, "zx")?)
        }
    }

    pub fn unary(
        &self,
        op: UnaryOp,
        dt: DType,
        x: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let b = &self.b;
        if dt.is_bool() {
            return match op {
                UnaryOp::Not => Ok(b.build_not(iv(x)?, "not")?.into()),
                _ => Err(unsup(format!("{} on bool", op.name()))),
            };
        }
        if dt.is_int() {
            let x = iv(x)?;
            return Ok(match op {
                UnaryOp::Neg => b.build_int_neg(x, "neg")?.into(),
                UnaryOp::Not => b.build_not(x, "not")?.into(),
                UnaryOp::Abs if dt.is_signed_int() => {
                    let neg = b.build_int_compare(
                        IntPredicate::SLT,
                        x,
                        x.get_type().const_zero(),
                        "isneg",
                    )?;
                    let n = b.build_int_neg(x, "neg")?;
                    b.build_select(neg, n, x, "abs")?
                }
                UnaryOp::Abs => x.into(),
                _ => return Err(unsup(format!("{} on {dt}", op.name()))),
            });
        }
        let c = self.to_c(dt, x)?;
        let ct: BasicTypeEnum<'ctx> = c.get_type().into();
        let via_libm = |name: &str| -> R<BasicValueEnum<'ctx>> {
            let r = self.libm(name, self.to_f64(dt, x)?)?;
            self.round_to(dt, r)
        };
        let one64 = self.cx.f64_type().const_float(1.0);
        match op {
            UnaryOp::Not => Err(unsup(format!("not on {dt}"))),
            UnaryOp::Neg => self.round_to(dt, b.build_float_neg(c, "neg")?),
            UnaryOp::Abs => {
                self.round_to(dt, fv(self.intrinsic("llvm.fabs", &[ct], &[c.into()])?)?)
            }
            UnaryOp::Sqrt => {
                self.round_to(dt, fv(self.intrinsic("llvm.sqrt", &[ct], &[c.into()])?)?)
            }
            UnaryOp::Floor => {
                self.round_to(dt, fv(self.intrinsic("llvm.floor", &[ct], &[c.into()])?)?)
            }
            UnaryOp::Ceil => {
                self.round_to(dt, fv(self.intrinsic("llvm.ceil", &[ct], &[c.into()])?)?)
            }
            UnaryOp::Exp => via_libm("exp"),
            UnaryOp::Exp2 => via_libm("exp2"),
            UnaryOp::Log => via_libm("log"),
            UnaryOp::Log2 => via_libm("log2"),
            UnaryOp::Sin => via_libm("sin"),
            UnaryOp::Cos => via_libm("cos"),
            UnaryOp::Tanh => via_libm("tanh"),
            UnaryOp::Erf => via_libm("erf"),
            UnaryOp::Rsqrt => {
                let d = self.to_f64(dt, x)?;
                let f64t: BasicTypeEnum<'ctx> = self.cx.f64_type().into();
                let s = fv(self.intrinsic("llvm.sqrt", &[f64t], &[d.into()])?)?;
                self.round_to(dt, b.build_float_div(one64, s, "rsqrt")?)
            }
            UnaryOp::Sigmoid => {
                let d = self.to_f64(dt, x)?;
                let e = self.libm("exp", b.build_float_neg(d, "nx")?)?;
                let den = b.build_float_add(one64, e, "den")?;
                self.round_to(dt, b.build_float_div(one64, den, "sigmoid")?)
            }
        }
    }

    /// `a op b`; the second result is set for integer `div`/`rem` and is true in a lane that
    /// divides by zero or computes `MIN / -1` (that lane's value is then meaningless).
    pub fn binary(
        &self,
        op: BinaryOp,
        dt: DType,
        a: BasicValueEnum<'ctx>,
        bv: BasicValueEnum<'ctx>,
    ) -> R<(BasicValueEnum<'ctx>, Option<IntValue<'ctx>>)> {
        let b = &self.b;
        if dt.is_bool() {
            let (x, y) = (iv(a)?, iv(bv)?);
            let r = match op {
                BinaryOp::And | BinaryOp::Min => b.build_and(x, y, "and")?,
                BinaryOp::Or | BinaryOp::Max => b.build_or(x, y, "or")?,
                BinaryOp::Xor => b.build_xor(x, y, "xor")?,
                _ => return Err(unsup(format!("{} on bool", op.name()))),
            };
            return Ok((r.into(), None));
        }
        if dt.is_int() {
            let (x, y) = (iv(a)?, iv(bv)?);
            let t = x.get_type();
            let signed = dt.is_signed_int();
            let r: BasicValueEnum<'ctx> = match op {
                BinaryOp::Add => b.build_int_add(x, y, "add")?.into(),
                BinaryOp::Sub => b.build_int_sub(x, y, "sub")?.into(),
                BinaryOp::Mul => b.build_int_mul(x, y, "mul")?.into(),
                BinaryOp::And => b.build_and(x, y, "and")?.into(),
                BinaryOp::Or => b.build_or(x, y, "or")?.into(),
                BinaryOp::Xor => b.build_xor(x, y, "xor")?.into(),
                BinaryOp::Div | BinaryOp::Rem => {
                    let mut bad = b.build_int_compare(IntPredicate::EQ, y, t.const_zero(), "dz")?;
                    if signed {
                        let bits = t.get_bit_width();
                        let min = t.const_int(1u64 << (bits - 1), false);
                        let is_min = b.build_int_compare(IntPredicate::EQ, x, min, "ismin")?;
                        let m1 =
                            b.build_int_compare(IntPredicate::EQ, y, t.const_all_ones(), "m1")?;
                        let ov = b.build_and(is_min, m1, "ov")?;
                        bad = b.build_or(bad, ov, "bad")?;
                    }
                    let safe = iv(b.build_select(bad, t.const_int(1, false), y, "safe")?)?;
                    let r = match (op, signed) {
                        (BinaryOp::Div, true) => b.build_int_signed_div(x, safe, "div")?,
                        (BinaryOp::Div, false) => b.build_int_unsigned_div(x, safe, "div")?,
                        (_, true) => b.build_int_signed_rem(x, safe, "rem")?,
                        (_, false) => b.build_int_unsigned_rem(x, safe, "rem")?,
                    };
                    return Ok((r.into(), Some(bad)));
                }
                BinaryOp::Shl | BinaryOp::Shr => {
                    let bits = t.const_int(t.get_bit_width() as u64, false);
                    let inr = b.build_int_compare(IntPredicate::ULT, y, bits, "inr")?;
                    let amt = iv(b.build_select(inr, y, t.const_zero(), "amt")?)?;
                    let (shifted, fill) = if op == BinaryOp::Shl {
                        (b.build_left_shift(x, amt, "shl")?, t.const_zero())
                    } else if signed {
                        let top = t.const_int(t.get_bit_width() as u64 - 1, false);
                        (
                            b.build_right_shift(x, amt, true, "sar")?,
                            b.build_right_shift(x, top, true, "fill")?,
                        )
                    } else {
                        (b.build_right_shift(x, amt, false, "shr")?, t.const_zero())
                    };
                    b.build_select(inr, shifted, fill, "sh")?
                }
                BinaryOp::Min | BinaryOp::Max => {
                    let pred = match (op, signed) {
                        (BinaryOp::Min, true) => IntPredicate::SLE,
                        (BinaryOp::Min, false) => IntPredicate::ULE,
                        (_, true) => IntPredicate::SGE,
                        (_, false) => IntPredicate::UGE,
                    };
                    let pick_a = b.build_int_compare(pred, x, y, "pick")?;
                    b.build_select(pick_a, x, y, "mm")?
                }
            };
            return Ok((r, None));
        }
        let (x, y) = (self.to_c(dt, a)?, self.to_c(dt, bv)?);
        let ct: BasicTypeEnum<'ctx> = x.get_type().into();
        let r = match op {
            BinaryOp::Add => b.build_float_add(x, y, "fadd")?,
            BinaryOp::Sub => b.build_float_sub(x, y, "fsub")?,
            BinaryOp::Mul => b.build_float_mul(x, y, "fmul")?,
            BinaryOp::Div => b.build_float_div(x, y, "fdiv")?,
            BinaryOp::Rem => b.build_float_rem(x, y, "frem")?,
            BinaryOp::Min => fv(self.intrinsic("llvm.minimum", &[ct], &[x.into(), y.into()])?)?,
            BinaryOp::Max => fv(self.intrinsic("llvm.maximum", &[ct], &[x.into(), y.into()])?)?,
            _ => return Err(unsup(format!("{} on {dt}", op.name()))),
        };
        Ok((self.round_to(dt, r)?, None))
    }

    pub fn cmp(
        &self,
        pred: CmpPred,
        dt: DType,
        a: BasicValueEnum<'ctx>,
        bv: BasicValueEnum<'ctx>,
    ) -> R<IntValue<'ctx>> {
        if dt.is_float() {
            let p = match pred {
                CmpPred::Eq => FloatPredicate::OEQ,
                CmpPred::Ne => FloatPredicate::UNE,
                CmpPred::Lt => FloatPredicate::OLT,
                CmpPred::Le => FloatPredicate::OLE,
                CmpPred::Gt => FloatPredicate::OGT,
                CmpPred::Ge => FloatPredicate::OGE,
            };
            let (x, y) = (self.to_c(dt, a)?, self.to_c(dt, bv)?);
            return Ok(self.b.build_float_compare(p, x, y, "fcmp")?);
        }
        let signed = dt.is_signed_int();
        let p = match (pred, signed) {
            (CmpPred::Eq, _) => IntPredicate::EQ,
            (CmpPred::Ne, _) => IntPredicate::NE,
            (CmpPred::Lt, true) => IntPredicate::SLT,
            (CmpPred::Le, true) => IntPredicate::SLE,
            (CmpPred::Gt, true) => IntPredicate::SGT,
            (CmpPred::Ge, true) => IntPredicate::SGE,
            (CmpPred::Lt, false) => IntPredicate::ULT,
            (CmpPred::Le, false) => IntPredicate::ULE,
            (CmpPred::Gt, false) => IntPredicate::UGT,
            (CmpPred::Ge, false) => IntPredicate::UGE,
        };
        Ok(self.b.build_int_compare(p, iv(a)?, iv(bv)?, "icmp")?)
    }

    /// `a * b + c` rounded once (f32/f64); f16/bf16 compute in f64 and round.
    pub fn fma(
        &self,
        dt: DType,
        a: BasicValueEnum<'ctx>,
        bv: BasicValueEnum<'ctx>,
        c: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        if !dt.is_float() {
            return Err(unsup(format!("fma on {dt}")));
        }
        let (x, y, z) = if matches!(dt, DType::F32 | DType::F64) {
            (fv(a)?, fv(bv)?, fv(c)?)
        } else {
            (self.to_f64(dt, a)?, self.to_f64(dt, bv)?, self.to_f64(dt, c)?)
        };
        let t: BasicTypeEnum<'ctx> = x.get_type().into();
        let r = fv(self.intrinsic("llvm.fma", &[t], &[x.into(), y.into(), z.into()])?)?;
        self.round_to(dt, r)
    }

    /// Converts `v` from dtype `from` to `to` with [`tk_ir::eval::cast`]'s rules.
    pub fn cast(&self, from: DType, to: DType, v: BasicValueEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        let b = &self.b;
        if from == to {
            return Ok(v);
        }
        let to_ty = self.reg_ty(Elem::Scalar(to));
        if to.is_bool() {
            return Ok(if from.is_float() {
                let c = self.to_c(from, v)?;
                b.build_float_compare(FloatPredicate::UNE, c, c.get_type().const_zero(), "nz")?
                    .into()
            } else {
                let x = iv(v)?;
                b.build_int_compare(IntPredicate::NE, x, x.get_type().const_zero(), "nz")?.into()
            });
        }
        if from.is_float() {
            let c = self.to_c(from, v)?;
            if to.is_float() {
                return self.round_to(to, c);
            }
            let name = if to.is_signed_int() { "llvm.fptosi.sat" } else { "llvm.fptoui.sat" };
            return self.intrinsic(name, &[to_ty, c.get_type().into()], &[c.into()]);
        }
        // From an integer or bool.
        let x = iv(v)?;
        let signed = from.is_signed_int();
        if to.is_float() {
            let target = match to {
                DType::F16 | DType::BF16 | DType::F32 => self.cx.f32_type(),
                _ => self.cx.f64_type(),
            };
            let f = if signed {
                b.build_signed_int_to_float(x, target, "i2f")?
            } else {
                b.build_unsigned_int_to_float(x, target, "u2f")?
            };
            return self.round_to(to, f);
        }
        let BasicTypeEnum::IntType(it) = to_ty else {
            return Err(unsup(format!("cast {from} -> {to}")));
        };
        let (fw, tw) = (x.get_type().get_bit_width(), it.get_bit_width());
        Ok(if tw < fw {
            b.build_int_truncate(x, it, "trunc")?.into()
        } else if tw > fw {
            if signed {
                b.build_int_s_extend(x, it, "sext")?.into()
            } else {
                b.build_int_z_extend(x, it, "zext")?.into()
            }
        } else {
            x.into()
        })
    }

    /// Accumulator type of a reduction over dtype `dt`.
    pub fn acc_ty(&self, dt: DType) -> BasicTypeEnum<'ctx> {
        if dt.is_float() {
            self.cty(dt).into()
        } else {
            self.reg_ty(Elem::Scalar(dt))
        }
    }
    pub fn to_acc(&self, dt: DType, v: BasicValueEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        if dt.is_float() {
            Ok(self.to_c(dt, v)?.into())
        } else {
            Ok(v)
        }
    }
    pub fn round_acc(&self, dt: DType, v: BasicValueEnum<'ctx>) -> R<BasicValueEnum<'ctx>> {
        if dt.is_float() {
            self.round_to(dt, fv(v)?)
        } else {
            Ok(v)
        }
    }
    /// One step of `sum`/`max`/`min` in the accumulator type.
    pub fn accumulate(
        &self,
        kind: ReduceKind,
        dt: DType,
        acc: BasicValueEnum<'ctx>,
        x: BasicValueEnum<'ctx>,
    ) -> R<BasicValueEnum<'ctx>> {
        let op = match kind {
            ReduceKind::Sum => BinaryOp::Add,
            ReduceKind::Max => BinaryOp::Max,
            ReduceKind::Min => BinaryOp::Min,
            _ => return Err(unsup(format!("{} as an accumulation", kind.name()))),
        };
        if dt.is_float() {
            let (a, y) = (fv(acc)?, fv(x)?);
            let t: BasicTypeEnum<'ctx> = a.get_type().into();
            return Ok(match op {
                BinaryOp::Add => self.b.build_float_add(a, y, "sum")?.into(),
                BinaryOp::Max => self.intrinsic("llvm.maximum", &[t], &[a.into(), y.into()])?,
                _ => self.intrinsic("llvm.minimum", &[t], &[a.into(), y.into()])?,
            });
        }
        Ok(self.binary(op, dt, acc, x)?.0)
    }

    /// `x > y` with NaN above every number (and `-0 == +0`): argmax, top-k and sort order.
    pub fn gt_nan_high(
        &self,
        dt: DType,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
    ) -> R<IntValue<'ctx>> {
        if dt.is_float() {
            let (x, y) = (self.to_c(dt, x)?, self.to_c(dt, y)?);
            let y_num = self.b.build_float_compare(FloatPredicate::ORD, y, y, "ynum")?;
            let gt = self.b.build_float_compare(FloatPredicate::UGT, x, y, "ugt")?;
            return Ok(self.b.build_and(y_num, gt, "gtnh")?);
        }
        let p = if dt.is_signed_int() { IntPredicate::SGT } else { IntPredicate::UGT };
        Ok(self.b.build_int_compare(p, iv(x)?, iv(y)?, "gt")?)
    }

    /// `x < y` with NaN below every number: argmin order.
    pub fn lt_nan_low(
        &self,
        dt: DType,
        x: BasicValueEnum<'ctx>,
        y: BasicValueEnum<'ctx>,
    ) -> R<IntValue<'ctx>> {
        if dt.is_float() {
            let (x, y) = (self.to_c(dt, x)?, self.to_c(dt, y)?);
            let y_num = self.b.build_float_compare(FloatPredicate::ORD, y, y, "ynum")?;
            let lt = self.b.build_float_compare(FloatPredicate::ULT, x, y, "ult")?;
            return Ok(self.b.build_and(y_num, lt, "ltnl")?);
        }
        let p = if dt.is_signed_int() { IntPredicate::SLT } else { IntPredicate::ULT };
        Ok(self.b.build_int_compare(p, iv(x)?, iv(y)?, "lt")?)
    }
}
