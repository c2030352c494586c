--- The standard Liquid filters (Shopify Liquid 5 semantics, checked by the golden-liquid
-- suite).
--
-- The registry maps a name to a spec `{ fn = function(input, ...), min = n, max = n,
-- kwargs = bool, ctx = bool }`: `min`/`max` bound the positional arguments (checked when a
-- template is parsed), `kwargs` lets the filter take `name: value` arguments (passed as one
-- table after `max` positional slots), `ctx` passes the render context first.
-- Filters raise `errors.argument(...)` for bad input.
-- @module customerio.liquid.filters

local values = require("customerio.liquid.values")
local number = require("customerio.liquid.number")
local errors = require("customerio.liquid.errors")
local text = require("customerio.liquid.text")
local date = require("customerio.liquid.date")
local budget = require("customerio.liquid.budget")

local type, tostring, tonumber, setmetatable, getmetatable, pairs =
  type, tostring, tonumber, setmetatable, getmetatable, pairs
local floor, abs = math.floor, math.abs
local format, find, sub, gsub, byte, char, lower, upper, rep, match =
  string.format, string.find, string.sub, string.gsub, string.byte, string.char, string.lower,
  string.upper, string.rep, string.match
local concat, sort = table.concat, table.sort

local kind, to_s, truthy, equals = values.kind, values.to_s, values.truthy, values.equals
local input_list, ARRAY, NULL = values.input_list, values.ARRAY, values.null
local argument = errors.argument

local M = {}

--- The registry of standard filters.
M.registry = {}
local registry = M.registry

local function def(name, fn, min, max, extra)
  local spec = { fn = fn, min = min or 0, max = max or min or 0 }
  if extra then for k, v in pairs(extra) do spec[k] = v end end
  registry[name] = spec
  return spec
end
M.def = def

local function array(t) return setmetatable(t, ARRAY) end
M.array = array

local function is_nil(v) return v == nil or v == NULL end

-- ---------------------------------------------------------------------------------------
-- Stable merge sort with a three-way comparator

local function merge_sort(list, cmp)
  local n = #list
  if n < 2 then return list end
  local src, dst = list, {}
  local width = 1
  while width < n do
    local i = 1
    while i <= n do
      local mid = math.min(i + width, n + 1)
      local hi = math.min(i + 2 * width, n + 1)
      local a, b, k = i, mid, i
      while a < mid and b < hi do
        if cmp(src[b], src[a]) < 0 then
          dst[k] = src[b]; b = b + 1
        else
          dst[k] = src[a]; a = a + 1
        end
        k = k + 1
      end
      while a < mid do dst[k] = src[a]; a = a + 1; k = k + 1 end
      while b < hi do dst[k] = src[b]; b = b + 1; k = k + 1 end
      i = i + 2 * width
    end
    src, dst = dst, src
    width = width * 2
  end
  if src ~= list then
    for i = 1, n do list[i] = src[i] end
  end
  return list
end
M.merge_sort = merge_sort

