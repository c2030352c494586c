--- Track API handlers of the sandbox (v1 and v2), as a routing table.
--
-- Each handler takes `(sb, ctx)` where `ctx` has `params` (decoded path parameters),
-- `query`, `body` (decoded JSON) and `raw_body`, and returns `status, body_table`.
-- Errors use Track's shapes: v1 `{"meta":{"errors":[...]}}`, v2 `{"errors":[{reason, field, message}]}`.
-- @module customerio.sandbox.track_api
local core = require("customerio.core")

local null = core.null

local LIMITS = {
  id = 150, attribute_name = 150, attribute_value = 1000, event_name = 100,
  event_data = 100000, entity = 32 * 1024, batch = 500 * 1024, segment_ids = 1000,
}

local function v1_error(status, ...)
  return status, { meta = { errors = { ... } } }
end

local function v2_error(reason, field, message)
  return 400, { errors = { { reason = reason, field = field, message = message } } }
end

local function is_object(v)
  local mt = getmetatable(v)
  return type(v) == "table" and not (mt and mt.__jsontype == "array")
end

local function blank(v)
  return v == nil or v == null or (type(v) == "string" and not v:find("%S"))
end

-- The attribute limits Customer.io enforces; returns an error message or nil.
local function check_attributes(attrs)
  if not is_object(attrs) then return "attributes must be an object" end
  for k, v in pairs(attrs) do
    if type(k) == "string" and #k > LIMITS.attribute_name then
      return "attribute name '" .. k:sub(1, 40) .. "...' cannot be longer than 150 bytes"
    end
    if type(v) == "string" and #v > LIMITS.attribute_value then
      return "value for attribute '" .. tostring(k) .. "' cannot be longer than 1000 bytes"
    end
  end
  return nil
end

local function check_id(ident)
  if blank(ident) then return "identifier is required" end
  if #tostring(ident) > LIMITS.id then return "identifier cannot be longer than 150 bytes" end
  return nil
end

local function encoded_size(v)
  local s = core.json_encode(v)
  return s and #s or 0
end

local function check_event(body)
  if not is_object(body) then return "body must be a JSON object" end
  if blank(body.name) then return "name is required" end
  if type(body.name) ~= "string" then return "name must be a string" end
  if #body.name > LIMITS.event_name then return "event name cannot be longer than 100 bytes" end
  if body.data ~= nil and body.data ~= null then
    if not is_object(body.data) then return "data must be an object" end
    if encoded_size(body.data) > LIMITS.event_data then return "event data cannot be larger than 100000 bytes" end
  end
  if body.timestamp ~= nil and (type(body.timestamp) ~= "number" or body.timestamp ~= math.floor(body.timestamp)) then
    return "timestamp must be an integer (seconds since the epoch)"
  end
  return nil
end

local function event_of(body, fields)
  local e = {
    name = body.name, type = body.type or "event", data = body.data ~= null and body.data or {},
    timestamp = body.timestamp, id = body.id, anonymous_id = body.anonymous_id,
  }
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

-- Operations shared by v1 endpoints and v2 batch/entity operations.
local ops = {}

function ops.identify(sb, ident, attrs)
  local err = check_id(ident) or check_attributes(attrs or {})
  if err then return nil, err end
  sb.state:identify(ident, attrs or {})
  return true
end

function ops.event(sb, ident, body)
  local err = check_id(ident) or check_event(body)
  if err then return nil, err end
  local kind = "id"
  if tostring(ident):sub(1, 4) == "cio_" then
    kind, ident = "cio_id", tostring(ident):sub(5)
  elseif tostring(ident):find("@", 1, true) and not sb.state:find_by("id", ident) then
    kind = "email"
  end
  local person, why = sb.state:ensure(kind, ident)
  if not person then
    sb.state:drop(why)
    return true
  end
  sb.state:add_event(person, event_of(body))
  return true
end

