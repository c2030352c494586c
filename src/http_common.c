/*
 * http_common.c - the libcurl set-up, response sink, error kinds and Retry-After reading that
 * the blocking handle (http.c), the async engine (async.c) and the queue worker
 * (queue_worker.c) share; see http_common.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "compat.h"
#include "http_common.h"

#define CIO_STR2(x) #x
#define CIO_STR(x) CIO_STR2(x)

int cio_buffer_append(cio_buffer *b, const char *p, size_t n) {
  if (n > (size_t)-1 - b->len - 1) return -1;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *grown;
    while (cap < b->len + n + 1) {
      if (cap > (size_t)-1 / 2) return -1;
      cap *= 2;
    }
    grown = (char *)realloc(b->data, cap);
    if (grown == NULL) return -1;
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

void cio_buffer_free(cio_buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void cio_sink_reset(cio_sink *s) {
  s->body.len = 0;
  s->head.len = 0;
  s->header_lines = 0;
  s->too_large = 0;
  if (s->body.data) s->body.data[0] = '\0';
}

static size_t cio_on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  cio_sink *s = (cio_sink *)userdata;
  size_t n = size * nmemb;
  if (s->body.len + n > s->max_response) {
    s->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (cio_buffer_append(&s->body, ptr, n) != 0) return 0;
  return n;
}

/* libcurl calls this once per header line. */
static size_t cio_on_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
  cio_sink *s = (cio_sink *)userdata;
  size_t n = size * nmemb;
  /* A new status line starts a new header block (100 Continue, proxies): keep the last. */
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
    s->head.len = 0;
    s->header_lines = 0;
  }
  if (++s->header_lines > CIO_MAX_HEADER_LINES + 2 || s->head.len + n > CIO_MAX_HEADER_BYTES) {
    s->too_large = 2; /* + 2: the status line and the empty line that ends the block */
    return 0;
  }
  if (cio_buffer_append(&s->head, ptr, n) != 0) return 0;
  return n;
}

#define CIO_TRY(opt, val)                           \
  do {                                              \
    rc = curl_easy_setopt(easy, (opt), (val));      \
    if (rc != CURLE_OK) {                           \
      *failed = #opt;                               \
      return rc;                                    \
    }                                               \
  } while (0)

CURLcode cio_curl_setup(CURL *easy, char *errbuf, long connect_timeout_ms, const char *ca_file,
                        const char **failed) {
  CURLcode rc;
  CIO_TRY(CURLOPT_NOSIGNAL, 1L);
  CIO_TRY(CURLOPT_ERRORBUFFER, errbuf);
  CIO_TRY(CURLOPT_FOLLOWLOCATION, 0L);
  CIO_TRY(CURLOPT_SSL_VERIFYPEER, 1L);
  CIO_TRY(CURLOPT_SSL_VERIFYHOST, 2L);
  /* "gzip" rather than "" (all of libcurl's decoders): libcurl formats the Accept-Encoding
   * line byte by byte on every request; gzip is the encoding servers use. */
  CIO_TRY(CURLOPT_ACCEPT_ENCODING, "gzip");
  CIO_TRY(CURLOPT_TCP_KEEPALIVE, 1L);
  CIO_TRY(CURLOPT_TCP_NODELAY, 1L);
  CIO_TRY(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
  CIO_TRY(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  CIO_TRY(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (ca_file != NULL) CIO_TRY(CURLOPT_CAINFO, ca_file);
  return CURLE_OK;
}

CURLcode cio_sink_attach(CURL *easy, cio_sink *sink, const char **failed) {
  CURLcode rc;
  CIO_TRY(CURLOPT_WRITEFUNCTION, cio_on_body);
  CIO_TRY(CURLOPT_WRITEDATA, (void *)sink);
  CIO_TRY(CURLOPT_HEADERFUNCTION, cio_on_header);
  CIO_TRY(CURLOPT_HEADERDATA, (void *)sink);
  return CURLE_OK;
}

const char *cio_url_problem(const char *url, size_t len) {
  size_t i;
  if (len == 0) return "URL is empty";
  if (len > CIO_MAX_URL_BYTES) return "URL is longer than " CIO_STR(CIO_MAX_URL_BYTES) " bytes";
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= 32 || c == 127) return "URL contains spaces or control characters";
  }
  return NULL;
}

const char *cio_curl_error_kind(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE: return "tls";
    /* The request cannot succeed as it is: sending it again would fail the same way. */
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT: return "request";
    default: return "network";
  }
}

