-- A tiny JSON codec for the test server's own traffic (spec/support only).
--
-- Pure Lua, works on 5.1, 5.4, LuaJIT and inside nginx (the handler uses it too), so the test
-- server does not depend on the C core it is meant to test.
--
--   local json = dofile("spec/support/json.lua")   -- or require("json") inside nginx
--   json.encode(value)            --> string       (tables with 1..n keys become arrays)
--   json.decode(text [, opts])    --> value | nil, message
--     opts.null     value to use for JSON null (default: json.null, a sentinel table)
--     opts.array_mt metatable given to decoded arrays (default: none)
--
-- Strings are byte strings: the encoder escapes only '"', '\\' and control bytes and passes
-- every other byte through, and the decoder copies unescaped bytes as they are, so any body
-- (even invalid UTF-8) survives a round trip unchanged.

local json = {}

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local byte, char, find, sub, format, gsub = string.byte, string.char, string.find, string.sub,
  string.format, string.gsub
local concat = table.concat
local floor, huge = math.floor, math.huge

json.null = setmetatable({}, { __tostring = function() return "null" end })

-- Encoding ------------------------------------------------------------------------------------

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_char(c)
  return escapes[c] or format("\\u%04x", byte(c))
end

local function encode_string(s)
  return '"' .. gsub(s, '[%z\1-\31"\\\127]', escape_char) .. '"'
end

local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.__jsontype == "array" then return true end
  if mt and mt.__jsontype == "object" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  if n == 0 then return false end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true
end

local encode_value

local function encode_table(t, out, depth)
  if depth > 100 then error("json.encode: nesting too deep") end
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode_value(t[i], out, depth + 1)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    local first = true
    for k, v in pairs(t) do
      if not first then out[#out + 1] = "," end
      first = false
      out[#out + 1] = encode_string(tostring(k))
      out[#out + 1] = ":"
      encode_value(v, out, depth + 1)
    end
    out[#out + 1] = "}"
  end
end

encode_value = function(v, out, depth)
  local t = type(v)
  if v == nil or v == json.null then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    if v ~= v or v == huge or v == -huge then error("json.encode: cannot encode " .. tostring(v)) end
    if floor(v) == v and v > -2^53 and v < 2^53 then
      out[#out + 1] = format("%d", v)
    else
      out[#out + 1] = format("%.17g", v)
    end
  elseif t == "string" then
    out[#out + 1] = encode_string(v)
  elseif t == "table" then
    encode_table(v, out, depth)
  else
    error("json.encode: cannot encode a " .. t)
  end
end

function json.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return concat(out)
end

-- Decoding ------------------------------------------------------------------------------------

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
    0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local simple_unescape = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
  n = "\n", r = "\r", t = "\t" }

local function decoder(text, opts)
  local null = opts and opts.null
  if null == nil then null = json.null end
  local array_mt = opts and opts.array_mt
  local pos = 1

  local function fail(msg)
    error({ json_error = format("%s at byte %d", msg, pos) }, 0)
  end

  local function skip_ws()
    pos = find(text, "[^ \t\r\n]", pos) or (#text + 1)
  end

  local function read_string()
    -- text[pos] == '"'
    local parts, n = {}, 0
    local i = pos + 1
    while true do
      local j = find(text, '["\\%z\1-\31]', i)
      if not j then pos = i; fail("unterminated string") end
      if j > i then n = n + 1; parts[n] = sub(text, i, j - 1) end
      local c = sub(text, j, j)
      if c == '"' then
        pos = j + 1
        return concat(parts)
      elseif c == "\\" then
        local e = sub(text, j + 1, j + 1)
        if simple_unescape[e] then
          n = n + 1; parts[n] = simple_unescape[e]
          i = j + 2
        elseif e == "u" then
          local hex = sub(text, j + 2, j + 5)
          local cp = #hex == 4 and find(hex, "^%x%x%x%x$") and tonumber(hex, 16)
          if not cp then pos = j; fail("bad \\u escape") end
          i = j + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = sub(text, i, i + 1) == "\\u" and tonumber(sub(text, i + 2, i + 5), 16)
            if lo and lo >= 0xDC00 and lo <= 0xDFFF then
              cp = 0x10000 + (cp - 0xD800) * 0x400 + (lo - 0xDC00)
              i = i + 6
            end
          end
          n = n + 1; parts[n] = utf8_char(cp)
        else
          pos = j; fail("bad escape")
        end
      else
        pos = j; fail("control character in string")
      end
    end
  end

  local read_value

  local function read_array(depth)
    pos = pos + 1
    local arr, n = {}, 0
    if array_mt then setmetatable(arr, array_mt) end
    skip_ws()
    if sub(text, pos, pos) == "]" then pos = pos + 1; return arr end
    while true do
      n = n + 1
      arr[n] = read_value(depth + 1)
      skip_ws()
      local c = sub(text, pos, pos)
      pos = pos + 1
      if c == "]" then return arr end
      if c ~= "," then pos = pos - 1; fail("expected ',' or ']'") end
    end
  end

  local function read_object(depth)
    pos = pos + 1
    local obj = {}
    skip_ws()
    if sub(text, pos, pos) == "}" then pos = pos + 1; return obj end
    while true do
      skip_ws()
      if sub(text, pos, pos) ~= '"' then fail("expected a string key") end
      local k = read_string()
      skip_ws()
      if sub(text, pos, pos) ~= ":" then fail("expected ':'") end
      pos = pos + 1
      obj[k] = read_value(depth + 1)
      skip_ws()
      local c = sub(text, pos, pos)
      pos = pos + 1
      if c == "}" then return obj end
      if c ~= "," then pos = pos - 1; fail("expected ',' or '}'") end
    end
  end

  read_value = function(depth)
    if depth > 1000 then fail("nesting too deep") end
    skip_ws()
    local c = sub(text, pos, pos)
    if c == "{" then return read_object(depth)
    elseif c == "[" then return read_array(depth)
    elseif c == '"' then return read_string()
    elseif sub(text, pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif sub(text, pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif sub(text, pos, pos + 3) == "null" then pos = pos + 4; return null
    else
      local s, e = find(text, "^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not s then fail("unexpected character") end
      local num = tonumber(sub(text, s, e))
      if not num then fail("bad number") end
      pos = e + 1
      return num
    end
  end

  return function()
    local v = read_value(0)
    skip_ws()
    if pos <= #text then fail("trailing garbage") end
    return v
  end
end

function json.decode(text, opts)
  if type(text) ~= "string" then return nil, "json.decode: expected a string" end
  local ok, v = pcall(decoder(text, opts))
  if ok then return v end
  if type(v) == "table" and v.json_error then return nil, v.json_error end
  return nil, tostring(v)
end

return json