-- ---------------------------------------------------------------------------------------
-- Property access of array filters (Ruby's `item[property]`)

local NO_METHOD = {}

local function property_error(property)
  argument("cannot select the property '" .. to_s(property) .. "'")
end

-- Returns the property value, or NO_METHOD when the item has no `[]` (the filter then
-- returns nil), or raises when the property cannot index the item.
local function item_property(item, property)
  local k = kind(item)
  if k == "hash" then
    if is_nil(property) then return nil end
    if type(property) == "table" and getmetatable(property) == number.FLOAT then property = property[1] end
    return item[property]
  elseif k == "string" then
    if is_nil(property) then return NO_METHOD end
    if type(property) == "string" then
      if find(item, property, 1, true) then return property end
      return nil
    end
    if number.is_number(property) and not number.is_float(property) then
      local chars = text.chars(item)
      local i = number.value(property)
      if i < 0 then i = #chars + i end
      return chars[i + 1]
    end
    property_error(property)
  elseif k == "number" then
    if number.is_float(item) then return NO_METHOD end
    if number.is_number(property) and not number.is_float(property) then
      local bit = floor(number.value(item) / 2 ^ number.value(property)) % 2
      return number.int(bit)
    end
    property_error(property)
  elseif k == "array" then
    if number.is_number(property) and not number.is_float(property) then
      local i = number.value(property)
      if i < 0 then i = #item + i end
      return item[i + 1]
    end
    property_error(property)
  end
  return NO_METHOD
end
M.item_property = item_property

-- Ruby's filter_array: mode is "select", "reject", "any", "find", "index".
local function filter_array(input, property, target, mode)
  local list = input_list(input)
  if #list == 0 then
    if mode == "any" then return false end
    if mode == "find" or mode == "index" then return nil end
    return array({})
  end
  local out, n = {}, 0
  local by_truth = is_nil(target)
  for i = 1, #list do
    local item = list[i]
    local v = item_property(item, property)
    if v == NO_METHOD then return nil end
    local hit
    if by_truth then hit = truthy(v) else hit = equals(v, target) end
    if mode == "any" then
      if hit then return true end
    elseif mode == "find" then
      if hit then return item end
    elseif mode == "index" then
      if hit then return number.int(i - 1) end
    elseif (mode == "select") == hit then
      n = n + 1
      out[n] = item
    end
  end
  if mode == "any" then return false end
  if mode == "find" or mode == "index" then return nil end
  return array(out)
end
M.filter_array = filter_array

-- ---------------------------------------------------------------------------------------
-- Strings

def("append", function(input, s) return to_s(input) .. to_s(s) end, 1)
def("prepend", function(input, s) return to_s(s) .. to_s(input) end, 1)
def("downcase", function(input) return lower(to_s(input)) end)
def("upcase", function(input) return upper(to_s(input)) end)
def("capitalize", function(input) return text.capitalize(to_s(input)) end)
def("strip", function(input) return text.strip(to_s(input)) end)
def("lstrip", function(input) return text.lstrip(to_s(input)) end)
def("rstrip", function(input) return text.rstrip(to_s(input)) end)
def("strip_newlines", function(input) return (gsub(to_s(input), "\r?\n", "")) end)
def("newline_to_br", function(input) return (gsub(to_s(input), "\r?\n", "<br />\n")) end)
def("size", function(input) return values.size(input) or 0 end)

local HTML_ESCAPE = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

local function escape_html(s)
  if not find(s, "[&<>\"']") then return s end
  return (gsub(s, "[&<>\"']", HTML_ESCAPE))
end
M.escape_html = escape_html

local function escape(input)
  if is_nil(input) then return nil end
  return escape_html(to_s(input))
end
def("escape", escape)
def("h", escape)

def("escape_once", function(input)
  local s = to_s(input)
  local out, n, i = {}, 0, 1
  while true do
    local p = find(s, "[&<>\"']", i)
    if not p then break end
    n = n + 1
    out[n] = sub(s, i, p - 1)
    local c = sub(s, p, p)
    if c == "&" and (find(s, "^&%a+;", p) or find(s, "^&#%d+;", p)) then
      n = n + 1
      out[n] = "&"
    else
      n = n + 1
      out[n] = HTML_ESCAPE[c]
    end
    i = p + 1
  end
  n = n + 1
  out[n] = sub(s, i)
  return concat(out, "", 1, n)
end)

local function url_encode(input)
  if is_nil(input) then return nil end
  local s = gsub(to_s(input), "[^%w_%.%-~ ]", function(c) return format("%%%02X", byte(c)) end)
  return (gsub(s, " ", "+"))
end
M.url_encode = url_encode
def("url_encode", url_encode)

def("url_decode", function(input)
  if is_nil(input) then return nil end
  local s = gsub(to_s(input), "+", " ")
  s = gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end)
  if not text.valid_utf8(s) then argument("invalid byte sequence in UTF-8") end
  return s
end)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_INDEX = {}
for i = 1, 64 do B64_INDEX[byte(B64, i)] = i - 1 end

--- Standard base64 with padding.
-- @tparam string s
-- @treturn string
local function base64_encode(s)
  local out, n = {}, 0
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = floor(v / 262144) % 64
    local c2 = floor(v / 4096) % 64
    local c3 = floor(v / 64) % 64
    local c4 = v % 64
    n = n + 1
    out[n] = sub(B64, c1 + 1, c1 + 1) .. sub(B64, c2 + 1, c2 + 1)
      .. (b and sub(B64, c3 + 1, c3 + 1) or "=") .. (c and sub(B64, c4 + 1, c4 + 1) or "=")
  end
  return concat(out, "", 1, n)
end
M.base64_encode = base64_encode

