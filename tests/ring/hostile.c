/* hostile.c - see hostile.h. */
#include "hostile.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wire.h" /* the protocol's constants and ring header, from src/ */

struct hp_ring {
    int fd;
    void *base;
    size_t size;
    uint64_t cap;
    uint64_t head;
};

int hp_parse(const char *text, char *name, size_t name_size, uint32_t *id, unsigned char secret[16])
{
    if (strncmp(text, "mpr1:", 5) != 0)
        return -1;
    const char *p = text + 5, *colon = strchr(p, ':');
    if (!colon || (size_t)(colon - p) >= name_size)
        return -1;
    memcpy(name, p, (size_t)(colon - p));
    name[colon - p] = '\0';
    char *end;
    *id = (uint32_t)strtoul(colon + 1, &end, 10);
    if (*end != ':' || strlen(end + 1) != 32)
        return -1;
    for (int i = 0; i < 16; i++) {
        char hex[3] = {end[1 + 2 * i], end[2 + 2 * i], 0};
        secret[i] = (unsigned char)strtoul(hex, NULL, 16);
    }
    return 0;
}

int hp_connect(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(addr.sun_path + 1, name, len);
    if (connect(fd, (struct sockaddr *)&addr,
                (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int hp_hello(int fd, uint32_t id, const unsigned char secret[16], uint32_t flags, int memfd)
{
    unsigned char hello[MPR__HELLO_SIZE];
    mpr__put_u32(hello, MPR__HELLO_MAGIC);
    mpr__put_u32(hello + 4, MPR__WIRE_VERSION);
    mpr__put_u32(hello + 8, id);
    mpr__put_u32(hello + 12, flags);
    memcpy(hello + 16, secret, 16);
    struct iovec iov = {hello, sizeof hello};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (memfd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &memfd, sizeof memfd);
    }
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof hello ? 0 : -1;
}

int hp_read_ack(int fd, int timeout_ms)
{
    unsigned char ack[MPR__ACK_SIZE];
    size_t have = 0;
    while (have < sizeof ack) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) != 1)
            return -1;
        ssize_t n = recv(fd, ack + have, sizeof ack - have, 0);
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
    return mpr__get_u32(ack) == MPR__ACK_MAGIC ? 1 : -1;
}

int hp_closed(int fd)
{
    char buf[64];
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 0) == 1) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return 1;
        if (n < 0)
            return 0;
    }
    return 0;
}

hp_ring *hp_ring_new(uint64_t cap, int seal, uint64_t extra)
{
    hp_ring *r = calloc(1, sizeof *r);
    r->cap = cap;
    r->size = MPR__RING_HDR + cap + extra;
    r->fd = memfd_create("hostile-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (r->fd < 0 || ftruncate(r->fd, (off_t)r->size) < 0 ||
        (seal && fcntl(r->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)) {
        free(r);
        return NULL;
    }
    r->base = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    return r;
}

int hp_ring_fd(const hp_ring *r)
{
    return r->fd;
}

void hp_ring_put(hp_ring *r, uint32_t type, uint32_t len, const void *payload, int publish)
{
    unsigned char *data = (unsigned char *)r->base + MPR__RING_HDR;
    uint64_t at = r->head & (r->cap - 1);
    mpr__put_u32(data + at, type);
    mpr__put_u32(data + at + 4, len);
    uint64_t room = r->cap - at - 8;
    if (payload)
        memcpy(data + at + 8, payload, len < room ? len : room);
    uint64_t next = r->head + mpr__ring_rec_size(len);
    if (publish)
        hp_ring_set_head(r, next);
    else
        r->head = next;
}

void hp_ring_set_head(hp_ring *r, uint64_t head)
{
    mpr__ring_hdr *h = r->base;
    r->head = head;
    atomic_store(&h->head, head);
}

uint64_t hp_ring_head(const hp_ring *r)
{
    return r->head;
}

void hp_ring_free(hp_ring *r)
{
    munmap(r->base, r->size);
    close(r->fd);
    free(r);
}

void hp_wake(int fd)
{
    send(fd, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
}
