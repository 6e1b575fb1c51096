#!/usr/bin/env bash
# Creates .venv beside the repo and installs the project with its test extras.
# Sourced by scripts/run.sh and scripts/test.sh so each command installs what it needs by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[${CLOUDWS_EXTRAS:-test}]"
# git is how the sandbox clones and pushes; bubblewrap is how a local sandbox is isolated (Linux).
# Install them when a fresh machine lacks them.
debs=()
command -v git >/dev/null 2>&1 || debs+=(git)
if [ "$(uname -s)" = Linux ] && ! command -v bwrap >/dev/null 2>&1; then debs+=(bubblewrap); fi
if [ "${#debs[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}"
fi
export PATH="$VENV/bin:$PATH"
