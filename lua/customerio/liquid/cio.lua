--- Customer.io's Liquid additions: filters and tags beyond standard Liquid.
--
-- Filters (semantics follow LiquidJS, Customer.io's "latest" engine, and Customer.io's docs):
--
-- * dates: `add_day`, `add_month`, `add_year`, `subtract_day`, `subtract_month`,
--   `subtract_year` (input: anything `date` accepts; output: Unix seconds),
--   `date_to_long_string`, `date_to_string` (optional `"ordinal"`, `"US"`),
--   `date_to_rfc822`, `date_to_xmlschema`, `timezone: zone` (legacy Liquid: `{{ t | timezone:
--   customer.timezone | date: fmt }}`); `date: format, zone` is in the standard set.
-- * numbers: `format_number: locale`, `currency: locale, code`, `rounded_currency`.
-- * strings: `titlecase`, `pluralize: singular, plural`, `slugify`, `normalize_whitespace`,
--   `number_of_words`, `array_to_sentence_string: connector`, `xml_escape`, `cgi_escape`,
--   `uri_escape`, `contains`, `base64`, `hex_base64`.
-- * hashes (need the C core `customerio.core`): `md5`, `sha1`, `sha256`, `sha512`,
--   `hmac_sha1: key`, `hmac_sha256: key`, `hmac_sha512: key` (hex output).
-- * JSON: `json`/`to_json`/`jsonify` (optional indent), `from_json`.
-- * arrays: `where_exp`, `find_exp`, `group_by`, `group_by_exp`, `where_not`, `limit`,
--   `push`, `pop`, `shift`, `unshift`, `json_array_uniq`.
--
-- Tags render deterministic placeholders and are listed in the render report (`tags`):
-- `unsubscribe_url`, `unsubscribe`, `view_in_browser_url`, `view_in_browser`,
-- `manage_subscription_preferences_url`, `tracking_consent_url`, `subscription_topic_name`,
-- `cio_link_id`, `generate_uuid`, `random`, `countdown`; `cio_link url:...` renders its URL
-- and `render_liquid expr` renders the Liquid held in a variable. Placeholder URLs can be
-- replaced with the render option `placeholders = { unsubscribe_url = "..." }`.
-- @module customerio.liquid.cio

local values = require("customerio.liquid.values")
local number = require("customerio.liquid.number")
local errors = require("customerio.liquid.errors")
local text = require("customerio.liquid.text")
local date = require("customerio.liquid.date")
local filters = require("customerio.liquid.filters")
local json = require("customerio.liquid.json")
local expression = require("customerio.liquid.expression")
local compiler = require("customerio.liquid.compiler")
local parser = require("customerio.liquid.parser")

local type, tostring, tonumber, pcall, require, setmetatable, getmetatable, pairs, ipairs, next, error =
  type, tostring, tonumber, pcall, require, setmetatable, getmetatable, pairs, ipairs, next, error
local floor, abs = math.floor, math.abs
local format, find, sub, gsub, byte, char, lower, upper, rep, match =
  string.format, string.find, string.sub, string.gsub, string.byte, string.char, string.lower,
  string.upper, string.rep, string.match
local concat = table.concat

local kind, to_s, truthy, equals = values.kind, values.to_s, values.truthy, values.equals
local input_list, NULL = values.input_list, values.null
local argument = errors.argument
local array = filters.array

local M = {}

--- Customer.io filters: name → spec (see `customerio.liquid.filters`).
M.filters = {}

local function def(name, fn, min, max, extra)
  local spec = { fn = fn, min = min or 0, max = max or min or 0 }
  if extra then for k, v in pairs(extra) do spec[k] = v end end
  M.filters[name] = spec
end

local function is_nil(v) return v == nil or v == NULL end

-- ---------------------------------------------------------------------------------------
-- Dates

local function shift(unit, sign)
  return function(ctx, input, amount)
    local t = date.to_time(input, ctx.now)
    if not t then return input end
    local n = is_nil(amount) and 1 or (number.to_number(amount))
    n = n * sign
    if unit == "day" then
      t = t + n * 86400
    elseif unit == "month" then
      t = date.add_months(t, floor(n))
    else
      t = date.add_months(t, floor(n) * 12)
    end
    return number.int(floor(t))
  end
end
for _, unit in ipairs({ "day", "month", "year" }) do
  def("add_" .. unit, shift(unit, 1), 0, 1, { ctx = true })
  def("subtract_" .. unit, shift(unit, -1), 0, 1, { ctx = true })
