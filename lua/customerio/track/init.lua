--- Track API client: people, events, devices, segments, v2 entity and batch.
--
--     local customerio = require("customerio")
--     local track = customerio.TrackClient.new(site_id, api_key, { region = "eu" })
--     local ok, err = track:identify("42", { email = "ada@example.com", created_at = os.time() })
--     ok, err = track:track("42", "purchase", { price = 23.45 })           -- Python/Go form
--     ok, err = track:track("42", { name = "purchase", data = { price = 23.45 } })  -- Node form
--
-- Every method of customerio-node 5.2's TrackClient, in snake_case, with the same positional
-- arguments, HTTP method, path and body. A call returns the decoded response body (`{}` for
-- an empty 2xx), or `nil, err` (see `customerio.errors`); bad arguments raise with Node's
-- wording, naming our parameter (`"customer_id is required"`).
--
-- Differences from Node: every event gets an `id` (a ULID) unless it has one, so that a
-- retried event is not counted twice (option `event_ids = false` turns this off); timestamps
-- are checked (seconds, not milliseconds; ISO-8601 strings and date tables converted); and
-- Customer.io's documented size limits are checked before anything is sent.
-- @module customerio.track
local customerio = require("customerio")
local core = require("customerio.core")
local check = require("customerio.http.check")
local Client = require("customerio.http.client")
local errors = require("customerio.errors")
local ops = require("customerio.track.operations")
local timestamp = require("customerio.track.timestamp")

local fail = check.fail
local limits = ops.limits

local M = {}

--- The Track client class.
-- @type TrackClient
local TrackClient = {}
TrackClient.__index = TrackClient
M.TrackClient = TrackClient

--- The v2 operation builders (`customerio.operations`).
TrackClient.operations = ops

--- Resolve a `region` option (see `customerio.http.client.region`).
M.region = Client.region

--- Create a Track API client.
-- @tparam string site_id
-- @tparam string api_key Track API key
-- @tparam[opt] table opts `region` ("us", "eu" or `customerio.regions.US/EU`; default US),
-- `url` (Track root replacing the region's, e.g. `"http://127.0.0.1:8080/api/v1"`; v2 calls
-- use it with `/api/v1` replaced by `/api/v2`, `unsubscribe` its host root), `timeout` (ms,
-- default 10000), `connect_timeout` (ms), `retry` (see `customerio.http.retry`, `false` disables),
-- `headers`, `user_agent`, `ca_file`, `event_ids` (default true: add a ULID `id` to events),
-- `transport` (an object with `send`, e.g. the sandbox), `rate_limit` (none by default:
-- Customer.io documents the Track limit as not strictly enforced; `{track = n}` keeps this
-- client's calls to n per second, with `burst`, `max_wait`, `shared_dict`, `redis` as for
-- `APIClient`)
-- @treturn TrackClient
function TrackClient.new(site_id, api_key, opts)
  site_id = check.id(site_id, "site_id")
  api_key = check.id(api_key, "api_key")
  opts = check.optional_table(opts, "opts")
  Client.check_options(opts, { event_ids = true, rate_limit = true })
  if opts.event_ids ~= nil and type(opts.event_ids) ~= "boolean" then fail("event_ids must be a boolean") end
  local region = M.region(opts.region)
  local root = Client.root(opts, region.track .. "/api/v1", "track")
  local v2 = root:gsub("/api/v1", "/api/v2", 1)
  local host
  if root:find("/api/v1", 1, true) then
    host = root:gsub("/api/v1", "", 1)
  else
    host = root:match("^(%a[%w+.-]*://[^/?#]+)") or root
  end
  local credentials = core.base64_encode(site_id .. ":" .. api_key)
  local self = setmetatable({}, TrackClient)
  self.site_id = site_id
  self.region = region
  self.url = root
  self.v2_url = v2
  self.host_url = host
  self.event_ids = opts.event_ids ~= false
  self.client = Client.from_options(opts, {
    base_url = root, auth = "Basic " .. credentials, secrets = { api_key, credentials },
    limiter = opts.rate_limit and require("customerio.ratelimit").limiter(opts, "track", site_id .. ":" .. api_key, root),
  })
  return self
