/* probe_pipe.c - (a) a named pipe server as the Windows transport wants it,
 * (b) the peer checks on both ends.
 *
 * (a) \\.\pipe\mprouter-<32 hex> with FILE_FLAG_FIRST_PIPE_INSTANCE,
 *     PIPE_REJECT_REMOTE_CLIENTS, FILE_FLAG_OVERLAPPED, byte mode, and a
 *     security descriptor whose DACL has one ACE: GENERIC_ALL for the user
 *     SID of this process's token; a second CreateNamedPipe with
 *     FILE_FLAG_FIRST_PIPE_INSTANCE on that name must fail; three clients,
 *     each this program started again with CreateProcess (STARTUPINFOEX with
 *     PROC_THREAD_ATTRIBUTE_HANDLE_LIST), the pipe name and our pid written
 *     into the client's standard input (a pipe); all three start at once, so
 *     two find no free instance (ERROR_PIPE_BUSY) and WaitNamedPipe; the
 *     next instance is made after each ConnectNamedPipe; clients open with
 *     SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION. A pipe whose DACL is
 *     empty must refuse a client (ERROR_ACCESS_DENIED).
 * (b) GetNamedPipeClientProcessId / GetNamedPipeServerProcessId on both
 *     ends; OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION) of the peer pid,
 *     OpenProcessToken, TokenUser, EqualSid with ours, both ways; and
 *     ImpersonateNamedPipeClient + OpenThreadToken as another way to learn
 *     the client's user.
 *
 * What wine 8.0 (Debian 8.0~repack-4) answered: 48 checks, 2 failed.
 *  works: the pipe is created with all those flags; GetSecurityInfo reads
 *    back the DACL as given (D:(A;;GA;;;S-1-5-21-0-0-0-1000)); three
 *    clients in other processes (CreateProcess with the handle list
 *    works), two of them got ERROR_PIPE_BUSY (231) and WaitNamedPipe
 *    returned TRUE; the next instance after each connection; the client's
 *    SECURITY_SQOS_PRESENT|SECURITY_IDENTIFICATION open; both pid
 *    functions on both ends give the right pids; OpenProcess + token user
 *    + EqualSid both ways; ImpersonateNamedPipeClient + OpenThreadToken.
 *  FAIL: a second CreateNamedPipe with FILE_FLAG_FIRST_PIPE_INSTANCE on a
 *    name that exists succeeds (Windows: ERROR_ACCESS_DENIED), so wine
 *    gives no protection against a pipe name taken first by another
 *    process;
 *  FAIL: the empty DACL is not enforced: a client opens that pipe
 *    (Windows: ERROR_ACCESS_DENIED); wine does not check a pipe's DACL on
 *    open, so the user-only DACL cannot be seen to work here.
 *  notes: every wine process has the same user, S-1-5-21-0-0-0-1000: the
 *    "same user" check can only be seen to succeed; GetNamedPipeInfo gives
 *    4294967295 as the maximum of instances (PIPE_UNLIMITED_INSTANCES is
 *    255); GetNamedPipeClientProcessId on a server end nobody connected to
 *    returns TRUE with pid 1431655765 (0x55555555, uninitialised): call it
 *    only after the connection.
 */
#include "probe.h"
#include <aclapi.h>

#define NCLIENTS 3
#define PIPE_BUF_SIZE 65536

/* A security descriptor whose DACL grants GENERIC_ALL to sid only (or,
 * with sid NULL, an empty DACL: nobody). Static storage, one at a time. */
static SECURITY_ATTRIBUTES *user_only_sa(PSID sid)
{
    static SECURITY_DESCRIPTOR sd;
    static SECURITY_ATTRIBUTES sa;
    static char aclbuf[256];
    ACL *acl = (ACL *)aclbuf;
    if (!InitializeAcl(acl, sizeof aclbuf, ACL_REVISION))
        return NULL;
    if (sid && !AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, sid))
        return NULL;
    if (!InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION) ||
        !SetSecurityDescriptorDacl(&sd, TRUE, acl, FALSE))
        return NULL;
    sa.nLength = sizeof sa;
    sa.lpSecurityDescriptor = &sd;
    sa.bInheritHandle = FALSE;
    return &sa;
}

