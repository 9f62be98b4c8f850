/*
 * local_sender.c - the sending end of the local transport (the router's
 * end is local_router.c): connect to the router's endpoint, check that
 * the peer runs as our user and proves it knows the pipe's key (hs.h),
 * hand over a shared-memory ring, then write messages into it (ring.c):
 * no system call unless the router sleeps or the ring is full. Without a
 * ring (MPR_TRANSPORT=socket, no shared memory, or the router could not
 * take it), each message is one frame on the connection (wire.h).
 */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hs.h"
#include "ring.h"
#include "transport.h"

#define HANDSHAKE_TIMEOUT_NS ((int64_t)10 * 1000000000) /* our wait for the router's answers */

typedef struct local_link {
    mpr__link base; /* first */
    mpr__fd conn;
    mpr__ring ring; /* ring mode: mapped */
} local_link;

static const mpr__link_ops frames_ops, ring_ops;

/* Read exactly n bytes before deadline_ns: 0, MPR_EACCES at the end of
 * stream (the router hung up: rejected), MPR_ETIMEDOUT, or an error. */
static int recv_exact(mpr__fd fd, void *buf, size_t n, int64_t deadline_ns)
{
    size_t have = 0;
    while (have < n) {
        int64_t left_ms = (deadline_ns - mpr__now_ns() + 999999) / 1000000;
        if (left_ms <= 0)
            return MPR_ETIMEDOUT;
        mpr__waitfd w = {fd, MPR__WAIT_IN, 0};
        int rc = mpr__wait(&w, 1, left_ms > 60000 ? 60000 : (int)left_ms);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue;
        long got = mpr__stream_recv(fd, (char *)buf + have, n - have);
        if (got == 0)
            return MPR_EACCES; /* the router closed the connection: rejected */
        if (got == MPR_EAGAIN)
            continue;
        if (got < 0)
            return (int)got;
        have += (size_t)got;
    }
    return 0;
}

/* The handshake on a connected handle: HELLO, check the CHALLENGE, PROOF
 * (with the ring if there is one), ACK. *ring_kept: in, a ring is wanted;
 * out, the router took it. */
static int handshake(const mpr__sender_cred *cred, local_link *l, int *ring_kept)
{
    int64_t deadline = mpr__now_ns() + HANDSHAKE_TIMEOUT_NS;
    mpr__hs_sender hs;
    unsigned char buf[MPR__CHALLENGE_SIZE];
    int rc = mpr__hs_sender_hello(&hs, cred->id, cred->key, buf);
    if (rc == 0) {
        rc = mpr__stream_send_all(l->conn, buf, MPR__HELLO_SIZE, NULL, 0);
        if (rc == MPR_EPIPE)
            rc = MPR_EACCES; /* hung up on our HELLO */
    }
    if (rc == 0)
        rc = recv_exact(l->conn, buf, MPR__CHALLENGE_SIZE, deadline);
    mpr__fd shm = MPR__NO_FD;
    if (rc == 0 && *ring_kept &&
        mpr__ring_create(&l->ring, MPR__RING_DEFAULT, l->conn, &shm) < 0)
        shm = MPR__NO_FD; /* no shared memory here: frames on the connection still work */
    unsigned char proof[MPR__PROOF_SIZE];
    if (rc == 0) {
        rc = mpr__hs_sender_challenge(&hs, buf, shm >= 0 ? MPR__PROOF_RING : 0, proof);
        if (rc == MPR_EPROTO)
            rc = MPR_ECONNREFUSED; /* not a router of ours */
    }
    if (rc == 0) {
        rc = mpr__ipc_send_shm(l->conn, proof, sizeof proof, shm);
        if (rc == MPR_EPIPE)
            rc = MPR_EACCES; /* the router hung up on us */
    }
    mpr__wipe(proof, sizeof proof);
    mpr__fd_close(shm); /* the mapping stays; the router has its own copy */
    if (rc == 0)
        rc = recv_exact(l->conn, buf, MPR__ACK_SIZE, deadline);
    if (rc == 0)
        rc = mpr__hs_sender_ack(&hs, buf);
    if (rc == 0 && hs.mode == MPR__MODE_REMOTE)
        rc = MPR_EPROTO;
    *ring_kept = rc == 0 && hs.mode == MPR__MODE_RING && shm >= 0;
    if (!*ring_kept)
        mpr__ring_unmap(&l->ring, 0); /* the router could not take it: frames */
    l->base.max_msg = hs.max_msg;
    return rc;
}

int mpr__local_start(const mpr__sender_cred *cred, int want_ring, mpr__link **out)
{
    local_link *l = calloc(1, sizeof *l);
    if (!l)
        return MPR_ENOMEM;
    l->conn = MPR__NO_FD;
    int rc = mpr__ipc_connect(cred->name, &l->conn);
    if (rc == 0 && !mpr__ipc_peer_is_us(l->conn))
        rc = MPR_ECONNREFUSED; /* another user took the name: not our router */
    int ring = want_ring;
    if (rc == 0)
        rc = handshake(cred, l, &ring);
    if (rc < 0) {
        mpr__fd_close(l->conn);
        free(l);
        return rc;
    }
    l->base.ops = ring ? &ring_ops : &frames_ops;
    *out = &l->base;
    return 0;
}

static void link_close(mpr__link *base)
{
    local_link *l = (local_link *)base;
    mpr__ring_unmap(&l->ring, 0);
    mpr__fd_close(l->conn);
    free(l);
}

/* A forked copy: its handle and mapping are copies of the parent's, and
 * closing them touches nothing of the parent's stream. */
static void link_forget(mpr__link *base)
{
    link_close(base);
}

/* ---- frames ---- */

static int frames_send(mpr__link *base, const void *data, size_t size)
{
    local_link *l = (local_link *)base;
    unsigned char hdr[4];
    mpr__put_u32(hdr, (uint32_t)size);
    return mpr__stream_send_all(l->conn, hdr, sizeof hdr, data, size);
}

static int frames_stop(mpr__link *base)
{
    local_link *l = (local_link *)base;
    unsigned char bye[4];
    mpr__put_u32(bye, MPR__WIRE_BYE);
    return mpr__stream_send_all(l->conn, bye, sizeof bye, NULL, 0); /* MPR_EPIPE: the router has gone */
}

static const mpr__link_ops frames_ops = {frames_send, frames_stop, link_close, link_forget};

/* ---- ring ---- */

static int ring_send(mpr__link *base, const void *data, size_t size)
{
    return mpr__ring_put_message(&((local_link *)base)->ring, data, size);
}

static int ring_stop(mpr__link *base)
{
    /* MPR_EPIPE if the router has gone: what it had not read is lost. */
    return mpr__ring_put(&((local_link *)base)->ring, MPR__RING_BYE, NULL, 0);
}

static const mpr__link_ops ring_ops = {ring_send, ring_stop, link_close, link_forget};
