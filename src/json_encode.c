/*
 * json_encode.c - core.json_encode: Lua values to JSON text.
 *
 *   json_encode(value [, opts]) -> string | nil, message [, "too_large"]
 *       opts.root (name that starts error paths, "value"), opts.max_depth (1000; at most
 *       10000, 1900 on LuaJIT and 5.1), opts.max_bytes (stop as soon as the output passes it)
 *
 * No C recursion: the open tables are an explicit stack of frames (json_step advances the top
 * one by one element), so the C stack need is the same at any depth; each level holds at most
 * 4 Lua stack slots (see JSON_DEPTH_LIMIT).
 * Encoding walks the Lua value and writes JSON straight into one growable buffer (no cJSON
 * tree: that costs an allocation per value and cannot print int64 exactly). Tables are read
 * raw (lua_next/lua_rawgeti): __index, __pairs and __len are ignored, only the metafields
 * __jsontype ("array" | "object") and __jsonorder (list of keys written first) are honoured.
 * Bad data gives nil plus "path: message", the path in Lua terms (data.items[3].price). The
 * walk runs under lua_pcall, so a memory error raised by Lua mid-way still frees the buffer.
 */

/***
 * JSON encode.
 * @module customerio.core
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define JSON_INLINE_BUF 2048   /* first part of the encode buffer lives on the C stack */
/* Room kept past max_bytes: a string reserves up to 7 bytes more than it then writes, so an
 * output of exactly max_bytes never fails; whether the output passed the limit is decided on
 * its final length. */
#define JSON_BYTES_SLACK 16
#define JSON_BYTES_LIMIT 2147483647 /* highest max_bytes accepted */


static const char json_digits2[] =
  "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
  "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
  "8081828384858687888990919293949596979899";

static const char json_hex[] = "0123456789abcdef";

/* Writes the decimal digits of v so that they end at `end`; returns where they start. */
static char *json_u64_digits(char *end, uint64_t v) {
  char *p = end;
  while (v >= 100) {
    unsigned i = (unsigned)(v % 100) * 2;
    v /= 100;
    p -= 2;
    memcpy(p, json_digits2 + i, 2);
  }
  if (v >= 10) {
    p -= 2;
    memcpy(p, json_digits2 + v * 2, 2);
  } else {
    *--p = (char)('0' + v);
  }
  return p;
}

