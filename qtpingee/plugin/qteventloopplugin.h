/*
 * qteventloopplugin.h - the plugin class of the mprouter Qt plugin.
 */
#ifndef MPROUTER_QTEVENTLOOPPLUGIN_H
#define MPROUTER_QTEVENTLOOPPLUGIN_H

#include <QtCore/QObject>

#include "eventloopprovider.h"

namespace mpr {

class QtEventLoopPlugin : public QObject, public EventLoopProvider
{
    Q_OBJECT
    Q_PLUGIN_METADATA(IID MPR_EVENT_LOOP_PROVIDER_IID FILE "mprouter-qt.json")
    Q_INTERFACES(mpr::EventLoopProvider)
public:
    explicit QtEventLoopPlugin(QObject *parent = nullptr);

    // mpr_qt_event_loop().
    const mpr_event_loop *eventLoop() override;

private:
    Q_DISABLE_COPY(QtEventLoopPlugin)
};

} // namespace mpr

#endif // MPROUTER_QTEVENTLOOPPLUGIN_H
