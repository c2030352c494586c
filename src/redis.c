/*
 * redis.c - a small blocking Redis client over hiredis, for the fleet-wide rate limiter
 * (customerio.ratelimit.redis) in plain Lua. Inside nginx the same protocol goes over
 * cosockets instead (customerio.ratelimit.redis.cosocket); this file is never used there.
 *
 * One handle is one TCP connection, opened on demand: `connect` opens it (hiredis resolves
 * the host and connects within the timeout), `command` sends one command and reads its
 * reply within the same timeout. A failure of the connection itself (refused, reset,
 * timeout, protocol error) frees it, so the next `connect` opens a new one; an error reply
 * (`-ERR ...`) leaves it open. The handle knows nothing of AUTH or SELECT: `connect` says
 * whether the connection is new, and the Lua layer sends them then.
 *
 * A write to a connection the server has closed raises SIGPIPE, which would kill a plain Lua
 * process: each command runs with SIGPIPE blocked on the calling thread, and a SIGPIPE it
 * raised is consumed before the mask is restored (the signal handlers of the host are not
 * touched, so this is safe with threads).
 */

/***
 * Blocking Redis connections over hiredis (for customerio.ratelimit.redis).
 * @module customerio.core
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "compat.h"

#define REDIS_MT "customerio.redis"
#define REDIS_MAX_ARGS 1024
#define REDIS_MAX_TIMEOUT_MS 2147483647.0

typedef struct {
  redisContext *ctx;  /* NULL while not connected */
  redisReply *reply;  /* a reply being converted, freed by the next call or __gc if Lua raised */
  char *host;         /* owned copy, NUL-terminated */
  int port;
  struct timeval timeout;
} redis_ud;

static redis_ud *redis_check(lua_State *L) {
  return (redis_ud *)luaL_checkudata(L, 1, REDIS_MT);
}

static void redis_drop_reply(redis_ud *u) {
  if (u->reply != NULL) {
    freeReplyObject(u->reply);
    u->reply = NULL;
  }
}

static void redis_disconnect(redis_ud *u) {
  redis_drop_reply(u);
  if (u->ctx != NULL) {
    redisFree(u->ctx);
    u->ctx = NULL;
  }
}

/* "<what>: <hiredis message>", then drops the connection. Returns nil, msg, "io". */
static int redis_fail_io(lua_State *L, redis_ud *u, const char *what) {
  const char *detail = "out of memory";
  if (u->ctx != NULL && u->ctx->err != 0) detail = u->ctx->errstr[0] != '\0' ? u->ctx->errstr : "I/O error";
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, detail);
  lua_pushliteral(L, "io");
  redis_disconnect(u);
  return 3;
}

/***
 * A Redis connection handle (not connected yet).
 * @function redis_new
 * @tparam string host name or IP address
 * @tparam int port 1..65535
 * @tparam number timeout_ms for connecting and for each command (> 0)
 * @return handle
 */
static int redis_new(lua_State *L) {
  size_t len;
  const char *host = luaL_checklstring(L, 1, &len);
  lua_Integer port = luaL_checkinteger(L, 2);
  lua_Number timeout = luaL_checknumber(L, 3);
  long ms;
  redis_ud *u;
  if (len == 0 || strlen(host) != len) return luaL_argerror(L, 1, "host must be a non-empty string without NUL");
  if (port < 1 || port > 65535) return luaL_argerror(L, 2, "port must be in 1..65535");
  if (!(timeout > 0)) return luaL_argerror(L, 3, "timeout must be a positive number of milliseconds");
  if (timeout > REDIS_MAX_TIMEOUT_MS) timeout = REDIS_MAX_TIMEOUT_MS;
  ms = (long)timeout;
  if ((lua_Number)ms < timeout) ms++; /* fractions round up: 0 would mean no timeout */
  u = (redis_ud *)lua_newuserdata(L, sizeof(*u));
  memset(u, 0, sizeof(*u));
  luaL_getmetatable(L, REDIS_MT);
  lua_setmetatable(L, -2);
  u->host = (char *)malloc(len + 1); /* from here on __gc frees it */
  if (u->host == NULL) return luaL_error(L, "out of memory");
  memcpy(u->host, host, len + 1);
  u->port = (int)port;
  u->timeout.tv_sec = ms / 1000;
  u->timeout.tv_usec = (ms % 1000) * 1000;
  return 1;
}

/***
 * Open the connection unless it is open.
 * @function handle:connect
 * @treturn boolean true
 * @treturn boolean whether a new connection was opened (send AUTH/SELECT then)
 * @return or nil, message, "io"
 */
static int redis_connect(lua_State *L) {
  redis_ud *u = redis_check(L);
  if (u->host == NULL) return luaL_error(L, "redis handle is closed");
  if (u->ctx != NULL) {
    lua_pushboolean(L, 1);
    lua_pushboolean(L, 0);
    return 2;
  }
  u->ctx = redisConnectWithTimeout(u->host, u->port, u->timeout);
  if (u->ctx == NULL || u->ctx->err != 0) return redis_fail_io(L, u, "cannot connect");
  if (redisSetTimeout(u->ctx, u->timeout) != REDIS_OK) return redis_fail_io(L, u, "cannot set the timeout");
  lua_pushboolean(L, 1);
  lua_pushboolean(L, 1);
  return 2;
}

/* Pushes a reply as a Lua value; nil (and an unknown type) as false. Arrays are at most 7
 * deep (hiredis' own limit). */
