/*
 * tst_version - mpr_version() and the MPR_VERSION_* macros agree with each
 * other and with every place that repeats the number: the build
 * (MPR_VERSION of .qmake.conf, which reads version.h), the Qt plugin's
 * metadata, CHANGELOG.md and the Debian packages' version (debian/changelog).
 */
#include <QtCore/QFile>
#include <QtCore/QJsonDocument>
#include <QtCore/QJsonObject>
#include <QtTest/QtTest>

#include <mprouter/mprouter.h>

class tst_Version : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void library();
    void macros();
    void build();
    void pluginMetadata();
    void changelog();
    void debianChangelog();
};

void tst_Version::library()
{
    QVERIFY(mpr_version() != nullptr);
    QCOMPARE(QByteArray(mpr_version()), QByteArray(MPR_VERSION_STRING));
}

void tst_Version::macros()
{
    const QByteArray expected = QByteArray::number(MPR_VERSION_MAJOR) + '.' +
                                QByteArray::number(MPR_VERSION_MINOR) + '.' +
                                QByteArray::number(MPR_VERSION_PATCH);
    QCOMPARE(QByteArray(MPR_VERSION_STRING), expected);
    QCOMPARE(MPR_VERSION_HEX, (MPR_VERSION_MAJOR << 16) | (MPR_VERSION_MINOR << 8) | MPR_VERSION_PATCH);
}

void tst_Version::build()
{
    QCOMPARE(QByteArray(MPR_QMAKE_VERSION), QByteArray(MPR_VERSION_STRING));
}

void tst_Version::pluginMetadata()
{
    QFile f(QStringLiteral(MPR_SOURCE_ROOT "/qtpingee/plugin/mprouter-qt.json"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QJsonObject meta = QJsonDocument::fromJson(f.readAll()).object();
    QCOMPARE(meta.value(QStringLiteral("Version")).toString(), QStringLiteral(MPR_VERSION_STRING));
}

void tst_Version::changelog()
{
    QFile f(QStringLiteral(MPR_SOURCE_ROOT "/CHANGELOG.md"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray text = f.readAll();
    QVERIFY2(text.contains("\n## [" MPR_VERSION_STRING "]"),
             "CHANGELOG.md has no section for " MPR_VERSION_STRING);
}

void tst_Version::debianChangelog()
{
    // The newest entry, "mprouter (UPSTREAM-REVISION) ...", packages this version.
    QFile f(QStringLiteral(MPR_SOURCE_ROOT "/debian/changelog"));
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray first = f.readLine();
    QVERIFY2(first.startsWith("mprouter (" MPR_VERSION_STRING "-"),
             qPrintable(QStringLiteral("debian/changelog packages another version: ") +
                        QString::fromUtf8(first)));
}

QTEST_GUILESS_MAIN(tst_Version)
#include "tst_version.moc"
