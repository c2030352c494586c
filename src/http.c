/*
 * http.c - one libcurl easy handle per client, reused so connections stay
 * alive. A handle performs exactly one HTTP exchange per call; retries,
 * redirects and error objects live in the Lua layer (customerio.http.client), where
 * every transport shares them.
 *
 * TLS peer and host verification are always on; `ca_file` adds a private CA
 * bundle. Proxies come from libcurl's usual environment variables.
 */

/***
 * Blocking HTTP handles over libcurl.
 * @module customerio.core
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "compat.h"
#include "http_common.h"

#define HTTP_MT "customerio.http"

typedef struct {
  CURL *easy;
  struct curl_slist *req_headers; /* owned until the next perform or close */
  http_sink sink;
  long connect_timeout_ms;
  char errbuf[CURL_ERROR_SIZE];
} http_handle;

/* The helpers below are shared with async.c (declared in http_common.h). */

int http_buffer_append(http_buffer *b, const char *p, size_t n) {
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

void http_buffer_free(http_buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void http_sink_reset(http_sink *s) {
  s->body.len = 0;
  s->head.len = 0;
  s->too_large = 0;
  if (s->body.data) s->body.data[0] = '\0';
}

static size_t http_on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  http_sink *s = (http_sink *)userdata;
  size_t n = size * nmemb;
  if (s->body.len + n > s->max_response) {
    s->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (http_buffer_append(&s->body, ptr, n) != 0) return 0;
  return n;
}

static size_t http_on_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
  http_sink *s = (http_sink *)userdata;
  size_t n = size * nmemb;
  /* A new status line starts a new header block (100 Continue, proxies): keep the last. */
  if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) s->head.len = 0;
  if (s->head.len + n > 1024 * 1024) return 0;
  if (http_buffer_append(&s->head, ptr, n) != 0) return 0;
  return n;
}

#define HTTP_TRY(opt, val)                          \
  do {                                              \
    rc = curl_easy_setopt(easy, (opt), (val));      \
    if (rc != CURLE_OK) {                           \
      *failed = #opt;                               \
      return rc;                                    \
    }                                               \
  } while (0)

CURLcode http_setup(CURL *easy, http_sink *sink, char *errbuf, long connect_timeout_ms, const char *ca_file,
                    const char **failed) {
  CURLcode rc;
  HTTP_TRY(CURLOPT_NOSIGNAL, 1L);
  HTTP_TRY(CURLOPT_ERRORBUFFER, errbuf);
  HTTP_TRY(CURLOPT_WRITEFUNCTION, http_on_body);
  HTTP_TRY(CURLOPT_WRITEDATA, (void *)sink);
  HTTP_TRY(CURLOPT_HEADERFUNCTION, http_on_header);
  HTTP_TRY(CURLOPT_HEADERDATA, (void *)sink);
  HTTP_TRY(CURLOPT_FOLLOWLOCATION, 0L);
  HTTP_TRY(CURLOPT_SSL_VERIFYPEER, 1L);
  HTTP_TRY(CURLOPT_SSL_VERIFYHOST, 2L);
  /* "gzip" rather than "" (all of libcurl's decoders): libcurl formats the Accept-Encoding
   * line byte by byte on every request; gzip is the encoding servers use. */
  HTTP_TRY(CURLOPT_ACCEPT_ENCODING, "gzip");
  HTTP_TRY(CURLOPT_TCP_KEEPALIVE, 1L);
  HTTP_TRY(CURLOPT_TCP_NODELAY, 1L);
  HTTP_TRY(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
  HTTP_TRY(CURLOPT_PROTOCOLS_STR, "http,https");
#else
  HTTP_TRY(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (ca_file != NULL) HTTP_TRY(CURLOPT_CAINFO, ca_file);
  return CURLE_OK;
}

static http_handle *http_check(lua_State *L) {
  http_handle *h = (http_handle *)luaL_checkudata(L, 1, HTTP_MT);
  if (h->easy == NULL) luaL_error(L, "http handle is closed");
  return h;
}

static void http_release(http_handle *h) {
  if (h->easy) curl_easy_cleanup(h->easy);
  h->easy = NULL;
  curl_slist_free_all(h->req_headers);
  h->req_headers = NULL;
  http_buffer_free(&h->sink.body);
  http_buffer_free(&h->sink.head);
}

long http_ms(lua_Number ms) {
  if (!(ms > 0)) return 0;
  if (ms >= 2147483647.0) return 2147483647L; /* ~24.8 days */
  if (ms < 1) return 1;
  return (long)ms;
}

/***
 * Create an HTTP handle (one per client).
 * @function http_new
 * @tparam[opt] table opts `connect_timeout` (ms, default 10000), `ca_file` (PEM bundle of
 * extra trusted CAs), `max_response` (bytes, default 64 MiB)
 * @return handle
 */
static int http_new(lua_State *L) {
  http_handle *h;
  const char *ca_file = NULL;
  lua_Integer max_response = HTTP_DEFAULT_MAX_RESPONSE;
  long connect_timeout = 10000;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "ca_file");
    if (!lua_isnil(L, -1)) ca_file = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "connect_timeout");
    if (!lua_isnil(L, -1)) connect_timeout = http_ms(luaL_checknumber(L, -1));
    lua_getfield(L, 1, "max_response");
    if (!lua_isnil(L, -1)) max_response = luaL_checkinteger(L, -1);
    luaL_argcheck(L, connect_timeout > 0, 1, "connect_timeout must be positive");
    luaL_argcheck(L, max_response > 0, 1, "max_response must be positive");
  }
  h = (http_handle *)lua_newuserdata(L, sizeof *h);
  memset(h, 0, sizeof *h);
  h->sink.max_response = (size_t)max_response;
  h->connect_timeout_ms = connect_timeout;
  luaL_getmetatable(L, HTTP_MT);
  lua_setmetatable(L, -2);
  h->easy = curl_easy_init();
  if (h->easy == NULL) return luaL_error(L, "curl_easy_init failed");
  {
    const char *failed = "";
    CURLcode rc = http_setup(h->easy, &h->sink, h->errbuf, h->connect_timeout_ms, ca_file, &failed);
    if (rc != CURLE_OK) {
      http_release(h);
      return luaL_error(L, "curl_easy_setopt(%s): %s", failed, curl_easy_strerror(rc));
    }
  }
  return 1;
}

