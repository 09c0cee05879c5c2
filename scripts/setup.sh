#!/usr/bin/env bash
# Installs what building and testing tk needs, idempotently, on Debian/Ubuntu x86-64 as root:
# a C toolchain (g++), LLVM 19 (CPU backend), Python 3 with pip, and ptxas from the pinned
# nvidia-cuda-nvcc wheel on PyPI into .tools/ (PTX tests). Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v g++ >/dev/null || need_apt+=(g++)
command -v cc >/dev/null || need_apt+=(gcc)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v curl >/dev/null || need_apt+=(curl ca-certificates)
[ -x /usr/lib/llvm-19/bin/llvm-config ] || need_apt+=(llvm-19-dev libpolly-19-dev libzstd-dev)
[ -e /usr/include/zstd.h ] || need_apt+=(libzstd-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}"
fi

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup"
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# ptxas, pinned, from the nvidia-cuda-nvcc wheel (runs on any x86-64 Linux without a GPU). The
# wheel is unpacked once per machine into ~/.cache/tk-tools and linked into .tools/, so fresh
# clones (CI) do not download it again.
PTXAS_VERSION=13.5.37
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tk-tools/nvcc-$PTXAS_VERSION"
if [ ! -x "$cache/nvidia/cu13/bin/ptxas" ]; then
  echo "setup: fetching ptxas from nvidia-cuda-nvcc==$PTXAS_VERSION"
  mkdir -p "$cache"
  if (cd "$cache" && python3 -m pip download -q --no-deps "nvidia-cuda-nvcc==$PTXAS_VERSION" -d . \
      && unzip -q -o nvidia_cuda_nvcc-*.whl 'nvidia/cu13/bin/*' && rm -f nvidia_cuda_nvcc-*.whl); then
    chmod +x "$cache"/nvidia/cu13/bin/* 2>/dev/null || true
  else
    echo "setup: warning: could not fetch ptxas; PTX assembly tests will say so and fail" >&2
  fi
fi
mkdir -p .tools
if [ -x "$cache/nvidia/cu13/bin/ptxas" ] && [ ! -x ".tools/nvcc-$PTXAS_VERSION/nvidia/cu13/bin/ptxas" ]; then
  rm -rf ".tools/nvcc-$PTXAS_VERSION"
  ln -s "$cache" ".tools/nvcc-$PTXAS_VERSION"
fi
