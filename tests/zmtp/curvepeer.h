/* curvepeer.h - a hand-made ZMTP 3.0 + CURVE peer for tests (tests/zmtp)
 * and the fuzz target (tests/fuzz/fuzz_zmtp.c): a second, deliberately
 * plain implementation of RFC 23/25/26 on libsodium's one-shot crypto_box,
 * that builds every command byte by byte so a test can send what a real
 * peer never would (a forged vouch, odd metadata, a repeated nonce, an
 * encrypted command, a frame header of any size). No I/O: it appends bytes
 * to a cp_buf and reads frames out of the caller's bytes. */
#ifndef MPR_TEST_CURVEPEER_H
#define MPR_TEST_CURVEPEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP_F_MORE 0x01u
#define CP_F_LONG 0x02u
#define CP_F_COMMAND 0x04u
#define CP_M_MORE 0x01u    /* the flags byte inside a MESSAGE */
#define CP_M_COMMAND 0x02u

typedef struct cp_buf {
    unsigned char *p;
    size_t len, cap;
} cp_buf;

void cp_put(cp_buf *b, const void *p, size_t n);
void cp_buf_free(cp_buf *b);

/* A greeting: signature, version major.minor, mechanism (NUL-padded to
 * 20), the as-server byte, filler. */
void cp_greeting(cp_buf *b, int major, int minor, const char *mechanism, int as_server);
/* A frame: flags (CP_F_*), then the body; a long header when n > 255 or
 * flags has CP_F_LONG. */
void cp_frame(cp_buf *b, unsigned flags, const void *body, size_t n);
/* A frame header alone, announcing size (long form). */
void cp_long_header(cp_buf *b, unsigned flags, uint64_t size);
/* A command frame: name, then data. */
void cp_command(cp_buf *b, const char *name, const void *data, size_t n);
/* ERROR with a reason of n bytes (n <= 255). */
void cp_error(cp_buf *b, const void *reason, size_t n);
/* One metadata property (RFC 23). */
void cp_property(cp_buf *b, const char *name, const void *value, size_t n);

/* The frame at the start of buf[0..len): its length with header, or 0 if
 * it is not complete (a header announcing more than 1 GiB counts as
 * complete nonsense: returns (size_t)-1). */
size_t cp_take_frame(const unsigned char *buf, size_t len, unsigned *flags,
                     const unsigned char **body, size_t *n);

typedef struct cp_peer {
    int server;
    unsigned char pub[32], sec[32];   /* own long-term keys */
    unsigned char peer_pub[32];       /* client: the server's key; server: C, once known */
    unsigned char cn_pub[32], cn_sec[32]; /* own short-term keys */
    unsigned char peer_cn[32];        /* the other side's short-term key */
    unsigned char cookie_key[32];     /* server */
    unsigned char cookie[96];         /* client: from WELCOME */
    uint64_t nonce;                   /* our next short nonce */
    uint64_t peer_nonce;              /* the last one the other side used */
    unsigned char metadata[512];      /* the other side's metadata, once read */
    size_t metadata_len;
} cp_peer;

/* server_key: the server's public key (client), NULL for a server. */
void cp_init(cp_peer *p, int server, const unsigned char pub[32], const unsigned char sec[32],
             const unsigned char *server_key);

/* ---- client ---- */
void cp_hello(cp_peer *c, cp_buf *out);
/* 0, or -1 if the body is not a WELCOME from the server's key. */
int cp_on_welcome(cp_peer *c, const unsigned char *body, size_t n);

/* What an INITIATE says; NULL fields: the honest value. */
typedef struct cp_initiate_opts {
    const unsigned char *claimed_pub;  /* C in the box */
    const unsigned char *vouch_sec;    /* the key that boxes the vouch */
    const unsigned char *vouch_cn;     /* C' inside the vouch */
    const unsigned char *vouch_server; /* S inside the vouch */
    const void *metadata;              /* default: Socket-Type DEALER */
    size_t metadata_len;
    int use_metadata;                  /* take metadata/metadata_len even if empty */
} cp_initiate_opts;
void cp_initiate(cp_peer *c, cp_buf *out, const cp_initiate_opts *o);
int cp_on_ready(cp_peer *c, const unsigned char *body, size_t n);

/* ---- server ---- */
int cp_on_hello(cp_peer *s, const unsigned char *body, size_t n);
void cp_welcome(cp_peer *s, cp_buf *out);
/* 0 (C in peer_pub, metadata kept), or -1: cookie, box or vouch wrong. */
int cp_on_initiate(cp_peer *s, const unsigned char *body, size_t n);
/* READY with the given metadata (NULL: Socket-Type ROUTER). */
void cp_ready(cp_peer *s, cp_buf *out, const void *metadata, size_t n);

/* ---- both, after READY ---- */
/* A MESSAGE of flags byte mflags and n bytes, with short nonce p->nonce++. */
void cp_message(cp_peer *p, cp_buf *out, unsigned mflags, const void *data, size_t n);
/* Open a MESSAGE body: 0 with the flags byte and the plaintext (in plain,
 * room for n bytes), or -1. Does not check the nonce's order. */
int cp_open(cp_peer *p, const unsigned char *body, size_t n, unsigned *mflags,
            unsigned char *plain, size_t *plain_len);

/* Does the metadata name socket type want (exactly)? */
int cp_metadata_has_type(const unsigned char *md, size_t n, const char *want);

#ifdef __cplusplus
}
#endif

#endif /* MPR_TEST_CURVEPEER_H */
