/*
 * sender.c - the sending end of a pipe, used in workers: the public API,
 * its string form, and who may call it. What travels is the transports'
 * business (sender_p.h).
 *
 * A sender is plain data until it starts (router's socket name, pipe id,
 * the pipe's key), so it survives fork() and travels as a string. start()
 * picks the transport: the shared-memory ring by default, frames on the
 * socket with MPR_TRANSPORT=socket (or if no ring can be made), ZeroMQ for
 * a router elsewhere (transport_zmq.c).
 *
 * A started sender belongs to the thread that started it, in the process
 * that started it: send and stop from anywhere else return MPR_EOWNER and
 * touch nothing, so two writers can never interleave their bytes. The
 * checks are a comparison with pthread_self() and one load from the fork
 * detection page (internal.h): nothing on the hot path that costs a
 * system call.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "platform.h"
#include "sender_p.h"
#include "transport.h"

#define STRING_PREFIX "mpr3:"

enum { INITIAL, OPEN, CLOSED };

struct mpr_sender {
    int state;
    uint64_t token;    /* mpr__process_token() of the process that started it */
    mpr__thread thread; /* the thread that started it */
    int broken;        /* a send failed: the router went away; every send fails */
    uint32_t id;
    uint32_t max_msg;  /* the router's (learned in the handshake) */
    unsigned char key[MPR__SECRET_SIZE]; /* the pipe's key (wire.h) */
    char name[MPR__IPC_NAME_MAX + 1];
    char remote[MPR__REMOTE_MAX + 1];    /* "" if the router has no remote endpoint */
    char server_key[MPR__CURVE_KEY_LEN + 1]; /* its CURVE public key (Z85) */
    mpr__link *link;   /* the transport chosen by start */
    _Atomic uint64_t seen_tag; /* the newest cancel tag the owner saw */
};

static int valid_name(const char *name, size_t len)
{
    if (len == 0 || len > MPR__IPC_NAME_MAX)
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
    s->id = id;
    s->max_msg = max_msg;
    memcpy(s->key, key, MPR__SECRET_SIZE);
    memcpy(s->name, name, len + 1);
    *out = s;
    return 0;
}

/* Is the caller the thread (and process) that started s? */
static int owner(const mpr_sender *s)
{
    return !mpr__forked(s->token) && mpr__thread_is_self(s->thread);
}

int mpr_sender_start(mpr_sender *s)
{
    if (!s)
        return MPR_EINVAL;
    if (s->state != INITIAL)
        return MPR_EALREADY;
    mpr__sender_cred cred = {s->name, s->id, s->key, s->remote, s->server_key};
    const char *transport = getenv("MPR_TRANSPORT");
    int rc;
    if (transport && strcmp(transport, "zmq") == 0) {
        rc = mpr__remote_start(&cred, &s->link);
    } else {
        rc = mpr__local_start(&cred, !(transport && strcmp(transport, "socket") == 0), &s->link);
        /* No router of ours at the local endpoint: on another host, in
         * another network namespace or container (or the router has
         * stopped). */
        if (rc == MPR_ECONNREFUSED && s->remote[0])
            rc = mpr__remote_start(&cred, &s->link);
    }
    if (rc < 0)
        return rc;
    s->max_msg = s->link->max_msg;
    s->token = mpr__process_token();
    s->thread = mpr__thread_self();
    s->state = OPEN;
    return 0;
}

int mpr_sender_send(mpr_sender *s, const void *data, size_t size)
{
    if (!s || (!data && size > 0))
        return MPR_EINVAL;
    if (s->state != OPEN)
        return MPR_ESTATE;
    if (!owner(s))
        return MPR_EOWNER;
    if (size > s->max_msg)
        return MPR_EMSGSIZE;
    if (s->broken)
        return MPR_EPIPE;
    int rc = s->link->ops->send(s->link, data, size);
    if (rc == MPR_EPIPE)
        s->broken = 1;
    return rc;
}

uint64_t mpr_sender_cancelled(mpr_sender *s)
{
    if (!s)
        return 0;
    if (s->state != OPEN || !owner(s))
        return atomic_load_explicit(&s->seen_tag, memory_order_relaxed);
    uint64_t tag = s->link->ops->cancelled(s->link);
    if (tag != atomic_load_explicit(&s->seen_tag, memory_order_relaxed))
        atomic_store_explicit(&s->seen_tag, tag, memory_order_relaxed);
    return tag;
}

int mpr_sender_recv(mpr_sender *s, void *buf, size_t size, size_t *length, double timeout_s)
{
    if (!s || !length || (!buf && size > 0) || isnan(timeout_s))
        return MPR_EINVAL;
    if (s->state != OPEN)
        return MPR_ESTATE;
    if (!owner(s))
        return MPR_EOWNER;
    int64_t deadline = -1;
    if (timeout_s >= 0 && timeout_s < 1e9) /* beyond 30 years: no limit */
        deadline = mpr__now_ns() + (int64_t)(timeout_s * 1e9);
    *length = 0;
    return s->link->ops->recv(s->link, buf, size, length, deadline);
}

