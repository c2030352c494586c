/*
 * json_decode.c - core.json_decode: a strict RFC 8259 reader that builds the Lua value in the
 * same single pass over the text in which it validates it.
 *
 *   json_decode(text [, opts]) -> value | nil, message, reason
 *       opts.ordered      record each object's key order in its metatable
 *       opts.max_depth    nesting limit (1000; 1 to 10000, 1900 on LuaJIT and 5.1)
 *       opts.max_values   limit on the number of values: scalars, arrays and objects, the
 *                         document included (1000000; 1 to 2^31 - 1)
 *       opts.deadline_ms  a core.monotonic_ms() instant after which decoding stops
 *
 * A failure gives nil, a message naming the byte (counted from 1, like string.sub) and what
 * is wrong there, and a reason: "invalid" (the text is not JSON, or nests deeper than
 * max_depth), "too_large" (more than max_values values) or "timeout" (deadline_ms passed).
 * Refused, with the offset: leading zeros, "1." and "-.5", bad or truncated escapes, lone
 * surrogates, control characters (raw tab/CR/LF included) in strings, invalid UTF-8,
 * anything after the value.
 *
 * Numbers: on Lua 5.3+ a literal without fraction or exponent that fits in int64 becomes an
 * exact integer; everything else is the correctly rounded double (exact fast paths for up to
 * 19 digits and powers of ten up to 22, strtod otherwise). LuaJIT and 5.1 have doubles only.
 *
 * No recursion: open arrays and objects are a stack of levels (C stack for the first
 * JSON_D_INLINE_LEVELS, then a userdata), the tables themselves sit on the Lua stack. Only
 * Lua-managed memory is used (the scratch buffer for escaped strings is a userdata too), so a
 * memory error raised by Lua mid-way leaks nothing and no lua_pcall is needed.
 */

/***
 * JSON decode.
 * @module customerio.core
 */
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"

#define JSON_D_DEFAULT_VALUES 1000000
#define JSON_D_VALUES_LIMIT 2147483647
#define JSON_D_INLINE_LEVELS 32
#define JSON_D_INLINE_SCRATCH 256
#define JSON_D_CLOCK_EVERY 4095 /* the deadline is checked every 4096 values */

/* Stack slots: the argument, the options, the levels and scratch userdata (or nil); the
 * tables being built come after. */
#define JSON_D_LEVELS 3
#define JSON_D_SCRATCH 4
#define JSON_D_TOP 4

enum { JSON_D_INVALID, JSON_D_UTF8, JSON_D_DEPTH, JSON_D_VALUES, JSON_D_DEADLINE, JSON_D_LUA_STACK };

typedef struct {
  int t;   /* stack index of the table */
  int n;   /* elements of an array, or keys in the order list of an ordered object */
  int obj; /* an object */
} json_level;

typedef struct {
  lua_State *L;
  const char *text, *end;
  json_level *levels;
  int nlevels;
  char *scratch;
  size_t cap;
  int max_depth;
  int ordered;
  lua_Integer max_values;
  double deadline; /* < 0: none */
  /* the failure */
  int err;
  const char *err_at;
  const char *hint;
  char hint_buf[32];
  json_level inline_levels[JSON_D_INLINE_LEVELS];
  char inline_scratch[JSON_D_INLINE_SCRATCH];
} json_dec;

static const double json_d_pow10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

#define JSON_D_SPACE(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')
#define JSON_D_DIGIT(c) ((unsigned)((unsigned char)(c) - '0') < 10u)

static const char *json_d_fail(json_dec *d, int err, const char *at, const char *hint) {
  d->err = err;
  d->err_at = at;
  d->hint = hint;
  return NULL;
}

/* What is at p when something else was expected there. */
static const char *json_d_unexpected(json_dec *d, const char *p) {
  unsigned c;
  if (p >= d->end) return json_d_fail(d, JSON_D_INVALID, p, "unexpected end of input");
  c = (unsigned char)*p;
  if (c < 0x20) return json_d_fail(d, JSON_D_INVALID, p, "control character");
  if (c >= 0x80 && json_utf8_len((const unsigned char *)p, (const unsigned char *)d->end) == 0)
    return json_d_fail(d, JSON_D_UTF8, p, NULL);
  if (c < 0x7f) snprintf(d->hint_buf, sizeof(d->hint_buf), "unexpected '%c'", (char)c);
  else snprintf(d->hint_buf, sizeof(d->hint_buf), "unexpected byte 0x%02x", c);
  return json_d_fail(d, JSON_D_INVALID, p, d->hint_buf);
}

