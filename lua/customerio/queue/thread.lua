--- Background delivery queue: Track operations batched into `/api/v2/batch` requests.
--
--     local customerio = require("customerio")
--     local track = customerio.TrackClient.new(site_id, api_key)
--     local q = customerio.Queue.new(track, {
--       on_error = function(ops, err) log(#ops, err) end,   -- once per failed batch, on this thread
--     })
--     local ok, err = q:track("42", "purchase", { price = 23.45 })  -- microseconds, never blocks
--     ...
--     q:flush(5000)     -- wait until everything queued so far is delivered (or 5 s)
--     q:close()         -- also done by garbage collection, `<close>` and normal process exit
--
-- Each call builds a Track v2 operation (`customerio.operations`), encodes it to JSON and hands
-- the bytes to a C worker thread, which packs them into batches of at most `batch_bytes`
-- (500 KB) and sends them over its own libcurl multi handle, `max_in_flight` at a time, with
-- the client's URL, credentials, timeout and retry policy. A batch leaves when it is full,
-- when its oldest operation is `flush_interval` ms old, on `flush`, and on `close`.
--
-- Failures never vanish: retryable ones (network, timeout, 408/429/5xx) are replayed with the
-- client's backoff, the same bytes each time, and every event carries a ULID `id` so that a
-- replayed batch counts once. What cannot be delivered (a 207 rejection of one operation, a
-- 4xx, retries exhausted, the queue closed before delivery) reaches `on_error(ops, err, jsons)`
-- (once per failed batch: its failed operations, decoded, the error, and their JSON)
-- on the Lua thread, from the next `poll` (which every queue method calls) — or, without an
-- `on_error`, a line on stderr. `stats()` counts it all:
-- `enqueued = sent + failed + queued + in_flight` at any moment.
--
-- Memory is bounded by `max_events` and `max_bytes`: a call that would pass them returns
-- `nil, err` with `err.kind == "queue_full"` (counted in `dropped`). An operation larger than
-- 32 KB as JSON returns `nil, err` with kind `"too_large"`. Bad arguments raise, as the
-- Track client's do.
--
-- The queue sends with libcurl from a thread, whatever transport the Track client has.
-- `customerio.Queue.new` (`customerio.queue`) makes this queue outside nginx and the nginx one
-- (`customerio.queue.ngx`) inside; both take their enqueue methods from `customerio.queue.common`.
-- @module customerio.queue.thread
local core = require("customerio.core")
local check = require("customerio.http.check")
local common = require("customerio.queue.common")
local errors = require("customerio.errors")
local retry = require("customerio.http.retry")

local fail = check.fail

local M = {}

--- The queue class.
-- @type Queue
local Queue = {}
Queue.__index = Queue
M.Queue = Queue
for name, f in pairs(common.methods) do Queue[name] = f end

--- Defaults of the options.
M.defaults = {
  max_events = 100000,          -- operations held (queued, in flight, waiting to retry)
  max_bytes = 64 * 1024 * 1024, -- bytes of JSON held
  batch_bytes = common.BATCH_BYTES, -- one request body at most (Customer.io's limit)
  flush_interval = 1000,        -- ms: a batch leaves when its oldest operation is this old
  max_in_flight = 4,            -- batch requests at once
  close_timeout = 10000,        -- ms: how long __gc / exit wait for delivery
  connect_timeout = 10000,      -- ms, when neither the options nor the client say
  spool_sync = 100,             -- ms between fsyncs of the spool (with `spool`)
  spool_segment_bytes = 4 * 1024 * 1024, -- a spool segment file rolls past this size
}

local known_options = {
  max_events = true, max_bytes = true, batch_bytes = true, flush_interval = true,
  max_in_flight = true, on_error = true, retry = true, close_timeout = true, ca_file = true,
  connect_timeout = true, timeout = true, url = true, order = true, order_key = true,
  spool = true, spool_sync = true, spool_segment_bytes = true,
}

local function report_line(n, err)
  io.stderr:write("customerio.Queue: ", tostring(n), " operation(s) not delivered: ", tostring(err), "\n")
end

-- An error object for one report of the C worker.
local function report_error(r, secrets)
  local err
  if r.detail then
    local entries = core.json_decode(r.detail)
    local e = type(entries) == "table" and entries[1] or {}
    local msg = type(e.message) == "string" and e.message or nil
    local reason = type(e.reason) == "string" and e.reason or nil
    local field = type(e.field) == "string" and e.field or nil
    local text = msg or reason or "operation rejected"
    if field and not text:find(field, 1, true) then text = field .. ": " .. text end
    if reason and msg and reason ~= msg then text = text .. " (" .. reason .. ")" end
    err = errors.new({
      kind = "http", status = r.status, message = text, body = r.body, attempts = r.attempts,
      reason = reason, field = field, errors = entries,
    })
  elseif r.kind == "http" and r.status and r.status ~= 207 then
    err = errors.from_response({ status = r.status, body = r.body, headers = {} },
      { attempts = r.attempts, retryable = false }, secrets)
  else
    err = errors.new({ kind = r.kind, status = r.status, message = r.message, body = r.body, attempts = r.attempts })
  end
  -- The worker keeps at most 1 MiB of a response body: mask a partial secret at its end too.
  return errors.redact(err, secrets, true)
end

-- One failed batch: the reports of one batch (a 207 makes one per rejected operation, all
-- in a row) as (ops, err, jsons) for on_error.
local function batch_failure(reports, from, to, secrets)
  local ops, jsons = {}, {}
  local first = report_error(reports[from], secrets)
  local op_errors = {}
  for i = from, to do
    local r = reports[i]
    local err = i == from and first or report_error(r, secrets)
    for k = 1, #r.ops do
      local json = r.ops[k]
      jsons[#jsons + 1] = json
      ops[#ops + 1] = core.json_decode(json) or json
      op_errors[#op_errors + 1] = err
    end
  end
  if to > from or reports[from].detail then
    -- Rejected by a 207: the batch error says how many, each operation's error is in op_errors.
    local err = errors.new({
      kind = "http", status = first.status, attempts = first.attempts, body = first.body,
      message = string.format("%d operation(s) of the batch rejected; first: %s", #ops, first.message),
      reason = first.reason, field = first.field, errors = first.errors,
    })
    err.op_errors = op_errors
    err.count = #ops
    return ops, err, jsons
  end
  first.op_errors = op_errors
  first.count = #ops
  return ops, first, jsons
end

-- The function that hands reports to on_error, once per failed batch: on_error(ops, err,
-- jsons). Also kept by the C userdata for __gc, so it must not refer to the queue object.
local function make_reporter(on_error, secrets)
  return function(reports)
    local i = 1
    while i <= #reports do
      local j = i
      if reports[i].detail then
        while reports[j + 1] and reports[j + 1].detail and reports[j + 1].batch == reports[i].batch do j = j + 1 end
      end
      local ops, err, jsons = batch_failure(reports, i, j, secrets)
      if on_error == nil then
        report_line(#ops, err)
      else
        local ok, e = pcall(on_error, ops, err, jsons)
        if not ok then io.stderr:write("customerio.Queue: on_error failed: ", tostring(e), "\n") end
      end
      i = j + 1
    end
  end
end

-- A request timeout for the worker, which counts whole milliseconds (at least 1).
local function worker_timeout(v, name, default)
  v = check.ms(v, name, { positive = true, default = default })
  return v and math.max(1, v)
end

-- What the queue needs from a Track client: the batch URL, headers, timeout, retry policy.
local function target(track, opts)
  if type(track) ~= "table" then fail("track client is required") end
  local client = track.client or track
  if type(client) ~= "table" or type(client.headers) ~= "table" then
    fail("track client is required (a customerio.TrackClient)")
  end
  local v2 = opts.url
  if v2 == nil then v2 = common.v2_root(track.url or client.base_url) end
  if type(v2) ~= "string" or not v2:match("^https?://[^/]") then fail("url must be an absolute http or https URL") end
  local url = v2:gsub("/+$", "")
  if not url:find("/batch$") then url = url .. "/batch" end
  local headers = {}
  for k, v in pairs(client.headers) do
    if k:lower() ~= "content-type" and k:lower() ~= "x-retry-count" then headers[k] = v end
  end
  headers["Content-Type"] = "application/json"
  return {
    url = url,
    headers = headers,
    timeout = worker_timeout(opts.timeout, "timeout", client.timeout),
    connect_timeout = worker_timeout(opts.connect_timeout, "connect_timeout",
      client.connect_timeout or M.defaults.connect_timeout),
    ca_file = opts.ca_file or client.ca_file or track.ca_file,
    retry = opts.retry ~= nil and retry.policy(opts.retry) or client.retry or retry.policy(),
    secrets = client.secrets or {},
  }
end

--- Create a queue for a Track client.
-- @tparam TrackClient track where and how to send (URL, credentials, timeout, retry policy)
-- @tparam[opt] table opts `max_events` (100000), `max_bytes` (64 MiB; with a spool, also the
-- unacknowledged bytes it may hold), `batch_bytes` (500 KB),
-- `flush_interval` (ms, 1000), `max_in_flight` (4), `on_error` (`function(ops, err, jsons)`,
-- once per failed batch), `order` (`"batch"`, `"strict"` or `false`; see the README's
-- "Order"), `order_key` (`function(op)` → string|nil, replacing `customerio.queue.common.order_key`),
-- `retry` (overrides the client's policy, see `customerio.http.retry`), `close_timeout` (ms, 10000:
-- how long garbage collection and process exit wait for delivery), `timeout`,
-- `connect_timeout` (ms), `ca_file`, `url` (the v2 root or its /batch URL; default the
-- client's url with /api/v1 replaced by /api/v2), `spool` (a directory: the durable spool of
-- docs/queue.md), `spool_sync` (`"always"`, ms between fsyncs (100), or `"never"`),
-- `spool_segment_bytes` (4 MiB)
-- @treturn Queue
function M.new(track, opts)
  opts = common.options(opts, known_options)
  local t = target(track, opts)
  local d = M.defaults
  local count = common.count
  local batch_bytes = count(opts.batch_bytes, "batch_bytes", 1024, d.batch_bytes)
  local op_bytes = common.op_bytes(batch_bytes)
  local reporter = make_reporter(opts.on_error, t.secrets)
  local order = common.order(opts.order)
  local q = core.queue_new({
    url = t.url, headers = t.headers, timeout = t.timeout, connect_timeout = t.connect_timeout,
    ca_file = t.ca_file, retry = t.retry,
    max_events = count(opts.max_events, "max_events", 1, d.max_events),
    max_bytes = count(opts.max_bytes, "max_bytes", 1, d.max_bytes),
    batch_bytes = batch_bytes,
    op_bytes = op_bytes,
    flush_interval = check.ms(opts.flush_interval, "flush_interval", { default = d.flush_interval }),
    max_in_flight = count(opts.max_in_flight, "max_in_flight", 1, d.max_in_flight),
    close_timeout = check.ms(opts.close_timeout, "close_timeout", { default = d.close_timeout }),
    order = order,
    reporter = reporter,
    spool = common.spool_dir(opts.spool),
    spool_sync = common.spool_sync(opts.spool_sync, d.spool_sync),
    spool_segment_bytes = count(opts.spool_segment_bytes, "spool_segment_bytes", 64, d.spool_segment_bytes),
  })
  return setmetatable({
    _q = q, _report = reporter, op_bytes = op_bytes, url = t.url, _rejected = 0,
    key_of = order == common.ORDER.none and function() return nil end or common.key_function(opts.order_key),
    max_events = opts.max_events or d.max_events, max_bytes = opts.max_bytes or d.max_bytes,
  }, Queue)
end

--- Hand the reports of failed operations to `on_error` (every method does this first).
-- @treturn number how many reports were handled
function Queue:poll()
  local reports = self._q:poll()
  if reports == nil then return 0 end
  self._report(reports)
  return #reports
end

--- Enqueue an operation already encoded as JSON (no checks beyond the size).
-- @tparam string json
-- @tparam[opt] string key its ordering key (see `order`; nil: not ordered with anything)
-- @return true, or nil and an error (`queue_full`, `too_large`, `closed`, `forked`)
function Queue:push_json(json, key)
  if type(json) ~= "string" or json == "" then fail("json must be a non-empty string") end
  if key ~= nil and type(key) ~= "string" then fail("key must be a string") end
  local ok, why, message = self._q:push(json, key)
  if ok then
    if why then self:poll() end
    return true
  end
  if why == "forked" then return nil, common.refused(self, why) end
  self:poll()
  return nil, common.refused(self, why, #json, message)
end

--- Send everything queued now and wait until each operation held at the call is accepted by
-- Customer.io or has failed (and was handed to `on_error`).
-- @tparam[opt=10000] number timeout_ms `math.huge`: as long as needed (at most
-- `check.MAX_MS`, about 24.8 days)
-- @return true when every one of them was accepted; else nil and an error with the counts
-- `sent`, `failed` and `pending` (still held when the time was up) of those operations: kind
-- "timeout" when some are pending (they stay queued), "failed" when all finished but some failed
function Queue:flush(timeout_ms)
  timeout_ms = check.ms(timeout_ms, "timeout_ms", { default = 10000 })
  if self._q:forked() then return nil, common.refused(self, "forked") end
  local done, r = self._q:flush(timeout_ms)
  self:poll()
  if done then return true end
  return nil, common.flush_error(r, timeout_ms)
end

--- Flush (waiting up to `timeout_ms`), report what could not be delivered, stop the thread.
-- Later calls return `nil, err` of kind "closed". Also done by `<close>`, garbage collection
-- and normal process exit (with `close_timeout`).
-- @tparam[opt] number timeout_ms default `close_timeout`; `math.huge`: as long as needed (at
-- most `check.MAX_MS`)
-- @return true, or nil and an error of kind "timeout" (the rest was reported to on_error)
function Queue:close(timeout_ms)
  timeout_ms = check.ms(timeout_ms, "timeout_ms")
  if self._q:forked() then return nil, common.refused(self, "forked") end
  local before = self._q:stats()
  local clean = self._q:close(timeout_ms)
  self:poll()
  if clean or before.closed then return true end
  return nil, errors.new({
    kind = "timeout",
    message = "close timed out; the operations not delivered were reported to on_error",
  })
end

--- Counters (the README's "Queue statistics" explains each): `enqueued`, `sent`, `failed`,
-- `dropped` (queue full), `rejected` (too large), `retried` (batch replays), `queued` (not yet
-- in a batch), `in_flight` (in a batch being sent or waiting to be retried), `bytes` (held),
-- `requests`, `batches`, `reports` (failure reports not yet handed to on_error), `closed`;
-- with a spool, `replayed` (operations an earlier process left, sent by this queue),
-- `spool_bytes` (unacknowledged bytes in this queue's lane), `spool_errors` (writes refused).
-- `enqueued == sent + failed + queued + in_flight`.
-- @treturn table
function Queue:stats()
  self:poll()
  local s = self._q:stats()
  s.rejected = s.rejected + self._rejected -- refused while encoding, before reaching the worker
  return s
end

--- Hands reports `{kind, status, message, body, detail, attempts, ops}` to on_error.
M.make_reporter = make_reporter

function Queue:__close()
  self:close()
end

function Queue:__tostring()
  return "customerio.Queue (" .. self.url .. ")"
end

return M
