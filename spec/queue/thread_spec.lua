-- customerio.Queue (the C worker thread) against the local test server: batching by size and
-- age, every Track operation, bounds, 207 partial failures, retries, flush/close/GC/exit, and
-- 100 000 events delivered exactly once while 30% of the batch requests fail.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")

local SITE_ID, API_KEY = "site_q", "queuekey_789"
local FAST_RETRY = { min_timeout = 1, max_timeout = 10, max_retries = 10 }

local function new_track(opts)
  opts = opts or {}
  opts.url = opts.url or (server.url() .. "/api/v1")
  return customerio.TrackClient.new(SITE_ID, API_KEY, opts)
end

local function new_queue(opts, track_opts)
  opts = opts or {}
  if opts.retry == nil then opts.retry = FAST_RETRY end
  return customerio.Queue.new(new_track(track_opts), opts)
end

local function batches(path)
  local out = {}
  for _, r in ipairs(server.requests(path or "/api/v2/batch")) do
    local v = core.json_decode(r.body)
    out[#out + 1] = { req = r, ops = v and v.batch or {} }
  end
  return out
end

local function all_ops()
  local list = {}
  for _, b in ipairs(batches()) do
    for _, op in ipairs(b.ops) do list[#list + 1] = op end
  end
  return list
end

local function adds_up(s)
  assert.are.equal(s.enqueued, s.sent + s.failed + s.queued + s.in_flight)
end

local shell = require("tools.shell")
local shell_quote = shell.q

-- Runs `code` in a child interpreter (the one running this spec); returns its output and its
-- exit status.
local function run_child(code)
  local _, out, status = shell.sh("LUA_PATH=" .. shell_quote(package.path) .. " LUA_CPATH=" ..
    shell_quote(package.cpath) .. " CIO_TEST_URL=" .. shell_quote(server.url()) .. " " .. shell.interpreter() ..
    " -e " .. shell_quote(code))
  return out, status
end

describe("customerio.Queue", function()
  before_each(function()
    server.reset()
  end)

  it("is customerio.Queue", function()
    assert.are.equal(require("customerio.queue").Queue, customerio.Queue)
  end)

  it("sends every Track operation as one v2 batch with the client's credentials", function()
    local q = new_queue({ flush_interval = 60000 })
    assert.is_true(q:identify("1", { email = "ada@example.com" }))
    assert.is_true(q:track("1", "purchase", { price = 23.45 }))
    assert.is_true(q:track("1", { name = "signup", data = { plan = "pro" } }))
    assert.is_true(q:track("1", "viewed", nil, { type = "page" }))
    assert.is_true(q:track_anonymous("anon-1", "browse", { page = 2 }))
    assert.is_true(q:track_page_view("1", "/pricing"))
    assert.is_true(q:track_screen("1", "Home"))
    assert.is_true(q:destroy("2"))
    assert.is_true(q:suppress("3"))
    assert.is_true(q:unsuppress("3"))
    assert.is_true(q:add_device("1", "tok-1", "ios", { last_used = 1700000000 }))
    assert.is_true(q:delete_device("1", "tok-1"))
    assert.is_true(q:merge_customers("id", "1", "email", "old@example.com"))
    assert.is_true(q:entity({ type = "object", action = "identify",
      identifiers = { object_type_id = "1", object_id = "acme" }, attributes = { name = "Acme" } }))
    assert.are.equal(0, server.count()) -- nothing leaves before the batch is due
    assert.is_true(q:flush(5000))

    local b = batches()
    assert.are.equal(1, #b)
    local r = b[1].req
    assert.are.equal("POST", r.method)
    assert.are.equal("/api/v2/batch", r.uri)
    assert.are.equal("Basic " .. core.base64_encode(SITE_ID .. ":" .. API_KEY), r.headers["authorization"])
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal(customerio.user_agent, r.headers["user-agent"])
    local o = b[1].ops
    assert.are.equal(14, #o)
    assert.are.same({ type = "person", action = "identify", identifiers = { id = "1" },
      attributes = { email = "ada@example.com" } }, o[1])
    assert.are.equal("event", o[2].action)
    assert.are.equal("purchase", o[2].name)
    assert.are.equal(23.45, o[2].attributes.price)
    assert.are.equal(26, #o[2].id)
    assert.are.equal("signup", o[3].name)
    assert.are.equal("pro", o[3].attributes.plan)
    assert.are.equal("page", o[4].action)
    assert.are.equal("anon-1", o[5].anonymous_id)
    assert.is_nil(o[5].identifiers)
    assert.are.equal("page", o[6].action)
    assert.are.equal("/pricing", o[6].name)
    assert.are.equal("screen", o[7].action)
    assert.are.equal("delete", o[8].action)
    assert.are.equal("suppress", o[9].action)
    assert.are.equal("unsuppress", o[10].action)
    assert.are.same({ token = "tok-1", platform = "ios", last_used = 1700000000 }, o[11].device)
    assert.are.same({ token = "tok-1" }, o[12].device)
    assert.are.same({ id = "1" }, o[13].primary)
    assert.are.same({ email = "old@example.com" }, o[13].secondary)
    assert.are.equal("object", o[14].type)
    local ids = {}
    for i = 2, 7 do
      assert.is_string(o[i].id)
      assert.is_nil(ids[o[i].id])
      ids[o[i].id] = true
    end
    local s = q:stats()
    assert.are.equal(14, s.enqueued)
    assert.are.equal(14, s.sent)
    assert.are.equal(0, s.queued + s.in_flight + s.failed)
    q:close()
  end)

  it("raises on bad arguments like the Track client", function()
    local q = new_queue()
    assert.has_error(function() q:identify(nil) end, "customer_id is required")
    assert.has_error(function() q:track("1") end, "data.name is required")
    assert.has_error(function() q:track("1", "x", nil, { type = "nope" }) end)
    assert.has_error(function() q:track_anonymous("", "x") end)
    assert.has_error(function() q:identify("1", { price = 0 / 0 }) end)
    assert.has_error(function() customerio.Queue.new(new_track(), { bogus = 1 }) end, "unknown option: bogus")
    assert.has_error(function() customerio.Queue.new(nil) end)
    q:close()
  end)

  it("splits batches at batch_bytes and sends a partial batch when it is flush_interval old", function()
    local q = new_queue({ batch_bytes = 8 * 1024, flush_interval = 100 })
    local t0 = core.monotonic_ms()
    for i = 1, 300 do assert.is_true(q:identify("user-" .. i, { n = i, pad = string.rep("p", 40) })) end
    server.wait(1, 3000)
    local n = server.wait(1, 3000)
    assert.is_true(n >= 1)
    -- the last, partial batch leaves on its own once flush_interval has passed
    local deadline = core.monotonic_ms() + 3000
    while q:stats().sent < 300 and core.monotonic_ms() < deadline do core.sleep_ms(10) end
    assert.is_true(core.monotonic_ms() - t0 >= 100)
    assert.are.equal(300, q:stats().sent)
    local b = batches()
    assert.is_true(#b >= 3)
    -- What the queue guarantees: every operation delivered exactly once, each batch within
    -- batch_bytes, the order of enqueueing kept inside a batch. Batches are sent concurrently,
    -- so their arrival order (and the order of operations across batches) is not guaranteed.
    local delivered = {}
    for _, x in ipairs(b) do
      assert.is_true(#x.req.body <= 8 * 1024)
      local last = 0
      for _, op in ipairs(x.ops) do
        local k = tonumber(op.identifiers.id:match("^user%-(%d+)$"))
        assert.is_true(k > last, "order inside a batch: user-" .. k .. " after user-" .. last)
        last = k
        delivered[k] = (delivered[k] or 0) + 1
      end
    end
    for i = 1, 300 do assert.are.equal(1, delivered[i], "user-" .. i .. " delivered once") end
    q:close()
  end)

  it("refuses an operation over 32 KB with a too_large error", function()
    local q = new_queue()
    local attrs = {}
    for i = 1, 40 do attrs["a" .. i] = string.rep("x", 900) end
    local ok, err = q:identify("1", attrs)
    assert.is_nil(ok)
    assert.are.equal("too_large", err.kind)
    assert.matches("limit is 32768 bytes", tostring(err))
    ok, err = q:entity({ type = "person", action = "identify", identifiers = { id = "1" }, attributes = attrs })
    assert.is_nil(ok)
    assert.are.equal("too_large", err.kind)
    assert.are.equal(2, q:stats().rejected)
    assert.are.equal(0, q:stats().enqueued)
    q:close()
  end)

  it("is bounded: when full, enqueue returns nil, err and counts the drop", function()
    server.respond({ status = 200, delay = 400 })
    local q = new_queue({ max_events = 10, flush_interval = 0, max_in_flight = 1 })
    local accepted, dropped = 0, 0
    for i = 1, 25 do
      local ok, err = q:track("u" .. i, "e")
      if ok then
        accepted = accepted + 1
      else
        dropped = dropped + 1
        assert.are.equal("queue_full", err.kind)
        assert.matches("queue is full", tostring(err))
      end
    end
    assert.are.equal(10, accepted)
    assert.are.equal(15, dropped)
    local s = q:stats()
    assert.are.equal(15, s.dropped)
    assert.are.equal(10, s.enqueued)
    adds_up(s)
    assert.is_true(q:flush(5000))
    s = q:stats()
    assert.are.equal(10, s.sent)
    adds_up(s)
    -- room again once delivered
    assert.is_true(q:track("again", "e"))
    q:close()
  end)

  it("is bounded by bytes too", function()
    server.respond({ status = 200, delay = 300 })
    local q = new_queue({ max_bytes = 2000, flush_interval = 0, max_in_flight = 1 })
    local ok_count, last_err = 0, nil
    for i = 1, 50 do
      local ok, err = q:identify("u" .. i, { pad = string.rep("b", 100) })
      if ok then ok_count = ok_count + 1 else last_err = err end
    end
    assert.is_true(ok_count < 50 and ok_count > 5)
    assert.are.equal("queue_full", last_err.kind)
    assert.is_true(q:stats().bytes <= 2000)
    assert.is_true(q:flush(5000))
    q:close()
  end)

  it("on a 207 reports only the rejected operations, in one on_error call, and resends nothing", function()
    server.respond({ status = 207, body = '{"errors":[{"batch_index":1,"reason":"invalid","field":"identifiers",' ..
      '"message":"identifiers must have exactly one of id, email, cio_id"},{"batch_index":3,"reason":"size",' ..
      '"field":"attributes","message":"too big"}]}' })
    local calls = {}
    local q = new_queue({ flush_interval = 60000, on_error = function(ops, err, jsons)
      calls[#calls + 1] = { ops = ops, err = err, jsons = jsons }
    end })
    for i = 1, 5 do assert.is_true(q:identify("u" .. i, { n = i })) end
    local ok, ferr = q:flush(5000)
    assert.is_nil(ok)
    assert.are.equal("failed", ferr.kind)
    assert.are.same({ 3, 2, 0 }, { ferr.sent, ferr.failed, ferr.pending })
    assert.are.equal(1, server.count())
    assert.are.equal(1, #calls)
    local ops, err = calls[1].ops, calls[1].err
    assert.are.equal(2, #ops)
    assert.are.equal(2, err.count)
    assert.are.equal("u2", ops[1].identifiers.id)
    assert.are.equal("u4", ops[2].identifiers.id)
    assert.are.equal(207, err.status)
    assert.matches("2 operation%(s%) of the batch rejected", tostring(err))
    assert.are.equal("invalid", err.op_errors[1].reason)
    assert.are.equal("identifiers", err.op_errors[1].field)
    assert.matches("exactly one of id", tostring(err.op_errors[1]))
    assert.are.equal("size", err.op_errors[2].reason)
    assert.is_string(calls[1].jsons[1])
    assert.are.same(ops[2], core.json_decode(calls[1].jsons[2]))
    local s = q:stats()
    assert.are.equal(3, s.sent)
    assert.are.equal(2, s.failed)
    adds_up(s)
    core.sleep_ms(50)
    assert.are.equal(1, server.count())
    q:close()
  end)

  it("retries, with X-Retry-Count, a batch whose kept-alive connection died after it went out", function()
    -- libcurl does not send the batch again by itself (src/http_common.c, cio_set_body)
    local q = new_queue({ flush_interval = 60000 })
    assert.is_true(q:track("u1", "e"))
    assert.is_true(q:flush(10000))
    server.respond({ drop = true })
    assert.is_true(q:track("u2", "e"))
    assert.is_true(q:flush(10000))
    local reqs = server.requests()
    assert.are.equal(3, #reqs)
    assert.are.equal(reqs[1].connection, reqs[2].connection)
    assert.is_nil(reqs[2].headers["x-retry-count"])
    assert.are.equal("1", reqs[3].headers["x-retry-count"])
    assert.are.equal(reqs[2].body, reqs[3].body)
    q:close()
  end)

  it("retries 500, 429 (Retry-After) and dropped connections with the same body and X-Retry-Count", function()
    server.respond({ status = 500 })
    server.respond({ status = 429, headers = { ["Retry-After"] = "1" } })
    server.respond({ drop = true })
    server.respond({ status = 503 })
    local failures = 0
    local q = new_queue({ flush_interval = 60000, on_error = function() failures = failures + 1 end })
    for i = 1, 3 do assert.is_true(q:track("u" .. i, "e")) end
    local t0 = core.monotonic_ms()
    assert.is_true(q:flush(10000))
    assert.is_true(core.monotonic_ms() - t0 >= 900) -- honoured Retry-After: 1
    local reqs = server.requests()
    assert.is_true(#reqs >= 5)
    for i = 2, #reqs do assert.are.equal(reqs[1].body, reqs[i].body) end
    assert.is_nil(reqs[1].headers["x-retry-count"])
    assert.are.equal("1", reqs[2].headers["x-retry-count"])
    assert.are.equal("2", reqs[3].headers["x-retry-count"])
    assert.are.equal(0, failures)
    local s = q:stats()
    assert.are.equal(3, s.sent)
    assert.is_true(s.retried >= 3) -- libcurl itself replays a request dropped on a kept-alive connection
    adds_up(s)
    q:close()
  end)

  it("reports a non-retryable failure and an exhausted retry budget to on_error", function()
    server.respond({ status = 400, body = '{"errors":[{"reason":"bad","message":"malformed batch"}]}' })
    local failures = {}
    local q = new_queue({ flush_interval = 60000, retry = { max_retries = 1, min_timeout = 1, max_timeout = 2 },
      on_error = function(ops, err) failures[#failures + 1] = { ops = ops, err = err } end })
    assert.is_true(q:identify("a"))
    assert.is_true(q:identify("b"))
    local ok, ferr = q:flush(5000)
    assert.is_nil(ok)
    assert.are.same({ "failed", 0, 2, 0 }, { ferr.kind, ferr.sent, ferr.failed, ferr.pending })
    assert.are.equal(1, #failures) -- one call for the batch
    assert.are.equal(2, #failures[1].ops)
    assert.are.equal(400, failures[1].err.status)
    assert.matches("malformed batch", tostring(failures[1].err))
    assert.are.equal("a", failures[1].ops[1].identifiers.id)
    assert.are.equal("b", failures[1].ops[2].identifiers.id)
    assert.are.equal(1, server.count())

    server.reset()
    server.respond_many(2, { status = 502 })
    failures = {}
    assert.is_true(q:identify("c"))
    assert.is_nil(q:flush(5000))
    assert.are.equal(1, #failures)
    assert.are.equal(502, failures[1].err.status)
    assert.are.equal(2, failures[1].err.attempts)
    -- A flush only answers for what was held at its call: nothing is held now.
    assert.is_true(q:flush(5000))
    local s = q:stats()
    assert.are.equal(3, s.failed)
    assert.are.equal(0, s.sent)
    adds_up(s)
    q:close()
  end)

  it("keeps credentials out of error reports", function()
    server.respond({ status = 401, body = "bad key " .. API_KEY })
    local got
    local q = new_queue({ flush_interval = 0, on_error = function(_, err) got = err end })
    assert.is_true(q:identify("a"))
    assert.is_nil(q:flush(5000))
    assert.is_not_nil(got)
    assert.is_nil(tostring(got):find(API_KEY, 1, true))
    assert.is_nil((got.body or ""):find(API_KEY, 1, true))
    q:close()
  end)

  it("keeps the first 1 MiB of a longer error body in the report", function()
    server.respond({ status = 400, body_size = 3 * 1024 * 1024 + 7, body_char = "e" })
    local got
    local q = new_queue({ flush_interval = 0, on_error = function(_, err) got = err end })
    assert.is_true(q:identify("a"))
    assert.is_nil(q:flush(10000))
    assert.are.equal(400, got.status)
    assert.are.equal(1024 * 1024, #got.body)
    assert.are.equal(string.rep("e", 1024 * 1024), got.body)
    q:close()
  end)

  it("flush times out with nil, err and delivers later", function()
    server.respond({ status = 200, delay = 600 })
    local q = new_queue({ flush_interval = 60000 })
    assert.is_true(q:identify("slow"))
    local ok, err = q:flush(100)
    assert.is_nil(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(q:flush(5000))
    assert.are.equal(1, q:stats().sent)
    q:close()
  end)

  it("close delivers what is queued; afterwards enqueue returns a closed error", function()
    local q = new_queue({ flush_interval = 60000 })
    for i = 1, 50 do assert.is_true(q:track("u" .. i, "e")) end
    assert.is_true(q:close(5000))
    assert.are.equal(50, #all_ops())
    local ok, err = q:track("late", "e")
    assert.is_nil(ok)
    assert.are.equal("closed", err.kind)
    assert.is_true(q:close()) -- idempotent
    local s = q:stats()
    assert.are.equal(50, s.sent)
    assert.is_true(s.closed)
  end)

  it("close with an unreachable server gives up after its timeout and reports everything", function()
    local failures = 0
    local q = customerio.Queue.new(new_track({ url = "http://127.0.0.1:9/api/v1" }), {
      flush_interval = 0, retry = { max_retries = 100, min_timeout = 50, max_timeout = 50, max_total_backoff = 60000 },
      on_error = function(ops) failures = failures + #ops end,
    })
    for i = 1, 20 do assert.is_true(q:track("u" .. i, "e")) end
    local t0 = core.monotonic_ms()
    local ok, err = q:close(300)
    local took = core.monotonic_ms() - t0
    assert.is_nil(ok)
    assert.are.equal("timeout", err.kind)
    assert.is_true(took < 3000)
    assert.are.equal(20, failures)
    local s = q:stats()
    assert.are.equal(20, s.failed)
    adds_up(s)
  end)

  it("garbage collection flushes", function()
    do
      local q = new_queue({ flush_interval = 60000 })
      for i = 1, 30 do assert.is_true(q:track("gc" .. i, "e")) end
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(30, #all_ops())
  end)

  if _VERSION == "Lua 5.4" and type(jit) ~= "table" then
    it("<close> flushes (Lua 5.4)", function()
      local chunk = assert(load([[
        local new_queue = ...
        do
          local q <close> = new_queue({ flush_interval = 60000 })
          for i = 1, 7 do assert(q:track("c" .. i, "e")) end
        end
      ]]))
      chunk(new_queue)
      assert.are.equal(7, #all_ops())
    end)
  end

  it("delivers everything when the process ends without flushing (lua_close and os.exit)", function()
    local template = [[
      local customerio = require("customerio")
      local track = customerio.TrackClient.new("s", "k", { url = os.getenv("CIO_TEST_URL") .. "/api/v1" })
      local q = customerio.Queue.new(track, { flush_interval = 60000 })
      for i = 1, 200 do assert(q:track("%s" .. i, "e", { i = i })) end
      %s
    ]]
    local out, status = run_child(string.format(template, "exit", ""))
    assert.are.equal(0, status, out)
    local n = 0
    for _, op in ipairs(all_ops()) do
      if op.identifiers.id:match("^exit") then n = n + 1 end
    end
    assert.are.equal(200, n)

    server.reset()
    out, status = run_child(string.format(template, "osexit", "os.exit(3)"))
    assert.are.equal(3, status, out)
    n = 0
    for _, op in ipairs(all_ops()) do
      if op.identifiers.id:match("^osexit") then n = n + 1 end
    end
    assert.are.equal(200, n)
  end)

  it("delivers 100 000 events exactly once while 30% of batch requests fail", function()
    -- Script the faults: in every 10 responses, one 500, one 429 and one dropped connection;
    -- enough rounds that every batch request meets the pattern, however small the batches
    -- (a slower interpreter fills fewer events into each flush_interval).
    local ROUNDS = 150
    local scripted, fault_at = 0, {}
    for _ = 1, ROUNDS do
      server.respond({ status = 500 })
      server.respond({ status = 429 })
      server.respond({ drop = true })
      fault_at[scripted + 1], fault_at[scripted + 2], fault_at[scripted + 3] = true, true, "drop"
      server.respond_many(7, { status = 200 })
      scripted = scripted + 10
    end

    local failures = 0
    local q = new_queue({
      batch_bytes = 64 * 1024, flush_interval = 20, max_events = 200000, max_in_flight = 4,
      retry = { max_retries = 20, min_timeout = 1, max_timeout = 20 },
      on_error = function() failures = failures + 1 end,
    })
    local N = 100000
    local t0 = core.monotonic_ms()
    for i = 1, N do
      local ok, err = q:track("u" .. (i % 1000), "e", nil, { id = "ev-" .. i })
      assert(ok, err)
    end
    local enqueue_ms = core.monotonic_ms() - t0
    assert.is_true(q:flush(60000))
    local total_ms = core.monotonic_ms() - t0
    local s = q:stats()
    assert.are.equal(0, failures)
    assert.are.equal(N, s.enqueued)
    assert.are.equal(N, s.sent)
    assert.are.equal(0, s.failed + s.dropped + s.queued + s.in_flight)
    adds_up(s)

    -- Which recorded requests were answered with a fault: the FIFO hands scripted responses
    -- out in arrival order, so the first `consumed` of them were used.
    local t1 = core.monotonic_ms()
    -- decoded by the C core: the ~20 MB of this run take the pure-Lua reader many seconds
    local reqs = server.requests_bulk("/api/v2/batch")
    local fetch_ms = core.monotonic_ms() - t1
    local left = server.stats().queued
    local consumed = scripted - left
    local faults, drops = 0, 0
    for i = 1, consumed do
      if fault_at[i] then faults = faults + 1 end
      if fault_at[i] == "drop" then drops = drops + 1 end
    end
    assert.is_true(faults >= 0.25 * #reqs, "fault share too low: " .. faults .. "/" .. #reqs)

    -- Each distinct batch body was answered 2xx exactly once; each event is in one batch.
    local distinct, seen, events = {}, {}, 0
    local ndistinct = 0
    for _, r in ipairs(reqs) do
      if not distinct[r.body] then
        distinct[r.body] = true
        ndistinct = ndistinct + 1
        for _, op in ipairs(core.json_decode(r.body).batch) do
          assert.is_nil(seen[op.id], "event in two batches: " .. tostring(op.id))
          seen[op.id] = true
          events = events + 1
        end
      end
    end
    assert.are.equal(N, events)
    for i = 1, N do assert(seen["ev-" .. i], "missing ev-" .. i) end
    assert.are.equal(ndistinct, #reqs - faults, "successful requests must equal distinct batches")
    assert.is_true(s.retried >= faults - drops) -- libcurl itself replays a request dropped on a kept-alive connection
    print(string.format("\n# queue 100k with faults: enqueue %.0f ms (%.0f/s), delivered in %.0f ms (%.0f/s); " ..
      "%d requests, %d faults, %d retries (reading the server's record took %.0f ms)", enqueue_ms,
      N / enqueue_ms * 1000, total_ms, N / total_ms * 1000, #reqs, faults, s.retried, fetch_ms))
    q:close()
  end)

  it("refuses a Track client whose url does not end in /api/v1, saying what it expected", function()
    -- (A url with no path, or one ending like the App API's root, is refused by TrackClient.new.)
    for _, url in ipairs({ server.url() .. "/track", server.url() .. "/api", server.url() .. "/api/v1/x" }) do
      local track = customerio.TrackClient.new(SITE_ID, API_KEY, { url = url })
      local ok, err = pcall(customerio.Queue.new, track)
      assert.is_false(ok)
      assert.matches("url must be an http%(s%) URL ending in /api/v1", err)
      assert.matches("got " .. url:gsub("%p", "%%%0"), err)
    end
    -- A trailing slash and a region's url are fine; the queue's own url option bypasses the check.
    for _, opts in ipairs({ { url = server.url() .. "/api/v1/" }, { region = "eu" } }) do
      local q = customerio.Queue.new(customerio.TrackClient.new(SITE_ID, API_KEY, opts), { flush_interval = 60000 })
      assert.matches("/api/v2/batch$", q.url)
      q:close(0)
    end
    local q = customerio.Queue.new(customerio.TrackClient.new(SITE_ID, API_KEY, { url = server.url() .. "/track" }),
      { url = server.url() .. "/custom/v2", retry = FAST_RETRY })
    assert.are.equal(server.url() .. "/custom/v2/batch", q.url)
    assert.is_true(q:identify("u", {}))
    assert.is_true(q:flush(5000))
    assert.are.equal(1, #server.requests("/custom/v2/batch"))
    q:close()
  end)

  it("flush answers for the operations held at its call: true only when all were accepted", function()
    -- 10 operations in 2 batches: the first accepted, the second refused for good (400).
    server.respond({ status = 200 })
    server.respond({ status = 400, body = '{"errors":[{"message":"nope"}]}' })
    local calls = 0
    local q = new_queue({ flush_interval = 60000, max_in_flight = 1, batch_bytes = 1024, order = false,
      on_error = function() calls = calls + 1 end })
    local blob = string.rep("x", 150)
    for i = 1, 10 do assert.is_true(q:identify("u" .. i, { pad = blob })) end
    local ok, err = q:flush(5000)
    assert.is_nil(ok)
    assert.are.equal("failed", err.kind)
    assert.are.equal(10, err.sent + err.failed)
    assert.is_true(err.sent > 0 and err.failed > 0)
    assert.are.equal(0, err.pending)
    assert.matches("sent, .* failed", tostring(err))
    assert.are.equal(1, calls)
    -- Later operations answer for themselves.
    assert.is_true(q:identify("later", {}))
    assert.is_true(q:flush(5000))
    q:close()
  end)

  it("flush reports what is still pending when it times out", function()
    server.respond({ status = 200, delay = 800 })
    local q = new_queue({ flush_interval = 60000 })
    for i = 1, 3 do assert.is_true(q:identify("p" .. i, {})) end
    local ok, err = q:flush(100)
    assert.is_nil(ok)
    assert.are.same({ "timeout", 0, 0, 3 }, { err.kind, err.sent, err.failed, err.pending })
    assert.is_true(err.retryable)
    assert.is_true(q:flush(5000))
    q:close()
  end)

  it("a retried batch holds back only the people in it", function()
    -- The first batch (a, b) is answered 500 after 1 s and retried; c's batch goes meanwhile.
    server.respond({ status = 500, delay = 1000 })
    local q = new_queue({ flush_interval = 60000, max_in_flight = 2, retry = { min_timeout = 200, max_timeout = 200 } })
    assert.is_true(q:identify("a", { n = 1 }))
    assert.is_true(q:identify("b", { n = 1 }))
    assert.is_nil(q:flush(0)) -- the first batch leaves now
    server.wait(1, 5000)       -- and the server holds it for a second
    assert.is_true(q:identify("a", { n = 2 }))
    assert.is_true(q:identify("c", { n = 1 }))
    assert.is_true(q:flush(5000))
    local order = {}
    for _, b in ipairs(batches()) do
      local ids = {}
      for _, op in ipairs(b.ops) do ids[#ids + 1] = op.identifiers.id .. op.attributes.n end
      order[#order + 1] = table.concat(ids, " ")
    end
    -- 1: a1 b1 (500); 2: c1 (a2 held back by a1's retry); 3: a1 b1 again; 4: a2.
    assert.are.same({ "a1 b1", "c1", "a1 b1", "a2" }, order)
    q:close()
  end)
end)
