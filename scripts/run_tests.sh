#!/usr/bin/env bash
# The test command (README, `make test`, .ci/run): set up what is missing, check the
# project's habits (ruff lint + format, import-linter layer contracts), then pytest.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
echo "[test] ruff check + ruff format --check"
ruff check --quiet .
ruff format --check --quiet .
echo "[test] import-linter (.importlinter)"
lint-imports --no-cache >/dev/null || lint-imports --no-cache
echo "[test] docs: rosdoc2 build, every Sphinx warning an error (scripts/build_docs.sh)"
bash "$ROOT/scripts/build_docs.sh"
exec python -m pytest test "$@"
