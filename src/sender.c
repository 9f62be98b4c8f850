/*
 * sender.c - the sending end of a pipe, used in workers.
 *
 * A sender is plain data until it starts (router's socket name, connection
 * id, the pipe's key), so it survives fork() and travels as a string. start()
 * connects, makes a shared-memory ring, sends the HELLO with the ring's
 * memfd and waits for the ACK. send() then copies the message into the
 * ring and makes a system call only to wake the router if it sleeps (or
 * to wait for room). With MPR_TRANSPORT=socket in the environment (or if
 * the ring cannot be made) messages go as frames on the socket instead,
 * one sendmsg(MSG_NOSIGNAL) each.
 */
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <mprouter/sender.h>

#include "internal.h"
#include "ring.h"
#include "wire.h"

#define NAME_MAX_LEN 100
#define ACK_TIMEOUT_MS 10000
#define STRING_PREFIX "mpr1:"

enum { INITIAL, OPEN, CLOSED };

struct mpr_sender {
    int state;
    int fd;
    int broken; /* the router went away: every send fails */
    uint32_t id;
    uint32_t max_msg;
    unsigned char key[MPR__SECRET_SIZE]; /* the pipe's key (wire.h) */
    char name[NAME_MAX_LEN + 1];
    mpr__ring ring; /* ring.hdr == NULL: socket frames */
};

static int valid_name(const char *name, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

int mpr__sender_new(mpr_sender **out, const char *name, uint32_t id, const unsigned char *key,
                    uint32_t max_msg)
{
    size_t len = strlen(name);
    if (!valid_name(name, len) || id == 0 || id > 0x7fffffffu)
        return MPR_EINVAL;
    mpr_sender *s = calloc(1, sizeof *s);
    if (!s)
        return MPR_ENOMEM;
    s->state = INITIAL;
    s->fd = -1;
    s->id = id;
    s->max_msg = max_msg;
    memcpy(s->key, key, MPR__SECRET_SIZE);
    memcpy(s->name, name, len + 1);
    *out = s;
    return 0;
}

/* Write all of iov (modified), without SIGPIPE. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)
                return MPR_EPIPE;
            return mpr__syserr();
        }
        size_t done = (size_t)n;
        while (iovcnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

/* Send the HELLO, with the ring's memfd attached if there is one. */
static int send_hello(int fd, const unsigned char *hello, int memfd)
{
    struct iovec iov = {(void *)hello, MPR__HELLO_SIZE};
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
        memcpy(CMSG_DATA(c), &memfd, sizeof(int));
    }
    ssize_t n;
    while ((n = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (n == MPR__HELLO_SIZE)
        return 0;
    if (n < 0 && errno != EPIPE && errno != ECONNRESET)
        return mpr__syserr();
    return MPR_EACCES; /* the router hung up on us */
}

static int want_ring(void)
{
    const char *transport = getenv("MPR_TRANSPORT");
    return !(transport && strcmp(transport, "socket") == 0);
}

/* Read exactly n bytes within the ACK timeout. */
static int recv_ack(int fd, unsigned char *buf, size_t n)
{
    size_t have = 0;
    int64_t deadline = mpr__now_ns() + (int64_t)ACK_TIMEOUT_MS * 1000000;
    while (have < n) {
        int64_t left_ms = (deadline - mpr__now_ns()) / 1000000;
        if (left_ms <= 0)
            return MPR_ETIMEDOUT;
        struct pollfd p = {fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)left_ms);
        if (rc < 0 && errno != EINTR)
            return mpr__syserr();
        if (rc <= 0)
            continue;
        ssize_t got = recv(fd, buf + have, n - have, 0);
        if (got == 0)
            return MPR_EACCES; /* the router closed the connection: rejected */
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return errno == ECONNRESET ? MPR_EACCES : mpr__syserr();
        }
        have += (size_t)got;
    }
    return 0;
}

int mpr_sender_start(mpr_sender *s)
{
    if (!s)
        return MPR_EINVAL;
    if (s->state != INITIAL)
        return MPR_EALREADY;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mpr__syserr();
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t len = strlen(s->name);
    memcpy(addr.sun_path + 1, s->name, len);
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&addr, alen)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = (errno == ECONNREFUSED || errno == ENOENT) ? MPR_ECONNREFUSED : mpr__syserr();
        close(fd);
        return rc;
    }
    int memfd = -1;
    if (want_ring() && mpr__ring_create(&s->ring, MPR__RING_DEFAULT, &memfd) < 0)
        memfd = -1; /* no shared memory here: frames on the socket still work */
    unsigned char hello[MPR__HELLO_SIZE];
    mpr__hello h = {.version = MPR__WIRE_VERSION,
                    .conn_id = s->id,
                    .flags = memfd >= 0 ? MPR__HELLO_RING : 0};
    memcpy(h.key, s->key, MPR__SECRET_SIZE);
    mpr__hello_encode(hello, &h);
    rc = send_hello(fd, hello, memfd);
    memset(hello, 0, sizeof hello);
    if (memfd >= 0)
        close(memfd); /* the mapping stays; the router has its own copy */
    unsigned char ack[MPR__ACK_SIZE];
    if (rc == 0)
        rc = recv_ack(fd, ack, sizeof ack);
    if (rc == 0)
        rc = mpr__ack_decode(ack, &s->max_msg);
    if (rc < 0) {
        mpr__ring_unmap(&s->ring, 0);
        close(fd);
        return rc;
    }
    s->fd = fd;
    s->state = OPEN;
    return 0;
}

