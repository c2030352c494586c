-- A blocking poll never sleeps through a transfer that already finished (src/async.c).
--
-- The bug this guards against: when a poll's budget ran out during the socket action that
-- finished a transfer, async_poll went to async_wait without collecting it. The transfer was
-- then known only by its message in libcurl's queue, which no socket or timer signals, so
-- `wait()` slept until its next timer or the cap (50 ms then; hours without it). Under load
-- it happened now and then with the default budget; with a budget smaller than any socket
-- action it happened at every poll.
--
-- What is asserted is not a duration (that would depend on the machine's load) but the
-- state the C core finds when it is about to sleep: `missed_wakeups` in the handle's stats
-- counts the waits begun while a transfer finished in libcurl (libcurl's running count below
-- the transfers in the multi handle) was not collected. It must stay 0; with the bug it is
-- one per poll at the tiny budget below.
local server = require("support.server")
local customerio = require("customerio")
local async = require("customerio.async")
local core = require("customerio.core")

-- Smaller than any socket action: every drive spends the whole budget.
local TINY_BUDGET = 0.001

describe("blocking poll and finished transfers", function()
  before_each(function() server.reset() end)

  it("200 blocking polls, one transfer each, at a tiny budget: no wait begins with one finished", function()
    local multi = core.async_new()
    local url = server.url() .. "/wake"
    for i = 1, 200 do
      local id = assert(multi:add("GET", url, nil, nil, 10000))
      local finished
      repeat finished = multi:poll(10000, TINY_BUDGET) until finished
      assert.are.equal(1, #finished, "poll " .. i)
      assert.are.equal(id, finished[1][1])
      assert.are.equal(200, finished[1][2])
    end
    assert.are.equal(0, multi:stats().missed_wakeups)
    assert.are.equal(200, multi:stats().completed)
    multi:close()
    assert.are.equal(200, server.count())
  end)

  it("50 transfers at once, collected by blocking polls at a tiny budget: every one, no missed wake-up", function()
    local multi = core.async_new()
    local url = server.url() .. "/wake"
    local ids = {}
    for _ = 1, 50 do ids[assert(multi:add("POST", url, nil, "{}", 10000))] = true end
    local seen = 0
    while multi:pending() > 0 do
      for _, r in ipairs(multi:poll(10000, TINY_BUDGET) or {}) do
        assert.is_true(ids[r[1]], "unknown or repeated id " .. tostring(r[1]))
        ids[r[1]] = nil
        assert.are.equal(200, r[2])
        seen = seen + 1
      end
    end
    assert.are.equal(50, seen)
    assert.are.equal(0, multi:stats().missed_wakeups)
    multi:close()
  end)

  it("customerio.async wait() at a tiny budget: 100 calls one after another, none missed", function()
    local engine = async.engine({ budget = TINY_BUDGET })
    local track = customerio.TrackClient.new("site", "secret-key", { url = server.url() .. "/api/v1", retry = false })
    local a = async.wrap(track, { engine = engine })
    local delivered = 0
    for i = 1, 100 do
      a:identify(tostring(i), { n = i }, function(res, err)
        assert.is_nil(err)
        assert.truthy(res)
        delivered = delivered + 1
      end)
      assert.is_true(engine:wait(30000), "call " .. i .. " still pending")
      assert.are.equal(i, delivered)
    end
    assert.are.equal(0, engine:handle():stats().missed_wakeups)
    assert.are.equal(100, server.count())
  end)
end)
