# tools/windows/env.sh - sourced by scripts that run Windows programs (built
# with mingw-w64) under wine:
#
#   . tools/windows/env.sh DIR     # DIR: the private wine prefix, e.g.
#                                  # build-win/wineprefix (made if missing)
#   wine prog.exe ...              # starts in ~16 ms (persistent wineserver)
#   mpr_wine_stop                  # before the script ends: wineserver -k
#                                  # (ends the server and every program of
#                                  # the prefix)
#
# It exports WINEPREFIX (DIR, made absolute), WINEARCH=win64, WINEDEBUG=-all
# and WINEDLLOVERRIDES (no Mono, no Gecko, no menu entries), makes the
# prefix once (wineboot -i without a display; about 10 s and 700 MB: wine 8
# copies its DLLs into the prefix), sets the AeDebug debugger to "false" so
# that a crashing program prints one line ("wine: Unhandled page fault ...
# starting debugger...") and exits at once with its exception code (as an
# exit status: the low 8 bits, 0xC0000005 gives 5; a non-zero code whose
# low byte is 0 gives 1) instead of running winedbg, and starts a
# persistent wineserver (`wineserver -p`): without it the first program
# after 2 s without any pays ~0.5 s of start-up.
#
# Returns non-zero (and says why) when wine is missing or the prefix could
# not be made. Sourcing it again with the same DIR does nothing more than
# make sure the server runs.

# The DLL overrides of every wine command: mscoree (Mono) and mshtml
# (Gecko) disabled, so wineboot never offers to install them;
# winemenubuilder disabled (no desktop menu entries).
MPR_WINE_DLLOVERRIDES="mscoree,mshtml=;winemenubuilder.exe=d"
MPR_WINE_AEDEBUG='HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug'

# mpr_wine_start DIR: the environment, the prefix (once), the server.
mpr_wine_start() {
    local dir=${1:?mpr_wine_start: the prefix folder}
    local tool
    for tool in wine wineboot wineserver; do
        command -v "$tool" >/dev/null ||
            { echo "mpr_wine_start: no $tool (apt-get install wine64 wine)" >&2; return 1; }
    done
    mkdir -p "$dir" || return 1
    dir=$(cd "$dir" && pwd) || return 1
    export WINEPREFIX=$dir WINEARCH=win64 WINEDEBUG=-all
    export WINEDLLOVERRIDES=$MPR_WINE_DLLOVERRIDES
    local stamp=$dir/.mpr-prefix
    if [ ! -e "$stamp" ]; then
        mpr_wine_make_prefix "$dir" || return 1
    fi
    # -p: persistent (Debian's wrapper passes -p0 first, the later -p
    # wins). Status 2: a server for this prefix runs already.
    wineserver -p
    local rc=$?
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
        echo "mpr_wine_start: wineserver -p failed ($rc)" >&2
        return 1
    fi
    # The first program of a server starts wine's own processes
    # (services.exe, winedevice.exe, explorer.exe /desktop, ...), which
    # inherit its standard output and error and keep them open as long as
    # the server runs: a test run as `wine t.exe | tee log` or in $(...),
    # or under ctest, would wait for EOF until wineserver -k. So the first
    # program is this one, with /dev/null (about 0.8 s; 30 ms when they run).
    env -u DISPLAY -u WAYLAND_DISPLAY wine cmd.exe /c exit </dev/null >/dev/null 2>&1 || {
        echo "mpr_wine_start: wine cmd.exe /c exit failed" >&2
        return 1
    }
    return 0
}

# mpr_wine_make_prefix DIR: wineboot, the AeDebug setting, the stamp. DIR
# must be empty or a prefix left half-made by an earlier attempt.
mpr_wine_make_prefix() {
    local dir=$1 log=$1.log
    if [ -n "$(ls -A "$dir")" ] && [ ! -e "$dir/system.reg" ] && [ ! -e "$dir/drive_c" ]; then
        echo "mpr_wine_make_prefix: $dir is not empty and not a wine prefix" >&2
        return 1
    fi
    rm -rf "${dir:?}" && mkdir -p "$dir" || return 1
    echo "== making the wine prefix $dir (log: $log)"
    # Without a display: no window, no dialog. wineboot returns before the
    # services it started have ended: wineserver -w waits for them (and for
    # the registry to be written to system.reg).
    if ! { env -u DISPLAY -u WAYLAND_DISPLAY wineboot -i &&
           wine reg add "$MPR_WINE_AEDEBUG" /v Debugger /t REG_SZ /d false /f &&
           wine reg add "$MPR_WINE_AEDEBUG" /v Auto /t REG_SZ /d 1 /f &&
           wineserver -w; } >"$log" 2>&1; then
        echo "mpr_wine_make_prefix: failed, see $log" >&2
        return 1
    fi
    if ! grep -q '^"Debugger"="false"' "$dir/system.reg"; then
        echo "mpr_wine_make_prefix: AeDebug not set in $dir/system.reg" >&2
        return 1
    fi
    wine --version >"$dir/.mpr-prefix" 2>/dev/null
}

# mpr_wine_stop: ends the wineserver of WINEPREFIX and every program of it.
mpr_wine_stop() {
    [ -n "${WINEPREFIX:-}" ] || return 0
    wineserver -k 2>/dev/null
    wineserver -w 2>/dev/null
    return 0
}

if [ $# -ge 1 ]; then
    mpr_wine_start "$1"
fi
