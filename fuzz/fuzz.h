/*
 * fuzz.h - shared by the libFuzzer harnesses in fuzz/ (see fuzz/README.md).
 *
 * Each harness keeps one embedded Lua 5.4 state for the whole run, with:
 *   - customerio.core preloaded from the C sources linked into the harness (instrumented,
 *     so libFuzzer sees their edges), and lua/ of this repository on package.path;
 *   - optionally a line hook that turns Lua line-to-line transitions into libFuzzer "extra
 *     counters", so that pure-Lua targets (Liquid, errors.parse_message) are coverage-guided
 *     too, not just mutated blindly.
 * A property violation calls fuzz_fail(), which prints the message and aborts: libFuzzer
 * then saves the input as crash-<sha1>.
 */
#ifndef CIO_FUZZ_H
#define CIO_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#ifndef CIO_ROOT
#define CIO_ROOT "."
#endif

int luaopen_customerio_core(lua_State *L);

/* Lua coverage: a hash of (previous line, current line, chunk) bumps one of these. */
#define FUZZ_LUA_COUNTERS (1 << 16)
__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static uintptr_t fuzz_prev_loc;

static void fuzz_line_hook(lua_State *L, lua_Debug *ar) {
  uintptr_t loc;
  if (!lua_getinfo(L, "S", ar)) return;
  loc = ((uintptr_t)ar->source * 2654435761u) ^ ((uintptr_t)ar->currentline * 40503u);
  {
    size_t i = (size_t)((loc ^ (fuzz_prev_loc >> 1)) & (FUZZ_LUA_COUNTERS - 1));
    if (fuzz_lua_counters[i] != 255) fuzz_lua_counters[i]++;
  }
  fuzz_prev_loc = loc;
}

static void fuzz_fail(const char *fmt, const char *detail, size_t len) {
  fprintf(stderr, "\n==fuzz== property violated: %s\n", fmt);
  if (detail != NULL) {
    size_t n = len > 2000 ? 2000 : len;
    fprintf(stderr, "==fuzz== detail (%zu bytes): ", len);
    fwrite(detail, 1, n, stderr);
    fputc('\n', stderr);
  }
  abort();
}

/* A Lua state with the standard libraries, customerio.core preloaded and the repository's
 * lua/ on package.path. With `lua_coverage`, Lua lines feed libFuzzer. */
static lua_State *fuzz_new_state(int lua_coverage) {
  lua_State *L = luaL_newstate();
  if (L == NULL) fuzz_fail("luaL_newstate failed", NULL, 0);
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_pushstring(L, CIO_ROOT "/lua/?.lua;" CIO_ROOT "/lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushstring(L, "");
  lua_setfield(L, -2, "cpath");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_customerio_core);
  lua_setfield(L, -2, "customerio.core");
  lua_pop(L, 2);
  if (lua_coverage) lua_sethook(L, fuzz_line_hook, LUA_MASKLINE, 0);
  return L;
}

/* Runs a chunk that returns a function; leaves that function in the registry under `ref`. */
static int fuzz_load_function(lua_State *L, const char *code) {
  if (luaL_loadstring(L, code) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fuzz_fail("setup chunk failed", msg, msg ? strlen(msg) : 0);
  }
  if (!lua_isfunction(L, -1)) fuzz_fail("setup chunk did not return a function", NULL, 0);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Calls the registered function with the input as one string argument. The Lua side raises
 * (error) when a property is violated; any raise is a finding. */
static void fuzz_call(lua_State *L, int ref, const uint8_t *data, size_t size) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    size_t n = 0;
    const char *msg = lua_tolstring(L, -1, &n);
    if (msg == NULL) msg = "(error object is not a string)";
    fuzz_fail("the Lua check raised", msg, msg ? strlen(msg) : 0);
  }
  lua_settop(L, 0);
}

/* Keeps the heap of the long-lived state small and its garbage from hiding use-after-free:
 * a full collection now and then runs every __gc of the values made from fuzz input. */
static void fuzz_collect(lua_State *L) {
  static unsigned n = 0;
  if (++n % 256 == 0) lua_gc(L, LUA_GCCOLLECT, 0);
}

#endif