--- Strict base64 decoding; nil on bad input.
-- @tparam string s
-- @treturn string|nil
local function base64_decode(s)
  local len = #s
  if len % 4 ~= 0 then return nil end
  local out, n = {}, 0
  for i = 1, len, 4 do
    local a, b, c, d = byte(s, i, i + 3)
    local va, vb = B64_INDEX[a], B64_INDEX[b]
    if va == nil or vb == nil then return nil end
    local last = i + 3 == len
    local vc, vd = B64_INDEX[c], B64_INDEX[d]
    if c == 61 then
      if not last or d ~= 61 then return nil end
      local v = va * 262144 + vb * 4096
      n = n + 1
      out[n] = char(floor(v / 65536) % 256)
    elseif d == 61 then
      if not last or vc == nil then return nil end
      local v = va * 262144 + vb * 4096 + vc * 64
      n = n + 1
      out[n] = char(floor(v / 65536) % 256, floor(v / 256) % 256)
    else
      if vc == nil or vd == nil then return nil end
      local v = va * 262144 + vb * 4096 + vc * 64 + vd
      n = n + 1
      out[n] = char(floor(v / 65536) % 256, floor(v / 256) % 256, v % 256)
    end
  end
  return concat(out, "", 1, n)
end
M.base64_decode = base64_decode

def("base64_encode", function(input) return base64_encode(to_s(input)) end)
def("base64_decode", function(input)
  local r = base64_decode(to_s(input))
  if not r then argument("invalid base64 provided to base64_decode") end
  return r
end)
def("base64_url_safe_encode", function(input)
  return (gsub(base64_encode(to_s(input)), "[+/]", { ["+"] = "-", ["/"] = "_" }))
end)
def("base64_url_safe_decode", function(input)
  local s = gsub(to_s(input), "[-_]", { ["-"] = "+", ["_"] = "/" })
  if #s % 4 ~= 0 and not find(s, "=$") then s = s .. rep("=", (4 - #s % 4) % 4) end
  local r = base64_decode(s)
  if not r then argument("invalid base64 provided to base64_url_safe_decode") end
  return r
end)

def("slice", function(input, offset, length)
  offset = number.to_integer(offset)
  if is_nil(length) then length = 1 else length = number.to_integer(length) end
  local is_array = kind(input) == "array"
  local s = not is_array and to_s(input)
  local ascii = s and not find(s, "[\128-\255]")
  -- ASCII strings are sliced by bytes; others by their characters
  local items = is_array and input or (not ascii and text.chars(s))
  local size = ascii and #s or #items
  if offset < 0 then offset = offset + size end
  if offset < 0 or offset > size or length < 0 then
    return is_array and array({}) or ""
  end
  local stop = math.min(size, offset + length)
  if ascii then return sub(s, offset + 1, stop) end
  local out, n = {}, 0
  for i = offset + 1, stop do
    n = n + 1
    out[n] = items[i]
  end
  if is_array then return array(out) end
  return concat(out, "", 1, n)
end, 1, 2)

def("truncate", function(input, length, ending)
  if is_nil(input) then return nil end
  local s = to_s(input)
  if length == nil then length = 50 else length = number.to_integer(length) end
  if ending == nil then ending = "..." else ending = to_s(ending) end
  local l = length - text.len(ending)
  if l < 0 then l = 0 end
  if text.len(s) > length then return text.sub(s, 1, l) .. ending end
  return s
end, 0, 2)

def("truncatewords", function(input, words, ending)
  if is_nil(input) then return nil end
  local s = to_s(input)
  if words == nil then words = 15 else words = number.to_integer(words) end
  if words <= 0 then words = 1 end
  if ending == nil then ending = "..." else ending = to_s(ending) end
  local list, n = {}, 0
  for w in s:gmatch("%S+") do
    n = n + 1
    if n > words then
      return concat(list, " ", 1, words) .. ending
    end
    list[n] = w
  end
  return s
end, 0, 2)

--- Ruby `String#split` with a string separator (`" "` splits on whitespace runs).
-- @tparam string s
-- @tparam string sep
-- @treturn table array
local function split(s, sep)
  local out, n = {}, 0
  if sep == " " then
    for w in s:gmatch("%S+") do n = n + 1; out[n] = w end
    return array(out)
  end
  if s == "" then return array(out) end
  if sep == "" then return array(text.chars(s)) end
  local i = 1
  while true do
    local p, e = find(s, sep, i, true)
    if not p then break end
    n = n + 1
    out[n] = sub(s, i, p - 1)
    i = e + 1
  end
  n = n + 1
  out[n] = sub(s, i)
  while n > 0 and out[n] == "" do
    out[n] = nil
    n = n - 1
  end
  return array(out)
