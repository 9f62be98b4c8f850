/*
 * base.c - the one definition base.h needs: the memset that mpr__wipe
 * calls through a volatile pointer, so that no compiler can prove the
 * wiped bytes dead and drop the call.
 */
#include "base.h"

void *(*const volatile mpr__memset_v)(void *, int, size_t) = memset;
