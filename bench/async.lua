--- Identify calls with N in flight through the async API (customerio.async: one libcurl multi
-- handle advanced by customerio.poll) against the bench responder.
--
--     lua5.4 bench/async.lua BASE_URL [CALLS] [WARMUP] [IN_FLIGHT] [MODE]
--     lua5.4 bench/async.lua --report RAW.txt OUT.json     (used by bench/async/run.sh)
--
-- Each callback starts the next call, so IN_FLIGHT calls (default 32) stay in flight until
-- CALLS are done. MODE "wait" (default) calls customerio.poll(100), a host that may block
-- between events; MODE "frame" calls customerio.poll(0) in a loop, like a game loop polling
-- once per frame, and also reports what a poll costs the frame (mean, p99 and max, in µs).
-- Prints one JSON line: calls, in_flight, seconds (timed part), rps, cpu_us per call, polls.
local core = require("customerio.core")

local function json_line(t)
  return assert(core.json_encode(t)) .. "\n"
end

if arg[1] == "--report" then
  -- RAW: lines "<id> <json>"; ids ours_<lua>_<mode> and node. Median rps per id.
  local raw, out = assert(arg[2]), assert(arg[3])
  local runs = {}
  for line in io.lines(raw) do
    local id, js = line:match("^(%S+) (.*)$")
    if id then
      local v = core.json_decode(js)
      runs[id] = runs[id] or {}
      table.insert(runs[id], v)
    end
  end
  local function median(list, field)
    local t = {}
    for i, v in ipairs(list) do t[i] = v[field] end
    table.sort(t)
    local n = #t
    if n == 0 then return nil end
    if n % 2 == 1 then return t[(n + 1) / 2] end
    return (t[n / 2] + t[n / 2 + 1]) / 2
  end
  local result = { in_flight = 32, target_ratio = 5, clients = {} }
  local node_rps = runs.node and median(runs.node, "rps")
  local ids = {}
  for id in pairs(runs) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    local list = runs[id]
    local entry = {
      client = list[1].client, runtime = list[1].lua or list[1].node, runs = #list,
      rps = median(list, "rps"), cpu_us_per_call = median(list, "cpu_us"),
      poll_us_mean = median(list, "poll_us_mean"), poll_us_p99 = median(list, "poll_us_p99"),
      poll_us_max = median(list, "poll_us_max"),
    }
    if node_rps and id ~= "node" then entry.ratio_vs_node = entry.rps / node_rps end
    result.clients[id] = entry
    io.stderr:write(string.format("  %-22s %9.0f req/s%s\n", id, entry.rps,
      entry.ratio_vs_node and string.format("  %.1fx Node (target 5x)", entry.ratio_vs_node) or ""))
  end
  result.node_rps = node_rps
  local f = assert(io.open(out, "wb"))
  f:write(json_line(result))
  f:close()
  return
end

local base = assert(arg[1], "usage: async.lua BASE_URL [CALLS] [WARMUP] [IN_FLIGHT] [MODE]")
local calls = tonumber(arg[2]) or 20000
local warmup = tonumber(arg[3]) or 200
local in_flight = tonumber(arg[4]) or 32
local mode = arg[5] or "wait"
assert(mode == "wait" or mode == "frame", "MODE is wait or frame")

local customerio = require("customerio")

-- The same attributes as bench/identify.lua and bench/identify.js.
local attrs = dofile((arg[0]:match("^(.*)/") or ".") .. "/payload.lua")

local track = customerio.async(customerio.TrackClient.new("site-id", "api-key", { url = base .. "/api/v1" }))
local now = core.monotonic_ms

-- Run ids first..last with `width` calls in flight; raises on the first failure.
local function run(first, last, width)
  local next_id, done, failure = first, 0, nil
  local total = last - first + 1
  local polls, pending_polls, poll_ms, durations = 0, 0, 0, {}
  local start
  local function on_done(result, err)
    done = done + 1
    if not result and not failure then failure = tostring(err) end
    if next_id <= last and not failure then start() end
  end
  start = function()
    local id = next_id
    next_id = next_id + 1
    track:identify("user-" .. id, attrs, on_done)
  end
  for _ = 1, math.min(width, total) do start() end
  if mode == "wait" then
    while done < total and not failure do
      customerio.poll(100)
      polls = polls + 1
    end
  else
    while done < total and not failure do
      local t0 = now()
      customerio.poll(0)
      local d = now() - t0
      polls = polls + 1
      poll_ms = poll_ms + d
      durations[polls] = d
      if done < total then pending_polls = pending_polls + 1 end
    end
  end
  if failure then error("identify failed: " .. failure) end
  table.sort(durations)
  return polls, pending_polls, poll_ms, durations
end

run(1, warmup, in_flight)
local c0, t0 = os.clock(), now()
local polls, pending_polls, poll_ms, durations = run(warmup + 1, warmup + calls, in_flight)
local seconds = (now() - t0) / 1000
local cpu = os.clock() - c0

local line = {
  client = "lua-customerio async (" .. mode .. ")", lua = jit and jit.version or _VERSION,
  calls = calls, warmup = warmup, in_flight = in_flight, seconds = seconds, rps = calls / seconds,
  cpu_us = cpu * 1e6 / calls, polls = polls,
}
if mode == "frame" then
  line.polls_while_pending = pending_polls
  line.poll_us_mean = poll_ms * 1000 / polls
  line.poll_us_p99 = (durations[math.ceil(#durations * 0.99)] or 0) * 1000
  line.poll_us_max = (durations[#durations] or 0) * 1000
end
io.write(json_line(line))