/* Integer value of a number on the stack, if it has one (keys, __jsonorder entries). */
static int json_tointeger(lua_State *L, int idx, lua_Integer *out) {
#if CIO_HAS_INTEGERS
  int isnum = 0;
  *out = lua_tointegerx(L, idx, &isnum);
  return isnum;
#else
  lua_Number d = lua_tonumber(L, idx);
  if (d >= -JSON_2P53 && d <= JSON_2P53) {
    lua_Integer i = (lua_Integer)d;
    if ((lua_Number)i == d) {
      *out = i;
      return 1;
    }
  }
  return 0;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Encoder                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Stack slots of json_encode_run (the protected part of json_encode). */
#define JSON_E_CTX 1
#define JSON_E_VALUE 2
#define JSON_E_ARRAY_MT 3
#define JSON_E_OBJECT_MT 4
#define JSON_E_TYPE_KEY 5
#define JSON_E_ORDER_KEY 6

enum { JSON_AUTO, JSON_ARRAY, JSON_OBJECT };

/* How a frame walks its table: by index 1..n (ELEMENTS), the keys of an __jsonorder list then
 * the others (ORDERED, then MEMBERS with `seen`), lua_next (MEMBERS), or, for an unmarked
 * table, lua_next while the keys are strings (AUTO_OBJECT) or 1, 2, 3... (AUTO_ARRAY). */
enum { JSON_F_ELEMENTS, JSON_F_ORDERED, JSON_F_MEMBERS, JSON_F_AUTO_OBJECT, JSON_F_AUTO_ARRAY };

/* One table being written. The frames are an explicit stack (e->frames), not C recursion,
 * and are also the path for error messages. */
typedef struct {
  const void *table;
  lua_Integer index; /* current element of an array, or position in the order list */
  lua_Integer n;     /* elements of an array, or length of the order list */
  size_t mark;       /* AUTO_ARRAY: output length before its '[' */
  int t;             /* stack index of the table */
  int top;           /* stack top when the frame was pushed (restored when it is done) */
  int base;          /* stack top of the frame's own slots; key and value go above */
  int key;           /* stack index of the current key of an object; 0 in an array */
  int seen;          /* keys already written (ORDERED, MEMBERS after it); 0 if none */
  int kind;
  int first;         /* nothing written inside yet */
  int pending;       /* AUTO_*: the first key and value were read by lua_next already */
} json_frame;

#define JSON_INLINE_FRAMES 16

typedef struct {
  lua_State *L;
  char *data;
  size_t len, cap;
  char *inline_buf;
  const char *root;
  size_t rootlen;
  int max_depth;
  size_t max_bytes; /* output limit (opts.max_bytes); the buffer never grows past it + slack */
  int oom;
  int too_big;      /* the output passed max_bytes */
  int failing;      /* an error message is being written: no limit applies */
  int rc;
  json_frame *frames; /* open tables, outermost first */
  int nframes, capframes;
  json_frame *inline_frames;
} json_enc;

static int json_grow(json_enc *e, size_t need) {
  size_t cap = e->cap, want;
  char *p;
  if (need > (SIZE_MAX / 4) - e->len) {
    e->oom = 1;
    return -1;
  }
  want = e->len + need;
  if (!e->failing && want > e->max_bytes + JSON_BYTES_SLACK) {
    e->too_big = 1;
    return -1;
  }
  while (cap < want) cap *= 2;
  if (!e->failing && cap > e->max_bytes + JSON_BYTES_SLACK) cap = e->max_bytes + JSON_BYTES_SLACK;
  if (e->data == e->inline_buf) {
    p = (char *)malloc(cap);
    if (p != NULL) memcpy(p, e->data, e->len);
  } else {
    p = (char *)realloc(e->data, cap);
  }
  if (p == NULL) {
    e->oom = 1;
    return -1;
  }
  e->data = p;
  e->cap = cap;
  return 0;
}

#define JSON_RESERVE(e, n) (((e)->cap - (e)->len >= (size_t)(n)) ? 0 : json_grow((e), (size_t)(n)))

static int json_put(json_enc *e, const char *s, size_t n) {
  if (JSON_RESERVE(e, n)) return -1;
  memcpy(e->data + e->len, s, n);
  e->len += n;
  return 0;
}

#define JSON_PUTLIT(e, s) json_put((e), "" s, sizeof(s) - 1)

static int json_putc(json_enc *e, char c) {
  if (JSON_RESERVE(e, 1)) return -1;
  e->data[e->len++] = c;
  return 0;
}

static int json_put_int(json_enc *e, lua_Integer i) {
  char tmp[24], *end = tmp + sizeof(tmp), *p;
  uint64_t u = (i < 0) ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
  p = json_u64_digits(end, u);
  if (i < 0) *--p = '-';
  return json_put(e, p, (size_t)(end - p));
}

/* -- error messages --------------------------------------------------------------------- */

static const char *const json_reserved[] = {
  "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while", NULL,
};

static int json_is_identifier(const char *s, size_t n) {
  size_t i;
  const char *const *w;
  if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
  }
  for (w = json_reserved; *w != NULL; w++)
    if (strlen(*w) == n && memcmp(*w, s, n) == 0) return 0;
  return 1;
}

