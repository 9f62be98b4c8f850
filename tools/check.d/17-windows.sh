# Stage (sourced by tools/check): the Windows build of the C core, cross-
# built with mingw-w64 (CMake, tools/windows/CMakeLists.txt, with a static
# libsodium cross-built from Debian's source package for the remote
# transport) and its C tests (tests/c) run under wine, with a private
# prefix and a persistent wineserver that the stage stops again. See
# tools/windows/README.md; wine cannot show some Windows promises (the
# named pipe's DACL, FILE_FLAG_FIRST_PIPE_INSTANCE, another user).
. tools/windows/check.sh
