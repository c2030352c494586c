-- No API key, write key, Basic credentials or Authorization value ever shows in an error, in
-- tostring() of a client or of the C core's handle, in the request URL, or in the opt-in
-- debug log (customerio.http.client's `debug` option). Servers and proxies that echo requests back
-- are played by the local test server. See docs/SECURITY.md.
local server = require("support.server")
local customerio = require("customerio")
local Client = require("customerio.http.client")
local core = require("customerio.core")
local errors = require("customerio.errors")

local SITE = "site_secret_test"
local TRACK_KEY = "trk_0f9e8d7c6b5a4f3e2d1c"
local APP_KEY = "app_a1b2c3d4e5f6a7b8c9d0"
local WRITE_KEY = "wk_9z8y7x6w5v4u3t2s1r0q"
local TRACK_CRED = core.base64_encode(SITE .. ":" .. TRACK_KEY)
local WRITE_CRED = core.base64_encode(WRITE_KEY .. ":")

-- Every string that must never leak, per client kind.
local SECRETS = {
  track = { TRACK_KEY, TRACK_CRED, "Basic " .. TRACK_CRED },
  app = { APP_KEY, "Bearer " .. APP_KEY },
  pipelines = { WRITE_KEY, WRITE_CRED, "Basic " .. WRITE_CRED },
}
local ALL = {}
for _, list in pairs(SECRETS) do
  for _, s in ipairs(list) do ALL[#ALL + 1] = s end
end

local function assert_clean(text, what)
  text = tostring(text)
  for _, s in ipairs(ALL) do
    assert.is_nil(text:find(s, 1, true), (what or "text") .. " leaks " .. s .. ": " .. text:sub(1, 300))
  end
end

-- Every string in a value, keys included, walked to any depth.
local function all_text(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then
    out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, item in pairs(v) do
      all_text(k, out, seen)
      all_text(item, out, seen)
    end
  end
  return out
end

-- No prefix of a secret of 4 bytes or more (errors.PARTIAL_SECRET_BYTES) is in the text.
local function assert_no_partial(text, what)
  for _, s in ipairs(ALL) do
    for n = errors.PARTIAL_SECRET_BYTES, #s do
      assert.is_nil(text:find(s:sub(1, n), 1, true), (what or "text") .. " leaks " .. n .. " bytes of " .. s
        .. ": " .. text)
    end
  end
end

-- Every text an error carries: every field at any depth (message, body, url, reason,
-- errors[]...), headers, tostring and concatenation.
local function assert_clean_error(err, what)
  assert.is_true(errors.is(err), what .. ": not an error object")
  local parts = all_text(err)
  parts[#parts + 1] = tostring(err)
  parts[#parts + 1] = "x" .. err
  assert_clean(table.concat(parts, "\n"), what)
end

local function new(kind, opts)
  opts = opts or {}
  if opts.retry == nil then opts.retry = false end
  if kind == "track" then
    opts.url = opts.url or (server.url() .. "/api/v1")
    return customerio.TrackClient.new(SITE, TRACK_KEY, opts)
  elseif kind == "app" then
    opts.url = opts.url or (server.url() .. "/v1")
    return customerio.APIClient.new(APP_KEY, opts)
  end
  opts.url = opts.url or (server.url() .. "/v1")
  return customerio.PipelinesClient.new(WRITE_KEY, opts)
end

-- One representative call per client kind.
local function call(kind, c)
  if kind == "track" then return c:identify("42", { email = "ada@example.com" }) end
  if kind == "app" then
    return c:send_email({ to = "ada@example.com", transactional_message_id = "1", identifiers = { id = "42" } })
  end
  return c:identify({ userId = "42", traits = { email = "ada@example.com" } })
end

-- What a server echoing the request back would answer.
local function echo_body(kind)
  local s = SECRETS[kind]
  return '{"meta":{"error":"invalid credentials ' .. s[#s] .. ' for key ' .. s[1] .. '"}}'
end

describe("secrets", function()
  before_each(function() server.reset() end)

  for _, kind in ipairs({ "track", "app", "pipelines" }) do
    describe(kind .. " client", function()
      it("sends credentials in the Authorization header only, never in the URL", function()
        local c = new(kind)
        assert(call(kind, c))
        local got = server.last()
        assert.are.equal(SECRETS[kind][#SECRETS[kind]], got.headers["authorization"])
        assert_clean(got.path, "request path")
        for k, v in pairs(got.headers) do
          if k ~= "authorization" then assert_clean(v, "header " .. k) end
        end
      end)

      it("keeps them out of tostring() of the client, its request context and its handle", function()
        local c = new(kind)
        assert_clean(tostring(c), "tostring(client)")
        assert_clean(tostring(c.client), "tostring(client.client)")
        assert_clean(tostring(c.client.transport), "tostring(transport)")
        if c.client.transport.handle then
          assert.matches("^customerio%.http", tostring(c.client.transport.handle))
          assert_clean(tostring(c.client.transport.handle), "tostring(handle)")
        end
      end)

      it("redacts them from an http error when the server echoes them back", function()
        local c = new(kind)
        local s = SECRETS[kind]
        server.respond({ status = 401, body = echo_body(kind),
          headers = { ["X-Echo-Authorization"] = s[#s], ["WWW-Authenticate"] = 'Basic realm="' .. s[1] .. '"' } })
        local res, err = call(kind, c)
        assert.is_nil(res)
        assert.are.equal(401, err.status)
        assert.matches("[REDACTED]", err.message, 1, true)
        assert.matches("[REDACTED]", err.headers["x-echo-authorization"], 1, true)
        assert_clean_error(err, kind .. " 401")
      end)

      it("redacts them from a json error (a 200 that is not JSON echoes the key)", function()
        local c = new(kind)
        server.respond({ status = 200, body = "<html>key=" .. SECRETS[kind][1] .. "</html>" })
        local _, err = call(kind, c)
        assert.are.equal("json", err.kind)
        assert_clean_error(err, kind .. " json")
      end)

      -- The message shows 500 bytes of a non-JSON error body: redaction comes before the cut,
      -- so a key straddling it cannot survive in part, whichever byte the cut falls on.
      it("redacts before cutting an error message (500 bytes), at every cut position", function()
        local c = new(kind)
        local s = SECRETS[kind]
        for _, secret in ipairs(s) do
          for at = 500 - #secret, 500 do
            server.respond({ status = 400, body = string.rep("x", at - 1) .. secret .. " tail" })
            local _, err = call(kind, c)
            assert.are.equal(400, err.status)
            assert_clean_error(err, kind .. " 400 cut")
            assert_no_partial(err.message, kind .. " message cut at " .. at)
          end
        end
      end)

      it("redacts before cutting the body shown in a json error (200 bytes)", function()
        local c = new(kind)
        for _, secret in ipairs(SECRETS[kind]) do
          for _, at in ipairs({ 200 - #secret, 196, 199, 200 }) do
            server.respond({ status = 200, body = "<" .. string.rep("x", at - 2) .. secret .. "</html>" })
            local _, err = call(kind, c)
            assert.are.equal("json", err.kind)
            assert_clean_error(err, kind .. " json cut")
            assert_no_partial(err.message, kind .. " json message cut at " .. at)
          end
        end
      end)

      it("redacts them from a retried 5xx error", function()
        -- unsafe: a send is otherwise not replayed after a 5xx
        local c = new(kind, { retry = { max_retries = 2, min_timeout = 1, max_timeout = 2, unsafe = true } })
        server.respond_many(3, { status = 503, body = echo_body(kind) })
        local _, err = call(kind, c)
        assert.are.equal(3, err.attempts)
        assert_clean_error(err, kind .. " 503")
      end)

      it("redacts them from a redirect error and from the URL a redirect led to", function()
        local c = new(kind)
        server.respond({ status = 302, redirect = server.url() .. "/echo?key=" .. SECRETS[kind][1] })
        server.respond({ status = 302, body = echo_body(kind) })
        local _, err = call(kind, c)
        assert.are.equal("redirect", err.kind)
        assert_clean_error(err, kind .. " redirect")
      end)

      it("keeps them out of timeout, network and TLS errors", function()
        local c = new(kind, { timeout = 200 })
        server.respond({ delay = 800 })
        local _, err = call(kind, c)
        assert.are.equal("timeout", err.kind)
        assert_clean_error(err, kind .. " timeout")
        local prefix = kind == "track" and "/api/v1" or "/v1"
        _, err = call(kind, new(kind, { url = "http://127.0.0.1:1" .. prefix }))
        assert.are.equal("network", err.kind)
        assert_clean_error(err, kind .. " network")
        _, err = call(kind, new(kind, { url = server.tls_wrong_host_url() .. prefix, ca_file = server.ca_file() }))
        assert.are.equal("tls", err.kind)
        assert_clean_error(err, kind .. " tls")
      end)

      it("logs requests through the debug hook with credentials redacted, never bodies", function()
        local lines = {}
        local c = new(kind, { debug = function(line) lines[#lines + 1] = line end,
          headers = { ["X-Api-Key"] = "user-extra-key-123456" } })
        assert(call(kind, c))
        server.respond({ status = 401, body = echo_body(kind) })
        assert.is_nil((call(kind, c)))
        local text = table.concat(lines, "\n")
        assert_clean(text, "debug log")
        assert.matches("\n>   Authorization: [REDACTED]\n", text, 1, true)
        assert.matches(">   X%-Api%-Key: %[REDACTED%]", text)
        assert.is_nil(text:find("user-extra-key-123456", 1, true))
        assert.matches("^> [A-Z]+ http://127%.0%.0%.1:%d+/", lines[1])
        assert.matches("\n< 200 [A-Z]+ http://[^\n]* in %d+ ms %(%d+ bytes%)", text)
        assert.matches("\n< 401 [A-Z]+ http://", text)
        assert.is_nil(text:find("ada@example.com", 1, true), "a body reached the log")
      end)
    end)
  end

  describe("cutting and partial secrets (errors.cut)", function()
    it("never leaves 4 or more bytes of a secret's start at the cut", function()
      for _, secret in ipairs(ALL) do
        local text = "error near " .. secret .. " and more"
        for max = 1, #text do
          local cut = errors.cut(text, max, ALL)
          assert_clean(cut, "cut at " .. max)
          assert_no_partial(cut, "cut at " .. max)
        end
      end
    end)

    it("masks a partial secret at the end of text someone else cut ('...')", function()
      local partial = "auth was " .. TRACK_CRED:sub(1, 9) .. "..."
      assert.are.equal("auth was [REDACTED]...", errors.redact_text(partial, { TRACK_CRED }))
      -- ... but leaves three bytes, and text that was not cut, alone.
      assert.are.equal("x " .. TRACK_CRED:sub(1, 3) .. "...", errors.redact_text("x " .. TRACK_CRED:sub(1, 3) .. "...",
        { TRACK_CRED }))
      assert.are.equal("x " .. TRACK_CRED:sub(1, 9), errors.redact_text("x " .. TRACK_CRED:sub(1, 9), { TRACK_CRED }))
    end)

    it("redacts JSON-escaped secrets (/ as \\/) and secrets in keys", function()
      local secret = "abc/def+ghi=="
      local e = errors.redact(errors.new({ kind = "http", body = '{"a":"abc\\/def+ghi=="}',
        errors = { { reason = secret, [secret] = 1 } } }), { secret })
      assert.are.equal('{"a":"[REDACTED]"}', e.body)
      assert.are.equal("[REDACTED]", e.errors[1].reason)
      assert.are.equal(1, e.errors[1]["[REDACTED]"])
    end)
  end)

  describe("207 partial failures that echo the request", function()
    local function echo_207()
      local cred = "Basic " .. TRACK_CRED
      return '{"errors":[{"batch_index":0,"reason":"bad auth ' .. cred .. '","field":"' .. TRACK_KEY ..
        '","message":"header was ' .. cred .. '","echo":{"authorization":"' .. cred .. '"}}]}'
    end

    it("redacts reason, field, message and errors[] in a queue report", function()
      server.respond({ status = 207, body = echo_207() })
      local reports = {}
      local q = customerio.Queue.new(new("track"), { flush_interval = 60000,
        on_error = function(_, err) reports[#reports + 1] = err end })
      assert.is_true(q:identify("42", { a = 1 }))
      local flushed, flush_err = q:flush(5000) -- the operation was rejected: flush says so
      assert.is_nil(flushed)
      assert.are.equal("failed", flush_err.kind)
      assert_clean_error(flush_err, "queue flush")
      q:close()
      assert.are.equal(1, #reports)
      local err = reports[1]
      assert.are.equal(207, err.status)
      assert.matches("[REDACTED]", err.reason, 1, true)
      assert.matches("[REDACTED]", err.errors[1].echo.authorization, 1, true)
      assert_clean_error(err, "queue 207")
    end)

    it("redacts a queue report of a failed batch, message and body", function()
      server.respond({ status = 400, body = string.rep("x", 497) .. "Basic " .. TRACK_CRED })
      local reports = {}
      local q = customerio.Queue.new(new("track"), { flush_interval = 60000,
        on_error = function(_, err) reports[#reports + 1] = err end })
      assert.is_true(q:identify("42", { a = 1 }))
      q:flush(5000)
      q:close()
      assert.are.equal(1, #reports)
      assert_clean_error(reports[1], "queue 400")
      assert_no_partial(reports[1].message, "queue 400 message")
    end)

    it("redacts TrackClient:batch's errors and failed", function()
      server.respond({ status = 207, body = echo_207() })
      local t = new("track")
      local res = assert(t:batch({ { type = "person", action = "identify", identifiers = { id = "42" } } }))
      assert.are.equal(1, #res.failed)
      assert_clean(table.concat(all_text(res.errors), "\n"), "batch errors")
      assert_clean(table.concat(all_text({ res.failed[1].reason, res.failed[1].message, res.failed[1].field }), "\n"),
        "batch failed")
    end)
  end)

  describe("debug hook", function()
    it("logs failures with their kind and timing", function()
      local lines = {}
      local c = new("track", { url = "http://127.0.0.1:1/api/v1", debug = function(l) lines[#lines + 1] = l end })
      assert.is_nil((c:identify("42", {})))
      assert.matches("\n< failed PUT http://127%.0%.0%.1:1/api/v1/customers/42 in %d+ ms: network: ",
        table.concat(lines, "\n"))
    end)

    it("logs every attempt of a retried call", function()
      local lines = {}
      local c = new("track", { retry = { max_retries = 1, min_timeout = 1, max_timeout = 2 },
        debug = function(l) lines[#lines + 1] = l end })
      server.respond({ status = 500 })
      assert(c:identify("42", {}))
      local text = table.concat(lines, "\n")
      assert.matches("\n< 500 PUT ", text)
      assert.matches(" attempt 2\n", text)
      assert.matches(">   X%-Retry%-Count: 1", text)
      assert_clean(text, "debug log")
    end)

    it("cannot break a request by raising", function()
      local c = new("track", { debug = function() error("logger down") end })
      assert(c:identify("42", {}))
    end)

    it("must be a function", function()
      assert.has_error(function() new("track", { debug = true }) end, "debug must be a function")
      assert.has_error(function() Client.new({ base_url = server.url(), debug = "yes" }) end, "debug must be a function")
    end)

    it("is off by default", function()
      local c = new("app")
      assert.is_nil(c.client.debug)
    end)
  end)

  describe("raised argument errors", function()
    it("name the header, not its value", function()
      local ok, err = pcall(customerio.APIClient.new, APP_KEY .. "\r\nX-Injected: 1")
      assert.is_false(ok)
      assert.are.equal("auth: header Authorization contains CR, LF or NUL", err)
      ok, err = pcall(customerio.TrackClient.new, SITE, TRACK_KEY, { headers = { ["X-Key"] = TRACK_KEY .. "\n" } })
      assert.is_false(ok)
      assert_clean(err, "raised error")
    end)

    it("from the C handle do not repeat header values", function()
      local h = core.http_new()
      local ok, err = pcall(h.perform, h, "GET", server.url() .. "/x", { Authorization = "Bearer " .. APP_KEY .. "\n" })
      assert.is_false(ok)
      assert_clean(err, "C error")
      h:close()
      assert.are.equal("customerio.http (closed)", tostring(h))
    end)

    it("errors.redact_text removes every occurrence, ignoring short secrets", function()
      assert.are.equal("a [REDACTED] b [REDACTED]", errors.redact_text("a " .. APP_KEY .. " b " .. APP_KEY, { APP_KEY }))
      assert.are.equal("abc", errors.redact_text("abc", { "b", "" }))
    end)
  end)
end)
