/*
 * tst_install - `make install` into a temporary INSTALL_ROOT, then a small
 * consumer outside the tree, built against the installed files three ways
 * and run: pkg-config with a plain Makefile (C), qmake with the feature
 * file (Qt), CMake with the package (C and Qt). Each consumer routes one
 * message from a fork()ed worker and reports which library it loaded.
 *
 * Long steps (install, builds) report progress with qInfo().
 */
#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QFileInfo>
#include <QtCore/QProcess>
#include <QtCore/QProcessEnvironment>
#include <QtCore/QStandardPaths>
#include <QtCore/QTemporaryDir>
#include <QtTest/QtTest>

namespace {

struct Run
{
    bool ok = false;
    QString output;
};

// Runs program with args in dir; a 10-minute guard against hanging (not a
// timing: builds on a loaded machine may take long).
Run run(const QString &dir, const QString &program, const QStringList &args,
        const QProcessEnvironment &env)
{
    QProcess p;
    p.setWorkingDirectory(dir);
    p.setProcessEnvironment(env);
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(program, args);
    Run r;
    if (!p.waitForStarted()) {
        r.output = program + QStringLiteral(": ") + p.errorString();
        return r;
    }
    p.waitForFinished(10 * 60 * 1000);
    r.output = QString::fromLocal8Bit(p.readAll());
    r.ok = p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0;
    if (!r.ok)
        r.output = QStringLiteral("%1 %2 failed in %3:\n%4")
                       .arg(program, args.join(QLatin1Char(' ')), dir, r.output);
    return r;
}

// The environment for child builds: no make state of the `make check`
// that runs this test, no library path of its own.
QProcessEnvironment cleanEnvironment()
{
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    for (const char *name : { "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                              "LD_LIBRARY_PATH", "QMAKEPATH", "PKG_CONFIG_PATH",
                              "CMAKE_PREFIX_PATH" })
        env.remove(QString::fromLatin1(name));
    env.insert(QStringLiteral("LC_ALL"), QStringLiteral("C"));
    return env;
}

bool copyConsumer(const QString &to, QString *error)
{
    QDir src(QStringLiteral(MPR_CONSUMER_DIR));
    if (!QDir().mkpath(to)) {
        *error = QStringLiteral("cannot make ") + to;
        return false;
    }
    const QStringList files = src.entryList(QDir::Files);
    for (const QString &name : files) {
        if (!QFile::copy(src.filePath(name), to + QLatin1Char('/') + name)) {
            *error = QStringLiteral("cannot copy ") + name;
            return false;
        }
    }
    return true;
}

} // namespace

class tst_Install : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void installedFiles_data();
    void installedFiles();
    void noBuildTreeRunpath_data();
    void noBuildTreeRunpath();
    void pkgConfigVersion();
    void consumer_data();
    void consumer();

private:
    QString staged(const QString &path) const { return m_root.path() + path; }

    QTemporaryDir m_root;   // INSTALL_ROOT
    QTemporaryDir m_work;   // consumer builds
};

void tst_Install::initTestCase()
{
#ifdef MPR_SANITIZED_BUILD
    QSKIP("sanitizer build: its libraries cannot be linked into plain programs");
#endif
    QVERIFY(m_root.isValid());
    QVERIFY(m_work.isValid());
    // The folders with something to install; tests/ and examples/ install
    // nothing (CONFIG += no_testcase_installs in .qmake.conf).
    for (const char *sub : { "src", "qtpingee", "packaging" }) {
        const QString dir = QStringLiteral(MPR_BUILD_DIR "/") + QLatin1String(sub);
        qInfo("make install in %s", qPrintable(dir));
        const Run r = run(dir, QStringLiteral("make"),
                          { QStringLiteral("-s"), QStringLiteral("install"),
                            QStringLiteral("INSTALL_ROOT=") + m_root.path() },
                          cleanEnvironment());
        QVERIFY2(r.ok, qPrintable(r.output));
    }
}

