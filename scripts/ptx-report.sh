#!/usr/bin/env bash
# Static PTX report, no GPU needed: every stdlib kernel compiled by tkc and by Triton for sm_90,
# both assembled by the pinned ptxas, printing registers, spill bytes and SASS instruction
# counts side by side (bench/triton/ptx_report.py). Triton comes from PyPI into a venv under
# .tools/triton-venv (created on first use); nvdisasm is the one bundled in Triton's wheel.
#
#   scripts/ptx-report.sh            # table on stdout; work files under target/ptx-report/
#   TK_TRITON_VENV=/path/to/venv scripts/ptx-report.sh   # reuse a venv that has triton + numpy
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

ptxas=".tools/nvcc-13.5.37/nvidia/cu13/bin/ptxas"
[ -x "$ptxas" ] || scripts/setup.sh
[ -x "$ptxas" ] || { echo "ptx-report: no ptxas at $ptxas (scripts/setup.sh could not fetch it)" >&2; exit 1; }

venv="${TK_TRITON_VENV:-.tools/triton-venv}"
if ! "$venv/bin/python" -c "import triton, numpy" 2>/dev/null; then
  echo "ptx-report: installing triton and numpy into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q triton numpy
fi
py="$venv/bin/python"
nvdisasm="$("$py" -c 'import os, triton; print(os.path.join(os.path.dirname(triton.__file__), "backends/nvidia/bin/nvdisasm"))')"
[ -x "$nvdisasm" ] || { echo "ptx-report: no nvdisasm in the triton wheel ($nvdisasm)" >&2; exit 1; }

cargo build -q -p tkc
out=target/ptx-report
rm -rf "$out"
echo "ptx-report: tkc $(git rev-parse --short HEAD 2>/dev/null || echo '?'), triton $("$py" -c 'import triton; print(triton.__version__)'), $("$ptxas" --version | tail -1)" >&2
TRITON_DEFAULT_FP_FUSION=1 "$py" bench/triton/ptx_report.py --tkc target/debug/tkc --ptxas "$ptxas" \
  --nvdisasm "$nvdisasm" --stdlib stdlib --out "$out" --json "$out/rows.json"
