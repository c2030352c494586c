--- Dates for the `date` filter and Customer.io's date filters: parsing, `strftime`, time
-- zones. Pure Lua and independent of the host's time zone: times are Unix seconds, shown in
-- UTC unless a zone is given.
--
-- Zones: `UTC`/`GMT`/`Z`, fixed offsets (`+05:30`, `-0800`, `+05`), Customer.io's detailed
-- form (`(GMT-11:00) Hawaii`), numbers (minutes behind UTC, LiquidJS style: `360` is
-- UTC-06:00), and IANA names (`America/New_York`) read from the system zoneinfo database
-- (`/usr/share/zoneinfo`, or `TZDIR`) when it is present.
-- @module customerio.liquid.date

local calendar = require("customerio.calendar")
local number = require("customerio.liquid.number")
local text = require("customerio.liquid.text")

local type, tonumber, tostring, pcall = type, tonumber, tostring, pcall
local floor, abs = math.floor, math.abs
local format, find, match, sub, lower, upper, byte, rep, gsub =
  string.format, string.find, string.match, string.sub, string.lower, string.upper, string.byte,
  string.rep, string.gsub
local concat = table.concat

local M = {}

local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
  "October", "November", "December" }
local DAYS = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }
local MONTH_INDEX = {}
for i, m in ipairs(MONTHS) do
  MONTH_INDEX[lower(m)] = i
  MONTH_INDEX[lower(sub(m, 1, 3))] = i
end
MONTH_INDEX["sept"] = 9
M.MONTHS, M.DAYS = MONTHS, DAYS

-- ---------------------------------------------------------------------------------------
-- Civil calendar arithmetic (proleptic Gregorian, days since 1970-01-01)

--- Days since 1970-01-01 of a civil date (`customerio.calendar`).
-- @function days_from_civil
M.days_from_civil = calendar.days_from_civil

--- Civil date of a day count since the epoch (`customerio.calendar`).
-- @function civil_from_days
M.civil_from_days = calendar.civil_from_days

--- Days in month `m` of year `y` (`customerio.calendar`).
-- @function days_in_month
M.days_in_month = calendar.days_in_month

--- Unix seconds of a UTC civil time.
-- @treturn number
function M.timestamp(y, mo, d, h, mi, s)
  return M.days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0)
end

-- ---------------------------------------------------------------------------------------
-- Time zones

local FIXED_UTC = { offset = function() return 0, "UTC" end, name = "UTC" }

local function fixed(seconds, name)
  local sign = seconds < 0 and "-" or "+"
  local a = abs(seconds)
  local label = name or format("%s%02d:%02d", sign, floor(a / 3600), floor(a % 3600 / 60))
  return { offset = function() return seconds, label end, name = label }
end

