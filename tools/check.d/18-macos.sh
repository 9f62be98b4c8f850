# Stage (sourced by tools/check): the C core compiled and linked for macOS
# (x86_64 and arm64) with the portable platform layer, on this Linux
# machine: Zig's clang, its macOS SDK headers and libSystem stubs, from an
# npm package (tools/macos/check-build.sh installs it into a cache, or
# prints SKIP where it cannot be had). It proves that the sources compile
# against macOS's headers and that every symbol they use is in libSystem;
# nothing here runs on a Mac. Without libsodium for macOS here, the remote
# transport is left out (remote_none.c).
macos_sources=()
for f in base.c common.c platform_posix.c platform_portable.c wire.c hs.c ring.c queue.c \
    control.c monitor.c handle.c fd_loop.c local_router.c local_sender.c remote_none.c router.c sender.c; do
    macos_sources+=("src/$f")
done
macos_out=$(mktemp)
bash tools/macos/check-build.sh -I include -I src -D MPR_PORTABLE --name mprouter \
    "${macos_sources[@]}" >"$macos_out" 2>&1 || status=1
grep -vE "^Totals:" "$macos_out" | tail -20
grep -E "^Totals:" "$macos_out" >>"$log" ||
    echo "Totals: 0 passed, 1 failed, 0 skipped (macOS compile check: no result)" >>"$log"
grep -E "^Totals:" "$macos_out"
rm -f "$macos_out"
