-- Safe retries: a call that is not idempotent (a transactional send, a broadcast trigger, a
-- catalogue call that creates something) is replayed only when the request provably did not
-- reach Customer.io's application; Track calls are replayed as before. Each rule against the
-- local test server, counting what it received. Also `err.sent` / `err.stage` / `err.detail`
-- and the one wording of a failure through the curl and async transports.
local customerio = require("customerio")
local async = require("customerio.async")
local Client = require("customerio.http.client")
local server = require("support.server")

local FAST = { max_retries = 3, min_timeout = 1, max_timeout = 5 }
local DEAD = "http://127.0.0.1:1" -- nothing listens on port 1: connection refused

local function retry_opts(extra)
  local r = {}
  for k, v in pairs(FAST) do r[k] = v end
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function api(opts)
  opts = opts or {}
  return customerio.APIClient.new("appkey_789", {
    url = opts.url or (server.url() .. "/v1"), retry = retry_opts(opts.retry), timeout = opts.timeout,
    rate_limit = false, -- not about rate limits (spec/ratelimit_spec.lua is)
  })
end

local function track(opts)
  opts = opts or {}
  return customerio.TrackClient.new("site", "key", {
    url = opts.url or (server.url() .. "/api/v1"), retry = retry_opts(opts.retry), timeout = opts.timeout,
  })
end

local EMAIL = { to = "ada@example.com", transactional_message_id = "reset", identifiers = { id = "42" } }

-- The three calls of the table: path on the server, and how to make the call.
local CALLS = {
  send = { path = "/v1/send/email", idempotent = false,
    run = function(o) return api(o):send_email(EMAIL) end },
  trigger = { path = "/v1/campaigns/7/triggers", idempotent = false,
    run = function(o) return api(o):trigger_broadcast(7, { a = 1 }) end },
  track = { path = "/api/v1/customers/42", idempotent = true,
    run = function(o) return track(o):identify("42", { plan = "pro" }) end },
}