end

function TrackClient:__tostring()
  return "customerio.TrackClient (" .. self.url .. ")"
end

-- Send a request; `body` is a table (encoded, errors naming `body_name`) or a JSON string.
local NO_OPTIONS = {}
local function send(self, method, path, body, o)
  o = o or NO_OPTIONS
  local req = { base = o.base, query = o.query, rate = "track" }
  if type(body) == "string" then
    req.raw_body = body
  elseif body ~= nil then
    req.raw_body = ops.encode(body, o.body_name or "body")
  end
  return self.client:request(method, path, req)
end

-- Data-driven calls on one person: method, path suffix, body.
local person_calls = {
  destroy = { method = "DELETE" },
  suppress = { method = "POST", suffix = "suppress", body = "{}" },
  unsuppress = { method = "POST", suffix = "unsuppress", body = "{}" },
}

local function person_call(spec)
  return function(self, customer_id)
    local id = ops.person_id(customer_id, "customer_id")
    return send(self, spec.method, { "customers", id, spec.suffix }, spec.body)
  end
end

--- Create or update a person: `PUT /customers/{customer_id}` with the attributes as body.
-- `created_at` and `_timestamp` are checked as timestamps; attribute names are limited to
-- 150 bytes and string values to 1000 bytes.
-- @tparam string|number customer_id id, email, or `cio_<cio_id>`
-- @tparam[opt] table data attributes
-- @treturn table|nil decoded body, or nil and an error
function TrackClient:identify(customer_id, data)
  local id = ops.person_id(customer_id, "customer_id")
  data = ops.attributes(check.optional_table(data, "data"), "data")
  return send(self, "PUT", { "customers", id }, ops.check_size(data, limits.identify, "data"))
end

--- Delete a person: `DELETE /customers/{customer_id}`. Also named `delete`.
-- @function destroy
-- @tparam string|number customer_id
-- @treturn table|nil
TrackClient.destroy = person_call(person_calls.destroy)
TrackClient.delete = TrackClient.destroy

--- Suppress a person (delete and block the identifier): `POST /customers/{customer_id}/suppress`.
-- @function suppress
-- @tparam string|number customer_id
-- @treturn table|nil
TrackClient.suppress = person_call(person_calls.suppress)

--- Allow a suppressed identifier again: `POST /customers/{customer_id}/unsuppress`.
-- @function unsuppress
-- @tparam string|number customer_id
-- @treturn table|nil
TrackClient.unsuppress = person_call(person_calls.unsuppress)

local type_message = 'type must be one of "event", "page" or "screen"'

-- The body of a v1 event, in either form:
--   Node:      (data)                    data = {name, data, type, timestamp, id} sent as it is
--   Python/Go: (name, data, opts)        opts = {id, timestamp, type}
-- `kind` forces the event type (track_screen); `extra` adds fields (anonymous_id).
local function event_body(self, name_or_data, data, opts, kind, extra)
  local changes = extra or {}
  local body
  if type(name_or_data) == "table" then
    local d = name_or_data
    check.required(d.name, "data.name")
    local t = kind or d.type
    if t ~= nil then check.one_of(t, ops.event_types, "data." .. type_message) end
    ops.event_name(d.name, "data.name", t)
    ops.event_data(d.data, "data.data")
    if kind and d.type ~= kind then changes.type = kind end
    if not check.is_empty(d.timestamp) then
      local s = timestamp.timestamp(d.timestamp, "data.timestamp")
      if s ~= d.timestamp or type(d.timestamp) ~= "number" then changes.timestamp = s end
    end
    if self.event_ids and d.id == nil then changes.id = core.ulid() end
    body = next(changes) ~= nil and ops.with(d, changes) or d
  else
    -- Node's track(customer_id) / trackAnonymous(anonymous_id) say "data.name is required".
    if name_or_data == nil and data == nil and opts == nil and not kind then check.required(nil, "data.name") end
    opts = check.optional_table(opts, "opts")
    local t = kind or opts.type
    if t ~= nil then check.one_of(t, ops.event_types, "opts." .. type_message) end
    body = { name = ops.event_name(name_or_data, "name", t), data = ops.event_data(data, "data") }
    if t ~= nil then body.type = t end
    if not check.is_empty(opts.timestamp) then body.timestamp = timestamp.timestamp(opts.timestamp, "opts.timestamp") end
    if opts.id ~= nil then
      body.id = check.id(opts.id, "opts.id")
    elseif self.event_ids then
      body.id = core.ulid()
    end
    for k, v in pairs(changes) do body[k] = v end
  end
  return body
