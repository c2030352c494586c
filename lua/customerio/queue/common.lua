--- What the two delivery queues share (`customerio.queue.thread`, `customerio.queue.ngx`):
-- the enqueue methods, which build and check a Track v2 operation and end in the queue's
-- own `push_json`; the limits of a batch; option checks; the errors of a refused operation.
-- @module customerio.queue.common
local core = require("customerio.core")
local check = require("customerio.http.check")
local errors = require("customerio.errors")
local ops = require("customerio.track.operations")

local fail = check.fail

local M = {}

--- Customer.io's limit for one operation, in bytes of JSON.
M.OP_BYTES = 32 * 1024
--- Customer.io's limit for one batch request body, in bytes.
M.BATCH_BYTES = 500 * 1024
--- Bytes a batch body adds around its operations (`{"batch":[` and `]}`), from the C worker that writes them.
M.BATCH_OVERHEAD = core.queue_batch_overhead

--- The largest operation a queue with this `batch_bytes` takes.
-- @tparam number batch_bytes
-- @treturn number
function M.op_bytes(batch_bytes)
  return math.min(M.OP_BYTES, batch_bytes - M.BATCH_OVERHEAD)
end

--- An integer option of at least `min`, or `default` when nil (raises otherwise).
function M.count(v, name, min, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge or v ~= math.floor(v) then
    fail(name .. " must be an integer of at least " .. min)
  end
  return v
end

--- The options table, checked against the names a queue knows and for `on_error`.
-- @tparam[opt] table opts
-- @tparam table known set of option names
-- @treturn table opts (an empty table when nil)
function M.options(opts, known)
  opts = check.optional_table(opts, "opts")
  for k in pairs(opts) do
    if not known[k] then fail("unknown option: " .. tostring(k)) end
  end
  if opts.on_error ~= nil and type(opts.on_error) ~= "function" then fail("on_error must be a function") end
  return opts
end

--- The error object of a refused operation (`why` is "full", "too_large" or "closed").
-- Reads `self.max_events`, `self.max_bytes` and `self.op_bytes`.
function M.refused(self, why, size)
  if why == "full" then
    return errors.new({
      kind = "queue_full",
      message = string.format("queue is full (max_events %d, max_bytes %d); operation dropped",
        self.max_events, self.max_bytes),
    })
  elseif why == "too_large" then
    return errors.new({
      kind = "too_large",
      message = string.format("operation is %d bytes as JSON; the limit is %d bytes", size, self.op_bytes),
    })
  end
  return errors.new({ kind = "closed", message = "queue is closed" })
end

local methods = {}

local ENCODE_OPTS = { root = "operation" }

-- Encode and enqueue a built operation.
local function enqueue(self, op)
  local json, err = core.json_encode(op, ENCODE_OPTS)
  if not json then fail(err) end
  return self:push_json(json)
end

--- Enqueue a v2 operation written by hand (or by `customerio.operations`): checked like
-- `TrackClient:entity`; an event, page or screen without an `id` gets a ULID.
-- @tparam table op
-- @return true, or nil and an error
function methods:entity(op)
  local ok, checked, json = pcall(ops.validate, op, "operation", true)
  if not ok then
    -- Over 32 KB: refused (and counted) like any other operation, not raised.
    if type(checked) == "string" and checked:find("bytes as JSON; the limit is", 1, true) then
      return enqueue(self, op)
    end
    error(checked, 0)
  end
  return self:push_json(json)
end

--- Create or update a person (`person identify`).
-- @param customer_id an id, or a table of one identifier (`{email = ...}`, `{cio_id = ...}`)
-- @tparam[opt] table attributes
-- @tparam[opt] table opts `timestamp`, `cio_relationships`
-- @return true, or nil and an error
function methods:identify(customer_id, attributes, opts)
  return enqueue(self, ops.identify(customer_id, attributes, opts))
end

local builders = { event = ops.event, page = ops.page, screen = ops.screen }
local type_message = 'type must be one of "event", "page" or "screen"'

-- An event operation from either calling form of TrackClient:track.
local function event_op(who, name_or_data, data, opts, kind, identifiers)
  local op
  if type(name_or_data) == "table" then
    local d = name_or_data
    check.required(d.name, "data.name")
    local t = kind or d.type or "event"
    if builders[t] == nil then check.one_of(t, ops.event_types, "data." .. type_message) end
    op = builders[t](who, d.name, d.data, { id = d.id, timestamp = d.timestamp })
  else
    if name_or_data == nil and data == nil and opts == nil and not kind then check.required(nil, "data.name") end
    local t = kind or (opts ~= nil and check.optional_table(opts, "opts").type) or "event"
    local build = builders[t]
    if build == nil then check.one_of(t, ops.event_types, "opts." .. type_message) end
    op = build(who, name_or_data, data, opts)
  end
  if identifiers then
    op.identifiers = nil
    for k, v in pairs(identifiers) do op[k] = v end
  end
  return op
end

--- Send an event for a person (`person event`; `page`/`screen` with `type`).
-- Node form `track(customer_id, {name =, data =, type =, timestamp =, id =})` or
-- Python form `track(customer_id, name, data, opts)`. Gets a ULID `id` unless given.
-- @return true, or nil and an error
function methods:track(customer_id, name_or_data, data, opts)
  return enqueue(self, event_op(customer_id, name_or_data, data, opts))
end

--- A mobile screen view.
-- @return true, or nil and an error
function methods:track_screen(customer_id, name, data, opts)
  return enqueue(self, event_op(customer_id, name, data, opts, "screen"))
end

--- A page view; `path` is the page URL or path.
-- @return true, or nil and an error
function methods:track_page_view(customer_id, path, data, opts)
  check.required(path, "path")
  if type(path) ~= "string" then fail("path must be a string") end
  return enqueue(self, event_op(customer_id, path, data, opts, "page"))
end

--- An event for an anonymous visitor (`anonymous_id` instead of `identifiers`). The v1
-- "invite" form without an anonymous id has no v2 equivalent: use `TrackClient:track_anonymous`.
-- @return true, or nil and an error
function methods:track_anonymous(anonymous_id, name_or_data, data, opts)
  if check.is_empty(anonymous_id) then
    fail("anonymous_id is required (an event without one is an invite event: send it with TrackClient:track_anonymous)")
  end
  if type(anonymous_id) ~= "string" and type(anonymous_id) ~= "number" then
    fail("anonymous_id must be a string or a number, got " .. type(anonymous_id))
  end
  return enqueue(self, event_op("anonymous", name_or_data, data, opts, nil, { anonymous_id = tostring(anonymous_id) }))
end

--- Delete a person. Also named `delete`.
-- @return true, or nil and an error
function methods:destroy(customer_id)
  return enqueue(self, ops.delete(customer_id))
end
methods.delete = methods.destroy

--- Suppress a person.
function methods:suppress(customer_id)
  return enqueue(self, ops.suppress(customer_id))
end

--- Allow a suppressed person again.
function methods:unsuppress(customer_id)
  return enqueue(self, ops.unsuppress(customer_id))
end

--- Add or update a device (`data.last_used` and device attributes).
function methods:add_device(customer_id, device_id, platform, data)
  check.required(device_id, "device_id")
  check.required(platform, "platform")
  return enqueue(self, ops.add_device(customer_id, device_id, platform, data))
end

--- Delete a device.
function methods:delete_device(customer_id, device_token)
  check.required(device_token, "device_token")
  return enqueue(self, ops.delete_device(customer_id, device_token))
end

--- Merge the secondary person into the primary.
function methods:merge_customers(primary_id_type, primary_id, secondary_id_type, secondary_id)
  return enqueue(self, ops.merge(primary_id_type, primary_id, secondary_id_type, secondary_id))
end

--- The enqueue methods of both queues (each ends in `self:push_json`).
M.methods = methods

return M
