/*
 * json_decode.c - core.json_decode (cJSON based; being replaced by a one-pass reader).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "json.h"
/* ---------------------------------------------------------------------------------------- */
/* Decoder                                                                                   */
/* ---------------------------------------------------------------------------------------- */

#define JSON_D_CTX 1
#define JSON_D_ARRAY_MT 2

typedef struct {
  lua_State *L;
  const cJSON *tree;
  const char *text;
  size_t len;
  const char *scan; /* scanner position: literals are re-read from the text in document order */
  int max_depth;
  int ordered;
  int from_text; /* strings are decoded from the text (it contains \u0000) */
  int too_deep;
} json_dec;

/* Next scalar token (string, number, literal) at or after d->scan; NULL at the end. */
static const char *json_scan_next(json_dec *d, const char **tokend) {
  const char *p = d->scan, *end = d->text + d->len;
  while (p < end) {
    char c = *p;
    if (c == '"') {
      const char *q = p + 1;
      for (;;) {
        const char *r;
        q = (const char *)memchr(q, '"', (size_t)(end - q));
        if (q == NULL) {
          q = end - 1;
          break;
        }
        for (r = q - 1; r > p && *r == '\\'; r--) {}
        if (((q - 1) - r) % 2 == 0) break; /* an even run of backslashes: the quote ends it */
        q++;
      }
      *tokend = q + 1;
      d->scan = q + 1;
      return p;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      const char *q = p + 1;
      while (q < end && ((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' || *q == '+' || *q == '-'))
        q++;
      *tokend = q;
      d->scan = q;
      return p;
    }
    if (c == 't' || c == 'n' || c == 'f') {
      const char *q = p + (c == 'f' ? 5 : 4);
      if (q > end) q = end;
      *tokend = q;
      d->scan = q;
      return p;
    }
    p++;
  }
  d->scan = end;
  return NULL;
}

#if CIO_HAS_INTEGERS
/* The integer a literal like -123 denotes, if it has no fraction/exponent and fits. */
static int json_literal_integer(const char *p, const char *end, lua_Integer *out) {
  int neg = (p < end && *p == '-');
  uint64_t v = 0;
  if (neg) p++;
  if (p >= end) return 0;
  for (; p < end; p++) {
    unsigned c = (unsigned)(unsigned char)*p - '0';
    if (c > 9) return 0;
    if (v > (UINT64_MAX - c) / 10) return 0;
    v = v * 10 + c;
  }
  if (neg) {
    if (v > (uint64_t)LUA_MAXINTEGER + 1) return 0;
    *out = (v == (uint64_t)LUA_MAXINTEGER + 1) ? LUA_MININTEGER : -(lua_Integer)v;
  } else {
    if (v > (uint64_t)LUA_MAXINTEGER) return 0;
    *out = (lua_Integer)v;
  }
  return 1;
}
#endif

static unsigned json_hex4(const char *p) {
  unsigned v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
  }
  return v;
}

/* Pushes the string literal [p, end) (quotes included) decoded; cJSON has validated it. */
static void json_push_literal_string(lua_State *L, const char *p, const char *end) {
  luaL_Buffer B;
  p++;
  if (end > p && end[-1] == '"') end--;
  luaL_buffinit(L, &B);
  while (p < end) {
    const char *q = p;
    while (q < end && *q != '\\') q++;
    luaL_addlstring(&B, p, (size_t)(q - p));
    if (q + 1 >= end) break;
    q++;
    switch (*q) {
      case 'b': luaL_addchar(&B, '\b'); break;
      case 'f': luaL_addchar(&B, '\f'); break;
      case 'n': luaL_addchar(&B, '\n'); break;
      case 'r': luaL_addchar(&B, '\r'); break;
      case 't': luaL_addchar(&B, '\t'); break;
      case 'u': {
        unsigned cp;
        char u[4];
        size_t n;
        if (end - q < 5) {
          q = end - 1;
          break;
        }
        cp = json_hex4(q + 1);
        q += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && end - q >= 7 && q[1] == '\\' && q[2] == 'u') {
          cp = 0x10000 + ((cp & 0x3FF) << 10) + (json_hex4(q + 3) & 0x3FF);
          q += 6;
        }
        if (cp < 0x80) {
          u[0] = (char)cp;
          n = 1;
        } else if (cp < 0x800) {
          u[0] = (char)(0xC0 | (cp >> 6));
          u[1] = (char)(0x80 | (cp & 0x3F));
          n = 2;
        } else if (cp < 0x10000) {
          u[0] = (char)(0xE0 | (cp >> 12));
          u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
          u[2] = (char)(0x80 | (cp & 0x3F));
          n = 3;
        } else {
          u[0] = (char)(0xF0 | (cp >> 18));
          u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
          u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
          u[3] = (char)(0x80 | (cp & 0x3F));
          n = 4;
        }
        luaL_addlstring(&B, u, n);
        break;
      }
      default: luaL_addchar(&B, *q); break; /* " \ / */
    }
    p = q + 1;
  }
  luaL_pushresult(&B);
}

static void json_push_string(json_dec *d, const char *s) {
  if (d->from_text) {
    const char *end, *t = json_scan_next(d, &end);
    if (t != NULL && *t == '"') {
      json_push_literal_string(d->L, t, end);
      return;
    }
  }
  lua_pushstring(d->L, s);
}

static void json_push_number(json_dec *d, const cJSON *item) {
  const char *t = NULL, *end = NULL;
  if (d->from_text) {
    t = json_scan_next(d, &end);
  }
#if CIO_HAS_INTEGERS
  else {
    do t = json_scan_next(d, &end);
    while (t != NULL && *t != '-' && !(*t >= '0' && *t <= '9'));
  }
  if (t != NULL) {
    lua_Integer i;
    if (json_literal_integer(t, end, &i)) {
      lua_pushinteger(d->L, i);
      return;
    }
  }
#endif
  (void)t;
  lua_pushnumber(d->L, (lua_Number)item->valuedouble);
}

static int json_push_item(json_dec *d, const cJSON *item, int depth) {
  lua_State *L = d->L;
  const cJSON *c;
  int n = 0;
  switch (item->type & 0xFF) {
    case cJSON_NULL:
    case cJSON_False:
    case cJSON_True:
      if (d->from_text) {
        const char *end;
        json_scan_next(d, &end);
      }
      if ((item->type & 0xFF) == cJSON_NULL) lua_pushlightuserdata(L, NULL);
      else lua_pushboolean(L, (item->type & 0xFF) == cJSON_True);
      return 0;
    case cJSON_Number:
      json_push_number(d, item);
      return 0;
    case cJSON_String:
      json_push_string(d, item->valuestring);
      return 0;
    case cJSON_Array:
    case cJSON_Object:
      break;
    default:
      lua_pushnil(L);
      return 0;
  }
  if (depth >= d->max_depth || !lua_checkstack(L, 10)) {
    d->too_deep = 1;
    return -1;
  }
  for (c = item->child; c != NULL; c = c->next) n++;
  if ((item->type & 0xFF) == cJSON_Array) {
    int i = 0;
    lua_createtable(L, n, 0);
    for (c = item->child; c != NULL; c = c->next) {
      if (json_push_item(d, c, depth + 1)) return -1;
      lua_rawseti(L, -2, ++i);
    }
    lua_pushvalue(L, JSON_D_ARRAY_MT);
    lua_setmetatable(L, -2);
  } else {
    int t, order = 0, m = 0;
    lua_createtable(L, 0, n);
    t = lua_gettop(L);
    if (d->ordered) {
      lua_createtable(L, n, 0);
      order = t + 1;
    }
    for (c = item->child; c != NULL; c = c->next) {
      json_push_string(d, c->string);
      if (order) {
        lua_pushvalue(L, -1);
        lua_rawget(L, t);
        if (lua_isnil(L, -1)) { /* a repeated key keeps its first place */
          lua_pushvalue(L, -2);
          lua_rawseti(L, order, ++m);
        }
        lua_pop(L, 1);
      }
      if (json_push_item(d, c, depth + 1)) return -1;
      lua_rawset(L, t); /* a repeated key: the last value wins */
    }
    if (order) {
      lua_createtable(L, 0, 2);
      lua_pushliteral(L, "object");
      lua_setfield(L, -2, "__jsontype");
      lua_pushvalue(L, order);
      lua_setfield(L, -2, "__jsonorder");
      lua_setmetatable(L, t);
      lua_pop(L, 1);
    }
  }
  return 0;
}

static int json_decode_run(lua_State *L) {
  json_dec *d = (json_dec *)lua_touserdata(L, JSON_D_CTX);
  d->L = L;
  if (json_push_item(d, d->tree, 0)) return 0;
  return 1;
}

/* Offset of the first byte that cJSON should not see (invalid UTF-8, or a control character
 * other than tab/CR/LF); len when there is none. *utf8 tells which. */
static size_t json_check_text(const char *text, size_t len, int *utf8) {
  const unsigned char *s = (const unsigned char *)text, *end = s + len, *p = s;
  while (p < end) {
    unsigned c;
    if (end - p >= 8) {
      uint64_t x;
      memcpy(&x, p, 8);
      if ((((x - JSON_ONES * 0x20) & ~x) | x) & JSON_HIGHS) {
        /* something below 0x20 or above 0x7f: look at each byte */
      } else {
        p += 8;
        continue;
      }
    }
    c = *p;
    if (c >= 0x80) {
      size_t n = json_utf8_len(p, end);
      if (n == 0) {
        *utf8 = 1;
        return (size_t)(p - s);
      }
      p += n;
    } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
      *utf8 = 0;
      return (size_t)(p - s);
    } else {
      p++;
    }
  }
  return len;
}

