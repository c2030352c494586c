-- customerio.operations (customerio.track.operations after the layout move): the Track v2
-- operation builders and validate, without I/O: the tables they build, the documented limits
-- they enforce (each at its exact boundary), and their error messages.
local ops = require("customerio.track.operations")
local core = require("customerio.core")

local function fails(fn, message)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error: " .. message)
  assert.are.equal(message, err)
end

describe("operations builders", function()
  it("build identify with identifiers from an id or a table of one identifier", function()
    assert.are.same({ type = "person", action = "identify", identifiers = { id = "42" }, attributes = { plan = "pro" } },
      ops.identify(42, { plan = "pro" }))
    assert.are.same({ type = "person", action = "identify", identifiers = { email = "a@b.c" } },
      ops.identify({ email = "a@b.c" }))
    assert.are.same({ phone = "+15555550123" }, ops.identify({ phone = "+15555550123" }).identifiers)
    fails(function() ops.identify({ id = "1", email = "a@b.c" }) end,
      "customer_id must hold exactly one identifier (id, email, cio_id or phone)")
    fails(function() ops.identify({}) end, "customer_id must hold exactly one identifier (id, email, cio_id or phone)")
    fails(function() ops.identify("  ") end, "customer_id is required")
    fails(function() ops.identify(true) end, "customer_id must be a string or a number, got boolean")
  end)

  it("convert created_at and timestamps to seconds and refuse milliseconds", function()
    local op = ops.identify("1", { created_at = "2024-01-02T03:04:05Z" }, { timestamp = 1700000000 })
    assert.are.equal(1704164645, op.attributes.created_at)
    assert.are.equal(1700000000, op.timestamp)
    assert.has_error(function() ops.identify("1", nil, { timestamp = 1700000000000 }) end)
  end)

  it("give events a ULID id unless one is given", function()
    local a, b = ops.event("1", "purchase", { price = 1 }), ops.event("1", "purchase")
    assert.matches("^[0-9A-HJKMNP-TV-Z]+$", a.id)
    assert.are.equal(26, #a.id)
    assert.are_not.equal(a.id, b.id)
    assert.are.same({ price = 1 }, a.attributes)
    assert.are.equal("mine", ops.event("1", "x", nil, { id = "mine" }).id)
    assert.are.equal("page", ops.page("1", "https://example.com/" .. string.rep("p", 200)).action)
  end)

  it("limit event names to 100 bytes, except page URLs", function()
    assert.is_truthy(ops.event("1", string.rep("e", 100)))
    fails(function() ops.event("1", string.rep("e", 101)) end, "name is 101 bytes; the limit for an event name is 100 bytes")
    fails(function() ops.screen("1", string.rep("s", 101)) end, "name is 101 bytes; the limit for an event name is 100 bytes")
    fails(function() ops.event("1", "") end, "name is required")
  end)

  it("limit identifiers to 150 bytes and attribute names and values to 150 and 1000", function()
    assert.is_truthy(ops.identify(string.rep("i", 150)))
    fails(function() ops.identify(string.rep("i", 151)) end,
      "customer_id is 151 bytes; the limit for a person identifier is 150 bytes")
    -- Customer.io documents the 150-byte limit for `id` only: a long email is an identifier too.
    assert.is_truthy(ops.identify({ email = string.rep("e", 151) }))
    assert.is_truthy(ops.identify("1", { [string.rep("k", 150)] = string.rep("v", 1000) }))
    fails(function() ops.identify("1", { note = string.rep("v", 1001) }) end,
      "attributes.note is 1001 bytes; the limit for an attribute value is 1000 bytes")
    assert.has_error(function() ops.identify("1", { [string.rep("k", 151)] = 1 }) end)
  end)

  it("limit event data to 100 000 bytes of JSON and name what cannot be encoded", function()
    fails(function() ops.event("1", "big", { s = string.rep("x", 100000) }) end,
      "data is more than 100000 bytes as JSON; the limit is 100000 bytes")
    local ok, err = pcall(ops.event, "1", "nan", { price = 0 / 0 })
    assert.is_false(ok)
    assert.matches("data.price", err, 1, true)
  end)

  it("build devices as customerio-node's addDevice does", function()
    assert.are.same({ type = "person", action = "add_device", identifiers = { id = "1" },
      device = { token = "tok", platform = "ios", last_used = 1700000000, attributes = { app_version = "2" } } },
      ops.add_device("1", "tok", "ios", { last_used = 1700000000, app_version = "2" }))
    -- last_used = 0 is sent, as customerio-node 5.2.0 sends any last_used that is not null.
    assert.are.same({ token = "tok", platform = "android", last_used = 0 },
      ops.add_device("1", "tok", "android", { last_used = 0 }).device)
    assert.are.same({ token = "t" }, ops.delete_device("1", "t").device)
    fails(function() ops.add_device("1", "", "ios") end, "token is required")
  end)

  it("check merges and objects", function()
    assert.are.same({ type = "person", action = "merge", primary = { email = "a@b.c" }, secondary = { id = "7" } },
      ops.merge("email", "a@b.c", "id", "7"))
    fails(function() ops.merge("phone", "1", "id", "2") end,
      'primary_id_type and secondary_id_type must be one of "id", "cio_id", or "email"')
    assert.are.same({ object_type_id = "1", object_id = "acme" },
      ops.object_identify({ object_type_id = "1", object_id = "acme" }).identifiers)
    fails(function() ops.object_identify({ object_type_id = "1" }) end, "object.object_id is required")
    fails(function() ops.object_add_relationships({ cio_object_id = "x" }, {}) end, "relationships is required")
    fails(function() ops.delivery_event("d1", "clicked") end, 'metric must be one of "opened", "converted" or "delivered"')
    assert.are.equal("opened", ops.delivery_event("d1", "opened").name)
  end)
end)

describe("operations.validate", function()
  it("checks a hand-written operation and returns it with its JSON", function()
    local op = { type = "person", action = "identify", identifiers = { id = "1" }, attributes = { a = 1 } }
    local checked, json = ops.validate(op)
    assert.are.equal(op, checked) -- nothing to change: the same table
    assert.are.same(op, core.json_decode(json))
  end)

  it("adds an event id and converts timestamps on a copy, leaving the caller's table alone", function()
    local op = { type = "person", action = "event", identifiers = { id = "1" }, name = "x", timestamp = "2024-01-02T03:04:05Z" }
    local checked = ops.validate(op)
    assert.are_not.equal(op, checked)
    assert.is_nil(op.id)
    assert.are.equal("2024-01-02T03:04:05Z", op.timestamp)
    assert.are.equal(26, #checked.id)
    assert.are.equal(1704164645, checked.timestamp)
    assert.is_nil((ops.validate(op, "op", false)).id)
  end)

  it("names the operation in its errors", function()
    fails(function() ops.validate({}, "operations[3]") end, "operations[3] is required")
    fails(function() ops.validate({ type = "person" }, "operations[3]") end, "operations[3].action is required")
    fails(function()
      ops.validate({ type = "person", action = "event", identifiers = { id = "1" }, name = string.rep("n", 101) }, "ops[1]")
    end, "ops[1].name is 101 bytes; the limit for an event name is 100 bytes")
    fails(function()
      ops.validate({ type = "person", action = "delete", identifiers = { id = string.rep("i", 151) } }, "ops[2]")
    end, "ops[2].identifiers.id is 151 bytes; the limit for a person identifier is 150 bytes")
  end)

  it("refuses one operation over 32 KB", function()
    local op = { type = "object", action = "identify", identifiers = { cio_object_id = "o" },
      attributes = { blob = string.rep("x", 32 * 1024) } }
    local ok, err = pcall(ops.validate, op, "op")
    assert.is_false(ok)
    assert.matches("^op is more than 32768 bytes as JSON; the limit is 32768 bytes$", err)
  end)
end)
