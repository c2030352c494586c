/*
 * compat.h - the few differences between Lua 5.1/LuaJIT, 5.3 and 5.4 the
 * core relies on, kept in one place so the .c files read as plain 5.4 code.
 */
#ifndef CIO_COMPAT_H
#define CIO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#if LUA_VERSION_NUM == 501

/* LuaJIT 2.1 ships luaL_newlib, luaL_setfuncs and luaL_testudata (its lauxlib.h defines
 * luaL_newlib); plain Lua 5.1 needs the shims in core.c. Neither has lua_rawlen. */
#ifndef luaL_newlib
#define CIO_LUA51_SHIMS 1
#define luaL_newlibtable(L, l) lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
#define luaL_newlib(L, l) (luaL_newlibtable((L), (l)), luaL_setfuncs((L), (l), 0))
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
void *luaL_testudata(lua_State *L, int ud, const char *tname);
#endif
#ifndef lua_rawlen
#define lua_rawlen(L, i) lua_objlen((L), (i))
#endif

#define CIO_HAS_INTEGERS 0
#define cio_isinteger(L, i) 0
#define cio_rawgetp_registry(L, p) (lua_pushlightuserdata((L), (void *)(p)), lua_rawget((L), LUA_REGISTRYINDEX))
#define cio_rawsetp_registry(L, p) /* value on top */ \
  (lua_pushlightuserdata((L), (void *)(p)), lua_insert((L), -2), lua_rawset((L), LUA_REGISTRYINDEX))

#else /* 5.2+ */

#define CIO_HAS_INTEGERS (LUA_VERSION_NUM >= 503)
#if LUA_VERSION_NUM >= 503
#define cio_isinteger(L, i) lua_isinteger((L), (i))
#else
#define cio_isinteger(L, i) 0
#endif
#define cio_rawgetp_registry(L, p) lua_rawgetp((L), LUA_REGISTRYINDEX, (p))
#define cio_rawsetp_registry(L, p) lua_rawsetp((L), LUA_REGISTRYINDEX, (p))

#endif

/* lua_absindex appeared in 5.2; LuaJIT lacks it. */
#if LUA_VERSION_NUM == 501
#define cio_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#else
#define cio_absindex(L, i) lua_absindex((L), (i))
#endif

/* Each area of the core adds its functions to the module table on top of the stack. */
int json_open(lua_State *L);
int http_open(lua_State *L);
int crypto_open(lua_State *L);
int util_open(lua_State *L);
int queue_open(lua_State *L);
int async_open(lua_State *L);
int redis_open(lua_State *L);

#endif
