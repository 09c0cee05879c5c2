#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU (sm_80 or newer): builds every stdlib kernel with
# tkc for the GPU's arch, runs each on the GPU against tk's CPU backend on seeded random inputs,
# and times it against Triton compiling the same kernel (bench/triton/kernels.py), printing one
# table (bench/triton/gpu_check.py). Also runs tk-runtime's tests, whose CUDA tests only run
# where a driver is present. Takes a few minutes (most of it building tkc in release mode).
#
#   scripts/gpu-check.sh                 # everything (needs a GPU)
#   scripts/gpu-check.sh --prepare-only  # the non-GPU half: builds, Triton compiles, CPU refs
#   TK_TRITON_VENV=DIR  reuse a venv with triton + numpy (default .tools/triton-venv, created
#                       with pip on first use, which needs network access)
#   TK_GPU_ARCH=sm_80   force the PTX arch (default: from the GPU, sm_90 for 9.x, else sm_80)
#   TK_TKC=PATH         use this tkc binary instead of building one
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
start=$SECONDS

prepare_only=false
[ "${1:-}" = "--prepare-only" ] && prepare_only=true

if ! $prepare_only; then
  # Fail fast and say why: no driver, no GPU.
  if ! python3 -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null; then
    echo "gpu-check: no NVIDIA driver on this host (libcuda.so.1 does not load), so there is" >&2
    echo "  no GPU to check. Run it on a GPU machine; here, scripts/gpu-check.sh --prepare-only" >&2
    echo "  checks the non-GPU half and scripts/ptx-report.sh gives the static PTX report." >&2
    exit 2
  fi
  if command -v nvidia-smi >/dev/null && ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu-check: nvidia-smi sees no usable GPU:" >&2
    nvidia-smi -L >&2 || true
    exit 2
  fi
fi

venv="${TK_TRITON_VENV:-.tools/triton-venv}"
if ! "$venv/bin/python" -c "import triton, numpy" 2>/dev/null; then
  echo "gpu-check: installing triton and numpy into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q triton numpy
fi
py="$venv/bin/python"

arch="${TK_GPU_ARCH:-}"
if [ -z "$arch" ]; then
  if $prepare_only; then
    arch=sm_90
  else
    cc=$("$py" -c 'import sys; sys.path.insert(0, "bench/triton"); import cuda_driver as c; d = c.Driver(); print(d.capability[0])')
    if [ "$cc" -ge 9 ]; then arch=sm_90; else arch=sm_80; fi
  fi
fi

tkc="${TK_TKC:-}"
if [ -z "$tkc" ]; then
  echo "gpu-check: building tkc (release)" >&2
  cargo build -q --release -p tkc
  tkc=target/release/tkc
fi
if ! $prepare_only; then
  echo "gpu-check: tk-runtime tests (the CUDA path runs against the driver here)" >&2
  cargo test -q -p tk-runtime
fi

work=target/gpu-check
rm -rf "$work"
mode=()
$prepare_only && mode=(--prepare-only)
echo "gpu-check: $arch, triton $("$py" -c 'import triton; print(triton.__version__)')" >&2
status=0
TRITON_DEFAULT_FP_FUSION=1 "$py" bench/triton/gpu_check.py --tkc "$tkc" \
  --stdlib stdlib --work "$work" --arch "$arch" "${mode[@]}" || status=$?
echo "gpu-check: finished in $((SECONDS - start)) s" >&2
exit $status