/* ["key"] with the key quoted the way Lua would read it back. */
static void json_put_bracketed(json_enc *e, const char *s, size_t n) {
  size_t i;
  JSON_PUTLIT(e, "[\"");
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[4];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      json_put(e, esc, 2);
    } else if (c == '\n') {
      JSON_PUTLIT(e, "\\n");
    } else if (c < 0x20 || c == 0x7f) {
      esc[0] = '\\';
      esc[1] = (char)('0' + c / 100);
      esc[2] = (char)('0' + c / 10 % 10);
      esc[3] = (char)('0' + c % 10);
      json_put(e, esc, 4);
    } else {
      json_putc(e, (char)c);
    }
  }
  JSON_PUTLIT(e, "\"]");
}

/* Where frame f is in its table: [index], .name, ["key"] or [integer key]. */
static void json_put_step(json_enc *e, const json_frame *f) {
  lua_State *L = e->L;
  if (f->key == 0) {
    json_putc(e, '[');
    json_put_int(e, f->index);
    json_putc(e, ']');
  } else if (lua_type(L, f->key) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, f->key, &n);
    if (json_is_identifier(s, n)) {
      json_putc(e, '.');
      json_put(e, s, n);
    } else {
      json_put_bracketed(e, s, n);
    }
  } else {
    lua_Integer i = 0;
    json_tointeger(L, f->key, &i);
    json_putc(e, '[');
    json_put_int(e, i);
    json_putc(e, ']');
  }
}

/* The root name, then where each of the first n frames is (the path of a value). */
static void json_put_path(json_enc *e, int n) {
  int i;
  json_put(e, e->root, e->rootlen);
  for (i = 0; i < n; i++) json_put_step(e, &e->frames[i]);
}

/* Replaces the output with "path: msg" and returns -1. */
/* at: how many frames the path goes through. */
static int json_fail(json_enc *e, int at, const char *msg) {
  e->failing = 1;
  e->len = 0;
  json_put_path(e, at);
  JSON_PUTLIT(e, ": ");
  json_put(e, msg, strlen(msg));
  return -1;
}

static const char *json_type_name(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TLIGHTUSERDATA) return "light userdata";
  if (t == LUA_TNUMBER) return "float";
  return lua_typename(L, t);
}

static int json_fail_type(json_enc *e, int at, const char *what, int idx) {
  char msg[80];
  snprintf(msg, sizeof(msg), "%s%s", what, json_type_name(e->L, idx));
  return json_fail(e, at, msg);
}

/* -- scalars ----------------------------------------------------------------------------- */

