// tk_ascend_sim.h — a CPU simulation of the Ascend C API subset that tk's Ascend backend emits.
//
// Written from the documented semantics collected in shared/reference/ascendc.md (classic CANN 8.x
// dialect). It is NOT CANN's CPU-debug library: it implements the high-level API directly in C++,
// runs the blocks of a launch one after another in one process, and turns every rule that real
// hardware breaks silently into an error:
//
//   - DataCopy element counts whose byte size is not a multiple of 32 (NPU rounds down silently);
//   - UB addresses that are not 32-byte aligned;
//   - Unified Buffer capacity (184 KB usable of 192 KB on 910B, 248 KB of 256 KB on 310P);
//   - queue order: DeQue with nothing EnQue'd, EnQue past the depth, AllocTensor with no free
//     buffer, double FreeTensor, tensors never freed, more than 8 queue buffers per position;
//   - use of a LocalTensor after FreeTensor; reads/writes past the end of a LocalTensor;
//   - Compare counts that are not a multiple of 256 bytes; repeat/block-count limits;
//   - SetFlag/WaitFlag pairing; DataCopyPad on 310P (which lacks it);
//   - GM accesses outside the buffers the host registered with GmAlloc (when any are registered).
//
// Errors are thrown as tk_sim::SimError inside a block and recorded by tk_sim::launch (or
// ICPU_RUN_KF), which returns false; tk_sim::errors() holds the messages. The simulation also
// counts bytes moved between GM and UB and vector instructions (tk_sim::stats()).
//
// Choose the chip with -DTK_SIM_SOC_310P (default: Ascend910B).
#ifndef TK_ASCEND_SIM_H
#define TK_ASCEND_SIM_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

// ---- keywords (empty in CPU mode, as in CANN's stub_def.h) --------------------------------------
#define __global__
#define __aicore__
#define __gm__
#define __ubuf__
#define __cbuf__
#define __ca__
#define __cb__
#define __cc__
#define __fbuf__
#ifndef GM_ADDR
#define GM_ADDR uint8_t*
#endif
#define KERNEL_TASK_TYPE_DEFAULT(type) ::tk_sim::set_kernel_type((int)(type))

#ifdef TK_SIM_SOC_310P
#define TK_SIM_UB_PHYSICAL (256u * 1024u)
#define TK_SIM_UB_USABLE (248u * 1024u)
#define TK_SIM_L1 (1024u * 1024u)
#define TK_SIM_L0C (256u * 1024u)
#define TK_SIM_HAS_DATACOPYPAD 0
#define TK_SIM_SPLIT_CORES 0
#define TK_SIM_SOC_NAME "Ascend310P"
#else
#define TK_SIM_UB_PHYSICAL (192u * 1024u)
#define TK_SIM_UB_USABLE (184u * 1024u)
#define TK_SIM_L1 (512u * 1024u)
#define TK_SIM_L0C (128u * 1024u)
#define TK_SIM_HAS_DATACOPYPAD 1
#define TK_SIM_SPLIT_CORES 1
#define TK_SIM_SOC_NAME "Ascend910B"
#endif
#define TK_SIM_L0A (64u * 1024u)
#define TK_SIM_L0B (64u * 1024u)

// Kernel types of KERNEL_TASK_TYPE_DEFAULT. On 910B (split cores) an AIV-only kernel has no L1/L0
// buffers and an AIC-only kernel has no Unified Buffer; the simulation enforces both.
enum KernelMetaType : int {
    KERNEL_TYPE_AIV_ONLY = 0,
    KERNEL_TYPE_AIC_ONLY,
    KERNEL_TYPE_MIX_AIV_1_0,
    KERNEL_TYPE_MIX_AIC_1_0,
    KERNEL_TYPE_MIX_AIC_1_1,
    KERNEL_TYPE_MIX_AIC_1_2,
    KERNEL_TYPE_AICORE,
    KERNEL_TYPE_VECTOR_CORE,
    KERNEL_TYPE_MIX_AICORE,
    KERNEL_TYPE_MIX_VECTOR_CORE,
};

// ---- half and bfloat16_t: 16-bit storage, arithmetic through float -----------------------------
namespace tk_sim {
inline uint32_t f32_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float f32_from_bits(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
// float -> IEEE binary16, round to nearest even.
inline uint16_t f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xffu) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u : 0u));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half_man = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1u);
        if (rem > mid || (rem == mid && (half_man & 1u))) half_man++;
        return (uint16_t)(sign | half_man);
    }
    uint32_t half_man = man >> 13;
    uint32_t rem = man & 0x1fffu;
    uint32_t out = sign | ((uint32_t)e << 10) | half_man;
    if (rem > 0x1000u || (rem == 0x1000u && (half_man & 1u))) out++;
    return (uint16_t)out;
}
inline float f16_to_f32(uint16_t h) {
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t exp = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t man = (uint32_t)h & 0x3ffu;
    if (exp == 0) {
        if (man == 0) return f32_from_bits(sign);
        float v = std::ldexp((float)man, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    return f32_from_bits(sign | ((exp - 15 + 127) << 23) | (man << 13));
}
inline uint16_t f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    uint32_t lsb = (x >> 16) & 1u;
    x += 0x7fffu + lsb;
    return (uint16_t)(x >> 16);
}
inline float bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }
}  // namespace tk_sim

struct half {
    uint16_t bits = 0;
    half() = default;
    half(float f) : bits(tk_sim::f32_to_f16(f)) {}
    half(double d) : bits(tk_sim::f32_to_f16((float)d)) {}
    half(int i) : bits(tk_sim::f32_to_f16((float)i)) {}
    operator float() const { return tk_sim::f16_to_f32(bits); }
};
struct bfloat16_t {
    uint16_t bits = 0;
    bfloat16_t() = default;
    bfloat16_t(float f) : bits(tk_sim::f32_to_bf16(f)) {}
    bfloat16_t(double d) : bits(tk_sim::f32_to_bf16((float)d)) {}
    bfloat16_t(int i) : bits(tk_sim::f32_to_bf16((float)i)) {}
    operator float() const { return tk_sim::bf16_to_f32(bits); }
};

// ---- simulator state ----------------------------------------------------------------------------
namespace tk_sim {

struct SimError : std::runtime_error {
    explicit SimError(const std::string& m) : std::runtime_error(m) {}
};

struct Stats {
    uint64_t gm_to_ub_bytes = 0;     // DataCopy / DataCopyPad GM -> UB
    uint64_t ub_to_gm_bytes = 0;     // DataCopy / DataCopyPad UB -> GM
    uint64_t gm_to_l1_bytes = 0;     // DataCopy (Nd2Nz) GM -> L1 (cube operands)
    uint64_t l0c_to_gm_bytes = 0;    // Fixpipe L0C -> GM (cube results)
    uint64_t gm_scalar_read_bytes = 0;   // GlobalTensor::GetValue
    uint64_t gm_scalar_write_bytes = 0;  // GlobalTensor::SetValue
    uint64_t dma_instrs = 0;          // DataCopy / DataCopyPad calls touching GM
    uint64_t vector_instrs = 0;       // vector API calls
    uint64_t vector_repeats = 0;      // 256-byte repeats those calls cover
    uint64_t ub_scalar_accesses = 0;  // LocalTensor::GetValue / SetValue
    uint64_t ub_peak_bytes = 0;       // largest TPipe allocation seen in one block
    uint64_t cube_instrs = 0;         // Mmad calls
    uint64_t sort_instrs = 0;         // Sort32 / MrgSort calls
};

// The physical on-chip memories. UB is the vector core's; L1, L0A, L0B and L0C the cube core's.
enum Mem : int { MEM_UB = 0, MEM_L1, MEM_L0A, MEM_L0B, MEM_L0C, MEM_COUNT };
inline const char* mem_name(int m) {
    static const char* names[] = {"UB", "L1", "L0A", "L0B", "L0C"};
    return names[m];
}
inline uint32_t mem_bytes(int m) {
    static const uint32_t sizes[] = {TK_SIM_UB_PHYSICAL, TK_SIM_L1, TK_SIM_L0A, TK_SIM_L0B, TK_SIM_L0C};
    return sizes[m];
}
// What a kernel may allocate: the UB less Ascend C's 8 KB reserve; the cube buffers whole.
inline uint32_t mem_usable(int m) { return m == MEM_UB ? TK_SIM_UB_USABLE : mem_bytes(m); }
// Start alignment of a buffer: 32 B in UB and L1, 512 B in L0A/L0B (LoadData, Mmad), 1024 B in
// L0C (the Mmad destination).
inline uint32_t mem_align(int m) {
    static const uint32_t a[] = {32, 32, 512, 512, 1024};
    return a[m];
}

struct GmRegion {
    uintptr_t begin;
    size_t bytes;
};

struct State {
    int64_t block_idx = 0;
    int64_t block_num = 1;
    std::vector<uint8_t> ub = std::vector<uint8_t>(TK_SIM_UB_PHYSICAL, 0xff);
    // L1, L0A, L0B, L0C contents and, per byte, whether anything wrote it since the launch (the
    // cube reads of Mmad/Fixpipe must only see written data).
    std::vector<uint8_t> cube[MEM_COUNT];
    std::vector<uint8_t> written[MEM_COUNT];
    uint32_t used[MEM_COUNT] = {};
    int kernel_type = -1;
    // DMA atomics of UB -> GM copies (SetAtomicAdd/Max/Min ... SetAtomicNone): 0 none, 1 add,
    // 2 max, 3 min; and the element type they were set for.
    int atomic_op = 0;
    const char* atomic_type = nullptr;
    uint32_t queue_buffers[32] = {};
    std::map<std::pair<int, int>, int> flags;  // (event, id) -> pending SetFlag count
    std::vector<std::string> deferred;         // errors found where throwing is impossible
    std::vector<std::string> errors;           // errors of the last launch
    std::vector<GmRegion> gm;
    Stats stats;
    bool in_block = false;
};

inline State& state() {
    static State s;
    return s;
}
inline Stats& stats() { return state().stats; }
inline const std::vector<std::string>& errors() { return state().errors; }
inline void reset_stats() { state().stats = Stats(); }

[[noreturn]] inline void fail(const std::string& msg) {
    std::ostringstream o;
    o << "[tk-sim " << TK_SIM_SOC_NAME << "] block " << state().block_idx << ": " << msg;
    throw SimError(o.str());
}
inline void defer(const std::string& msg) {
    std::ostringstream o;
    o << "[tk-sim " << TK_SIM_SOC_NAME << "] block " << state().block_idx << ": " << msg;
    state().deferred.push_back(o.str());
}

// Host-side GM allocation: 64-byte aligned, registered so that GM accesses can be bounds-checked.
inline void* gm_alloc(size_t bytes) {
    size_t n = (bytes + 63) / 64 * 64;
    if (n == 0) n = 64;
    void* p = std::aligned_alloc(64, n);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, n);
    state().gm.push_back(GmRegion{(uintptr_t)p, bytes});
    return p;
}
inline void gm_free(void* p) {
    auto& g = state().gm;
    for (size_t i = 0; i < g.size(); ++i) {
        if (g[i].begin == (uintptr_t)p) {
            g.erase(g.begin() + (long)i);
            std::free(p);
            return;
        }
    }
}
inline void gm_check(const void* p, size_t bytes, const char* what) {
    auto& g = state().gm;
    if (g.empty() || bytes == 0) return;
    uintptr_t a = (uintptr_t)p;
    for (auto& r : g) {
        if (a >= r.begin && a + bytes <= r.begin + r.bytes) return;
        if (a >= r.begin && a < r.begin + r.bytes) {
            std::ostringstream o;
            o << what << ": " << bytes << " bytes at byte offset " << (a - r.begin)
              << " run past the end of a GM buffer of " << r.bytes << " bytes";
            fail(o.str());
        }
    }
    std::ostringstream o;
    o << what << ": " << bytes << " bytes at an address outside every GmAlloc buffer";
    fail(o.str());
}

