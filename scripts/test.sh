#!/usr/bin/env bash
# `make test`: the whole suite as two pytest processes side by side.
#
# The tests marked `slow` spend most of their time waiting (a five-minute soak, an
# outage of a minute, a rate limit, servers restarted), so they run in a process of
# their own beside the rest instead of after it; each process has its own throw-away
# stores and databases (tests/conftest.py names them by process). The slow group's
# output follows the main group's, and the command fails when either group fails.
#
# With arguments (`make test PYTEST_ARGS='tests/api -x'`), one ordinary pytest run.
set -u
PYTHON=${TEST_PYTHON:-.venv/bin/python}

if [ $# -gt 0 ]; then
    exec "$PYTHON" -m pytest "$@"
fi

slow_log=$(mktemp -t factorysync-slow-tests.XXXXXX)
trap 'rm -f "$slow_log"' EXIT

"$PYTHON" -m pytest -m slow -p no:cacheprovider >"$slow_log" 2>&1 &
slow_pid=$!

echo "tests: the slow group runs beside this one (pid $slow_pid); its report follows"
"$PYTHON" -m pytest -m "not slow"
main_status=$?

if kill -0 "$slow_pid" 2>/dev/null; then
    echo "tests: waiting for the slow group"
fi
wait "$slow_pid"
slow_status=$?
echo
echo "==================== the slow group (pytest -m slow) ===================="
cat "$slow_log"

echo "tests: main group exit $main_status, slow group exit $slow_status"
if [ "$main_status" -ne 0 ] || [ "$slow_status" -ne 0 ]; then
    exit 1
fi
