# Included by everything in this tree that uses the C core.
include($$PWD/remote.pri)
INCLUDEPATH += $$MPR_ROOT/include
LIBS += -L$$MPR_BUILD/src -lmprouter
QMAKE_RPATHDIR += $$MPR_BUILD/src
CONFIG += warn_on
QMAKE_CFLAGS += -std=c11 -Wall -Wextra
QMAKE_CXXFLAGS += -Wall -Wextra
