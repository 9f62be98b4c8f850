/*
 * base.c - what base.h needs defined once: the memset that mpr__wipe
 * calls through a volatile pointer, so that no compiler can prove the
 * wiped bytes dead and drop the call; the growing set of ids.
 */
#include <stdlib.h>

#include "base.h"

void *(*const volatile mpr__memset_v)(void *, int, size_t) = memset;

int mpr__idset_add(mpr__idset *s, uint32_t id)
{
    size_t w = id / 64;
    if (w >= s->nwords) {
        size_t n = s->nwords ? s->nwords : 16;
        while (n <= w)
            n *= 2;
        uint64_t *words = realloc(s->words, n * sizeof *words);
        if (!words)
            return MPR_ENOMEM;
        memset(words + s->nwords, 0, (n - s->nwords) * sizeof *words);
        s->words = words;
        s->nwords = n;
    }
    s->words[w] |= (uint64_t)1 << (id % 64);
    return 0;
}

void mpr__idset_free(mpr__idset *s)
{
    free(s->words);
    s->words = NULL;
    s->nwords = 0;
}
