-- Argument validation and documented limits of the Track client and the v2 operation
-- builders: each bad call raises with its message (customerio-node's wording, our snake_case
-- parameter names) and nothing reaches the server.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")

local ops = customerio.operations

local function new_track(opts)
  opts = opts or {}
  opts.url = server.url() .. "/api/v1"
  opts.retry = false
  return customerio.TrackClient.new("site_123", "trackkey_456", opts)
end

local function json_len(v)
  return #core.json_encode(v)
end

local MS = "looks like milliseconds; Customer.io expects seconds since the Unix epoch (divide by 1000)"
local TYPES = 'primary_id_type and secondary_id_type must be one of "id", "cio_id", or "email"'
local ID_TYPE = 'id_type must be one of "id", "cio_id", or "email"'
local big_event = { blob = string.rep("x", 100000) }      -- 100,011 bytes as JSON
local op_32k = { type = "person", action = "event", identifiers = { id = "1" }, name = "e", id = "x",
  attributes = { blob = string.rep("x", 32 * 1024) } }

-- { description, call(track), expected message }
local refused = {
  -- people
  { "identify without customer_id", function(t) t:identify(nil, {}) end, "customer_id is required" },
  { "identify with a blank customer_id", function(t) t:identify("  ") end, "customer_id is required" },
  { "identify with a NaN customer_id", function(t) t:identify(0 / 0) end, "customer_id is required" },
  { "identify with a table as customer_id", function(t) t:identify({}) end,
    "customer_id must be a string or a number, got table" },
  { "identify with data not a table", function(t) t:identify("1", "x") end, "data must be a table, got string" },
  { "destroy without customer_id", function(t) t:destroy() end, "customer_id is required" },
  { "delete without customer_id", function(t) t:delete("") end, "customer_id is required" },
  { "suppress without customer_id", function(t) t:suppress(nil) end, "customer_id is required" },
  { "unsuppress without customer_id", function(t) t:unsuppress(nil) end, "customer_id is required" },
  -- events
  { "track without customer_id", function(t) t:track(nil, { name = "a" }) end, "customer_id is required" },
  { "track without data", function(t) t:track("1") end, "data.name is required" },
  { "track without data.name", function(t) t:track("1", { data = {} }) end, "data.name is required" },
  { "track with a blank name", function(t) t:track("1", "", {}) end, "name is required" },
  { "track with an unknown data.type", function(t) t:track("1", { name = "a", type = "click" }) end,
    'data.type must be one of "event", "page" or "screen"' },
  { "track with an unknown opts.type", function(t) t:track("1", "a", nil, { type = "click" }) end,
    'opts.type must be one of "event", "page" or "screen"' },
  { "track with data not a table", function(t) t:track("1", "a", "x") end, "data must be a table, got string" },
  { "track with opts not a table", function(t) t:track("1", "a", nil, 5) end, "opts must be a table, got number" },
  { "track_anonymous without data.name", function(t) t:track_anonymous("a", {}) end, "data.name is required" },
  { "track_anonymous without data", function(t) t:track_anonymous("a") end, "data.name is required" },
  { "track_anonymous with a table anonymous_id", function(t) t:track_anonymous({}, { name = "a" }) end,
    "anonymous_id must be a string or a number, got table" },
  { "track_page_view without customer_id", function(t) t:track_page_view(nil, "/") end, "customer_id is required" },
  { "track_page_view without path", function(t) t:track_page_view("1", nil) end, "path is required" },
  { "track_page_view with a number as path", function(t) t:track_page_view("1", 5) end, "path must be a string" },
  { "track_screen without customer_id", function(t) t:track_screen(nil, "Home") end, "customer_id is required" },
  { "track_screen without name", function(t) t:track_screen("1") end, "name is required" },
  { "track_push with data not a table", function(t) t:track_push("x") end, "data must be a table, got string" },
  -- devices
  { "add_device without customer_id", function(t) t:add_device(nil, "tok", "ios") end, "customer_id is required" },
  { "add_device without device_id", function(t) t:add_device("1", nil, "ios") end, "device_id is required" },
  { "add_device without platform", function(t) t:add_device("1", "tok", " ") end, "platform is required" },
  { "add_device with data not a table", function(t) t:add_device("1", "tok", "ios", "x") end,
    "data must be a table, got string" },
  { "delete_device without customer_id", function(t) t:delete_device(nil, "tok") end, "customer_id is required" },
  { "delete_device without device_token", function(t) t:delete_device("1") end, "device_token is required" },
  -- merge
  { "merge_customers without primary_id", function(t) t:merge_customers("id", nil, "id", "2") end,
    "primary_id is required" },
  { "merge_customers without secondary_id", function(t) t:merge_customers("id", "1", "id", "") end,
    "secondary_id is required" },
  { "merge_customers with a bad primary_id_type", function(t) t:merge_customers("phone", "1", "id", "2") end, TYPES },
  { "merge_customers with a bad secondary_id_type", function(t) t:merge_customers("id", "1", "ID", "2") end, TYPES },
  { "merge_customers without id types", function(t) t:merge_customers(nil, "1", nil, "2") end, TYPES },
  -- v2
  { "batch without operations", function(t) t:batch() end, "operations is required" },
  { "batch with an empty list", function(t) t:batch({}) end, "operations is required" },
  { "batch with a string", function(t) t:batch("x") end, "operations is required" },
  { "batch with an empty operation", function(t) t:batch({ {} }) end, "operations[1] is required" },
  { "batch with an operation without action", function(t) t:batch({ ops.delete("1"), { type = "person" } }) end,
    "operations[2].action is required" },
  { "batch with an operation without type", function(t) t:batch({ { action = "delete" } }) end,
    "operations[1].type is required" },
  { "batch with an event without name", function(t)
      t:batch({ { type = "person", action = "event", identifiers = { id = "1" } } })
    end, "operations[1].name is required" },
  { "entity without operation", function(t) t:entity() end, "operation is required" },
  { "entity with an empty table", function(t) t:entity({}) end, "operation is required" },
  { "entity with an operation without action", function(t) t:entity({ type = "person" }) end,
    "operation.action is required" },
  -- segments, forms, metrics, unsubscribe
  { "add_customers_to_segment without segment_id", function(t) t:add_customers_to_segment(nil, { "a" }) end,
    "segment_id is required" },
  { "add_customers_to_segment without customer_ids", function(t) t:add_customers_to_segment(7) end,
    "customer_ids is required" },
  { "add_customers_to_segment with no ids", function(t) t:add_customers_to_segment(7, {}) end,
    "customer_ids is required" },
  { "add_customers_to_segment with a bad id_type", function(t) t:add_customers_to_segment(7, { "a" }, "phone") end,
    ID_TYPE },
  { "add_customers_to_segment with a table among the ids", function(t) t:add_customers_to_segment(7, { "a", {} }) end,
    "customer_ids[2] must be a string or a number, got table" },
  { "remove_customers_from_segment without segment_id", function(t) t:remove_customers_from_segment("", { "a" }) end,
    "segment_id is required" },
  { "remove_customers_from_segment without customer_ids", function(t) t:remove_customers_from_segment(7, nil) end,
    "customer_ids is required" },
  { "remove_customers_from_segment with a bad id_type", function(t) t:remove_customers_from_segment(7, { "a" }, 1) end,
    ID_TYPE },
  { "submit_form without form_id", function(t) t:submit_form(nil, { email = "a" }) end, "form_id is required" },
  { "submit_form without data", function(t) t:submit_form("f") end, "data is required" },
  { "report_metric without data", function(t) t:report_metric() end, "data.delivery_id is required" },
  { "report_metric without delivery_id", function(t) t:report_metric({ metric = "opened" }) end,
    "data.delivery_id is required" },
  { "unsubscribe without delivery_id", function(t) t:unsubscribe() end, "delivery_id is required" },
  { "unsubscribe with a string flag", function(t) t:unsubscribe("d", "yes") end, "unsubscribe must be a boolean" },

  -- documented limits
  { "a person id over 150 bytes", function(t) t:identify(string.rep("x", 151)) end,
    "customer_id is 151 bytes; the limit for a person identifier is 150 bytes" },
  { "a person id over 150 bytes in an event", function(t) t:track(string.rep("x", 200), "e") end,
    "customer_id is 200 bytes; the limit for a person identifier is 150 bytes" },
  { "an attribute name over 150 bytes", function(t) t:identify("1", { [string.rep("a", 151)] = 1 }) end,
    string.format("data: attribute name %q is 151 bytes; the limit is 150 bytes", string.rep("a", 40) .. "...") },
  { "an attribute value over 1000 bytes", function(t) t:identify("1", { bio = string.rep("x", 1001) }) end,
    "data.bio is 1001 bytes; the limit for an attribute value is 1000 bytes" },
  { "an event name over 100 bytes", function(t) t:track("1", string.rep("e", 101)) end,
    "name is 101 bytes; the limit for an event name is 100 bytes" },
  { "an event name over 100 bytes (Node form)", function(t) t:track("1", { name = string.rep("e", 101) }) end,
    "data.name is 101 bytes; the limit for an event name is 100 bytes" },
  { "a screen name over 100 bytes", function(t) t:track_screen("1", string.rep("e", 101)) end,
    "name is 101 bytes; the limit for an event name is 100 bytes" },
  { "an anonymous event name over 100 bytes", function(t) t:track_anonymous("a", string.rep("e", 101)) end,
    "name is 101 bytes; the limit for an event name is 100 bytes" },
  { "event data over 100,000 bytes", function(t) t:track("1", "e", big_event) end,
    "data is " .. json_len(big_event) .. " bytes as JSON; the limit is 100000 bytes" },
  { "event data over 100,000 bytes (Node form)", function(t) t:track("1", { name = "e", data = big_event }) end,
    "data.data is " .. json_len(big_event) .. " bytes as JSON; the limit is 100000 bytes" },
  { "a v2 entity over 32 KB", function(t) t:entity(op_32k) end,
    "operation is " .. json_len(op_32k) .. " bytes as JSON; the limit is 32768 bytes" },
  { "a v2 batch operation over 32 KB", function(t) t:batch({ ops.delete("1"), op_32k }) end,
    "operations[2] is " .. json_len(op_32k) .. " bytes as JSON; the limit is 32768 bytes" },
  { "a v2 batch over 500 KB", function(t)
      local list = {}
      for i = 1, 20 do list[i] = ops.event("1", "e", { blob = string.rep("x", 30000) }) end
      t:batch(list)
    end, "^the batch is %d+ bytes as JSON; the limit is 512000 bytes %(send fewer operations per batch%)$" },
  { "more than 1000 segment ids", function(t)
      local ids = {}
      for i = 1, 1001 do ids[i] = "c" .. i end
      t:add_customers_to_segment(7, ids)
    end, "customer_ids has 1001 ids; the limit is 1000 per request" },
  { "a v2 person id over 150 bytes", function(t)
      t:entity({ type = "person", action = "identify", identifiers = { email = string.rep("e", 151) } })
    end, "operation.identifiers.email is 151 bytes; the limit for a person identifier is 150 bytes" },
  { "a v2 attribute value over 1000 bytes", function(t)
      t:batch({ { type = "person", action = "identify", identifiers = { id = "1" },
        attributes = { x = string.rep("v", 1001) } } })
    end, "operations[1].attributes.x is 1001 bytes; the limit for an attribute value is 1000 bytes" },
  { "a v2 event name over 100 bytes", function(t)
      t:entity({ type = "person", action = "event", identifiers = { id = "1" }, name = string.rep("e", 101) })
    end, "operation.name is 101 bytes; the limit for an event name is 100 bytes" },

  -- timestamps
  { "milliseconds in opts.timestamp", function(t) t:track("1", "e", nil, { timestamp = 1700000000000 }) end,
    "opts.timestamp 1700000000000 " .. MS },
  { "milliseconds in data.timestamp", function(t) t:track("1", { name = "e", timestamp = 1700000000123 }) end,
    "data.timestamp 1700000000123 " .. MS },
  { "milliseconds in an anonymous event", function(t) t:track_anonymous("a", { name = "e", timestamp = 1.7e12 }) end,
    "data.timestamp 1700000000000 " .. MS },
  { "milliseconds in created_at", function(t) t:identify("1", { created_at = 1700000000000 }) end,
    "data.created_at 1700000000000 " .. MS },
  { "milliseconds in _timestamp", function(t) t:identify("1", { _timestamp = "1700000000000" }) end,
    "data._timestamp 1700000000000 " .. MS },
  { "milliseconds in last_used", function(t) t:add_device("1", "tok", "ios", { last_used = 1700000000000 }) end,
    "data.last_used 1700000000000 " .. MS },
  { "milliseconds in a push metric", function(t) t:track_push({ timestamp = 1700000000000 }) end,
    "data.timestamp 1700000000000 " .. MS },
  { "milliseconds in a delivery metric", function(t) t:report_metric({ delivery_id = "d", timestamp = 1700000000000 }) end,
    "data.timestamp 1700000000000 " .. MS },
  { "milliseconds in a v2 operation", function(t)
      t:batch({ { type = "person", action = "identify", identifiers = { id = "1" }, timestamp = 1700000000000 } })
    end, "operations[1].timestamp 1700000000000 " .. MS },
  { "milliseconds in a v2 device", function(t)
      t:entity({ type = "person", action = "add_device", identifiers = { id = "1" },
        device = { token = "t", platform = "ios", last_used = 1700000000000 } })
    end, "operation.device.last_used 1700000000000 " .. MS },
  { "a string that is no date", function(t) t:identify("1", { created_at = "yesterday" }) end,
    'data.created_at is not an ISO-8601 date-time (e.g. "2023-11-14T22:13:20Z"): "yesterday"' },
}

