-- Hostile input, in both directions, against the local test server: identifiers and headers
-- built to inject, payloads built to exhaust, responses built to confuse (non-JSON, truncated,
-- 10 MB, slow drip, nested 5000 deep), redirects built to steal credentials, and TLS with the
-- wrong host name. Every case asserts a clear error (kind and message) and then that the same
-- client still works for the next call. See docs/SECURITY.md.
local server = require("support.server")
local customerio = require("customerio")
local Client = require("customerio.http.client")
local core = require("customerio.core")

local SITE, KEY = "site_hostile", "trackkey_hostile_0123456789"
local AUTH = "Basic " .. core.base64_encode(SITE .. ":" .. KEY)

local function track(opts)
  opts = opts or {}
  opts.url = opts.url or (server.url() .. "/api/v1")
  if opts.retry == nil then opts.retry = false end
  return customerio.TrackClient.new(SITE, KEY, opts)
end

local function client(opts)
  opts = opts or {}
  opts.base_url = opts.base_url or (server.url() .. "/v1")
  opts.auth = opts.auth or AUTH
  opts.secrets = opts.secrets or { KEY }
  if opts.retry == nil then opts.retry = false end
  return Client.new(opts)
end

-- The next call on the same client succeeds (and reaches the server).
local function still_works(c)
  local before = server.count()
  local res, second
  if getmetatable(c) == Client.Client then
    res, second = c:request("GET", { "still", "works" })
  else
    res, second = c:identify("still_works", { ok = true })
  end
  assert.are.same({}, res, "the next call failed: " .. tostring(second))
  assert.are.equal(200, second.status)
  assert.are.equal(before + 1, server.count())
end

-- Runs fn and returns the error it raised (a string), failing when it did not raise.
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  return tostring(err)
end

