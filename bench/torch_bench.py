"""PyTorch CPU timings for tk's benchmark suite, printed as JSON on stdout.

Run by scripts/bench.sh right before the Rust harness (bench/src), with the same thread count,
so that torch's numbers come from the same run as tk's, C's and OpenBLAS's. Each operation is
what a user would call; where an `out=` form exists it is used, so that the timing is the
kernel's and not that of faulting in a fresh 64 MiB output on every call. Shapes, warm-up and
the median-of-runs rule match the harness (bench/src/measure.rs).
"""

import argparse
import json
import sys
import time

import torch
import torch.nn.functional as F

VADD_N = 1 << 24
ROWS, COLS = 4096, 1024
EPS = 1e-5
MM = 1024
TOKENS, EXPERTS, TOPK = 4096, 64, 6


def plan(quick):
    if quick:
        return dict(warmup=1, warm_s=0.05, budget_s=0.3, min_runs=3, max_runs=21)
    return dict(warmup=3, warm_s=0.3, budget_s=2.0, min_runs=11, max_runs=201)


def measure(fn, p):
    start = time.perf_counter()
    warm = 0
    while warm < p["warmup"] or (time.perf_counter() - start < p["warm_s"] and warm < 50):
        fn()
        warm += 1
    per_run = (time.perf_counter() - start) / warm
    runs = min(max(int(p["budget_s"] / max(per_run, 1e-9)), p["min_runs"]), p["max_runs"])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    time.sleep(0.2)
    return dict(median_s=times[len(times) // 2], min_s=times[0], runs=len(times))


def uniform(shape, lo, hi, g):
    return torch.rand(shape, generator=g, dtype=torch.float32) * (hi - lo) + lo


def check(cond, what):
    if not cond:
        sys.exit(f"torch_bench: wrong result: {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    p = plan(a.quick)
    only = set(filter(None, a.only.split(",")))
    want = lambda k: not only or k in only
    g = torch.Generator().manual_seed(0)
    res = {}

    if want("vector_add"):
        x, y = uniform(VADD_N, -1, 1, g), uniform(VADD_N, -1, 1, g)
        z = torch.empty(VADD_N)
        torch.add(x, y, out=z)
        check(torch.equal(z, x + y), "add")
        res["vector_add"] = dict(api="torch.add(x, y, out=z)", **measure(lambda: torch.add(x, y, out=z), p))

    if want("softmax") or want("layernorm") or want("rmsnorm"):
        x = uniform((ROWS, COLS), -4, 4, g)
        w = uniform(COLS, 0.5, 1.5, g)
        b = uniform(COLS, -0.5, 0.5, g)
    if want("softmax"):
        y = torch.softmax(x, dim=1)
        check(torch.allclose(y.sum(dim=1), torch.ones(ROWS), atol=1e-4), "softmax rows sum to 1")
        res["softmax"] = dict(api="torch.softmax(x, dim=1)", **measure(lambda: torch.softmax(x, dim=1), p))
    if want("layernorm"):
        y = F.layer_norm(x, (COLS,), w, b, EPS)
        ref = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + EPS) * w + b
        check(torch.allclose(y, ref, atol=1e-4, rtol=1e-4), "layer_norm")
        res["layernorm"] = dict(
            api="F.layer_norm(x, (1024,), w, b, 1e-5)",
            **measure(lambda: F.layer_norm(x, (COLS,), w, b, EPS), p),
        )
    if want("rmsnorm"):
        y = F.rms_norm(x, (COLS,), w, EPS)
        ref = x * torch.rsqrt((x * x).mean(1, keepdim=True) + EPS) * w
        check(torch.allclose(y, ref, atol=1e-4, rtol=1e-4), "rms_norm")
        res["rmsnorm"] = dict(
            api="F.rms_norm(x, (1024,), w, 1e-5)", **measure(lambda: F.rms_norm(x, (COLS,), w, EPS), p)
        )

    if want("matmul"):
        A, B = uniform((MM, MM), -1, 1, g), uniform((MM, MM), -1, 1, g)
        C = torch.empty(MM, MM)
        torch.mm(A, B, out=C)
        check(torch.allclose(C, (A.double() @ B.double()).float(), atol=1e-3, rtol=1e-4), "mm")
        res["matmul"] = dict(api="torch.mm(a, b, out=c)", **measure(lambda: torch.mm(A, B, out=C), p))

    if want("topk_gating"):
        L = uniform((TOKENS, EXPERTS), -4, 4, g)
        gate = lambda: torch.topk(torch.softmax(L, dim=1), TOPK, dim=1)
        v, i = gate()
        check(torch.equal(i[:, 0], L.argmax(dim=1)), "topk ids")
        res["topk_gating"] = dict(api="torch.topk(torch.softmax(x, dim=1), 6)", **measure(gate, p))

    cfg = torch.__config__.show()
    blas = "MKL" if "BLAS_INFO=mkl" in cfg else "BLAS " + cfg.split("BLAS_INFO=")[-1].split(",")[0]
    out = dict(
        torch_version=torch.__version__,
        threads=torch.get_num_threads(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        blas=f"{blas} for torch.mm",
        results=res,
    )
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
