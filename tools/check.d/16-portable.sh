# Stage (sourced by tools/check): the portable POSIX build (the platform
# layer of macOS and the BSDs, src/platform_portable.c, chosen with
# CONFIG+=mpr_portable) built on Linux in build-portable/ and the whole
# suite run there. Then a check that its objects use nothing Linux-only:
# no undefined symbol of the list below in the C core's objects.
build_and_check build-portable CONFIG+=mpr_portable
linux_only='epoll_|eventfd|memfd_create|getrandom|^syscall$|accept4|pipe2|signalfd|timerfd|inotify|futex|explicit_bzero|__explicit_bzero_chk|sendmmsg|recvmmsg|splice|copy_file_range|prctl|fallocate'
if ls build-portable/src/*.o >/dev/null 2>&1; then
    used=$(nm -u build-portable/src/*.o 2>/dev/null | awk '{print $2}' | sed 's/@.*//' | sort -u |
        grep -E "^($linux_only)" || true)
    if [ -n "$used" ]; then
        echo "== the portable build uses Linux-only symbols:"
        echo "$used" | sed 's/^/   /'
        echo "Totals: 0 passed, 1 failed, 0 skipped (portable build: Linux-only symbols)" >>"$log"
        status=1
    else
        echo "== the portable build's objects use nothing Linux-only ($(nm -u build-portable/src/*.o | awk '{print $2}' | sort -u | wc -l) symbols checked)"
        echo "Totals: 1 passed, 0 failed, 0 skipped (portable build: no Linux-only symbol)" >>"$log"
    fi
else
    echo "Totals: 0 passed, 1 failed, 0 skipped (portable build: no objects)" >>"$log"
    status=1
fi