static HANDLE make_instance(const char *name, SECURITY_ATTRIBUTES *sa, int first)
{
    return CreateNamedPipeA(name,
                            PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                                (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                            PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                                PIPE_REJECT_REMOTE_CLIENTS,
                            PIPE_UNLIMITED_INSTANCES, PIPE_BUF_SIZE, PIPE_BUF_SIZE, 0, sa);
}

/* Overlapped ConnectNamedPipe, waited for up to ms; 0 when connected. */
static int connect_wait(HANDLE h, DWORD ms, DWORD *err)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    int rc = -1;
    *err = 0;
    if (ConnectNamedPipe(h, &ov)) {
        rc = 0; /* overlapped: documented to return FALSE; accept */
    } else {
        DWORD e = GetLastError();
        if (e == ERROR_PIPE_CONNECTED) {
            rc = 0;
        } else if (e == ERROR_IO_PENDING) {
            DWORD n;
            if (WaitForSingleObject(ov.hEvent, ms) == WAIT_OBJECT_0 &&
                GetOverlappedResult(h, &ov, &n, FALSE))
                rc = 0;
            else {
                *err = GetLastError();
                CancelIoEx(h, &ov);
                GetOverlappedResult(h, &ov, &n, TRUE);
            }
        } else {
            *err = e;
        }
    }
    CloseHandle(ov.hEvent);
    return rc;
}

/* Overlapped reads until '\n' (dropped) or ms; the length, or -1. */
static int ov_read_line(HANDLE h, char *buf, size_t size, DWORD ms)
{
    size_t n = 0;
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    double end = now_ms() + ms;
    while (n + 1 < size) {
        DWORD got = 0;
        ResetEvent(ov.hEvent);
        if (!ReadFile(h, buf + n, 1, &got, &ov)) {
            if (GetLastError() != ERROR_IO_PENDING)
                break;
            double left = end - now_ms();
            if (left < 0 || WaitForSingleObject(ov.hEvent, (DWORD)left) != WAIT_OBJECT_0) {
                CancelIoEx(h, &ov);
                GetOverlappedResult(h, &ov, &got, TRUE);
                break;
            }
            if (!GetOverlappedResult(h, &ov, &got, FALSE))
                break;
        }
        if (got != 1)
            break;
        if (buf[n] == '\n') {
            buf[n] = 0;
            CloseHandle(ov.hEvent);
            return (int)n;
        }
        n++;
    }
    buf[n] = 0;
    CloseHandle(ov.hEvent);
    return -1;
}

static int ov_write(HANDLE h, const char *s)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
    DWORD n = 0;
    BOOL ok = WriteFile(h, s, (DWORD)strlen(s), &n, &ov);
    if (!ok && GetLastError() == ERROR_IO_PENDING)
        ok = GetOverlappedResult(h, &ov, &n, TRUE);
    CloseHandle(ov.hEvent);
    return ok && n == strlen(s) ? 0 : -1;
}

