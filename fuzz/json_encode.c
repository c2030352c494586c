/*
 * json_encode - core.json_encode of Lua values built from the fuzz input.
 *
 * The input is a little program: each byte picks what to build next (nil, booleans, null,
 * integers and floats from the following bytes (NaN, inf, -0, 2^63 included), byte strings
 * (invalid UTF-8, NUL, control characters), arrays with holes, objects, mixed tables,
 * tables marked by array_mt / object_mt / __jsontype / __jsonorder (with missing, repeated
 * and non-string keys), shared references and cycles, functions, odd keys (floats, booleans,
 * 1 beside "1")), optionally with a small max_depth.
 *
 * Properties: json_encode never crashes or raises; it returns either text or a message that
 * starts with the root name and names a path; returned text decodes, and
 * encode(decode(text, {ordered = true})) == text.
 */
#include "fuzz.h"

static const char check[] =
  "local core = require('customerio.core')\n"
  "local byte, sub, unpack = string.byte, string.sub, string.unpack\n"
  "return function(s)\n"
  "  local pos, made = 1, {}\n"
  "  local function u8() local b = byte(s, pos) or 0; pos = pos + 1; return b end\n"
  "  local function bytes(n) local r = sub(s, pos, pos + n - 1); pos = pos + n; return r end\n"
  "  local function str() return bytes(u8() % 40) end\n"
  "  local value\n"
  "  local function key(depth)\n"
  "    local k = u8() % 8\n"
  "    if k < 4 then return str() end\n"
  "    if k == 4 then return u8() % 6 end\n"
  "    if k == 5 then return (u8() % 4) + 0.5 end\n"
  "    if k == 6 then return u8() % 2 == 0 end\n"
  "    return -(u8() % 3)\n"
  "  end\n"
  "  local function table_of(depth, kind)\n"
  "    local t = {}\n"
  "    made[#made + 1] = t\n"
  "    local n = u8() % 7\n"
  "    for i = 1, n do\n"
  "      if kind == 'array' then t[i] = value(depth + 1)\n"
  "      elseif kind == 'holes' then t[u8() % 9 + 1] = value(depth + 1)\n"
  "      else local k = key(depth); if k == k then t[k] = value(depth + 1) end end\n"
  "    end\n"
  "    return t\n"
  "  end\n"
  "  function value(depth)\n"
  "    if pos > #s or depth > 60 then return 1 end\n"
  "    local op = u8() % 26\n"
  "    if op == 0 then return nil\n"
  "    elseif op == 1 then return true\n"
  "    elseif op == 2 then return false\n"
  "    elseif op == 3 then return core.null\n"
  "    elseif op == 4 then local b = bytes(8); return #b == 8 and unpack('<i8', b) or 7\n"
  "    elseif op == 5 then local b = bytes(8); return #b == 8 and unpack('<d', b) or 0.25\n"
  "    elseif op == 6 then return ({ 0/0, 1/0, -1/0, -0.0, 2^53, 2^63, -2^63, math.mininteger, math.maxinteger, 1e-7, 5e-324, 0.1 })[u8() % 12 + 1]\n"
  "    elseif op <= 9 then return str()\n"
  "    elseif op <= 12 then return table_of(depth, 'object')\n"
  "    elseif op <= 14 then return table_of(depth, 'array')\n"
  "    elseif op == 15 then return table_of(depth, 'holes')\n"
  "    elseif op == 16 then return setmetatable(table_of(depth, u8() % 2 == 0 and 'array' or 'object'), core.array_mt)\n"
  "    elseif op == 17 then return setmetatable(table_of(depth, u8() % 2 == 0 and 'array' or 'object'), core.object_mt)\n"
  "    elseif op == 18 then\n"
  "      local t = table_of(depth, 'object')\n"
  "      local order = {}\n"
  "      for i = 1, u8() % 6 do order[i] = key(depth) end\n"
  "      if u8() % 4 == 0 then order[#order + 2] = 'x' end\n"
  "      if u8() % 5 == 0 then order[#order + 1] = 0/0 end\n"
  "      return setmetatable(t, { __jsontype = ({ 'object', 'array', 'bogus', 42 })[u8() % 4 + 1], __jsonorder = order })\n"
  "    elseif op == 19 then\n"
  "      return setmetatable(table_of(depth, 'array'), { __jsontype = ({ 'array', 'object', 'other' })[u8() % 3 + 1] })\n"
  "    elseif op == 20 then\n"
  "      if #made == 0 then return {} end\n"
  "      return made[u8() % #made + 1]\n"
  "    elseif op == 21 then\n"
  "      local t = { value(depth + 1) }\n"
  "      t.k = value(depth + 1)\n"
  "      return t\n"
  "    elseif op == 22 then\n"
  "      local n, root = u8(), {}\n"
  "      local cur = root\n"
  "      for _ = 1, n * 8 do local nxt = {}; cur[1] = nxt; cur = nxt end\n"
  "      return root\n"
  "    elseif op == 23 then return print\n"
  "    elseif op == 24 then local t = table_of(depth, 'object'); t[1] = 1; t['1'] = 2; return t\n"
  "    else\n"
  "      local t = setmetatable({}, { __index = function() return 1 end, __pairs = error, __len = error })\n"
  "      t[1] = value(depth + 1)\n"
  "      return t\n"
  "    end\n"
  "  end\n"
  "  local opts = { root = 'value' }\n"
  "  if u8() % 4 == 0 then opts.max_depth = u8() % 40 + 1 end\n"
  "  local v = value(0)\n"
  "  local text, err = core.json_encode(v, opts)\n"
  "  if text == nil then\n"
  "    if type(err) ~= 'string' or err:sub(1, 5) ~= 'value' or not err:find(': ', 1, true) then\n"
  "      error('bad error message: ' .. tostring(err))\n"
  "    end\n"
  "    return\n"
  "  end\n"
  "  if type(text) ~= 'string' then error('json_encode returned a ' .. type(text)) end\n"
  "  local back, derr = core.json_decode(text, { ordered = true })\n"
  "  if back == nil and derr then error('output does not decode: ' .. derr .. '\\n' .. text) end\n"
  "  local again, aerr = core.json_encode(back)\n"
  "  if again ~= text then error('not a fixed point:\\n' .. text .. '\\n' .. tostring(again or aerr)) end\n"
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
