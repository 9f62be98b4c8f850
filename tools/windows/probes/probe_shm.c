/* probe_shm.c - (d) a shared memory section made by the client and handed
 * to the server, as a ring transport for large messages would do it.
 *
 * The client (this program started again) makes an unnamed section of
 * 100000 bytes (CreateFileMapping(INVALID_HANDLE_VALUE, PAGE_READWRITE)),
 * maps it and fills it with a pattern. Two ways to the server:
 *  push: the client opens the server (its pid from standard input) with
 *        PROCESS_DUP_HANDLE and duplicates the section into it; also tried
 *        with PROCESS_QUERY_LIMITED_INFORMATION only (must be refused), and
 *        with the access of the copy cut to FILE_MAP_READ (the server's
 *        MapViewOfFile(FILE_MAP_WRITE) must then be refused);
 *  pull: the server opens the client with PROCESS_DUP_HANDLE and
 *        duplicates the client's handle out of it.
 * The server maps it and learns its size (VirtualQuery on the view,
 * NtQuerySection(SectionBasicInformation) through ntdll). Then the client
 * tries to extend (200000) and to shrink (50000) the section with
 * NtExtendSection after the server mapped it, unmaps, closes and exits: the
 * server's view must stay as it was. The server reads in the slack after
 * 100000 (up to the page end) and past the end of its view (caught with a
 * vectored exception handler). Last, a section made with SEC_RESERVE (no
 * pages committed): what NtQuerySection says of it and what a read does
 * (a client could hand the server such a section to make it fault).
 *
 * What wine 8.0 answered: 21 checks, 1 failed.
 *  push with PROCESS_QUERY_LIMITED_INFORMATION only: ERROR_ACCESS_DENIED
 *    (5); with PROCESS_DUP_HANDLE: works; pull (the server opens the
 *    client with PROCESS_DUP_HANDLE): works;
 *  the server maps it and reads the client's bytes; VirtualQuery:
 *    RegionSize 102400 (the size rounded up to the 4 KiB page), MEM_MAPPED;
 *    NtQuerySection: MaximumSize 102400 (not 100000), SEC_COMMIT;
 *  a copy with FILE_MAP_READ only: MapViewOfFile(FILE_MAP_WRITE) refused
 *    with ERROR_ACCESS_DENIED, read-only mapping works, VirtualProtect to
 *    read-write refused (ERROR_INVALID_PARAMETER, 87);
 *  bytes 100000..102399 read as 0; a read at the view's end (102400):
 *    access violation 0xC0000005;
 *  FAIL: wine 8's ntdll does not export NtExtendSection, so the client
 *    could not try to extend or shrink; the server's view and
 *    NtQuerySection stayed at 102400;
 *  a SEC_RESERVE section: VirtualQuery says MEM_RESERVE, NtQuerySection
 *    says SEC_RESERVE, but reading it gives 0 and no exception (on Windows
 *    a read of a reserved page is an access violation): check
 *    SEC_COMMIT / MEM_COMMIT, do not count on the fault;
 *  the client unmaps, closes and exits: the server's view is unchanged
 *    and writable.
 */
#include "probe.h"

#define SIZE 100000

typedef struct {
    PVOID BaseAddress;
    ULONG AllocationAttributes;
    LARGE_INTEGER MaximumSize;
} section_basic_information;
typedef LONG(NTAPI *NtQuerySection_t)(HANDLE, int, PVOID, SIZE_T, PSIZE_T);
typedef LONG(NTAPI *NtExtendSection_t)(HANDLE, PLARGE_INTEGER);
static NtQuerySection_t pNtQuerySection;
static NtExtendSection_t pNtExtendSection;

static void load_ntdll(void)
{
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    pNtQuerySection = (NtQuerySection_t)(void (*)(void))GetProcAddress(nt, "NtQuerySection");
    pNtExtendSection = (NtExtendSection_t)(void (*)(void))GetProcAddress(nt, "NtExtendSection");
}

/* ---- a read that may fault ---------------------------------------------- */
static CONTEXT resume_ctx;
static volatile LONG armed, faulted;
static volatile DWORD fault_code;
static volatile ULONG_PTR fault_addr;

static LONG CALLBACK on_fault(PEXCEPTION_POINTERS e)
{
    if (!armed)
        return EXCEPTION_CONTINUE_SEARCH;
    armed = 0;
    faulted = 1;
    fault_code = e->ExceptionRecord->ExceptionCode;
    fault_addr = e->ExceptionRecord->NumberParameters >= 2 ? e->ExceptionRecord->ExceptionInformation[1] : 0;
    *e->ContextRecord = resume_ctx; /* back to just after RtlCaptureContext */
    return EXCEPTION_CONTINUE_EXECUTION;
}

