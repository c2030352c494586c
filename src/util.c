/*
 * util.c - small helpers the Lua layer needs on every call, kept in C
 * because they sit on the hot path: percent-encoding of path segments,
 * ULID event ids, clocks and sleeping.
 */

/***
 * Percent-encoding, ULIDs, clocks.
 * @module customerio.core
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "compat.h"

/* encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) as they are. */
static const unsigned char util_uri_safe[256] = {
  ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,
  ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
  ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
  ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
  ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
  ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
  ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1,
  ['9'] = 1, ['-'] = 1, ['_'] = 1, ['.'] = 1, ['!'] = 1, ['~'] = 1, ['*'] = 1, ['\''] = 1, ['('] = 1,
  [')'] = 1,
};

/***
 * Percent-encode a string exactly like JavaScript's encodeURIComponent.
 * Numbers are converted with tostring first. Bytes are encoded as they are
 * (UTF-8 input gives UTF-8 percent sequences).
 * @function uri_encode
 * @tparam string s
 * @treturn string
 */
static int util_uri_encode(lua_State *L) {
  static const char hex[] = "0123456789ABCDEF";
  size_t len, i, extra = 0;
  const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  for (i = 0; i < len; i++) if (!util_uri_safe[s[i]]) extra++;
  if (extra == 0) {
    lua_settop(L, 1);
    if (lua_type(L, 1) != LUA_TSTRING) lua_pushlstring(L, (const char *)s, len);
    return 1;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < len; i++) {
    unsigned char c = s[i];
    if (util_uri_safe[c]) {
      luaL_addchar(&b, (char)c);
    } else {
      luaL_addchar(&b, '%');
      luaL_addchar(&b, hex[c >> 4]);
      luaL_addchar(&b, hex[c & 15]);
    }
  }
  luaL_pushresult(&b);
  return 1;
}

static int64_t util_clock_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/***
 * Wall-clock time in milliseconds since the Unix epoch.
 * @function now_ms
 */
static int util_now_ms(lua_State *L) {
  lua_pushnumber(L, (lua_Number)util_clock_ms(CLOCK_REALTIME));
  return 1;
}

/***
 * Monotonic time in milliseconds (for measuring intervals).
 * @function monotonic_ms
 */
static int util_monotonic_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}

/***
 * CPU time of the calling thread in milliseconds (the work a poll did, without the time the
 * machine gave other processes or the core's other threads; for benchmarks and specs).
 * @function thread_cpu_ms
 */
static int util_thread_cpu_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec * 1000.0 + (lua_Number)ts.tv_nsec / 1e6);
  return 1;
}

/***
 * Sleep for a number of milliseconds (blocking; the nginx transport uses ngx.sleep).
 * @function sleep_ms
 */
static int util_sleep_ms(lua_State *L) {
  lua_Number ms = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, ms >= 0, 1, "must be a number of milliseconds, 0 or more"); /* NaN too */
  if (ms <= 0) return 0;
  if (ms > 2147483647.0) ms = 2147483647.0; /* ~24.8 days, as cio_ms; (time_t)HUGE_VAL is undefined */
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)((ms - (lua_Number)ts.tv_sec * 1000) * 1e6);
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {}
  return 0;
}

/* Monotonic ULID state: one per Lua state, kept as the ulid closure's upvalue. */
typedef struct {
  int64_t last_ms;
  unsigned char rnd[10];
} util_ulid_state;

static int util_fill_random(unsigned char *buf, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(buf, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += got;
    n -= (size_t)got;
  }
  return 0;
}

/***
 * A new ULID (26 characters, Crockford base32): 48 bits of milliseconds and
 * 80 random bits, monotonic within one millisecond so ids sort in creation order.
 * @function ulid
 * @treturn string
 */
static int util_ulid(lua_State *L) {
  static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  util_ulid_state *st = (util_ulid_state *)lua_touserdata(L, lua_upvalueindex(1));
  int64_t now = util_clock_ms(CLOCK_REALTIME);
  unsigned char bytes[16];
  char out[26];
  int i, bit;
  if (now <= st->last_ms) {
    /* Same (or earlier) millisecond: increment the random part as one 80-bit number. */
    for (i = 9; i >= 0; i--) if (++st->rnd[i] != 0) break;
    if (i < 0) return luaL_error(L, "ulid: random component overflow within one millisecond");
    now = st->last_ms;
  } else {
    if (util_fill_random(st->rnd, sizeof st->rnd) != 0) return luaL_error(L, "ulid: getrandom failed");
    st->rnd[0] &= 0x7f; /* leave room to increment within a millisecond */
    st->last_ms = now;
  }
  for (i = 0; i < 6; i++) bytes[i] = (unsigned char)((uint64_t)now >> (40 - 8 * i));
  memcpy(bytes + 6, st->rnd, 10);
  /* 128 bits -> 26 base32 digits; the first digit carries the top 3 bits. */
  for (i = 0, bit = -2; i < 26; i++, bit += 5) {
    int v = 0, k;
    for (k = 0; k < 5; k++) {
      int pos = bit + k;
      v <<= 1;
      if (pos >= 0) v |= (bytes[pos >> 3] >> (7 - (pos & 7))) & 1;
    }
    out[i] = alphabet[v];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

static const luaL_Reg util_funcs[] = {
  {"uri_encode", util_uri_encode},
  {"now_ms", util_now_ms},
  {"monotonic_ms", util_monotonic_ms},
  {"thread_cpu_ms", util_thread_cpu_ms},
  {"sleep_ms", util_sleep_ms},
  {NULL, NULL},
};

int util_open(lua_State *L) {
  util_ulid_state *st;
  luaL_setfuncs(L, util_funcs, 0);
  st = (util_ulid_state *)lua_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  lua_pushcclosure(L, util_ulid, 1);
  lua_setfield(L, -2, "ulid");
  return 0;
}
