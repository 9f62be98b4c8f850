/*
 * job.c - the job protocol's encoders and parsers (see job.h).
 */
#include <string.h>

#include "base.h"
#include "job.h"

void mpr__job_put_header(unsigned char *p, int kind, uint64_t job)
{
    p[0] = (unsigned char)kind;
    p[1] = p[2] = p[3] = 0;
    mpr__put_u64(p + 4, job);
}

size_t mpr__job_run_size(size_t name_len, size_t size)
{
    size_t fixed = MPR__JOB_HEADER + 1 + name_len;
    if (name_len > MPR__JOB_NAME_MAX || size > (size_t)-1 - fixed)
        return (size_t)-1;
    return fixed + size;
}

void mpr__job_put_run(unsigned char *p, uint64_t job, const char *name, size_t name_len,
                      const void *args, size_t size)
{
    mpr__job_put_header(p, MPR__JOB_RUN, job);
    p[MPR__JOB_HEADER] = (unsigned char)name_len;
    memcpy(p + MPR__JOB_HEADER + 1, name, name_len);
    if (size)
        memcpy(p + MPR__JOB_HEADER + 1 + name_len, args, size);
}

void mpr__job_put_ready(unsigned char *p, uint32_t pid)
{
    mpr__job_put_header(p, MPR__JOB_READY, 0);
    mpr__put_u32(p + MPR__JOB_HEADER, MPR__JOB_VERSION);
    mpr__put_u32(p + MPR__JOB_HEADER + 4, pid);
}

uint64_t mpr__job_cancel_tag(uint64_t base, uint32_t bits)
{
    return MPR__JOB_CANCEL_SET | (uint64_t)bits << MPR__JOB_CANCEL_SHIFT |
           (base & MPR__JOB_CANCEL_BASE_MASK);
}

int mpr__job_cancel_names(uint64_t tag, uint64_t job)
{
    if (!(tag & MPR__JOB_CANCEL_SET))
        return tag == job;
    const uint64_t base = tag & MPR__JOB_CANCEL_BASE_MASK;
    return job >= base && job - base < MPR__JOB_CANCEL_SPAN &&
           (tag >> (MPR__JOB_CANCEL_SHIFT + (job - base)) & 1);
}

int mpr__job_text_ok(const void *p, size_t n)
{
    return n <= MPR__JOB_TEXT_MAX && (n == 0 || !memchr(p, 0, n));
}

/* The header: kind, reserved bytes, job id; NULL or what is wrong. */
static const char *header(const unsigned char *b, size_t n, mpr__job_msg *m)
{
    if (n < MPR__JOB_HEADER)
        return "shorter than a header";
    if (b[1] || b[2] || b[3])
        return "reserved header bytes not 0";
    memset(m, 0, sizeof *m);
    m->kind = b[0];
    m->job = mpr__get_u64(b + 4);
    m->data = b + MPR__JOB_HEADER;
    m->size = n - MPR__JOB_HEADER;
    return NULL;
}

static int refuse(const char **why, const char *what)
{
    if (why)
        *why = what;
    return MPR_EPROTO;
}

int mpr__job_parse_worker(const void *buf, size_t n, mpr__job_msg *m, const char **why)
{
    const unsigned char *b = buf;
    const char *bad = b ? header(b, n, m) : "no bytes";
    if (bad)
        return refuse(why, bad);
    int needs_job = 1;
    switch (m->kind) {
    case MPR__JOB_READY:
        needs_job = 0;
        if (m->size != 8)
            return refuse(why, "READY of the wrong size");
        m->version = mpr__get_u32(m->data);
        m->pid = mpr__get_u32(m->data + 4);
        m->data += 8;
        m->size = 0;
        break;
    case MPR__JOB_INIT_FAILED:
        needs_job = 0;
        if (!mpr__job_text_ok(m->data, m->size))
            return refuse(why, "INIT_FAILED text too long or with a NUL");
        break;
    case MPR__JOB_BYE:
        needs_job = 0;
        if (m->size)
            return refuse(why, "BYE with a payload");
        break;
    case MPR__JOB_STARTED:
    case MPR__JOB_CANCELLED:
        if (m->size)
            return refuse(why, m->kind == MPR__JOB_STARTED ? "STARTED with a payload"
                                                          : "CANCELLED with a payload");
        break;
    case MPR__JOB_FAILED:
        if (!mpr__job_text_ok(m->data, m->size))
            return refuse(why, "FAILED text too long or with a NUL");
        break;
    case MPR__JOB_PROGRESS:
    case MPR__JOB_RESULT:
        break;
    default:
        return refuse(why, "unknown kind of message");
    }
    if (needs_job ? m->job == 0 : m->job != 0)
        return refuse(why, needs_job ? "job id 0" : "job id where none belongs");
    return 0;
}

int mpr__job_parse_control(const void *buf, size_t n, mpr__job_msg *m, const char **why)
{
    const unsigned char *b = buf;
    const char *bad = b ? header(b, n, m) : "no bytes";
    if (bad)
        return refuse(why, bad);
    switch (m->kind) {
    case MPR__JOB_RUN:
        if (m->job == 0)
            return refuse(why, "job id 0");
        if (m->size < 1)
            return refuse(why, "RUN without a name");
        m->name_len = m->data[0];
        if (m->name_len == 0 || m->name_len > m->size - 1)
            return refuse(why, "RUN with a bad name length");
        m->name = (const char *)m->data + 1;
        if (memchr(m->name, 0, m->name_len))
            return refuse(why, "RUN with a NUL in the name");
        m->data += 1 + m->name_len;
        m->size -= 1 + m->name_len;
        return 0;
    case MPR__JOB_EXIT:
        if (m->job != 0)
            return refuse(why, "job id where none belongs");
        if (m->size)
            return refuse(why, "EXIT with a payload");
        return 0;
    default:
        return refuse(why, "unknown kind of message");
    }
}
