#!/usr/bin/env bash
# tests/fuzz/build.sh [OUTDIR] - builds every libFuzzer target of this
# folder with clang (-fsanitize=fuzzer,address,undefined) into OUTDIR
# (default build-fuzz/ at the top): the C targets fuzz_*.c with clang, the
# C++ targets fuzz_*.cpp with clang++ against QtCore (pkg-config Qt5Core;
# MPR_FUZZ_QTCORE=Qt6Core for Qt 6). A target names the files of the tree
# it needs in a comment line "fuzz-sources: src/a.c src/b.c", and may name
# libraries to link in a line "fuzz-libs: -lsodium". Not part of the qmake
# tree: `make check` never builds or runs it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/build-fuzz}
cc=${MPR_FUZZ_CC:-clang-14}
cxx=${MPR_FUZZ_CXX:-clang++-14}
qtcore=${MPR_FUZZ_QTCORE:-Qt5Core}
sanitize=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
mkdir -p "$out"
for target in "$here"/fuzz_*.c "$here"/fuzz_*.cpp; do
    [ -e "$target" ] || continue
    file=$(basename "$target")
    name=${file%.*}
    sources=$(sed -n 's/^ *\*\{0,1\} *fuzz-sources: *//p' "$target" | head -1)
    [ -n "$sources" ] || { echo "$name: no 'fuzz-sources:' line" >&2; exit 1; }
    srcs=()
    for s in $sources; do srcs+=("$root/$s"); done
    read -r -a libs <<<"$(sed -n 's/^ *\*\{0,1\} *fuzz-libs: *//p' "$target" | head -1)"
    echo "== fuzz build $name ($sources)"
    case "$file" in
    *.c)
        "$cc" -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra "${sanitize[@]}" \
            -I"$root/include" -I"$root/src" "${srcs[@]}" "$target" ${libs[@]+"${libs[@]}"} -o "$out/$name"
        ;;
    *.cpp)
        # Qt's headers need position-independent code (-fPIC).
        qt=$(pkg-config --cflags --libs "$qtcore")
        # shellcheck disable=SC2086 # pkg-config's words
        "$cxx" -g -O1 -std=c++17 -fPIC -Wall -Wextra "${sanitize[@]}" \
            -I"$root/include" -I"$root/qtpingee/lib" "${srcs[@]}" "$target" $qt ${libs[@]+"${libs[@]}"} \
            -o "$out/$name"
        ;;
    esac
done
