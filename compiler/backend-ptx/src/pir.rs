//! The per-thread IR: what one thread of a CTA executes, after layouts have been assigned.
//!
//! It sits between the block IR and PTX text so that two consumers can share one lowering: the
//! PTX printer ([`crate::ptx`]) and the CTA executor ([`crate::exec`]) that the tests compare with
//! the reference interpreter. Registers are virtual and mutable (not SSA: loop-carried values are
//! plain registers updated at the end of a loop body). Control flow is structured and always
//! uniform across the CTA, because every condition is a scalar and scalars are uniform (every
//! thread computes the same value), so `bar.sync` and full-warp `shfl.sync` are legal everywhere.

use std::fmt;

/// Register class, which is also how a register is declared in PTX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegClass {
    Pred,
    B16,
    B32,
    B64,
    F32,
    F64,
}

/// A virtual register (index into [`Kernel::regs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub u32);

/// Operand: a register or an immediate whose bits are read by the instruction's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opnd {
    Reg(Reg),
    /// Integers sign- or zero-extended to 64 bits; f32 as its bit pattern; f64 likewise; a pred
    /// immediate is 0 or 1.
    Imm(u64),
}

impl Opnd {
    pub fn reg(self) -> Option<Reg> {
        match self {
            Opnd::Reg(r) => Some(r),
            Opnd::Imm(_) => None,
        }
    }
    pub fn f32(x: f32) -> Opnd {
        Opnd::Imm(u64::from(x.to_bits()))
    }
    pub fn int(x: i64) -> Opnd {
        Opnd::Imm(x as u64)
    }
}

impl From<Reg> for Opnd {
    fn from(r: Reg) -> Opnd {
        Opnd::Reg(r)
    }
}

/// Instruction type suffix (`.s32`, `.f32`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Pred,
    B16,
    B32,
    B64,
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    U64,
    S64,
    F16,
    BF16,
    F32,
    F64,
    /// A tf32 value in a 32-bit register (only as the destination of `cvt.rna.tf32.f32`).
    Tf32,
}

impl Ty {
    pub fn name(self) -> &'static str {
        match self {
            Ty::Pred => "pred",
            Ty::B16 => "b16",
            Ty::B32 => "b32",
            Ty::B64 => "b64",
            Ty::U8 => "u8",
            Ty::S8 => "s8",
            Ty::U16 => "u16",
            Ty::S16 => "s16",
            Ty::U32 => "u32",
            Ty::S32 => "s32",
            Ty::U64 => "u64",
            Ty::S64 => "s64",
            Ty::F16 => "f16",
            Ty::BF16 => "bf16",
            Ty::F32 => "f32",
            Ty::F64 => "f64",
            Ty::Tf32 => "tf32",
        }
    }
    /// Size in bytes in memory (pred counts as 1).
    pub fn bytes(self) -> u32 {
        match self {
            Ty::Pred | Ty::U8 | Ty::S8 => 1,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::BF16 => 2,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::Tf32 => 4,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::BF16 | Ty::F32 | Ty::F64 | Ty::Tf32)
    }
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One-operand instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    /// Bitwise not (`not.b32`) or logical not (`not.pred`).
    Not,
    Abs,
    /// `ex2.approx.f32`.
    Ex2,
    /// `lg2.approx.f32`.
    Lg2,
    /// `sqrt.rn.f32`.
    Sqrt,
    /// `rsqrt.approx.f32`.
    Rsqrt,
    /// `rcp.approx.ftz.f32` (only used on operands >= 1, where flushing cannot matter; `rcp.rn`
    /// needs a slow-path subroutine that makes ptxas allocate a stack frame).
    Rcp,
    /// `sin.approx.f32`.
    Sin,
    /// `cos.approx.f32`.
    Cos,
}

/// Two-operand instructions (`.rn` for floats, `.lo` for integer `mul`, `.NaN` for float min/max).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    And,
    Or,
    Xor,
    Shl,
    Shr,
    Min,
    Max,
    /// `copysign.f32 d, a, b`: magnitude of `b`, sign of `a` (PTX operand order).
    CopySign,
}

/// Comparison of `setp`. Float `Ne` is the unordered `neu` (true with NaN); the others are
/// ordered (false with NaN). `Nan` is `setp.nan` (true when either operand is NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Nan,
}

/// Rounding of `cvt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Round {
    /// No modifier (exact conversions: integer widening/narrowing, f16 -> f32).
    None,
    /// Round to nearest even (float results).
    Rn,
    /// Round toward zero to an integer (float -> int; saturating, NaN -> 0).
    Rzi,
    /// Floor to an integral float.
    Rmi,
    /// Ceil to an integral float.
    Rpi,
    /// Round to nearest, ties away from zero (`cvt.rna.tf32.f32` only).
    Rna,
}

/// Operand type of a tensor-core `mma.sync` (always with f32 accumulators).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmaKind {
    /// `m16n8k16` with f16 inputs.
    F16,
    /// `m16n8k16` with bf16 inputs.
    BF16,
    /// `m16n8k8` with tf32 inputs.
    Tf32,
}

impl MmaKind {
    /// The k extent of one instruction.
    pub fn k(self) -> u32 {
        match self {
            MmaKind::F16 | MmaKind::BF16 => 16,
            MmaKind::Tf32 => 8,
        }
    }
}

/// Special registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SReg {
    TidX,
    CtaId(u8),
    NCtaId(u8),
}

/// Read-modify-write atomics on global memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomOp {
    Add,
    Max,
    Min,
    Exch,
    Cas,
}