-- POSIX TZ strings (the footer of TZif files), e.g. "EST5EDT,M3.2.0,M11.1.0".
local function parse_posix(tz)
  local p = 1
  local function name()
    local n
    if byte(tz, p) == 60 then -- "<+05>"
      local close = find(tz, ">", p, true)
      if not close then return nil end
      n = sub(tz, p + 1, close - 1)
      p = close + 1
    else
      local s, e = find(tz, "^%a+", p)
      if not s then return nil end
      n = sub(tz, s, e)
      p = e + 1
    end
    return n
  end
  local function offset()
    local sign, h, m, s, e
    local ss, ee
    ss, ee, sign, h = find(tz, "^([+-]?)(%d+)", p)
    if not ss then return nil end
    p = ee + 1
    local secs = tonumber(h) * 3600
    ss, ee, m = find(tz, "^:(%d+)", p)
    if ss then secs = secs + tonumber(m) * 60; p = ee + 1 end
    ss, ee, s = find(tz, "^:(%d+)", p)
    if ss then secs = secs + tonumber(s); p = ee + 1 end
    e = sign == "-" and -secs or secs
    return e
  end
  local std = name()
  if not std then return nil end
  local std_off = offset()
  if not std_off then return nil end
  std_off = -std_off
  if p > #tz then
    return function() return std_off, std end
  end
  local dst = name()
  if not dst then return nil end
  local dst_off = std_off + 3600
  if byte(tz, p) ~= 44 then
    local o = offset()
    if o then dst_off = -o end
  end
  local function rule()
    if byte(tz, p) ~= 44 then return nil end
    p = p + 1
    local ss, ee, mo, wk, wd = find(tz, "^M(%d+)%.(%d+)%.(%d+)", p)
    if not ss then return nil end
    p = ee + 1
    local time = 7200
    if byte(tz, p) == 47 then
      p = p + 1
      local neg = byte(tz, p) == 45
      if neg then p = p + 1 end
      local t = offset()
      if t then time = neg and -t or t end
    end
    return { month = tonumber(mo), week = tonumber(wk), wday = tonumber(wd), time = time }
  end
  local r1, r2 = rule(), rule()
  if not r1 or not r2 then return function() return std_off, std end end
  local function transition(year, r, off)
    local first = M.days_from_civil(year, r.month, 1)
    local wday = (first + 4) % 7
    local day = 1 + (r.wday - wday) % 7 + (r.week - 1) * 7
    if r.week == 5 then
      local dim = M.days_in_month(year, r.month)
      while day > dim do day = day - 7 end
    end
    return (first + day - 1) * 86400 + r.time - off
  end
  return function(t)
    local year = M.civil_from_days(floor((t + std_off) / 86400))
    local start = transition(year, r1, std_off)
    local stop = transition(year, r2, dst_off)
    local in_dst
    if start < stop then in_dst = t >= start and t < stop else in_dst = not (t >= stop and t < start) end
    if in_dst then return dst_off, dst end
    return std_off, std
  end
end

local function be_int(s, p, n)
  local v = 0
  for i = p, p + n - 1 do v = v * 256 + byte(s, i) end
  if byte(s, p) >= 128 then v = v - 256 ^ n end
  return v
end

-- Read a TZif file into an offset function.
local function load_tzif(data)
  if sub(data, 1, 4) ~= "TZif" then return nil end
  local function header(p)
    local isutc, isstd, leap, timecnt, typecnt, charcnt =
      be_int(data, p + 20, 4), be_int(data, p + 24, 4), be_int(data, p + 28, 4),
      be_int(data, p + 32, 4), be_int(data, p + 36, 4), be_int(data, p + 40, 4)
    return isutc, isstd, leap, timecnt, typecnt, charcnt
  end
  local version = byte(data, 5)
  local p = 1
  local isutc, isstd, leap, timecnt, typecnt, charcnt = header(p)
  local tsize = 4
  if version and version >= 50 then -- '2' or later: skip the v1 block
    p = p + 44 + timecnt * 4 + timecnt + typecnt * 6 + charcnt + leap * 8 + isstd + isutc
    isutc, isstd, leap, timecnt, typecnt, charcnt = header(p)
    tsize = 8
  end
  local q = p + 44
  local times = {}
  for i = 1, timecnt do times[i] = be_int(data, q + (i - 1) * tsize, tsize) end
  q = q + timecnt * tsize
  local idx = {}
  for i = 1, timecnt do idx[i] = byte(data, q + i - 1) end
  q = q + timecnt
  local types = {}
  local abbr_start = q + typecnt * 6
  for i = 1, typecnt do
    local b = q + (i - 1) * 6
    local off = be_int(data, b, 4)
    local ai = byte(data, b + 5)
    local z = find(data, "\0", abbr_start + ai, true)
    local abbr = sub(data, abbr_start + ai, (z or (abbr_start + charcnt)) - 1)
    types[i] = { off, abbr }
  end
  q = abbr_start + charcnt + leap * (tsize + 4) + isstd + isutc
  local footer
  if tsize == 8 then
    local nl1 = find(data, "\n", q, true)
    local nl2 = nl1 and find(data, "\n", nl1 + 1, true)
    if nl1 and nl2 and nl2 > nl1 + 1 then footer = parse_posix(sub(data, nl1 + 1, nl2 - 1)) end
  end
  local first_std = types[1]
  return function(t)
    if timecnt == 0 or t < times[1] then
      if timecnt == 0 and footer then return footer(t) end
      return first_std[1], first_std[2]
    end
    if t >= times[timecnt] and footer then return footer(t) end
    local lo, hi = 1, timecnt
    while lo < hi do
      local mid = floor((lo + hi + 1) / 2)
      if times[mid] <= t then lo = mid else hi = mid - 1 end
    end
    local ty = types[idx[lo] + 1]
    return ty[1], ty[2]
  end
