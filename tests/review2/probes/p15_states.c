/* p15: sender states and the way back: recv/cancelled before start and after
 * stop (argv[1]: ring|socket|zmq). */
#include "probe.h"
int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : "ring";
    setup_router(!strcmp(tr, "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    mpr_receiver_cancel(r, 5);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(tr, "ring")) setenv("MPR_TRANSPORT", tr, 1);
        char b[8]; size_t len;
        int rc0 = mpr_sender_recv(s, b, sizeof b, &len, 0);
        uint64_t c0 = mpr_sender_cancelled(s);
        if (mpr_sender_start(s)) _exit(3);
        double a = now_s(); while (mpr_sender_cancelled(s) != 5 && now_s() - a < 3) usleep(1000);
        int rcs = mpr_sender_stop(s);
        int rc1 = mpr_sender_recv(s, b, sizeof b, &len, 0);
        uint64_t c1 = mpr_sender_cancelled(s);
        fprintf(stderr, "%s: before start recv -> %s, cancelled %llu; stop -> %s; after stop recv -> %s, cancelled %llu (expect ESTATE,0,success,ESTATE,5)\n", tr,
                mpr_strerror(rc0), (unsigned long long)c0, mpr_strerror(rcs), mpr_strerror(rc1), (unsigned long long)c1);
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s(); int st;
    while (now_s() - a < 10) { pump(0.01, NULL); if (waitpid(pid, &st, WNOHANG) == pid) break; }
    mpr_router_free(g_router);
}
