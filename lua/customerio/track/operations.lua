--- Track API v2 operations: builders and validation, without I/O.
--
-- Each builder returns one operation table as `POST /api/v2/entity` takes it, and as an
-- element of `POST /api/v2/batch`:
--
--     local ops = require("customerio.track.operations")   -- also customerio.operations
--     track:batch({
--       ops.identify("42", { email = "ada@example.com", plan = "pro" }),
--       ops.event("42", "purchase", { price = 23.45 }),     -- gets an id (ULID)
--       ops.object_identify({ object_type_id = "1", object_id = "acme" }, { name = "Acme" }),
--     })
--
-- A person is named by an id (string or number) or a table holding exactly one identifier:
-- `{id = "42"}`, `{email = "ada@example.com"}`, `{cio_id = "03000001"}`, `{phone = "+15555550123"}`.
-- An object by `{object_type_id = "1", object_id = "acme"}` or `{cio_object_id = "..."}`.
--
-- Builders check their arguments and Customer.io's documented limits and raise on a problem,
-- like the client methods. `validate` applies the same checks to an operation written by hand.
-- @module customerio.track.operations
local core = require("customerio.core")
local check = require("customerio.http.check")
local timestamp = require("customerio.track.timestamp")

local fail = check.fail

local M = {}

--- Customer.io's documented limits (bytes unless said otherwise), checked before sending.
M.limits = {
  person_id = 150,          -- an identifier value (id, email, cio_id) and a v1 path id
  attribute_name = 150,     -- a person attribute's name
  attribute_value = 1000,   -- a person attribute's string value
  event_name = 100,         -- an event or screen name (page names are URLs and are not limited)
  event_data = 100000,      -- an event's data, JSON-encoded
  entity = 32 * 1024,       -- one v2 operation, JSON-encoded
  batch = 500 * 1024,       -- a v2 batch request body
  segment_ids = 1000,       -- ids per segment add/remove request
}
local limits = M.limits

--- Identifier types accepted by merges and segment calls.
M.identifier_types = { "id", "email", "cio_id" }

--- Event types of the v1 events endpoint (`type`).
M.event_types = { "event", "page", "screen" }

--- Encode a value as JSON or raise naming the path (`data.price: cannot encode NaN`).
-- @param value
-- @tparam string root name for error paths
-- @treturn string
local encode_options = setmetatable({}, { __index = function(t, root)
  local o = { root = root }
  t[root] = o
  return o
end })
function M.encode(value, root)
  local s, err = core.json_encode(value, root ~= nil and encode_options[root] or nil)
  if not s then fail(err) end
  return s
end

