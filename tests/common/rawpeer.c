/* rawpeer.c - see rawpeer.h. */
#include "rawpeer.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
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

void mpr__proof_tag(unsigned char out[16], const unsigned char key[16], char role, uint32_t id,
                    const unsigned char answered[16], const unsigned char own[16]);

int hp_parse(const char *text, char *name, size_t name_size, uint32_t *id, unsigned char secret[16])
{
    if (strncmp(text, "mpr3:", 5) != 0)
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

unsigned hp_local_addr(const char *name, struct sockaddr_un *addr, int for_bind)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    size_t len = strlen(name);
#if defined(MPR_PORTABLE) || !defined(__linux__)
    char dir[sizeof addr->sun_path - 2];
    snprintf(dir, sizeof dir, "/tmp/%.80s", name);
    if (for_bind)
        mkdir(dir, 0700);
    snprintf(addr->sun_path, sizeof addr->sun_path, "%s/s", dir);
    (void)len;
    return (unsigned)sizeof *addr;
#else
    (void)for_bind;
    memcpy(addr->sun_path + 1, name, len); /* abstract: sun_path[0] == 0 */
    return (unsigned)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
#endif
}

int hp_connect(const char *name)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr;
    socklen_t len = (socklen_t)hp_local_addr(name, &addr, 0);
    if (connect(fd, (struct sockaddr *)&addr, len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_with_fd(int fd, const unsigned char *bytes, size_t n, int memfd)
{
    struct iovec iov = {(void *)bytes, n};
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
    return sendmsg(fd, &msg, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* 1: n bytes read; 0: closed; -1: timeout or error. */
static int read_exact(int fd, unsigned char *buf, size_t n, int timeout_ms)
{
    size_t have = 0;
    while (have < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, timeout_ms);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc != 1)
            return -1;
        ssize_t got = recv(fd, buf + have, n - have, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return 0;
        have += (size_t)got;
    }
    return 1;
}

int hp_send_hello(int fd, uint32_t id, uint32_t version, uint32_t flags, unsigned char nonce_s[16])
{
    unsigned char hello[32];
    if (getrandom(nonce_s, 16, 0) != 16)
        return -1;
    mpr__put_u32(hello, MPR__HELLO_MAGIC);
    mpr__put_u32(hello + 4, version);
    mpr__put_u32(hello + 8, id);
    mpr__put_u32(hello + 12, flags);
    memcpy(hello + 16, nonce_s, 16);
    return send_with_fd(fd, hello, sizeof hello, -1);
}

int hp_read_challenge(int fd, int timeout_ms, uint32_t *max_msg, unsigned char nonce_r[16],
                      unsigned char proof_r[16])
{
    unsigned char c[48];
    int rc = read_exact(fd, c, sizeof c, timeout_ms);
    if (rc != 1)
        return rc;
    if (mpr__get_u32(c) != MPR__CHALLENGE_MAGIC)
        return -1;
    if (max_msg)
        *max_msg = mpr__get_u32(c + 8);
    memcpy(nonce_r, c + 16, 16);
    memcpy(proof_r, c + 32, 16);
    return 1;
}

void hp_tag(unsigned char out[16], const unsigned char key[16], char role, uint32_t id,
            const unsigned char answered[16], const unsigned char own[16])
{
    mpr__proof_tag(out, key, role, id, answered, own);
}

int hp_send_proof(int fd, uint32_t flags, const unsigned char tag[16], int memfd)
{
    unsigned char proof[32] = {0};
    mpr__put_u32(proof, MPR__PROOF_MAGIC);
    mpr__put_u32(proof + 4, flags);
    memcpy(proof + 16, tag, 16);
    return send_with_fd(fd, proof, sizeof proof, memfd);
}

int hp_read_ack(int fd, int timeout_ms, uint32_t *status, uint32_t *mode)
{
    unsigned char ack[16];
    int rc = read_exact(fd, ack, sizeof ack, timeout_ms);
    if (rc != 1)
        return rc;
    if (mpr__get_u32(ack) != MPR__ACK_MAGIC)
        return -1;
    if (status)
        *status = mpr__get_u32(ack + 4);
    if (mode)
        *mode = mpr__get_u32(ack + 8);
    return 1;
}

int hp_handshake(int fd, uint32_t id, const unsigned char key[16], uint32_t proof_flags, int memfd,
                 uint32_t *mode)
{
    unsigned char nonce_s[16], nonce_r[16], proof_r[16], tag[16];
    if (hp_send_hello(fd, id, MPR__WIRE_VERSION, 0, nonce_s) < 0)
        return -1;
    int rc = hp_read_challenge(fd, 30000, NULL, nonce_r, proof_r);
    if (rc != 1)
        return rc;
    hp_tag(tag, key, 'r', id, nonce_s, nonce_r);
    if (memcmp(tag, proof_r, 16) != 0)
        return -1; /* not our router */
    hp_tag(tag, key, 's', id, nonce_r, nonce_s);
    if (hp_send_proof(fd, proof_flags, tag, memfd) < 0)
        return -1;
    uint32_t status;
    rc = hp_read_ack(fd, 30000, &status, mode);
    if (rc != 1)
        return rc;
    return status == MPR__ACK_OK ? 1 : -1;
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

uint64_t hp_ring_tail(const hp_ring *r)
{
    const mpr__ring_hdr *h = r->base;
    return atomic_load(&h->tail);
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
