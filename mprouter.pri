# Included by everything in this tree that uses the C core.
include($$PWD/remote.pri)
# The portable POSIX build of the C core (src/platform.h, CONFIG+=mpr_portable
# or off Linux): tests need to know (the router's local endpoint is a path
# socket then, and another host has a /tmp of its own).
!linux|mpr_portable: DEFINES += MPR_PORTABLE
INCLUDEPATH += $$MPR_ROOT/include
LIBS += -L$$MPR_BUILD/src -lmprouter
QMAKE_RPATHDIR += $$MPR_BUILD/src
CONFIG += warn_on
QMAKE_CFLAGS += -std=c11 -Wall -Wextra
QMAKE_CXXFLAGS += -Wall -Wextra