describe("safe retries", function()
  before_each(function() server.reset() end)

  for _, name in ipairs({ "send", "trigger" }) do
    local call = CALLS[name]
    describe(name .. " (not idempotent)", function()
      it("is not replayed when the connection closes after the body was read", function()
        server.respond_many(4, { drop = true, path = call.path })
        local res, err = call.run()
        assert.is_nil(res)
        assert.are.equal("network", err.kind)
        assert.are.equal("unknown", err.sent)
        assert.are.equal("receive", err.stage)
        assert.are.equal(1, err.attempts)
        assert.are.equal(1, #server.requests(call.path))
      end)

      it("is not replayed when it times out after the body was read", function()
        server.respond_many(2, { delay = 1500, path = call.path })
        local res, err = call.run({ timeout = 300 })
        assert.is_nil(res)
        assert.are.equal("timeout", err.kind)
        assert.are.equal("unknown", err.sent)
        assert.are.equal(1, err.attempts)
        assert.are.equal(1, #server.requests(call.path))
      end)

      for _, status in ipairs({ 500, 502, 503, 504 }) do
        it("is not replayed after a " .. status .. " (not documented as unprocessed)", function()
          server.respond_many(4, { status = status, path = call.path })
          local res, err = call.run()
          assert.is_nil(res)
          assert.are.equal(status, err.status)
          assert.are.equal("yes", err.sent)
          assert.is_true(err.retryable) -- transient: the caller may decide to send again
          assert.are.equal(1, err.attempts)
          assert.are.equal(1, #server.requests(call.path))
        end)
      end

      it("is replayed after a 429 with Retry-After", function()
        server.respond({ status = 429, headers = { ["Retry-After"] = "0" }, path = call.path })
        local res, err = call.run()
        assert(res, tostring(err))
        local got = server.requests(call.path)
        assert.are.equal(2, #got)
        assert.are.equal("1", got[2].headers["x-retry-count"])
      end)

      it("is replayed after a 429 without Retry-After", function()
        server.respond({ status = 429, path = call.path })
        local res, err = call.run()
        assert(res, tostring(err))
        assert.are.equal(2, #server.requests(call.path))
      end)

      it("is replayed when the connection is refused (nothing was sent)", function()
        local res, err = call.run({ url = DEAD .. "/v1" })
        assert.is_nil(res)
        assert.are.equal("network", err.kind)
        assert.are.equal("no", err.sent)
        assert.are.equal("connect", err.stage)
        assert.are.equal(1 + FAST.max_retries, err.attempts)
      end)

      it("is replayed like Node with retry.unsafe = true", function()
        server.respond({ drop = true, path = call.path })
        server.respond({ status = 500, path = call.path })
        local res, err = call.run({ retry = { unsafe = true } })
        assert(res, tostring(err))
        assert.are.equal(3, #server.requests(call.path))
      end)
    end)
  end

  describe("track (idempotent)", function()
    local call = CALLS.track
    it("is replayed after a dropped connection, a timeout, a 500 and a 504", function()
      server.respond({ drop = true, path = call.path })
      server.respond({ status = 500, path = call.path })
      server.respond({ status = 504, path = call.path })
      local res, err = call.run()
      assert(res, tostring(err))
      assert.are.equal(4, #server.requests(call.path))
    end)

    it("is replayed after a timeout once the body was read", function()
      server.respond({ delay = 1500, path = call.path })
      local res, err = call.run({ timeout = 300 })
      assert(res, tostring(err))
      assert.are.equal(2, #server.requests(call.path))
    end)

    it("reports sent = \"unknown\" when every attempt failed after sending", function()
      server.respond_many(4, { drop = true, path = call.path })
      local _, err = call.run()
      assert.are.equal("unknown", err.sent)
      assert.are.equal(4, err.attempts)
      assert.are.equal(4, #server.requests(call.path))
    end)

    it("is replayed after 429s with and without Retry-After", function()
      server.respond({ status = 429, headers = { ["Retry-After"] = "0" }, path = call.path })
      server.respond({ status = 429, path = call.path })
      local res, err = call.run()
      assert(res, tostring(err))
      assert.are.equal(3, #server.requests(call.path))
    end)
  end)

  describe("catalogue and raw requests", function()
    it("a catalogue call that creates something is not replayed after a 500", function()
      server.respond_many(4, { status = 500, path = "/v1/segments" })
      local _, err = api():create_segment({ name = "vip" })
      assert.are.equal(500, err.status)
      assert.are.equal(1, #server.requests("/v1/segments"))
    end)

    it("a catalogue read is replayed after a 500", function()
      server.respond({ status = 500, path = "/v1/segments" })
      local res, err = api():list_segments()
      assert(res, tostring(err))
      assert.are.equal(2, #server.requests("/v1/segments"))
    end)

    it("APIClient:request: POST is not replayed unless idempotent = true", function()
      server.respond_many(2, { status = 500, path = "/v1/things" })
      local _, err = api():request("POST", "/things", { body = { a = 1 } })
      assert.are.equal(500, err.status)
      assert.are.equal(1, #server.requests("/v1/things"))
      server.reset()
      server.respond({ status = 500, path = "/v1/things" })
      local res = api():request("POST", "/things", { body = { a = 1 }, idempotent = true })
      assert.is_table(res)
      assert.are.equal(2, #server.requests("/v1/things"))
    end)

    it("refuses a retry.unsafe that is not a boolean and an idempotent that is not", function()
      assert.has_error(function() api({ retry = { unsafe = "yes" } }) end, "retry.unsafe must be a boolean")
      assert.has_error(function() api():request("POST", "/x", { idempotent = 1 }) end,
        "opts.idempotent must be a boolean")
    end)
  end)
end)

describe("transport failures", function()
  before_each(function() server.reset() end)

  it("a refused connection: one wording, the transport's text in detail", function()
    local _, err = Client.new({ base_url = DEAD, retry = false }):request("GET", "/x")
    assert.are.equal("network", err.kind)
    assert.are.equal("could not connect to 127.0.0.1:1", err.message)
    assert.are.equal("customerio network error: could not connect to 127.0.0.1:1", tostring(err))
    assert.is_string(err.detail)
    assert.are.equal("no", err.sent)
  end)

  it("words each failure the same through the curl and the async transports", function()
    local function both(url, respond, timeout)
      local results = {}
      for _, mode in ipairs({ "curl", "async" }) do
        server.reset()
        if respond then server.respond(respond) end
        local c = customerio.TrackClient.new("site", "key", { url = url, retry = false, timeout = timeout })
        if mode == "curl" then
          local _, err = c:identify("1", {})
          results[mode] = err
        else
          local a = async.wrap(c)
          a:identify("1", {}, function(_, e) results[mode] = e end)
          assert.is_true(a:wait(5000))
        end
      end
      assert.are.equal(results.curl.message, results.async.message)
      assert.are.equal(results.curl.sent, results.async.sent)
      assert.are.equal(results.curl.stage, results.async.stage)
      return results.curl
    end
    local refused = both(DEAD .. "/api/v1")
    assert.are.equal("could not connect to 127.0.0.1:1", refused.message)
    local host_port = server.url():match("//([^/]+)")
    local dropped = both(server.url() .. "/api/v1", { drop = true })
    assert.are.equal("the connection to " .. host_port .. " failed before a complete response arrived", dropped.message)
    assert.are.equal("unknown", dropped.sent)
    local slow = both(server.url() .. "/api/v1", { delay = 1500 }, 300)
    assert.are.equal("timed out before a complete response arrived from " .. host_port, slow.message)
    assert.are.equal("unknown", slow.sent)
  end)

  it("an unresolvable host name: stage resolve, nothing sent", function()
    local _, err = Client.new({ base_url = "http://cio-test.invalid", retry = false }):request("GET", "/x")
    assert.are.equal("network", err.kind)
    assert.are.equal("resolve", err.stage)
    assert.are.equal("no", err.sent)
    assert.are.equal("could not resolve the host name cio-test.invalid", err.message)
  end)
end)