static const double json_pow10[] = {
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static int json_put_double(json_enc *e, double d, int at) {
  char tmp[48], out[48];
  size_t n = 0, i;
  int prec, len;
  if (d != d) return json_fail(e, at, "cannot encode NaN");
  if (d > DBL_MAX) return json_fail(e, at, "cannot encode inf");
  if (d < -DBL_MAX) return json_fail(e, at, "cannot encode -inf");
  if (d > -JSON_2P53 && d < JSON_2P53) {
    double a;
    int k;
    if ((double)(int64_t)d == d) return json_put_int(e, (lua_Integer)(int64_t)d); /* -0 too */
    /* Fixed notation with the fewest decimals k such that r / 10^k == |d| for an integer r:
     * both that division and strtod of the text are correctly rounded from the same decimal,
     * so the text reads back as d exactly. Covers prices, rates, coordinates cheaply. */
    a = fabs(d);
    if (a >= 1e-4) {
      for (k = 1; k <= 17; k++) {
        double s = a * json_pow10[k], r;
        if (s >= JSON_2P53) break;
        r = floor(s + 0.5);
        if (r / json_pow10[k] == a) {
          char *end = out + sizeof(out), *p = json_u64_digits(end, (uint64_t)r);
          size_t nd = (size_t)(end - p);
          char *o = tmp;
          if (d < 0) *o++ = '-';
          if (nd > (size_t)k) {
            memcpy(o, p, nd - (size_t)k);
            o += nd - (size_t)k;
            *o++ = '.';
            memcpy(o, p + nd - (size_t)k, (size_t)k);
            o += k;
          } else {
            *o++ = '0';
            *o++ = '.';
            memset(o, '0', (size_t)k - nd);
            o += (size_t)k - nd;
            memcpy(o, p, nd);
            o += nd;
          }
          return json_put(e, tmp, (size_t)(o - tmp));
        }
      }
    }
  }
  /* Shortest of %.15g, %.16g, %.17g that reads back equal. printf and strtod use the same
   * locale, so the round trip test holds; the decimal point is then normalised to '.'. */
  len = 0;
  for (prec = 15; prec <= 17; prec++) {
    len = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
    if (len <= 0 || (size_t)len >= sizeof(tmp)) return json_fail(e, at, "cannot format number");
    if (prec == 17 || strtod(tmp, NULL) == d) break;
  }
  for (i = 0; i < (size_t)len; i++) {
    char c = tmp[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
      out[n++] = c;
    } else if (c == 'e' || c == 'E') {
      out[n++] = 'e';
      i++;
      if (tmp[i] == '+' || tmp[i] == '-') out[n++] = tmp[i++];
      while (tmp[i] == '0' && i + 1 < (size_t)len) i++; /* e-07 -> e-7 */
      while (i < (size_t)len) out[n++] = tmp[i++];
      break;
    } else if (n == 0 || out[n - 1] != '.') {
      out[n++] = '.'; /* the locale's decimal point, whatever its length */
    }
  }
  return json_put(e, out, n);
}

/* A JSON string from s[0..len); `key` selects the error wording. */
static int json_put_string(json_enc *e, const char *str, size_t len, int at, int key) {
  const unsigned char *p = (const unsigned char *)str, *end = p + len, *run = p;
  char *o;
  if (JSON_RESERVE(e, len + 2)) return -1;
  o = e->data + e->len;
  *o++ = '"';
  for (;;) {
    unsigned char c;
    p = json_plain_end(p, end);
    if (p >= end) break;
    c = *p;
    if (json_class[c] == 2) {
      size_t n = json_utf8_len(p, end);
      if (n == 0) {
        e->len = (size_t)(o - e->data);
        return json_fail(e, at, key ? "invalid UTF-8 in key" : "invalid UTF-8 in string");
      }
      p += n;
      continue;
    }
    /* flush the run, then make room for the escape and everything after it */
    memcpy(o, run, (size_t)(p - run));
    o += p - run;
    e->len = (size_t)(o - e->data);
    if (JSON_RESERVE(e, (size_t)(end - p) + 6 + 1)) return -1;
    o = e->data + e->len;
    *o++ = '\\';
    switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\b': *o++ = 'b'; break;
      case '\f': *o++ = 'f'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = json_hex[c >> 4];
        *o++ = json_hex[c & 15];
        break;
    }
    run = ++p;
  }
  memcpy(o, run, (size_t)(end - run));
  o += end - run;
  *o++ = '"';
  e->len = (size_t)(o - e->data);
  return 0;
}

/* -- tables ------------------------------------------------------------------------------ */

/* Writes the key at stack index k of the table of frame f (",\"key\":" or "\"key\":").
 * Errors name the table's path (the frames below f). */
static int json_put_key(json_enc *e, const json_frame *f, int k) {
  lua_State *L = e->L;
  int at = (int)(f - e->frames);
  if (!f->first && json_putc(e, ',')) return -1;
  if (lua_type(L, k) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, k, &n);
    if (json_put_string(e, s, n, at, 1)) return -1;
  } else {
    lua_Integer i;
    char tmp[24], *end = tmp + sizeof(tmp), *p;
    if (lua_type(L, k) != LUA_TNUMBER || !json_tointeger(L, k, &i))
      return json_fail_type(e, at, "cannot encode key of type ", k);
    p = json_u64_digits(end, (i < 0) ? (uint64_t)0 - (uint64_t)i : (uint64_t)i);
    if (i < 0) *--p = '-';
    /* 1 and "1" would both be written as "1" */
    lua_pushlstring(L, p, (size_t)(end - p));
    lua_rawget(L, f->t);
    if (!lua_isnil(L, -1)) {
      char msg[64];
      lua_pop(L, 1);
      snprintf(msg, sizeof(msg), "duplicate key \"%.*s\"", (int)(end - p), p);
      return json_fail(e, at, msg);
    }
    lua_pop(L, 1);
    if (json_putc(e, '"') || json_put(e, p, (size_t)(end - p)) || json_putc(e, '"')) return -1;
  }
  return json_putc(e, ':');
}

