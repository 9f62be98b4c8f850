#!/usr/bin/env bash
# tools/windows/check.sh - the Windows build of the C core, from a fresh
# clone on Debian 12: a static libsodium (build-libsodium.sh, into
# build-win/deps; skipped when there), the C core, its tests and the
# benchmark cross-built with mingw-w64 (CMakeLists.txt of this folder, in
# build-win/core), no compiler warning allowed, then every test program
# under wine (run-tests.sh, prefix build-win/wineprefix). Prints the
# Totals lines and "N passed, N failed".
#
#   bash tools/windows/check.sh          # exit status non-zero on failure
#   . tools/windows/check.sh             # as a stage of tools/check
#
# Sourced (a tools/check stage), it appends its Totals lines to $log and
# sets status=1 on failure, as the other stages do, and never exits; it
# changes no variable of its caller but those two (its own are local to
# a function, its helpers named mpr_win_*). Measured on 2 shared cores:
# 2 min 28 s from a fresh clone (most of it libsodium from Debian's source
# and the wine prefix, each made once), 24 s once those are there.
mpr_win_check() {
    local here root build deps jobs out rc=0 totals warnings
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    root=$(cd "$here/../.." && pwd)
    build=$root/build-win/core
    deps=$root/build-win/deps
    jobs=$(nproc 2>/dev/null || echo 2)
    out=$(mktemp)
    declare -F mpr_need_packages >/dev/null || . "$root/tools/deps.sh"
    if ! mpr_need_packages mingw-w64 wine64 wine cmake autoconf automake libtool make dpkg-dev; then
        echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: packages)" >"$out"
        rc=1
    elif ! bash "$here/build-libsodium.sh" "$deps"; then
        echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: libsodium)" >"$out"
        rc=1
    elif ! cmake -S "$here" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$here/mingw-w64-x86_64.cmake" \
            -DCMAKE_FIND_ROOT_PATH="$deps" >"$build.configure.log" 2>&1; then
        tail -n 20 "$build.configure.log"
        echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: configure)" >"$out"
        rc=1
    else
        echo "== windows: build in $build"
        # Everything again (--clean-first): every warning is seen.
        if ! cmake --build "$build" --clean-first -j"$jobs" >"$build.build.log" 2>&1; then
            grep -E "error|warning" "$build.build.log" | head -n 30
            echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: build)" >"$out"
            rc=1
        else
            warnings=$(grep -c "warning:" "$build.build.log")
            if [ "$warnings" -ne 0 ]; then
                grep -A3 "warning:" "$build.build.log" | head -n 40
                echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: $warnings compiler warnings)" >"$out"
                rc=1
            else
                echo "Totals: 1 passed, 0 failed, 0 skipped, 0 blacklisted, 0ms (windows: build without warnings)" >"$out"
            fi
            echo "== windows: tests under wine"
            MPR_WINEPREFIX=$root/build-win/wineprefix bash "$here/run-tests.sh" "$build"/tst_win_*.exe \
                >"$build.tests.log" 2>&1 || rc=1
            grep -E "^(FAIL!|   Loc: |== .*: no Totals)" "$build.tests.log"
            sed -n '/^== totals$/,$p' "$build.tests.log" | grep "^Totals:" >>"$out"
            grep -q "^Totals:.*(tst_win_" "$out" || {
                echo "Totals: 0 passed, 1 failed, 0 skipped, 0 blacklisted, 0ms (windows: no test ran)" >>"$out"
                rc=1
            }
        fi
    fi
    cat "$out"
    totals=$(awk '/^Totals:/ {p += $2; f += $4} END {print p + 0, "passed,", f + 0, "failed"}' "$out")
    echo "windows: $totals"
    if [ -n "${log:-}" ] && [ "${BASH_SOURCE[0]}" != "$0" ]; then
        cat "$out" >>"$log"
        [ "$rc" -eq 0 ] || status=1
    fi
    rm -f "$out"
    return $rc
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    mpr_win_check
    exit $?
else
    mpr_win_check || true
fi
