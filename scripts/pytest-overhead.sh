#!/usr/bin/env bash
# Per-test overhead of the pytest plugin (examples/pytest/ttalloc_pytest.py): a generated suite of
# N empty tests, run by `python3 -m pytest` with and without the plugin, rounds alternating, against
# a running server: the one on --socket / $TT_ALLOC_SERVER_SOCKET if it answers, else one started
# here (persisting to a temporary state dir, as a default server persists) and stopped afterwards.
# Prints the median wall time of each and (with − without) / N in ms.
#
#   npm run build && bash scripts/pytest-overhead.sh [--tests 500] [--rounds 5] [--socket PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
TESTS=500
ROUNDS=5
SOCKET=${TT_ALLOC_SERVER_SOCKET:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --tests) TESTS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --socket) SOCKET=$2; shift 2 ;;
    *) echo "usage: $0 [--tests N] [--rounds R] [--socket PATH]" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
# The interpreter itself, not a version manager's shim (pyenv's costs ~0.5 s a start).
PYTHON=$("$PYTHON" -c 'import sys; print(sys.executable)')
CLI="node dist/cli/main.js"
[ -f dist/cli/main.js ] || { echo "run 'npm run build' first" >&2; exit 2; }
"$PYTHON" -m pytest --version >/dev/null 2>&1 || { echo "$PYTHON -m pytest is not available" >&2; exit 2; }

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "$SOCKET" ] || ! $CLI stats --socket "$SOCKET" >/dev/null 2>&1; then
  SOCKET=$WORK/alloc.sock
  $CLI server --socket "$SOCKET" --state-dir "$WORK/state" --stats-interval 0 >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 200); do $CLI stats --socket "$SOCKET" >/dev/null 2>&1 && break; sleep 0.05; done
  $CLI stats --socket "$SOCKET" >/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  echo "server started for the run on $SOCKET (pid $SERVER_PID)"
else
  echo "using the server on $SOCKET"
fi

mkdir "$WORK/suite"
"$PYTHON" - "$TESTS" >"$WORK/suite/test_many.py" <<'EOF'
import sys
for i in range(int(sys.argv[1])):
    print(f"def test_{i}():\n    pass\n")
EOF

export PYTHONPATH="$PWD/examples/pytest" PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONDONTWRITEBYTECODE=1
export TT_ALLOC_SERVER_SOCKET=$SOCKET TT_ALLOC_TRACKING_ENABLED=1
# One run; prints its wall time in ms. $1: extra pytest arguments.
run() {
  local t0 t1
  t0=$(date +%s%N)
  (cd "$WORK/suite" && "$PYTHON" -m pytest -q -p no:cacheprovider $1 >"$WORK/last.log" 2>&1) || {
    cat "$WORK/last.log" >&2
    exit 1
  }
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

run "" >/dev/null # warm-up: imports compiled, page cache
run "-p ttalloc_pytest" >/dev/null
WITHOUT=()
WITH=()
INSIDE=()
for _ in $(seq 1 "$ROUNDS"); do
  WITHOUT+=("$(run "")")
  WITH+=("$(run "-p ttalloc_pytest")")
  # the plugin's own summary line: "(X ms per test in the checks)"
  INSIDE+=("$(sed -n 's/.*(\([0-9.]*\) ms per test in the checks).*/\1/p' "$WORK/last.log")")
done
# The plugin really checked: its header line, and no mark is left behind.
HEADER=$(cd "$WORK/suite" && "$PYTHON" -m pytest -p no:cacheprovider -p ttalloc_pytest --co 2>&1)
grep -q "leak checks on" <<<"$HEADER" || { echo "the plugin did not check: $HEADER" >&2; exit 1; }
LEFT=$($CLI marks --socket "$SOCKET" --json | "$PYTHON" -c 'import json,sys; print(len([m for m in json.load(sys.stdin)["marks"] if m["name"].startswith("pytest-")]))')

W0=$(printf '%s\n' "${WITHOUT[@]}" | median)
W1=$(printf '%s\n' "${WITH[@]}" | median)
echo "suite of $TESTS tests, $ROUNDS rounds each (wall ms): without ${WITHOUT[*]}; with ${WITH[*]}"
echo "median without ${W0} ms, with ${W1} ms; per-test marks left on the server: $LEFT"
echo "time in the plugin's checks per test, as it reports it: ${INSIDE[*]} ms"
awk -v a="$W0" -v b="$W1" -v n="$TESTS" \
  'BEGIN { printf "overhead per test: %.2f ms (target <= 5 ms)\n", (b - a) / n }'
