# Stage (sourced by tools/check): valgrind memcheck over the C tests of the
# main build (build/): the fd loop test, the fast router cases under the
# fd loop, and the whole executor test (tst_executor, both loops: the
# application side; its exec'ed workers run without valgrind; 45-55 s
# here, 74 cases). Forked workers and exec'ed programs are not checked
# (--child-silent-after-fork: a child that _exit()s "leaks" its copy of the
# parent's heap; --trace-children=no). Any memcheck error or definite leak
# in the test process fails, so does a failing test. No --error-exitcode:
# valgrind would give it to the silent forked children too, and their
# tests would fail; the ERROR SUMMARY line (the parent's only) decides.
# vg_run PROGRAM [test functions...]: PROGRAM relative to build/.
vg_run() {
    local prog=build/$1
    shift
    local out=build/valgrind-$(basename "$prog").log
    echo "== valgrind $prog $*"
    (cd "$(dirname "$prog")" && valgrind --tool=memcheck \
        --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
        --trace-children=no --child-silent-after-fork=yes --num-callers=30 "./$(basename "$prog")" "$@") >"$out" 2>&1
    local rc=$?
    grep -E "^Totals:" "$out" >>"$log"
    grep -E "^(Totals|FAIL)|ERROR SUMMARY|definitely lost" "$out"
    if [ "$(grep -c "ERROR SUMMARY: 0 errors" "$out")" -ne 1 ] || grep -q "ERROR SUMMARY: [1-9]" "$out"; then
        echo "== valgrind found errors in $prog (see $out)"
        echo "Totals: 0 passed, 1 failed, 0 skipped (valgrind $(basename "$prog"))" >>"$log"
        status=1
    elif [ "$rc" -ne 0 ]; then
        status=1
    fi
}
if mpr_need_packages "${MPR_VALGRIND_PACKAGES[@]}"; then
    vg_run tests/fdloop/tst_fdloop
    # The fast router cases; the 64 MiB message sizes are left out (slow
    # under valgrind, and the same code as 1 MiB + 3).
    vg_run tests/router_fdloop/tst_router_fdloop forkedWorker sendFromMainThread \
        sendFromThreads "messageSizes:0 bytes" "messageSizes:7 bytes" \
        "messageSizes:32 KiB + 1" "messageSizes:1 MiB + 3" startTwice notRunning \
        unclosedPipesWarning noThreadsOrFdsLeftAfterStop sendAfterCloseIsDiscarded \
        senderMisuse badSenderStrings lostSender stoppedRouterGivesEpipeNotSigpipe \
        stopInsideCallback closePipeInsideOwnCallback routeUntilMessages \
        routeUntilQueuedWithTimeoutZero
    vg_run tests/executor/tst_executor
else
    echo "== valgrind could not be installed"
    echo "Totals: 0 passed, 1 failed, 0 skipped (valgrind package)" >>"$log"
    status=1
fi
