--- The App API client: transactional messages, API-triggered broadcasts and the rest of
-- the App API (customers, segments, campaigns, newsletters, exports...).
--
--     local customerio = require("customerio")
--     local api = customerio.APIClient.new(os.getenv("CUSTOMERIO_APP_API_KEY"), { region = "eu" })
--
--     local res, err = api:send_email(customerio.SendEmailRequest{
--       to = "ada@example.com", identifiers = { id = "42" },
--       transactional_message_id = "password_reset",
--       message_data = { reset_url = url },
--     })
--     if not res then return nil, err end       -- err.message is Customer.io's meta.error
--     print(res.delivery_id, res.queued_at)
--
--     api:trigger_broadcast(7, { headline = "Sale" }, customerio.filters.segment(3))
--     local segments = api:list_segments()
--
-- Methods return the decoded JSON body (and the response) or `nil, err`; bad arguments
-- raise with customerio-node's wording (`"segment_id is required"`). Besides the methods
-- written here, every entry of `customerio.app.endpoints` is a method (about 150, listed in
-- docs/app_endpoints.md), with Node's positional arguments in snake_case.
-- @classmod customerio.APIClient
local core = require("customerio.core")
local check = require("customerio.http.check")
local Client = require("customerio.http.client")
local endpoints = require("customerio.app.endpoints")
local filters = require("customerio.app.filters")
local multipart = require("customerio.http.multipart")
local ratelimit = require("customerio.ratelimit")
local requests = require("customerio.app.requests")

local unpack = table.unpack or unpack

local APIClient = {}
APIClient.__index = APIClient

local M = { APIClient = APIClient }

--- Create a client.
-- @tparam string app_api_key the App API key (sent as `Authorization: Bearer <key>`)
-- @tparam[opt] table opts `region` ("us", "eu", `customerio.regions.US` / `.EU`; default US),
-- `url` (the App root, e.g. `"http://127.0.0.1:8080/v1"`; overrides `region`), `timeout` (ms,
-- default 10000), `connect_timeout` (ms), `retry` (see `customerio.http.retry`, `false` disables),
-- `headers` (extra headers), `user_agent`, `ca_file`, `transport`, `workspace_id` (sent as
-- `X-Workspace-Id` on the transactional sends, for a service-account token `sa_live_...`),
-- `rate_limit` (default on: `{app = 10, transactional = 100, broadcast_interval = 10000,
-- burst = 1, max_wait = <timeout>, shared_dict = "name", redis = "redis://..."}`, `false`
-- turns it off; see `customerio.ratelimit` and docs/app.md, "Rate limits")
-- @treturn APIClient
function APIClient.new(app_api_key, opts)
  if check.is_empty(app_api_key) then check.fail("app_api_key is required") end
  if type(app_api_key) ~= "string" then check.fail("app_api_key must be a string") end
  opts = check.optional_table(opts, "opts")
  Client.check_options(opts, { workspace_id = true, rate_limit = true })
  local region = Client.region(opts.region)
  local self = setmetatable({}, APIClient)
  self.region = region
  local root = Client.root(opts, region.api .. "/v1", "app")
  self.client = Client.from_options(opts, {
    base_url = root, auth = "Bearer " .. app_api_key, secrets = { app_api_key },
    limiter = ratelimit.limiter(opts, "app", app_api_key, root),
  })
  self.url = self.client.base_url
  local workspace = opts.workspace_id
  if workspace ~= nil then
    -- A service-account token works across workspaces; Customer.io's send endpoints take the
    -- workspace from this header.
    workspace = check.id(workspace, "workspace_id")
    if workspace:find("%c") then check.fail("workspace_id must not contain control characters") end
    self.send_headers = { ["X-Workspace-Id"] = workspace }
  end
  return self
end

--- Same as `APIClient.new`.
-- @function APIClient
setmetatable(APIClient, { __call = function(_, key, opts) return APIClient.new(key, opts) end })

