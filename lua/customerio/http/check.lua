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

--- Raise unless v is a string or a number (an identifier), and return it as a string.
-- @param v value
-- @tparam string name parameter name
-- @treturn string
function check.id(v, name)
  check.required(v, name)
  local t = type(v)
  if t == "number" then
    if math.type and math.type(v) == "float" and v == math.floor(v) and v > -2^53 and v < 2^53 then
      return string.format("%d", v)
    end
    return tostring(v)
  end
  if t ~= "string" then fail(name .. " must be a string or a number, got " .. t) end
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