end

local function date_words(month_format)
  return function(ctx, input, kind_, style)
    local t, zone = date.moment(input, ctx.now, nil, ctx.timezone)
    if not t then return input end
    if to_s(kind_) == "ordinal" then
      local day = tonumber(date.strftime("%d", t, zone))
      local ord = day .. date.ordinal(day)
      if to_s(style) == "US" then
        return date.strftime(month_format, t, zone) .. " " .. ord .. date.strftime(", %Y", t, zone)
      end
      return ord .. date.strftime(" " .. month_format .. " %Y", t, zone)
    end
    return date.strftime("%d " .. month_format .. " %Y", t, zone)
  end
end
def("date_to_long_string", date_words("%B"), 0, 2, { ctx = true })
def("date_to_string", date_words("%b"), 0, 2, { ctx = true })

local function date_format(fmt)
  return function(ctx, input)
    local t, zone = date.moment(input, ctx.now, nil, ctx.timezone)
    if not t then return input end
    return date.strftime(fmt, t, zone)
  end
end
def("date_to_rfc822", date_format("%a, %d %b %Y %H:%M:%S %z"), 0, 0, { ctx = true })
def("date_to_xmlschema", date_format("%Y-%m-%dT%H:%M:%S%:z"), 0, 0, { ctx = true })
-- Legacy Liquid's `timezone: zone` (before `date`); see `date.in_zone`.
def("timezone", function(ctx, input, tz)
  return date.in_zone(input, ctx.now, tz ~= NULL and tz or nil)
end, 1, 1, { ctx = true })

-- ---------------------------------------------------------------------------------------
-- Numbers and currency

-- group, decimal separators and currency layout per language (CLDR defaults, as in Intl).
local NBSP, NNBSP = "\194\160", "\226\128\175"
local LOCALES = {
  en = { ",", "." },
  de = { ".", "," }, es = { ".", ",", min_group = 2 }, it = { ".", "," }, nl = { ".", "," },
  pt = { ".", "," }, id = { ".", "," }, tr = { ".", "," }, da = { ".", "," },
  fr = { NNBSP, "," }, sv = { NBSP, "," }, nb = { NBSP, "," }, no = { NBSP, "," }, fi = { NBSP, "," },
  pl = { NBSP, ",", min_group = 2 }, cs = { NBSP, "," }, ru = { NBSP, "," }, uk = { NBSP, "," },
  ja = { ",", "." }, zh = { ",", "." }, ko = { ",", "." }, hi = { ",", "." },
}
LOCALES["de-CH"] = { "’", "." }
LOCALES["pt-PT"] = { NBSP, ",", min_group = 2 }

local function locale_of(loc)
  loc = is_nil(loc) and "en" or to_s(loc)
  loc = gsub(loc, "_", "-")
  local lang = lower(match(loc, "^(%a+)") or "en")
  local region = match(loc, "^%a+%-(%a%a)$")
  local full = region and (lang .. "-" .. upper(region)) or lang
  return LOCALES[full] or LOCALES[lang] or LOCALES.en, lang, region and upper(region)
end