function APIClient:__tostring()
  return "customerio.APIClient (" .. self.url .. ")"
end

-- Transactional messages --------------------------------------------------------------------

local function send(self, class, req)
  req = requests.coerce(class, req)
  req:validate()
  return self.client:request("POST", { "send", requests.channels[class] }, {
    body = req.message, body_name = "message", headers = self.send_headers, idempotent = false,
    rate = "transactional",
  })
end

--- Send a transactional email.
-- @tparam table req a `customerio.SendEmailRequest` or a plain table of its fields
-- @treturn table `{delivery_id = ..., queued_at = ...}`, or nil and an error whose
-- message is Customer.io's `meta.error`
-- @return response
function APIClient:send_email(req) return send(self, "SendEmailRequest", req) end

--- Send a transactional push notification (`device` goes on the wire as `custom_device`).
-- @tparam table req a `customerio.SendPushRequest` or a plain table
-- @treturn table `{delivery_id, queued_at}` or nil, err
function APIClient:send_push(req) return send(self, "SendPushRequest", req) end

--- Send a transactional SMS.
-- @tparam table req a `customerio.SendSMSRequest` or a plain table
-- @treturn table `{delivery_id, queued_at}` or nil, err
function APIClient:send_sms(req) return send(self, "SendSMSRequest", req) end

--- Send a transactional WhatsApp message.
-- @tparam table req a `customerio.SendWhatsAppRequest` or a plain table
-- @treturn table `{delivery_id, queued_at}` or nil, err
function APIClient:send_whatsapp(req) return send(self, "SendWhatsAppRequest", req) end

--- Send a transactional inbox message.
-- @tparam table req a `customerio.SendInboxMessageRequest` or a plain table
-- @treturn table `{delivery_id, queued_at}` or nil, err
function APIClient:send_inbox_message(req) return send(self, "SendInboxMessageRequest", req) end

--- Send a transactional in-app message.
-- @tparam table req a `customerio.SendInAppRequest` or a plain table
-- @treturn table `{delivery_id, queued_at}` or nil, err
function APIClient:send_in_app(req) return send(self, "SendInAppRequest", req) end

-- Broadcasts --------------------------------------------------------------------------------

-- The list audiences, in the order Node looks for them, with the flags each allows.
local LIST_AUDIENCES = {
  { "ids", { "id_ignore_missing" } },
  { "emails", { "email_ignore_missing", "email_add_duplicates" } },
  { "per_user_data", { "id_ignore_missing", "email_ignore_missing", "email_add_duplicates" } },
  { "data_file_url", { "id_ignore_missing", "email_ignore_missing", "email_add_duplicates" } },
}
local FLAGS = { id_ignore_missing = true, email_ignore_missing = true, email_add_duplicates = true }
-- Entries of ids, emails or per_user_data in one trigger.
local MAX_AUDIENCE = 10000

-- JavaScript truthiness, which decides what Node copies.
local function truthy(v)
  return v ~= nil and v ~= false and v ~= core.null and v ~= "" and v ~= 0
end

local function is_empty_table(v)
  return v == nil or v == core.null or (type(v) == "table" and next(v) == nil)
end

