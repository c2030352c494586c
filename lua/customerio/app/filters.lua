--- Audience filters for broadcasts (and people searches and exports).
--
--     local f = customerio.filters
--     local audience = f.all_of{
--       f.segment(3),
--       f.any_of{ f.attribute("plan", "eq", "pro"), f.none_of(f.segment(4)) },
--     }
--     api:trigger_broadcast(7, { headline = "Sale" }, audience)
--
-- Each builder returns the plain table Customer.io expects (`{and = {...}}`,
-- `{segment = {id = 3}}`, ...) after checking it against the grammar of the API's
-- audience filter, so a mistake raises where it is made, naming the place:
--
-- - a filter is exactly one of `and`, `or`, `not`, `segment`, `attribute`;
-- - `and` / `or` hold a non-empty list; a list inside a list may only hold simple filters
--   (`segment`, `attribute`, or `not` of one of those), so lists nest at most two deep;
-- - `not` holds one filter that is not itself a `not`;
-- - `segment` is `{id = <integer>}`;
-- - `attribute` is `{field = <string>, operator = "eq" | "exists", value = ...}`, `value`
--   being required with `eq` and not allowed with `exists`.
-- @module customerio.app.filters
local core = require("customerio.core")
local check = require("customerio.http.check")

local filters = {}

local KINDS = { ["and"] = true, ["or"] = true, ["not"] = true, segment = true, attribute = true }

local function fail(where, msg)
  check.fail(where .. ": " .. msg)
end

local function is_integer(v)
  if type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge then return false end
  return v == math.floor(v)
end

local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do
    if t[i] == nil then return false end
  end
  return true
end

local validate

local function validate_segment(s, where)
  if type(s) ~= "table" then fail(where, "segment must be a table like {id = 3}") end
  for k in pairs(s) do
    if k ~= "id" then fail(where, "unknown segment field " .. string.format("%q", tostring(k))) end
  end
  if s.id == nil then fail(where, "segment id is required") end
  if not is_integer(s.id) then fail(where, "segment id must be an integer, got " .. tostring(s.id)) end
end

local ATTRIBUTE_FIELDS = { field = true, operator = true, value = true }

local function validate_attribute(a, where)
  if type(a) ~= "table" then fail(where, "attribute must be a table like {field =, operator =, value =}") end
  for k in pairs(a) do
    if not ATTRIBUTE_FIELDS[k] then fail(where, "unknown attribute field " .. string.format("%q", tostring(k))) end
  end
  if check.is_empty(a.field) then fail(where, "attribute field is required") end
  if type(a.field) ~= "string" then fail(where, "attribute field must be a string") end
  if a.operator == "eq" then
    if a.value == nil or a.value == core.null then
      fail(where, 'value is required with operator "eq" (attribute "' .. a.field .. '")')
    end
    local t = type(a.value)
    if t ~= "string" and t ~= "number" and t ~= "boolean" then
      fail(where, 'attribute value must be a string, a number or a boolean, got ' .. t)
    end
  elseif a.operator == "exists" then
    if a.value ~= nil then fail(where, 'operator "exists" takes no value (attribute "' .. a.field .. '")') end
  elseif a.operator == nil then
    fail(where, 'attribute operator is required ("eq" or "exists")')
  else
    fail(where, 'attribute operator must be "eq" or "exists", got ' .. string.format("%q", tostring(a.operator)))
  end
end