describe("hostile input", function()
  before_each(function() server.reset() end)

  describe("identifiers are percent-encoded, never injected", function()
    it("keeps ../ inside one segment (%2F), no traversal", function()
      local t = track()
      assert(t:identify("../../admin", {}))
      local got = server.last()
      assert.are.equal("/api/v1/customers/..%2F..%2Fadmin", got.path)
      assert.are.equal("PUT", got.method)
      still_works(t)
    end)

    it("encodes a whole '..' segment so that it cannot climb (DELETE devices/..)", function()
      local t = track()
      assert(t:delete_device("42", ".."))
      local got = server.last()
      assert.are.equal("DELETE", got.method)
      assert.are.equal("/api/v1/customers/42/devices/%2E%2E", got.path)
      still_works(t)
    end)

    it("encodes a whole '.' segment", function()
      local t = track()
      assert(t:destroy("."))
      assert.are.equal("/api/v1/customers/%2E", server.last().path)
      assert.are.equal("DELETE", server.last().method)
      still_works(t)
    end)

    it("does not decode an already encoded %2E%2E (it is sent as %252E%252E)", function()
      local t = track()
      assert(t:destroy("%2E%2E"))
      assert.are.equal("/api/v1/customers/%252E%252E", server.last().path)
      still_works(t)
    end)

    it("encodes CR/LF in an id: no header is injected", function()
      local t = track()
      assert(t:identify("a\r\nX-Injected: 1", {}))
      local got = server.last()
      assert.are.equal("/api/v1/customers/a%0D%0AX-Injected%3A%201", got.path)
      assert.is_nil(got.headers["x-injected"])
      still_works(t)
    end)

    it("encodes a request-line injection attempt in an id", function()
      local t = track()
      assert(t:identify("x HTTP/1.1\r\nHost: evil.example\r\n\r\nGET /admin", {}))
      local got = server.last()
      assert.are.equal("/api/v1/customers/x%20HTTP%2F1.1%0D%0AHost%3A%20evil.example%0D%0A%0D%0AGET%20%2Fadmin",
        got.path)
      assert.are.equal(1, server.count())
      assert.matches("^127%.0%.0%.1", got.headers["host"])
      still_works(t)
    end)

    it("encodes a NUL byte (%00; nginx then refuses it with 400)", function()
      local t = track()
      local res, err = t:identify("a\0b", {})
      assert.is_nil(res)
      assert.are.equal("http", err.kind)
      assert.are.equal(400, err.status)
      assert.matches("/customers/a%%00b$", err.url)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    it("encodes ?, # and & so that an id cannot add a query", function()
      local t = track()
      assert(t:identify("x?admin=1#frag&y=2", {}))
      local got = server.last()
      assert.are.equal("/api/v1/customers/x%3Fadmin%3D1%23frag%26y%3D2", got.path)
      assert.are.equal("", got.query)
      still_works(t)
    end)

    it("encodes an email id like encodeURIComponent", function()
      local t = track()
      assert(t:identify("ada+test@example.com", {}))
      assert.are.equal("/api/v1/customers/ada%2Btest%40example.com", server.last().path)
      still_works(t)
    end)

    it("encodes invalid UTF-8 in an id byte by byte", function()
      local t = track()
      assert(t:identify("\255\254\192", {}))
      assert.are.equal("/api/v1/customers/%FF%FE%C0", server.last().path)
      still_works(t)
    end)

    it("encodes UTF-8 ids", function()
      local t = track()
      assert(t:identify("J\195\188rgen \240\159\152\128", {}))
      assert.are.equal("/api/v1/customers/J%C3%BCrgen%20%F0%9F%98%80", server.last().path)
      still_works(t)
    end)

    it("refuses an oversized id before sending anything", function()
      local t = track()
      local msg = raised(function() t:identify(string.rep("x", 200), {}) end)
      assert.matches("customer_id is 200 bytes; the limit for a person identifier is 150 bytes", msg, 1, true)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    -- On LuaJIT and 5.1 every number is a double; tostring() would write 14 digits
    -- (1.2345678901235e+14), sending two people to one profile.
    it("sends integral numeric ids as their exact digits, up to 2^53 - 1", function()
      local t = track()
      local cases = {
        { 123456789012345, "123456789012345" }, { 123456789012346, "123456789012346" },
        { 2 ^ 53 - 1, "9007199254740991" }, { -(2 ^ 53 - 1), "-9007199254740991" },
        { 1e15, "1000000000000000" }, { 0, "0" }, { -0.0, "0" }, { 42.5, "42.5" },
      }
      for _, case in ipairs(cases) do
        assert(t:identify(case[1], {}))
        assert.are.equal("/api/v1/customers/" .. case[2], server.last().path)
      end
      assert(t:track(2 ^ 53 - 2, "ev"))
      assert.are.equal("/api/v1/customers/9007199254740990/events", server.last().path)
      assert(t:add_device(123456789012345, 123456789012347, "ios"))
      local got = server.last()
      assert.are.equal("/api/v1/customers/123456789012345/devices", got.path)
      assert.truthy(got.body:find('"id":123456789012347[,}]'), got.body)
      assert(t:delete_device(123456789012345, 123456789012347))
      assert.are.equal("/api/v1/customers/123456789012345/devices/123456789012347", server.last().path)
    end)

    it("refuses numeric ids from 2^53 on, saying to pass a string, sending nothing", function()
      local t = track()
      for _, v in ipairs({ 2 ^ 53, -(2 ^ 53), 2 ^ 60, 1e300 }) do
        local msg = raised(function() t:identify(v, {}) end)
        assert.matches("^customer_id is %S+, beyond 2%^53, where a double cannot hold every integer; "
          .. "pass the id as a string$", msg)
      end
      assert.matches("pass the id as a string", raised(function() t:add_device("p", 2 ^ 53 + 2, "ios") end))
      assert.matches("^operation.identifiers.object_id is .*pass the id as a string$", raised(function()
        t:entity({ type = "object", action = "identify", identifiers = { object_type_id = 1, object_id = 2 ^ 54 } })
      end))
      assert.are.equal(0, server.count())
      if math.type then -- 5.3+: integers are exact at any size
        assert(t:identify(math.tointeger(2 ^ 62), {}))
        assert.are.equal("/api/v1/customers/4611686018427387904", server.last().path)
      end
    end)

    it("sends numeric Pipelines ids exactly and refuses them from 2^53 on", function()
      local cdp = customerio.PipelinesClient.new("wk_hostile", { url = server.url() .. "/v1", retry = false })
      assert(cdp:identify({ userId = 123456789012345 }))
      assert.truthy(server.last().body:find('"userId":123456789012345[,}]'), server.last().body)
      assert.matches("^userId is .*pass the id as a string$", raised(function() cdp:identify({ userId = 2 ^ 53 }) end))
      assert.matches("^previousId is .*pass the id as a string$",
        raised(function() cdp:alias({ userId = "a", previousId = -(2 ^ 60) }) end))
      assert.are.equal(1, server.count())
    end)

    it("sends numeric App API path parameters and query lists exactly", function()
      local api = customerio.APIClient.new("appkey_hostile", { url = server.url() .. "/v1", retry = false })
      assert(api:get_segment(123456789012345))
      assert.are.equal("/v1/segments/123456789012345", server.last().path)
      assert(api:get_attributes(123456789012346))
      assert.are.equal("/v1/customers/123456789012346/attributes?id_type=id", server.last().path)
      assert.matches("^segment_id is .*pass the id as a string$", raised(function() api:get_segment(2 ^ 53) end))
      local c = client()
      assert(c:request("GET", { "x" }, { query = { { "ids", { 123456789012345, 123456789012346 } },
        { "n", 123456789012347 } } }))
      assert.are.equal("ids=123456789012345%2C123456789012346&n=123456789012347", server.last().query)
    end)

    it("encodes query values: an email lookup cannot add parameters", function()
      local c = client()
      assert(c:request("GET", { "customers" }, { query = { { "email", "a@b.c&admin=1#x" } } }))
      local got = server.last()
      assert.are.equal("email=a%40b.c%26admin%3D1%23x", got.query)
      still_works(c)
    end)
  end)

  describe("header values are checked, never injected", function()
    -- Header names are case-insensitive: "authorization" must not go out beside the client's
    -- "Authorization", nor replace it (docs/SECURITY.md, Credentials).
    it("refuses a per-request Authorization in any case, sending nothing", function()
      local api = customerio.APIClient.new("appkey_hostile", { url = server.url() .. "/v1", retry = false })
      for _, name in ipairs({ "authorization", "Authorization", "AUTHORIZATION", "aUtHoRiZaTiOn" }) do
        local msg = raised(function() api:request("GET", "/x", { headers = { [name] = "Bearer attacker" } }) end)
        assert.are.equal("headers: header " .. name .. " is not allowed; the client sends its own credentials", msg)
      end
      local t = track()
      assert.matches("is not allowed", raised(function()
        t.client:request("GET", { "x" }, { headers = { authorization = "Basic YTpi" } })
      end))
      assert.are.equal(0, server.count())
      assert(api:request("GET", "/x"))
      assert.are.equal("Bearer appkey_hostile", server.last().headers.authorization)
      still_works(t)
    end)

    it("folds header case: a per-request header replaces the client's, one goes out", function()
      local c = client({ headers = { ["X-Team"] = "growth" } })
      assert(c:request("GET", { "x" }, { headers = { ["x-team"] = "sales", ["user-agent"] = "agent/2" } }))
      local h = server.last().headers
      assert.are.equal("sales", h["x-team"]) -- "growth, sales" if both went out
      assert.are.equal("agent/2", h["user-agent"])
      assert.are.equal(AUTH, h.authorization)
      -- The client's own header options: its credentials win, in any case, and only they go out.
      local api = customerio.APIClient.new("appkey_hostile", { url = server.url() .. "/v1", retry = false,
        headers = { aUTHORIZATION = "Bearer attacker" } })
      assert(api:request("GET", "/x"))
      assert.are.equal("Bearer appkey_hostile", server.last().headers.authorization)
    end)

    it("refuses one header given twice in two cases", function()
      assert.are.equal("headers: header X-A is given twice (as X-A and x-a)",
        raised(function() track({ headers = { ["X-A"] = "1", ["x-a"] = "2" } }) end))
      local c = client()
      assert.are.equal("headers: header X-B is given twice (as X-B and x-B)",
        raised(function() c:request("GET", { "x" }, { headers = { ["X-B"] = "1", ["x-B"] = "2" } }) end))
      -- A transport given such a request (bypassing the client) refuses it too.
      local transport = require("customerio.transport.curl").new()
      local res, kind, msg = transport:send({ method = "GET", url = server.url() .. "/raw",
        headers = { Authorization = "Bearer a", authorization = "Bearer b" } }, 2000)
      assert.is_nil(res)
      assert.are.equal("request", kind)
      assert.are.equal("header authorization is given twice, in two cases", msg)
      assert.are.equal(0, server.count())
      still_works(c)
    end)

    it("refuses CR/LF in a header option", function()
      local msg = raised(function() track({ headers = { ["X-A"] = "1\r\nX-Injected: 1" } }) end)
      assert.are.equal("headers: header X-A contains CR, LF or NUL", msg)
      still_works(track())
    end)

    it("refuses a NUL in a header value", function()
      local msg = raised(function() track({ headers = { ["X-A"] = "a\0b" } }) end)
      assert.are.equal("headers: header X-A contains CR, LF or NUL", msg)
      local c = client()
      msg = raised(function() c:request("GET", { "x" }, { headers = { ["X-A"] = "a\0b" } }) end)
      assert.are.equal("headers: header X-A contains CR, LF or NUL", msg)
      still_works(c)
    end)

    it("refuses a header name with a space, a colon or CR/LF", function()
      assert.matches("invalid header name", raised(function() track({ headers = { ["X A"] = "1" } }) end))
      assert.matches("invalid header name", raised(function() track({ headers = { ["X-A:"] = "1" } }) end))
      assert.matches("invalid header name", raised(function() track({ headers = { ["X\r\nY"] = "1" } }) end))
      local c = client()
      assert.matches("invalid header name",
        raised(function() c:request("GET", { "x" }, { headers = { ["Host: evil\r\nX"] = "1" } }) end))
      assert.are.equal(0, server.count())
      still_works(c)
    end)

    it("refuses CR/LF in the user agent", function()
      local msg = raised(function() track({ user_agent = "ua\r\nX-Injected: 1" }) end)
      assert.are.equal("user_agent: header User-Agent contains CR, LF or NUL", msg)
      local c = client()
      msg = raised(function() c:request("GET", { "x" }, { headers = { ["User-Agent"] = "ua\nX-Injected: 1" } }) end)
      assert.are.equal("headers: header User-Agent contains CR, LF or NUL", msg)
      still_works(c)
    end)

    it("refuses per-call headers with CR/LF and keeps the client usable", function()
      local c = client()
      local msg = raised(function() c:request("GET", { "x" }, { headers = { ["X-B"] = "v\nX-Injected: 1" } }) end)
      assert.are.equal("headers: header X-B contains CR, LF or NUL", msg)
      assert.are.equal(0, server.count())
      still_works(c)
    end)

    it("the C handle refuses injected headers, URLs and methods, and stays usable", function()
      local h = core.http_new()
      local url = server.url() .. "/raw"
      local ok, err = pcall(h.perform, h, "GET", url, { ["X-A"] = "1\r\nX-Injected: 1" }, nil, 2000)
      assert.is_false(ok)
      assert.matches("forbidden characters", err)
      ok, err = pcall(h.perform, h, "GET", url .. " HTTP/1.1\r\nX-Injected: 1", {}, nil, 2000)
      assert.is_false(ok)
      assert.matches("URL contains spaces or control characters", err)
      ok, err = pcall(h.perform, h, "GET / HTTP/1.1\r\nX-Injected: 1\r\n", url, {}, "body", 2000)
      assert.is_false(ok)
      assert.matches("invalid HTTP method", err)
      ok, err = pcall(h.perform, h, "", url, {}, "body", 2000)
      assert.is_false(ok)
      assert.matches("invalid HTTP method", err)
      collectgarbage()
      collectgarbage()
      assert.are.equal(0, server.count())
      local status, _, body = h:perform("PUT", url, { ["X-Ok"] = "1" }, '{"a":1}', 2000)
      assert.are.equal(200, status)
      assert.are.equal("{}", body)
      assert.are.equal('{"a":1}', server.last().body)
      assert.is_nil(server.last().headers["x-injected"])
      h:close()
    end)

    it("caps absurd timeouts instead of overflowing them", function()
      local h = core.http_new({ connect_timeout = 1e300 })
      local status = h:perform("GET", server.url() .. "/raw", {}, nil, math.huge)
      assert.are.equal(200, status)
      status = h:perform("GET", server.url() .. "/raw", {}, nil, 1e300)
      assert.are.equal(200, status)
      h:close()
    end)
  end)

  -- Every time argument: NaN and negative numbers raise; math.huge and absurdly large values
  -- mean "as long as needed", clamped to check.MAX_MS (2^31 - 1 ms), and never reach C as a
  -- double out of int64 range (undefined behaviour: q:close(math.huge) used to hang or to
  -- drop every queued event).
  describe("time arguments (milliseconds)", function()
    local check = require("customerio.http.check")
    local HUGE = { math.huge, 1e300, 1e19, 2 ^ 63 }
    local BAD = { 0 / 0, -1, -math.huge, "10" }

    it("clamps huge client timeouts and refuses NaN and negatives", function()
      for _, v in ipairs(HUGE) do
        local t = track({ timeout = v, connect_timeout = v })
        assert.are.equal(check.MAX_MS, t.client.timeout)
        assert.are.equal(check.MAX_MS, t.client.connect_timeout)
        assert(t:identify("huge", {}))
      end
      for _, v in ipairs(BAD) do
        assert.are.equal("timeout must be a positive number of milliseconds", raised(function() track({ timeout = v }) end))
        assert.are.equal("connect_timeout must be a positive number of milliseconds",
          raised(function() track({ connect_timeout = v }) end))
      end
      assert.matches("positive", raised(function() track({ timeout = 0 }) end))
    end)

    it("clamps huge retry times and refuses NaN and negatives", function()
      for _, v in ipairs(HUGE) do
        local t = track({ retry = { max_retries = 0, min_timeout = v, max_timeout = v, max_total_backoff = v,
          retry_after_max = v } })
        local p = t.client.retry
        assert.are.same({ check.MAX_MS, check.MAX_MS, check.MAX_MS, math.floor(check.MAX_MS / 1000) },
          { p.min_timeout, p.max_timeout, p.max_total_backoff, p.retry_after_max })
      end
      for _, v in ipairs(BAD) do
        assert.are.equal("retry.min_timeout must be a number of milliseconds, 0 or more",
          raised(function() track({ retry = { min_timeout = v } }) end))
        assert.are.equal("retry.retry_after_max must be a number of seconds, 0 or more",
          raised(function() track({ retry = { retry_after_max = v } }) end))
      end
    end)

    it("queue flush and close with a huge timeout deliver everything and return", function()
      for _, v in ipairs(HUGE) do
        server.reset()
        local q = customerio.Queue.new(track(), { flush_interval = v, close_timeout = v, timeout = v,
          connect_timeout = v })
        for i = 1, 3 do assert.is_true(q:identify("q" .. i, { n = i })) end
        assert.is_true(q:flush(v))
        assert.is_true(q:identify("q4", {}))
        assert.is_true(q:close(v))
        local s = q:stats()
        assert.are.same({ 4, 0, 0 }, { s.sent, s.failed, s.queued })
        assert.are.equal(2, server.count())
      end
    end)

    it("queue options, flush and close refuse NaN and negatives (Lua and C)", function()
      for _, v in ipairs(BAD) do
        for _, name in ipairs({ "flush_interval", "close_timeout", "timeout", "connect_timeout" }) do
          assert.matches("^" .. name .. " must be a ", raised(function() customerio.Queue.new(track(), { [name] = v }) end))
        end
      end
      local q = customerio.Queue.new(track())
      for _, v in ipairs(BAD) do
        assert.matches("^timeout_ms must be a number of milliseconds, 0 or more$", raised(function() q:flush(v) end))
        assert.matches("^timeout_ms must be a number of milliseconds, 0 or more$", raised(function() q:close(v) end))
      end
      -- The C core checks too: its queue userdata, whoever calls it.
      for _, v in ipairs({ 0 / 0, -1 }) do
        assert.matches("must not be negative", raised(function() q._q:flush(v) end))
        assert.matches("must not be negative", raised(function() q._q:close(v) end))
        assert.matches("milliseconds, 0 or more", raised(function() core.sleep_ms(v) end))
      end
      assert.is_true(q._q:flush(math.huge))
      assert.is_true(q:close(0))
    end)

    it("async poll and wait take math.huge and refuse NaN and negatives", function()
      local async = require("customerio.async")
      local engine = async.engine()
      local a = async.wrap(track(), { engine = engine })
      for _, v in ipairs(HUGE) do
        local got
        a:identify("async", {}, function(res) got = res end)
        assert.are.equal(1, a:poll(v))
        assert.are.same({}, got)
        a:identify("async", {}, function(res) got = res end)
        assert.is_true(a:wait(v))
        assert.are.equal(0, engine:poll(v)) -- nothing pending: returns at once
      end
      for _, v in ipairs(BAD) do
        assert.matches("^poll: timeout_ms must be a number of milliseconds, 0 or more$", raised(function() a:poll(v) end))
        assert.matches("^wait: timeout_ms must be", raised(function() a:wait(v) end))
        assert.matches("^poll: timeout_ms must be", raised(function() engine:poll(v) end))
      end
    end)
  end)

  describe("request payloads", function()
    it("refuses invalid UTF-8 in a value, naming the path, sending nothing", function()
      local t = track()
      local msg = raised(function() t:identify("x", { name = "caf\233" }) end)
      assert.are.equal("data.name: invalid UTF-8 in string", msg)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    it("refuses invalid UTF-8 in a key", function()
      local t = track()
      local msg = raised(function() t:track("x", "ev", { ["k\255"] = 1 }) end)
      assert.matches("invalid UTF%-8 in key", msg)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    it("sends NUL, CR/LF and quotes in values JSON-escaped", function()
      local t = track()
      local v = "a\0b\r\nc\"d\\e\1"
      assert(t:identify("x", { v = v }))
      local got = server.last()
      assert.matches('\\u0000', got.body, 1, true)
      assert.matches('\\r\\n', got.body, 1, true)
      assert.is_nil(got.body:find("\0", 1, true))
      assert.is_nil(got.body:find("\r", 1, true))
      assert.are.equal(v, core.json_decode(got.body).v)
      still_works(t)
    end)

    it("refuses a payload nested deeper than 1000 levels", function()
      local t = track()
      local deep = {}
      local cur = deep
      for _ = 1, 2000 do
        cur.x = {}
        cur = cur.x
      end
      local msg = raised(function() t:track("x", "ev", { d = deep }) end)
      assert.matches("nesting deeper than 1000$", msg)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    it("refuses a reference cycle", function()
      local c = client()
      local a = { name = "a" }
      a.self = a
      local msg = raised(function() c:request("POST", { "x" }, { body = { a = a } }) end)
      assert.matches("reference cycle", msg)
      assert.are.equal(0, server.count())
      still_works(c)
    end)

    it("refuses NaN and infinities", function()
      local c = client()
      assert.matches("cannot encode NaN", raised(function() c:request("POST", { "x" }, { body = { n = 0 / 0 } }) end))
      assert.matches("cannot encode inf", raised(function() c:request("POST", { "x" }, { body = { n = math.huge } }) end))
      assert.matches("cannot encode %-inf", raised(function() c:request("POST", { "x" }, { body = { n = -math.huge } }) end))
      assert.are.equal(0, server.count())
      still_works(c)
    end)

    it("refuses functions and userdata", function()
      local c = client()
      assert.matches("cannot encode function",
        raised(function() c:request("POST", { "x" }, { body = { f = print } }) end))
      assert.matches("cannot encode userdata",
        raised(function() c:request("POST", { "x" }, { body = { u = io.stdout } }) end))
      still_works(c)
    end)

    it("sends huge and extreme numbers exactly", function()
      local c = client()
      assert(c:request("POST", { "x" }, { body = customerio.json.decode(
        '{"max":9223372036854775807,"min":-9223372036854775808,"big":1e308,"tiny":5e-324,"neg0":-0.0}',
        { ordered = true }) }))
      local body = server.last().body
      if math.type then -- 5.3+: integers are exact; LuaJIT has doubles only
        assert.are.equal(1, body:find('{"max":9223372036854775807,"min":-9223372036854775808,', 1, true))
      end
      assert.truthy(body:find('"big":1e+308,', 1, true))
      assert.truthy(body:find(',"neg0":0}', 1, true))
      local back = core.json_decode(body)
      assert.are.equal(5e-324, back.tiny) -- reads back exactly
      assert.are.equal(1e308, back.big)
      still_works(c)
    end)

    it("refuses event data over Customer.io's size limit before sending", function()
      local t = track()
      local msg = raised(function() t:track("x", "ev", { blob = string.rep("x", 200 * 1024) }) end)
      assert.matches("limit", msg)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    -- 27 tables, each holding the next one twice: 2^27 leaves, ~2.4 GB of JSON if written out.
    local function dag()
      local t = { "x" }
      for _ = 1, 27 do t = { a = t, b = t } end
      return t
    end

    it("stops encoding shared sub-tables at the limit that applies (event data, identify, batch, queue)", function()
      local t = track()
      assert.are.equal("data is more than 100000 bytes as JSON; the limit is 100000 bytes",
        raised(function() t:track("x", "ev", { d = dag() }) end):match("data is .*"))
      assert.are.equal("data is more than 346802 bytes as JSON; the limit is 346802 bytes",
        raised(function() t:identify("x", { d = dag() }) end):match("data is .*"))
      assert.are.equal("operations[1] is more than 32768 bytes as JSON; the limit is 32768 bytes",
        raised(function() t:batch({ { type = "person", action = "identify", identifiers = { id = "1" },
          attributes = { d = dag() } } }) end):match("operations.*"))
      local q = customerio.Queue.new(t, { flush_interval = 0 })
      local ok, err = q:identify("x", { d = dag() })
      assert.is_nil(ok)
      assert.are.equal("too_large", err.kind)
      assert.are.equal("operation is more than 32768 bytes as JSON; the limit is 32768 bytes", err.message)
      assert.are.equal(1, q:stats().rejected)
      q:close(1000)
      assert.are.equal(0, server.count())
      still_works(t)
    end)

    it("refuses identify data over the largest body Customer.io's per-attribute limits allow", function()
      local t = track()
      local data = {}
      for i = 1, 301 do data[string.format("a%03d", i) .. string.rep("n", 146)] = string.rep("x", 1000) end
      assert.matches("data is more than 346802 bytes as JSON; the limit is 346802 bytes",
        raised(function() t:identify("x", data) end), 1, true)
      data["a301" .. string.rep("n", 146)] = nil
      assert(t:identify("x", data)) -- 300 attributes with 150-byte names and 1000-byte values fit
      assert.are.equal(1, server.count())
    end)

    it("sends a 5 MB raw body whole", function()
      local c = client({ timeout = 20000 })
      local body = '"' .. string.rep("z", 5 * 1024 * 1024) .. '"'
      assert(c:request("POST", { "big" }, { raw_body = body }))
      assert.are.equal(#body, #server.last().body)
      still_works(c)
    end)

    it("encodes a 100 000-element array", function()
      local c = client()
      local list = {}
      for i = 1, 100000 do list[i] = i end
      assert(c:request("POST", { "list" }, { body = { list = list } }))
      assert.are.equal(100000, #core.json_decode(server.last().body).list)
      still_works(c)
    end)
  end)

  describe("responses", function()
    it("reports a non-JSON 200 body as a json error", function()
      local t = track()
      server.respond({ status = 200, body = "<html>hello</html>" })
      local res, err = t:identify("x", {})
      assert.is_nil(res)
      assert.are.equal("json", err.kind)
      assert.are.equal(200, err.status)
      assert.matches("^Unable to parse JSON response: invalid JSON at byte 1: unexpected '<'", err.message)
      assert.are.equal("<html>hello</html>", err.body)
      still_works(t)
    end)

    it("reports truncated JSON", function()
      local t = track()
      server.respond({ status = 200, body = '{"delivery_id":"d1","queued' })
      local _, err = t:identify("x", {})
      assert.are.equal("json", err.kind)
      assert.matches("unterminated string", err.message)
      still_works(t)
    end)

    it("reports a body shorter than its Content-Length (timeout, partial)", function()
      local t = track({ timeout = 800 })
      server.respond({ status = 200, body = '{"a":1}', headers = { ["Content-Length"] = "100" } })
      local res, err = t:identify("x", {})
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.matches("7 out of 100 bytes", err.detail)
      still_works(t)
    end)

    it("reports a dropped connection as a network error", function()
      local t = track()
      server.respond({ drop = true })
      local _, err = t:identify("x", {})
      assert.are.equal("network", err.kind)
      assert.is_true(err.retryable)
      still_works(t)
    end)

    it("handles a 10 MB non-JSON 200 body: the message shows 200 bytes of it", function()
      local t = track({ timeout = 20000 })
      server.respond({ status = 200, body_size = 10 * 1024 * 1024 })
      local _, err = t:identify("x", {})
      assert.are.equal("json", err.kind)
      assert.are.equal(10 * 1024 * 1024, #err.body)
      assert.is_true(#err.message < 400)
      assert.matches("%.%.%.$", err.message)
      still_works(t)
    end)

    it("handles a 10 MB error body: the message is cut at 500 bytes", function()
      local t = track({ timeout = 20000 })
      server.respond({ status = 500, body_size = 10 * 1024 * 1024, body_char = "e" })
      local _, err = t:identify("x", {})
      assert.are.equal("http", err.kind)
      assert.are.equal(500, err.status)
      assert.are.equal(503, #err.message)
      still_works(t)
    end)

    it("refuses a body over max_response (too_large) and reconnects cleanly", function()
      local t = track({ max_response = 1024 * 1024 })
      server.respond({ status = 200, body_size = 3 * 1024 * 1024 })
      local _, err = t:identify("x", {})
      assert.are.equal("too_large", err.kind)
      assert.are.equal("response body larger than 1048576 bytes", err.message)
      still_works(t)
    end)

    it("reports invalid UTF-8 in a JSON response", function()
      local t = track()
      server.respond({ status = 200, body = '{"name":"caf\233"}' })
      local _, err = t:identify("x", {})
      assert.are.equal("json", err.kind)
      assert.matches("invalid UTF%-8 at byte 13", err.message)
      still_works(t)
    end)

    it("reports a raw NUL in a JSON response", function()
      local t = track()
      server.respond({ status = 200, body = '{"a":"\0"}' })
      local _, err = t:identify("x", {})
      assert.are.equal("json", err.kind)
      assert.matches("control character", err.message)
      still_works(t)
    end)

    it("refuses a response nested 5000 deep", function()
      local t = track()
      server.respond({ status = 200, body = string.rep("[", 5000) .. string.rep("]", 5000) })
      local _, err = t:identify("x", {})
      assert.are.equal("json", err.kind)
      assert.matches("nesting deeper than 1000 at byte 1001", err.message)
      still_works(t)
    end)

    it("refuses a gzip body that inflates to millions of JSON values (max_response_values)", function()
      local t = track()
      -- ~6 MB of "[0,0,0,...]" inflated from a few KB: 3 million values
      server.respond({ status = 200, gzip = true, body_repeat = { head = "[", unit = "0,", count = 3000000, tail = "0]" } })
      local res, err = t:identify("x", {})
      assert.is_nil(res)
      assert.are.equal("too_large", err.kind)
      assert.are.equal(200, err.status)
      assert.are.equal("the JSON response has more than 1000000 values (max_response_values)", err.message)
      assert.is_false(err.retryable)
      assert.matches("gzip", server.last().headers["accept-encoding"])
      still_works(t)
    end)

    it("takes max_response_values", function()
      local t = track({ max_response_values = 10 })
      server.respond({ status = 200, body_repeat = { head = "[", unit = "0,", count = 10, tail = "0]" } })
      local _, err = t:identify("x", {})
      assert.are.equal("too_large", err.kind)
      assert.are.equal("the JSON response has more than 10 values (max_response_values)", err.message)
      server.respond({ status = 200, body_repeat = { head = "[", unit = "0,", count = 8, tail = "0]" } })
      assert.are.equal(9, #assert(t:identify("x", {})))
      assert.matches("max_response_values must be an integer",
        raised(function() track({ max_response_values = 0 }) end))
    end)

    it("counts decoding against the call's timeout", function()
      -- A transport that answers only after the timeout has passed: the decode deadline
      -- (the start of the attempt + timeout) is then behind us, whatever the machine's speed.
      local body = "[" .. string.rep("0,", 10000) .. "0]"
      local slow = {
        send = function(_, _, timeout)
          local t0 = core.monotonic_ms()
          while core.monotonic_ms() - t0 <= timeout + 5 do core.sleep_ms(timeout) end
          return { status = 200, headers = {}, body = body }
        end,
      }
      local t = track({ transport = slow, timeout = 20 })
      local res, err = t:identify("x", {})
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
      assert.are.equal("decoding the JSON response passed the timeout (20 ms)", err.message)
      assert.is_false(err.retryable)
    end)

    it("decodes huge numbers in a response without losing int64", function()
      local t = track()
      server.respond({ status = 200, body = '{"n":123456789012345678901234567890,"i":9223372036854775807,"f":1e400}' })
      local res = assert(t:identify("x", {}))
      if math.type then
        assert.are.equal(9223372036854775807, res.i)
        assert.are.equal("integer", math.type(res.i))
      end
      assert.is_true(res.n > 1.2e29 and res.n < 1.3e29)
      assert.are.equal(math.huge, res.f)
      still_works(t)
    end)

    it("reads an error message out of an HTML error page", function()
      local t = track()
      server.respond({ status = 502, body = "  <html><body>Bad gateway</body></html>\n" })
      local _, err = t:identify("x", {})
      assert.are.equal("http", err.kind)
      assert.are.equal(502, err.status)
      assert.are.equal("<html><body>Bad gateway</body></html>", err.message)
      still_works(t)
    end)

    it("accepts a chunked response", function()
      local t = track()
      server.respond({ status = 200, body = '{"ok":true}', chunked = true })
      assert.are.same({ ok = true }, (t:identify("x", {})))
      still_works(t)
    end)

    it("keeps a huge response header from breaking the client", function()
      local t = track()
      server.respond({ status = 429, headers = { ["Retry-After"] = string.rep("9", 2000) } })
      local _, err = t:identify("x", {})
      assert.are.equal("http", err.kind)
      assert.are.equal(429, err.status)
      still_works(t)
    end)
  end)

  describe("slow responses", function()
    it("applies the timeout to a slow-drip body", function()
      local t = track({ timeout = 700 })
      server.respond({ status = 200, body = '{"a":"' .. string.rep("x", 200) .. '"}', drip = { chunks = 20, interval = 150 } })
      local t0 = core.monotonic_ms()
      local _, err = t:identify("x", {})
      local took = core.monotonic_ms() - t0
      assert.are.equal("timeout", err.kind)
      assert.is_true(took < 2500, "took " .. took .. " ms")
      still_works(t)
    end)

    it("applies the timeout to a server that answers nothing", function()
      local t = track({ timeout = 300 })
      server.respond({ delay = 1500 })
      local _, err = t:identify("x", {})
      assert.are.equal("timeout", err.kind)
      assert.matches("timed out", err.message)
      still_works(t)
    end)
  end)

  describe("redirects", function()
    it("stops a redirect loop after 5 redirects", function()
      local t = track()
      server.respond_many(10, { status = 307, redirect = "/api/v1/loop" })
      local _, err = t:identify("x", {})
      assert.are.equal("redirect", err.kind)
      assert.are.equal("too many redirects (more than 5)", err.message)
      assert.are.equal(6, server.count())
      server.reset()
      still_works(t)
    end)

    it("never sends credentials to another host", function()
      local t = track()
      local other = server.url():gsub("127%.0%.0%.1", "localhost")
      server.respond({ status = 307, redirect = other .. "/api/v1/stolen" })
      assert(t:identify("x", { a = 1 }))
      local reqs = server.requests()
      assert.are.equal(AUTH, reqs[1].headers["authorization"])
      assert.are.equal("/api/v1/stolen", reqs[2].path)
      assert.is_nil(reqs[2].headers["authorization"])
      still_works(t)
    end)

    it("never sends credentials through a userinfo trick", function()
      local t = track()
      local port = server.url():match(":(%d+)$")
      server.respond({ status = 302, redirect = "http://127.0.0.1:" .. port .. "@localhost:" .. port .. "/api/v1/trick" })
      assert(t:identify("x", {}))
      local got = server.last()
      assert.are.equal("/api/v1/trick", got.path)
      assert.are_not.equal(AUTH, got.headers["authorization"])
      still_works(t)
    end)

    it("strips credentials on an https -> http downgrade, even to the same host", function()
      local t = track({ url = server.tls_url() .. "/api/v1", ca_file = server.ca_file() })
      server.respond({ status = 307, redirect = server.url() .. "/api/v1/downgraded" })
      assert(t:identify("x", {}))
      local reqs = server.requests()
      assert.are.equal("https", reqs[1].scheme)
      assert.are.equal(AUTH, reqs[1].headers["authorization"])
      assert.are.equal("http", reqs[2].scheme)
      assert.is_nil(reqs[2].headers["authorization"])
      still_works(t)
    end)

    it("refuses redirects to other schemes (ftp, file)", function()
      local t = track()
      for _, location in ipairs({ "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1:70/x" }) do
        server.respond({ status = 302, redirect = location })
        local _, err = t:identify("x", {})
        assert.are.equal("redirect", err.kind)
        assert.are.equal("refusing to follow redirect to an invalid URL", err.message)
      end
      assert.are.equal(3, server.count())
      still_works(t)
    end)

    it("refuses a redirect without Location", function()
      local t = track()
      server.respond({ status = 308 })
      local _, err = t:identify("x", {})
      assert.are.equal("redirect", err.kind)
      assert.are.equal("Received a 308 status, but no Location header was present", err.message)
      still_works(t)
    end)

    -- Host names that cannot be reached here: a transport that answers every request with a
    -- redirect to the next location and records what it was sent.
    it("keeps credentials only for the same host or *.customer.io over https", function()
      local cases = {
        { "https://api.customer.io/v1/x", true },
        { "https://track-eu.customer.io/api/v1/x", true },
        { "https://customer.io/x", true },
        { "http://track.customer.io/api/v1/x", false },        -- downgrade
        { "https://customer.io.evil.example/x", false },
        { "https://evilcustomer.io/x", false },
        { "https://track.customer.io@evil.example/x", false },  -- userinfo
        { "https://evil.example/.customer.io", false },
        { "https://evil.example?.customer.io", false },
        { "https://evil.example#.customer.io", false },
      }
      for _, case in ipairs(cases) do
        local sent = {}
        local transport = {
          send = function(_, req)
            sent[#sent + 1] = req
            if #sent == 1 then return { status = 307, headers = { location = case[1] }, body = "" } end
            return { status = 200, headers = {}, body = "{}" }
          end,
        }
        local t = customerio.TrackClient.new(SITE, KEY, { transport = transport, retry = false })
        assert(t:identify("x", {}))
        assert.are.equal(2, #sent)
        assert.are.equal(case[1], sent[2].url)
        local auth = sent[2].headers["Authorization"]
        if case[2] then
          assert.are.equal(AUTH, auth, case[1])
        else
          assert.is_nil(auth, case[1])
        end
        assert.are.equal(AUTH, sent[1].headers["Authorization"])
        assert(t:identify("y", {})) -- still usable
      end
    end)
  end)

  describe("TLS", function()
    it("refuses a certificate for another host name", function()
      local c = client({ base_url = server.tls_wrong_host_url() .. "/v1", ca_file = server.ca_file() })
      local res, err = c:request("GET", { "x" })
      assert.is_nil(res)
      assert.are.equal("tls", err.kind)
      assert.matches("127%.0%.0%.1", err.message)
      assert.are.equal(0, server.count())
      -- the same client (and handle) then works against a correctly named server
      assert(c:request("GET", { "ok" }, { base = server.tls_url() .. "/v1" }))
      assert.are.equal(1, server.count())
      assert.are.equal(AUTH, server.last().headers["authorization"])
    end)

    it("refuses a certificate from an unknown CA", function()
      local c = client({ base_url = server.tls_url() .. "/v1" })
      local _, err = c:request("GET", { "x" })
      assert.are.equal("tls", err.kind)
      assert.are.equal(0, server.count())
      assert(c:request("GET", { "ok" }, { base = server.url() .. "/v1" }))
    end)

    it("has no option that turns verification off", function()
      for _, opt in ipairs({ "insecure", "verify", "ssl_verify", "verify_peer" }) do
        local ok = pcall(customerio.TrackClient.new, SITE, KEY, { [opt] = false })
        assert.is_false(ok, opt)
      end
    end)
  end)

  describe("templates (customerio.liquid)", function()
    local liquid = require("customerio.liquid")

    it("refuses an absurd date width instead of building it in memory (found by fuzz/liquid)", function()
      for _, f in ipairs({ "%" .. string.rep("5", 120) .. "Y", "%999999999d", "%1025Y" }) do
        local out, err = liquid.render("{{ 0 | date: '" .. f .. "' }}")
        assert.is_nil(out)
        assert.are.equal("argument", err.kind)
        assert.matches("is larger than 1024", err.message)
      end
      assert.are.equal(1024, #assert(liquid.render("{{ 0 | date: '%1024Y' }}")))
    end)

    it("refuses an absurd json indent", function()
      local out, err = liquid.render("{{ x | json: 1000000000 }}", { x = { a = { 1 } } })
      assert.is_nil(out)
      assert.are.equal("argument", err.kind)
      assert.matches("indent 1000000000 is larger than 64", err.message)
      assert.are.equal('{\n  "a": [\n    1\n  ]\n}', (liquid.render("{{ x | json: 2 }}", { x = { a = { 1 } } })))
    end)

    -- issue 15, item 1: every string and array a template builds counts against max_memory,
    -- ranges are never materialised, parsing is linear and the template size is bounded
    local function limit_error(out, err, option)
      assert.is_nil(out)
      assert.are.equal("limit", err.kind)
      assert.matches(option, err.message, 1, true)
      assert.is_number(err.line)
      assert.is_number(err.column)
      return err
    end

    it("bounds strings doubled by append (memory budget)", function()
      local out, err = liquid.render('{% assign s = "xxxxxxxxxx" %}{% for i in (1..27) %}'
        .. '{% assign s = s | append: s %}{% endfor %}{{ s | size }}')
      err = limit_error(out, err, "raise with max_memory")
      assert.matches("memory limit exceeded", err.message)
      assert.same({ 1, 70 }, { err.line, err.column })
    end)

    it("refuses to join a huge range before building it", function()
      local out, err = liquid.render('{{ (1..1000000000000) | join: "," }}')
      err = limit_error(out, err, "raise with max_memory")
      assert.same({ 1, 25 }, { err.line, err.column })
    end)

    it("bounds 100 000 appends of 60 bytes", function()
      local out, err = liquid.render("{% for i in (1..100000) %}{% assign s = s | append: '"
        .. string.rep("x", 60) .. "' %}{% endfor %}{{ s | size }}")
      limit_error(out, err, "raise with max_memory")
    end)

    it("bounds strings doubled by capture", function()
      local out, err = liquid.render("{% capture s %}xxxxxxxxxxxxxxxx{% endcapture %}{% for i in (1..40) %}"
        .. "{% capture s %}{{ s }}{{ s }}{% endcapture %}{% endfor %}", {}, { max_output = 2 ^ 40 })
      limit_error(out, err, "raise with max_memory")
    end)

    it("refuses replace and split results larger than the budget before building them", function()
      local grow = "{% assign a = 'aaaaaaaaaaaaaaaa' %}{% for i in (1..10) %}{% assign a = a | append: a %}{% endfor %}"
      local out, err = liquid.render(grow .. "{{ a | replace: 'a', a | size }}")
      limit_error(out, err, "raise with max_memory")
      out, err = liquid.render(grow .. "{{ a | replace: '', a | size }}")
      limit_error(out, err, "raise with max_memory")
      out, err = liquid.render(grow .. "{{ a | split: '' | size }}", {}, { max_memory = 200000 })
      limit_error(out, err, "raise with max_memory")
    end)

    it("parses a long variable path in linear time and bounds its tokens", function()
      local path = "{{ x" .. string.rep(".a", 1000000) .. " }}"   -- 2 MB
      local out, err = liquid.render(path)
      limit_error(out, err, "raise with max_template_size")
      out, err = liquid.render(path, {}, { max_template_size = 4 * 1024 * 1024 })
      err = limit_error(out, err, "raise with max_tokens")
      assert.same({ 1, 100003 }, { err.line, err.column })
      -- 40 000 segments are within the default limits and parse
      local tpl = assert(liquid.parse("{{ x" .. string.rep(".a", 40000) .. " }}"))
      assert.are.equal("", (tpl:render({})))
    end)

    it("bounds the template size and its tokens", function()
      local out, err = liquid.render(string.rep("{{ 'x' }}", 2000000))   -- 18 MB
      err = limit_error(out, err, "raise with max_template_size")
      assert.matches("18000000 bytes, more than 1048576", err.message, 1, true)
      out, err = liquid.render(string.rep("{{ 'x' }}", 100000))          -- 900 KB, 200 000 tokens
      limit_error(out, err, "raise with max_tokens")
    end)

    it("stops runaway loops and output", function()
      local _, err = liquid.render("{% for i in (1..1000000000) %}x{% endfor %}", {}, { max_iterations = 1000 })
      assert.are.equal("limit", err.kind)
      _, err = liquid.render("{% for i in (1..100000) %}{{ s }}{% endfor %}", { s = string.rep("y", 1000) },
        { max_output = 65536 })
      assert.are.equal("limit", err.kind)
    end)
  end)

  describe("sequences", function()
    it("stays usable through alternating failures and successes", function()
      local t = track({ timeout = 400 })
      local faults = {
        { drop = true }, { status = 200, body = "garbage" }, { delay = 1000 },
        { status = 500, body = "boom" }, { status = 302 }, { status = 200, body_size = 100000 },
      }
      for _, f in ipairs(faults) do
        server.respond(f)
        local res, err = t:identify("x", {})
        assert.is_nil(res)
        assert.is_truthy(err.kind)
        still_works(t)
      end
    end)
  end)
end)
