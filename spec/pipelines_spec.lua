-- customerio.PipelinesClient against the local test server: every `cdp.*` capture of
-- customerio-node 5.2.0, the envelope (messageId, timestamp, context.library), strict mode,
-- regions, validation and limits.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")
local conformance = require("support.conformance")

local unpack = table.unpack or unpack -- luacheck: ignore 143

local WRITE_KEY = "writekey_abc"
local LIBRARY = { name = "customerio-lua", version = customerio.version }

local function new_cdp(opts)
  opts = opts or {}
  if opts.url == nil then opts.url = server.url() .. "/v1" end
  if opts.retry == nil then opts.retry = { min_timeout = 1, max_timeout = 5 } end
  return customerio.PipelinesClient.new(WRITE_KEY, opts)
end

local function is_uuid4(s)
  return type(s) == "string"
    and s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function is_iso_ms(s)
  return type(s) == "string" and s:find("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$") ~= nil
end

local function refusal(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

-- Captures of Node's client: all of them must have a spec here.
local expect = { ["cdp.identify"] = true, ["cdp.track"] = true, ["cdp.batch"] = true }

-- Our body with context.library checked (ours) and replaced by Node's, for the comparison.
local function with_node_library(case, got)
  local body = assert(core.json_decode(got.body))
  local items, node_items = { body }, { case.body }
  if body.batch then items, node_items = body.batch, case.body.batch end
  for i, item in ipairs(items) do
    assert.are.same(LIBRARY, item.context.library)
    item.context.library = node_items[i].context.library
  end
  return { method = got.method, path = got.path, headers = got.headers, body = core.json_encode(body) }
end

describe("customerio.PipelinesClient", function()
  before_each(function() server.reset() end)

  describe("matches customerio-node 5.2.0 on the wire", function()
    it("has a spec for every cdp.* capture", function()
      local labels = conformance.labels("cdp.")
      assert.is_true(#labels > 0)
      for _, label in ipairs(labels) do assert(expect[label], "no spec for capture " .. label) end
      for label in pairs(expect) do conformance.case(label) end
    end)

    for _, label in ipairs(conformance.labels("cdp.")) do
      it(label, function()
        local case = conformance.case(label)
        local cdp = new_cdp()
        local method = case.sdk_method:match("%.([%w_]+)$")
        local args, n = conformance.args(case)
        assert(cdp[method](cdp, unpack(args, 1, n)))
        local got = server.last()
        conformance.assert_match(case, with_node_library(case, got))
        assert.are.equal(customerio.user_agent, got.headers["user-agent"])
        assert.is_nil(got.headers["x-strict-mode"])
      end)
    end
  end)

  describe("envelope", function()
    it("fills messageId (UUID v4), timestamp (ISO-8601, ms, now) and context.library", function()
      local cdp = new_cdp()
      local payload = { userId = "1", event = "Ping" }
      assert(cdp:track(payload))
      local body = server.last().json
      assert.is_true(is_uuid4(body.messageId), body.messageId)
      assert.is_true(is_iso_ms(body.timestamp), body.timestamp)
      assert.is_true(math.abs(customerio.timestamp(body.timestamp) - os.time()) < 60)
      assert.are.same({ library = LIBRARY }, body.context)
      assert.are.same({ userId = "1", event = "Ping" }, payload)
      assert(cdp:track(payload))
      assert.are_not.equal(body.messageId, server.last().json.messageId)
    end)

    it("keeps the same messageId on every retry of one call", function()
      local cdp = new_cdp()
      server.respond({ status = 503 })
      assert(cdp:identify({ userId = "1" }))
      local reqs = server.requests()
      assert.are.equal(2, #reqs)
      assert.are.equal(reqs[1].json.messageId, reqs[2].json.messageId)
      assert.are.equal(reqs[1].json.timestamp, reqs[2].json.timestamp)
    end)

    it("merges default_context under each call's context; the call wins", function()
      local cdp = new_cdp({ default_context = { ip = "10.0.0.1", locale = "en-US", library = { name = "x" } } })
      assert(cdp:identify({ userId = "1", context = { locale = "de-DE" } }))
      assert.are.same({ ip = "10.0.0.1", locale = "de-DE", library = LIBRARY }, server.last().json.context)
      assert(cdp:identify({ userId = "1", context = { library = { name = "mine", version = "1" } } }))
      assert.are.same({ ip = "10.0.0.1", locale = "en-US", library = { name = "mine", version = "1" } },
        server.last().json.context)
    end)

    it("converts a timestamp given in seconds or as a date table; strings are sent as they are", function()
      local cdp = new_cdp()
      assert(cdp:page({ anonymousId = "a", timestamp = 1700000000 }))
      assert.are.equal("2023-11-14T22:13:20.000Z", server.last().json.timestamp)
      assert(cdp:page({ anonymousId = "a", timestamp = "2023-11-14T22:13:20+01:00" }))
      assert.are.equal("2023-11-14T22:13:20+01:00", server.last().json.timestamp)
      assert.are.equal("timestamp 1700000000000 looks like milliseconds; Customer.io expects seconds since the Unix epoch"
        .. " (divide by 1000)", refusal(cdp.page, cdp, { anonymousId = "a", timestamp = 1700000000000 }))
    end)

    it("gives each batch item its envelope and keeps its type", function()
      local cdp = new_cdp()
      assert(cdp:batch({
        { type = "identify", userId = "1", traits = { plan = "pro" } },
        { type = "group", userId = "1", groupId = "g1", messageId = "m2" },
        { type = "alias", userId = "1", previousId = "anon" },
      }))
      local got = server.last()
      assert.are.equal("/v1/batch", got.path)
      local b = got.json.batch
      assert.are.equal(3, #b)
      assert.are.equal("identify", b[1].type)
      assert.is_true(is_uuid4(b[1].messageId))
      assert.are.equal("m2", b[2].messageId)
      assert.are.equal("g1", b[2].groupId)
      assert.are.same({ library = LIBRARY }, b[3].context)
      assert.is_true(is_iso_ms(b[3].timestamp))
    end)
  end)

  describe("calls", function()
    it("posts each kind to its path with Basic auth of the write key", function()
      local cdp = new_cdp()
      local calls = {
        { "identify", { userId = "1", traits = { a = 1 } } },
        { "track", { anonymousId = "a", event = "E", properties = { p = 1 } } },
        { "page", { userId = "1", name = "Pricing" } },
        { "screen", { userId = "1", name = "Home" } },
        { "group", { userId = "1", groupId = "g", traits = { n = "Acme" } } },
        { "alias", { userId = "1", previousId = "a" } },
      }
      for _, c in ipairs(calls) do
        assert(cdp[c[1]](cdp, c[2]))
        local got = server.last()
        assert.are.equal("POST", got.method)
        assert.are.equal("/v1/" .. c[1], got.path)
        assert.are.equal("Basic d3JpdGVrZXlfYWJjOg==", got.headers.authorization)
        assert.are.equal("application/json", got.headers["content-type"])
        for k, v in pairs(c[2]) do assert.are.same(v, got.json[k]) end
      end
    end)

    it("sends X-Strict-Mode: 1 in strict mode", function()
      local cdp = new_cdp({ strict_mode = true, headers = { ["X-Extra"] = "y" } })
      assert(cdp:identify({ userId = "1" }))
      assert.are.equal("1", server.last().headers["x-strict-mode"])
      assert.are.equal("y", server.last().headers["x-extra"])
    end)

    it("returns errors as nil, err and never shows the write key", function()
      local cdp = new_cdp({ strict_mode = true, retry = false })
      server.respond({ status = 400, body = '{"error":"bad payload for writekey_abc"}' })
      local r, err = cdp:track({ userId = "1", event = "E" })
      assert.is_nil(r)
      assert.are.equal(400, err.status)
      assert.is_nil(tostring(err):find(WRITE_KEY, 1, true))
      assert.is_nil(tostring(cdp):find(WRITE_KEY, 1, true))
    end)

    it("uses the region's host, or the url override", function()
      local seen
      local transport = { send = function(_, req) seen = req; return { status = 200, headers = {}, body = "{}" } end }
      local us = customerio.PipelinesClient.new(WRITE_KEY, { transport = transport })
      assert(us:track({ userId = "1", event = "E" }))
      assert.are.equal("https://cdp.customer.io/v1/track", seen.url)
      local eu = customerio.PipelinesClient.new(WRITE_KEY, { transport = transport, region = customerio.regions.EU })
      assert(eu:alias({ userId = "1", previousId = "2" }))
      assert.are.equal("https://cdp-eu.customer.io/v1/alias", seen.url)
      local custom = customerio.PipelinesClient.new(WRITE_KEY, { transport = transport, url = "http://proxy.local/cdp/v1/" })
      assert(custom:batch({ { type = "screen", userId = "1" } }))
      assert.are.equal("http://proxy.local/cdp/v1/batch", seen.url)
    end)
  end)

  describe("validation (nothing is sent)", function()
    local big = string.rep("x", 32 * 1024)
    local cases = {
      { "identify without ids", function(c) c:identify({ traits = {} }) end, "userId or anonymousId is required" },
      { "identify without payload", function(c) c:identify() end, "userId or anonymousId is required" },
      { "identify with a blank userId", function(c) c:identify({ userId = " " }) end, "userId or anonymousId is required" },
      { "track without ids", function(c) c:track({ event = "E" }) end, "userId or anonymousId is required" },
      { "track without event", function(c) c:track({ userId = "1" }) end, "event is required" },
      { "page without ids", function(c) c:page({ name = "P" }) end, "userId or anonymousId is required" },
      { "screen without ids", function(c) c:screen({}) end, "userId or anonymousId is required" },
      { "group without ids", function(c) c:group({ groupId = "g" }) end, "userId or anonymousId is required" },
      { "group without groupId", function(c) c:group({ anonymousId = "a" }) end, "groupId is required" },
      { "alias without userId", function(c) c:alias({ previousId = "p", anonymousId = "a" }) end, "userId is required" },
      { "alias without previousId", function(c) c:alias({ userId = "1" }) end, "previousId is required" },
      { "a payload that is not a table", function(c) c:identify("1") end, "payload must be a table, got string" },
      { "a context that is not a table", function(c) c:identify({ userId = "1", context = "x" }) end,
        "context must be a table" },
      { "batch without items", function(c) c:batch() end, "items is required" },
      { "batch with no items", function(c) c:batch({}) end, "items is required" },
      { "batch item without type", function(c) c:batch({ { userId = "1" } }) end,
        'items[1].type must be one of "identify", "track", "page", "screen", "group" or "alias"' },
      { "batch item with an unknown type", function(c) c:batch({ { type = "identify", userId = "1" }, { type = "x" } }) end,
        'items[2].type must be one of "identify", "track", "page", "screen", "group" or "alias"' },
      { "batch item without event", function(c) c:batch({ { type = "track", userId = "1" } }) end,
        "items[1].event is required" },
      { "batch item without ids", function(c) c:batch({ { type = "page" } }) end,
        "items[1].userId or anonymousId is required" },
      { "batch item that is not a table", function(c) c:batch({ "x" }) end, "items[1] must be a table, got string" },
      { "a call over 32 KB", function(c) c:track({ userId = "1", event = "E", properties = { big = big } }) end,
        "^payload is more than 32768 bytes as JSON; the limit is 32768 bytes$" },
      { "a batch item over 32 KB", function(c) c:batch({ { type = "identify", userId = "1", traits = { big = big } } }) end,
        "^items%[1%] is more than 32768 bytes as JSON; the limit is 32768 bytes$" },
      { "a batch over 500 KB", function(c)
          local items = {}
          for i = 1, 20 do
            items[i] = { type = "track", userId = "1", event = "E", properties = { b = string.rep("x", 30000) } }
          end
          c:batch(items)
        end, "^the batch is more than 512000 bytes as JSON at items%[%d+%]; the limit is 512000 bytes$" },
    }
    for _, c in ipairs(cases) do
      it("refuses " .. c[1], function()
        local err = refusal(c[2], new_cdp())
        if c[3]:sub(1, 1) == "^" then
          assert.is_truthy(err:find(c[3]), err)
        else
          assert.are.equal(c[3], err)
        end
        assert.are.equal(0, server.count())
      end)
    end

    it("refuses a missing write key, an unknown region or option", function()
      local new = customerio.PipelinesClient.new
      assert.are.equal("write_key is required", refusal(new, nil))
      assert.are.equal("write_key is required", refusal(new, ""))
      assert.are.equal('region must be one of customerio.regions.US or customerio.regions.EU (or "us" / "eu")',
        refusal(new, WRITE_KEY, { region = "asia" }))
      assert.are.equal("unknown option: strictMode", refusal(new, WRITE_KEY, { strictMode = true }))
      assert.are.equal("default_context must be a table, got string", refusal(new, WRITE_KEY, { default_context = "x" }))
    end)
  end)
end)