--- Raise unless the JSON encoding of a value fits in `max` bytes.
-- @param value
-- @tparam number max bytes
-- @tparam string what how the value is named in the error
-- @treturn string the encoding
function M.check_size(value, max, what)
  local s = M.encode(value, what)
  if #s > max then
    fail(string.format("%s is %d bytes as JSON; the limit is %d bytes", what, #s, max))
  end
  return s
end

--- A copy of t with some fields changed; the metatable is kept (a key order recorded by
-- `json.decode{ordered = true}` is extended by the new keys).
-- @function with
-- @tparam table t
-- @tparam table changes fields to set
-- @treturn table the copy
local function with(t, changes)
  local out = {}
  for k, v in pairs(t) do out[k] = v end
  for k, v in pairs(changes) do out[k] = v end
  local mt = getmetatable(t)
  if mt ~= nil then
    if type(mt.__jsonorder) == "table" then
      local order, seen, copy = {}, {}, {}
      for k, v in pairs(mt) do copy[k] = v end
      for _, k in ipairs(mt.__jsonorder) do order[#order + 1] = k; seen[k] = true end
      for k in pairs(changes) do
        if not seen[k] then order[#order + 1] = k end
      end
      copy.__jsonorder = order
      mt = copy
    end
    setmetatable(out, mt)
  end
  return out
end
M.with = with

--- Convert the timestamp fields of a table (seconds, ISO-8601 strings, date tables), refusing
-- milliseconds. Returns the table itself when nothing changes, else a converted copy.
-- @tparam table t
-- @tparam table keys field names
-- @tparam string prefix how t is named in errors
-- @treturn table
function M.timestamps(t, keys, prefix)
  local changes
  for i = 1, #keys do
    local k = keys[i]
    local v = t[k]
    if not check.is_empty(v) then
      local s = timestamp.timestamp(v, prefix .. "." .. k)
      if s ~= v or type(v) ~= "number" then
        changes = changes or {}
        changes[k] = s
      end
    end
  end
  if changes then return with(t, changes) end
  return t
end

--- Check a person identifier value (a v1 path id or a v2 `identifiers` value).
-- @param v string or number
-- @tparam string name parameter name for errors
-- @treturn string
function M.person_id(v, name)
  local id = check.id(v, name)
  if #id > limits.person_id then
    fail(string.format("%s is %d bytes; the limit for a person identifier is %d bytes", name, #id, limits.person_id))
  end
  return id
end

--- Check an event name: required, at most 100 bytes unless it is a page (a URL).
-- @param v the name
-- @tparam string name parameter name for errors
-- @tparam[opt] string kind "event", "page" or "screen"
-- @treturn string
function M.event_name(v, name, kind)
  local s = check.id(v, name)
  if kind ~= "page" and #s > limits.event_name then
    fail(string.format("%s is %d bytes; the limit for an event name is %d bytes", name, #s, limits.event_name))
  end
  return s
end

--- Check event data: a table whose JSON encoding is at most 100,000 bytes.
-- @param data
-- @tparam string name
-- @treturn table data
function M.event_data(data, name)
  if data == nil then return nil end
  if type(data) ~= "table" then fail(name .. " must be a table, got " .. type(data)) end
  M.check_size(data, limits.event_data, name)
  return data
end

--- Check person attributes: names at most 150 bytes, string values at most 1000 bytes, and
-- `created_at` / `_timestamp` as timestamps. Returns the table or a converted copy.
-- @tparam table attrs
-- @tparam string name how the table is named in errors
-- @treturn table
function M.attributes(attrs, name)
  if type(attrs) ~= "table" then fail(name .. " must be a table, got " .. type(attrs)) end
  for k, v in pairs(attrs) do
    if type(k) == "string" then
      if #k > limits.attribute_name then
        fail(string.format("%s: attribute name %q is %d bytes; the limit is %d bytes",
          name, k:sub(1, 40) .. "...", #k, limits.attribute_name))
      end
      if type(v) == "string" and #v > limits.attribute_value then
        fail(string.format("%s.%s is %d bytes; the limit for an attribute value is %d bytes",
          name, k, #v, limits.attribute_value))
      end
    end
  end
  return M.timestamps(attrs, { "created_at", "_timestamp" }, name)
end

--- Raise unless v is one of "id", "email", "cio_id".
-- @param v
-- @tparam string message the error when it is not
-- @treturn string v
function M.identifier_type(v, message)
  return check.one_of(v, M.identifier_types, message)
end

local function count(t)
  local n, key = 0, nil
  for k in pairs(t) do n = n + 1; key = k end
  return n, key
end

--- Person identifiers from an id or a table of one identifier.
-- @param who string, number or `{id|email|cio_id|phone = value}`
-- @tparam[opt="customer_id"] string name parameter name for errors
-- @treturn table identifiers
function M.person(who, name)
  name = name or "customer_id"
  if type(who) ~= "table" then return { id = M.person_id(who, name) } end
  local n, key = count(who)
  if n ~= 1 then fail(name .. " must hold exactly one identifier (id, email, cio_id or phone)") end
  local v = who[key]
  if key == "id" or key == "email" or key == "cio_id" then
    M.person_id(v, name .. "." .. tostring(key))
  else
    check.required(v, name .. "." .. tostring(key))
  end
  return who
end

--- Object identifiers: `{object_type_id, object_id}` or `{cio_object_id}`.
-- @tparam table who
-- @tparam[opt="object"] string name
-- @treturn table
function M.object(who, name)
  name = name or "object"
  check.table(who, name)
  if who.cio_object_id ~= nil then
    check.required(who.cio_object_id, name .. ".cio_object_id")
    return who
  end
  check.required(who.object_type_id, name .. ".object_type_id")
  check.required(who.object_id, name .. ".object_id")
  if #tostring(who.object_id) > limits.person_id then
    fail(string.format("%s.object_id is %d bytes; the limit is %d bytes", name, #tostring(who.object_id), limits.person_id))
  end
  return who
end

local function optional(opts)
  return check.optional_table(opts, "opts")
end

local function relationships(list, name)
  check.table(list, name)
  if next(list) == nil then fail(name .. " is required") end
  return list
end

-- Operations that need nothing but their identifiers.
local function bare(type_, action, who_check)
  return function(who)
    return { type = type_, action = action, identifiers = who_check(who) }
  end
end

--- `person identify`: create or update a person.
-- @param who id or identifiers table
-- @tparam[opt] table attributes
-- @tparam[opt] table opts `timestamp`, `cio_relationships`
-- @treturn table operation
function M.identify(who, attributes, opts)
  opts = optional(opts)
  local op = { type = "person", action = "identify", identifiers = M.person(who) }
  if attributes ~= nil then op.attributes = M.attributes(attributes, "attributes") end
  if opts.timestamp ~= nil then op.timestamp = timestamp.timestamp(opts.timestamp, "opts.timestamp") end
  if opts.cio_relationships ~= nil then op.cio_relationships = relationships(opts.cio_relationships, "opts.cio_relationships") end
  return op
end

local function event(action)
  return function(who, name, data, opts)
    opts = optional(opts)
    local op = {
      type = "person", action = action, identifiers = M.person(who),
      name = M.event_name(name, "name", action),
    }
    if data ~= nil then op.attributes = M.event_data(data, "data") end
    if opts.timestamp ~= nil then op.timestamp = timestamp.timestamp(opts.timestamp, "opts.timestamp") end
    op.id = opts.id ~= nil and check.id(opts.id, "opts.id") or core.ulid()
    return op
  end
end

--- `person event`: an event, with `opts.id` or else a new ULID as its `id`.
-- @function event
-- @param who id or identifiers table
-- @tparam string name
-- @tparam[opt] table data event data (sent as `attributes`)
-- @tparam[opt] table opts `id`, `timestamp`
-- @treturn table operation
M.event = event("event")

--- `person page`: a page view; `url` is the page.
-- @function page
M.page = event("page")

--- `person screen`: a mobile screen view.
-- @function screen
M.screen = event("screen")

--- `person delete`.
-- @function delete
-- @param who
M.delete = bare("person", "delete", M.person)

--- `person suppress`.
-- @function suppress
M.suppress = bare("person", "suppress", M.person)

--- `person unsuppress`.
-- @function unsuppress
M.unsuppress = bare("person", "unsuppress", M.person)

--- Split device data as customerio-node's addDevice does: `last_used`, then every other key
-- as `attributes` (omitted when none).
-- @tparam table device the device table to fill
-- @tparam[opt] table data
-- @tparam string name
-- @treturn table device
function M.device_data(device, data, name)
  data = check.optional_table(data, name)
  local attributes, any = {}, false
  for k, v in pairs(data) do
    if k ~= "last_used" then attributes[k] = v; any = true end
  end
  local last_used = data.last_used
  if last_used ~= nil and last_used ~= false and last_used ~= 0 and not check.is_empty(last_used) then
    device.last_used = timestamp.timestamp(last_used, name .. ".last_used")
  end
  if any then device.attributes = attributes end
  return device
end

--- `person add_device`.
-- @param who
-- @tparam string token device token
-- @tparam string platform "ios" or "android"
-- @tparam[opt] table data `last_used` and device attributes
-- @treturn table operation
function M.add_device(who, token, platform, data)
  local identifiers = M.person(who)
  local device = { token = check.id(token, "token"), platform = check.id(platform, "platform") }
  return { type = "person", action = "add_device", identifiers = identifiers, device = M.device_data(device, data, "data") }
end

--- `person delete_device`.
-- @param who
-- @tparam string token
-- @treturn table operation
function M.delete_device(who, token)
  local identifiers = M.person(who)
  return { type = "person", action = "delete_device", identifiers = identifiers, device = { token = check.id(token, "token") } }
end

local merge_types = 'primary_id_type and secondary_id_type must be one of "id", "cio_id", or "email"'

--- Check merge arguments the way customerio-node's mergeCustomers does.
-- @return primary, secondary tables
function M.merge_pair(primary_id_type, primary_id, secondary_id_type, secondary_id)
  check.required(primary_id, "primary_id")
  check.required(secondary_id, "secondary_id")
  M.identifier_type(primary_id_type, merge_types)
  M.identifier_type(secondary_id_type, merge_types)
  if type(primary_id) ~= "string" and type(primary_id) ~= "number" then fail("primary_id must be a string or a number") end
  if type(secondary_id) ~= "string" and type(secondary_id) ~= "number" then fail("secondary_id must be a string or a number") end
  M.person_id(primary_id, "primary_id")
  M.person_id(secondary_id, "secondary_id")
  return { [primary_id_type] = primary_id }, { [secondary_id_type] = secondary_id }
end

--- `person merge`: merge the secondary person into the primary (the secondary is deleted).
-- @tparam string primary_id_type "id", "email" or "cio_id"
-- @param primary_id
-- @tparam string secondary_id_type
-- @param secondary_id
-- @treturn table operation
function M.merge(primary_id_type, primary_id, secondary_id_type, secondary_id)
  local primary, secondary = M.merge_pair(primary_id_type, primary_id, secondary_id_type, secondary_id)
  return { type = "person", action = "merge", primary = primary, secondary = secondary }
end

local function with_relationships(type_, action, who_check)
  return function(who, list)
    local identifiers = who_check(who)
    return { type = type_, action = action, identifiers = identifiers, cio_relationships = relationships(list, "relationships") }
  end
end

--- `person add_relationships`: relate a person to objects.
-- @function add_relationships
-- @param who
-- @tparam table relationships `{ {identifiers = {object_type_id =, object_id =}, relationship_attributes = {...}}, ... }`
M.add_relationships = with_relationships("person", "add_relationships", M.person)

--- `person delete_relationships`.
-- @function delete_relationships
M.delete_relationships = with_relationships("person", "delete_relationships", M.person)

--- `object identify`: create or update an object.
-- @tparam table object `{object_type_id =, object_id =}` or `{cio_object_id =}`
-- @tparam[opt] table attributes
-- @tparam[opt] table opts `cio_relationships` (people: `{ {identifiers = {id = "42"}}, ... }`)
-- @treturn table operation
function M.object_identify(object, attributes, opts)
  opts = optional(opts)
  local op = { type = "object", action = "identify", identifiers = M.object(object) }
  if attributes ~= nil then op.attributes = check.table(attributes, "attributes") end
  if opts.cio_relationships ~= nil then op.cio_relationships = relationships(opts.cio_relationships, "opts.cio_relationships") end
  return op
end

--- `object identify_anonymous`: an object related to anonymous people
-- (`relationships = { {identifiers = {anonymous_id = "..."}}, ... }`).
-- @tparam table object
-- @tparam[opt] table attributes
-- @tparam table list relationships
-- @treturn table operation
function M.object_identify_anonymous(object, attributes, list)
  local op = { type = "object", action = "identify_anonymous", identifiers = M.object(object) }
  if attributes ~= nil then op.attributes = check.table(attributes, "attributes") end
  op.cio_relationships = relationships(list, "relationships")
  return op
end

--- `object delete`.
-- @function object_delete
-- @tparam table object
M.object_delete = bare("object", "delete", M.object)

--- `object add_relationships`: relate an object to people.
-- @function object_add_relationships
-- @tparam table object
-- @tparam table relationships `{ {identifiers = {id = "42"}, relationship_attributes = {...}}, ... }`
M.object_add_relationships = with_relationships("object", "add_relationships", M.object)

--- `object delete_relationships`.
-- @function object_delete_relationships
M.object_delete_relationships = with_relationships("object", "delete_relationships", M.object)

--- Metrics of a `delivery event`.
M.delivery_metrics = { "opened", "converted", "delivered" }

--- `delivery event`: a metric for a message delivery (push: `{device_token = ...}`).
-- @tparam string delivery_id
-- @tparam string metric "opened", "converted" or "delivered"
-- @tparam[opt] table attributes e.g. `{device_token = "..."}`
-- @tparam[opt] table opts `timestamp`
-- @treturn table operation
function M.delivery_event(delivery_id, metric, attributes, opts)
  opts = optional(opts)
  local op = {
    type = "delivery", action = "event", identifiers = { id = check.id(delivery_id, "delivery_id") },
    name = check.one_of(metric, M.delivery_metrics, 'metric must be one of "opened", "converted" or "delivered"'),
  }
  if attributes ~= nil then op.attributes = check.table(attributes, "attributes") end
  if opts.timestamp ~= nil then op.timestamp = timestamp.timestamp(opts.timestamp, "opts.timestamp") end
  return op
end

local event_actions = { event = true, page = true, screen = true }

--- Whether an operation is a person event, page or screen (the operations that carry an `id`).
-- @tparam table op
-- @treturn boolean
function M.is_event(op)
  return op.type == "person" and event_actions[op.action] == true
end

--- Check an operation written by hand (or by a builder) before it is sent: `type` and
-- `action` present, timestamps in seconds, identifier and event-name limits, person
-- attribute limits, and the 32 KB size of one operation. With `event_ids`, an event, page or
-- screen without an `id` gets a ULID. The caller's table is not changed: a copy is returned
-- when something is added or converted.
-- @tparam table op
-- @tparam[opt="operation"] string name how it is named in errors ("operations[3]")
-- @tparam[opt=true] boolean event_ids
-- @treturn table operation
-- @treturn string its JSON encoding
function M.validate(op, name, event_ids)
  name = name or "operation"
  if type(op) ~= "table" or next(op) == nil then fail(name .. " is required") end
  check.required(op.type, name .. ".type")
  check.required(op.action, name .. ".action")
  local changes = {}
  local ids = op.identifiers
  if op.type == "person" and type(ids) == "table" then
    for _, key in ipairs({ "id", "email", "cio_id" }) do
      if type(ids[key]) == "string" or type(ids[key]) == "number" then
        M.person_id(ids[key], name .. ".identifiers." .. key)
      end
    end
  end
  if not check.is_empty(op.timestamp) then
    local s = timestamp.timestamp(op.timestamp, name .. ".timestamp")
    if s ~= op.timestamp or type(op.timestamp) ~= "number" then changes.timestamp = s end
  end
  if M.is_event(op) then
    M.event_name(op.name, name .. ".name", op.action)
    if event_ids ~= false and op.id == nil then changes.id = core.ulid() end
  elseif op.type == "person" and op.action == "identify" and type(op.attributes) == "table" then
    local attrs = M.attributes(op.attributes, name .. ".attributes")
    if attrs ~= op.attributes then changes.attributes = attrs end
  elseif op.type == "person" and op.action == "add_device" and type(op.device) == "table" then
    local device = M.timestamps(op.device, { "last_used" }, name .. ".device")
    if device ~= op.device then changes.device = device end
  end
  if next(changes) ~= nil then op = with(op, changes) end
  return op, M.check_size(op, limits.entity, name)
end

return M
