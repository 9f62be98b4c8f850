/*
 * tst_examples_programs - run the console and plugin examples as separate
 * processes: each exits 0, prints its progress lines and its result, and
 * no warning.
 */
#include <QtCore/QProcess>
#include <QtCore/QRegularExpression>
#include <QtTest/QtTest>

class tst_ExamplesPrograms : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void console();
    void plugin();
    void pluginMissing();
};

namespace {

struct Run
{
    int exitCode = -1;
    QStringList lines;
    QString err;
};

Run run(const QString &program, const QStringList &args = {})
{
    QProcess process;
    process.start(QStringLiteral(EXAMPLES_DIR "/") + program, args);
    Run r;
    // Generous deadline: only against a hang, not a timing check.
    if (!process.waitForFinished(120000)) {
        process.kill();
        process.waitForFinished();
        r.err = QStringLiteral("did not finish");
        return r;
    }
    if (process.exitStatus() == QProcess::NormalExit)
        r.exitCode = process.exitCode();
    r.lines = QString::fromUtf8(process.readAllStandardOutput()).split(QLatin1Char('\n'),
                                                                       Qt::SkipEmptyParts);
    r.err += QString::fromUtf8(process.readAllStandardError());
    return r;
}

} // namespace

// Four forked workers, a poll() loop: every worker reports 10% steps up to
// "100% done", and the total is pi(2,000,000) = 148,933.
void tst_ExamplesPrograms::console()
{
    const Run r = run(QStringLiteral("console/console"));
    QVERIFY2(r.exitCode == 0, qPrintable(r.err + r.lines.join(QLatin1Char('\n'))));
    QVERIFY2(r.err.isEmpty(), qPrintable(r.err));
    QCOMPARE(r.lines.last(), QStringLiteral("primes below 2000000: 148933"));
    for (int w = 0; w < 4; w++) {
        const QStringList mine = r.lines.filter(
            QRegularExpression(QStringLiteral("^worker %1: ").arg(w)));
        QVERIFY2(mine.size() >= 2, qPrintable(r.lines.join(QLatin1Char('\n'))));
        QCOMPARE(mine.last(), QStringLiteral("worker %1: 100% done").arg(w));
        // In order: the percentages only grow.
        int last = -1;
        for (const QString &line : mine) {
            const int percent = line.section(QLatin1Char(':'), 1).section(QLatin1Char('%'), 0, 0)
                                    .trimmed().toInt();
            QVERIFY2(percent > last, qPrintable(line));
            last = percent;
        }
    }
}

// The plugin found in the build tree; four threads x five messages, all
// routed on the main thread, in order per thread.
void tst_ExamplesPrograms::plugin()
{
    const Run r = run(QStringLiteral("plugin/plugin"));
    QVERIFY2(r.exitCode == 0, qPrintable(r.err + r.lines.join(QLatin1Char('\n'))));
    QVERIFY2(r.err.isEmpty(), qPrintable(r.err));
    QVERIFY2(r.lines.first().startsWith(QStringLiteral("loaded ")), qPrintable(r.lines.first()));
    QCOMPARE(r.lines.last(),
             QStringLiteral("routed 20 messages from 4 threads through the plugin's Qt event "
                            "loop, all on the main thread"));
    for (int t = 0; t < 4; t++) {
        QStringList expected;
        for (int m = 1; m <= 5; m++)
            expected << QStringLiteral("worker %1: message %2 of 5 from thread %1").arg(t).arg(m);
        QCOMPARE(r.lines.filter(QStringLiteral("worker %1: ").arg(t)), expected);
    }
}

// A folder without the plugin: a clear error and exit status 1.
void tst_ExamplesPrograms::pluginMissing()
{
    QTemporaryDir empty;
    QVERIFY(empty.isValid());
    const Run r = run(QStringLiteral("plugin/plugin"), {empty.path()});
    QCOMPARE(r.exitCode, 1);
    QVERIFY2(r.err.contains(QStringLiteral("no plugin with IID org.mprouter.EventLoopProvider/1.0")),
             qPrintable(r.err));
}

QTEST_GUILESS_MAIN(tst_ExamplesPrograms)
#include "tst_examples_programs.moc"
