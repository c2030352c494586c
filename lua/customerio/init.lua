--- Customer.io client for Lua.
--
--     local customerio = require("customerio")
--     local track = customerio.TrackClient.new(site_id, api_key)
--     local ok, err = track:identify("42", { email = "ada@example.com" })
--
-- The C core (`customerio.core`: libcurl, cJSON, libcrypto) does the I/O and
-- JSON; this module is the public API. Clients and helpers are loaded on
-- first use.
-- @module customerio
local core = require("customerio.core")

local customerio = {}

--- Version of this library (also in the User-Agent).
customerio.version = "0.1.0"

--- JSON null: encodes as `null`; decoded JSON nulls are this value.
customerio.null = core.null

--- Mark a table as a JSON array (so that an empty one encodes as `[]`).
-- @tparam[opt] table t defaults to a new table
-- @treturn table t
function customerio.array(t)
  return setmetatable(t or {}, core.array_mt)
end

--- An empty JSON array, `[]`. Do not add to it; use `customerio.array()` for a new one.
customerio.empty_array = setmetatable({}, {
  __jsontype = "array",
  __newindex = function() error("customerio.empty_array is read-only; use customerio.array()", 2) end,
})

--- JSON encode/decode (`customerio.json.encode`, `customerio.json.decode`).
customerio.json = require("customerio.json")

--- Regions: the hosts of each API.
-- `customerio.regions.US` and `customerio.regions.EU`; a client's `region` option
-- takes one of these or the strings "us" / "eu".
customerio.regions = {
  US = { name = "us", track = "https://track.customer.io", api = "https://api.customer.io",
    cdp = "https://cdp.customer.io" },
  EU = { name = "eu", track = "https://track-eu.customer.io", api = "https://api-eu.customer.io",
    cdp = "https://cdp-eu.customer.io" },
}

--- A new ULID (26 characters, sortable by creation time), as Customer.io uses for event ids.
-- @function ulid
-- @treturn string
customerio.ulid = core.ulid

--- The User-Agent sent by the clients.
customerio.user_agent = "Customer.io Lua Client/" .. customerio.version

-- Public names that live in their own modules, loaded on first use.
local lazy = {
  TrackClient = { "customerio.track", "TrackClient" },
  APIClient = { "customerio.app", "APIClient" },
  PipelinesClient = { "customerio.pipelines", "PipelinesClient" },
  SendEmailRequest = { "customerio.app.requests", "SendEmailRequest" },
  SendPushRequest = { "customerio.app.requests", "SendPushRequest" },
  SendSMSRequest = { "customerio.app.requests", "SendSMSRequest" },
  SendWhatsAppRequest = { "customerio.app.requests", "SendWhatsAppRequest" },
  SendInboxMessageRequest = { "customerio.app.requests", "SendInboxMessageRequest" },
  SendInAppRequest = { "customerio.app.requests", "SendInAppRequest" },
  timestamp = { "customerio.track.timestamp", "timestamp" },
  operations = { "customerio.track.operations" },
  filters = { "customerio.app.filters" },
  webhooks = { "customerio.webhooks" },
  liquid = { "customerio.liquid" },
  preview = { "customerio.app.preview" },
  sandbox = { "customerio.sandbox" },
  Queue = { "customerio.queue", "Queue" },
  errors = { "customerio.errors" },
  async = { "customerio.async" },
  poll = { "customerio.async", "poll" },
}

return setmetatable(customerio, {
  __index = function(t, name)
    local where = lazy[name]
    if not where then return nil end
    local mod = require(where[1])
    local value = mod
    if where[2] then value = mod[where[2]] end
    rawset(t, name, value)
    return value
  end,
})