end

local zone_cache = {}

local function read_zoneinfo(name)
  if not find(name, "^[%w_%-%+]+[%w_%-%+/]*$") or find(name, "%.%.") then return nil end
  local dirs = {}
  local env = os.getenv and os.getenv("TZDIR")
  if env and env ~= "" then dirs[#dirs + 1] = env end
  dirs[#dirs + 1] = "/usr/share/zoneinfo"
  dirs[#dirs + 1] = "/usr/lib/zoneinfo"
  dirs[#dirs + 1] = "/usr/share/lib/zoneinfo"
  for _, dir in ipairs(dirs) do
    local f = io.open(dir .. "/" .. name, "rb")
    if f then
      local data = f:read("*a")
      f:close()
      local ok, fn = pcall(load_tzif, data)
      if ok and fn then return fn end
    end
  end
  return nil
end

--- Resolve a time zone argument to `{ offset = function(t) -> seconds, abbreviation }`.
-- @param tz a zone name, offset string or number (minutes behind UTC)
-- @treturn table|nil zone
-- @treturn string error message
function M.zone(tz)
  if tz == nil then return FIXED_UTC end
  if number.is_number(tz) then
    return fixed(-floor(number.value(tz) * 60 + 0.5))
  end
  if type(tz) ~= "string" then return nil, "unknown time zone '" .. tostring(tz) .. "'" end
  local s = text.strip(tz)
  local up = upper(s)
  if s == "" or up == "UTC" or up == "GMT" or up == "Z" or up == "ETC/UTC" or up == "UCT" then return FIXED_UTC end
  local cached = zone_cache[s]
  if cached then return cached end
  local zone
  local sign, hh, mm = match(s, "^%(?G?M?T?%s*([+-])(%d%d?):?(%d%d)%)?")
  if sign and (find(s, "^[+-]") or find(s, "^%(GMT") or find(s, "^GMT")) then
    local secs = tonumber(hh) * 3600 + tonumber(mm) * 60
    zone = fixed(sign == "-" and -secs or secs)
  else
    sign, hh = match(s, "^([+-])(%d%d?)$")
    if sign then
      local secs = tonumber(hh) * 3600
      zone = fixed(sign == "-" and -secs or secs)
    elseif find(s, "^[+-]?%d+$") then
      zone = fixed(-tonumber(s) * 60)
    else
      local fn = read_zoneinfo(s)
      if fn then zone = { offset = fn, name = s } end
    end
  end
  if not zone then return nil, "unknown time zone '" .. s .. "'" end
  zone_cache[s] = zone
  return zone
end

-- ---------------------------------------------------------------------------------------
-- Parsing

local function offset_from(str)
  if not str or str == "" then return 0 end
  local u = upper(str)
  if u == "Z" or u == "UTC" or u == "GMT" or u == "UT" then return 0 end
  local sign, hh, mm = match(str, "^([+-])(%d%d):?(%d%d)$")
  if not sign then
    sign, hh = match(str, "^([+-])(%d%d?)$")
    mm = "0"
  end
  if not sign then return nil end
  local secs = tonumber(hh) * 3600 + tonumber(mm) * 60
  return sign == "-" and -secs or secs
end

local function valid(y, mo, d, h, mi, s)
  return mo >= 1 and mo <= 12 and d >= 1 and d <= M.days_in_month(y, mo) and h >= 0 and h <= 24
    and mi >= 0 and mi < 60 and s >= 0 and s < 61
end

local function clock(rest)
  -- "10:30", "10:30:15", "10:30:15.123", with optional am/pm and zone
  rest = text.strip(rest or "")
  if rest == "" then return 0, 0, 0, 0 end
  local h, mi, s, tail = match(rest, "^(%d%d?):(%d%d):?(%d*%.?%d*)%s*(.-)$")
  if not h then return nil end
  h, mi = tonumber(h), tonumber(mi)
  s = tonumber(s) or 0
  local ampm, zone = match(tail, "^([AaPp][Mm])%s*(.-)$")
  if ampm then
    ampm = lower(ampm)
    if h == 12 then h = 0 end
    if ampm == "pm" then h = h + 12 end
    tail = zone
  end
  local off = offset_from(text.strip(tail))
  if not off then return nil end
  return h, mi, floor(s), off
end

--- Parse a date string (ISO 8601, RFC 2822, "March 14, 2016", "14 March 2016 10:00").
-- Times without a zone are UTC.
-- @tparam string s
-- @treturn number|nil Unix seconds
function M.parse_string(s)
  s = text.strip(s)
  -- ISO 8601: 2016-03-14, 2016-03-14T10:00:00Z, 2016-03-14 10:00:00 +0100
  local y, mo, d, rest = match(s, "^(%d%d%d%d)-(%d%d?)-(%d%d?)(.*)$")
  if not y then y, mo, d, rest = match(s, "^(%d%d%d%d)/(%d%d?)/(%d%d?)(.*)$") end
  if y then
    rest = gsub(rest, "^[Tt]", " ")
    rest = gsub(rest, "^(%d%d:%d%d:%d%d)%.%d+", "%1")
    local h, mi, sec, off = clock(rest)
    if not h then
      local hh, mm, ss, tail = match(rest, "^%s*(%d%d):?(%d%d):?(%d%d)(.*)$")
      if hh then h, mi, sec, off = tonumber(hh), tonumber(mm), tonumber(ss), offset_from(text.strip(tail)) end
    end
    y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
    if h and off and valid(y, mo, d, h, mi, sec) then
      return M.timestamp(y, mo, d, h, mi, sec) - off
    end
    return nil
  end
  -- optional leading weekday: "Mon, 14 Mar 2016 ..." / "Monday March 14 2016"
  local body = gsub(s, "^%a+,%s*", "", 1)
  local word = match(body, "^(%a+)")
  if word and not MONTH_INDEX[lower(word)] then
    body = gsub(body, "^%a+%s+", "", 1)
  end
  -- "March 14, 2016 [time]" / "Mar 14 2016"
  local mname, dd, yy
  mname, dd, yy, rest = match(body, "^(%a+)%.?%s+(%d%d?)%a*,?%s+(%d%d%d%d)(.*)$")
  if not mname then
    -- "14 March 2016 [time]"
    dd, mname, yy, rest = match(body, "^(%d%d?)%a*%s+(%a+)%.?,?%s+(%d%d%d%d)(.*)$")
  end
  if mname then
    local m = MONTH_INDEX[lower(mname)]
    if not m then return nil end
    local h, mi, sec, off = clock(rest)
    y, d = tonumber(yy), tonumber(dd)
    if h and off and valid(y, m, d, h, mi, sec) then
      return M.timestamp(y, m, d, h, mi, sec) - off
    end
  end
  return nil
end

--- Turn a filter input into Unix seconds: numbers, digit strings, `now`/`today`, date strings.
-- @param v the input value
-- @tparam number now current Unix time
-- @treturn number|nil seconds, nil when `v` is not a date
function M.to_time(v, now)
  if number.is_number(v) then return number.value(v) end
  if type(v) ~= "string" or v == "" then return nil end
  local l = lower(text.strip(v))
  if l == "now" or l == "today" then return now end
  if find(l, "^%d+$") then return tonumber(l) end
  if find(l, "^%d+%.%d+$") then return tonumber(l) end
  return M.parse_string(v)
end

-- ---------------------------------------------------------------------------------------
-- strftime

local MAX_WIDTH = 1024

local function pad(n, width, flag, default_pad)
  local s = tostring(n)
  local neg = false
  if byte(s, 1) == 45 then neg, s = true, sub(s, 2) end
  local padc = default_pad
  if flag == "-" then padc = nil
  elseif flag == "_" then padc = " "
  elseif flag == "0" then padc = "0" end
  if padc and #s < width then s = rep(padc, width - #s) .. s end
  if neg then s = "-" .. s end
  return s
end

--- Format Unix time `t` with a strftime format in `zone` (default UTC).
-- Supports `%a %A %b %B %c %C %d %D %e %F %G %g %h %H %I %j %k %l %L %m %M %n %N %p %P %r
-- %R %s %S %t %T %u %U %V %w %W %x %X %y %Y %z %:z %Z %%` with the flags `- _ 0 ^ #` and
-- widths.
-- @tparam string fmt
-- @tparam number t Unix seconds (may have a fraction)
-- @tparam[opt] table zone from `date.zone`
-- @treturn string
function M.strftime(fmt, t, zone)
  zone = zone or FIXED_UTC
  local whole = floor(t)
  local frac = t - whole
  local off, abbr = zone.offset(whole)
  local lt = whole + off
  local days = floor(lt / 86400)
  local secs = lt - days * 86400
  local y, mo, d = M.civil_from_days(days)
  local H, Mi, S = floor(secs / 3600), floor(secs % 3600 / 60), secs % 60
  local wday = (days + 4) % 7              -- 0 = Sunday
  local yday = days - M.days_from_civil(y, 1, 1) + 1

  local function iso_week()
    local wd = wday == 0 and 7 or wday
    local thursday = days - wd + 4
    local ty = M.civil_from_days(thursday)
    local week = floor((thursday - M.days_from_civil(ty, 1, 1)) / 7) + 1
    return ty, week
  end

  local out, n = {}, 0
  local i, len = 1, #fmt
  while i <= len do
    local pct = find(fmt, "%", i, true)
    if not pct then
      n = n + 1
      out[n] = sub(fmt, i)
      break
    end
    if pct > i then
      n = n + 1
      out[n] = sub(fmt, i, pct - 1)
    end
    local j = pct + 1
    local flag = match(fmt, "^[-_0^#]", j)
    local flags = {}
    while flag do
      flags[flag] = true
      j = j + 1
      flag = match(fmt, "^[-_0^#]", j)
    end
    local width = match(fmt, "^%d+", j)
    if width then
      j = j + #width
      -- A width is padding built in memory before any output limit applies: %999999999Y
      -- would allocate a gigabyte (and a longer run of digits is not even an integer).
      if #width > 4 or tonumber(width) > MAX_WIDTH then
        require("customerio.liquid.errors").argument("date: width " .. sub(width, 1, 12) ..
          (#width > 12 and "..." or "") .. " is larger than " .. MAX_WIDTH)
      end
      width = tonumber(width)
    end
    local colon = false
    if sub(fmt, j, j) == ":" and sub(fmt, j + 1, j + 1) == "z" then colon = true; j = j + 1 end
    local c = sub(fmt, j, j)
    local pflag = flags["-"] and "-" or (flags["_"] and "_" or (flags["0"] and "0" or nil))
    local function num(v, w, default_pad)
      return pad(v, width or w, pflag, default_pad == nil and "0" or default_pad)
    end
    local s
    if c == "Y" then s = num(y, 1)
    elseif c == "C" then s = num(floor(y / 100), 2)
    elseif c == "y" then s = num(y % 100, 2)
    elseif c == "m" then s = num(mo, 2)
    elseif c == "B" then s = MONTHS[mo]
    elseif c == "b" or c == "h" then s = sub(MONTHS[mo], 1, 3)
    elseif c == "d" then s = num(d, 2)
    elseif c == "e" then s = num(d, 2, " ")
    elseif c == "j" then s = num(yday, 3)
    elseif c == "H" then s = num(H, 2)
    elseif c == "k" then s = num(H, 2, " ")
    elseif c == "I" then s = num((H % 12 == 0) and 12 or H % 12, 2)
    elseif c == "l" then s = num((H % 12 == 0) and 12 or H % 12, 2, " ")
    elseif c == "P" then s = H < 12 and "am" or "pm"
    elseif c == "p" then s = H < 12 and "AM" or "PM"
    elseif c == "M" then s = num(Mi, 2)
    elseif c == "S" then s = num(S, 2)
    elseif c == "L" then s = format("%03d", floor(frac * 1000))
    elseif c == "N" then
      local w = width or 9
      s = sub(format("%09d", floor(frac * 1e9)), 1, w)
      if w > 9 then s = s .. rep("0", w - 9) end
    elseif c == "z" then
      local sign = off < 0 and "-" or "+"
      local a = abs(off)
      if colon then s = format("%s%02d:%02d", sign, floor(a / 3600), floor(a % 3600 / 60))
      else s = format("%s%02d%02d", sign, floor(a / 3600), floor(a % 3600 / 60)) end
    elseif c == "Z" then s = abbr or ""
    elseif c == "A" then s = DAYS[wday + 1]
    elseif c == "a" then s = sub(DAYS[wday + 1], 1, 3)
    elseif c == "u" then s = tostring(wday == 0 and 7 or wday)
    elseif c == "w" then s = tostring(wday)
    elseif c == "U" then s = num(floor((yday - 1 - wday + 7) / 7), 2)
    elseif c == "W" then s = num(floor((yday - 1 - ((wday + 6) % 7) + 7) / 7), 2)
    elseif c == "V" then local _, wk = iso_week(); s = num(wk, 2)
    elseif c == "G" then local gy = iso_week(); s = num(gy, 1)
    elseif c == "g" then local gy = iso_week(); s = num(gy % 100, 2)
    elseif c == "s" then s = format("%d", whole)
    elseif c == "D" or c == "x" then s = M.strftime("%m/%d/%y", t, zone)
    elseif c == "F" then s = M.strftime("%Y-%m-%d", t, zone)
    elseif c == "T" or c == "X" then s = M.strftime("%H:%M:%S", t, zone)
    elseif c == "R" then s = M.strftime("%H:%M", t, zone)
    elseif c == "r" then s = M.strftime("%I:%M:%S %p", t, zone)
    elseif c == "c" then s = M.strftime("%a %b %e %H:%M:%S %Y", t, zone)
    elseif c == "n" then s = "\n"
    elseif c == "t" then s = "\t"
    elseif c == "%" then s = "%"
    else
      s = sub(fmt, pct, j)
    end
    if s and not find("dejHkIlMSLNmyYCUWVGguwsz", c, 1, true) and width and #s < width then
      s = rep(flags["0"] and "0" or " ", width - text.len(s)) .. s
    end
    if flags["^"] then s = upper(s) end
    if flags["#"] then
      if find(s, "%l") then s = upper(s) else s = lower(s) end
    end
    n = n + 1
    out[n] = s
    i = j + 1
  end
  return concat(out, "", 1, n)
end

--- Ordinal suffix of a day number ("st", "nd", "rd", "th").
-- @tparam number d
-- @treturn string
function M.ordinal(d)
  local m100 = d % 100
  if m100 >= 11 and m100 <= 13 then return "th" end
  local m10 = d % 10
  if m10 == 1 then return "st" elseif m10 == 2 then return "nd" elseif m10 == 3 then return "rd" end
  return "th"
end

--- Add months to a time, clamping the day (Jan 31 + 1 month = Feb 28/29).
-- @tparam number t Unix seconds
-- @tparam number months may be negative
-- @treturn number
function M.add_months(t, months)
  local days = floor(t / 86400)
  local secs = t - days * 86400
  local y, m, d = M.civil_from_days(days)
  local total = y * 12 + (m - 1) + months
  local ny = floor(total / 12)
  local nm = total - ny * 12 + 1
  local dim = M.days_in_month(ny, nm)
  if d > dim then d = dim end
  return M.days_from_civil(ny, nm, d) * 86400 + secs
end

return M
