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
#   INCLUDEDIR    $PREFIX/include                 mprouter/*.h (C), mprouter/qtN/*.h (Qt N layer)
#   PLUGINDIR     $$[QT_INSTALL_PLUGINS]/mprouter-qtN
#                                                 the Qt plugin, in Qt's plugin folder
#   FEATUREDIR    $$[QT_HOST_DATA]/mkspecs/features
#                                                 mprouter.prf, mprouter_qt.prf, mprouter_qtN.prf,
#                                                 where this Qt's qmake looks (FEATUREDIR=
#                                                 $PREFIX/mkspecs/features: found with QMAKEPATH=$PREFIX)
# (N: the Qt major version of the build, 5 or 6.) The files of the C core
# are the same from a Qt 5 and a Qt 6 build, those of the Qt layer carry
# the major version, so both builds install into one prefix.
#
# Installed files never refer to the build tree: the RUNPATH of the
# installed libraries is rewritten with patchelf (see mprInstallTarget).
# A real install (no INSTALL_ROOT) of a library refreshes the dynamic
# linker's cache (ldconfig), so programs find it at once when LIBDIR is one
# of the linker's folders (/usr/local/lib is on Debian).

isEmpty(PREFIX): PREFIX = /usr/local
MPR_INSTALL_PREFIX = $$clean_path($$PREFIX)
MPR_INSTALL_LIBDIR = $$LIBDIR
isEmpty(MPR_INSTALL_LIBDIR): MPR_INSTALL_LIBDIR = $$MPR_INSTALL_PREFIX/lib
MPR_INSTALL_LIBDIR = $$clean_path($$MPR_INSTALL_LIBDIR)
MPR_INSTALL_INCLUDEDIR = $$INCLUDEDIR
isEmpty(MPR_INSTALL_INCLUDEDIR): MPR_INSTALL_INCLUDEDIR = $$MPR_INSTALL_PREFIX/include
MPR_INSTALL_INCLUDEDIR = $$clean_path($$MPR_INSTALL_INCLUDEDIR)
MPR_INSTALL_QT_INCLUDEDIR = $$MPR_INSTALL_INCLUDEDIR/mprouter/qt$$QT_MAJOR_VERSION
MPR_INSTALL_PLUGINDIR = $$PLUGINDIR
isEmpty(MPR_INSTALL_PLUGINDIR): MPR_INSTALL_PLUGINDIR = $$[QT_INSTALL_PLUGINS]/$$MPR_QT_LIB
MPR_INSTALL_PLUGINDIR = $$clean_path($$MPR_INSTALL_PLUGINDIR)
MPR_INSTALL_FEATUREDIR = $$FEATUREDIR
isEmpty(MPR_INSTALL_FEATUREDIR): MPR_INSTALL_FEATUREDIR = $$[QT_HOST_DATA/get]/mkspecs/features
MPR_INSTALL_FEATUREDIR = $$clean_path($$MPR_INSTALL_FEATUREDIR)
MPR_INSTALL_PKGCONFIGDIR = $$MPR_INSTALL_LIBDIR/pkgconfig
MPR_INSTALL_CMAKEDIR = $$MPR_INSTALL_LIBDIR/cmake

# The folders the dynamic linker searches without being told (no RUNPATH
# is needed to reach them): /lib, /usr/lib, their lib64 and multiarch
# (x86_64-linux-gnu, ...) folders. The packaging files use the same test.
MPR_SYSTEM_LIBDIR_RE = "^/(usr/)?lib(64|32|x32)?(/[^/]*-linux-gnu[^/]*)?$"

# mprInstallTarget(dir[, runpath]): install this project's target into dir,
# then set the installed file's RUNPATH to runpath (a list joined with ':';
# "\$ORIGIN" is the folder of the file; system library folders, which the
# linker searches anyway, are left out), or remove it when none is left.
# The build tree keeps its own RUNPATH, so tests run uninstalled. A shared
# library (not a plugin) also gets the linker cache refreshed after a real
# install.
defineTest(mprInstallTarget) {
    dir = $$1
    runpath =
    for(entry, 2) {
        folder = $$replace(entry, ^\\$ORIGIN, $$dir)
        !contains(folder, $$MPR_SYSTEM_LIBDIR_RE): runpath += $$entry
    }
    runpath = $$join(runpath, ":")
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

    # Only for a real install: a staged one (INSTALL_ROOT, packages) is
    # not where the linker looks; dpkg runs ldconfig itself. ldconfig is
    # in /sbin, which a user's PATH may not hold; without root it cannot
    # write the cache, and says what to do instead of failing the install.
    equals(TEMPLATE, lib):!plugin {
        ldconfig.path = $$dir
        ldconfig.depends = install_runpath_fix
        ldconfig.CONFIG = no_check_exist
        path = PATH=\"$${LITERAL_DOLLAR}$${LITERAL_DOLLAR}PATH:/sbin:/usr/sbin\"
        ldconfig.extra = \
            @if [ -z \"$(INSTALL_ROOT)\" ]; then \
                echo ldconfig; \
                if ! $$path ldconfig 2>/dev/null; then \
                    echo \"note: could not refresh the dynamic linker cache; as root, run: ldconfig\" >&2; \
                elif ! $$path ldconfig -p | grep -qF \" => $$dir/\"; then \
                    echo \"note: $$dir is not a folder of the dynamic linker: add it to /etc/ld.so.conf.d/ and run ldconfig, or set LD_LIBRARY_PATH=$$dir\" >&2; \
                fi; \
            fi
        INSTALLS += ldconfig
        export(ldconfig.path)
        export(ldconfig.depends)
        export(ldconfig.CONFIG)
        export(ldconfig.extra)
    }
    export(INSTALLS)
    return(true)
}
