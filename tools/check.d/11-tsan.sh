# Stage (sourced by tools/check): the whole tree built with ThreadSanitizer
# (gcc) in build-tsan/, every test run there; any report fails
# (halt_on_error + exitcode). Qt itself is not instrumented; the
# suppressions in tools/sanitizers/tsan.supp say why each is needed.
tsan_flags="-fno-omit-frame-pointer"
# die_after_fork=0: the router suite forks workers from this (multi-
# threaded) process, and a remote sender starts a thread of its own in the
# child; TSan would kill such a child by default. It takes its own locks
# around fork(), and the child's sender uses a fresh ZeroMQ context.
export TSAN_OPTIONS="halt_on_error=1:exitcode=23:second_deadlock_stack=1:die_after_fork=0:suppressions=$root/tools/sanitizers/tsan.supp"
build_and_check build-tsan CONFIG+=sanitizer CONFIG+=sanitize_thread \
    "QMAKE_CFLAGS+=$tsan_flags" "QMAKE_CXXFLAGS+=$tsan_flags"
if grep -qE "WARNING: ThreadSanitizer|ERROR: ThreadSanitizer" build-tsan/check.log 2>/dev/null; then
    echo "== ThreadSanitizer report in build-tsan/check.log"
    grep -E "ThreadSanitizer" build-tsan/check.log | sort | uniq -c | head -5
    echo "Totals: 0 passed, 1 failed, 0 skipped (TSan report)" >>"$log"
    status=1
fi
unset TSAN_OPTIONS