// Runs `body` once per block index 0..blockDim-1, sequentially. Returns false (and fills
// errors()) if any block failed; stops at the first failing block.
inline bool launch(uint32_t blockDim, const std::function<void()>& body) {
    State& s = state();
    s.errors.clear();
    for (uint32_t b = 0; b < blockDim; ++b) {
        s.block_idx = b;
        s.block_num = blockDim;
        std::fill(s.ub.begin(), s.ub.end(), (uint8_t)0xff);  // stale UB reads show up as NaN
        for (int m = MEM_L1; m < MEM_COUNT; ++m) {
            s.cube[m].assign(mem_bytes(m), (uint8_t)0xff);
            s.written[m].assign(mem_bytes(m), (uint8_t)0);
        }
        for (int m = 0; m < MEM_COUNT; ++m) s.used[m] = 0;
        s.kernel_type = -1;
        s.atomic_op = 0;
        s.atomic_type = nullptr;
        std::fill(std::begin(s.queue_buffers), std::end(s.queue_buffers), 0u);
        s.flags.clear();
        s.deferred.clear();
        s.in_block = true;
        std::string first;
        try {
            body();
        } catch (const SimError& e) {
            first = e.what();
        } catch (const std::exception& e) {
            first = std::string("[tk-sim] block ") + std::to_string(b) + ": exception: " + e.what();
        }
        s.in_block = false;
        for (auto& kv : s.flags) {
            if (kv.second != 0 && first.empty()) {
                std::ostringstream o;
                o << "[tk-sim " << TK_SIM_SOC_NAME << "] block " << b << ": SetFlag (event "
                  << kv.first.first << ", id " << kv.first.second << ") never waited";
                s.deferred.push_back(o.str());
            }
        }
        if (!first.empty()) s.errors.push_back(first);
        for (auto& d : s.deferred) s.errors.push_back(d);
        if (!s.errors.empty()) return false;
    }
    return true;
}

inline void set_kernel_type(int t) { state().kernel_type = t; }

// Checks that a kernel of the declared type may use memory `m` (910B splits AIC and AIV cores).
inline void check_core_mem(int m, const char* what) {
#if TK_SIM_SPLIT_CORES
    int t = state().kernel_type;
    if (t == KERNEL_TYPE_AIV_ONLY && m != MEM_UB)
        fail(std::string(what) + ": an AIV-only kernel (vector core) has no " + mem_name(m) + "; the cube buffers belong to the AIC");
    if (t == KERNEL_TYPE_AIC_ONLY && m == MEM_UB)
        fail(std::string(what) + ": an AIC-only kernel (cube core) has no Unified Buffer");
#else
    (void)m;
    (void)what;
#endif
}

inline void count_vec(uint32_t bytes) {
    stats().vector_instrs += 1;
    stats().vector_repeats += (bytes + 255) / 256;
}

// Numeric helpers: every element type converts through double for computation.
template <typename T>
inline double to_d(T v) {
    return (double)(float)v;
}
template <>
inline double to_d<float>(float v) {
    return v;
}
template <>
inline double to_d<int32_t>(int32_t v) {
    return v;
}
template <>
inline double to_d<int16_t>(int16_t v) {
    return v;
}
template <>
inline double to_d<int64_t>(int64_t v) {
    return (double)v;
}
template <>
inline double to_d<uint8_t>(uint8_t v) {
    return v;
}
template <>
inline double to_d<int8_t>(int8_t v) {
    return v;
}
template <>
inline double to_d<uint32_t>(uint32_t v) {
    return v;
}
template <typename T>
inline T from_d(double d) {
    if constexpr (std::is_same<T, float>::value) {
        return (float)d;
    } else if constexpr (std::is_same<T, half>::value || std::is_same<T, bfloat16_t>::value) {
        return T((float)d);  // double -> float -> 16-bit: exact for the basic ops of 16-bit inputs
    } else {
        if (std::isnan(d)) return T(0);
        double lo = (double)std::numeric_limits<T>::min();
        double hi = (double)std::numeric_limits<T>::max();
        return (T)std::max(lo, std::min(hi, d));
    }
}
template <typename T>
constexpr bool is_float_v =
    std::is_same<T, float>::value || std::is_same<T, half>::value ||
    std::is_same<T, bfloat16_t>::value;

}  // namespace tk_sim

// ---- AscendC API --------------------------------------------------------------------------------
namespace AscendC {

enum class TPosition : int32_t {
    GM,
    A1,
    A2,
    B1,
    B2,
    C1,
    C2,
    CO1,
    CO2,
    VECIN,
    VECOUT,
    VECCALC,
    LCM = VECCALC,
    SPM,
    SHM = SPM,
    TSCM,
    C2PIPE2GM,
    C2PIPE2LOCAL,
    MAX,
};
using QuePosition = TPosition;

enum pipe_t : int32_t { PIPE_S = 0, PIPE_V, PIPE_M, PIPE_MTE1, PIPE_MTE2, PIPE_MTE3, PIPE_FIX, PIPE_ALL };
enum class HardEvent : int32_t {
    MTE2_V,
    V_MTE2,
    V_MTE3,
    MTE3_V,
    MTE2_MTE3,
    MTE3_MTE2,
    S_V,
    V_S,
    MTE2_S,
    S_MTE2,
    MTE3_S,
    S_MTE3,
    MTE2_MTE1,
    MTE1_MTE2,
    MTE1_M,
    M_MTE1,
    M_FIX,
    FIX_M,
    M_V,
    V_M,
};
enum class CMPMODE : int32_t { LT = 0, GT, EQ, LE, GE, NE };
enum class SELMODE : int32_t { VSEL_CMPMASK_SPR = 0, VSEL_TENSOR_SCALAR_MODE, VSEL_TENSOR_TENSOR_MODE };
enum class RoundMode : int32_t { CAST_NONE = 0, CAST_RINT, CAST_FLOOR, CAST_CEIL, CAST_ROUND, CAST_TRUNC, CAST_ODD };

// The physical memory behind a TPosition (see shared/reference/ascendc.md §2).
inline int pos_mem(TPosition p) {
    switch (p) {
        case TPosition::VECIN:
        case TPosition::VECOUT:
        case TPosition::VECCALC: return tk_sim::MEM_UB;
        case TPosition::A1:
        case TPosition::B1:
        case TPosition::C1: return tk_sim::MEM_L1;
        case TPosition::A2: return tk_sim::MEM_L0A;
        case TPosition::B2: return tk_sim::MEM_L0B;
        case TPosition::CO1: return tk_sim::MEM_L0C;
#if !TK_SIM_SPLIT_CORES
        case TPosition::CO2: return tk_sim::MEM_UB;
#endif
        default: tk_sim::fail("TPosition " + std::to_string((int)p) + " is not a local memory the simulation models");
    }
}

inline int64_t GetBlockIdx() { return tk_sim::state().block_idx; }
inline int64_t GetBlockNum() { return tk_sim::state().block_num; }

template <pipe_t pipe>
inline void PipeBarrier() {
    static_assert(pipe != PIPE_S, "PipeBarrier<PIPE_S> is not allowed");
}
template <HardEvent e>
inline void SetFlag(int32_t id) {
    if (id < 0 || id > 7) tk_sim::fail("SetFlag event id " + std::to_string(id) + " outside 0..7");
    int& n = tk_sim::state().flags[{(int)e, id}];
    if (n != 0) tk_sim::fail("SetFlag on (event " + std::to_string((int)e) + ", id " + std::to_string(id) + ") that is already set and not yet waited");
    n = 1;
}
template <HardEvent e>
inline void WaitFlag(int32_t id) {
    int& n = tk_sim::state().flags[{(int)e, id}];
    if (n == 0) tk_sim::fail("WaitFlag on (event " + std::to_string((int)e) + ", id " + std::to_string(id) + ") with no SetFlag before it");
    n = 0;
}

namespace detail {
enum class BufState : int32_t { Free, Allocated, Queued };
struct Buf {
    uint32_t offset = 0;  // byte offset in UB
    uint32_t bytes = 0;
    uint32_t gen = 1;
    BufState st = BufState::Free;
    bool queue = false;  // TBuf buffers are always usable
};
}  // namespace detail

template <typename T>
class LocalTensor {
  public:
    LocalTensor() = default;
    // Fixed-address tensor (as in the low-level matmul samples): offset in bytes, length in elements.
    LocalTensor(TPosition pos, uint32_t addr, uint32_t len) : pos_(pos), off_(addr), len_(len), raw_(true) {}

    T GetValue(uint32_t i) const {
        check_index(i, "GetValue");
        tk_sim::stats().ub_scalar_accesses += 1;
        T v;
        std::memcpy(&v, addr(i), sizeof(T));
        return v;
    }
    void SetValue(uint32_t i, T v) const {
        check_index(i, "SetValue");
        tk_sim::stats().ub_scalar_accesses += 1;
        st(i, v);
    }
    LocalTensor operator[](uint32_t offset) const {
        check_live("operator[]");
        if (offset > len_) tk_sim::fail("LocalTensor[" + std::to_string(offset) + "] past the end of a tensor of " + std::to_string(len_) + " elements");
        LocalTensor t = *this;
        t.off_ = off_ + offset * (uint32_t)sizeof(T);
        t.len_ = len_ - offset;
        return t;
    }
    uint32_t GetSize() const { return len_; }
    void SetSize(uint32_t n) {
        if (n * sizeof(T) > cap_bytes()) tk_sim::fail("SetSize larger than the buffer");
        len_ = n;
    }
    uint64_t GetPhyAddr() const { return off_; }
    TPosition GetPosition() const { return pos_; }
    template <typename U>
    LocalTensor<U> ReinterpretCast() const {
        LocalTensor<U> u;
        u.pos_ = pos_;
        u.off_ = off_;
        u.len_ = (uint32_t)((uint64_t)len_ * sizeof(T) / sizeof(U));
        u.buf_ = buf_;
        u.gen_ = gen_;
        u.raw_ = raw_;
        return u;
    }