/* Header names are tokens; values may not carry CR, LF or NUL (no header injection). */
static int http_valid_header(const char *name, size_t nlen, const char *value, size_t vlen) {
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

int http_valid_url(const char *url, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)url[i];
    if (c <= 32 || c == 127) return 0;
  }
  return len > 0;
}

const char *http_error_kind(CURLcode rc) {
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
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return "request";
    default: return "network";
  }
}

/* Push the last header block as a table of lower-case names; repeated names are joined by ", ". */
void http_push_headers(lua_State *L, const http_buffer *head) {
  const char *p = head->data, *end = head->data + head->len;
  lua_createtable(L, 0, 8); /* responses carry 5-8 headers: no rehash while filling */
  if (p == NULL) return;
  /* Skip the status line. */
  while (p < end && *p != '\n') p++;
  while (p < end) {
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
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)(vend - v));
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, v, (size_t)(vend - v));
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

void http_build_headers(lua_State *L, int arg, struct curl_slist **list) {
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
      if (!http_valid_header(name, nlen, value, vlen))
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

/* Reset per-request state left by the previous call on a reused handle, then set the method. */
void http_set_method(lua_State *L, CURL *easy, int arg, const char *method, size_t mlen, const char *body,
                     size_t blen) {
  size_t i;
  /* Checked before anything is handed to libcurl: raising after CURLOPT_POSTFIELDS would
   * leave the handle pointing into a Lua string that may be collected before the next call. */
  if (mlen == 0) luaL_argerror(L, arg, "invalid HTTP method");
  for (i = 0; i < mlen; i++)
    if (method[i] < 'A' || method[i] > 'Z') luaL_argerror(L, arg, "invalid HTTP method");
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  curl_easy_setopt(easy, CURLOPT_NOBODY, 0L);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else if (strcmp(method, "GET") != 0 || body != NULL) {
    if (body != NULL) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    }
    if (strcmp(method, "POST") != 0 || body == NULL) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  }
}

void http_push_failure(lua_State *L, CURLcode rc, const http_sink *sink, const char *errbuf) {
  if (sink->too_large) {
    lua_pushliteral(L, "too_large");
    lua_pushfstring(L, "response body larger than %d bytes", (int)sink->max_response);
  } else {
    lua_pushstring(L, http_error_kind(rc));
    lua_pushstring(L, errbuf[0] ? errbuf : curl_easy_strerror(rc));
  }
}

