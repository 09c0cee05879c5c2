//! f32 transcendental functions as inline code on scalars or vectors: range reduction plus a
//! polynomial, evaluated with `llvm.fma` so that every host computes the same bits (an FMA is
//! exact by definition, whether the CPU has the instruction or LLVM calls `fmaf`).
//!
//! Error bounds, measured by `tests/vmath.rs` against the interpreter's f64 functions rounded to
//! f32 over dense sweeps (every float in the interesting ranges, plus random bit patterns):
//!
//! | function  | reduction / polynomial                                        | max error |
//! |-----------|---------------------------------------------------------------|-----------|
//! | `exp`     | `x = n·ln2 + r` (Cody–Waite, two constants), Cephes degree 6  | 1 ulp     |
//! | `exp2`    | `x = n + f`, `2^f = exp(f·ln2)`                               | 1 ulp     |
//! | `log`     | `x = 2^e·m`, `m ∈ [√½, √2)`, Cephes degree 9                  | 1 ulp     |
//! | `log2`    | as `log`, scaled by a split `log2(e)`                          | 1 ulp     |
//! | `tanh`    | odd polynomial below 0.625, `1 - 2/(e^{2x}+1)` above          | 1 ulp     |
//! | `sigmoid` | `e = exp(-|x|)`, `1/(1+e)` or `e/(1+e)`                       | 2 ulp     |
//! | `erf`     | odd polynomial below 0.9277, `1 - exp(-p(x))` above (the      | 1 ulp     |
//! |           | minimax fits of N. Juffa's `erff`)                             |           |
//!
//! (2.1 million inputs per function; the tests assert these bounds and print where the maximum
//! occurs.) `sin` and `cos` compute in f64 lanes ([`sin_cos_f64`]: fdlibm's kernels after a
//! two-constant reduction) and round once, which gives the correctly rounded f32 result (0 ulp
//! over the sweep); lanes with `|x| > 2^20` take the C library's exact reduction on a branch.
//! Special values follow IEEE: NaN propagates, `exp(-inf) = 0`, `exp(inf) = inf`,
//! `log(0) = -inf`, `log(x < 0) = NaN`, results that underflow become subnormal or zero.
//! Denormal inputs and outputs are handled exactly as normal ones (no flush to zero).

use crate::codegen::R;
use crate::lanes::{Fp, Sc, V};

/// `1.5 · 2^23`: adding it rounds a float below 2^22 in magnitude to an integer, which is then
/// the low bits of the sum's representation.
const MAGIC: f64 = 12582912.0;

/// Horner evaluation `((c0·x + c1)·x + c2)…` with fused multiply-adds.
fn horner<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>, coeffs: &[f64]) -> R<V<'ctx>> {
    let mut p = s.cf(x, coeffs[0]);
    for &c in &coeffs[1..] {
        p = s.vfma(p, x, s.cf(x, c))?;
    }
    Ok(p)
}

/// `x` clamped to `[lo, hi]` with compare-and-select, so that NaN stays NaN.
fn clamp<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>, lo: f64, hi: f64) -> V<'ctx> {
    let (l, h) = (s.cf(x, lo), s.cf(x, hi));
    let x = s.sel(s.fcmp(Fp::Ogt, x, h), h, x);
    s.sel(s.fcmp(Fp::Olt, x, l), l, x)
}

/// The integer nearest to `x` (|x| < 2^22) as float and as i32 bits.
fn round_int<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> (V<'ctx>, V<'ctx>) {
    let magic = s.cf(x, MAGIC);
    let t = s.fadd(x, magic);
    let i32t = s.cx.i32_type().into();
    let n_int = s.sub(s.bitcast(t, i32t), s.bitcast(magic, i32t));
    (s.fsub(t, magic), n_int)
}

/// `y · 2^n` for integer lanes `n` in `[-151, 129]`, as two exact power-of-two factors so that
/// subnormal results round once.
fn scale<'ctx>(s: &Sc<'_, 'ctx>, y: V<'ctx>, n: V<'ctx>) -> V<'ctx> {
    let f32t = s.cx.f32_type().into();
    let n1 = s.ashr(n, s.ci(n, 1));
    let n2 = s.sub(n, n1);
    let pow = |k: V<'ctx>| s.bitcast(s.shl(s.add(k, s.ci(k, 127)), s.ci(k, 23)), f32t);
    s.fmul(s.fmul(y, pow(n1)), pow(n2))
}

