#!/usr/bin/env bash
# tools/windows/run-tests.sh - run Windows test programs under wine, one
# after the other, and sum their "Totals:" lines (tests/cunit/cunit.h and
# QtTest both print one):
#
#   bash tools/windows/run-tests.sh [--prefix DIR] TEST.exe...
#
# DIR: the wine prefix (default $MPR_WINEPREFIX, else build-win/wineprefix
# of this tree), made on first use (tools/windows/env.sh, ~10 s). Each
# program runs in its own folder, with a time limit of $MPR_TEST_TIMEOUT
# seconds (default 600; cunit.h has its own per test), its output shown and
# kept in NAME.log next to it. A program that ends without a Totals line
# (a crash not caught, the time limit, a program that is not a test) counts
# as one failed test. The wineserver is stopped at the end, whatever
# happens. Ends with the Totals line of each program and one line
# "N passed, N failed"; the status is non-zero when a test failed or a
# program did not end with status 0.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${MPR_WINEPREFIX:-$root/build-win/wineprefix}
limit=${MPR_TEST_TIMEOUT:-600}

usage() {
    echo "usage: run-tests.sh [--prefix DIR] TEST.exe..." >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
    esac
done
[ $# -gt 0 ] || usage

totals=$(mktemp)
. "$here/env.sh" "$prefix" || {
    rm -f "$totals"
    echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (no wine prefix)"
    echo "0 passed, 1 failed"
    exit 1
}
trap 'mpr_wine_stop; rm -f "$totals"' EXIT

status=0
for exe in "$@"; do
    name=$(basename "$exe" .exe)
    echo "== $name"
    if [ ! -f "$exe" ]; then
        echo "== $name: no such file: $exe"
        echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms ($name: missing)" >>"$totals"
        status=1
        continue
    fi
    dir=$(cd "$(dirname "$exe")" && pwd)
    log=$dir/$name.log
    (cd "$dir" && timeout "$limit" wine "./$(basename "$exe")") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    line=$(grep -a '^Totals:' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        # An exit status is the low byte of the Windows one: 5 for an
        # access violation (0xC0000005), 53 for a DLL not found
        # (0xC0000135: link with -static); 124: the time limit.
        echo "== $name: no Totals line, exit status $rc"
        line="Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms"
    fi
    echo "$line ($name)" >>"$totals"
    [ "$rc" -eq 0 ] || status=1
done

echo "== totals"
cat "$totals"
passed=$(awk '/^Totals:/ {p += $2} END {print p + 0}' "$totals")
failed=$(awk '/^Totals:/ {f += $4} END {print f + 0}' "$totals")
[ "$failed" -eq 0 ] || status=1
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1 # a program failed without saying so in its Totals line
fi
echo "$passed passed, $failed failed"
exit $status
