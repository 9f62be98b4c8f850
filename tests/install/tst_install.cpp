/*
 * tst_install - `make install` into a temporary INSTALL_ROOT, then small
 * consumers outside the tree, built against the installed files and run:
 * a C program and a Qt program, each with pkg-config and a plain Makefile,
 * with qmake and the feature files, and with CMake and the packages. Each
 * consumer routes one message from a fork()ed worker and reports which
 * library it loaded; the Qt one also loads the installed Qt plugin.
 *
 * MPR_TEST_INSTALLED=1 in the environment: no staging; the test checks an
 * mprouter that is already installed into this build's folders (PREFIX,
 * LIBDIR, ... of install.pri), by `make install` or from the Debian
 * packages, and builds and runs the consumers with nothing set: no
 * PKG_CONFIG_PATH, QMAKEPATH, CMAKE_PREFIX_PATH, LD_LIBRARY_PATH or
 * QT_PLUGIN_PATH, as a user would. (tools/check.d/45-install.sh and
 * 50-debian.sh.)
 *
 * Long steps (install, builds) report progress with qInfo().
 */
#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QFileInfo>
#include <QtCore/QProcess>
#include <QtCore/QProcessEnvironment>
#include <QtCore/QRegularExpression>
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

// The environment for child builds and programs: no make state of the
// `make check` that runs this test, and none of the variables that tell
// compilers, linkers, build tools or Qt where to look.
QProcessEnvironment cleanEnvironment()
{
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    for (const char *name : { "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
                              "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "C_INCLUDE_PATH",
                              "CPLUS_INCLUDE_PATH", "QMAKEPATH", "QMAKEFEATURES",
                              "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR",
                              "CMAKE_PREFIX_PATH", "QT_PLUGIN_PATH", "CFLAGS", "CXXFLAGS",
                              "LDFLAGS", "LDLIBS" })
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

// The value of the line "key: VALUE" in output, "" if there is none.
QString field(const QString &output, const QString &key)
{
    const QRegularExpression re(QStringLiteral("^%1: (.*)$").arg(QRegularExpression::escape(key)),
                                QRegularExpression::MultilineOption);
    return re.match(output).captured(1).trimmed();
}

// The folder of file, with symbolic links resolved (a merged /usr makes
// /lib/... and /usr/lib/... the same folder).
QString canonicalFolder(const QString &file)
{
    return QFileInfo(QFileInfo(file).canonicalFilePath()).path();
}

const QString qtLib = QStringLiteral(MPR_QT_LIB_NAME); // mprouter-qt5 or mprouter-qt6
const QString qtMajor = QString::number(MPR_QT_MAJOR);

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
    void pkgConfig();
    void consumer_data();
    void consumer();

private:
    // Where an installed file is now: in INSTALL_ROOT, or where it was
    // installed for real (MPR_TEST_INSTALLED).
    QString at(const QString &path) const { return m_installed ? path : m_root.path() + path; }
    bool relocatePkgConfigFiles(QString *error);
    QProcessEnvironment pkgConfigEnvironment() const;

    bool m_installed = false;
    QString m_pkgConfigDir; // staged: the .pc files, with INSTALL_ROOT in their prefix
    QTemporaryDir m_root;   // INSTALL_ROOT
    QTemporaryDir m_work;   // consumer builds
};

// Staged: copies of the installed .pc files whose folders (prefix, and
// libdir and includedir when they are not below it) are below
// INSTALL_ROOT, as a user relocates a moved installation. (Not
// PKG_CONFIG_SYSROOT_DIR: it would move Qt's flags too.)
bool tst_Install::relocatePkgConfigFiles(QString *error)
{
    const QDir from(at(QStringLiteral(MPR_LIBDIR "/pkgconfig")));
    m_pkgConfigDir = m_work.path() + QStringLiteral("/pkgconfig");
    if (!QDir().mkpath(m_pkgConfigDir)) {
        *error = QStringLiteral("cannot make ") + m_pkgConfigDir;
        return false;
    }
    const QRegularExpression prefix(QStringLiteral("^(prefix|libdir|includedir)=/"),
                                    QRegularExpression::MultilineOption);
    for (const QString &name : from.entryList({ QStringLiteral("*.pc") }, QDir::Files)) {
        QFile in(from.filePath(name));
        QFile out(m_pkgConfigDir + QLatin1Char('/') + name);
        if (!in.open(QIODevice::ReadOnly) || !out.open(QIODevice::WriteOnly)) {
            *error = QStringLiteral("cannot copy ") + in.fileName();
            return false;
        }
        QString text = QString::fromUtf8(in.readAll());
        if (!text.contains(QRegularExpression(QStringLiteral("^prefix=/"),
                                              QRegularExpression::MultilineOption))) {
            *error = in.fileName() + QStringLiteral(" has no prefix=/...");
            return false;
        }
        text.replace(prefix, QStringLiteral("\\1=") + m_root.path() + QLatin1Char('/'));
        out.write(text.toUtf8());
    }
    return true;
}

