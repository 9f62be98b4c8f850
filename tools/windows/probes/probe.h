/* probe.h - what the Windows probes share (tools/windows/probes/probe_*.c): checks
 * that print one line each, Windows error codes with their names, a clock,
 * the user SID of a process, a pipe name, and starting this program again
 * as a child ("probe.exe MODE ...") with its standard input (and, when
 * asked, its standard output) a pipe of the parent.
 *
 * A check states what Windows documents; "ok" means wine 8 did that,
 * "FAIL" that it did something else (the line says what). A "note" is an
 * observation with no expected answer. A probe's exit status is the number
 * of failed checks (at most 100). */
#ifndef MPR_PROBE_H
#define MPR_PROBE_H

#define WIN32_LEAN_AND_MEAN
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10 */
#endif
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>
#include <sddl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int probe_failed;
static int probe_checks;

static inline void probe_vline(const char *tag, const char *fmt, va_list ap)
{
    printf("  %-4s ", tag);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
}

/* check(cond, fmt, ...): an expectation (Windows' documented behaviour). */
static inline int check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    probe_vline(ok ? "ok" : "FAIL", fmt, ap);
    va_end(ap);
    probe_checks++;
    if (!ok)
        probe_failed++;
    return ok;
}

static inline void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    probe_vline("note", fmt, ap);
    va_end(ap);
}

static inline int probe_end(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, probe_checks, probe_failed);
    fflush(stdout);
    return probe_failed > 100 ? 100 : probe_failed;
}

/* The symbolic name of the Windows and Winsock error codes the probes meet. */
static inline const char *err_name(DWORD e)
{
    switch (e) {
    case 0: return "ERROR_SUCCESS";
    case 2: return "ERROR_FILE_NOT_FOUND";
    case 5: return "ERROR_ACCESS_DENIED";
    case 6: return "ERROR_INVALID_HANDLE";
    case 50: return "ERROR_NOT_SUPPORTED";
    case 64: return "ERROR_NETNAME_DELETED";
    case 87: return "ERROR_INVALID_PARAMETER";
    case 109: return "ERROR_BROKEN_PIPE";
    case 120: return "ERROR_CALL_NOT_IMPLEMENTED";
    case 121: return "ERROR_SEM_TIMEOUT";
    case 122: return "ERROR_INSUFFICIENT_BUFFER";
    case 183: return "ERROR_ALREADY_EXISTS";
    case 231: return "ERROR_PIPE_BUSY";
    case 232: return "ERROR_NO_DATA";
    case 233: return "ERROR_PIPE_NOT_CONNECTED";
    case 234: return "ERROR_MORE_DATA";
    case 258: return "WAIT_TIMEOUT";
    case 487: return "ERROR_INVALID_ADDRESS";
    case 535: return "ERROR_PIPE_CONNECTED";
    case 536: return "ERROR_PIPE_LISTENING";
    case 995: return "ERROR_OPERATION_ABORTED";
    case 996: return "ERROR_IO_INCOMPLETE";
    case 997: return "ERROR_IO_PENDING";
    case 998: return "ERROR_NOACCESS";
    case 1168: return "ERROR_NOT_FOUND";
    case 1236: return "ERROR_CONNECTION_ABORTED";
    case 1314: return "ERROR_PRIVILEGE_NOT_HELD";
    case 1450: return "ERROR_NO_SYSTEM_RESOURCES";
    case 1453: return "ERROR_WORKING_SET_QUOTA";
    case 1460: return "ERROR_TIMEOUT";
    case 10004: return "WSAEINTR";
    case 10009: return "WSAEBADF";
    case 10013: return "WSAEACCES";
    case 10014: return "WSAEFAULT";
    case 10022: return "WSAEINVAL";
    case 10035: return "WSAEWOULDBLOCK";
    case 10036: return "WSAEINPROGRESS";
    case 10038: return "WSAENOTSOCK";
    case 10041: return "WSAEPROTOTYPE";
    case 10043: return "WSAEPROTONOSUPPORT";
    case 10044: return "WSAESOCKTNOSUPPORT";
    case 10045: return "WSAEOPNOTSUPP";
    case 10047: return "WSAEAFNOSUPPORT";
    case 10048: return "WSAEADDRINUSE";
    case 10053: return "WSAECONNABORTED";
    case 10054: return "WSAECONNRESET";
    case 10056: return "WSAEISCONN";
    case 10057: return "WSAENOTCONN";
    case 10060: return "WSAETIMEDOUT";
    case 10061: return "WSAECONNREFUSED";
    case 10093: return "WSANOTINITIALISED";
    }
    return "?";
}

