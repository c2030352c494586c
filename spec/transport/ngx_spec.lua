-- The client inside a real nginx (lua-nginx-module 0.10.23 + LuaJIT, the C core built by
-- `make LUA=luajit`): the cosocket transport (customerio.transport.ngx), its automatic
-- choice, the wire format against the plain-Lua (libcurl) transport, non-blocking I/O,
-- keep-alive, TLS verification, timeouts, the HTTP/1.1 parser and the phase errors.
--
-- The suite starts its own nginx (spec/support/ngx_app/) on 127.0.0.1 with a random port and
-- a temporary prefix, and drives it with curl; the upstream is the shared test server
-- (spec/support/server.lua). Runs the same under Lua 5.4 and LuaJIT (ngx is not needed in
-- this process).
local server = require("support.server")
local launch = require("support.ngx_app.launch")
local core = require("customerio.core")
local customerio = require("customerio")
local Client = require("customerio.http.client")

local function my_pid()
  local p = io.popen("echo $PPID")
  local pid = tonumber(p:read("*a"))
  p:close()
  return pid
end

local function roundtrip(v)
  return assert(core.json_decode(assert(core.json_encode(v))))
end

-- Scenarios: the same three calls in nginx and in this process.
local IDENTIFY_ATTRS = {
  email = "ada@example.com", created_at = 1700000000, plan = "pro", score = 12.5,
  tags = customerio.array({ "a", "b" }), nothing = customerio.null, nested = { x = 1 },
}
local EMAIL_REQ = {
  to = "ada@example.com", transactional_message_id = "password_reset",
  identifiers = { id = "42" }, message_data = { reset_url = "https://example.com/r?t=1&u=2" },
}
local BROADCAST = { 7, { headline = "Sale" }, { ids = customerio.array({ "1", "2" }) } }

local function scenarios(upstream)
  return {
    { api = "track", call = "identify", args = { "42 a/b", IDENTIFY_ATTRS }, site_id = "site1", key = "trackkey",
      opts = { url = upstream .. "/api/v1", retry = false } },
    { api = "app", call = "send_email", args = { EMAIL_REQ }, key = "appkey",
      opts = { url = upstream .. "/v1", retry = false } },
    { api = "app", call = "trigger_broadcast", args = BROADCAST, key = "appkey",
      opts = { url = upstream .. "/v1", retry = false } },
  }
end