// The environment for pkg-config: nothing when installed for real, else
// the relocated .pc files.
QProcessEnvironment tst_Install::pkgConfigEnvironment() const
{
    QProcessEnvironment env = cleanEnvironment();
    if (!m_installed)
        env.insert(QStringLiteral("PKG_CONFIG_PATH"), m_pkgConfigDir);
    return env;
}

void tst_Install::initTestCase()
{
#ifdef MPR_SANITIZED_BUILD
    QSKIP("sanitizer build: its libraries cannot be linked into plain programs");
#endif
    QVERIFY(m_work.isValid());
    m_installed = !qEnvironmentVariableIsEmpty("MPR_TEST_INSTALLED");
    if (m_installed) {
        qInfo("testing the mprouter installed in " MPR_PREFIX ", libraries in " MPR_LIBDIR
              " (MPR_TEST_INSTALLED)");
        QVERIFY2(QFileInfo::exists(QStringLiteral(MPR_LIBDIR "/libmprouter.so")),
                 "MPR_TEST_INSTALLED is set, but no " MPR_LIBDIR "/libmprouter.so is installed");
        return;
    }
    QVERIFY(m_root.isValid());
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
    QString error;
    QVERIFY2(relocatePkgConfigFiles(&error), qPrintable(error));
}

void tst_Install::installedFiles_data()
{
    QTest::addColumn<QString>("path");
    const QString inc = QStringLiteral(MPR_INCLUDEDIR "/mprouter/");
    const QString qtInc = inc + QStringLiteral("qt") + qtMajor + QLatin1Char('/');
    const QString lib = QStringLiteral(MPR_LIBDIR "/");
    const QString features = QStringLiteral(MPR_FEATUREDIR "/");
    const QString v = QStringLiteral(MPR_VERSION_TEXT);
    const QString major = v.section(QLatin1Char('.'), 0, 0);
    QStringList paths;
    // The C core: the same files from a Qt 5 and a Qt 6 build.
    for (const char *h : { "mprouter.h", "common.h", "event_loop.h", "fd_loop.h", "router.h",
                           "sender.h", "version.h", "qt.h" })
        paths << inc + QLatin1String(h);
    for (const QString &suffix : { QString(), QLatin1Char('.') + major, QLatin1Char('.') + v })
        paths << lib + QStringLiteral("libmprouter.so") + suffix;
    paths << lib + QStringLiteral("pkgconfig/mprouter.pc")
          << lib + QStringLiteral("cmake/mprouter/mprouterConfig.cmake")
          << lib + QStringLiteral("cmake/mprouter/mprouterConfigVersion.cmake")
          << features + QStringLiteral("mprouter.prf")
          << features + QStringLiteral("mprouter_qt.prf");
    // The Qt layer: every name carries the Qt major version, so the
    // other major's files can sit next to these.
    for (const char *h : { "mprouter_qt.h", "mprouter_qt_global.h", "eventloopprovider.h", "executor_qt.h" })
        paths << qtInc + QLatin1String(h);
    for (const QString &suffix : { QString(), QLatin1Char('.') + major, QLatin1Char('.') + v })
        paths << lib + QStringLiteral("lib") + qtLib + QStringLiteral(".so") + suffix;
    paths << lib + QStringLiteral("pkgconfig/") + qtLib + QStringLiteral(".pc")
          << lib + QStringLiteral("cmake/%1/%1Config.cmake").arg(qtLib)
          << lib + QStringLiteral("cmake/%1/%1ConfigVersion.cmake").arg(qtLib)
          << features + QStringLiteral("mprouter_qt") + qtMajor + QStringLiteral(".prf")
          << QStringLiteral(MPR_PLUGINDIR "/libmprouterqtplugin.so");
    for (const QString &path : paths)
        QTest::newRow(qPrintable(path)) << path;
}

void tst_Install::installedFiles()
{
    QFETCH(QString, path);
    QVERIFY2(QFileInfo::exists(at(path)), qPrintable(at(path) + QStringLiteral(" missing")));
}

