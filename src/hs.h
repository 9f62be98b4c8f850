/*
 * hs.h - the handshake of every transport, both roles, as one state
 * machine without I/O (libzmq's "mechanism" pattern): the transport hands
 * it each command that arrived and sends what it answers. The bytes are in
 * wire.h (HELLO, CHALLENGE, PROOF, ACK); the local transport carries them
 * on its connection, the remote one inside its encrypted channel. Fuzzed
 * alone (tests/fuzz/fuzz_hs.c). Never installed.
 *
 *   sender                                  router
 *   hello()          -- HELLO (nonce_s) -->  hello(): id issued? same
 *                                            version? -> CHALLENGE with
 *                                            nonce_r and proof_r
 *   challenge():     <-- CHALLENGE ------
 *   proof_r right?
 *   -> PROOF         -- PROOF (proof_s) -->  proof(): proof_s right? ->
 *                                            the transport answers ACK
 *   ack()            <-- ACK ------------
 *
 * Each side proves it holds the pipe's key by answering the other's fresh
 * nonce (mpr__proof_tag); the key never crosses. The router's side is
 * idempotent: a HELLO sent again (a sender that waited long for the
 * answer) gets the same CHALLENGE, so a slow router never turns a valid
 * sender away. Whether the pipe already had its sender is the monitor's
 * business (it knows every connection), not the machine's.
 */
#ifndef MPR_HS_H
#define MPR_HS_H

#include <stdint.h>

#include "wire.h"

enum mpr__hs_state {
    MPR__HS_START,     /* sender: nothing sent; router: nothing received */
    MPR__HS_CHALLENGE, /* sender: HELLO sent; router: CHALLENGE sent */
    MPR__HS_ACK,       /* sender: PROOF sent, waiting for the ACK */
    MPR__HS_PROVEN,    /* router: the PROOF was right (the transport answers) */
    MPR__HS_DONE,      /* sender: the ACK arrived */
    MPR__HS_FAILED
};

/* ---- the sender's side ---- */

typedef struct mpr__hs_sender {
    enum mpr__hs_state state;
    uint32_t id;
    const unsigned char *key; /* the pipe's key (the sender's own memory) */
    unsigned char nonce_s[MPR__NONCE_SIZE];
    uint32_t max_msg;         /* from the CHALLENGE */
    uint32_t mode;            /* from the ACK (MPR__MODE_*) */
} mpr__hs_sender;

/* Begin: a fresh nonce and the HELLO to send. 0 or an error (no random
 * numbers). */
int mpr__hs_sender_hello(mpr__hs_sender *hs, uint32_t id, const unsigned char *key,
                         unsigned char hello[MPR__HELLO_SIZE]);
/* The CHALLENGE arrived: check the router's proof and make the PROOF to
 * send (with flags, MPR__PROOF_RING when a ring goes with it). 0;
 * MPR_ECONNREFUSED if the peer cannot prove the pipe's key (not our
 * router); MPR_EPROTO for anything that is not a CHALLENGE. */
int mpr__hs_sender_challenge(mpr__hs_sender *hs, const unsigned char in[MPR__CHALLENGE_SIZE],
                             uint32_t flags, unsigned char proof[MPR__PROOF_SIZE]);
/* The ACK arrived: 0 with hs->mode set; MPR_EALREADY (the pipe had its
 * sender); MPR_EPROTO. */
int mpr__hs_sender_ack(mpr__hs_sender *hs, const unsigned char in[MPR__ACK_SIZE]);

/* ---- the router's side ---- */

/* What the router's side needs to know. */
typedef struct mpr__hs_router_keys {
    const unsigned char *secret; /* the router's secret (a wipe-on-fork page) */
    uint32_t last_id;            /* the highest pipe id issued so far */
    uint32_t max_msg;            /* told to the sender in the CHALLENGE */
} mpr__hs_router_keys;

typedef struct mpr__hs_router {
    enum mpr__hs_state state;
    uint32_t claimed; /* the pipe the HELLO named (0: none yet) */
    uint32_t flags;   /* of the PROOF */
    unsigned char nonce_s[MPR__NONCE_SIZE], nonce_r[MPR__NONCE_SIZE];
} mpr__hs_router;

/* A HELLO arrived: the CHALLENGE to answer with. 0; or MPR_EACCES with
 * *why (for the warning): another protocol version, an id never issued, a
 * second HELLO of another sender; MPR_EPROTO for anything that is not a
 * HELLO. */
int mpr__hs_router_hello(mpr__hs_router *hs, const mpr__hs_router_keys *k,
                         const unsigned char in[MPR__HELLO_SIZE],
                         unsigned char challenge[MPR__CHALLENGE_SIZE], const char **why);
/* The PROOF arrived: 0 when it proves the pipe's key (state PROVEN, its
 * flags in hs->flags); MPR_EACCES with *why otherwise; MPR_EPROTO for
 * anything that is not a PROOF or a PROOF before the HELLO. */
int mpr__hs_router_proof(mpr__hs_router *hs, const mpr__hs_router_keys *k,
                         const unsigned char in[MPR__PROOF_SIZE], const char **why);
/* Wipe the nonces (at the end of a connection). */
void mpr__hs_router_clear(mpr__hs_router *hs);

#endif /* MPR_HS_H */
