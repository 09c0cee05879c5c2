#!/usr/bin/env bash
# The main job: build tkc, then run the stdlib MoE top-k gating kernel on a batch of router
# logits (160 experts, a non-power-of-two count, top-6) through the reference interpreter, and
# write the expert weights and ids as .npy files under demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -q -p tkc
tkc="${CARGO_TARGET_DIR:-target}/release/tkc"
tokens=64
experts=160
$tkc check stdlib/moe_gating.tk -D BLOCK_E=$experts -D K=6 -D RENORM=true
$tkc run stdlib/moe_gating.tk --kernel topk_gating -D BLOCK_E=$experts -D K=6 -D RENORM=true \
  --grid $tokens --seed 7 \
  --arg logits=rand:${tokens}x${experts} --arg weights=out:${tokens}x6 --arg ids=out:${tokens}x6 \
  --arg n_experts=$experts --arg stride=$experts --out demo-out
