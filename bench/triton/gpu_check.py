"""GPU check of every stdlib kernel: tk's PTX and Triton's cubin run on the GPU on the same
seeded random inputs, both compared with tk's CPU backend (`tkc run --target cpu`), and both
timed with CUDA events through the same ctypes launcher (cuda_driver.py). Prints one table.

Phases: `prepare` (no GPU: tkc builds the PTX bundles, Triton compiles its kernels, numpy makes
the inputs, the CPU backend computes the references) and `run` (GPU). `--prepare-only` stops
after the first, so the non-GPU half can be checked anywhere.

Usage: python gpu_check.py --tkc PATH --stdlib DIR --work DIR [--arch sm_90] [--prepare-only]
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402


def cdiv(a, b):
    return (a + b - 1) // b


def problem(name, rng):
    """(grid, args, bytes moved, flops, tolerance) for one case. An arg is (name, kind, value):
    kind "in" (array), "out" (array of zeros, written by the kernel) or a scalar type."""
    f32 = np.float32
    if name in ("vector_add", "gelu", "silu"):
        n = (1 << 24) + 3
        x = rng.uniform(-4, 4, n).astype(f32)
        if name == "vector_add":
            y = rng.uniform(-4, 4, n).astype(f32)
            args = [("x", "in", x), ("y", "in", y), ("z", "out", np.zeros(n, f32)), ("n", "i64", n)]
            return (cdiv(n, 1024), 1, 1), args, 12 * n, n, 1e-6
        args = [("x", "in", x), ("y", "out", np.zeros(n, f32)), ("n", "i64", n)]
        return (cdiv(n, 1024), 1, 1), args, 8 * n, 20 * n, 1e-5
    if name in ("softmax", "layernorm", "rmsnorm"):
        rows, cols, stride = 8192, 1000, 1024
        x = rng.uniform(-4, 4, rows * stride).astype(f32)
        y = np.zeros(rows * stride, f32)
        w = rng.uniform(0.5, 1.5, cols).astype(f32)
        b = rng.uniform(-1, 1, cols).astype(f32)
        if name == "softmax":
            args = [("x", "in", x), ("y", "out", y), ("n_cols", "i32", cols), ("stride", "i64", stride)]
        elif name == "layernorm":
            args = [("x", "in", x), ("w", "in", w), ("b", "in", b), ("y", "out", y),
                    ("n_cols", "i32", cols), ("stride", "i64", stride), ("eps", "f32", 1e-5)]
        else:
            args = [("x", "in", x), ("w", "in", w), ("y", "out", y), ("n_cols", "i32", cols),
                    ("stride", "i64", stride), ("eps", "f32", 1e-5)]
        return (rows, 1, 1), args, 8 * rows * cols, 5 * rows * cols, 1e-5
    if name in ("matmul", "matmul_f16"):
        m = n = k = 1000 if name == "matmul" else 1500
        dt = f32 if name == "matmul" else np.float16
        a = rng.uniform(-1, 1, m * k).astype(dt)
        b = rng.uniform(-1, 1, k * n).astype(dt)
        bm = 32 if name == "matmul" else 64
        args = [("a", "in", a), ("b", "in", b), ("c", "out", np.zeros(m * n, f32)),
                ("M", "i32", m), ("N", "i32", n), ("K", "i32", k)]
        tol = 1e-4 if name == "matmul" else 2e-3
        return (cdiv(m, bm), cdiv(n, bm), 1), args, a.nbytes + b.nbytes + 4 * m * n, 2 * m * n * k, tol
    if name == "topk_gating":
        t, e, stride = 65536, 60, 64
        logits = rng.normal(0, 2, t * stride).astype(f32)
        args = [("logits", "in", logits), ("weights", "out", np.zeros(t * 8, f32)),
                ("ids", "out", np.zeros(t * 8, np.int32)), ("n_experts", "i32", e),
                ("stride", "i64", stride)]
        return (t, 1, 1), args, 4 * t * e + 64 * t, 10 * t * e, 1e-5
    raise KeyError(name)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def defines_args(defines):
    out = []
    for k, v in defines.items():
        out += ["-D", f"{k}={('true' if v else 'false') if k == 'RENORM' else v}"]
    return out


def prepare(case, a, rng):
    name, file, tk_kernel, defines, _, _ = case
    work = os.path.join(a.work, name)
    os.makedirs(work, exist_ok=True)
    src = os.path.join(a.stdlib, file)
    bundle = os.path.join(work, "ptx")
    run([a.tkc, "build", src, "--target", "ptx", "--arch", a.arch, "--num-warps",
         str(kernels.NUM_WARPS), "-o", bundle] + defines_args(defines))
    manifest = json.load(open(os.path.join(bundle, "manifest.json")))
    info = next(k for k in manifest["kernels"] if k["name"] == tk_kernel)
    ptx = open(os.path.join(bundle, manifest["files"][0]["path"])).read()
    cc = int(a.arch.removeprefix("sm_"))
    ck = kernels.compile_case(case, arch=cc)
    grid, args, nbytes, flops, tol = problem(name, rng)
    # CPU reference through tk's CPU backend.
    cmd = [a.tkc, "run", src, "-k", tk_kernel, "--target", "cpu",
           "--grid", ",".join(str(g) for g in grid), "--out", os.path.join(work, "cpu")]
    cmd += defines_args(defines)
    for pname, kind, v in args:
        if kind == "in":
            path = os.path.join(work, f"{pname}.npy")
            np.save(path, v)
            cmd += ["--arg", f"{pname}={path}"]
        elif kind == "out":
            cmd += ["--arg", f"{pname}=zeros:{v.size}"]
        else:
            cmd += ["--arg", f"{pname}={v}"]
    t0 = time.time()
    run(cmd)
    refs = {p: np.load(os.path.join(work, "cpu", f"{p}.npy")).reshape(-1)
            for p, kind, _ in args if kind == "out"}
    return {
        "case": case, "grid": grid, "args": args, "bytes": nbytes, "flops": flops, "tol": tol,
        "refs": refs, "ptx": ptx, "symbol": info["symbol"], "launch": info["launch"],
        "triton": ck, "cpu_s": time.time() - t0,
    }


def max_err(got, want):
    """Largest |got - want| / (1 + |want|); integers: count of differences."""
    if want.dtype.kind in "iu":
        return float(np.count_nonzero(got != want))
    return float(np.max(np.abs(got.astype(np.float64) - want) / (1.0 + np.abs(want))))


def gpu_run(p, drv):
    import ctypes

    bufs, outs, tk_params = {}, [], []
    for pname, kind, v in p["args"]:
        if kind in ("in", "out"):
            d = drv.alloc(v.nbytes)
            bufs[pname] = (d, v)
            if kind == "in":
                drv.upload(d, v)
            else:
                outs.append(pname)
            tk_params.append(ctypes.c_uint64(d))
        elif kind == "i32":
            tk_params.append(ctypes.c_int32(v))
        elif kind == "i64":
            tk_params.append(ctypes.c_int64(v))
        else:
            tk_params.append(ctypes.c_float(v))
    grid = p["grid"]
    results = {}
    try:
        # tk: dynamic shared memory = the manifest's shared_bytes.
        mod = drv.load_ptx(p["ptx"])
        shared = p["launch"]["shared_bytes"]
        f = drv.function(mod, p["symbol"], shared)
        threads = p["launch"]["threads_per_program"]
        # Triton: its cubin, its shared size, and its trailing scratch pointers (null when the
        # kernel needs none, else one allocation per program).
        ck = p["triton"]
        tmod = drv.load_cubin(ck.asm["cubin"])
        tshared = ck.metadata.shared
        tf = drv.function(tmod, ck.metadata.name, tshared)
        n_entry = ck.asm["ptx"].split(".entry", 1)[1].split(")", 1)[0].count(".param")
        extra = []
        scratch = getattr(ck.metadata, "global_scratch_size", 0)
        nprog = grid[0] * grid[1] * grid[2]
        for i in range(n_entry - len(tk_params)):
            if i == 0 and scratch > 0:
                extra.append(ctypes.c_uint64(drv.alloc(scratch * nprog)))
            else:
                extra.append(ctypes.c_uint64(0))
        t_params = tk_params + extra
        tthreads = 32 * ck.metadata.num_warps
        for label, fn in [
            ("tk", lambda: drv.launch(f, grid, threads, shared, tk_params)),
            ("triton", lambda: drv.launch(tf, grid, tthreads, tshared, t_params)),
        ]:
            for o in outs:
                drv.zero(bufs[o][0], bufs[o][1].nbytes)
            fn()
            drv.sync()
            err = 0.0
            for o in outs:
                got = np.empty_like(bufs[o][1])
                drv.download(got, bufs[o][0])
                err = max(err, max_err(got.reshape(-1), p["refs"][o]))
            ms = drv.time_ms(fn)
            results[label] = (ms, err)
    finally:
        for d, _ in bufs.values():
            drv.free(d)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tkc", required=True)
    ap.add_argument("--stdlib", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--prepare-only", action="store_true")
    ap.add_argument("--only", help="comma-separated case names")
    a = ap.parse_args()
    cases = [c for c in kernels.CASES if not a.only or c[0] in a.only.split(",")]
    rng = np.random.default_rng(2026)
    drv = None
    if not a.prepare_only:
        import cuda_driver
        drv = cuda_driver.Driver()
        print(f"device: {drv.name} (sm_{drv.capability[0]}{drv.capability[1]})")
    print(f"| kernel | problem | tk ms | Triton ms | tk / Triton | tk GB/s | tk GFLOP/s "
          f"| tk max err | Triton max err | status |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    failed = 0
    for case in cases:
        name = case[0]
        try:
            p = prepare(case, a, rng)
            shape = "x".join(str(g) for g in p["grid"] if g > 1)
            if a.prepare_only:
                print(f"| {name} | grid {shape} | - | - | - | - | - | - | - | prepared "
                      f"(PTX, Triton cubin {len(p['triton'].asm['cubin'])} B, CPU ref "
                      f"{p['cpu_s']:.1f} s) |")
                continue
            r = gpu_run(p, drv)
            (tms, terr), (xms, xerr) = r["tk"], r["triton"]
            ok = terr <= p["tol"] and xerr <= p["tol"]
            failed += not ok
            print(f"| {name} | grid {shape} | {tms:.4f} | {xms:.4f} | {tms / xms:.2f} "
                  f"| {p['bytes'] / tms / 1e6:.0f} | {p['flops'] / tms / 1e6:.0f} "
                  f"| {terr:.2e} | {xerr:.2e} | {'ok' if ok else 'MISMATCH'} |")
        except Exception as e:  # one broken case must not hide the others
            failed += 1
            msg = str(e).replace("\n", " ")[:300]
            print(f"| {name} | - | - | - | - | - | - | - | - | FAILED: {msg} |")
        sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