/// `e^r - 1 - r` shape: Cephes `expf` polynomial for `r ∈ [-ln2/2, ln2/2]`, returning `e^r`.
fn exp_poly<'ctx>(s: &Sc<'_, 'ctx>, r: V<'ctx>) -> R<V<'ctx>> {
    let p = horner(
        s,
        r,
        &[
            1.987_569_150_0e-4,
            1.398_199_950_7e-3,
            8.333_451_907_3e-3,
            4.166_579_589_4e-2,
            1.666_666_545_9e-1,
            5.000_000_120_1e-1,
        ],
    )?;
    let z = s.fmul(r, r);
    let y = s.vfma(p, z, r)?;
    Ok(s.fadd(y, s.cf(r, 1.0)))
}

/// `e^x` in f32.
pub(crate) fn exp<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let xc = clamp(s, x, -104.0, 89.0);
    let (n, ni) = round_int(s, s.fmul(xc, s.cf(x, std::f64::consts::LOG2_E)));
    // ln 2 = C1 + C2 with C1 exact in 9 bits, so n·C1 is exact for |n| < 2^15.
    let r = s.vfma(n, s.cf(x, -0.693_359_375), xc)?;
    let r = s.vfma(n, s.cf(x, 2.121_944_400_546_905_8e-4), r)?;
    let y = exp_poly(s, r)?;
    Ok(scale(s, y, ni))
}

/// `2^x` in f32.
pub(crate) fn exp2<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let xc = clamp(s, x, -151.0, 129.0);
    let (n, ni) = round_int(s, xc);
    let f = s.fsub(xc, n);
    // f·ln2 with the product's low part folded in (ln2 = hi + lo).
    let lo = s.fmul(f, s.cf(x, 1.904_654_299_957_768e-9));
    let r = s.vfma(f, s.cf(x, 0.693_147_182_464_599_6), lo)?;
    let y = exp_poly(s, r)?;
    Ok(scale(s, y, ni))
}

/// `(m - 1, e)` with `x = 2^e · m`, `m ∈ [√½, √2)`, for positive finite `x` (subnormals
/// included); `e` as float.
fn log_reduce<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<(V<'ctx>, V<'ctx>)> {
    let i32t = s.cx.i32_type().into();
    let f32t = s.cx.f32_type().into();
    let tiny = s.fcmp(Fp::Olt, x, s.cf(x, f32::MIN_POSITIVE as f64));
    let xs = s.sel(tiny, s.fmul(x, s.cf(x, 8_388_608.0)), x);
    let bits = s.bitcast(xs, i32t);
    let exp_bits = s.and(s.lshr(bits, s.ci(bits, 23)), s.ci(bits, 0xff));
    let bias = s.sel(tiny, s.ci(bits, 126 + 23), s.ci(bits, 126));
    let e = s.sub(exp_bits, bias);
    let mbits = s.or(s.and(bits, s.ci(bits, 0x807f_ffff)), s.ci(bits, 0x3f00_0000));
    let m = s.bitcast(mbits, f32t);
    // m ∈ [0.5, 1): below √½ use 2m (and e - 1).
    let small = s.fcmp(Fp::Olt, m, s.cf(x, std::f64::consts::FRAC_1_SQRT_2));
    let e = s.sel(small, s.sub(e, s.ci(e, 1)), e);
    let m2 = s.sel(small, s.fadd(m, m), m);
    let t = s.fsub(m2, s.cf(x, 1.0));
    let fe = s.conv(inkwell::llvm_sys::LLVMOpcode::LLVMSIToFP, e, f32t);
    Ok((t, fe))
}

