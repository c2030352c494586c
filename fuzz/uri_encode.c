/*
 * uri_encode - core.uri_encode (encodeURIComponent) and customerio.http.url on arbitrary bytes.
 *
 * Properties: the output holds only encodeURIComponent's unreserved set and %XX escapes
 * (upper-case hex), decodes back to the input, is at most 3x as long; url.join never lets a
 * segment add "/", "?", "#", a control byte or a "."/".." dot segment to the path; url.query
 * never lets a value add "&", "=" or "#".
 */
#include "fuzz.h"

static const char check[] =
  "local core = require('customerio.core')\n"
  "local url = require('customerio.http.url')\n"
  "local BASE = 'https://track.customer.io/api/v1'\n"
  "local function unescape(e)\n"
  "  return (e:gsub('%%(..)', function(h)\n"
  "    if not h:match('^[0-9A-F][0-9A-F]$') then error('bad escape %' .. h) end\n"
  "    return string.char(tonumber(h, 16))\n"
  "  end))\n"
  "end\n"
  "return function(s)\n"
  "  local e = core.uri_encode(s)\n"
  "  if e:find(\"[^A-Za-z0-9%-_.!~*'()%%]\") then error('unsafe byte in ' .. e) end\n"
  "  if #e > 3 * #s then error('output longer than 3x') end\n"
  "  if unescape(e) ~= s then error('does not decode back: ' .. e) end\n"
  "  local segs = {}\n"
  "  for part in (s .. '\\0'):gmatch('([^%z]*)%z') do segs[#segs + 1] = part end\n"
  "  local joined = url.join(BASE, segs)\n"
  "  if joined:sub(1, #BASE) ~= BASE then error('base changed') end\n"
  "  local rest = joined:sub(#BASE + 1)\n"
  "  local n = 0\n"
  "  for seg in rest:gmatch('/([^/]*)') do\n"
  "    n = n + 1\n"
  "    if seg == '.' or seg == '..' then error('dot segment in ' .. joined) end\n"
  "    if seg:find('[?#%z\\1-\\32\\127]') then error('reserved byte in segment ' .. seg) end\n"
  "    if unescape(seg) ~= segs[n] then error('segment does not decode back') end\n"
  "  end\n"
  "  if n ~= #segs then error('segment count changed: ' .. n .. ' ~= ' .. #segs) end\n"
  "  local q = url.query({ { 'id', s }, { s, 'x' } })\n"
  "  if s ~= '' then\n"
  "    local k1, v1, k2, v2 = q:match('^%?([^&=#]*)=([^&=#]*)&([^&=#]*)=([^&=#]*)$')\n"
  "    if not k1 or unescape(v1) ~= s or unescape(k2) ~= s or v2 ~= 'x' then error('query broken: ' .. q) end\n"
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
