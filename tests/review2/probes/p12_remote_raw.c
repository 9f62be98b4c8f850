/* p12: hostile tcp peers without the key, against the remote endpoint
 * (127.0.0.1): (a) 200 idle connections, (b) a slowloris sending a valid
 * ZMTP greeting one byte every 300 ms then CURVE HELLO-ish bytes forever,
 * (c) 50 connections sending 1 MiB of garbage each. Measures when the router
 * closes them, its RSS, and whether a valid worker starts meanwhile. */
#include "probe.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
static int port;
static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(0x7f000001);
    if (connect(fd, (void *)&a, sizeof a)) { close(fd); return -1; }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}
static int closed(int fd) { char b[4096]; for (;;) { ssize_t n = read(fd, b, sizeof b); if (n == 0) return 1; if (n < 0) return errno != EAGAIN; } }
int main(void)
{
    setup_router("tcp://127.0.0.1:0");
    char ep[128]; mpr_router_remote_endpoint(g_router, ep, sizeof ep);
    port = atoi(strrchr(ep, ':') + 1);
    mpr_sender *s; mpr_receiver *r;
    mpr_router_pipe(g_router, &s, &r);
    mpr_receiver_set_callback(r, on_msg, NULL);
    pid_t atk = fork();
    if (atk == 0) {
        int idle[200], gar[50], nidle = 0;
        for (int i = 0; i < 200; i++) if ((idle[i] = dial()) >= 0) nidle++;
        int slow = dial();
        static const unsigned char greet[64] = {0xff,0,0,0,0,0,0,0,1,0x7f,3,0,'C','U','R','V','E'};
        static char junk[1 << 20];
        memset(junk, 0x41, sizeof junk);
        size_t sent[50] = {0};
        for (int i = 0; i < 50; i++) gar[i] = dial();
        double a = now_s(), slow_closed = -1; int gi = 0;
        double idle_closed_at[200]; for (int i = 0; i < 200; i++) idle_closed_at[i] = -1;
        while (now_s() - a < 9) {
            for (int i = 0; i < 50; i++) if (gar[i] >= 0 && sent[i] < sizeof junk) { ssize_t n = write(gar[i], junk, sizeof junk - sent[i]); if (n > 0) sent[i] += n; }
            if (slow_closed < 0 && gi < 64) { if (write(slow, greet + gi, 1) == 1) gi++; }
            else if (slow_closed < 0) write(slow, "\x04", 1);
            if (slow_closed < 0 && closed(slow)) slow_closed = now_s() - a;
            for (int i = 0; i < 200; i++) if (idle[i] >= 0 && idle_closed_at[i] < 0 && closed(idle[i])) idle_closed_at[i] = now_s() - a;
            usleep(300000);
        }
        int nclosed = 0; double maxc = 0;
        for (int i = 0; i < 200; i++) if (idle_closed_at[i] >= 0) { nclosed++; if (idle_closed_at[i] > maxc) maxc = idle_closed_at[i]; }
        size_t tot = 0; int gclosed = 0; for (int i = 0; i < 50; i++) { tot += sent[i]; gclosed += gar[i] >= 0 && closed(gar[i]); }
        fprintf(stderr, "ATTACKER: %d idle connections, %d closed by the router (last at %.1f s); slowloris closed at %.1f s after %d bytes; garbage: %zu bytes written, %d/50 closed\n",
                nidle, nclosed, maxc, slow_closed, gi, tot, gclosed);
        _exit(0);
    }
    usleep(500000);
    pid_t w = fork();
    if (w == 0) {
        setenv("MPR_TRANSPORT", "zmq", 1);
        double a = now_s(); int rc = mpr_sender_start(s);
        fprintf(stderr, "WORKER: start during the attack -> %s in %.0f ms\n", mpr_strerror(rc), (now_s() - a) * 1e3);
        if (!rc) { mpr_sender_send(s, "hi", 2); mpr_sender_stop(s); }
        _exit(0);
    }
    mpr_sender_free(s);
    long rss0 = rss_kib(getpid()), maxrss = 0;
    double a = now_s();
    while (now_s() - a < 10) { pump(0.1, NULL); long v = rss_kib(getpid()); if (v > maxrss) maxrss = v; }
    waitpid(atk, NULL, 0); waitpid(w, NULL, 0);
    mpr_router_stats st; mpr_router_get_stats(g_router, &st);
    printf("router: RSS %ld -> max %ld KiB; rejected %llu, accepted %llu; worker message %s\n", rss0, maxrss,
           (unsigned long long)st.connections_rejected, (unsigned long long)st.connections_accepted, g_nreports ? "arrived" : "MISSING");
    mpr_router_free(g_router);
}
