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

--- What a Track client's `url` must look like for a queue: its v1 root (`.../api/v1`), from
-- which the queue derives `.../api/v2/batch`. Raises with what was expected otherwise.
-- @tparam string base_url
-- @treturn string the v2 root
function M.v2_root(base_url)
  local root = type(base_url) == "string" and base_url:gsub("/+$", "") or nil
  if root == nil or not root:match("^https?://[^/]") or not root:find("/api/v1$") then
    fail("the Track client's url must be an http(s) URL ending in /api/v1 (like a region's, "
      .. "https://track.customer.io/api/v1) for the queue to send to its /api/v2/batch; got "
      .. tostring(base_url) .. " (or pass the queue's url option: the v2 root or its /batch URL)")
  end
  return (root:gsub("/api/v1$", "/api/v2"))
end

--- The error object of a refused operation (`why` is "full", "too_large", "forked", "closed",
-- "spool_full" or "spool" with `message`). Reads `self.max_events`, `self.max_bytes` and `self.op_bytes`.
function M.refused(self, why, size, message)
  if why == "spool_full" then
    return errors.new({
      kind = "queue_full",
      message = string.format("spool is full (max_bytes %d of operations not yet delivered on disk); "
        .. "operation dropped", self.max_bytes),
    })
  elseif why == "spool" then
    return errors.new({
      kind = "spool", retryable = true,
      message = tostring(message or "spool: write failed") .. "; operation not queued",
    })
  elseif why == "full" then
    return errors.new({
      kind = "queue_full",
      message = string.format("queue is full (max_events %d, max_bytes %d); operation dropped",
        self.max_events, self.max_bytes),
    })
  elseif why == "too_large" then
    return errors.new({
      kind = "too_large",
      message = size and string.format("operation is %d bytes as JSON; the limit is %d bytes", size, self.op_bytes)
        or string.format("operation is more than %d bytes as JSON; the limit is %d bytes", self.op_bytes, self.op_bytes),
    })
  elseif why == "forked" then
    return errors.new({
      kind = "forked",
      message = "this process is a fork() child of the one that created the queue, whose worker "
        .. "thread did not survive the fork; create a new queue in the child (operations of the "
        .. "parent's queue held at the fork are the parent's to deliver)",
    })
  end
  return errors.new({ kind = "closed", message = "queue is closed" })
end

--- The error of a flush that did not see every operation accepted: `r` holds the counts of
-- the operations held at the call (`sent`, `failed`, `pending`).
function M.flush_error(r, timeout_ms)
  local kind = r.pending > 0 and "timeout" or "failed"
  return errors.new({
    kind = kind, retryable = kind == "timeout", sent = r.sent, failed = r.failed, pending = r.pending,
    message = string.format("flush %s: of the operations held, %d sent, %d failed (reported to on_error), "
      .. "%d still pending after %d ms", kind == "timeout" and "timed out" or "saw failures",
      r.sent, r.failed, r.pending, timeout_ms),
  })
end

--- The `spool` option: nil, or a directory path (raises otherwise).
function M.spool_dir(v)
  if v == nil then return nil end
  if type(v) ~= "string" or v == "" or v:find("\0", 1, true) then
    fail("spool must be a directory path (a non-empty string)")
  end
  return v
end

--- The `spool_sync` option: `"always"` (fsync before enqueue returns: 0), a number of ms
-- between fsyncs (at least 1), or `"never"` (-1).
function M.spool_sync(v, default)
  if v == nil then return default end
  if v == "always" then return 0 end
  if v == "never" then return -1 end
  if type(v) ~= "number" or v ~= v or v < 1 or v > check.MAX_MS or v ~= math.floor(v) then
    fail('spool_sync must be "always", "never" or a whole number of ms (at least 1)')
  end
  return v
end

--- The `order` option: `"batch"` (default), `"strict"`, or `false`/`"none"`, as the C
-- worker's number (`CIO_ORDER_*`: 1, 2, 0).
M.ORDER = { batch = 1, strict = 2, none = 0 }
function M.order(v)
  if v == nil then return M.ORDER.batch end
  if v == false then return M.ORDER.none end
  local n = M.ORDER[v]
  if n == nil then fail('order must be "batch", "strict", "none" or false') end
  return n
end

-- An identifier value as text: integral numbers as their digits (42 and "42" are one key).
local function id_text(v)
  if type(v) == "number" and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return string.format("%.0f", v)
  end
  return tostring(v)
end

--- The ordering key of an operation: the entity it is sent as, by the identifiers it names:
-- `type`, then each identifier name and value (`"person\0id\042"`,
-- `"person\0email\0ada@example.com"`, `"object\0object_id\01\0object_type_id\02"`,
-- `"delivery\0id\0..."`). A merge is keyed by its primary person; an event of an anonymous
-- visitor by `anonymous_id`; relationship operations by the entity they are sent as (not by
-- the other side of the relationship). nil for an operation that names nothing.
-- @tparam table op a Track v2 operation
-- @treturn string|nil
function M.order_key(op)
  local ids = op.identifiers
  if op.action == "merge" then ids = op.primary end
  if type(ids) ~= "table" then
    if op.anonymous_id ~= nil then return "anonymous\0" .. id_text(op.anonymous_id) end
    return nil
  end
  local first = next(ids)
  if first == nil then return nil end
  if next(ids, first) == nil then -- one identifier: the common case
    local v = ids[first]
    if type(v) ~= "string" then v = id_text(v) end
    return tostring(op.type) .. "\0" .. first .. "\0" .. v
  end
  local names = {}
  for k in pairs(ids) do names[#names + 1] = tostring(k) end
  table.sort(names)
  local parts = { tostring(op.type) }
  for _, k in ipairs(names) do
    parts[#parts + 1] = k
    parts[#parts + 1] = id_text(ids[k])
  end
  return table.concat(parts, "\0")
end

--- The key function of a queue: the user's `order_key` option (checked) or `M.order_key`.
function M.key_function(opt)
  if opt == nil then return M.order_key end
  if type(opt) ~= "function" then fail("order_key must be a function") end
  return function(op)
    local key = opt(op)
    if key ~= nil and type(key) ~= "string" then
      key = type(key) == "number" and id_text(key) or fail("order_key must return a string or nil")
    end
    return key
  end
end

local methods = {}

-- Encoding options per operation limit: the encoder stops as soon as an operation passes it
-- (shared sub-tables cannot make it write gigabytes first).
local encode_options = setmetatable({}, { __index = function(t, max)
  local o = { root = "operation", max_bytes = max }
  t[max] = o
  return o
end })

-- Encode and enqueue a built operation. One over op_bytes is refused (and counted) like the
-- queue refuses one for its size, without being encoded whole.
local function enqueue(self, op)
  local json, err, reason = core.json_encode(op, encode_options[self.op_bytes])
  if not json then
    if reason ~= "too_large" then fail(err) end
    if self._q then self._rejected = self._rejected + 1 else self.rejected = self.rejected + 1 end
    return nil, M.refused(self, "too_large")
  end
  return self:push_json(json, self.key_of(op))
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
  return self:push_json(json, self.key_of(checked))
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
  return enqueue(self, event_op("anonymous", name_or_data, data, opts, nil,
    { anonymous_id = check.id(anonymous_id, "anonymous_id") }))
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
