-- customerio.TrackClient against the local test server: every `track.*` capture of
-- customerio-node 5.2.0 (spec/fixtures/node-wire.jsonl), the event ids we add, the forms
-- beyond Node, v2 entity/batch (207 partial failures), regions and URL overrides, errors.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")
local conformance = require("support.conformance")

local unpack = table.unpack or unpack -- luacheck: ignore 143

local SITE_ID, API_KEY = "site_123", "trackkey_456"
local RETRY = { min_timeout = 1, max_timeout = 5 }

local function new_track(opts)
  opts = opts or {}
  if opts.url == nil then opts.url = server.url() .. "/api/v1" end
  if opts.retry == nil then opts.retry = RETRY end
  return customerio.TrackClient.new(SITE_ID, API_KEY, opts)
end

local function is_ulid(s)
  return type(s) == "string" and #s == 26 and s:find("^[0-9A-HJKMNP-TV-Z]+$") ~= nil
end

-- Per capture: which ids we add (`id = "top"` for a v1 event body, `batch = {i, ...}` for
-- batch items), and client options.
local expect = {
  ["track.identify.basic"] = {},
  ["track.identify.rich_attributes"] = {},
  ["track.identify.no_data"] = {},
  ["track.identify.email_as_id"] = {},
  ["track.identify.id_needs_encoding"] = {},
  ["track.identify.id_numeric"] = {},
  ["track.identify.id_cio_prefixed"] = {},
  ["track.identify.via_region_object"] = { opts = { region = customerio.regions.US } },
  ["track.destroy.basic"] = {},
  ["track.destroy.id_needs_encoding"] = {},
  ["track.suppress.basic"] = {},
  ["track.suppress.email_id"] = {},
  ["track.unsuppress.basic"] = {},
  ["track.track.with_data"] = { id = "top" },
  ["track.track.with_timestamp"] = { id = "top" },
  ["track.track.name_only"] = { id = "top" },
  ["track.track.with_type_and_id"] = {},      -- the caller's id is kept
  ["track.track.id_needs_encoding"] = { id = "top" },
  ["track.trackAnonymous.with_anonymous_id"] = { id = "top" },
  ["track.trackAnonymous.with_anonymous_id_and_timestamp"] = { id = "top" },
  ["track.trackAnonymous.caller_sets_anonymous_id_in_data"] = { id = "top" },
  ["track.trackAnonymous.without_anonymous_id_invite"] = { id = "top" },
  ["track.trackPageView.basic"] = { id = "top" },
  ["track.trackPush.full"] = {},
  ["track.trackPush.empty"] = {},
  ["track.addDevice.ios_minimal"] = {},
  ["track.addDevice.android_attributes_and_last_used"] = {},
  ["track.addDevice.ios_last_used_only"] = {},
  ["track.addDevice.android_attributes_only"] = {},
  ["track.addDevice.id_needs_encoding"] = {},
  ["track.deleteDevice.basic"] = {},
  ["track.deleteDevice.ids_need_encoding"] = {},
  ["track.mergeCustomers.id_id"] = {},
  ["track.mergeCustomers.id_email"] = {},
  ["track.mergeCustomers.email_cio_id"] = {},
  ["track.mergeCustomers.cio_id_id"] = {},
  ["track.batch.mixed"] = { batch = { 2 } },
  ["track.entity.identify_person"] = {},
  ["track.getAccountRegion"] = {},
  ["track.addCustomersToSegment.default_id_type"] = {},
  ["track.addCustomersToSegment.email_id_type"] = {},
  ["track.removeCustomersFromSegment.default_id_type"] = {},
  ["track.submitForm.basic"] = {},
  ["track.reportMetric.basic"] = {},
  ["track.unsubscribe.default_true"] = {},
  ["track.unsubscribe.false"] = {},
}

-- Node's method name in snake_case: trackAnonymous -> track_anonymous.
local function snake(name)
  return (name:gsub("%u", function(c) return "_" .. c:lower() end))
end

-- Call the method a capture names, with its arguments, on a new client.
local function run_case(case, opts)
  local track = new_track(opts)
  local method = snake(case.sdk_method:match("%.([%w_]+)$"))
  assert(type(track[method]) == "function", "no method " .. method)
  local args, n = conformance.args(case)
  local result, err = track[method](track, unpack(args, 1, n))
  assert(result, tostring(err))
  return server.last(), result
end

