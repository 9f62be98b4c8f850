#!/usr/bin/env bash
# tools/windows/build-libsodium.sh PREFIX - a static libsodium for
# x86_64-w64-mingw32 (Windows, 64-bit) from Debian's source package,
# installed into PREFIX (PREFIX/include/sodium.h, PREFIX/lib/libsodium.a).
#
#   bash tools/windows/build-libsodium.sh build-win/deps
#
# The version is that of the installed libsodium-dev when there is one (the
# Windows build then has the same code and Debian patches as the Linux
# build), else the newest source in the sources of this machine. Does
# nothing when PREFIX/share/mpr-libsodium.stamp names that version (or any
# version, without libsodium-dev). About 40 s on 2 cores.
#
# The source comes from `apt-get source` with a private apt configuration
# in a temporary folder: the machine's own /etc/apt/sources.list.d/*.sources
# with "Types: deb" made "Types: deb-src", its own package lists and cache
# in that folder, no update hooks (APT::Update::Post-Invoke-Success of
# apt.conf.d would refresh the machine's AppStream cache). The machine's
# apt state is not touched; the machine's apt.conf.d is read (proxies, the
# Check-Valid-Until of a snapshot mirror).
set -eu

prefix=${1:?usage: build-libsodium.sh PREFIX}
host=x86_64-w64-mingw32
jobs=$(nproc 2>/dev/null || echo 2)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
stamp=$prefix/share/mpr-libsodium.stamp

want=$(dpkg-query -W -f='${source:Version}' libsodium-dev 2>/dev/null || true)
if [ -e "$stamp" ] && [ -e "$prefix/lib/libsodium.a" ]; then
    have=$(cat "$stamp")
    if [ -z "$want" ] || [ "$have" = "libsodium $want $host" ]; then
        echo "== $have: already in $prefix"
        exit 0
    fi
fi

. "$root/tools/deps.sh"
mpr_need_packages mingw-w64 autoconf automake libtool make dpkg-dev

work=$(mktemp -d /tmp/mpr-libsodium.XXXXXX)
trap 'rm -rf "$work"' EXIT
log=$work/log
fail() {
    echo "build-libsodium.sh: $1 failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
}

# The private apt configuration.
apt=$work/apt
mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
found=0
for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    sed 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' "$f" >"$apt/sources.list.d/${f##*/}"
    found=1
done
[ "$found" -eq 1 ] || { echo "build-libsodium.sh: no /etc/apt/sources.list.d/*.sources" >&2; exit 1; }
# Read after apt.conf.d (as Dir::Etc::main): clears the hooks set there.
cat >"$apt/main.conf" <<'EOF'
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
EOF
echo "Dir::Etc::main \"$apt/main.conf\";" >"$apt/apt.conf"
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    # apt downloads as _apt when run as root.
    chown _apt "$apt/lists/partial" "$apt/cache/archives/partial" "$work/src"
fi
aptopts=(-q -o "Dir::Etc::SourceParts=$apt/sources.list.d" -o Dir::Etc::SourceList=/dev/null
         -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache")

echo "== libsodium${want:+ $want}: source"
APT_CONFIG=$apt/apt.conf apt-get "${aptopts[@]}" update >"$log" 2>&1 || fail "apt-get update"
(cd "$work/src" && APT_CONFIG=$apt/apt.conf apt-get "${aptopts[@]}" source "libsodium${want:+=$want}") >"$log" 2>&1 ||
    fail "apt-get source"
dsc=$(ls "$work"/src/libsodium_*.dsc)
version=$(sed -n 's/^Version: //p' "$dsc")
src=$(ls -d "$work"/src/libsodium-*/)

# Debian's orig tarball of 1.0.18 has no configure (a git snapshot):
# autoreconf, as debhelper does (not autogen.sh, which downloads
# config.guess).
echo "== libsodium $version: build for $host into $prefix"
# (A chain of &&: set -e does not work left of ||.)
(
    cd "$src" &&
    autoreconf -fi &&
    ./configure --host="$host" --prefix="$prefix" --disable-shared --enable-static CFLAGS=-O2 &&
    make -j"$jobs" &&
    make install
) >"$log" 2>&1 || fail "the build"
mkdir -p "$prefix/share"
echo "libsodium $version $host" >"$stamp"
echo "== libsodium $version: $prefix/lib/libsodium.a"