/// Cephes `logf` polynomial: `log(1 + t) - t` for `t ∈ [√½ - 1, √2 - 1)`.
fn log_poly<'ctx>(s: &Sc<'_, 'ctx>, t: V<'ctx>) -> R<V<'ctx>> {
    let p = horner(
        s,
        t,
        &[
            7.037_683_629_2e-2,
            -1.151_461_031_0e-1,
            1.167_699_874_0e-1,
            -1.242_014_084_6e-1,
            1.424_932_278_7e-1,
            -1.666_805_766_5e-1,
            2.000_071_476_5e-1,
            -2.499_999_399_3e-1,
            3.333_333_117_4e-1,
        ],
    )?;
    let z = s.fmul(t, t);
    let y = s.fmul(s.fmul(p, t), z);
    s.vfma(z, s.cf(t, -0.5), y)
}

/// IEEE special cases of a logarithm: NaN and negative → NaN, 0 → -inf, +inf → +inf.
fn log_specials<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>, r: V<'ctx>) -> V<'ctx> {
    let inf = s.cf(x, f64::INFINITY);
    let r = s.sel(s.fcmp(Fp::Oeq, x, inf), inf, r);
    let r = s.sel(s.fcmp(Fp::Oeq, x, s.cf(x, 0.0)), s.cf(x, f64::NEG_INFINITY), r);
    // `ult 0` is true for NaN and negative numbers.
    s.sel(s.fcmp(Fp::Ult, x, s.cf(x, 0.0)), s.cf(x, f64::NAN), r)
}

/// Natural logarithm in f32.
pub(crate) fn log<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let (t, fe) = log_reduce(s, x)?;
    let y = log_poly(s, t)?;
    let y = s.vfma(fe, s.cf(x, -2.121_944_400_546_905_8e-4), y)?;
    let r = s.fadd(t, y);
    let r = s.vfma(fe, s.cf(x, 0.693_359_375), r)?;
    Ok(log_specials(s, x, r))
}

/// Base-2 logarithm in f32.
pub(crate) fn log2<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let (t, fe) = log_reduce(s, x)?;
    let y = log_poly(s, t)?;
    // log2(1+t) = (t + y)·log2(e) with log2(e) = hi + lo, hi·t exact in the final fma.
    let lo =
        s.vfma(t, s.cf(x, 1.925_963_033_500_011e-8), s.fmul(y, s.cf(x, std::f64::consts::LOG2_E)))?;
    let r = s.vfma(t, s.cf(x, 1.442_695_021_629_333_5), lo)?;
    let r = s.fadd(r, fe);
    Ok(log_specials(s, x, r))
}

fn fabs<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    s.un_intr("llvm.fabs", x)
}

/// Hyperbolic tangent in f32.
pub(crate) fn tanh<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let a = fabs(s, x)?;
    let z = s.fmul(x, x);
    let p = horner(
        s,
        z,
        &[
            -5.704_988_727_45e-3,
            2.063_908_879_54e-2,
            -5.373_971_555_31e-2,
            1.333_144_220_36e-1,
            -3.333_328_194_22e-1,
        ],
    )?;
    let small = s.vfma(s.fmul(p, z), x, x)?;
    // 1 - 2/(e^{2a} + 1): exp overflows to inf for large a, giving exactly 1.
    let e = exp(s, s.fadd(a, a))?;
    let one = s.cf(x, 1.0);
    let big = s.fsub(one, s.fdiv(s.cf(x, 2.0), s.fadd(e, one)));
    let big = s.bin_intr("llvm.copysign", big, x)?;
    Ok(s.sel(s.fcmp(Fp::Olt, a, s.cf(x, 0.625)), small, big))
}

/// Logistic sigmoid `1 / (1 + e^-x)` in f32, accurate on both tails.
pub(crate) fn sigmoid<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let a = fabs(s, x)?;
    let e = exp(s, s.fneg(a))?;
    let one = s.cf(x, 1.0);
    let num = s.sel(s.fcmp(Fp::Oge, x, s.cf(x, 0.0)), one, e);
    // NaN: `oge` is false, so num = e = NaN.
    Ok(s.fdiv(num, s.fadd(one, e)))
}

