/*
 * consumer_qt.cpp - a Qt program outside the mprouter tree, built against
 * an installed mprouter-qt: a fork()ed worker sends one message, an
 * mpr::Receiver emits it on the main thread.
 *
 * Then it looks for the mprouter Qt plugin where Qt looks for plugins
 * (QCoreApplication::libraryPaths(), QT_PLUGIN_PATH first), in the folder
 * named after the Qt layer (mprouter-qt5 or mprouter-qt6), loads it and
 * asks it for the event loop.
 *
 * Prints "library: PATH" (the libmprouter-qtN it runs with), "version:
 * ...", "received: hello from worker" and "plugin: PATH"; exits 0 on
 * success.
 */
#include <QtCore/QCoreApplication>
#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QPluginLoader>
#include <QtCore/QTimer>

#include <eventloopprovider.h>
#include <mprouter_qt.h>

#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

static const QByteArray qtLayer = "mprouter-qt" + QByteArray::number(QT_VERSION_MAJOR);

// The file the loaded libmprouter-qtN comes from, from /proc/self/maps.
static void printLibrary()
{
    QFile maps(QStringLiteral("/proc/self/maps"));
    if (!maps.open(QIODevice::ReadOnly))
        return;
    for (const QByteArray &line : maps.readAll().split('\n')) {
        const int slash = line.indexOf('/');
        if (slash >= 0 && line.contains("/lib" + qtLayer + ".so")) {
            std::printf("library: %s\n", line.mid(slash).constData());
            return;
        }
    }
}

// The first plugin in a plugin folder's mprouter-qtN/ that gives the event
// loop; false if there is none.
static bool findPlugin()
{
    for (const QString &path : QCoreApplication::libraryPaths()) {
        const QDir dir(path + QLatin1Char('/') + QString::fromLatin1(qtLayer));
        for (const QString &file : dir.entryList(QDir::Files)) {
            QPluginLoader loader(dir.absoluteFilePath(file));
            if (loader.metaData().value(QStringLiteral("IID")).toString()
                != QLatin1String(MPR_EVENT_LOOP_PROVIDER_IID))
                continue;
            auto *provider = qobject_cast<mpr::EventLoopProvider *>(loader.instance());
            if (!provider || !provider->eventLoop()) {
                std::fprintf(stderr, "%s: %s\n", qPrintable(loader.fileName()),
                             qPrintable(loader.errorString()));
                return false;
            }
            std::printf("plugin: %s\n", qPrintable(loader.fileName()));
            return true;
        }
    }
    std::fprintf(stderr, "no %s plugin in %s\n", qtLayer.constData(),
                 qPrintable(QCoreApplication::libraryPaths().join(QLatin1Char(':'))));
    return false;
}

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    printLibrary();
    std::printf("version: %s (headers %s)\n", mpr_version(), MPR_VERSION_STRING);
    std::fflush(stdout);

    mpr::Router router;
    if (router.start() != 0)
        return 1;
    mpr_sender *sender = nullptr;
    mpr::Receiver *receiver = nullptr;
    if (router.pipe(&sender, &receiver) != 0)
        return 1;
    bool received = false;
    QObject::connect(receiver, &mpr::Receiver::messageReceived, [&](const QByteArray &m) {
        std::printf("received: %s\n", m.constData());
        received = true;
        QCoreApplication::exit(0);
    });
    // A guard against hanging, not a timing.
    QTimer::singleShot(60000, [] { QCoreApplication::exit(1); });

    const pid_t pid = fork();
    if (pid < 0)
        return 1;
    if (pid == 0) { // the worker
        const bool ok = mpr_sender_start(sender) == 0 &&
                        mpr_sender_send(sender, "hello from worker", 17) == 0 &&
                        mpr_sender_stop(sender) == 0;
        mpr_sender_free(sender);
        _exit(ok ? 0 : 1);
    }
    mpr_sender_free(sender); // the parent's copy

    app.exec();
    int status = 0;
    waitpid(pid, &status, 0);
    router.closePipe(receiver);
    router.stop();
    if (!received)
        std::fprintf(stderr, "no message\n");
    const bool plugin = findPlugin();
    return received && plugin && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                   std::strcmp(mpr_version(), MPR_VERSION_STRING) == 0
               ? 0
               : 1;
}