/* ---- the client (this program started with "client") ------------------- */
static int client_main(int open_only)
{
    char line[512], name[256];
    unsigned long spid_given = 0;
    if (stdin_line(line, sizeof line) < 0 || sscanf(line, "%255s %lu", name, &spid_given) != 2) {
        child_log("no pipe name on standard input");
        return 90;
    }
    int busy = 0, waited_ok = 0;
    DWORD wait_err = 0;
    HANDLE h = INVALID_HANDLE_VALUE;
    for (int tries = 0; tries < 50; tries++) {
        h = CreateFileA(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (h != INVALID_HANDLE_VALUE || GetLastError() != ERROR_PIPE_BUSY)
            break;
        busy++;
        if (WaitNamedPipeA(name, 5000))
            waited_ok++;
        else
            wait_err = GetLastError();
    }
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        if (!open_only)
            child_log("CreateFile(%s): %s", name, err_str(e));
        return (int)(e & 0xFFFF); /* the error code as the exit status */
    }
    if (open_only) {
        CloseHandle(h);
        return 0;
    }
    DWORD spid = 0, cpid = 0;
    BOOL sok = GetNamedPipeServerProcessId(h, &spid);
    DWORD serr = sok ? 0 : GetLastError();
    BOOL cok = GetNamedPipeClientProcessId(h, &cpid);
    TOKEN_USER *me = process_user(0);
    TOKEN_USER *peer = sok ? process_user(spid) : NULL;
    DWORD perr = peer ? 0 : GetLastError();
    int sid_ok = me && peer && EqualSid(me->User.Sid, peer->User.Sid);
    snprintf(line, sizeof line,
             "hello pid=%lu busy=%d waited_ok=%d wait_err=%lu spid_ok=%d spid=%lu serr=%lu "
             "cpid_ok=%d sid_ok=%d perr=%lu\n",
             (unsigned long)GetCurrentProcessId(), busy, waited_ok, (unsigned long)wait_err,
             sok && spid == spid_given, (unsigned long)spid, (unsigned long)serr,
             cok && cpid == GetCurrentProcessId(), sid_ok, (unsigned long)perr);
    DWORD n;
    if (!WriteFile(h, line, (DWORD)strlen(line), &n, NULL)) {
        child_log("WriteFile: %s", last_err());
        return 91;
    }
    char reply[64];
    if (read_line(h, reply, sizeof reply) < 0 || strncmp(reply, "welcome", 7) != 0) {
        child_log("no welcome: %s", last_err());
        return 92;
    }
    CloseHandle(h);
    free(me);
    free(peer);
    return 0;
}

