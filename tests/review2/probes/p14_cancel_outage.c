/* p14: over tcp, cancels sent while the link is down (nft drop, run inside
 * unshare -n): cancel(100) then cancel(7) during a 2.5 s outage; does the
 * busy worker see the newest tag (7) after the link heals? Also a control
 * message sent during the outage. */
#include "probe.h"
int main(void)
{
    setup_router("tcp://127.0.0.1:0");
    char ep[128]; mpr_router_remote_endpoint(g_router, ep, sizeof ep);
    int port = atoi(strrchr(ep, ':') + 1);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("MPR_TRANSPORT", "zmq", 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        double a = now_s(); uint64_t c = 0, c0 = 0;
        while (now_s() - a < 12 && (c = mpr_sender_cancelled(s)) != (uint64_t)(getenv("P14_WANT") ? atoi(getenv("P14_WANT")) : 7)) if (c && !c0) c0 = c;
        char b[64]; size_t len; int rc = mpr_sender_recv(s, b, sizeof b, &len, 5);
        fprintf(stderr, "CHILD: cancelled()=%llu (first nonzero %llu) after %.1f s; recv -> %s len %zu\n", (unsigned long long)c, (unsigned long long)c0, now_s() - a, mpr_strerror(rc), len);
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 15) pump(0.01, NULL);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "nft add table inet p14 && nft add chain inet p14 c '{ type filter hook input priority 0; }' && nft add rule inet p14 c tcp dport %d drop && nft add rule inet p14 c tcp sport %d drop", port, port);
    if (getenv("P14_BEFORE")) { mpr_receiver_cancel(r, 100); pump(0.5, NULL); }
    if (system(cmd)) printf("nft failed\n");
    pump(0.3, NULL);
    int rc1 = (getenv("P14_ONLY7") || getenv("P14_BEFORE")) ? 0 : mpr_receiver_cancel(r, 100); /* in this order: */
    int rc2 = mpr_receiver_cancel(r, getenv("P14_WANT") ? 200 : 7);                         /* the newest tag */
    int rc3 = mpr_receiver_send(r, "job", 3);
    printf("during outage: cancel(100) -> %s, cancel(newest) -> %s, send -> %s\n", mpr_strerror(rc1), mpr_strerror(rc2), mpr_strerror(rc3));
    pump(2.2, NULL);
    system("nft delete table inet p14");
    int st; a = now_s();
    while (now_s() - a < 20) { pump(0.01, NULL); if (waitpid(pid, &st, WNOHANG) == pid) break; }
    mpr_router_free(g_router);
}
