/*
 * json.h - what the JSON encoder (json_encode.c) and decoder (json_decode.c) share.
 * json.c makes the shared metatables and registers both (json_open).
 */
#ifndef CIO_JSON_H
#define CIO_JSON_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "compat.h"

#define JSON_DEFAULT_DEPTH 1000

/* Highest max_depth accepted, both directions. Neither recurses in C (the C stack need does
 * not depend on the nesting); each level holds at most 4 Lua stack slots (order list, seen
 * set, key, value), and Lua 5.1 and LuaJIT give a C function at most LUAI_MAXCSTACK = 8000
 * slots, so there the bound is 1900. */
#if LUA_VERSION_NUM >= 502
#define JSON_DEPTH_LIMIT 10000
#else
#define JSON_DEPTH_LIMIT 1900
#endif
#define JSON_2P53 9007199254740992.0 /* 2^53 */

/* Byte classes in strings (both directions): 0 copied as is, 1 escaped, 2 start of a UTF-8 sequence. */
static const unsigned char json_class[256] = {
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define JSON_ONES 0x0101010101010101ULL
#define JSON_HIGHS 0x8080808080808080ULL

/* Nonzero when one of the 8 bytes of x is < 0x20, '"', '\\' or >= 0x80. */
static inline int json_word_special(uint64_t x) {
  uint64_t q = x ^ (JSON_ONES * '"');
  uint64_t s = x ^ (JSON_ONES * '\\');
  uint64_t t = (x - JSON_ONES * 0x20) & ~x;
  t |= (q - JSON_ONES) & ~q;
  t |= (s - JSON_ONES) & ~s;
  return ((t | x) & JSON_HIGHS) != 0;
}

/* The end of the plain run of string bytes at p: the first quote, backslash, control or
 * non-ASCII byte (json_class != 0), or end. Eight bytes at a time while it can. */
static inline const unsigned char *json_plain_end(const unsigned char *p, const unsigned char *end) {
  while (end - p >= 8) {
    uint64_t x;
    memcpy(&x, p, 8);
    if (json_word_special(x)) break;
    p += 8;
  }
  while (p < end && json_class[*p] == 0) p++;
  return p;
}

/* Length of the valid UTF-8 sequence at p (2..4), 0 if invalid. Strict: no overlongs, no
 * surrogates, nothing above U+10FFFF. */
static inline size_t json_utf8_len(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  size_t avail = (size_t)(end - p);
  unsigned lo = 0x80, hi = 0xBF;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (avail >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3) return 0;
    if (c == 0xE0) lo = 0xA0;
    else if (c == 0xED) hi = 0x9F;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
    return 3;
  }
  if (c < 0xF5) {
    if (avail < 4) return 0;
    if (c == 0xF0) lo = 0x90;
    else if (c == 0xF4) hi = 0x8F;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    return 4;
  }
  return 0;
}

/* opts.<name> of the options table at index o as an integer from lo to hi, or def when
 * absent; raises an argument error naming the range otherwise. */
static inline lua_Number json_opt_integer(lua_State *L, int o, const char *name, lua_Number def, lua_Number lo,
                                          lua_Number hi) {
  lua_Number v = def;
  lua_getfield(L, o, name);
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || n != floor(n) || n < lo || n > hi) {
      lua_pushfstring(L, "%s must be an integer from %d to %d", name, (int)lo, (int)hi);
      return (lua_Number)luaL_argerror(L, o, lua_tostring(L, -1));
    }
    v = n;
  }
  lua_pop(L, 1);
  return v;
}

/* Register json_encode / json_decode in the module table at mod; array_mt and object_mt are
 * the stack indices of the shared metatables. */
void json_encode_open(lua_State *L, int mod, int array_mt, int object_mt);
void json_decode_open(lua_State *L, int mod, int array_mt);

#endif