/* Walks the text up to `upto`: whether that position is inside a string (and where that
 * string starts), whether the innermost open bracket there is '{', and the offset of the first
 * bracket that opens nesting level limit + 1 ((size_t)-1 if none). */
typedef struct {
  size_t str_start;
  int in_str;
  int in_object;
} json_where;

#define JSON_WALK_LEVELS (CJSON_NESTING_LIMIT + 8)

static size_t json_walk(const char *text, size_t upto, int limit, json_where *w) {
  unsigned char objects[JSON_WALK_LEVELS / 8 + 1]; /* a bit per level: '{' (1) or '[' (0) */
  size_t i, deep = (size_t)-1;
  int depth = 0;
  memset(objects, 0, sizeof(objects));
  w->str_start = 0;
  w->in_str = 0;
  w->in_object = 0;
  for (i = 0; i < upto; i++) {
    char c = text[i];
    if (w->in_str) {
      if (c == '\\') i++;
      else if (c == '"') w->in_str = 0;
    } else if (c == '"') {
      w->in_str = 1;
      w->str_start = i;
    } else if (c == '[' || c == '{') {
      if (depth < JSON_WALK_LEVELS) {
        if (c == '{') objects[depth / 8] |= (unsigned char)(1u << (depth % 8));
        else objects[depth / 8] &= (unsigned char)~(1u << (depth % 8));
      }
      if (++depth > limit && deep == (size_t)-1) deep = i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  if (depth > 0 && depth <= JSON_WALK_LEVELS) w->in_object = (objects[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
  return deep;
}

static int json_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether the string starting with the quote at text[start] has a closing quote. */
static int json_string_closes(const char *text, size_t start, size_t len) {
  size_t i;
  for (i = start + 1; i < len; i++) {
    if (text[i] == '\\') i++;
    else if (text[i] == '"') return 1;
  }
  return 0;
}

/* nil, "<what> at byte N" (N counts from 1, like string.sub). */
static int json_decode_fail(lua_State *L, const char *what, size_t at) {
  char msg[96];
  lua_pushnil(L);
  snprintf(msg, sizeof(msg), "%s at byte %llu", what, (unsigned long long)at + 1);
  lua_pushstring(L, msg);
  return 2;
}

/* nil, "invalid JSON at byte N: <hint>". */
static int json_decode_syntax(lua_State *L, size_t at, const char *hint) {
  char msg[96];
  lua_pushnil(L);
  snprintf(msg, sizeof(msg), "invalid JSON at byte %llu: %s", (unsigned long long)at + 1, hint);
  lua_pushstring(L, msg);
  return 2;
}

/* cJSON failed at text[at]: say why as well as we can. */
static int json_parse_error(lua_State *L, const char *text, size_t len, size_t at, int limit) {
  json_where w;
  size_t deep;
  char hint[48];
  deep = json_walk(text, at < len ? at + 1 : len, limit, &w);
  if (deep != (size_t)-1) {
    snprintf(hint, sizeof(hint), "nesting deeper than %d", limit);
    return json_decode_fail(L, hint, deep);
  }
  json_walk(text, at, limit, &w);
  if (w.in_str) {
    if (!json_string_closes(text, w.str_start, len)) return json_decode_syntax(L, w.str_start, "unterminated string");
    return json_decode_syntax(L, at, "invalid escape in string");
  }
  /* Where an object key should start, cJSON reports the byte after the bad one ({'a':1}). */
  if (at > 0 && !json_is_space(text[at - 1]) && text[at - 1] != '"') {
    size_t j = at - 1;
    while (j > 0 && json_is_space(text[j - 1])) j--;
    if (j > 0 && (text[j - 1] == '{' || text[j - 1] == ',')) {
      json_walk(text, j, limit, &w);
      if (w.in_object) at--;
    }
  }
  if (at >= len) return json_decode_syntax(L, len, "unexpected end of input");
  if (text[at] > 0x20 && text[at] < 0x7f) snprintf(hint, sizeof(hint), "unexpected '%c'", text[at]);
  else snprintf(hint, sizeof(hint), "unexpected byte 0x%02x", (unsigned)(unsigned char)text[at]);
  return json_decode_syntax(L, at, hint);
}

/* Whether the text contains the escape \u0000 (which cJSON's C strings would cut at). */
static int json_has_nul_escape(const char *text, size_t len) {
  const char *p = text, *end = text + len;
  while ((size_t)(end - p) >= 6 && (p = (const char *)memchr(p, '\\', (size_t)(end - p) - 5)) != NULL) {
    if (memcmp(p, "\\u0000", 6) == 0) return 1;
    p += (p[1] == '\\') ? 2 : 1;
  }
  return 0;
}

static int json_decode(lua_State *L) {
  json_dec d;
  size_t len, bad;
  const char *text, *end = NULL;
  cJSON *tree;
  int utf8 = 0, status, limit;
  luaL_checktype(L, 1, LUA_TSTRING);
  text = lua_tolstring(L, 1, &len);
  d.max_depth = JSON_DEFAULT_DEPTH;
  d.ordered = 0;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    d.max_depth = (int)json_opt_integer(L, 2, "max_depth", JSON_DEFAULT_DEPTH, 1, 10000);
    lua_getfield(L, 2, "ordered");
    d.ordered = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  limit = d.max_depth < CJSON_NESTING_LIMIT ? d.max_depth : CJSON_NESTING_LIMIT;

  bad = json_check_text(text, len, &utf8);
  if (bad < len) {
    if (utf8) return json_decode_fail(L, "invalid UTF-8", bad);
    return json_decode_syntax(L, bad, "control character");
  }

  /* len + 1: with require_null_terminated cJSON wants to see the terminating NUL */
  tree = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
  if (tree == NULL) {
    size_t at = (end != NULL && end >= text) ? (size_t)(end - text) : 0;
    return json_parse_error(L, text, len, at > len ? len : at, limit);
  }
  if (end != text + len) { /* cannot happen: NUL bytes were rejected above */
    cJSON_Delete(tree);
    return json_decode_syntax(L, end > text ? (size_t)(end - text) : 0, "unexpected data after the value");
  }

  d.tree = tree;
  d.text = text;
  d.len = len;
  d.scan = text;
  d.from_text = json_has_nul_escape(text, len);
  d.too_deep = 0;
  lua_pushvalue(L, lua_upvalueindex(1)); /* json_decode_run */
  lua_pushlightuserdata(L, &d);
  lua_pushvalue(L, lua_upvalueindex(2)); /* array_mt */
  status = lua_pcall(L, 2, 1, 0);
  cJSON_Delete(tree);
  if (status != 0) return lua_error(L);
  if (d.too_deep) {
    json_where w;
    char hint[48];
    size_t deep = json_walk(text, len, d.max_depth, &w);
    lua_pop(L, 1);
    if (deep == (size_t)-1) { /* the Lua stack ran out first */
      lua_pushnil(L);
      lua_pushliteral(L, "nesting too deep for the Lua stack");
      return 2;
    }
    snprintf(hint, sizeof(hint), "nesting deeper than %d", d.max_depth);
    return json_decode_fail(L, hint, deep);
  }
  return 1;
}

void json_decode_open(lua_State *L, int mod, int array_mt) {
  lua_pushcfunction(L, json_decode_run);
  lua_pushvalue(L, array_mt);
  lua_pushcclosure(L, json_decode, 2);
  lua_setfield(L, mod, "json_decode");
}
