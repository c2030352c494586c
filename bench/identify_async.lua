--- Identify calls with N in flight through the async API (customerio.async, one libcurl multi
-- handle driven by customerio.poll) against the bench responder.
--
--     lua5.4 bench/identify_async.lua BASE_URL [CALLS] [WARMUP] [IN_FLIGHT]
--
-- Each callback starts the next call, so IN_FLIGHT calls (default 32) stay in flight until
-- CALLS are done. Prints one JSON line: calls, warmup, in_flight, seconds (timed part only).
local base = assert(arg[1], "usage: identify_async.lua BASE_URL [CALLS] [WARMUP] [IN_FLIGHT]")
local calls = tonumber(arg[2]) or 20000
local warmup = tonumber(arg[3]) or 200
local in_flight = tonumber(arg[4]) or 32

local customerio = require("customerio")
local core = require("customerio.core")

-- The same attributes as bench/identify.lua and bench/identify.js.
local attrs = dofile((arg[0]:match("^(.*)/") or ".") .. "/payload.lua")

local track = customerio.async(customerio.TrackClient.new("site-id", "api-key", { url = base .. "/api/v1" }))

-- Run ids first..last with `width` calls in flight; raise on the first failure.
local function run(first, last, width)
  local next_id, done, failure = first, 0, nil
  local total = last - first + 1
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
  while done < total and not failure do customerio.poll(1000) end
  if failure then error("identify failed: " .. failure) end
end

run(1, warmup, in_flight)
local t0 = core.monotonic_ms()
run(warmup + 1, warmup + calls, in_flight)
local seconds = (core.monotonic_ms() - t0) / 1000

io.write(string.format('{"client":"lua-customerio async","lua":"%s","calls":%d,"warmup":%d,"in_flight":%d,"seconds":%.6f}\n',
  jit and jit.version or _VERSION, calls, warmup, in_flight, seconds))
