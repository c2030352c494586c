--- Liquid numbers: integers, floats and their arithmetic.
--
-- Liquid keeps integers and floats apart (`{{ 10 | divided_by: 4 }}` is `2`, `{{ 10.0 }}` is
-- `10.0`). Lua 5.4 has both subtypes but LuaJIT does not, so a float whose value is whole
-- (`5.0`) is carried as a small boxed table `{5.0}` with the metatable `FLOAT`; every other
-- number is a plain Lua number. Non-whole numbers are floats by nature; on Lua 5.4 a native
-- float subtype is a float too.
--
-- Arithmetic follows Shopify Liquid, which converts floats to decimals: `10.1 | minus: 2.2`
-- is `7.9`, not `7.8999999999999995`. Decimal results are computed exactly on scaled
-- integers when they fit in 53 bits.
-- @module customerio.liquid.number

local errors = require("customerio.liquid.errors")

local type, tonumber, tostring, setmetatable, getmetatable = type, tonumber, tostring, setmetatable, getmetatable
local floor, ceil, abs, max, huge, fmod = math.floor, math.ceil, math.abs, math.max, math.huge, math.fmod
local format, find, match, sub, rep, byte, gsub = string.format, string.find, string.match, string.sub,
  string.rep, string.byte, string.gsub
local math_type = math.type          -- nil on LuaJIT / 5.1
local tointeger = math.tointeger     -- nil on LuaJIT / 5.1

local M = {}

local TWO53 = 9007199254740992

--- Metatable of boxed whole floats (`{5.0}`).
local FLOAT = { __name = "liquid.float" }
M.FLOAT = FLOAT

--- True for Lua numbers and boxed floats.
-- @param v any value
-- @treturn boolean
function M.is_number(v)
  local t = type(v)
  return t == "number" or (t == "table" and getmetatable(v) == FLOAT)
end

--- The raw Lua number of a Liquid number.
-- @param v a Liquid number
-- @treturn number
function M.value(v)
  if type(v) == "number" then return v end
  return v[1]
end

local function raw_is_float(x)
  if math_type then return math_type(x) == "float" end
  return x ~= floor(x) or x ~= x or x == huge or x == -huge
end

--- True when a Liquid number is a float.
-- @param v a Liquid number
-- @treturn boolean
function M.is_float(v)
  if type(v) == "number" then return raw_is_float(v) end
  return true
end

--- A Liquid float holding `x` (boxed when whole).
-- @tparam number x
-- @return a Liquid number
function M.float(x)
  if x == floor(x) and x ~= huge and x ~= -huge then
    return setmetatable({ x + 0.0 }, FLOAT)
  end
  return x + 0.0
end

--- A Liquid integer holding `x` (an integer subtype on Lua 5.4 when it fits).
-- @tparam number x a whole number
-- @return number
function M.int(x)
  if tointeger then return tointeger(x) or x end
  return x
end

local function make(x, isfloat)
  if isfloat then return M.float(x) end
  if tointeger then return tointeger(x) or x end
  return x
end
M.make = make

-- Shortest round-trip decimal digits of a positive finite x: digits, decpt where
-- x = 0.digits * 10^decpt.
local function shortest_digits(x)
  local g = format("%.15g", x)
  if tonumber(g) == x and not find(g, "e", 1, true) then
    local int, frac = match(g, "^(%d*)%.?(%d*)$")
    local digits = int .. frac
    local lead = #match(digits, "^0*")
    digits = gsub(sub(digits, lead + 1), "0+$", "")
    if digits ~= "" then return digits, #int - lead end
  end
  -- 15, 16 then 17 significant digits: the first that round-trips, with its trailing zeros
  -- removed, is the shortest representation
  local s = format("%.14e", x)
  if tonumber(s) ~= x then
    s = format("%.15e", x)
    if tonumber(s) ~= x then s = format("%.16e", x) end
  end
  local d1, drest, exp = match(s, "^(%d)%.?(%d*)e([-+]%d+)$")
  local digits = (d1 .. drest):gsub("0+$", "")
  if digits == "" then digits = "0" end
  return digits, tonumber(exp) + 1
end

-- Powers of ten up to 10^22 (exact doubles).
local POW10 = {}
for i = 0, 22 do POW10[i] = 10 ^ i end