/* Reads *p: 0 and the byte, or the exception code. */
static __attribute__((noinline)) DWORD try_read(const volatile unsigned char *p, unsigned char *out)
{
    faulted = 0;
    RtlCaptureContext(&resume_ctx);
    if (!faulted) {
        armed = 1;
        *out = *p;
        armed = 0;
        return 0;
    }
    return fault_code;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + 3);
}

static const char *ntstatus(LONG s)
{
    static char b[2][32];
    static int n;
    char *p = b[n++ % 2];
    snprintf(p, sizeof b[0], "0x%08lx", (unsigned long)s);
    return p;
}

/* ---- the client ------------------------------------------------------------ */
static int client_main(void)
{
    char line[128];
    unsigned long spid = 0;
    if (stdin_line(line, sizeof line) < 0 || sscanf(line, "%lu", &spid) != 1)
        return 90;
    HANDLE sec = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, SIZE, NULL);
    if (!sec) {
        stdout_line("error CreateFileMapping %lu", GetLastError());
        return 91;
    }
    unsigned char *v = MapViewOfFile(sec, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    if (!v) {
        stdout_line("error MapViewOfFile %lu", GetLastError());
        return 92;
    }
    for (size_t i = 0; i < SIZE; i++)
        v[i] = pattern(i);

    /* push, with too little access first */
    HANDLE weak = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, spid);
    HANDLE remote = NULL;
    BOOL ok = weak && DuplicateHandle(GetCurrentProcess(), sec, weak, &remote, 0, FALSE, DUPLICATE_SAME_ACCESS);
    stdout_line("push-weak %d %lu %llu", ok, ok ? 0 : GetLastError(), (unsigned long long)(ULONG_PTR)remote);
    if (weak)
        CloseHandle(weak);
    HANDLE srv = OpenProcess(PROCESS_DUP_HANDLE, FALSE, spid);
    if (!srv) {
        stdout_line("push 0 %lu 0", GetLastError());
    } else {
        ok = DuplicateHandle(GetCurrentProcess(), sec, srv, &remote, 0, FALSE, DUPLICATE_SAME_ACCESS);
        stdout_line("push %d %lu %llu", ok, ok ? 0 : GetLastError(), (unsigned long long)(ULONG_PTR)remote);
        HANDLE ro = NULL;
        ok = DuplicateHandle(GetCurrentProcess(), sec, srv, &ro, FILE_MAP_READ | SECTION_QUERY, FALSE, 0);
        stdout_line("push-ro %d %lu %llu", ok, ok ? 0 : GetLastError(), (unsigned long long)(ULONG_PTR)ro);
    }
    stdout_line("pull %llu %lu", (unsigned long long)(ULONG_PTR)sec, (unsigned long)GetCurrentProcessId());

    /* the server's commands */
    while (stdin_line(line, sizeof line) >= 0) {
        if (!strcmp(line, "extend") || !strcmp(line, "shrink")) {
            LARGE_INTEGER sz;
            sz.QuadPart = !strcmp(line, "extend") ? 200000 : 50000;
            LONG st = pNtExtendSection ? pNtExtendSection(sec, &sz) : -1;
            stdout_line("%s 0x%08lx %lld", line, (unsigned long)st, (long long)sz.QuadPart);
        } else if (!strcmp(line, "reserve")) {
            HANDLE r = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE | SEC_RESERVE, 0, SIZE, NULL);
            HANDLE rr = NULL;
            ok = r && srv && DuplicateHandle(GetCurrentProcess(), r, srv, &rr, 0, FALSE, DUPLICATE_SAME_ACCESS);
            stdout_line("reserve %d %lu %llu", ok, ok ? 0 : GetLastError(), (unsigned long long)(ULONG_PTR)rr);
        } else if (!strcmp(line, "quit")) {
            UnmapViewOfFile(v);
            CloseHandle(sec);
            stdout_line("bye");
            return 0;
        }
    }
    return 0;
}

/* ---- the server ------------------------------------------------------------ */
static int expect(child_t *c, const char *word, int *ok, DWORD *err, unsigned long long *value)
{
    char line[256], w[32];
    if (read_line(c->out, line, sizeof line) < 0)
        return -1;
    int o = 0;
    unsigned long e = 0;
    unsigned long long v = 0;
    if (sscanf(line, "%31s %d %lu %llu", w, &o, &e, &v) < 3 || strcmp(w, word) != 0) {
        note("unexpected line from the client: %s", line);
        return -1;
    }
    *ok = o;
    *err = e;
    *value = v;
    return 0;
}

