#!/usr/bin/env bash
# tests/fuzz/build.sh [OUTDIR] - builds every libFuzzer target fuzz_*.c of
# this folder with clang (-fsanitize=fuzzer,address,undefined) into OUTDIR
# (default build-fuzz/ at the top). A target names the src/ files it needs
# in a comment line "fuzz-sources: src/a.c src/b.c". Not part of the qmake
# tree: `make check` never builds or runs it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
cc=${MPR_FUZZ_CC:-clang-14}
mkdir -p "$out"
for target in "$here"/fuzz_*.c; do
    name=$(basename "$target" .c)
    sources=$(sed -n 's/^ *\*\{0,1\} *fuzz-sources: *//p' "$target" | head -1)
    [ -n "$sources" ] || { echo "$name: no 'fuzz-sources:' line" >&2; exit 1; }
    srcs=()
    for s in $sources; do srcs+=("$root/$s"); done
    echo "== fuzz build $name ($sources)"
    "$cc" -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$root/include" -I"$root/src" "${srcs[@]}" "$target" -o "$out/$name"
done
