--- Timestamps: Customer.io's Track and App APIs take whole seconds since the Unix epoch.
--
--     customerio.timestamp(1700000000)                    --> 1700000000
--     customerio.timestamp("2023-11-14T22:13:20Z")        --> 1700000000
--     customerio.timestamp("2023-11-14T23:13:20+01:00")   --> 1700000000
--     customerio.timestamp(os.date("*t"))                 --> now (a table is local time, as for os.time)
--     customerio.timestamp(1700000000000)                 --> error: looks like milliseconds
--
-- A millisecond value is refused: Customer.io would read it as a date some 50,000 years ahead.
-- The Pipelines API takes ISO-8601 strings instead (`iso8601`).
-- @module customerio.track.timestamp
local check = require("customerio.http.check")
local calendar = require("customerio.calendar")

local M = {}

--- Seconds at and above which a number cannot be seconds since the epoch (the year 5138).
M.max_seconds = 1e11

local floor = math.floor

local days_from_civil, days_in_month = calendar.days_from_civil, calendar.days_in_month

-- An integer (the integer subtype on Lua 5.3+, so that JSON shows no fraction).
local function integer(v)
  v = floor(v)
  if math.tointeger then return math.tointeger(v) or v end
  return v
end

local function from_number(v, name)
  if v ~= v or v == math.huge or v == -math.huge then
    check.fail(name .. " must be a finite number of seconds")
  end
  if v >= 1e12 or v <= -1e12 then
    check.fail(string.format("%s %.0f looks like milliseconds; Customer.io expects seconds since the Unix epoch"
      .. " (divide by 1000)", name, v))
  end
  if v >= M.max_seconds or v <= -M.max_seconds then
    check.fail(string.format("%s %.0f is not a plausible number of seconds since the Unix epoch", name, v))
  end
  return integer(v)
end

-- "2023-11-14", "2023-11-14T22:13:20Z", "2023-11-14 22:13:20.123+01:00", "...-0500"; no zone = UTC.
local function from_iso(s, name)
  local bad = name .. " is not an ISO-8601 date-time (e.g. \"2023-11-14T22:13:20Z\"): " .. string.format("%q", s)
  local y, mo, d, rest = s:match("^%s*(%d%d%d%d)%-(%d%d)%-(%d%d)(.-)%s*$")
  if not y then check.fail(bad) end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > days_in_month(y, mo) then check.fail(bad) end
  local h, mi, sec, offset = 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then check.fail(bad) end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = tail:match("^:(%d%d)(.*)$")
    if ss then
      sec, tail = tonumber(ss), tail2
      tail = tail:gsub("^[.,]%d+", "", 1)
    end
    if h > 23 or mi > 59 or sec > 60 then check.fail(bad) end
    if tail == "Z" or tail == "z" then
      offset = 0
    elseif tail ~= "" then
      local sign, oh, om = tail:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then
        sign, oh = tail:match("^([+-])(%d%d)$")
        om = "00"
      end
      if not sign then check.fail(bad) end
      offset = tonumber(oh) * 3600 + tonumber(om) * 60
      if sign == "-" then offset = -offset end
    end
  end
  return from_number(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset, name)
end

local function from_table(t, name)
  if type(t.year) ~= "number" or type(t.month) ~= "number" or type(t.day) ~= "number" then
    check.fail(name .. " must be a number of seconds, an ISO-8601 string or a date table with year, month and day")
  end
  local ok, v = pcall(os.time, {
    year = t.year, month = t.month, day = t.day,
    hour = t.hour or 0, min = t.min or 0, sec = t.sec or 0, isdst = t.isdst,
  })
  if not ok or v == nil then check.fail(name .. " is a date table os.time cannot convert") end
  return from_number(v, name)
end

--- Convert a timestamp to whole seconds since the Unix epoch, or raise.
--
-- Accepts a number of seconds (a fraction is dropped), a string of digits, an ISO-8601
-- date or date-time string (without a zone it is UTC), or a date table such as `os.date("*t")`
-- (local time, as `os.time` reads it; use `os.time(os.date("!*t"))`-style values or strings for UTC).
-- Milliseconds (13 digits) are refused.
-- @param v number, string or table
-- @tparam[opt="timestamp"] string name used in error messages
-- @treturn integer seconds since the epoch
function M.timestamp(v, name)
  name = name or "timestamp"
  local t = type(v)
  if t == "number" then return from_number(v, name) end
  if t == "string" then
    local digits = v:match("^%s*(%-?%d+)%s*$")
    if digits then return from_number(tonumber(digits), name) end
    return from_iso(v, name)
  end
  if t == "table" then return from_table(v, name) end
  check.fail(name .. " must be a number of seconds, an ISO-8601 string or a date table, got " .. t)
end

--- Check an optional timestamp field of a table, converting it in place when it is present.
-- @tparam table t
-- @tparam string key
-- @tparam string prefix how the table is named in errors ("data")
-- @treturn table t
function M.field(t, key, prefix)
  local v = t[key]
  if v ~= nil and v ~= "" and not check.is_empty(v) then
    t[key] = M.timestamp(v, prefix and (prefix .. "." .. key) or key)
  end
  return t
end

--- Format milliseconds since the epoch as ISO-8601 UTC with milliseconds ("2023-11-14T22:13:20.000Z").
-- @tparam number ms
-- @treturn string
function M.iso8601(ms)
  local s = floor(ms / 1000)
  local rem = floor(ms - s * 1000)
  return os.date("!%Y-%m-%dT%H:%M:%S", integer(s)) .. string.format(".%03dZ", rem)
end

return M