/***
 * Perform one HTTP exchange.
 * @function handle:perform
 * @tparam string method GET, POST, PUT, DELETE, PATCH or HEAD
 * @tparam string url absolute http(s) URL
 * @tparam[opt] table headers name -> value
 * @tparam[opt] string body request body
 * @tparam[opt] number timeout_ms whole-request timeout (default 10000)
 * @return status, headers (lower-case names), body
 * @return nil, kind ("timeout", "network", "tls", "request", "too_large"), message
 */
static int http_perform(lua_State *L) {
  http_handle *h = http_check(L);
  size_t mlen, ulen, blen = 0;
  const char *method = luaL_checklstring(L, 2, &mlen);
  const char *url = luaL_checklstring(L, 3, &ulen);
  const char *body = luaL_optlstring(L, 5, NULL, &blen);
  lua_Number timeout = luaL_optnumber(L, 6, 10000);
  CURLcode rc;
  long status = 0;

  if (!http_valid_url(url, ulen)) return luaL_argerror(L, 3, "URL contains spaces or control characters");
  luaL_argcheck(L, timeout > 0, 6, "timeout must be positive");

  curl_slist_free_all(h->req_headers);
  h->req_headers = NULL;
  http_build_headers(L, 4, &h->req_headers);

  http_sink_reset(&h->sink);
  h->errbuf[0] = '\0';
  http_set_method(L, h->easy, 2, method, mlen, body, blen);
  if ((rc = curl_easy_setopt(h->easy, CURLOPT_URL, url)) != CURLE_OK ||
      (rc = curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->req_headers)) != CURLE_OK ||
      (rc = curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, http_ms(timeout))) != CURLE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, http_error_kind(rc));
    lua_pushstring(L, curl_easy_strerror(rc));
    return 3;
  }

  rc = curl_easy_perform(h->easy);
  /* POSTFIELDS points into a Lua string: forget it before the string can be collected. */
  curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  if (rc != CURLE_OK) {
    lua_pushnil(L);
    http_push_failure(L, rc, &h->sink, h->errbuf);
    return 3;
  }
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
  lua_pushinteger(L, (lua_Integer)status);
  http_push_headers(L, &h->sink.head);
  lua_pushlstring(L, h->sink.body.data ? h->sink.body.data : "", h->sink.body.len);
  return 3;
}

/***
 * Connection statistics of the handle's last transfer.
 * @function handle:info
 * @treturn table `{connects = n}` new connections made by the last call (0 = reused)
 */
static int http_info(lua_State *L) {
  http_handle *h = http_check(L);
  long connects = 0;
  curl_easy_getinfo(h->easy, CURLINFO_NUM_CONNECTS, &connects);
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, (lua_Integer)connects);
  lua_setfield(L, -2, "connects");
  return 1;
}

/***
 * Close the handle and its connections (also done by garbage collection).
 * @function handle:close
 */
static int http_close(lua_State *L) {
  http_handle *h = (http_handle *)luaL_checkudata(L, 1, HTTP_MT);
  http_release(h);
  return 0;
}

static int http_tostring(lua_State *L) {
  http_handle *h = (http_handle *)luaL_checkudata(L, 1, HTTP_MT);
  lua_pushfstring(L, "customerio.http (%s)", h->easy ? "open" : "closed");
  return 1;
}

static const luaL_Reg http_methods[] = {
  {"perform", http_perform},
  {"info", http_info},
  {"close", http_close},
  {NULL, NULL},
};

static const luaL_Reg http_metamethods[] = {
  {"__gc", http_close},
#if LUA_VERSION_NUM >= 504
  {"__close", http_close},
#endif
  {"__tostring", http_tostring},
  {NULL, NULL},
};

static const luaL_Reg http_funcs[] = {
  {"http_new", http_new},
  {NULL, NULL},
};

int http_open(lua_State *L) {
  if (luaL_newmetatable(L, HTTP_MT)) {
    luaL_setfuncs(L, http_metamethods, 0);
    luaL_newlib(L, http_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, http_funcs, 0);
  {
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, v && v->version ? v->version : "unknown");
    lua_setfield(L, -2, "curl_version");
  }
  return 0;
}
