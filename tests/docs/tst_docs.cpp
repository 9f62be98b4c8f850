/*
 * tst_docs - Doxygen (docs/Doxyfile, as `make docs` runs it, plus XML
 * output) must finish without a single warning, and every public function
 * and MPR_ macro declared in the headers of include/mprouter/, and the Qt layer's
 * public classes, must have a description in its output. (Doxygen alone
 * says nothing about the members of a header that lacks a file comment;
 * the second check catches that.)
 */
#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QProcess>
#include <QtCore/QRegularExpression>
#include <QtCore/QSet>
#include <QtCore/QStandardPaths>
#include <QtCore/QTemporaryDir>
#include <QtCore/QXmlStreamReader>
#include <QtTest/QtTest>

class tst_Docs : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void noWarnings();
    void documented_data();
    void documented();

private:
    QTemporaryDir m_out;
    QString m_output;               // doxygen's stdout and stderr
    int m_exitCode = -1;
    QSet<QString> m_documented;     // members and compounds with a description
};

void tst_Docs::initTestCase()
{
    if (QStandardPaths::findExecutable(QStringLiteral("doxygen")).isEmpty())
        QSKIP("doxygen is not installed");
    QVERIFY(m_out.isValid());
    QFile doxyfile(QStringLiteral(MPR_SOURCE_ROOT "/docs/Doxyfile"));
    QVERIFY(doxyfile.open(QIODevice::ReadOnly));
    QByteArray config = doxyfile.readAll();
    config += "\nOUTPUT_DIRECTORY = " + QFile::encodeName(m_out.path()) +
              "\nGENERATE_HTML = NO\nGENERATE_XML = YES\n";

    qInfo("running doxygen");
    QProcess p;
    p.setWorkingDirectory(QStringLiteral(MPR_SOURCE_ROOT));
    p.setProcessChannelMode(QProcess::MergedChannels);
    p.start(QStringLiteral("doxygen"), { QStringLiteral("-") });
    QVERIFY(p.waitForStarted());
    p.write(config);
    p.closeWriteChannel();
    QVERIFY(p.waitForFinished(10 * 60 * 1000)); // a guard, not a timing
    m_output = QString::fromLocal8Bit(p.readAll());
    m_exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;

    // Names (and qualified names) of members and compounds that have text
    // in their brief or detailed description.
    const QDir xml(m_out.path() + QStringLiteral("/xml"));
    const QStringList files = xml.entryList({ QStringLiteral("*.xml") }, QDir::Files);
    QVERIFY2(!files.isEmpty(), qPrintable(m_output));
    for (const QString &name : files) {
        QFile f(xml.filePath(name));
        QVERIFY(f.open(QIODevice::ReadOnly));
        QXmlStreamReader r(&f);
        QStringList names;  // the enclosing compound/member names
        QList<bool> described;
        int descDepth = 0;
        while (!r.atEnd()) {
            r.readNext();
            if (r.isStartElement()) {
                const auto tag = r.name();
                if (tag == QLatin1String("compounddef") || tag == QLatin1String("memberdef")) {
                    names.append(QString());
                    described.append(false);
                } else if ((tag == QLatin1String("name") || tag == QLatin1String("compoundname")) &&
                           !names.isEmpty() && names.last().isEmpty() && descDepth == 0) {
                    names.last() = r.readElementText();
                } else if (tag == QLatin1String("briefdescription") ||
                           tag == QLatin1String("detaileddescription")) {
                    descDepth++;
                }
            } else if (r.isCharacters() && descDepth > 0 && !described.isEmpty() &&
                       !r.text().trimmed().isEmpty()) {
                described.last() = true;
            } else if (r.isEndElement()) {
                const auto tag = r.name();
                if (tag == QLatin1String("briefdescription") ||
                    tag == QLatin1String("detaileddescription")) {
                    descDepth--;
                } else if ((tag == QLatin1String("compounddef") || tag == QLatin1String("memberdef")) &&
                           !names.isEmpty()) {
                    if (described.last())
                        m_documented.insert(names.last());
                    names.removeLast();
                    described.removeLast();
                }
            }
        }
        QVERIFY2(!r.hasError(), qPrintable(name + QStringLiteral(": ") + r.errorString()));
    }
}

void tst_Docs::noWarnings()
{
    QVERIFY2(m_exitCode == 0, qPrintable(m_output));
    QVERIFY2(!m_output.contains(QStringLiteral("warning:")) &&
                 !m_output.contains(QStringLiteral("error:")),
             qPrintable(m_output));
}

void tst_Docs::documented_data()
{
    QTest::addColumn<QString>("symbol");
    // Every MPR_EXTERN function and every public MPR_ macro of the C API.
    const QRegularExpression function(QStringLiteral("^MPR_EXTERN[^;(]*?(\\w+)\\s*\\("),
                                      QRegularExpression::MultilineOption);
    const QRegularExpression macro(QStringLiteral("^#\\s*define\\s+(MPR_[A-Z0-9][A-Z0-9_]*)"),
                                   QRegularExpression::MultilineOption);
    QDir include(QStringLiteral(MPR_SOURCE_ROOT "/include/mprouter"));
    const QStringList headers = include.entryList({ QStringLiteral("*.h") }, QDir::Files);
    QVERIFY(headers.size() >= 8);
    QSet<QString> seen;
    for (const QString &header : headers) {
        QFile f(include.filePath(header));
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QString text = QString::fromUtf8(f.readAll());
        QTest::newRow(qPrintable(header)) << header;
        for (const QRegularExpression *re : { &function, &macro }) {
            auto it = re->globalMatch(text);
            while (it.hasNext()) {
                const QString name = it.next().captured(1);
                if (name == QLatin1String("MPR_EXTERN") && seen.contains(name))
                    continue; // defined twice (#if/#else)
                if (!seen.contains(name))
                    QTest::newRow(qPrintable(name)) << name;
                seen.insert(name);
            }
        }
    }
    QVERIFY(seen.contains(QStringLiteral("mpr_router_new")));
    QVERIFY(seen.contains(QStringLiteral("mpr_version")));
    // The Qt layer's public API.
    for (const char *name : { "mprouter_qt.h", "eventloopprovider.h", "mprouter_qt_global.h",
                              "mpr::Router", "mpr::Receiver", "mpr::EventLoopProvider",
                              "encodeVariant", "decodeVariant", "installLogHandler",
                              "messageReceived", "senderLost", "MPR_QT_EXPORT" })
        QTest::newRow(name) << QString::fromLatin1(name);
}

void tst_Docs::documented()
{
    QFETCH(QString, symbol);
    QVERIFY2(m_documented.contains(symbol), qPrintable(symbol + QStringLiteral(" has no documentation")));
}

QTEST_GUILESS_MAIN(tst_Docs)
#include "tst_docs.moc"