static int json_open_table(json_enc *e, int t);

/* Writes the value at idx, the current element of the top frame (or the document).
 * 0: written; 1: it is a table and its frame is now on top; -1: failed. */
static int json_put_value(json_enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return json_put_string(e, s, n, e->nframes, 0);
    }
    case LUA_TNUMBER:
#if CIO_HAS_INTEGERS
      if (lua_isinteger(L, idx)) return json_put_int(e, lua_tointeger(L, idx));
#endif
      return json_put_double(e, (double)lua_tonumber(L, idx), e->nframes);
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? JSON_PUTLIT(e, "true") : JSON_PUTLIT(e, "false");
    case LUA_TNIL:
      return JSON_PUTLIT(e, "null");
    case LUA_TTABLE:
      return json_open_table(e, idx);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) return JSON_PUTLIT(e, "null");
      /* fall through */
    default:
      return json_fail_type(e, e->nframes, "cannot encode ", idx);
  }
}

/* Pushes a frame for the table at t (which sits at or below the top of the stack). */
static json_frame *json_push_frame(json_enc *e, int t) {
  json_frame *f;
  if (e->nframes == e->capframes) {
    int cap = e->capframes * 2;
    json_frame *p;
    if (e->frames == e->inline_frames) {
      p = (json_frame *)malloc((size_t)cap * sizeof(json_frame));
      if (p != NULL) memcpy(p, e->frames, (size_t)e->nframes * sizeof(json_frame));
    } else {
      p = (json_frame *)realloc(e->frames, (size_t)cap * sizeof(json_frame));
    }
    if (p == NULL) {
      e->oom = 1;
      return NULL;
    }
    e->frames = p;
    e->capframes = cap;
  }
  f = &e->frames[e->nframes++];
  f->table = lua_topointer(e->L, t);
  f->t = t;
  f->top = lua_gettop(e->L);
  f->base = f->top;
  f->key = 0;
  f->index = 0;
  f->n = 0;
  f->seen = 0;
  f->first = 1;
  f->pending = 0;
  return f;
}

/* Starts writing the table at t: checks, then either writes it whole ({} and empty marked
 * tables) or pushes its frame. Returns like json_put_value. */
