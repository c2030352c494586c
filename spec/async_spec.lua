-- The async API for single-threaded hosts (customerio.async, core.async_new): calls that
-- return at once, a libcurl multi handle advanced only by poll(), callbacks that run only
-- inside poll, the client's retries/redirects/errors unchanged, and callbacks that raise.
local server = require("support.server")
local customerio = require("customerio")
local async = require("customerio.async")
local core = require("customerio.core")
local errors = require("customerio.errors")

local function track_client(opts)
  opts = opts or {}
  opts.url = opts.url or (server.url() .. "/api/v1")
  if opts.retry == nil then opts.retry = { min_timeout = 1, max_timeout = 5 } end
  return customerio.TrackClient.new("site", "secret-key", opts)
end

-- A private engine per test, so that nothing leaks from one test into the next.
local function wrapped(opts, engine_opts)
  local engine = async.engine(engine_opts)
  return async.wrap(track_client(opts), { engine = engine }), engine
end

describe("customerio.async", function()
  before_each(function() server.reset() end)

  describe("in flight and poll(0)", function()
    it("keeps 100 requests in flight at once, and poll(0) never blocks", function()
      server.respond_many(100, { delay = 400 })
      local a, engine = wrapped()
      local results, inside = {}, false
      local outside_calls = 0
      for i = 1, 100 do
        local ret = a:identify(tostring(i), { email = i .. "@example.com" }, function(res, err)
          if not inside then outside_calls = outside_calls + 1 end
          results[#results + 1] = { res = res, err = err }
        end)
        assert.is_true(ret)
      end
      assert.are.equal(100, a:pending())
      assert.are.equal(0, #results)
      local polls, returned_pending, ran = 0, 0, 0
      local guard = core.monotonic_ms() + 20000
      while a:pending() > 0 and core.monotonic_ms() < guard do
        inside = true
        local n = engine:poll(0)
        inside = false
        polls = polls + 1
        ran = ran + n
        if a:pending() > 0 then returned_pending = returned_pending + 1 end
      end
      assert.are.equal(0, a:pending())
      assert.are.equal(100, ran)
      assert.are.equal(100, #results)
      assert.are.equal(0, outside_calls)
      for i = 1, 100 do
        assert.is_nil(results[i].err)
        assert.are.same({}, results[i].res)
      end
      -- Every request was held 400 ms by the server; they were all there at once.
      assert.are.equal(100, server.count())
      assert.is_true(server.stats().max_in_flight >= 90, "max_in_flight " .. server.stats().max_in_flight)
      -- poll(0) came back many times while the requests were still pending: it does not wait.
      assert.is_true(returned_pending >= 20, "poll(0) returned while pending only " .. returned_pending .. " times")
      assert.are.equal(polls - 1, returned_pending)
      local s = engine:stats()
      assert.are.equal(100, s.completed)
      assert.are.equal(0, s.in_flight)
      assert.are.equal(100, s.callbacks)
    end)

    it("does nothing between polls: no callback runs before poll, even when the server answered", function()
      local a, engine = wrapped()
      local got = 0
      a:identify("1", { email = "a@example.com" }, function() got = got + 1 end)
      core.sleep_ms(100)
      assert.are.equal(0, got)
      assert.are.equal(0, server.count()) -- not even sent: only poll advances the transfers
      assert.is_true(engine:wait(5000))
      assert.are.equal(1, got)
      assert.are.equal(1, server.count())
    end)

    it("poll(timeout) returns once a callback ran, without waiting for the whole timeout", function()
      server.respond({ delay = 100 })
      local a, engine = wrapped()
      local got
      a:identify("1", {}, function(res) got = res end)
      local t0 = core.monotonic_ms()
      local n = engine:poll(5000)
      local elapsed = core.monotonic_ms() - t0
      assert.are.equal(1, n)
      assert.are.same({}, got)
      assert.is_true(elapsed < 4000, "poll waited " .. elapsed .. " ms")
      -- Nothing pending: a poll with a timeout returns at once.
      t0 = core.monotonic_ms()
      assert.are.equal(0, engine:poll(3000))
      assert.is_true(core.monotonic_ms() - t0 < 2000)
    end)

    it("reuses connections between calls (keep-alive)", function()
      local a, engine = wrapped()
      for i = 1, 5 do
        a:identify(tostring(i), {}, function() end)
        assert.is_true(a:wait(5000))
      end
      assert.are.equal(1, engine:stats().connects)
      local reqs = server.requests()
      assert.are.equal(5, #reqs)
      assert.are.equal(reqs[1].connection, reqs[5].connection)
    end)

    it("honours max_connections", function()
      server.respond_many(12, { delay = 100 })
      local a = wrapped(nil, { max_connections = 3 })
      local done = 0
      for i = 1, 12 do a:identify(tostring(i), {}, function() done = done + 1 end) end
      assert.is_true(a:wait(20000))
      assert.are.equal(12, done)
      assert.is_true(server.stats().max_in_flight <= 3, "max_in_flight " .. server.stats().max_in_flight)
    end)
  end)

  describe("results", function()
    it("delivers what the blocking call returns: result, nil, response", function()
      server.respond({ body = '{"ok":true}' })
      local a = wrapped()
      local args
      a:identify("42", { email = "ada@example.com" }, function(...) args = { n = select("#", ...), ... } end)
      assert.is_true(a:wait(5000))
      assert.are.same({ ok = true }, args[1])
      assert.is_nil(args[2])
      assert.are.equal(200, args[3].status)
      local got = server.last()
      assert.are.equal("PUT", got.method)
      assert.are.equal("/api/v1/customers/42", got.path)
      assert.are.same({ email = "ada@example.com" }, got.json)
      assert.are.equal("Basic " .. core.base64_encode("site:secret-key"), got.headers["authorization"])
    end)

    it("delivers error objects with nil first", function()
      server.respond({ status = 400, body = '{"meta":{"error":"bad things"}}' })
      local a = wrapped()
      local res, err
      a:track("42", "purchase", { price = 1 }, function(r, e) res, err = r, e end)
      assert.is_true(a:wait(5000))
      assert.is_nil(res)
      assert.is_true(errors.is(err))
      assert.are.equal("http", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("bad things", err.message)
      assert.is_nil(tostring(err):find("secret-key", 1, true))
    end)

    it("reports transport failures (refused, dropped, timeout) with their kinds", function()
      local a = wrapped({ retry = false, timeout = 200 })
      local kinds = {}
      server.respond({ drop = true })
      a:identify("1", {}, function(_, e) kinds.drop = e.kind end)
      assert.is_true(a:wait(5000))
      server.respond({ delay = 1500 })
      a:identify("2", {}, function(_, e) kinds.timeout = e.kind end)
      assert.is_true(a:wait(5000))
      local dead = async.wrap(track_client({ url = "http://127.0.0.1:1/api/v1", retry = false }),
        { engine = a:engine() })
      dead:identify("3", {}, function(_, e) kinds.refused = e.kind end)
      assert.is_true(dead:wait(5000))
      assert.are.same({ drop = "network", timeout = "timeout", refused = "network" }, kinds)
    end)

    it("raises bad arguments at the call, as the blocking API does, and starts nothing", function()
      local a, engine = wrapped()
      assert.has_error(function() a:identify(nil, {}, function() end) end, "customer_id is required")
      assert.has_error(function() a:track("1", nil, function() end) end)
      assert.are.equal(0, a:pending())
      assert.are.equal(0, engine:stats().pending)
      assert.are.equal(0, engine:poll(0))
      assert.are.equal(0, server.count())
    end)

    it("works without a callback (fire and forget)", function()
      local a = wrapped()
      a:identify("1", { a = 1 })
      assert.are.equal(1, a:pending())
      assert.is_true(a:wait(5000))
      assert.are.same({ a = 1 }, server.last().json)
    end)

    it("wraps an APIClient: send_email and the generated methods", function()
      local engine = async.engine()
      local api = async.wrap(customerio.APIClient.new("app-key", { url = server.url() .. "/v1" }), { engine = engine })
      server.respond({ body = '{"delivery_id":"d1","queued_at":1}' })
      local sent, segs
      api:send_email({ transactional_message_id = "7", to = "ada@example.com", identifiers = { id = "42" } },
        function(r, e) sent = r or e end)
      api:list_segments(function(r, e) segs = r or e end)
      assert.is_true(api:wait(5000))
      assert.are.equal("d1", sent.delivery_id)
      assert.are.same({}, segs)
      assert.are.equal("Bearer app-key", server.requests("/v1/send/email")[1].headers["authorization"])
    end)

    it("wraps a customerio.http.client", function()
      local Client = require("customerio.http.client")
      local c = Client.new({ base_url = server.url() .. "/x", auth = "Bearer k", user_agent = "ua" })
      local a = async.wrap(c, { engine = async.engine() })
      local got
      a:request("POST", { "a", "b" }, { body = { n = 1 } }, function(r) got = r end)
      assert.is_true(a:wait(5000))
      assert.are.same({}, got)
      assert.are.equal("/x/a/b", server.last().path)
    end)

    it("leaves the wrapped client blocking and usable", function()
      local track = track_client()
      local a = async.wrap(track, { engine = async.engine() })
      assert.are.equal(track, a:unwrap())
      assert.are.same({}, assert(track:identify("1", {})))
      assert.are.equal("curl", track.client.transport.name)
      assert.are.equal(track.site_id, a.site_id)
    end)
  end)

  describe("retries and redirects (the client's own)", function()
    it("retries with backoff that does not block poll(0)", function()
      server.respond({ status = 503 })
      server.respond({ status = 500 })
      local a, engine = wrapped({ retry = { min_timeout = 150, max_timeout = 300 } })
      local res, err
      a:identify("1", {}, function(r, e) res, err = r, e end)
      local polls, while_pending = 0, 0
      local guard = core.monotonic_ms() + 10000
      while a:pending() > 0 and core.monotonic_ms() < guard do
        engine:poll(0)
        polls = polls + 1
        if a:pending() > 0 then while_pending = while_pending + 1 end
      end
      assert.are.same({}, res)
      assert.is_nil(err)
      assert.are.equal(3, server.count())
      local reqs = server.requests()
      assert.is_nil(reqs[1].headers["x-retry-count"])
      assert.are.equal("1", reqs[2].headers["x-retry-count"])
      assert.are.equal("2", reqs[3].headers["x-retry-count"])
      -- At least 150 + 300 ms of backoff went by, one poll(0) after another.
      assert.is_true(while_pending >= 20, "only " .. while_pending .. " polls while backing off")
      assert.is_true(reqs[3].time - reqs[1].time >= 0.4)
    end)

    it("gives up after max_retries with the last error", function()
      server.respond_many(3, { status = 502 })
      local a = wrapped({ retry = { max_retries = 2, min_timeout = 1, max_timeout = 2 } })
      local err
      a:identify("1", {}, function(_, e) err = e end)
      assert.is_true(a:wait(5000))
      assert.are.equal(502, err.status)
      assert.are.equal(3, err.attempts)
      assert.is_true(err.retryable)
    end)

    it("follows redirects", function()
      server.respond({ status = 307, redirect = server.url() .. "/api/v1/elsewhere" })
      local a = wrapped()
      local res
      a:identify("1", { x = 1 }, function(r) res = r end)
      assert.is_true(a:wait(5000))
      assert.are.same({}, res)
      local reqs = server.requests()
      assert.are.equal(2, #reqs)
      assert.are.equal("/api/v1/elsewhere", reqs[2].path)
      assert.are.same({ x = 1 }, reqs[2].json)
    end)

    it("verifies TLS like the blocking transport", function()
      local ok_client = wrapped({ url = server.tls_url() .. "/api/v1", ca_file = server.ca_file(), retry = false })
      local bad_client = async.wrap(track_client({
        url = server.tls_wrong_host_url() .. "/api/v1", ca_file = server.ca_file(), retry = false,
      }), { engine = ok_client:engine() })
      local good, bad
      ok_client:identify("1", {}, function(r, e) good = r or e end)
      bad_client:identify("1", {}, function(r, e) bad = r or e end)
      assert.is_true(ok_client:engine():wait(10000))
      assert.are.same({}, good)
      assert.are.equal("tls", bad.kind)
    end)
  end)

  describe("callbacks", function()
    it("survive callbacks that raise: the others run, the client keeps working", function()
      local reported = {}
      local a, engine = wrapped(nil, { on_error = function(msg) reported[#reported + 1] = msg end })
      local ok = 0
      for i = 1, 10 do
        a:identify(tostring(i), {}, function()
          if i % 2 == 0 then error("boom " .. i) end
          ok = ok + 1
        end)
      end
      a:identify("t", {}, function() error({ not_a_string = true }) end)
      assert.is_true(a:wait(5000))
      assert.are.equal(5, ok)
      assert.are.equal(6, #reported)
      -- Concurrent calls finish in any order: look for each message.
      local all = table.concat(reported, "\n")
      for i = 2, 10, 2 do assert.is_truthy(all:find("boom " .. i, 1, true), "boom " .. i) end
      for _, m in ipairs(reported) do assert.is_truthy(m:find("traceback", 1, true)) end
      assert.are.equal(6, engine:stats().callback_errors)
      -- Still fine afterwards.
      local res
      a:identify("again", {}, function(r) res = r end)
      assert.is_true(a:wait(5000))
      assert.are.same({}, res)
    end)

    it("survive an on_error handler that raises too", function()
      local a = wrapped(nil, { on_error = function() error("handler broken") end })
      local after
      a:identify("1", {}, function() error("boom") end)
      a:identify("2", {}, function(r) after = r end)
      assert.is_true(a:wait(5000))
      assert.are.same({}, after)
    end)

    it("may start new calls from a callback (chaining)", function()
      local a = wrapped()
      local order = {}
      a:identify("1", {}, function()
        order[#order + 1] = "identify"
        a:track("1", "next", {}, function() order[#order + 1] = "track" end)
      end)
      assert.is_true(a:wait(5000))
      assert.are.same({ "identify", "track" }, order)
      assert.are.equal(2, server.count())
    end)

    it("refuse a poll from inside a callback (reported, not fatal)", function()
      local reported
      local a, engine = wrapped(nil, { on_error = function(m) reported = m end })
      a:identify("1", {}, function() engine:poll(0) end)
      assert.is_true(a:wait(5000))
      assert.is_truthy(reported:find("not re-entrant", 1, true))
    end)
  end)

  describe("engines", function()
    it("customerio.poll drives the default engine, customerio.async(client) wraps", function()
      local a = customerio.async(track_client())
      assert.are.equal(async.default(), a:engine())
      local got
      a:identify("1", {}, function(r) got = r end)
      assert.are.equal(1, customerio.async.pending())
      local guard = core.monotonic_ms() + 5000
      while not got and core.monotonic_ms() < guard do customerio.poll(10) end
      assert.are.same({}, got)
      assert.are.equal(0, customerio.async.pending())
    end)

    it("keeps engines apart", function()
      local a1, e1 = wrapped()
      local a2, e2 = wrapped()
      local got1, got2
      a1:identify("1", {}, function(r) got1 = r end)
      a2:identify("2", {}, function(r) got2 = r end)
      assert.is_true(e1:wait(5000))
      assert.are.same({}, got1)
      assert.is_nil(got2)
      assert.are.equal(1, a2:pending())
      assert.is_true(e2:wait(5000))
      assert.are.same({}, got2)
    end)

    it("close() cancels pending calls: their callbacks get a cancelled error", function()
      server.respond_many(3, { delay = 2000 })
      local a, engine = wrapped()
      local kinds = {}
      for i = 1, 3 do a:identify(tostring(i), {}, function(_, e) kinds[#kinds + 1] = e and e.kind end) end
      engine:poll(0)
      engine:close()
      assert.are.same({ "cancelled", "cancelled", "cancelled" }, kinds)
      assert.are.equal(0, a:pending())
      -- Usable again.
      local res
      a:identify("x", {}, function(r) res = r end)
      assert.is_true(a:wait(5000))
      assert.are.same({}, res)
    end)

    it("runs clients with another transport (the sandbox) in the same loop, still delivering in poll", function()
      local sb = customerio.sandbox.new()
      local engine = async.engine()
      local a = async.wrap(customerio.TrackClient.new("site", "key", { transport = sb }), { engine = engine })
      local got
      a:identify("42", { email = "ada@example.com" }, function(r, e) got = r or e end)
      assert.is_nil(got)
      assert.are.equal(1, engine:poll(0))
      assert.are.same({}, got)
      assert.is_truthy(sb:person("42"))
    end)

    it("its transport blocks when used outside an async call", function()
      local t = async.engine():transport()
      local res = assert(t:send({ method = "GET", url = server.url() .. "/plain", headers = {} }, 5000))
      assert.are.equal(200, res.status)
    end)

    it("validates its options", function()
      assert.has_error(function() async.engine({ bogus = 1 }) end, "unknown async engine option: bogus")
      assert.has_error(function() async.wrap({}) end)
      assert.has_error(function() async.wrap(track_client(), { engine = {} }) end)
      assert.has_error(function() async.poll(-1) end)
    end)
  end)

  describe("core.async_new", function()
    it("adds, polls, removes and closes transfers", function()
      local m = core.async_new({ pool = 2 })
      local id1 = m:add("POST", server.url() .. "/c/1", { ["X-A"] = "1" }, '{"a":1}', 5000)
      local id2 = m:add("GET", server.url() .. "/c/2", nil, nil, 5000)
      local id3 = m:add("GET", server.url() .. "/c/3", nil, nil, 5000)
      assert.are.equal(3, m:pending())
      assert.is_true(m:remove(id3))
      assert.is_false(m:remove(id3))
      local seen = {}
      local guard = core.monotonic_ms() + 5000
      while m:pending() > 0 and core.monotonic_ms() < guard do
        local done = m:poll(50)
        for _, r in ipairs(done or {}) do seen[r[1]] = r end
      end
      assert.are.equal(200, seen[id1][2])
      assert.are.equal("table", type(seen[id1][3]))
      assert.are.equal("{}", seen[id1][4])
      assert.are.equal(200, seen[id2][2])
      assert.is_nil(seen[id3])
      local got = server.requests()
      assert.are.equal(2, #got)
      assert.are.same({ a = 1 }, server.requests("/c/1")[1].json)
      assert.are.equal("1", server.requests("/c/1")[1].headers["x-a"])
      assert.are.equal(2, m:stats().completed)
      m:close()
      assert.has_error(function() m:poll(0) end, "async handle is closed")
      m:close() -- twice is fine
    end)

    it("reports failures as {id, nil, kind, message}", function()
      local m = core.async_new()
      local id = m:add("GET", "http://127.0.0.1:1/", nil, nil, 5000)
      local r
      local guard = core.monotonic_ms() + 5000
      while not r and core.monotonic_ms() < guard do
        local done = m:poll(50)
        r = done and done[1]
      end
      assert.are.equal(id, r[1])
      assert.is_nil(r[2])
      assert.are.equal("network", r[3])
      assert.are.equal("string", type(r[4]))
    end)

    it("caps response bodies", function()
      server.respond({ body_size = 5000 })
      local m = core.async_new()
      m:add("GET", server.url() .. "/big", nil, nil, 5000, nil, nil, 1000)
      local r
      local guard = core.monotonic_ms() + 5000
      while not r and core.monotonic_ms() < guard do
        local done = m:poll(50)
        r = done and done[1]
      end
      assert.are.equal("too_large", r[3])
    end)

    it("refuses bad arguments", function()
      local m = core.async_new()
      assert.has_error(function() m:add("GET", "http://x/a b") end)
      assert.has_error(function() m:add("GET", server.url(), { ["Bad\nName"] = "v" }) end)
      assert.has_error(function() m:add("get", server.url(), nil, "body") end)
      assert.has_error(function() m:add("GET", server.url(), nil, nil, 0) end)
      assert.has_error(function() m:poll(-1) end)
      assert.has_error(function() core.async_new({ pool = -1 }) end)
      -- Nothing was left in flight by the refused calls, and the handle still works.
      assert.are.equal(0, m:pending())
      local id = m:add("GET", server.url() .. "/ok")
      assert.is_number(id)
      assert.are.equal(1, m:pending())
      m:close()
    end)
  end)
end)
