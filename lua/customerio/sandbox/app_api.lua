--- App API handlers of the sandbox: transactional sends, broadcast triggers, segments and
-- customer lookups, answered from the sandbox's state.
--
-- Errors use the App API's shapes: transactional `{"meta":{"error": "..."}}`, the rest
-- `{"errors":[{"detail": "...", "status": "..."}]}`.
-- @module customerio.sandbox.app_api
local core = require("customerio.core")

local null = core.null

local function is_object(v)
  local mt = getmetatable(v)
  return type(v) == "table" and not (mt and mt.__jsontype == "array")
end

local function array(t)
  return setmetatable(t or {}, core.array_mt)
end

local function blank(v)
  return v == nil or v == null or (type(v) == "string" and not v:find("%S"))
end

local function meta_error(status, message)
  return status, { meta = { error = message } }
end

local function api_error(status, detail, pointer)
  local e = { detail = detail, status = tostring(status) }
  if pointer then e.source = { pointer = pointer } end
  return status, { errors = { e } }
end

local routes = {}
local function route(method, pattern, fn)
  routes[#routes + 1] = { method = method, pattern = pattern, handler = fn }
end

-- Transactional ----------------------------------------------------------------------

local IDENTIFIER_KINDS = { "id", "email", "cio_id" }

local function one_identifier(identifiers)
  if not is_object(identifiers) then return nil, "identifiers is required" end
  local kind, n = nil, 0
  for k in pairs(identifiers) do kind, n = k, n + 1 end
  local known = false
  for _, k in ipairs(IDENTIFIER_KINDS) do if k == kind then known = true end end
  if n ~= 1 or not known then return nil, "identifiers must contain exactly one of id, email or cio_id" end
  if blank(identifiers[kind]) then return nil, "identifiers." .. kind .. " is required" end
  return kind, identifiers[kind]
end

-- Which fields of a template each channel renders.
local PARTS = {
  email = { "from", "subject", "body", "body_plain", "body_amp", "preheader", "reply_to", "bcc", "to" },
  push = { "title", "message", "image_url", "link" },
  sms = { "body", "from", "to" },
  whatsapp = { "body", "from", "to" },
  inbox_message = { "title", "body" },
  in_app = { "title", "body" },
}

local function find_template(sb, channel, id)
  if blank(id) then return nil end
  local t = sb.transactional[tostring(id)]
  if not t and type(id) == "string" then t = sb.transactional_by_name[id:lower()] end
  if t and t.type ~= channel then return nil, t end
  return t
end

local function render_parts(sb, template, msg, context, channel)
  local parts, problems = {}, {}
  for _, part in ipairs(PARTS[channel]) do
    local source = msg[part] ~= nil and msg[part] ~= null and msg[part] or template and template[part]
    if type(source) == "string" then
      local out, err = sb:render(source, context)
      if out then
        parts[part] = out
      else
        problems[#problems + 1] = part .. ": " .. tostring(err)
      end
    end
  end
  return parts, problems
end

local function send(channel)
  return function(sb, ctx)
    local msg = ctx.body
    if not is_object(msg) then
      return meta_error(400, "Request entity must be JSON encoded and not exceed 2048 KB.")
    end
    local kind, value = one_identifier(msg.identifiers)
    if not kind then return meta_error(400, value) end
    local template, other = find_template(sb, channel, msg.transactional_message_id)
    if blank(msg.transactional_message_id) then
      if channel ~= "email" or blank(msg.from) or blank(msg.subject) or blank(msg.body) then
        return meta_error(400, '"transactional_message_id" is required unless the email carries from, subject and body')
      end
    elseif not template then
      if other then
        return meta_error(400, '"transactional_message_id" ' .. tostring(msg.transactional_message_id)
          .. " is a " .. other.type .. " message, not " .. channel)
      end
      return meta_error(400, '"transactional_message_id" not found')
    end
    local person, why = sb.state:ensure(kind, value)
    local delivery = sb:new_delivery({
      type = channel, transactional_message_id = msg.transactional_message_id,
      identifiers = msg.identifiers, message_data = msg.message_data,
    })
    if not person then
      delivery.status, delivery.error = "suppressed", why
      return 200, { delivery_id = delivery.id, queued_at = delivery.created_at }
    end
    delivery.cio_id = person.cio_id
    if msg.send_to_unsubscribed == false and person.attributes.unsubscribed == true then
      delivery.status, delivery.error = "suppressed", "person is unsubscribed"
      return 200, { delivery_id = delivery.id, queued_at = delivery.created_at }
    end
    local data = is_object(msg.message_data) and msg.message_data or {}
    local context = { trigger = data, customer = sb.state:customer(person) }
    local parts, problems = render_parts(sb, template, msg, context, channel)
    if channel == "email" and not parts.to then parts.to = person.email end
    if channel == "email" and blank(parts.to) then problems[#problems + 1] = "to: the person has no email address" end
    sb:deliver(delivery, parts, problems, { attachments = msg.attachments, send_at = msg.send_at })
    return 200, { delivery_id = delivery.id, queued_at = delivery.created_at }
  end
end

for channel in pairs(PARTS) do route("POST", "/v1/send/" .. channel, send(channel)) end

-- Broadcasts ------------------------------------------------------------------------

local AUDIENCE_KEYS = { "ids", "emails", "per_user_data", "data_file_url", "recipients" }

local function merge(a, b)
  local out = {}
  for k, v in pairs(a or {}) do out[k] = v end
  for k, v in pairs(b or {}) do out[k] = v end
  return out
end

-- Who a trigger reaches: a list of {person, data} and a list of per-recipient errors.
local function audience(sb, broadcast, body)
  local chosen
  for _, k in ipairs(AUDIENCE_KEYS) do
    if body[k] ~= nil and body[k] ~= null then
      if chosen then return nil, "only one of ids, emails, per_user_data, data_file_url, recipients can be given" end
      chosen = k
    end
  end
  local out, errs = {}, {}
  local function add(person, data) out[#out + 1] = { person = person, data = data } end
  local function by_email(email, data)
    local matches = {}
    for _, p in ipairs(sb.state:list()) do
      if p.email and p.email:lower() == tostring(email):lower() then matches[#matches + 1] = p end
    end
    if #matches == 0 then
      if not body.email_ignore_missing then errs[#errs + 1] = { email = email, reason = "email not found" } end
    elseif #matches > 1 and not body.email_add_duplicates then
      errs[#errs + 1] = { email = email, reason = "email belongs to more than one person" }
    else
      for _, p in ipairs(matches) do add(p, data) end
    end
  end
  local function by_id(id, data)
    local person = sb.state:find_by("id", id)
    if person then add(person, data)
    elseif not body.id_ignore_missing then errs[#errs + 1] = { id = id, reason = "id not found" } end
  end
  if chosen == nil then
    local def = broadcast.filter or (broadcast.segment and { segment = { id = broadcast.segment } })
    if not def then return nil, "the broadcast has no audience: give recipients, ids, emails or per_user_data" end
    for _, p in ipairs(sb.segments:select(def)) do add(p) end
  elseif chosen == "recipients" then
    if not is_object(body.recipients) or next(body.recipients) == nil then
      return nil, "empty recipients filter is not valid"
    end
    local ok, err = require("customerio.sandbox.segments").validate(body.recipients, "recipients")
    if not ok then return nil, err end
    for _, p in ipairs(sb.segments:select(body.recipients)) do add(p) end
  elseif chosen == "ids" then
    if #body.ids > 10000 then return nil, "ids can hold at most 10000 entries" end
    for _, id in ipairs(body.ids) do by_id(id) end
  elseif chosen == "emails" then
    for _, email in ipairs(body.emails) do by_email(email) end
  elseif chosen == "per_user_data" then
    if #body.per_user_data > 10000 then return nil, "per_user_data can hold at most 10000 entries" end
    for _, entry in ipairs(body.per_user_data) do
      if not blank(entry.id) then by_id(entry.id, entry.data)
      elseif not blank(entry.email) then by_email(entry.email, entry.data)
      else errs[#errs + 1] = { reason = "entry has neither id nor email" } end
    end
  elseif chosen == "data_file_url" then
    local lines = sb.data_files[body.data_file_url]
    if not lines then return nil, "data_file_url could not be fetched: register it with sb:add_data_file(url, rows)" end
    for _, entry in ipairs(lines) do
      if not blank(entry.id) then by_id(entry.id, entry.data) else by_email(entry.email, entry.data) end
    end
  end
  return out, errs
end

route("POST", "/v1/campaigns/:broadcast_id/triggers", function(sb, ctx)
  local broadcast = sb.broadcasts[tostring(ctx.params.broadcast_id)]
  if not broadcast then return api_error(404, "The broadcast_id does not exist.") end
  local body = is_object(ctx.body) and ctx.body or {}
  if body.data ~= nil and body.data ~= null and not is_object(body.data) then
    return api_error(422, "data must be an object", "/data")
  end
  local recipients, errs = audience(sb, broadcast, body)
  if not recipients then return api_error(422, errs) end
  local trigger = sb:new_trigger(broadcast)
  for _, e in ipairs(errs) do trigger.errors[#trigger.errors + 1] = e end
  local shared = is_object(body.data) and body.data or {}
  for _, r in ipairs(recipients) do
    local person = r.person
    if person.attributes.unsubscribed == true then
      trigger.skipped[#trigger.skipped + 1] = { cio_id = person.cio_id, reason = "unsubscribed" }
    else
      local data = merge(shared, is_object(r.data) and r.data or nil)
      local delivery = sb:new_delivery({
        type = broadcast.type, broadcast_id = broadcast.id, trigger_id = trigger.id,
        message_data = data, cio_id = person.cio_id,
      })
      local context = { trigger = data, customer = sb.state:customer(person) }
      local parts, problems = render_parts(sb, broadcast.template, {}, context, broadcast.type)
      if broadcast.type == "email" and not parts.to then parts.to = person.email end
      sb:deliver(delivery, parts, problems)
      if delivery.status == "failed" then
        trigger.errors[#trigger.errors + 1] = { cio_id = person.cio_id, reason = delivery.error }
      else
        trigger.deliveries[#trigger.deliveries + 1] = delivery.id
      end
    end
  end
  trigger.processed_at = sb.now()
  return 200, { id = trigger.id }
end)

local function trigger_view(t)
  return { id = t.id, broadcast_id = t.broadcast_id, created_at = t.created_at, processed_at = t.processed_at }
end

route("GET", "/v1/campaigns/:broadcast_id/triggers/:trigger_id", function(sb, ctx)
  local t = sb.triggers[tonumber(ctx.params.trigger_id)]
  if not t or tostring(t.broadcast_id) ~= tostring(ctx.params.broadcast_id) then
    return api_error(404, "trigger not found")
  end
  return 200, trigger_view(t)
end)

route("GET", "/v1/campaigns/:broadcast_id/triggers/:trigger_id/errors", function(sb, ctx)
  local t = sb.triggers[tonumber(ctx.params.trigger_id)]
  if not t or tostring(t.broadcast_id) ~= tostring(ctx.params.broadcast_id) then
    return api_error(404, "trigger not found")
  end
  return 200, { errors = array(t.errors), next = "" }
end)

route("GET", "/v1/broadcasts/:broadcast_id/triggers", function(sb, ctx)
  local broadcast = sb.broadcasts[tostring(ctx.params.broadcast_id)]
  if not broadcast then return api_error(404, "The broadcast_id does not exist.") end
  local list = array()
  for _, t in ipairs(sb.trigger_list) do
    if t.broadcast_id == broadcast.id then list[#list + 1] = trigger_view(t) end
  end
  return 200, { triggers = list }
end)

local function broadcast_view(b)
  return { id = b.id, name = b.name, type = b.type, created = b.created_at }
end

route("GET", "/v1/broadcasts", function(sb)
  local list = array()
  for _, b in ipairs(sb.broadcast_list) do list[#list + 1] = broadcast_view(b) end
  return 200, { broadcasts = list }
end)

route("GET", "/v1/broadcasts/:broadcast_id", function(sb, ctx)
  local b = sb.broadcasts[tostring(ctx.params.broadcast_id)]
  if not b then return api_error(404, "The broadcast_id does not exist.") end
  return 200, { broadcast = broadcast_view(b) }
end)

-- Segments ---------------------------------------------------------------------------

local function segment_view(seg)
  return {
    id = seg.id, name = seg.name, description = seg.description, type = seg.type,
    state = "finished", progress = null, deduplicate_id = seg.id .. ":" .. seg.created_at, tags = null,
  }
end

local function identifiers_of(p)
  return { id = p.id or null, email = p.email or null, cio_id = p.cio_id }
end

route("GET", "/v1/segments", function(sb)
  local list = array()
  for _, seg in ipairs(sb.segments.list) do list[#list + 1] = segment_view(seg) end
  return 200, { segments = list }
end)

route("POST", "/v1/segments", function(sb, ctx)
  local def = is_object(ctx.body) and ctx.body.segment
  if not is_object(def) or blank(def.name) then return api_error(400, "segment.name is required") end
  local seg, err = sb.segments:add({ name = def.name, description = def.description, manual = true })
  if not seg then return api_error(400, err) end
  return 200, { segment = segment_view(seg) }
end)

local function with_segment(fn)
  return function(sb, ctx)
    local seg = sb.segments.by_id[tonumber(ctx.params.segment_id)]
    if not seg then return api_error(404, "segment " .. tostring(ctx.params.segment_id) .. " not found") end
    return fn(sb, ctx, seg)
  end
end

route("GET", "/v1/segments/:segment_id", with_segment(function(_, _, seg)
  return 200, { segment = segment_view(seg) }
end))

route("DELETE", "/v1/segments/:segment_id", with_segment(function(sb, _, seg)
  sb.segments:remove(seg.id)
  return 204, nil
end))

route("GET", "/v1/segments/:segment_id/customer_count", with_segment(function(sb, _, seg)
  return 200, { count = #sb.segments:members(seg.id) }
end))

route("GET", "/v1/segments/:segment_id/membership", with_segment(function(sb, ctx, seg)
  local members = sb.segments:members(seg.id)
  local start = tonumber(ctx.query.start) or 0
  local limit = tonumber(ctx.query.limit) or 1000
  local ids, identifiers = array(), array()
  for i = start + 1, math.min(#members, start + limit) do
    identifiers[#identifiers + 1] = identifiers_of(members[i])
    ids[#ids + 1] = members[i].id or null
  end
  local next_start = start + limit < #members and tostring(start + limit) or ""
  return 200, { identifiers = identifiers, ids = ids, next = next_start }
end))

route("GET", "/v1/segments/:segment_id/used_by", with_segment(function(sb, _, seg)
  local broadcasts = array()
  for _, b in ipairs(sb.broadcast_list) do
    if tostring(b.segment) == tostring(seg.id) then broadcasts[#broadcasts + 1] = b.id end
  end
  return 200, { used_by = { broadcasts = broadcasts, campaigns = array(), newsletters = array(), sent_newsletters = array() } }
end))

-- Customers --------------------------------------------------------------------------

local function customer_view(sb, p)
  local attrs = {}
  for k, v in pairs(p.attributes) do attrs[k] = v end
  attrs.cio_id = p.cio_id
  local devices = array()
  for _, token in ipairs(p.device_order) do
    local d = p.devices[token]
    devices[#devices + 1] = { id = d.token, platform = d.platform, last_used = d.last_used or null }
  end
  return {
    id = p.id or null, email = p.email or null, cio_id = p.cio_id, attributes = attrs,
    timestamps = { cio_id = p.created_at }, unsubscribed = p.attributes.unsubscribed == true,
    devices = devices, identifiers = identifiers_of(p),
    segments = (function()
      local list = array()
      for _, seg in ipairs(sb.segments:of(p)) do list[#list + 1] = seg.id end
      return list
    end)(),
  }
end

local function person_by(sb, ctx)
  local id_type = ctx.query.id_type or "id"
  if id_type ~= "id" and id_type ~= "email" and id_type ~= "cio_id" then
    return nil, api_error(400, "id_type must be one of id, email, cio_id")
  end
  local p = sb.state:find_by(id_type, ctx.params.customer_id)
  if not p then return nil, api_error(404, "customer not found") end
  return p
end

route("GET", "/v1/customers", function(sb, ctx)
  local email = ctx.query.email
  if blank(email) then return api_error(400, "email is required") end
  local results = array()
  for _, p in ipairs(sb.state:list()) do
    if p.email and p.email:lower() == email:lower() then results[#results + 1] = identifiers_of(p) end
  end
  return 200, { results = results }
end)

route("GET", "/v1/customers/:customer_id/attributes", function(sb, ctx)
  local p, status, body = person_by(sb, ctx)
  if not p then return status, body end
  return 200, { customer = customer_view(sb, p) }
end)

route("GET", "/v1/customers/:customer_id/segments", function(sb, ctx)
  local p, status, body = person_by(sb, ctx)
  if not p then return status, body end
  local list = array()
  for _, seg in ipairs(sb.segments:of(p)) do list[#list + 1] = segment_view(seg) end
  return 200, { segments = list }
end)

route("GET", "/v1/customers/:customer_id/messages", function(sb, ctx)
  local p, status, body = person_by(sb, ctx)
  if not p then return status, body end
  local list = array()
  for _, m in ipairs(sb.outbox) do
    if m.cio_id == p.cio_id then list[#list + 1] = { id = m.delivery_id, type = m.type, created = m.created_at } end
  end
  return 200, { messages = list, next = "" }
end)

route("POST", "/v1/customers/attributes", function(sb, ctx)
  local ids = is_object(ctx.body) and ctx.body.ids
  if type(ids) ~= "table" or #ids == 0 then return api_error(400, "ids is required") end
  if #ids > 100 then return api_error(400, "at most 100 ids") end
  local list = array()
  for _, id in ipairs(ids) do
    local p = sb.state:find_by(ctx.query.id_type or "id", id)
    if p then list[#list + 1] = customer_view(sb, p) end
  end
  return 200, { customers = list }
end)

-- A delivery as the App API's getMessage shows it: `metrics` holds the timestamp of each
-- metric reached (`sent`; `failed` with `failure_message` for a template that did not render;
-- `dropped` for a suppressed or unsubscribed person); the sandbox sends at once, so a delivery
-- is never left queued.
route("GET", "/v1/messages/:message_id", function(sb, ctx)
  local d = sb.deliveries[ctx.params.message_id]
  if not d then return api_error(404, "message not found") end
  local person = d.cio_id and sb.state.people[d.cio_id]
  local metrics = { created = d.created_at }
  local metric = ({ sent = "sent", failed = "failed", suppressed = "dropped" })[d.status]
  if metric then metrics[metric] = d.created_at end
  return 200, { message = {
    id = d.id, created = d.created_at, type = d.type,
    customer_identifiers = person and identifiers_of(person) or null,
    transactional_message_id = d.transactional_message_id or null,
    broadcast_id = d.broadcast_id or null, trigger_id = d.trigger_id or null,
    metrics = metrics, failure_message = d.error or null,
  } }
end)

return { routes = routes, PARTS = PARTS }