    // ---- simulator internals (public so that the free-function API can use them) ----
    void check_live(const char* what) const {
        if (raw_) return;
        if (!buf_) tk_sim::fail(std::string(what) + " on a LocalTensor that was never allocated");
        if (buf_->gen != gen_ || buf_->st == detail::BufState::Free)
            tk_sim::fail(std::string(what) + ": use of a LocalTensor after FreeTensor");
    }
    void check_index(uint32_t i, const char* what) const {
        check_live(what);
        if (i >= len_) tk_sim::fail(std::string(what) + "(" + std::to_string(i) + ") past the end of a LocalTensor of " + std::to_string(len_) + " elements");
    }
    // Checks a vector/DMA operand: live, 32-byte aligned start, `n` elements in bounds.
    void check_operand(uint64_t n, const char* what) const {
        check_live(what);
        int m = mem();
        if (off_ % 32 != 0) tk_sim::fail(std::string(what) + ": " + tk_sim::mem_name(m) + " address " + std::to_string(off_) + " is not 32-byte aligned");
        if (n > len_) tk_sim::fail(std::string(what) + ": " + std::to_string(n) + " elements exceed the LocalTensor's " + std::to_string(len_));
        if (off_ + n * sizeof(T) > tk_sim::mem_bytes(m)) tk_sim::fail(std::string(what) + ": past the end of the " + tk_sim::mem_name(m));
    }
    // A vector-unit or GM<->UB operand: must live in the Unified Buffer.
    void check_ub(uint64_t n, const char* what) const {
        check_live(what);
        if (mem() != tk_sim::MEM_UB)
            tk_sim::fail(std::string(what) + ": operand in " + tk_sim::mem_name(mem()) + ", but this API works on the Unified Buffer (VECIN/VECOUT/VECCALC)");
        check_operand(n, what);
    }
    int mem() const { return pos_mem(pos_); }
    uint8_t* base() const {
        int m = mem();
        return m == tk_sim::MEM_UB ? tk_sim::state().ub.data() : tk_sim::state().cube[m].data();
    }
    uint8_t* addr(uint32_t i) const { return base() + off_ + (size_t)i * sizeof(T); }
    // Records that `n` elements from element `i` were written (cube memories only).
    void mark(uint32_t i, uint64_t n) const {
        int m = mem();
        if (m == tk_sim::MEM_UB || n == 0) return;
        std::fill_n(tk_sim::state().written[m].begin() + off_ + (size_t)i * sizeof(T), (size_t)n * sizeof(T), (uint8_t)1);
    }
    bool was_written(uint32_t i) const {
        int m = mem();
        if (m == tk_sim::MEM_UB) return true;
        const uint8_t* w = tk_sim::state().written[m].data() + off_ + (size_t)i * sizeof(T);
        for (size_t b = 0; b < sizeof(T); ++b)
            if (!w[b]) return false;
        return true;
    }
    T ld(uint32_t i) const {
        T v;
        std::memcpy(&v, addr(i), sizeof(T));
        return v;
    }
    void st(uint32_t i, T v) const {
        std::memcpy(addr(i), &v, sizeof(T));
        mark(i, 1);
    }
    uint32_t cap_bytes() const { return buf_ ? buf_->bytes - (off_ - buf_->offset) : len_ * (uint32_t)sizeof(T); }

    TPosition pos_ = TPosition::VECCALC;
    uint32_t off_ = 0;
    uint32_t len_ = 0;
    detail::Buf* buf_ = nullptr;
    uint32_t gen_ = 0;
    bool raw_ = false;
};

template <typename T>
class GlobalTensor {
  public:
    void SetGlobalBuffer(__gm__ T* buffer, uint64_t bufferSize = 0) {
        base_ = buffer;
        size_ = bufferSize;
    }
    GlobalTensor operator[](uint64_t offset) const {
        GlobalTensor g = *this;
        g.base_ = base_ + offset;
        g.size_ = size_ > offset ? size_ - offset : 0;
        return g;
    }
    T GetValue(uint64_t i) const {
        tk_sim::gm_check(base_ + i, sizeof(T), "GlobalTensor::GetValue");
        tk_sim::stats().gm_scalar_read_bytes += sizeof(T);
        T v;
        std::memcpy(&v, base_ + i, sizeof(T));
        return v;
    }
    void SetValue(uint64_t i, T v) const {
        tk_sim::gm_check(base_ + i, sizeof(T), "GlobalTensor::SetValue");
        tk_sim::stats().gm_scalar_write_bytes += sizeof(T);
        std::memcpy(base_ + i, &v, sizeof(T));
    }
    __gm__ T* GetPhyAddr() const { return base_; }
    uint64_t GetSize() const { return size_; }

    T* base_ = nullptr;
    uint64_t size_ = 0;
};

class TPipe;
inline TPipe*& tk_current_pipe() {
    static TPipe* p = nullptr;
    return p;
}

template <TPosition pos, int32_t depth, auto mask = 0>
class TQue {
  public:
    TQue() = default;
    TQue(const TQue&) = delete;
    TQue& operator=(const TQue&) = delete;
    ~TQue() {
        if (!tk_sim::state().in_block) return;
        int live = 0;
        for (uint32_t i = 0; i < num_; ++i)
            if (bufs_[i].st != detail::BufState::Free) live++;
        if (live > 0)
            tk_sim::defer("TQue destroyed with " + std::to_string(live) + " tensor(s) never freed (AllocTensor without FreeTensor)");
    }
    template <typename T>
    LocalTensor<T> AllocTensor() {
        if (num_ == 0) tk_sim::fail("AllocTensor on a TQue without InitBuffer");
        for (uint32_t k = 0; k < num_; ++k) {
            uint32_t i = (next_ + k) % num_;
            if (bufs_[i].st == detail::BufState::Free) {
                next_ = (i + 1) % num_;
                bufs_[i].st = detail::BufState::Allocated;
                LocalTensor<T> t;
                t.pos_ = pos;
                t.off_ = bufs_[i].offset;
                t.len_ = bufs_[i].bytes / (uint32_t)sizeof(T);
                t.buf_ = &bufs_[i];
                t.gen_ = bufs_[i].gen;
                // A fresh allocation holds nothing the kernel wrote (cube reads check this).
                int m = pos_mem(pos);
                if (m != tk_sim::MEM_UB)
                    std::fill_n(tk_sim::state().written[m].begin() + bufs_[i].offset, bufs_[i].bytes, (uint8_t)0);
                return t;
            }
        }
        tk_sim::fail("AllocTensor with no free buffer: all " + std::to_string(num_) + " buffers of the queue are in use (FreeTensor missing?)");
    }
    template <typename T>
    bool EnQue(const LocalTensor<T>& t) {
        t.check_live("EnQue");
        detail::Buf* b = own(t, "EnQue");
        if (b->st != detail::BufState::Allocated) tk_sim::fail("EnQue of a tensor that is already in the queue");
        if ((int32_t)fifo_.size() >= depth) tk_sim::fail("EnQue past the queue depth " + std::to_string(depth) + " (DeQue missing?)");
        b->st = detail::BufState::Queued;
        fifo_.push_back(b);
        return true;
    }
    template <typename T>
    LocalTensor<T> DeQue() {
        if (fifo_.empty()) tk_sim::fail("DeQue with no tensor EnQue'd (queue order broken)");
        detail::Buf* b = fifo_.front();
        fifo_.erase(fifo_.begin());
        b->st = detail::BufState::Allocated;
        LocalTensor<T> t;
        t.pos_ = pos;
        t.off_ = b->offset;
        t.len_ = b->bytes / (uint32_t)sizeof(T);
        t.buf_ = b;
        t.gen_ = b->gen;
        return t;
    }
    template <typename T>
    void FreeTensor(LocalTensor<T>& t) {
        if (!t.buf_) tk_sim::fail("FreeTensor of a tensor that was never allocated");
        detail::Buf* b = own(t, "FreeTensor");
        if (b->gen != t.gen_ || b->st == detail::BufState::Free) tk_sim::fail("FreeTensor of a tensor that is already free (double free)");
        if (b->st == detail::BufState::Queued) tk_sim::fail("FreeTensor of a tensor that is still in the queue (DeQue it first)");
        b->st = detail::BufState::Free;
        b->gen += 1;
    }
    bool HasTensorInQue() const { return !fifo_.empty(); }
    int32_t GetTensorCountInQue() const { return (int32_t)fifo_.size(); }
    bool VacantInQue() const { return (int32_t)fifo_.size() < depth; }
    bool HasIdleBuffer() const {
        for (uint32_t i = 0; i < num_; ++i)
            if (bufs_[i].st == detail::BufState::Free) return true;
        return false;
    }

    template <typename T>
    detail::Buf* own(const LocalTensor<T>& t, const char* what) {
        for (uint32_t i = 0; i < num_; ++i)
            if (t.buf_ == &bufs_[i]) return &bufs_[i];
        tk_sim::fail(std::string(what) + " of a tensor that belongs to another queue");
    }
    detail::Buf bufs_[8];
    uint32_t num_ = 0;
    uint32_t next_ = 0;
    std::vector<detail::Buf*> fifo_;
};

template <TPosition pos = TPosition::VECCALC>
class TBuf {
  public:
    template <typename T>
    LocalTensor<T> Get() const {
        return Get<T>(buf_.bytes / (uint32_t)sizeof(T));
    }
    template <typename T>
    LocalTensor<T> Get(uint32_t len) const {
        return GetWithOffset<T>(len, 0);
    }
    template <typename T>
    LocalTensor<T> GetWithOffset(uint32_t size, uint32_t bufOffset) const {
        if (buf_.bytes == 0) tk_sim::fail("TBuf::Get on a TBuf without InitBuffer");
        if (bufOffset % 32 != 0) tk_sim::fail("TBuf::GetWithOffset: offset " + std::to_string(bufOffset) + " is not 32-byte aligned");
        if ((uint64_t)bufOffset + (uint64_t)size * sizeof(T) > buf_.bytes)
            tk_sim::fail("TBuf::GetWithOffset(" + std::to_string(size) + " elements, offset " + std::to_string(bufOffset) + ") exceeds the TBuf's " + std::to_string(buf_.bytes) + " bytes");
        LocalTensor<T> t;
        t.pos_ = pos;
        t.off_ = buf_.offset + bufOffset;
        t.len_ = size;
        t.buf_ = const_cast<detail::Buf*>(&buf_);
        t.gen_ = buf_.gen;
        return t;
    }
    detail::Buf buf_;
};

class TPipe {
  public:
    TPipe() {
        if (tk_current_pipe() != nullptr) tk_sim::fail("a second TPipe was created while another one is alive (call Destroy first)");
        tk_current_pipe() = this;
        std::fill(std::begin(tk_sim::state().used), std::end(tk_sim::state().used), 0u);
    }
    ~TPipe() {
        if (tk_current_pipe() == this) tk_current_pipe() = nullptr;
    }
    TPipe(const TPipe&) = delete;
    TPipe& operator=(const TPipe&) = delete;
    void Destroy() {
        if (tk_current_pipe() == this) tk_current_pipe() = nullptr;
    }
    void Reset() { std::fill(std::begin(tk_sim::state().used), std::end(tk_sim::state().used), 0u); }

    template <TPosition pos, int32_t depth, auto mask>
    bool InitBuffer(TQue<pos, depth, mask>& que, uint8_t num, uint32_t len) {
        if (num == 0 || num > 8) tk_sim::fail("InitBuffer: " + std::to_string(num) + " buffers (1..8 allowed)");
        if (que.num_ != 0) tk_sim::fail("InitBuffer called twice on one TQue");
        uint32_t& used = tk_sim::state().queue_buffers[(int)pos];
        if (used + num > 8) tk_sim::fail("more than 8 queue buffers for one TPosition (each needs a hardware event id)");
        used += num;
        uint32_t bytes = (len + 31u) / 32u * 32u;
        int m = pos_mem(pos);
        tk_sim::check_core_mem(m, "InitBuffer(TQue)");
        for (uint32_t i = 0; i < num; ++i) {
            que.bufs_[i].offset = take(m, bytes, "InitBuffer(TQue)");
            que.bufs_[i].bytes = bytes;
            que.bufs_[i].queue = true;
        }
        que.num_ = num;
        return true;
    }
    template <TPosition pos>
    bool InitBuffer(TBuf<pos>& buf, uint32_t len) {
        if (buf.buf_.bytes != 0) tk_sim::fail("InitBuffer called twice on one TBuf");
        uint32_t bytes = (len + 31u) / 32u * 32u;
        int m = pos_mem(pos);
        tk_sim::check_core_mem(m, "InitBuffer(TBuf)");
        buf.buf_.offset = take(m, bytes, "InitBuffer(TBuf)");
        buf.buf_.bytes = bytes;
        buf.buf_.st = detail::BufState::Allocated;
        return true;
    }

