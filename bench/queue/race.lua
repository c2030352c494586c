--- Race/leak driver for customerio.Queue's C worker, without subprocesses, so that it can run
-- under a ThreadSanitizer-preloaded interpreter or valgrind (busted's popen'd shells do not
-- survive an LD_PRELOAD of libtsan). Needs CIO_TEST_URL (a running spec/support/server.lua,
-- ideally with faults scripted beforehand). Used for the report on issue #5:
--
--   make BUILD=/tmp/tsan OPT=-O1 SANFLAGS=-fsanitize=thread
--   LUA_CPATH='/tmp/tsan/?.so;;' LD_PRELOAD=$(gcc -print-file-name=libtsan.so) \
--     setarch -R lua5.4 bench/queue/race.lua 20000
--   valgrind --tool=helgrind lua5.4 bench/queue/race.lua 1500
--   valgrind --leak-check=full lua5.4 bench/queue/race.lua 3000
local customerio = require("customerio")
local url = assert(os.getenv("CIO_TEST_URL"), "CIO_TEST_URL is required")
local N = tonumber(arg and arg[1]) or 20000
local fails = 0
local track = customerio.TrackClient.new("s", "k", { url = url .. "/api/v1" })
local q = customerio.Queue.new(track, { batch_bytes = 16 * 1024, flush_interval = 5, max_in_flight = 4,
  max_events = 5000, retry = { max_retries = 20, min_timeout = 1, max_timeout = 5 },
  on_error = function() fails = fails + 1 end })
local dropped = 0
for i = 1, N do
  local ok = q:track("u" .. i % 100, "e", { i = i })
  if not ok then dropped = dropped + 1 end
  if i % 997 == 0 then q:stats() end
end
assert(q:flush(60000))
local s = q:stats()
print("main", s.enqueued, s.sent, s.failed, s.dropped, s.retried, s.requests, dropped, fails)
assert(s.enqueued == s.sent + s.failed + s.queued + s.in_flight)
q:close()
-- abort path: unreachable server, close with a short timeout
local bad = customerio.TrackClient.new("s", "k", { url = "http://127.0.0.1:9/api/v1" })
local q2 = customerio.Queue.new(bad, { flush_interval = 0,
  retry = { max_retries = 100, min_timeout = 20, max_timeout = 20, max_total_backoff = 1e6 },
  on_error = function() fails = fails + 1 end })
for i = 1, 100 do q2:identify("x" .. i) end
print("abort", q2:close(100), q2:stats().failed)
-- GC path with pending work
do
  local q3 = customerio.Queue.new(track, { flush_interval = 60000 })
  for i = 1, 500 do q3:identify("gc" .. i) end
end
collectgarbage(); collectgarbage()
-- exit path: left open on purpose, lua_close flushes it
local q4 = customerio.Queue.new(track, { flush_interval = 60000 })
for i = 1, 500 do q4:identify("exit" .. i) end
print("done")
