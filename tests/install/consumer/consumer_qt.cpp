/*
 * consumer_qt.cpp - a Qt program outside the mprouter tree, built against
 * an installed mprouter-qt: a fork()ed worker sends one message, an
 * mpr::Receiver emits it on the main thread.
 *
 * Prints "library: PATH" (the libmprouter-qt it runs with), "version: ..."
 * and "received: hello from worker"; exits 0 on success.
 */
#include <QtCore/QCoreApplication>
#include <QtCore/QFile>
#include <QtCore/QTimer>

#include <mprouter_qt.h>

#include <cstdio>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

// The file the loaded libmprouter-qt comes from, from /proc/self/maps.
static void printLibrary()
{
    QFile maps(QStringLiteral("/proc/self/maps"));
    if (!maps.open(QIODevice::ReadOnly))
        return;
    for (const QByteArray &line : maps.readAll().split('\n')) {
        const int slash = line.indexOf('/');
        if (slash >= 0 && line.contains("/libmprouter-qt.so")) {
            std::printf("library: %s\n", line.mid(slash).constData());
            return;
        }
    }
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
    return received && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                   std::strcmp(mpr_version(), MPR_VERSION_STRING) == 0
               ? 0
               : 1;
}
