/*
 * fuzz_sender_string - libFuzzer target for the string form of a sender,
 * through the public API only (mprouter/sender.h): mpr_sender_from_string
 * must accept exactly what mpr_sender_to_string prints. The round trip:
 * whatever it accepts prints back byte for byte (to_string of the result
 * equals the input); anything else is MPR_EINVAL and gives no sender. A
 * sender string comes from the worker's standard input or a file: bytes
 * the worker's host controls.
 *
 * fuzz-sources: src/base.c src/common.c src/platform_posix.c src/platform_linux.c src/wire.c src/hs.c src/ring.c src/queue.c src/control.c src/monitor.c src/handle.c src/fd_loop.c src/local_router.c src/local_sender.c src/remote_none.c src/router.c src/sender.c
 *
 * (The library's C sources of the Linux build without the remote
 * transport, remote_none.c in place of remote_*.c and zmtp.c: the string
 * form does not depend on it, whose start is the only part of a sender
 * that needs it.) Input: the string (up to its first NUL).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mprouter/mprouter.h>

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_sender_string: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    const size_t len = strlen(text);

    mpr_sender *s = (mpr_sender *)0x1;
    const int rc = mpr_sender_from_string(&s, text);
    if (rc == 0) {
        CHECK(s != NULL && s != (mpr_sender *)0x1);
        CHECK(mpr_sender_id(s) >= 1);
        const int n = mpr_sender_to_string(s, NULL, 0);
        CHECK(n >= 0);
        char *back = malloc((size_t)n + 1);
        CHECK(back);
        CHECK(mpr_sender_to_string(s, back, (size_t)n + 1) == n);
        if ((size_t)n != len || memcmp(back, text, len) != 0) {
            fprintf(stderr, "fuzz_sender_string: accepted \"%s\" (%zu bytes), prints back \"%s\"\n", text,
                    len, back);
            CHECK(!"what from_string accepts prints back byte for byte");
        }
        free(back);
        mpr_sender_free(s);
    } else {
        CHECK(rc == MPR_EINVAL || rc == MPR_ENOMEM);
    }
    free(text);
    return 0;
}
