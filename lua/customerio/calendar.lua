--- Proleptic Gregorian calendar arithmetic, without time zones: what the Retry-After
-- parser (`customerio.http.retry`), `customerio.timestamp` and Liquid's `date` filter share.
-- @module customerio.calendar
local floor = math.floor

local M = {}

--- Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
-- @tparam number y year
-- @tparam number m month 1-12
-- @tparam number d day 1-31
-- @treturn number
function M.days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Civil date of a day count since the epoch.
-- @tparam number z days since 1970-01-01
-- @treturn number year
-- @treturn number month
-- @treturn number day
function M.civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

--- Whether `y` is a leap year.
-- @tparam number y
-- @treturn boolean
function M.is_leap(y)
  return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
end

local MONTH_DAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- Days in month `m` (1-12) of year `y`.
-- @tparam number y
-- @tparam number m
-- @treturn number
function M.days_in_month(y, m)
  if m == 2 and M.is_leap(y) then return 29 end
  return MONTH_DAYS[m]
end

return M