-- The recorded request with the ids we added checked (ULIDs) and removed.
local function without_added_ids(case, got, want)
  if got.body == "" then return got end
  local body = assert(core.json_decode(got.body))
  if want.id == "top" then
    assert(is_ulid(body.id), case.label .. ": expected an added ULID id, got " .. tostring(body.id))
    body.id = nil
  end
  for _, i in ipairs(want.batch or {}) do
    assert(is_ulid(body.batch[i].id), case.label .. ": expected an id on batch item " .. i)
    body.batch[i].id = nil
  end
  return { method = got.method, path = got.path, headers = got.headers, body = core.json_encode(body) }
end

describe("customerio.TrackClient", function()
  before_each(function() server.reset() end)

  describe("matches customerio-node 5.2.0 on the wire", function()
    it("has a spec for every track.* capture", function()
      local labels = conformance.labels("track.")
      assert.is_true(#labels > 0)
      for _, label in ipairs(labels) do
        assert(expect[label], "no spec for capture " .. label)
      end
      for label in pairs(expect) do conformance.case(label) end
    end)

    for _, label in ipairs(conformance.labels("track.")) do
      local want = expect[label] or {}
      it(label, function()
        local case = conformance.case(label)
        local got = run_case(case, want.opts)
        conformance.assert_match(case, without_added_ids(case, got, want))
        assert.are.equal(customerio.user_agent, got.headers["user-agent"])
      end)

      it(label .. " (event_ids = false: exactly Node's body)", function()
        local case = conformance.case(label)
        local opts = { event_ids = false }
        for k, v in pairs(want.opts or {}) do opts[k] = v end
        conformance.assert_match(case, (run_case(case, opts)))
      end)
    end
  end)

  describe("event ids", function()
    it("keeps an id the caller gave, in either form", function()
      local track = new_track()
      assert(track:track("c1", { name = "a", id = "01HZX5R8T3ABCDEF0123456789" }))
      assert.are.equal("01HZX5R8T3ABCDEF0123456789", server.last().json.id)
      assert(track:track("c1", "a", nil, { id = "my-id" }))
      assert.are.equal("my-id", server.last().json.id)
    end)

    it("gives each event a new ULID and leaves the caller's table alone", function()
      local track = new_track()
      local data = { name = "a" }
      assert(track:track("c1", data))
      local first = server.last().json.id
      assert(track:track("c1", data))
      local second = server.last().json.id
      assert.is_true(is_ulid(first) and is_ulid(second))
      assert.are_not.equal(first, second)
      assert.is_nil(data.id)
    end)

    it("sends the same id on every retry of one call, so Customer.io counts the event once", function()
      local track = new_track()
      server.respond({ status = 500 })
      server.respond({ status = 503 })
      assert(track:track("c1", "purchase", { price = 1 }))
      local reqs = server.requests()
      assert.are.equal(3, #reqs)
      assert.is_true(is_ulid(reqs[1].json.id))
      assert.are.equal(reqs[1].json.id, reqs[2].json.id)
      assert.are.equal(reqs[1].json.id, reqs[3].json.id)
      assert.are.equal("2", reqs[3].headers["x-retry-count"])
    end)

    it("adds ids to v2 event, page and screen operations, not to others", function()
      local track = new_track()
      local ops = {
        { type = "person", action = "event", identifiers = { id = "1" }, name = "a" },
        { type = "person", action = "page", identifiers = { id = "1" }, name = "/x" },
        { type = "person", action = "screen", identifiers = { id = "1" }, name = "Home" },
        { type = "person", action = "identify", identifiers = { id = "1" } },
        { type = "person", action = "event", identifiers = { id = "1" }, name = "b", id = "mine" },
      }
      assert(track:batch(ops))
      local batch = server.last().json.batch
      for i = 1, 3 do assert.is_true(is_ulid(batch[i].id)) end
      assert.is_nil(batch[4].id)
      assert.are.equal("mine", batch[5].id)
      assert.is_nil(ops[1].id)
      assert(track:entity({ type = "person", action = "event", identifiers = { id = "1" }, name = "a" }))
      assert.is_true(is_ulid(server.last().json.id))
    end)

    it("are off with event_ids = false", function()
      local track = new_track({ event_ids = false })
      assert(track:track("c1", "a"))
      assert.is_nil(server.last().json.id)
      assert(track:track_anonymous("x", "a"))
      assert.is_nil(server.last().json.id)
      assert(track:entity({ type = "person", action = "event", identifiers = { id = "1" }, name = "a" }))
      assert.is_nil(server.last().json.id)
    end)
  end)

  describe("forms beyond Node", function()
    it("track(customer_id, name, data, opts) as in Python and Go", function()
      local track = new_track()
      assert(track:track("c1", "purchase", { price = 5 }, { timestamp = "2023-11-14T22:13:20Z", type = "event" }))
      local got = server.last()
      assert.are.equal("POST", got.method)
      assert.are.equal("/api/v1/customers/c1/events", got.path)
      local body = got.json
      assert.are.equal("purchase", body.name)
      assert.are.same({ price = 5 }, body.data)
      assert.are.equal(1700000000, body.timestamp)
      assert.are.equal("event", body.type)
      assert.is_true(is_ulid(body.id))
    end)

    it("track with only a name sends no data", function()
      local track = new_track()
      assert(track:track("c1", "ping"))
      local body = server.last().json
      assert.are.equal("ping", body.name)
      assert.is_nil(body.data)
      assert.is_nil(body.type)
    end)

    it("track_screen sends a screen event, in either form", function()
      local track = new_track()
      assert(track:track_screen("c1", "Home", { from = "push" }, { timestamp = 1700000001 }))
      local body = server.last().json
      assert.are.equal("/api/v1/customers/c1/events", server.last().path)
      assert.are.equal("screen", body.type)
      assert.are.equal("Home", body.name)
      assert.are.same({ from = "push" }, body.data)
      assert.are.equal(1700000001, body.timestamp)
      assert(track:track_screen("c1", { name = "Cart" }))
      assert.are.equal("screen", server.last().json.type)
    end)

    it("track_page_view takes optional data and options", function()
      local track = new_track()
      assert(track:track_page_view("c1", "/pricing", { title = "Pricing" }, { id = "p1" }))
      local body = server.last().json
      assert.are.same({ type = "page", name = "/pricing", data = { title = "Pricing" }, id = "p1" }, body)
    end)

    it("track_anonymous(anonymous_id, name, data, opts)", function()
      local track = new_track()
      assert(track:track_anonymous("anon_1", "visited", { page = "/" }, { timestamp = 1700000002, id = "e1" }))
      local got = server.last()
      assert.are.equal("/api/v1/events", got.path)
      assert.are.same({ anonymous_id = "anon_1", name = "visited", data = { page = "/" },
        timestamp = 1700000002, id = "e1" }, got.json)
      assert(track:track_anonymous("", "invite", { recipient = "a@example.com" }))
      assert.is_nil(server.last().json.anonymous_id)
    end)

    it("converts timestamps: ISO-8601 strings, date tables, digit strings", function()
      local track = new_track()
      assert(track:identify("c1", { created_at = "2023-11-14T22:13:20Z", _timestamp = "1700000001" }))
      assert.are.same({ created_at = 1700000000, _timestamp = 1700000001 }, server.last().json)
      assert(track:track("c1", { name = "a", timestamp = "2023-11-14T23:13:20+01:00" }))
      assert.are.equal(1700000000, server.last().json.timestamp)
      assert(track:add_device("c1", "tok", "ios", { last_used = "2023-11-14T22:13:20.999Z" }))
      assert.are.equal(1700000000, server.last().json.device.last_used)
      assert(track:track_push({ delivery_id = "d", timestamp = "2023-11-14T22:13:20Z" }))
      assert.are.equal(1700000000, server.last().json.timestamp)
      assert(track:report_metric({ delivery_id = "d", metric = "opened", timestamp = "2023-11-14T22:13:20Z" }))
      assert.are.equal(1700000000, server.last().json.timestamp)
      local t = os.date("*t", 1700000000)
      assert(track:track("c1", "a", nil, { timestamp = t }))
      assert.are.equal(1700000000, server.last().json.timestamp)
    end)

    it("delete is destroy", function()
      local track = new_track()
      assert.are.equal(track.destroy, track.delete)
      assert(track:delete("c1"))
      assert.are.equal("DELETE", server.last().method)
      assert.are.equal("/api/v1/customers/c1", server.last().path)
      assert.are.equal("", server.last().body)
    end)

    it("sends id_type=id when it is given explicitly", function()
      local track = new_track()
      assert(track:remove_customers_from_segment("7", { "a", 2 }, "cio_id"))
      assert.are.equal("/api/v1/segments/7/remove_customers?id_type=cio_id", server.last().path)
      assert.are.same({ ids = { "a", 2 } }, server.last().json)
    end)
  end)

  describe("v2 batch", function()
    it("returns 207 partial failures as a result, with 1-based indexes and the operations", function()
      local track = new_track()
      local ops = customerio.operations
      server.respond({ status = 207, body = '{"errors":[{"batch_index":1,"reason":"invalid","field":"name",'
        .. '"message":"name is required"}]}' })
      local result, res = track:batch({
        ops.identify("1", { plan = "pro" }),
        { type = "person", action = "event", identifiers = { id = "1" }, name = "x" },
        ops.delete("2"),
      })
      assert.is_table(result)
      assert.are.equal(207, res.status)
      assert.are.equal(1, #result.errors)
      assert.are.equal(1, result.errors[1].batch_index)
      assert.are.equal(1, #result.failed)
      local f = result.failed[1]
      assert.are.equal(2, f.index)
      assert.are.equal(1, f.batch_index)
      assert.are.equal("invalid", f.reason)
      assert.are.equal("name", f.field)
      assert.are.equal("name is required", f.message)
      assert.are.equal("x", f.operation.name)
      assert.is_true(is_ulid(f.operation.id))
      assert.are.equal(server.last().json.batch[2].id, f.operation.id)
    end)

    it("has an empty failed list when everything was accepted", function()
      local track = new_track()
      local result = assert(track:batch({ customerio.operations.delete("1") }))
      assert.are.same({}, result.failed)
    end)

    it("returns a 400 as an error", function()
      local track = new_track()
      server.respond({ status = 400, body = '{"errors":[{"reason":"invalid","field":"batch","message":"bad batch"}]}' })
      local result, err = track:batch({ customerio.operations.delete("1") })
      assert.is_nil(result)
      assert.are.equal(400, err.status)
      assert.are.equal("bad batch", err.message)
    end)

    it("sends builder operations as the v2 API takes them", function()
      local track = new_track()
      local ops = customerio.operations
      assert(track:batch({
        ops.identify({ email = "a@example.com" }, { plan = "pro" }, { timestamp = 1700000000 }),
        ops.event("1", "purchase", { price = 5 }, { id = "e1", timestamp = "2023-11-14T22:13:20Z" }),
        ops.page("1", "https://example.com/a", nil, { id = "p1" }),
        ops.screen("1", "Home", { a = 1 }, { id = "s1" }),
        ops.suppress("1"), ops.unsuppress({ cio_id = "abc" }),
        ops.add_device("1", "tok", "ios", { last_used = 1700000000, app_version = "2" }),
        ops.delete_device("1", "tok"),
        ops.merge("id", "1", "email", "b@example.com"),
        ops.add_relationships("1", { { identifiers = { object_type_id = "1", object_id = "acme" } } }),
        ops.delete_relationships("1", { { identifiers = { cio_object_id = "o1" } } }),
        ops.object_identify({ object_type_id = "1", object_id = "acme" }, { name = "Acme" },
          { cio_relationships = { { identifiers = { id = "1" } } } }),
        ops.object_identify_anonymous({ object_type_id = "1", object_id = "acme" }, nil,
          { { identifiers = { anonymous_id = "an1" } } }),
        ops.object_delete({ object_type_id = "1", object_id = "acme" }),
        ops.object_add_relationships({ cio_object_id = "o1" }, { { identifiers = { id = "1" } } }),
        ops.object_delete_relationships({ cio_object_id = "o1" }, { { identifiers = { email = "a@example.com" } } }),
        ops.delivery_event("dlv_1", "opened", { device_token = "tok" }, { timestamp = 1700000000 }),
      }))
      local got = server.last()
      assert.are.equal("/api/v2/batch", got.path)
      local b = got.json.batch
      assert.are.same({ type = "person", action = "identify", identifiers = { email = "a@example.com" },
        attributes = { plan = "pro" }, timestamp = 1700000000 }, b[1])
      assert.are.same({ type = "person", action = "event", identifiers = { id = "1" }, name = "purchase",
        attributes = { price = 5 }, id = "e1", timestamp = 1700000000 }, b[2])
      assert.are.same({ type = "person", action = "page", identifiers = { id = "1" }, name = "https://example.com/a",
        id = "p1" }, b[3])
      assert.are.same({ type = "person", action = "screen", identifiers = { id = "1" }, name = "Home",
        attributes = { a = 1 }, id = "s1" }, b[4])
      assert.are.same({ type = "person", action = "suppress", identifiers = { id = "1" } }, b[5])
      assert.are.same({ type = "person", action = "unsuppress", identifiers = { cio_id = "abc" } }, b[6])
      assert.are.same({ type = "person", action = "add_device", identifiers = { id = "1" },
        device = { token = "tok", platform = "ios", last_used = 1700000000, attributes = { app_version = "2" } } }, b[7])
      assert.are.same({ type = "person", action = "delete_device", identifiers = { id = "1" },
        device = { token = "tok" } }, b[8])
      assert.are.same({ type = "person", action = "merge", primary = { id = "1" },
        secondary = { email = "b@example.com" } }, b[9])
      assert.are.same({ type = "person", action = "add_relationships", identifiers = { id = "1" },
        cio_relationships = { { identifiers = { object_type_id = "1", object_id = "acme" } } } }, b[10])
      assert.are.equal("delete_relationships", b[11].action)
      assert.are.same({ type = "object", action = "identify", identifiers = { object_type_id = "1", object_id = "acme" },
        attributes = { name = "Acme" }, cio_relationships = { { identifiers = { id = "1" } } } }, b[12])
      assert.are.same({ type = "object", action = "identify_anonymous",
        identifiers = { object_type_id = "1", object_id = "acme" },
        cio_relationships = { { identifiers = { anonymous_id = "an1" } } } }, b[13])
      assert.are.same({ type = "object", action = "delete", identifiers = { object_type_id = "1", object_id = "acme" } }, b[14])
      assert.are.equal("add_relationships", b[15].action)
      assert.are.equal("object", b[16].type)
      assert.are.same({ type = "delivery", action = "event", identifiers = { id = "dlv_1" }, name = "opened",
        attributes = { device_token = "tok" }, timestamp = 1700000000 }, b[17])
    end)

    it("builders are pure and add a ULID to events", function()
      local ops = customerio.operations
      local before = server.count()
      local op = ops.event(42, "purchase")
      assert.are.equal("42", op.identifiers.id)
      assert.is_true(is_ulid(op.id))
      assert.are.equal(before, server.count())
      assert.are.equal(ops, customerio.TrackClient.operations)
      assert.is_true(ops.is_event(ops.page("1", "/")))
      assert.is_false(ops.is_event(ops.delete("1")))
    end)
  end)

  describe("configuration", function()
    -- A transport that records the request instead of sending it.
    local function recorder()
      local t = { seen = {} }
      function t.send(_, req)
        t.seen[#t.seen + 1] = req
        return { status = 200, headers = {}, body = "{}" }
      end
      return t
    end

    local function urls(opts)
      local tr = recorder()
      opts.transport = tr
      local track = customerio.TrackClient.new(SITE_ID, API_KEY, opts)
      assert(track:identify("1"))
      assert(track:batch({ customerio.operations.delete("1") }))
      assert(track:unsubscribe("d1"))
      return tr.seen[1].url, tr.seen[2].url, tr.seen[3].url
    end

    it("uses the US hosts by default", function()
      local v1, v2, root = urls({})
      assert.are.equal("https://track.customer.io/api/v1/customers/1", v1)
      assert.are.equal("https://track.customer.io/api/v2/batch", v2)
      assert.are.equal("https://track.customer.io/unsubscribe/d1", root)
    end)

    it("takes the EU region as a string or a region table", function()
      for _, region in ipairs({ "eu", "EU", customerio.regions.EU }) do
        local v1, v2, root = urls({ region = region })
        assert.are.equal("https://track-eu.customer.io/api/v1/customers/1", v1)
        assert.are.equal("https://track-eu.customer.io/api/v2/batch", v2)
        assert.are.equal("https://track-eu.customer.io/unsubscribe/d1", root)
      end
      assert.are.equal("https://track.customer.io/api/v1/customers/1", (urls({ region = "us" })))
    end)

    it("derives the v2 root and the host root from a url override, as Node does", function()
      local v1, v2, root = urls({ url = "http://proxy.local:8080/cio/api/v1/" })
      assert.are.equal("http://proxy.local:8080/cio/api/v1/customers/1", v1)
      assert.are.equal("http://proxy.local:8080/cio/api/v2/batch", v2)
      assert.are.equal("http://proxy.local:8080/cio/unsubscribe/d1", root)
      v1, v2, root = urls({ url = "http://proxy.local:8080/track" })
      assert.are.equal("http://proxy.local:8080/track/customers/1", v1)
      assert.are.equal("http://proxy.local:8080/track/batch", v2)
      assert.are.equal("http://proxy.local:8080/unsubscribe/d1", root)
    end)

    it("sends extra headers and a custom User-Agent, but its own Authorization", function()
      local track = new_track({ headers = { ["X-Extra"] = "1", Authorization = "nope" }, user_agent = "my-app/1.0" })
      assert(track:identify("1"))
      local got = server.last()
      assert.are.equal("1", got.headers["x-extra"])
      assert.are.equal("my-app/1.0", got.headers["user-agent"])
      assert.are.equal("Basic " .. core.base64_encode(SITE_ID .. ":" .. API_KEY), got.headers.authorization)
    end)

    it("refuses unknown regions, missing credentials and unknown options", function()
      local function msg(f, ...)
        local ok, err = pcall(f, ...)
        assert.is_false(ok)
        return err
      end
      local new = customerio.TrackClient.new
      assert.are.equal("site_id is required", msg(new, nil, API_KEY))
      assert.are.equal("site_id is required", msg(new, " ", API_KEY))
      assert.are.equal("api_key is required", msg(new, SITE_ID, nil))
      assert.are.equal('region must be one of customerio.regions.US or customerio.regions.EU (or "us" / "eu")',
        msg(new, SITE_ID, API_KEY, { region = "ap" }))
      assert.are.equal('region must be one of customerio.regions.US or customerio.regions.EU (or "us" / "eu")',
        msg(new, SITE_ID, API_KEY, { region = { track = "https://evil.example" } }))
      assert.are.equal("unknown option: regoin", msg(new, SITE_ID, API_KEY, { regoin = "eu" }))
      assert.are.equal("event_ids must be a boolean", msg(new, SITE_ID, API_KEY, { event_ids = "no" }))
      assert.are.equal("url must be an absolute http or https URL", msg(new, SITE_ID, API_KEY, { url = "track.local" }))
    end)
  end)

  describe("results and errors", function()
    it("returns the decoded body, and {} for an empty 2xx", function()
      local track = new_track()
      server.respond({ status = 200, body = '{"url":"https://track-eu.customer.io","region":"eu","environment_id":7}' })
      local r = assert(track:get_account_region())
      assert.are.equal("eu", r.region)
      assert.are.equal(7, r.environment_id)
      server.respond({ status = 204 })
      assert.are.same({}, assert(track:submit_form("f1", { email = "a@example.com" })))
    end)

    it("returns nil and an error object on failure; bad arguments raise instead", function()
      local track = new_track()
      server.respond({ status = 400,
        body = '{"meta":{"errors":["value for attribute \'x\' cannot be longer than 1000 bytes"]}}' })
      local r, err = track:identify("1", { x = "y" })
      assert.is_nil(r)
      assert.are.equal("http", err.kind)
      assert.are.equal(400, err.status)
      assert.are.equal("value for attribute 'x' cannot be longer than 1000 bytes", err.message)
      assert.has_error(function() track:identify(nil) end, "customer_id is required")
    end)

    it("never shows the API key: tostring of the client, errors, echoed bodies", function()
      local track = new_track()
      local basic = core.base64_encode(SITE_ID .. ":" .. API_KEY)
      assert.is_nil(tostring(track):find(API_KEY, 1, true))
      server.respond({ status = 401, body = "bad credentials " .. API_KEY .. " / " .. basic,
        headers = { ["X-Echo"] = API_KEY } })
      local _, err = track:identify("1")
      local text = tostring(err) .. tostring(err.body) .. tostring(err.headers["x-echo"])
      assert.is_nil(text:find(API_KEY, 1, true))
      assert.is_nil(text:find(basic, 1, true))
      assert.is_truthy(text:find("[REDACTED]", 1, true))
      for k, v in pairs(track) do
        assert.are_not.equal(API_KEY, v, "field " .. tostring(k) .. " holds the key")
      end
    end)

    it("reports JSON that cannot be encoded with its path, before sending", function()
      local track = new_track()
      assert.has_error(function() track:identify("1", { score = 0 / 0 }) end)
      local ok, err = pcall(track.track, track, "1", "ev", { price = 0 / 0 })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("price", 1, true))
      assert.are.equal(0, server.count())
    end)
  end)
end)