static void describe_view(const char *what, void *view, HANDLE sec)
{
    MEMORY_BASIC_INFORMATION mbi;
    if (VirtualQuery(view, &mbi, sizeof mbi))
        note("%s: VirtualQuery: RegionSize %llu, State 0x%lx, Protect 0x%lx, Type 0x%lx%s", what,
             (unsigned long long)mbi.RegionSize, mbi.State, mbi.Protect, mbi.Type,
             mbi.Type == MEM_MAPPED ? " (MEM_MAPPED)" : "");
    section_basic_information sbi;
    memset(&sbi, 0, sizeof sbi);
    SIZE_T ret = 0;
    LONG st = pNtQuerySection ? pNtQuerySection(sec, 0 /* SectionBasicInformation */, &sbi, sizeof sbi, &ret) : -1;
    note("%s: NtQuerySection: status %s, MaximumSize %lld, AllocationAttributes 0x%lx%s%s", what, ntstatus(st),
         (long long)sbi.MaximumSize.QuadPart, sbi.AllocationAttributes,
         sbi.AllocationAttributes & SEC_COMMIT ? " (SEC_COMMIT)" : "",
         sbi.AllocationAttributes & SEC_RESERVE ? " (SEC_RESERVE)" : "");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    load_ntdll();
    if (argc > 1 && !strcmp(argv[1], "client"))
        return client_main();
    printf("probe_shm: (d) an unnamed section from the client, mapped by the server\n");
    check(pNtQuerySection != NULL, "ntdll exports NtQuerySection");
    check(pNtExtendSection != NULL, "ntdll exports NtExtendSection");
    AddVectoredExceptionHandler(1, on_fault);

    child_t c;
    if (!check(spawn_self(&c, "client", NULL, 1) == 0, "client started"))
        return probe_end("probe_shm");
    char msg[64];
    snprintf(msg, sizeof msg, "%lu\n", (unsigned long)GetCurrentProcessId());
    child_say(&c, msg);

    int ok;
    DWORD err;
    unsigned long long val;
    HANDLE pushed = NULL, ro = NULL, pulled = NULL;
    if (expect(&c, "push-weak", &ok, &err, &val) == 0)
        check(!ok && err == ERROR_ACCESS_DENIED,
              "push with OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION) only is refused: %s",
              ok ? "it worked" : err_str(err));
    if (expect(&c, "push", &ok, &err, &val) == 0) {
        check(ok, "push: client OpenProcess(server, PROCESS_DUP_HANDLE) + DuplicateHandle into it%s%s",
              ok ? "" : ": ", ok ? "" : err_str(err));
        pushed = (HANDLE)(ULONG_PTR)val;
    }
    if (expect(&c, "push-ro", &ok, &err, &val) == 0) {
        check(ok, "push of a FILE_MAP_READ|SECTION_QUERY copy%s%s", ok ? "" : ": ", ok ? "" : err_str(err));
        ro = (HANDLE)(ULONG_PTR)val;
    }
    char line[256];
    unsigned long long cval = 0;
    unsigned long cpid = 0;
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "pull %llu %lu", &cval, &cpid) == 2) {
        HANDLE cl = OpenProcess(PROCESS_DUP_HANDLE, FALSE, cpid);
        BOOL pok = cl && DuplicateHandle(cl, (HANDLE)(ULONG_PTR)cval, GetCurrentProcess(), &pulled, 0, FALSE,
                                         DUPLICATE_SAME_ACCESS);
        check(pok, "pull: server OpenProcess(client, PROCESS_DUP_HANDLE) + DuplicateHandle out of it%s%s",
              pok ? "" : ": ", pok ? "" : last_err());
        if (cl)
            CloseHandle(cl);
    }

    /* The pushed handle: map, size, content. */
    unsigned char *v = pushed ? MapViewOfFile(pushed, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0) : NULL;
    if (!check(v != NULL, "server maps the pushed section (FILE_MAP_READ|FILE_MAP_WRITE)%s%s", v ? "" : ": ",
               v ? "" : last_err())) {
        TerminateProcess(c.pi.hProcess, 1);
        return probe_end("probe_shm");
    }
    describe_view("pushed section", v, pushed);
    MEMORY_BASIC_INFORMATION mbi;
    VirtualQuery(v, &mbi, sizeof mbi);
    SIZE_T region = mbi.RegionSize;
    int same = 1;
    for (size_t i = 0; i < SIZE; i++)
        if (v[i] != pattern(i))
            same = 0;
    check(same, "the server sees the client's 100000 bytes");
    unsigned char *pv = pulled ? MapViewOfFile(pulled, FILE_MAP_READ, 0, 0, 0) : NULL;
    check(pv && pv[SIZE - 1] == pattern(SIZE - 1), "the pulled handle maps the same section");
    if (ro) {
        void *w = MapViewOfFile(ro, FILE_MAP_WRITE, 0, 0, 0);
        DWORD we = w ? 0 : GetLastError();
        check(!w && we == ERROR_ACCESS_DENIED, "MapViewOfFile(FILE_MAP_WRITE) of the FILE_MAP_READ copy is refused: %s",
              w ? "it was mapped" : err_str(we));
        if (w)
            UnmapViewOfFile(w);
        void *r = MapViewOfFile(ro, FILE_MAP_READ, 0, 0, 0);
        check(r != NULL, "MapViewOfFile(FILE_MAP_READ) of it works");
        if (r) {
            unsigned char b;
            DWORD ex = try_read((unsigned char *)r + 5, &b);
            check(ex == 0 && b == pattern(5), "reading that read-only view works");
            DWORD old;
            BOOL vp = VirtualProtect(r, 4096, PAGE_READWRITE, &old);
            DWORD vpe = vp ? 0 : GetLastError();
            check(!vp, "VirtualProtect(PAGE_READWRITE) on the read-only view is refused: %s",
                  vp ? "it was allowed" : err_str(vpe));
            UnmapViewOfFile(r);
        }
    }

    /* The slack after the size, and past the view. */
    unsigned char b = 0xEE;
    DWORD ex = try_read(v + SIZE, &b);
    check(ex == 0 && b == 0, "reading at offset 100000 (slack up to the page end): %s, byte %u",
          ex ? "fault" : "no fault", b);
    ex = try_read(v + region, &b);
    check(ex == EXCEPTION_ACCESS_VIOLATION, "reading at the view's end (offset %llu): exception 0x%08lx at %p",
          (unsigned long long)region, ex, (void *)fault_addr);

    /* The client extends and shrinks after we mapped. */
    long long sz;
    unsigned long st;
    child_say(&c, "extend\n");
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "extend 0x%lx %lld", &st, &sz) == 2) {
        if (!pNtExtendSection)
            note("client cannot try NtExtendSection(200000): not exported");
        else
            note("client NtExtendSection(200000) after the server mapped: status 0x%08lx, size now %lld", st, sz);
        describe_view("after the extend step", v, pushed);
    }
    child_say(&c, "shrink\n");
    if (read_line(c.out, line, sizeof line) >= 0 && sscanf(line, "shrink 0x%lx %lld", &st, &sz) == 2) {
        if (pNtExtendSection)
            note("client NtExtendSection(50000): status 0x%08lx, size now %lld", st, sz);
        describe_view("after the shrink step", v, pushed);
    }
    ex = try_read(v + SIZE - 1, &b);
    check(ex == 0 && b == pattern(SIZE - 1), "the server's view still reads its last byte");

    /* A SEC_RESERVE section. */
    child_say(&c, "reserve\n");
    if (expect(&c, "reserve", &ok, &err, &val) == 0 && ok) {
        HANDLE rs = (HANDLE)(ULONG_PTR)val;
        unsigned char *rv = MapViewOfFile(rs, FILE_MAP_READ, 0, 0, 0);
        if (check(rv != NULL, "server maps a SEC_RESERVE section from the client")) {
            describe_view("SEC_RESERVE section", rv, rs);
            ex = try_read(rv, &b);
            note("reading its first byte: %s 0x%08lx", ex ? "exception" : "no exception, byte", ex ? ex : b);
            UnmapViewOfFile(rv);
        }
        CloseHandle(rs);
    }

    /* The client unmaps, closes, exits. */
    child_say(&c, "quit\n");
    read_line(c.out, line, sizeof line);
    DWORD code = child_wait(&c, 5000);
    check(code == 0, "client exited (%lu)", code);
    same = 1;
    for (size_t i = 0; i < SIZE; i++)
        if (v[i] != pattern(i))
            same = 0;
    check(same, "after the client closed its handle and exited, the server's view is unchanged");
    v[0] = 1;
    check(v[0] == 1, "and writable");
    child_close(&c);
    UnmapViewOfFile(v);
    if (pv)
        UnmapViewOfFile(pv);
    CloseHandle(pushed);
    if (pulled)
        CloseHandle(pulled);
    if (ro)
        CloseHandle(ro);
    return probe_end("probe_shm");
}
