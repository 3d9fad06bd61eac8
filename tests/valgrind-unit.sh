#!/bin/sh
# The unit tests under valgrind memcheck (issue 9): every test_* of tests/unit in the
# build dir BUILD (a build without sanitizers), in-process (CK_FORK=no), full leak check;
# fails when any has an error or leak. Build the tree first (test_bus starts qp-bus).
# Usage: tests/valgrind-unit.sh BUILD [NAME...]
set -eu
build="${1:?usage: tests/valgrind-unit.sh BUILD [NAME...]}"
shift
src="$(cd "$(dirname "$0")/.." && pwd)"
[ $# -gt 0 ] || set -- $(cd "$src/tests/unit" && ls test_*.c | sed 's/\.c$//')
failed=""
for t in "$@"; do
    log="$build/tests/$t.valgrind.log"
    if CK_FORK=no CK_DEFAULT_TIMEOUT=600 QP_SOURCE_DIR="$src" QP_BUILD_DIR="$build" \
        valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 --log-file="$log" "$build/tests/$t" >/dev/null 2>&1; then
        echo "valgrind: $t clean"
    else
        echo "valgrind: $t FAILED (see $log)"
        failed="$failed $t"
    fi
done
[ -z "$failed" ] || { echo "valgrind: not clean:$failed"; exit 1; }
