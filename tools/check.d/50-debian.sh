# Stage (sourced by tools/check): the Debian packages (debian/). From a
# copy of the source (the files git knows) in build-deb/, where the
# packages and the logs stay:
# dpkg-buildpackage -us -uc -b (only the libraries, the plugins and their
# files are built, no tests: see debian/rules), lintian (any error fails),
# `apt-get install ./*.deb` into this machine, then tests/install against
# the installed packages in its MPR_TEST_INSTALLED mode, for Qt 5 and for
# Qt 6 (built for the packages' folders, PREFIX=/usr): the C and Qt
# consumers built with pkg-config, qmake and CMake and run with nothing
# set. The packages are removed again ALWAYS (an EXIT trap, also on
# failure or interrupt): their headers in /usr/include/mprouter would
# otherwise be seen by later builds.
deb_packages=(libmprouter1 libmprouter-dev
              libmprouter-qt5-1 libmprouter-qt5-dev mprouter-qt5-plugin
              libmprouter-qt6-1 libmprouter-qt6-dev mprouter-qt6-plugin)

# deb_installed: those of our packages that are installed, one a line.
deb_installed() {
    dpkg-query -W -f='${Package} ${Status}\n' "${deb_packages[@]}" 2>/dev/null |
        awk '$NF == "installed" { print $1 }'
}

deb_remove() {
    local left
    left=$(deb_installed)
    [ -z "$left" ] && return 0
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $left >/dev/null 2>&1
    [ -z "$(deb_installed)" ] && [ ! -e /usr/include/mprouter ]
}

# deb_stage: runs in a subshell, whose EXIT trap removes the packages (and
# needs passed and failed: not local).
deb_stage() {
    passed=0 failed=0
    local work=$root/build-deb src version multiarch
    deb_pass() { passed=$((passed + 1)); }
    deb_fail() { echo "== $1 FAILED${2:+ (see $2)}"; failed=$((failed + 1)); }
    deb_cleanup() {
        trap - EXIT INT TERM
        if deb_remove; then deb_pass; else deb_fail "removing the packages"; fi
        echo "Totals: $passed passed, $failed failed, 0 skipped (Debian packages)" >>"$log"
    }

    version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)
    multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
    rm -rf "$work"
    src=$work/mprouter-${version%-*}
    # Packages of an earlier run whose removal did not happen (killed):
    # ours, from this source; go.
    if [ -n "$(deb_installed)" ]; then
        echo "== removing mprouter packages left installed: $(deb_installed | tr '\n' ' ')"
        deb_remove || { deb_fail "removing old packages"; echo "Totals: 0 passed, 1 failed, 0 skipped (Debian packages)" >>"$log"; return 1; }
    fi
    trap deb_cleanup EXIT
    trap 'exit 130' INT TERM

    echo "== dpkg-buildpackage -us -uc -b in $src"
    mkdir -p "$src"
    if [ -d .git ] || [ -f .git ]; then
        git ls-files -z --cached --others --exclude-standard |
            (while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
            tar --null -T - -cf - | tar -xf - -C "$src"
    else
        tar --exclude='./build*' -cf - . | tar -xf - -C "$src"
    fi
    local started=$SECONDS
    if (cd "$src" && DEB_BUILD_OPTIONS="nocheck" nice -n 10 \
            dpkg-buildpackage -us -uc -b -j"$jobs") >"$work/build.log" 2>&1; then
        deb_pass
        echo "   built in $((SECONDS - started)) s: $(cd "$work" && ls ./*.deb | grep -v -- -dbgsym | sed 's|^\./||' | tr '\n' ' ')"
    else
        tail -30 "$work/build.log"
        deb_fail "dpkg-buildpackage" "$work/build.log"
        return 1
    fi

    # A symbol marked (optional) in a symbols file because the library did
    # not export it yet (debian/libmprouter1.symbols says which and why)
    # must lose the tag as soon as the library exports it.
    local symfile soname pkg lib sym
    for symfile in debian/*.symbols; do
        read -r soname pkg _ < <(grep -v '^#' "$symfile" | head -1)
        lib=$(ls "$src/debian/$pkg"/usr/lib/*/"$soname" 2>/dev/null | head -1)
        [ -n "$lib" ] || { deb_fail "no $soname in package $pkg"; continue; }
        for sym in $(sed -n 's/^ (optional)\([^@]*\)@.*/\1/p' "$symfile"); do
            if nm -D --defined-only "$lib" | awk '{ print $3 }' | grep -qx "$sym"; then
                deb_fail "$symfile: $sym is exported now; remove its (optional) tag"
            fi
        done
    done

    # Any error fails; the overrides in debian/*.lintian-overrides say why
    # each is one. The warnings expected: initial-upload-closes-no-bugs
    # (this is not an upload to Debian, there is no bug to close).
    echo "== lintian"
    started=$SECONDS
    # (TMPDIR: lintian leaves temporary files behind.)
    TMPDIR=$work lintian --show-overrides "$work"/*.changes >"$work/lintian.log" 2>&1
    if grep -q "^E: " "$work/lintian.log"; then
        grep "^E: " "$work/lintian.log"
        deb_fail "lintian (errors)" "$work/lintian.log"
    else
        deb_pass
    fi
    echo "   in $((SECONDS - started)) s: $(grep -c "^E: " "$work/lintian.log") errors," \
         "$(grep -c "^W: " "$work/lintian.log") warnings, $(grep -c "^O: " "$work/lintian.log") overridden:"
    grep -E "^[EWO]: " "$work/lintian.log" | awk '{ print $1, $3 }' | sort | uniq -c | sed 's/^/   /'

    echo "== apt-get install ./*.deb"
    # shellcheck disable=SC2046
    if (cd "$work" && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            $(ls ./*.deb | grep -v -- -dbgsym)) >"$work/install.log" 2>&1 &&
            [ "$(deb_installed | wc -l)" -eq ${#deb_packages[@]} ]; then
        deb_pass
    else
        tail -20 "$work/install.log"
        deb_fail "apt-get install" "$work/install.log"
        return 1
    fi

    # tests/install for the packages' folders, once per Qt major.
    local m qmake out
    for m in 5 6; do
        qmake=/usr/lib/qt$m/bin/qmake
        echo "== tests/install (Qt $m) against the installed packages (MPR_TEST_INSTALLED)"
        mkdir -p "$work/tst-qt$m"
        out=$work/tst-qt$m/check.log
        if (cd "$work/tst-qt$m" && "$qmake" PREFIX=/usr LIBDIR=/usr/lib/$multiarch \
                "$src/tests/install/install.pro" && make -s -j"$jobs") >"$out" 2>&1; then
            (cd "$work/tst-qt$m" && MPR_TEST_INSTALLED=1 ./tst_install) >>"$out" 2>&1
            grep -E "^Totals:" "$out" >>"$log" ||
                echo "Totals: 0 passed, 1 failed, 0 skipped (Debian: tst_install Qt $m: no result)" >>"$log"
            mpr_show_failures "$out"
        else
            tail -20 "$out"
            deb_fail "building tst_install for Qt $m" "$out"
        fi
    done
    [ "$failed" -eq 0 ]
}

if mpr_need_packages "${MPR_DEB_PACKAGES[@]}" "${MPR_QT6_PACKAGES[@]}"; then
    ( deb_stage ) || status=1
else
    echo "== the Debian packaging tools could not be installed"
    echo "Totals: 0 passed, 1 failed, 0 skipped (Debian packaging tools)" >>"$log"
    status=1
fi
