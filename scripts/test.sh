#!/usr/bin/env bash
# Full check of pyfetchmail: set the machine up, then lint, type-check and test.
# Usage: sudo bash scripts/test.sh [extra pytest arguments]
# Works non-interactively on a fresh Debian 12 machine (CI sets CI=true, which
# makes a test server that cannot start a failure instead of a skip).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

run() {
    printf '\n==> %s\n' "$*"
    "$@"
}

run bash scripts/setup.sh
run python3 -m ruff check .
run python3 -m ruff format --check .
run python3 -m mypy
# pytest exits 5 when it collected no test: that is a failure here too.
status=0
run python3 -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$status"