int cio_retry_after(const char *value, size_t len, int64_t now_ms, double *ms) {
  char text[128];
  const char *p = value, *end = value + len;
  while (p < end && (*p == ' ' || *p == '\t')) p++;
  while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) end--;
  if (p == end || (size_t)(end - p) >= sizeof text) return -1;
  memcpy(text, p, (size_t)(end - p));
  text[end - p] = '\0';
  if (text[0] >= '0' && text[0] <= '9') {
    /* Delta seconds: digits, optionally a fraction (Node reads the value with Number()). */
    const char *q = text;
    int dot = 0;
    for (; *q != '\0'; q++) {
      if (*q == '.' && !dot) dot = 1;
      else if (*q < '0' || *q > '9') break;
    }
    if (*q == '\0') {
      *ms = strtod(text, NULL) * 1000.0;
      return 0;
    }
  }
  {
    time_t t = curl_getdate(text, NULL);
    double wait;
    if (t == (time_t)-1) return -1;
    wait = (double)t * 1000.0 - (double)now_ms;
    *ms = wait > 0 ? wait : 0;
    return 0;
  }
}

double cio_backoff_ms(double min_ms, double max_ms, double n, double r) {
  double ms = (r + 1) * min_ms;
  while (n >= 1 && ms > 0 && ms < max_ms) {
    ms *= 2;
    n -= 1;
  }
  return ms > max_ms ? max_ms : ms;
}

/* ---- Lua-facing helpers ---------------------------------------------------------------- */

/* Header names are tokens; values may not carry CR, LF or NUL (no header injection). */
static int cio_valid_header(const char *name, size_t nlen, const char *value, size_t vlen) {
  size_t i;
  if (nlen == 0) return 0;
  for (i = 0; i < nlen; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 32 || c >= 127 || c == ':') return 0;
  }
  for (i = 0; i < vlen; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c == '\r' || c == '\n' || c == '\0') return 0;
  }
  return 1;
}

long cio_ms(double ms) {
  if (!(ms > 0)) return 0;
  if (ms >= 2147483647.0) return 2147483647L; /* ~24.8 days */
  if (ms < 1) return 1;
  return (long)ms;
}

void cio_build_headers(lua_State *L, int arg, struct curl_slist **list) {
  if (!lua_isnoneornil(L, arg)) {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, arg) != 0) {
      size_t nlen, vlen;
      const char *name, *value;
      char *line;
      struct curl_slist *grown;
      if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER))
        luaL_argerror(L, arg, "header names and values must be strings");
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      if (!cio_valid_header(name, nlen, value, vlen))
        luaL_argerror(L, arg, "header name or value contains forbidden characters (CR, LF, NUL)");
      line = (char *)malloc(nlen + vlen + 3);
      if (line == NULL) luaL_error(L, "out of memory");
      memcpy(line, name, nlen);
      /* "Name;" is libcurl's way to send a header with an empty value. */
      if (vlen == 0) {
        line[nlen] = ';';
        line[nlen + 1] = '\0';
      } else {
        line[nlen] = ':';
        line[nlen + 1] = ' ';
        memcpy(line + nlen + 2, value, vlen);
        line[nlen + 2 + vlen] = '\0';
      }
      grown = curl_slist_append(*list, line);
      free(line);
      if (grown == NULL) luaL_error(L, "out of memory");
      *list = grown;
      lua_pop(L, 1);
    }
  }
  {
    /* Never send "Expect: 100-continue": it costs a round trip on every large body. */
    struct curl_slist *grown = curl_slist_append(*list, "Expect:");
    if (grown == NULL) luaL_error(L, "out of memory");
    *list = grown;
  }
}

/* Why a callback and not CURLOPT_POSTFIELDS: when a kept-alive connection dies after the
 * request went out and before any response, libcurl sends the request again on a new connection
 * by itself, rewinding POSTFIELDS as needed, unseen by the retry policy and without
 * X-Retry-Count. A body read by a callback without CURLOPT_SEEKFUNCTION cannot be rewound, so
 * libcurl fails the transfer instead (CURLE_SEND_FAIL_REWIND, a "network" error) and the retry
 * policy decides. A request without a body (GET) may still be replayed by libcurl. */
