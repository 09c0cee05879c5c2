//! A CTA executor for the per-thread IR: the GPU-less semantic check of what the backend emits.
//!
//! It runs every CTA of a grid on the CPU, all threads of a CTA in lock step, one instruction at a
//! time (control flow is uniform by construction, and the executor checks that it is). Lock-step
//! execution makes `shfl.sync` exact and `bar.sync` trivially satisfied, so shared memory is
//! checked for races instead: a word written by one thread and read or overwritten by another in
//! the same barrier interval is an error, as is a read of a never-written word.
//!
//! Global memory is a set of buffers at distinct, 256-byte aligned base addresses. Every
//! dereference that is performed (predicate true, or no predicate) must lie entirely inside one
//! buffer and be aligned to the access size, else the run fails with an out-of-bounds or
//! misaligned error; a predicated-off access is never dereferenced. So an address that a mask
//! should have turned off traps exactly when the backend forgot the predicate.
//!
//! Arithmetic follows PTX: integer ops wrap, division by zero does not trap, `cvt.rzi` saturates
//! and maps NaN to 0, `min.NaN`/`max.NaN` propagate NaN, approximate instructions
//! (`ex2.approx`, `lg2.approx`, `rsqrt.approx`, `sin/cos.approx`) are computed exactly.
//!
//! `ldmatrix` and `mma.sync` are executed per warp with the fragment layouts of the PTX ISA
//! (section "Matrix fragments for mma.m16n8k16 / m16n8k8"): A element (row, col) of an f16/bf16
//! `m16n8k16` sits in register `col / 8 * 2 + row / 8` of lane `4 (row % 8) + (col % 8) / 2`,
//! half `col % 2`; B element (k, n) in register `k / 8`, lane `4 n + (k % 8) / 2`, half `k % 2`;
//! C/D element (row, col) in register `row / 8 * 2 + col % 2` of lane `4 (row % 8) + col / 2`.
//! For tf32 `m16n8k8`, A (row, col) is register `col / 4 * 2 + row / 8` of lane
//! `4 (row % 8) + col % 4` and B (k, n) register `k / 4` of lane `4 n + k % 4`; tf32 operands
//! use the top 19 bits of their register (the low 13 are ignored, as the hardware does). The
//! products are exact and each instruction's sum `C + sum_k A B` is formed in f64 and rounded
//! once to f32 (tensor cores add with at least f32 precision; tests compare with a tolerance).

use crate::pir::*;
use std::fmt;

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExecArg {
    /// A pointer to the start of buffer `.0`.
    Buffer(usize),
    /// A pointer `.1` bytes into buffer `.0` (may point outside it: only dereferences are checked).
    BufferAt(usize, i64),
    /// Scalar bits (integers sign- or zero-extended, floats as their bit pattern).
    Scalar(u64),
}

/// A run that went wrong: the message says where (CTA, thread) and why.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecError {
    pub message: String,
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExecError {}

/// Counts of what a run executed (to check vectorisation and barrier use).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecStats {
    /// Global loads performed, by vector length (index 1, 2, 4).
    pub loads: [u64; 5],
    /// Global stores performed, by vector length.
    pub stores: [u64; 5],
    pub atomics: u64,
    pub barriers: u64,
    pub shuffles: u64,
    /// Warp-wide `ldmatrix` and `mma.sync` instructions executed (once per warp each).
    pub ldmatrix: u64,
    pub mma: u64,
}

const BASE_STRIDE: u64 = 1 << 36;
/// Bytes per unit of shared-memory race tracking: the smallest shared access (b16), so that
/// replicas writing neighbouring halves of one word are not mistaken for a race.
const GRAIN: usize = 2;
const MAX_LOOP_TRIPS: u64 = 1 << 24;

fn base_of(i: usize) -> u64 {
    (i as u64 + 1) * BASE_STRIDE
}

struct Cta<'a> {
    t: usize,
    regs: Vec<u64>,
    ctaid: [u32; 3],
    grid: [u32; 3],
    params: Vec<u64>,
    mem: &'a mut [Vec<u8>],
    smem: Vec<u8>,
    /// Per shared [`GRAIN`]-byte unit: (writer thread + 1 or 0, epoch of the write, reader
    /// thread + 1 or u32::MAX for several, epoch of the reads).
    words: Vec<(u32, u64, u32, u64)>,
    epoch: u64,
    stats: ExecStats,
}

