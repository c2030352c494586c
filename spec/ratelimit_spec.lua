-- Client-side rate limits (customerio.ratelimit): budgets shared by clients, broadcast spacing,
-- 429s with and without Retry-After, daily quotas, max_wait, the async API. Intervals are
-- scaled down (rate_limit options) so that the spec runs in seconds.
--
-- What is asserted is what docs/app.md guarantees: every attempt starts no earlier than its
-- slot, and the slots of one budget are `1000 / rate` ms apart (burst 1). The test server
-- stamps each request when it has read it (ngx.now() after update_time: the wall clock,
-- truncated to the ms), so the k-th request it receives arrived no earlier than the k-th
-- slot: t0 + (k - 1) * interval, less 1 ms for the truncation.
local customerio = require("customerio")
local core = require("customerio.core")
local ratelimit = require("customerio.ratelimit")
local memory = require("customerio.ratelimit.memory")
local server = require("support.server")

-- A fresh credential per test: budgets are per key and root URL, and live as long as the process.
local serial = 0
local function fresh_key()
  serial = serial + 1
  return "rl-" .. serial .. "-" .. core.hex(core.random_bytes(4))
end

local function api(key, rate_limit, opts)
  local o = { url = server.url() .. "/v1", rate_limit = rate_limit, retry = { min_timeout = 10, max_timeout = 20 } }
  for k, v in pairs(opts or {}) do o[k] = v end
  return customerio.APIClient.new(key, o)
end