  private:
    uint32_t take(int m, uint32_t bytes, const char* what) {
        uint32_t& used = tk_sim::state().used[m];
        uint32_t a = tk_sim::mem_align(m);
        uint32_t off = (used + a - 1) / a * a;
        if ((uint64_t)off + bytes > tk_sim::mem_usable(m)) {
            if (m == tk_sim::MEM_UB)
                tk_sim::fail(std::string(what) + ": Unified Buffer overflow: " + std::to_string(bytes) + " more bytes with " +
                             std::to_string(used) + " already in use exceeds the " + std::to_string(TK_SIM_UB_USABLE) +
                             " usable bytes (" + std::to_string(TK_SIM_UB_PHYSICAL / 1024) + " KB " TK_SIM_SOC_NAME " UB)");
            tk_sim::fail(std::string(what) + ": " + tk_sim::mem_name(m) + " overflow: " + std::to_string(bytes) + " more bytes at offset " +
                         std::to_string(off) + " exceed its " + std::to_string(tk_sim::mem_usable(m)) + " bytes on " TK_SIM_SOC_NAME);
        }
        used = off + bytes;
        if (m == tk_sim::MEM_UB) tk_sim::stats().ub_peak_bytes = std::max<uint64_t>(tk_sim::stats().ub_peak_bytes, used);
        return off;
    }
};
inline TPipe* GetTPipePtr() { return tk_current_pipe(); }

// ---- data movement ------------------------------------------------------------------------------
struct DataCopyParams {
    uint16_t blockCount = 1;
    uint16_t blockLen = 0;  // 32-byte blocks
    uint16_t srcStride = 0; // gap in 32-byte blocks
    uint16_t dstStride = 0;
    DataCopyParams() = default;
    DataCopyParams(uint16_t c, uint16_t l, uint16_t s, uint16_t d) : blockCount(c), blockLen(l), srcStride(s), dstStride(d) {}
};
struct DataCopyExtParams {
    uint16_t blockCount = 1;
    uint32_t blockLen = 0;  // bytes
    uint32_t srcStride = 0; // GM side: bytes; UB side: 32-byte blocks
    uint32_t dstStride = 0;
    uint32_t rsv = 0;
    DataCopyExtParams() = default;
    DataCopyExtParams(uint16_t c, uint32_t l, uint32_t s, uint32_t d, uint32_t r) : blockCount(c), blockLen(l), srcStride(s), dstStride(d), rsv(r) {}
};
template <typename T>
struct DataCopyPadExtParams {
    bool isPad = false;
    uint8_t leftPadding = 0;
    uint8_t rightPadding = 0;
    T paddingValue = T();
    DataCopyPadExtParams() = default;
    DataCopyPadExtParams(bool p, uint8_t l, uint8_t r, T v) : isPad(p), leftPadding(l), rightPadding(r), paddingValue(v) {}
};

namespace detail {
template <typename T>
inline void check_dma_count(uint32_t count, const char* what) {
    if (((uint64_t)count * sizeof(T)) % 32 != 0)
        tk_sim::fail(std::string(what) + ": " + std::to_string(count) + " elements (" + std::to_string((uint64_t)count * sizeof(T)) +
                     " bytes) is not a multiple of 32 bytes; in NPU mode no error is reported and the count is rounded down");
}
}  // namespace detail

// ---- DMA atomics: SetAtomicAdd/Max/Min make the following UB -> GM copies combine with GM ------
template <typename T>
inline const char* atomic_type_name() {
    if (std::is_same<T, float>::value) return "float";
    if (std::is_same<T, half>::value) return "half";
    if (std::is_same<T, int32_t>::value) return "int32_t";
    if (std::is_same<T, int16_t>::value) return "int16_t";
    if (std::is_same<T, bfloat16_t>::value) return "bfloat16_t";
    return nullptr;
}
namespace detail {
template <typename T>
inline void set_atomic(int op, const char* what) {
    const char* t = atomic_type_name<T>();
    if (!t) tk_sim::fail(std::string(what) + ": not available for this element type");
    tk_sim::state().atomic_op = op;
    tk_sim::state().atomic_type = t;
}
// Writes `n` elements from UB to GM, combining them with GM when an atomic mode is set.
template <typename T>
inline void gm_store(T* dst, const uint8_t* src, size_t n, const char* what) {
    tk_sim::State& s = tk_sim::state();
    if (s.atomic_op == 0) {
        std::memcpy(dst, src, n * sizeof(T));
        return;
    }
    const char* t = atomic_type_name<T>();
    if (!t || std::strcmp(s.atomic_type, t) != 0)
        tk_sim::fail(std::string(what) + ": the atomic mode was set for " + s.atomic_type + ", not for this copy's element type");
    for (size_t i = 0; i < n; ++i) {
        T a, b;
        std::memcpy(&a, dst + i, sizeof(T));
        std::memcpy(&b, src + i * sizeof(T), sizeof(T));
        double x = tk_sim::to_d(a), y = tk_sim::to_d(b);
        double r = s.atomic_op == 1 ? x + y : s.atomic_op == 2 ? (y > x ? y : x) : (y < x ? y : x);
        T o = tk_sim::from_d<T>(r);
        std::memcpy(dst + i, &o, sizeof(T));
    }
}
}  // namespace detail
template <typename T>
inline void SetAtomicAdd() { detail::set_atomic<T>(1, "SetAtomicAdd"); }
template <typename T>
inline void SetAtomicMax() { detail::set_atomic<T>(2, "SetAtomicMax"); }
template <typename T>
inline void SetAtomicMin() { detail::set_atomic<T>(3, "SetAtomicMin"); }
inline void SetAtomicNone() {
    tk_sim::state().atomic_op = 0;
    tk_sim::state().atomic_type = nullptr;
}

// GM -> UB, contiguous.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const uint32_t count) {
    detail::check_dma_count<T>(count, "DataCopy GM->UB");
    dst.check_ub(count, "DataCopy GM->UB");
    tk_sim::gm_check(src.base_, (size_t)count * sizeof(T), "DataCopy GM->UB");
    std::memcpy(dst.addr(0), src.base_, (size_t)count * sizeof(T));
    tk_sim::stats().gm_to_ub_bytes += (uint64_t)count * sizeof(T);
    tk_sim::stats().dma_instrs += 1;
}
// UB -> GM, contiguous.
template <typename T>
inline void DataCopy(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count) {
    detail::check_dma_count<T>(count, "DataCopy UB->GM");
    src.check_ub(count, "DataCopy UB->GM");
    tk_sim::gm_check(dst.base_, (size_t)count * sizeof(T), "DataCopy UB->GM");
    detail::gm_store(dst.base_, src.addr(0), count, "DataCopy UB->GM");
    tk_sim::stats().ub_to_gm_bytes += (uint64_t)count * sizeof(T);
    tk_sim::stats().dma_instrs += 1;
}
// UB -> UB.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const LocalTensor<T>& src, const uint32_t count) {
    detail::check_dma_count<T>(count, "DataCopy UB->UB");
    dst.check_ub(count, "DataCopy UB->UB");
    src.check_ub(count, "DataCopy UB->UB");
    std::memmove(dst.addr(0), src.addr(0), (size_t)count * sizeof(T));
}
// Strided GM -> UB (units: 32-byte blocks).
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyParams& p) {
    if (p.blockCount > 4095) tk_sim::fail("DataCopy: blockCount > 4095");
    uint32_t e = 32 / (uint32_t)sizeof(T);
    uint64_t need = ((uint64_t)p.blockCount * (p.blockLen + p.dstStride)) * e;
    dst.check_ub(need > 0 ? need - (uint64_t)p.dstStride * e : 0, "DataCopy GM->UB (params)");
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        const T* s = src.base_ + (uint64_t)b * (p.blockLen + p.srcStride) * e;
        tk_sim::gm_check(s, (size_t)p.blockLen * 32, "DataCopy GM->UB (params)");
        std::memcpy(dst.addr((uint32_t)((uint64_t)b * (p.blockLen + p.dstStride) * e)), s, (size_t)p.blockLen * 32);
        tk_sim::stats().gm_to_ub_bytes += (uint64_t)p.blockLen * 32;
    }
    tk_sim::stats().dma_instrs += 1;
}

// GM -> UB, any byte length; each UB row padded to 32 bytes.
template <typename T>
inline void DataCopyPad(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const DataCopyExtParams& p,
                        const DataCopyPadExtParams<T>& pad) {
#if !TK_SIM_HAS_DATACOPYPAD
    (void)dst; (void)src; (void)p; (void)pad;
    tk_sim::fail("DataCopyPad is not supported on " TK_SIM_SOC_NAME);
#else
    if (p.blockLen > 2097151) tk_sim::fail("DataCopyPad: blockLen > 2097151 bytes");
    if (p.blockLen % sizeof(T) != 0) tk_sim::fail("DataCopyPad: blockLen is not a multiple of the element size");
    if (p.blockCount > 4095) tk_sim::fail("DataCopyPad: blockCount > 4095");
    if ((uint32_t)pad.leftPadding * sizeof(T) > 32 || (uint32_t)pad.rightPadding * sizeof(T) > 32) tk_sim::fail("DataCopyPad: padding over 32 bytes");
    tk_sim::stats().dma_instrs += 1;
    if (p.blockCount == 0 || p.blockLen == 0) return;
    uint32_t n = p.blockLen / (uint32_t)sizeof(T);
    uint32_t row_bytes = (pad.leftPadding * (uint32_t)sizeof(T) + p.blockLen + 31u) / 32u * 32u;
    uint32_t row_elems = row_bytes / (uint32_t)sizeof(T);
    uint32_t pitch = row_elems + p.dstStride * 32u / (uint32_t)sizeof(T);
    dst.check_ub((uint64_t)(p.blockCount - 1) * pitch + row_elems, "DataCopyPad GM->UB");
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        const uint8_t* s = (const uint8_t*)src.base_ + (uint64_t)b * (p.blockLen + p.srcStride);
        tk_sim::gm_check(s, p.blockLen, "DataCopyPad GM->UB");
        uint32_t base = b * pitch;
        T fill = pad.isPad ? pad.paddingValue : T();
        for (uint32_t i = 0; i < pad.leftPadding; ++i) dst.st(base + i, fill);
        std::memcpy(dst.addr(base + pad.leftPadding), s, p.blockLen);
        if (pad.isPad) {
            for (uint32_t i = pad.leftPadding + n; i < row_elems; ++i) dst.st(base + i, fill);
        } else {
            // Documented: with isPad=false the filler is unspecified; model it as the first element.
            T first = dst.ld(base + pad.leftPadding);
            for (uint32_t i = pad.leftPadding + n; i < row_elems; ++i) dst.st(base + i, first);
        }
        tk_sim::stats().gm_to_ub_bytes += p.blockLen;
    }
