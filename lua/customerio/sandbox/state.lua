--- The sandbox's workspace: people, their attributes, events, devices and suppressions.
--
-- Follows Customer.io's identify rules (customerio-api.md §6.3): a path identifier is an
-- `id`, an email, or `cio_<cio_id>`; an unknown path id with a known email in the body
-- updates that person and gives them the id; `_update = true` never creates; `null` or ""
-- removes an attribute; suppressed identifiers (a person's id, email and cio_id together)
-- cannot be identified again until one of them is unsuppressed, which lifts them all;
-- anonymous events join a person identified with their `anonymous_id`.
-- @module customerio.sandbox.state
local core = require("customerio.core")

local State = {}
State.__index = State

local M = { State = State }

local null = core.null

local function blank(v)
  return v == nil or v == null or v == ""
end

local function lower(s)
  return type(s) == "string" and s:lower() or s
end

local function stringify(v)
  if type(v) == "number" then
    if v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return string.format("%d", v) end
    return tostring(v)
  end
  return v
end

--- A new, empty workspace.
-- @tparam function now returns the current Unix time in seconds
function M.new(now)
  local self = setmetatable({}, State)
  self.now = now
  self:reset()
  return self
end

--- Forget everything.
function State:reset()
  self.people = {}          -- cio_id -> person
  self.by_id = {}           -- id -> person
  self.by_email = {}        -- lower-case email -> person
  self.order = {}           -- cio_ids in creation order
  self.suppressed = {}      -- identifier (id, lower-case email, cio_id) -> the identifiers suppressed with it
  self.anonymous = {}       -- anonymous_id -> list of events
  self.invites = {}         -- anonymous events without anonymous_id
  self.event_ids = {}       -- seen event ids (dedup)
  self.objects = {}         -- object_type_id -> object_id -> {attributes, relationships}
  self.failures = {}        -- attribute update failures, like the activity log shows them
  self.dropped = {}         -- requests ignored (suppressed identifiers, _update on unknown)
  self.serial = 0
  self.listeners = self.listeners or {}
end

local function new_cio_id(self)
  self.serial = self.serial + 1
  return string.format("%08x%s", self.serial, core.hex(core.random_bytes(4)))
end

--- Find a person by a path identifier: `cio_<x>`, an id, or an email.
-- @tparam string ident
-- @treturn table|nil person
function State:find(ident)
  ident = stringify(ident)
  if type(ident) ~= "string" then return nil end
  if ident:sub(1, 4) == "cio_" and self.people[ident:sub(5)] then return self.people[ident:sub(5)] end
  return self.by_id[ident] or (ident:find("@", 1, true) and self.by_email[ident:lower()]) or nil
end

--- Find a person by a typed identifier (`id`, `email`, `cio_id`).
function State:find_by(kind, value)
  value = stringify(value)
  if kind == "id" then return self.by_id[value] end
  if kind == "email" then return self.by_email[lower(value)] end
  if kind == "cio_id" then return self.people[value] end
  return nil
end

--- Find a person by an identifiers object (`{id = ...}`, `{email = ...}` or `{cio_id = ...}`).
function State:find_identifiers(identifiers)
  if type(identifiers) ~= "table" then return nil end
  for _, kind in ipairs({ "cio_id", "id", "email" }) do
    if identifiers[kind] ~= nil then return self:find_by(kind, identifiers[kind]) end
  end
  return nil
end

--- Whether an identifier is suppressed.
function State:is_suppressed(kind, value)
  value = stringify(value)
  if kind == "email" then value = lower(value) end
  return value ~= nil and self.suppressed[value] ~= nil
end

local function index(self, person)
  if person.id then self.by_id[person.id] = person end
  if person.email then self.by_email[person.email:lower()] = person end
end

local function unindex(self, person)
  if person.id and self.by_id[person.id] == person then self.by_id[person.id] = nil end
  if person.email and self.by_email[person.email:lower()] == person then self.by_email[person.email:lower()] = nil end
end

local function notify(self, person)
  for _, fn in ipairs(self.listeners) do fn(person) end
end

--- Call fn(person) whenever a person is created, changed or removed (removed: person.deleted).
function State:on_change(fn)
  self.listeners[#self.listeners + 1] = fn
end

local function create(self, fields)
  local cio_id = new_cio_id(self)
  local person = {
    cio_id = cio_id, attributes = {}, events = {}, devices = {}, device_order = {},
    manual_segments = {}, created_at = self.now(),
  }
  self.people[cio_id] = person
  self.order[#self.order + 1] = cio_id
  if fields.id then person.id = stringify(fields.id); person.attributes.id = person.id end
  if fields.email then person.email = fields.email; person.attributes.email = fields.email end
  index(self, person)
  return person
end

local function attach_anonymous(self, person, anonymous_id)
  local events = self.anonymous[anonymous_id]
  if not events then return end
  for _, e in ipairs(events) do person.events[#person.events + 1] = e end
  self.anonymous[anonymous_id] = nil
end

local function set_attribute(self, person, key, value)
  if key == "_update" or key == "_timestamp" or key == "cio_relationships" then return end
  if key == "email" then
    if blank(value) then return end
    local owner = self.by_email[lower(value)]
    if owner and owner ~= person then
      self.failures[#self.failures + 1] = {
        cio_id = person.cio_id, attribute = "email", value = value,
        message = "email " .. tostring(value) .. " already belongs to another person",
      }
      return
    end
    unindex(self, person)
    person.email = value
    person.attributes.email = value
    index(self, person)
    return
  end
  if key == "id" then
    if blank(value) then return end
    value = stringify(value)
    local owner = self.by_id[value]
    if owner and owner ~= person then
      self.failures[#self.failures + 1] = {
        cio_id = person.cio_id, attribute = "id", value = value,
        message = "id " .. value .. " already belongs to another person",
      }
      return
    end
    unindex(self, person)
    person.id = value
    person.attributes.id = value
    index(self, person)
    return
  end
  if blank(value) then
    person.attributes[key] = nil
  else
    person.attributes[key] = value
  end
  if key == "anonymous_id" and type(value) == "string" then attach_anonymous(self, person, value) end
end

local function path_kind(ident)
  if ident:sub(1, 4) == "cio_" then return "cio_id", ident:sub(5) end
  if ident:find("@", 1, true) then return "email", ident end
  return "id", ident
end

--- Identify: create or update a person.
-- @tparam string ident path identifier
-- @tparam table attrs attributes (may hold id, email, _update, created_at...)
-- @treturn table|nil person, or nil and the reason it was ignored
function State:identify(ident, attrs)
  ident = stringify(ident)
  attrs = attrs or {}
  local kind, value = path_kind(ident)
  local person = self:find(ident)
  if not person and kind ~= "cio_id" then
    -- An unknown path identifier with a known identifier in the body updates that person.
    if not blank(attrs.email) then person = self.by_email[lower(attrs.email)] end
    if not person and not blank(attrs.id) then person = self.by_id[stringify(attrs.id)] end
    if person and kind == "id" then set_attribute(self, person, "id", value) end
  end
  if not person then
    if kind == "cio_id" then return nil, self:drop("cio_id " .. value .. " does not exist") end
    if attrs._update == true then return nil, self:drop("_update is true and " .. ident .. " does not exist") end
    if self:is_suppressed(kind, value) or (not blank(attrs.email) and self:is_suppressed("email", attrs.email)) then
      return nil, self:drop(ident .. " is suppressed")
    end
    person = create(self, { [kind] = value })
  end
  for k, v in pairs(attrs) do
    if not (k == "id" and kind == "id" and person.id == value) then set_attribute(self, person, k, v) end
  end
  person.updated_at = self.now()
  notify(self, person)
  return person
end

--- Record why a request was ignored, and return the reason.
function State:drop(reason)
  self.dropped[#self.dropped + 1] = { reason = reason, at = self.now() }
  return reason
end

--- Resolve a person for an event or a message, creating them from an id or email when missing.
-- @treturn table|nil person, or nil and a reason
function State:ensure(kind, value)
  local person = self:find_by(kind, value)
  if person then return person end
  if kind == "cio_id" then return nil, "cio_id " .. tostring(value) .. " does not exist" end
  if self:is_suppressed(kind, value) then return nil, tostring(value) .. " is suppressed" end
  person = create(self, { [kind] = value })
  notify(self, person)
  return person
end

local function remove(self, person)
  unindex(self, person)
  self.people[person.cio_id] = nil
  for i, id in ipairs(self.order) do
    if id == person.cio_id then table.remove(self.order, i); break end
  end
  person.deleted = true
  notify(self, person)
end

--- Delete a person.
-- @treturn boolean whether someone was deleted
function State:delete(ident)
  local person = self:find(ident)
  if not person then return false end
  remove(self, person)
  return true
end

--- Suppress: delete the person and block their identifiers.
function State:suppress(ident)
  ident = stringify(ident)
  local person = self:find(ident)
  local kind, value = path_kind(ident)
  -- One group per suppression: unsuppressing any of its identifiers lifts them all.
  local group = { kind == "email" and value:lower() or value }
  if person then
    if person.id then group[#group + 1] = person.id end
    if person.email then group[#group + 1] = person.email:lower() end
    group[#group + 1] = person.cio_id
    remove(self, person)
  end
  for _, v in ipairs(group) do self.suppressed[v] = group end
  return person ~= nil
end

--- Unsuppress: allow the identifier again, with every identifier suppressed together with it
-- (a person's id, email and cio_id); history is not restored.
function State:unsuppress(ident)
  ident = stringify(ident)
  local kind, value = path_kind(ident)
  local group = self.suppressed[kind == "email" and value:lower() or value]
  if group then
    for _, v in ipairs(group) do
      if self.suppressed[v] == group then self.suppressed[v] = nil end
    end
  end
  return true
end

--- Record an event; events with an `id` seen before are ignored (dedup).
-- @tparam table|nil person nil for anonymous events
-- @tparam table event {name, type, data, timestamp, id, anonymous_id}
-- @treturn boolean stored (false for a duplicate)
function State:add_event(person, event)
  if event.id ~= nil then
    if self.event_ids[event.id] then return false end
    self.event_ids[event.id] = true
  end
  event.received_at = self.now()
  event.timestamp = event.timestamp or event.received_at
  if person then
    person.events[#person.events + 1] = event
    notify(self, person)
  elseif event.anonymous_id then
    -- A person already identified with this anonymous_id receives it at once.
    for _, cio_id in ipairs(self.order) do
      local p = self.people[cio_id]
      if p.attributes.anonymous_id == event.anonymous_id then
        p.events[#p.events + 1] = event
        notify(self, p)
        return true
      end
    end
    local list = self.anonymous[event.anonymous_id] or {}
    list[#list + 1] = event
    self.anonymous[event.anonymous_id] = list
  else
    self.invites[#self.invites + 1] = event
  end
  return true
end

--- Add or update a device.
function State:add_device(person, device)
  local token = stringify(device.id or device.token)
  if not person.devices[token] then person.device_order[#person.device_order + 1] = token end
  person.devices[token] = {
    token = token, platform = device.platform, last_used = device.last_used,
    attributes = device.attributes or {},
  }
  notify(self, person)
end

--- Remove a device.
function State:delete_device(person, token)
  token = stringify(token)
  if not person.devices[token] then return false end
  person.devices[token] = nil
  for i, t in ipairs(person.device_order) do
    if t == token then table.remove(person.device_order, i); break end
  end
  notify(self, person)
  return true
end

--- Merge a secondary person into a primary one (customerio-api.md §5).
-- The primary keeps its attributes and gains the ones it lacks; events, devices and
-- manual segments move over; the secondary is deleted (`merged_into` names the primary) and
-- the primary lists it in `merged` (`{id, email, cio_id, at}`).
-- @treturn boolean|nil true, or nil and a message
function State:merge(primary_kind, primary_value, secondary_kind, secondary_value)
  local primary = self:find_by(primary_kind, primary_value)
  local secondary = self:find_by(secondary_kind, secondary_value)
  if not primary then return nil, "primary person (" .. primary_kind .. " " .. tostring(primary_value) .. ") does not exist" end
  if not secondary then
    return nil, "secondary person (" .. secondary_kind .. " " .. tostring(secondary_value) .. ") does not exist"
  end
  if primary == secondary then return nil, "primary and secondary are the same person" end
  remove(self, secondary)
  secondary.deleted = nil
  for k, v in pairs(secondary.attributes) do
    if blank(primary.attributes[k]) then set_attribute(self, primary, k, v) end
  end
  for _, e in ipairs(secondary.events) do primary.events[#primary.events + 1] = e end
  table.sort(primary.events, function(a, b) return (a.timestamp or 0) < (b.timestamp or 0) end)
  for _, token in ipairs(secondary.device_order) do
    if not primary.devices[token] then primary.device_order[#primary.device_order + 1] = token end
    primary.devices[token] = secondary.devices[token]
  end
  for seg in pairs(secondary.manual_segments) do primary.manual_segments[seg] = true end
  secondary.deleted = true
  secondary.merged_into = primary.cio_id
  -- The surviving profile remembers whom it absorbed (the inbox shows it).
  primary.merged = primary.merged or {}
  primary.merged[#primary.merged + 1] = { id = secondary.id, email = secondary.email, cio_id = secondary.cio_id,
    at = self.now() }
  notify(self, primary)
  return true
end

--- People in creation order.
function State:list()
  local out = {}
  for _, cio_id in ipairs(self.order) do out[#out + 1] = self.people[cio_id] end
  return out
end

--- Store a v2 object (`object` type operations).
function State:identify_object(type_id, object_id, attributes, relationships)
  type_id, object_id = stringify(type_id), stringify(object_id)
  self.objects[type_id] = self.objects[type_id] or {}
  local obj = self.objects[type_id][object_id] or { attributes = {}, relationships = {} }
  for k, v in pairs(attributes or {}) do
    if blank(v) then obj.attributes[k] = nil else obj.attributes[k] = v end
  end
  for _, r in ipairs(relationships or {}) do obj.relationships[#obj.relationships + 1] = r end
  self.objects[type_id][object_id] = obj
  return obj
end

--- The Liquid `customer` view of a person: attributes plus id, email and cio_id.
function State.customer(_, person)
  local view = {}
  for k, v in pairs(person.attributes) do view[k] = v end
  view.id, view.email, view.cio_id = person.id, person.email, person.cio_id
  return view
end

return M
