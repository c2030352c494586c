/*
 * customerio.h - public header of the static library (make static: libcustomerio.a).
 *
 * The library holds the C core (libcurl, cJSON, libcrypto) and every pure-Lua module of
 * lua-customerio, so a host program that embeds Lua needs no file on disk:
 *
 *     #include <lua.h>
 *     #include <lauxlib.h>
 *     #include <lualib.h>
 *     #include "customerio.h"
 *
 *     lua_State *L = luaL_newstate();
 *     luaL_openlibs(L);
 *     luaL_requiref(L, "customerio", luaopen_customerio, 1);   // also sets the global
 *     lua_pop(L, 1);
 *     // Lua code can now require("customerio"), customerio.async, customerio.poll ...
 *
 * Link: libcustomerio.a -llua5.4 -lcurl -lcjson -lcrypto -lpthread -lm -ldl (the library is
 * built for one Lua ABI: make static LUA=5.4|5.3|5.1|luajit). Only the two functions below
 * are exported by the library; everything else is local to it.
 *
 * Each lua_State gets its own state (clients, async engine); use one lua_State per thread.
 * Call luaopen_customerio (or luaopen_customerio_core) once before starting threads that
 * create lua_States concurrently: the first call initialises libcurl (curl_global_init).
 */
#ifndef CUSTOMERIO_H
#define CUSTOMERIO_H

#ifdef __cplusplus
extern "C" {
#endif

#include <lua.h>

#define CUSTOMERIO_VERSION "0.1.0"

/* Registers "customerio.core" and the embedded Lua modules in package.preload (keeping any
 * entry the host put there first), loads the module "customerio" (package.loaded.customerio)
 * and pushes it. Needs the package library (luaL_openlibs or luaopen_package). */
int luaopen_customerio(lua_State *L);

/* The C core alone (JSON, HTTP, crypto, async multi handle): what require("customerio.core")
 * loads. Internal API; hosts normally use luaopen_customerio. */
int luaopen_customerio_core(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
