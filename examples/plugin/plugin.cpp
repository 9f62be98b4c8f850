/*
 * plugin - load the mprouter Qt plugin and route through it.
 *
 *     plugin [PLUGIN_DIR]
 *
 * This program links only the C core and QtCore: the Qt event loop of
 * mprouter comes from the plugin (interface mpr::EventLoopProvider, IID
 * "org.mprouter.EventLoopProvider/1.0"), found among the files of
 * PLUGIN_DIR (default: $MPR_PLUGIN_DIR, else the build tree's
 * plugins/mprouter). Four worker threads send five messages each; the
 * receivers' callbacks run on the main thread, in the Qt event loop; when
 * every worker has finished the program prints a summary and exits 0.
 */
#include <mprouter/mprouter.h>

#include "eventloopprovider.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QDir>
#include <QtCore/QFileInfo>
#include <QtCore/QPluginLoader>
#include <QtCore/QThread>

#include <cstdio>
#include <vector>

namespace {

const int Workers = 4;
const int Messages = 5;

struct Task
{
    int index = 0;
    int received = 0;
    bool mainThread = true;
    mpr_receiver *receiver = nullptr;
};

int finishedTasks = 0;

// A receiver callback: on the main thread, once per message, in order.
void onMessage(void *arg, const void *data, size_t size)
{
    Task *task = static_cast<Task *>(arg);
    task->received++;
    task->mainThread = task->mainThread
                       && QThread::currentThread() == QCoreApplication::instance()->thread();
    std::printf("worker %d: %.*s\n", task->index, int(size), static_cast<const char *>(data));
    if (task->received == Messages && ++finishedTasks == Workers)
        QCoreApplication::quit();
}

// The plugin in dir whose metadata names our interface.
QString findPlugin(const QString &dir)
{
    const QDir d(dir);
    for (const QString &file : d.entryList(QDir::Files)) {
        QPluginLoader candidate(d.absoluteFilePath(file));
        if (candidate.metaData().value(QStringLiteral("IID")).toString()
            == QLatin1String(MPR_EVENT_LOOP_PROVIDER_IID))
            return candidate.fileName();
    }
    return QString();
}

int fail(const char *what, int rc)
{
    std::fprintf(stderr, "plugin: %s: %s\n", what, mpr_strerror(rc));
    return 1;
}

} // namespace

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    QString dir = QString::fromLocal8Bit(qgetenv("MPR_PLUGIN_DIR"));
    if (argc > 1)
        dir = QString::fromLocal8Bit(argv[1]);
    if (dir.isEmpty())
        dir = QStringLiteral(MPR_PLUGIN_DIR);

    const QString path = findPlugin(dir);
    if (path.isEmpty()) {
        std::fprintf(stderr, "plugin: no plugin with IID %s in %s\n",
                     MPR_EVENT_LOOP_PROVIDER_IID, qPrintable(dir));
        return 1;
    }
    QPluginLoader loader(path);
    mpr::EventLoopProvider *provider = qobject_cast<mpr::EventLoopProvider *>(loader.instance());
    if (!provider) {
        std::fprintf(stderr, "plugin: cannot load %s: %s\n", qPrintable(path),
                     qPrintable(loader.errorString()));
        return 1;
    }
    std::printf("loaded %s\n", qPrintable(QFileInfo(path).fileName()));

    mpr_router *router = nullptr;
    int rc = mpr_router_new(&router, provider->eventLoop());
    if (rc < 0)
        return fail("mpr_router_new", rc);
    rc = mpr_router_start(router);
    if (rc < 0)
        return fail("mpr_router_start", rc);

    // One pipe per worker thread; each thread starts, sends and stops its
    // sender, all from that thread, then frees it.
    Task tasks[Workers];
    std::vector<QThread *> threads;
    for (int i = 0; i < Workers; i++) {
        mpr_sender *sender = nullptr;
        rc = mpr_router_pipe(router, &sender, &tasks[i].receiver);
        if (rc < 0)
            return fail("mpr_router_pipe", rc);
        tasks[i].index = i;
        mpr_receiver_set_callback(tasks[i].receiver, onMessage, &tasks[i]);
        threads.push_back(QThread::create([sender, i] {
            int err = mpr_sender_start(sender);
            for (int m = 1; m <= Messages && err == 0; m++) {
                const QByteArray text = QStringLiteral("message %1 of %2 from thread %3")
                                            .arg(m).arg(Messages).arg(i).toUtf8();
                err = mpr_sender_send(sender, text.constData(), size_t(text.size()));
            }
            if (err == 0)
                err = mpr_sender_stop(sender);
            if (err < 0)
                std::fprintf(stderr, "plugin: worker %d: %s\n", i, mpr_strerror(err));
            mpr_sender_free(sender);
        }));
        threads.back()->start();
    }

    app.exec(); // until every message has been routed

    for (QThread *thread : threads) {
        thread->wait();
        delete thread;
    }
    int routed = 0;
    bool mainThread = true;
    for (Task &task : tasks) {
        routed += task.received;
        mainThread = mainThread && task.mainThread;
        mpr_router_close_pipe(router, task.receiver);
    }
    mpr_router_stop(router);
    mpr_router_free(router);
    std::printf("routed %d messages from %d threads through the plugin's Qt event loop%s\n",
                routed, Workers, mainThread ? ", all on the main thread" : "");
    return routed == Workers * Messages && mainThread ? 0 : 1;
}