void tst_Install::installedFiles_data()
{
    QTest::addColumn<QString>("path");
    const QString inc = QStringLiteral(MPR_INCLUDEDIR);
    const QString lib = QStringLiteral(MPR_LIBDIR);
    const QString v = QStringLiteral(MPR_VERSION_TEXT);
    const QString major = v.section(QLatin1Char('.'), 0, 0);
    const QStringList paths = {
        inc + QStringLiteral("/mprouter/mprouter.h"),
        inc + QStringLiteral("/mprouter/common.h"),
        inc + QStringLiteral("/mprouter/event_loop.h"),
        inc + QStringLiteral("/mprouter/fd_loop.h"),
        inc + QStringLiteral("/mprouter/router.h"),
        inc + QStringLiteral("/mprouter/sender.h"),
        inc + QStringLiteral("/mprouter/version.h"),
        inc + QStringLiteral("/mprouter/qt.h"),
        inc + QStringLiteral("/mprouter/qt/mprouter_qt.h"),
        inc + QStringLiteral("/mprouter/qt/mprouter_qt_global.h"),
        inc + QStringLiteral("/mprouter/qt/eventloopprovider.h"),
        lib + QStringLiteral("/libmprouter.so"),
        lib + QStringLiteral("/libmprouter.so.") + major,
        lib + QStringLiteral("/libmprouter.so.") + v,
        lib + QStringLiteral("/libmprouter-qt.so"),
        lib + QStringLiteral("/libmprouter-qt.so.") + major,
        lib + QStringLiteral("/libmprouter-qt.so.") + v,
        lib + QStringLiteral("/pkgconfig/mprouter.pc"),
        lib + QStringLiteral("/pkgconfig/mprouter-qt.pc"),
        lib + QStringLiteral("/cmake/mprouter/mprouterConfig.cmake"),
        lib + QStringLiteral("/cmake/mprouter/mprouterConfigVersion.cmake"),
        QStringLiteral(MPR_FEATUREDIR "/mprouter.prf"),
        QStringLiteral(MPR_FEATUREDIR "/mprouter_qt.prf"),
        QStringLiteral(MPR_PLUGINDIR "/libmprouterqtplugin.so"),
    };
    for (const QString &path : paths)
        QTest::newRow(qPrintable(path)) << path;
}

void tst_Install::installedFiles()
{
    QFETCH(QString, path);
    QVERIFY2(QFileInfo::exists(staged(path)), qPrintable(staged(path) + QStringLiteral(" missing")));
}

void tst_Install::noBuildTreeRunpath_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("expected"); // the RUNPATH wanted, "" for none
    const QString v = QStringLiteral(MPR_VERSION_TEXT);
    QTest::newRow("libmprouter") << QStringLiteral(MPR_LIBDIR "/libmprouter.so.") + v << QString();
    QTest::newRow("libmprouter-qt") << QStringLiteral(MPR_LIBDIR "/libmprouter-qt.so.") + v
                                    << QStringLiteral("$ORIGIN");
    QTest::newRow("plugin") << QStringLiteral(MPR_PLUGINDIR "/libmprouterqtplugin.so")
                            << QStringLiteral(MPR_LIBDIR);
}

void tst_Install::noBuildTreeRunpath()
{
    QFETCH(QString, path);
    QFETCH(QString, expected);
    const Run r = run(m_work.path(), QStringLiteral("readelf"), { QStringLiteral("-d"), staged(path) },
                      cleanEnvironment());
    QVERIFY2(r.ok, qPrintable(r.output));
    QVERIFY2(r.output.contains(QStringLiteral("(NEEDED)")), qPrintable(r.output));
    QString runpath;
    const QRegularExpression re(QStringLiteral("\\((?:RUNPATH|RPATH)\\)\\s+Library r(?:un)?path: \\[([^]]*)\\]"));
    const QRegularExpressionMatch m = re.match(r.output);
    if (m.hasMatch())
        runpath = m.captured(1);
    QVERIFY2(!runpath.contains(QStringLiteral(MPR_BUILD_DIR)), qPrintable(runpath));
    QCOMPARE(runpath, expected);
}

void tst_Install::pkgConfigVersion()
{
    if (QStandardPaths::findExecutable(QStringLiteral("pkg-config")).isEmpty())
        QSKIP("pkg-config is not installed");
    QProcessEnvironment env = cleanEnvironment();
    env.insert(QStringLiteral("PKG_CONFIG_PATH"), staged(QStringLiteral(MPR_LIBDIR "/pkgconfig")));
    env.insert(QStringLiteral("PKG_CONFIG_SYSROOT_DIR"), m_root.path());
    for (const char *module : { "mprouter", "mprouter-qt" }) {
        const Run r = run(m_work.path(), QStringLiteral("pkg-config"),
                          { QStringLiteral("--modversion"), QLatin1String(module) }, env);
        QVERIFY2(r.ok, qPrintable(r.output));
        QCOMPARE(r.output.trimmed(), QStringLiteral(MPR_VERSION_TEXT));
    }
    const Run flags = run(m_work.path(), QStringLiteral("pkg-config"),
                          { QStringLiteral("--cflags"), QStringLiteral("--libs"),
                            QStringLiteral("mprouter-qt") }, env);
    QVERIFY2(flags.ok, qPrintable(flags.output));
    QVERIFY2(flags.output.contains(QStringLiteral("-lmprouter-qt")), qPrintable(flags.output));
    QVERIFY2(flags.output.contains(QStringLiteral("-lmprouter ")) ||
                 flags.output.trimmed().endsWith(QStringLiteral("-lmprouter")),
             qPrintable(flags.output));
    QVERIFY2(flags.output.contains(staged(QStringLiteral(MPR_INCLUDEDIR "/mprouter/qt"))),
             qPrintable(flags.output));
}

