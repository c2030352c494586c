/***
 * customerio.core - the C half of the Customer.io client.
 *
 * Builds one table from the areas of the core: JSON (json.c), HTTP over
 * libcurl (http.c), hashes/base64/random bytes (crypto.c), small helpers
 * (util.c: percent-encoding, ULIDs, clocks), and blocking Redis connections
 * over hiredis (redis.c). The Lua layer (customerio/init.lua) is the public
 * API; this module is internal.
 * @module customerio.core
 */
#include <curl/curl.h>

#include "compat.h"

#ifdef CIO_LUA51_SHIMS
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    lua_pushstring(L, l->name);
    for (i = 0; i < nup; i++) lua_pushvalue(L, -(nup + 1));
    lua_pushcclosure(L, l->func, nup);
    lua_settable(L, -(nup + 3));
  }
  lua_pop(L, nup);
}

void *luaL_testudata(lua_State *L, int ud, const char *tname) {
  void *p = lua_touserdata(L, ud);
  if (p != NULL && lua_getmetatable(L, ud)) {
    luaL_getmetatable(L, tname);
    if (!lua_rawequal(L, -1, -2)) p = NULL;
    lua_pop(L, 2);
    return p;
  }
  return NULL;
}
#endif

int luaopen_customerio_core(lua_State *L) {
  /* curl_global_init is not thread-safe before 7.84; do it once, at load. */
  static int curl_ready = 0;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return luaL_error(L, "curl_global_init failed");
    curl_ready = 1;
  }
  lua_newtable(L);
  json_open(L);
  http_open(L);
  crypto_open(L);
  util_open(L);
  queue_open(L);
  async_open(L);
  redis_open(L);
  lua_pushliteral(L, "customerio.core");
  lua_setfield(L, -2, "_NAME");
  return 1;
}