/// Runs `k` over `grid` with `args`; pointer arguments index `buffers`, which are read and
/// written in place.
pub fn run(
    k: &Kernel,
    grid: [u32; 3],
    args: &[ExecArg],
    buffers: &mut [Vec<u8>],
) -> Result<ExecStats, ExecError> {
    if args.len() != k.params.len() {
        return Err(err(format!(
            "kernel `{}` takes {} arguments, got {}",
            k.name,
            k.params.len(),
            args.len()
        )));
    }
    let mut params = Vec::with_capacity(args.len());
    for (p, a) in k.params.iter().zip(args) {
        let v = match (p.is_ptr, a) {
            (true, ExecArg::Buffer(b)) if *b < buffers.len() => base_of(*b),
            (true, ExecArg::BufferAt(b, off)) if *b < buffers.len() => {
                base_of(*b).wrapping_add(*off as u64)
            }
            (false, ExecArg::Scalar(x)) => *x,
            _ => return Err(err(format!("argument for `{}` does not match its kind", p.name))),
        };
        params.push(v);
    }
    let t = k.threads as usize;
    let mut stats = ExecStats::default();
    let mut regs = vec![0u64; k.regs.len() * t];
    for z in 0..grid[2] {
        for y in 0..grid[1] {
            for x in 0..grid[0] {
                let mut cta = Cta {
                    t,
                    regs: std::mem::take(&mut regs),
                    ctaid: [x, y, z],
                    grid,
                    params: params.clone(),
                    mem: buffers,
                    smem: vec![0; k.smem_bytes as usize],
                    words: vec![(0, 0, 0, 0); (k.smem_bytes as usize).div_ceil(GRAIN)],
                    epoch: 1,
                    stats: std::mem::take(&mut stats),
                };
                cta.block(&k.body)
                    .map_err(|e| err(format!("CTA ({x}, {y}, {z}): {}", e.message)))?;
                regs = cta.regs;
                stats = cta.stats;
            }
        }
    }
    Ok(stats)
}

fn err(m: String) -> ExecError {
    ExecError { message: m }
}

fn f32_of(x: u64) -> f32 {
    f32::from_bits(x as u32)
}
fn f64_of(x: u64) -> f64 {
    f64::from_bits(x)
}
fn of_f32(x: f32) -> u64 {
    u64::from(x.to_bits())
}

/// Bits of `x` truncated to `ty`'s width (zero-extended).
fn trunc(ty: Ty, x: u64) -> u64 {
    match ty.bytes() {
        1 => x & 0xff,
        2 => x & 0xffff,
        4 => x & 0xffff_ffff,
        _ => x,
    }
}

/// `x` as a signed integer of `ty`'s width.
fn sext(ty: Ty, x: u64) -> i64 {
    match ty.bytes() {
        1 => x as u8 as i8 as i64,
        2 => x as u16 as i16 as i64,
        4 => x as u32 as i32 as i64,
        _ => x as i64,
    }
}

fn fmin(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else {
        a.min(b)
    }
}

fn fmax(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == b {
        if a.is_sign_positive() {
            a
        } else {
            b
        }
    } else {
        a.max(b)
    }
}

fn float_of(ty: Ty, x: u64) -> f64 {
    match ty {
        Ty::F32 | Ty::Tf32 => f64::from(f32_of(x)),
        Ty::F64 => f64_of(x),
        Ty::F16 => half::f16::from_bits(x as u16).to_f64(),
        Ty::BF16 => half::bf16::from_bits(x as u16).to_f64(),
        _ => 0.0,
    }
}

/// Rounds `v` to `ty` (nearest even).
fn float_to(ty: Ty, v: f64) -> u64 {
    match ty {
        Ty::F32 => of_f32(v as f32),
        Ty::F64 => v.to_bits(),
        Ty::F16 => u64::from(half::f16::from_f64(v).to_bits()),
        Ty::BF16 => u64::from(half::bf16::from_f64(v).to_bits()),
        _ => 0,
    }
}