#endif
}
// UB -> GM, any byte length; the UB-side padding is dropped.
template <typename T>
inline void DataCopyPad(const GlobalTensor<T>& dst, const LocalTensor<T>& src, const DataCopyExtParams& p) {
#if !TK_SIM_HAS_DATACOPYPAD
    (void)dst; (void)src; (void)p;
    tk_sim::fail("DataCopyPad is not supported on " TK_SIM_SOC_NAME);
#else
    if (p.blockLen > 2097151) tk_sim::fail("DataCopyPad: blockLen > 2097151 bytes");
    if (p.blockLen % sizeof(T) != 0) tk_sim::fail("DataCopyPad: blockLen is not a multiple of the element size");
    if (p.blockCount > 4095) tk_sim::fail("DataCopyPad: blockCount > 4095");
    tk_sim::stats().dma_instrs += 1;
    if (p.blockCount == 0 || p.blockLen == 0) return;
    uint32_t row_elems = (p.blockLen + 31u) / 32u * 32u / (uint32_t)sizeof(T);
    uint32_t pitch = row_elems + p.srcStride * 32u / (uint32_t)sizeof(T);
    src.check_ub((uint64_t)(p.blockCount - 1) * pitch + p.blockLen / sizeof(T), "DataCopyPad UB->GM");
    for (uint32_t b = 0; b < p.blockCount; ++b) {
        uint8_t* d = (uint8_t*)dst.base_ + (uint64_t)b * (p.blockLen + p.dstStride);
        tk_sim::gm_check(d, p.blockLen, "DataCopyPad UB->GM");
        detail::gm_store((T*)d, src.addr(b * pitch), p.blockLen / sizeof(T), "DataCopyPad UB->GM");
        tk_sim::stats().ub_to_gm_bytes += p.blockLen;
    }
#endif
}

// ---- cube path: GM -> L1 (ND -> NZ), L1 -> L0A/L0B, Mmad into L0C, Fixpipe L0C -> GM ---------------
//
// Fractal layouts (shared/reference/ascendc.md §5, checked against the asc-devkit API pages): a
// fractal is 512 bytes, 16 rows of C0 = 32 / sizeof(T) elements, stored row by row.
//   L1 (Nz, what DataCopy with Nd2NzParams writes): element (r, c) of an ND matrix lands at
//     (c / C0) * dstNzC0Stride * C0 + r * dstNzNStride * C0 + c % C0 (strides in 32-byte units).
//   L0A (Zz): A(i, k) at ((i / 16) * K1 + k / C0) * 16 * C0 + (i % 16) * C0 + k % C0.
//   L0B (Zn): B(k, j) at ((k / C0) * N1 + j / 16) * 16 * C0 + (j % 16) * C0 + k % C0.
//   L0C (Nz, f32/i32): C(i, j) at ((j / 16) * M1 * 16 + i) * 16 + j % 16.
// with M1 = ceil(m / 16), N1 = ceil(n / 16), K1 = ceil(k / C0) (K aligned to 16 for f32 with
// kDirectionAlign). Mmad ignores the padding of partial fractals; it must read only data the
// kernel wrote (the simulation tracks written bytes of L1/L0 and reports reads of garbage).

struct Nd2NzParams {
    uint16_t ndNum = 0;
    uint16_t nValue = 0;
    uint16_t dValue = 0;
    uint16_t srcNdMatrixStride = 0;
    uint16_t srcDValue = 0;
    uint16_t dstNzC0Stride = 0;
    uint16_t dstNzNStride = 0;
    uint16_t dstNzMatrixStride = 0;
    Nd2NzParams() = default;
    Nd2NzParams(uint16_t nd, uint16_t n, uint16_t d, uint16_t sNd, uint16_t sD, uint16_t c0s, uint16_t ns, uint16_t ms)
        : ndNum(nd), nValue(n), dValue(d), srcNdMatrixStride(sNd), srcDValue(sD), dstNzC0Stride(c0s), dstNzNStride(ns), dstNzMatrixStride(ms) {}
};

namespace detail {
template <typename T>
inline void require_l1(const LocalTensor<T>& t, const char* what) {
    t.check_live(what);
    if (t.mem() != tk_sim::MEM_L1) tk_sim::fail(std::string(what) + ": operand in " + tk_sim::mem_name(t.mem()) + ", expected L1 (TPosition A1/B1)");
    if (t.off_ % 32 != 0) tk_sim::fail(std::string(what) + ": L1 address " + std::to_string(t.off_) + " is not 32-byte aligned");
    tk_sim::check_core_mem(tk_sim::MEM_L1, what);
}
template <typename T>
inline void require_pos(const LocalTensor<T>& t, int mem, uint32_t align, const char* what) {
    t.check_live(what);
    if (t.mem() != mem) tk_sim::fail(std::string(what) + ": operand in " + tk_sim::mem_name(t.mem()) + ", expected " + tk_sim::mem_name(mem));
    if (t.off_ % align != 0) tk_sim::fail(std::string(what) + ": " + tk_sim::mem_name(mem) + " address " + std::to_string(t.off_) + " is not " + std::to_string(align) + "-byte aligned");
    tk_sim::check_core_mem(mem, what);
}
template <typename T>
inline void in_bounds(const LocalTensor<T>& t, uint64_t elem, const char* what) {
    if (elem >= t.len_) tk_sim::fail(std::string(what) + ": element " + std::to_string(elem) + " past the end of a tensor of " + std::to_string(t.len_) + " elements");
}
template <typename T>
constexpr bool cube_type_v = std::is_same<T, half>::value || std::is_same<T, bfloat16_t>::value || std::is_same<T, float>::value;
}  // namespace detail

// GM -> L1 with ND -> NZ conversion. Columns past dValue up to the next 32-byte boundary are
// written with zeros; nothing else of the destination is touched.
template <typename T>
inline void DataCopy(const LocalTensor<T>& dst, const GlobalTensor<T>& src, const Nd2NzParams& p) {
    const char* what = "DataCopy GM->L1 (Nd2Nz)";
    detail::require_l1(dst, what);
    if (p.ndNum > 4095 || p.nValue > 16384 || p.dstNzC0Stride > 16384 || p.dstNzNStride > 16384 || p.dstNzMatrixStride > 16384)
        tk_sim::fail(std::string(what) + ": a parameter is out of its documented range");
    tk_sim::stats().dma_instrs += 1;
    if (p.ndNum == 0 || p.nValue == 0 || p.dValue == 0) return;
    if (p.srcDValue == 0 || p.dstNzC0Stride == 0 || p.dstNzNStride == 0) tk_sim::fail(std::string(what) + ": srcDValue, dstNzC0Stride and dstNzNStride must be at least 1");
    const uint32_t c0 = 32 / (uint32_t)sizeof(T);
    const uint32_t dpad = (p.dValue + c0 - 1) / c0 * c0;
    for (uint32_t nd = 0; nd < p.ndNum; ++nd) {
        for (uint32_t r = 0; r < p.nValue; ++r) {
            const T* row = src.base_ + (uint64_t)nd * p.srcNdMatrixStride + (uint64_t)r * p.srcDValue;
            tk_sim::gm_check(row, (size_t)p.dValue * sizeof(T), what);
            for (uint32_t c = 0; c < dpad; ++c) {
                uint64_t d = (uint64_t)nd * p.dstNzMatrixStride + (uint64_t)(c / c0) * p.dstNzC0Stride * c0 + (uint64_t)r * p.dstNzNStride * c0 + c % c0;
                detail::in_bounds(dst, d, what);
                T v;
                if (c < p.dValue) {
                    std::memcpy(&v, row + c, sizeof(T));
                } else {
                    v = tk_sim::from_d<T>(0.0);
                }
                dst.st((uint32_t)d, v);
            }
            tk_sim::stats().gm_to_l1_bytes += (uint64_t)p.dValue * sizeof(T);
        }
    }
}

template <typename T>
struct InitConstValueParams {
    uint16_t repeatTimes = 0;
    uint16_t blockNum = 0;
    uint16_t dstGap = 0;
    T initValue = T();
    InitConstValueParams() = default;
    InitConstValueParams(uint16_t r, uint16_t b, uint16_t g, T v) : repeatTimes(r), blockNum(b), dstGap(g), initValue(v) {}
};

// Fills blocks of an L1 (32-byte blocks, MTE2) or L0A/L0B (512-byte blocks, MTE1) tensor.
template <typename T>
inline void InitConstValue(const LocalTensor<T>& dst, const InitConstValueParams<T>& p) {
    const char* what = "InitConstValue";
    dst.check_live(what);
    int m = dst.mem();
    if (m != tk_sim::MEM_L1 && m != tk_sim::MEM_L0A && m != tk_sim::MEM_L0B) tk_sim::fail(std::string(what) + ": only L1, L0A and L0B tensors can be filled");
    uint32_t unit = m == tk_sim::MEM_L1 ? 32 : 512;
    detail::require_pos(dst, m, unit == 32 ? 32 : 512, what);
    if (p.repeatTimes > 32767 || p.blockNum > 32767 || p.dstGap > 32767) tk_sim::fail(std::string(what) + ": a parameter is out of its documented range");
    const uint32_t per = unit / (uint32_t)sizeof(T);
    for (uint32_t r = 0; r < p.repeatTimes; ++r)
        for (uint32_t b = 0; b < p.blockNum; ++b) {
            uint64_t first = ((uint64_t)r * (p.blockNum + p.dstGap) + b) * per;
            detail::in_bounds(dst, first + per - 1, what);
            for (uint32_t i = 0; i < per; ++i) dst.st((uint32_t)(first + i), p.initValue);
        }
}
// The CANN 9 name of InitConstValue.
template <typename T>
inline void Fill(const LocalTensor<T>& dst, const InitConstValueParams<T>& p) {
    InitConstValue(dst, p);
}

struct LoadData2DParams {
    uint16_t startIndex = 0;
    uint8_t repeatTimes = 0;
    uint16_t srcStride = 0;
    uint8_t sid = 0;
    uint16_t dstGap = 0;
    bool ifTranspose = false;
    uint8_t addrMode = 0;
};

namespace detail {
// Copies fractal `sf` of `src` to fractal `df` of `dst` (512 bytes), transposing a 16x16 b16 one.
template <typename T>
inline void copy_fractal(const LocalTensor<T>& dst, uint64_t df, const LocalTensor<T>& src, uint64_t sf, bool transpose, const char* what) {
    const uint32_t per = 512 / (uint32_t)sizeof(T);
    in_bounds(src, sf * per + per - 1, what);
    in_bounds(dst, df * per + per - 1, what);
    for (uint32_t i = 0; i < per; ++i) {
        uint32_t from = transpose ? (i % 16) * 16 + i / 16 : i;
        uint32_t s = (uint32_t)(sf * per + from);
        T v = src.ld(s);
        dst.st((uint32_t)(df * per + i), v);
        if (!src.was_written(s)) {
            // Unwritten source data stays unwritten in the destination.
            int m = dst.mem();
            std::fill_n(tk_sim::state().written[m].begin() + dst.off_ + (df * per + i) * sizeof(T), sizeof(T), (uint8_t)0);
        }
    }
}
}  // namespace detail

// L1 -> L0A/L0B, 512-byte fractals: fractal startIndex + i * srcStride goes to fractal
// i * (1 + dstGap), transposed (16x16, b16 only) when ifTranspose.
template <typename T>
inline void LoadData(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LoadData2DParams& p) {
    const char* what = "LoadData (L1->L0)";
    detail::require_l1(src, what);
    dst.check_live(what);
    if (dst.mem() != tk_sim::MEM_L0A && dst.mem() != tk_sim::MEM_L0B) tk_sim::fail(std::string(what) + ": destination must be L0A (A2) or L0B (B2)");
    detail::require_pos(dst, dst.mem(), 512, what);
    if (p.ifTranspose && sizeof(T) != 2) tk_sim::fail(std::string(what) + ": ifTranspose needs a 16-bit type");
    if (p.addrMode != 0) tk_sim::fail(std::string(what) + ": addrMode 1 is only for GM->L1");
    for (uint32_t i = 0; i < p.repeatTimes; ++i)
        detail::copy_fractal(dst, (uint64_t)i * (1u + p.dstGap), src, (uint64_t)p.startIndex + (uint64_t)i * p.srcStride, p.ifTranspose, what);
}