static int json_open_table(json_enc *e, int t) {
  lua_State *L = e->L;
  const void *p = lua_topointer(L, t);
  int i, at = e->nframes, mode = JSON_AUTO;
  json_frame *f;
  for (i = 0; i < at; i++)
    if (e->frames[i].table == p) return json_fail(e, at, "reference cycle");
  if (at + 1 > e->max_depth) {
    char msg[48];
    snprintf(msg, sizeof(msg), "nesting deeper than %d", e->max_depth);
    return json_fail(e, at, msg);
  }
  if (!lua_checkstack(L, 8)) return json_fail(e, at, "nesting too deep for the Lua stack");
  if ((f = json_push_frame(e, t)) == NULL) return -1;

  if (lua_getmetatable(L, t)) {
    if (lua_rawequal(L, -1, JSON_E_ARRAY_MT)) {
      mode = JSON_ARRAY;
    } else if (lua_rawequal(L, -1, JSON_E_OBJECT_MT)) {
      mode = JSON_OBJECT;
    } else {
      lua_pushvalue(L, JSON_E_TYPE_KEY);
      lua_rawget(L, -2);
      if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "array") == 0) mode = JSON_ARRAY;
        else if (strcmp(s, "object") == 0) mode = JSON_OBJECT;
      }
      lua_pop(L, 1);
      if (mode != JSON_ARRAY) {
        lua_pushvalue(L, JSON_E_ORDER_KEY);
        lua_rawget(L, -2);
        if (lua_type(L, -1) == LUA_TTABLE) {
          lua_Integer m = (lua_Integer)lua_rawlen(L, -1);
          lua_remove(L, -2); /* keep the order list in place of the metatable */
          lua_createtable(L, 0, (int)(m < 1024 ? m : 1024));
          f->seen = lua_gettop(L);
          f->base = f->seen;
          f->n = m;
          f->kind = JSON_F_ORDERED;
          return json_putc(e, '{') ? -1 : 1;
        }
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
    if (mode == JSON_ARRAY) {
      f->kind = JSON_F_ELEMENTS;
      f->n = (lua_Integer)lua_rawlen(L, t);
      return json_putc(e, '[') ? -1 : 1;
    }
    if (mode == JSON_OBJECT) {
      f->kind = JSON_F_MEMBERS;
      lua_pushnil(L);
      return json_putc(e, '{') ? -1 : 1;
    }
  }

  /* No marker: {} for an empty table, an array for keys 1..n, an object for string keys. */
  lua_pushnil(L);
  if (!lua_next(L, t)) {
    e->nframes--;
    return JSON_PUTLIT(e, "{}");
  }
  f->pending = 1; /* the first key and value are on the stack */
  if (lua_type(L, -2) == LUA_TSTRING) {
    f->kind = JSON_F_AUTO_OBJECT;
    return json_putc(e, '{') ? -1 : 1;
  }
  {
    lua_Integer k;
    if (lua_type(L, -2) != LUA_TNUMBER || !json_tointeger(L, -2, &k))
      return json_fail_type(e, at, "cannot encode key of type ", lua_gettop(L) - 1);
  }
  f->kind = JSON_F_AUTO_ARRAY;
  f->mark = e->len;
  return json_putc(e, '[') ? -1 : 1;
}

/* AUTO_ARRAY whose keys stopped coming as 1, 2, 3...: checks all the keys (the current one is
 * on top of the stack), then restarts the frame as ELEMENTS 1..n. */
static int json_restart_elements(json_enc *e, json_frame *f) {
  lua_State *L = e->L;
  int at = (int)(f - e->frames), bad = 0;
  lua_Integer i, count, max;
  count = max = f->index;
  lua_pop(L, 1);
  for (;;) {
    if (lua_type(L, -1) == LUA_TSTRING) return json_fail(e, at, "mixed table (both array and object keys)");
    if (lua_type(L, -1) != LUA_TNUMBER || !json_tointeger(L, -1, &i))
      return json_fail_type(e, at, "cannot encode key of type ", lua_gettop(L));
    if (i < 1) bad = 1;
    if (i > max) max = i;
    count++;
    if (!lua_next(L, f->t)) break;
    lua_pop(L, 1);
  }
  if (bad || max != count) return json_fail(e, at, "sparse array");
  e->len = f->mark;
  f->kind = JSON_F_ELEMENTS;
  f->n = count;
  f->index = 0;
  f->key = 0;
  lua_settop(L, f->base);
  return json_putc(e, '[');
}

/* Advances the top frame f by one element: writes it (0), opens it as a table (1), or closes
 * f (0) once it has no more. -1: failed. */
