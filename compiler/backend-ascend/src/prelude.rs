//! The helper functions every emitted kernel file starts with: tiling copy-in, exact float
//! constants, saturating casts, NaN-propagating scalar min/max, and the scalar-unit top-k/sort
//! fallback. They use only scalar code and `LocalTensor::GetValue/SetValue`, so they compile for
//! the NPU and against the simulation header alike.

/// C++ source of the prelude (guarded so that several kernels can share one translation unit).
pub const PRELUDE: &str = r#"#ifndef TK_ASCEND_PRELUDE
#define TK_ASCEND_PRELUDE
#ifdef ASCENDC_CPU_DEBUG
#define TK_DEVICE_ASSERT(cond, msg) do { if (!(cond)) ::tk_sim::fail(std::string("device_assert failed: ") + (msg)); } while (0)
#else
// device_assert is checked by the interpreter and CPU-debug builds only.
#define TK_DEVICE_ASSERT(cond, msg) do { (void)sizeof(cond); } while (0)
#endif

// Copies the tiling struct out of GM with scalar reads (the classic kernel-launch style).
template <typename T>
__aicore__ inline void tk_load_tiling(T* dst, GM_ADDR src)
{
    uint8_t* d = reinterpret_cast<uint8_t*>(dst);
    for (uint32_t i = 0; i < sizeof(T); ++i) {
        d[i] = src[i];
    }
}

__aicore__ inline float tk_f32_from_bits(uint32_t b)
{
    union { uint32_t u; float f; } c;
    c.u = b;
    return c.f;
}

__aicore__ inline uint32_t tk_f32_bits(float f)
{
    union { uint32_t u; float f; } c;
    c.f = f;
    return c.u;
}

// Elements of a contiguous run of `n` valid elements (clamped to [0, cols]).
__aicore__ inline int64_t tk_clamp_len(int64_t n, int64_t cols)
{
    return n < 0 ? 0 : (n > cols ? cols : n);
}

