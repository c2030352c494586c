--- customerio.Queue throughput against the bench responder (200 `{}` for every request).
--
--     lua5.4 bench/queue/deliver.lua BASE_URL [EVENTS] [WARMUP] [ORDER] [SPOOL_SYNC]
--
-- Enqueues EVENTS identify operations (the attributes of bench/identify.js) as fast as the
-- caller can, then flushes, with the queue's `order` option ORDER ("batch", the default: each
-- person's operations in order; "strict"; "none": no ordering); prints one JSON line: events, seconds to enqueue, seconds until
-- everything was delivered (first enqueue to the end of flush), enqueue and delivery rates,
-- and the queue's counters (requests, batches, sent, failed, dropped). With SPOOL_SYNC (ms,
-- "always" or "never"), the queue has a durable spool (`spool`, `spool_sync`) in a fresh
-- directory under $TMPDIR, removed at the end.
local base = assert(arg[1], "usage: deliver.lua BASE_URL [EVENTS] [WARMUP]")
local events = tonumber(arg[2]) or 200000
local warmup = tonumber(arg[3]) or 2000
local order = arg[4] or "batch"
if order == "none" then order = false end
local spool_sync = arg[5]
if spool_sync then spool_sync = tonumber(spool_sync) or spool_sync end
local spool_dir
if spool_sync then
  spool_dir = os.tmpname()
  os.remove(spool_dir)
end

local customerio = require("customerio")
local core = require("customerio.core")

-- The same attributes as bench/identify.js.
local attrs = dofile((arg[0]:match("^(.*)/") or ".") .. "/../payload.lua")

local track = customerio.TrackClient.new("site-id", "api-key", { url = base .. "/api/v1" })
local failures = 0
local q = customerio.Queue.new(track, {
  max_events = events + warmup, max_bytes = 1024 * 1024 * 1024, order = order,
  on_error = function() failures = failures + 1 end,
  spool = spool_dir, spool_sync = spool_sync,
})

for i = 1, warmup do assert(q:identify("warm-" .. i, attrs)) end
assert(q:flush(60000))
local before = q:stats()

local t0 = core.monotonic_ms()
for i = 1, events do
  local ok, err = q:identify("user-" .. i, attrs)
  if not ok then error("enqueue failed: " .. tostring(err)) end
end
local t1 = core.monotonic_ms()
local ok, err = q:flush(600000)
local t2 = core.monotonic_ms()
if not ok then error("flush failed: " .. tostring(err)) end
local s = q:stats()
q:close()
if spool_dir then os.execute("rm -rf '" .. spool_dir .. "'") end

local enqueue_s, total_s = (t1 - t0) / 1000, (t2 - t0) / 1000
io.write(string.format(
  '{"lua":"%s","order":"%s","spool_sync":"%s","events":%d,"enqueue_seconds":%.4f,"deliver_seconds":%.4f,"enqueue_per_s":%.0f,' ..
  '"delivered_per_s":%.0f,"requests":%d,"batches":%d,"sent":%d,"failed":%d,"dropped":%d,"on_error":%d}\n',
  type(jit) == "table" and jit.version or _VERSION, tostring(order), tostring(spool_sync or "none"), events, enqueue_s, total_s,
  events / enqueue_s, events / total_s,
  s.requests - before.requests, s.batches - before.batches, s.sent - before.sent, s.failed, s.dropped, failures))
if s.sent - before.sent ~= events or s.failed ~= 0 then os.exit(1) end
