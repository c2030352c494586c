--- The Liquid value model over plain Lua data.
--
-- * `nil` and JSON null (the NULL light userdata of `customerio.core`, `cjson.null`,
--   `ngx.null`) are Liquid `nil`.
-- * A table is an array when its metatable says `__jsontype = "array"`, when it is a range,
--   or when it has no metatable and `t[1] ~= nil` (or it is empty); otherwise it is a hash.
-- * A hash iterates in `__jsonorder` (objects decoded with `ordered = true`) when present,
--   else in sorted key order, so output is deterministic.
-- * Numbers are described in `customerio.liquid.number`.
-- @module customerio.liquid.values

local number = require("customerio.liquid.number")
local errors = require("customerio.liquid.errors")
local text = require("customerio.liquid.text")
local budget = require("customerio.liquid.budget")

local type, pairs, tostring, getmetatable, setmetatable, rawget, next, pcall, require =
  type, pairs, tostring, getmetatable, setmetatable, rawget, next, pcall, require
local sort, concat = table.sort, table.concat
local format, gsub, byte = string.format, string.gsub, string.byte
local floor = math.floor

local FLOAT = number.FLOAT
local to_s_number = number.to_s

local M = {}

-- The JSON null sentinel. All NULL light userdata compare equal, so one is enough.
local NULL
do
  local ok, core = pcall(require, "customerio.core")
  if ok and type(core) == "table" and core.null ~= nil then NULL = core.null end
  if NULL == nil then
    local okc, cjson = pcall(require, "cjson")
    if okc and type(cjson) == "table" and cjson.null ~= nil then NULL = cjson.null end
  end
  if NULL == nil then
    local ngx = rawget(_G, "ngx")
    if type(ngx) == "table" and ngx.null ~= nil then NULL = ngx.null end
  end
  if NULL == nil then
    NULL = setmetatable({}, { __name = "liquid.null", __tostring = function() return "null" end })
  end
end

--- The null value used by this module (JSON null).
M.null = NULL

--- Metatable given to arrays made by filters (same shape as `customerio.core.array_mt`).
M.ARRAY = { __jsontype = "array" }
local ARRAY = M.ARRAY

--- Metatable of ranges `{first, last}` (integers, inclusive).
M.RANGE = { __name = "liquid.range" }
local RANGE = M.RANGE

--- Make a new array from a Lua sequence (in place).
-- @tparam table t
-- @treturn table t
function M.array(t)
  return setmetatable(t, ARRAY)
end

--- Make a range value.
-- @tparam number first
-- @tparam number last
-- @tparam[opt] table ctx the render context whose memory budget pays when the range is
--   expanded into an array (`elements`)
-- @treturn table
function M.range(first, last, ctx)
  return setmetatable({ first, last, ctx = ctx }, RANGE)
end

--- True when `v` is nil or JSON null.
-- @param v any value
-- @treturn boolean
function M.is_nil(v)
  return v == nil or v == NULL
end

--- The kind of a value: "nil", "boolean", "number", "string", "array", "hash", "range",
-- or "other" (functions, userdata).
-- @param v any value
-- @treturn string
local function kind(v)
  local t = type(v)
  if t == "string" then return "string" end
  if t == "number" then return "number" end
  if t == "table" then
    local mt = getmetatable(v)
    if mt == nil then
      if rawget(v, 1) ~= nil or next(v) == nil then return "array" end
      return "hash"
    end
    if mt == FLOAT then return "number" end
    if mt == RANGE then return "range" end
    local jt = mt.__jsontype
    if jt == "array" then return "array" end
    if jt == "object" then return "hash" end
    if v == NULL then return "nil" end
    if rawget(v, 1) ~= nil then return "array" end
    return "hash"
  end
  if v == nil or v == NULL then return "nil" end
  if t == "boolean" then return "boolean" end
  return "other"
end
M.kind = kind

--- Liquid truthiness: only nil, null and false are falsy.
-- @param v any value
-- @treturn boolean
function M.truthy(v)
  return v ~= nil and v ~= false and v ~= NULL
end

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return ta < tb end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