-- Builders: the same checks, no client involved.
local builders = {
  { "identify without id", function() ops.identify(nil) end, "customer_id is required" },
  { "identifiers with two keys", function() ops.identify({ id = "1", email = "a@example.com" }) end,
    "customer_id must hold exactly one identifier (id, email, cio_id or phone)" },
  { "empty identifiers", function() ops.delete({}) end,
    "customer_id must hold exactly one identifier (id, email, cio_id or phone)" },
  { "a blank identifier", function() ops.suppress({ email = "" }) end, "customer_id.email is required" },
  { "a long identifier", function() ops.unsuppress({ id = string.rep("x", 151) }) end,
    "customer_id.id is 151 bytes; the limit for a person identifier is 150 bytes" },
  { "an attribute value over 1000 bytes", function() ops.identify("1", { x = string.rep("v", 1001) }) end,
    "attributes.x is 1001 bytes; the limit for an attribute value is 1000 bytes" },
  { "an event without name", function() ops.event("1") end, "name is required" },
  { "a screen name over 100 bytes", function() ops.screen("1", string.rep("s", 101)) end,
    "name is 101 bytes; the limit for an event name is 100 bytes" },
  { "event data not a table", function() ops.event("1", "e", 5) end, "data must be a table, got number" },
  { "milliseconds in an event", function() ops.event("1", "e", nil, { timestamp = 1700000000000 }) end,
    "opts.timestamp 1700000000000 " .. MS },
  { "a device without token", function() ops.add_device("1", nil, "ios") end, "token is required" },
  { "a device without platform", function() ops.add_device("1", "t") end, "platform is required" },
  { "delete_device without token", function() ops.delete_device("1") end, "token is required" },
  { "a merge with a bad type", function() ops.merge("phone", "1", "id", "2") end, TYPES },
  { "a merge without secondary", function() ops.merge("id", "1", "id") end, "secondary_id is required" },
  { "relationships missing", function() ops.add_relationships("1") end, "relationships is required" },
  { "relationships empty", function() ops.object_add_relationships({ cio_object_id = "o" }, {}) end,
    "relationships is required" },
  { "an object without object_id", function() ops.object_identify({ object_type_id = "1" }) end,
    "object.object_id is required" },
  { "an object without identifiers", function() ops.object_delete() end, "object is required" },
  { "a delivery event with an unknown metric", function() ops.delivery_event("d", "clicked") end,
    'metric must be one of "opened", "converted" or "delivered"' },
  { "a delivery event without id", function() ops.delivery_event(nil, "opened") end, "delivery_id is required" },
  { "validate without type", function() ops.validate({ action = "x" }) end, "operation.type is required" },
}

