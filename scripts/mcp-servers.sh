#!/usr/bin/env bash
# Installs the MCP servers and client the tests use, pinned (scripts/mcp/requirements.txt,
# scripts/mcp/package.json + package-lock.json): the reference servers `mcp-server-time` (PyPI)
# and `@modelcontextprotocol/server-everything` (npm), and the official Python MCP SDK.
# Idempotent; prints nothing when all is in place. Only the tests need them.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/mcp"
say() { echo "mcp-servers: $*" >&2; }
apt_install() {
  say "installing $* (apt)"
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >&2
}
if [ ! -x "$dir/venv/bin/mcp-server-time" ] || [ "$dir/requirements.txt" -nt "$dir/venv/.installed" ]; then
  command -v python3 >/dev/null || apt_install python3 python3-venv
  say "installing $(grep -v '^#' "$dir/requirements.txt" | xargs) (pip)"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install -q --disable-pip-version-check -r "$dir/requirements.txt" >&2
  touch "$dir/venv/.installed"
fi
if [ ! -x "$dir/node_modules/.bin/mcp-server-everything" ] \
  || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
  command -v npm >/dev/null || apt_install nodejs npm
  say "installing @modelcontextprotocol/server-everything (npm)"
  if [ -f "$dir/package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  else
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >&2)
  fi
fi
