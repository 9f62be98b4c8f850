/*
 * ring.c - the shared-memory ring (see ring.h and wire.h).
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

#define WAIT_SLICE_NS (50 * 1000000) /* a blocked writer re-checks the socket this often */

static long futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    /* Not FUTEX_PRIVATE: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

/* ---- sender ---- */

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
    *memfd = fd;
    return 0;
}

/* Wake the router if it sleeps on this ring. */
static int wake_reader(mpr__ring *ring, int sock)
{
    if (!atomic_exchange(&ring->hdr->reader_sleeping, 0))
        return 0;
    ssize_t n;
    do
        n = send(sock, "w", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the socket is full of wake-ups the router has yet to read. */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return MPR_EPIPE;
    return 0;
}

/* True if the router closed the connection or the ring. */
static int router_gone(mpr__ring *ring, int sock)
{
    if (atomic_load(&ring->hdr->closed))
        return 1;
    struct pollfd p = {sock, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
        return 1;
    return 0;
}

/* Wait until need bytes are free at head. */
static int wait_room(mpr__ring *ring, int sock, uint64_t need)
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
        if (wake_reader(ring, sock) < 0 || router_gone(ring, sock))
            return MPR_EPIPE;
        struct timespec slice = {0, WAIT_SLICE_NS};
        futex(&h->tail_seq, FUTEX_WAIT, seq, &slice);
    }
}

static int publish(mpr__ring *ring, int sock)
{
    /* seq_cst store then load: the store cannot pass the load (Dekker
     * with mpr__ring_try_sleep). */
    atomic_store(&ring->hdr->head, ring->pos);
    if (atomic_load(&ring->hdr->reader_sleeping))
        return wake_reader(ring, sock);
    return 0;
}

static void put_header(unsigned char *at, uint32_t type, uint32_t len)
{
    mpr__put_u32(at, type);
    mpr__put_u32(at + 4, len);
}

int mpr__ring_put(mpr__ring *ring, int sock, uint32_t type, const void *data, uint32_t len)
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
        int rc = wait_room(ring, sock, pad);
        if (rc < 0)
            return rc;
        put_header(ring->data + at, MPR__RING_PAD, 0);
        ring->pos += pad;
        at = 0;
    }
    int rc = wait_room(ring, sock, size);
    if (rc < 0)
        return rc;
    put_header(ring->data + at, type, len);
    if (len)
        memcpy(ring->data + at + 8, data, len);
    ring->pos += size;
    return publish(ring, sock);
}

/* ---- router ---- */

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

void mpr__ring_unmap(mpr__ring *ring, int closing)
{
    if (!ring->hdr)
        return;
    if (closing) {
        atomic_store(&ring->hdr->closed, 1);
        atomic_fetch_add(&ring->hdr->tail_seq, 1);
        futex(&ring->hdr->tail_seq, FUTEX_WAKE, INT_MAX, NULL);
    }
    munmap(ring->hdr, ring->map_size);
    memset(ring, 0, sizeof *ring);
}
