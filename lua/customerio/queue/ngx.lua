--- The delivery queue inside nginx (OpenResty / lua-nginx-module): a per-worker buffer of
-- encoded operations, sent as `/api/v2/batch` requests from `ngx.timer` callbacks over the
-- Track client's cosocket transport.
--
--     -- init_worker_by_lua_block (one queue per worker):
--     local customerio = require("customerio")
--     local track = customerio.TrackClient.new(site_id, api_key)
--     QUEUE = require("customerio.queue.ngx").new(track, { on_error = function(op, err) ngx.log(ngx.ERR, err) end })
--     -- log_by_lua_block, access_by_lua_block, ... (any phase: enqueue only touches the buffer):
--     QUEUE:track(ngx.var.cookie_uid, "page_served", { uri = ngx.var.uri })
--
-- Same methods and return values as `customerio.Queue` (identify, track, ... entity,
-- `flush`, `close`, `stats`). A batch leaves when it reaches `batch_bytes`, when its oldest
-- operation is `flush_interval` ms old (an `ngx.timer.every`), on `flush` and when the worker
-- exits (the timers' `premature` run sends what is left). At most `max_in_flight` timers
-- send at once; each sends its batch through the client's retry policy (`X-Retry-Count`,
-- backoff with `ngx.sleep`). A 207 reports only the rejected operations; what cannot be
-- delivered reaches `on_error(op, err, json)` (in a timer, pcall'd), or the error log.
--
-- Bounded by `max_events` and `max_bytes` (buffer plus batches being sent): enqueue returns
-- `nil, err` with kind "queue_full" when full, "too_large" for an operation over 32 KB.
-- `flush(timeout_ms)` waits where the phase can yield (content, access, rewrite, timer);
-- elsewhere (log, header/body filters, init_worker) it schedules the batch and returns
-- `nil, err` of kind "phase".
-- @module customerio.queue.ngx
local core = require("customerio.core")
local check = require("customerio.http.check")
local common = require("customerio.queue.common")
local errors = require("customerio.errors")
local ngx = ngx

local fail = check.fail

local M = {}

--- The queue class.
-- @type QueueNgx
local Queue = {}
Queue.__index = Queue
M.Queue = Queue
for name, f in pairs(common.methods) do Queue[name] = f end

--- Defaults of the options.
M.defaults = {
  max_events = 10000,
  max_bytes = 16 * 1024 * 1024,
  batch_bytes = common.BATCH_BYTES,
  flush_interval = 1000, -- ms
  max_in_flight = 2,
}

local known_options = {
  max_events = true, max_bytes = true, batch_bytes = true, flush_interval = true,
  max_in_flight = true, on_error = true,
}

-- Where flush can wait (ngx.sleep): the phases with cosockets.
local yieldable = require("customerio.transport.ngx").cosocket_phases


local count = common.count
local OVERHEAD = common.BATCH_OVERHEAD

local function log_failure(n, err)
  ngx.log(ngx.ERR, "customerio.queue.ngx: ", n, " operation(s) not delivered: ", tostring(err))
end

-- Hand failed operations (JSON strings) to on_error, one call each.
local function report(self, list, err)
  local on_error = self.on_error
  if on_error == nil then return log_failure(#list, err) end
  for i = 1, #list do
    local json = list[i]
    local ok, e = pcall(on_error, core.json_decode(json) or json, err, json)
    if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: on_error failed: ", tostring(e)) end
  end
end

--- Create a per-worker queue (call it in init_worker or later; not in init_by_lua).
-- @tparam TrackClient track a client whose transport is the cosocket one (the default in nginx)
-- @tparam[opt] table opts `max_events` (10000), `max_bytes` (16 MiB), `batch_bytes` (500 KB),
-- `flush_interval` (ms, 1000), `max_in_flight` (2), `on_error`
-- @treturn QueueNgx
function M.new(track, opts)
  opts = common.options(opts, known_options)
  if type(track) ~= "table" or type(track.client) ~= "table" or type(track.v2_url) ~= "string" then
    fail("track client is required (a customerio.TrackClient)")
  end
  local d = M.defaults
  local self = setmetatable({
    max_events = count(opts.max_events, "max_events", 1, d.max_events),
    max_bytes = count(opts.max_bytes, "max_bytes", 1, d.max_bytes),
    batch_bytes = count(opts.batch_bytes, "batch_bytes", 1024, d.batch_bytes),
    flush_interval = count(opts.flush_interval, "flush_interval", 1, d.flush_interval),
    max_in_flight = count(opts.max_in_flight, "max_in_flight", 1, d.max_in_flight),
    on_error = opts.on_error,
    v2_url = track.v2_url,
    buf = {}, at = {}, head = 1, tail = 0,
    queued = 0, queued_bytes = 0, in_flight = 0, in_flight_bytes = 0, running = 0,
    enqueued = 0, sent = 0, failed = 0, dropped = 0, rejected = 0, retried = 0, requests = 0, batches = 0,
    taken = 0, flush_target = 0, closed = false, timer = false,
  }, Queue)
  self.op_bytes = common.op_bytes(self.batch_bytes)
  -- The client, with a transport that counts requests and replays.
  local client = track.client
  local transport = client.transport
  local counting = {
    name = transport.name,
    send = function(_, req, timeout_ms)
      self.requests = self.requests + 1
      if req.headers and req.headers["X-Retry-Count"] then self.retried = self.retried + 1 end
      return transport:send(req, timeout_ms)
    end,
  }
  if transport.sleep then counting.sleep = function(_, ms) return transport:sleep(ms) end end
  self.client = setmetatable({ transport = counting }, { __index = client })
  return self
end

-- Size of one body holding every buffered operation.
local function pending_size(self)
  if self.queued == 0 then return 0 end
  return OVERHEAD + self.queued_bytes + self.queued - 1
end

local function ready(self, force)
  if self.queued == 0 then return false end
  if force or self.closed or self.taken < self.flush_target then return true end
  if pending_size(self) >= self.batch_bytes then return true end
  return (ngx.now() - self.at[self.head]) * 1000 >= self.flush_interval
end

-- Detach the next batch from the buffer.
local function take(self)
  local buf, at = self.buf, self.at
  local parts, size, bytes, n = {}, OVERHEAD, 0, 0
  local i = self.head
  while i <= self.tail do
    local json = buf[i]
    local add = #json + (n > 0 and 1 or 0)
    if n > 0 and size + add > self.batch_bytes then break end
    n = n + 1
    parts[n] = json
    size, bytes = size + add, bytes + #json
    buf[i], at[i] = nil, nil
    i = i + 1
  end
  self.head = i
  self.queued, self.queued_bytes = self.queued - n, self.queued_bytes - bytes
  self.in_flight, self.in_flight_bytes = self.in_flight + n, self.in_flight_bytes + bytes
  self.taken, self.batches = self.taken + n, self.batches + 1
  return parts, bytes
end

-- Send one batch (in a timer) and account for it.
local function send_batch(self, parts, bytes)
  local client = self.client
  local body = '{"batch":[' .. table.concat(parts, ",") .. "]}"
  local req = client:build("POST", { "batch" }, { base = self.v2_url, raw_body = body })
  local result, err = client:send(req)
  local n = #parts
  self.in_flight, self.in_flight_bytes = self.in_flight - n, self.in_flight_bytes - bytes
  if result == nil then
    self.failed = self.failed + n
    return report(self, parts, err)
  end
  local errs = type(result) == "table" and result.errors
  local bad, nbad = {}, 0
  if type(errs) == "table" then
    for _, e in ipairs(errs) do
      local i = type(e) == "table" and tonumber(e.batch_index)
      if i and i >= 0 and i < n and i == math.floor(i) then
        local k = i + 1
        if not bad[k] then nbad = nbad + 1; bad[k] = {} end
        bad[k][#bad[k] + 1] = e
      end
    end
  end
  self.sent = self.sent + n - nbad
  self.failed = self.failed + nbad
  for k = 1, n do
    local entries = bad[k]
    if entries then
      local e = entries[1]
      local msg = type(e.message) == "string" and e.message or type(e.reason) == "string" and e.reason or "operation rejected"
      if type(e.field) == "string" and not msg:find(e.field, 1, true) then msg = e.field .. ": " .. msg end
      report(self, { parts[k] }, errors.new({
        kind = "http", status = 207, message = msg, reason = e.reason, field = e.field, errors = entries,
      }))
    end
  end
end

-- A sender: takes batches while they are due (all of them when forced).
local function drain(self, force)
  while ready(self, force) do
    local parts, bytes = take(self)
    send_batch(self, parts, bytes)
  end
end

local function sender(premature, self)
  local ok, err = pcall(drain, self, premature)
  self.running = self.running - 1
  if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: sender failed: ", tostring(err)) end
end

-- Start senders for the due batches, up to max_in_flight.
local function kick(self, force)
  while self.running < self.max_in_flight and ready(self, force) do
    self.running = self.running + 1
    local ok, err = ngx.timer.at(0, sender, self)
    if not ok then
      self.running = self.running - 1
      ngx.log(ngx.ERR, "customerio.queue.ngx: cannot start a sender: ", tostring(err))
      return
    end
    if self.queued == 0 or self.running >= self.max_in_flight then return end
    if not force and pending_size(self) < self.batch_bytes then return end
  end
end

local function tick(premature, self)
  if premature then
    -- The worker is exiting: send everything now, in this timer.
    local ok, err = pcall(drain, self, true)
    if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: final flush failed: ", tostring(err)) end
    return
  end
  kick(self)
end

local function ensure_timer(self)
  if self.timer then return end
  local ok, err = ngx.timer.every(self.flush_interval / 1000, tick, self)
  if ok then
    self.timer = true
  else
    ngx.log(ngx.ERR, "customerio.queue.ngx: cannot start the flush timer: ", tostring(err))
  end
end

--- Enqueue an operation already encoded as JSON.
-- @tparam string json
-- @return true, or nil and an error (`queue_full`, `too_large`, `closed`)
function Queue:push_json(json)
  if type(json) ~= "string" or json == "" then fail("json must be a non-empty string") end
  if self.closed then return nil, common.refused(self, "closed") end
  local len = #json
  if len > self.op_bytes then
    self.rejected = self.rejected + 1
    return nil, common.refused(self, "too_large", len)
  end
  if self.queued + self.in_flight + 1 > self.max_events
    or self.queued_bytes + self.in_flight_bytes + len > self.max_bytes then
    self.dropped = self.dropped + 1
    return nil, common.refused(self, "full")
  end
  local t = self.tail + 1
  self.tail = t
  self.buf[t], self.at[t] = json, ngx.now()
  self.queued, self.queued_bytes = self.queued + 1, self.queued_bytes + len
  self.enqueued = self.enqueued + 1
  ensure_timer(self)
  if pending_size(self) >= self.batch_bytes then kick(self) end
  return true
end

--- Nothing to poll: reports are delivered from the senders. Kept for the same API.
function Queue.poll()
  return 0
end

--- Send everything buffered now; wait (where the phase can yield) until it is delivered.
-- @tparam[opt=10000] number timeout_ms
-- @return true, or nil and an error of kind "timeout" or "phase" (then only scheduled)
function Queue:flush(timeout_ms)
  timeout_ms = timeout_ms or 10000
  if type(timeout_ms) ~= "number" or timeout_ms < 0 then fail("timeout_ms must be a non-negative number") end
  self.flush_target = self.enqueued
  kick(self)
  local phase = ngx.get_phase()
  if not yieldable[phase] then
    if self.queued + self.in_flight == 0 then return true end
    return nil, errors.new({ kind = "phase", message = "flush scheduled; it cannot wait in the " .. phase .. " phase" })
  end
  ngx.update_time()
  local deadline = ngx.now() + timeout_ms / 1000
  while self.queued + self.in_flight > 0 do
    ngx.update_time()
    if ngx.now() >= deadline then
      return nil, errors.new({
        kind = "timeout", retryable = true,
        message = string.format("flush timed out after %d ms: %d operation(s) queued, %d in flight",
          timeout_ms, self.queued, self.in_flight),
      })
    end
    if self.running == 0 then kick(self) end
    ngx.sleep(0.002)
  end
  return true
end

--- Refuse new operations and flush what is buffered.
-- @tparam[opt=10000] number timeout_ms
function Queue:close(timeout_ms)
  self.closed = true
  return self:flush(timeout_ms)
end

--- Counters, as `customerio.Queue:stats()`.
-- @treturn table
function Queue:stats()
  return {
    enqueued = self.enqueued, sent = self.sent, failed = self.failed, dropped = self.dropped,
    rejected = self.rejected, retried = self.retried, queued = self.queued, in_flight = self.in_flight,
    bytes = self.queued_bytes + self.in_flight_bytes, requests = self.requests, batches = self.batches,
    closed = self.closed,
  }
end

function Queue:__tostring()
  return "customerio.queue.ngx (" .. self.v2_url .. "/batch)"
end

return M
