--- A local Customer.io for tests and demos: an in-memory emulation of the Track and App APIs.
--
-- Use it in-process as a transport, so calls take the same path as over HTTP (auth, JSON,
-- status codes, error objects):
--
--     local sb = customerio.sandbox.new()
--     local track = customerio.TrackClient.new("site", "key", { transport = sb })
--     local api = customerio.APIClient.new("app-key", { transport = sb })
--     sb:add_transactional("password_reset", { from = "...", subject = "...", body = "..." })
--     api:send_email({ transactional_message_id = "password_reset", identifiers = { id = "42" }, ... })
--     print(sb.outbox[1].subject)
--
-- or over HTTP with `make sandbox` (nginx on 127.0.0.1, see `customerio.sandbox.server`).
--
-- What it emulates: people (identify rules, attributes with their types, `_update`,
-- anonymous events, devices, delete, suppress/unsuppress, event dedup by id, merge), manual
-- and data-driven segments (type comparisons are strict; Customer.io does not document its
-- own), transactional messages rendered with
-- `customerio.liquid` into `sb.outbox` (a missing variable fails the delivery, as at
-- Customer.io), API-triggered broadcasts (every audience variant and flag), the segment and
-- customer App API endpoints, and optionally the documented rate and size limits.
-- @module customerio.sandbox
local core = require("customerio.core")
local State = require("customerio.sandbox.state")
local Segments = require("customerio.sandbox.segments")
local track_api = require("customerio.sandbox.track_api")
local app_api = require("customerio.sandbox.app_api")
local adapter = require("customerio.transport.sandbox")
local fail = require("customerio.http.check").fail

local Sandbox = {}
Sandbox.__index = Sandbox

local sandbox = { Sandbox = Sandbox }

local null = core.null

