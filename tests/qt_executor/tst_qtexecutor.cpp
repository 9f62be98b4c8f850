// mpr::Executor and mpr::Future (executor_qt.h) with real worker processes
// (mpr_test_qtexecworker, MPR_START_EXEC): results, failures, progress,
// cancel, every state change, deletion from a slot, shutdown; and the
// launch mode (ExecutorOptions::Launch) with a local launcher, env.
#include <QtTest/QtTest>

#include <errno.h>
#include <signal.h>
#include <sys/types.h>

#include <memory>

#include <executor_qt.h>
#include <mprouter_qt.h>

Q_DECLARE_METATYPE(mpr::Future::State)

namespace {

const int Timeout = 30000; // ms, for QTRY_*: generous, for loaded machines

// The value of a variable in a process's environment (/proc/PID/environ).
QByteArray environmentOf(qint64 pid, const QByteArray &name)
{
    QFile f(QStringLiteral("/proc/%1/environ").arg(pid));
    if (!f.open(QIODevice::ReadOnly))
        return QByteArray();
    const QList<QByteArray> vars = f.readAll().split('\0');
    for (const QByteArray &v : vars)
        if (v.startsWith(name + '='))
            return v.mid(name.size() + 1);
    return QByteArray();
}

bool processGone(qint64 pid)
{
    return pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH;
}

// Records a future's signals (until it is destroyed: a failing test
// leaves no connection to it behind).
struct Recorder
{
    QObject context;
    QList<mpr::Future::State> states;
    QVariantList progress;
    int finished = 0;
    int progressAfterFinished = 0;

    void attach(mpr::Future *f)
    {
        QObject::connect(f, &mpr::Future::stateChanged, &context,
                         [this](mpr::Future::State s) { states.append(s); });
        QObject::connect(f, &mpr::Future::progress, &context, [this](const QVariant &v) {
            progress.append(v);
            if (finished)
                progressAfterFinished++;
        });
        QObject::connect(f, &mpr::Future::finished, &context, [this] { finished++; });
    }
};

} // namespace

class TestQtExecutor : public QObject
{
    Q_OBJECT
private:
    mpr::Router router;
    std::unique_ptr<mpr::Executor> executor;

    mpr::Executor *make(int workers)
    {
        mpr::ExecutorOptions o;
        o.workers = workers;
        o.program = QStringList{QStringLiteral(MPR_TEST_QTEXECWORKER)};
        executor.reset(new mpr::Executor(&router, o));
        return executor.get();
    }

private Q_SLOTS:
    void initTestCase()
    {
        qRegisterMetaType<mpr::Future::State>();
        QCOMPARE(router.start(), 0);
    }
    void cleanupTestCase() { QCOMPARE(router.stop(), 0); }

