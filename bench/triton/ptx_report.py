"""Static comparison of tk's PTX with Triton's for every stdlib kernel, without a GPU.

For each case of kernels.CASES: `tkc build --target ptx --arch sm_90` and Triton's AOT compile
for GPUTarget("cuda", 90, 32) (which emits sm_90a PTX); both PTX files are assembled by the same
ptxas (`-v`), and the cubins are disassembled with nvdisasm. Prints a Markdown table of
registers, spill bytes (stores + loads) and SASS instruction count (NOPs excluded) per kernel.

Usage: python ptx_report.py --tkc PATH --ptxas PATH --nvdisasm PATH --stdlib DIR --out DIR
"""

import argparse
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def ptxas_info(ptxas, ptx_path, cubin_path):
    """Per entry function: (registers, spill bytes) from `ptxas -v`."""
    text = open(ptx_path).read()
    target = re.search(r"^\.target\s+(\S+)", text, re.M).group(1).rstrip(",")
    log = run([ptxas, "-v", "--gpu-name", target, ptx_path, "-o", cubin_path])
    info, cur = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            cur = m.group(1)
            info[cur] = [0, 0]
            continue
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and cur:
            info[cur][1] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            info[cur][0] = int(m.group(1))
    return info


def sass_by_function(nvdisasm, cubin_path):
    """Per function: its SASS instructions other than NOP (opcode and operands)."""
    out = run([nvdisasm, "-c", cubin_path])
    funcs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"\s*\.text\.(\S+):", line)
        if m:
            cur = m.group(1)
            funcs[cur] = []
            continue
        m = re.match(r"\s*/\*[0-9a-f]+\*/\s+(.*?);", line)
        if m and cur:
            body = re.sub(r"^@!?U?P\w+\s+", "", m.group(1).strip())
            if not body.startswith("NOP"):
                funcs[cur].append(body)
    return funcs


OPS = ["LDG.E.128", "HMMA", "HGMMA", "FFMA", "SHFL.BFLY", "BAR.SYNC"]


def op_counts(insts):
    return {op: sum(1 for i in insts if re.match(re.escape(op) + r"\b", i)) for op in OPS}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tkc", required=True)
    ap.add_argument("--ptxas", required=True)
    ap.add_argument("--nvdisasm", required=True)
    ap.add_argument("--stdlib", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--json", help="also write the rows as JSON here")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    cc = int(args.arch.removeprefix("sm_"))
    rows = []
    for case in kernels.CASES:
        name, file, tk_kernel, defines, _, _ = case
        d = os.path.join(args.out, "tk", name)
        cmd = [args.tkc, "build", os.path.join(args.stdlib, file), "--target", "ptx", "--arch",
               args.arch, "--num-warps", str(kernels.NUM_WARPS), "-o", d]
        for k, v in defines.items():
            cmd += ["-D", f"{k}={'true' if v is True else ('false' if v is False else v)}"]
        run(cmd)
        manifest = json.load(open(os.path.join(d, "manifest.json")))
        ptx = os.path.join(d, manifest["files"][0]["path"])
        tk_cubin = os.path.join(d, "tk.cubin")
        tk_regs, tk_spill = ptxas_info(args.ptxas, ptx, tk_cubin)[tk_kernel]
        tk_insts = sass_by_function(args.nvdisasm, tk_cubin)[tk_kernel]
        row = {"kernel": name, "tk": [tk_regs, tk_spill, len(tk_insts)], "ops_tk": op_counts(tk_insts)}
        for label, div16 in [("triton", False), ("triton_div16", True)]:
            ck = kernels.compile_case(case, arch=cc, int_div16=div16)
            td = os.path.join(args.out, label, name)
            os.makedirs(td, exist_ok=True)
            tptx = os.path.join(td, f"{name}.ptx")
            with open(tptx, "w") as f:
                f.write(ck.asm["ptx"])
            tcubin = os.path.join(td, f"{name}.cubin")
            fn = ck.metadata.name
            regs, spill = ptxas_info(args.ptxas, tptx, tcubin)[fn]
            insts = sass_by_function(args.nvdisasm, tcubin)[fn]
            row[label] = [regs, spill, len(insts)]
            row["ops_" + label] = op_counts(insts)
        rows.append(row)
        print(f"  {name}: done", file=sys.stderr)

    print(f"| kernel | tk regs | tk spill B | tk SASS | Triton regs | Triton spill B | Triton SASS "
          f"| SASS tk/Triton | Triton (ints %16) regs | Triton (ints %16) SASS |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t, tt, t16 = r["tk"], r["triton"], r["triton_div16"]
        print(f"| {r['kernel']} | {t[0]} | {t[1]} | {t[2]} | {tt[0]} | {tt[1]} | {tt[2]} "
              f"| {t[2] / tt[2]:.2f} | {t16[0]} | {t16[2]} |")
    print()
    print("| kernel | tk " + " / ".join(OPS) + " | Triton " + " / ".join(OPS) + " |")
    print("|---|---|---|")
    for r in rows:
        a = " / ".join(str(v) for v in r["ops_tk"].values())
        b = " / ".join(str(v) for v in r["ops_triton"].values())
        print(f"| {r['kernel']} | {a} | {b} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
