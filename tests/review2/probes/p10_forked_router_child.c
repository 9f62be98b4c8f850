/* p10: a careless caller: a child fork()ed from the application (router
 * running, worker connected) calls mpr_receiver_send / mpr_receiver_cancel on
 * its inherited copy. Does anything reach the parent's worker? */
#include "probe.h"
int main(int argc, char **argv)
{
    const char *tr = argc > 1 ? argv[1] : "ring";
    setup_router(!strcmp(tr, "zmq") ? "tcp://127.0.0.1:0" : NULL);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (strcmp(tr, "ring")) setenv("MPR_TRANSPORT", tr, 1);
        if (mpr_sender_start(s)) _exit(3);
        report(s, "started");
        char b[64]; size_t len; int n = 0; char seen[256] = "";
        double a = now_s();
        while (now_s() - a < 2) {
            if (mpr_sender_recv(s, b, sizeof b - 1, &len, 0.1) == 0) { b[len] = 0; n++; strncat(seen, b, 100); strcat(seen, "|"); }
        }
        report(s, "worker got %d control messages: %s; cancelled()=%llu", n, seen, (unsigned long long)mpr_sender_cancelled(s));
        mpr_sender_stop(s);
        _exit(0);
    }
    mpr_sender_free(s);
    double a = now_s();
    while (g_nreports < 1 && now_s() - a < 15) pump(0.01, NULL);
    mpr_receiver_send(r, "from-parent", 11);
    pump(0.1, NULL);
    pid_t c = fork();
    if (c == 0) {
        int rc1 = mpr_receiver_send(r, "from-forked-child", 17);
        int rc2 = mpr_receiver_cancel(r, 777);
        fprintf(stderr, "FORKED CHILD of the application: receiver_send -> %s, cancel -> %s\n", mpr_strerror(rc1), mpr_strerror(rc2));
        fflush(stderr);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    a = now_s();
    while (g_nreports < 2 && now_s() - a < 10) pump(0.01, NULL);
    printf("%s: ", tr); print_reports();
    waitpid(pid, NULL, 0);
    mpr_router_free(g_router);
}
