--- Pure-Lua JSON for Liquid (`json`, `from_json`), compatible with the C core's data model:
-- arrays carry `{__jsontype = "array"}`, objects decoded with `ordered = true` carry
-- `{__jsontype = "object", __jsonorder = {keys...}}`, JSON null is `values.null`.
-- @module customerio.liquid.json

local values = require("customerio.liquid.values")
local number = require("customerio.liquid.number")

local type, tostring, tonumber, setmetatable = type, tostring, tonumber, setmetatable
local format, gsub, byte, sub, find, char, rep = string.format, string.gsub, string.byte, string.sub,
  string.find, string.char, string.rep
local concat = table.concat
local floor = math.floor

local M = {}

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
  ["\t"] = "\\t" }

local function quote(s)
  return '"' .. gsub(s, '[%c"\\]', function(c)
    return ESC[c] or format("\\u%04x", byte(c))
  end) .. '"'
end

local function encode_value(v, indent, depth, out, seen)
  local k = values.kind(v)
  if k == "nil" then
    out[#out + 1] = "null"
  elseif k == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif k == "number" then
    local x = number.value(v)
    if x ~= x or x == math.huge or x == -math.huge then
      out[#out + 1] = "null"
    else
      out[#out + 1] = number.to_s(v)
    end
  elseif k == "string" then
    out[#out + 1] = quote(v)
  elseif k == "array" or k == "range" or k == "hash" then
    if seen[v] then error("cannot encode a cyclic structure", 0) end
    if depth > 200 then error("nesting too deep", 0) end
    seen[v] = true
    local nl, pad, pad_in = "", "", ""
    if indent then
      nl = "\n"
      pad = rep(" ", indent * depth)
      pad_in = rep(" ", indent * (depth + 1))
    end
    if k == "hash" then
      local keys = values.hash_keys(v)
      if #keys == 0 then
        out[#out + 1] = "{}"
      else
        out[#out + 1] = "{" .. nl
        for i = 1, #keys do
          local key = keys[i]
          out[#out + 1] = pad_in .. quote(tostring(key)) .. (indent and ": " or ":")
          encode_value(v[key], indent, depth + 1, out, seen)
          if i < #keys then out[#out + 1] = "," .. nl end
        end
        out[#out + 1] = nl .. pad .. "}"
      end
    else
      local list = k == "range" and values.elements(v) or v
      if #list == 0 then
        out[#out + 1] = "[]"
      else
        out[#out + 1] = "[" .. nl
        for i = 1, #list do
          out[#out + 1] = pad_in
          encode_value(list[i], indent, depth + 1, out, seen)
          if i < #list then out[#out + 1] = "," .. nl end
        end
        out[#out + 1] = nl .. pad .. "]"
      end
    end
    seen[v] = nil
  else
    out[#out + 1] = quote(tostring(v))
  end
end

--- Encode a Liquid value as JSON (object keys in `__jsonorder` or sorted order).
-- @param v the value
-- @tparam[opt] number indent spaces per level; compact when nil
-- @treturn string|nil JSON text
-- @treturn string error message
function M.encode(v, indent)
  local out = {}
  local ok, err = pcall(encode_value, v, indent, 0, out, {})
  if not ok then return nil, tostring(err) end
  return concat(out)
end

-- ---------------------------------------------------------------------------------------
-- Decoding

local ARRAY = values.ARRAY

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64, 0x80 + floor(cp / 64) % 64,
    0x80 + cp % 64)
end

--- Decode JSON text.
-- @tparam string s
-- @tparam[opt] table opts `ordered = true` records object key order in `__jsonorder`
-- @return the value (JSON null is `values.null`)
-- @treturn string|nil error message when decoding fails (the first result is then nil)
function M.decode(s, opts)
  local ordered = opts and opts.ordered
  local pos = 1
  local function fail(msg)
    error({ json_error = msg .. " at position " .. pos }, 0)
  end
  local function ws()
    pos = find(s, "[^ \t\r\n]", pos) or #s + 1
  end
  local parse_value
  local function parse_string()
    pos = pos + 1
    local parts, n = {}, 0
    while true do
      local stop = find(s, '["\\]', pos)
      if not stop then fail("unterminated string") end
      n = n + 1
      parts[n] = sub(s, pos, stop - 1)
      if byte(s, stop) == 34 then
        pos = stop + 1
        break
      end
      local e = sub(s, stop + 1, stop + 1)
      if e == "u" then
        local hex = sub(s, stop + 2, stop + 5)
        local cp = tonumber(hex, 16)
        if not cp or #hex ~= 4 then fail("bad unicode escape") end
        pos = stop + 6
        if cp >= 0xD800 and cp <= 0xDBFF and sub(s, pos, pos + 1) == "\\u" then
          local lo = tonumber(sub(s, pos + 2, pos + 5), 16)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
            pos = pos + 6
          end
        end
        n = n + 1
        parts[n] = utf8_char(cp)
      else
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        local c = map[e]
        if not c then fail("bad escape") end
        n = n + 1
        parts[n] = c
        pos = stop + 2
      end
    end
    return concat(parts, "", 1, n)
  end
  parse_value = function()
    ws()
    local c = byte(s, pos)
    if c == 123 then -- {
      pos = pos + 1
      local obj, order = {}, ordered and {} or nil
      ws()
      if byte(s, pos) == 125 then
        pos = pos + 1
      else
        while true do
          ws()
          if byte(s, pos) ~= 34 then fail("expected string key") end
          local key = parse_string()
          ws()
          if byte(s, pos) ~= 58 then fail("expected ':'") end
          pos = pos + 1
          local v = parse_value()
          if order and obj[key] == nil then order[#order + 1] = key end
          obj[key] = v
          ws()
          local d = byte(s, pos)
          pos = pos + 1
          if d == 125 then break end
          if d ~= 44 then fail("expected ',' or '}'") end
        end
      end
      if order then setmetatable(obj, { __jsontype = "object", __jsonorder = order }) end
      return obj
    elseif c == 91 then -- [
      pos = pos + 1
      local arr, n = {}, 0
      ws()
      if byte(s, pos) == 93 then
        pos = pos + 1
      else
        while true do
          n = n + 1
          arr[n] = parse_value()
          ws()
          local d = byte(s, pos)
          pos = pos + 1
          if d == 93 then break end
          if d ~= 44 then fail("expected ',' or ']'") end
        end
      end
      return setmetatable(arr, ARRAY)
    elseif c == 34 then
      return parse_string()
    elseif c == 116 and sub(s, pos, pos + 3) == "true" then
      pos = pos + 4
      return true
    elseif c == 102 and sub(s, pos, pos + 4) == "false" then
      pos = pos + 5
      return false
    elseif c == 110 and sub(s, pos, pos + 3) == "null" then
      pos = pos + 4
      return values.null
    else
      local _, e = find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not e then fail("unexpected character") end
      local lit = sub(s, pos, e)
      pos = e + 1
      local x = tonumber(lit)
      if not x then fail("bad number") end
      if find(lit, "[.eE]") then return number.float(x) end
      return number.int(x)
    end
  end
  local ok, result = pcall(function()
    local v = parse_value()
    ws()
    if pos <= #s then fail("trailing characters") end
    return v
  end)
  if not ok then
    if type(result) == "table" and result.json_error then return nil, result.json_error end
    return nil, tostring(result)
  end
  return result
end

return M