--- Build the body of a broadcast trigger as customerio-node 5.2 does (without sending it).
-- `data` is sent when it is a non-empty table. A list audience (`ids`, `emails`,
-- `per_user_data`, `data_file_url`) moves to the top level with the flags it allows
-- (flags that are false are left out: false is the API's default); any other non-empty
-- `recipients` is an audience filter sent as `recipients` after checking its grammar, with
-- its flags (`id_ignore_missing`, `email_ignore_missing`, `email_add_duplicates`) moved to the
-- top level.
-- @param broadcast_id broadcast id (string or number)
-- @tparam[opt] table data Liquid data (`{{trigger.<key>}}`)
-- @tparam[opt] table recipients audience
-- @treturn table body
function M.broadcast_body(broadcast_id, data, recipients)
  check.id(broadcast_id, "broadcast_id")
  local body = {}
  if not is_empty_table(data) then
    if type(data) ~= "table" then check.fail("data must be a table, got " .. type(data)) end
    body.data = data
  end
  if is_empty_table(recipients) then return body end
  if type(recipients) ~= "table" then check.fail("recipients must be a table, got " .. type(recipients)) end
  local chosen
  for _, audience in ipairs(LIST_AUDIENCES) do
    if truthy(recipients[audience[1]]) then
      if chosen then
        check.fail("recipients: give one audience, not both " .. chosen[1] .. " and " .. audience[1])
      end
      chosen = audience
    end
  end
  if not chosen then
    -- A filter audience takes the three flags too (Customer.io's "custom recipients" shape):
    -- they go at the top level, beside `recipients`, not inside the filter.
    local filter, flags = {}, false
    for k, v in pairs(recipients) do
      if FLAGS[k] then flags = true else filter[k] = v end
    end
    if not flags then filter = recipients end
    -- Only flags: the broadcast's own audience, with the flags (the "default audience" shape).
    if next(filter) ~= nil then body.recipients = filters.validate(filter, "recipients") end
    for flag in pairs(FLAGS) do
      if truthy(recipients[flag]) then body[flag] = recipients[flag] end
    end
    return body
  end
  local allowed = { [chosen[1]] = true }
  for _, flag in ipairs(chosen[2]) do allowed[flag] = true end
  for k in pairs(recipients) do
    if not allowed[k] then
      if FLAGS[k] then
        check.fail("recipients." .. k .. " does not apply to " .. chosen[1])
      elseif truthy(recipients[k]) then
        check.fail("recipients: give one audience, not both " .. chosen[1] .. " and " .. tostring(k))
      end
    end
  end
  local name, list = chosen[1], recipients[chosen[1]]
  if name == "data_file_url" then
    if type(list) ~= "string" then check.fail("recipients.data_file_url must be a URL string") end
  else
    if type(list) ~= "table" or list[1] == nil then
      check.fail("recipients." .. name .. " must be a non-empty list")
    end
    if #list > MAX_AUDIENCE then
      check.fail(string.format("recipients.%s holds %d entries; the limit is %d", name, #list, MAX_AUDIENCE))
    end
  end
  body[name] = list
  for _, flag in ipairs(chosen[2]) do
    if truthy(recipients[flag]) then body[flag] = recipients[flag] end
  end
  return body
end

--- Trigger an API-triggered broadcast.
--
-- The audience is one of: nothing (the broadcast's own audience); a filter
-- (`customerio.filters`, or a table like `{segment = {id = 3}}`), which may carry the three
-- flags (`{segment = {id = 3}, email_ignore_missing = true}`); the flags alone (the broadcast's
-- own audience with them); `{ids = {...}, id_ignore_missing = true}`;
-- `{emails = {...}, email_ignore_missing =, email_add_duplicates =}`; `{per_user_data = {...}, ...}`;
-- `{data_file_url = "https://...", ...}`. At most 1 request per 10 seconds.
-- @param broadcast_id the broadcast's id
-- @tparam[opt] table data Liquid data for the messages (`{{trigger.<key>}}`)
-- @tparam[opt] table recipients the audience
-- @treturn table `{id = <trigger id>}` or nil, err (404: "broadcast <id> not found: ...")
-- @return response
function APIClient:trigger_broadcast(broadcast_id, data, recipients)
  local body = M.broadcast_body(broadcast_id, data, recipients)
  local id = check.id(broadcast_id, "broadcast_id")
  local res, err = self.client:request("POST", { "campaigns", id, "triggers" }, {
    body = body, idempotent = false, rate = { "broadcast", id },
  })
  if not res and err and err.status == 404 then
    err.message = "broadcast " .. check.id(broadcast_id, "broadcast_id") .. " not found: " .. tostring(err.message)
  end
  return res, err
end

-- The generated methods ---------------------------------------------------------------------

local function check_enum(v, enum)
  check.one_of(v, enum.values, enum.message)
  return v
end

local function check_arg(a, v)
  local name = a.name
  if v == core.null then v = nil end
  local kind = a.kind
  if kind == "path" then
    return check.id(v, name)
  elseif kind == "id" then
    check.id(v, name)
    return v
  elseif kind == "table" then
    if v == nil then check.fail(name .. " is required") end
    if type(v) ~= "table" then check.fail(name .. " must be a table, got " .. type(v)) end
    return v
  elseif kind == "data" then
    if v == nil then return {} end
    if type(v) ~= "table" then check.fail(name .. " must be a table, got " .. type(v)) end
    return v
  elseif kind == "list" then
    if v == nil or (type(v) == "table" and v[1] == nil) then check.fail(name .. " is required") end
    if type(v) ~= "table" then check.fail(name .. " must be a list, got " .. type(v)) end
    return v
  elseif kind == "array" then
    if v == nil then check.fail(name .. " is required") end
    if type(v) ~= "table" then check.fail(name .. " must be a list, got " .. type(v)) end
    if next(v) == nil then return setmetatable({}, core.array_mt) end -- [] on the wire, not {}
    if v[1] == nil then check.fail(name .. " must be a list, got a table with named keys") end
    return v
  elseif kind == "any" then
    if v == nil then check.fail(name .. " is required") end
    return v
  elseif kind == "email" then
    if type(v) ~= "string" or check.is_empty(v) then check.fail('"' .. name .. '" must be a string') end
    return v
  elseif kind == "options" then
    if v == nil then return {} end
    if type(v) ~= "table" then check.fail(name .. " must be a table, got " .. type(v)) end
    return v
  elseif kind == "id_type" then
    return v
  end
  error("unknown argument kind " .. tostring(kind))
end

local function query_value(k, v)
  local t = type(v)
  if t == "string" or t == "number" or t == "boolean" or v == nil then return v end
  if t == "table" and (v[1] ~= nil or next(v) == nil) then return v end
  check.fail("options." .. k .. " must be a string, a number, a boolean or a list, got " .. t)
end

-- The options of a call by wire key; raises on unknown names and on two spellings of one key.
local function read_options(ep, options, validate_keys)
  local out, given_as = {}, {}
  for name, v in pairs(options) do
    local key = ep.option_names[name]
    if not key then
      if validate_keys then
        local known = {}
        for i, k in ipairs(ep.option_keys) do known[i] = k end
        local expected = #known > 0 and (" (expected " .. table.concat(known, ", ") .. ")") or " (it takes none)"
        check.fail("unknown option " .. tostring(name) .. " for " .. ep.name .. expected)
      end
    elseif v ~= nil and v ~= core.null then
      if given_as[key] and given_as[key] ~= name then
        local a, b = given_as[key], tostring(name)
        if b < a then a, b = b, a end
        check.fail("options: " .. a .. " and " .. b .. " are the same option; give one")
      end
      given_as[key] = name
      out[key] = query_value(key, v)
    end
  end
  return out
end

local function spreads_options(ep)
  return type(ep.body) == "table" and ep.body["..."] == "options"
end

local function build_multipart(file)
  if type(file.filename) ~= "string" then check.fail("file.filename must be a string") end
  local content_type = file.content_type or file.contentType
  local parent = file.parent_folder_id
  if parent == nil then parent = file.parentFolderId end
  local parts = { { name = "file", filename = file.filename, data = file.data,
    content_type = content_type } }
  if file.name ~= nil then
    parts[#parts + 1] = { name = "name", data = tostring(file.name) }
  end
  if parent ~= nil and parent ~= core.null then
    parts[#parts + 1] = { name = "parent_folder_id", data = check.id(parent, "file.parent_folder_id") }
  end
  return multipart.encode(parts)
end

--- Validate the arguments of a catalogue call and build its request options, without sending.
-- @tparam table ep entry of `customerio.app.endpoints`
-- @tparam table args positional arguments
-- @tparam number n how many were given
-- @treturn table `{method, path (segments), query (pairs), body, raw_body, content_type, body_name}`
function M.build(ep, args, n)
  if n > #ep.args then
    check.fail(string.format("%s takes %d argument%s, got %d", ep.name, #ep.args, #ep.args == 1 and "" or "s", n))
  end
  local values = {}
  for i, a in ipairs(ep.args) do
    local v = args[i]
    if v == nil or v == core.null then v = ep.defaults[a.name] end
    values[a.name] = check_arg(a, v)
    if a.name == "suppression_type" then check_enum(values[a.name], endpoints.enums.suppression_type) end
  end
  if ep.multipart then
    local data = values.file.data
    if data == nil or data == core.null then check.fail("file.data is required") end
    if type(data) ~= "string" then check.fail("file.data must be a string of bytes, got " .. type(data)) end
  end
  local options = {}
  if ep.options_index then
    options = read_options(ep, values.options, not spreads_options(ep))
  end
  for _, spec in ipairs(ep.required) do
    local root, field = spec:match("^([%w_]+)%.([%w_]+)$")
    local v
    if root == "options" then
      v = options[ep.option_names[field] or field]
    else
      v = values[root][field]
    end
    if check.is_empty(v) then check.fail(spec .. " is required") end
  end
  local query = {}
  for _, k in ipairs(ep.query) do
    local v
    if values[k] ~= nil or ep.option_names[k] == nil then v = values[k] else v = options[k] end
    if k == "id_type" and v ~= nil and ep.id_type then check_enum(v, endpoints.enums[ep.id_type]) end
    query[#query + 1] = { k, v }
  end
  local path = {}
  for i, part in ipairs(ep.path) do
    if type(part) == "table" then path[i] = values[part.param] else path[i] = part end
  end
  local req = { method = ep.method, path = path, query = query }
  if ep.multipart then
    req.raw_body, req.content_type = build_multipart(values.file)
  elseif type(ep.body) == "string" then
    req.body, req.body_name = values[ep.body], ep.body
  elseif type(ep.body) == "table" then
    local body = {}
    for k, arg in pairs(ep.body) do
      if k ~= "..." then body[k] = values[arg] end
    end
    if spreads_options(ep) then
      for k, v in pairs(values.options) do
        if body[k] == nil then body[k] = v end
      end
    end
    req.body = body
  elseif ep.method == "POST" or ep.method == "PUT" then
    req.body = {}
  end
  return req
end

local function generated(ep)
  return function(self, ...)
    local req = M.build(ep, { ... }, select("#", ...))
    return self.client:request(req.method, req.path, {
      query = req.query, body = req.body, body_name = req.body_name,
      raw_body = req.raw_body, content_type = req.content_type, idempotent = ep.idempotent, rate = "app",
    })
  end
end

for _, ep in ipairs(endpoints.list) do
  assert(APIClient[ep.name] == nil, "endpoint name clashes with a method: " .. ep.name)
  APIClient[ep.name] = generated(ep)
end

-- Anything else -----------------------------------------------------------------------------

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }

--- The rate-limit budget of a call made with `APIClient:request`: "transactional" for
-- `POST send/<channel>`, `{"broadcast", id}` for `POST campaigns/<id>/triggers`, else "app".
-- @tparam string method upper case
-- @tparam string|table path
-- @return budget name (see `customerio.ratelimit`)
function M.rate_of(method, path)
  local parts = {}
  if type(path) == "table" then
    for i, p in ipairs(path) do parts[i] = tostring(p) end
  else
    for seg in path:gsub("[?#].*$", ""):gmatch("[^/]+") do parts[#parts + 1] = seg end
  end
  if method == "POST" and #parts == 2 and parts[1] == "send" then return "transactional" end
  if method == "POST" and #parts == 3 and parts[1] == "campaigns" and parts[3] == "triggers" then
    return { "broadcast", parts[2] }
  end
  return "app"
end

--- Call any App API endpoint, for what Customer.io adds before this library does.
--
--     api:request("GET", "/segments/3/membership", { query = { limit = 10 } })
--     api:request("POST", { "segments", 3, "add_customers" }, { body = { ids = { "a" } } })
-- @tparam string method GET, POST, PUT, PATCH or DELETE
-- @tparam string|table path under the App root: a string used as it is, or segments that are
-- percent-encoded
-- @tparam[opt] table opts `query` (ordered pairs `{{k, v}}` or a map), `body` (JSON-encoded),
-- `raw_body` + `content_type`, `headers` (an `Authorization` among them raises: credentials
-- come from the client), `idempotent` (default: true for GET, PUT and DELETE, false for POST
-- and PATCH, which are replayed only when the request provably did not reach Customer.io: see
-- docs/app.md, "Retries")
-- @return decoded body and response, or nil and an error
function APIClient:request(method, path, opts)
  if type(method) ~= "string" or not METHODS[method:upper()] then
    check.fail("method must be one of GET, POST, PUT, PATCH, DELETE")
  end
  if type(path) ~= "string" and type(path) ~= "table" then
    check.fail("path must be a string or a list of segments")
  end
  opts = check.optional_table(opts, "opts")
  method = method:upper()
  local idempotent = opts.idempotent
  if idempotent == nil then idempotent = method ~= "POST" and method ~= "PATCH" end
  if type(idempotent) ~= "boolean" then check.fail("opts.idempotent must be a boolean") end
  return self.client:request(method, path, {
    query = opts.query, body = opts.body, raw_body = opts.raw_body,
    content_type = opts.content_type, headers = opts.headers, idempotent = idempotent,
    rate = M.rate_of(method, path),
  })
end

--- Iterate over the pages of a method that pages with `start` / `next` cursors.
--
--     for page, err in api:pages("get_segment_membership", 3, { limit = 1000 }) do
--       if not page then error(tostring(err)) end
--       for _, id in ipairs(page.ids) do ... end
--     end
--
-- Each step calls the method with `start` set to the previous page's `next`, and the
-- iteration ends after the page whose `next` is empty. A failed call yields `false, err` and
-- ends the iteration.
-- @tparam string name a method of the catalogue marked *pages* (docs/app_endpoints.md)
-- @param ... the method's arguments
-- @return iterator
function APIClient:pages(name, ...)
  local ep = endpoints.by_name[name]
  if not ep then check.fail("unknown App API method: " .. tostring(name)) end
  if not ep.cursor then check.fail(name .. " does not page with start/next cursors") end
  local n = select("#", ...)
  local args = { ... }
  local idx = ep.options_index
  local options = {}
  if args[idx] ~= nil then
    if type(args[idx]) ~= "table" then check.fail("options must be a table, got " .. type(args[idx])) end
    for k, v in pairs(args[idx]) do options[k] = v end
  end
  args[idx] = options
  if n < idx then n = idx end
  M.build(ep, args, n) -- raise bad arguments now, not at the first step
  local done = false
  local method = self[name]
  return function()
    if done then return nil end
    local page, err = method(self, unpack(args, 1, n))
    if not page then
      done = true
      return false, err
    end
    local nxt = type(page) == "table" and page.next or nil
    if nxt == nil or nxt == core.null or nxt == "" or nxt == options.start then
      done = true
    else
      options.start = nxt
    end
    return page
  end
end

--- The catalogue entry of a method, or nil (see `customerio.app.endpoints`).
-- @tparam string name our method name, e.g. "get_segment"
-- @treturn table|nil
function APIClient.endpoint(name)
  return endpoints.by_name[name]
end

return M