static int json_step(json_enc *e, json_frame *f) {
  lua_State *L = e->L;
  int at = (int)(f - e->frames);
  switch (f->kind) {
    case JSON_F_ELEMENTS:
      lua_settop(L, f->base);
      if (f->index >= f->n) break;
      if (f->index++ > 0 && json_putc(e, ',')) return -1;
      lua_rawgeti(L, f->t, f->index);
      return json_put_value(e, f->base + 1);

    case JSON_F_ORDERED:
      lua_settop(L, f->base);
      while (f->index < f->n) {
        int k = f->base + 1, dup;
        lua_rawgeti(L, f->seen - 1, ++f->index); /* the order list sits below `seen` */
        if (lua_isnil(L, k)) {
          lua_pop(L, 1);
          continue;
        }
        lua_pushvalue(L, k);
        lua_rawget(L, f->seen);
        dup = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (dup) {
          lua_pop(L, 1);
          continue;
        }
        lua_pushvalue(L, k);
        lua_rawget(L, f->t);
        if (lua_isnil(L, -1)) {
          lua_pop(L, 2);
          continue;
        }
        lua_pushvalue(L, k);
        lua_pushboolean(L, 1);
        lua_rawset(L, f->seen);
        if (json_put_key(e, f, k)) return -1;
        f->first = 0;
        f->key = k;
        return json_put_value(e, k + 1);
      }
      /* then the other keys, skipping those in `seen` */
      f->kind = JSON_F_MEMBERS;
      lua_pushnil(L);
      return 0;

    case JSON_F_MEMBERS:
      lua_settop(L, f->base + 1);
      while (lua_next(L, f->t)) {
        int k = f->base + 1;
        if (f->seen) {
          int skip;
          lua_pushvalue(L, k);
          lua_rawget(L, f->seen);
          skip = !lua_isnil(L, -1);
          lua_pop(L, 1);
          if (skip) {
            lua_pop(L, 1);
            continue;
          }
        }
        if (json_put_key(e, f, k)) return -1;
        f->first = 0;
        f->key = k;
        return json_put_value(e, k + 1);
      }
      if (json_putc(e, '}')) return -1;
      e->nframes--;
      lua_settop(L, f->top);
      return 0;

    case JSON_F_AUTO_OBJECT: {
      int k = f->base + 1;
      size_t n;
      const char *s;
      if (!f->pending) {
        lua_settop(L, k);
        if (!lua_next(L, f->t)) {
          if (json_putc(e, '}')) return -1;
          e->nframes--;
          lua_settop(L, f->top);
          return 0;
        }
      }
      f->pending = 0;
      if (lua_type(L, k) != LUA_TSTRING) {
        lua_Integer i;
        if (lua_type(L, k) == LUA_TNUMBER && json_tointeger(L, k, &i))
          return json_fail(e, at, "mixed table (both array and object keys)");
        return json_fail_type(e, at, "cannot encode key of type ", k);
      }
      s = lua_tolstring(L, k, &n);
      if (!f->first && json_putc(e, ',')) return -1;
      if (json_put_string(e, s, n, at, 1) || json_putc(e, ':')) return -1;
      f->first = 0;
      f->key = k;
      return json_put_value(e, k + 1);
    }

    case JSON_F_AUTO_ARRAY: {
      lua_Integer i;
      if (!f->pending) {
        lua_settop(L, f->base + 1);
        if (!lua_next(L, f->t)) break;
      }
      f->pending = 0;
      if (lua_type(L, -2) == LUA_TNUMBER && json_tointeger(L, -2, &i) && i == f->index + 1) {
        if (f->index > 0 && json_putc(e, ',')) return -1;
        f->index = i;
        return json_put_value(e, f->base + 2);
      }
      /* Keys out of order (or not 1..n): check them all, then write 1..n in order. */
      return json_restart_elements(e, f);
    }
  }
  /* an array is done */
  if (json_putc(e, ']')) return -1;
  e->nframes--;
  lua_settop(L, f->top);
  return 0;
}

/* The whole document: the root value, then the open tables one step at a time (no C
 * recursion: the stack need does not depend on the nesting). */
