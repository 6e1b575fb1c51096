#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k restart).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
# The browser tests (tests/browser) drive Debian's Chromium through Playwright; Playwright must
# never download a browser of its own (that fails here), so install the distribution's.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Fonts too: screenshots should show what a person sees (tool icons are emoji).
BROWSER_PACKAGES=(chromium fonts-dejavu-core fonts-noto-color-emoji)
missing=()
for pkg in "${BROWSER_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# GitHub's OpenAPI description (with its example payloads): the fake GitHub in tests builds its
# answers from it and validates them against it. Fetched once from the npm registry.
OPENAPI=.cache/octokit/api.github.com.json
if [ ! -s "$OPENAPI" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
    fi
    pack_dir="$(mktemp -d)"
    (cd "$pack_dir" && npm pack --silent @octokit/openapi@23.0.2 >/dev/null)
    tar -xzf "$pack_dir"/octokit-openapi-23.0.2.tgz -C "$pack_dir" package/generated/api.github.com.json
    mkdir -p "$(dirname "$OPENAPI")"
    mv "$pack_dir"/package/generated/api.github.com.json "$OPENAPI"
    rm -rf "$pack_dir"
fi
export CLOUDWS_GITHUB_OPENAPI="$PWD/$OPENAPI"
.venv/bin/ruff check --quiet jupyter_cloudws sandbox tests benchmarks
# The lab extension: rebuilt when its sources changed (bootstrap's editable install normally did
# it already: this catches HATCH_JUPYTER_BUILDER_SKIP_NPM and edits made since), then linted
# (eslint with typescript-eslint, eslint.config.mjs) and type-checked (tsc --noEmit). Either
# finding fails the command.
jlpm install
jlpm build:if-changed
jlpm check
# One worker per core (pytest-xdist). A group of tests runs on one worker (tests/conftest.py: a
# module, the contract suite, the browser tests), handed out in the order they are collected: the
# longest groups come first. `scripts/test.sh -n 0` runs everything in this process.
exec .venv/bin/python -m pytest -p no:cacheprovider -n auto --dist loadgroup --no-loadscope-reorder "$@"
