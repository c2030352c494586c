--- HTML building blocks of the sandbox's web inbox: escaping, JSON shown with its types,
-- times, tables. Everything that reaches a page goes through `esc` (or is built here from
-- escaped parts), so data from requests can never become markup.
-- @module customerio.sandbox.web.html
local core = require("customerio.core")

local M = {}

local null = core.null
M.null = null

--- The Content-Security-Policy of an email's HTML part: no scripts, no network, no forms,
-- no same-origin access (`sandbox`).
M.EMAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
  .. "form-action 'none'; base-uri 'none'; sandbox"

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }

--- Escape any value for HTML text or a quoted attribute (nil is "").
function M.esc(v)
  if v == nil then return "" end
  return (tostring(v):gsub("[&<>\"']", ESCAPES))
end

local esc = M.esc

--- Escape a path segment for a URL inside an attribute.
function M.url(v)
  return (tostring(v):gsub("[^%w%-%._~@]", function(c) return string.format("%%%02X", c:byte()) end))
end

--- Decode `%xx` and `+` of a form or query component.
function M.unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parse `a=1&b=2` (a query string or an urlencoded form) into a table.
function M.form(s)
  local out = {}
  for pair in (s or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[M.unescape(k)] = M.unescape(v)
  end
  return out
end

local function is_array(v)
  local mt = getmetatable(v)
  if mt and mt.__jsontype then return mt.__jsontype == "array" end
  return next(v) == nil and false or v[1] ~= nil
end

--- The JSON type of a value: string, integer, number, boolean, array, object or null.
function M.json_type(v)
  if v == nil or v == null then return "null" end
  local t = type(v)
  if t == "number" then
    if (math.type and math.type(v) == "integer") or (not math.type and v % 1 == 0 and v > -2 ^ 53 and v < 2 ^ 53) then
      return "integer"
    end
    return "number"
  end
  if t == "table" then return is_array(v) and "array" or "object" end
  return t
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

M.sorted_keys = sorted_keys

--- JSON text of a value, indented, keys sorted (for `<pre>`; not escaped).
function M.json(v, indent)
  indent = indent or ""
  local t = M.json_type(v)
  if t == "null" then return "null" end
  if t == "array" then
    if #v == 0 then return "[]" end
    local parts = {}
    for i = 1, #v do parts[i] = indent .. "  " .. M.json(v[i], indent .. "  ") end
    return "[\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "]"
  end
  if t == "object" then
    local keys = sorted_keys(v)
    if #keys == 0 then return "{}" end
    local parts = {}
    for i, k in ipairs(keys) do
      parts[i] = indent .. "  " .. assert(core.json_encode(tostring(k))) .. ": " .. M.json(v[k], indent .. "  ")
    end
    return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
  end
  local s = core.json_encode(v)
  return s or tostring(v)
end

--- A `<pre>` of a JSON value.
function M.pre_json(v)
  return '<pre class="json">' .. esc(M.json(v)) .. "</pre>"
end

--- Pretty-print a body that may be JSON (else shown as is), escaped, in a `<pre>`.
function M.pre_body(s)
  if s == nil or s == "" then return '<p class="muted">(empty)</p>' end
  local v = core.json_decode(s)
  if v ~= nil then return M.pre_json(v) end
  return "<pre>" .. esc(s) .. "</pre>"
end

--- A Unix time (seconds, maybe fractional) as `YYYY-MM-DD HH:MM:SS` UTC.
function M.time(t)
  if type(t) ~= "number" then return "" end
  return '<time datetime="' .. os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) .. '">'
    .. os.date("!%Y-%m-%d %H:%M:%S", math.floor(t)) .. "</time>"
end

--- A status badge (`sent`, `failed`, `suppressed`, an HTTP status...).
function M.badge(text, kind)
  kind = kind or tostring(text)
  if tonumber(kind) then
    local n = tonumber(kind)
    kind = n >= 500 and "failed" or n >= 400 and "warn" or "sent"
  end
  return '<span class="badge badge-' .. esc(kind:gsub("[^%w_-]", "")) .. '">' .. esc(text) .. "</span>"
end

--- A table: `columns` is a list of header texts, `rows` a list of lists of HTML cells;
-- `links` (optional) a list of row URLs, making each row a link.
function M.table(columns, rows, empty, links)
  if #rows == 0 then return '<p class="empty">' .. esc(empty or "Nothing yet.") .. "</p>" end
  local out = { '<table class="list"><thead><tr>' }
  for _, c in ipairs(columns) do out[#out + 1] = "<th>" .. esc(c) .. "</th>" end
  out[#out + 1] = "</tr></thead><tbody>"
  for i, row in ipairs(rows) do
    local href = links and links[i]
    out[#out + 1] = href and ('<tr data-href="' .. esc(href) .. '">') or "<tr>"
    for j, cell in ipairs(row) do
      if j == 1 and href then cell = '<a href="' .. esc(href) .. '">' .. cell .. "</a>" end
      out[#out + 1] = "<td>" .. cell .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</tbody></table>"
  return table.concat(out)
end

--- How many rows a list page shows (the newest); search or filter to see others.
M.MAX_ROWS = 500

--- The note under a list cut at MAX_ROWS (or "").
function M.more(shown, total)
  if total <= shown then return "" end
  return '<p class="muted">Showing the newest ' .. shown .. " of " .. total .. ".</p>"
end

--- A definition list from `{ {label, html}, ... }` (pairs whose html is nil are left out).
function M.fields(pairs_list)
  local out = { '<dl class="fields">' }
  for _, p in ipairs(pairs_list) do
    if p[2] ~= nil and p[2] ~= "" then out[#out + 1] = "<dt>" .. esc(p[1]) .. "</dt><dd>" .. p[2] .. "</dd>" end
  end
  out[#out + 1] = "</dl>"
  return table.concat(out)
end

return M