int mpr_sender_stop(mpr_sender *s)
{
    if (!s)
        return MPR_EINVAL;
    if (s->state != OPEN)
        return MPR_ESTATE;
    if (!owner(s))
        return MPR_EOWNER;
    /* After a send failed (the router went away or dropped us), messages
     * may have been lost: never report a clean end then. */
    int rc = s->broken ? MPR_EPIPE : s->link->ops->stop(s->link);
    s->link->ops->close(s->link);
    s->link = NULL;
    s->state = CLOSED;
    return rc;
}

void mpr_sender_free(mpr_sender *s)
{
    if (!s)
        return;
    if (s->state == OPEN) {
        if (mpr__forked(s->token))
            s->link->ops->forget(s->link); /* a forked copy: the stream is its parent's */
        else
            s->link->ops->close(s->link); /* the router sees a lost sender */
    }
    mpr__wipe(s->key, sizeof s->key);
    free(s);
}

static const char Z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int valid_z85_key(const char *k)
{
    for (int i = 0; i < MPR__CURVE_KEY_LEN; i++)
        if (!k[i] || !strchr(Z85, k[i]))
            return 0;
    return 1;
}

/* "tcp://HOST:PORT". HOST: a name or IPv4 address ([A-Za-z0-9.-]), an IPv6
 * address in brackets, or (bind only) "*"; PORT 1-65535, or (bind only) 0
 * or "*". */
int mpr__valid_tcp_endpoint(const char *text, int allow_wildcards)
{
    if (!text || strncmp(text, "tcp://", 6) != 0 || strlen(text) > MPR__REMOTE_MAX)
        return 0;
    const char *host = text + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return 0;
    size_t hlen = (size_t)(colon - host);
    if (host[0] == '[') {
        if (hlen < 3 || host[hlen - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < hlen; i++)
            if (!strchr("0123456789abcdefABCDEF:.", host[i]))
                return 0;
    } else if (hlen == 1 && host[0] == '*') {
        if (!allow_wildcards)
            return 0;
    } else {
        for (size_t i = 0; i < hlen; i++) {
            char ch = host[i];
            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-'))
                return 0;
        }
    }
    const char *port = colon + 1;
    if (!strcmp(port, "*"))
        return allow_wildcards;
    unsigned long v = 0;
    if (!*port || strlen(port) > 5)
        return 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    return v <= 65535 && (v > 0 || allow_wildcards);
}

int mpr__sender_set_remote(mpr_sender *s, const char *endpoint, const char *server_key)
{
    if (!endpoint || !endpoint[0]) {
        s->remote[0] = s->server_key[0] = '\0';
        return 0;
    }
    if (!mpr__valid_tcp_endpoint(endpoint, 0) || !server_key || strlen(server_key) != 40 ||
        !valid_z85_key(server_key))
        return MPR_EINVAL;
    snprintf(s->remote, sizeof s->remote, "%s", endpoint);
    memcpy(s->server_key, server_key, MPR__CURVE_KEY_LEN + 1);
    return 0;
}

int mpr_sender_to_string(const mpr_sender *s, char *buf, size_t size)
{
    if (!s || (!buf && size > 0) || s->state != INITIAL)
        return MPR_EINVAL;
    char hex[2 * MPR__SECRET_SIZE + 1];
    for (size_t i = 0; i < MPR__SECRET_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", s->key[i]);
    int n;
    if (s->remote[0])
        n = snprintf(buf, size, STRING_PREFIX "%s:%u:%s:%s:%s", s->name, s->id, hex, s->server_key,
                     s->remote);
    else
        n = snprintf(buf, size, STRING_PREFIX "%s:%u:%s", s->name, s->id, hex);
    mpr__wipe(hex, sizeof hex);
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
    /* Then the end, or ":SERVERKEY:ENDPOINT" (the key is 40 characters of
     * Z85, which has ':' too: it is found by its length). */
    const char *rest = p + 2 * MPR__SECRET_SIZE;
    char server_key[MPR__CURVE_KEY_LEN + 1] = "";
    const char *endpoint = "";
    if (*rest) {
        /* The remote part is all or nothing: a key and an endpoint, both
         * valid (mpr__sender_set_remote checks them), so that every string
         * accepted prints back byte for byte. */
        if (*rest != ':' || strlen(rest + 1) < MPR__CURVE_KEY_LEN + 2 ||
            rest[1 + MPR__CURVE_KEY_LEN] != ':') {
            mpr__wipe(key, sizeof key);
            return MPR_EINVAL;
        }
        memcpy(server_key, rest + 1, MPR__CURVE_KEY_LEN);
        endpoint = rest + 2 + MPR__CURVE_KEY_LEN;
    }

    char name_buf[MPR__IPC_NAME_MAX + 1];
    memcpy(name_buf, name, name_len);
    name_buf[name_len] = '\0';
    int rc = mpr__sender_new(out, name_buf, (uint32_t)id, key, (uint32_t)MPR_MAX_MESSAGE_SIZE);
    mpr__wipe(key, sizeof key);
    if (rc == 0 && *rest && (rc = mpr__sender_set_remote(*out, endpoint, server_key)) < 0) {
        mpr_sender_free(*out);
        *out = NULL;
    }
    return rc;
}

uint32_t mpr_sender_id(const mpr_sender *s)
{
    return s ? s->id : 0;
}