impl Cta<'_> {
    fn get(&self, o: Opnd, t: usize) -> u64 {
        match o {
            Opnd::Reg(r) => self.regs[r.0 as usize * self.t + t],
            Opnd::Imm(x) => x,
        }
    }

    fn set(&mut self, r: Reg, t: usize, v: u64) {
        self.regs[r.0 as usize * self.t + t] = v;
    }

    /// The value of `o` in thread 0, after checking every thread has the same.
    fn uniform(&self, o: Opnd, what: &str) -> Result<u64, ExecError> {
        let v = self.get(o, 0);
        for t in 1..self.t {
            if self.get(o, t) != v {
                return Err(err(format!(
                    "{what} differs between threads 0 and {t} (control flow must be uniform)"
                )));
            }
        }
        Ok(v)
    }

    fn block(&mut self, insts: &[Inst]) -> Result<(), ExecError> {
        for i in insts {
            self.inst(i)?;
        }
        Ok(())
    }

    fn global(
        &mut self,
        addr: u64,
        bytes: u64,
        t: usize,
        what: &str,
    ) -> Result<(usize, usize), ExecError> {
        let b = (addr / BASE_STRIDE) as usize;
        let ok = b >= 1 && b <= self.mem.len() && {
            let off = addr - base_of(b - 1);
            off + bytes <= self.mem[b - 1].len() as u64
        };
        if !ok {
            return Err(err(format!(
                "thread {t}: out-of-bounds {what} of {bytes} bytes at {addr:#x}{}",
                if b >= 1 && b <= self.mem.len() {
                    format!(
                        " (byte offset {} of buffer {} with {} bytes)",
                        addr as i64 - base_of(b - 1) as i64,
                        b - 1,
                        self.mem[b - 1].len()
                    )
                } else {
                    String::new()
                }
            )));
        }
        if !addr.is_multiple_of(bytes) {
            return Err(err(format!(
                "thread {t}: misaligned {what} of {bytes} bytes at {addr:#x}"
            )));
        }
        Ok((b - 1, (addr - base_of(b - 1)) as usize))
    }

    fn smem_check(
        &mut self,
        addr: u64,
        bytes: u64,
        t: usize,
        write: Option<&[u8]>,
    ) -> Result<usize, ExecError> {
        if addr + bytes > self.smem.len() as u64 || !addr.is_multiple_of(bytes) {
            return Err(err(format!(
                "thread {t}: bad shared access of {bytes} bytes at {addr} (scratch has {} bytes)",
                self.smem.len()
            )));
        }
        let me = t as u32 + 1;
        let a = addr as usize;
        for w in a / GRAIN..(a + bytes as usize).div_ceil(GRAIN) {
            let (writer, wep, reader, rep) = self.words[w];
            match write {
                None => {
                    if writer == 0 {
                        return Err(err(format!(
                            "thread {t}: read of unwritten shared byte {}",
                            w * GRAIN
                        )));
                    }
                    if writer != me && wep == self.epoch {
                        return Err(err(format!(
                            "thread {t}: shared byte {} written by thread {} without a barrier in between",
                            w * GRAIN,
                            writer - 1
                        )));
                    }
                    let r = if rep == self.epoch && reader != me { u32::MAX } else { me };
                    self.words[w].2 = r;
                    self.words[w].3 = self.epoch;
                }
                Some(data) => {
                    if rep == self.epoch && reader != me {
                        return Err(err(format!(
                            "thread {t}: shared byte {} overwritten while other threads read it (no barrier)",
                            w * GRAIN
                        )));
                    }
                    if writer != 0 && writer != me && wep == self.epoch {
                        // Replicas may write the same value; different values are a race.
                        let lo = (w * GRAIN).max(a);
                        let hi = (w * GRAIN + GRAIN).min(a + bytes as usize);
                        if self.smem[lo..hi] != data[lo - a..hi - a] {
                            return Err(err(format!(
                                "thread {t}: shared byte {} written by threads {} and {t} with different values",
                                w * GRAIN,
                                writer - 1
                            )));
                        }
                    }
                    self.words[w].0 = me;
                    self.words[w].1 = self.epoch;
                }
            }
        }
        Ok(a)
    }

    fn inst(&mut self, i: &Inst) -> Result<(), ExecError> {
        let n = self.t;
        match i {
            Inst::Mov { ty, dst, src } => {
                for t in 0..n {
                    let v = trunc(*ty, self.get(*src, t));
                    self.set(*dst, t, v);
                }
            }
            Inst::Unary { op, ty, dst, a } => {
                for t in 0..n {
                    let x = self.get(*a, t);
                    let v = unary(*op, *ty, x);
                    self.set(*dst, t, v);
                }
            }
            Inst::Binary { op, ty, dst, a, b } => {
                for t in 0..n {
                    let (x, y) = (self.get(*a, t), self.get(*b, t));
                    let v = binary(*op, *ty, x, y);
                    self.set(*dst, t, v);
                }
            }
            Inst::MulWide { ty, dst, a, b } => {
                for t in 0..n {
                    let (x, y) = (self.get(*a, t), self.get(*b, t));
                    let v = if ty.is_signed() {
                        (sext(*ty, x).wrapping_mul(sext(*ty, y))) as u64
                    } else {
                        trunc(*ty, x).wrapping_mul(trunc(*ty, y))
                    };
                    self.set(*dst, t, v);
                }
            }
            Inst::Fma { ty, dst, a, b, c } => {
                for t in 0..n {
                    let (x, y, z) = (self.get(*a, t), self.get(*b, t), self.get(*c, t));
                    let v = match ty {
                        Ty::F32 => of_f32(f32_of(x).mul_add(f32_of(y), f32_of(z))),
                        Ty::F64 => f64_of(x).mul_add(f64_of(y), f64_of(z)).to_bits(),
                        _ => trunc(*ty, x.wrapping_mul(y).wrapping_add(z)),
                    };
                    self.set(*dst, t, v);
                }
            }
            Inst::Setp { cmp, ty, dst, a, b } => {
                for t in 0..n {
                    let (x, y) = (self.get(*a, t), self.get(*b, t));
                    let v = setp(*cmp, *ty, x, y);
                    self.set(*dst, t, u64::from(v));
                }
            }
            Inst::Selp { ty, dst, a, b, cond } => {
                for t in 0..n {
                    let c = self.get(Opnd::Reg(*cond), t) != 0;
                    let v = trunc(*ty, if c { self.get(*a, t) } else { self.get(*b, t) });
                    self.set(*dst, t, v);
                }
            }
            Inst::Cvt { round, dty, sty, dst, src } => {
                for t in 0..n {
                    let v = cvt(*round, *dty, *sty, self.get(*src, t));
                    self.set(*dst, t, v);
                }
            }
            Inst::Sreg { dst, sreg } => {
                for t in 0..n {
                    let v = match sreg {
                        SReg::TidX => t as u64,
                        SReg::CtaId(a) => {
                            u64::from(self.ctaid.get(*a as usize).copied().unwrap_or(0))
                        }
                        SReg::NCtaId(a) => {
                            u64::from(self.grid.get(*a as usize).copied().unwrap_or(1))
                        }
                    };
                    self.set(*dst, t, v);
                }
            }
            Inst::LdParam { ty, dst, index } => {
                let v = self.params.get(*index as usize).copied().unwrap_or(0);
                for t in 0..n {
                    self.set(*dst, t, trunc(*ty, v));
                }
            }
            Inst::LdGlobal { ty, dsts, addr, pred } => {
                let eb = u64::from(ty.bytes());
                for t in 0..n {
                    if let Some(p) = pred {
                        if self.get(Opnd::Reg(*p), t) == 0 {
                            continue;
                        }
                    }
                    let a = self.get(Opnd::Reg(*addr), t);
                    let (b, off) = self.global(a, eb * dsts.len() as u64, t, "load")?;
                    for (j, d) in dsts.iter().enumerate() {
                        let o = off + j * eb as usize;
                        let mut raw = [0u8; 8];
                        raw[..eb as usize].copy_from_slice(&self.mem[b][o..o + eb as usize]);
                        self.set(*d, t, u64::from_le_bytes(raw));
                    }
                    self.stats.loads[dsts.len().min(4)] += 1;
                }
            }
            Inst::StGlobal { ty, srcs, addr, pred } => {
                let eb = ty.bytes() as usize;
                for t in 0..n {
                    if let Some(p) = pred {
                        if self.get(Opnd::Reg(*p), t) == 0 {
                            continue;
                        }
                    }
                    let a = self.get(Opnd::Reg(*addr), t);
                    let (b, off) = self.global(a, (eb * srcs.len()) as u64, t, "store")?;
                    for (j, s) in srcs.iter().enumerate() {
                        let v = self.get(*s, t).to_le_bytes();
                        let o = off + j * eb;
                        self.mem[b][o..o + eb].copy_from_slice(&v[..eb]);
                    }
                    self.stats.stores[srcs.len().min(4)] += 1;
                }
            }
            Inst::Atom { op, ty, dst, addr, a, b, pred } => {
                let eb = ty.bytes() as usize;
                for t in 0..n {
                    if let Some(p) = pred {
                        if self.get(Opnd::Reg(*p), t) == 0 {
                            continue;
                        }
                    }
                    let ad = self.get(Opnd::Reg(*addr), t);
                    let (bi, off) = self.global(ad, eb as u64, t, "atomic")?;
                    let mut raw = [0u8; 8];
                    raw[..eb].copy_from_slice(&self.mem[bi][off..off + eb]);
                    let old = u64::from_le_bytes(raw);
                    let (x, y) = (self.get(*a, t), self.get(*b, t));
                    let new = match op {
                        AtomOp::Add => binary(BinOp::Add, *ty, old, x),
                        AtomOp::Max => binary(BinOp::Max, *ty, old, x),
                        AtomOp::Min => binary(BinOp::Min, *ty, old, x),
                        AtomOp::Exch => x,
                        AtomOp::Cas => {
                            if trunc(*ty, old) == trunc(*ty, x) {
                                y
                            } else {
                                old
                            }
                        }
                    };
                    self.mem[bi][off..off + eb].copy_from_slice(&new.to_le_bytes()[..eb]);
                    self.set(*dst, t, old);
                    self.stats.atomics += 1;
                }
            }
            Inst::SmemBase { dst } => {
                for t in 0..n {
                    self.set(*dst, t, 0);
                }
            }
            Inst::LdShared { ty, dst, addr, off, pred } => {
                let eb = ty.bytes() as usize;
                for t in 0..n {
                    if let Some(p) = pred {
                        if self.get(Opnd::Reg(*p), t) == 0 {
                            continue;
                        }
                    }
                    let a =
                        trunc(Ty::U32, self.get(Opnd::Reg(*addr), t).wrapping_add(u64::from(*off)));
                    let o = self.smem_check(a, eb as u64, t, None)?;
                    let mut raw = [0u8; 8];
                    raw[..eb].copy_from_slice(&self.smem[o..o + eb]);
                    self.set(*dst, t, u64::from_le_bytes(raw));
                }
            }
            Inst::StShared { ty, src, addr, off, pred } => {
                let eb = ty.bytes() as usize;
                for t in 0..n {
                    if let Some(p) = pred {
                        if self.get(Opnd::Reg(*p), t) == 0 {
                            continue;
                        }
                    }
                    let a =
                        trunc(Ty::U32, self.get(Opnd::Reg(*addr), t).wrapping_add(u64::from(*off)));
                    let v = self.get(*src, t).to_le_bytes();
                    let o = self.smem_check(a, eb as u64, t, Some(&v[..eb]))?;
                    self.smem[o..o + eb].copy_from_slice(&v[..eb]);
                }
            }
            Inst::StSharedV { ty, srcs, addr, off } => {
                let eb = ty.bytes() as usize;
                for t in 0..n {
                    let a =
                        trunc(Ty::U32, self.get(Opnd::Reg(*addr), t).wrapping_add(u64::from(*off)));
                    let mut v = Vec::with_capacity(eb * srcs.len());
                    for src in srcs {
                        v.extend_from_slice(&self.get(*src, t).to_le_bytes()[..eb]);
                    }
                    let o = self.smem_check(a, v.len() as u64, t, Some(&v))?;
                    self.smem[o..o + v.len()].copy_from_slice(&v);
                }
            }
            Inst::Ldmatrix { trans, dsts, addr, off } => {
                for w in 0..n / 32 {
                    let mut mats = vec![[[0u16; 8]; 8]; dsts.len()];
                    for (q, mat) in mats.iter_mut().enumerate() {
                        for (r, row) in mat.iter_mut().enumerate() {
                            let t = 32 * w + 8 * q + r;
                            let a = trunc(
                                Ty::U32,
                                self.get(Opnd::Reg(*addr), t).wrapping_add(u64::from(*off)),
                            );
                            let o = self.smem_check(a, 16, t, None)?;
                            for (e, x) in row.iter_mut().enumerate() {
                                *x = u16::from_le_bytes([
                                    self.smem[o + 2 * e],
                                    self.smem[o + 2 * e + 1],
                                ]);
                            }
                        }
                    }
                    for lane in 0..32 {
                        let (g, c) = (lane / 4, 2 * (lane % 4));
                        for (q, d) in dsts.iter().enumerate() {
                            let m = &mats[q];
                            let (lo, hi) = if *trans {
                                (m[c][g], m[c + 1][g])
                            } else {
                                (m[g][c], m[g][c + 1])
                            };
                            self.set(*d, 32 * w + lane, u64::from(lo) | (u64::from(hi) << 16));
                        }
                    }
                    self.stats.ldmatrix += 1;
                }
            }
            Inst::Mma { kind, d, a, b, c } => {
                if d.len() != 4 || a.len() != 4 || b.len() != 2 || c.len() != 4 {
                    return Err(err("mma.sync needs 4 D, 4 A, 2 B and 4 C registers".into()));
                }
                let kk = kind.k() as usize;
                for w in 0..n / 32 {
                    let mut am = vec![[0f64; 16]; 16];
                    let mut bm = vec![[0f64; 8]; 16];
                    let mut cm = [[0f64; 8]; 16];
                    for lane in 0..32 {
                        let t = 32 * w + lane;
                        let (g, q) = (lane / 4, lane % 4);
                        for r in 0..4 {
                            let x = self.get(Opnd::Reg(a[r]), t);
                            match kind {
                                MmaKind::Tf32 => {
                                    am[g + 8 * (r % 2)][q + 4 * (r / 2)] = tf32_value(x);
                                }
                                _ => {
                                    for j in 0..2 {
                                        am[g + 8 * (r % 2)][2 * q + j + 8 * (r / 2)] =
                                            half_value(*kind, x >> (16 * j));
                                    }
                                }
                            }
                        }
                        for r in 0..2 {
                            let x = self.get(Opnd::Reg(b[r]), t);
                            match kind {
                                MmaKind::Tf32 => bm[q + 4 * r][g] = tf32_value(x),
                                _ => {
                                    for j in 0..2 {
                                        bm[2 * q + j + 8 * r][g] = half_value(*kind, x >> (16 * j));
                                    }
                                }
                            }
                        }
                        for i in 0..4 {
                            let x = self.get(Opnd::Reg(c[i]), t);
                            cm[g + 8 * (i / 2)][2 * q + i % 2] = f64::from(f32_of(x));
                        }
                    }
                    let mut dm = [[0f32; 8]; 16];
                    for (row, drow) in dm.iter_mut().enumerate() {
                        for (col, dv) in drow.iter_mut().enumerate() {
                            let mut sum = cm[row][col];
                            for k in 0..kk {
                                sum += am[row][k] * bm[k][col];
                            }
                            *dv = sum as f32;
                        }
                    }
                    for lane in 0..32 {
                        let (g, q) = (lane / 4, lane % 4);
                        for i in 0..4 {
                            let v = dm[g + 8 * (i / 2)][2 * q + i % 2];
                            self.set(d[i], 32 * w + lane, of_f32(v));
                        }
                    }
                    self.stats.mma += 1;
                }
            }
            Inst::Bar => {
                self.epoch += 1;
                self.stats.barriers += 1;
            }
            Inst::ShflBfly { dst, src, lane_mask } => {
                let vals: Vec<u64> = (0..n).map(|t| self.get(Opnd::Reg(*src), t)).collect();
                for t in 0..n {
                    let from = (t & !31) | ((t & 31) ^ (*lane_mask as usize & 31));
                    let v = if from < n { vals[from] } else { vals[t] };
                    self.set(*dst, t, trunc(Ty::B32, v));
                }
                self.stats.shuffles += 1;
            }
            Inst::For { ty, iv, lo, hi, step, body } => {
                let lo = self.uniform(*lo, "loop start")?;
                let hi = self.uniform(*hi, "loop bound")?;
                let step = self.uniform(*step, "loop step")?;
                let (lo, hi, step) = if ty.is_signed() {
                    (sext(*ty, lo) as i128, sext(*ty, hi) as i128, sext(*ty, step) as i128)
                } else {
                    (trunc(*ty, lo) as i128, trunc(*ty, hi) as i128, trunc(*ty, step) as i128)
                };
                let mut i = lo;
                let mut trips = 0u64;
                while i < hi {
                    for t in 0..n {
                        self.set(*iv, t, trunc(*ty, i as u64));
                    }
                    self.block(body)?;
                    trips += 1;
                    if trips > MAX_LOOP_TRIPS || step <= 0 {
                        return Err(err("loop runs too long (or its step is not positive)".into()));
                    }
                    i += step;
                }
            }
            Inst::If { cond, then_body, else_body } => {
                let c = self.uniform(Opnd::Reg(*cond), "branch condition")?;
                if c != 0 {
                    self.block(then_body)?;
                } else {
                    self.block(else_body)?;
                }
            }
        }
        Ok(())
    }
}

