/*
 * primes-worker - one worker process of the primes example.
 *
 *     primes-worker FROM TO [--batch N] [--stall]  < sender string
 *
 * Counts the primes n with FROM <= n <= TO by trial division and reports
 * through the mprouter sender whose string (made by mpr_sender_to_string
 * in the application) is the first line of its standard input. The string
 * is a password for its pipe: never on a command line, which every user
 * of the machine can read in /proc (or with ps). Every message is a
 * QVariantMap made with mpr::encodeVariant:
 *
 *     {"checked": numbers tested so far, "primes": primes found so far}
 *
 * sent every N numbers (default 5000), and a last one with "done": true.
 * Then the sender is stopped, so the router knows the worker ended
 * normally; if the process dies before that, the application's receiver
 * emits senderLost().
 *
 * The same program runs on other machines (primes --hosts, started with
 * ssh or another launch command): mpr_sender_start finds the router's
 * local socket unreachable there and connects over ZeroMQ (the string
 * then also holds the router's endpoint and public key).
 *
 * It never outlives the application: it stops at the first send that
 * fails (MPR_EPIPE once the router has stopped), and when its standard
 * input is a pipe or socket (as from primes, or from ssh on another
 * machine) it exits when that ends: primes keeps it open until it is done
 * with the worker, and for ssh it ends with the connection. On Linux it
 * also dies with its parent process (PR_SET_PDEATHSIG).
 *
 * --stall is for the tests: after its first message the worker waits
 * until it is killed or its standard input ends, so that a test can kill
 * or cancel a worker that is surely running.
 *
 * Exit status: 0 after the last message went out, 1 on a router error
 * (also: the router did not acknowledge everything) or when standard input
 * ended first, 2 on bad arguments.
 */
#include <mprouter_qt.h>

#include <QtCore/QVariantMap>
#include <QtCore/QVector>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <thread>

#include <sys/prctl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

namespace {

// The primes up to limit, by a small sieve: the divisors to try.
QVector<quint32> smallPrimes(quint64 limit)
{
    QVector<char> composite(int(limit) + 1, 0);
    QVector<quint32> primes;
    for (quint64 i = 2; i <= limit; i++) {
        if (composite[int(i)])
            continue;
        primes.append(quint32(i));
        for (quint64 j = i * i; j <= limit; j += i)
            composite[int(j)] = 1;
    }
    return primes;
}

bool isPrime(quint64 n, const QVector<quint32> &divisors)
{
    if (n < 2)
        return false;
    for (quint32 d : divisors) {
        if (quint64(d) * d > n)
            return true;
        if (n % d == 0)
            return n == d;
    }
    return true;
}

bool parseNumber(const char *text, quint64 *out)
{
    char *end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-')
        return false;
    *out = value;
    return true;
}

int send(mpr_sender *sender, const QVariantMap &message)
{
    const QByteArray bytes = mpr::encodeVariant(message);
    return mpr_sender_send(sender, bytes.constData(), size_t(bytes.size()));
}

int usage()
{
    std::fprintf(stderr, "usage: primes-worker FROM TO [--batch N] [--stall] < sender-string\n");
    return 2;
}

// The first line of standard input, without its newline.
bool readSenderString(char *buf, size_t size)
{
    if (!std::fgets(buf, int(size), stdin))
        return false;
    size_t len = std::strlen(buf);
    if (len == 0 || buf[len - 1] != '\n')
        return !std::feof(stdin) ? false : len > 0; // too long, or the last line without newline
    buf[len - 1] = '\0';
    return true;
}

// When standard input is a pipe or a socket, its end means the application
// (or, through ssh, the connection to it) is gone: exit at once. A thread
// waits for it, so that a computation between two messages (or --stall)
// does not delay it. Not for a file, whose end comes right after the
// string.
void exitWhenStdinEnds()
{
    struct stat st;
    if (fstat(STDIN_FILENO, &st) < 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        return;
    std::thread([] {
        char buf[256];
        ssize_t n;
        while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        }
        _exit(1);
    }).detach();
}

} // namespace

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    quint64 from = 0, to = 0, batch = 5000;
    bool stall = false;
    if (!parseNumber(argv[1], &from) || !parseNumber(argv[2], &to) || to > 0xffffffffu)
        return usage();
    for (int i = 3; i < argc; i++) {
        if (!std::strcmp(argv[i], "--batch") && i + 1 < argc) {
            if (!parseNumber(argv[++i], &batch) || batch == 0)
                return usage();
        } else if (!std::strcmp(argv[i], "--stall")) {
            stall = true;
        } else {
            return usage();
        }
    }

    // Linux: die with the application even if it is killed too hard to
    // stop its workers itself (SIGKILL): never an orphan that keeps on
    // computing. (If it died before this call, our parent is already
    // someone else.)
    const pid_t parent = getppid();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        return 1;

    char text[1024];
    if (!readSenderString(text, sizeof text)) {
        std::fprintf(stderr, "primes-worker: no sender string on standard input\n");
        return 2;
    }
    mpr_sender *sender = nullptr;
    int rc = mpr_sender_from_string(&sender, text);
    explicit_bzero(text, sizeof text);
    exitWhenStdinEnds();
    if (rc == 0)
        rc = mpr_sender_start(sender);
    if (rc < 0) {
        std::fprintf(stderr, "primes-worker: %s\n", mpr_strerror(rc));
        mpr_sender_free(sender);
        return 1;
    }

    const QVector<quint32> divisors = smallPrimes(quint64(std::sqrt(double(to))) + 1);
    quint64 checked = 0, primes = 0;
    for (quint64 n = from; n <= to && rc == 0; n++) {
        primes += isPrime(n, divisors);
        if (++checked % batch == 0 && n < to) {
            rc = send(sender, {{QStringLiteral("checked"), checked},
                               {QStringLiteral("primes"), primes}});
            while (stall && rc == 0)
                pause(); // until a signal or the end of standard input ends the process
        }
    }
    if (rc == 0)
        rc = send(sender, {{QStringLiteral("checked"), checked},
                           {QStringLiteral("primes"), primes},
                           {QStringLiteral("done"), true}});
    if (rc == 0)
        rc = mpr_sender_stop(sender);
    if (rc < 0)
        std::fprintf(stderr, "primes-worker: %s\n", mpr_strerror(rc));
    mpr_sender_free(sender);
    return rc == 0 ? 0 : 1;
}
