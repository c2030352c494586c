--- String helpers shared by the lexer and the filters: UTF-8 characters, Ruby-style strip,
-- ASCII case mapping. Pure Lua, no `utf8` library (LuaJIT has none).
-- @module customerio.liquid.text

local byte, sub, find, gsub, match, upper, lower = string.byte, string.sub, string.find, string.gsub,
  string.match, string.upper, string.lower

local M = {}

--- Pattern of one UTF-8 character (lenient: a lead byte and its continuation bytes).
M.CHAR = "[%z\1-\127\192-\255][\128-\191]*"
local CHAR = M.CHAR
if not find("\0", "%z") then CHAR = "[\0-\127\192-\255][\128-\191]*" end
M.CHAR = CHAR

--- Number of UTF-8 characters in `s`.
-- @tparam string s
-- @treturn number
function M.len(s)
  local n = #s
  if not find(s, "[\128-\255]") then return n end
  local _, cont = gsub(s, "[\128-\191]", "")
  return n - cont
end

--- The characters of `s` as an array of strings.
-- @tparam string s
-- @treturn table
function M.chars(s)
  local out, n = {}, 0
  for c in s:gmatch(CHAR) do
    n = n + 1
    out[n] = c
  end
  return out
end

--- Byte offset where character number `i` (1-based) starts, or `#s + 1` past the end.
local function char_offset(s, i)
  if i <= 1 then return 1 end
  local count, pos, n = 1, 1, #s
  while pos <= n do
    if count == i then return pos end
    local c = byte(s, pos)
    if c < 0xC0 then pos = pos + 1
    elseif c < 0xE0 then pos = pos + 2
    elseif c < 0xF0 then pos = pos + 3
    else pos = pos + 4 end
    count = count + 1
  end
  return n + 1
end

--- Characters `i .. i+len-1` (1-based) of `s`.
-- @tparam string s
-- @tparam number i first character, 1-based
-- @tparam number count how many characters
-- @treturn string
function M.sub(s, i, count)
  if count <= 0 then return "" end
  local first = char_offset(s, i)
  local last = char_offset(s, i + count) - 1
  return sub(s, first, last)
end

--- The last UTF-8 character of `s` ("" when empty).
-- @tparam string s
-- @treturn string
function M.last_char(s)
  local stop = #s
  for i = stop, 1, -1 do
    local c = byte(s, i)
    if c < 0x80 or c >= 0xC0 then return sub(s, i, stop) end
  end
  return ""
end

--- Strip Ruby whitespace (and NUL) from both ends.
-- @tparam string s
-- @treturn string
function M.strip(s)
  return match(s, "^[%s%z]*(.-)[%s%z]*$")
end

--- Strip leading whitespace.
-- @tparam string s
-- @treturn string
function M.lstrip(s)
  return (gsub(s, "^%s+", ""))
end

--- Strip trailing whitespace and NULs.
-- @tparam string s
-- @treturn string
function M.rstrip(s)
  local i = #s
  while i > 0 do
    local c = byte(s, i)
    if c == 32 or (c >= 9 and c <= 13) or c == 0 then i = i - 1 else break end
  end
  return sub(s, 1, i)
end

--- True when `s` is empty or only whitespace.
-- @tparam string s
-- @treturn boolean
function M.is_blank(s)
  return not find(s, "[^%s]")
end

--- ASCII upper case.
-- @tparam string s
-- @treturn string
function M.upcase(s) return (upper(s)) end

--- ASCII lower case.
-- @tparam string s
-- @treturn string
function M.downcase(s) return (lower(s)) end

--- First character upper case, the rest lower case (Ruby `capitalize`).
-- @tparam string s
-- @treturn string
function M.capitalize(s)
  local first, rest = match(s, "^(" .. CHAR .. ")(.*)$")
  if not first then return s end
  return upper(first) .. lower(rest)
end

--- True when `s` is valid UTF-8.
-- @tparam string s
-- @treturn boolean
function M.valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = byte(s, i)
    local len
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c < 0xE0 then len = 2
    elseif c >= 0xE0 and c < 0xF0 then len = 3
    elseif c >= 0xF0 and c < 0xF5 then len = 4
    else return false end
    for k = i + 1, i + len - 1 do
      local cc = byte(s, k)
      if not cc or cc < 0x80 or cc > 0xBF then return false end
    end
    i = i + len
  end
  return true
end

return M
