#!/usr/bin/env bash
# Build the documentation site the ROS way (rosdoc2, what docs.ros.org runs) with every
# Sphinx warning an error: broken cross-references (nitpicky), links to missing files,
# public API without a docstring (docs/_ext/rt2_docs.py), bad reStructuredText/MyST.
# Output: docs_output/rt2_ros/index.html. Needs rosdoc2 (requirements/docs.txt).
# Usage: bash scripts/build_docs.sh   (in the project's environment: source scripts/bootstrap.sh)
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v rosdoc2 >/dev/null || { echo "rosdoc2 not found: pip install -r requirements/docs.txt" >&2; exit 1; }
rm -rf docs_build docs_output cross_reference
mkdir -p docs_build
log=docs_build/rosdoc2.log   # the whole output, kept
start=$(date +%s%N)
export RT2_DOCS_ROOT="$ROOT" RT2_DOCS_WARNINGS="$ROOT/docs_build/warnings.txt" NO_COLOR=1
set +e
rosdoc2 build --package-path . --doc-build-directory docs_build --output-directory docs_output \
    --cross-reference-directory cross_reference >"$log" 2>&1
rc=$?
set -e
end=$(date +%s%N)
# Every warning Sphinx logged: docs/_ext/rt2_docs.py writes each to $RT2_DOCS_WARNINGS
# (rosdoc2 runs Sphinx without -W, so this is where warnings become errors); Sphinx's own
# count ("build succeeded, N warnings.") must agree that there were none.
warnings="$(cat "$RT2_DOCS_WARNINGS" 2>/dev/null || true)"
n=0
[ -n "$warnings" ] && n=$(printf '%s\n' "$warnings" | wc -l)
# Sphinx colours its output when it thinks it may (CI=true did it here): read the log without
# ANSI escapes, and ask for none.
plain="$(sed 's/\x1b\[[0-9;]*m//g' "$log")"
grep -q "^build succeeded\.$" <<<"$plain" || { [ "$rc" -eq 0 ] && [ "$n" -eq 0 ] && n=1 && warnings="$(grep -E "^build (succeeded|finished)" <<<"$plain" || echo "Sphinx did not report success")"; }
if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
  [ "$rc" -ne 0 ] && tail -40 "$log"
  [ -n "$warnings" ] && printf '%s\n' "$warnings"
  echo "[docs] FAILED: rosdoc2 exit $rc, $n warnings (every warning is an error)" >&2
  exit 1
fi
echo "[docs] built docs_output/rt2_ros/index.html in $(( (end - start) / 1000000000 )) s, 0 warnings"