/* "5 ERROR_ACCESS_DENIED": a code with its name (one of four buffers). */
static inline const char *err_str(DWORD e)
{
    static char buf[4][64];
    static int n;
    char *b = buf[n++ % 4];
    snprintf(b, sizeof buf[0], "%lu %s", (unsigned long)e, err_name(e));
    return b;
}

static inline const char *last_err(void)
{
    return err_str(GetLastError());
}

static inline double now_ms(void)
{
    static LARGE_INTEGER f;
    LARGE_INTEGER c;
    if (!f.QuadPart)
        QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart * 1000.0 / (double)f.QuadPart;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The TOKEN_USER of a token (malloc'd), or NULL. */
static inline TOKEN_USER *token_user(HANDLE token)
{
    DWORD n = 0;
    GetTokenInformation(token, TokenUser, NULL, 0, &n);
    if (!n)
        return NULL;
    TOKEN_USER *tu = malloc(n);
    if (tu && !GetTokenInformation(token, TokenUser, tu, n, &n)) {
        free(tu);
        return NULL;
    }
    return tu;
}

/* The user of process pid (0: this one), malloc'd; NULL with GetLastError. */
static inline TOKEN_USER *process_user(DWORD pid)
{
    HANDLE p = pid ? OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid) : GetCurrentProcess();
    if (!p)
        return NULL;
    HANDLE t = NULL;
    TOKEN_USER *tu = NULL;
    if (OpenProcessToken(p, TOKEN_QUERY, &t)) {
        tu = token_user(t);
        CloseHandle(t);
    }
    if (pid) {
        DWORD e = GetLastError();
        CloseHandle(p);
        SetLastError(e);
    }
    return tu;
}

static inline const char *sid_str(PSID sid)
{
    static char buf[2][128];
    static int n;
    char *b = buf[n++ % 2];
    char *s = NULL;
    if (sid && ConvertSidToStringSidA(sid, &s)) {
        snprintf(b, sizeof buf[0], "%s", s);
        LocalFree(s);
    } else {
        snprintf(b, sizeof buf[0], "(no SID: %s)", last_err());
    }
    return b;
}

/* n random bytes as hex into out (2n+1 chars); BCryptGenRandom. */
static inline int random_hex(char *out, size_t n)
{
    unsigned char b[32];
    if (n > sizeof b)
        n = sizeof b;
    if (BCryptGenRandom(NULL, b, (ULONG)n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    return 0;
}

/* ---- this program started again as a child --------------------------- */

typedef struct {
    PROCESS_INFORMATION pi;
    HANDLE in;  /* write end of the child's standard input */
    HANDLE out; /* read end of its standard output, when asked for */
} child_t;

/* Whether the last spawn_self used PROC_THREAD_ATTRIBUTE_HANDLE_LIST (the
 * child inherits the three standard handles and nothing else) or fell back
 * to inheriting every inheritable handle. */
static int spawn_used_handle_list;
static DWORD spawn_handle_list_error;

static inline HANDLE inheritable_copy(HANDLE h)
{
    HANDLE c = NULL;
    if (!h || h == INVALID_HANDLE_VALUE)
        return NULL;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &c, 0, TRUE,
                         DUPLICATE_SAME_ACCESS))
        return NULL;
    return c;
}

/* Starts "this.exe MODE ARGS" with standard input a pipe (c->in), standard
 * output a pipe (c->out) if want_out, else ours; standard error ours. */
static inline int spawn_self(child_t *c, const char *mode, const char *args, int want_out)
{
    char exe[MAX_PATH], cmd[2 * MAX_PATH];
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE in_r = NULL, out_w = NULL, err_w = NULL;
    memset(c, 0, sizeof *c);
    GetModuleFileNameA(NULL, exe, sizeof exe);
    snprintf(cmd, sizeof cmd, "\"%s\" %s %s", exe, mode, args ? args : "");
    if (!CreatePipe(&in_r, &c->in, &sa, 0))
        return -1;
    SetHandleInformation(c->in, HANDLE_FLAG_INHERIT, 0);
    if (want_out) {
        if (!CreatePipe(&c->out, &out_w, &sa, 0))
            return -1;
        SetHandleInformation(c->out, HANDLE_FLAG_INHERIT, 0);
    } else {
        out_w = inheritable_copy(GetStdHandle(STD_OUTPUT_HANDLE));
    }
    err_w = inheritable_copy(GetStdHandle(STD_ERROR_HANDLE));

    STARTUPINFOEXA si;
    memset(&si, 0, sizeof si);
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    si.StartupInfo.hStdInput = in_r;
    si.StartupInfo.hStdOutput = out_w;
    si.StartupInfo.hStdError = err_w;
    HANDLE list[3];
    int nlist = 0;
    list[nlist++] = in_r;
    if (out_w)
        list[nlist++] = out_w;
    if (err_w)
        list[nlist++] = err_w;
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(NULL, 1, 0, &size);
    LPPROC_THREAD_ATTRIBUTE_LIST attrs = malloc(size);
    BOOL ok = FALSE;
    spawn_used_handle_list = 0;
    if (attrs && InitializeProcThreadAttributeList(attrs, 1, 0, &size) &&
        UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list,
                                  nlist * sizeof(HANDLE), NULL, NULL)) {
        si.lpAttributeList = attrs;
        ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, EXTENDED_STARTUPINFO_PRESENT, NULL,
                            NULL, &si.StartupInfo, &c->pi);
        spawn_used_handle_list = ok;
        if (!ok)
            spawn_handle_list_error = GetLastError();
        DeleteProcThreadAttributeList(attrs);
    } else {
        spawn_handle_list_error = GetLastError();
    }
    free(attrs);
    if (!ok) {
        si.StartupInfo.cb = sizeof si.StartupInfo;
        ok = CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si.StartupInfo, &c->pi);
    }
    DWORD e = GetLastError();
    CloseHandle(in_r);
    if (out_w)
        CloseHandle(out_w);
    if (err_w)
        CloseHandle(err_w);
    SetLastError(e);
    return ok ? 0 : -1;
}