local function compile(routes)
  local out = {}
  for _, r in ipairs(routes) do
    local parts = {}
    for seg in r.pattern:gmatch("[^/]+") do parts[#parts + 1] = seg end
    out[#out + 1] = { method = r.method, parts = parts, handler = r.handler }
  end
  return out
end

local ROUTES = compile(track_api.routes)
for _, r in ipairs(compile(app_api.routes)) do ROUTES[#ROUTES + 1] = r end

-- The rate limits the sandbox enforces by default: Customer.io's documented limits (App API
-- overview: 10 requests/s for the App API, 100/s for transactional sends, one trigger per
-- 10 s per API-triggered broadcast; the Track spec's 1000/s), as GCRA per API with a
-- tolerance of one second's worth of requests (a client that spaces its calls evenly is not
-- refused because of network jitter) and, for broadcasts, of a tenth of the interval.
sandbox.RATE_LIMITS = { app = 10, transactional = 100, track = 1000, broadcast_interval = 10000 }

local function rate_limits(opt)
  if opt == false then return nil end
  if opt == nil or opt == true then opt = {} end
  if type(opt) ~= "table" then fail("rate_limits must be a table, true or false") end
  local out = {}
  for k in pairs(opt) do
    if sandbox.RATE_LIMITS[k] == nil then
      fail("unknown rate_limits option: " .. tostring(k) .. " (expected app, transactional, track, broadcast_interval)")
    end
  end
  for k, default in pairs(sandbox.RATE_LIMITS) do
    local v = opt[k]
    if v == nil then v = default end
    if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
      fail("rate_limits." .. k .. " must be a positive number" ..
        (k == "broadcast_interval" and " of milliseconds" or " of requests per second"))
    end
    out[k] = v
  end
  return out
end
sandbox.rate_limits = rate_limits

--- Create a sandbox.
-- @tparam[opt] table opts
--   `site_id`, `api_key` (Track credentials to require; any Basic credentials when unset),
--   `app_key` (App API key to require; any Bearer token when unset),
--   `strict_liquid` (default true: a missing variable fails the delivery),
--   `rate_limits` (default on: answer 429 with `Retry-After` over Customer.io's documented
--   limits, `sandbox.RATE_LIMITS`; a table overrides numbers, e.g. `{broadcast_interval = 300}`;
--   `false` turns them off),
--   `clock` (function returning Unix seconds, default os.time)
-- @return sandbox (also a transport: `sb:send(request)`)
function sandbox.new(opts)
  opts = opts or {}
  local self = setmetatable({
    site_id = opts.site_id, api_key = opts.api_key, app_key = opts.app_key,
    strict_liquid = opts.strict_liquid ~= false, rate_limits = rate_limits(opts.rate_limits),
    now = opts.clock or os.time, name = "sandbox", skew_ms = 0,
  }, Sandbox)
  self.templates_cache = {}
  self:reset()
  return self
end

--- Forget all people, segments, messages, templates and broadcasts.
function Sandbox:reset()
  self.state = State.new(self.now)
  self.segments = Segments.new(self.state)
  self.state:on_change(function(person)
    if person.deleted then self.removed[#self.removed + 1] = { person = person, at = self.now() } end
  end)
  self.outbox = {}            -- messages delivered, in order
  self.deliveries = {}        -- delivery_id -> delivery (sent, failed, suppressed)
  self.delivery_list = {}
  self.transactional = {}     -- id (string) -> template
  self.transactional_by_name = {}
  self.broadcasts = {}        -- id (string) -> broadcast
  self.broadcast_list = {}
  self.triggers = {}          -- trigger id -> trigger
  self.trigger_list = {}
  self.data_files = {}
  self.metrics = {}
  self.forms = {}
  self.log = {}               -- every request: {method, path, status}
  self.requests = {}          -- the last MAX_REQUESTS requests in full (see record), oldest first
  self.request_serial = 0
  self.removed = {}           -- people deleted, suppressed or merged away: {person, at}
  self.version = 0            -- bumped by every recorded request: pages poll it to refresh
  self.rate_state = require("customerio.ratelimit.memory").new({ private = true,
    clock = function() return self:clock_ms() end })
  self.environment_id = 1
  self.serial = 0
end

local function next_serial(self)
  self.serial = self.serial + 1
  return self.serial
end

-- Registration -------------------------------------------------------------------------

--- Register a transactional message template.
-- @param id_or_name a number (the message id) or a string (its trigger name; a numeric string is an id)
-- @tparam table template `type` ("email" default, "push", "sms", "whatsapp", "inbox_message",
--   "in_app"), `name`, and the parts: email `from`, `subject`, `body`, `body_plain`,
--   `preheader`, `reply_to`; push `title`, `message`, `image_url`, `link`; sms `body`...
-- @treturn table the template (with its `id`)
function Sandbox:add_transactional(id_or_name, template)
  if type(template) ~= "table" then fail("template must be a table") end
  local t = {}
  for k, v in pairs(template) do t[k] = v end
  t.type = t.type or "email"
  local id = tonumber(id_or_name)
  if id then
    t.id = id
  else
    if type(id_or_name) ~= "string" or id_or_name == "" then fail("id_or_name must be a number or a name") end
    t.trigger_name = id_or_name
    t.id = 1000 + next_serial(self)
    self.transactional_by_name[id_or_name:lower()] = t
  end
  self.transactional[tostring(t.id)] = t
  return t
end

--- Register an API-triggered broadcast.
-- @param id broadcast id
-- @tparam table def `segment` (id of its default audience) or `filter` (audience filter),
--   `template` (parts as for transactional), `type` ("email" default), `name`
function Sandbox:add_broadcast(id, def)
  if type(def) ~= "table" then fail("broadcast definition must be a table") end
  local b = { id = tonumber(id) or id, name = def.name or ("Broadcast " .. tostring(id)), type = def.type or "email",
    segment = def.segment, filter = def.filter, template = def.template or {}, created_at = self.now() }
  self.broadcasts[tostring(id)] = b
  self.broadcast_list[#self.broadcast_list + 1] = b
  return b
end

--- Register a segment: `{id = 3, name = "Power users", filter = {...}}` (data-driven) or
-- `{id = 7, name = "Beta", manual = true}`. Raises on an invalid filter.
function Sandbox:add_segment(def)
  local seg, err = self.segments:add(def)
  if not seg then fail(err) end
  return seg
end

--- Register the rows behind a broadcast `data_file_url` (the sandbox fetches nothing).
-- @tparam string url
-- @tparam table rows list of `{id = ..., data = {...}}` or `{email = ..., data = {...}}`
function Sandbox:add_data_file(url, rows)
  self.data_files[url] = rows
end

-- Inspection ---------------------------------------------------------------------------

--- A person by identifier (`id`, email, or `cio_<id>`), or nil.
function Sandbox:person(ident)
  return self.state:find(ident)
end

--- A plain view of a person (what `/__sandbox/people/<ident>` returns), or nil:
-- `{id, email, cio_id, attributes, events, devices, segments}` with JSON-ready arrays.
function Sandbox:person_view(ident)
  local p = type(ident) == "table" and ident or self.state:find(ident)
  if not p then return nil end
  local devices = setmetatable({}, core.array_mt)
  for _, token in ipairs(p.device_order) do devices[#devices + 1] = p.devices[token] end
  local segments = setmetatable({}, core.array_mt)
  for _, seg in ipairs(self.segments:of(p)) do segments[#segments + 1] = seg.id end
  return {
    id = p.id or null, email = p.email or null, cio_id = p.cio_id, attributes = p.attributes,
    events = setmetatable(p.events, core.array_mt), devices = devices, segments = segments,
  }
end

--- Everyone, in creation order.
function Sandbox:people()
  return self.state:list()
end

--- The identifiers (id, else email) of a segment's members.
-- @treturn table|nil list of strings, nil for an unknown segment
function Sandbox:segment_members(id)
  local members = self.segments:members(id)
  if not members then return nil end
  local out = {}
  for i, p in ipairs(members) do out[i] = p.id or p.email or ("cio_" .. p.cio_id) end
  return out
end

--- Whether a person is in a segment.
function Sandbox:in_segment(ident, id)
  local p = self.state:find(ident)
  return p ~= nil and self.segments:member(p, id)
end

--- The last message in the outbox sent to a person (by id, email or cio_id), or nil.
function Sandbox:last_message(ident)
  local p = self.state:find(ident)
  for i = #self.outbox, 1, -1 do
    local m = self.outbox[i]
    if (p and m.cio_id == p.cio_id) or m.to == ident then return m end
  end
  return nil
end

-- Delivery -------------------------------------------------------------------------------

--- Render a Liquid source with the sandbox's strictness (templates are cached).
-- @treturn string|nil output, or nil and an error
function Sandbox:render(source, context)
  local liquid = require("customerio.liquid")
  local tpl = self.templates_cache[source]
  if not tpl then
    local err
    tpl, err = liquid.parse(source)
    if not tpl then return nil, err end
    self.templates_cache[source] = tpl
  end
  return tpl:render(context, { strict = self.strict_liquid })
end

function Sandbox:new_delivery(fields)
  local d = fields
  d.id = string.format("sbx_%06d%s", next_serial(self), core.hex(core.random_bytes(4)))
  d.created_at = self.now()
  d.status = "queued"
  self.deliveries[d.id] = d
  self.delivery_list[#self.delivery_list + 1] = d
  return d
end

--- Finish a delivery: into the outbox, or failed with the rendering problems.
function Sandbox:deliver(delivery, parts, problems, extra)
  if #problems > 0 then
    delivery.status = "failed"
    delivery.error = table.concat(problems, "; ")
    return
  end
  delivery.status = "sent"
  local m = { delivery_id = delivery.id, type = delivery.type, cio_id = delivery.cio_id, created_at = delivery.created_at,
    transactional_message_id = delivery.transactional_message_id, broadcast_id = delivery.broadcast_id,
    trigger_id = delivery.trigger_id, message_data = delivery.message_data }
  for k, v in pairs(parts) do m[k] = v end
  for k, v in pairs(extra or {}) do if v ~= null then m[k] = v end end
  self.outbox[#self.outbox + 1] = m
end

function Sandbox:new_trigger(broadcast)
  local t = { id = next_serial(self), broadcast_id = broadcast.id, created_at = self.now(),
    errors = {}, skipped = {}, deliveries = {} }
  self.triggers[t.id] = t
  self.trigger_list[#self.trigger_list + 1] = t
  return t
end

-- Requests received ---------------------------------------------------------------------

--- How many requests `sb.requests` keeps (the oldest are forgotten).
sandbox.MAX_REQUESTS = 500
--- How much of a request or response body `sb.requests` keeps.
sandbox.MAX_BODY = 64 * 1024

-- The credentials a request carries (to mask them): the Basic password, the Bearer token.
local function credentials_in(authorization, secrets)
  if type(authorization) ~= "string" then return nil end
  local b64 = authorization:match("^Basic%s+(%S+)$")
  if b64 then
    local site, key = (core.base64_decode(b64) or ""):match("^([^:]*):(.*)$")
    if key and key ~= "" then secrets[#secrets + 1] = key end
    return "Basic " .. (site and (site .. ":****") or "****")
  end
  local scheme, token = authorization:match("^(%S+)%s+(%S+)$")
  if token then secrets[#secrets + 1] = token; return scheme .. " ****" end
  secrets[#secrets + 1] = authorization
  return "****"
end

local function clip(s)
  if type(s) ~= "string" then return nil end
  if #s > sandbox.MAX_BODY then return s:sub(1, sandbox.MAX_BODY) .. "\n[... " .. (#s - sandbox.MAX_BODY) .. " more bytes]" end
  return s
end

--- Record a request for the inbox's Requests page, with its credentials masked: the
-- Authorization header shows only the site id (Basic) or the scheme (Bearer), and every
-- occurrence of the key, token and configured keys in the bodies becomes `[REDACTED]`.
-- @tparam table r `{method, path, query, headers, body, status, response, ms, fault}`
-- @treturn table the entry kept in `sb.requests` (with `seq` and `at`)
function Sandbox:record(r)
  local errors = require("customerio.errors")
  local secrets = { self.api_key, self.app_key }
  local headers = {}
  for k, v in pairs(r.headers or {}) do
    if type(v) == "table" then v = table.concat(v, ", ") end
    if k:lower() == "authorization" then v = credentials_in(v, secrets) end
    headers[#headers + 1] = { k, tostring(v) }
  end
  table.sort(headers, function(a, b) return a[1]:lower() < b[1]:lower() end)
  self.request_serial = self.request_serial + 1
  self.version = self.version + 1
  local entry = {
    seq = self.request_serial, at = core.now_ms() / 1000,
    method = r.method, path = r.path, query = r.query ~= "" and r.query or nil, status = r.status,
    ms = r.ms, fault = r.fault, headers = headers,
    body = errors.redact_text(clip(r.body), secrets), response = errors.redact_text(clip(r.response), secrets),
  }
  self.log[#self.log + 1] = { method = r.method, path = r.path, status = r.status }
  local list = self.requests
  list[#list + 1] = entry
  if #list > sandbox.MAX_REQUESTS then table.remove(list, 1) end
  return entry
end

-- Requests ------------------------------------------------------------------------------

local function hexval(h) return string.char(tonumber(h, 16)) end

local function decode_component(s)
  return (s:gsub("%%(%x%x)", hexval))
end

local function parse_query(q)
  local out = {}
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    out[decode_component(k:gsub("+", " "))] = decode_component(v:gsub("+", " "))
  end
  return out
end

local function match(route, method, parts)
  if route.method ~= method or #route.parts ~= #parts then return nil end
  local params = {}
  for i, p in ipairs(route.parts) do
    if p:sub(1, 1) == ":" then
      params[p:sub(2)] = decode_component(parts[i])
    elseif p ~= parts[i] then
      return nil
    end
  end
  return params
end

local function header(headers, name)
  for k, v in pairs(headers or {}) do
    if k:lower() == name then return v end
  end
  return nil
end

local function api_of(path)
  if path:sub(1, 8) == "/api/v1/" or path:sub(1, 8) == "/api/v2/" or path:sub(1, 13) == "/unsubscribe/" then
    return "track"
  end
  if path:sub(1, 9) == "/v1/send/" then return "transactional" end
  if path:match("^/v1/campaigns/[^/]+/triggers$") then return "broadcast" end
  return "app"
end

local function check_auth(self, api, authorization)
  if api == "track" then
    local b64 = type(authorization) == "string" and authorization:match("^Basic (%S+)$")
    local creds = b64 and core.base64_decode(b64)
    local site, key = (creds or ""):match("^([^:]*):(.*)$")
    if not site or site == "" then return false end
    if self.site_id and (site ~= self.site_id or key ~= self.api_key) then return false end
    return true
  end
  local token = type(authorization) == "string" and authorization:match("^Bearer (%S+)$")
  if not token then return false end
  return self.app_key == nil or token == self.app_key
end

--- The sandbox's clock for rate limits, in ms: monotonic time plus what in-process clients
-- "slept" (`customerio.transport.sandbox.sleep`).
function Sandbox:clock_ms()
  return core.monotonic_ms() + self.skew_ms
end

-- The budget a request falls in: key, interval (ms), tolerance (requests), documented message.
local function rate_budget(limits, api, path)
  if api == "broadcast" then
    local id = path:match("^/v1/campaigns/([^/]+)/triggers$")
    return "broadcast:" .. id, limits.broadcast_interval, 1,
      "Too many requests: broadcast " .. id .. " can be triggered once every " ..
      string.format("%g", limits.broadcast_interval / 1000) .. " seconds."
  end
  local per_second = limits[api]
  local n = string.format("%g", per_second)
  local message = api == "app" and ("Your request is over the " .. n .. "-per-second limit.")
    or ("Your request is over the " .. n .. "-per-second limit of the " ..
      (api == "track" and "Track API." or "transactional API."))
  return api, 1000 / per_second, math.max(1, math.floor(per_second)), message
end

-- How early a broadcast trigger may arrive: a tenth of the interval, at most 1 s (a client
-- that spaces triggers by the interval is not refused because its earlier request took longer
-- to arrive than its later one).
local function tolerance(api, limits)
  if api ~= "broadcast" then return 0 end
  return math.min(limits.broadcast_interval / 10, 1000)
end

-- Seconds until the request would conform (a Retry-After value, at least 1), or nil: accepted.
local function over_rate(self, api, path)
  local limits = self.rate_limits
  if not limits then return nil end
  local key, interval, burst, message = rate_budget(limits, api, path)
  local wait, over = self.rate_state:reserve(key, interval, burst, tolerance(api, limits))
  if wait then return nil end
  return math.max(1, math.ceil(over / 1000)), message
end

local function respond(status, body)
  local text = ""
  if body ~= nil then text = assert(core.json_encode(body)) end
  return { status = status, headers = { ["content-type"] = "application/json; charset=utf-8" }, body = text }
end

--- Handle a request given as its parts (used by `send` and by the nginx glue).
function Sandbox:handle(method, path, query, headers, raw_body)
  local api = api_of(path)
  local is_unsubscribe = path:sub(1, 13) == "/unsubscribe/"
  if not is_unsubscribe and not check_auth(self, api == "track" and "track" or "app", header(headers, "authorization")) then
    if api == "track" then
      return respond(401, { meta = { error = "Unauthorized request. Make sure that you provided the right credentials." } })
    end
    return respond(401, { errors = { { detail = "Unauthorized: invalid App API key", status = "401" } } })
  end
  local retry_after, message = over_rate(self, api, path)
  if retry_after then
    local res = respond(429, { meta = { error = message } })
    res.headers["retry-after"] = tostring(retry_after)
    return res
  end
  raw_body = raw_body or ""
  if api == "transactional" and #raw_body > 2048 * 1024 then
    return respond(400, { meta = { error = "Request entity must be JSON encoded and not exceed 2048 KB." } })
  end
  local body = null
  if raw_body:find("%S") then
    local v, err = core.json_decode(raw_body, { ordered = true })
    if v == nil and err then
      if api == "track" then return respond(400, { meta = { errors = { "invalid JSON: " .. err } } }) end
      return respond(400, { meta = { error = "Request entity must be JSON encoded and not exceed 2048 KB." } })
    end
    body = v
  end
  local parts = {}
  for seg in path:gmatch("[^/]+") do parts[#parts + 1] = seg end
  local path_known = false
  for _, route in ipairs(ROUTES) do
    local params = match(route, method, parts)
    if params then
      local status, out = route.handler(self, { params = params, query = parse_query(query), body = body,
        raw_body = raw_body, headers = headers })
      return respond(status, out)
    end
    if not path_known and match(route, route.method, parts) then path_known = true end
  end
  if path_known then
    return respond(405, { errors = { { detail = "Method Not Allowed", status = "405" } } })
  end
  return respond(404, { errors = { { detail = "the sandbox does not emulate " .. method .. " " .. path, status = "404" } } })
end

-- The sandbox is a transport (`send`, `sleep`): see customerio.transport.sandbox.
Sandbox.send = adapter.send
Sandbox.sleep = adapter.sleep
Sandbox.rate_limit_backend = adapter.rate_limit_backend

sandbox.new_state = State.new

return sandbox