/* Room for n bytes in the scratch buffer (a userdata in slot JSON_D_SCRATCH once it outgrows
 * the inline one); keeps the first `keep` bytes. */
static void json_d_reserve(json_dec *d, size_t keep, size_t n) {
  size_t cap;
  char *p;
  if (n <= d->cap) return;
  cap = d->cap * 2;
  if (cap < n) cap = n;
  p = (char *)lua_newuserdata(d->L, cap);
  memcpy(p, d->scratch, keep);
  lua_replace(d->L, JSON_D_SCRATCH);
  d->scratch = p;
  d->cap = cap;
}

static int json_d_hex4(const char *p, unsigned *out) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    unsigned c = (unsigned char)p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return 0;
  }
  *out = v;
  return 1;
}

/* The rest of a string from the backslash at q (s: its first byte, open: its quote), decoded
 * into the scratch buffer. */
static const char *json_d_escaped(json_dec *d, const char *open, const char *s, const char *q) {
  const unsigned char *end = (const unsigned char *)d->end, *u = (const unsigned char *)q;
  size_t len = (size_t)(q - s);
  json_d_reserve(d, 0, len + 16);
  memcpy(d->scratch, s, len);
  for (;;) {
    const unsigned char *run;
    unsigned c;
    /* at a backslash */
    if (end - u < 2) return json_d_fail(d, JSON_D_INVALID, open, "unterminated string");
    json_d_reserve(d, len, len + 4);
    switch (u[1]) {
      case '"': d->scratch[len++] = '"'; break;
      case '\\': d->scratch[len++] = '\\'; break;
      case '/': d->scratch[len++] = '/'; break;
      case 'b': d->scratch[len++] = '\b'; break;
      case 'f': d->scratch[len++] = '\f'; break;
      case 'n': d->scratch[len++] = '\n'; break;
      case 'r': d->scratch[len++] = '\r'; break;
      case 't': d->scratch[len++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        char *o;
        if (end - u < 6) return json_d_fail(d, JSON_D_INVALID, open, "unterminated string");
        if (!json_d_hex4((const char *)u + 2, &cp)) return json_d_fail(d, JSON_D_INVALID, (const char *)u, "invalid \\u escape in string");
        if (cp >= 0xDC00 && cp <= 0xDFFF) return json_d_fail(d, JSON_D_INVALID, (const char *)u, "lone surrogate in string");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (end - u < 12 || u[6] != '\\' || u[7] != 'u' || !json_d_hex4((const char *)u + 8, &lo) || lo < 0xDC00 ||
              lo > 0xDFFF)
            return json_d_fail(d, JSON_D_INVALID, (const char *)u, "lone surrogate in string");
          cp = 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF);
          u += 6;
        }
        o = d->scratch + len;
        if (cp < 0x80) {
          o[0] = (char)cp;
          len += 1;
        } else if (cp < 0x800) {
          o[0] = (char)(0xC0 | (cp >> 6));
          o[1] = (char)(0x80 | (cp & 0x3F));
          len += 2;
        } else if (cp < 0x10000) {
          o[0] = (char)(0xE0 | (cp >> 12));
          o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
          o[2] = (char)(0x80 | (cp & 0x3F));
          len += 3;
        } else {
          o[0] = (char)(0xF0 | (cp >> 18));
          o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
          o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
          o[3] = (char)(0x80 | (cp & 0x3F));
          len += 4;
        }
        u += 4;
        break;
      }
      default: return json_d_fail(d, JSON_D_INVALID, (const char *)u, "invalid escape in string");
    }
    u += 2;
    /* the plain run up to the next escape or the closing quote */
    run = u;
    for (;;) {
      u = json_plain_end(u, end);
      if (u >= end) return json_d_fail(d, JSON_D_INVALID, open, "unterminated string");
      c = *u;
      if (c < 0x80) break;
      {
        size_t n = json_utf8_len(u, end);
        if (n == 0) return json_d_fail(d, JSON_D_UTF8, (const char *)u, NULL);
        u += n;
      }
    }
    if (c < 0x20) return json_d_fail(d, JSON_D_INVALID, (const char *)u, "control character");
    json_d_reserve(d, len, len + (size_t)(u - run));
    memcpy(d->scratch + len, run, (size_t)(u - run));
    len += (size_t)(u - run);
    if (c == '"') {
      lua_pushlstring(d->L, d->scratch, len);
      return (const char *)u + 1;
    }
  }
}

