# Stage (sourced by tools/check): the whole tree built with AddressSanitizer
# and UndefinedBehaviorSanitizer (gcc) in build-asan/, every test run there.
# Any report fails: UBSan is made fatal (-fno-sanitize-recover), ASan halts
# on the first error and LeakSanitizer runs at exit. A report in a forked
# worker ends that worker with exitcode 23, which its test sees as a failure.
asan_flags="-fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:exitcode=23:detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:suppressions=$root/tools/sanitizers/asan.supp"
export LSAN_OPTIONS="suppressions=$root/tools/sanitizers/lsan.supp:print_suppressions=0:exitcode=23"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=23"
build_and_check build-asan CONFIG+=sanitizer CONFIG+=sanitize_address CONFIG+=sanitize_undefined \
    "QMAKE_CFLAGS+=$asan_flags" "QMAKE_CXXFLAGS+=$asan_flags"
# A report that did not fail a test (e.g. in a child whose status nobody
# checked) still fails the stage.
if grep -qE "ERROR: (Address|Leak)Sanitizer|runtime error:" build-asan/check.log 2>/dev/null; then
    echo "== sanitizer report in build-asan/check.log"
    grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" build-asan/check.log | head -5
    echo "Totals: 0 passed, 1 failed, 0 skipped (ASan/UBSan report)" >>"$log"
    status=1
fi
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS
