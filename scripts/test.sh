#!/usr/bin/env bash
# The whole test suite, from a fresh machine: formatting, lints, every test.
# `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
# The web page of `troupe serve` is tested in a real browser: Debian's Chromium and its
# WebDriver (crates/troupe-server/tests/browser.rs). Only the tests need them.
need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need chromium || missing+=(chromium)
need chromedriver || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if need apt-get && [ "$(id -u)" = 0 ]; then
    echo "installing ${missing[*]} (apt)…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "error: missing ${missing[*]}, needed by the browser test of the web page" >&2
    echo "  hint: install them with your package manager (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
    exit 2
  fi
fi

# MCP counterparts (reference servers from npm and PyPI, the Python SDK), pinned: only the tests
# need them (crates/troupe-cli/tests/mcp_crews.rs, mcp_serve.rs).
./scripts/mcp-servers.sh

# The model is installed by setup: tests that need it must run, not skip.
export TROUPE_REQUIRE_MODEL=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