static int json_put_document(json_enc *e) {
  int rc = json_put_value(e, JSON_E_VALUE);
  while (rc >= 0 && e->nframes > 0) rc = json_step(e, &e->frames[e->nframes - 1]);
  return rc < 0 ? -1 : 0;
}

/* The protected part of json_encode: the walk, then the result (pushing it may raise too). */
static int json_encode_run(lua_State *L) {
  json_enc *e = (json_enc *)lua_touserdata(L, JSON_E_CTX);
  e->L = L;
  e->rc = json_put_document(e);
  if (e->rc == 0 && e->len > e->max_bytes) e->too_big = 1;
  if (e->too_big) {
    char msg[64];
    lua_pushnil(L);
    lua_pushlstring(L, e->root, e->rootlen);
    snprintf(msg, sizeof(msg), ": more than %llu bytes as JSON (max_bytes)", (unsigned long long)e->max_bytes);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    lua_pushliteral(L, "too_large");
    return 3;
  }
  if (e->rc == 0 && !e->oom) {
    lua_pushlstring(L, e->data, e->len);
    return 1;
  }
  lua_pushnil(L);
  if (e->oom) lua_pushliteral(L, "not enough memory");
  else lua_pushlstring(L, e->data, e->len);
  return 2;
}

static int json_encode(lua_State *L) {
  char inline_buf[JSON_INLINE_BUF];
  json_frame inline_frames[JSON_INLINE_FRAMES];
  json_enc e;
  int status, top;
  e.L = L;
  e.data = e.inline_buf = inline_buf;
  e.len = 0;
  e.cap = sizeof(inline_buf);
  e.root = "value";
  e.rootlen = 5;
  e.max_depth = JSON_DEFAULT_DEPTH;
  e.oom = 0;
  e.too_big = 0;
  e.failing = 0;
  e.max_bytes = SIZE_MAX / 8;
  e.rc = 0;
  e.frames = e.inline_frames = inline_frames;
  e.nframes = 0;
  e.capframes = JSON_INLINE_FRAMES;
  lua_settop(L, 2);
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    e.max_depth = (int)json_opt_integer(L, 2, "max_depth", JSON_DEFAULT_DEPTH, 1, JSON_DEPTH_LIMIT);
    lua_getfield(L, 2, "max_bytes");
    if (!lua_isnil(L, -1)) e.max_bytes = (size_t)json_opt_integer(L, 2, "max_bytes", 0, 1, JSON_BYTES_LIMIT);
    lua_pop(L, 1);
    if (e.cap > e.max_bytes + JSON_BYTES_SLACK) e.cap = e.max_bytes + JSON_BYTES_SLACK;
    lua_getfield(L, 2, "root"); /* stays at 3 so the string lives through the call */
    if (!lua_isnil(L, 3)) {
      if (lua_type(L, 3) != LUA_TSTRING) return luaL_argerror(L, 2, "root must be a string");
      e.root = lua_tolstring(L, 3, &e.rootlen);
    }
  }
  lua_pushvalue(L, lua_upvalueindex(1)); /* json_encode_run */
  lua_pushlightuserdata(L, &e);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushvalue(L, lua_upvalueindex(4));
  lua_pushvalue(L, lua_upvalueindex(5));
  top = lua_gettop(L) - 7;
  status = lua_pcall(L, 6, LUA_MULTRET, 0);
  if (e.data != inline_buf) free(e.data);
  if (e.frames != inline_frames) free(e.frames);
  if (status != 0) return lua_error(L);
  return lua_gettop(L) - top;
}

void json_encode_open(lua_State *L, int mod, int array_mt, int object_mt) {
  lua_pushcfunction(L, json_encode_run);
  lua_pushvalue(L, array_mt);
  lua_pushvalue(L, object_mt);
  lua_pushliteral(L, "__jsontype");
  lua_pushliteral(L, "__jsonorder");
  lua_pushcclosure(L, json_encode, 5);
  lua_setfield(L, mod, "json_encode");
}
