-- The queue's durable spool: what a crashed process enqueued is sent by the next one.
--
--     lua5.4 examples/queue_spool.lua [TRACK_URL] [SPOOL_DIR]
--
-- Run it twice. The first run enqueues 5 operations while Customer.io is unreachable (TRACK_URL
-- defaults to a closed local port) and exits with status 1: nothing is delivered, and everything
-- stays in SPOOL_DIR (default /tmp/cio-spool-example), as after a `kill -9`. Every later
-- run replays what it finds there before enqueuing its own. Point TRACK_URL at a server that
-- answers (e.g. `make sandbox`: http://127.0.0.1:8180/api/v1) to see the replay delivered.
-- Nothing here talks to real Customer.io.
local customerio = require("customerio")

local url = arg[1] or "http://127.0.0.1:9/api/v1"
local dir = arg[2] or "/tmp/cio-spool-example"
local track = customerio.TrackClient.new("site-id", "api-key", { url = url })

local q = customerio.Queue.new(track, {
  spool = dir,        -- written there before each enqueue call returns
  spool_sync = 100,   -- fsync at most 100 ms after a write (a power cut loses at most that)
  retry = { max_retries = 1, min_timeout = 50, max_timeout = 100 },
  on_error = function(ops, err)
    -- kind "spool": a damaged spool file was skipped (err.message names file and offset)
    io.stderr:write(string.format("queue: %d operation(s) not delivered: %s\n", #ops, tostring(err)))
  end,
})
print(string.format("replayed from %s: %d operation(s) left by earlier runs", dir, q:stats().replayed))

for i = 1, 5 do
  local ok, err = q:track("user-" .. i, "signed_up", { n = i })
  if not ok then print("not queued: " .. tostring(err)) end -- kind "spool": disk full, ...
end

local ok = q:flush(3000)
local s = q:stats()
print(string.format("sent %d, failed %d; %d byte(s) still spooled", s.sent, s.failed, s.spool_bytes))
if not ok then
  print("not delivered: the next run sends it")
  os.exit(1, false)
end
q:close()