static size_t cio_read_body(char *buf, size_t size, size_t nitems, void *userdata) {
  cio_body *b = (cio_body *)userdata;
  size_t n = size * nitems;
  if (n > b->len - b->pos) n = b->len - b->pos;
  if (n > 0) memcpy(buf, b->data + b->pos, n);
  b->pos += n;
  return n;
}

CURLcode cio_set_body(CURL *easy, cio_body *src, const char *body, size_t blen) {
  CURLcode rc;
  src->data = body;
  src->len = blen;
  src->pos = 0;
  if ((rc = curl_easy_setopt(easy, CURLOPT_POST, 1L)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen)) != CURLE_OK ||
      (rc = curl_easy_setopt(easy, CURLOPT_READFUNCTION, cio_read_body)) != CURLE_OK)
    return rc;
  return curl_easy_setopt(easy, CURLOPT_READDATA, (void *)src);
}

/* Reset per-request state left by the previous call on a reused handle, then set the method. */
void cio_set_method(lua_State *L, CURL *easy, int arg, const char *method, size_t mlen, const char *body,
                    size_t blen, cio_body *src) {
  size_t i;
  /* Checked before anything is handed to libcurl: raising after cio_set_body would leave the
   * handle pointing into a Lua string that may be collected before the next call. */
  if (mlen == 0) luaL_argerror(L, arg, "invalid HTTP method");
  for (i = 0; i < mlen; i++)
    if (method[i] < 'A' || method[i] > 'Z') luaL_argerror(L, arg, "invalid HTTP method");
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0 || body != NULL) {
    if (body != NULL) (void)cio_set_body(easy, src, body, blen); /* as the setopts above */
    if (strcmp(method, "POST") != 0 || body == NULL) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  }
}

const char *cio_curl_failure_stage(CURL *easy, CURLcode rc, const cio_sink *sink) {
  long request_bytes = 0;
  curl_off_t connected_us = 0, appconnected_us = 0;
  if (sink->too_large) return "response";
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return "resolve";
    case CURLE_COULDNT_CONNECT: return "connect";
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT: return "request";
    default: break;
  }
  if (strcmp(cio_curl_error_kind(rc), "tls") == 0) return "tls"; /* all raised by the handshake */
  /* CURLINFO_REQUEST_SIZE counts the request bytes written by this transfer (libcurl resets it
   * when a transfer starts). Without it, we cannot know: say "receive" (may have been acted on). */
  if (curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_bytes) != CURLE_OK) return "receive";
  if (request_bytes > 0) return "receive";
  /* Nothing written: a timeout (or other failure) before the connection or the handshake was
   * complete, or while the request head was being written. */
  if (curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connected_us) == CURLE_OK && connected_us == 0) {
    return "connect";
  }
  if (curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &appconnected_us) == CURLE_OK) {
    char *scheme = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_SCHEME, &scheme) == CURLE_OK && scheme != NULL &&
        strcasecmp(scheme, "https") == 0 && appconnected_us == 0) {
      return "tls";
    }
  }
  return "send";
}

void cio_push_failure(lua_State *L, CURL *easy, CURLcode rc, const cio_sink *sink, const char *errbuf) {
  if (sink->too_large == 1) {
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L, "response body larger than %d bytes", (int)sink->max_response);
  } else if (sink->too_large == 2) {
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L, "response headers over the limit (%d lines, %d bytes)", CIO_MAX_HEADER_LINES,
                    CIO_MAX_HEADER_BYTES);
  } else if (rc == CURLE_SEND_FAIL_REWIND) {
    /* libcurl's text ("necessary data rewind wasn't possible") does not say what happened. */
    lua_pushstring(L, cio_curl_error_kind(rc));
    lua_pushliteral(L, "the kept-alive connection closed after the request was sent, before any response");
  } else {
    lua_pushstring(L, cio_curl_error_kind(rc));
    lua_pushstring(L, errbuf[0] ? errbuf : curl_easy_strerror(rc));
  }
  lua_pushstring(L, cio_curl_failure_stage(easy, rc, sink));
}