local function message_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error")
  return err
end

describe("Track validation", function()
  before_each(function() server.reset() end)

  for _, c in ipairs(refused) do
    it("refuses " .. c[1] .. " and sends nothing", function()
      local track = new_track()
      local err = message_of(c[2], track)
      assert.is_string(err)
      if c[3]:sub(1, 1) == "^" then
        assert.is_truthy(err:find(c[3]), err)
      else
        assert.are.equal(c[3], err)
      end
      assert.are.equal(0, server.count())
    end)
  end

  for _, c in ipairs(builders) do
    it("operations: refuses " .. c[1], function()
      assert.are.equal(c[3], message_of(c[2]))
    end)
  end

  describe("accepts values at the limits", function()
    it("150-byte ids and attribute names, 1000-byte values, 100-byte names, 1000 segment ids", function()
      local track = new_track()
      assert(track:identify(string.rep("x", 150), { [string.rep("a", 150)] = string.rep("v", 1000) }))
      assert(track:track("1", string.rep("e", 100)))
      local ids = {}
      for i = 1, 1000 do ids[i] = i end
      assert(track:add_customers_to_segment(7, ids))
      assert.are.equal(1000, #server.last().json.ids)
      assert.are.equal(3, server.count())
    end)

    it("a page name (a URL) longer than 100 bytes", function()
      local track = new_track()
      local url = "https://example.com/" .. string.rep("p", 200)
      assert(track:track_page_view("1", url))
      assert.are.equal(url, server.last().json.name)
    end)

    it("nested attribute values are left to Customer.io", function()
      local track = new_track()
      local list = {}
      for i = 1, 300 do list[i] = "item" .. i end
      assert(track:identify("1", { tags = list, cio_relationships = { action = "add_relationships",
        relationships = { { identifiers = { object_type_id = "1", object_id = string.rep("o", 100) } } } } }))
    end)
  end)
end)
