/* netrelay.c - see netrelay.h. */
#define _GNU_SOURCE
#include "netrelay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double review_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int tcp_to(const char *ip, int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, ip, &sa.sin_addr);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(s);
        return -1;
    }
    return s;
}

/* ---- relay ---- */

#define RMAX 64

struct chunk {
    double due;
    int len;
    int to_client;
    struct chunk *next;
    char data[];
};

struct pair {
    int c, u;
    struct chunk *head, *tail;
};

struct review_relay {
    int port, lfd;
    atomic_int stop, delay_ms;
    atomic_long rate_up, accepted, bytes_up, bytes_down;
    pthread_t thread;
    struct pair p[RMAX];
    int n;
};

static void pair_close(struct pair *p)
{
    close(p->c);
    close(p->u);
    while (p->head) {
        struct chunk *c = p->head;
        p->head = c->next;
        free(c);
    }
    p->tail = NULL;
}

static int forward(review_relay *r, struct pair *p, int to_client, const char *buf, int len,
                   double now)
{
    int ms = atomic_load(&r->delay_ms);
    if (ms <= 0 && !p->head)
        return write(to_client ? p->c : p->u, buf, (size_t)len) == len ? 0 : -1;
    struct chunk *c = malloc(sizeof *c + (size_t)len);
    if (!c)
        return -1;
    c->due = now + ms / 1000.0;
    c->len = len;
    c->to_client = to_client;
    c->next = NULL;
    memcpy(c->data, buf, (size_t)len);
    if (p->tail)
        p->tail->next = c;
    else
        p->head = c;
    p->tail = c;
    return 0;
}

static void *relay_main(void *arg)
{
    review_relay *r = arg;
    double tokens = 0, last = review_now();
    static char buf[65536];
    while (!atomic_load(&r->stop)) {
        struct pollfd pf[2 * RMAX + 1];
        int np = 0;
        pf[np].fd = r->lfd;
        pf[np].events = r->n < RMAX ? POLLIN : 0;
        np++;
        for (int i = 0; i < r->n; i++) {
            pf[np].fd = r->p[i].c;
            pf[np++].events = POLLIN;
            pf[np].fd = r->p[i].u;
            pf[np++].events = POLLIN;
        }
        poll(pf, (nfds_t)np, 1);
        double now = review_now();
        long rate = atomic_load(&r->rate_up);
        if (rate > 0) {
            tokens += (now - last) * (double)rate;
            if (tokens > rate / 20.0)
                tokens = rate / 20.0;
        }
        last = now;
        if (pf[0].revents & POLLIN) {
            int c = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                int u = tcp_to("127.0.0.1", r->port);
                if (u >= 0) {
                    memset(&r->p[r->n], 0, sizeof r->p[r->n]);
                    r->p[r->n].c = c;
                    r->p[r->n].u = u;
                    r->n++;
                    atomic_fetch_add(&r->accepted, 1);
                } else {
                    close(c);
                }
            }
        }
        for (int i = 0; i < r->n && 1 + 2 * i + 1 < np; i++) {
            struct pair *p = &r->p[i];
            int dead = 0;
            if (pf[1 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR)) {
                size_t want = sizeof buf;
                if (rate > 0)
                    want = tokens < 1 ? 0 : (tokens < (double)want ? (size_t)tokens : want);
                if (want) {
                    ssize_t k = read(p->c, buf, want);
                    if (k <= 0)
                        dead = 1;
                    else {
                        if (rate > 0)
                            tokens -= (double)k;
                        atomic_fetch_add(&r->bytes_up, k);
                        dead = forward(r, p, 0, buf, (int)k, now) != 0;
                    }
                }
            }
            if (!dead && (pf[2 + 2 * i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t k = read(p->u, buf, sizeof buf);
                if (k <= 0)
                    dead = 1;
                else {
                    atomic_fetch_add(&r->bytes_down, k);
                    dead = forward(r, p, 1, buf, (int)k, now) != 0;
                }
            }
            while (!dead && p->head && p->head->due <= now) {
                struct chunk *c = p->head;
                if (write(c->to_client ? p->c : p->u, c->data, (size_t)c->len) != c->len)
                    dead = 1;
                p->head = c->next;
                if (!p->head)
                    p->tail = NULL;
                free(c);
            }
            if (dead) {
                pair_close(p);
                r->p[i] = r->p[--r->n];
                break; /* the poll slots have moved: next round */
            }
        }
    }
    for (int i = 0; i < r->n; i++)
        pair_close(&r->p[i]);
    return NULL;
}

review_relay *review_relay_start(int port)
{
    review_relay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->port = port;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(r->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(r->lfd, 64) != 0
        || pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        if (r->lfd >= 0)
            close(r->lfd);
        free(r);
        return NULL;
    }
    return r;
}

void review_relay_set_delay_ms(review_relay *r, int ms) { atomic_store(&r->delay_ms, ms); }
void review_relay_set_rate_up(review_relay *r, long bps) { atomic_store(&r->rate_up, bps); }
long review_relay_accepted(const review_relay *r) { return atomic_load(&((review_relay *)r)->accepted); }
long review_relay_bytes_up(const review_relay *r) { return atomic_load(&((review_relay *)r)->bytes_up); }
long review_relay_bytes_down(const review_relay *r) { return atomic_load(&((review_relay *)r)->bytes_down); }

void review_relay_stop(review_relay *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, 1);
    pthread_join(r->thread, NULL);
    close(r->lfd);
    free(r);
}

/* ---- flood ---- */

struct review_flood {
    int port, rate, total, keep;
    double seconds;
    atomic_int stop;
    atomic_long opened;
    pthread_t thread;
};

static void *flood_main(void *arg)
{
    review_flood *f = arg;
    int *fds = calloc((size_t)f->keep, sizeof *fds);
    if (!fds)
        return NULL;
    for (int i = 0; i < f->keep; i++)
        fds[i] = -1;
    double t0 = review_now();
    for (int i = 0; i < f->total && !atomic_load(&f->stop); i++) {
        double due = t0 + (double)i / f->rate;
        while (review_now() < due && !atomic_load(&f->stop))
            usleep(200);
        if (review_now() - t0 > f->seconds)
            break;
        int slot = i % f->keep;
        if (fds[slot] >= 0)
            close(fds[slot]); /* the oldest: the router dropped it long ago */
        fds[slot] = tcp_to("127.0.0.1", f->port);
        if (fds[slot] >= 0)
            atomic_fetch_add(&f->opened, 1);
    }
    while (!atomic_load(&f->stop))
        usleep(1000);
    for (int i = 0; i < f->keep; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return NULL;
}

review_flood *review_flood_start(int port, int rate, int total, double seconds, int keep)
{
    review_flood *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->port = port;
    f->rate = rate > 0 ? rate : 1;
    f->total = total;
    f->seconds = seconds;
    f->keep = keep > 0 ? keep : 1;
    if (pthread_create(&f->thread, NULL, flood_main, f) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

long review_flood_opened(const review_flood *f) { return atomic_load(&((review_flood *)f)->opened); }

void review_flood_stop(review_flood *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    free(f);
}