end
M.split = split

-- Occurrences of plain `pat` (not empty) in `s`, counting no further than `max`.
local function count_plain(s, pat, max)
  local n, i = 0, 1
  while n <= max do
    local _, e = find(s, pat, i, true)
    if not e then return n end
    n = n + 1
    i = e + 1
  end
  return n
end

-- How many more items or bytes of `size` each fit in the render's budget.
local function room(ctx, size)
  return (ctx.max_memory - ctx.mem) / size
end

-- Strings this long are measured before a filter multiplies them.
local LARGE = 4096

def("split", function(ctx, input, sep)
  local s, sp = to_s(input), to_s(sep)
  if #s > LARGE then
    local parts = (sp == "" or sp == " ") and #s or count_plain(s, sp, room(ctx, budget.ITEM))
    budget.check(ctx, budget.ITEM * (parts + 1))
  end
  return split(s, sp)
end, 1, 1, { ctx = true })

local function plain(s) return (gsub(s, "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end
local function plain_repl(s) return (gsub(s, "%%", "%%%%")) end

local function replace_all(s, pattern, replacement)
  if pattern == "" then
    local chars = text.chars(s)
    return replacement .. concat(chars, replacement) .. (#chars > 0 and replacement or "")
  end
  return (gsub(s, plain(pattern), plain_repl(replacement)))
end

local function replace_first(s, pattern, replacement)
  if pattern == "" then return replacement .. s end
  local p, e = find(s, pattern, 1, true)
  if not p then return s end
  return sub(s, 1, p - 1) .. replacement .. sub(s, e + 1)
end

local function replace_last(s, pattern, replacement)
  if pattern == "" then return s .. replacement end
  local last, last_e
  local i = 1
  while true do
    local p, e = find(s, pattern, i, true)
    if not p then break end
    last, last_e = p, e
    i = p + 1
  end
  if not last then return s end
  return sub(s, 1, last - 1) .. replacement .. sub(s, last_e + 1)
end

def("replace", function(ctx, input, pattern, replacement)
  local str, pat, with = to_s(input), to_s(pattern), to_s(replacement)
  if #with > #pat and (#str > LARGE or #with > LARGE) then
    local count = pat == "" and text.len(str) + 1 or count_plain(str, pat, room(ctx, #with - #pat))
    budget.check(ctx, #str + count * (#with - #pat))
  end
  return replace_all(str, pat, with)
end, 1, 2, { ctx = true })
def("replace_first", function(input, pattern, replacement)
  return replace_first(to_s(input), to_s(pattern), to_s(replacement))
end, 1, 2)
def("replace_last", function(input, pattern, replacement)
  return replace_last(to_s(input), to_s(pattern), to_s(replacement))
end, 2)
def("remove", function(input, pattern) return replace_all(to_s(input), to_s(pattern), "") end, 1)
def("remove_first", function(input, pattern) return replace_first(to_s(input), to_s(pattern), "") end, 1)
def("remove_last", function(input, pattern) return replace_last(to_s(input), to_s(pattern), "") end, 1)

def("strip_html", function(input)
  local s = to_s(input)
  s = gsub(s, "<script.-</script>", "")
  s = gsub(s, "<!%-%-.-%-%->", "")
  s = gsub(s, "<style.-</style>", "")
  s = gsub(s, "<.->", "")
  return s
end)

def("squish", function(input)
  if is_nil(input) then return nil end
  return (gsub(text.strip(to_s(input)), "%s+", " "))
end)

-- ---------------------------------------------------------------------------------------
-- Numbers

def("abs", function(input)
  local x, f = number.to_number(input)
  return number.make(abs(x), f)
end)
def("plus", function(input, operand) return number.arith("+", input, operand) end, 1)
def("minus", function(input, operand) return number.arith("-", input, operand) end, 1)
def("times", function(input, operand) return number.arith("*", input, operand) end, 1)
def("divided_by", function(input, operand) return number.arith("/", input, operand) end, 1)
def("modulo", function(input, operand) return number.arith("%", input, operand) end, 1)
def("ceil", function(input) return number.ceil((number.to_number(input))) end)
def("floor", function(input) return number.floor((number.to_number(input))) end)

def("round", function(input, digits)
  local x, f = number.to_number(input)
  local n = number.to_number(digits)
  n = n >= 0 and floor(n) or -floor(-n)
  if not f then
    if n >= 0 then return x end
    return number.int(number.round_decimal(x, n))
  end
  local r = number.round_decimal(x, n)
  if n <= 0 then return number.int(r) end
  return number.float(r)
end, 0, 1)

local function clamp(input, bound, pick_bound)
  local b, bf = number.to_number(bound)
  local x, xf = number.to_number(input)
  if pick_bound(b, x) then return number.make(b, bf) end
  return number.make(x, xf)
end
def("at_least", function(input, n) return clamp(input, n, function(b, x) return b > x end) end, 1)
def("at_most", function(input, n) return clamp(input, n, function(b, x) return b < x end) end, 1)

-- ---------------------------------------------------------------------------------------
-- Arrays

def("join", function(ctx, input, glue)
  if glue == nil then glue = " " else glue = to_s(glue) end
  local list = input_list(input)
  local n = #list
  local parts, size = {}, 0
  for i = 1, n do
    local p = to_s(list[i])
    parts[i] = p
    size = size + #p
  end
  if n > 1 then size = size + (n - 1) * #glue end
  budget.check(ctx, size)
  return concat(parts, glue)
end, 0, 1, { ctx = true })

def("first", function(input)
  local k = kind(input)
  if k == "string" then return match(input, "^" .. text.CHAR) or "" end
  if k == "array" then return input[1] end
  if k == "range" then
    if input[2] < input[1] then return nil end
    return input[1]
  end
  if k == "hash" then
    local keys = values.hash_keys(input)
    if keys[1] == nil then return nil end
    return array({ keys[1], input[keys[1]] })
  end
  return nil
end, 0, 0)

def("last", function(input)
  local k = kind(input)
  if k == "string" then return text.last_char(input) end
  if k == "array" then return input[#input] end
  if k == "range" then
    if input[2] < input[1] then return nil end
    return input[2]
  end
  return nil
end, 0, 0)

def("reverse", function(input)
  local list = input_list(input)
  local out, n = {}, #list
  for i = 1, n do out[i] = list[n - i + 1] end
  return array(out)
end)

def("concat", function(input, other)
  local k = kind(other)
  if k ~= "array" then argument("concat filter requires an array argument") end
  local out = input_list(input)
  local n = #out
  for i = 1, #other do out[n + i] = other[i] end
  return array(out)
end, 1)

def("compact", function(input, property)
  local list = input_list(input)
  local out, n = {}, 0
  if is_nil(property) then
    for i = 1, #list do
      if not is_nil(list[i]) then n = n + 1; out[n] = list[i] end
    end
    return array(out)
  end
  for i = 1, #list do
    local v = item_property(list[i], property)
    if v == NO_METHOD then return nil end
    if not is_nil(v) then n = n + 1; out[n] = list[i] end
  end
  return array(out)
end, 0, 1)

-- Ruby `<=>` for sort: numbers, strings and arrays order; nil when incomparable.
local function spaceship(a, b)
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
  if ka == "array" and kb == "array" then
    for i = 1, math.min(#a, #b) do
      local c = spaceship(a[i], b[i])
      if c == nil or c ~= 0 then return c end
    end
    if #a < #b then return -1 elseif #a > #b then return 1 end
    return 0
  end
  if ka == "boolean" and kb == "boolean" and a == b then return 0 end
  if ka == "nil" and kb == "nil" then return 0 end
  return nil
end

local function nil_safe_compare(a, b)
  local c = spaceship(a, b)
  if c then return c end
  if is_nil(a) then return 1 end
  if is_nil(b) then return -1 end
  argument("cannot sort values of incompatible types")
end

local function nil_safe_casecmp(a, b)
  local an, bn = is_nil(a), is_nil(b)
  if not an and not bn then
    local x, y = lower(to_s(a)), lower(to_s(b))
    if x < y then return -1 elseif x > y then return 1 end
    return 0
  end
  if an and bn then return 0 end
  return an and 1 or -1
end

local function sorter(cmp)
  return function(input, property)
    local list = input_list(input)
    if #list == 0 then return array({}) end
    if is_nil(property) then
      return array(merge_sort(list, cmp))
    end
    local keyed = {}
    for i = 1, #list do
      local v = item_property(list[i], property)
      if v == NO_METHOD then return nil end
      keyed[i] = { key = v, item = list[i] }
    end
    merge_sort(keyed, function(a, b) return cmp(a.key, b.key) end)
    local out = {}
    for i = 1, #keyed do out[i] = keyed[i].item end
    return array(out)
  end
end
def("sort", sorter(nil_safe_compare), 0, 1)
def("sort_natural", sorter(nil_safe_casecmp), 0, 1)

-- A string identifying a value for `uniq` (Ruby's `eql?`: 1 and 1.0 differ).
local function uniq_key(v)
  local k = kind(v)
  if k == "number" then return (number.is_float(v) and "f" or "i") .. number.to_s(v) end
  if k == "hash" then
    local keys = {}
    for key in pairs(v) do keys[#keys + 1] = key end
    sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for i = 1, #keys do parts[i] = uniq_key(keys[i]) .. "=>" .. uniq_key(v[keys[i]]) end
    return "{" .. concat(parts, ",") .. "}"
  end
  if k == "array" then
    local parts = {}
    for i = 1, #v do parts[i] = uniq_key(v[i]) end
    return "[" .. concat(parts, ",") .. "]"
  end
  if k == "string" then return "s" .. v end
  return k .. ":" .. values.inspect(v)
end
M.uniq_key = uniq_key

def("uniq", function(input, property)
  local list = input_list(input)
  local seen, out, n = {}, {}, 0
  for i = 1, #list do
    local item = list[i]
    local key
    if is_nil(property) then
      key = uniq_key(item)
    else
      local v = item_property(item, property)
      if v == NO_METHOD then return nil end
      key = uniq_key(v)
    end
    if not seen[key] then
      seen[key] = true
      n = n + 1
      out[n] = item
    end
  end
  return array(out)
end, 0, 1)

def("map", function(input, property)
  local list = input_list(input)
  local out = {}
  for i = 1, #list do
    local e = list[i]
    if property == "to_liquid" then
      out[i] = e
    else
      local v = item_property(e, property)
      if v == NO_METHOD then v = nil end
      out[i] = v == nil and NULL or v
    end
  end
  return array(out)
end, 1)

def("where", function(input, property, target) return filter_array(input, property, target, "select") end, 1, 2)
def("reject", function(input, property, target) return filter_array(input, property, target, "reject") end, 1, 2)
def("has", function(input, property, target) return filter_array(input, property, target, "any") end, 1, 2)
def("find", function(input, property, target) return filter_array(input, property, target, "find") end, 1, 2)
def("find_index", function(input, property, target)
  return filter_array(input, property, target, "index")
end, 1, 2)

def("sum", function(input, property)
  local list = input_list(input)
  if #list == 0 then return 0 end
  local vals = {}
  for i = 1, #list do
    local item = list[i]
    if is_nil(property) then
      vals[i] = item
    else
      local v = item_property(item, property)
      if v == NO_METHOD then v = 0 end
      vals[i] = v == nil and NULL or v
    end
  end
  local total = 0
  local flat = input_list(array(vals))
  for i = 1, #flat do total = number.arith("+", total, flat[i]) end
  return total
end, 0, 1)

-- ---------------------------------------------------------------------------------------
-- Other

def("default", function(input, default_value, kwargs)
  if default_value == nil then default_value = "" end
  local allow_false = kwargs and truthy(kwargs.allow_false)
  local use_default
  if allow_false then use_default = is_nil(input) else use_default = not truthy(input) end
  if use_default or values.is_empty(input) then return default_value end
  return input
end, 0, 1, { kwargs = true })

-- The `date` filter: `date: format[, time_zone]`. Inputs: Unix seconds, digit strings,
-- `now`/`today`, date strings; anything else is returned unchanged. The zone: see `date.moment`.
def("date", function(ctx, input, fmt, tz)
  local f = to_s(fmt)
  if f == "" then return input end
  local t, zone = date.moment(input, ctx.now, tz ~= NULL and tz or nil, ctx.timezone)
  if not t then return input end
  return date.strftime(f, t, zone)
end, 1, 2, { ctx = true })

return M
