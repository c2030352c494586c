--- The delivery queue inside nginx (OpenResty / lua-nginx-module): a per-worker buffer of
-- encoded operations, sent as `/api/v2/batch` requests from `ngx.timer` callbacks over the
-- Track client's cosocket transport.
--
--     -- init_worker_by_lua_block (one queue per worker):
--     local customerio = require("customerio")
--     local track = customerio.TrackClient.new(site_id, api_key)
--     QUEUE = require("customerio.queue.ngx").new(track, {
--       on_error = function(ops, err) ngx.log(ngx.ERR, #ops, " operation(s) not delivered: ", tostring(err)) end,
--     })
--     -- log_by_lua_block, access_by_lua_block, ... (any phase: enqueue only touches the buffer):
--     QUEUE:track(ngx.var.cookie_uid, "page_served", { uri = ngx.var.uri })
--
-- Same methods and return values as `customerio.Queue` (identify, track, ... entity,
-- `flush`, `close`, `stats`). A batch leaves when it reaches `batch_bytes`, when its oldest
-- operation is `flush_interval` ms old (an `ngx.timer.every`), on `flush` and when the worker
-- exits (the timers' `premature` run sends what is left). At most `max_in_flight` timers
-- send at once; each sends its batch through the client's retry policy (`X-Retry-Count`,
-- backoff with `ngx.sleep`). A 207 reports only the rejected operations; what cannot be
-- delivered reaches `on_error(ops, err, jsons)` once per failed batch (in a timer, pcall'd), or
-- the error log. Each person's operations are sent in enqueue order (see docs/queue.md):
-- at most one batch per ordering key is being sent at a time.
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
  spool_sync = 100, -- ms between fsyncs of the spool (with `spool`)
  spool_segment_bytes = 4 * 1024 * 1024,
  spool_adopt_interval = 1000, -- ms: how often lanes released by other workers are looked for
}

local known_options = {
  max_events = true, max_bytes = true, batch_bytes = true, flush_interval = true,
  max_in_flight = true, on_error = true, order = true, order_key = true, stats_dict = true,
  spool = true, spool_sync = true, spool_segment_bytes = true,
}

-- The counters stats() returns, and the ones published to the shared dict (all but closed).
local COUNTERS = { "enqueued", "sent", "failed", "dropped", "rejected", "retried", "queued", "in_flight",
  "bytes", "requests", "batches", "replayed", "spool_bytes", "spool_errors" }

-- Where flush can wait (ngx.sleep): the phases with cosockets.
local yieldable = require("customerio.transport.ngx").cosocket_phases


local count = common.count
local OVERHEAD = common.BATCH_OVERHEAD

local function log_failure(n, err)
  ngx.log(ngx.ERR, "customerio.queue.ngx: ", n, " operation(s) not delivered: ", tostring(err))
end

-- Hand the failed operations of one batch (JSON strings) to on_error in one call:
-- on_error(ops, err, jsons), as customerio.queue.thread does.
local function report(self, list, err)
  err.count = #list
  local on_error = self.on_error
  if on_error == nil then return log_failure(#list, err) end
  local ops = {}
  for i = 1, #list do ops[i] = core.json_decode(list[i]) or list[i] end
  local ok, e = pcall(on_error, ops, err, list)
  if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: on_error failed: ", tostring(e)) end
end

--- Create a per-worker queue (call it in init_worker or later; not in init_by_lua).
-- @tparam TrackClient track a client whose transport is the cosocket one (the default in nginx)
-- @tparam[opt] table opts `max_events` (10000), `max_bytes` (16 MiB), `batch_bytes` (500 KB),
-- `flush_interval` (ms, 1000), `max_in_flight` (2), `on_error` (`function(ops, err, jsons)`,
-- once per failed batch), `order`, `order_key` (as `customerio.queue.thread`), `stats_dict`
-- (the name of a `lua_shared_dict` where every worker adds its counters: `stats().all`),
-- `spool` (a directory: each worker takes its own lane; docs/queue.md), `spool_sync`
-- (`"always"`, ms (100) or `"never"`), `spool_segment_bytes` (4 MiB)
-- @treturn QueueNgx
function M.new(track, opts)
  opts = common.options(opts, known_options)
  if type(track) ~= "table" or type(track.client) ~= "table" or type(track.v2_url) ~= "string" then
    fail("track client is required (a customerio.TrackClient)")
  end
  local v2_url = common.v2_root(track.url)
  local order = common.order(opts.order)
  local dict
  if opts.stats_dict ~= nil then
    if type(opts.stats_dict) ~= "string" then fail("stats_dict must be the name of a lua_shared_dict") end
    dict = ngx.shared[opts.stats_dict]
    if dict == nil then
      fail("stats_dict: no lua_shared_dict named " .. opts.stats_dict .. " (declare `lua_shared_dict "
        .. opts.stats_dict .. " 1m;` in the http block)")
    end
  end
  local d = M.defaults
  local self = setmetatable({
    max_events = count(opts.max_events, "max_events", 1, d.max_events),
    max_bytes = count(opts.max_bytes, "max_bytes", 1, d.max_bytes),
    batch_bytes = count(opts.batch_bytes, "batch_bytes", 1024, d.batch_bytes),
    flush_interval = math.max(1, check.ms(opts.flush_interval, "flush_interval",
      { positive = true, default = d.flush_interval })),
    max_in_flight = count(opts.max_in_flight, "max_in_flight", 1, d.max_in_flight),
    on_error = opts.on_error,
    v2_url = v2_url,
    strict = order == common.ORDER.strict,
    held = {}, owner = {}, stalled = false, passes = 0, flushes = {},
    dict = dict, dict_prefix = opts.stats_dict and "cio:" or nil, published = {},
    buf = {}, at = {}, keys = {}, seqs = {}, head = 1, tail = 0,
    queued = 0, queued_bytes = 0, in_flight = 0, in_flight_bytes = 0, running = 0,
    enqueued = 0, sent = 0, failed = 0, dropped = 0, rejected = 0, retried = 0, requests = 0, batches = 0,
    taken = 0, flush_target = 0, closed = false, timer = false,
    sids = {}, replayed = 0, spool_errors = 0, spool_dirty = false,
  }, Queue)
  self.op_bytes = common.op_bytes(self.batch_bytes)
  self.key_of = order == common.ORDER.none and function() return nil end or common.key_function(opts.order_key)
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
  if opts.spool ~= nil then M.open_spool(self, opts) end
  return self
end

-- Size of one body holding every buffered operation.
local function pending_size(self)
  if self.queued == 0 then return 0 end
  return OVERHEAD + self.queued_bytes + self.queued - 1
end

local function ready(self, force)
  if self.queued == 0 or self.stalled then return false end
  if force or self.closed or self.taken < self.flush_target then return true end
  if pending_size(self) >= self.batch_bytes then return true end
  return (ngx.now() - self.at[self.head]) * 1000 >= self.flush_interval
end

-- Detach the next batch from the buffer, in enqueue order, skipping operations whose key is
-- held by a batch being sent (with order "strict", also by this one) and every later one of a
-- key skipped in this pass (as src/queue_worker.c does). Skipped operations stay in place;
-- taken ones leave a hole (nil) that the head moves past. nil when nothing can go now.
local function take(self)
  local buf, at, keys, seqs, sids = self.buf, self.at, self.keys, self.seqs, self.sids
  local held, owner = self.held, self.owner
  local parts, pkeys, pseqs, psids, size, bytes, n = {}, {}, {}, {}, OVERHEAD, 0, 0
  local pass = self.passes + 1
  self.passes = pass
  local skipped = {}
  for i = self.head, self.tail do
    local json = buf[i]
    if json then
      local key = keys[i]
      local go = true
      if key then
        if skipped[key] or (held[key] and (self.strict or owner[key] ~= pass)) then
          skipped[key] = true
          go = false
        end
      end
      if go then
        local add = #json + (n > 0 and 1 or 0)
        if n > 0 and size + add > self.batch_bytes then break end
        n = n + 1
        parts[n], pkeys[n], pseqs[n], psids[n] = json, key, seqs[i], sids[i]
        if key then held[key], owner[key] = (held[key] or 0) + 1, pass end
        size, bytes = size + add, bytes + #json
        buf[i], at[i], keys[i], seqs[i], sids[i] = nil, nil, nil, nil, nil
      end
    end
  end
  while self.head <= self.tail and buf[self.head] == nil do self.head = self.head + 1 end
  if n == 0 then
    self.stalled = true
    return nil
  end
  self.queued, self.queued_bytes = self.queued - n, self.queued_bytes - bytes
  self.in_flight, self.in_flight_bytes = self.in_flight + n, self.in_flight_bytes + bytes
  self.taken, self.batches = self.taken + n, self.batches + 1
  pkeys.sids = psids
  return parts, bytes, pkeys, pseqs
end

-- The operations of a sent batch are finished (failed[k]: operation k was not accepted):
-- release their keys, count them for the running flushes, acknowledge their spool records
-- (keys.sids) when accepted or refused for good (not keep: what a later process may deliver).
local function batch_done(self, parts, bytes, keys, seqs, failed, all_failed, keep)
  local held, flushes = self.held, self.flushes
  local n = #parts
  local spool, sids = self.spool, keys.sids
  self.in_flight, self.in_flight_bytes = self.in_flight - n, self.in_flight_bytes - bytes
  for k = 1, n do
    local key = keys[k]
    if key then
      local c = held[key] - 1
      if c == 0 then held[key], self.owner[key] = nil, nil else held[key] = c end
    end
    local bad = all_failed or failed[k]
    if bad then self.failed = self.failed + 1 else self.sent = self.sent + 1 end
    if spool and sids[k] and not (bad and keep) then spool:ack(sids[k]) end
    for f = 1, #flushes do
      local fl = flushes[f]
      if seqs[k] <= fl.seq then
        if bad then fl.failed = fl.failed + 1 else fl.sent = fl.sent + 1 end
      end
    end
  end
  self.stalled = false
  if spool then spool:flush() end
end

-- Whether a failed batch may still go through later (kept in the spool for the next process):
-- everything but a 4xx that is not retried (the server's final word).
local function may_pass_later(err)
  local status = err and err.kind == "http" and tonumber(err.status)
  return not (status and status >= 400 and status < 500 and status ~= 408 and status ~= 429)
end

-- Send one batch (in a timer) and account for it.
local function send_batch(self, parts, bytes, keys, seqs)
  local client = self.client
  local body = '{"batch":[' .. table.concat(parts, ",") .. "]}"
  local req = client:build("POST", { "batch" }, { base = self.v2_url, raw_body = body })
  local ok, result, err = pcall(client.send, client, req)
  if not ok then result, err = nil, errors.new({ kind = "request", message = tostring(result) }) end
  local n = #parts
  if result == nil then
    batch_done(self, parts, bytes, keys, seqs, nil, true, may_pass_later(err))
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
  batch_done(self, parts, bytes, keys, seqs, bad, false)
  if nbad == 0 then return end
  -- One on_error call for the batch's rejected operations; each one's error in op_errors.
  local list, op_errors = {}, {}
  for k = 1, n do
    local entries = bad[k]
    if entries then
      local e = entries[1]
      local msg = type(e.message) == "string" and e.message or type(e.reason) == "string" and e.reason or "operation rejected"
      if type(e.field) == "string" and not msg:find(e.field, 1, true) then msg = e.field .. ": " .. msg end
      list[#list + 1] = parts[k]
      op_errors[#op_errors + 1] = errors.new({
        kind = "http", status = 207, message = msg, reason = e.reason, field = e.field, errors = entries,
      })
    end
  end
  local first = op_errors[1]
  report(self, list, errors.redact(errors.new({
    kind = "http", status = 207, reason = first.reason, field = first.field, errors = first.errors,
    message = string.format("%d operation(s) of the batch rejected; first: %s", #list, first.message),
    op_errors = op_errors,
  }), client.secrets))
end

-- A sender: takes batches while they are due (all of them when forced).
local function drain(self, force)
  while ready(self, force) do
    local parts, bytes, keys, seqs = take(self)
    if parts == nil then return end
    send_batch(self, parts, bytes, keys, seqs)
  end
end

-- Add this worker's counter changes since the last call to the shared dict's totals.
local function publish(self)
  local dict = self.dict
  if dict == nil then return end
  local now, published = self:own_stats(), self.published
  for _, name in ipairs(COUNTERS) do
    local delta = now[name] - (published[name] or 0)
    if delta ~= 0 then
      local _, err = dict:incr(self.dict_prefix .. name, delta, 0)
      if err then ngx.log(ngx.ERR, "customerio.queue.ngx: stats_dict: ", err) return end
      published[name] = now[name]
    end
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
    -- The worker is exiting: send everything now, in this timer. Operations held back behind
    -- a batch that another sender is still sending wait for it (up to 10 s).
    local deadline = ngx.now() + 10
    repeat
      local ok, err = pcall(drain, self, true)
      if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: final flush failed: ", tostring(err)) break end
      if self.queued == 0 or self.in_flight == 0 then break end
      ngx.sleep(0.005)
      ngx.update_time()
    until ngx.now() >= deadline
    publish(self)
    if self.spool then
      -- Release the lane: what was not delivered stays in it, for the next worker to adopt.
      self.spool:close()
      self.spool = nil
    end
    return
  end
  kick(self)
  publish(self)
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
-- @tparam[opt] string key its ordering key (nil: not ordered with anything)
-- @return true, or nil and an error (`queue_full`, `too_large`, `closed`)
function Queue:push_json(json, key)
  if type(json) ~= "string" or json == "" then fail("json must be a non-empty string") end
  if key ~= nil and type(key) ~= "string" then fail("key must be a string") end
  if self.closed then return nil, common.refused(self, "closed") end
  return self:_push(json, key, false)
end

-- Buffer one operation (force: past max_events/max_bytes, for a replay); with a spool, written
-- there first (not buffered when that fails).
function Queue:_push(json, key, force)
  local len = #json
  if len > self.op_bytes then
    self.rejected = self.rejected + 1
    return nil, common.refused(self, "too_large", len)
  end
  if not force and (self.queued + self.in_flight + 1 > self.max_events
    or self.queued_bytes + self.in_flight_bytes + len > self.max_bytes) then
    self.dropped = self.dropped + 1
    return nil, common.refused(self, "full")
  end
  local sid
  local spool = self.spool
  if spool then
    local why, message
    sid, why, message = spool:append(json, key, force)
    if sid and self.spool_sync == 0 then
      local ok, e = spool:sync()
      if not ok then
        spool:ack(sid) -- not durable, so not accepted: no replay may send it
        spool:flush()
        sid, why, message = nil, "io", e
      end
    end
    if not sid then
      if why == "full" then
        self.dropped = self.dropped + 1
        return nil, common.refused(self, "spool_full")
      end
      self.spool_errors = self.spool_errors + 1
      return nil, common.refused(self, "spool", len, message)
    end
    self.spool_dirty = true
  end
  local t = self.tail + 1
  self.tail = t
  self.enqueued = self.enqueued + 1
  self.buf[t], self.at[t], self.keys[t], self.seqs[t], self.sids[t] = json, ngx.now(), key, self.enqueued, sid
  self.queued, self.queued_bytes = self.queued + 1, self.queued_bytes + len
  if self.stalled and not (key and self.held[key]) then self.stalled = false end
  ensure_timer(self)
  if pending_size(self) >= self.batch_bytes then kick(self) end
  return true
end

--- Nothing to poll: reports are delivered from the senders. Kept for the same API.
function Queue.poll()
  return 0
end

--- Send everything buffered now; wait (where the phase can yield) until each operation held
-- at the call is accepted or has failed (and was handed to `on_error`).
-- @tparam[opt=10000] number timeout_ms
-- @return true when every one of them was accepted; else nil and an error: kind "phase"
-- (cannot wait here: only scheduled), or as `customerio.queue.thread`'s flush ("timeout",
-- "failed", with `sent`, `failed`, `pending`)
function Queue:flush(timeout_ms)
  timeout_ms = check.ms(timeout_ms, "timeout_ms", { default = 10000 })
  self.flush_target = self.enqueued
  local held = self.queued + self.in_flight
  kick(self)
  local phase = ngx.get_phase()
  if not yieldable[phase] then
    if held == 0 then return true end
    return nil, errors.new({ kind = "phase", message = "flush scheduled; it cannot wait in the " .. phase .. " phase" })
  end
  local fl = { seq = self.enqueued, sent = 0, failed = 0 }
  local flushes = self.flushes
  flushes[#flushes + 1] = fl
  ngx.update_time()
  local deadline = ngx.now() + timeout_ms / 1000
  while fl.sent + fl.failed < held do
    ngx.update_time()
    if ngx.now() >= deadline then break end
    if self.running == 0 then kick(self) end
    ngx.sleep(0.002)
  end
  for i = #flushes, 1, -1 do
    if flushes[i] == fl then table.remove(flushes, i) end
  end
  local r = { sent = fl.sent, failed = fl.failed, pending = held - fl.sent - fl.failed }
  if r.failed == 0 and r.pending == 0 then return true end
  return nil, common.flush_error(r, timeout_ms)
end

--- Refuse new operations and flush what is buffered.
-- @tparam[opt=10000] number timeout_ms
function Queue:close(timeout_ms)
  self.closed = true
  return self:flush(timeout_ms)
end

-- This worker's counters.
function Queue:own_stats()
  return {
    enqueued = self.enqueued, sent = self.sent, failed = self.failed, dropped = self.dropped,
    rejected = self.rejected, retried = self.retried, queued = self.queued, in_flight = self.in_flight,
    bytes = self.queued_bytes + self.in_flight_bytes, requests = self.requests, batches = self.batches,
    reports = 0, closed = self.closed, replayed = self.replayed, spool_errors = self.spool_errors,
    spool_bytes = self.spool and self.spool:bytes() or 0,
  }
end

--- Counters, as `customerio.Queue:stats()`, of this worker; with `stats_dict`, also `all`: the
-- same counters (but `closed`) summed over every worker that used a queue with this dict
-- since nginx started (each worker adds its changes at every `flush_interval` tick, at exit
-- and on its own `stats()` calls; a worker killed without exiting leaves its last figures).
-- @treturn table
function Queue:stats()
  local s = self:own_stats()
  if self.dict then
    publish(self)
    local all = {}
    for _, name in ipairs(COUNTERS) do all[name] = self.dict:get(self.dict_prefix .. name) or 0 end
    s.all = all
  end
  return s
end

-- Replay into this queue what the lanes nobody holds left (at new, then from the adopt timer:
-- lanes of workers that exited, e.g. across a reload). Damaged files go to on_error.
local function adopt(self)
  local spool = self.spool
  if spool == nil then return end
  local problems, err = spool:replay(function(json, key)
    local ok, e = self:_push(json, key, true)
    if ok then
      self.replayed = self.replayed + 1
    elseif e.kind ~= "too_large" then
      error(tostring(e), 0)
    end
  end)
  if problems == nil then return nil, err end
  for _, message in ipairs(problems) do report(self, {}, errors.new({ kind = "spool", message = message })) end
  return true
end

local function adopt_timer(premature, self)
  if premature or self.spool == nil then return end
  local ok, err = adopt(self)
  if not ok then ngx.log(ngx.ERR, "customerio.queue.ngx: spool: ", tostring(err)) end
end

local function sync_timer(premature, self)
  if premature or self.spool == nil or not self.spool_dirty then return end
  self.spool_dirty = false
  local ok, err = self.spool:sync()
  if not ok then
    self.spool_dirty = true
    ngx.log(ngx.ERR, "customerio.queue.ngx: ", tostring(err))
  end
end

--- Open the `spool` of `opts` for this worker's queue and replay what it holds (`new` does this).
-- Raises when the directory cannot be used.
function M.open_spool(self, opts)
  local d = M.defaults
  local dir = common.spool_dir(opts.spool)
  self.spool_sync = common.spool_sync(opts.spool_sync, d.spool_sync)
  local spool, err = core.spool_open(dir, {
    max_bytes = self.max_bytes, sync = self.spool_sync >= 0,
    segment_bytes = count(opts.spool_segment_bytes, "spool_segment_bytes", 64, d.spool_segment_bytes),
  })
  if spool == nil then error(err, 2) end
  self.spool = spool
  local ok, e = adopt(self)
  if not ok then
    spool:close()
    self.spool = nil
    error(e, 2)
  end
  -- The flush timer runs from now on: its run at worker exit releases the lane.
  ensure_timer(self)
  local every = ngx.timer.every
  local okt, terr = every(d.spool_adopt_interval / 1000, adopt_timer, self)
  if okt and self.spool_sync > 0 then okt, terr = every(self.spool_sync / 1000, sync_timer, self) end
  if not okt then ngx.log(ngx.ERR, "customerio.queue.ngx: cannot start a spool timer: ", tostring(terr)) end
end

function Queue:__tostring()
  return "customerio.queue.ngx (" .. self.v2_url .. "/batch)"
end

return M
