/*
 * http_common.h - what the blocking HTTP handle (http.c) and the multi handle (async.c) share,
 * so that both set up libcurl the same way: TLS verification on, no redirects (the Lua layer
 * follows them), gzip, http/https only, no "Expect: 100-continue", the same header checks,
 * the same response parsing and the same error kinds. Private to the C core; defined in http.c.
 */
#ifndef CIO_HTTP_COMMON_H
#define CIO_HTTP_COMMON_H

#include <stddef.h>

#include <curl/curl.h>

#include "compat.h"

#define HTTP_DEFAULT_MAX_RESPONSE (64 * 1024 * 1024)

typedef struct {
  char *data;
  size_t len, cap;
} http_buffer;

/* Where a transfer's response goes: body, last header block, and the size cap. */
typedef struct {
  http_buffer body;
  http_buffer head;
  size_t max_response;
  int too_large;
} http_sink;

int http_buffer_append(http_buffer *b, const char *p, size_t n);
void http_buffer_free(http_buffer *b);

/* Empty the sink before a transfer (keeps the allocations). */
void http_sink_reset(http_sink *s);

/* The options every easy handle of the core gets. On failure returns the libcurl code and
 * sets *failed to the option's name. */
CURLcode http_setup(CURL *easy, http_sink *sink, char *errbuf, long connect_timeout_ms, const char *ca_file,
                    const char **failed);

/* Request headers from the table at index arg (name -> value), appended to *list, then
 * "Expect:". Raises (argument error on arg) on bad names/values; *list stays owned by the
 * caller, so nothing leaks when it raises. */
void http_build_headers(lua_State *L, int arg, struct curl_slist **list);

/* Whether a URL has no spaces or control characters (and is not empty). */
int http_valid_url(const char *url, size_t len);

/* A request body that libcurl reads through a callback (see http_set_body). */
typedef struct {
  const char *data;
  size_t len, pos;
} http_body;

/* Give libcurl the body to send (POST, or the method set with CURLOPT_CUSTOMREQUEST): body and
 * src must outlive the transfer. libcurl reads it through a callback that cannot rewind, so it
 * cannot send it a second time by itself (see http.c). Returns the first libcurl failure. */
CURLcode http_set_body(CURL *easy, http_body *src, const char *body, size_t blen);

/* Reset the method state of a reused handle and set method and body (body may be NULL; it and
 * src must outlive the transfer). Raises an argument error on arg for an invalid method. */
void http_set_method(lua_State *L, CURL *easy, int arg, const char *method, size_t mlen, const char *body,
                     size_t blen, http_body *src);

/* Milliseconds for CURLOPT_*TIMEOUT_MS: a fraction rounds up to 1 (libcurl reads 0 as "no
 * timeout"), a huge or infinite value is capped at ~24.8 days (a plain (long) cast of it would
 * be undefined); NaN and values <= 0 give 0, which callers refuse beforehand. */
long http_ms(lua_Number ms);

/* "timeout", "tls", "request" or "network". */
const char *http_error_kind(CURLcode rc);

/* Push a transfer failure as two values: kind, message ("too_large" when the cap was hit). */
void http_push_failure(lua_State *L, CURLcode rc, const http_sink *sink, const char *errbuf);

/* Push the last header block as a table of lower-case names (repeats joined by ", "). */
void http_push_headers(lua_State *L, const http_buffer *head);

#endif
