/*
 * sender_p.h - what the router (router.c) needs of senders (sender.c): to
 * make one for a pipe, and the check of a tcp endpoint both use. Never
 * installed.
 */
#ifndef MPR_SENDER_P_H
#define MPR_SENDER_P_H

#include <stdint.h>

#include <mprouter/sender.h>

#define MPR__REMOTE_MAX 200   /* "tcp://host:port" of the router's remote endpoint */
#define MPR__CURVE_KEY_LEN 40 /* a CURVE key in Z85 */

/* A new INITIAL sender for pipe #id of the router whose local endpoint is
 * called name. 0, MPR_EINVAL or MPR_ENOMEM. */
int mpr__sender_new(mpr_sender **out, const char *name, uint32_t id, const unsigned char *key,
                    uint32_t max_msg);
/* Where the sender finds its router from elsewhere: the router's remote
 * endpoint ("tcp://host:port") and CURVE public key (Z85), or "" for none.
 * 0 or MPR_EINVAL. */
int mpr__sender_set_remote(mpr_sender *s, const char *endpoint, const char *server_key);
/* Is text a tcp endpoint "tcp://HOST:PORT" (HOST a name, an IPv4 address,
 * [an IPv6 address] or, with allow_wildcards, *; PORT a number, and with
 * allow_wildcards 0 or *)? */
int mpr__valid_tcp_endpoint(const char *text, int allow_wildcards);

#endif /* MPR_SENDER_P_H */