/* Join each list of values in the table at `lists` with ", " into the table at `t`. */
static void cio_join_repeats(lua_State *L, int t, int lists) {
  lua_pushnil(L);
  while (lua_next(L, lists) != 0) {
    int list = lua_gettop(L), n = (int)lua_rawlen(L, list), i;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 1; i <= n; i++) {
      if (i > 1) luaL_addlstring(&b, ", ", 2);
      lua_rawgeti(L, list, i);
      luaL_addvalue(&b);
    }
    luaL_pushresult(&b);       /* key list joined */
    lua_pushvalue(L, list - 1); /* key list joined key */
    lua_insert(L, -2);          /* key list key joined */
    lua_rawset(L, t);           /* key list */
    lua_pop(L, 1);
  }
}

/* Push the last header block as a table of lower-case names; repeated names are joined by ", ".
 * A repeated name collects its values in a list (a side table, made on the first repeat) that
 * is joined once at the end, so many repeats cost linear time, not one copy per repeat. */
void cio_push_headers(lua_State *L, const cio_buffer *head) {
  const char *p = head->data, *end = head->data + head->len;
  int t, lists = 0;
  size_t lines = 0;
  lua_createtable(L, 0, 8); /* responses carry 5-8 headers: no rehash while filling */
  t = lua_gettop(L);
  if (p == NULL) return;
  /* Skip the status line. */
  while (p < end && *p != '\n') p++;
  while (p < end && lines++ < CIO_MAX_HEADER_LINES) {
    const char *line = ++p, *eol, *colon, *v, *vend;
    char name[256];
    size_t nlen, i;
    while (p < end && *p != '\n') p++;
    eol = p;
    vend = eol;
    if (vend > line && vend[-1] == '\r') vend--;
    colon = memchr(line, ':', (size_t)(vend - line));
    if (colon == NULL) continue;
    nlen = (size_t)(colon - line);
    if (nlen == 0 || nlen >= sizeof name) continue;
    for (i = 0; i < nlen; i++) {
      char c = line[i];
      name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    v = colon + 1;
    while (v < vend && (*v == ' ' || *v == '\t')) v++;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, -1);
    lua_rawget(L, t); /* name first|nil */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(vend - v));
      lua_rawset(L, t);
      continue;
    }
    if (lists == 0) {
      lua_newtable(L);
      lua_insert(L, t + 1);
      lists = t + 1; /* name first */
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, lists); /* name first list|nil */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_createtable(L, 4, 0);
      lua_pushvalue(L, -2);
      lua_rawseti(L, -2, 1);
      lua_pushvalue(L, -3);
      lua_pushvalue(L, -2);
      lua_rawset(L, lists); /* name first list */
    }
    lua_pushlstring(L, v, (size_t)(vend - v));
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    lua_pop(L, 3);
  }
  if (lists != 0) {
    cio_join_repeats(L, t, lists);
    lua_pop(L, 1); /* the lists; the headers are on top */
  }
}

/***
 * Milliseconds to wait according to a Retry-After header value (delta seconds, or an HTTP
 * date, as customerio-node 5.x reads it). No cap is applied (see customerio.http.retry).
 * @function retry_after
 * @tparam string value the header value
 * @tparam number now_ms the wall clock (ms since the epoch), for dates
 * @treturn number|nil ms (never negative), nil when the value is neither
 */
int cio_lua_retry_after(lua_State *L) {
  size_t len;
  const char *value = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &len) : NULL;
  lua_Number now = luaL_checknumber(L, 2);
  double ms;
  if (value == NULL || !(now > -9.0e15 && now < 9.0e15) || cio_retry_after(value, len, (int64_t)now, &ms) != 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushnumber(L, (lua_Number)ms);
  return 1;
}

/***
 * Backoff before replay number n: min(max_ms, (r + 1) * min_ms * 2^n) (customerio-node 5.x).
 * @function retry_backoff
 * @tparam number min_ms
 * @tparam number max_ms
 * @tparam number n replay number, from 0
 * @tparam number r jitter in [0, 1)
 * @treturn number ms
 */
int cio_lua_retry_backoff(lua_State *L) {
  lua_pushnumber(L, (lua_Number)cio_backoff_ms(luaL_checknumber(L, 1), luaL_checknumber(L, 2), luaL_checknumber(L, 3),
                                               luaL_checknumber(L, 4)));
  return 1;
}
