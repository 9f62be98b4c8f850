/* rawpeer.h - a hand-made sender for tests: speaks the wire protocol of
 * src/wire.h byte by byte, so tests can send what a real sender never
 * would. The handshake tags use src/wire.c's SipHash (compiled into the
 * test: the library hides its internal symbols). */
#ifndef MPR_TEST_RAWPEER_H
#define MPR_TEST_RAWPEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hp_ring hp_ring;

/* Split a sender string into socket name, id and the pipe's key. 0 or -1. */
int hp_parse(const char *text, char *name, size_t name_size, uint32_t *id, unsigned char key[16]);
/* The address of the router's local endpoint called name: an abstract
 * socket on Linux, "/tmp/NAME/s" in the portable build (src/platform.h).
 * for_bind: make the directory too (an impostor taking a stopped
 * router's name). */
struct sockaddr_un;
unsigned hp_local_addr(const char *name, struct sockaddr_un *addr, int for_bind);
/* Connect to the router's socket; the fd or -1. */
int hp_connect(const char *name);

/* The handshake (wire.h), step by step. Sends return 0 or -1; reads return
 * 1 (got it), 0 (the router closed the connection) or -1 (timeout, error,
 * or not the message expected). */
int hp_send_hello(int fd, uint32_t id, uint32_t version, uint32_t flags, unsigned char nonce_s[16]);
int hp_read_challenge(int fd, int timeout_ms, uint32_t *max_msg, unsigned char nonce_r[16],
                      unsigned char proof_r[16]);
/* The tag a role ('r' or 's') makes: SipHash-2-4-128 under key (wire.h). */
void hp_tag(unsigned char out[16], const unsigned char key[16], char role, uint32_t id,
            const unsigned char answered[16], const unsigned char own[16]);
/* A PROOF with this tag (memfd attached if >= 0). */
int hp_send_proof(int fd, uint32_t flags, const unsigned char tag[16], int memfd);
int hp_read_ack(int fd, int timeout_ms, uint32_t *status, uint32_t *mode);
/* All of it with the right key: 1 if the router accepted (ACK status 0),
 * 0 if it closed the connection, -1 otherwise. The router's proof is
 * checked too (-1 if wrong). *mode (may be NULL) gets the ACK's mode. */
int hp_handshake(int fd, uint32_t id, const unsigned char key[16], uint32_t proof_flags, int memfd,
                 uint32_t *mode);
/* 1 once the router has closed the connection (reads and drops bytes). */
int hp_closed(int fd);

/* A ring of cap bytes in a memfd, sealed or not, of total size
 * header + cap + extra. NULL on failure. */
hp_ring *hp_ring_new(uint64_t cap, int seal, uint64_t extra);
int hp_ring_fd(const hp_ring *ring);
/* Append a record (no wrapping; the caller keeps it within the ring);
 * publishes head unless publish is 0. */
void hp_ring_put(hp_ring *ring, uint32_t type, uint32_t len, const void *payload, int publish);
/* Publish an arbitrary head (and write on from there). */
void hp_ring_set_head(hp_ring *ring, uint64_t head);
uint64_t hp_ring_head(const hp_ring *ring);
/* The reader's position, as the router published it. */
uint64_t hp_ring_tail(const hp_ring *ring);
void hp_ring_free(hp_ring *ring);
/* Send a wake-up byte. */
void hp_wake(int fd);

#ifdef __cplusplus
}
#endif

#endif