/* Pushes the string whose opening quote is at p; returns the byte after its closing quote. */
static const char *json_d_string(json_dec *d, const char *p) {
  const unsigned char *end = (const unsigned char *)d->end, *s = (const unsigned char *)p + 1, *u = s;
  unsigned c;
  for (;;) {
    u = json_plain_end(u, end);
    if (u >= end) return json_d_fail(d, JSON_D_INVALID, p, "unterminated string");
    c = *u;
    if (c == '"') {
      lua_pushlstring(d->L, (const char *)s, (size_t)(u - s));
      return (const char *)u + 1;
    }
    if (c == '\\') return json_d_escaped(d, p, (const char *)s, (const char *)u);
    if (c < 0x20) return json_d_fail(d, JSON_D_INVALID, (const char *)u, "control character");
    {
      size_t n = json_utf8_len(u, end);
      if (n == 0) return json_d_fail(d, JSON_D_UTF8, (const char *)u, NULL);
      u += n;
    }
  }
}

/* strtod of the literal [s, s + n), whatever the locale's decimal point. */
static double json_d_strtod(json_dec *d, const char *s, size_t n) {
  const char *point = localeconv()->decimal_point;
  char *buf;
  json_d_reserve(d, 0, n + 8);
  buf = d->scratch;
  memcpy(buf, s, n);
  buf[n] = '\0';
  if (point != NULL && point[0] != '.' && point[0] != '\0' && point[1] == '\0') {
    char *dot = (char *)memchr(buf, '.', n);
    if (dot != NULL) *dot = point[0];
  }
  return strtod(buf, NULL);
}

