--- URL building: percent-encoded path segments and query strings, as customerio-node builds them.
-- @module customerio.http.url
local core = require("customerio.core")
local check = require("customerio.http.check")

local url = {}

--- Percent-encode a value like JavaScript's encodeURIComponent (numbers are stringified).
-- @param v string or number
-- @treturn string
function url.encode(v)
  if type(v) == "number" then v = check.id(v, "value") end
  return core.uri_encode(v)
end

--- Join a base URL and path segments, encoding each segment.
-- @tparam string base e.g. "https://track.customer.io/api/v1"
-- @tparam table|string path array of segments, or a string used as it is
-- @treturn string
function url.join(base, path)
  if type(path) == "string" then
    if path == "" then return base end
    if path:sub(1, 1) ~= "/" then path = "/" .. path end
    return base .. path
  end
  local out = base
  for i = 1, #path do
    local seg = url.encode(path[i])
    -- "." and ".." are unreserved, but as whole segments libcurl (and most URL parsers)
    -- would remove them: DELETE .../devices/.. would become DELETE .../customers/42.
    if seg == "." or seg == ".." then seg = seg:gsub("%.", "%%2E") end
    out = out .. "/" .. seg
  end
  return out
end

local function query_value(v)
  if type(v) == "boolean" then return v and "true" or "false" end
  if type(v) == "table" then
    local items = {}
    for i = 1, #v do items[i] = tostring(v[i]) end
    return table.concat(items, ",")
  end
  return v
end

--- Build a query string from ordered pairs; nil and "" values are skipped.
-- @tparam table pairs_ `{ {"id_type", "email"}, {"limit", 10} }` or a map (then sorted by key)
-- @treturn string "" or "?a=1&b=2"
function url.query(pairs_)
  if pairs_ == nil then return "" end
  local list = pairs_
  if #pairs_ == 0 and next(pairs_) ~= nil then
    list = {}
    for k, v in pairs(pairs_) do list[#list + 1] = { k, v } end
    table.sort(list, function(a, b) return a[1] < b[1] end)
  end
  local out = {}
  for i = 1, #list do
    local k, v = list[i][1], query_value(list[i][2])
    if v ~= nil and v ~= "" then
      out[#out + 1] = url.encode(k) .. "=" .. url.encode(v)
    end
  end
  if #out == 0 then return "" end
  return "?" .. table.concat(out, "&")
end

--- Split an absolute URL into scheme, host (lower case), port and the rest.
-- @tparam string u
-- @return scheme, host, port, path
function url.parse(u)
  local scheme, authority, rest = u:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil end
  scheme = scheme:lower()
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^%[(.-)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]*):?(%d*)$") end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  return scheme, (host or ""):lower(), port, rest ~= "" and rest or "/"
end

--- Resolve a Location header against the URL it came from.
-- @tparam string base the request URL
-- @tparam string location absolute, scheme-relative, absolute-path or relative reference
-- @treturn string
function url.resolve(base, location)
  if location:match("^%a[%w+.-]*://") then return location end
  local scheme, authority, path = base:match("^(%a[%w+.-]*)://([^/?#]*)([^?#]*)")
  if location:sub(1, 2) == "//" then return scheme .. ":" .. location end
  if location:sub(1, 1) == "/" then return scheme .. "://" .. authority .. location end
  local dir = path:match("^(.*/)") or "/"
  return scheme .. "://" .. authority .. dir .. location
end

return url
