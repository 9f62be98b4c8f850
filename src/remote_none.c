/*
 * remote_none.c - the remote transport in a build without it
 * (CONFIG+=mpr_no_remote, or no ZeroMQ): a sender whose string names a
 * remote endpoint cannot reach it from here.
 */
#include "transport.h"

int mpr__remote_start(const mpr__sender_cred *cred, mpr__link **out)
{
    (void)out;
    return cred->remote[0] ? MPR_ENOTSUP : MPR_ECONNREFUSED;
}
