/*
 * json_decode - core.json_decode on arbitrary bytes.
 *
 * Properties: never crashes or raises; plain and ordered decoding agree on success; an error
 * is "... at byte N" with 1 <= N <= #text + 1 (or the Lua-stack message); a decoded value
 * re-encodes (unless it holds inf, a lone surrogate or nests too deep) and
 * encode(decode(encode(v))) == encode(v) (the encoder's output is a fixed point).
 */
#include "fuzz.h"

static const char check[] =
  "local core = require('customerio.core')\n"
  "local ordered = { ordered = true }\n"
  "return function(s)\n"
  "  local v, err = core.json_decode(s)\n"
  "  local vo, erro = core.json_decode(s, ordered)\n"
  "  if (v == nil) ~= (vo == nil) then error('plain and ordered decoding disagree: ' .. tostring(err) .. ' / ' .. tostring(erro)) end\n"
  "  if v == nil then\n"
  "    if type(err) ~= 'string' or err ~= erro then error('bad error: ' .. tostring(err) .. ' / ' .. tostring(erro)) end\n"
  "    if err == 'nesting too deep for the Lua stack' then return end\n"
  "    local at = tonumber(err:match(' at byte (%d+)'))\n"
  "    if not at then error('error without a byte offset: ' .. err) end\n"
  "    if at < 1 or at > #s + 1 then error('byte offset out of range: ' .. err .. ' (#s = ' .. #s .. ')') end\n"
  "    return\n"
  "  end\n"
  "  local e1, ee = core.json_encode(vo)\n"
  "  if not e1 then\n"
  "    if ee:find('cannot encode %-?inf') or ee:find('invalid UTF%-8') or ee:find('nesting') then return end\n"
  "    error('a decoded value does not encode: ' .. ee)\n"
  "  end\n"
  "  local v2, e2 = core.json_decode(e1, ordered)\n"
  "  if v2 == nil then error('encoder output does not decode: ' .. tostring(e2) .. '\\n' .. e1) end\n"
  "  local e3 = core.json_encode(v2)\n"
  "  if e3 ~= e1 then error('round trip is not stable:\\n' .. e1 .. '\\n' .. tostring(e3)) end\n"
  "end\n";

static lua_State *L;
static int ref;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL) {
    L = fuzz_new_state(0);
    ref = fuzz_load_function(L, check);
  }
  fuzz_call(L, ref, data, size);
  fuzz_collect(L);
  return 0;
}