local function group_digits(int, sep, min_group)
  if #int < 4 or (min_group == 2 and #int < 5) then return int end
  local head = sub(int, 1, (#int - 1) % 3 + 1)
  local parts = { head }
  for i = #head + 1, #int, 3 do parts[#parts + 1] = sub(int, i, i + 2) end
  return concat(parts, sep)
end

-- Format |x| with `min`..`max` fraction digits (half away from zero, on decimal digits).
local function format_decimal(x, min_frac, max_frac, loc)
  local sep, dec, min_group = loc[1], loc[2], loc.min_group
  local neg = x < 0
  local r = number.round_decimal(abs(x), max_frac)
  local s = format("%." .. max_frac .. "f", r)
  local int, frac = match(s, "^(%d+)%.?(%d*)$")
  if not int then return tostring(x) end
  frac = gsub(frac, "0+$", "")
  if #frac < min_frac then frac = frac .. rep("0", min_frac - #frac) end
  local out = group_digits(int, sep, min_group)
  if frac ~= "" then out = out .. dec .. frac end
  if neg and (find(int, "[1-9]") or find(frac, "[1-9]")) then out = "-" .. out end
  return out
end

def("format_number", function(input, loc, digits)
  local x = number.to_number(input)
  local l = locale_of(loc)
  local max_frac = is_nil(digits) and 3 or number.to_integer(digits)
  return format_decimal(x, 0, max_frac, l)
end, 0, 2)

-- symbol, fraction digits
local CURRENCIES = {
  USD = { "$", 2 }, EUR = { "€", 2 }, GBP = { "£", 2 }, JPY = { "¥", 0 }, CNY = { "CN¥", 2 },
  CAD = { "CA$", 2 }, AUD = { "A$", 2 }, NZD = { "NZ$", 2 }, INR = { "₹", 2 }, BRL = { "R$", 2 },
  MXN = { "MX$", 2 }, CHF = { "CHF", 2 }, SEK = { "SEK", 2 }, NOK = { "NOK", 2 }, DKK = { "DKK", 2 },
  PLN = { "PLN", 2 }, KRW = { "₩", 0 }, HKD = { "HK$", 2 }, SGD = { "SGD", 2 }, ZAR = { "ZAR", 2 },
  ILS = { "₪", 2 }, TRY = { "TRY", 2 }, RUB = { "RUB", 2 },
}
-- currency of a region, and the local symbol when it differs
local REGION_CURRENCY = {
  US = "USD", GB = "GBP", CA = "CAD", AU = "AUD", NZ = "NZD", IN = "INR", JP = "JPY", CN = "CNY",
  BR = "BRL", MX = "MXN", CH = "CHF", SE = "SEK", NO = "NOK", DK = "DKK", PL = "PLN", KR = "KRW",
  HK = "HKD", SG = "SGD", ZA = "ZAR", IL = "ILS", TR = "TRY", RU = "RUB", IE = "EUR", DE = "EUR",
  FR = "EUR", ES = "EUR", IT = "EUR", NL = "EUR", PT = "EUR", AT = "EUR", BE = "EUR", FI = "EUR",
}
local LANG_CURRENCY = { en = "USD", de = "EUR", fr = "EUR", es = "EUR", it = "EUR", nl = "EUR", pt = "EUR",
  fi = "EUR", ja = "JPY", zh = "CNY", ko = "KRW", sv = "SEK", nb = "NOK", no = "NOK", da = "DKK", pl = "PLN",
  hi = "INR", ru = "RUB", tr = "TRY" }
local LOCAL_SYMBOL = { ["en-CA:CAD"] = "$", ["en-AU:AUD"] = "$", ["en-NZ:NZD"] = "$", ["fr-CA:CAD"] = "$",
  ["ja:JPY"] = "￥", ["zh:CNY"] = "¥", ["pt-BR:BRL"] = "R$", ["es-MX:MXN"] = "$", ["en-IN:INR"] = "₹",
  ["sv:SEK"] = "kr", ["nb:NOK"] = "kr", ["no:NOK"] = "kr", ["da:DKK"] = "kr.", ["pl:PLN"] = "zł" }
-- languages that put the symbol after the amount
local SUFFIX = { de = true, fr = true, es = true, it = false, nl = false, pt = true, fi = true, sv = true,
  nb = true, no = true, da = true, pl = true, cs = true, ru = true, uk = true }

local function currency(rounded)
  return function(input, loc, code)
    local x = number.to_number(input)
    local l, lang, region = locale_of(loc)
    local cur = not is_nil(code) and upper(to_s(code))
      or (region and REGION_CURRENCY[region]) or LANG_CURRENCY[lang] or "USD"
    local info = CURRENCIES[cur] or { cur, 2 }
    local digits = rounded and 0 or info[2]
    local amount = format_decimal(abs(x), digits, digits, l)
    local key = (region and (lang .. "-" .. region) or lang) .. ":" .. cur
    local symbol = LOCAL_SYMBOL[key] or LOCAL_SYMBOL[lang .. ":" .. cur] or info[1]
    local neg = x < 0 and find(amount, "[1-9]") and "-" or ""
    if SUFFIX[lang] then return neg .. amount .. NBSP .. symbol end
    if #symbol > 1 and find(symbol, "^%u+$") then return neg .. symbol .. NBSP .. amount end
    return neg .. symbol .. amount
  end
end
def("currency", currency(false), 0, 2)
def("rounded_currency", currency(true), 0, 2)

-- ---------------------------------------------------------------------------------------
-- Strings

def("titlecase", function(input)
  return (gsub(to_s(input), "(%S)(%S*)", function(first, rest) return upper(first) .. rest end))
end)

def("pluralize", function(input, singular, plural)
  local n = number.to_number(input)
  local word = (n == 1) and to_s(singular) or to_s(plural)
  return to_s(input) .. " " .. word
end, 2)

def("slugify", function(input, mode)
  local s = to_s(input)
  mode = is_nil(mode) and "default" or lower(to_s(mode))
  if mode == "none" then return s end
  if mode == "raw" then
    s = gsub(s, "%s+", "-")
  elseif mode == "pretty" then
    s = gsub(s, "[^%w%._~!%$&'%(%)%+,;=@\128-\255]+", "-")
  else
    s = gsub(s, "[^%w\128-\255]+", "-")
  end
  s = gsub(s, "^%-+", "")
  s = gsub(s, "%-+$", "")
  return lower(s)
end, 0, 1)

def("normalize_whitespace", function(input)
  return text.strip((gsub(to_s(input), "%s+", " ")))
end)

def("number_of_words", function(input)
  local n = 0
  for _ in to_s(input):gmatch("%S+") do n = n + 1 end
  return n
end, 0, 1)

def("array_to_sentence_string", function(input, connector)
  local list = input_list(input)
  connector = is_nil(connector) and "and" or to_s(connector)
  local n = #list
  local parts = {}
  for i = 1, n do parts[i] = to_s(list[i]) end
  if n == 0 then return "" end
  if n == 1 then return parts[1] end
  if n == 2 then return parts[1] .. " " .. connector .. " " .. parts[2] end
  return concat(parts, ", ", 1, n - 1) .. ", " .. connector .. " " .. parts[n]
end, 0, 1)

def("xml_escape", function(input)
  if is_nil(input) then return "" end
  return filters.escape_html(to_s(input))
end)

def("cgi_escape", function(input) return filters.url_encode(to_s(input)) end)

def("uri_escape", function(input)
  return (gsub(to_s(input), "[^%w%-_%.!~%*'%(%);/%?:@&=%+%$,#%[%]]", function(c)
    return format("%%%02X", byte(c))
  end))
end)

def("contains", function(input, other) return values.contains(input, other) end, 1)

def("base64", function(input) return filters.base64_encode(to_s(input)) end)

def("hex_base64", function(input)
  local hex = gsub(to_s(input), "%s", "")
  if #hex % 2 ~= 0 or find(hex, "[^%x]") then argument("hex_base64 needs a hexadecimal string") end
  local bytes = gsub(hex, "%x%x", function(h) return char(tonumber(h, 16)) end)
  return filters.base64_encode(bytes)
end)

-- ---------------------------------------------------------------------------------------
-- Hashes, through the C core

local core_module
local function core()
  if core_module == nil then
    local ok, c = pcall(require, "customerio.core")
    if ok and type(c) == "table" and type(c.digest) == "function" then core_module = c else core_module = false end
  end
  return core_module or nil
end
M.core = core

local function to_hex(raw)
  return (gsub(raw, ".", function(c) return format("%02x", byte(c)) end))
end

local function need_core(name)
  local c = core()
  if not c then argument("the " .. name .. " filter needs the customerio.core C module") end
  return c
end

for _, alg in ipairs({ "md5", "sha1", "sha256", "sha512" }) do
  def(alg, function(input)
    local c = need_core(alg)
    return to_hex(c.digest(alg, to_s(input)))
  end)
  if alg ~= "md5" then
    def("hmac_" .. alg, function(input, key)
      local c = need_core("hmac_" .. alg)
      if type(c.hmac) ~= "function" then argument("the hmac_" .. alg .. " filter needs customerio.core.hmac") end
      return to_hex(c.hmac(alg, to_s(key), to_s(input)))
    end, 1)
  end
end

-- ---------------------------------------------------------------------------------------
-- JSON

local function to_json(input, indent)
  local n = not is_nil(indent) and number.to_integer(indent) or nil
  if n and n <= 0 then n = nil end
  -- The indentation is built in memory before the output limit applies (json: 1000000000).
  if n and n > 64 then argument("json: indent " .. n .. " is larger than 64") end
  local s, err = json.encode(input, n)
  if not s then argument("json: " .. err) end
  return s
end
def("json", to_json, 0, 1)
def("to_json", to_json, 0, 1)
def("jsonify", to_json, 0, 1)

def("from_json", function(input)
  if is_nil(input) then return nil end
  if kind(input) ~= "string" then return input end
  local v, err = json.decode(input, { ordered = true })
  if err then argument("from_json: " .. err) end
  return v
end)

-- ---------------------------------------------------------------------------------------
-- Arrays

local exp_cache = setmetatable({}, { __mode = "k" })

-- Compile `expr` (a condition, e.g. "item.price > 10") with `var` naming the item.
local function compiled_exp(ctx, var, expr)
  local by_filters = exp_cache[ctx.liquid] or {}
  exp_cache[ctx.liquid] = by_filters
  local key = var .. "\0" .. expr
  local hit = by_filters[key]
  if hit then return hit[1], hit[2] end
  local node = expression.condition(expr, 1, function(message) argument("bad expression '" .. expr .. "': " .. message) end)
  local fn, slot = compiler.compile_condition(node, var, ctx.liquid.filters)
  by_filters[key] = { fn, slot }
  return fn, slot
end

local function each_exp(ctx, input, var, expr, visit)
  var, expr = to_s(var), to_s(expr)
  if not find(var, "^[%a_][%w_%-]*%??$") then argument("bad variable name '" .. var .. "'") end
  local fn, slot = compiled_exp(ctx, var, expr)
  local list = input_list(input)
  local lv = ctx.lv
  local saved = lv[slot]
  for i = 1, #list do
    lv[slot] = list[i]
    local ok, stop = pcall(function() return visit(list[i], truthy(fn(ctx)), i) end)
    if not ok then lv[slot] = saved; error(stop, 0) end
    if stop then break end
  end
  lv[slot] = saved
end

def("where_exp", function(ctx, input, var, expr)
  local out = {}
  each_exp(ctx, input, var, expr, function(item, hit) if hit then out[#out + 1] = item end end)
  return array(out)
end, 2, 2, { ctx = true })

def("find_exp", function(ctx, input, var, expr)
  local found
  each_exp(ctx, input, var, expr, function(item, hit) if hit then found = item return true end end)
  return found
end, 2, 2, { ctx = true })

local function group(list, key_of)
  local groups, index = {}, {}
  for i = 1, #list do
    local item = list[i]
    local k = key_of(item, i)
    local id = filters.uniq_key(k)
    local g = index[id]
    if not g then
      g = { name = is_nil(k) and "" or k, items = array({}), size = 0 }
      setmetatable(g, { __jsontype = "object", __jsonorder = { "name", "items", "size" } })
      index[id] = g
      groups[#groups + 1] = g
    end
    g.items[#g.items + 1] = item
    g.size = #g.items
  end
  return array(groups)
end

def("group_by", function(input, property)
  local list = input_list(input)
  return group(list, function(item)
    local v = filters.item_property(item, property)
    if type(v) == "table" and not getmetatable(v) and next(v) == nil then return nil end
    if kind(item) ~= "hash" then return nil end
    return v
  end)
end, 1)

def("group_by_exp", function(ctx, input, var, expr)
  var, expr = to_s(var), to_s(expr)
  local list = input_list(input)
  local fn, slot = compiled_exp(ctx, var, expr)
  local keys = {}
  local lv = ctx.lv
  local saved = lv[slot]
  for i = 1, #list do
    lv[slot] = list[i]
    keys[i] = fn(ctx)
  end
  lv[slot] = saved
  return group(list, function(_, i) return keys[i] end)
end, 2, 2, { ctx = true })

def("where_not", function(input, property, target)
  local list = input_list(input)
  local out = {}
  for i = 1, #list do
    local item = list[i]
    local v = kind(item) == "hash" and item[to_s(property)] or nil
    local hit
    if is_nil(target) then hit = truthy(v) else hit = equals(v, target) end
    if not hit then out[#out + 1] = item end
  end
  return array(out)
end, 1, 2)

def("limit", function(input, n)
  local list = input_list(input)
  local count = number.to_integer(n)
  local out = {}
  for i = 1, math.min(count, #list) do out[i] = list[i] end
  return array(out)
end, 1)

def("push", function(input, v)
  local out = input_list(input)
  out[#out + 1] = v == nil and NULL or v
  return array(out)
end, 1)

def("unshift", function(input, v)
  local list = input_list(input)
  local out = { v == nil and NULL or v }
  for i = 1, #list do out[i + 1] = list[i] end
  return array(out)
end, 1)

def("pop", function(input, n)
  local list = input_list(input)
  local count = is_nil(n) and 1 or number.to_integer(n)
  local out = {}
  for i = 1, #list - count do out[i] = list[i] end
  return array(out)
end, 0, 1)

def("shift", function(input, n)
  local list = input_list(input)
  local count = is_nil(n) and 1 or number.to_integer(n)
  local out = {}
  for i = count + 1, #list do out[#out + 1] = list[i] end
  return array(out)
end, 0, 1)

def("json_array_uniq", function(input, property)
  local list = input_list(input)
  local seen, out = {}, {}
  for i = 1, #list do
    local item = list[i]
    local v = item
    if not is_nil(property) then v = kind(item) == "hash" and item[to_s(property)] or nil end
    local key = filters.uniq_key(v)
    if not seen[key] then
      seen[key] = true
      out[#out + 1] = item
    end
  end
  return array(out)
end, 0, 1)

-- ---------------------------------------------------------------------------------------
-- Tags

--- Default placeholder output of the Customer.io tags.
M.placeholders = {
  unsubscribe_url = "https://example.invalid/unsubscribe",
  unsubscribe = '<a href="https://example.invalid/unsubscribe">Unsubscribe</a>',
  view_in_browser_url = "https://example.invalid/view-in-browser",
  view_in_browser = '<a href="https://example.invalid/view-in-browser">View in browser</a>',
  manage_subscription_preferences_url = "https://example.invalid/subscription-preferences",
  tracking_consent_url = "https://example.invalid/tracking-consent",
  subscription_topic_name = "Subscription topic",
  cio_link_id = "cio-link-id",
  generate_uuid = "00000000-0000-4000-8000-000000000000",
  random = "0",
  countdown = "https://example.invalid/countdown.png",
}

local function tag_report(ctx, node)
  if ctx.seen[node] then return end
  ctx.seen[node] = true
  local list = ctx.report.tags
  list[#list + 1] = { tag = node.name, line = node.line, column = node.col }
end

local function placeholder_tag(name)
  parser.tags[name] = function(_, _, markup, _, pos)
    return { t = "cio_tag", name = name, markup = markup, blank = false, pos = pos }
  end
end
for name in pairs(M.placeholders) do placeholder_tag(name) end

-- `{% cio_link url:"https://..." track:true url_params:false %}`
parser.tags["cio_link"] = function(p, _, markup, _, pos)
  local url = match(markup, "url%s*:%s*\"([^\"]*)\"") or match(markup, "url%s*:%s*'([^']*)'")
    or match(markup, "url%s*:%s*(%S+)")
  if not url then p:fail("Syntax error in 'cio_link' - Valid syntax: cio_link url:\"https://...\"", pos) end
  return { t = "cio_tag", name = "cio_link", value = url, blank = false, pos = pos }
end

-- `{% render_liquid customer.snippet %}`: renders the Liquid text held in a variable.
parser.tags["render_liquid"] = function(p, _, markup, mpos, pos)
  local e = expression.filtered(markup, mpos, p:failer())
  if not e.base then p:fail("Syntax error in 'render_liquid' - Valid syntax: render_liquid [variable]", pos) end
  return { t = "render_liquid", expr = e, exprs = { e }, blank = false, pos = pos }
end

compiler.statements["cio_tag"] = function(self, node)
  local name, value = node.name, node.value
  local at = self:at(node.pos)
  node.line, node.col = at[1], at[2]
  return function(ctx)
    tag_report(ctx, node)
    local out = value
    if out == nil then
      local custom = ctx.placeholders
      out = custom and custom[name] or M.placeholders[name] or ""
    end
    compiler.append(ctx, out)
  end
end

compiler.statements["render_liquid"] = function(self, node, scope)
  local e = compiler.compile_expr(self, node.expr, scope, false)
  local at = self:at(node.pos)
  node.line, node.col, node.name = at[1], at[2], "render_liquid"
  return function(ctx)
    ctx.at = at
    tag_report(ctx, node)
    local src = e(ctx)
    if is_nil(src) then return end
    src = to_s(src)
    if ctx.depth >= 10 then errors.raise("limit", "render_liquid nested too deeply", at[1], at[2]) end
    local tpl, err = ctx.liquid.parse(src)
    if not tpl then
      errors.raise("syntax", "in render_liquid: " .. tostring(err), at[1], at[2])
    end
    -- the nested template numbers its loops from 1 too: give it its own loop slots
    local lv, fl = ctx.lv, ctx.fl
    ctx.lv, ctx.fl = {}, {}
    ctx.depth = ctx.depth + 1
    local ok, sig = pcall(tpl.fn, ctx)
    ctx.depth = ctx.depth - 1
    ctx.lv, ctx.fl = lv, fl
    if not ok then error(sig, 0) end
  end
end

--- Called by `customerio.liquid` once loaded.
-- @tparam table liquid the module
function M.install(liquid)
  M.liquid = liquid
end

return M