/// A 16-bit mma operand (the low half of `x`) as a number.
fn half_value(kind: MmaKind, x: u64) -> f64 {
    let bits = x as u16;
    match kind {
        MmaKind::BF16 => half::bf16::from_bits(bits).to_f64(),
        _ => half::f16::from_bits(bits).to_f64(),
    }
}

/// A tf32 mma operand: the top 19 bits of the register as an f32.
fn tf32_value(x: u64) -> f64 {
    f64::from(f32::from_bits(x as u32 & 0xffff_e000))
}

/// `cvt.rna.tf32.f32`: round to 10 mantissa bits, ties away from zero; the low 13 bits of the
/// result are zero. NaN and infinities pass through.
fn to_tf32(x: u32) -> u32 {
    if (x & 0x7f80_0000) == 0x7f80_0000 {
        return if x & 0x007f_ffff != 0 { 0x7fff_ffff } else { x };
    }
    x.wrapping_add(0x1000) & 0xffff_e000
}

fn unary(op: UnOp, ty: Ty, x: u64) -> u64 {
    if ty == Ty::Pred {
        return u64::from(x == 0);
    }
    if ty.is_float() {
        let v = float_of(ty, x);
        let r = match op {
            UnOp::Neg => -v,
            UnOp::Abs => v.abs(),
            UnOp::Not => v,
            UnOp::Ex2 => v.exp2(),
            UnOp::Lg2 => v.log2(),
            UnOp::Sqrt => v.sqrt(),
            UnOp::Rsqrt => 1.0 / v.sqrt(),
            UnOp::Rcp => {
                if ty == Ty::F32 {
                    return of_f32(1.0 / f32_of(x));
                }
                1.0 / v
            }
            UnOp::Sin => v.sin(),
            UnOp::Cos => v.cos(),
        };
        if ty == Ty::F32 && matches!(op, UnOp::Sqrt) {
            return of_f32(f32_of(x).sqrt());
        }
        return float_to(ty, r);
    }
    let r = match op {
        UnOp::Neg => sext(ty, x).wrapping_neg() as u64,
        UnOp::Not => !x,
        UnOp::Abs => sext(ty, x).wrapping_abs() as u64,
        _ => x,
    };
    trunc(ty, r)
}