end

--- Send an event for a person: `POST /customers/{customer_id}/events`.
--
-- Node form `track(customer_id, data)`: `data` is the body (`name` required; `data`, `type`,
-- `timestamp`, `id`). Python/Go form `track(customer_id, name, data, opts)` with `opts.id`,
-- `opts.timestamp`, `opts.type` ("event", "page", "screen"). An `id` ULID is added unless given.
-- @tparam string|number customer_id
-- @param name_or_data event name, or the whole event table
-- @tparam[opt] table data event data (Python/Go form)
-- @tparam[opt] table opts `id`, `timestamp`, `type` (Python/Go form)
-- @treturn table|nil
function TrackClient:track(customer_id, name_or_data, data, opts)
  local id = ops.person_id(customer_id, "customer_id")
  local body = event_body(self, name_or_data, data, opts)
  return send(self, "POST", { "customers", id, "events" }, body, { body_name = "data" })
end

--- Send a mobile screen view: an event of type "screen".
-- @tparam string|number customer_id
-- @param name screen name (or a Node-style event table)
-- @tparam[opt] table data
-- @tparam[opt] table opts `id`, `timestamp`
-- @treturn table|nil
function TrackClient:track_screen(customer_id, name, data, opts)
  local id = ops.person_id(customer_id, "customer_id")
  local body = event_body(self, name, data, opts, "screen")
  return send(self, "POST", { "customers", id, "events" }, body, { body_name = "data" })
end

--- Send a page view: `{"type": "page", "name": path}` (plus `data` when given).
-- @tparam string|number customer_id
-- @tparam string path the page URL or path
-- @tparam[opt] table data
-- @tparam[opt] table opts `id`, `timestamp`
-- @treturn table|nil
function TrackClient:track_page_view(customer_id, path, data, opts)
  local id = ops.person_id(customer_id, "customer_id")
  check.required(path, "path")
  if type(path) ~= "string" then fail("path must be a string") end
  local body = event_body(self, path, data, opts, "page")
  return send(self, "POST", { "customers", id, "events" }, body, { body_name = "data" })
end

--- Send an event for an unknown person: `POST /events`, with `anonymous_id` unless it is empty
-- (an empty one makes an "invite" event, whose data must hold `recipient`).
-- Node form `track_anonymous(anonymous_id, data)` or `track_anonymous(anonymous_id, name, data, opts)`.
-- @param anonymous_id string, number, or "" / nil for none
-- @param name_or_data
-- @tparam[opt] table data
-- @tparam[opt] table opts `id`, `timestamp`, `type`
-- @treturn table|nil
function TrackClient:track_anonymous(anonymous_id, name_or_data, data, opts)
  local extra = {}
  if not check.is_empty(anonymous_id) then
    if type(anonymous_id) ~= "string" and type(anonymous_id) ~= "number" then
      fail("anonymous_id must be a string or a number, got " .. type(anonymous_id))
    end
    extra.anonymous_id = anonymous_id
  end
  local body = event_body(self, name_or_data, data, opts, nil, extra)
  return send(self, "POST", { "events" }, body, { body_name = "data" })
end

--- Report a push metric (legacy): `POST /push/events` with `data` as the body
-- (`delivery_id`, `event`, `device_id`, `timestamp`).
-- @tparam[opt] table data
-- @treturn table|nil
function TrackClient:track_push(data)
  data = ops.timestamps(check.optional_table(data, "data"), { "timestamp" }, "data")
  return send(self, "POST", { "push", "events" }, data, { body_name = "data" })