local function times(path)
  local out = {}
  for _, r in ipairs(server.requests(path)) do out[#out + 1] = r.time * 1000 end
  table.sort(out)
  return out
end

local SLACK = 1 -- ms: the server's clock is read at ms precision

describe("customerio.ratelimit", function()
  before_each(function() server.reset() end)

  describe("GCRA", function()
    it("spaces slots by the interval and lets `burst` go at once", function()
      local stored, wait = memory.gcra(nil, 1000, 100, 1, 0)
      assert.are.same({ 1100, 0 }, { stored, wait })
      stored, wait = memory.gcra(stored, 1000, 100, 1, 1000)
      assert.are.same({ 1200, 100 }, { stored, wait })
      -- burst 3: tolerance 200 ms, so three slots at once, the fourth 100 ms later
      local s = nil
      local waits = {}
      for i = 1, 4 do s, waits[i] = memory.gcra(s, 0, 100, 3, 1000) end
      assert.are.same({ 0, 0, 0, 100 }, waits)
    end)

    it("reserves nothing when the wait is over max_wait", function()
      local b = memory.new({ private = true, clock = function() return 0 end })
      assert.are.equal(0, b:reserve("k", 100, 1, 50))
      local ok, wait = b:reserve("k", 100, 1, 50)
      assert.is_nil(ok)
      assert.are.equal(100, wait)
      assert.are.equal(100, b:reserve("k", 100, 1, 100)) -- the refused call took nothing
      b:penalize("k", 5000)
      assert.are.equal(5000, select(2, b:reserve("k", 100, 1, 0)))
    end)
  end)

  describe("options", function()
    local function refuses(msg, rate_limit)
      local ok, err = pcall(customerio.APIClient.new, "k", { rate_limit = rate_limit })
      assert.is_false(ok)
      assert.are.equal(msg, err)
    end

    it("refuses bad values with a clear message", function()
      refuses("rate_limit must be a table or false, got string", "yes")
      refuses("rate_limit.app must be a positive number of requests per second", { app = 0 })
      refuses("rate_limit.transactional must be a positive number of requests per second", { transactional = "x" })
      refuses("rate_limit.broadcast_interval must be a positive number of milliseconds", { broadcast_interval = -1 })
      refuses("rate_limit.burst must be a whole number from 1 to 1000000", { burst = 1.5 })
      refuses("rate_limit.max_wait must be a number of milliseconds, 0 or more", { max_wait = -1 })
      refuses("rate_limit.shared_dict must be the name of a lua_shared_dict", { shared_dict = 3 })
      refuses("rate_limit.redis must be a redis:// URL", { redis = "http://x" })
      refuses("rate_limit.track applies to the Track API (TrackClient) only", { track = 5 })
      refuses("unknown rate_limit option: speed (expected app, transactional, broadcast_interval, burst, track, " ..
        "shared_dict, redis, max_wait)", { speed = 1 })
      local ok, err = pcall(customerio.TrackClient.new, "s", "k", { rate_limit = { burst = 2 } })
      assert.is_false(ok)
      assert.matches("rate_limit.track is required", err, 1, true)
      ok, err = pcall(customerio.APIClient.new, "k", { rate_limit = { shared_dict = "d" } })
      assert.is_false(ok)
      assert.matches("no lua_shared_dict named d", err, 1, true)
    end)

    it("is on by default for the App API, and off with false", function()
      assert.is_table(customerio.APIClient.new("k").client.limiter)
      assert.is_nil(customerio.APIClient.new("k", { rate_limit = false }).client.limiter)
      assert.is_nil(customerio.TrackClient.new("s", "k").client.limiter)
      assert.is_table(customerio.TrackClient.new("s", "k", { rate_limit = { track = 5 } }).client.limiter)
    end)

    it("keys budgets by a digest of the credential, never the credential", function()
      local l = customerio.APIClient.new("secret-key-123").client.limiter
      local b = l:budget("app")
      assert.is_nil(b.key:find("secret", 1, true))
      assert.matches("^cio:rl:%x+:app$", b.key)
      assert.matches("^cio:rl:%x+:broadcast:7$", l:budget({ "broadcast", "7" }).key)
      assert.matches("^cio:rl:%x+:transactional$", l:budget("transactional").key)
    end)
  end)

  describe("against the test server", function()
    it("keeps several clients with one key to one budget: the k-th request starts at slot k or later", function()
      local key = fresh_key()
      local clients = {}
      for i = 1, 3 do clients[i] = api(key, { app = 20 }) end -- 50 ms apart
      local t0 = core.now_ms()
      for i = 1, 12 do assert(clients[i % 3 + 1]:list_segments()) end
      local got = times("/v1/segments")
      assert.are.equal(12, #got)
      for k = 1, 12 do
        assert.is_true(got[k] >= t0 + (k - 1) * 50 - SLACK, "request " .. k .. " came " .. (got[k] - t0) .. " ms after t0")
      end
      -- A client with another key has its own budget, and the transactional sends theirs.
      assert.are_not.equal(clients[1].client.limiter:budget("app").key,
        api(fresh_key(), { app = 20 }).client.limiter:budget("app").key)
    end)

    it("spaces the triggers of one broadcast by broadcast_interval", function()
      local c = api(fresh_key(), { broadcast_interval = 300 })
      local t0 = core.now_ms()
      for _ = 1, 3 do assert(c:trigger_broadcast(5)) end
      local got = times("/v1/campaigns/5/triggers")
      assert.are.equal(3, #got)
      assert.is_true(got[2] >= t0 + 300 - SLACK)
      assert.is_true(got[3] >= t0 + 600 - SLACK)
    end)

    it("after a 429 without Retry-After on a trigger, waits the broadcast interval, then replays it", function()
      local c = api(fresh_key(), { broadcast_interval = 300 })
      server.respond({ status = 429, body = '{"meta":{"error":"too many"}}', path = "/v1/campaigns/5/triggers" })
      server.respond({ status = 200, body = '{"id":1}', path = "/v1/campaigns/5/triggers" })
      assert(c:trigger_broadcast(5))
      local got = times("/v1/campaigns/5/triggers")
      assert.are.equal(2, #got)
      assert.is_true(got[2] - got[1] >= 300 - SLACK, "replayed after " .. (got[2] - got[1]) .. " ms")
    end)

    it("after a 429 with Retry-After, no request of that budget goes before it", function()
      local c = api(fresh_key(), { app = 50 })
      server.respond({ status = 429, headers = { ["Retry-After"] = "1" }, path = "/v1/segments" })
      assert(c:list_segments())
      local got = times("/v1/segments")
      assert.are.equal(2, #got)
      assert.is_true(got[2] - got[1] >= 1000 - SLACK)
    end)

    it("returns at once, with retry_after, when Retry-After is longer than the call may wait", function()
      local c = api(fresh_key(), {}, { timeout = 2000 })
      server.respond({ status = 429, headers = { ["Retry-After"] = "100" }, path = "/v1/segments" })
      local started = core.monotonic_ms()
      local res, err = c:list_segments()
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal(100000, err.retry_after)
      assert.are.equal(1, server.count())
      assert.is_true(core.monotonic_ms() - started < 100000)
    end)

    it("does not retry a 429 that reads as a daily quota (no Retry-After)", function()
      local c = api(fresh_key(), { broadcast_interval = 100 })
      server.respond({ status = 429, path = "/v1/campaigns/5/triggers",
        body = '{"meta":{"error":"You have reached the daily limit of API triggered broadcasts."}}' })
      local res, err = c:trigger_broadcast(5)
      assert.is_nil(res)
      assert.are.equal("quota", err.kind)
      assert.is_false(err.retryable)
      assert.are.equal(1, server.count())
    end)

    it("returns rate_limited at once, nothing sent, when the turn is further than max_wait", function()
      local c = api(fresh_key(), { broadcast_interval = 60000, max_wait = 100 })
      assert(c:trigger_broadcast(5))
      local res, err = c:trigger_broadcast(5)
      assert.is_nil(res)
      assert.are.equal("rate_limited", err.kind)
      assert.are.equal("no", err.sent)
      assert.is_true(err.retryable)
      assert.are.equal(0, err.attempts)
      assert.is_true(err.retry_after > 100 and err.retry_after <= 60000)
      assert.matches("nothing was sent", tostring(err), 1, true)
      assert.are.equal(1, server.count())
    end)

    it("returns a trigger's 429 without Retry-After at once when the interval is over max_wait", function()
      local c = api(fresh_key(), { broadcast_interval = 5000, max_wait = 1000 })
      server.respond({ status = 429, body = '{"meta":{"error":"too many"}}', path = "/v1/campaigns/5/triggers" })
      local started = core.monotonic_ms()
      local res, err = c:trigger_broadcast(5)
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal(5000, err.retry_after)
      assert.are.equal(1, server.count())
      assert.is_true(core.monotonic_ms() - started < 5000)
      -- The budget was pushed back: the next trigger is refused without being sent.
      local _, again = c:trigger_broadcast(5)
      assert.are.equal("rate_limited", again.kind)
      assert.are.equal(1, server.count())
    end)

    it("keeps the general, transactional and broadcast budgets apart", function()
      local c = api(fresh_key(), { app = 0.001, max_wait = 100 }) -- one App API call per 1000 s
      assert(c:list_segments())
      local _, err = c:list_segments()
      assert.are.equal("rate_limited", err.kind)
      assert(c:send_email({ to = "a@example.com", identifiers = { id = "1" }, transactional_message_id = "1" }))
      assert(c:trigger_broadcast(9))
      assert.are.equal("rate_limited", select(2, c:request("GET", "segments")).kind)
      assert(c:request("POST", "/send/email", { body = { to = "a@example.com", transactional_message_id = "1",
        identifiers = { id = "1" } } }))
      assert.are.equal(4, server.count())
    end)

    it("limits a Track client with rate_limit.track", function()
      local t = customerio.TrackClient.new("site", fresh_key(), { url = server.url() .. "/api/v1",
        rate_limit = { track = 20 } })
      local t0 = core.now_ms()
      for i = 1, 4 do assert(t:identify(tostring(i), {})) end
      local got = times("/api/v1/customers")
      assert.are.equal(4, #got)
      assert.is_true(got[4] >= t0 + 150 - SLACK)
    end)
  end)

  describe("async", function()
    it("makes calls wait their turn while poll(0) stays non-blocking", function()
      local async = require("customerio.async")
      local engine = async.engine()
      local a = async.wrap(api(fresh_key(), { app = 1 }), { engine = engine }) -- 1 s apart
      local done = {}
      local t0 = core.now_ms()
      for i = 1, 3 do
        assert.is_true(a:list_segments(function(res, err) done[i] = res or err end))
      end
      local longest, guard = 0, core.monotonic_ms() + 20000
      while a:pending() > 0 and core.monotonic_ms() < guard do
        local s = core.monotonic_ms()
        engine:poll(0)
        longest = math.max(longest, core.monotonic_ms() - s)
        core.sleep_ms(5)
      end
      for i = 1, 3 do assert.are.same({}, done[i]) end
      -- The third call's slot is 2 s after the first's; no poll(0) waited for a slot (1 s).
      local got = times("/v1/segments")
      assert.are.equal(3, #got)
      assert.is_true(got[3] >= t0 + 2000 - SLACK)
      assert.is_true(longest < 500, "a poll(0) took " .. longest .. " ms")
    end)
  end)

  describe("fallback", function()
    it("uses the per-process budget when the backend fails, and reports it once", function()
      local lines = {}
      local broken = { name = "broken",
        reserve = function() return nil, nil, "connection refused" end,
        penalize = function() return nil, "connection refused" end }
      local l = ratelimit.new(ratelimit.config({ app = 10 }, "app"),
        { secret = fresh_key(), root = "http://x/v1", backend = broken, on_report = function(l) lines[#lines + 1] = l end })
      local b = l:budget("app")
      assert.are.equal(0, l:reserve(b, 1000))
      assert.is_true(l:reserve(b, 1000) > 0)
      l:penalize(b, 10)
      assert.are.equal(1, #lines)
      assert.matches("rate limit backend broken unusable, using the per%-process limiter: connection refused", lines[1])
    end)
  end)
end)
