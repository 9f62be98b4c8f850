/*
 * tst_glib - the fd event loop driven by GLib: a GMainContext of its own
 * watches mpr_fd_loop_fd() (g_unix_fd_source_new) and calls
 * mpr_fd_loop_dispatch(); fork()ed workers send numbered messages, which
 * must all arrive, in order per worker. Then the GLib example
 * (examples/glib, g_unix_fd_add on the default context) is run.
 */
#include <glib.h>
#include <glib-unix.h>

#include <QtCore/QDeadlineTimer>
#include <QtCore/QProcess>
#include <QtCore/QVector>
#include <QtTest/QtTest>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <mprouter/mprouter.h>

namespace {

struct Inbox
{
    QVector<quint32> numbers;
};

void onMessage(void *arg, const void *data, size_t size)
{
    auto *inbox = static_cast<Inbox *>(arg);
    quint32 n = 0;
    if (size == sizeof n)
        memcpy(&n, data, sizeof n);
    else
        n = 0xffffffffu; // recorded as wrong
    inbox->numbers.append(n);
}

gboolean onReadable(gint, GIOCondition, gpointer loop)
{
    mpr_fd_loop_dispatch(static_cast<mpr_fd_loop *>(loop));
    return G_SOURCE_CONTINUE;
}

} // namespace

class tst_Glib : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void mainContext_data();
    void mainContext();
    void example();
};

void tst_Glib::mainContext_data()
{
    QTest::addColumn<int>("workers");
    QTest::addColumn<int>("messages");
    QTest::newRow("1 worker x 1") << 1 << 1;
    QTest::newRow("8 workers x 100") << 8 << 100;
    QTest::newRow("64 workers x 64") << 64 << 64;
}

void tst_Glib::mainContext()
{
    QFETCH(int, workers);
    QFETCH(int, messages);

    mpr_fd_loop *loop = nullptr;
    mpr_router *router = nullptr;
    QCOMPARE(mpr_fd_loop_new(&loop), 0);
    QCOMPARE(mpr_router_new(&router, mpr_fd_loop_event_loop(loop)), 0);
    QCOMPARE(mpr_router_start(router), 0);

    GMainContext *context = g_main_context_new();
    GSource *source = g_unix_fd_source_new(mpr_fd_loop_fd(loop), G_IO_IN);
    g_source_set_callback(source, G_SOURCE_FUNC(onReadable), loop, nullptr);
    g_source_attach(source, context);

    QVector<Inbox> inboxes(workers);
    QVector<mpr_receiver *> receivers(workers, nullptr);
    QVector<pid_t> pids;
    for (int w = 0; w < workers; w++) {
        mpr_sender *sender = nullptr;
        QCOMPARE(mpr_router_pipe(router, &sender, &receivers[w]), 0);
        mpr_receiver_set_callback(receivers[w], onMessage, &inboxes[w]);
        const pid_t pid = fork();
        QVERIFY(pid >= 0);
        if (pid == 0) {
            bool ok = mpr_sender_start(sender) == 0;
            for (quint32 n = 0; ok && n < quint32(messages); n++)
                ok = mpr_sender_send(sender, &n, sizeof n) == 0;
            ok = ok && mpr_sender_stop(sender) == 0;
            _exit(ok ? 0 : 1);
        }
        pids.append(pid);
        mpr_sender_free(sender);
    }

    // Iterate the context until everything is in; the deadline is a guard
    // against hanging, not a timing.
    auto done = [&] {
        for (const Inbox &inbox : inboxes)
            if (inbox.numbers.size() < messages)
                return false;
        return true;
    };
    // A 100 ms timeout source wakes the blocking iteration, so the guard is
    // checked even if nothing arrives.
    GSource *tick = g_timeout_source_new(100);
    g_source_set_callback(tick, [](gpointer) { return gboolean(G_SOURCE_CONTINUE); }, nullptr, nullptr);
    g_source_attach(tick, context);
    QDeadlineTimer guard(120 * 1000);
    while (!done() && !guard.hasExpired())
        g_main_context_iteration(context, TRUE);
    g_source_destroy(tick);
    g_source_unref(tick);
    if (!done()) // the workers may be stuck: do not wait for them below
        for (pid_t pid : pids)
            kill(pid, SIGKILL);

    for (pid_t pid : pids) {
        int status = 0;
        QCOMPARE(waitpid(pid, &status, 0), pid);
        QVERIFY(WIFEXITED(status));
        QCOMPARE(WEXITSTATUS(status), 0);
    }
    for (int w = 0; w < workers; w++) {
        QCOMPARE(inboxes[w].numbers.size(), messages);
        for (int n = 0; n < messages; n++)
            QCOMPARE(inboxes[w].numbers[n], quint32(n));
        QCOMPARE(mpr_router_close_pipe(router, receivers[w]), 0);
    }

    g_source_destroy(source);
    g_source_unref(source);
    g_main_context_unref(context);
    QCOMPARE(mpr_router_stop(router), 0);
    mpr_router_free(router);
    mpr_fd_loop_free(loop);
}

void tst_Glib::example()
{
    QProcess p;
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(QStringLiteral(MPR_GLIB_EXAMPLE), { QStringLiteral("8") });
    QVERIFY2(p.waitForStarted(), qPrintable(p.errorString()));
    QVERIFY(p.waitForFinished(10 * 60 * 1000)); // a guard, not a timing
    const QByteArray out = p.readAll();
    QCOMPARE(p.exitStatus(), QProcess::NormalExit);
    QVERIFY2(p.exitCode() == 0, out.constData());
    QVERIFY2(out.contains("glib: 8 workers started\n"), out.constData());
    QVERIFY2(out.contains("worker 7: step 10/10\n"), out.constData());
    QVERIFY2(out.endsWith("glib: all messages arrived in order\n"), out.constData());
}

QTEST_GUILESS_MAIN(tst_Glib)
#include "tst_glib.moc"
