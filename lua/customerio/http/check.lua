--- Argument validation shared by the clients.
--
-- Bad arguments raise a plain string error worded like customerio-node's
-- (`"customer_id is required"`), without a position prefix so that callers
-- can compare messages.
-- @module customerio.http.check
local check = {}

local function fail(msg)
  error(msg, 0)
end
check.fail = fail

--- Whether a value counts as missing (Node's `isEmpty`): nil, a blank string,
-- a non-finite number, or JSON null.
-- @param v value
-- @treturn boolean
function check.is_empty(v)
  if v == nil then return true end
  local t = type(v)
  if t == "string" then return v:find("^%s*$") ~= nil end
  if t == "number" then return v ~= v or v == math.huge or v == -math.huge end
  if t == "userdata" then return v == require("customerio.core").null end
  return false
end

--- Raise `"<name> is required"` when a value is missing.
-- @param v value
-- @tparam string name parameter name in snake_case
-- @return v
function check.required(v, name)
  if check.is_empty(v) then fail(name .. " is required") end
  return v
end

-- 2^53: from here on a double no longer holds every integer, so 2^53 + 1 arrives as 2^53.
local EXACT = 2 ^ 53

--- The decimal text of a number used as an identifier, exactly as written.
-- Lua 5.3+ integers are exact at any size. Integral floats (all numbers on LuaJIT and 5.1)
-- are written as their exact digits while they are below 2^53 in magnitude; from 2^53 on a
-- double cannot tell neighbouring integers apart, so they are refused, and the message says
-- to pass the id as a string. Other numbers are written as `tostring` writes them.
-- @tparam number v a finite number
-- @tparam string name parameter name for errors
-- @treturn string
function check.number_id(v, name)
  if math.type and math.type(v) == "integer" then return tostring(v) end
  if v ~= v then fail(name .. " is NaN, not an identifier") end
  if v ~= math.floor(v) then return tostring(v) end
  if v >= EXACT or v <= -EXACT then
    fail(string.format("%s is %.16g, beyond 2^53, where a double cannot hold every integer; pass the id as a string",
      name, v))
  end
  if v == 0 then return "0" end -- not "-0"
  return string.format("%.0f", v)
end

--- Raise unless v is a string or a number (an identifier), and return it as a string
-- (numbers as `check.number_id` writes them).
-- @param v value
-- @tparam string name parameter name
-- @treturn string
function check.id(v, name)
  check.required(v, name)
  local t = type(v)
  if t == "number" then return check.number_id(v, name) end
  if t ~= "string" then fail(name .. " must be a string or a number, got " .. t) end
  return v
end

--- The longest wait any time argument stands for: 2^31 - 1 ms, about 24.8 days (the longest
-- timeout libcurl and poll(2) take as an int; the C core caps libcurl timeouts at the same,
-- `cio_ms` in http_common.c).
check.MAX_MS = 2147483647

--- Check a time argument in milliseconds and clamp it to `check.MAX_MS`.
-- NaN, negative numbers (and 0 with `positive`) and non-numbers raise
-- `"<name> must be a positive number of milliseconds"` (or `"... a number of milliseconds, 0
-- or more"`). `math.huge` means "as long as needed" and, like any larger value, becomes
-- `opts.max` (default `check.MAX_MS`).
-- @param v value; nil gives `opts.default`
-- @tparam string name parameter name for errors
-- @tparam[opt] table opts `default`, `positive` (refuse 0), `max`, `unit` ("milliseconds")
-- @treturn number|nil
function check.ms(v, name, opts)
  opts = opts or {}
  if v == nil then return opts.default end
  if type(v) ~= "number" or v ~= v or v < 0 or (opts.positive and v == 0) then
    fail(name .. (opts.positive and " must be a positive number of " or " must be a number of ")
      .. (opts.unit or "milliseconds") .. (opts.positive and "" or ", 0 or more"))
  end
  local max = opts.max or check.MAX_MS
  if v > max then return max end
  return v
end

--- Raise unless v is nil or a table.
-- @param v value
-- @tparam string name parameter name
-- @treturn table v or a new empty table
function check.optional_table(v, name)
  if v == nil then return {} end
  if type(v) ~= "table" then fail(name .. " must be a table, got " .. type(v)) end
  return v
end

--- Raise unless v is a table.
function check.table(v, name)
  if v == nil then fail(name .. " is required") end
  if type(v) ~= "table" then fail(name .. " must be a table, got " .. type(v)) end
  return v
end

--- Raise unless v is one of the listed strings.
-- @param v value
-- @tparam table allowed list of strings
-- @tparam string message the full error message
function check.one_of(v, allowed, message)
  for i = 1, #allowed do
    if v == allowed[i] then return v end
  end
  fail(message)
end

--- Raise unless the string's byte length is at most `max`.
function check.max_bytes(v, max, what)
  if type(v) == "string" and #v > max then
    fail(string.format("%s is %d bytes; the limit is %d bytes", what, #v, max))
  end
  return v
end

return check
