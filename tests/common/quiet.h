// quiet.h - waitForQuietThreads(), for the tests that fork (header only:
// tests/common/netns.cpp is also linked without testsupport.cpp).
#ifndef MPR_TESTS_QUIET_H
#define MPR_TESTS_QUIET_H

#include <QDir>
#include <QElapsedTimer>
#include <QFile>

#include <unistd.h>

namespace mprtest {

// Under AddressSanitizer (GCC 12), before a fork: wait (at most 2 s) until
// every other thread of this process is asleep, so that none is inside
// ASan's allocator when fork() copies its locks: that allocator has no
// fork handler, and a child that inherits one of its locks held hangs in
// its first malloc (ForkGate in testsupport.h). The router's threads settle
// within milliseconds of a start or a connection. A no-op in other builds,
// where malloc is fork-safe.
inline void waitForQuietThreads()
{
#if defined(__SANITIZE_ADDRESS__)
    const QString self = QString::number(::gettid());
    QElapsedTimer t;
    t.start();
    for (int quiet = 0; quiet < 3 && t.elapsed() < 2000;) {
        bool asleep = true;
        const QStringList tids = QDir(QStringLiteral("/proc/self/task")).entryList(QDir::Dirs | QDir::NoDotAndDotDot);
        for (const QString &tid : tids) {
            if (tid == self)
                continue;
            QFile f(QStringLiteral("/proc/self/task/%1/stat").arg(tid));
            if (!f.open(QIODevice::ReadOnly))
                continue; // it has just ended
            const QByteArray st = f.readAll();
            const int paren = st.lastIndexOf(')');
            if (paren < 0 || paren + 2 >= st.size() || st[paren + 2] != 'S') {
                asleep = false;
                break;
            }
        }
        quiet = asleep ? quiet + 1 : 0;
        if (!asleep)
            ::usleep(500); // a bounded poll: the 2 s above
    }
#endif
}

} // namespace mprtest

#endif