/* A message into the ring: whole if it fits in a quarter of the ring,
 * else as a FRAG_START and pieces. */
static int ring_send(mpr_sender *s, const void *data, size_t size)
{
    uint32_t piece = mpr__ring_max_payload(&s->ring);
    if (size <= piece)
        return mpr__ring_put(&s->ring, s->fd, MPR__RING_MSG, data, (uint32_t)size);
    unsigned char total[8];
    mpr__put_u64(total, (uint64_t)size);
    int rc = mpr__ring_put(&s->ring, s->fd, MPR__RING_FRAG_START, total, sizeof total);
    const unsigned char *p = data;
    for (size_t done = 0; rc == 0 && done < size; done += piece) {
        size_t n = size - done < piece ? size - done : piece;
        rc = mpr__ring_put(&s->ring, s->fd, MPR__RING_FRAG_DATA, p + done, (uint32_t)n);
    }
    return rc;
}

int mpr_sender_send(mpr_sender *s, const void *data, size_t size)
{
    if (!s || (!data && size > 0))
        return MPR_EINVAL;
    if (s->state != OPEN)
        return MPR_ESTATE;
    if (size > s->max_msg)
        return MPR_EMSGSIZE;
    if (s->broken)
        return MPR_EPIPE;
    if (s->ring.hdr) {
        int rc = ring_send(s, data, size);
        if (rc == MPR_EPIPE)
            s->broken = 1;
        return rc;
    }
    unsigned char hdr[4];
    mpr__put_u32(hdr, (uint32_t)size);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, size}};
    int rc = send_all(s->fd, iov, size ? 2 : 1);
    if (rc == MPR_EPIPE)
        s->broken = 1;
    return rc;
}

int mpr_sender_stop(mpr_sender *s)
{
    if (!s)
        return MPR_EINVAL;
    if (s->state != OPEN)
        return MPR_ESTATE;
    /* Nothing to do if the router is gone. */
    if (s->broken) {
    } else if (s->ring.hdr) {
        mpr__ring_put(&s->ring, s->fd, MPR__RING_BYE, NULL, 0);
    } else {
        unsigned char bye[4];
        mpr__put_u32(bye, MPR__WIRE_BYE);
        struct iovec iov = {bye, sizeof bye};
        send_all(s->fd, &iov, 1);
    }
    mpr__ring_unmap(&s->ring, 0);
    close(s->fd);
    s->fd = -1;
    s->state = CLOSED;
    return 0;
}

void mpr_sender_free(mpr_sender *s)
{
    if (!s)
        return;
    mpr__ring_unmap(&s->ring, 0);
    if (s->fd >= 0)
        close(s->fd);
    memset(s->key, 0, sizeof s->key);
    free(s);
}

int mpr_sender_to_string(const mpr_sender *s, char *buf, size_t size)
{
    if (!s || (!buf && size > 0) || s->state != INITIAL)
        return MPR_EINVAL;
    char hex[2 * MPR__SECRET_SIZE + 1];
    for (size_t i = 0; i < MPR__SECRET_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", s->key[i]);
    int n = snprintf(buf, size, STRING_PREFIX "%s:%u:%s", s->name, s->id, hex);
    return n < 0 ? MPR_EINVAL : n;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int mpr_sender_from_string(mpr_sender **out, const char *text)
{
    if (!out || !text || strncmp(text, STRING_PREFIX, strlen(STRING_PREFIX)) != 0)
        return MPR_EINVAL;
    const char *name = text + strlen(STRING_PREFIX);
    const char *colon = strchr(name, ':');
    if (!colon)
        return MPR_EINVAL;
    size_t name_len = (size_t)(colon - name);
    if (!valid_name(name, name_len))
        return MPR_EINVAL;

    const char *p = colon + 1;
    uint64_t id = 0;
    if (*p < '1' || *p > '9')
        return MPR_EINVAL;
    while (*p >= '0' && *p <= '9') {
        id = id * 10 + (uint64_t)(*p++ - '0');
        if (id > 0x7fffffffu)
            return MPR_EINVAL;
    }
    if (*p++ != ':')
        return MPR_EINVAL;

    unsigned char key[MPR__SECRET_SIZE]; /* the pipe's key (wire.h) */
    for (size_t i = 0; i < MPR__SECRET_SIZE; i++) {
        int hi = hex_value(p[2 * i]);
        int lo = hi < 0 ? -1 : hex_value(p[2 * i + 1]);
        if (lo < 0)
            return MPR_EINVAL;
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    if (p[2 * MPR__SECRET_SIZE] != '\0')
        return MPR_EINVAL;

    char name_buf[NAME_MAX_LEN + 1];
    memcpy(name_buf, name, name_len);
    name_buf[name_len] = '\0';
    int rc = mpr__sender_new(out, name_buf, (uint32_t)id, key, (uint32_t)MPR_MAX_MESSAGE_SIZE);
    memset(key, 0, sizeof key);
    return rc;
}

uint32_t mpr_sender_id(const mpr_sender *s)
{
    return s ? s->id : 0;
}