fn binary(op: BinOp, ty: Ty, x: u64, y: u64) -> u64 {
    if ty == Ty::Pred {
        let (a, b) = (x != 0, y != 0);
        return u64::from(match op {
            BinOp::And => a && b,
            BinOp::Or => a || b,
            BinOp::Xor => a ^ b,
            _ => false,
        });
    }
    if ty == Ty::F32 {
        let (a, b) = (f32_of(x), f32_of(y));
        let r = match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Min => fmin(f64::from(a), f64::from(b)) as f32,
            BinOp::Max => fmax(f64::from(a), f64::from(b)) as f32,
            BinOp::CopySign => b.abs().copysign(a),
            _ => f32::NAN,
        };
        return of_f32(r);
    }
    if ty.is_float() {
        let (a, b) = (float_of(ty, x), float_of(ty, y));
        let r = match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Min => fmin(a, b),
            BinOp::Max => fmax(a, b),
            BinOp::CopySign => b.abs().copysign(a),
            _ => f64::NAN,
        };
        return float_to(ty, r);
    }
    let bits = ty.bytes() * 8;
    let signed = ty.is_signed();
    let (sa, sb) = (sext(ty, x), sext(ty, y));
    let (ua, ub) = (trunc(ty, x), trunc(ty, y));
    let r = match op {
        BinOp::Add => ua.wrapping_add(ub),
        BinOp::Sub => ua.wrapping_sub(ub),
        BinOp::Mul => ua.wrapping_mul(ub),
        BinOp::Div => {
            if ub == 0 {
                u64::MAX
            } else if signed {
                sa.wrapping_div(sb) as u64
            } else {
                ua / ub
            }
        }
        BinOp::Rem => {
            if ub == 0 {
                ua
            } else if signed {
                sa.wrapping_rem(sb) as u64
            } else {
                ua % ub
            }
        }
        BinOp::And => ua & ub,
        BinOp::Or => ua | ub,
        BinOp::Xor => ua ^ ub,
        BinOp::Shl => {
            let s = trunc(Ty::U32, y);
            if s >= u64::from(bits) {
                0
            } else {
                ua << s
            }
        }
        BinOp::Shr => {
            let s = trunc(Ty::U32, y).min(u64::from(bits) - 1 + u64::from(!signed));
            if signed {
                (sa >> s.min(63)) as u64
            } else if s >= u64::from(bits) {
                0
            } else {
                ua >> s
            }
        }
        BinOp::Min => {
            if signed {
                sa.min(sb) as u64
            } else {
                ua.min(ub)
            }
        }
        BinOp::Max => {
            if signed {
                sa.max(sb) as u64
            } else {
                ua.max(ub)
            }
        }
        BinOp::CopySign => ua,
    };
    trunc(ty, r)
}