-- The fewest decimals d (and the integer x * 10^d) for which x is the double nearest
-- to a decimal of at most 15 significant digits, found by arithmetic alone; nil when there
-- is none (the caller then formats). When integer / 10^d == x (exact operands, correctly
-- rounded division) that decimal reads back as x; trying d upwards gives the shortest, the
-- one `%.15g` prints.
-- A pipeline (`times: q | round: 2`, then the output) asks about the same value several
-- times in a row: the last answer is remembered.
local memo_x, memo_d, memo_m
local function short_decimal(x)
  if x == memo_x then return memo_d, memo_m end
  local ax = x < 0 and -x or x
  if ax < 1e-4 or ax >= 1e15 then return nil end
  for d = 1, 15 do
    local p = POW10[d]
    local m = floor(ax * p + 0.5)
    if m >= 1e15 then return nil end
    if m / p == ax then
      memo_x, memo_d, memo_m = x, d, m
      return d, m
    end
  end
  return nil
end

-- "%.1f" .. "%.15f": a float printed with exactly its shortest decimals.
local FIXED = {}
for d = 1, 15 do FIXED[d] = "%." .. d .. "f" end

--- Ruby's `Float#to_s`: shortest round-trip digits, `5.0`, `1.0e+16`, `1.0e-05`.
-- @tparam number x
-- @treturn string
function M.float_repr(x)
  -- fast path: typical values print in fixed notation with at most 15 significant digits
  local d = short_decimal(x)
  if d then return format(FIXED[d], x) end
  local ax = x < 0 and -x or x
  if ax >= 1e-4 and ax < 1e15 then
    local s = format("%.15g", x)
    if tonumber(s) == x and not find(s, "e", 1, true) then
      if find(s, ".", 1, true) then return s end
      return s .. ".0"
    end
  end
  if x ~= x then return "NaN" end
  if x == huge then return "Infinity" end
  if x == -huge then return "-Infinity" end
  if x == 0 then
    if 1 / x < 0 then return "-0.0" end
    return "0.0"
  end
  local sign = ""
  if x < 0 then sign, x = "-", -x end
  local digits, decpt = shortest_digits(x)
  local n = #digits
  local out
  if decpt > -4 and decpt <= 16 then
    if decpt <= 0 then
      out = "0." .. rep("0", -decpt) .. digits
    elseif decpt >= n then
      out = digits .. rep("0", decpt - n) .. ".0"
    else
      out = sub(digits, 1, decpt) .. "." .. sub(digits, decpt + 1)
    end
  else
    local e = decpt - 1
    local frac = sub(digits, 2)
    if frac == "" then frac = "0" end
    out = sub(digits, 1, 1) .. "." .. frac .. "e" .. (e < 0 and "-" or "+") .. format("%02d", abs(e))
  end
  return sign .. out
end

local function int_repr(x)
  if math_type and math_type(x) == "integer" then return tostring(x) end
  if x > -TWO53 and x < TWO53 then return format("%d", x) end
  return format("%.0f", x)
end

-- The text of small integers, looked up rather than formatted.
local SMALL = {}
for i = -1, 1023 do SMALL[i] = format("%d", i) end

--- The output text of a Liquid number (`5`, `5.0`, `2.857142857142857`).
-- @param v a Liquid number
-- @treturn string

function M.to_s(v)
  if type(v) == "table" then return M.float_repr(v[1]) end
  if math_type then
    if math_type(v) == "integer" then return SMALL[v] or tostring(v) end
    return M.float_repr(v)
  end
  if raw_is_float(v) then return M.float_repr(v) end
  return SMALL[v] or int_repr(v)
end

--- Number of decimals in a float's shortest decimal form, or nil when it needs an exponent.
local function decimals(x)
  if x == floor(x) then
    if x > -TWO53 and x < TWO53 then return 0 end
    return nil
  end
  if x ~= x then return nil end
  local d = short_decimal(x)
  if d then return d end
  local s = format("%.15g", x)
  if tonumber(s) == x then
    if find(s, "e", 1, true) then return nil end
    local dot = find(s, ".", 1, true)
    return dot and #s - dot or 0
  end
  s = M.float_repr(x)
  if find(s, "e", 1, true) then return nil end
  local frac = match(s, "%.(%d+)$")
  return #frac
end

--- Ruby `Utils.to_number`: numbers as they are, numeric strings parsed, anything else 0.
-- @param v any Liquid value
-- @treturn number the raw number
-- @treturn boolean whether it is a float
function M.to_number(v)
  local t = type(v)
  if t == "number" then return v, raw_is_float(v) end
  if t == "table" and getmetatable(v) == FLOAT then return v[1], true end
  if t == "string" then
    local s = match(v, "^%s*(.-)%s*$")
    if find(s, "^%-?%d+%.%d+$") then return tonumber(s), true end
    local i = match(s, "^[+-]?%d+")
    if i then
      if byte(i, 1) == 43 then i = sub(i, 2) end
      return make(tonumber(i), false), false
    end
    return 0, false
  end
  return 0, false
end

local function zero_division()
  errors.argument("divided by 0")
end