--- Keys of a hash in iteration order (`__jsonorder`, else sorted).
-- @tparam table t
-- @treturn table array of keys
function M.hash_keys(t)
  local mt = getmetatable(t)
  local order = mt and mt.__jsonorder
  local keys, n = {}, 0
  if order then
    local seen = {}
    for i = 1, #order do
      local k = order[i]
      if t[k] ~= nil and not seen[k] then
        n = n + 1
        keys[n] = k
        seen[k] = true
      end
    end
    -- keys added after decoding come last, sorted
    local extra, m = {}, 0
    for k in pairs(t) do
      if not seen[k] then m = m + 1; extra[m] = k end
    end
    if m > 0 then
      sort(extra, key_less)
      for i = 1, m do n = n + 1; keys[n] = extra[i] end
    end
    return keys
  end
  for k in pairs(t) do
    n = n + 1
    keys[n] = k
  end
  sort(keys, key_less)
  return keys
end

--- Number of entries in a hash.
-- @tparam table t
-- @treturn number
function M.hash_size(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

--- A hash as an array of `[key, value]` pairs (what `for` and `first` see).
-- @tparam table t
-- @treturn table
function M.hash_pairs(t)
  local keys = M.hash_keys(t)
  local out = {}
  for i = 1, #keys do
    local k = keys[i]
    out[i] = setmetatable({ k, t[k] }, ARRAY)
  end
  return setmetatable(out, ARRAY)
end

--- The elements of an array or range as a new Lua sequence.
-- @param v an array or range
-- @treturn table
function M.elements(v)
  if getmetatable(v) == RANGE then
    local count = v[2] - v[1] + 1
    if count > 0 and v.ctx then budget.charge(v.ctx, budget.ITEM * count) end
    local out, n = {}, 0
    for i = v[1], v[2] do n = n + 1; out[n] = i end
    return out
  end
  local out = {}
  for i = 1, #v do out[i] = v[i] end
  return out
end

-- Ruby String#inspect.
local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r",
  ["\f"] = "\\f", ["\v"] = "\\v", ["\a"] = "\\a", ["\b"] = "\\b", ["\27"] = "\\e" }
local function inspect_string(s)
  return '"' .. gsub(s, '[%c"\\]', function(c)
    return ESCAPES[c] or format("\\x%02X", byte(c))
  end) .. '"'
end

local inspect

--- Ruby-style `inspect` of a value (`["a", 1]`, `{"k"=>"v"}`, `nil`).
-- @param v any value
-- @tparam[opt] table seen cycle guard
-- @treturn string
inspect = function(v, seen)
  local k = kind(v)
  if k == "nil" then return "nil" end
  if k == "string" then return inspect_string(v) end
  if k == "number" then return to_s_number(v) end
  if k == "boolean" then return tostring(v) end
  if k == "range" then return v[1] .. ".." .. v[2] end
  if k == "other" then return tostring(v) end
  seen = seen or {}
  if seen[v] then return k == "array" and "[...]" or "{...}" end
  seen[v] = true
  local parts = {}
  if k == "array" then
    for i = 1, #v do parts[i] = inspect(v[i], seen) end
    seen[v] = nil
    return "[" .. concat(parts, ", ") .. "]"
  end
  local keys = M.hash_keys(v)
  for i = 1, #keys do
    local key = keys[i]
    parts[i] = inspect(key, seen) .. "=>" .. inspect(v[key], seen)
  end
  seen[v] = nil
  return "{" .. concat(parts, ", ") .. "}"
end
M.inspect = inspect

