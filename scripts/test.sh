#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, lints, every test.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
# The model is installed by setup: tests that need it must run, not skip.
export TROUPE_REQUIRE_MODEL=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