function ops.anonymous_event(sb, body)
  local err = check_event(body)
  if err then return nil, err end
  if blank(body.anonymous_id) then
    local data = is_object(body.data) and body.data or {}
    if blank(data.recipient) then
      return nil, "an event without anonymous_id is an invite event and needs data.recipient"
    end
    body.anonymous_id = nil
  end
  sb.state:add_event(nil, event_of(body))
  return true
end

local function person_for(sb, ident)
  local person = sb.state:find(ident)
  if person then return person end
  return nil
end

function ops.add_device(sb, ident, device)
  if not is_object(device) then return nil, "device is required" end
  local token = device.id or device.token
  if blank(token) then return nil, "device.id is required" end
  if device.platform ~= "ios" and device.platform ~= "android" then
    return nil, "device.platform must be ios or android"
  end
  local person = person_for(sb, ident)
  if not person then
    local why
    person, why = sb.state:ensure(tostring(ident):find("@", 1, true) and "email" or "id", ident)
    if not person then sb.state:drop(why); return true end
  end
  sb.state:add_device(person, device)
  return true
end

function ops.delete_device(sb, ident, token)
  local person = person_for(sb, ident)
  if person then sb.state:delete_device(person, token) end
  return true
end

local ID_TYPES = { id = true, email = true, cio_id = true }

local function one_identifier(obj, name)
  if not is_object(obj) then return nil, name .. " must be an object with one identifier" end
  local kind, value, n = nil, nil, 0
  for k, v in pairs(obj) do kind, value, n = k, v, n + 1 end
  if n ~= 1 or not ID_TYPES[kind] then
    return nil, name .. " must have exactly one of id, email, cio_id"
  end
  if blank(value) then return nil, name .. "." .. kind .. " is required" end
  return kind, value
end

function ops.merge(sb, body)
  if not is_object(body) then return nil, "body must be an object", 400 end
  local pk, pv = one_identifier(body.primary, "primary")
  if not pk then return nil, pv, 400 end
  local sk, sv = one_identifier(body.secondary, "secondary")
  if not sk then return nil, sv, 400 end
  local ok, err = sb.state:merge(pk, pv, sk, sv)
  if not ok then return nil, err, 404 end
  return true
end

-- v1 handlers -----------------------------------------------------------------------

local function v1(result, err, status)
  if not result then return v1_error(status or 400, err) end
  return 200, {}
end

