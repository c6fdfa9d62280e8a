#!/usr/bin/env bash
# Installs what Troupe needs on a fresh machine of this kind, then the default local model.
# Idempotent: does nothing that is already done. Prints nothing when all is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
  echo "error: cargo is not installed" >&2
  echo "  hint: install Rust 1.95 or newer with rustup (https://rustup.rs)" >&2
  exit 2
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

# llama.cpp (the embedded model) is built from source: it needs cmake, clang and libclang.
missing=()
need cmake || missing+=(cmake)
need clang || missing+=(clang)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || missing+=(libclang-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if need apt-get && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (apt)…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "error: missing ${missing[*]}, needed to build llama.cpp" >&2
    echo "  hint: install them with your package manager (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi

# The default local model (idempotent; verified by SHA-256).
./scripts/fetch-model.sh >/dev/null

# Tool plugins are built from source (C with clang-14 + wasi-libc; the script installs them).
./plugins/build.sh
