--- Segments in the sandbox: manual ones (added and removed by id) and data-driven ones
-- defined with the audience-filter grammar, recomputed whenever a person changes.
--
-- Filters: `{and = {...}}`, `{or = {...}}`, `{["not"] = f}`, `{segment = {id = n}}` and
-- `{attribute = {field = "plan", operator = "eq", value = "pro"}}` (what `customerio.filters`
-- builds). Besides the API's `eq` and `exists`, the operators of Customer.io's segment
-- builder are accepted: `neq`, `gt`, `gte`, `lt`, `lte`, `not_exists`, `contains`,
-- `not_contains`, `starts_with`, `ends_with`, `in`. Comparisons are strict about types: the
-- number 5 does not equal the string "5", and `gt` compares numbers with numbers only. This is
-- the sandbox's choice, not a documented behaviour of Customer.io: the documentation we could
-- consult does not say how its segment conditions treat a number sent as a string. Strictness
-- makes a client that sends "600" for 600 visible here.
-- @module customerio.sandbox.segments
local core = require("customerio.core")

local Segments = {}
Segments.__index = Segments

local M = { Segments = Segments }

local null = core.null

local function present(v)
  return v ~= nil and v ~= null and v ~= ""
end

local function same(a, b)
  return type(a) == type(b) and a == b
end

