#!/usr/bin/env bash
# JupyterLab with jupyter_cloudws on the local sandbox backend, opened on the getting-started
# notebook. Claude Code in the sandboxes uses ANTHROPIC_API_KEY (or CLAUDE_CODE_OAUTH_TOKEN).
# Extra arguments go to `jupyter lab` (e.g. scripts/run.sh --port 9999).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLOUDWS_EXTRAS=lab source scripts/bootstrap.sh
if [ -z "${ANTHROPIC_API_KEY:-}${CLAUDE_CODE_OAUTH_TOKEN:-}" ]; then
    echo "note: neither ANTHROPIC_API_KEY nor CLAUDE_CODE_OAUTH_TOKEN is set; prompts will fail until one is." >&2
fi
ROOT_FLAG=()
[ "$(id -u)" = 0 ] && ROOT_FLAG=(--allow-root)
exec .venv/bin/jupyter lab --ip=127.0.0.1 --ServerApp.root_dir="$PWD/notebooks" "${ROOT_FLAG[@]}" \
    "$@" "$PWD/notebooks/getting-started.ipynb"
