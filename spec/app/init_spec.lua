-- customerio.APIClient construction: key, regions, URL override, options, and what reaches
-- the wire (auth, user agent, headers, retries, timeouts); the key never shows.
local customerio = require("customerio")
local server = require("support.server")

local KEY = "appkey_789"

describe("customerio.APIClient.new", function()
  before_each(function() server.reset() end)

  it("needs a key", function()
    assert.has_error(function() customerio.APIClient.new() end, "app_api_key is required")
    assert.has_error(function() customerio.APIClient.new("  ") end, "app_api_key is required")
    assert.has_error(function() customerio.APIClient.new(42) end, "app_api_key must be a string")
  end)

  it("uses the US App root by default and the EU one for region eu", function()
    local us = customerio.APIClient.new(KEY)
    assert.are.equal("https://api.customer.io/v1", us.url)
    assert.are.equal("https://api.customer.io/v1/segments", us.client:build("GET", { "segments" }).url)
    for _, region in ipairs({ "eu", "EU", customerio.regions.EU }) do
      local eu = customerio.APIClient.new(KEY, { region = region })
      assert.are.equal("https://api-eu.customer.io/v1", eu.url)
      assert.are.equal(customerio.regions.EU, eu.region)
    end
    assert.are.equal("https://api.customer.io/v1", customerio.APIClient.new(KEY, { region = customerio.regions.US }).url)
  end)

  it("refuses an unknown region or option", function()
    local msg = 'region must be one of customerio.regions.US or customerio.regions.EU (or "us" / "eu")'
    assert.has_error(function() customerio.APIClient.new(KEY, { region = "au" }) end, msg)
    assert.has_error(function() customerio.APIClient.new(KEY, { region = { api = "x" } }) end, msg)
    assert.has_error(function() customerio.APIClient.new(KEY, { regoin = "eu" }) end, "unknown option: regoin")
    assert.has_error(function() customerio.APIClient.new(KEY, "eu") end, "opts must be a table, got string")
    assert.has_error(function() customerio.APIClient.new(KEY, { url = 3 }) end, "url must be a string")
    assert.has_error(function() customerio.APIClient.new(KEY, { url = "ftp://x" }) end,
      "url must be an absolute http or https URL")
  end)

  it("takes url as the App root, overriding the region", function()
    local api = customerio.APIClient.new(KEY, { url = server.url() .. "/v1/", region = "eu" })
    assert.are.equal(server.url() .. "/v1", api.url)
    assert(api:list_segments())
    assert.are.equal("/v1/segments", server.last().path)
  end)

  it("is also callable as customerio.APIClient(key, opts)", function()
    local api = customerio.APIClient(KEY, { url = server.url() .. "/v1" })
    assert(api:list_workspaces())
    assert.are.equal("/v1/workspaces", server.last().path)
  end)

  it("sends Bearer auth, the user agent and extra headers (ours win)", function()
    local api = customerio.APIClient.new(KEY, { url = server.url() .. "/v1",
      headers = { ["X-Team"] = "growth", Authorization = "Basic nope" } })
    assert(api:list_segments())
    local got = server.last()
    assert.are.equal("Bearer " .. KEY, got.headers.authorization)
    assert.are.equal(customerio.user_agent, got.headers["user-agent"])
    assert.are.equal("growth", got.headers["x-team"])
    api = customerio.APIClient.new(KEY, { url = server.url() .. "/v1", user_agent = "my-app/1.0" })
    assert(api:list_segments())
    assert.are.equal("my-app/1.0", server.last().headers["user-agent"])
  end)

  it("retries 5xx with the shared policy and gives up on timeouts", function()
    local api = customerio.APIClient.new(KEY, { url = server.url() .. "/v1",
      retry = { max_retries = 2, min_timeout = 1, max_timeout = 2 } })
    server.respond({ status = 503 })
    server.respond({ body = '{"segments":[]}' })
    local res = assert(api:list_segments())
    assert.are.same({}, res.segments)
    local reqs = server.requests()
    assert.are.equal(2, #reqs)
    assert.are.equal("1", reqs[2].headers["x-retry-count"])

    local slow = customerio.APIClient.new(KEY, { url = server.url() .. "/v1", timeout = 100, retry = false })
    server.respond({ delay = 1000 })
    local r, err = slow:list_segments()
    assert.is_nil(r)
    assert.are.equal("timeout", err.kind)
  end)

  it("never shows the key: tostring, errors, echoed bodies", function()
    local api = customerio.APIClient.new(KEY, { url = server.url() .. "/v1", retry = false })
    assert.is_nil(tostring(api):find(KEY, 1, true))
    assert.are.equal("customerio.APIClient (" .. server.url() .. "/v1)", tostring(api))
    server.respond({ status = 500, body = "upstream said: Authorization: Bearer " .. KEY })
    local res, err = api:get_segment(1)
    assert.is_nil(res)
    assert.are.equal(500, err.status)
    assert.is_nil(tostring(err):find(KEY, 1, true))
    assert.is_nil(err.body:find(KEY, 1, true))
    assert.is_nil(("x" .. err):find(KEY, 1, true))
  end)

  it("exposes the catalogue entry of a method", function()
    local ep = customerio.APIClient.endpoint("get_segment_membership")
    assert.are.equal("GET", ep.method)
    assert.are.equal("getSegmentMembership", ep.node)
    assert.is_true(ep.cursor)
    assert.is_nil(customerio.APIClient.endpoint("send_email"))
  end)
end)
