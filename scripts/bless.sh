#!/usr/bin/env bash
# Re-blesses every snapshot of the integration tests (tests/snapshots/) in one command, without
# cargo-insta: stale diagnostic snapshots are removed, then the tests run with INSTA_UPDATE=always,
# which writes every snapshot that differs. Review the result with `git diff tests/snapshots`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
rm -f tests/snapshots/diagnostics__*.snap tests/snapshots/*.snap.new
# CI=true makes insta refuse to write; blessing is a local action.
env -u CI INSTA_UPDATE=always cargo test -p tk-tests --test integration -- "$@"
git status --short tests/snapshots
