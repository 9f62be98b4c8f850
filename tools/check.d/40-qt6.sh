# Stage (sourced by tools/check): the whole tree built with Qt 6's qmake in
# build-qt6/ and every test run there, the install test included (its
# consumers then use Qt 6 too).
if mpr_need_packages "${MPR_QT6_PACKAGES[@]}"; then
    # /usr/lib/qt6/bin/qmake is Debian's qmake6; build_and_check runs "qmake".
    PATH=/usr/lib/qt6/bin:$PATH build_and_check build-qt6
else
    echo "== Qt 6 packages could not be installed"
    echo "Totals: 0 passed, 1 failed, 0 skipped (Qt 6 packages)" >>"$log"
    status=1
fi
