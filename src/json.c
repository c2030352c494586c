/*
 * json.c - JSON for customerio.core: the shared metatables and the registration of the
 * encoder (json_encode.c) and the decoder (json_decode.c).
 *
 *   json_encode(value [, opts]) -> string | nil, message
 *   json_decode(text [, opts])  -> value | nil, message
 *   null       the NULL light userdata (cjson.null and ngx.null are the same value)
 *   array_mt   {__jsontype = "array"}, given to decoded arrays; one table per Lua state
 *   object_mt  {__jsontype = "object"}
 */
#include "json.h"

/* Registry keys of the shared metatables (their addresses are the keys). */
static char json_array_key = 'a';
static char json_object_key = 'o';

/* Pushes the metatable {__jsontype = type} kept in the registry under key, making it once. */
static void json_shared_mt(lua_State *L, const void *key, const char *type) {
  cio_rawgetp_registry(L, key);
  if (lua_type(L, -1) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, type);
  lua_setfield(L, -2, "__jsontype");
  lua_pushvalue(L, -1);
  cio_rawsetp_registry(L, key);
}

int json_open(lua_State *L) {
  int mod = lua_gettop(L);
  json_shared_mt(L, &json_array_key, "array");   /* mod + 1 */
  json_shared_mt(L, &json_object_key, "object"); /* mod + 2 */
  json_encode_open(L, mod, mod + 1, mod + 2);
  json_decode_open(L, mod, mod + 1);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, mod, "null");
  lua_setfield(L, mod, "object_mt");
  lua_setfield(L, mod, "array_mt");
  return 0;
}
