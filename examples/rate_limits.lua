-- Client-side rate limits against the in-process sandbox, which enforces Customer.io's
-- documented limits (429 with Retry-After) on a clock that the client's waits advance, so this
-- runs at once although it "waits" over 20 seconds.
--
--   make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 examples/rate_limits.lua
--
-- Against Customer.io the same code waits in real time (inside nginx with ngx.sleep, in
-- customerio.async calls by yielding). Inside nginx, share one budget between the workers with
-- `rate_limit = { shared_dict = "cio_rl" }` and `lua_shared_dict cio_rl 1m;` in nginx.conf.
local customerio = require("customerio")

local sb = customerio.sandbox.new()
sb:add_segment({ id = 1, name = "everyone", filter = { attribute = { field = "email", operator = "exists" } } })
sb:add_broadcast(7, { segment = 1, template = { subject = "News", body = "Hello" } })

-- The defaults: 10 requests/s for the App API, 100/s for sends, 10 s between triggers of a broadcast.
local api = customerio.APIClient.new("app-key", { transport = sb })
local t0 = sb:clock_ms()
for _ = 1, 25 do assert(api:list_segments()) end
print(string.format("25 App API calls: the last one started %.0f ms after the first", sb:clock_ms() - t0))

t0 = sb:clock_ms()
for i = 1, 2 do
  local res, err = api:trigger_broadcast(7, { edition = i })
  print(string.format("trigger %d at +%.0f ms: %s", i, sb:clock_ms() - t0, res and ("id " .. res.id) or tostring(err)))
end

-- A turn further than max_wait returns at once: nothing is sent, err.retry_after says when.
local impatient = customerio.APIClient.new("app-key", { transport = sb, rate_limit = { max_wait = 1000 } })
local res, err = impatient:trigger_broadcast(7)
print(res, err.kind, err.sent, err.retry_after .. " ms")

-- Without client-side limits the sandbox refuses what Customer.io would refuse.
local unlimited = customerio.APIClient.new("app-key", { transport = sb, rate_limit = false, retry = false })
res, err = unlimited:trigger_broadcast(7)
print(res, err.status, err.message, "Retry-After: " .. err.headers["retry-after"])
