#!/usr/bin/env bash
# Builds every tool plugin from source. Installs what it needs (Debian packages) when missing.
# Idempotent: a plugin is rebuilt only when its source is newer than its .wasm.
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v clang-14 >/dev/null || need_apt+=(clang-14)
command -v wasm-ld-14 >/dev/null || need_apt+=(lld-14)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need_apt+=(wasi-libc)
ls /usr/lib/llvm-14/lib/clang/14*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need_apt+=(libclang-rt-14-dev-wasm32)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "plugins: installing ${need_apt[*]} (apt)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >&2
fi

build_c() { # dir name
  local src="$1/$2.c" out="$1/$2.wasm"
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ]; then
    echo "plugins: building $out (C, clang-14 + wasi-libc)" >&2
    clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Werror -o "$out" "$src"
  fi
}

build_c textstats-c textstats