/* Pushes the number that starts at p (a '-' or a digit). */
static const char *json_d_number(json_dec *d, const char *p) {
  const char *start = p, *end = d->end;
  uint64_t m = 0;
  int digits = 0, exp10 = 0, inexact = 0, is_float = 0, neg = 0;
  if (*p == '-') {
    neg = 1;
    p++;
    if (p >= end || !JSON_D_DIGIT(*p)) return json_d_unexpected(d, p);
  }
  if (*p == '0') {
    p++;
    if (p < end && JSON_D_DIGIT(*p)) return json_d_fail(d, JSON_D_INVALID, p - 1, "leading zero in number");
  } else {
    while (p < end && JSON_D_DIGIT(*p)) {
      if (digits < 19) {
        m = m * 10 + (uint64_t)(*p - '0');
        digits++;
      } else {
        if (exp10 < 1000000) exp10++; /* bounded: only the fast path's range matters */
        inexact |= (*p != '0');
      }
      p++;
    }
  }
  if (p < end && *p == '.') {
    is_float = 1;
    p++;
    if (p >= end || !JSON_D_DIGIT(*p)) return json_d_unexpected(d, p);
    while (p < end && JSON_D_DIGIT(*p)) {
      if (digits < 19) {
        m = m * 10 + (uint64_t)(*p - '0');
        if (m != 0) digits++;
        if (exp10 > -1000000) exp10--;
      } else {
        inexact |= (*p != '0');
      }
      p++;
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    int e = 0, eneg = 0;
    is_float = 1;
    p++;
    if (p < end && (*p == '+' || *p == '-')) eneg = (*p++ == '-');
    if (p >= end || !JSON_D_DIGIT(*p)) return json_d_unexpected(d, p);
    while (p < end && JSON_D_DIGIT(*p)) {
      if (e < 100000) e = e * 10 + (*p - '0');
      p++;
    }
    exp10 += eneg ? -e : e;
  }
  if (!is_float && exp10 == 0) {
#if CIO_HAS_INTEGERS
    if (!neg && m <= (uint64_t)LUA_MAXINTEGER) {
      lua_pushinteger(d->L, (lua_Integer)m);
      return p;
    }
    if (neg && m <= (uint64_t)LUA_MAXINTEGER + 1) {
      lua_pushinteger(d->L, m == (uint64_t)LUA_MAXINTEGER + 1 ? LUA_MININTEGER : -(lua_Integer)m);
      return p;
    }
#endif
    lua_pushnumber(d->L, (lua_Number)(neg ? -(double)m : (double)m)); /* correctly rounded */
    return p;
  }
  if (!inexact && m <= (uint64_t)1 << 53 && exp10 >= -22 && exp10 <= 22) {
    /* both m and 10^|exp10| are exact doubles: one correctly rounded operation */
    double v = (double)m;
    v = exp10 < 0 ? v / json_d_pow10[-exp10] : v * json_d_pow10[exp10];
    lua_pushnumber(d->L, (lua_Number)(neg ? -v : v));
    return p;
  }
  lua_pushnumber(d->L, (lua_Number)json_d_strtod(d, start, (size_t)(p - start)));
  return p;
}

static double json_d_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* The value of the whole text on top of the stack; 0, or -1 with d->err set. */
static int json_d_parse(json_dec *d) {
  lua_State *L = d->L;
  const char *p = d->text, *end = d->end;
  json_level *lv = NULL;
  lua_Integer values = 0, max_values = d->max_values;
  int depth = 0;

value:
  while (p < end && JSON_D_SPACE(*p)) p++;
  if (p >= end) goto unexpected;
  if (++values > max_values) {
    snprintf(d->hint_buf, sizeof(d->hint_buf), "%.0f", (double)max_values);
    json_d_fail(d, JSON_D_VALUES, p, d->hint_buf);
    return -1;
  }
  if ((values & JSON_D_CLOCK_EVERY) == 0 && d->deadline >= 0 && json_d_now_ms() > d->deadline) {
    json_d_fail(d, JSON_D_DEADLINE, p, NULL);
    return -1;
  }
  switch (*p) {
    case '"':
      if ((p = json_d_string(d, p)) == NULL) return -1;
      break;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
      if ((p = json_d_number(d, p)) == NULL) return -1;
      break;
    case 't':
      if (end - p < 4 || memcmp(p, "true", 4) != 0) goto unexpected;
      lua_pushboolean(L, 1);
      p += 4;
      break;
    case 'f':
      if (end - p < 5 || memcmp(p, "false", 5) != 0) goto unexpected;
      lua_pushboolean(L, 0);
      p += 5;
      break;
    case 'n':
      if (end - p < 4 || memcmp(p, "null", 4) != 0) goto unexpected;
      lua_pushlightuserdata(L, NULL);
      p += 4;
      break;
    case '[':
    case '{':
      if (depth >= d->max_depth) {
        snprintf(d->hint_buf, sizeof(d->hint_buf), "%d", d->max_depth);
        json_d_fail(d, JSON_D_DEPTH, p, d->hint_buf);
        return -1;
      }
      if (!lua_checkstack(L, 8)) {
        json_d_fail(d, JSON_D_LUA_STACK, p, NULL);
        return -1;
      }
      if (depth == d->nlevels) { /* past the inline levels: room for all of them at once */
        json_level *more = (json_level *)lua_newuserdata(L, (size_t)d->max_depth * sizeof(json_level));
        memcpy(more, d->levels, (size_t)depth * sizeof(json_level));
        lua_replace(L, JSON_D_LEVELS);
        d->levels = more;
        d->nlevels = d->max_depth;
      }
      lv = &d->levels[depth++];
      lua_createtable(L, 0, 0);
      lv->t = lua_gettop(L);
      lv->n = 0;
      lv->obj = (*p == '{');
      p++;
      while (p < end && JSON_D_SPACE(*p)) p++;
      if (!lv->obj) {
        if (p < end && *p == ']') {
          p++;
          goto close_array;
        }
        goto value;
      }
      if (d->ordered) lua_createtable(L, 0, 0); /* the key order, at lv->t + 1 */
      if (p < end && *p == '}') {
        p++;
        goto close_object;
      }
      goto key;
    default:
      goto unexpected;
  }

after:
  if (depth == 0) {
    while (p < end && JSON_D_SPACE(*p)) p++;
    if (p < end) goto unexpected;
    return 0;
  }
  while (p < end && JSON_D_SPACE(*p)) p++;
  if (!lv->obj) {
    lua_rawseti(L, lv->t, ++lv->n);
    if (p < end && *p == ',') {
      p++;
      goto value;
    }
    if (p < end && *p == ']') {
      p++;
      goto close_array;
    }
    goto unexpected;
  }
  lua_rawset(L, lv->t); /* a repeated key: the last value wins */
  if (p < end && *p == ',') {
    p++;
    while (p < end && JSON_D_SPACE(*p)) p++;
    goto key;
  }
  if (p < end && *p == '}') {
    p++;
    goto close_object;
  }
  goto unexpected;

key:
  if (p >= end || *p != '"') goto unexpected;
  if ((p = json_d_string(d, p)) == NULL) return -1;
  if (d->ordered) {
    lua_pushvalue(L, -1);
    lua_rawget(L, lv->t);
    if (lua_isnil(L, -1)) { /* a repeated key keeps its first place */
      lua_pushvalue(L, -2);
      lua_rawseti(L, lv->t + 1, ++lv->n);
    }
    lua_pop(L, 1);
  }
  while (p < end && JSON_D_SPACE(*p)) p++;
  if (p >= end || *p != ':') goto unexpected;
  p++;
  goto value;

close_array:
  lua_pushvalue(L, lua_upvalueindex(1)); /* array_mt */
  lua_setmetatable(L, -2);
  depth--;
  lv = depth > 0 ? &d->levels[depth - 1] : NULL;
  goto after;

close_object:
  if (d->ordered) {
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__jsontype");
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "__jsonorder");
    lua_setmetatable(L, lv->t);
    lua_pop(L, 1);
  }
  depth--;
  lv = depth > 0 ? &d->levels[depth - 1] : NULL;
  goto after;

unexpected:
  json_d_unexpected(d, p);
  return -1;
}

