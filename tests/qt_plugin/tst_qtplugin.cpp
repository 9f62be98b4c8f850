/*
 * tst_qtplugin - load the mprouter Qt plugin from the build tree with
 * QPluginLoader and route messages from fork()ed workers through the event
 * loop it provides. This program links only the C core.
 */
#include <mprouter/mprouter.h>

#include "eventloopprovider.h"

#include <QtCore/QDir>
#include <QtCore/QJsonArray>
#include <QtCore/QJsonObject>
#include <QtCore/QPluginLoader>
#include <QtCore/QScopedPointer>
#include <QtCore/QThread>
#include <QtTest/QtTest>

#include <dlfcn.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Inbox
{
    QList<QByteArray> messages;
    bool offMainThread = false;

    static void onMessage(void *arg, const void *data, size_t size)
    {
        Inbox *inbox = static_cast<Inbox *>(arg);
        inbox->messages.append(QByteArray(static_cast<const char *>(data), int(size)));
        if (QThread::currentThread() != QCoreApplication::instance()->thread())
            inbox->offMainThread = true;
    }
};

struct RouterDeleter
{
    static void cleanup(mpr_router *router) { mpr_router_free(router); }
};

} // namespace

class tst_QtPlugin : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void metaData();
    void routeThroughPlugin_data();
    void routeThroughPlugin();

private:
    QString pluginPath;
    const mpr_event_loop *loop = nullptr;
};

// Find the plugin by its IID among the files of the build tree's plugin
// directory, load it and get the event loop.
void tst_QtPlugin::initTestCase()
{
    // Linked to the core only: the Qt layer is not in the process yet.
    QVERIFY(dlsym(RTLD_DEFAULT, "mpr_router_new"));
    QVERIFY(!dlsym(RTLD_DEFAULT, "mpr_qt_event_loop"));

    const QDir dir(QStringLiteral(MPR_PLUGIN_DIR));
    QVERIFY2(dir.exists(), qPrintable(dir.path()));
    const QStringList files = dir.entryList(QDir::Files);
    for (const QString &file : files) {
        QPluginLoader candidate(dir.absoluteFilePath(file));
        if (candidate.metaData().value(QStringLiteral("IID")).toString()
            == QLatin1String(MPR_EVENT_LOOP_PROVIDER_IID)) {
            pluginPath = candidate.fileName();
            break;
        }
    }
    QVERIFY2(!pluginPath.isEmpty(),
             qPrintable(QStringLiteral("no plugin with IID %1 in %2 (files: %3)")
                            .arg(QLatin1String(MPR_EVENT_LOOP_PROVIDER_IID), dir.path(),
                                 files.join(QLatin1Char(' ')))));

    QPluginLoader loader(pluginPath);
    QObject *instance = loader.instance();
    QVERIFY2(instance, qPrintable(loader.errorString()));
    mpr::EventLoopProvider *provider = qobject_cast<mpr::EventLoopProvider *>(instance);
    QVERIFY(provider);
    loop = provider->eventLoop();
    QVERIFY(loop);
    QCOMPARE(loop->size, sizeof(mpr_event_loop));
    QCOMPARE(provider->eventLoop(), loop);
}

void tst_QtPlugin::metaData()
{
    QPluginLoader loader(pluginPath);
    const QJsonObject meta = loader.metaData();
    QCOMPARE(meta.value(QStringLiteral("IID")).toString(),
             QStringLiteral("org.mprouter.EventLoopProvider/1.0"));
    QCOMPARE(meta.value(QStringLiteral("className")).toString(),
             QStringLiteral("QtEventLoopPlugin"));
    const QJsonObject ours = meta.value(QStringLiteral("MetaData")).toObject();
    QCOMPARE(ours.value(QStringLiteral("Keys")).toArray(), QJsonArray({QStringLiteral("qt")}));
    QVERIFY(!ours.value(QStringLiteral("Version")).toString().isEmpty());
}

void tst_QtPlugin::routeThroughPlugin_data()
{
    QTest::addColumn<int>("workers");
    QTest::addColumn<int>("messages");

    QTest::newRow("1 worker x 1 message") << 1 << 1;
    QTest::newRow("1 worker x 100 messages") << 1 << 100;
    QTest::newRow("8 workers x 64 messages") << 8 << 64;
}

void tst_QtPlugin::routeThroughPlugin()
{
    QFETCH(int, workers);
    QFETCH(int, messages);
    QVERIFY(loop);

    mpr_router *raw = nullptr;
    QCOMPARE(mpr_router_new(&raw, loop), 0);
    QScopedPointer<mpr_router, RouterDeleter> router(raw);
    QCOMPARE(mpr_router_start(router.data()), 0);

    QVector<Inbox> inboxes(workers);
    QVector<mpr_receiver *> receivers(workers, nullptr);
    QVector<pid_t> pids;
    // Messages are made before fork(): the children only call the sender API.
    QVector<QByteArray> payloads;
    for (int m = 0; m < messages; ++m)
        payloads << QByteArray("message ") + QByteArray::number(m);

    for (int w = 0; w < workers; ++w) {
        mpr_sender *sender = nullptr;
        QCOMPARE(mpr_router_pipe(router.data(), &sender, &receivers[w]), 0);
        mpr_receiver_set_callback(receivers[w], Inbox::onMessage, &inboxes[w]);
        const pid_t pid = fork();
        if (pid == 0) {
            alarm(60);
            int rc = mpr_sender_start(sender);
            for (int m = 0; rc == 0 && m < messages; ++m)
                rc = mpr_sender_send(sender, payloads.at(m).constData(), size_t(payloads.at(m).size()));
            if (rc == 0)
                rc = mpr_sender_stop(sender);
            _exit(rc == 0 ? 0 : 100);
        }
        QVERIFY(pid > 0);
        pids << pid;
        mpr_sender_free(sender);
    }

    for (int w = 0; w < workers; ++w)
        QTRY_COMPARE_WITH_TIMEOUT(inboxes.at(w).messages.size(), messages, 20000);
    for (pid_t pid : qAsConst(pids)) {
        int status = -1;
        QCOMPARE(waitpid(pid, &status, 0), pid);
        QVERIFY(WIFEXITED(status));
        QCOMPARE(WEXITSTATUS(status), 0);
    }
    for (int w = 0; w < workers; ++w) {
        QCOMPARE(inboxes.at(w).messages.toVector(), payloads);
        QVERIFY(!inboxes.at(w).offMainThread);
        QCOMPARE(mpr_router_close_pipe(router.data(), receivers.at(w)), 0);
    }
    QCOMPARE(mpr_router_stop(router.data()), 0);
}

QTEST_GUILESS_MAIN(tst_QtPlugin)
#include "tst_qtplugin.moc"
