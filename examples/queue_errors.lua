-- What the background queue does with operations it cannot deliver: one on_error call, and one
-- log line, per failed batch; flush says how many were sent, failed or are still pending.
--
--     lua5.4 examples/queue_errors.lua [TRACK_URL]
--
-- TRACK_URL defaults to a closed local port (http://127.0.0.1:9/api/v1), so every batch fails
-- after its retries. Nothing here talks to real Customer.io.
local customerio = require("customerio")

local url = arg[1] or "http://127.0.0.1:9/api/v1"
local track = customerio.TrackClient.new("site-id", "api-key", { url = url })

local q = customerio.Queue.new(track, {
  flush_interval = 100,
  batch_bytes = 4096, -- small batches, to show one line per batch
  retry = { max_retries = 2, min_timeout = 50, max_timeout = 200 },
  -- ops: the failed operations of one batch (decoded); err: why (kind, status, message,
  -- attempts, count; op_errors[i] for each operation of a 207); jsons: the bytes sent.
  on_error = function(ops, err, jsons)
    local bytes = 0
    for _, json in ipairs(jsons) do bytes = bytes + #json end
    io.stderr:write(string.format("queue: %d operation(s), %d bytes, not delivered after %d attempt(s): %s\n",
      #ops, bytes, err.attempts or 1, tostring(err)))
  end,
})

for i = 1, 100 do
  assert(q:identify("user-" .. i, { plan = "pro", seen = i }))
end

local ok, err = q:flush(10000)
if ok then
  print("flush: everything accepted")
else
  print(string.format("flush: %s (sent %d, failed %d, pending %d)", err.kind, err.sent, err.failed, err.pending))
end
local s = q:stats()
print(string.format("stats: enqueued %d, sent %d, failed %d, batches %d, requests %d, retried %d",
  s.enqueued, s.sent, s.failed, s.batches, s.requests, s.retried))
q:close()
