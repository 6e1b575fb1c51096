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
# Builds the lab extension from src/ and style/ when they changed since the last build (jlpm
# build:if-changed, a hash of the sources), and installs it into the venv's share/jupyter.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[${CLOUDWS_EXTRAS:-test}]"
export PATH="$VENV/bin:$PATH"
