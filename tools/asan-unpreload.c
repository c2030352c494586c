/*
 * asan-unpreload.c - preloaded after the ASan runtime into the Lua interpreter by
 * tools/check-memory.sh: removes LD_PRELOAD from the environment once the process has
 * started, so that the programs the specs run (sh, curl, nginx, openssl) start without the
 * ASan runtime (an uninstrumented curl deadlocks in setlocale with it preloaded). Lua child
 * processes get it again through the lua5.4 / luajit wrappers that check-memory.sh puts first
 * on PATH.
 */
#include <stdlib.h>

__attribute__((constructor)) static void cio_asan_unpreload(void) {
  unsetenv("LD_PRELOAD");
}
