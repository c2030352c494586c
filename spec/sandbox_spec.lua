-- The sandbox, exercised through the real Track and App clients, twice: in-process (the sandbox
-- as the clients' transport) and over HTTP (nginx serving the same emulator, as tools/sandbox does).
local customerio = require("customerio")
local Client = require("customerio.http.client")
local core = require("customerio.core")

local null = core.null

-- In-process: the sandbox object is the transport and the control surface.
local function in_process(opts)
  local sb = customerio.sandbox.new(opts and { site_id = opts.site_id, api_key = opts.api_key, app_key = opts.app_key,
    strict_liquid = opts.strict_liquid, rate_limits = opts.rate_limits })
  local h = { name = "in-process" }
  h.track = customerio.TrackClient.new("site", "key", { transport = sb })
  h.sb = sb
  h.api = customerio.APIClient.new("appkey", { transport = sb, rate_limit = opts and opts.rate_limit,
    retry = opts and opts.retry })
  h.make_track = function(site, key) return customerio.TrackClient.new(site, key, { transport = sb, retry = false }) end
  local raw = Client.new({ base_url = "https://track.customer.io/api/v1", transport = sb,
    auth = "Basic " .. core.base64_encode("site:key"), retry = false })
  h.raw = function(method, path, body) return raw:request(method, path, { body = body }) end
  h.add_segment = function(def) return sb:add_segment(def).id end
  h.add_transactional = function(id, t) return sb:add_transactional(id, t).id end
  h.add_broadcast = function(id, def) sb:add_broadcast(id, def) end
  h.add_data_file = function(url, rows) sb:add_data_file(url, rows) end
  h.person = function(ident) return sb:person_view(ident) end
  h.outbox = function() return sb.outbox end
  h.deliveries = function() return sb.delivery_list end
  h.members = function(id) return sb:segment_members(id) end
  return h
end

-- Over HTTP: one nginx for the file (spec/support/sandbox_http.lua), reset and configured before each test.
local sandbox_http = require("support.sandbox_http")
local http

local function over_http(opts)
  http = http or sandbox_http.start()
  local base = http.base
  local call = http.control
  call("POST", "reset", {})
  opts = opts or {}
  call("POST", "config", { site_id = opts.site_id, api_key = opts.api_key, app_key = opts.app_key,
    rate_limits = opts.rate_limits or false, strict_liquid = opts.strict_liquid ~= false })
  local h = { name = "over HTTP" }
  h.track = customerio.TrackClient.new("site", "key", { url = base .. "/api/v1", retry = false })
  -- Client-side limits only where a test asks for them: the real clock runs over HTTP.
  local rate_limit = opts.rate_limit
  if rate_limit == nil then rate_limit = false end
  h.api = customerio.APIClient.new("appkey", { url = base .. "/v1", retry = false, rate_limit = rate_limit })
  h.make_track = function(site, key) return customerio.TrackClient.new(site, key, { url = base .. "/api/v1", retry = false }) end
  local raw = Client.new({ base_url = base .. "/api/v1", auth = "Basic " .. core.base64_encode("site:key"), retry = false })
  h.raw = function(method, path, body) return raw:request(method, path, { body = body }) end
  h.add_segment = function(def) return call("POST", "segments", def).id end
  h.add_transactional = function(id, t) return call("POST", "transactional", { id = id, template = t }).id end
  h.add_broadcast = function(id, def)
    local body = { id = id }
    for k, v in pairs(def) do body[k] = v end
    call("POST", "broadcasts", body)
  end
  h.add_data_file = function(url, rows) call("POST", "data_files", { url = url, rows = rows }) end
  h.person = function(ident)
    local res = call("GET", { "people", ident })
    return res and res.person
  end
  h.outbox = function() return call("GET", "outbox").messages end
  h.deliveries = function() return call("GET", "deliveries").deliveries end
  h.members = function(id)
    local res = call("GET", { "segments", id, "members" })
    return res and res.members
  end
  return h
end

local function sorted(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = v end
  table.sort(out)
  return out
end

local function behaviours(make)
  local h

  describe("people", function()
    before_each(function() h = make() end)

    it("creates a person on identify and keeps attribute types", function()
      assert(h.track:identify("u1", { email = "u1@example.com", plan = "pro", age = 37, score = 98.5,
        admin = false, tags = customerio.array({ "a", "b" }) }))
      local p = h.person("u1")
      assert.are.equal("u1", p.id)
      assert.are.equal("u1@example.com", p.email)
      assert.are.equal("pro", p.attributes.plan)
      assert.are.equal(37, p.attributes.age)
      assert.are.equal(98.5, p.attributes.score)
      assert.are.equal(false, p.attributes.admin)
      assert.are.same({ "a", "b" }, p.attributes.tags)
      if math.type then assert.are.equal("integer", math.type(p.attributes.age)) end
    end)

    it("merges updates, removes null and empty attributes", function()
      assert(h.track:identify("u1", { plan = "free", city = "Berlin", nick = "x" }))
      assert(h.track:identify("u1", { plan = "pro", city = null, nick = "" }))
      local p = h.person("u1")
      assert.are.equal("pro", p.attributes.plan)
      assert.is_nil(p.attributes.city)
      assert.is_nil(p.attributes.nick)
    end)

    it("does not create a person when _update is true", function()
      assert(h.track:identify("ghost", { _update = true, plan = "x" }))
      assert.is_nil(h.person("ghost"))
      assert(h.track:identify("u2", {}))
      assert(h.track:identify("u2", { _update = true, plan = "x" }))
      assert.are.equal("x", h.person("u2").attributes.plan)
    end)

    it("finds people by email and gives an id to a person known by email", function()
      assert(h.track:identify("ada@example.com", { email = "ada@example.com", first_name = "Ada" }))
      assert(h.track:identify("ada_1", { email = "ada@example.com", plan = "pro" }))
      local p = h.person("ada_1")
      assert.are.equal("Ada", p.attributes.first_name)
      assert.are.equal("pro", p.attributes.plan)
      assert.are.equal(p.cio_id, h.person("ada@example.com").cio_id)
      assert.are.equal(p.cio_id, h.person("cio_" .. p.cio_id).cio_id)
    end)

    it("records events, page and screen views, and deduplicates by id", function()
      assert(h.track:identify("u1", {}))
      assert(h.track:track("u1", { name = "purchase", data = { total = 20 }, id = "01HZZZZZZZZZZZZZZZZZZZZZZ1" }))
      assert(h.track:track("u1", { name = "purchase", data = { total = 20 }, id = "01HZZZZZZZZZZZZZZZZZZZZZZ1" }))
      assert(h.track:track_page_view("u1", "/pricing"))
      assert(h.track:track_screen("u1", "Home", { from = "push" }))
      local events = h.person("u1").events
      assert.are.equal(3, #events)
      assert.are.equal("purchase", events[1].name)
      assert.are.equal(20, events[1].data.total)
      assert.are.equal("page", events[2].type)
      assert.are.equal("/pricing", events[2].name)
      assert.are.equal("screen", events[3].type)
    end)

    it("attaches anonymous events when a person is identified with their anonymous_id", function()
      assert(h.track:track_anonymous("anon_1", { name = "visited", data = { page = "/" } }))
      assert(h.track:track_anonymous("anon_1", { name = "signed_up" }))
      assert(h.track:identify("u9", { email = "u9@example.com" }))
      assert.are.equal(0, #h.person("u9").events)
      assert(h.track:identify("u9", { anonymous_id = "anon_1" }))
      local events = h.person("u9").events
      assert.are.equal(2, #events)
      assert.are.equal("visited", events[1].name)
      -- later anonymous events with that id go straight to the person
      assert(h.track:track_anonymous("anon_1", { name = "returned" }))
      assert.are.equal(3, #h.person("u9").events)
    end)

    it("refuses an invite event without a recipient", function()
      local res, err = h.track:track_anonymous("", { name = "invite", data = { from = "Ada" } })
      assert.is_nil(res)
      assert.are.equal(400, err.status)
      assert.matches("recipient", err.message)
      assert(h.track:track_anonymous("", { name = "invite", data = { recipient = "friend@example.com" } }))
    end)

    it("adds and deletes devices", function()
      assert(h.track:identify("u1", {}))
      assert(h.track:add_device("u1", "tok_1", "ios", { last_used = 1700000000, app_version = "2.1" }))
      assert(h.track:add_device("u1", "tok_2", "android"))
      local p = h.person("u1")
      assert.are.equal(2, #p.devices)
      assert.are.equal("tok_1", p.devices[1].token)
      assert.are.equal("2.1", p.devices[1].attributes.app_version)
      assert(h.track:delete_device("u1", "tok_1"))
      p = h.person("u1")
      assert.are.equal(1, #p.devices)
      assert.are.equal("tok_2", p.devices[1].token)
    end)

    it("deletes people", function()
      assert(h.track:identify("u1", {}))
      assert(h.track:destroy("u1"))
      assert.is_nil(h.person("u1"))
    end)

    it("suppress deletes and blocks re-identification until unsuppress", function()
      assert(h.track:identify("u1", { email = "u1@example.com" }))
      assert(h.track:suppress("u1"))
      assert.is_nil(h.person("u1"))
      assert(h.track:identify("u1", { plan = "pro" }))
      assert.is_nil(h.person("u1"))
      assert(h.track:identify("other", { email = "u1@example.com" }))
      assert.is_nil(h.person("other"))
      assert(h.track:unsuppress("u1"))
      assert(h.track:identify("u1", { plan = "pro" }))
      assert.are.equal("pro", h.person("u1").attributes.plan)
    end)

    it("unsuppress lifts what suppress set: the person's id and email (and cio_id)", function()
      assert(h.track:identify("6", { email = "six@example.com" }))
      assert(h.track:suppress("6"))
      assert(h.track:identify("x", { email = "six@example.com" }))
      assert.is_nil(h.person("x"))
      assert(h.track:unsuppress("6"))
      -- the email and the cio_id are allowed again, not only the id
      assert(h.track:identify("x", { email = "six@example.com" }))
      assert.are.equal("six@example.com", h.person("x").attributes.email)
      -- unsuppressing by the email lifts the id as well
      assert(h.track:identify("7", { email = "seven@example.com" }))
      assert(h.track:suppress("7"))
      assert(h.track:unsuppress("seven@example.com"))
      assert(h.track:identify("7", { plan = "pro" }))
      assert.are.equal("pro", h.person("7").attributes.plan)
    end)

    it("shows a transactional delivery's outcome through get_message (sent, or failed and why)", function()
      h.add_transactional("welcome", { from = "game@example.com", subject = "Hi {{ trigger.name }}", body = "Welcome" })
      assert(h.track:identify("p1", { email = "p1@example.com" }))
      local sent = assert(h.api:send_email({ transactional_message_id = "welcome", to = "p1@example.com",
        identifiers = { id = "p1" }, message_data = { name = "Ada" } }))
      local got = assert(h.api:get_message(sent.delivery_id)).message
      assert.are.equal(sent.delivery_id, got.id)
      assert.is_number(got.metrics.sent)
      assert.is_nil(got.metrics.failed)
      assert.are.equal("p1", got.customer_identifiers.id)
      -- message_data is {{ trigger.x }}: {{ message_data.name }} is undefined and the delivery fails
      h.add_transactional("welcome_wrong", { from = "game@example.com", subject = "Hi {{message_data.name}}",
        body = "Welcome" })
      sent = assert(h.api:send_email({ transactional_message_id = "welcome_wrong", to = "p1@example.com",
        identifiers = { id = "p1" }, message_data = { name = "Ada" } }))
      got = assert(h.api:get_message(sent.delivery_id)).message
      assert.is_number(got.metrics.failed)
      assert.is_nil(got.metrics.sent)
      assert.is_truthy(got.failure_message:find("undefined variable 'message_data.name'", 1, true), got.failure_message)
      local _, err = h.api:get_message("sbx_nope")
      assert.are.equal(404, err.status)
    end)

    it("refuses attribute values over 1000 bytes, as Customer.io does", function()
      -- The client refuses before sending; a raw request shows the sandbox enforces it too.
      assert.has_error(function() h.track:identify("u1", { bio = string.rep("x", 1001) }) end)
      local res, err = h.raw("PUT", { "customers", "u1" }, { bio = string.rep("x", 999) .. "\195\169" })
      assert.is_nil(res)
      assert.are.equal(400, err.status)
      assert.are.equal("value for attribute 'bio' cannot be longer than 1000 bytes", err.message)
      assert.is_nil(h.person("u1"))
      assert(h.raw("PUT", { "customers", "u1" }, { bio = string.rep("x", 1000) }))
    end)

    it("answers 401 to wrong credentials when credentials are configured", function()
      h = make({ site_id = "site_123", api_key = "trackkey_456", app_key = "appkey_789" })
      local res, err = h.make_track("site_123", "wrong"):identify("u1", {})
      assert.is_nil(res)
      assert.are.equal(401, err.status)
      assert(h.make_track("site_123", "trackkey_456"):identify("u1", {}))
      local _, app_err = h.api:list_segments()
      assert.are.equal(401, app_err.status)
    end)
  end)

  describe("merge", function()
    before_each(function() h = make() end)

    it("moves attributes, events, devices and manual segments into the primary and deletes the secondary", function()
      local seg = h.add_segment({ id = 7, name = "Beta", manual = true })
      assert(h.track:identify("primary", { email = "keep@example.com", plan = "pro", city = "" }))
      assert(h.track:identify("dupe", { email = "dupe@example.com", plan = "free", city = "Berlin", age = 40 }))
      assert(h.track:track("dupe", { name = "old_event" }))
      assert(h.track:add_device("dupe", "tok_d", "ios"))
      assert(h.track:add_customers_to_segment(seg, { "dupe" }))
      assert(h.track:merge_customers("id", "primary", "id", "dupe"))
      assert.is_nil(h.person("dupe"))
      local p = h.person("primary")
      assert.are.equal("pro", p.attributes.plan)       -- the primary wins on conflicts
      assert.are.equal("Berlin", p.attributes.city)    -- and gains what it lacks
      assert.are.equal(40, p.attributes.age)
      assert.are.equal("keep@example.com", p.email)
      assert.are.equal("old_event", p.events[1].name)
      assert.are.equal("tok_d", p.devices[1].token)
      assert.are.same({ "primary" }, h.members(seg))
    end)

    it("merges by email and cio_id", function()
      assert(h.track:identify("a", { email = "a@example.com" }))
      assert(h.track:identify("b", { email = "b@example.com", x = 1 }))
      local b = h.person("b")
      assert(h.track:merge_customers("email", "a@example.com", "cio_id", b.cio_id))
      assert.is_nil(h.person("b"))
      assert.are.equal(1, h.person("a").attributes.x)
    end)

    it("fails when the secondary does not exist", function()
      assert(h.track:identify("primary", {}))
      local res, err = h.track:merge_customers("id", "primary", "id", "nobody")
      assert.is_nil(res)
      assert.are.equal(404, err.status)
      assert.matches("secondary person", err.message)
      assert.is_not_nil(h.person("primary"))
    end)

    it("fails when the primary does not exist", function()
      assert(h.track:identify("dupe", {}))
      local res, err = h.track:merge_customers("id", "nobody", "id", "dupe")
      assert.is_nil(res)
      assert.matches("primary person", err.message)
      assert.is_not_nil(h.person("dupe"))
    end)
  end)

  describe("segments", function()
    before_each(function() h = make() end)

    it("computes data-driven membership from attributes, on every identify", function()
      local power = h.add_segment({ id = 1, name = "Power users",
        filter = { attribute = { field = "engagement_tier", operator = "eq", value = "power_user" } } })
      assert(h.track:identify("u1", { engagement_tier = "casual" }))
      assert.are.same({}, h.members(power))
      assert(h.track:identify("u1", { engagement_tier = "power_user" }))
      assert.are.same({ "u1" }, h.members(power))
      assert(h.track:identify("u1", { engagement_tier = "active" }))
      assert.are.same({}, h.members(power))
    end)

    it("compares types strictly: a number attribute does not match a string value", function()
      local high = h.add_segment({ id = 2, name = "High value",
        filter = { attribute = { field = "total_revenue", operator = "gt", value = 500 } } })
      local plan = h.add_segment({ id = 3, name = "Plan 2",
        filter = { attribute = { field = "plan_id", operator = "eq", value = 2 } } })
      assert(h.track:identify("strings", { total_revenue = "600", plan_id = "2" }))
      assert(h.track:identify("numbers", { total_revenue = 600, plan_id = 2 }))
      assert.are.same({ "numbers" }, h.members(high))
      assert.are.same({ "numbers" }, h.members(plan))
    end)

    it("combines conditions with and, or, not and other segments", function()
      h.add_segment({ id = 10, name = "Trial", filter = { attribute = { field = "plan", operator = "eq", value = "trial" } } })
      local at_risk = h.add_segment({ id = 11, name = "At risk", filter = { ["and"] = {
        { attribute = { field = "days_since_last_login", operator = "gt", value = 30 } },
        { ["not"] = { attribute = { field = "plan", operator = "eq", value = "free" } } },
      } } })
      local either = h.add_segment({ id = 12, name = "Trial or VIP", filter = { ["or"] = {
        { segment = { id = 10 } },
        { attribute = { field = "vip", operator = "exists" } },
      } } })
      assert(h.track:identify("a", { days_since_last_login = 45, plan = "pro" }))
      assert(h.track:identify("b", { days_since_last_login = 45, plan = "free" }))
      assert(h.track:identify("c", { days_since_last_login = 3, plan = "trial" }))
      assert(h.track:identify("d", { vip = true }))
      assert.are.same({ "a" }, h.members(at_risk))
      assert.are.same({ "c", "d" }, sorted(h.members(either)))
    end)

    it("supports the segment builder's other operators", function()
      local cases = {
        { { field = "email", operator = "ends_with", value = "@corp.com" }, "x" },
        { { field = "tags", operator = "contains", value = "beta" }, "x" },
        { { field = "name", operator = "starts_with", value = "Zo" }, "x" },
        { { field = "age", operator = "lte", value = 30 }, "y" },
        { { field = "age", operator = "neq", value = 40 }, "y" },
        { { field = "nickname", operator = "not_exists" }, "x" },
      }
      assert(h.track:identify("x", { email = "x@corp.com", tags = customerio.array({ "beta", "pro" }), name = "Zoë", age = 40 }))
      assert(h.track:identify("y", { email = "y@home.com", age = 30, nickname = "why" }))
      for i, c in ipairs(cases) do
        local id = h.add_segment({ id = 100 + i, name = "op " .. i, filter = { attribute = c[1] } })
        assert.are.same({ c[2] }, h.members(id), c[1].operator)
      end
    end)

    it("adds and removes people from manual segments through the Track API", function()
      local seg = h.add_segment({ id = 20, name = "Beta testers", manual = true })
      assert(h.track:identify("a", { email = "a@example.com" }))
      assert(h.track:identify("b", { email = "b@example.com" }))
      assert(h.track:add_customers_to_segment(seg, { "a", "b", "nobody" }))
      assert.are.same({ "a", "b" }, h.members(seg))
      assert(h.track:remove_customers_from_segment(seg, { "b@example.com" }, "email"))
      assert.are.same({ "a" }, h.members(seg))
      local res, err = h.track:add_customers_to_segment(999, { "a" })
      assert.is_nil(res)
      assert.are.equal(404, err.status)
    end)

    it("answers the App API's segment endpoints from its state", function()
      local seg = h.add_segment({ id = 30, name = "Pro",
        filter = { attribute = { field = "plan", operator = "eq", value = "pro" } } })
      for i = 1, 3 do assert(h.track:identify("p" .. i, { plan = "pro", email = "p" .. i .. "@example.com" })) end
      assert(h.track:identify("f1", { plan = "free" }))
      local list = assert(h.api:list_segments())
      assert.are.equal(1, #list.segments)
      assert.are.equal("Pro", list.segments[1].name)
      assert.are.equal(3, assert(h.api:get_segment_customer_count(seg)).count)
      local page = assert(h.api:get_segment_membership(seg, { limit = 2 }))
      assert.are.equal(2, #page.identifiers)
      assert.are.equal("p1", page.identifiers[1].id)
      assert.are.equal("2", page.next)
      local rest = assert(h.api:get_segment_membership(seg, { start = page.next, limit = 2 }))
      assert.are.equal("p3", rest.identifiers[1].id)
      local created = assert(h.api:create_segment({ name = "Manual one" }))
      assert.are.equal("manual", created.segment.type)
      local _, err = h.api:get_segment(999)
      assert.are.equal(404, err.status)
      local attrs = assert(h.api:get_attributes("p1"))
      assert.are.equal("pro", attrs.customer.attributes.plan)
      local segs = assert(h.api:get_customer_segments("p1"))
      assert.are.equal(30, segs.segments[1].id)
      local found = assert(h.api:get_customers_by_email("p2@example.com"))
      assert.are.equal("p2", found.results[1].id)
    end)
  end)

  describe("transactional messages", function()
    before_each(function()
      h = make()
      h.add_transactional("password_reset", {
        from = "Support <help@example.com>",
        subject = "Reset your password, {{ customer.first_name }}",
        body = "<a href='{{ trigger.reset_url }}'>Reset</a> within {{ trigger.expiry_hours }} hours",
      })
      assert(h.track:identify("u1", { email = "ada@example.com", first_name = "Ada" }))
    end)

    it("renders the template with trigger and customer into the outbox", function()
      local res = assert(h.api:send_email({
        to = "ada@example.com", transactional_message_id = "password_reset", identifiers = { id = "u1" },
        message_data = { reset_url = "https://app.example.com/r/abc", expiry_hours = 24 },
      }))
      assert.is_string(res.delivery_id)
      assert.is_number(res.queued_at)
      local m = h.outbox()[1]
      assert.are.equal("Reset your password, Ada", m.subject)
      assert.are.equal("<a href='https://app.example.com/r/abc'>Reset</a> within 24 hours", m.body)
      assert.are.equal("Support <help@example.com>", m.from)
      assert.are.equal("ada@example.com", m.to)
      assert.are.equal(res.delivery_id, m.delivery_id)
    end)

    it("finds templates by trigger name case-insensitively and by numeric id", function()
      local id = h.add_transactional(5, { subject = "Order {{ trigger.order_id }}",
        body = "{% for i in trigger.items %}{{ i.name }} {% endfor %}" })
      assert(h.api:send_email({ to = "ada@example.com", transactional_message_id = "PASSWORD_RESET", identifiers = { id = "u1" },
        message_data = { reset_url = "u", expiry_hours = 1 } }))
      assert(h.api:send_email({ to = "ada@example.com", transactional_message_id = id,
        identifiers = { email = "ada@example.com" },
        message_data = { order_id = "A1", items = { { name = "Tea" }, { name = "Cake" } } } }))
      local m = h.outbox()[2]
      assert.are.equal("Order A1", m.subject)
      assert.are.equal("Tea Cake ", m.body)
    end)

    it("returns Customer.io's error for a wrong transactional_message_id", function()
      local res, err = h.api:send_email({ to = "ada@example.com", transactional_message_id = 999, identifiers = { id = "u1" } })
      assert.is_nil(res)
      assert.are.equal(400, err.status)
      assert.are.equal('"transactional_message_id" not found', err.message)
      assert.are.equal(0, #h.outbox())
    end)

    it("fails the delivery when a Liquid variable is missing", function()
      local res = assert(h.api:send_email({ to = "ada@example.com", transactional_message_id = "password_reset",
        identifiers = { id = "u1" }, message_data = { expiry_hours = 24 } }))
      assert.are.equal(0, #h.outbox())
      local d = h.deliveries()[1]
      assert.are.equal(res.delivery_id, d.id)
      assert.are.equal("failed", d.status)
      assert.matches("trigger.reset_url", d.error)
    end)

    it("creates the person named by identifiers when missing", function()
      assert(h.api:send_email({ to = "new@example.com", transactional_message_id = "password_reset",
        identifiers = { email = "new@example.com" }, message_data = { reset_url = "u", expiry_hours = 1 } }))
      assert.is_not_nil(h.person("new@example.com"))
    end)

    it("sends push messages with their own templates", function()
      h.add_transactional(7, { type = "push", title = "Hi {{ customer.first_name }}", message = "{{ trigger.text }}" })
      assert(h.api:send_push({ transactional_message_id = 7, identifiers = { id = "u1" }, message_data = { text = "Ping" } }))
      local m = h.outbox()[1]
      assert.are.equal("push", m.type)
      assert.are.equal("Hi Ada", m.title)
      assert.are.equal("Ping", m.message)
    end)
  end)

  describe("broadcasts", function()
    before_each(function()
      h = make()
      h.add_segment({ id = 15, name = "Power users",
        filter = { attribute = { field = "engagement_tier", operator = "eq", value = "power_user" } } })
      h.add_broadcast(42, { segment = 15, template = {
        subject = "What's new in {{ trigger.version }}",
        body = "Hi {{ customer.first_name | default: 'there' }}: {{ trigger.changelog }}" } })
      assert(h.track:identify("p1", { email = "p1@example.com", first_name = "Ada", engagement_tier = "power_user" }))
      assert(h.track:identify("p2", { email = "p2@example.com", engagement_tier = "power_user", unsubscribed = true }))
      assert(h.track:identify("c1", { email = "c1@example.com", first_name = "Cy", engagement_tier = "casual" }))
    end)

    local function subjects()
      local out = {}
      for _, m in ipairs(h.outbox()) do out[#out + 1] = m.to .. " " .. m.subject end
      table.sort(out)
      return out
    end

    it("sends to its segment, skipping unsubscribed people", function()
      local res = assert(h.api:trigger_broadcast(42, { version = "2.0", changelog = "faster" }))
      assert.is_number(res.id)
      assert.are.same({ "p1@example.com What's new in 2.0" }, subjects())
      assert.are.equal("Hi Ada: faster", h.outbox()[1].body)
      local status = assert(h.api:get_broadcast_trigger_status(42, res.id))
      assert.are.equal(res.id, status.id)
      assert.is_number(status.processed_at)
      local triggers = assert(h.api:get_broadcast_triggers(42))
      assert.are.equal(1, #triggers.triggers)
    end)

    it("sends to a recipients filter", function()
      assert(h.api:trigger_broadcast(42, { version = "3", changelog = "x" },
        { attribute = { field = "first_name", operator = "eq", value = "Cy" } }))
      assert.are.same({ "c1@example.com What's new in 3" }, subjects())
    end)

    it("sends to a list of emails, honouring email_ignore_missing", function()
      local res = assert(h.api:trigger_broadcast(42, { version = "4", changelog = "x" },
        { emails = { "c1@example.com", "missing@example.com" } }))
      assert.are.same({ "c1@example.com What's new in 4" }, subjects())
      local errs = assert(h.api:get_broadcast_trigger_errors(42, res.id))
      assert.are.equal(1, #errs.errors)
      assert.are.equal("missing@example.com", errs.errors[1].email)
      local res2 = assert(h.api:trigger_broadcast(42, { version = "5", changelog = "x" },
        { emails = { "missing@example.com" }, email_ignore_missing = true }))
      assert.are.equal(0, #assert(h.api:get_broadcast_trigger_errors(42, res2.id)).errors)
    end)

    it("sends to ids with per-user data, honouring id_ignore_missing", function()
      local res = assert(h.api:trigger_broadcast(42, { version = "6", changelog = "shared" }, {
        per_user_data = { { id = "c1", data = { changelog = "just for Cy" } }, { id = "nobody", data = {} } },
        id_ignore_missing = true,
      }))
      assert.are.equal("Hi Cy: just for Cy", h.outbox()[1].body)
      assert.are.equal(0, #assert(h.api:get_broadcast_trigger_errors(42, res.id)).errors)
      assert(h.api:trigger_broadcast(42, { version = "7", changelog = "x" }, { ids = { "p1", "c1" } }))
      assert.are.equal(3, #h.outbox())
    end)

    it("reads a registered data file", function()
      h.add_data_file("https://example.com/list.jsonl", { { email = "c1@example.com", data = { changelog = "from file" } } })
      assert(h.api:trigger_broadcast(42, { version = "8" }, { data_file_url = "https://example.com/list.jsonl" }))
      assert.are.equal("Hi Cy: from file", h.outbox()[1].body)
    end)

    it("skips suppressed people", function()
      assert(h.track:suppress("p1"))
      assert(h.api:trigger_broadcast(42, { version = "9", changelog = "x" }))
      assert.are.same({}, subjects())
    end)

    it("returns 404 for an unknown broadcast", function()
      local res, err = h.api:trigger_broadcast(4242, { version = "1" })
      assert.is_nil(res)
      assert.are.equal(404, err.status)
      assert.matches("does not exist", err.message)
    end)
  end)

  describe("limits", function()
    local function broadcast_setup()
      h.add_broadcast(1, { segment = 1, template = { subject = "s", body = "b" } })
      h.add_segment({ id = 1, name = "all", filter = { attribute = { field = "email", operator = "exists" } } })
    end

    it("answers 429 with Retry-After (whole seconds) to a broadcast triggered again within its interval", function()
      h = make({ rate_limits = { broadcast_interval = 300 }, rate_limit = false, retry = false })
      broadcast_setup()
      assert(h.api:trigger_broadcast(1, {}))
      local res, err = h.api:trigger_broadcast(1, {})
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal("1", err.headers["retry-after"])
      assert.matches("broadcast 1 can be triggered once every 0.3 seconds", err.message, 1, true)
    end)

    it("answers 429 with Retry-After over the general App API limit", function()
      -- 0.01 per second: one request per 100 s, so the second is refused however slow the machine.
      h = make({ rate_limits = { app = 0.01 }, rate_limit = false, retry = false })
      assert(h.api:list_segments())
      local res, err = h.api:list_segments()
      assert.is_nil(res)
      assert.are.equal(429, err.status)
      assert.are.equal("100", err.headers["retry-after"])
      assert.are.equal("Your request is over the 0.01-per-second limit.", err.message)
    end)

    it("lets a client that keeps to the interval through (client limits spaced wider than the sandbox's)", function()
      h = make({ rate_limits = { broadcast_interval = 300 }, rate_limit = { broadcast_interval = 600 } })
      broadcast_setup()
      local clock = h.sb and function() return h.sb:clock_ms() end or core.monotonic_ms
      local t0 = clock()
      assert(h.api:trigger_broadcast(1, {}))
      assert(h.api:trigger_broadcast(1, {}))
      -- The second trigger started no earlier than its slot, 600 ms after the first's.
      assert.is_true(clock() - t0 >= 600)
    end)

    it("turns the limits off with rate_limits = false", function()
      h = make({ rate_limits = false, rate_limit = false })
      broadcast_setup()
      for _ = 1, 3 do assert(h.api:trigger_broadcast(1, {})) end
      for _ = 1, 15 do assert(h.api:list_segments()) end
    end)
  end)
end

describe("sandbox in-process", function()
  behaviours(in_process)

  it("enforces Customer.io's documented limits by default, with Retry-After", function()
    local sb = customerio.sandbox.new()
    local now = 0
    sb.clock_ms = function() return now end -- time stands still: the 11th call is within the second
    local api = customerio.APIClient.new("appkey", { transport = sb, rate_limit = false, retry = false })
    for _ = 1, 10 do assert(api:list_segments()) end
    local res, err = api:list_segments()
    assert.is_nil(res)
    assert.are.equal(429, err.status)
    assert.are.equal("Your request is over the 10-per-second limit.", err.message)
    assert.are.equal("1", err.headers["retry-after"])
    now = 100 -- one slot later, one more call is accepted
    assert(api:list_segments())
    assert.is_nil((api:list_segments()))
  end)

  it("lets a limited client (the default) wait its turn on the sandbox's clock, never refused", function()
    local sb = customerio.sandbox.new()
    local api = customerio.APIClient.new("appkey", { transport = sb })
    sb:add_broadcast(7, { segment = 1 })
    local t0 = sb:clock_ms()
    for _ = 1, 25 do assert(api:list_segments()) end
    for _ = 1, 3 do assert(api:trigger_broadcast(7)) end
    -- 25 calls at 10/s: the 25th slot is 2.4 s after the first; two more triggers 10 s apart.
    assert.is_true(sb:clock_ms() - t0 >= 2400 + 20000)
    for _, r in ipairs(sb.log) do assert.are_not.equal(429, r.status) end
  end)

  it("is a transport: requests take the client's path (JSON errors reach the caller)", function()
    local sb = customerio.sandbox.new()
    local res = sb:send({ method = "PUT", url = "https://track.customer.io/api/v1/customers/x",
      headers = { Authorization = "Basic " .. core.base64_encode("s:k") }, body = "{not json" })
    assert.are.equal(400, res.status)
    res = sb:send({ method = "GET", url = "https://api.customer.io/v1/nowhere",
      headers = { Authorization = "Bearer k" } })
    assert.are.equal(404, res.status)
    res = sb:send({ method = "PATCH", url = "https://api.customer.io/v1/segments",
      headers = { Authorization = "Bearer k" } })
    assert.are.equal(405, res.status)
  end)
end)

describe("sandbox over HTTP", function()
  behaviours(over_http)

  teardown(function()
    if http then http.stop() end
  end)
end)