struct LoadData2dTransposeParams {
    uint16_t startIndex = 0;
    uint8_t repeatTimes = 0;
    uint16_t srcStride = 0;
    uint16_t dstGap = 0;
    uint16_t dstFracGap = 0;
    uint8_t addrMode = 0;
};

// L1 -> L0A/L0B with transposition of square blocks: 16x16 b16 fractals, or for 32-bit types
// two consecutive 16x8 fractals joined into a 16x16 square (the first holds columns 0-7), which
// is transposed and split again: the first half goes to fractal i * (1 + dstGap), the second
// dstFracGap fractals after it. srcStride and startIndex count squares.
template <typename T>
inline void LoadDataWithTranspose(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LoadData2dTransposeParams& p) {
    const char* what = "LoadDataWithTranspose";
    detail::require_l1(src, what);
    dst.check_live(what);
    if (dst.mem() != tk_sim::MEM_L0A && dst.mem() != tk_sim::MEM_L0B) tk_sim::fail(std::string(what) + ": destination must be L0A (A2) or L0B (B2)");
    detail::require_pos(dst, dst.mem(), 512, what);
    if (p.addrMode != 0) tk_sim::fail(std::string(what) + ": addrMode 1 is not modelled");
    if (sizeof(T) == 2) {
        for (uint32_t i = 0; i < p.repeatTimes; ++i)
            detail::copy_fractal(dst, (uint64_t)i * (1u + p.dstGap), src, (uint64_t)p.startIndex + (uint64_t)i * p.srcStride, true, what);
        return;
    }
    if (sizeof(T) != 4) tk_sim::fail(std::string(what) + ": only 16- and 32-bit types are modelled");
    for (uint32_t i = 0; i < p.repeatTimes; ++i) {
        uint64_t sq = ((uint64_t)p.startIndex + (uint64_t)i * p.srcStride) * 256;  // first element of the square
        uint64_t d0 = (uint64_t)i * (1u + p.dstGap) * 128;
        uint64_t d1 = d0 + (1u + (uint64_t)p.dstFracGap) * 128;
        detail::in_bounds(src, sq + 255, what);
        detail::in_bounds(dst, d0 + 127, what);
        detail::in_bounds(dst, d1 + 127, what);
        for (uint32_t r = 0; r < 16; ++r)
            for (uint32_t c = 0; c < 16; ++c) {
                // Square element (r, c): fractal c / 8, row r, column c % 8.
                uint32_t s = (uint32_t)(sq + (c / 8) * 128 + r * 8 + c % 8);
                // Transposed element (c, r) goes to half r / 8, row c, column r % 8.
                uint32_t d = (uint32_t)((r / 8 ? d1 : d0) + c * 8 + r % 8);
                dst.st(d, src.ld(s));
                if (!src.was_written(s))
                    std::fill_n(tk_sim::state().written[dst.mem()].begin() + dst.off_ + (uint64_t)d * 4, 4, (uint8_t)0);
            }
    }
}

struct MmadParams {
    uint16_t m = 0;
    uint16_t n = 0;
    uint16_t k = 0;
    bool isBias = false;
    int32_t fmOffset = 0;
    bool enSsparse = false;
    bool enWinogradA = false;
    bool enWinogradB = false;
    uint8_t unitFlag = 0;
    bool kDirectionAlign = false;
    bool cmatrixSource = false;
    bool cmatrixInitVal = true;
};

// C (L0C, Nz) = A (L0A, Zz) x B (L0B, Zn) [+ C]: f16 x f16, bf16 x bf16 and f32 x f32 into f32,
// accumulated in f32 in k order.
template <typename T, typename U, typename S>
inline void Mmad(const LocalTensor<T>& dst, const LocalTensor<U>& fm, const LocalTensor<S>& filter, const MmadParams& p) {
    const char* what = "Mmad";
    static_assert(std::is_same<U, S>::value && detail::cube_type_v<U> && std::is_same<T, float>::value,
                  "Mmad: the simulation models f16/bf16/f32 inputs with an f32 result");
    detail::require_pos(dst, tk_sim::MEM_L0C, 1024, what);
    detail::require_pos(fm, tk_sim::MEM_L0A, 512, what);
    detail::require_pos(filter, tk_sim::MEM_L0B, 512, what);
    if (p.m > 4095 || p.n > 4095 || p.k > 4095) tk_sim::fail("Mmad: m, n and k must be at most 4095");
    if (p.m == 0 || p.n == 0 || p.k == 0) return;
    if (p.m == 1) tk_sim::fail("Mmad with m = 1 runs in GEMV mode (A read as ND), which tk does not emit");
    if (p.cmatrixSource || p.isBias) tk_sim::fail("Mmad: C initialised from the bias table is not modelled");
    if (p.kDirectionAlign && !std::is_same<U, float>::value) tk_sim::fail("Mmad: kDirectionAlign is for float inputs");
    const uint32_t c0 = 32 / (uint32_t)sizeof(U);
    const uint32_t m1 = (p.m + 15u) / 16u, n1 = (p.n + 15u) / 16u;
    const uint32_t k1 = p.kDirectionAlign ? (p.k + 15u) / 16u * 2u : (p.k + c0 - 1) / c0;
    detail::in_bounds(fm, (uint64_t)m1 * k1 * 16 * c0 - 1, what);
    detail::in_bounds(filter, (uint64_t)k1 * n1 * 16 * c0 - 1, what);
    detail::in_bounds(dst, (uint64_t)n1 * m1 * 256 - 1, what);
    for (uint32_t i = 0; i < p.m; ++i)
        for (uint32_t j = 0; j < p.n; ++j) {
            uint32_t ci = ((j / 16) * m1 * 16 + i) * 16 + j % 16;
            float acc = 0.0f;
            if (!p.cmatrixInitVal) {
                if (!dst.was_written(ci)) tk_sim::fail("Mmad accumulates into L0C data that was never written (cmatrixInitVal = false on a fresh buffer)");
                acc = dst.ld(ci);
            }
            for (uint32_t kk = 0; kk < p.k; ++kk) {
                uint32_t ai = ((i / 16) * k1 + kk / c0) * 16 * c0 + (i % 16) * c0 + kk % c0;
                uint32_t bi = ((kk / c0) * n1 + j / 16) * 16 * c0 + (j % 16) * c0 + kk % c0;
                if (!fm.was_written(ai))
                    tk_sim::fail("Mmad reads A(" + std::to_string(i) + ", " + std::to_string(kk) + ") from L0A data that was never written");
                if (!filter.was_written(bi))
                    tk_sim::fail("Mmad reads B(" + std::to_string(kk) + ", " + std::to_string(j) + ") from L0B data that was never written");
                acc = acc + (float)fm.ld(ai) * (float)filter.ld(bi);
            }
            dst.st(ci, acc);
        }
    tk_sim::stats().cube_instrs += 1;
}

enum class CO2Layout : uint8_t { NZ = 0, ROW_MAJOR };
struct FixpipeConfig {
    CO2Layout format;
    bool isToUB;
};
inline constexpr FixpipeConfig CFG_NZ = {CO2Layout::NZ, false};
inline constexpr FixpipeConfig CFG_ROW_MAJOR = {CO2Layout::ROW_MAJOR, false};

}  // namespace AscendC

// Fixpipe's pre-quantisation modes (a global enum in CANN).
enum QuantMode_t : uint8_t { NoQuant = 0, F322F16, F322BF16, DEQF16, VDEQF16, QF322B8_PRE, VQF322B8_PRE, REQ8, VREQ8 };

