--- How long one customerio.poll(0) takes with many calls in flight: the program behind
-- bench/async/run.sh's poll figures and spec/async_poll_spec.lua (which runs it under an
-- LD_PRELOAD resolver that stalls).
--
--   lua5.4 bench/async/poll.lua URL CALLS TIMEOUT_MS BUDGET_MS FPS [FRAMES]
--
-- Fires CALLS identify calls at once through customerio.async to URL (a Track API root, e.g.
-- http://stall.test:8080/api/v1), retries off, each with TIMEOUT_MS; then polls with
-- poll(0, { budget = BUDGET_MS }) once per frame at FPS frames per second (0: back to back
-- with a 1 ms sleep) until every callback ran, timing each poll. With FRAMES, each callback
-- starts another call for FRAMES frames (CALLS stay in flight), then the rest drains. Prints:
--   fire <ms to start every call>
--   polls <count> <max ms> <p99 ms> <median ms> <over> (wall clock; over: polls longer than
--         budget + 1 ms)
--   cpu <max ms> <p99 ms> <median ms> <over> (the same polls in CPU time of this thread,
--         core.thread_cpu_ms: the work a poll did, without the time a loaded machine gave to
--         other processes or to the resolver's threads)
--   call <ms from the first call to its callback> <"ok" or err.kind> <err message>
-- With BUDGET_MS "none" the engine is used as it is (for versions without budgets).
local core = require("customerio.core")
local customerio = require("customerio")
local async = require("customerio.async")

local url, calls, timeout = arg[1], tonumber(arg[2]), tonumber(arg[3])
local budget, fps, frames = tonumber(arg[4]), tonumber(arg[5]) or 0, tonumber(arg[6])
local now = core.monotonic_ms

local engine = async.engine(budget and { budget = budget } or nil)
local client = customerio.TrackClient.new("site", "secret-key", { url = url, timeout = timeout, retry = false })
local wrapped = async.wrap(client, { engine = engine })

local ended = {}
local t0 = now()
local frame_no, seq = 0, 0
local function start()
  seq = seq + 1
  wrapped:identify(tostring(seq), { email = seq .. "@example.com" }, function(_, err)
    ended[#ended + 1] = { now() - t0, err and err.kind or "ok", err and tostring(err.message) or "" }
    if frames and frame_no < frames then start() end
  end)
end
for _ = 1, calls do start() end
print(string.format("fire %.3f", now() - t0))

local times, cpu = {}, {}
-- (os.clock, the whole process's CPU time, for versions of the core without thread_cpu_ms)
local clock = core.thread_cpu_ms or function() return os.clock() * 1000 end
local frame = fps > 0 and 1000 / fps or nil
local guard = t0 + 60000 + (frames and frame and frames * frame or 0)
local next_frame = now()
while engine:pending_calls() > 0 and now() < guard do
  local s, c = now(), clock()
  engine:poll(0)
  times[#times + 1] = now() - s
  cpu[#cpu + 1] = clock() - c
  frame_no = frame_no + 1
  if frame then
    next_frame = next_frame + frame
    local rest = next_frame - now()
    if rest > 0 then core.sleep_ms(rest) end
  else
    core.sleep_ms(1)
  end
end

local function summary(list)
  table.sort(list)
  local n = #list
  local function pct(p) return n > 0 and list[math.max(1, math.ceil(n * p))] or 0 end
  local over = 0
  for i = 1, n do
    if list[i] > (budget or 2) + 1 then over = over + 1 end
  end
  return string.format("%.3f %.3f %.3f %d", list[n] or 0, pct(0.99), pct(0.5), over)
end
print(string.format("polls %d %s", #times, summary(times)))
print("cpu " .. summary(cpu))
for i = 1, #ended do
  local e = ended[i]
  print(string.format("call %.1f %s %s", e[1], e[2], (e[3]:gsub("\n", " "))))
end
