/*
 * workproc.h - worker processes for the executor (process_posix.c): start
 * one (fork running a function, or fork + exec) with the sender string
 * on its standard input; the supervisor thread that keeps the executor's
 * timer, kills and reaps its processes (waitpid on its own pids only);
 * the worker side's standard input (the sender string, the watch for its
 * end). The only file of the executor that includes an operating system
 * header (POSIX; built where fork exists). Never installed.
 */
#ifndef MPR_WORKPROC_H
#define MPR_WORKPROC_H

#include <stddef.h>
#include <stdint.h>

#include "platform.h"

/* ---- starting a process ---- */

typedef struct mpr__spawn {
    /* exec: the program's path (as found by mpr__proc_find) and argv
     * (NULL-terminated). NULL path: fork mode. */
    const char *path;
    char *const *argv;
    /* fork mode: the function the child runs (its return value is the
     * exit status). */
    int (*fn)(void *arg);
    void *arg;
} mpr__spawn;

/* Start a process whose standard input is a new pipe holding input
 * (input_len bytes) then nothing: the write end goes to *in_fd
 * (close-on-exec), the only one. Linux: the child gets
 * PR_SET_PDEATHSIG(SIGKILL) (and exits if its parent is already gone).
 * exec: nothing but async-signal-safe calls in the child before exec; an
 * exec that fails is seen here (the child reports errno through a
 * close-on-exec pipe and exits 127): MPR_EIO, and why says "cannot run
 * PATH: REASON" (the child is reaped). fork mode: the child resets its
 * signal mask and handlers, closes every descriptor above 2 and runs fn.
 * Returns 0 with *pid and *in_fd, or an error with why (why_size bytes,
 * NUL-terminated). MUST be called by the thread meant to outlive the
 * child (PR_SET_PDEATHSIG follows the forking thread). */
int mpr__proc_spawn(const mpr__spawn *s, const char *input, size_t input_len, int64_t *pid,
                    mpr__fd *in_fd, char *why, size_t why_size);

/* Find a program: a name with '/' as it is, else the first executable
 * PATH entry. 0 with *path (malloc'd), MPR_ENOENT, or MPR_ENOMEM. */
int mpr__proc_find(const char *name, char **path);

/* "killed by signal 9 (SIGKILL)", "exited with status 3", or "ended
 * (status unknown)" for status < 0. */
void mpr__proc_describe(int status, char *buf, size_t size);
/* The exit status of a process that exited normally, else -1. */
int mpr__proc_exit_code(int status);
/* The process's own pid. */
int64_t mpr__proc_self(void);

/* ---- the supervisor thread ---- */

typedef struct mpr__sup mpr__sup;

/* A process the supervisor reaped: its pid and wait status (-1: it was
 * reaped by someone else, status unknown). */
typedef struct mpr__reaped {
    int64_t pid;
    int status;
} mpr__reaped;

/* Start the supervisor thread. notify(arg) runs on that thread whenever
 * something happened (a process reaped, the alarm due): the caller wakes
 * its main thread then, which calls mpr__sup_take. 0 or an error. */
int mpr__sup_new(mpr__sup **out, void (*notify)(void *arg), void *arg);
/* Stop and join the thread. kill: every process not reaped yet is killed
 * (SIGKILL) and reaped (waiting for that) first. Closes every input
 * descriptor it holds. NULL is a no-op. */
void mpr__sup_free(mpr__sup *s, int kill);
/* Watch a process started by mpr__proc_spawn: it is reaped when it ends
 * (its input pipe breaks, or a sweep finds it); the supervisor takes
 * in_fd (closed once the process is reaped). 0 or MPR_ENOMEM (then in_fd
 * is closed, the process killed and reaped). */
int mpr__sup_watch(mpr__sup *s, int64_t pid, mpr__fd in_fd);
/* Kill (SIGKILL) a watched process that has not been reaped yet (a no-op
 * otherwise: a pid is never signalled after it was reaped). */
void mpr__sup_kill(mpr__sup *s, int64_t pid);
/* The process is expected to end soon: look for it often. */
void mpr__sup_expect(mpr__sup *s, int64_t pid);
/* Call notify once at when_ns (mpr__now_ns clock) or soon after; 0: no
 * alarm. Replaces the previous alarm. */
void mpr__sup_alarm(mpr__sup *s, int64_t when_ns);
/* Take up to max processes reaped since the last call; returns how many. */
size_t mpr__sup_take(mpr__sup *s, mpr__reaped *out, size_t max);

/* ---- the worker's standard input ---- */

/* Read the first line of standard input (without the newline) into buf
 * (size bytes, NUL-terminated). 0; MPR_EPIPE at the end of input before
 * a newline; MPR_EMSGSIZE if the line is longer; or an error. Reads byte
 * by byte: nothing after the line is consumed. */
int mpr__proc_read_line(char *buf, size_t size);
/* Start a thread that reads standard input until its end and then ends
 * the process at once with _exit(status). 0 or an error. */
int mpr__proc_exit_at_eof(int status);
/* _exit(status). */
void mpr__proc_exit(int status);

#endif /* MPR_WORKPROC_H */
