# tools/windows/mingw-w64-x86_64.cmake - CMake toolchain file: cross-build
# for 64-bit Windows with Debian's mingw-w64 (x86_64-w64-mingw32-gcc, the
# "win32" thread model that Debian's alternatives select by default).
#
#   cmake -S DIR -B build-win -DCMAKE_TOOLCHAIN_FILE=$PWD/tools/windows/mingw-w64-x86_64.cmake
#
# ctest runs the test programs under wine (CMAKE_CROSSCOMPILING_EMULATOR);
# set up the prefix first (tools/windows/env.sh).
set(CMAKE_SYSTEM_NAME Windows)
# Windows 10: CMake passes nothing of this to the compiler; projects test
# it (libzmq picks its condition variable by it).
set(CMAKE_SYSTEM_VERSION 10.0)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(MPR_MINGW_HOST x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${MPR_MINGW_HOST}-gcc)
set(CMAKE_CXX_COMPILER ${MPR_MINGW_HOST}-g++)
set(CMAKE_RC_COMPILER ${MPR_MINGW_HOST}-windres)
set(CMAKE_AR ${MPR_MINGW_HOST}-gcc-ar CACHE FILEPATH "")
set(CMAKE_RANLIB ${MPR_MINGW_HOST}-gcc-ranlib CACHE FILEPATH "")

# Headers and libraries from the mingw-w64 tree and from the roots given
# with -DCMAKE_FIND_ROOT_PATH=... (e.g. the prefix of
# tools/windows/build-libsodium.sh), programs from the build machine.
list(APPEND CMAKE_FIND_ROOT_PATH /usr/${MPR_MINGW_HOST})
list(REMOVE_DUPLICATES CMAKE_FIND_ROOT_PATH)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

set(CMAKE_CROSSCOMPILING_EMULATOR wine)
