--- Pipelines (CDP) client: identify, track, page, screen, group, alias and batch.
--
--     local cdp = customerio.PipelinesClient.new(write_key, { region = "eu", strict_mode = true })
--     local ok, err = cdp:track({ userId = "42", event = "Order Completed", properties = { total = 20.48 } })
--
-- As customerio-node 5.2's PipelinesClient: payload keys are the API's (camelCase: `userId`,
-- `anonymousId`, `groupId`, `previousId`, `traits`, `properties`, `context`, `integrations`),
-- and every payload gets the envelope: `messageId` (a UUID v4), `timestamp` (ISO-8601 UTC with
-- milliseconds) and `context.library` (`{name = "customerio-lua", version = ...}`), each only
-- when the caller gave none; `default_context` is merged under every `context`.
-- @module customerio.pipelines
local customerio = require("customerio")
local core = require("customerio.core")
local check = require("customerio.http.check")
local Client = require("customerio.http.client")
local ops = require("customerio.track.operations")
local timestamp = require("customerio.track.timestamp")

local fail = check.fail
local unpack = table.unpack or unpack -- luacheck: ignore 143

local M = {}

--- Pipelines' documented limits: bigger payloads are answered 200 and dropped, so they are refused here.
M.limits = { request = 32 * 1024, batch = 500 * 1024 }

--- The Pipelines client class.
-- @type PipelinesClient
local PipelinesClient = {}
PipelinesClient.__index = PipelinesClient
M.PipelinesClient = PipelinesClient

--- A random UUID v4 ("3b241101-e2bb-4255-8caf-4136c566a962").
-- @treturn string
function M.uuid()
  local b = { core.random_bytes(16):byte(1, 16) }
  b[7] = b[7] % 16 + 64   -- version 4
  b[9] = b[9] % 64 + 128  -- variant 10xx
  return string.format("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", unpack(b))
end

--- The current time as ISO-8601 UTC with milliseconds.
-- @treturn string
function M.now()
  return timestamp.iso8601(core.now_ms())
end

local extra_options = { strict_mode = true, default_context = true }