-- depth: how many and/or lists enclose this filter.
validate = function(f, where, depth, under_not)
  if type(f) ~= "table" then fail(where, "a filter must be a table, got " .. type(f)) end
  local kind, count = nil, 0
  for k in pairs(f) do
    if not KINDS[k] then
      fail(where, "unknown filter " .. string.format("%q", tostring(k)) ..
        ' (expected one of "and", "or", "not", "segment", "attribute")')
    end
    kind, count = k, count + 1
  end
  if count == 0 then fail(where, 'empty filter (expected one of "and", "or", "not", "segment", "attribute")') end
  if count > 1 then fail(where, 'a filter holds exactly one of "and", "or", "not", "segment", "attribute"') end
  local value = f[kind]
  if kind == "segment" then
    validate_segment(value, where)
  elseif kind == "attribute" then
    validate_attribute(value, where)
  elseif kind == "not" then
    if under_not then fail(where, '"not" cannot hold another "not"') end
    validate(value, where .. ".not", depth, true)
  else
    if depth >= 2 then
      fail(where, '"' .. kind .. '" lists nest at most two deep')
    end
    if type(value) ~= "table" or not is_list(value) then
      fail(where, '"' .. kind .. '" must hold a list of filters')
    end
    if #value == 0 then fail(where, '"' .. kind .. '" must hold at least one filter') end
    for i = 1, #value do
      validate(value[i], where .. "." .. kind .. "[" .. i .. "]", depth + 1, false)
    end
  end
end

--- Check a filter against the grammar; raises naming the first problem.
-- @tparam table f filter
-- @tparam[opt] string name how to call it in messages (default "filter")
-- @treturn table f
function filters.validate(f, name)
  validate(f, name or "filter", 0, false)
  return f
end

local function list_of(fs, name)
  if type(fs) ~= "table" or not is_list(fs) then
    check.fail(name .. " takes a list of filters, e.g. " .. name .. "{ f.segment(1), f.segment(2) }")
  end
  local out = {}
  for i = 1, #fs do out[i] = fs[i] end
  return setmetatable(out, core.array_mt)
end

--- People in a segment.
-- @tparam number id segment id (an integer)
-- @treturn table `{segment = {id = id}}`
function filters.segment(id)
  if id == nil then check.fail("segment id is required") end
  if type(id) == "string" and id:match("^%d+$") then id = tonumber(id) end
  if not is_integer(id) then check.fail("segment id must be an integer, got " .. tostring(id)) end
  return { segment = { id = id } }
end

--- People whose attribute compares: `attribute("plan", "eq", "pro")`, `attribute("vip", "exists")`.
-- @tparam string field attribute name
-- @tparam string operator "eq" or "exists"
-- @param[opt] value required with "eq" (string, number or boolean)
-- @treturn table `{attribute = {field, operator, value}}`
function filters.attribute(field, operator, value)
  local f = { attribute = { field = field, operator = operator, value = value } }
  validate(f, "filter", 0, false)
  return f
end

--- People who have an attribute: `exists("vip")` is `attribute("vip", "exists")`.
-- @tparam string field attribute name
-- @treturn table filter
function filters.exists(field)
  return filters.attribute(field, "exists")
end

--- Shorthand for `attribute(field, "eq", value)`.
-- @tparam string field attribute name
-- @param value the value
-- @treturn table filter
function filters.eq(field, value)
  return filters.attribute(field, "eq", value)
end

--- People matching every filter of the list (`and`).
-- @tparam table list filters
-- @treturn table `{and = {...}}`
function filters.all_of(list)
  local f = { ["and"] = list_of(list, "all_of") }
  validate(f, "filter", 0, false)
  return f
end

--- People matching at least one filter of the list (`or`).
-- @tparam table list filters
-- @treturn table `{or = {...}}`
function filters.any_of(list)
  local f = { ["or"] = list_of(list, "any_of") }
  validate(f, "filter", 0, false)
  return f
end

--- People matching none: `none_of(f)` is `{not = f}`; `none_of{f1, f2}` is `{not = {or = {f1, f2}}}`.
-- @tparam table f a filter, or a list of filters
-- @treturn table `{not = ...}`
function filters.none_of(f)
  if type(f) == "table" and f[1] ~= nil then f = { ["or"] = list_of(f, "none_of") } end
  local out = { ["not"] = f }
  validate(out, "filter", 0, false)
  return out
end

return filters
