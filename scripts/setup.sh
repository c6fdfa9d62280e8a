#!/usr/bin/env bash
# Installs what Troupe needs on a fresh machine of this kind. Idempotent: does nothing twice.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "error: cargo is not installed" >&2
  echo "  hint: install Rust 1.95 or newer with rustup (https://rustup.rs)" >&2
  exit 2
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
