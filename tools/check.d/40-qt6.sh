# Stage (sourced by tools/check): the whole tree built with Qt 6's qmake in
# build-qt6/, and the test programs of the Qt layer run there (the install
# test runs against it in 45-install.sh, its consumers then use Qt 6 too).
if mpr_need_packages "${MPR_QT6_PACKAGES[@]}"; then
    # /usr/lib/qt6/bin/qmake is Debian's qmake6; build_and_check runs "qmake".
    # The C core is the same as in build/; here the programs that use the
    # Qt layer or Qt's event loop (the install test runs in 45-install.sh).
    PATH=/usr/lib/qt6/bin:$PATH MPR_CHECK_ONLY="qt_api qt_pingee qt_plugin qt_executor router_qt executor examples_primes examples_primes_window" \
        build_and_check build-qt6
else
    echo "== Qt 6 packages could not be installed"
    echo "Totals: 0 passed, 1 failed, 0 skipped (Qt 6 packages)" >>"$log"
    status=1
fi
