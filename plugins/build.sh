#!/usr/bin/env bash
# Builds tool plugins from source: every plugin directory under plugins/, or the directories given
# (`plugins/build.sh path/to/my-plugin`, e.g. one made by `troupe plugin new`).
#
# A directory's language is told by its source file, named after the plugin:
#   <name>.c (C: clang-14 + wasi-libc)      <name>.zig (Zig)      <name>.ts (AssemblyScript)
#   <name>.cpp (C++: clang-14 + libc++ for wasm32, no exceptions or RTTI)
#   <name>.go (Go: a wasip1 reactor, GOOS=wasip1 GOARCH=wasm -buildmode=c-shared)
#   <name>.js (JavaScript: componentize-qjs)  <name>.py (Python: componentize-py)
# and the result is <dir>/<name>.wasm. Only the toolchains a build needs are installed, when
# missing: Debian packages with apt; Zig, Go and componentize-py from PyPI into
# plugins/toolchain/venv; AssemblyScript and componentize-qjs from npm into
# plugins/toolchain/node_modules (versions pinned in plugins/toolchain/). Idempotent: a plugin is
# rebuilt only when a file of its directory is newer than its .wasm.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tools="$here/toolchain"
default_wit="$here/../crates/troupe-plugin/wit"

say() { echo "plugins: $*" >&2; }

apt_install() {
  say "installing $* (apt)"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}

need_c() {
  local need=()
  command -v clang-14 >/dev/null || need+=(clang-14)
  command -v wasm-ld-14 >/dev/null || need+=(lld-14)
  [ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
  ls /usr/lib/llvm-14/lib/clang/14*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 \
    || need+=(libclang-rt-14-dev-wasm32)
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
}

need_cpp() {
  need_c
  local need=()
  [ -f /usr/lib/wasm32-wasi/libc++.a ] || need+=(libc++-14-dev-wasm32)
  [ -f /usr/lib/wasm32-wasi/libc++abi.a ] || need+=(libc++abi-14-dev-wasm32)
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
}

need_python() {
  if [ ! -x "$tools/venv/bin/componentize-py" ] || [ ! -x "$tools/venv/bin/python" ] \
    || ! "$tools/venv/bin/python" -c 'import ziglang' 2>/dev/null || [ ! -x "$tools/venv/bin/go" ] \
    || [ "$tools/requirements.txt" -nt "$tools/venv/.installed" ]; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    say "installing $(grep -v '^#' "$tools/requirements.txt" | xargs) (pip)"
    python3 -m venv "$tools/venv"
    "$tools/venv/bin/pip" install -q --disable-pip-version-check -r "$tools/requirements.txt" >&2
    touch "$tools/venv/.installed"
  fi
}

need_node() {
  if [ ! -x "$tools/node_modules/.bin/asc" ] || [ ! -x "$tools/node_modules/.bin/componentize-qjs" ] \
    || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    say "installing assemblyscript and componentize-qjs (npm)"
    (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

# The directory's WIT: its own wit/ (a skeleton made outside this repository has a copy) or the
# host's.
wit_of() { if [ -d "$1/wit" ]; then echo "$1/wit"; else echo "$default_wit"; fi; }

stale() { # out dir
  [ ! -f "$1" ] || [ -n "$(find "$2" -newer "$1" -type f ! -name '*.wasm' -print -quit)" ]
}

build_dir() {
  local dir name src out
  dir="$(cd "$1" && pwd)"
  name="$(basename "$dir")"; name="${name%-*}"
  for ext in c cpp zig go ts js py; do
    if [ -f "$dir/$name.$ext" ]; then src="$dir/$name.$ext"; break; fi
  done
  if [ -z "${src:-}" ]; then
    # A directory named <name> (no -<lang> suffix), as `troupe plugin new` makes.
    name="$(basename "$dir")"
    for ext in c cpp zig go ts js py; do
      if [ -f "$dir/$name.$ext" ]; then src="$dir/$name.$ext"; break; fi
    done
  fi
  if [ -z "${src:-}" ]; then
    say "$dir: no <name>.c/.cpp/.zig/.go/.ts/.js/.py source; skipped"
    return
  fi
  out="$dir/$name.wasm"
  stale "$out" "$dir" || return 0
  case "$src" in
    *.c)
      need_c
      say "building $out (C, clang-14 + wasi-libc)"
      clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -Wall -Werror -o "$out" "$src" ;;
    *.cpp)
      need_cpp
      say "building $out (C++, clang-14 + libc++)"
      clang++-14 --target=wasm32-wasi -O2 -mexec-model=reactor -fno-exceptions -fno-rtti -Wall -Werror \
        -o "$out" "$src" -lc++ -lc++abi ;;
    *.zig)
      need_python
      say "building $out (Zig)"
      (cd "$dir" && "$tools/venv/bin/python" -m ziglang build-exe "$name.zig" -target wasm32-wasi \
        -O ReleaseSmall -fno-entry -rdynamic -femit-bin="$out")
      rm -f "$dir/$name.wasm.o" ;;
    *.go)
      need_python
      # A reactor: `_initialize` starts the Go runtime, `//go:wasmexport` functions are the
      # world's exports. The toolchain's caches stay in plugins/toolchain/go.
      say "building $out (Go)"
      (cd "$dir" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOFLAGS= GO111MODULE=on \
        GOCACHE="$tools/go/cache" GOPATH="$tools/go/path" GOMODCACHE="$tools/go/path/pkg/mod" \
        GOPROXY=off "$tools/venv/bin/go" build -buildmode=c-shared -trimpath -o "$out" "$name.go") ;;
    *.ts)
      need_node
      say "building $out (AssemblyScript)"
      (cd "$dir" && "$tools/node_modules/.bin/asc" "$name.ts" -o "$name.wasm" --runtime stub \
        --use "abort=$name/abort" -O3 --disableWarning 210) ;;
    *.js)
      need_node
      # QuickJS, synchronous exports (the host calls plain component functions).
      say "building $out (JavaScript, componentize-qjs)"
      "$tools/node_modules/.bin/componentize-qjs" --sync --js "$src" --wit "$(wit_of "$dir")" \
        --world tool-plugin -o "$out" >&2 ;;
    *.py)
      need_python
      say "building $out (Python, componentize-py)"
      (cd "$dir" && "$tools/venv/bin/componentize-py" -d "$(wit_of "$dir")" -w tool-plugin \
        componentize "$name" -o "$out" >&2) ;;
  esac
}

if [ $# -eq 0 ]; then
  for d in "$here"/*/; do
    case "$(basename "$d")" in toolchain) continue ;; esac
    build_dir "$d"
  done
else
  for d in "$@"; do build_dir "$d"; done
fi
