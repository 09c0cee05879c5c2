"""Triton equivalents of every stdlib kernel, and the table of cases shared by
scripts/ptx-report.sh (static: registers, spills, SASS size) and scripts/gpu-check.sh (numbers
and timing on a GPU).

Each Triton kernel does what the .tk kernel does, with the same block sizes, warp count and
facts about the arguments: pointers are 16-byte aligned (tk assumes it, and the runtime checks
it; Triton gets `tt.divisibility = 16` on pointers, as its JIT gives 16-byte aligned tensors),
and a row stride that the .tk kernel declares `multiple_of(stride, 4)` is declared with
`tl.multiple_of` here. No other integer gets a divisibility fact on either side (Triton's JIT
would add `% 16` facts for integer arguments divisible by 16; the AOT compile here does not).
f32 `dot` is IEEE on both sides (`input_precision="ieee"`), f16 `dot` uses tensor cores on both.
"""

import triton
import triton.language as tl


@triton.jit
def vector_add(x, y, z, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(x + offs, mask=mask, other=0.0)
    b = tl.load(y + offs, mask=mask, other=0.0)
    tl.store(z + offs, a + b, mask=mask)


@triton.jit
def gelu_kernel(x, y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x + offs, mask=mask, other=0.0)
    tl.store(y + offs, 0.5 * v * (1.0 + tl.math.erf(v * 0.7071067811865476)), mask=mask)


@triton.jit
def silu_kernel(x, y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x + offs, mask=mask, other=0.0)
    tl.store(y + offs, v * tl.sigmoid(v), mask=mask)


@triton.jit
def softmax(x, y, n_cols, stride, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = tl.multiple_of(row * stride, 4)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    v = tl.load(x + start + cols, mask=mask, other=-float("inf"))
    e = tl.exp(v - tl.max(v, axis=0))
    tl.store(y + start + cols, e / tl.sum(e, axis=0), mask=mask)


@triton.jit
def layernorm(x, w, b, y, n_cols, stride, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = tl.multiple_of(row * stride, 4)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    v = tl.load(x + start + cols, mask=mask, other=0.0)
    n = n_cols.to(tl.float32)
    mean = tl.sum(v, axis=0) / n
    d = tl.where(mask, v - mean, 0.0)
    var = tl.sum(d * d, axis=0) / n
    inv = tl.math.rsqrt(var + eps)
    gamma = tl.load(w + cols, mask=mask, other=0.0)
    beta = tl.load(b + cols, mask=mask, other=0.0)
    tl.store(y + start + cols, d * inv * gamma + beta, mask=mask)


@triton.jit
def rmsnorm(x, w, y, n_cols, stride, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    start = tl.multiple_of(row * stride, 4)
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    v = tl.load(x + start + cols, mask=mask, other=0.0)
    ms = tl.sum(v * v, axis=0) / n_cols.to(tl.float32)
    gamma = tl.load(w + cols, mask=mask, other=0.0)
    tl.store(y + start + cols, v * tl.math.rsqrt(ms + eps) * gamma, mask=mask)


@triton.jit
def _matmul(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
            PRECISION: tl.constexpr):
    rm = tl.program_id(0) * BM + tl.arange(0, BM)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k in range(0, K, BK):
        ka = k + rk
        a_tile = tl.load(a + rm[:, None].to(tl.int64) * K + ka[None, :],
                         mask=(rm[:, None] < M) & (ka[None, :] < K), other=0.0)
        b_tile = tl.load(b + ka[:, None].to(tl.int64) * N + rn[None, :],
                         mask=(ka[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a_tile, b_tile, acc, input_precision=PRECISION)
    tl.store(c + rm[:, None].to(tl.int64) * N + rn[None, :], acc,
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def matmul(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    _matmul(a, b, c, M, N, K, BM, BN, BK, "ieee")


@triton.jit
def matmul_f16(a, b, c, M, N, K, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    # The precision only matters for f32 inputs; f16 always runs on tensor cores.
    _matmul(a, b, c, M, N, K, BM, BN, BK, "tf32")


@triton.jit
def topk_gating(logits, weights, ids, n_experts, stride, BLOCK_E: tl.constexpr, K: tl.constexpr,
                RENORM: tl.constexpr):
    tok = tl.program_id(0).to(tl.int64)
    e = tl.arange(0, BLOCK_E)
    mask = e < n_experts
    x = tl.load(logits + tok * stride + e, mask=mask, other=-float("inf"))
    p = tl.exp(x - tl.max(x, axis=0))
    probs = p / tl.sum(p, axis=0)
    # Top-k of (probability, lower id first) as one sortable key: probabilities are >= 0, so
    # their bits order like the values; the low half holds BLOCK_E - 1 - id.
    bits = probs.to(tl.int32, bitcast=True).to(tl.int64)
    key = (bits << 32) | (BLOCK_E - 1 - e).to(tl.int64)
    top = tl.topk(key, K, dim=0)
    vals = (top >> 32).to(tl.int32).to(tl.float32, bitcast=True)
    idx = (BLOCK_E - 1 - (top & 0xFFFFFFFF)).to(tl.int32)
    if RENORM:
        vals = vals / tl.sum(vals, axis=0)
    k = tl.arange(0, K)
    tl.store(weights + tok * K + k, vals)
    tl.store(ids + tok * K + k, idx)


# (name, .tk file, tk kernel, -D values, triton fn, signature, constexprs, stride arg index)
# Signatures use Triton's type names; every pointer is declared 16-byte aligned.
CASES = [
    ("vector_add", "vector_add.tk", "vector_add", {"BLOCK": 1024}, vector_add,
     {"x": "*fp32", "y": "*fp32", "z": "*fp32", "n": "i64"}),
    ("gelu", "activations.tk", "gelu_kernel", {"BLOCK": 1024}, gelu_kernel,
     {"x": "*fp32", "y": "*fp32", "n": "i64"}),
    ("silu", "activations.tk", "silu_kernel", {"BLOCK": 1024}, silu_kernel,
     {"x": "*fp32", "y": "*fp32", "n": "i64"}),
    ("softmax", "softmax.tk", "softmax", {"BLOCK": 1024}, softmax,
     {"x": "*fp32", "y": "*fp32", "n_cols": "i32", "stride": "i64"}),
    ("layernorm", "layernorm.tk", "layernorm", {"BLOCK": 1024}, layernorm,
     {"x": "*fp32", "w": "*fp32", "b": "*fp32", "y": "*fp32", "n_cols": "i32", "stride": "i64",
      "eps": "fp32"}),
    ("rmsnorm", "rmsnorm.tk", "rmsnorm", {"BLOCK": 1024}, rmsnorm,
     {"x": "*fp32", "w": "*fp32", "y": "*fp32", "n_cols": "i32", "stride": "i64",
      "eps": "fp32"}),
    ("matmul", "matmul.tk", "matmul", {"BM": 32, "BN": 32, "BK": 32}, matmul,
     {"a": "*fp32", "b": "*fp32", "c": "*fp32", "M": "i32", "N": "i32", "K": "i32"}),
    ("matmul_f16", "matmul.tk", "matmul_f16", {"BM": 64, "BN": 64, "BK": 32}, matmul_f16,
     {"a": "*fp16", "b": "*fp16", "c": "*fp32", "M": "i32", "N": "i32", "K": "i32"}),
    ("topk_gating", "moe_gating.tk", "topk_gating", {"BLOCK_E": 64, "K": 8, "RENORM": 0},
     topk_gating,
     {"logits": "*fp32", "weights": "*fp32", "ids": "*i32", "n_experts": "i32",
      "stride": "i64"}),
]

NUM_WARPS = 4


def compile_case(case, arch=90, num_warps=NUM_WARPS, num_stages=None, int_div16=False):
    """Compiles one case with Triton for sm_<arch> (no GPU needed); returns the CompiledKernel
    (`.asm["ptx"]`, `.asm["cubin"]`, `.metadata`). `int_div16` adds `tt.divisibility = 16` to
    every integer argument too: what Triton's JIT does when they are multiples of 16."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    _, _, _, defines, fn, sig = case
    signature = dict(sig)
    for k in defines:
        signature[k] = "constexpr"
    constexprs = {k: (bool(v) if k == "RENORM" else v) for k, v in defines.items()}
    attrs = {(i,): [["tt.divisibility", 16]] for i, (k, t) in enumerate(sig.items())
             if t.startswith("*") or (int_div16 and t in ("i32", "i64"))}
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs, attrs=attrs)
    target = GPUTarget("cuda", arch, 32)
    options = {"num_warps": num_warps}
    if num_stages is not None:
        options["num_stages"] = num_stages
    return triton.compile(src, target=target, options=options)