-- Runs a scenario here with the default (libcurl) transport.
local function run_plain(s)
  s = roundtrip(s)
  local c
  if s.api == "track" then
    c = customerio.TrackClient.new(s.site_id, s.key, s.opts)
  else
    c = customerio.APIClient.new(s.key, s.opts)
  end
  local args = s.args
  return c[s.call](c, (table.unpack or unpack)(args, 1, #args)) -- luacheck: ignore 113
end

-- What must be equal between the two transports.
local IGNORED_HEADERS = { ["accept-encoding"] = true } -- libcurl offers gzip; cosockets do not
local function wire(rec)
  local headers = {}
  for k, v in pairs(rec.headers) do
    if not IGNORED_HEADERS[k] then headers[k] = v end
  end
  return { method = rec.method, path = rec.path, headers = headers, body = rec.json, http_version = rec.http_version }
end

local function ok_result(report, i)
  local r = report.results and report.results[i or 1]
  assert(r, "no result in the report: " .. tostring(core.json_encode(report)))
  assert(r.ok, "call failed inside nginx: " .. tostring(core.json_encode(r.err)))
  return r
end

local function err_result(report, i)
  local r = report.results and report.results[i or 1]
  assert(r, "no result in the report: " .. tostring(core.json_encode(report)))
  assert(not r.ok, "expected a failure, got " .. tostring(core.json_encode(r)))
  return r.err
end

describe("inside nginx", function()
  local app, upstream

  -- A call through the shared request path (customerio.http.client) inside nginx.
  local function raw_call(path, o)
    o = o or {}
    return {
      api = "client", call = "request",
      args = { o.method or "POST", o.path or { "v1", "x" }, o.no_body and {} or { body = o.body or { a = 1 } } },
      opts = { base_url = o.base_url or upstream, timeout = o.timeout, retry = o.retry or false, auth = o.auth },
      transport = o.transport, transport_opts = o.transport_opts, times = o.times,
      default_transport_opts = o.default_transport_opts, path = path,
    }
  end

  -- nginx (1.22) checks DNS names only, and the test certificate names localhost
  local function tls_url()
    return (server.tls_url():gsub("127%.0%.0%.1", "localhost"))
  end

  setup(function()
    upstream = server.url()
    app = launch.start({ config = { upstream = upstream }, ca_file = server.ca_file(), owner = my_pid() })
  end)

  teardown(function()
    if app then app:stop() end
  end)

  before_each(function() server.reset() end)

  describe("transport choice", function()
    it("is libcurl outside nginx and the cosocket transport inside", function()
      local transport = require("customerio.transport")
      assert.is_false(transport.in_nginx())
      assert.are.equal("curl", transport.default_name())
      local report = app:run("/run", raw_call())
      ok_result(report)
      assert.are.equal("ngx", report.transport)
      assert.are.equal(os.getenv("CIO_RESTY_HTTP_PATH") and "resty.http" or "builtin", report.backend)
      assert.are.equal("content", report.phase)
    end)

    it("the ngx transport refuses to run outside nginx, with a clear error", function()
      local t = require("customerio.transport.ngx").new()
      local res, kind, msg = t:send({ method = "GET", url = upstream .. "/x", headers = {} }, 1000)
      assert.is_nil(res)
      assert.are.equal("phase", kind)
      assert.matches("only works inside nginx", msg)
    end)
  end)

  describe("wire format", function()
    for _, where in ipairs({ "/run", "/access", "/rewrite", "/timer" }) do
      it("identify, send_email and trigger_broadcast from " .. where .. " equal the libcurl transport's", function()
        local list = scenarios(upstream)
        for _, s in ipairs(list) do assert(run_plain(s)) end
        local plain = server.requests()
        assert.are.equal(3, #plain)
        server.reset()
        for _, s in ipairs(list) do
          local report = app:run(where, s)
          ok_result(report)
          assert.are.equal("ngx", report.transport)
          local phase = ({ ["/run"] = "content", ["/access"] = "access", ["/rewrite"] = "rewrite", ["/timer"] = "timer" })[where]
          assert.are.equal(phase, report.phase)
        end
        local got = server.requests()
        assert.are.equal(3, #got)
        for i = 1, 3 do
          assert.are.same(wire(plain[i]), wire(got[i]))
        end
        -- spot checks of what the upstream saw
        assert.are.equal("PUT", got[1].method)
        assert.are.equal("/api/v1/customers/42%20a%2Fb", got[1].path)
        assert.are.equal("Basic " .. core.base64_encode("site1:trackkey"), got[1].headers["authorization"])
        assert.are.equal("/v1/send/email", got[2].path)
        assert.are.equal("Bearer appkey", got[2].headers["authorization"])
        assert.are.equal("/v1/campaigns/7/triggers", got[3].path)
        assert.are.equal(customerio.user_agent, got[3].headers["user-agent"])
        assert.is_nil(got[1].headers["accept-encoding"])
        assert.are.equal("*/*", got[1].headers["accept"])
      end)
    end

    it("decodes the response body like the libcurl transport", function()
      server.respond({ status = 200, body = '{"delivery_id":"d1","queued_at":1700000000,"list":[1,null]}' })
      local report = app:run("/run", scenarios(upstream)[2])
      local r = ok_result(report)
      assert.are.equal("d1", r.value.delivery_id)
      assert.are.equal(1700000000, r.value.queued_at)
      assert.are.equal(200, r.status)
      assert.are.equal("application/json; charset=utf-8", r.headers["content-type"])
    end)

    it("sends GET without a body and no Content-Length, like libcurl", function()
      ok_result(app:run("/run", raw_call(nil, { method = "GET", path = { "v1", "segments" }, no_body = true })))
      local got = server.last()
      assert.are.equal("GET", got.method)
      assert.are.equal("", got.body)
      assert.is_nil(got.headers["content-length"])
    end)
  end)

  describe("non-blocking I/O", function()
    it("keeps 50 slow upstream requests in flight at once in one worker", function()
      local n = 50
      server.respond_many(n, { delay = 1000 })
      local paths = {}
      for i = 1, n do paths[i] = "/concurrent?transport=ngx&id=" .. i end
      local bodies, _, log = app:parallel(paths, n)
      local okays = 0
      for i = 1, n do
        local v = core.json_decode(bodies[i])
        if type(v) == "table" and v.ok and v.transport == "ngx" then okays = okays + 1 end
      end
      assert.are.equal(n, okays, "not every request succeeded: " .. log .. "\n" .. (bodies[1] or ""))
      local stats = server.stats()
      io.stderr:write("# ngx transport: max_in_flight = " .. tostring(stats.max_in_flight) .. " of " .. n .. "\n")
      assert.is_true(stats.max_in_flight >= 40, "max_in_flight " .. tostring(stats.max_in_flight))
      assert.are.equal(n, server.count())
    end)

    it("contrast: the blocking libcurl transport in the same worker serves one at a time", function()
      local n = 6
      server.respond_many(n, { delay = 100 })
      local paths = {}
      for i = 1, n do paths[i] = "/concurrent?transport=curl&id=" .. i end
      local bodies = app:parallel(paths, n)
      for i = 1, n do
        local v = core.json_decode(bodies[i])
        assert.is_true(type(v) == "table" and v.ok and v.transport == "curl", bodies[i])
      end
      local stats = server.stats()
      io.stderr:write("# curl transport inside nginx: max_in_flight = " .. tostring(stats.max_in_flight) .. " of " .. n .. "\n")
      assert.are.equal(1, stats.max_in_flight)
    end)
  end)

  describe("keep-alive", function()
    it("reuses one connection for consecutive calls", function()
      local report = app:run("/run", raw_call(nil, { times = 4, default_transport_opts = { connect_timeout = 5000 } }))
      for i = 1, 4 do ok_result(report, i) end
      for i = 2, 4 do assert.are.equal(0, report.results[i].connects) end
      local got = server.requests()
      assert.are.equal(4, #got)
      for i = 2, 4 do
        assert.are.equal(got[1].connection, got[i].connection)
        assert.are.equal(got[i - 1].connection_requests + 1, got[i].connection_requests)
      end
    end)

    it("shares the worker's pool across requests and new clients", function()
      ok_result(app:run("/run", raw_call()))
      local report = app:run("/run", raw_call())
      ok_result(report)
      assert.are.equal(0, report.results[1].connects)
      local got = server.requests()
      assert.are.equal(got[1].connection, got[2].connection)
    end)

    it("does not keep a connection the server closes (Connection: close, HTTP/1.0)", function()
      for _, name in ipairs({ "conn_close", "http10", "close" }) do
        local report = app:run("/run", raw_call(nil, { base_url = app.url .. "/raw/" .. name, times = 2 }))
        for i = 1, 2 do
          ok_result(report, i)
          assert.are.equal(1, report.results[i].connects, name)
        end
      end
    end)
  end)

  describe("TLS", function()
    it("fails verification without the CA (lua_ssl_trusted_certificate unset)", function()
      local report = app:run("/run", raw_call(nil, { base_url = tls_url() }))
      local err = err_result(report)
      assert.are.equal("tls", err.kind, err.message)
      assert.matches("lua_ssl_trusted_certificate", err.detail)
      assert.are.equal(0, server.count())
    end)

    it("succeeds with the CA, verifies the host name and keeps the connection", function()
      local report = app:run("/run_trusted", raw_call(nil, {
        base_url = tls_url(), times = 3, default_transport_opts = { ca_file = server.ca_file() } }))
      for i = 1, 3 do ok_result(report, i) end
      assert.are.equal(1, report.results[1].connects)
      assert.are.equal(0, report.results[3].connects)
      local got = server.requests()
      assert.are.equal(3, #got)
      assert.are.equal("https", got[1].scheme)
      assert.are.equal(got[1].connection, got[3].connection)
    end)

    it("rejects a certificate for another host even with the CA", function()
      local report = app:run("/run_trusted", raw_call(nil, {
        base_url = server.tls_wrong_host_url(), default_transport_opts = { ca_file = server.ca_file() } }))
      local err = err_result(report)
      assert.are.equal("tls", err.kind, err.message)
      assert.matches("mismatch", err.detail)
      assert.are.equal(0, server.count())
    end)

    it("keeps connections verified against different CA files in different pools", function()
      ok_result(app:run("/run_trusted", raw_call(nil, {
        base_url = tls_url(), default_transport_opts = { ca_file = server.ca_file() } })))
      -- the same host without the CA must not ride on the verified connection
      local err = err_result(app:run("/run", raw_call(nil, { base_url = tls_url() })))
      assert.are.equal("tls", err.kind, err.message)
    end)
  end)

  describe("timeouts and failures", function()
    it("times out a slow response within the client's timeout", function()
      server.respond({ delay = 1500 })
      local report = app:run("/run", raw_call(nil, { timeout = 200 }))
      local err = err_result(report)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(1, err.attempts)
      assert.is_true(report.results[1].ms < 1000, "took " .. report.results[1].ms .. " ms")
    end)

    it("applies the timeout to the whole exchange, not to each read", function()
      server.respond({ body = string.rep("x", 50), drip = { chunks = 5, interval = 150 } })
      local report = app:run("/run", raw_call(nil, { timeout = 400, transport = "builtin" }))
      local err = err_result(report)
      assert.are.equal("timeout", err.kind)
      assert.is_true(report.results[1].ms < 700, "took " .. report.results[1].ms .. " ms")
      -- headers trickling in, each line well within the timeout
      for _, name in ipairs({ "stall", "drip_line" }) do
        report = app:run("/run", raw_call(nil, { base_url = app.url .. "/raw/" .. name, timeout = 300, transport = "builtin" }))
        err = err_result(report)
        assert.are.equal("timeout", err.kind, name)
        assert.is_true(report.results[1].ms < 600, name .. " took " .. report.results[1].ms .. " ms")
      end
    end)

    it("retries timeouts with ngx.sleep between attempts", function()
      server.respond_many(2, { delay = 600 })
      local report = app:run("/run", raw_call(nil, {
        timeout = 150, retry = { max_retries = 1, min_timeout = 20, max_timeout = 40 } }))
      local err = err_result(report)
      assert.are.equal("timeout", err.kind)
      assert.are.equal(2, err.attempts)
    end)

    it("retries a 503 and succeeds, with X-Retry-Count", function()
      server.respond({ status = 503, body = '{"meta":{"error":"busy"}}' })
      local report = app:run("/run", raw_call(nil, { retry = { max_retries = 2, min_timeout = 10, max_timeout = 20 } }))
      ok_result(report)
      local got = server.requests()
      assert.are.equal(2, #got)
      assert.is_nil(got[1].headers["x-retry-count"])
      assert.are.equal("1", got[2].headers["x-retry-count"])
      assert.are.same(got[1].json, got[2].json)
    end)

    it("maps a refused connection to a network error", function()
      local report = app:run("/run", raw_call(nil, { base_url = "http://127.0.0.1:1" }))
      local err = err_result(report)
      assert.are.equal("network", err.kind)
      assert.matches("127.0.0.1:1", err.message)
    end)

    it("words a refused connection as the curl transport does, keeping nginx's text in detail", function()
      local err = err_result(app:run("/run", raw_call(nil, { base_url = "http://127.0.0.1:1" })))
      local _, here = Client.new({ base_url = "http://127.0.0.1:1", retry = false }):request("GET", "/x")
      assert.are.equal(here.message, err.message)
      assert.are.equal("could not connect to 127.0.0.1:1", err.message)
      assert.are.equal("connect", err.stage)
      assert.are.equal("no", err.sent)
      assert.matches("connection refused", err.detail)
      assert.are_not.equal(here.detail, err.detail)
    end)

    it("does not replay a transactional send whose connection dropped after the body was read", function()
      server.respond({ drop = true, path = "/v1/send/email" })
      local s = scenarios(server.url())[2]
      s.opts.retry = { max_retries = 3, min_timeout = 1, max_timeout = 2 }
      -- a new connection: on a reused one, a close before any response byte is taken for the
      -- server's idle close and resent once (docs/app.md)
      s.transport, s.transport_opts = "ngx", { pool = "fresh-" .. os.time() .. "-" .. math.random(1e9) }
      local err = err_result(app:run("/run", s))
      assert.are.equal("network", err.kind)
      assert.are.equal("unknown", err.sent)
      assert.are.equal(1, err.attempts)
      assert.are.equal(1, #server.requests("/v1/send/email"))
    end)

    it("says how to fix a missing resolver", function()
      local err = err_result(app:run("/run", raw_call(nil, { base_url = "http://track.example.invalid/api/v1" })))
      assert.are.equal("network", err.kind)
      assert.matches("no resolver defined", err.detail)
      assert.matches("add a `resolver` directive", err.detail)
      assert.are.equal("could not resolve the host name track.example.invalid", err.message)
      assert.are.equal("no", err.sent)
    end)

    it("maps a dropped connection to a network error", function()
      server.respond({ drop = true })
      local fresh = { pool = "fresh-" .. os.time() .. "-" .. math.random(1e9) }
      local err = err_result(app:run("/run", raw_call(nil, { transport = "builtin", transport_opts = fresh })))
      assert.are.equal("network", err.kind)
      assert.are.equal(1, server.count())
    end)

    it("re-sends once on a new connection when a reused one closes without an answer, like libcurl", function()
      ok_result(app:run("/run", raw_call()))
      server.respond({ drop = true })
      local report = app:run("/run", raw_call(nil, { times = 1 }))
      ok_result(report)
      local got = server.requests()
      assert.are.equal(3, #got)
      assert.are.same(got[2].json, got[3].json)
      assert.is_nil(got[3].headers["x-retry-count"])
      assert.are_not.equal(got[2].connection, got[3].connection)
    end)

    it("follows redirects like the libcurl transport", function()
      server.respond({ status = 307, redirect = upstream .. "/v1/moved" })
      ok_result(app:run("/run", raw_call()))
      local got = server.requests()
      assert.are.equal(2, #got)
      assert.are.equal("/v1/moved", got[2].path)
      assert.are.same(got[1].json, got[2].json)
    end)

    it("returns HTTP errors as error objects with Customer.io's message", function()
      server.respond({ status = 422, body = '{"meta":{"error":"email is invalid"}}' })
      local err = err_result(app:run("/run", raw_call()))
      assert.are.equal("http", err.kind)
      assert.are.equal(422, err.status)
      assert.are.equal("email is invalid", err.message)
    end)
  end)

  describe("HTTP/1.1 parsing", function()
    -- our own HTTP/1.1 client, whatever lua-resty-http's presence
    local function raw(name, o)
      o = o or {}
      o.base_url = app.url .. "/raw/" .. name
      o.transport = "builtin"
      o.transport_opts = o.default_transport_opts
      return app:run("/run", raw_call(nil, o))
    end

    it("reads a body delimited by the end of the connection", function()
      assert.are.same({ framing = "close" }, ok_result(raw("close")).value)
    end)

    it("reads chunked bodies (chunk extensions, trailers)", function()
      assert.are.same({ a = { 1, 2, 3 }, b = "x" }, ok_result(raw("chunked")).value)
      server.respond({ chunked = true, body = '{"big":"' .. string.rep("z", 20000) .. '"}' })
      local r = ok_result(app:run("/run", raw_call(nil, { transport = "builtin" })))
      assert.are.equal(20000, #r.value.big)
    end)

    it("lower-cases header names and joins repeated headers with \", \"", function()
      local r = ok_result(raw("repeated"))
      assert.are.equal("a, b", r.headers["x-multi"])
      assert.are.equal("a=1, b=2", r.headers["set-cookie"])
      assert.are.equal("one two", r.headers["x-folded"])
    end)

    it("skips 1xx interim responses", function()
      local r = ok_result(raw("continue"))
      assert.are.equal(201, r.status)
      assert.are.same({ id = "c" }, r.value)
    end)

    it("handles 204 without a body", function()
      local r = ok_result(raw("no_content"))
      assert.are.equal(204, r.status)
      assert.are.same({}, r.value)
    end)

    it("parses error bodies", function()
      local err = err_result(raw("error_json"))
      assert.are.equal("http", err.kind)
      assert.are.equal("email is invalid", err.message)
    end)

    it("rejects malformed and truncated responses as network errors", function()
      for _, name in ipairs({ "garbage", "bad_length", "short" }) do
        local err = err_result(raw(name))
        assert.are.equal("network", err.kind, name)
      end
    end)

    it("enforces max_response for Content-Length, chunked and read-until-close bodies", function()
      for _, name in ipairs({ "big", "big_chunked", "big_close" }) do
        local err = err_result(raw(name, { default_transport_opts = { max_response = 1000 } }))
        assert.are.equal("too_large", err.kind, name)
      end
      -- within the limit the body is read (and is not JSON)
      assert.are.equal("json", err_result(raw("big", { default_transport_opts = { max_response = 10000 } })).kind)
    end)
  end)

  describe("phases without cosockets", function()
    for _, phase in ipairs({ "init", "init_worker", "set", "header_filter", "body_filter", "log" }) do
      it("a call in the " .. phase .. " phase fails with a \"phase\" error naming it", function()
        local status, body, headers = app:get("/phase/" .. phase)
        assert.are.equal(200, status)
        if phase == "header_filter" then body = headers["x-probe"] end
        if phase == "log" then body = select(2, app:get("/phase/log_result")) end
        local v = assert(core.json_decode(body), body)
        assert.are.equal(phase, v.phase)
        assert.are.equal("ngx", v.transport)
        assert.is_false(v.ok)
        assert.are.equal("phase", v.err.kind)
        assert.is_false(v.err.retryable)
        assert.are.equal("cosockets are not available in the " .. phase .. " phase; enqueue with customerio.Queue" ..
          " (background delivery) or call from access/content/timer", v.err.message)
        assert.matches("^customerio phase error: ", v.err.text)
      end)
    end

    it("nothing reached the upstream from those phases", function()
      app:get("/phase/set")
      app:get("/phase/log")
      assert.are.equal(0, server.count())
    end)
  end)

  describe("examples/openresty", function()
    local example

    setup(function()
      example = launch.start_example({ owner = my_pid(), env = {
        CUSTOMERIO_SITE_ID = "site_ex", CUSTOMERIO_TRACK_API_KEY = "track_ex", CUSTOMERIO_APP_API_KEY = "app_ex",
        CUSTOMERIO_TRACK_URL = upstream .. "/api/v1", CUSTOMERIO_APP_URL = upstream .. "/v1",
        RESET_MESSAGE_ID = "reset_7",
      } })
    end)

    teardown(function()
      if example then example:stop() end
    end)

    local function post(path, body)
      local input = os.tmpname()
      local f = assert(io.open(input, "wb"))
      f:write(body)
      f:close()
      local p = io.popen("curl -q -sS --noproxy '*' --max-time 30 -w '\\n%{http_code}' -H 'Content-Type: application/json'" ..
        " --data-binary @" .. input .. " " .. example.url .. path)
      local out = p:read("*a")
      p:close()
      os.remove(input)
      local text, code = out:match("^(.*)\n(%d+)$")
      return tonumber(code), text and core.json_decode(text)
    end

    it("password_reset.lua sends the transactional email", function()
      server.respond({ body = '{"delivery_id":"dlv_1","queued_at":1700000000}' })
      local status, body = post("/password-reset", '{"email":"ada@example.com"}')
      assert.are.equal(202, status, example:error_log())
      assert.are.equal("dlv_1", body.delivery_id)
      local got = server.last()
      assert.are.equal("POST", got.method)
      assert.are.equal("/v1/send/email", got.path)
      assert.are.equal("Bearer app_ex", got.headers["authorization"])
      assert.are.equal("reset_7", got.json.transactional_message_id)
      assert.are.equal("ada@example.com", got.json.to)
      assert.are.same({ email = "ada@example.com" }, got.json.identifiers)
      assert.matches("^https://example.com/reset%?token=%x+$", got.json.message_data.reset_url)
      assert.are.equal(400, (post("/password-reset", '{"email":"nope"}')))
    end)

    it("password_reset.lua answers 503 when Customer.io is down (429s replayed, a 503 not)", function()
      server.respond_many(2, { status = 429 })
      server.respond_many(3, { status = 503 })
      local status = post("/password-reset", '{"email":"ada@example.com"}')
      assert.are.equal(503, status)
      assert.are.equal(3, server.count())
    end)

    it("signup.lua identifies and tracks", function()
      local status, body = post("/signup", '{"email":"ada@example.com","name":"Ada","plan":"pro"}')
      assert.are.equal(201, status, example:error_log())
      assert.is_true(body.tracked)
      local got = server.requests()
      assert.are.equal(2, #got)
      assert.are.equal("PUT", got[1].method)
      assert.are.equal("/api/v1/customers/ada%40example.com", got[1].path)
      assert.are.equal("Ada", got[1].json.name)
      assert.are.equal("pro", got[1].json.plan)
      assert.are.equal("Basic " .. core.base64_encode("site_ex:track_ex"), got[1].headers["authorization"])
      assert.are.equal("POST", got[2].method)
      assert.are.equal("/api/v1/customers/ada%40example.com/events", got[2].path)
      assert.are.equal("signed_up", got[2].json.name)
      assert.are.equal("pro", got[2].json.data.plan)
    end)
  end)

  describe("lua-resty-http backend", function()
    local path = os.getenv("CIO_RESTY_HTTP_PATH")
    if not path or path == "" then
      pending("lua-resty-http is not installed here (not packaged in Debian 12); set CIO_RESTY_HTTP_PATH to run")
      return
    end
    it("sends the same requests, keeps connections and verifies TLS", function()
      local list = scenarios(upstream)
      for _, s in ipairs(list) do assert(run_plain(s)) end
      local plain = server.requests()
      server.reset()
      for _, s in ipairs(list) do
        s.transport = "resty.http"
        local report = app:run("/run", s)
        ok_result(report)
        assert.are.equal("resty.http", report.backend)
      end
      local got = server.requests()
      for i = 1, 3 do assert.are.same(wire(plain[i]), wire(got[i])) end
      local report = app:run("/run_trusted", raw_call(nil, { base_url = tls_url(), times = 2,
        transport = "resty.http", transport_opts = { ca_file = server.ca_file() } }))
      ok_result(report, 1)
      ok_result(report, 2)
      assert.are.equal(0, report.results[2].connects)
      local err = err_result(app:run("/run", raw_call(nil, { base_url = tls_url(), transport = "resty.http" })))
      assert.are.equal("tls", err.kind)
      server.respond({ delay = 1000 })
      err = err_result(app:run("/run", raw_call(nil, { timeout = 200, transport = "resty.http" })))
      assert.are.equal("timeout", err.kind)
    end)
  end)
end)
