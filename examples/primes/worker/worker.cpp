/*
 * primes-worker - a worker process of the primes example, run by the
 * application's executor (mpr::Executor; <mprouter/worker.h>):
 *
 *     primes-worker  < sender string (written there by the executor)
 *
 * It has one task, "count": its argument is a QVariantMap made with
 * mpr::encodeVariant,
 *
 *     {"from": n, "to": m, "batch": numbers between two progress reports,
 *      "stall": true for the tests: wait after the first report}
 *
 * and it counts the primes n <= p <= m by trial division. Every "batch"
 * numbers it reports {"checked": numbers tested so far, "primes": primes
 * found so far, "host": the name of the machine it runs on} as progress,
 * and that is also its result at the end.
 *
 * Cancel is cooperative: the task tests mpr_task_cancelled (a load of a
 * word of the shared ring, no system call) before every number and
 * returns as soon as it is set, so a cancelled job ends within the time
 * of one number. The executor kills nobody.
 *
 * mpr_worker_main does the rest: the sender string from standard input
 * (never a command line, which every user can read), the job protocol,
 * and an exit of its own when the application is gone (end of standard
 * input, MPR_EPIPE; on Linux also the parent's death). The same program
 * runs on other machines (primes --hosts, started by a launch command
 * such as ssh): its sender then reaches the router over ZeroMQ.
 */
#include <mprouter_qt.h>
#include <mprouter/worker.h>

#include <QtCore/QSysInfo>
#include <QtCore/QVariantMap>
#include <QtCore/QVector>

#include <cmath>

#include <time.h>

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

QByteArray counts(quint64 checked, quint64 primes)
{
    static const QString host = QSysInfo::machineHostName();
    return mpr::encodeVariant(QVariantMap{{QStringLiteral("checked"), checked},
                                          {QStringLiteral("primes"), primes},
                                          {QStringLiteral("host"), host}});
}

int count(mpr_task *task, const void *arg, size_t size)
{
    const QVariantMap args =
        mpr::decodeVariant(QByteArray::fromRawData(static_cast<const char *>(arg), int(size)))
            .toMap();
    const quint64 from = args.value(QStringLiteral("from")).toULongLong();
    const quint64 to = args.value(QStringLiteral("to")).toULongLong();
    const quint64 batch = args.value(QStringLiteral("batch"), 5000).toULongLong();
    const bool stall = args.value(QStringLiteral("stall")).toBool();
    if (from > to || to > 0xffffffffu || batch == 0)
        return mpr_task_fail(task, "count needs 0 <= from <= to <= 4294967295 and batch > 0");

    const QVector<quint32> divisors = smallPrimes(quint64(std::sqrt(double(to))) + 1);
    quint64 checked = 0, primes = 0;
    for (quint64 n = from; n <= to; n++) {
        if (mpr_task_cancelled(task))
            return 0; // the job ends CANCELLED
        primes += isPrime(n, divisors);
        if (++checked % batch == 0 && n < to) {
            const QByteArray report = counts(checked, primes);
            if (mpr_task_progress(task, report.constData(), size_t(report.size())) < 0)
                return 0; // the router is gone: mpr_task_cancelled is true from now on
            // --stall-worker (tests): wait here until cancelled or killed.
            const struct timespec ms = {0, 1000000};
            while (stall && !mpr_task_cancelled(task))
                nanosleep(&ms, nullptr);
        }
    }
    const QByteArray result = counts(checked, primes);
    return mpr_task_result(task, result.constData(), size_t(result.size()));
}

} // namespace

int main()
{
    static const mpr_task_def tasks[] = {{"count", count}, {nullptr, nullptr}};
    return mpr_worker_main(tasks, nullptr, nullptr);
}
