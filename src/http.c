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
  cio_body body;                  /* the request body being sent (points into a Lua string) */
  cio_sink sink;
  long connect_timeout_ms;
  char errbuf[CURL_ERROR_SIZE];
} http_handle;

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
  cio_buffer_free(&h->sink.body);
  cio_buffer_free(&h->sink.head);
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
  lua_Integer max_response = CIO_DEFAULT_MAX_RESPONSE;
  long connect_timeout = 10000;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "ca_file");
    if (!lua_isnil(L, -1)) ca_file = luaL_checkstring(L, -1);
    lua_getfield(L, 1, "connect_timeout");
    if (!lua_isnil(L, -1)) connect_timeout = cio_ms(luaL_checknumber(L, -1));
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
    CURLcode rc = cio_curl_setup(h->easy, h->errbuf, h->connect_timeout_ms, ca_file, &failed);
    if (rc == CURLE_OK) rc = cio_sink_attach(h->easy, &h->sink, &failed);
    if (rc != CURLE_OK) {
      http_release(h);
      return luaL_error(L, "curl_easy_setopt(%s): %s", failed, curl_easy_strerror(rc));
    }
  }
  return 1;
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
 * @return nil, kind ("timeout", "network", "tls", "request", "too_large"), message, stage
 * ("resolve", "connect", "tls", "send", "receive", "response", "request": see
 * cio_curl_failure_stage)
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

  const char *bad_url = cio_url_problem(url, ulen);
  if (bad_url != NULL) return luaL_argerror(L, 3, bad_url);
  luaL_argcheck(L, timeout > 0, 6, "timeout must be positive");

  curl_slist_free_all(h->req_headers);
  h->req_headers = NULL;
  cio_build_headers(L, 4, &h->req_headers);

  cio_sink_reset(&h->sink);
  h->errbuf[0] = '\0';
  cio_set_method(L, h->easy, 2, method, mlen, body, blen, &h->body);
  if ((rc = curl_easy_setopt(h->easy, CURLOPT_URL, url)) != CURLE_OK ||
      (rc = curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, h->req_headers)) != CURLE_OK ||
      (rc = curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, cio_ms(timeout))) != CURLE_OK) {
    lua_pushnil(L);
    lua_pushstring(L, cio_curl_error_kind(rc));
    lua_pushstring(L, curl_easy_strerror(rc));
    lua_pushliteral(L, "request");
    return 4;
  }

  rc = curl_easy_perform(h->easy);
  /* The body points into a Lua string: forget it before the string can be collected. */
  h->body.data = NULL;
  h->body.len = h->body.pos = 0;
  curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
  if (rc != CURLE_OK) {
    lua_pushnil(L);
    cio_push_failure(L, h->easy, rc, &h->sink, h->errbuf);
    return 4;
  }
  curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
  lua_pushinteger(L, (lua_Integer)status);
  cio_push_headers(L, &h->sink.head);
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

/***
 * The kind a libcurl failure code gets (the same everywhere in the core).
 * @function curl_error_kind
 * @tparam integer code a CURLcode
 * @treturn string "timeout", "tls", "request" or "network"
 */
static int http_curl_error_kind(lua_State *L) {
  lua_Integer code = luaL_checkinteger(L, 1);
  luaL_argcheck(L, code > 0 && code < CURL_LAST, 1, "not a libcurl error code");
  lua_pushstring(L, cio_curl_error_kind((CURLcode)code));
  return 1;
}

static const luaL_Reg http_funcs[] = {
  {"http_new", http_new},
  {"retry_after", cio_lua_retry_after},
  {"retry_backoff", cio_lua_retry_backoff},
  {"curl_error_kind", http_curl_error_kind},
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
  lua_pushinteger(L, CIO_MAX_URL_BYTES);
  lua_setfield(L, -2, "max_url_bytes");
  {
    curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    lua_pushstring(L, v && v->version ? v->version : "unknown");
    lua_setfield(L, -2, "curl_version");
  }
  return 0;
}
