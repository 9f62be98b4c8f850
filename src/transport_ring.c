/*
 * transport_ring.c - the ring transport: messages through a shared-memory
 * ring (format in wire.h, interface in ring.h) that the sender writes
 * without system calls and the router's monitor drains; the ring is handed
 * over in the local handshake (transport_socket.c), whose socket then
 * carries only wake-up bytes and the end of stream.
 *
 * Memory ordering: the writer publishes head with a seq_cst store after
 * writing a record, then looks at reader_sleeping; the reader
 * sets reader_sleeping (seq_cst), then looks at head again. So either
 * the reader sees the new head, or the writer sees the reader asleep and
 * sends a wake-up byte. The same pattern, mirrored, covers writer_waiting
 * and tail.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <mprouter/common.h>

#include "internal.h"
#include "ring.h"
#include "router_p.h"
#include "sender_p.h"

#define WAIT_SLICE_NS (50 * 1000000) /* a blocked writer re-checks the socket this often */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    /* Not FUTEX_PRIVATE: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

/* ---- writer ---- */

int mpr__ring_create(mpr__ring *ring, uint64_t cap, int *memfd)
{
    memset(ring, 0, sizeof *ring);
    int fd = memfd_create("mprouter-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return mpr__syserr();
    size_t size = MPR__RING_HDR + cap;
    int rc = 0;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        rc = mpr__syserr();
    void *base = rc ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        if (!rc)
            rc = mpr__syserr();
        close(fd);
        return rc;
    }
    ring->hdr = base;
    ring->data = (unsigned char *)base + MPR__RING_HDR;
    ring->cap = cap;
    ring->map_size = size;
    ring->wake_fd = -1;
    *memfd = fd;
    return 0;
}

int mpr__ring_create_private(mpr__ring *ring, uint64_t cap, int wake_eventfd)
{
    memset(ring, 0, sizeof *ring);
    size_t size = MPR__RING_HDR + cap;
    void *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return mpr__syserr();
    ring->hdr = base;
    ring->data = (unsigned char *)base + MPR__RING_HDR;
    ring->cap = cap;
    ring->map_size = size;
    ring->wake_fd = wake_eventfd;
    ring->wake_eventfd = 1;
    atomic_store(&ring->hdr->reader_sleeping, 1);
    return 0;
}

