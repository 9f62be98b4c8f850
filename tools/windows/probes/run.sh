#!/usr/bin/env bash
# tools/windows/probes/run.sh - cross-build the probes (probe_*.c) with
# mingw-w64 and run them under wine, one after the other:
#
#   bash tools/windows/probes/run.sh [BUILD] [NAME...]
#
# BUILD: the build folder (default build-win/probes), which gets the .exe
# files, and the wine prefix in BUILD/../wineprefix (tools/windows/env.sh).
# NAME: probe names (pipe iocp ...), default all. Each probe prints its
# checks ("ok", "FAIL", "note") and ends with "probe_X: N checks, N failed";
# its exit status is the number of failed checks. This script's status is
# non-zero when a probe could not be built or run, not when a check failed:
# the probes record what wine does, FAIL lines included.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
build=${1:-$root/build-win/probes}
[ $# -gt 0 ] && shift
mkdir -p "$build"
build=$(cd "$build" && pwd)

cc=x86_64-w64-mingw32-gcc
command -v "$cc" >/dev/null || { echo "no $cc (apt-get install mingw-w64)" >&2; exit 1; }
# -pthread: winpthreads (the default compiler, thread model "win32", does
# not add it).
libs="-pthread -lbcrypt -ladvapi32 -lws2_32 -lntdll"

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in "$here"/probe_*.c; do
        n=${f##*/probe_}
        names+=("${n%.c}")
    done
fi

status=0
for n in "${names[@]}"; do
    # -static: no libwinpthread-1.dll to find at run time.
    if ! $cc -std=c11 -O2 -Wall -Wextra -static -o "$build/probe_$n.exe" "$here/probe_$n.c" $libs; then
        echo "probe_$n: build FAILED"
        status=1
    fi
done

. "$here/../env.sh" "$build/../wineprefix" || exit 1
trap mpr_wine_stop EXIT
for n in "${names[@]}"; do
    [ -e "$build/probe_$n.exe" ] || continue
    echo "== probe_$n"
    timeout 300 wine "$build/probe_$n.exe" 2>&1 | tee "$build/probe_$n.log"
    rc=${PIPESTATUS[0]}
    # A crash's status is its exception code's low byte (5 for an access
    # violation): the missing last line tells a crash from failed checks.
    if ! grep -q "^probe_$n: [0-9]* checks, [0-9]* failed" "$build/probe_$n.log"; then
        echo "probe_$n: no summary line, exit status $rc (crashed or timed out)"
        status=1
    fi
done
exit $status
