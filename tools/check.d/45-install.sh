# Stage (sourced by tools/check): `make install` for real, as a user runs
# it, of both Qt builds into one prefix: the Qt 5 build (build/) and the
# Qt 6 build (build-qt6/, from 40-qt6.sh), both configured with the
# default PREFIX (/usr/local; the plugins and qmake features go to each
# Qt's own folders). Then tests/install of each build in its
# MPR_TEST_INSTALLED mode: the C and Qt consumers built with pkg-config,
# qmake and CMake and run with nothing set (no LD_LIBRARY_PATH: the
# install refreshed the linker cache), each Qt major next to the other.
# Then `make uninstall` of both, ALWAYS (an EXIT trap, also on failure or
# interrupt), and a check that nothing of mprouter is left.
install_builds=(build build-qt6)

# install_leftovers: every installed file or folder of mprouter still on
# the machine, one a line (nothing when clean): below /usr/local and in
# Qt 5's and Qt 6's plugin and mkspecs folders.
install_leftovers() {
    local qt=/usr/lib/$(gcc -print-multiarch)
    find /usr/local/lib /usr/local/include -maxdepth 2 -name '*mprouter*' 2>/dev/null
    find "$qt/qt5" "$qt/qt6" -maxdepth 3 -name '*mprouter*' 2>/dev/null
}

# install_stage: runs in a subshell, whose EXIT trap uninstalls (and needs
# passed and failed: not local).
install_stage() {
    passed=0 failed=0
    local b
    install_cleanup() {
        trap - EXIT INT TERM
        local b
        for b in "${install_builds[@]}"; do
            [ -f "$b/Makefile" ] && (cd "$b" && make -s uninstall >/dev/null 2>&1)
        done
        if [ -n "$(install_leftovers)" ]; then
            echo "== make uninstall left these (removed now):"
            install_leftovers | sed 's/^/   /'
            install_leftovers | sort -r | xargs -r rm -rf
            failed=$((failed + 1))
        else
            passed=$((passed + 1))
        fi
        ldconfig
        echo "Totals: $passed passed, $failed failed, 0 skipped (make install of Qt 5 and Qt 6 into /usr/local)" >>"$log"
    }
    # Another mprouter there (a user's own install) would be replaced and
    # then removed: refuse.
    if [ -n "$(install_leftovers)" ]; then
        echo "== mprouter is already installed; this stage would replace and remove it:"
        install_leftovers | sed 's/^/   /'
        echo "   (make uninstall in the build that installed it, then run tools/check again)"
        echo "Totals: 0 passed, 1 failed, 0 skipped (make install: already installed)" >>"$log"
        return 1
    fi
    trap install_cleanup EXIT
    trap 'exit 130' INT TERM
    for b in "${install_builds[@]}"; do
        echo "== make install in $b"
        if [ -f "$b/Makefile" ] && (cd "$b" && make -s install) >"$b/install.log" 2>&1; then
            passed=$((passed + 1))
        else
            echo "== make install in $b FAILED"
            [ -f "$b/install.log" ] && tail -20 "$b/install.log"
            failed=$((failed + 1))
        fi
    done
    for b in "${install_builds[@]}"; do
        echo "== $b/tests/install/tst_install against the installation (MPR_TEST_INSTALLED)"
        local out=$b/install-test.log
        if [ -x "$b/tests/install/tst_install" ]; then
            (cd "$b/tests/install" && MPR_TEST_INSTALLED=1 ./tst_install) >"$out" 2>&1
            grep -E "^Totals:" "$out" >>"$log" ||
                echo "Totals: 0 passed, 1 failed, 0 skipped ($b tst_install: no result)" >>"$log"
            mpr_show_failures "$out"
        else
            echo "Totals: 0 passed, 1 failed, 0 skipped ($b: no tst_install)" >>"$log"
            failed=$((failed + 1))
        fi
    done
    [ "$failed" -eq 0 ]
}
( install_stage ) || status=1