/* Wake the reader if it sleeps on this ring. */
static int wake_reader(mpr__ring *ring)
{
    if (!atomic_exchange(&ring->hdr->reader_sleeping, 0))
        return 0;
    if (ring->wake_eventfd) {
        uint64_t one = 1;
        ssize_t w = write(ring->wake_fd, &one, sizeof one);
        (void)w; /* an eventfd write fails only on counter overflow */
        return 0;
    }
    ssize_t n;
    do
        n = send(ring->wake_fd, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the socket is full of wake-ups the router has yet to read. */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return MPR_EPIPE;
    return 0;
}

/* True if the reader closed the ring (or, local, the connection). */
static int reader_gone(mpr__ring *ring)
{
    if (atomic_load(&ring->hdr->closed))
        return 1;
    if (ring->wake_eventfd)
        return 0;
    struct pollfd p = {ring->wake_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return 1;
    return 0;
}

/* Wait until need bytes are free at head. */
static int wait_room(mpr__ring *ring, uint64_t need)
{
    mpr__ring_hdr *h = ring->hdr;
    for (;;) {
        uint64_t used = ring->pos - atomic_load_explicit(&h->tail, memory_order_acquire);
        if (used > ring->cap)
            return MPR_EPIPE; /* the router wrote nonsense: treat as gone */
        if (ring->cap - used >= need)
            return 0;
        uint32_t seq = atomic_load(&h->tail_seq);
        atomic_store(&h->writer_waiting, 1);
        used = ring->pos - atomic_load(&h->tail);
        if (ring->cap - used >= need)
            continue;
        if (wake_reader(ring) < 0 || reader_gone(ring))
            return MPR_EPIPE;
        struct timespec slice = {0, WAIT_SLICE_NS};
        futex(&h->tail_seq, FUTEX_WAIT, seq, &slice);
    }
}

static int publish(mpr__ring *ring)
{
    /* seq_cst store then load: the store cannot pass the load (Dekker
     * with mpr__ring_try_sleep). */
    atomic_store(&ring->hdr->head, ring->pos);
    if (atomic_load(&ring->hdr->reader_sleeping))
        return wake_reader(ring);
    return 0;
}

static void put_header(unsigned char *at, uint32_t type, uint32_t len)
{
    mpr__put_u32(at, type);
    mpr__put_u32(at + 4, len);
}

int mpr__ring_put(mpr__ring *ring, uint32_t type, const void *data, uint32_t len)
{
    /* The router marks the ring closed when it drops the connection. A
     * router that died without doing so is noticed at the next wake-up or
     * wait for room, like a socket peer. */
    if (atomic_load_explicit(&ring->hdr->closed, memory_order_relaxed))
        return MPR_EPIPE;
    uint64_t size = mpr__ring_rec_size(len);
    uint64_t at = ring->pos & (ring->cap - 1);
    if (ring->cap - at < size) {
        /* No room before the end: pad to it and start over at 0. */
        uint64_t pad = ring->cap - at;
        int rc = wait_room(ring, pad);
        if (rc < 0)
            return rc;
        put_header(ring->data + at, MPR__RING_PAD, 0);
        ring->pos += pad;
        at = 0;
    }
    int rc = wait_room(ring, size);
    if (rc < 0)
        return rc;
    put_header(ring->data + at, type, len);
    if (len)
        memcpy(ring->data + at + 8, data, len);
    ring->pos += size;
    return publish(ring);
}

int mpr__ring_put_message(mpr__ring *ring, const void *data, size_t size)
{
    uint32_t piece = mpr__ring_max_payload(ring);
    if (size <= piece)
        return mpr__ring_put(ring, MPR__RING_MSG, data, (uint32_t)size);
    unsigned char total[8];
    mpr__put_u64(total, (uint64_t)size);
    int rc = mpr__ring_put(ring, MPR__RING_FRAG_START, total, sizeof total);
    const unsigned char *p = data;
    for (size_t done = 0; rc == 0 && done < size; done += piece) {
        size_t n = size - done < piece ? size - done : piece;
        rc = mpr__ring_put(ring, MPR__RING_FRAG_DATA, p + done, (uint32_t)n);
    }
    return rc;
}

/* ---- reader ---- */

int mpr__ring_map(mpr__ring *ring, int memfd)
{
    memset(ring, 0, sizeof *ring);
    struct stat st;
    if (fstat(memfd, &st) < 0 || st.st_size < (off_t)(MPR__RING_HDR + MPR__RING_MIN) ||
        st.st_size > (off_t)(MPR__RING_HDR + MPR__RING_MAX))
        return MPR_EPROTO;
    uint64_t cap = (uint64_t)st.st_size - MPR__RING_HDR;
    if (cap & (cap - 1))
        return MPR_EPROTO;
    /* Without these seals the sender could shrink the file and make the
     * router fault (SIGBUS) on the mapping. */
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return MPR_EPROTO;
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (base == MAP_FAILED)
        return MPR_EPROTO;
    ring->hdr = base;
    ring->data = (unsigned char *)base + MPR__RING_HDR;
    ring->cap = cap;
    ring->map_size = (size_t)st.st_size;
    ring->pos = atomic_load(&ring->hdr->tail);
    if (ring->pos != 0 || atomic_load(&ring->hdr->head) != 0) {
        munmap(base, ring->map_size);
        memset(ring, 0, sizeof *ring);
        return MPR_EPROTO;
    }
    atomic_store(&ring->hdr->reader_sleeping, 1);
    return 0;
}

int mpr__ring_try_sleep(mpr__ring *ring)
{
    atomic_store(&ring->hdr->reader_sleeping, 1);
    if (atomic_load(&ring->hdr->head) == ring->pos)
        return 1;
    atomic_store(&ring->hdr->reader_sleeping, 0);
    return 0;
}

void mpr__ring_consumed(mpr__ring *ring)
{
    mpr__ring_hdr *h = ring->hdr;
    atomic_store(&h->tail, ring->pos);
    if (atomic_load(&h->writer_waiting)) {
        atomic_store(&h->writer_waiting, 0);
        atomic_fetch_add(&h->tail_seq, 1);
        futex(&h->tail_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
}

void mpr__ring_close(mpr__ring *ring)
{
    atomic_store(&ring->hdr->closed, 1);
    atomic_fetch_add(&ring->hdr->tail_seq, 1);
    futex(&ring->hdr->tail_seq, FUTEX_WAKE, INT_MAX, NULL);
}

void mpr__ring_unmap(mpr__ring *ring, int closing)
{
    if (!ring->hdr)
        return;
    if (closing)
        mpr__ring_close(ring);
    munmap(ring->hdr, ring->map_size);
    memset(ring, 0, sizeof *ring);
}

/* ---- the router's end: a ring connection ---- */

/* Drain about budget bytes of the ring (it stops after the record that
 * reaches it). Returns 1 if data is left, 0 if the ring is empty (and the
 * sender will wake us), or a negative error. */
static int ring_drain(mpr__conn *c, uint64_t budget)
{
    mpr__local_conn *lc = (mpr__local_conn *)c;
    mpr__ring *ring = &lc->ring;
    uint64_t start = ring->pos;
    int rc;
    for (;;) {
        uint64_t head = atomic_load_explicit(&ring->hdr->head, memory_order_acquire);
        mpr__ring_rec rec;
        rc = mpr__ring_next(ring->data, ring->cap, ring->pos, head, &rec);
        if (rc == 0) {
            if (mpr__ring_try_sleep(ring))
                break;
            continue;
        }
        if (rc < 0)
            break;
        rc = mpr__conn_record(c, &rec);
        if (rc < 0)
            break;
        ring->pos += rec.size;
        if (ring->pos - start >= budget) {
            rc = 1;
            break;
        }
    }
    if (ring->pos != start)
        mpr__ring_consumed(ring);
    if (c->sync_owed && (int64_t)(ring->pos - lc->sync_head) >= 0)
        mpr__conn_synced(c);
    return rc;
}

static int ring_sync_mark(mpr__conn *c)
{
    mpr__local_conn *lc = (mpr__local_conn *)c;
    lc->sync_head = atomic_load(&lc->ring.hdr->head);
    return lc->sync_head != lc->ring.pos;
}

/* At the end of stream, everything the sender published before it went is
 * still in the ring: deliver it. At most one ring's worth: whoever else
 * still maps the ring cannot keep us here. */
static int ring_final_drain(mpr__conn *c)
{
    mpr__local_conn *lc = (mpr__local_conn *)c;
    int rc = ring_drain(c, lc->ring.cap);
    return rc < 0 ? rc : 0;
}

static void ring_conn_close(mpr__conn *c)
{
    mpr__ring_unmap(&((mpr__local_conn *)c)->ring, 1); /* also wakes a sender waiting for room */
    mpr__local_close(c);
}

const mpr__conn_ops mpr__ring_conn_ops = {
    .drain = ring_drain,
    .sync_mark = ring_sync_mark,
    .close = ring_conn_close,
    .final_drain = ring_final_drain,
};

/* ---- the sender's end ---- */

static int ring_send(mpr_sender *s, const void *data, size_t size)
{
    return mpr__ring_put_message(&s->ring, data, size);
}

static int ring_stop(mpr_sender *s)
{
    /* MPR_EPIPE if the router has gone: what it had not read is lost. */
    return mpr__ring_put(&s->ring, MPR__RING_BYE, NULL, 0);
}

static void ring_sender_close(mpr_sender *s)
{
    mpr__ring_unmap(&s->ring, 0);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

const mpr__sender_ops mpr__ring_sender_ops = {ring_send, ring_stop, ring_sender_close};