/* Writes a string to the child's standard input. */
static inline int child_say(child_t *c, const char *s)
{
    DWORD n;
    return WriteFile(c->in, s, (DWORD)strlen(s), &n, NULL) && n == strlen(s) ? 0 : -1;
}

/* Reads one line (up to '\n', dropped) from a pipe handle, unbuffered. */
static inline int read_line(HANDLE h, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        char ch;
        DWORD got;
        if (!ReadFile(h, &ch, 1, &got, NULL) || got != 1)
            break;
        if (ch == '\n') {
            buf[n] = 0;
            return (int)n;
        }
        buf[n++] = ch;
    }
    buf[n] = 0;
    return n ? (int)n : -1;
}

static inline DWORD child_wait(child_t *c, DWORD ms)
{
    DWORD code = 0xFFFFFFFF;
    if (WaitForSingleObject(c->pi.hProcess, ms) == WAIT_OBJECT_0)
        GetExitCodeProcess(c->pi.hProcess, &code);
    return code;
}

static inline void child_close(child_t *c)
{
    if (c->in)
        CloseHandle(c->in);
    if (c->out)
        CloseHandle(c->out);
    if (c->pi.hProcess)
        CloseHandle(c->pi.hProcess);
    if (c->pi.hThread)
        CloseHandle(c->pi.hThread);
    memset(c, 0, sizeof *c);
}

/* In a child: one line of standard input (the parent's child_say). */
static inline int stdin_line(char *buf, size_t size)
{
    return read_line(GetStdHandle(STD_INPUT_HANDLE), buf, size);
}

/* In a child: one line to standard output (a pipe: unbuffered WriteFile). */
static inline void stdout_line(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    DWORD w;
    WriteFile(GetStdHandle(STD_OUTPUT_HANDLE), buf, (DWORD)n, &w, NULL);
}

/* In a child: diagnostics to standard error. */
static inline void child_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "       [child %lu] ", (unsigned long)GetCurrentProcessId());
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
}

#endif
