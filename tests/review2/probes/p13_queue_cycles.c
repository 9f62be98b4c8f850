/* p13: memory of queued control messages is given back: 40 rounds of a pipe
 * whose worker never connects, filled to the bound (4 MiB), then closed
 * (20 rounds) or dropped by stop/start (20 rounds); handles of closed pipes
 * give ENOENT. Prints the router's RSS. */
#include "probe.h"
int main(void)
{
    setup_router(NULL);
    static char b[MPR_CONTROL_MAX_SIZE];
    long rss0 = rss_kib(getpid()), maxr = 0;
    mpr_receiver *old = NULL; int enoent = 0;
    for (int round = 0; round < 40; round++) {
        mpr_sender *s; mpr_receiver *r;
        mpr_router_pipe(g_router, &s, &r);
        while (mpr_receiver_send(r, b, sizeof b) == 0) ;
        mpr_receiver_cancel(r, 5);
        mpr_sender_free(s);
        if (old && mpr_receiver_send(old, b, 1) == MPR_ENOENT) enoent++;
        if (round < 20) mpr_router_close_pipe(g_router, r);
        else { mpr_router_stop(g_router); mpr_router_start(g_router); }
        old = r;
        long v = rss_kib(getpid()); if (v > maxr) maxr = v;
    }
    printf("40 rounds of 4 MiB queued then dropped: RSS %ld -> max %ld -> end %ld KiB; stale handle ENOENT %d/39\n", rss0, maxr, rss_kib(getpid()), enoent);
    mpr_router_free(g_router);
}
