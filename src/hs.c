/*
 * hs.c - the handshake state machine of every transport (see hs.h).
 */
#include "hs.h"

#include "base.h"
#include "platform.h"

/* ---- the sender's side ---- */

int mpr__hs_sender_hello(mpr__hs_sender *hs, uint32_t id, const unsigned char *key,
                         unsigned char hello[MPR__HELLO_SIZE])
{
    memset(hs, 0, sizeof *hs);
    hs->id = id;
    hs->key = key;
    mpr__hello h = {.version = MPR__WIRE_VERSION, .conn_id = id, .flags = 0};
    int rc = mpr__random(hs->nonce_s, sizeof hs->nonce_s);
    if (rc < 0) {
        hs->state = MPR__HS_FAILED;
        return rc;
    }
    memcpy(h.nonce, hs->nonce_s, sizeof h.nonce);
    mpr__hello_encode(hello, &h);
    hs->state = MPR__HS_CHALLENGE;
    return 0;
}

int mpr__hs_sender_challenge(mpr__hs_sender *hs, const unsigned char in[MPR__CHALLENGE_SIZE],
                             uint32_t flags, unsigned char proof[MPR__PROOF_SIZE])
{
    mpr__challenge ch;
    if (hs->state != MPR__HS_CHALLENGE || mpr__challenge_decode(in, &ch) < 0) {
        hs->state = MPR__HS_FAILED;
        return MPR_EPROTO;
    }
    unsigned char tag[MPR__SECRET_SIZE];
    mpr__proof_tag(tag, hs->key, 'r', hs->id, hs->nonce_s, ch.nonce);
    int genuine = mpr__secret_equal(tag, ch.proof);
    mpr__wipe(tag, sizeof tag);
    if (!genuine) {
        hs->state = MPR__HS_FAILED;
        return MPR_ECONNREFUSED; /* it does not know the pipe's key: not our router */
    }
    hs->max_msg = ch.max_msg;
    mpr__proof p = {.flags = flags};
    mpr__proof_tag(p.proof, hs->key, 's', hs->id, ch.nonce, hs->nonce_s);
    mpr__proof_encode(proof, &p);
    mpr__wipe(&p, sizeof p);
    hs->state = MPR__HS_ACK;
    return 0;
}

int mpr__hs_sender_ack(mpr__hs_sender *hs, const unsigned char in[MPR__ACK_SIZE])
{
    mpr__ack ack;
    if (hs->state != MPR__HS_ACK || mpr__ack_decode(in, &ack) < 0) {
        hs->state = MPR__HS_FAILED;
        return MPR_EPROTO;
    }
    hs->state = MPR__HS_DONE;
    hs->mode = ack.mode;
    mpr__wipe(hs->nonce_s, sizeof hs->nonce_s);
    return ack.status == MPR__ACK_TAKEN ? MPR_EALREADY : 0;
}

/* ---- the router's side ---- */

/* The router's proof for the CHALLENGE, made from the pipe's key. */
static void router_tag(const mpr__hs_router *hs, const mpr__hs_router_keys *k,
                       unsigned char out[MPR__SECRET_SIZE], char role)
{
    unsigned char key[MPR__SECRET_SIZE];
    mpr__pipe_key(key, k->secret, hs->claimed);
    if (role == 'r')
        mpr__proof_tag(out, key, 'r', hs->claimed, hs->nonce_s, hs->nonce_r);
    else
        mpr__proof_tag(out, key, 's', hs->claimed, hs->nonce_r, hs->nonce_s);
    mpr__wipe(key, sizeof key);
}

int mpr__hs_router_hello(mpr__hs_router *hs, const mpr__hs_router_keys *k,
                         const unsigned char in[MPR__HELLO_SIZE],
                         unsigned char challenge[MPR__CHALLENGE_SIZE], const char **why)
{
    mpr__hello h;
    if (mpr__hello_decode(in, &h) < 0) {
        hs->state = MPR__HS_FAILED;
        *why = "protocol error (no HELLO)";
        return MPR_EPROTO;
    }
    if (hs->state == MPR__HS_CHALLENGE) {
        /* A HELLO again: the same one (its sender waited long for our
         * answer, or it came again over a new connection) gets the same
         * CHALLENGE; another one is refused. */
        if (h.conn_id != hs->claimed || !mpr__secret_equal(h.nonce, hs->nonce_s)) {
            hs->state = MPR__HS_FAILED;
            *why = "a second HELLO that is not the first one again";
            return MPR_EACCES;
        }
    } else if (hs->state != MPR__HS_START) {
        hs->state = MPR__HS_FAILED;
        *why = "protocol error (HELLO out of turn)";
        return MPR_EPROTO;
    } else {
        hs->claimed = h.conn_id;
        if (h.version != MPR__WIRE_VERSION || h.flags != 0) {
            *why = "unsupported protocol version";
        } else if (h.conn_id == 0 || h.conn_id > k->last_id) {
            *why = "connection id never issued";
        } else if (mpr__random(hs->nonce_r, sizeof hs->nonce_r) < 0) {
            *why = "no random numbers for the handshake";
        } else {
            *why = NULL;
        }
        if (*why) {
            hs->state = MPR__HS_FAILED;
            return MPR_EACCES;
        }
        memcpy(hs->nonce_s, h.nonce, sizeof hs->nonce_s);
        hs->state = MPR__HS_CHALLENGE;
    }
    mpr__challenge ch = {.max_msg = k->max_msg};
    memcpy(ch.nonce, hs->nonce_r, sizeof ch.nonce);
    router_tag(hs, k, ch.proof, 'r');
    mpr__challenge_encode(challenge, &ch);
    return 0;
}

int mpr__hs_router_proof(mpr__hs_router *hs, const mpr__hs_router_keys *k,
                         const unsigned char in[MPR__PROOF_SIZE], const char **why)
{
    mpr__proof p;
    if (hs->state != MPR__HS_CHALLENGE || mpr__proof_decode(in, &p) < 0) {
        hs->state = MPR__HS_FAILED;
        *why = "protocol error (no PROOF)";
        return MPR_EPROTO;
    }
    unsigned char expected[MPR__SECRET_SIZE];
    router_tag(hs, k, expected, 's');
    int ok = mpr__secret_equal(expected, p.proof);
    mpr__wipe(expected, sizeof expected);
    if (!ok) {
        hs->state = MPR__HS_FAILED;
        /* Not "a wrong key": an answer to another CHALLENGE looks the same. */
        *why = "its proof does not match (not this pipe's key, or not an answer to our challenge)";
        return MPR_EACCES;
    }
    hs->flags = p.flags;
    hs->state = MPR__HS_PROVEN;
    return 0;
}

void mpr__hs_router_clear(mpr__hs_router *hs)
{
    mpr__wipe(hs->nonce_s, sizeof hs->nonce_s);
    mpr__wipe(hs->nonce_r, sizeof hs->nonce_r);
}