/***
 * Decode JSON text.
 * @function json_decode
 * @tparam string text
 * @tparam[opt] table opts `ordered`, `max_depth` (1000), `max_values` (1000000), `deadline_ms`
 * @return the value, or nil, message, reason ("invalid" | "too_large" | "timeout")
 */
static int json_decode(lua_State *L) {
  json_dec d;
  size_t len;
  unsigned long long at;
  luaL_checktype(L, 1, LUA_TSTRING);
  d.L = L;
  d.text = lua_tolstring(L, 1, &len);
  d.end = d.text + len;
  d.levels = d.inline_levels;
  d.nlevels = JSON_D_INLINE_LEVELS;
  d.scratch = d.inline_scratch;
  d.cap = sizeof(d.inline_scratch);
  d.max_depth = JSON_DEFAULT_DEPTH;
  d.ordered = 0;
  d.max_values = JSON_D_DEFAULT_VALUES;
  d.deadline = -1;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    d.max_depth = (int)json_opt_integer(L, 2, "max_depth", JSON_DEFAULT_DEPTH, 1, JSON_DEPTH_LIMIT);
    d.max_values = (lua_Integer)json_opt_integer(L, 2, "max_values", JSON_D_DEFAULT_VALUES, 1, JSON_D_VALUES_LIMIT);
    lua_getfield(L, 2, "ordered");
    d.ordered = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "deadline_ms");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TNUMBER) return luaL_argerror(L, 2, "deadline_ms must be a number");
      d.deadline = (double)lua_tonumber(L, -1);
      if (!(d.deadline >= 0)) d.deadline = 0; /* NaN and negative instants: already passed */
    }
    lua_pop(L, 1);
  }
  if (d.max_depth < d.nlevels) d.nlevels = d.max_depth;
  lua_settop(L, JSON_D_TOP);
  if (json_d_parse(&d) == 0) return 1;

  at = (unsigned long long)(d.err_at - d.text) + 1;
  lua_settop(L, JSON_D_TOP);
  lua_pushnil(L);
  {
    char msg[128];
    const char *reason = "invalid";
    switch (d.err) {
      case JSON_D_UTF8: snprintf(msg, sizeof(msg), "invalid UTF-8 at byte %llu", at); break;
      case JSON_D_DEPTH: snprintf(msg, sizeof(msg), "nesting deeper than %s at byte %llu", d.hint, at); break;
      case JSON_D_VALUES:
        snprintf(msg, sizeof(msg), "more than %s values (max_values) at byte %llu", d.hint, at);
        reason = "too_large";
        break;
      case JSON_D_DEADLINE:
        snprintf(msg, sizeof(msg), "deadline_ms passed while decoding, at byte %llu", at);
        reason = "timeout";
        break;
      case JSON_D_LUA_STACK: snprintf(msg, sizeof(msg), "nesting too deep for the Lua stack"); break;
      default: snprintf(msg, sizeof(msg), "invalid JSON at byte %llu: %s", at, d.hint); break;
    }
    lua_pushstring(L, msg);
    lua_pushstring(L, reason);
  }
  return 3;
}

void json_decode_open(lua_State *L, int mod, int array_mt) {
  lua_pushvalue(L, array_mt);
  lua_pushcclosure(L, json_decode, 1);
  lua_setfield(L, mod, "json_decode");
}