end

--- Add or update a device: `PUT /customers/{customer_id}/devices`.
-- `data.last_used` (a timestamp) goes to `device.last_used`, every other key to `device.attributes`.
-- @tparam string|number customer_id
-- @tparam string device_id the device token
-- @tparam string platform "ios" or "android"
-- @tparam[opt] table data
-- @treturn table|nil
function TrackClient:add_device(customer_id, device_id, platform, data)
  local id = ops.person_id(customer_id, "customer_id")
  check.id(device_id, "device_id") -- a number stays a number on the wire, but must be exact
  check.required(platform, "platform")
  local device = ops.device_data({ id = device_id, platform = platform }, data, "data")
  return send(self, "PUT", { "customers", id, "devices" }, { device = device })
end

--- Delete a device: `DELETE /customers/{customer_id}/devices/{device_token}`.
-- @tparam string|number customer_id
-- @tparam string device_token
-- @treturn table|nil
function TrackClient:delete_device(customer_id, device_token)
  local id = ops.person_id(customer_id, "customer_id")
  local token = check.id(device_token, "device_token")
  return send(self, "DELETE", { "customers", id, "devices", token })
end

--- Merge two people: `POST /merge_customers`; the secondary is deleted.
-- @tparam string primary_id_type "id", "email" or "cio_id"
-- @param primary_id
-- @tparam string secondary_id_type
-- @param secondary_id
-- @treturn table|nil
function TrackClient:merge_customers(primary_id_type, primary_id, secondary_id_type, secondary_id)
  local primary, secondary = ops.merge_pair(primary_id_type, primary_id, secondary_id_type, secondary_id)
  return send(self, "POST", { "merge_customers" }, { primary = primary, secondary = secondary })
end

--- Send one v2 operation: `POST /api/v2/entity` (at most 32 KB).
-- Takes a table from `customerio.operations` or one written by hand; an event, page or screen
-- without an `id` gets one.
-- @tparam table operation
-- @treturn table|nil
function TrackClient:entity(operation)
  local _, body = ops.validate(operation, "operation", self.event_ids)
  return send(self, "POST", { "entity" }, body, { base = self.v2_url })
end

-- The 207 partial failures of a batch as a list with 1-based indexes and the operations. A
-- server that echoes the request may put the credentials into `errors`: they are redacted.
local function failures(result, list, secrets)
  local failed = {}
  local errs = type(result) == "table" and result.errors
  if type(errs) == "table" then
    errors.redact({ errors = errs }, secrets)
    for _, e in ipairs(errs) do
      if type(e) == "table" then
        local i = tonumber(e.batch_index)
        local index = i and math.floor(i) + 1
        if index and math.tointeger then index = math.tointeger(index) or index end
        failed[#failed + 1] = {
          index = index, batch_index = e.batch_index, reason = e.reason, field = e.field,
          message = e.message, operation = index and list[index],
        }
      end
    end
  end
  return failed
end

--- Send v2 operations in one request: `POST /api/v2/batch` (at most 500 KB, 32 KB each).
--
-- A 207 (some operations refused) is a success: the result is the decoded body, whose
-- `errors` lists `{batch_index (0-based), reason, field, message}`, plus `failed`, the same
-- list with `index` (1-based, into `operations`) and `operation` (as sent) added; `failed`
-- is empty when every operation was accepted.
-- @tparam table operations list of operation tables
-- @treturn table|nil result with `failed`
-- @return the response, or an error
function TrackClient:batch(operations)
  if type(operations) ~= "table" or operations[1] == nil then fail("operations is required") end
  local list, parts = {}, {}
  local size = #'{"batch":[]}' - 1 -- counted as the operations are encoded: stop at the first that passes
  for i = 1, #operations do
    list[i], parts[i] = ops.validate(operations[i], "operations[" .. i .. "]", self.event_ids)
    size = size + #parts[i] + 1
    if size > limits.batch then
      fail(string.format("the batch is more than %d bytes as JSON at operations[%d]; the limit is %d bytes " ..
        "(send fewer operations per batch)", limits.batch, i, limits.batch))
    end
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. "]}"
  local result, res = send(self, "POST", { "batch" }, body, { base = self.v2_url })
  if type(result) ~= "table" then return result, res end
  result.failed = failures(result, list, self.client.secrets)
  return result, res