-- Exact decimal arithmetic on scaled integers; nil when the operands do not fit.
local function decimal_op(op, x, xf, y, yf)
  -- an integer operand has no decimals
  local dx, dy = 0, 0
  if xf or x <= -TWO53 or x >= TWO53 then dx = decimals(x) end
  if yf or y <= -TWO53 or y >= TWO53 then dy = decimals(y) end
  if not dx or not dy then return nil end
  if op == "*" then
    if dx + dy > 22 then return nil end
    local px, py = POW10[dx], POW10[dy]
    local ix, iy = floor(x * px + 0.5), floor(y * py + 0.5)
    if x < 0 then ix = -floor(-x * px + 0.5) end
    if y < 0 then iy = -floor(-y * py + 0.5) end
    local p = ix * iy
    if abs(p) >= TWO53 then return nil end
    return p / POW10[dx + dy]
  end
  local s = max(dx, dy)
  local scale = POW10[s] or 10 ^ s
  if abs(x) * scale >= TWO53 or abs(y) * scale >= TWO53 then return nil end
  local ix = x < 0 and -floor(-x * scale + 0.5) or floor(x * scale + 0.5)
  local iy = y < 0 and -floor(-y * scale + 0.5) or floor(y * scale + 0.5)
  local r
  if op == "+" then r = ix + iy
  elseif op == "-" then r = ix - iy
  else r = ix % iy end
  return r / scale
end

--- Liquid arithmetic (`plus`, `minus`, `times`, `divided_by`, `modulo`) on any two values.
-- Integers stay integers (division floors); a float operand makes a float result.
-- @tparam string op one of `+ - * / %`
-- @param a left value
-- @param b right value
-- @return a Liquid number
function M.arith(op, a, b)
  local x, xf = M.to_number(a)
  local y, yf = M.to_number(b)
  if not (xf or yf) then
    if op == "+" then return make(x + y, false) end
    if op == "-" then return make(x - y, false) end
    if op == "*" then return make(x * y, false) end
    if y == 0 then zero_division() end
    if op == "/" then return make(floor(x / y), false) end
    return make(x % y, false)
  end
  if op == "/" then
    if y == 0 then zero_division() end
    return M.float(x / y)
  end
  if op == "%" and y == 0 then zero_division() end
  local r = decimal_op(op, x, xf, y, yf)
  if r == nil then
    if op == "+" then r = x + y
    elseif op == "-" then r = x - y
    elseif op == "*" then r = x * y
    else r = x % y end
  end
  return M.float(r)
end

--- Ruby `Utils.to_integer`: integers, whole-number strings; anything else raises.
-- @param v any Liquid value
-- @treturn number an integer
function M.to_integer(v)
  local t = type(v)
  if t == "number" and not raw_is_float(v) then return v end
  if t == "string" then
    local s = match(v, "^%s*([+-]?%d+)%s*$")
    if s then return make(tonumber(s), false) end
  end
  errors.argument("invalid integer")
end

--- Round a raw number to `n` decimals, half away from zero, on its shortest decimal form
-- (Ruby rounds `BigDecimal(float.to_s)`, so `2.675` rounds to `2.68`).
-- @tparam number x
-- @tparam number n decimals (may be negative)
-- @treturn number
function M.round_decimal(x, n)
  if x ~= x or x == huge or x == -huge or x == 0 then return x end
  local neg = x < 0
  if n >= 0 and n <= 15 and x ~= floor(x) then
    -- fast path on the scaled integer of the shortest form (same digits, same rounding)
    local d, m = short_decimal(x)
    if d then
      if d <= n then return x end
      local q = POW10[d - n]
      local a = m + q / 2
      local r = (a - fmod(a, q)) / q
      if r == 0 then return 0 end
      r = r / POW10[n]
      if neg then r = -r end
      return r
    end
  end
  local digits, decpt = shortest_digits(abs(x))
  local keep = decpt + n            -- how many leading digits survive
  if keep < 0 then return 0 end
  if keep >= #digits then return x end
  local head = sub(digits, 1, keep)
  local value = tonumber(head ~= "" and head or "0")
  if byte(digits, keep + 1) >= 53 then value = value + 1 end   -- '5' or more
  local e = decpt - keep
  local r = tonumber(format("%.0f", value) .. "e" .. e)
  if neg then r = -r end
  return r
end

--- Ceil / floor of a raw number as an integer.
-- @tparam number x
-- @treturn number
function M.ceil(x) return make(ceil(x), false) end
--- @tparam number x
-- @treturn number
function M.floor(x) return make(floor(x), false) end

--- Parse a number literal from a template (`-12`, `3.5`, `5.0`).
-- @tparam string s
-- @return a Liquid number
function M.parse_literal(s)
  if find(s, ".", 1, true) then return M.float(tonumber(s)) end
  return make(tonumber(s), false)
end

return M