void tst_Install::noBuildTreeRunpath_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<QString>("expected"); // the RUNPATH wanted, "" for none
    const QString v = QStringLiteral(MPR_VERSION_TEXT);
    // A system library folder needs no RUNPATH (and Debian forbids one).
    const bool system = MPR_LIBDIR_IS_SYSTEM;
    QTest::newRow("libmprouter") << QStringLiteral(MPR_LIBDIR "/libmprouter.so.") + v << QString();
    QTest::newRow("libmprouter-qtN")
        << QStringLiteral(MPR_LIBDIR "/lib") + qtLib + QStringLiteral(".so.") + v
        << (system ? QString() : QStringLiteral("$ORIGIN"));
    QTest::newRow("plugin") << QStringLiteral(MPR_PLUGINDIR "/libmprouterqtplugin.so")
                            << (system ? QString() : QStringLiteral(MPR_LIBDIR));
}

void tst_Install::noBuildTreeRunpath()
{
    QFETCH(QString, path);
    QFETCH(QString, expected);
    const Run r = run(m_work.path(), QStringLiteral("readelf"), { QStringLiteral("-d"), at(path) },
                      cleanEnvironment());
    QVERIFY2(r.ok, qPrintable(r.output));
    QVERIFY2(r.output.contains(QStringLiteral("(NEEDED)")), qPrintable(r.output));
    QString runpath;
    const QRegularExpression re(QStringLiteral("\\((?:RUNPATH|RPATH)\\)\\s+Library r(?:un)?path: \\[([^]]*)\\]"));
    const QRegularExpressionMatch m = re.match(r.output);
    if (m.hasMatch())
        runpath = m.captured(1);
    const QString buildDir = QStringLiteral(MPR_BUILD_DIR); // "" when built alone (50-debian.sh)
    QVERIFY2(buildDir.isEmpty() || !runpath.contains(buildDir), qPrintable(runpath));
    QCOMPARE(runpath, expected);
}

void tst_Install::pkgConfig()
{
    if (QStandardPaths::findExecutable(QStringLiteral("pkg-config")).isEmpty())
        QSKIP("pkg-config is not installed");
    const QProcessEnvironment env = pkgConfigEnvironment();
    for (const QString &module : { QStringLiteral("mprouter"), qtLib }) {
        const Run r = run(m_work.path(), QStringLiteral("pkg-config"),
                          { QStringLiteral("--modversion"), module }, env);
        QVERIFY2(r.ok, qPrintable(r.output));
        QCOMPARE(r.output.trimmed(), QStringLiteral(MPR_VERSION_TEXT));
    }
    const Run flags = run(m_work.path(), QStringLiteral("pkg-config"),
                          { QStringLiteral("--cflags"), QStringLiteral("--libs"), qtLib }, env);
    QVERIFY2(flags.ok, qPrintable(flags.output));
    const QStringList words = flags.output.split(QLatin1Char(' '), Qt::SkipEmptyParts);
    for (const QString &word : { QStringLiteral("-l") + qtLib, QStringLiteral("-lmprouter"),
                                 QStringLiteral("-I") + at(QStringLiteral(MPR_INCLUDEDIR "/mprouter/qt"))
                                     + qtMajor })
        QVERIFY2(words.contains(word), qPrintable(word + QStringLiteral(" not in: ") + flags.output));
    // Qt's headers refuse code that is not position-independent when Qt
    // was built with -reduce-relocations (Debian's Qt 5).
    if (MPR_PC_FPIC)
        QVERIFY2(words.contains(QStringLiteral("-fPIC")), qPrintable(flags.output));
}

void tst_Install::consumer_data()
{
    QTest::addColumn<QString>("tool");
    QTest::addColumn<QString>("target");      // make target or .pro file
    QTest::addColumn<QStringList>("programs"); // built this way, each run
    const QString c = QStringLiteral("consumer");
    const QString qt = QStringLiteral("consumer_qt");
    QTest::newRow("C: pkg-config + Makefile") << QStringLiteral("make") << c << QStringList{ c };
    QTest::newRow("Qt: pkg-config + Makefile") << QStringLiteral("make") << qt << QStringList{ qt };
    QTest::newRow("C: qmake, CONFIG += mprouter")
        << QStringLiteral("qmake") << c + QStringLiteral(".pro") << QStringList{ c };
    QTest::newRow("Qt: qmake, CONFIG += mprouter_qt")
        << QStringLiteral("qmake") << qt + QStringLiteral(".pro") << QStringList{ qt };
    QTest::newRow("C and Qt: CMake, find_package")
        << QStringLiteral("cmake") << QString() << QStringList{ c, qt };
}

