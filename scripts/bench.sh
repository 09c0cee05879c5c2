#!/usr/bin/env bash
# tk's CPU benchmark suite: each stdlib kernel compiled by tkc against a hand-written C version
# (cc -O3 -march=native -fopenmp), PyTorch's CPU kernels and, for matmul, OpenBLAS sgemm, all in
# this one invocation and at one thread count; prints a table (see BENCHMARKS.md).
#
#   scripts/bench.sh                 # full run, 2 threads
#   scripts/bench.sh --quick         # few repetitions, to try things out
#   scripts/bench.sh --update-doc    # also write the results into BENCHMARKS.md
#   scripts/bench.sh --only softmax,matmul --threads 2
#   TKC=path/to/tkc scripts/bench.sh # measure the kernels that tkc builds, instead of building
#                                    # target/release/tkc from this tree
#
# Setup is idempotent (Debian/Ubuntu x86-64, as root): scripts/setup.sh (toolchain, LLVM),
# libopenblas-dev from apt, and a venv at .tools/bench-venv with torch and numpy from PyPI.
# PyPI's x86-64 Linux torch wheel is the CUDA build and pulls the nvidia-* wheels (about 5 GiB
# installed, a few minutes once); there is no CPU-only torch on PyPI. No GPU is used.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

THREADS=2
QUICK=()
ONLY=""
UPDATE_DOC=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=(--quick) ;;
    --threads) THREADS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --update-doc) UPDATE_DOC=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

# tk's compile-time configuration for each kernel: bundle folder, source, -D flags.
TK_KERNELS=(
  "vector_add|stdlib/vector_add.tk|-D BLOCK=1024"
  "softmax|stdlib/softmax.tk|-D BLOCK=1024"
  "layernorm|stdlib/layernorm.tk|-D BLOCK=1024"
  "rmsnorm|stdlib/rmsnorm.tk|-D BLOCK=1024"
  "matmul|stdlib/matmul.tk|-D BM=128 -D BN=128 -D BK=64"
  "moe_gating|stdlib/moe_gating.tk|-D BLOCK_E=64 -D K=6"
)
TORCH_VERSION=2.15.0
NUMPY_VERSION=2.4.6
VENV=.tools/bench-venv
OUT=bench/out

t_start=$(date +%s)
log() { echo "bench: $*" >&2; }

# --- setup (each step skipped when already done) ---------------------------------------------
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ ! -e /usr/include/x86_64-linux-gnu/cblas.h ] && [ ! -e /usr/include/cblas.h ]; then
  log "installing libopenblas-dev"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q libopenblas-dev
fi
if ! "$VENV/bin/python" -c "import torch, numpy; assert torch.__version__.split('+')[0] == '$TORCH_VERSION'" 2>/dev/null; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q python3-venv
  fi
  log "creating $VENV with torch==$TORCH_VERSION and numpy==$NUMPY_VERSION from PyPI (once; ~5 GiB)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION"
fi

# --- build -----------------------------------------------------------------------------------
if [ -n "${TKC:-}" ]; then
  log "using TKC=$TKC instead of building tkc"
  tkc=$TKC
else
  log "building tkc (release)"
  cargo build --release -q -p tkc
  tkc=target/release/tkc
fi
log "building the benchmark harness (bench/, its own cargo workspace)"
cargo build --release -q --manifest-path bench/Cargo.toml
mkdir -p "$OUT/bundles"
log "building the C baselines: cc -O3 -march=native -fopenmp"
cc -O3 -march=native -fopenmp -shared -fPIC -Wall -Wextra -o "$OUT/libtkbench_c.so" \
  bench/c/*.c -lopenblas -lm
for spec in "${TK_KERNELS[@]}"; do
  IFS='|' read -r name src flags <<<"$spec"
  # shellcheck disable=SC2086 # the -D flags are meant to split
  "$tkc" build "$src" --target cpu -o "$OUT/bundles/$name" $flags >/dev/null
done
log "built ${#TK_KERNELS[@]} tk bundles into $OUT/bundles"

# --- run: torch first, then the harness (tk, C, OpenBLAS, copy), back to back -------------------
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set on some machines for old OpenBLAS builds; they
# slow a current one down, so they are unset for the benchmark commands only.
bench_env=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE
  OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS")
only_args=()
[ -n "$ONLY" ] && only_args=(--only "$ONLY")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before; measuring torch ($THREADS threads)"
"${bench_env[@]}" "$VENV/bin/python" bench/torch_bench.py --threads "$THREADS" "${QUICK[@]}" \
  "${only_args[@]}" >"$OUT/torch.json"
log "measuring tk, C and OpenBLAS ($THREADS threads)"
"${bench_env[@]}" bench/target/release/tk-bench --bundles "$OUT/bundles" \
  --clib "$OUT/libtkbench_c.so" --torch "$OUT/torch.json" --threads "$THREADS" "${QUICK[@]}" \
  "${only_args[@]}" --json "$OUT/results.json" --md "$OUT/table.md" >/dev/null

# --- report ----------------------------------------------------------------------------------
t_end=$(date +%s)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=""
if ! git diff --quiet HEAD -- compiler runtime stdlib 2>/dev/null; then
  dirty=" (with uncommitted changes in compiler/, runtime/ or stdlib/)"
fi
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') at commit \`$commit\`$dirty by"
  echo "\`scripts/bench.sh${QUICK:+ --quick}${ONLY:+ --only $ONLY}$([ "$THREADS" != 2 ] && echo " --threads $THREADS")\`"
  echo "in $((t_end - t_start)) s on $cpu ($(nproc) cores), load average before torch: $load_before."
  [ -n "${TKC:-}" ] && echo "tk kernels built by TKC=$TKC, not by this tree's tkc."
  echo
  cat "$OUT/table.md"
} >"$OUT/results.md"
cat "$OUT/results.md"

if [ "$UPDATE_DOC" = 1 ]; then
  python3 - "$OUT/results.md" BENCHMARKS.md <<'EOF'
import sys
res, doc = sys.argv[1], sys.argv[2]
begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
text = open(doc).read()
if begin not in text or end not in text:
    sys.exit(f"bench: {doc} lacks the {begin} / {end} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(doc, "w").write(head + begin + "\n" + open(res).read().rstrip() + "\n" + end + tail)
EOF
  log "wrote the results into BENCHMARKS.md"
fi
log "done in $((t_end - t_start)) s; raw numbers in $OUT/results.json and $OUT/torch.json"