namespace AscendC {

struct FixpipeParamsV220 {
    uint16_t nSize = 0;
    uint16_t mSize = 0;
    uint16_t srcStride = 0;
    uint32_t dstStride = 0;
    QuantMode_t quantPre = QuantMode_t::NoQuant;
    uint64_t deqScalar = 0;
    uint16_t ndNum = 1;
    uint16_t srcNdStride = 0;
    uint16_t dstNdStride = 0;
    bool reluEn = false;
    uint8_t unitFlag = 0;
    bool isChannelSplit = false;
    FixpipeParamsV220() = default;
    FixpipeParamsV220(uint16_t n, uint16_t m, uint16_t ss, uint32_t ds, bool relu) : nSize(n), mSize(m), srcStride(ss), dstStride(ds), reluEn(relu) {}
};

// L0C (Nz, f32) -> GM (ND, row pitch dstStride elements): mSize x nSize elements; the source's
// strips of 16 columns are srcStride * 16 elements apart. f32 results go out as float
// (NoQuant), half (F322F16) or bfloat16_t (F322BF16), rounded to nearest even.
template <typename T, typename U, const FixpipeConfig& config = CFG_ROW_MAJOR>
inline void Fixpipe(const GlobalTensor<T>& dst, const LocalTensor<U>& src, const FixpipeParamsV220& p) {
    const char* what = "Fixpipe (L0C->GM)";
    static_assert(std::is_same<U, float>::value, "Fixpipe: the simulation models f32 L0C data");
    if (config.format != CO2Layout::ROW_MAJOR || config.isToUB) tk_sim::fail("Fixpipe: only the NZ2ND path to GM is modelled");
    detail::require_pos(src, tk_sim::MEM_L0C, 64, what);
    QuantMode_t want = std::is_same<T, float>::value ? QuantMode_t::NoQuant : std::is_same<T, half>::value ? QuantMode_t::F322F16 : QuantMode_t::F322BF16;
    if (!std::is_same<T, float>::value && !std::is_same<T, half>::value && !std::is_same<T, bfloat16_t>::value) tk_sim::fail("Fixpipe: output type not modelled");
    if (p.quantPre != want) tk_sim::fail("Fixpipe: quantPre does not match the output type (NoQuant for float, F322F16 for half, F322BF16 for bfloat16_t)");
    if (p.ndNum != 1) tk_sim::fail("Fixpipe: ndNum != 1 is not modelled");
    if (p.nSize > 4095 || p.mSize > 8192) tk_sim::fail("Fixpipe: nSize must be at most 4095 and mSize at most 8192 with NZ2ND");
    if (p.dstStride == 0) tk_sim::fail("Fixpipe: dstStride must not be 0");
    tk_sim::stats().dma_instrs += 1;
    if (p.nSize == 0 || p.mSize == 0) return;
    for (uint32_t i = 0; i < p.mSize; ++i) {
        T* row = dst.base_ + (uint64_t)i * p.dstStride;
        tk_sim::gm_check(row, (size_t)p.nSize * sizeof(T), what);
        for (uint32_t j = 0; j < p.nSize; ++j) {
            uint64_t si = ((uint64_t)(j / 16) * p.srcStride + i) * 16 + j % 16;
            detail::in_bounds(src, si, what);
            if (!src.was_written((uint32_t)si)) tk_sim::fail("Fixpipe reads L0C data that was never written (row " + std::to_string(i) + ", column " + std::to_string(j) + ")");
            float v = src.ld((uint32_t)si);
            if (p.reluEn && v < 0.0f) v = 0.0f;
            T o = tk_sim::from_d<T>(v);
            std::memcpy(row + j, &o, sizeof(T));
        }
        tk_sim::stats().l0c_to_gm_bytes += (uint64_t)p.nSize * sizeof(T);
    }
}

// ---- vector compute (count form) -----------------------------------------------------------------
namespace detail {
template <typename T>
inline void vec_check(const LocalTensor<T>& t, int64_t count, const char* what) {
    if (count < 0) tk_sim::fail(std::string(what) + ": negative count");
    t.check_ub((uint64_t)count, what);
}
template <typename T, typename F>
inline void unary(const LocalTensor<T>& dst, const LocalTensor<T>& src, int32_t count, const char* what, F f) {
    vec_check(dst, count, what);
    vec_check(src, count, what);
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    for (int32_t i = 0; i < count; ++i) dst.st((uint32_t)i, tk_sim::from_d<T>(f(tk_sim::to_d(src.ld((uint32_t)i)))));
}
template <typename T, typename F>
inline void binary(const LocalTensor<T>& dst, const LocalTensor<T>& a, const LocalTensor<T>& b, int32_t count, const char* what, F f) {
    vec_check(dst, count, what);
    vec_check(a, count, what);
    vec_check(b, count, what);
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    for (int32_t i = 0; i < count; ++i)
        dst.st((uint32_t)i, tk_sim::from_d<T>(f(tk_sim::to_d(a.ld((uint32_t)i)), tk_sim::to_d(b.ld((uint32_t)i)))));
}
inline double nan_max(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? NAN : (a > b ? a : (b > a ? b : (std::signbit(a) ? b : a))); }
inline double nan_min(double a, double b) { return (std::isnan(a) || std::isnan(b)) ? NAN : (a < b ? a : (b < a ? b : (std::signbit(a) ? a : b))); }
template <typename T>
inline void require_float(const char* what) {
    static_assert(tk_sim::is_float_v<T> || std::is_same<T, int32_t>::value || std::is_same<T, int16_t>::value, "vector op on an unsupported dtype");
    if (std::is_same<T, bfloat16_t>::value) tk_sim::fail(std::string(what) + ": no vector arithmetic on bfloat16_t (Cast to float first)");
}
}  // namespace detail

#define TK_SIM_BINARY(NAME, EXPR)                                                                          \
    template <typename T>                                                                                 \
    inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1,   \
                     const int32_t& count) {                                                              \
        detail::require_float<T>(#NAME);                                                                  \
        detail::binary(dst, src0, src1, count, #NAME, [](double a, double b) { return EXPR; });           \
    }
TK_SIM_BINARY(Add, a + b)
TK_SIM_BINARY(Sub, a - b)
TK_SIM_BINARY(Mul, a * b)
TK_SIM_BINARY(Div, a / b)
TK_SIM_BINARY(Max, detail::nan_max(a, b))
TK_SIM_BINARY(Min, detail::nan_min(a, b))
#undef TK_SIM_BINARY

#define TK_SIM_SCALAR(NAME, EXPR)                                                                        \
    template <typename T>                                                                               \
    inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const T& scalarValue,        \
                     const int32_t& count) {                                                            \
        detail::require_float<T>(#NAME);                                                                \
        double b = tk_sim::to_d(scalarValue);                                                           \
        detail::unary(dst, src, count, #NAME, [b](double a) { return EXPR; });                          \
    }
TK_SIM_SCALAR(Adds, a + b)
TK_SIM_SCALAR(Muls, a * b)
TK_SIM_SCALAR(Maxs, detail::nan_max(a, b))
TK_SIM_SCALAR(Mins, detail::nan_min(a, b))
#undef TK_SIM_SCALAR

#define TK_SIM_UNARY(NAME, EXPR)                                                                          \
    template <typename T>                                                                                \
    inline void NAME(const LocalTensor<T>& dst, const LocalTensor<T>& src, const int32_t& count) {       \
        detail::require_float<T>(#NAME);                                                                 \
        detail::unary(dst, src, count, #NAME, [](double a) { return EXPR; });                            \
    }
TK_SIM_UNARY(Exp, std::exp(a))
TK_SIM_UNARY(Ln, std::log(a))
TK_SIM_UNARY(Abs, std::fabs(a))
TK_SIM_UNARY(Sqrt, std::sqrt(a))
TK_SIM_UNARY(Rsqrt, 1.0 / std::sqrt(a))
TK_SIM_UNARY(Reciprocal, 1.0 / a)
TK_SIM_UNARY(Relu, a > 0 ? a : 0.0)
// Advanced math library (lib/math): framework-managed temporary buffer form.
TK_SIM_UNARY(Tanh, std::tanh(a))
TK_SIM_UNARY(Erf, std::erf(a))
TK_SIM_UNARY(Sin, std::sin(a))
TK_SIM_UNARY(Cos, std::cos(a))
TK_SIM_UNARY(Floor, std::floor(a))
TK_SIM_UNARY(Ceil, std::ceil(a))
TK_SIM_UNARY(Sigmoid, 1.0 / (1.0 + std::exp(-a)))
#undef TK_SIM_UNARY

// dst = src * scalar + dst
template <typename T, typename U>
inline void Axpy(const LocalTensor<T>& dst, const LocalTensor<U>& src, const U& scalarValue, const int32_t& count) {
    detail::vec_check(dst, count, "Axpy");
    detail::vec_check(src, count, "Axpy");
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    double s = tk_sim::to_d(scalarValue);
    for (int32_t i = 0; i < count; ++i) {
        T prod = tk_sim::from_d<T>(tk_sim::to_d(src.ld((uint32_t)i)) * s);
        dst.st((uint32_t)i, tk_sim::from_d<T>(tk_sim::to_d(prod) + tk_sim::to_d(dst.ld((uint32_t)i))));
    }
}

template <typename T>
inline void Duplicate(const LocalTensor<T>& dst, const T& scalarValue, const int32_t& count) {
    detail::vec_check(dst, count, "Duplicate");
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    for (int32_t i = 0; i < count; ++i) dst.st((uint32_t)i, scalarValue);
}

template <typename T>
inline void CreateVecIndex(const LocalTensor<T>& dst, const T& firstValue, uint32_t count) {
    detail::vec_check(dst, count, "CreateVecIndex");
    tk_sim::count_vec(count * (uint32_t)sizeof(T));
    double f = tk_sim::to_d(firstValue);
    for (uint32_t i = 0; i < count; ++i) dst.st(i, tk_sim::from_d<T>(f + (double)i));
}

template <typename T, typename U>
inline void Cast(const LocalTensor<T>& dst, const LocalTensor<U>& src, const RoundMode& mode, uint32_t count) {
    detail::vec_check(dst, count, "Cast");
    detail::vec_check(src, count, "Cast");
    tk_sim::count_vec(count * (uint32_t)std::max(sizeof(T), sizeof(U)));
    for (uint32_t i = 0; i < count; ++i) {
        double v = tk_sim::to_d(src.ld(i));
        if (!tk_sim::is_float_v<T>) {
            switch (mode) {
                case RoundMode::CAST_FLOOR: v = std::floor(v); break;
                case RoundMode::CAST_CEIL: v = std::ceil(v); break;
                case RoundMode::CAST_ROUND: v = std::round(v); break;
                case RoundMode::CAST_TRUNC: v = std::trunc(v); break;
                default: v = std::nearbyint(v); break;
            }
        }
        dst.st(i, tk_sim::from_d<T>(v));
    }
}

namespace detail {
inline bool cmp(CMPMODE m, double a, double b) {
    switch (m) {
        case CMPMODE::LT: return a < b;
        case CMPMODE::GT: return a > b;
        case CMPMODE::EQ: return a == b;
        case CMPMODE::LE: return a <= b;
        case CMPMODE::GE: return a >= b;
        case CMPMODE::NE: return a != b;
    }
    return false;
}
template <typename T>
inline void cmp_count_check(uint32_t count, const char* what) {
    if (((uint64_t)count * sizeof(T)) % 256 != 0)
        tk_sim::fail(std::string(what) + ": count " + std::to_string(count) + " (" + std::to_string((uint64_t)count * sizeof(T)) + " bytes) is not a multiple of 256 bytes");
}
}  // namespace detail

template <typename U, typename T>
inline void Compare(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const LocalTensor<T>& src1, CMPMODE mode, uint32_t count) {
    detail::cmp_count_check<T>(count, "Compare");
    detail::vec_check(src0, count, "Compare");
    detail::vec_check(src1, count, "Compare");
    LocalTensor<uint8_t> bits = dst.template ReinterpretCast<uint8_t>();
    detail::vec_check(bits, (count + 7) / 8, "Compare");
    tk_sim::count_vec(count * (uint32_t)sizeof(T));
    for (uint32_t i = 0; i < count; i += 8) {
        uint8_t byte = 0;
        for (uint32_t k = 0; k < 8 && i + k < count; ++k)
            if (detail::cmp(mode, tk_sim::to_d(src0.ld(i + k)), tk_sim::to_d(src1.ld(i + k)))) byte |= (uint8_t)(1u << k);
        bits.st(i / 8, byte);
    }
}
template <typename U, typename T>
inline void Compares(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const T src1, CMPMODE mode, uint32_t count) {
    detail::cmp_count_check<T>(count, "Compares");
    detail::vec_check(src0, count, "Compares");
    LocalTensor<uint8_t> bits = dst.template ReinterpretCast<uint8_t>();
    detail::vec_check(bits, (count + 7) / 8, "Compares");
    tk_sim::count_vec(count * (uint32_t)sizeof(T));
    double b = tk_sim::to_d(src1);
    for (uint32_t i = 0; i < count; i += 8) {
        uint8_t byte = 0;
        for (uint32_t k = 0; k < 8 && i + k < count; ++k)
            if (detail::cmp(mode, tk_sim::to_d(src0.ld(i + k)), b)) byte |= (uint8_t)(1u << k);
        bits.st(i / 8, byte);
    }
}
// CANN 8.x name of Compares.
template <typename U, typename T>
inline void CompareScalar(const LocalTensor<U>& dst, const LocalTensor<T>& src0, const T src1, CMPMODE mode, uint32_t count) {
    Compares(dst, src0, src1, mode, count);
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0, const LocalTensor<T>& src1, SELMODE mode, uint32_t count) {
    if (mode != SELMODE::VSEL_TENSOR_TENSOR_MODE) tk_sim::fail("Select(tensor, tensor) needs VSEL_TENSOR_TENSOR_MODE");
    detail::vec_check(dst, count, "Select");
    detail::vec_check(src0, count, "Select");
    detail::vec_check(src1, count, "Select");
    LocalTensor<uint8_t> bits = selMask.template ReinterpretCast<uint8_t>();
    detail::vec_check(bits, (count + 7) / 8, "Select");
    tk_sim::count_vec(count * (uint32_t)sizeof(T));
    for (uint32_t i = 0; i < count; ++i) dst.st(i, ((bits.ld(i / 8) >> (i % 8)) & 1u) ? src0.ld(i) : src1.ld(i));
}
template <typename T, typename U>
inline void Select(const LocalTensor<T>& dst, const LocalTensor<U>& selMask, const LocalTensor<T>& src0, T src1, SELMODE mode, uint32_t count) {
    if (mode != SELMODE::VSEL_TENSOR_SCALAR_MODE) tk_sim::fail("Select(tensor, scalar) needs VSEL_TENSOR_SCALAR_MODE");
    detail::vec_check(dst, count, "Select");
    detail::vec_check(src0, count, "Select");
    LocalTensor<uint8_t> bits = selMask.template ReinterpretCast<uint8_t>();
    detail::vec_check(bits, (count + 7) / 8, "Select");
    tk_sim::count_vec(count * (uint32_t)sizeof(T));
    for (uint32_t i = 0; i < count; ++i) dst.st(i, ((bits.ld(i / 8) >> (i % 8)) & 1u) ? src0.ld(i) : src1);
}

// ---- sorting (Sort32 / MrgSort, A2/A3 only) --------------------------------------------------------
//
// A sorted queue is a run of 8-byte (score, index) proposals: the score in the low bytes (a float,
// or a half followed by 2 reserved bytes), the uint32 index in the high 4 bytes. Both APIs sort
// by score, largest first; equal scores keep their order (the earlier element first). The order
// of NaN scores is not documented, so the simulation refuses them.
namespace detail {
template <typename T>
inline float proposal_score(const LocalTensor<T>& t, uint32_t p) {
    // Element index of proposal p's score: p * 8 bytes.
    return (float)t.ld(p * (8 / (uint32_t)sizeof(T)));
}
template <typename T>
inline void check_sort_type(const char* what) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, half>::value, "Sort32/MrgSort take half or float");
#if !TK_SIM_SPLIT_CORES
    tk_sim::fail(std::string(what) + " is not supported on " TK_SIM_SOC_NAME);
#else
    (void)what;
#endif
}
template <typename T>
inline void copy_proposal(const LocalTensor<T>& dst, uint32_t dp, const LocalTensor<T>& src, uint32_t sp) {
    std::memcpy(dst.addr(0) + (size_t)dp * 8, src.addr(0) + (size_t)sp * 8, 8);
}
}  // namespace detail

// Sorts each group of 32 scores (src0) with their uint32 indices (src1) into 32 proposals.
template <typename T>
inline void Sort32(const LocalTensor<T>& dst, const LocalTensor<T>& src0, const LocalTensor<uint32_t>& src1, const int32_t repeatTime) {
    const char* what = "Sort32";
    detail::check_sort_type<T>(what);
    if (repeatTime < 0 || repeatTime > 255) tk_sim::fail("Sort32: repeatTime outside 0..255");
    if (repeatTime == 0) return;
    uint32_t n = 32u * (uint32_t)repeatTime;
    detail::vec_check(src0, n, what);
    detail::vec_check(src1, n, what);
    detail::vec_check(dst, n * 8 / sizeof(T), what);
    if (dst.off_ % 256 != 0) tk_sim::fail("Sort32: dst must be 256-byte aligned");
    if (src0.off_ % (sizeof(T) == 4 ? 128 : 64) != 0 || src1.off_ % 128 != 0) tk_sim::fail("Sort32: sources must be 128-byte (float) / 64-byte (half) aligned");
    tk_sim::count_vec(n * (uint32_t)sizeof(T));
    tk_sim::stats().sort_instrs += 1;
    for (uint32_t g = 0; g < n; g += 32) {
        uint32_t order[32];
        for (uint32_t i = 0; i < 32; ++i) {
            order[i] = i;
            if (std::isnan((float)src0.ld(g + i))) tk_sim::fail("Sort32 of a NaN score: its order is not documented");
        }
        std::stable_sort(order, order + 32, [&](uint32_t a, uint32_t b) { return (float)src0.ld(g + a) > (float)src0.ld(g + b); });
        for (uint32_t i = 0; i < 32; ++i) {
            uint8_t* p = dst.addr(0) + (size_t)(g + i) * 8;
            std::memset(p, 0, 8);
            T s = src0.ld(g + order[i]);
            uint32_t idx = src1.ld(g + order[i]);
            std::memcpy(p, &s, sizeof(T));
            std::memcpy(p + 4, &idx, 4);
        }
    }
}

template <typename T>
struct MrgSortSrcList {
    MrgSortSrcList() {}
    MrgSortSrcList(const LocalTensor<T> s1, const LocalTensor<T> s2, const LocalTensor<T> s3, const LocalTensor<T> s4) : src1(s1), src2(s2), src3(s3), src4(s4) {}
    LocalTensor<T> src1;
    LocalTensor<T> src2;
    LocalTensor<T> src3;
    LocalTensor<T> src4;
};
struct MrgSort4Info {
    uint16_t elementLengths[4] = {0, 0, 0, 0};
    bool ifExhaustedSuspension = false;
    uint16_t validBit = 0;
    uint16_t repeatTimes = 1;
    MrgSort4Info() = default;
    MrgSort4Info(const uint16_t lens[4], bool susp, uint16_t valid, uint16_t rep) : ifExhaustedSuspension(susp), validBit(valid), repeatTimes(rep) {
        for (int i = 0; i < 4; ++i) elementLengths[i] = lens[i];
    }
};

// Merges 2, 3 or 4 sorted queues (validBit 3, 7, 15) of elementLengths[i] proposals into dst.
template <typename T>
inline void MrgSort(const LocalTensor<T>& dst, const MrgSortSrcList<T>& src, const MrgSort4Info& p) {
    const char* what = "MrgSort";
    detail::check_sort_type<T>(what);
    int nq = p.validBit == 3 ? 2 : p.validBit == 7 ? 3 : p.validBit == 15 ? 4 : 0;
    if (nq == 0) tk_sim::fail("MrgSort: validBit must be 3, 7 or 15");
    if (p.repeatTimes != 1) tk_sim::fail("MrgSort: repeatTimes != 1 is not modelled");
    if (p.ifExhaustedSuspension) tk_sim::fail("MrgSort: ifExhaustedSuspension is not modelled");
    const LocalTensor<T>* qs[4] = {&src.src1, &src.src2, &src.src3, &src.src4};
    uint32_t total = 0;
    for (int q = 0; q < nq; ++q) {
        if (p.elementLengths[q] > 4095) tk_sim::fail("MrgSort: a queue longer than 4095 proposals");
        qs[q]->check_ub(p.elementLengths[q] * 8 / sizeof(T), what);
        if (qs[q]->off_ % 8 != 0) tk_sim::fail("MrgSort: source queues must be 8-byte aligned");
        total += p.elementLengths[q];
    }
    dst.check_ub(total * 8 / sizeof(T), what);
    for (int q = 0; q < nq; ++q) {
        uint32_t a0 = qs[q]->off_, a1 = a0 + p.elementLengths[q] * 8u;
        if (a0 < dst.off_ + total * 8u && dst.off_ < a1) tk_sim::fail("MrgSort: source and destination overlap");
    }
    tk_sim::count_vec(total * 8);
    tk_sim::stats().sort_instrs += 1;
    uint32_t pos[4] = {0, 0, 0, 0};
    for (uint32_t o = 0; o < total; ++o) {
        int best = -1;
        float bv = 0.0f;
        for (int q = 0; q < nq; ++q) {
            if (pos[q] >= p.elementLengths[q]) continue;
            float v = detail::proposal_score(*qs[q], pos[q]);
            if (std::isnan(v)) tk_sim::fail("MrgSort of a NaN score: its order is not documented");
            // Strictly greater: on equal scores the earlier queue's element comes first.
            if (best < 0 || v > bv) {
                best = q;
                bv = v;
            }
        }
        detail::copy_proposal(dst, o, *qs[best], pos[best]);
        pos[best] += 1;
    }
}

// ---- reductions (classic CANN 8.x count form) ------------------------------------------------------
namespace detail {
template <typename T>
inline void reduce_tmp_check(const LocalTensor<T>& tmp, int32_t count, bool pairs, const char* what) {
    uint32_t per_rep = 256 / (uint32_t)sizeof(T);
    uint32_t per_blk = 32 / (uint32_t)sizeof(T);
    uint32_t reps = ((uint32_t)count + per_rep - 1) / per_rep;
    uint32_t need = pairs ? (2 * reps + per_blk - 1) / per_blk * per_blk : (reps + per_blk - 1) / per_blk * per_blk;
    vec_check(tmp, need, what);
}
}  // namespace detail

// dst[0] = sum(src[0..count)); within each 256-byte repeat a binary tree, then repeats in order.
template <typename T>
inline void ReduceSum(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer, const int32_t count) {
    detail::require_float<T>("ReduceSum");
    detail::vec_check(dst, 1, "ReduceSum");
    detail::vec_check(src, count, "ReduceSum");
    detail::reduce_tmp_check(sharedTmpBuffer, count, false, "ReduceSum sharedTmpBuffer");
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    uint32_t per_rep = 256 / (uint32_t)sizeof(T);
    T total = tk_sim::from_d<T>(0.0);
    for (uint32_t base = 0; base < (uint32_t)count; base += per_rep) {
        uint32_t n = std::min<uint32_t>(per_rep, (uint32_t)count - base);
        std::vector<T> v(n);
        for (uint32_t i = 0; i < n; ++i) v[i] = src.ld(base + i);
        while (v.size() > 1) {
            std::vector<T> w((v.size() + 1) / 2);
            for (size_t i = 0; i < w.size(); ++i)
                w[i] = 2 * i + 1 < v.size() ? tk_sim::from_d<T>(tk_sim::to_d(v[2 * i]) + tk_sim::to_d(v[2 * i + 1])) : v[2 * i];
            v.swap(w);
        }
        total = base == 0 ? v[0] : tk_sim::from_d<T>(tk_sim::to_d(total) + tk_sim::to_d(v[0]));
    }
    dst.st(0, total);
}
namespace detail {
template <typename T>
inline void reduce_ext(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& tmp, int32_t count, bool calIndex, bool is_max, const char* what) {
    require_float<T>(what);
    vec_check(dst, calIndex ? 2 : 1, what);
    vec_check(src, count, what);
    reduce_tmp_check(tmp, count, true, what);
    if (count <= 0) tk_sim::fail(std::string(what) + ": count must be positive");
    tk_sim::count_vec((uint32_t)count * sizeof(T));
    uint32_t best = 0;
    double bv = tk_sim::to_d(src.ld(0));
    for (uint32_t i = 1; i < (uint32_t)count; ++i) {
        double v = tk_sim::to_d(src.ld(i));
        if (std::isnan(bv)) break;
        if (std::isnan(v) || (is_max ? v > bv : v < bv)) {
            bv = v;
            best = i;
        }
    }
    dst.st(0, src.ld(best));
    if (calIndex) {
        if (std::is_same<T, float>::value) {
            float f = tk_sim::f32_from_bits(best);
            dst.st(1, tk_sim::from_d<T>(f));
        } else {
            uint16_t b = (uint16_t)best;
            T t;
            std::memcpy(&t, &b, sizeof(T) < 2 ? sizeof(T) : 2);
            dst.st(1, t);
        }
    }
}
}  // namespace detail
template <typename T>
inline void ReduceMax(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer, const int32_t count, bool calIndex = false) {
    detail::reduce_ext(dst, src, sharedTmpBuffer, count, calIndex, true, "ReduceMax");
}
template <typename T>
inline void ReduceMin(const LocalTensor<T>& dst, const LocalTensor<T>& src, const LocalTensor<T>& sharedTmpBuffer, const int32_t count, bool calIndex = false) {
    detail::reduce_ext(dst, src, sharedTmpBuffer, count, calIndex, false, "ReduceMin");
}

// ---- host side (CANN CPU-debug compatible names) ---------------------------------------------------
inline void* GmAlloc(size_t bytes) { return tk_sim::gm_alloc(bytes); }
inline void GmFree(void* p) { tk_sim::gm_free(p); }
enum class KernelMode { MIX_MODE = 0, AIC_MODE, AIV_MODE, MIX_AIC_1_1 };
inline void SetKernelMode(KernelMode) {}

}  // namespace AscendC

// Runs `func(args...)` on blockDim simulated cores, one after another; sets tk_sim::errors().
#define ICPU_RUN_KF(func, blockDim, ...) ::tk_sim::launch((uint32_t)(blockDim), [&]() { func(__VA_ARGS__); })

#endif  // TK_ASCEND_SIM_H
