/*
 * host.c - a small C program that embeds Lua and lua-customerio from the static library,
 * the way a game engine or an editor would: no Lua file on disk, everything on one thread.
 *
 *     make static embed-host            (build/5.4/libcustomerio.a, build/5.4/embed-host)
 *     build/5.4/embed-host http://127.0.0.1:8180
 *
 * It sends an identify and a transactional email with the blocking API (and checks that the
 * email was sent, not only accepted), then tracks a few events with the async API from a fake frame loop that calls customerio.poll(0) once per
 * frame. The URL is the root of a Customer.io-compatible server (make sandbox, or the test
 * server); the Track API is under /api/v1 and the App API under /v1.
 *
 * Link line: libcustomerio.a -llua5.4 -lcurl -lcjson -lcrypto -lhiredis -lpthread -lm -ldl
 */
#define _POSIX_C_SOURCE 199309L /* nanosleep */
#include <stdio.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "customerio.h"

/* The game's script. A real host would load its own scripts from its asset archive. */
static const char host_script[] =
  "local url = ...\n"
  "local customerio = require('customerio')\n"
  "print('customerio ' .. customerio.version .. ' on ' .. (jit and jit.version or _VERSION))\n"
  "local track = customerio.TrackClient.new('site-id', 'api-key', { url = url .. '/api/v1' })\n"
  "local api = customerio.APIClient.new('app-key', { url = url .. '/v1' })\n"
  "\n"
  "-- Blocking calls (a loading screen, a tool).\n"
  "local done, err = track:identify('player-1', { email = 'player@example.com', level = 1 })\n"
  "if not done then error('identify: ' .. tostring(err)) end\n"
  "print('identify: ok')\n"
  "local sent\n"
  "sent, err = api:send_email({ transactional_message_id = 'welcome', to = 'player@example.com',\n"
  "  identifiers = { id = 'player-1' }, message_data = { name = 'Ada' } })\n"
  "if not sent then error('send_email: ' .. tostring(err)) end\n"
  "-- Accepted is not sent: the template may still fail to render (a missing variable). Ask\n"
  "-- for the delivery's metrics (App API getMessage) until it is sent or failed.\n"
  "local outcome = 'queued'\n"
  "for _ = 1, 50 do\n"
  "  local got, e = api:get_message(sent.delivery_id)\n"
  "  if not got then error('get_message: ' .. tostring(e)) end\n"
  "  local metrics, why = got.message.metrics or {}, got.message.failure_message\n"
  "  if metrics.failed or metrics.dropped or metrics.undeliverable then\n"
  "    error('send_email: delivery ' .. tostring(sent.delivery_id) .. ' failed: '\n"
  "      .. (type(why) == 'string' and why or 'no reason given'), 0)\n"
  "  end\n"
  "  if metrics.sent or metrics.delivered then outcome = 'sent'; break end\n"
  "  host_sleep_ms(100)\n"
  "end\n"
  "print('send_email: ' .. outcome .. ' ' .. tostring(sent.delivery_id))\n"
  "\n"
  "-- Async calls from the game loop: they return at once; poll(0) never blocks.\n"
  "local events = customerio.async(track)\n"
  "local ok, failed = 0, 0\n"
  "for i = 1, 20 do\n"
  "  events:track('player-1', 'level_up', { level = i }, function(result, e)\n"
  "    if result then ok = ok + 1 else failed = failed + 1; print('track failed: ' .. tostring(e)) end\n"
  "  end)\n"
  "end\n"
  "local frames, busy_frames = 0, 0\n"
  "while events:pending() > 0 and frames < 100000 do\n"
  "  frames = frames + 1\n"
  "  customerio.poll(0)                    -- once per frame\n"
  "  if events:pending() > 0 then busy_frames = busy_frames + 1 end\n"
  "  host_sleep_ms(1)                      -- the rest of the frame (rendering ...)\n"
  "end\n"
  "print(string.format('async: %d ok, %d failed, %d frames (%d with requests in flight)',\n"
  "  ok, failed, frames, busy_frames))\n"
  "return ok == 20 and failed == 0\n";

/* A stand-in for the rest of a frame (host_sleep_ms(ms) in Lua). */
static int host_sleep_ms(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  struct timespec ts;
  if (ms <= 0) return 0;
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)((ms - (lua_Number)ts.tv_sec * 1000) * 1e6);
  nanosleep(&ts, NULL);
  return 0;
}

int main(int argc, char **argv) {
  lua_State *L;
  int rc, ok;
  if (argc != 2) {
    fprintf(stderr, "usage: %s URL   (e.g. http://127.0.0.1:8180)\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);

  /* No module path on disk: everything comes from the library. */
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);

#if LUA_VERSION_NUM >= 502
  luaL_requiref(L, "customerio", luaopen_customerio, 1);
  lua_pop(L, 1);
#else
  /* Lua 5.1 / LuaJIT have no luaL_requiref: call it, then set the global. */
  lua_pushcfunction(L, luaopen_customerio);
  lua_pushliteral(L, "customerio");
  lua_call(L, 1, 1);
  lua_setglobal(L, "customerio");
#endif
  lua_register(L, "host_sleep_ms", host_sleep_ms);

  /* Errors come back with a traceback (debug.traceback as the message handler). */
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_remove(L, -2);
  rc = luaL_loadbuffer(L, host_script, sizeof host_script - 1, "=host_script");
  if (rc == 0) {
    lua_pushstring(L, argv[1]);
    rc = lua_pcall(L, 1, 1, -3);
  }
  if (rc != 0) {
    /* The error may be a table (customerio error objects): print it through tostring. */
    lua_getglobal(L, "tostring");
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != 0 || lua_tostring(L, -1) == NULL) {
      lua_settop(L, 0);
      lua_pushliteral(L, "(error object without a string form)");
    }
    fprintf(stderr, "host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  ok = lua_toboolean(L, -1);
  lua_close(L);
  printf("host: %s\n", ok ? "done" : "FAILED");
  return ok ? 0 : 1;
}