/// A per-thread instruction. `pred` fields guard memory accesses: when the predicate is false the
/// access is not performed at all (and its destination keeps its old value).
#[derive(Clone, Debug, PartialEq)]
pub enum Inst {
    Mov {
        ty: Ty,
        dst: Reg,
        src: Opnd,
    },
    Unary {
        op: UnOp,
        ty: Ty,
        dst: Reg,
        a: Opnd,
    },
    Binary {
        op: BinOp,
        ty: Ty,
        dst: Reg,
        a: Opnd,
        b: Opnd,
    },
    /// `mul.wide.{s,u}32`: a 32x32 -> 64-bit product (`ty` is the source type).
    MulWide {
        ty: Ty,
        dst: Reg,
        a: Opnd,
        b: Opnd,
    },
    /// `fma.rn` (floats) or `mad.lo` (integers).
    Fma {
        ty: Ty,
        dst: Reg,
        a: Opnd,
        b: Opnd,
        c: Opnd,
    },
    Setp {
        cmp: Cmp,
        ty: Ty,
        dst: Reg,
        a: Opnd,
        b: Opnd,
    },
    /// `selp.ty dst, a, b, cond`: `cond ? a : b`.
    Selp {
        ty: Ty,
        dst: Reg,
        a: Opnd,
        b: Opnd,
        cond: Reg,
    },
    Cvt {
        round: Round,
        dty: Ty,
        sty: Ty,
        dst: Reg,
        src: Opnd,
    },
    Sreg {
        dst: Reg,
        sreg: SReg,
    },
    /// `ld.param` of kernel parameter `index` (pointers then go through `cvta.to.global`).
    LdParam {
        ty: Ty,
        dst: Reg,
        index: u32,
    },
    /// Vector (`dsts.len()` of 1, 2 or 4) load from global memory at `addr` (bytes).
    LdGlobal {
        ty: Ty,
        dsts: Vec<Reg>,
        addr: Reg,
        pred: Option<Reg>,
    },
    StGlobal {
        ty: Ty,
        srcs: Vec<Opnd>,
        addr: Reg,
        pred: Option<Reg>,
    },
    /// `atom.global.op.ty dst, [addr], a (, b for cas)`.
    Atom {
        op: AtomOp,
        ty: Ty,
        dst: Reg,
        addr: Reg,
        a: Opnd,
        b: Opnd,
        pred: Option<Reg>,
    },
    /// `mov.u32 dst, smem`: the shared scratch's base address.
    SmemBase {
        dst: Reg,
    },
    /// Shared-memory access at `addr + off` (bytes, 32-bit addressing).
    LdShared {
        ty: Ty,
        dst: Reg,
        addr: Reg,
        off: u32,
        pred: Option<Reg>,
    },
    StShared {
        ty: Ty,
        src: Opnd,
        addr: Reg,
        off: u32,
        pred: Option<Reg>,
    },
    /// `st.shared.v{2,4}.ty [addr + off], {srcs}`: consecutive elements, aligned to their
    /// total size.
    StSharedV {
        ty: Ty,
        srcs: Vec<Opnd>,
        addr: Reg,
        off: u32,
    },
    /// `ldmatrix.sync.aligned.m8n8.x{n}{.trans}.shared.b16`: `dsts.len()` (1, 2 or 4) 8x8
    /// matrices of 16-bit elements; lane `8q + r` gives the address of row `r` of matrix `q`
    /// (16 contiguous bytes at `addr + off`); every lane then receives, in `dsts[q]`, the
    /// elements (row `lane / 4`, columns `2 (lane % 4)` and `+1`) of matrix `q`, or with `trans`
    /// the elements (rows `2 (lane % 4)` and `+1`, column `lane / 4`), the lower-indexed one in
    /// the low half. Warp-wide: every lane of the warp executes it.
    Ldmatrix {
        trans: bool,
        dsts: Vec<Reg>,
        addr: Reg,
        off: u32,
    },
    /// `mma.sync.aligned.m16n8k{16,8}.row.col.f32.{f16,bf16,tf32}...f32 d, a, b, c`: the warp
    /// computes `D = A B + C` for a 16 x k A, a k x 8 B and 16 x 8 f32 C/D held in the
    /// fragment layouts of the PTX ISA (4 A, 2 B, 4 C and 4 D registers per lane).
    Mma {
        kind: MmaKind,
        d: Vec<Reg>,
        a: Vec<Reg>,
        b: Vec<Reg>,
        c: Vec<Reg>,
    },
    /// `bar.sync 0`.
    Bar,
    /// `shfl.sync.bfly.b32 dst, src, lane_mask, 31, 0xffffffff`.
    ShflBfly {
        dst: Reg,
        src: Reg,
        lane_mask: u32,
    },
    /// `for (iv = lo; iv < hi; iv += step) body` with a uniform trip count.
    For {
        ty: Ty,
        iv: Reg,
        lo: Opnd,
        hi: Opnd,
        step: Opnd,
        body: Vec<Inst>,
    },
    If {
        cond: Reg,
        then_body: Vec<Inst>,
        else_body: Vec<Inst>,
    },
}

/// A kernel parameter as the PTX entry declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: String,
    /// `.u64` for pointers, else the scalar's type (`.u8` for bool).
    pub ty: Ty,
    pub is_ptr: bool,
}

/// One kernel in per-thread form.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<ParamDecl>,
    pub regs: Vec<RegClass>,
    pub body: Vec<Inst>,
    /// Threads per CTA (32 x num_warps).
    pub threads: u32,
    /// Bytes of shared scratch (0 when unused): the dynamic shared memory a launch must pass.
    pub smem_bytes: u32,
    /// Lowest PTX ISA version (times 10) that every instruction needs on sm_80.
    pub min_version: u32,
}
