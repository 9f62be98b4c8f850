# install.pri - where `make install` puts mprouter. Included by the .pro
# files that install something (src, qtpingee/lib, qtpingee/plugin,
# packaging).
#
#   qmake -r PREFIX=/opt/mprouter router.pro && make && make install
#   make install INSTALL_ROOT=/tmp/stage        # staging, for packagers
#
# qmake variables (qmake NAME=value), with their defaults:
#   PREFIX        /usr/local
#   LIBDIR        $PREFIX/lib                     libraries, pkgconfig/, cmake/
#   INCLUDEDIR    $PREFIX/include                 mprouter/*.h, mprouter/qt/*.h
#   PLUGINDIR     $$[QT_INSTALL_PLUGINS]/mprouter  the Qt plugin, where Qt looks
#   FEATUREDIR    $PREFIX/mkspecs/features        mprouter.prf, mprouter_qt.prf
#                                                 (qmake finds them with QMAKEPATH=$PREFIX)
# Installed files never refer to the build tree: the RUNPATH of the
# installed libraries is rewritten with patchelf (see mprInstallTarget).

isEmpty(PREFIX): PREFIX = /usr/local
MPR_INSTALL_PREFIX = $$clean_path($$PREFIX)
MPR_INSTALL_LIBDIR = $$LIBDIR
isEmpty(MPR_INSTALL_LIBDIR): MPR_INSTALL_LIBDIR = $$MPR_INSTALL_PREFIX/lib
MPR_INSTALL_INCLUDEDIR = $$INCLUDEDIR
isEmpty(MPR_INSTALL_INCLUDEDIR): MPR_INSTALL_INCLUDEDIR = $$MPR_INSTALL_PREFIX/include
MPR_INSTALL_PLUGINDIR = $$PLUGINDIR
isEmpty(MPR_INSTALL_PLUGINDIR): MPR_INSTALL_PLUGINDIR = $$[QT_INSTALL_PLUGINS]/mprouter
MPR_INSTALL_FEATUREDIR = $$FEATUREDIR
isEmpty(MPR_INSTALL_FEATUREDIR): MPR_INSTALL_FEATUREDIR = $$MPR_INSTALL_PREFIX/mkspecs/features
MPR_INSTALL_PKGCONFIGDIR = $$MPR_INSTALL_LIBDIR/pkgconfig
MPR_INSTALL_CMAKEDIR = $$MPR_INSTALL_LIBDIR/cmake/mprouter

# mprInstallTarget(dir[, runpath]): install this project's target into dir,
# then set the installed file's RUNPATH to runpath (a list joined with ':';
# "\$ORIGIN" is the folder of the file), or remove it when runpath is
# empty. The build tree keeps its own RUNPATH, so tests run uninstalled.
defineTest(mprInstallTarget) {
    dir = $$1
    runpath = $$join(2, ":")
    file = $(INSTALL_ROOT)$$dir/$(TARGET)
    target.path = $$dir
    runpath_fix.path = $$dir
    runpath_fix.depends = install_target
    runpath_fix.CONFIG = no_check_exist
    check = command -v patchelf >/dev/null || { echo \"make install needs patchelf (apt-get install patchelf)\" >&2; exit 1; }
    isEmpty(runpath) {
        runpath_fix.extra = $$check; patchelf --remove-rpath $$shell_quote($$file)
    } else {
        # make and the shell both see the dollar of $ORIGIN.
        runpath = $$replace(runpath, \\$, $$LITERAL_DOLLAR$$LITERAL_DOLLAR)
        runpath_fix.extra = $$check; patchelf --set-rpath \'$$runpath\' $$shell_quote($$file)
    }
    INSTALLS += target runpath_fix
    export(target.path)
    export(runpath_fix.path)
    export(runpath_fix.depends)
    export(runpath_fix.CONFIG)
    export(runpath_fix.extra)
    export(INSTALLS)
    return(true)
}