/* ---- the server ---------------------------------------------------------- */
int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && !strcmp(argv[1], "client"))
        return client_main(0);
    if (argc > 1 && !strcmp(argv[1], "open-only"))
        return client_main(1);

    printf("probe_pipe: (a) named pipe server, (b) peer pid and user checks\n");
    TOKEN_USER *me = process_user(0);
    if (!check(me != NULL, "TokenUser of our token: %s", me ? sid_str(me->User.Sid) : last_err()))
        return probe_end("probe_pipe");

    char hex[33], name[128];
    random_hex(hex, 16);
    snprintf(name, sizeof name, "\\\\.\\pipe\\mprouter-%s", hex);
    SECURITY_ATTRIBUTES *sa = user_only_sa(me->User.Sid);
    check(sa != NULL, "security descriptor, DACL = one ACE GENERIC_ALL for our SID");

    HANDLE inst[NCLIENTS + 1];
    inst[0] = make_instance(name, sa, 1);
    if (!check(inst[0] != INVALID_HANDLE_VALUE,
               "CreateNamedPipe(%s, FIRST_PIPE_INSTANCE|OVERLAPPED, BYTE|REJECT_REMOTE_CLIENTS)%s%s",
               name, inst[0] == INVALID_HANDLE_VALUE ? ": " : "",
               inst[0] == INVALID_HANDLE_VALUE ? last_err() : ""))
        return probe_end("probe_pipe");

    HANDLE dup = make_instance(name, sa, 1);
    DWORD dup_err = dup == INVALID_HANDLE_VALUE ? GetLastError() : 0;
    check(dup == INVALID_HANDLE_VALUE && dup_err == ERROR_ACCESS_DENIED,
          "a second FILE_FLAG_FIRST_PIPE_INSTANCE on the same name fails: %s",
          dup == INVALID_HANDLE_VALUE ? err_str(dup_err) : "it was created");
    if (dup != INVALID_HANDLE_VALUE)
        CloseHandle(dup);

    /* The DACL as the pipe has it. */
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR psd = NULL;
    DWORD gs = GetSecurityInfo(inst[0], SE_KERNEL_OBJECT, DACL_SECURITY_INFORMATION, NULL, NULL,
                               &dacl, NULL, &psd);
    if (gs == ERROR_SUCCESS && dacl) {
        ACCESS_ALLOWED_ACE *ace = NULL;
        int one = dacl->AceCount == 1 && GetAce(dacl, 0, (void **)&ace) &&
                  ace->Header.AceType == ACCESS_ALLOWED_ACE_TYPE &&
                  EqualSid((PSID)&ace->SidStart, me->User.Sid);
        char *sddl = NULL;
        ConvertSecurityDescriptorToStringSecurityDescriptorA(psd, SDDL_REVISION_1,
                                                             DACL_SECURITY_INFORMATION, &sddl, NULL);
        check(one, "GetSecurityInfo on the pipe: %u ACE(s), SDDL %s", dacl->AceCount,
              sddl ? sddl : "?");
        if (sddl)
            LocalFree(sddl);
    } else {
        check(0, "GetSecurityInfo on the pipe: %s", err_str(gs));
    }
    if (psd)
        LocalFree(psd);

    DWORD flags = 0, outsz = 0, insz = 0, maxi = 0;
    if (GetNamedPipeInfo(inst[0], &flags, &outsz, &insz, &maxi))
        check((flags & PIPE_SERVER_END) && !(flags & PIPE_TYPE_MESSAGE),
              "GetNamedPipeInfo: server end, byte type (flags 0x%lx, buffers %lu/%lu, max %lu)",
              flags, outsz, insz, maxi);
    else
        check(0, "GetNamedPipeInfo: %s", last_err());
    DWORD own = 0;
    BOOL own_ok = GetNamedPipeServerProcessId(inst[0], &own);
    check(own_ok && own == GetCurrentProcessId(),
          "GetNamedPipeServerProcessId on the server end = our pid (%lu)", own);
    own = 0;
    own_ok = GetNamedPipeClientProcessId(inst[0], &own);
    note("GetNamedPipeClientProcessId on an unconnected server end: %s, pid %lu",
         own_ok ? "TRUE" : last_err(), own);

    /* Three clients at once. */
    child_t c[NCLIENTS];
    char msg[300];
    snprintf(msg, sizeof msg, "%s %lu\n", name, (unsigned long)GetCurrentProcessId());
    for (int i = 0; i < NCLIENTS; i++) {
        int sp = spawn_self(&c[i], "client", NULL, 0);
        if (!check(sp == 0, "CreateProcess client %d%s%s", i, sp ? ": " : "", sp ? last_err() : ""))
            return probe_end("probe_pipe");
        if (i == 0)
            check(spawn_used_handle_list, "CreateProcess with PROC_THREAD_ATTRIBUTE_HANDLE_LIST%s%s",
                  spawn_used_handle_list ? "" : ": ",
                  spawn_used_handle_list ? "" : err_str(spawn_handle_list_error));
        check(child_say(&c[i], msg) == 0, "pipe name and our pid written to client %d's stdin (pid %lu)",
              i, c[i].pi.dwProcessId);
    }
    int busy_total = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        DWORD err = 0;
        int cw = connect_wait(inst[i], 20000, &err);
        if (!check(cw == 0, "ConnectNamedPipe on instance %d%s%s", i, err ? ": " : "",
                   err ? err_str(err) : ""))
            break;
        /* Late, so that the other clients find no free instance. */
        if (i == 0)
            Sleep(1000);
        inst[i + 1] = make_instance(name, sa, 0);
        check(inst[i + 1] != INVALID_HANDLE_VALUE, "next instance %d made after the connection%s%s",
              i + 1, inst[i + 1] == INVALID_HANDLE_VALUE ? ": " : "",
              inst[i + 1] == INVALID_HANDLE_VALUE ? last_err() : "");
        DWORD cpid = 0;
        BOOL got_cpid = GetNamedPipeClientProcessId(inst[i], &cpid);
        int which = -1;
        for (int k = 0; k < NCLIENTS; k++)
            if (got_cpid && c[k].pi.dwProcessId == cpid)
                which = k;
        check(which >= 0, "GetNamedPipeClientProcessId on instance %d = pid of client %d (%lu)", i,
              which, cpid);
        TOKEN_USER *peer = got_cpid ? process_user(cpid) : NULL;
        check(peer && EqualSid(peer->User.Sid, me->User.Sid),
              "server: OpenProcess(client pid) + token user equals ours%s%s", peer ? "" : ": ",
              peer ? "" : last_err());
        free(peer);
        char line[512];
        if (!check(ov_read_line(inst[i], line, sizeof line, 10000) >= 0, "client's hello read"))
            continue;
        note("client said: %s", line);
        int busy = 0, spid_ok = 0, cpid_ok = 0, sid_ok = 0;
        char *p;
        if ((p = strstr(line, "busy=")))
            busy = atoi(p + 5);
        if ((p = strstr(line, "spid_ok=")))
            spid_ok = atoi(p + 8);
        if ((p = strstr(line, "cpid_ok=")))
            cpid_ok = atoi(p + 8);
        if ((p = strstr(line, "sid_ok=")))
            sid_ok = atoi(p + 7);
        busy_total += busy;
        check(spid_ok, "client: GetNamedPipeServerProcessId = our pid");
        check(cpid_ok, "client: GetNamedPipeClientProcessId on its end = its own pid");
        check(sid_ok, "client: OpenProcess(server pid) + token user equals its own");
        if (i == 0) {
            /* Another way to learn the client's user: impersonate it. */
            HANDLE t = NULL;
            if (ImpersonateNamedPipeClient(inst[i])) {
                BOOL ot = OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &t);
                DWORD oe = ot ? 0 : GetLastError();
                RevertToSelf();
                TOKEN_USER *tu = ot ? token_user(t) : NULL;
                check(tu && EqualSid(tu->User.Sid, me->User.Sid),
                      "ImpersonateNamedPipeClient + OpenThreadToken: the client's user%s%s",
                      ot ? "" : ": ", ot ? "" : err_str(oe));
                free(tu);
                if (t)
                    CloseHandle(t);
            } else {
                check(0, "ImpersonateNamedPipeClient: %s", last_err());
            }
        }
        check(ov_write(inst[i], "welcome\n") == 0, "welcome written to client on instance %d", i);
    }
    check(busy_total > 0, "clients met ERROR_PIPE_BUSY and waited (WaitNamedPipe) %d time(s)",
          busy_total);
    for (int i = 0; i < NCLIENTS; i++) {
        DWORD code = child_wait(&c[i], 10000);
        check(code == 0, "client %d exited with %lu", i, code);
        child_close(&c[i]);
    }
    for (int i = 0; i <= NCLIENTS; i++) {
        DisconnectNamedPipe(inst[i]);
        CloseHandle(inst[i]);
    }

    /* A pipe nobody may open: an empty DACL. */
    char name2[128];
    random_hex(hex, 16);
    snprintf(name2, sizeof name2, "\\\\.\\pipe\\mprouter-%s", hex);
    HANDLE closed = make_instance(name2, user_only_sa(NULL), 1);
    check(closed != INVALID_HANDLE_VALUE, "CreateNamedPipe with an empty DACL");
    child_t d;
    if (spawn_self(&d, "open-only", NULL, 0) == 0) {
        snprintf(msg, sizeof msg, "%s %lu\n", name2, (unsigned long)GetCurrentProcessId());
        child_say(&d, msg);
        DWORD code = child_wait(&d, 10000);
        check(code == ERROR_ACCESS_DENIED,
              "a client of the same user opening the empty-DACL pipe is refused: %s",
              code == 0 ? "it opened it" : err_str(code));
        child_close(&d);
    }
    CloseHandle(closed);
    free(me);
    return probe_end("probe_pipe");
}
