/*
 * error_body - customerio.errors on arbitrary response bodies (an embedded Lua 5.4 state;
 * Lua lines are coverage for libFuzzer, json.c's edges too).
 *
 * The first input byte picks a status, the next up to 16 bytes (letters and digits) a secret;
 * the rest is the body (a secret shorter than 8 characters is not checked: it could be part
 * of the error's own wording). Properties: errors.parse_message never raises and returns nil or a
 * non-empty string (at most 503 bytes when it is the raw text); errors.from_response gives an
 * error whose tostring and concatenation work; after errors.redact no text field holds the
 * secret (outside the "[REDACTED]" markers).
 */
#include "fuzz.h"

static const char check[] =
  "local errors = require('customerio.errors')\n"
  "local core = require('customerio.core')\n"
  "local STATUSES = { 400, 401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 418, 599, 302, 200 }\n"
  "local function clean(s) return (s:gsub('%[REDACTED%]', '\\0')) end\n"
  "return function(s)\n"
  "  local status = STATUSES[((s:byte(1) or 0) % #STATUSES) + 1]\n"
  "  local secret = s:sub(2, 17):gsub('[^%w]', ''):sub(1, 16)\n"
  "  local body = s:sub(18)\n"
  "  local m = errors.parse_message(body)\n"
  "  if m ~= nil then\n"
  "    if type(m) ~= 'string' or m == '' then error('parse_message returned ' .. type(m)) end\n"
  "    local v = body:match('^%s*[{%[]') and core.json_decode(body)\n"
  "    if type(v) ~= 'table' and #m > 503 then error('raw message longer than 503 bytes: ' .. #m) end\n"
  "  end\n"
  "  local res = { status = status, body = body, headers = { ['x-echo'] = body:sub(1, 64) } }\n"
  "  local e = errors.from_response(res, { retryable = status >= 500 })\n"
  "  if not errors.is(e) or e.kind ~= 'http' then error('from_response did not make an http error') end\n"
  "  local text = tostring(e)\n"
  "  if type(text) ~= 'string' or text:sub(1, 20) ~= 'customerio http erro' then error('tostring: ' .. tostring(text)) end\n"
  "  if ('x' .. e) ~= 'x' .. text or (e .. 'y') ~= text .. 'y' then error('concatenation') end\n"
  "  if #secret >= 8 and not ('customerio http error [REDACTED]'):find(secret, 1, true) then\n"
  "    errors.redact(e, { secret, 'ab', 42 })\n"
  "    for _, field in ipairs({ clean(e.message or ''), clean(e.body or ''), clean(e.headers['x-echo'] or ''), clean(tostring(e)) }) do\n"
  "      if field:find(secret, 1, true) then error('secret ' .. secret .. ' survived redaction in ' .. field) end\n"
  "    end\n"
  "  end\n"
  "end\n";

static lua_State *L;
static int ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = fuzz_new_state(1);
    ref = fuzz_load_function(L, check);
  }
  fuzz_call(L, ref, data, size);
  fuzz_collect(L);
  return 0;
}
