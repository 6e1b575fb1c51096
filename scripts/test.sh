#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs pytest.
# Extra arguments go to pytest (e.g. scripts/test.sh -k restart).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bootstrap.sh
.venv/bin/ruff check --quiet jupyter_cloudws sandbox tests benchmarks
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