local routes = {}
local function route(method, pattern, fn)
  routes[#routes + 1] = { method = method, pattern = pattern, handler = fn }
end

route("PUT", "/api/v1/customers/:id", function(sb, ctx)
  if not is_object(ctx.body) then return v1_error(400, "body must be a JSON object") end
  return v1(ops.identify(sb, ctx.params.id, ctx.body))
end)

route("DELETE", "/api/v1/customers/:id", function(sb, ctx)
  sb.state:delete(ctx.params.id)
  return 200, {}
end)

route("POST", "/api/v1/customers/:id/suppress", function(sb, ctx)
  sb.state:suppress(ctx.params.id)
  return 200, {}
end)

route("POST", "/api/v1/customers/:id/unsuppress", function(sb, ctx)
  sb.state:unsuppress(ctx.params.id)
  return 200, {}
end)

route("POST", "/api/v1/customers/:id/events", function(sb, ctx)
  return v1(ops.event(sb, ctx.params.id, ctx.body))
end)

route("POST", "/api/v1/events", function(sb, ctx)
  return v1(ops.anonymous_event(sb, ctx.body))
end)

route("PUT", "/api/v1/customers/:id/devices", function(sb, ctx)
  if not is_object(ctx.body) then return v1_error(400, "body must be a JSON object") end
  return v1(ops.add_device(sb, ctx.params.id, ctx.body.device))
end)

route("DELETE", "/api/v1/customers/:id/devices/:token", function(sb, ctx)
  return v1(ops.delete_device(sb, ctx.params.id, ctx.params.token))
end)

route("POST", "/api/v1/merge_customers", function(sb, ctx)
  return v1(ops.merge(sb, ctx.body))
end)

local function segment_membership(add)
  return function(sb, ctx)
    local id_type = ctx.query.id_type or "id"
    if not ID_TYPES[id_type] then return v1_error(400, "id_type must be one of id, email, cio_id") end
    local ids = type(ctx.body) == "table" and ctx.body.ids or nil
    if type(ids) ~= "table" or #ids == 0 then return v1_error(400, "ids is required") end
    if #ids > LIMITS.segment_ids then return v1_error(400, "at most 1000 ids per request") end
    local people = {}
    for _, id in ipairs(ids) do
      local person = sb.state:find_by(id_type, id)
      if person then people[#people + 1] = person end
    end
    local ok, err = sb.segments:set_manual(ctx.params.segment_id, people, add)
    if not ok then return v1_error(404, err) end
    return 200, {}
  end
end
route("POST", "/api/v1/segments/:segment_id/add_customers", segment_membership(true))
route("POST", "/api/v1/segments/:segment_id/remove_customers", segment_membership(false))

local METRICS = {
  opened = true, clicked = true, converted = true, delivered = true, bounced = true,
  deferred = true, dropped = true, spammed = true, failed = true, sent = true, unsubscribed = true,
}

route("POST", "/api/v1/metrics", function(sb, ctx)
  local b = ctx.body
  if not is_object(b) or blank(b.delivery_id) then return v1_error(400, "delivery_id is required") end
  if not METRICS[b.metric] then return v1_error(400, "metric is not valid: " .. tostring(b.metric)) end
  sb.metrics[#sb.metrics + 1] = b
  return 200, {}
end)

route("POST", "/api/v1/push/events", function(sb, ctx)
  sb.metrics[#sb.metrics + 1] = ctx.body
  return 200, {}
end)

route("POST", "/api/v1/forms/:form_id/submit", function(sb, ctx)
  local data = is_object(ctx.body) and ctx.body.data
  if not is_object(data) then return v1_error(400, "data is required") end
  if blank(data.email) and blank(data.id) then return v1_error(400, "data needs an email or an id") end
  sb.forms[#sb.forms + 1] = { form_id = ctx.params.form_id, data = data }
  local ident = not blank(data.id) and data.id or data.email
  local attrs = {}
  for k, v in pairs(data) do attrs[k] = v end
  sb.state:identify(ident, attrs)
  return 204, nil
end)

route("POST", "/unsubscribe/:delivery_id", function(sb, ctx)
  local delivery = sb.deliveries[ctx.params.delivery_id]
  if not delivery then return v1_error(400, "delivery " .. ctx.params.delivery_id .. " not found") end
  if not is_object(ctx.body) or type(ctx.body.unsubscribe) ~= "boolean" then
    return v1_error(400, "unsubscribe must be true or false")
  end
  local person = sb.state:find_by("cio_id", delivery.cio_id)
  if person then sb.state:identify("cio_" .. person.cio_id, { unsubscribed = ctx.body.unsubscribe }) end
  return 200, {}
end)

route("GET", "/api/v1/accounts/region", function(sb)
  return 200, { url = "https://track.customer.io", region = "us", environment_id = sb.environment_id }
end)

-- v2 ---------------------------------------------------------------------------------

local function v2_identifier(op)
  local kind, value = one_identifier(op.identifiers, "identifiers")
  if not kind then return nil, value end
  if kind == "cio_id" then return "cio_" .. tostring(value) end
  return value
end

local person_actions = {}
function person_actions.identify(sb, op, ident)
  local attrs = {}
  for k, v in pairs(is_object(op.attributes) and op.attributes or {}) do attrs[k] = v end
  local kind = next(op.identifiers)
  if kind == "email" and attrs.email == nil then attrs.email = op.identifiers.email end
  return ops.identify(sb, ident, attrs)
end
function person_actions.delete(sb, _, ident) sb.state:delete(ident); return true end
function person_actions.suppress(sb, _, ident) sb.state:suppress(ident); return true end
function person_actions.unsuppress(sb, _, ident) sb.state:unsuppress(ident); return true end
local function v2_event(kind)
  return function(sb, op, ident)
    return ops.event(sb, ident, {
      name = op.name, type = kind, data = op.attributes, timestamp = op.timestamp, id = op.id,
    })
  end
end
person_actions.event, person_actions.page, person_actions.screen = v2_event("event"), v2_event("page"), v2_event("screen")
function person_actions.add_device(sb, op, ident)
  local d = op.device
  if not is_object(d) or blank(d.token) then return nil, "device.token is required" end
  return ops.add_device(sb, ident, { id = d.token, platform = d.platform, last_used = d.last_used, attributes = d.attributes })
end
function person_actions.delete_device(sb, op, ident)
  if not is_object(op.device) or blank(op.device.token) then return nil, "device.token is required" end
  return ops.delete_device(sb, ident, op.device.token)
end
function person_actions.add_relationships(sb, _, ident)
  return sb.state:find(ident) ~= nil or nil, "person does not exist"
end
person_actions.delete_relationships = person_actions.add_relationships

local function apply(sb, op)
  if not is_object(op) then return nil, "operation must be an object", "type" end
  if op.type == "person" then
    if op.action == "merge" then
      local ok, err = ops.merge(sb, op)
      return ok, err, "primary"
    end
    local fn = person_actions[op.action]
    if not fn then return nil, "unknown person action " .. tostring(op.action), "action" end
    local ident, err = v2_identifier(op)
    if not ident then return nil, err, "identifiers" end
    local ok, why = fn(sb, op, ident)
    return ok, why, "attributes"
  elseif op.type == "object" then
    local ids = op.identifiers
    if not is_object(ids) or blank(ids.object_type_id) or blank(ids.object_id) then
      return nil, "identifiers needs object_type_id and object_id", "identifiers"
    end
    if op.action == "identify" or op.action == "identify_anonymous" or op.action == "add_relationships" then
      sb.state:identify_object(ids.object_type_id, ids.object_id, op.attributes, op.cio_relationships)
      return true
    elseif op.action == "delete" then
      local of_type = sb.state.objects[tostring(ids.object_type_id)]
      if of_type then of_type[tostring(ids.object_id)] = nil end
      return true
    end
    return nil, "unknown object action " .. tostring(op.action), "action"
  elseif op.type == "delivery" then
    sb.metrics[#sb.metrics + 1] = op
    return true
  end
  return nil, "unknown type " .. tostring(op.type), "type"
end

route("POST", "/api/v2/entity", function(sb, ctx)
  if #ctx.raw_body > LIMITS.entity then return v2_error("too_large", "", "request is larger than 32 KB") end
  local ok, err, field = apply(sb, ctx.body)
  if not ok then return v2_error("invalid", field or "", err) end
  return 200, {}
end)

route("POST", "/api/v2/batch", function(sb, ctx)
  if #ctx.raw_body > LIMITS.batch then return v2_error("too_large", "", "request is larger than 500 KB") end
  local list = is_object(ctx.body) and ctx.body.batch
  if type(list) ~= "table" or #list == 0 then return v2_error("required", "batch", "batch must be a non-empty array") end
  local failures = {}
  for i, op in ipairs(list) do
    local ok, err, field
    if encoded_size(op) > LIMITS.entity then
      ok, err, field = nil, "operation is larger than 32 KB", ""
    else
      ok, err, field = apply(sb, op)
    end
    if not ok then
      failures[#failures + 1] = { batch_index = i - 1, reason = "invalid", field = field or "", message = err }
    end
  end
  if #failures > 0 then return 207, { errors = failures } end
  return 200, {}
end)

return { routes = routes, ops = ops, LIMITS = LIMITS }