static void redis_push_reply(lua_State *L, const redisReply *r) {
  size_t i;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      lua_pushlstring(L, r->str != NULL ? r->str : "", r->str != NULL ? r->len : 0);
      break;
    case REDIS_REPLY_INTEGER:
#if CIO_HAS_INTEGERS
      lua_pushinteger(L, (lua_Integer)r->integer);
#else
      lua_pushnumber(L, (lua_Number)r->integer);
#endif
      break;
    case REDIS_REPLY_ARRAY:
      luaL_checkstack(L, 3, "redis reply too deep");
      lua_createtable(L, r->elements > 0x7fffffff ? 0 : (int)r->elements, 0);
      for (i = 0; i < r->elements; i++) {
        redis_push_reply(L, r->element[i]);
        lua_rawseti(L, -2, (int)(i + 1));
      }
      break;
    default: /* REDIS_REPLY_NIL */
      lua_pushboolean(L, 0);
      break;
  }
}

/* Runs the command with SIGPIPE blocked on this thread; consumes a SIGPIPE it raised. */
static redisReply *redis_run(redis_ud *u, int argc, const char **argv, const size_t *argvlen) {
  sigset_t pipe_set, old_set, pending;
  int was_pending = 0, masked;
  redisReply *r;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  masked = pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0;
  if (masked && sigpending(&pending) == 0) was_pending = sigismember(&pending, SIGPIPE) == 1;
  r = (redisReply *)redisCommandArgv(u->ctx, argc, argv, argvlen);
  if (masked) {
    if (!was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
  }
  return r;
}

/***
 * Send one command and read its reply; the connection must be open (`connect`).
 * Arguments are strings or numbers, sent binary-safe.
 * @function handle:command
 * @return the reply: a string (bulk or status), an integer, a table (array), or false (nil
 *   reply); or nil, message, "reply" for an error reply (the connection stays open); or nil,
 *   message, "io" when the connection failed (it is closed: `connect` opens a new one)
 */
static int redis_command(lua_State *L) {
  redis_ud *u = redis_check(L);
  int argc = lua_gettop(L) - 1, i;
  const char **argv;
  size_t *argvlen;
  if (argc < 1) return luaL_error(L, "redis command: no command given");
  if (argc > REDIS_MAX_ARGS) return luaL_error(L, "redis command: more than %d arguments", REDIS_MAX_ARGS);
  /* Scratch space owned by Lua, so an argument error cannot leak it. */
  argv = (const char **)lua_newuserdata(L, (size_t)argc * sizeof(*argv));
  argvlen = (size_t *)lua_newuserdata(L, (size_t)argc * sizeof(*argvlen));
  for (i = 0; i < argc; i++) {
    int t = lua_type(L, i + 2);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_argerror(L, i + 2, "redis command arguments must be strings or numbers");
    argv[i] = lua_tolstring(L, i + 2, &argvlen[i]);
  }
  if (u->host == NULL) return luaL_error(L, "redis handle is closed");
  if (u->ctx == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "not connected");
    lua_pushliteral(L, "io");
    return 3;
  }
  redis_drop_reply(u);
  u->reply = redis_run(u, argc, argv, argvlen);
  if (u->reply == NULL) return redis_fail_io(L, u, "connection lost");
  if (u->reply->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    redis_push_reply(L, u->reply);
    lua_pushliteral(L, "reply");
    redis_drop_reply(u);
    return 3;
  }
  redis_push_reply(L, u->reply);
  redis_drop_reply(u);
  return 1;
}

/***
 * Whether the connection is open.
 * @function handle:connected
 * @treturn boolean
 */
static int redis_connected(lua_State *L) {
  lua_pushboolean(L, redis_check(L)->ctx != NULL);
  return 1;
}

/***
 * Close the connection (the handle can connect again).
 * @function handle:close
 */
static int redis_close(lua_State *L) {
  redis_disconnect(redis_check(L));
  return 0;
}

/* __gc and __close: close and release everything. */
static int redis_gc(lua_State *L) {
  redis_ud *u = redis_check(L);
  redis_disconnect(u);
  free(u->host);
  u->host = NULL;
  return 0;
}

static int redis_tostring(lua_State *L) {
  redis_ud *u = redis_check(L);
  if (u->host == NULL) {
    lua_pushliteral(L, "customerio.redis (released)");
  } else {
    lua_pushfstring(L, "customerio.redis (%s:%d, %s)", u->host, u->port, u->ctx != NULL ? "connected" : "not connected");
  }
  return 1;
}

static const luaL_Reg redis_methods[] = {
  {"connect", redis_connect},
  {"command", redis_command},
  {"connected", redis_connected},
  {"close", redis_close},
  {NULL, NULL},
};

static const luaL_Reg redis_metamethods[] = {
  {"__gc", redis_gc},
#if LUA_VERSION_NUM >= 504
  {"__close", redis_close},
#endif
  {"__tostring", redis_tostring},
  {NULL, NULL},
};

static const luaL_Reg redis_funcs[] = {
  {"redis_new", redis_new},
  {NULL, NULL},
};

int redis_open(lua_State *L) {
  if (luaL_newmetatable(L, REDIS_MT)) {
    luaL_setfuncs(L, redis_metamethods, 0);
    luaL_newlib(L, redis_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, redis_funcs, 0);
  return 0;
}