local operators = {
  eq = function(v, want) return same(v, want) end,
  neq = function(v, want) return not same(v, want) end,
  exists = function(v) return present(v) end,
  not_exists = function(v) return not present(v) end,
  gt = function(v, want) return type(v) == "number" and type(want) == "number" and v > want end,
  gte = function(v, want) return type(v) == "number" and type(want) == "number" and v >= want end,
  lt = function(v, want) return type(v) == "number" and type(want) == "number" and v < want end,
  lte = function(v, want) return type(v) == "number" and type(want) == "number" and v <= want end,
  contains = function(v, want)
    if type(v) == "string" and type(want) == "string" then return v:find(want, 1, true) ~= nil end
    if type(v) == "table" then
      for _, x in ipairs(v) do if same(x, want) then return true end end
    end
    return false
  end,
  starts_with = function(v, want)
    return type(v) == "string" and type(want) == "string" and v:sub(1, #want) == want
  end,
  ends_with = function(v, want)
    return type(v) == "string" and type(want) == "string" and (want == "" or v:sub(-#want) == want)
  end,
  ["in"] = function(v, want)
    if type(want) ~= "table" then return false end
    for _, x in ipairs(want) do if same(v, x) then return true end end
    return false
  end,
}
operators.not_contains = function(v, want) return present(v) and not operators.contains(v, want) end
operators.ne, operators.not_eq = operators.neq, operators.neq
M.operators = operators

--- Check a filter against the grammar; returns true or nil and a message naming the place.
function M.validate(filter, path)
  path = path or "filter"
  if type(filter) ~= "table" then return nil, path .. " must be a table" end
  local keys = {}
  for k in pairs(filter) do keys[#keys + 1] = k end
  if #keys ~= 1 then return nil, path .. " must have exactly one of and, or, not, segment, attribute" end
  local k, v = keys[1], filter[keys[1]]
  if k == "and" or k == "or" then
    if type(v) ~= "table" or #v == 0 then return nil, path .. "." .. k .. " must be a non-empty list" end
    for i, f in ipairs(v) do
      local ok, err = M.validate(f, path .. "." .. k .. "[" .. i .. "]")
      if not ok then return nil, err end
    end
    return true
  elseif k == "not" then
    return M.validate(v, path .. ".not")
  elseif k == "segment" then
    if type(v) ~= "table" or v.id == nil then return nil, path .. ".segment needs an id" end
    return true
  elseif k == "attribute" then
    if type(v) ~= "table" or type(v.field) ~= "string" or v.field == "" then
      return nil, path .. ".attribute needs a field"
    end
    if not operators[v.operator] then
      return nil, path .. ".attribute: unknown operator " .. tostring(v.operator)
    end
    if v.operator ~= "exists" and v.operator ~= "not_exists" and v.value == nil then
      return nil, path .. ".attribute: value is required with " .. v.operator
    end
    return true
  end
  return nil, path .. ": unknown key " .. tostring(k)
end

--- A new segment registry.
-- @tparam table state the sandbox state
function M.new(state)
  local self = setmetatable({ state = state, list = {}, by_id = {}, next_id = 1 }, Segments)
  state:on_change(function(person) self:recompute(person) end)
  return self
end

local function field_value(person, field)
  if field == "id" then return person.id end
  if field == "email" then return person.email end
  if field == "cio_id" then return person.cio_id end
  local v = person.attributes[field]
  if v == nil and field:find(".", 1, true) then
    -- Dot paths reach into object attributes: "address.city".
    v = person.attributes
    for part in field:gmatch("[^.]+") do
      if type(v) ~= "table" then return nil end
      v = v[part]
    end
  end
  return v
end

--- Whether a person matches a filter.
function Segments:matches(person, filter, seen)
  if filter["and"] then
    for _, f in ipairs(filter["and"]) do
      if not self:matches(person, f, seen) then return false end
    end
    return true
  elseif filter["or"] then
    for _, f in ipairs(filter["or"]) do
      if self:matches(person, f, seen) then return true end
    end
    return false
  elseif filter["not"] then
    return not self:matches(person, filter["not"], seen)
  elseif filter.segment then
    return self:member(person, filter.segment.id, seen)
  elseif filter.attribute then
    local a = filter.attribute
    return operators[a.operator](field_value(person, a.field), a.value) == true
  end
  return false
end

--- Whether a person is in a segment (manual or data-driven).
function Segments:member(person, id, seen)
  local seg = self.by_id[tonumber(id)]
  if not seg or person.deleted then return false end
  if seg.type == "manual" then return person.manual_segments[seg.id] == true end
  seen = seen or {}
  if seen[seg.id] then return false end -- a segment defined through itself matches no one
  seen[seg.id] = true
  local ok = self:matches(person, seg.filter, seen)
  seen[seg.id] = nil
  return ok
end

--- Add a segment.
-- @tparam table def `{id = n, name = "...", filter = {...}}` (data-driven) or
--   `{id = n, name = "...", manual = true}`
-- @treturn table|nil segment, or nil and a message
function Segments:add(def)
  if type(def) ~= "table" then return nil, "segment definition must be a table" end
  local id = def.id and tonumber(def.id) or nil
  if def.id ~= nil and not id then return nil, "segment id must be a number" end
  if id and self.by_id[id] then return nil, "segment " .. id .. " already exists" end
  local manual = def.manual == true or def.filter == nil
  if not manual then
    local ok, err = M.validate(def.filter)
    if not ok then return nil, err end
  end
  if not id then
    id = self.next_id
    while self.by_id[id] do id = id + 1 end
  end
  if id >= self.next_id then self.next_id = id + 1 end
  local seg = {
    id = id, name = def.name or ("Segment " .. id), description = def.description or "",
    type = manual and "manual" or "dynamic", filter = def.filter, members = {}, created_at = self.state.now(),
  }
  self.by_id[id] = seg
  self.list[#self.list + 1] = seg
  if not manual then
    for _, person in ipairs(self.state:list()) do self:recompute(person) end
  end
  return seg
end

--- Remove a segment.
function Segments:remove(id)
  local seg = self.by_id[tonumber(id)]
  if not seg then return false end
  self.by_id[seg.id] = nil
  for i, s in ipairs(self.list) do
    if s == seg then table.remove(self.list, i); break end
  end
  for _, person in ipairs(self.state:list()) do person.manual_segments[seg.id] = nil end
  return true
end

--- Recompute every segment's membership of one person (called on each change).
function Segments:recompute(person)
  for _, seg in ipairs(self.list) do
    local is_member = not person.deleted and self:member(person, seg.id)
    seg.members[person.cio_id] = is_member or nil
  end
end

--- Members of a segment, in creation order.
-- @treturn table|nil list of people
function Segments:members(id)
  local seg = self.by_id[tonumber(id)]
  if not seg then return nil end
  local out = {}
  for _, person in ipairs(self.state:list()) do
    if seg.members[person.cio_id] then out[#out + 1] = person end
  end
  return out
end

--- People matching a filter right now.
function Segments:select(filter)
  local out = {}
  for _, person in ipairs(self.state:list()) do
    if self:matches(person, filter) then out[#out + 1] = person end
  end
  return out
end

--- Segments a person belongs to.
function Segments:of(person)
  local out = {}
  for _, seg in ipairs(self.list) do
    if seg.members[person.cio_id] then out[#out + 1] = seg end
  end
  return out
end

--- Add people to (or remove them from) a manual segment.
-- @treturn boolean|nil true, or nil and a message
function Segments:set_manual(id, people, add)
  local seg = self.by_id[tonumber(id)]
  if not seg then return nil, "segment " .. tostring(id) .. " does not exist" end
  if seg.type ~= "manual" then return nil, "segment " .. seg.id .. " is not a manual segment" end
  for _, person in ipairs(people) do
    person.manual_segments[seg.id] = add or nil
    self:recompute(person)
  end
  return true
end

return M
