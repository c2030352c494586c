/*
 * http_common.h - what every libcurl user of the core shares (the blocking handle, http.c; the
 * multi handle, async.c; the queue worker, queue_worker.c), so that all of them set up libcurl
 * the same way: TLS verification on, no redirects (the Lua layer follows them), gzip,
 * http/https only, no "Expect: 100-continue"; and so that a libcurl failure gets the same kind
 * and a Retry-After value the same meaning everywhere. Defined in http_common.c.
 *
 * The first half does not involve Lua (the queue worker includes this header and must not
 * include lua.h); the second half takes a lua_State, declared here only by name.
 */
#ifndef CIO_HTTP_COMMON_H
#define CIO_HTTP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#define CIO_DEFAULT_MAX_RESPONSE (64 * 1024 * 1024)

/* Response header limits of a transfer: the whole last header block, and its number of lines.
 * A Customer.io response carries about ten headers; libcurl refuses more than 300 KiB. A
 * response past either limit fails with kind "too_large" before anything parses it. */
#define CIO_MAX_HEADER_BYTES (1024 * 1024)
#ifndef CIO_MAX_HEADER_LINES
#define CIO_MAX_HEADER_LINES 1000
#endif

/* The longest URL the core sends (bytes). Longer ones are refused before libcurl sees them
 * (libcurl's own limit is 8 MB and fails with CURLE_BAD_FUNCTION_ARGUMENT; common servers
 * refuse request lines over 8 KiB: nginx's large_client_header_buffers, Apache's
 * LimitRequestLine, Node's 16 KiB header limit). The Lua layer refuses them first, raising. */
#define CIO_MAX_URL_BYTES 8192

typedef struct {
  char *data;
  size_t len, cap;
} cio_buffer;

/* Where a transfer's response goes: body, last header block, and the limits. */
typedef struct {
  cio_buffer body;
  cio_buffer head;
  size_t max_response;
  size_t header_lines; /* in the last header block */
  int too_large;       /* 1: body over max_response; 2: headers over the limits */
} cio_sink;

int cio_buffer_append(cio_buffer *b, const char *p, size_t n);
void cio_buffer_free(cio_buffer *b);

/* Empty the sink before a transfer (keeps the allocations). */
void cio_sink_reset(cio_sink *s);

/* The options every easy handle of the core gets (TLS, protocols, no redirects, gzip,
 * keep-alive, connect timeout, CA file). On failure returns the libcurl code and sets *failed
 * to the option's name. */
CURLcode cio_curl_setup(CURL *easy, char *errbuf, long connect_timeout_ms, const char *ca_file,
                        const char **failed);

/* Send the response of easy into sink (body capped at sink->max_response, headers at the
 * limits above). */
CURLcode cio_sink_attach(CURL *easy, cio_sink *sink, const char **failed);

/* A request body that libcurl reads through a callback (cio_set_body). */
typedef struct {
  const char *data;
  size_t len, pos;
} cio_body;

/* Give libcurl the body to send (POST, or the method set with CURLOPT_CUSTOMREQUEST); body and
 * src must outlive the transfer. libcurl reads it through a callback that cannot rewind, so it
 * cannot send it a second time by itself (see http_common.c). Returns the first libcurl
 * failure. */
CURLcode cio_set_body(CURL *easy, cio_body *src, const char *body, size_t blen);

/* NULL when a URL may be handed to libcurl; otherwise why not (empty, spaces or control
 * characters, longer than CIO_MAX_URL_BYTES). */
const char *cio_url_problem(const char *url, size_t len);

/* The kind of a libcurl failure: "timeout", "tls", "request" (the request itself is wrong:
 * malformed URL, unsupported protocol, an argument libcurl refuses; never retried) or
 * "network" (refused, reset, DNS, ...). */
const char *cio_curl_error_kind(CURLcode rc);

/* Milliseconds until a retry may start according to a Retry-After value, as customerio-node
 * 5.x reads it: delta seconds (digits, optionally with a fraction) or an HTTP date (IMF-fixdate,
 * RFC 850, asctime; via curl_getdate). A date in the past gives 0. now_ms is the wall clock in
 * ms since the epoch. Returns 0 and sets *ms, or -1 when the value is neither. No cap applied:
 * the caller applies the policy's retry_after_max. */
int cio_retry_after(const char *value, size_t len, int64_t now_ms, double *ms);

/* Milliseconds of backoff before replay number n (from 0): min(max_ms, (r + 1) * min_ms * 2^n),
 * r in [0, 1) (customerio-node 5.x). The one formula: customerio.http.retry calls it through
 * core.retry_backoff, the queue worker directly. */
double cio_backoff_ms(double min_ms, double max_ms, double n, double r);

/* ---- Lua-facing helpers (http.c, async.c and the queue's binding) ---- */

struct lua_State;

/* Request headers from the table at index arg (name -> value), appended to *list, then
 * "Expect:". Raises (argument error on arg) on bad names/values; *list stays owned by the
 * caller, so nothing leaks when it raises. */
void cio_build_headers(struct lua_State *L, int arg, struct curl_slist **list);

/* Reset the method state of a reused handle and set method and body (body may be NULL; it and
 * src must outlive the transfer). Raises an argument error on arg for an invalid method. */
void cio_set_method(struct lua_State *L, CURL *easy, int arg, const char *method, size_t mlen, const char *body,
                    size_t blen, cio_body *src);

/* Milliseconds for CURLOPT_*TIMEOUT_MS: a fraction rounds up to 1 (libcurl reads 0 as "no
 * timeout"), a huge or infinite value is capped at ~24.8 days (a plain (long) cast of it would
 * be undefined); NaN and values <= 0 give 0, which callers refuse beforehand. */
long cio_ms(double ms);

/* The stage at which a transfer failed: "resolve", "connect", "tls" (nothing of the request
 * was written), "send" (connected; the request may be partly written), "receive" (the request
 * was written: the server may have acted on it), "response" (a response arrived but broke a
 * limit), "request" (libcurl refused the request itself). */
const char *cio_curl_failure_stage(CURL *easy, CURLcode rc, const cio_sink *sink);

/* Push a transfer failure as three values: kind, message ("too_large" when a limit was hit),
 * stage (cio_curl_failure_stage). */
void cio_push_failure(struct lua_State *L, CURL *easy, CURLcode rc, const cio_sink *sink, const char *errbuf);

/* Push the last header block as a table of lower-case names (repeats joined by ", "), in time
 * linear in its size. */
void cio_push_headers(struct lua_State *L, const cio_buffer *head);

/* Lua: core.retry_after(value, now_ms) -> ms | nil (cio_retry_after). */
int cio_lua_retry_after(struct lua_State *L);

/* Lua: core.retry_backoff(min_ms, max_ms, n, r) -> ms (cio_backoff_ms). */
int cio_lua_retry_backoff(struct lua_State *L);

#endif
