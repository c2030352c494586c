-- The sandbox over HTTP (customerio.sandbox.server): fault and latency injection for client
-- authors' retry tests, the record of requests with credentials masked, the version pages poll.
local customerio = require("customerio")
local sandbox_http = require("support.sandbox_http")

describe("sandbox server", function()
  local h

  setup(function() h = sandbox_http.start() end)
  teardown(function() if h then h.stop() end end)
  before_each(function()
    h.control("POST", "reset", {})
    h.control("POST", "config", {})
  end)

  local function track(opts)
    opts = opts or {}
    opts.url = h.base .. "/api/v1"
    if opts.retry == nil then opts.retry = false end
    return customerio.TrackClient.new("site", "key", opts)
  end

  local function requests()
    return h.control("GET", "requests").requests
  end

  describe("faults", function()
    it("answers a status count times, then the request goes through: a client's retries succeed", function()
      h.control("POST", "faults", { path = "/api/v1/customers/*", method = "PUT", status = 503, count = 2 })
      local t = track({ retry = { max_retries = 3, min_timeout = 1, max_timeout = 5 } })
      assert(t:identify("ada", { plan = "pro" }))
      local list = requests()
      assert.are.equal(3, #list)
      assert.are.same({ 503, 503, 200 }, { list[1].status, list[2].status, list[3].status })
      assert.are.equal("fault 1", list[1].fault)
      assert.is_nil(list[3].fault)
      local f = h.control("GET", "faults").faults[1]
      assert.are.equal(2, f.hits)
      assert.are.equal(0, f.remaining)
      assert.are.equal("pro", h.control("GET", { "people", "ada" }).person.attributes.plan)
    end)

    it("fails a client without retries with the injected status, body and headers", function()
      h.control("POST", "faults", { path = "/api/v1/customers/ada", status = 429, count = 1,
        headers = { ["Retry-After"] = "7" }, body = { meta = { error = "slow down" } } })
      local res, err = track():identify("ada", {})
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal("slow down", err.message)
      assert.are.equal("7", err.headers["retry-after"] or err.headers["Retry-After"])
      assert(track():identify("ada", {}))
    end)

    it("matches the method and the path pattern only", function()
      h.control("POST", "faults", { path = "/api/v1/customers/*/events", method = "POST", status = 500 })
      assert(track():identify("ada", {}))
      local _, err = track():track("ada", "login")
      assert.are.equal(500, err.status)
      local list = requests()
      assert.are.same({ 200, 500 }, { list[1].status, list[2].status })
    end)

    it("delays a response, then answers it normally", function()
      h.control("POST", "faults", { path = "/api/v1/*", delay = 200, count = 1 })
      assert(track({ timeout = 10000 }):identify("ada", {}))
      local r = requests()[1]
      assert.are.equal(200, r.status)
      assert.is_true(r.ms >= 200)
    end)

    it("delays past a client's timeout", function()
      h.control("POST", "faults", { delay = 1500, count = 1 })
      local res, err = track({ timeout = 300 }):identify("ada", {})
      assert.is_nil(res)
      assert.are.equal("timeout", err.kind)
    end)

    it("drops the connection without an answer (reset)", function()
      h.control("POST", "faults", { reset = true, count = 1 })
      local res, err = track():identify("ada", {})
      assert.is_nil(res)
      assert.is_nil(err.status)
      assert(track():identify("ada", {}))
      assert.are.same({ 444, 200 }, { requests()[1].status, requests()[2].status })
    end)

    it("refuses an invalid fault with a clear error", function()
      local Client = require("customerio.http.client")
      local c = Client.new({ base_url = h.base .. "/__sandbox", retry = false })
      for body, message in pairs({
        [{ status = 503, colour = "red" }] = "unknown fault field colour",
        [{ status = 1000 }] = "status must be an HTTP status",
        [{ delay = -1 }] = "delay must be at least 0",
        [{ status = 500, count = 0 }] = "count must be a positive integer",
        [{ path = "/x" }] = "a fault needs status, delay or reset",
      }) do
        local _, err = c:request("POST", "faults", { body = body })
        assert.are.equal(400, err.status)
        assert.matches(message, err.body, 1, true)
      end
    end)

    it("are removed by DELETE /__sandbox/faults and by reset", function()
      h.control("POST", "faults", { status = 500 })
      h.control("DELETE", "faults")
      assert(track():identify("ada", {}))
      h.control("POST", "faults", { status = 500 })
      h.control("POST", "reset", {})
      assert.are.equal(0, #h.control("GET", "faults").faults)
      assert(track():identify("ada", {}))
    end)
  end)

  describe("requests", function()
    it("records every API request with its credentials masked", function()
      h.control("POST", "config", { site_id = "site-1", api_key = "track-key-secret", app_key = "app-key-secret" })
      local t = customerio.TrackClient.new("site-1", "track-key-secret", { url = h.base .. "/api/v1", retry = false })
      assert(t:identify("ada", { note = "my key is track-key-secret" }))
      local api = customerio.APIClient.new("app-key-secret", { url = h.base .. "/v1", retry = false })
      assert.is_nil(api:get_segment(99))
      local list = requests()
      assert.are.equal(2, #list)
      local r = list[1]
      assert.are.equal("PUT", r.method)
      assert.are.equal("/api/v1/customers/ada", r.path)
      assert.are.equal(200, r.status)
      local text = require("customerio.core").json_encode(list)
      assert.is_nil(text:find("track-key-secret", 1, true))
      assert.is_nil(text:find("app-key-secret", 1, true))
      assert.matches("my key is [REDACTED]", r.body, 1, true)
      local auth = {}
      for _, pair in ipairs(r.headers) do if pair[1]:lower() == "authorization" then auth[1] = pair[2] end end
      for _, pair in ipairs(list[2].headers) do if pair[1]:lower() == "authorization" then auth[2] = pair[2] end end
      assert.are.same({ "Basic site-1:****", "Bearer ****" }, auth)
      assert.are.equal(404, list[2].status)
    end)

    it("bumps the version on every change, so pages know when to refresh", function()
      local v0 = h.control("GET", "version").version
      assert(track():identify("ada", {}))
      local v1 = h.control("GET", "version").version
      assert.is_true(v1 > v0)
      h.control("POST", "segments", { name = "x", manual = true })
      assert.is_true(h.control("GET", "version").version > v1)
    end)
  end)
end)