void tst_Install::consumer()
{
    QFETCH(QString, tool);
    QFETCH(QString, target);
    QFETCH(QStringList, programs);

    if (tool != QLatin1String("qmake") && QStandardPaths::findExecutable(tool).isEmpty())
        QSKIP(qPrintable(tool + QStringLiteral(" is not installed")));
    if (tool == QLatin1String("make") && QStandardPaths::findExecutable(QStringLiteral("pkg-config")).isEmpty())
        QSKIP("pkg-config is not installed");

    const QString libdir = at(QStringLiteral(MPR_LIBDIR));
    const QString dir = m_work.path() + QLatin1Char('/') + tool + QLatin1Char('-') +
                        (target.isEmpty() ? QStringLiteral("all") : target);
    QString error;
    QVERIFY2(copyConsumer(dir, &error), qPrintable(error));

    // Installed for real: nothing is set, for the build or the programs.
    QProcessEnvironment env = cleanEnvironment();
    QProcessEnvironment runEnv = cleanEnvironment();
    if (!m_installed)
        runEnv.insert(QStringLiteral("QT_PLUGIN_PATH"),
                      at(QFileInfo(QStringLiteral(MPR_PLUGINDIR)).path()));
    QString binDir = dir;
    QList<QPair<QString, QStringList>> steps;
    if (tool == QLatin1String("make")) {
        env = pkgConfigEnvironment();
        if (!m_installed) // staged: not where the dynamic linker looks
            runEnv.insert(QStringLiteral("LD_LIBRARY_PATH"), libdir);
        steps << qMakePair(QStringLiteral("make"),
                           QStringList{ target, QStringLiteral("QT_MAJOR=") + qtMajor });
    } else if (tool == QLatin1String("qmake")) {
        // The feature files find the installation from their own folder
        // and give programs an RPATH to it unless it is a system folder.
        if (!m_installed)
            env.insert(QStringLiteral("QMAKEPATH"), at(QStringLiteral(MPR_FEATUREDIR "/../..")));
        steps << qMakePair(QStringLiteral(MPR_QMAKE),
                           QStringList{ QStringLiteral("-o"), QStringLiteral("Makefile.qmake"), target })
              << qMakePair(QStringLiteral("make"),
                           QStringList{ QStringLiteral("-f"), QStringLiteral("Makefile.qmake") });
    } else {
        // CMake gives the programs a build RPATH to the imported libraries.
        binDir = dir + QStringLiteral("/build");
        QStringList configure{ QStringLiteral("-S"), dir, QStringLiteral("-B"), binDir,
                               QStringLiteral("-DMPR_VERSION=" MPR_VERSION_TEXT),
                               QStringLiteral("-DMPR_QT_MAJOR=") + qtMajor };
        if (!m_installed)
            configure << QStringLiteral("-DCMAKE_PREFIX_PATH=") + at(QStringLiteral(MPR_PREFIX));
        steps << qMakePair(QStringLiteral("cmake"), configure)
              << qMakePair(QStringLiteral("cmake"), QStringList{ QStringLiteral("--build"), binDir });
    }

    for (const auto &step : steps) {
        qInfo("%s: %s %s", qPrintable(tool), qPrintable(step.first),
              qPrintable(step.second.join(QLatin1Char(' '))));
        const Run r = run(dir, step.first, step.second, env);
        QVERIFY2(r.ok, qPrintable(r.output));
        // Every warning of the build is fixed, in the consumers too.
        QVERIFY2(!r.output.contains(QStringLiteral("warning:")), qPrintable(r.output));
    }

    for (const QString &program : programs) {
        qInfo("%s: running %s", qPrintable(tool), qPrintable(program));
        const Run r = run(dir, binDir + QLatin1Char('/') + program, {}, runEnv);
        QVERIFY2(r.ok, qPrintable(r.output));
        QVERIFY2(r.output.contains(QStringLiteral("received: hello from worker")), qPrintable(r.output));
        QVERIFY2(r.output.contains(QStringLiteral("version: " MPR_VERSION_TEXT " (headers " MPR_VERSION_TEXT ")")),
                 qPrintable(r.output));
        // It ran with the installed library, not the build tree's.
        const QString library = field(r.output, QStringLiteral("library"));
        QVERIFY2(!library.isEmpty(), qPrintable(r.output));
        QCOMPARE(canonicalFolder(library), QFileInfo(libdir).canonicalFilePath());
        if (program == QLatin1String("consumer_qt")) {
            // ... and found the installed plugin where Qt looks.
            const QString plugin = field(r.output, QStringLiteral("plugin"));
            QVERIFY2(!plugin.isEmpty(), qPrintable(r.output));
            QCOMPARE(canonicalFolder(plugin), QFileInfo(at(QStringLiteral(MPR_PLUGINDIR))).canonicalFilePath());
        }
    }
}

QTEST_GUILESS_MAIN(tst_Install)
#include "tst_install.moc"