fn setp(cmp: Cmp, ty: Ty, x: u64, y: u64) -> bool {
    if ty.is_float() {
        let (a, b) = (float_of(ty, x), float_of(ty, y));
        return match cmp {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Nan => a.is_nan() || b.is_nan(),
        };
    }
    let o = if ty.is_signed() {
        sext(ty, x).cmp(&sext(ty, y))
    } else {
        trunc(ty, x).cmp(&trunc(ty, y))
    };
    match cmp {
        Cmp::Eq => o.is_eq(),
        Cmp::Ne => o.is_ne(),
        Cmp::Lt => o.is_lt(),
        Cmp::Le => o.is_le(),
        Cmp::Gt => o.is_gt(),
        Cmp::Ge => o.is_ge(),
        Cmp::Nan => false,
    }
}

fn cvt(round: Round, dty: Ty, sty: Ty, x: u64) -> u64 {
    match (sty.is_float(), dty.is_float()) {
        (true, true) => {
            if dty == Ty::Tf32 {
                return u64::from(to_tf32(x as u32));
            }
            let v = float_of(sty, x);
            let v = match round {
                Round::Rmi => v.floor(),
                Round::Rpi => v.ceil(),
                _ => v,
            };
            if sty == Ty::F32 && dty == Ty::F16 {
                return u64::from(half::f16::from_f32(f32_of(x)).to_bits());
            }
            if sty == Ty::F32 && dty == Ty::BF16 {
                return u64::from(half::bf16::from_f32(f32_of(x)).to_bits());
            }
            float_to(dty, v)
        }
        (true, false) => {
            let v = float_of(sty, x).trunc();
            let r = match dty {
                Ty::S32 => v as i32 as i64 as u64,
                Ty::U32 => u64::from(v as u32),
                Ty::S64 => v as i64 as u64,
                Ty::U64 => v as u64,
                Ty::S16 => v as i16 as i64 as u64,
                Ty::U16 => u64::from(v as u16),
                Ty::S8 => v as i8 as i64 as u64,
                _ => u64::from(v as u8),
            };
            trunc(dty, r)
        }
        (false, true) => {
            if sty.is_signed() {
                let v = sext(sty, x);
                match dty {
                    Ty::F32 => of_f32(v as f32),
                    Ty::F64 => (v as f64).to_bits(),
                    _ => float_to(dty, v as f64),
                }
            } else {
                let v = trunc(sty, x);
                match dty {
                    Ty::F32 => of_f32(v as f32),
                    Ty::F64 => (v as f64).to_bits(),
                    _ => float_to(dty, v as f64),
                }
            }
        }
        (false, false) => {
            let v = if sty.is_signed() { sext(sty, x) as u64 } else { trunc(sty, x) };
            trunc(dty, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tf32_rounds_to_nearest_ties_away() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: away from zero.
        let half_way = 1.0f32 + 2f32.powi(-11);
        assert_eq!(f32::from_bits(to_tf32(half_way.to_bits())), 1.0 + 2f32.powi(-10));
        assert_eq!(f32::from_bits(to_tf32((-half_way).to_bits())), -(1.0 + 2f32.powi(-10)));
        // Just below halfway rounds down.
        let below = f32::from_bits(half_way.to_bits() - 1);
        assert_eq!(f32::from_bits(to_tf32(below.to_bits())), 1.0);
        assert_eq!(to_tf32(f32::INFINITY.to_bits()), f32::INFINITY.to_bits());
        assert!(f32::from_bits(to_tf32(f32::NAN.to_bits())).is_nan());
        // The largest finite f32 rounds up to infinity (its mantissa is all ones).
        assert_eq!(to_tf32(f32::MAX.to_bits()), f32::INFINITY.to_bits());
    }
}
