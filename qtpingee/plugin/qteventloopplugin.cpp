/*
 * qteventloopplugin.cpp - the mprouter Qt plugin: hands out the Qt event
 * loop of libmprouter-qt5 or libmprouter-qt6.
 */
#include "qteventloopplugin.h"

#include <mprouter/qt.h>

namespace mpr {

QtEventLoopPlugin::QtEventLoopPlugin(QObject *parent)
    : QObject(parent)
{
}

const mpr_event_loop *QtEventLoopPlugin::eventLoop()
{
    return mpr_qt_event_loop();
}

} // namespace mpr