void tst_Install::consumer_data()
{
    QTest::addColumn<QString>("tool");
    QTest::addColumn<QStringList>("programs"); // built by this way, each run
    QTest::newRow("pkg-config + Makefile") << QStringLiteral("pkg-config")
                                           << QStringList{ QStringLiteral("consumer") };
    QTest::newRow("qmake + CONFIG += mprouter_qt") << QStringLiteral("qmake")
                                                   << QStringList{ QStringLiteral("consumer_qt") };
    QTest::newRow("CMake + find_package") << QStringLiteral("cmake")
                                          << QStringList{ QStringLiteral("consumer"),
                                                          QStringLiteral("consumer_qt") };
}

void tst_Install::consumer()
{
    QFETCH(QString, tool);
    QFETCH(QStringList, programs);

    const QString prefix = staged(QStringLiteral(MPR_PREFIX));
    const QString libdir = staged(QStringLiteral(MPR_LIBDIR));
    const QString dir = m_work.path() + QLatin1Char('/') + tool;
    QString error;
    QVERIFY2(copyConsumer(dir, &error), qPrintable(error));

    QProcessEnvironment env = cleanEnvironment();
    QProcessEnvironment runEnv = cleanEnvironment();
    QString binDir = dir;
    QList<QPair<QString, QStringList>> steps;
    if (tool == QLatin1String("pkg-config")) {
        if (QStandardPaths::findExecutable(tool).isEmpty())
            QSKIP("pkg-config is not installed");
        env.insert(QStringLiteral("PKG_CONFIG_PATH"), libdir + QStringLiteral("/pkgconfig"));
        env.insert(QStringLiteral("PKG_CONFIG_SYSROOT_DIR"), m_root.path());
        steps << qMakePair(QStringLiteral("make"), QStringList{ QStringLiteral("consumer") });
        runEnv.insert(QStringLiteral("LD_LIBRARY_PATH"), libdir); // no RPATH from pkg-config
    } else if (tool == QLatin1String("qmake")) {
        // The feature file finds the installation from its own folder
        // and gives the program an RPATH to it.
        env.insert(QStringLiteral("QMAKEPATH"), staged(QStringLiteral(MPR_FEATUREDIR "/../..")));
        steps << qMakePair(QStringLiteral(MPR_QMAKE), QStringList{ QStringLiteral("consumer_qt.pro") })
              << qMakePair(QStringLiteral("make"), QStringList{});
    } else {
        if (QStandardPaths::findExecutable(tool).isEmpty())
            QSKIP("cmake is not installed");
        // CMake gives the programs a build RPATH to the imported libraries.
        binDir = dir + QStringLiteral("/build");
        steps << qMakePair(QStringLiteral("cmake"),
                           QStringList{ QStringLiteral("-S"), dir, QStringLiteral("-B"), binDir,
                                        QStringLiteral("-DCMAKE_PREFIX_PATH=") + prefix,
                                        QStringLiteral("-DMPR_VERSION=" MPR_VERSION_TEXT),
                                        QStringLiteral("-DQT_DEFAULT_MAJOR_VERSION=%1").arg(MPR_QT_MAJOR) })
              << qMakePair(QStringLiteral("cmake"), QStringList{ QStringLiteral("--build"), binDir });
    }

    for (const auto &step : steps) {
        qInfo("%s: %s %s", qPrintable(tool), qPrintable(step.first),
              qPrintable(step.second.join(QLatin1Char(' '))));
        const Run r = run(dir, step.first, step.second, env);
        QVERIFY2(r.ok, qPrintable(r.output));
    }

    for (const QString &program : programs) {
        qInfo("%s: running %s", qPrintable(tool), qPrintable(program));
        const Run r = run(dir, binDir + QLatin1Char('/') + program, {}, runEnv);
        QVERIFY2(r.ok, qPrintable(r.output));
        QVERIFY2(r.output.contains(QStringLiteral("received: hello from worker")), qPrintable(r.output));
        QVERIFY2(r.output.contains(QStringLiteral("version: " MPR_VERSION_TEXT " (headers " MPR_VERSION_TEXT ")")),
                 qPrintable(r.output));
        // It ran with the installed library, not the build tree's.
        QVERIFY2(r.output.contains(QStringLiteral("library: ") + libdir + QLatin1Char('/')),
                 qPrintable(r.output));
    }
}

QTEST_GUILESS_MAIN(tst_Install)
#include "tst_install.moc"
