/*
 * response - a compressed 2xx response body: inflated with zlib, bounded like the client's
 * response sink, then decoded by core.json_decode the way lua/customerio/http/client.lua's
 * decode_success does (max_values = 1000000 and a deadline).
 *
 * Input: the first byte picks the encoding (selector % 3: 0 gzip, 1 raw deflate, 2 zlib or
 * gzip by header); the rest is the compressed body. The client asks libcurl for
 * "Accept-Encoding: gzip" and caps the inflated body at max_response (64 MiB); the harness
 * caps it at FUZZ_RESPONSE_CAP (4 MiB, for speed). A body over the cap is a "too_large"
 * transport failure in the client and is not decoded; an inflate error or a truncated
 * stream decodes what was inflated so far (a stricter check than libcurl, which would fail
 * the transfer).
 *
 * Properties: the inflater never writes past the cap and stops there; json_decode never
 * raises; it returns a value, or nil, message, reason with reason in {"invalid", "too_large",
 * "timeout"}; a decoded value holds at most max_values values (scalars, arrays and objects);
 * one decode takes at most the deadline plus FUZZ_SLACK_MS.
 */
#include <time.h>
#include <zlib.h>

#include "fuzz.h"

#define FUZZ_RESPONSE_CAP ((size_t)4 << 20)
#define FUZZ_DEADLINE_MS 2000
#define FUZZ_SLACK_MS 1000 /* the decoder reads the clock every 4096 values */

static const char check[] =
  "local core = require('customerio.core')\n"
  "local MAX_VALUES, DEADLINE_MS = 1000000, 2000\n"
  "local REASONS = { invalid = true, too_large = true, timeout = true }\n"
  "local function count(v, n)\n"
  "  n = n + 1\n"
  "  if n > MAX_VALUES then error('decoded value holds more than ' .. MAX_VALUES .. ' values') end\n"
  "  if type(v) == 'table' then for _, x in pairs(v) do n = count(x, n) end end\n"
  "  return n\n"
  "end\n"
  "return function(body)\n"
  "  if body == '' or not body:find('%S') then return end\n"
  "  local ok, value, err, reason = pcall(core.json_decode, body,\n"
  "    { max_values = MAX_VALUES, deadline_ms = core.monotonic_ms() + DEADLINE_MS })\n"
  "  if not ok then error('json_decode raised: ' .. tostring(value)) end\n"
  "  if value == nil then\n"
  "    if type(err) ~= 'string' or err == '' then error('nil without a message: ' .. tostring(err)) end\n"
  "    if not REASONS[reason] then error('unknown reason ' .. tostring(reason) .. ' for ' .. err) end\n"
  "    return\n"
  "  end\n"
  "  count(value, 0)\n"
  "end\n";

static lua_State *L;
static int ref;
static unsigned char *out;

static double fuzz_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Inflates into `out` (FUZZ_RESPONSE_CAP bytes); returns the length, or (size_t)-1 when the
 * stream holds more than the cap. */
static size_t fuzz_inflate(const uint8_t *data, size_t size, int window_bits) {
  z_stream z;
  size_t len;
  int rc;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, window_bits) != Z_OK) fuzz_fail("inflateInit2 failed", NULL, 0);
  z.next_in = (Bytef *)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)FUZZ_RESPONSE_CAP;
  do {
    rc = inflate(&z, Z_NO_FLUSH);
  } while (rc == Z_OK && z.avail_out > 0 && z.avail_in > 0);
  len = (size_t)z.total_out;
  if (len > FUZZ_RESPONSE_CAP || z.next_out != out + len) fuzz_fail("inflater wrote past the cap", NULL, 0);
  if (z.avail_out == 0 && rc == Z_OK) {
    /* The buffer is full and the stream goes on: one more byte means over the cap. */
    unsigned char extra;
    z.next_out = &extra;
    z.avail_out = 1;
    rc = inflate(&z, Z_NO_FLUSH);
    if (z.avail_out == 0) len = (size_t)-1;
  }
  inflateEnd(&z);
  return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int windows[3] = {15 + 16, -15, 15 + 32};
  size_t len;
  double t0, ms;
  if (L == NULL) {
    L = fuzz_new_state(0);
    ref = fuzz_load_function(L, check);
    out = malloc(FUZZ_RESPONSE_CAP);
    if (out == NULL) fuzz_fail("malloc failed", NULL, 0);
  }
  if (size < 1) return 0;
  len = fuzz_inflate(data + 1, size - 1, windows[data[0] % 3]);
  if (len == (size_t)-1) return 0; /* the client fails with "too_large" before decoding */
  t0 = fuzz_now_ms();
  fuzz_call(L, ref, out, len);
  ms = fuzz_now_ms() - t0;
  if (ms > FUZZ_DEADLINE_MS + FUZZ_SLACK_MS) {
    char msg[64];
    snprintf(msg, sizeof(msg), "%.0f ms for %zu bytes", ms, len);
    fuzz_fail("decoding took longer than the deadline", msg, strlen(msg));
  }
  fuzz_collect(L);
  return 0;
}