end

--- Look up the account's region: `GET /accounts/region` → `{url, region, environment_id}`.
-- @treturn table|nil
function TrackClient:get_account_region()
  return send(self, "GET", { "accounts", "region" })
end

local id_type_message = 'id_type must be one of "id", "cio_id", or "email"'

local function segment_call(action)
  return function(self, segment_id, customer_ids, id_type)
    local segment = check.id(segment_id, "segment_id")
    if type(customer_ids) ~= "table" or customer_ids[1] == nil then fail("customer_ids is required") end
    local n = #customer_ids
    if n > limits.segment_ids then
      fail(string.format("customer_ids has %d ids; the limit is %d per request", n, limits.segment_ids))
    end
    if id_type ~= nil then ops.identifier_type(id_type, id_type_message) end
    local ids = customerio.array()
    for i = 1, n do
      local v = customer_ids[i]
      if type(v) ~= "string" and type(v) ~= "number" then
        fail("customer_ids[" .. i .. "] must be a string or a number, got " .. type(v))
      end
      ids[i] = v
    end
    return send(self, "POST", { "segments", segment, action }, { ids = ids }, { query = { { "id_type", id_type } } })
  end
end

--- Add people to a manual segment: `POST /segments/{segment_id}/add_customers` (1 to 1000 ids).
-- @function add_customers_to_segment
-- @tparam string|number segment_id
-- @tparam table customer_ids list of ids
-- @tparam[opt] string id_type "id" (default), "email" or "cio_id"
-- @treturn table|nil
TrackClient.add_customers_to_segment = segment_call("add_customers")

--- Remove people from a manual segment: `POST /segments/{segment_id}/remove_customers`.
-- @function remove_customers_from_segment
-- @tparam string|number segment_id
-- @tparam table customer_ids
-- @tparam[opt] string id_type
-- @treturn table|nil
TrackClient.remove_customers_from_segment = segment_call("remove_customers")

--- Submit a form: `POST /forms/{form_id}/submit` with `{"data": data}`.
-- @tparam string form_id
-- @tparam table data the fields, not empty (they must identify the person: `email` or `id`, or a
-- mapped field)
-- @treturn table|nil
function TrackClient:submit_form(form_id, data)
  local form = check.id(form_id, "form_id")
  check.table(data, "data")
  -- As Node 5.2: the fields must identify the person, so an empty table is refused.
  if next(data) == nil then check.fail("data is required") end
  return send(self, "POST", { "forms", form, "submit" }, { data = data })
end

--- Report a delivery metric: `POST /metrics` with `data` as the body
-- (`delivery_id` required; `metric`, `timestamp`, `recipient`, `reason`, `href`).
-- @tparam table data
-- @treturn table|nil
function TrackClient:report_metric(data)
  data = check.optional_table(data, "data")
  check.required(data.delivery_id, "data.delivery_id")
  data = ops.timestamps(data, { "timestamp" }, "data")
  return send(self, "POST", { "metrics" }, data, { body_name = "data" })
end

--- Unsubscribe (or resubscribe) the person a delivery went to: `POST /unsubscribe/{delivery_id}`
-- at the host root, body `{"unsubscribe": true|false}`.
-- @tparam string delivery_id
-- @tparam[opt=true] boolean unsubscribe
-- @treturn table|nil
function TrackClient:unsubscribe(delivery_id, unsubscribe)
  local id = check.id(delivery_id, "delivery_id")
  if unsubscribe == nil then unsubscribe = true end
  if type(unsubscribe) ~= "boolean" then fail("unsubscribe must be a boolean") end
  return send(self, "POST", { "unsubscribe", id }, { unsubscribe = unsubscribe }, { base = self.host_url })
end

return M
