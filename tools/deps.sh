# tools/deps.sh - sourced by tools/check and tools/demo: installs the Debian
# packages the build needs when they are missing (apt-get, as root).
mpr_need_packages() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# What every build needs; libzmq3-dev and libsodium-dev (src/zmtp.c; libzmq3-dev
# depends on it anyway) for the remote transport (a build without it is
# tested too: tools/check.d/15-no-remote.sh).
MPR_BUILD_PACKAGES=(g++ make qtbase5-dev qt5-qmake qtbase5-dev-tools libzmq3-dev libsodium-dev)
# The remote transport's tests with hosts in network namespaces (veth
# pairs, packet loss): ip and nft.
MPR_BUILD_PACKAGES+=(iproute2 nftables)
# What showing a window needs besides (tools/demo with a display): a font.
MPR_GUI_PACKAGES=(fonts-dejavu-core)
# What the GLib example/test and the install test (tests/install: make
# install, then pkg-config, qmake and CMake consumers) need.
MPR_BUILD_PACKAGES+=(libglib2.0-dev pkg-config cmake patchelf doxygen)
# The Qt 6 build (tools/check.d/40-qt6.sh).
MPR_QT6_PACKAGES=(qt6-base-dev qt6-base-dev-tools qmake6)
# Sanitizer and fuzz stages (tools/check.d/10-asan.sh, 11-tsan.sh,
# 30-fuzz.sh): gcc's ASan/UBSan/TSan runtimes come with g++; clang and its
# runtimes (libFuzzer) for the fuzz targets. The valgrind stage (20-valgrind.sh).
MPR_SANITIZER_PACKAGES=(clang-14 libclang-rt-14-dev)
MPR_VALGRIND_PACKAGES=(valgrind)
# The Debian packages (tools/check.d/50-debian.sh): the tools that build
# and check them, and the Build-Depends of debian/control besides the
# build's and Qt 6's packages above.
MPR_DEB_PACKAGES=(build-essential debhelper dpkg-dev fakeroot lintian libzmq3-dev libsodium-dev)