__aicore__ inline int64_t tk_min_len(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

// Elements of right padding that bring `n` elements up to a whole 32-byte block.
__aicore__ inline uint8_t tk_rpad(int64_t n, int64_t per_block)
{
    return (uint8_t)((per_block - n % per_block) % per_block);
}

template <typename T>
__aicore__ inline T tk_imin(T a, T b) { return a < b ? a : b; }
template <typename T>
__aicore__ inline T tk_imax(T a, T b) { return a > b ? a : b; }

// NaN-propagating minimum/maximum (tk's `minimum`/`maximum`).
__aicore__ inline float tk_fmax(float a, float b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return tk_f32_bits(a) == 0x80000000u ? b : a;
    return a > b ? a : b;
}
__aicore__ inline float tk_fmin(float a, float b)
{
    if (a != a || b != b) return a + b;
    if (a == b) return tk_f32_bits(a) == 0x80000000u ? a : b;
    return a < b ? a : b;
}

template <typename T>
__aicore__ inline T tk_shl(T a, int64_t s) { return (s < 0 || s >= (int64_t)(8 * sizeof(T))) ? (T)0 : (T)(a << s); }
template <typename T>
__aicore__ inline T tk_shr(T a, int64_t s)
{
    if (s < 0 || s >= (int64_t)(8 * sizeof(T))) return (T)(a < (T)0 ? (T)-1 : (T)0);
    return (T)(a >> s);
}

// Float -> integer: truncate toward zero, saturate, NaN -> 0.
template <typename T>
__aicore__ inline T tk_f2i(float x, double lo, double hi)
{
    if (x != x) return (T)0;
    double d = (double)x;
    if (d <= lo) return (T)lo;
    if (d >= hi) return (T)hi;
    return (T)d;
}

// `a` (index ia) comes before `b` (index ib): descending puts larger first, ascending smaller
// first; NaN counts as the greatest value; equal values keep index order.
template <typename T>
__aicore__ inline bool tk_before(T a, int32_t ia, T b, int32_t ib, bool desc)
{
    double x = (double)a;
    double y = (double)b;
    bool xn = x != x;
    bool yn = y != y;
    if (xn || yn) {
        if (xn && yn) return ia < ib;
        return desc ? xn : yn;
    }
    if (x == y) return ia < ib;
    return desc ? x > y : x < y;
}

// The first `k` elements of row `src[src_off .. src_off + n)` in `tk_before` order, by repeated
// selection on the scalar unit (O(k·n), no scratch memory).
template <typename T>
__aicore__ inline void tk_select_row(const AscendC::LocalTensor<T>& vals, const AscendC::LocalTensor<int32_t>& idx,
                                     uint32_t out_off, const AscendC::LocalTensor<T>& src, uint32_t src_off,
                                     int32_t n, int32_t k, bool desc)
{
    int32_t prev = -1;
    T pv = src.GetValue(src_off);
    for (int32_t kk = 0; kk < k; ++kk) {
        int32_t best = -1;
        T bv = pv;
        for (int32_t i = 0; i < n; ++i) {
            T x = src.GetValue(src_off + (uint32_t)i);
            if (prev >= 0 && !tk_before(pv, prev, x, i, desc)) continue;
            if (best < 0 || tk_before(x, i, bv, best, desc)) {
                best = i;
                bv = x;
            }
        }
        vals.SetValue(out_off + (uint32_t)kk, bv);
        idx.SetValue(out_off + (uint32_t)kk, best);
        prev = best;
        pv = bv;
    }
}

#if !defined(__CCE_AICORE__) || __CCE_AICORE__ != 200
// The same selection on the vector unit (A2/A3): Sort32 sorts groups of 32 (score, index)
// proposals, MrgSort merges up to 4 sorted runs per pass, and the first `k` proposals give the
// indices; values are read back from `src` by index. Sort32/MrgSort order equal scores by
// position, which is tk's tie rule; ascending order sorts the negated scores; padding lanes hold
// -inf past every real element. Their order of NaN is not documented, so a row with a NaN (or an
// infinity, which the check cannot tell apart) returns false and the caller selects on the
// scalar unit. Scratch: `sc` n32 scores, `ix` n32 indices, `pa`/`pb` n32 proposals (8 bytes).
template <typename T>
__aicore__ inline bool tk_vsort_row(const AscendC::LocalTensor<T>& vals, const AscendC::LocalTensor<int32_t>& idx,
                                    uint32_t out_off, const AscendC::LocalTensor<T>& src, uint32_t src_off, int32_t n,
                                    int32_t k, bool desc, const AscendC::LocalTensor<T>& sc,
                                    const AscendC::LocalTensor<int32_t>& ix, const AscendC::LocalTensor<T>& pa,
                                    const AscendC::LocalTensor<T>& pb, int32_t n32)
{
    const int32_t per = 8 / (int32_t)sizeof(T);  // elements of T per proposal
    // x * 0 is 0 for finite x and NaN for NaN or +-inf; the sum tells whether all are finite.
    AscendC::Muls(sc, src[src_off], (T)0.0f, n);
    AscendC::PipeBarrier<AscendC::PIPE_V>();
    AscendC::ReduceSum(pa, sc, pb, n);
    AscendC::SetFlag<AscendC::HardEvent::V_S>(0);
    AscendC::WaitFlag<AscendC::HardEvent::V_S>(0);
    const float finite = (float)pa.GetValue(0);
    AscendC::SetFlag<AscendC::HardEvent::S_V>(0);
    AscendC::WaitFlag<AscendC::HardEvent::S_V>(0);
    if (finite != 0.0f) {
        return false;
    }
    AscendC::Duplicate(sc, (T)tk_f32_from_bits(0xff800000u), n32);
    AscendC::CreateVecIndex(ix, (int32_t)0, (uint32_t)n32);
    AscendC::PipeBarrier<AscendC::PIPE_V>();
    AscendC::Muls(sc, src[src_off], (T)(desc ? 1.0f : -1.0f), n);
    AscendC::PipeBarrier<AscendC::PIPE_V>();
    AscendC::Sort32(pa, sc, ix.template ReinterpretCast<uint32_t>(), n32 / 32);
    bool in_a = true;
    for (int32_t len = 32; len < n32; len *= 4) {
        AscendC::PipeBarrier<AscendC::PIPE_V>();
        const AscendC::LocalTensor<T>& from = in_a ? pa : pb;
        const AscendC::LocalTensor<T>& to = in_a ? pb : pa;
        for (int32_t g = 0; g < n32; g += 4 * len) {
            uint16_t lens[4] = {0, 0, 0, 0};
            int32_t queues = 0;
            for (int32_t q = 0; q < 4 && g + q * len < n32; ++q) {
                const int32_t rest = n32 - g - q * len;
                lens[q] = (uint16_t)(rest < len ? rest : len);
                queues += 1;
            }
            if (queues == 1) {
                AscendC::DataCopy(to[g * per], from[g * per], (uint32_t)(lens[0] * per));
                continue;
            }
            AscendC::MrgSortSrcList<T> list(from[g * per], from[(g + len) * per],
                                            from[(g + (queues > 2 ? 2 : 1) * len) * per],
                                            from[(g + (queues > 3 ? 3 : 1) * len) * per]);
            AscendC::MrgSort4Info info(lens, false, (uint16_t)(queues == 2 ? 3 : queues == 3 ? 7 : 15), 1);
            AscendC::MrgSort(to[g * per], list, info);
        }
        in_a = !in_a;
    }
    const AscendC::LocalTensor<uint32_t> sorted = (in_a ? pa : pb).template ReinterpretCast<uint32_t>();
    AscendC::SetFlag<AscendC::HardEvent::V_S>(0);
    AscendC::WaitFlag<AscendC::HardEvent::V_S>(0);
    for (int32_t i = 0; i < k; ++i) {
        const uint32_t id = sorted.GetValue((uint32_t)i * 2 + 1);
        vals.SetValue(out_off + (uint32_t)i, src.GetValue(src_off + id));
        idx.SetValue(out_off + (uint32_t)i, (int32_t)id);
    }
    // The next row's vector writes must not overtake these scalar reads.
    AscendC::SetFlag<AscendC::HardEvent::S_V>(0);
    AscendC::WaitFlag<AscendC::HardEvent::S_V>(0);
    return true;
}
#endif
#endif  // TK_ASCEND_PRELUDE
"#;
