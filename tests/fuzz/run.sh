#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [OUTDIR] - builds every target (build.sh) and
# runs each for its share of SECONDS (default 105 in all), starting from the
# committed seed corpus corpus/NAME/ (copied: the run never writes into the
# source tree), with the libFuzzer options of its "fuzz-options:" line.
# Exit status 1 if a target crashed, found a leak or a failed check, or
# did not build; the crashing input is kept in OUTDIR/NAME.crash/.
# Prints one "Totals: N passed, M failed" line (one count per target).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
total=${1:-105}
out=${2:-$root/build-fuzz}
if ! bash "$here/build.sh" "$out"; then
    echo "Totals: 0 passed, 1 failed, 0 skipped (fuzz build)"
    exit 1
fi
targets=()
for target in "$here"/fuzz_*.c "$here"/fuzz_*.cpp; do
    [ -e "$target" ] && targets+=("$target")
done
share=$((total / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1
passed=0 failed=0
for target in "${targets[@]}"; do
    name=$(basename "$target")
    name=${name%.*}
    short=${name#fuzz_}
    options=$(sed -n 's/^ *\*\{0,1\} *fuzz-options: *//p' "$target" | head -1)
    corpus="$out/$name.corpus"
    rm -rf "$corpus" "$out/$name.crash"
    mkdir -p "$corpus" "$out/$name.crash"
    [ -d "$here/corpus/$short" ] && cp "$here/corpus/$short"/* "$corpus/" 2>/dev/null
    echo "== fuzz run $name for ${share}s"
    # shellcheck disable=SC2086 # $options: one word per option
    if (cd "$out" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        "./$name" -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 $options \
        -artifact_prefix="$out/$name.crash/" -print_final_stats=1 "$corpus" \
        >"$out/$name.log" 2>&1); then
        passed=$((passed + 1))
        grep -E "^(Done|stat::number_of_executed_units)" "$out/$name.log" | tail -1
    else
        failed=$((failed + 1))
        echo "== $name FAILED; log $out/$name.log, input in $out/$name.crash/"
        grep -E "ERROR|check failed|SUMMARY" "$out/$name.log" | head -5
    fi
done
echo "Totals: $passed passed, $failed failed, 0 skipped (fuzz)"
[ "$failed" -eq 0 ]