--- Create a Pipelines client.
-- @tparam string write_key the source's write key
-- @tparam[opt] table opts `region` ("us", "eu" or `customerio.regions.US/EU`), `url` (root
-- replacing the region's, e.g. `"http://127.0.0.1:8080/v1"`), `strict_mode` (send
-- `X-Strict-Mode: 1`: invalid payloads get real HTTP errors instead of being dropped),
-- `default_context` (merged under every payload's `context`), `timeout`, `connect_timeout`,
-- `retry`, `headers`, `user_agent`, `ca_file`, `transport`
-- @treturn PipelinesClient
function PipelinesClient.new(write_key, opts)
  write_key = check.id(write_key, "write_key")
  opts = check.optional_table(opts, "opts")
  Client.check_options(opts, extra_options)
  local region = Client.region(opts.region)
  local root = Client.root(opts, region.cdp .. "/v1", "cdp")
  local headers = {}
  for k, v in pairs(check.optional_table(opts.headers, "headers")) do headers[k] = v end
  if opts.strict_mode then Client.set_header(headers, "X-Strict-Mode", "1") end
  local credentials = core.base64_encode(write_key .. ":")
  local self = setmetatable({}, PipelinesClient)
  self.region = region
  self.url = root
  self.strict_mode = opts.strict_mode and true or false
  self.default_context = check.optional_table(opts.default_context, "default_context")
  self.library = { name = "customerio-lua", version = customerio.version }
  self.client = Client.from_options(opts, {
    base_url = root, auth = "Basic " .. credentials, headers = headers, secrets = { write_key, credentials },
  })
  return self
end

function PipelinesClient:__tostring()
  return "customerio.PipelinesClient (" .. self.url .. ")"
end

-- What each kind of call requires; `p` is the payload, `at` a prefix for batch items.
local ID_KEYS = { "userId", "anonymousId", "groupId", "previousId" }

local function who(p, at)
  if check.is_empty(p.userId) and check.is_empty(p.anonymousId) then
    fail(at .. "userId or anonymousId is required")
  end
  for _, key in ipairs(ID_KEYS) do -- numeric ids go out as numbers: they must be exact
    if type(p[key]) == "number" then check.id(p[key], at .. key) end
  end
end

local requires = {
  identify = who,
  page = who,
  screen = who,
  track = function(p, at)
    who(p, at)
    check.required(p.event, at .. "event")
  end,
  group = function(p, at)
    who(p, at)
    check.required(p.groupId, at .. "groupId")
  end,
  alias = function(p, at)
    check.required(p.userId, at .. "userId")
    check.required(p.previousId, at .. "previousId")
    who(p, at)
  end,
}

--- The kinds of call, as a batch item's `type` names them.
M.types = { "identify", "track", "page", "screen", "group", "alias" }

-- The payload with the envelope filled in (the caller's table is not changed).
local function envelope(self, payload, at)
  local context = {}
  for k, v in pairs(self.default_context) do context[k] = v end
  local given = payload.context
  if given ~= nil then
    if type(given) ~= "table" then fail(at .. "context must be a table") end
    for k, v in pairs(given) do context[k] = v end
  end
  context.library = given and given.library or self.library
  local changes = { context = context }
  if payload.messageId == nil then changes.messageId = M.uuid() end
  local ts = payload.timestamp
  if ts == nil then
    changes.timestamp = M.now()
  elseif type(ts) ~= "string" then
    changes.timestamp = timestamp.iso8601(timestamp.timestamp(ts, at .. "timestamp") * 1000)
  end
  return ops.with(payload, changes)
end

local function payload_table(payload, at)
  if payload == nil then return {} end
  if type(payload) ~= "table" then fail((at == "" and "payload" or at) .. " must be a table, got " .. type(payload)) end
  return payload
end

local function call(kind)
  return function(self, payload)
    payload = payload_table(payload, "")
    requires[kind](payload, "")
    local body = ops.check_size(envelope(self, payload, ""), M.limits.request, "payload")
    return self.client:request("POST", { kind }, { raw_body = body })
  end
end

--- Identify a person: `POST /identify` (`userId` or `anonymousId`; `traits`).
-- @function identify
-- @tparam table payload
-- @treturn table|nil decoded body, or nil and an error
PipelinesClient.identify = call("identify")

--- Record an event: `POST /track` (`userId` or `anonymousId`, `event`; `properties`).
-- @function track
-- @tparam table payload
-- @treturn table|nil
PipelinesClient.track = call("track")

--- Record a page view: `POST /page` (`userId` or `anonymousId`; `name`, `properties`).
-- @function page
-- @tparam table payload
-- @treturn table|nil
PipelinesClient.page = call("page")

--- Record a screen view: `POST /screen` (`userId` or `anonymousId`; `name`, `properties`).
-- @function screen
-- @tparam table payload
-- @treturn table|nil
PipelinesClient.screen = call("screen")

--- Associate a person with a group: `POST /group` (`userId` or `anonymousId`, `groupId`; `traits`).
-- @function group
-- @tparam table payload
-- @treturn table|nil
PipelinesClient.group = call("group")

--- Link two identities: `POST /alias` (`userId`, `previousId`).
-- @function alias
-- @tparam table payload
-- @treturn table|nil
PipelinesClient.alias = call("alias")

--- Send several calls in one request: `POST /batch` with `{"batch": [...]}`; each item names its
-- kind in `type` ("identify", "track", "page", "screen", "group", "alias") and gets the envelope.
-- At most 32 KB an item and 500 KB in all.
-- @tparam table items
-- @treturn table|nil
function PipelinesClient:batch(items)
  if type(items) ~= "table" or items[1] == nil then fail("items is required") end
  local parts = {}
  local size = #'{"batch":[]}' - 1 -- counted as the items are encoded: stop at the first that passes
  for i = 1, #items do
    local at = "items[" .. i .. "]"
    local item = items[i]
    if type(item) ~= "table" then fail(at .. " must be a table, got " .. type(item)) end
    check.one_of(item.type, M.types,
      at .. '.type must be one of "identify", "track", "page", "screen", "group" or "alias"')
    requires[item.type](item, at .. ".")
    parts[i] = ops.check_size(envelope(self, item, at .. "."), M.limits.request, at)
    size = size + #parts[i] + 1
    if size > M.limits.batch then
      fail(string.format("the batch is more than %d bytes as JSON at %s; the limit is %d bytes", M.limits.batch, at,
        M.limits.batch))
    end
  end
  local body = '{"batch":[' .. table.concat(parts, ",") .. "]}"
  return self.client:request("POST", { "batch" }, { raw_body = body })
end

return M