/// Error function in f32.
pub(crate) fn erf<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>) -> R<V<'ctx>> {
    let a = fabs(s, x)?;
    let sq = s.fmul(x, x);
    // |x| <= 0.927734375: x + x·p(x²).
    let p = horner(
        s,
        sq,
        &[
            -5.967_617_03e-4,
            4.991_194_23e-3,
            -2.676_813_49e-2,
            1.128_199_25e-1,
            -3.761_253_36e-1,
            1.283_791_66e-1,
        ],
    )?;
    let small = s.vfma(p, x, x)?;
    // Above: 1 - exp(q(a)), with a clamped where erf rounds to 1 anyway.
    let t = clamp(s, a, 0.0, 4.0);
    let st = s.fmul(t, t);
    let r = s.vfma(s.cf(x, -1.728_534_70e-5), t, s.cf(x, 3.831_971_26e-4))?;
    let u = s.vfma(s.cf(x, -3.883_964_38e-3), t, s.cf(x, 2.425_462_19e-2))?;
    let r = s.vfma(r, st, u)?;
    let r = s.vfma(r, t, s.cf(x, -1.067_778_77e-1))?;
    let r = s.vfma(r, t, s.cf(x, -6.348_466_87e-1))?;
    let r = s.vfma(r, t, s.cf(x, -1.287_175_12e-1))?;
    let r = s.vfma(r, t, s.fneg(t))?;
    let big = s.fsub(s.cf(x, 1.0), exp(s, r)?);
    let big = s.bin_intr("llvm.copysign", big, x)?;
    // `ugt` sends NaN to the small path, which propagates it.
    let is_small = s.fcmp(Fp::Ugt, s.cf(x, 0.927_734_375), a);
    Ok(s.sel(is_small, small, big))
}

/// `sin` (or `cos`) of f64 lanes with `|x| <= 2^20`: `x = j·π/2 + r` with a two-part `π/2`
/// (exact with fused multiply-adds for such `j`), then fdlibm's `__kernel_sin`/`__kernel_cos`
/// polynomials on `|r| <= π/4` (below 1 ulp of f64), and the quadrant. Rounded to f32 by the
/// caller, the result is the correctly rounded one except in double-rounding ties.
pub(crate) fn sin_cos_f64<'ctx>(s: &Sc<'_, 'ctx>, x: V<'ctx>, cos: bool) -> R<V<'ctx>> {
    let i64t = s.cx.i64_type().into();
    let magic = s.cf(x, 6_755_399_441_055_744.0); // 1.5 · 2^52
    let t = s.fadd(s.fmul(x, s.cf(x, std::f64::consts::FRAC_2_PI)), magic);
    let j = s.fsub(t, magic);
    let ji = s.sub(s.bitcast(t, i64t), s.bitcast(magic, i64t));
    let r = s.vfma(s.fneg(j), s.cf(x, std::f64::consts::FRAC_PI_2), x)?;
    let r = s.vfma(s.fneg(j), s.cf(x, 6.123_233_995_736_766e-17), r)?;
    let z = s.fmul(r, r);
    let ps = horner(
        s,
        z,
        &[
            1.589_690_995_211_55e-10,
            -2.505_076_025_340_686_3e-8,
            2.755_731_370_707_006_8e-6,
            -1.984_126_982_985_795e-4,
            8.333_333_333_322_49e-3,
            -1.666_666_666_666_663_2e-1,
        ],
    )?;
    let sin_r = s.vfma(s.fmul(r, z), ps, r)?;
    let pc = horner(
        s,
        z,
        &[
            -1.135_964_755_778_819_5e-11,
            2.087_572_321_298_175e-9,
            -2.755_731_435_139_066_3e-7,
            2.480_158_728_947_673e-5,
            -1.388_888_888_887_411e-3,
            4.166_666_666_666_66e-2,
        ],
    )?;
    let cos_r = s.vfma(s.fmul(z, z), pc, s.vfma(z, s.cf(x, -0.5), s.cf(x, 1.0))?)?;
    let q = if cos { s.add(ji, s.ci(ji, 1)) } else { ji };
    let odd = s.icmp(crate::lanes::Ip::Ne, s.and(q, s.ci(q, 1)), s.ci(q, 0));
    let neg = s.icmp(crate::lanes::Ip::Ne, s.and(q, s.ci(q, 2)), s.ci(q, 0));
    let v = s.sel(odd, cos_r, sin_r);
    Ok(s.sel(neg, s.fneg(v), v))
}