    // Each test ends with an orderly shutdown of its executor (if any is
    // left), so that the router never warns about pipes.
    void cleanup()
    {
        if (!executor)
            return;
        if (executor->state() == mpr::Executor::Running) {
            QSignalSpy done(executor.get(), &mpr::Executor::shutdownFinished);
            QCOMPARE(executor->shutdown(10), 0);
            QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, Timeout);
        } else {
            QTRY_COMPARE_WITH_TIMEOUT(executor->state(), mpr::Executor::ShutDown, Timeout);
        }
        executor.reset();
    }

    void badOptions()
    {
        mpr::ExecutorOptions o; // Exec mode without a program
        QTest::ignoreMessage(QtWarningMsg, "cannot create executor: invalid argument");
        mpr::Executor e(&router, o);
        QCOMPARE(e.error(), int(MPR_EINVAL));
        QCOMPARE(e.state(), mpr::Executor::ShutDown);
        int rc = 0;
        QVERIFY(!e.submit(QStringLiteral("sum"), QVariant(), &rc));
        QCOMPARE(rc, int(MPR_ESTATE));
    }

    void completed()
    {
        mpr::Executor *e = make(2);
        QCOMPARE(e->error(), 0);
        mpr::Future *f = e->submit(QStringLiteral("sum"), QVariantList{1, 2, 39});
        QVERIFY(f);
        QCOMPARE(f->parent(), e);
        QCOMPARE(f->state(), mpr::Future::Waiting);
        QCOMPARE(f->property("state").value<mpr::Future::State>(), mpr::Future::Waiting);
        Recorder r;
        r.attach(f);
        QTRY_COMPARE_WITH_TIMEOUT(r.finished, 1, Timeout);
        QCOMPARE(f->state(), mpr::Future::Completed);
        QVERIFY(f->isFinished());
        QCOMPARE(r.states, (QList<mpr::Future::State>{mpr::Future::Executing,
                                                       mpr::Future::Completed}));
        const QVariantMap m = f->result().toMap();
        QCOMPARE(m.value(QStringLiteral("sum")).toLongLong(), 42LL);
        QCOMPARE(m.value(QStringLiteral("count")).toInt(), 3);
        QCOMPARE(mpr::decodeVariant(f->resultBytes()), f->result());
        QVERIFY(f->errorString().isEmpty());
        QCOMPARE(f->failure(), 0);
        QVERIFY(f->workerPid() > 0);
        QCOMPARE(f->cancel(), int(MPR_ESTATE));
    }

    void failed()
    {
        mpr::Executor *e = make(1);
        const QString why = QStringLiteral("no luck: \u00fcber");
        mpr::Future *f = e->submit(QStringLiteral("fail"), why);
        QVERIFY(f);
        Recorder r;
        r.attach(f);
        QTRY_COMPARE_WITH_TIMEOUT(r.finished, 1, Timeout);
        QCOMPARE(f->state(), mpr::Future::Failed);
        QCOMPARE(r.states, (QList<mpr::Future::State>{mpr::Future::Executing,
                                                       mpr::Future::Failed}));
        QCOMPARE(f->errorString(), why);
        QCOMPARE(f->failure(), int(MPR_FAILURE_TASK));
        QVERIFY(!f->result().isValid());

        // An unknown task fails too, with the C library's reason.
        mpr::Future *g = e->submit(QStringLiteral("nosuchtask"), 1);
        QVERIFY(g);
        QTRY_COMPARE_WITH_TIMEOUT(g->state(), mpr::Future::Failed, Timeout);
        QVERIFY2(g->errorString().contains(QStringLiteral("nosuchtask")),
                 qPrintable(g->errorString()));
    }

    void progressInOrder()
    {
        mpr::Executor *e = make(1);
        const int n = 200;
        mpr::Future *f = e->submit(QStringLiteral("count"), n);
        QVERIFY(f);
        Recorder r;
        r.attach(f);
        QTRY_COMPARE_WITH_TIMEOUT(r.finished, 1, Timeout);
        QCOMPARE(f->state(), mpr::Future::Completed);
        QCOMPARE(f->result(), QVariant(QStringLiteral("done")));
        QCOMPARE(r.progress.size(), n);
        for (int i = 0; i < n; i++)
            QCOMPARE(r.progress.at(i), QVariant(i));
        QCOMPARE(r.progressAfterFinished, 0);
        QCOMPARE(r.states, (QList<mpr::Future::State>{mpr::Future::Executing,
                                                       mpr::Future::Completed}));
    }

    void cancelWaitingAndRunning()
    {
        mpr::Executor *e = make(1);
        mpr::Future *running = e->submit(QStringLiteral("spin"));
        mpr::Future *waiting = e->submit(QStringLiteral("sum"), QVariantList{1});
        QVERIFY(running && waiting);
        Recorder rr, rw;
        rr.attach(running);
        rw.attach(waiting);
        QTRY_COMPARE_WITH_TIMEOUT(running->state(), mpr::Future::Executing, Timeout);
        QCOMPARE(waiting->state(), mpr::Future::Waiting);

        // Waiting: Cancelled at once, its signals before cancel() returns.
        QCOMPARE(waiting->cancel(), 0);
        QCOMPARE(waiting->state(), mpr::Future::Cancelled);
        QCOMPARE(rw.states, QList<mpr::Future::State>{mpr::Future::Cancelled});
        QCOMPARE(rw.finished, 1);
        QCOMPARE(waiting->cancel(), int(MPR_ESTATE));

        // Running: Cancelling at once, Cancelled when the task has seen it.
        QCOMPARE(running->cancel(), 0);
        QCOMPARE(running->state(), mpr::Future::Cancelling);
        QCOMPARE(rr.finished, 0);
        QCOMPARE(running->cancel(), int(MPR_ESTATE));
        QTRY_COMPARE_WITH_TIMEOUT(rr.finished, 1, Timeout);
        QCOMPARE(running->state(), mpr::Future::Cancelled);
        QCOMPARE(rr.states, (QList<mpr::Future::State>{mpr::Future::Executing,
                                                        mpr::Future::Cancelling,
                                                        mpr::Future::Cancelled}));
        QVERIFY(!running->result().isValid());
        QVERIFY(running->errorString().isEmpty());
        QCOMPARE(rw.finished, 1);

        // The worker is free again (it was not killed).
        mpr::Future *next = e->submit(QStringLiteral("sum"), QVariantList{5, 5});
        QTRY_COMPARE_WITH_TIMEOUT(next->state(), mpr::Future::Completed, Timeout);
        QCOMPARE(next->workerPid(), running->workerPid());
    }

    void deleteFutureFromItsSlot()
    {
        mpr::Executor *e = make(1);
        QPointer<mpr::Future> f = e->submit(QStringLiteral("sum"), QVariantList{1});
        int calls = 0;
        QObject context; // the connection ends with this test
        connect(f.data(), &mpr::Future::stateChanged, &context, [&](mpr::Future::State s) {
            calls++;
            if (s == mpr::Future::Executing)
                delete f.data();
        });
        QTRY_VERIFY_WITH_TIMEOUT(f.isNull(), Timeout);
        QCOMPARE(calls, 1);
        // The executor goes on.
        mpr::Future *g = e->submit(QStringLiteral("count"), 3);
        QTRY_COMPARE_WITH_TIMEOUT(g->state(), mpr::Future::Completed, Timeout);
    }

    void deleteExecutorFromFinished()
    {
        QPointer<mpr::Executor> e = make(2);
        QPointer<mpr::Future> other = e->submit(QStringLiteral("spin"));
        QTRY_COMPARE_WITH_TIMEOUT(other->state(), mpr::Future::Executing, Timeout);
        QPointer<mpr::Future> f = e->submit(QStringLiteral("sum"), QVariantList{2, 3});
        qint64 pid = 0, otherPid = other->workerPid();
        int finished = 0, otherSignals = 0;
        QObject context; // the connections end with this test
        connect(other.data(), &mpr::Future::stateChanged, &context, [&] { otherSignals++; });
        connect(f.data(), &mpr::Future::finished, &context, [&] {
            finished++;
            QCOMPARE(f->result().toMap().value(QStringLiteral("sum")).toInt(), 5);
            pid = f->workerPid();
            // Deletes *e and its futures and kills the workers (the abrupt
            // way: the router may warn "discarding message from closed
            // pipe" for a message of theirs it had not routed yet).
            executor.reset();
        });
        QTRY_VERIFY_WITH_TIMEOUT(e.isNull(), Timeout);
        QCOMPARE(finished, 1);
        QVERIFY(f.isNull());
        QVERIFY(other.isNull());
        QCOMPARE(otherSignals, 0);
        QVERIFY(pid > 0 && otherPid > 0);
        QTRY_VERIFY_WITH_TIMEOUT(processGone(pid), Timeout);
        QTRY_VERIFY_WITH_TIMEOUT(processGone(otherPid), Timeout);
        // The event loop goes on without a crash.
        QTest::qWait(50);
    }

    void launchOptionsChecked()
    {
        mpr::ExecutorOptions o; // Launch mode without hosts
        o.start = mpr::ExecutorOptions::Launch;
        o.program = QStringList{QStringLiteral("env"), QStringLiteral(MPR_TEST_QTEXECWORKER)};
        QTest::ignoreMessage(QtWarningMsg, "cannot create executor: invalid argument");
        mpr::Executor e(&router, o);
        QCOMPARE(e.error(), int(MPR_EINVAL));
    }

    // Launch mode with a local launcher: "env MPR_TEST_HOST={host} WORKER",
    // run without a shell, {host} replaced by each worker's host (worker i
    // on hosts[i % 2]); the workers reach the router on this host. env
    // execs the worker, so the launcher's pid is the worker's.
    void launchTemplate()
    {
        mpr::ExecutorOptions o;
        o.workers = 2;
        o.start = mpr::ExecutorOptions::Launch;
        o.program = QStringList{QStringLiteral("env"), QStringLiteral("MPR_TEST_HOST={host}"),
                                QStringLiteral(MPR_TEST_QTEXECWORKER)};
        o.hosts = QStringList{QStringLiteral("alpha"), QStringLiteral("beta.example")};
        executor.reset(new mpr::Executor(&router, o));
        mpr::Executor *e = executor.get();
        QCOMPARE(e->error(), 0);
        mpr::Future *sum = e->submit(QStringLiteral("sum"), QVariantList{20, 22});
        QVERIFY(sum);
        QTRY_COMPARE_WITH_TIMEOUT(sum->state(), mpr::Future::Completed, Timeout);
        QCOMPARE(sum->result().toMap().value(QStringLiteral("sum")).toInt(), 42);

        // Both workers busy at once: one on each host.
        mpr::Future *a = e->submit(QStringLiteral("spin"));
        mpr::Future *b = e->submit(QStringLiteral("spin"));
        QTRY_COMPARE_WITH_TIMEOUT(a->state(), mpr::Future::Executing, Timeout);
        QTRY_COMPARE_WITH_TIMEOUT(b->state(), mpr::Future::Executing, Timeout);
        QVERIFY(a->workerPid() > 0 && b->workerPid() > 0 && a->workerPid() != b->workerPid());
        QSet<QByteArray> hosts{environmentOf(a->workerPid(), "MPR_TEST_HOST"),
                               environmentOf(b->workerPid(), "MPR_TEST_HOST")};
        QCOMPARE(hosts, (QSet<QByteArray>{"alpha", "beta.example"}));

        // Cancel is cooperative here too: no worker is killed.
        QCOMPARE(a->cancel(), 0);
        QCOMPARE(b->cancel(), 0);
        QTRY_COMPARE_WITH_TIMEOUT(a->state(), mpr::Future::Cancelled, Timeout);
        QTRY_COMPARE_WITH_TIMEOUT(b->state(), mpr::Future::Cancelled, Timeout);
        mpr_executor_stats st;
        QCOMPARE(mpr_executor_get_stats(e->handle(), &st), 0);
        QCOMPARE(st.workers_killed, quint64(0));
        QCOMPARE(st.workers_started, quint64(2));
    }

    void shutdownLeavesNoWorker()
    {
        mpr::Executor *e = make(2);
        mpr::Future *a = e->submit(QStringLiteral("sum"), QVariantList{1});
        mpr::Future *spinning = e->submit(QStringLiteral("spin"));
        mpr::Future *second = e->submit(QStringLiteral("spin"));
        Recorder rs, r2;
        rs.attach(spinning);
        r2.attach(second);
        QTRY_COMPARE_WITH_TIMEOUT(a->state(), mpr::Future::Completed, Timeout);
        QTRY_COMPARE_WITH_TIMEOUT(spinning->state(), mpr::Future::Executing, Timeout);
        QTRY_COMPARE_WITH_TIMEOUT(second->state(), mpr::Future::Executing, Timeout);
        const qint64 pids[] = {a->workerPid(), spinning->workerPid(), second->workerPid()};

        QSignalSpy done(e, &mpr::Executor::shutdownFinished);
        QCOMPARE(e->shutdown(20), 0);
        QCOMPARE(e->state(), mpr::Executor::ShuttingDown);
        QCOMPARE(e->shutdown(20), int(MPR_ESTATE));
        int rc = 0;
        QVERIFY(!e->submit(QStringLiteral("sum"), QVariantList{1}, &rc));
        QCOMPARE(rc, int(MPR_ESTATE));
        QTRY_COMPARE_WITH_TIMEOUT(done.count(), 1, Timeout);
        QCOMPARE(e->state(), mpr::Executor::ShutDown);
        QCOMPARE(spinning->state(), mpr::Future::Cancelled);
        QCOMPARE(second->state(), mpr::Future::Cancelled);
        QCOMPARE(rs.states, (QList<mpr::Future::State>{mpr::Future::Executing,
                                                        mpr::Future::Cancelling,
                                                        mpr::Future::Cancelled}));
        QCOMPARE(rs.finished, 1);
        QCOMPARE(r2.finished, 1);
        mpr_executor_stats st;
        QCOMPARE(mpr_executor_get_stats(e->handle(), &st), 0);
        QCOMPARE(st.workers_alive, 0u);
        for (qint64 pid : pids)
            QVERIFY2(processGone(pid), qPrintable(QString::number(pid)));
        // A finished future stays readable until the executor is deleted.
        QCOMPARE(a->result().toMap().value(QStringLiteral("sum")).toInt(), 1);
    }
};

QTEST_GUILESS_MAIN(TestQtExecutor)
#include "tst_qtexecutor.moc"
