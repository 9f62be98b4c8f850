/* hostile.h - a hand-made sender for tests: speaks the wire protocol of
 * src/wire.h byte by byte, so tests can send what a real sender never would. */
#ifndef MPR_TEST_HOSTILE_H
#define MPR_TEST_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hp_ring hp_ring;

/* Split a sender string into socket name, id and secret. 0 or -1. */
int hp_parse(const char *text, char *name, size_t name_size, uint32_t *id, unsigned char secret[16]);
/* Connect to the router's socket; the fd or -1. */
int hp_connect(const char *name);
/* Send a HELLO (with memfd attached if >= 0). 0 or -1. */
int hp_hello(int fd, uint32_t id, const unsigned char secret[16], uint32_t flags, int memfd);
/* 1: ACK received; 0: the router closed the connection; -1: timeout/error. */
int hp_read_ack(int fd, int timeout_ms);
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
void hp_ring_free(hp_ring *ring);
/* Send a wake-up byte. */
void hp_wake(int fd);

#ifdef __cplusplus
}
#endif

#endif