--- Ruby `Utils.to_s`: the string form of a value used by filters (arrays and hashes as
-- `inspect`, nil as "").
-- @param v any value
-- @treturn string
function M.to_s(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return to_s_number(v) end
  if v == nil or v == NULL then return "" end
  if t == "boolean" then return tostring(v) end
  return inspect(v)
end

local function output_into(v, parts, n)
  local k = kind(v)
  if k == "array" then
    for i = 1, #v do n = output_into(v[i], parts, n) end
    return n
  end
  if k == "nil" then return n end
  n = n + 1
  parts[n] = M.to_s(v)
  return n
end

--- The text `{{ v }}` renders: arrays are concatenated element by element, nil is empty.
-- @param v any value
-- @treturn string
function M.output(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return to_s_number(v) end
  if v == nil or v == NULL then return "" end
  if t == "boolean" then return v and "true" or "false" end
  if kind(v) == "array" then
    local parts = {}
    local n = output_into(v, parts, 0)
    return concat(parts, "", 1, n)
  end
  return M.to_s(v)
end

--- Liquid `==`.
-- @param a any value
-- @param b any value
-- @treturn boolean
local function equals(a, b)
  if a == b then return true end
  local ka, kb = kind(a), kind(b)
  if ka ~= kb then
    return false
  end
  if ka == "nil" then return true end
  if ka == "number" then return number.value(a) == number.value(b) end
  if ka == "array" then
    local n = #a
    if n ~= #b then return false end
    for i = 1, n do
      if not equals(a[i], b[i]) then return false end
    end
    return true
  end
  if ka == "hash" then
    for key, va in pairs(a) do
      if not equals(va, b[key]) then return false end
    end
    for key in pairs(b) do
      if a[key] == nil then return false end
    end
    return true
  end
  if ka == "range" then return a[1] == b[1] and a[2] == b[2] end
  return false
end
M.equals = equals

--- Ordering for `< > <= >=`: numbers with numbers, strings with strings; nil when the
-- values cannot be ordered (the comparison is false); raises for a number against a string.
-- @param a any value
-- @param b any value
-- @treturn number|nil -1, 0 or 1
function M.compare(a, b)
  local ka, kb = kind(a), kind(b)
  if ka == "number" and kb == "number" then
    local x, y = number.value(a), number.value(b)
    if x < y then return -1 elseif x > y then return 1 end
    return 0
  end
  if ka == "string" and kb == "string" then
    if a < b then return -1 elseif a > b then return 1 end
    return 0
  end
  if (ka == "number" and kb == "string") or (ka == "string" and kb == "number") then
    errors.argument("comparison of " .. (ka == "number" and "Integer with String" or "String with Integer")
      .. " failed")
  end
  return nil
end

--- Ruby `blank?`: nil, false, empty or whitespace strings, empty arrays and hashes.
-- @param v any value
-- @treturn boolean
function M.is_blank(v)
  local k = kind(v)
  if k == "nil" then return true end
  if k == "boolean" then return v == false end
  if k == "string" then return text.is_blank(v) end
  if k == "array" then return #v == 0 end
  if k == "hash" then return next(v) == nil end
  return false
end

--- Ruby `empty?`: empty strings, arrays and hashes (nil is not empty).
-- @param v any value
-- @treturn boolean
function M.is_empty(v)
  local k = kind(v)
  if k == "string" then return v == "" end
  if k == "array" then return #v == 0 end
  if k == "hash" then return next(v) == nil end
  if k == "range" then return v[2] < v[1] end
  return false
end

--- Liquid `contains`.
-- @param left any value
-- @param right any value
-- @treturn boolean
function M.contains(left, right)
  if left == nil or left == NULL or right == nil or right == NULL or left == false or right == false then
    return false
  end
  local k = kind(left)
  if k == "string" then
    return string.find(left, M.to_s(right), 1, true) ~= nil
  end
  if k == "array" then
    for i = 1, #left do
      if equals(left[i], right) then return true end
    end
    return false
  end
  if k == "hash" then
    return left[right] ~= nil
  end
  if k == "range" then
    if number.is_number(right) then
      local x = number.value(right)
      return x >= left[1] and x <= left[2] and x == floor(x)
    end
    return false
  end
  return false
end

--- Size of a value for `.size` and the `size` filter (characters for strings).
-- @param v any value
-- @treturn number|nil nil when the value has no size
function M.size(v)
  local k = kind(v)
  if k == "string" then return text.len(v) end
  if k == "array" then return #v end
  if k == "hash" then return M.hash_size(v) end
  if k == "range" then
    local n = v[2] - v[1] + 1
    if n < 0 then n = 0 end
    return n
  end
  return nil
end

--- Flatten an array deeply into a new Lua sequence (Ruby `Array#flatten`).
-- @tparam table v an array
-- @tparam[opt] table out
-- @treturn table
local function flatten(v, out)
  out = out or {}
  for i = 1, #v do
    local e = v[i]
    if type(e) == "table" and kind(e) == "array" then
      flatten(e, out)
    else
      out[#out + 1] = e
    end
  end
  return out
end
M.flatten = flatten

--- Ruby `InputIterator`: the sequence an array filter works on. Arrays are flattened,
-- ranges expanded, a hash or a scalar becomes a one-element sequence, nil is empty.
-- @param v any value
-- @treturn table Lua sequence
function M.input_list(v)
  local k = kind(v)
  if k == "array" then return flatten(v) end
  if k == "range" then return M.elements(v) end
  if k == "nil" then return {} end
  return { v }
end

return M
