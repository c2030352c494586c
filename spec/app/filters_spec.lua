-- customerio.filters: each builder, each rule of the audience-filter grammar, and the
-- messages of its errors. Pure Lua: no server.
local customerio = require("customerio")
local core = require("customerio.core")

local f = customerio.filters

local function json(v)
  return assert(core.json_decode(assert(core.json_encode(v))))
end

describe("customerio.app.filters", function()
  describe("builders", function()
    it("segment(id)", function()
      assert.are.same({ segment = { id = 3 } }, f.segment(3))
      assert.are.same({ segment = { id = 12 } }, f.segment("12"))
    end)

    it("attribute(field, 'eq', value) with strings, numbers and booleans", function()
      assert.are.same({ attribute = { field = "plan", operator = "eq", value = "pro" } }, f.attribute("plan", "eq", "pro"))
      assert.are.same({ attribute = { field = "age", operator = "eq", value = 42 } }, f.attribute("age", "eq", 42))
      assert.are.same({ attribute = { field = "vip", operator = "eq", value = false } }, f.eq("vip", false))
    end)

    it("exists(field)", function()
      assert.are.same({ attribute = { field = "vip", operator = "exists" } }, f.exists("vip"))
      assert.are.same(f.exists("vip"), f.attribute("vip", "exists"))
    end)

    it("all_of, any_of: and / or lists that encode as JSON arrays", function()
      local a = f.all_of({ f.segment(1), f.segment(2) })
      assert.are.same({ ["and"] = { { segment = { id = 1 } }, { segment = { id = 2 } } } }, a)
      assert.are.equal('{"and":[{"segment":{"id":1}}]}', core.json_encode(f.all_of({ f.segment(1) })))
      assert.are.equal('{"or":[{"segment":{"id":1}}]}', core.json_encode(f.any_of({ f.segment(1) })))
    end)

    it("none_of(f) is not f; none_of{f1, f2} is not (f1 or f2)", function()
      assert.are.same({ ["not"] = { segment = { id = 4 } } }, f.none_of(f.segment(4)))
      assert.are.same({ ["not"] = { ["or"] = { { segment = { id = 4 } }, { segment = { id = 5 } } } } },
        f.none_of({ f.segment(4), f.segment(5) }))
    end)

    it("nest as the API allows: a list of lists of simple filters, not inside", function()
      local tree = f.all_of({
        f.segment(3),
        f.any_of({ f.attribute("plan", "eq", "pro"), f.none_of(f.segment(4)) }),
        f.none_of(f.any_of({ f.segment(5), f.exists("x") })),
      })
      assert.are.same(tree, json(tree))
      assert.are.equal(tree, f.validate(tree))
    end)

    it("produce plain tables that trigger_broadcast and exports accept as they are", function()
      local tree = f.any_of({ f.segment(1), f.exists("vip") })
      assert.is_nil(getmetatable(tree))
      assert.are.equal(tree, f.validate(json(tree)) and tree)
    end)
  end)

  describe("errors", function()
    local cases = {
      { "segment id is required", function() f.segment() end },
      { "segment id must be an integer, got 1.5", function() f.segment(1.5) end },
      { "segment id must be an integer, got abc", function() f.segment("abc") end },
      { 'filter: value is required with operator "eq" (attribute "plan")', function() f.attribute("plan", "eq") end },
      { 'filter: value is required with operator "eq" (attribute "plan")',
        function() f.attribute("plan", "eq", customerio.null) end },
      { 'filter: attribute operator must be "eq" or "exists", got "gt"', function() f.attribute("age", "gt", 3) end },
      { 'filter: attribute operator is required ("eq" or "exists")', function() f.attribute("age") end },
      { 'filter: operator "exists" takes no value (attribute "vip")', function() f.attribute("vip", "exists", true) end },
      { "filter: attribute field is required", function() f.exists("") end },
      { "filter: attribute field must be a string", function() f.exists(3) end },
      { "filter: attribute value must be a string, a number or a boolean, got table",
        function() f.eq("tags", { "a" }) end },
      { "all_of takes a list of filters, e.g. all_of{ f.segment(1), f.segment(2) }", function() f.all_of(f.segment(1)) end },
      { "any_of takes a list of filters, e.g. any_of{ f.segment(1), f.segment(2) }", function() f.any_of("x") end },
      { 'filter: "and" must hold at least one filter', function() f.all_of({}) end },
      { 'filter: "or" must hold at least one filter', function() f.any_of({}) end },
      { 'filter.and[1].or[1]: "and" lists nest at most two deep',
        function() f.all_of({ f.any_of({ f.all_of({ f.segment(1) }) }) }) end },
      { 'filter.or[1].not.and[1]: "or" lists nest at most two deep',
        function() f.any_of({ f.none_of(f.all_of({ f.any_of({ f.segment(1) }) })) }) end },
      { 'filter.not: "not" cannot hold another "not"', function() f.none_of(f.none_of(f.segment(1))) end },
      { "filter.and[2]: a filter must be a table, got string", function() f.all_of({ f.segment(1), "x" }) end },
      { 'filter.and[1]: a filter holds exactly one of "and", "or", "not", "segment", "attribute"',
        function() f.all_of({ { segment = { id = 1 }, attribute = { field = "a", operator = "exists" } } }) end },
    }
    for _, c in ipairs(cases) do
      it(c[1], function() assert.has_error(c[2], c[1]) end)
    end

    it("validate() checks tables from elsewhere and names them", function()
      local cases2 = {
        { 'recipients: unknown filter "segmnet" (expected one of "and", "or", "not", "segment", "attribute")',
          { segmnet = { id = 1 } } },
        { 'recipients: empty filter (expected one of "and", "or", "not", "segment", "attribute")', {} },
        { 'recipients: unknown segment field "name"', { segment = { id = 1, name = "x" } } },
        { 'recipients: unknown attribute field "op"', { attribute = { field = "a", op = "eq" } } },
        { "recipients: segment must be a table like {id = 3}", { segment = 3 } },
        { 'recipients: "and" must hold a list of filters', { ["and"] = { x = { segment = { id = 1 } } } } },
        { "recipients.or[1]: segment id is required", { ["or"] = { { segment = {} } } } },
      }
      for _, c in ipairs(cases2) do
        assert.has_error(function() f.validate(c[2], "recipients") end, c[1])
      end
      assert.has_error(function() f.validate({}) end,
        'filter: empty filter (expected one of "and", "or", "not", "segment", "attribute")')
    end)
  end)
end)
