/*
 * embed.c - the entry point of the static library (make static): `luaopen_customerio`
 * registers the C core and every pure-Lua module of the project, compiled into the library by
 * tools/embed-lua.lua, in package.preload, then loads `customerio`. A host links one library
 * and needs no file on disk (include/customerio.h).
 *
 * Built only with -DCIO_EMBED (the static library); in the shared module (core.so) this file
 * is empty, since there the Lua files come from the module path.
 */

/***
 * The static library entry point for hosts that embed Lua.
 * @module customerio.core
 */
#include "compat.h"

#ifdef CIO_EMBED

#include "customerio.h"
#include "embedded_lua.h"

int luaopen_customerio_core(lua_State *L);

/* package.preload loader of one embedded module; upvalue 1: its index in the table. */
static int embed_loader(lua_State *L) {
  const cio_embedded_module *m = &cio_embedded_modules[lua_tointeger(L, lua_upvalueindex(1))];
  if (luaL_loadbuffer(L, m->source, m->len, m->chunkname) != 0) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

/* The index of the module `customerio` (init.lua) in the table, or -1. */
static int embed_find(const char *name) {
  int i;
  for (i = 0; cio_embedded_modules[i].name != NULL; i++) {
    const char *a = cio_embedded_modules[i].name, *b = name;
    while (*a && *a == *b) a++, b++;
    if (*a == *b) return i;
  }
  return -1;
}

/***
 * Register the C core and the embedded Lua modules, and return the `customerio` module.
 * Call it as `luaL_requiref(L, "customerio", luaopen_customerio, 1)` (5.2+), or put it in
 * package.preload. Modules already in package.preload (a host's own version) are kept.
 * @function luaopen_customerio
 */
int luaopen_customerio(lua_State *L) {
  int i, top, root;
#if LUA_VERSION_NUM >= 502
  luaL_checkversion(L);
#endif
  top = lua_gettop(L);
  lua_getglobal(L, "package");
  if (!lua_istable(L, -1)) return luaL_error(L, "customerio: the package library is not open (luaL_openlibs)");
  lua_getfield(L, -1, "preload");
  if (!lua_istable(L, -1)) return luaL_error(L, "customerio: package.preload is missing");
  lua_getfield(L, -1, "customerio.core");
  if (lua_isnil(L, -1)) {
    lua_pushcfunction(L, luaopen_customerio_core);
    lua_setfield(L, -3, "customerio.core");
  }
  lua_pop(L, 1);
  for (i = 0; cio_embedded_modules[i].name != NULL; i++) {
    lua_getfield(L, -1, cio_embedded_modules[i].name);
    if (lua_isnil(L, -1)) {
      lua_pushinteger(L, (lua_Integer)i);
      lua_pushcclosure(L, embed_loader, 1);
      lua_setfield(L, -3, cio_embedded_modules[i].name);
    }
    lua_pop(L, 1);
  }
  /* Run init.lua here rather than through require: the host may have registered this very
   * function as package.preload.customerio, and require would come back to it. */
  lua_getfield(L, -2, "loaded");
  if (!lua_istable(L, -1)) return luaL_error(L, "customerio: package.loaded is missing");
  lua_getfield(L, -1, "customerio");
  if (lua_istable(L, -1)) return 1; /* already loaded */
  lua_pop(L, 1);
  root = embed_find("customerio");
  if (root < 0) return luaL_error(L, "customerio: init.lua is not embedded");
  lua_pushinteger(L, (lua_Integer)root);
  lua_pushcclosure(L, embed_loader, 1);
  lua_call(L, 0, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "customerio");
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  return 1;
}

#else

/* ISO C wants at least one declaration in a translation unit. */
typedef int cio_embed_unused;

#endif
