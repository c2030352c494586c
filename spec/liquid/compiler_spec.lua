-- customerio.liquid.compiler: parsed templates compiled to closures and run against a render
-- context directly (what customerio.liquid's Template:render sets up): loop slots, scoping,
-- the undefined-variable report, strict mode, limits, and value lookups.
local parser = require("customerio.liquid.parser")
local compiler = require("customerio.liquid.compiler")
local liquid = require("customerio.liquid")

local function context(data, opts)
  return {
    data = data or {}, locals = {}, counters = {}, lv = {}, fl = {}, out = {}, n = 0, size = 0, steps = 0,
    max_steps = opts.max_steps or 100000, max_output = opts.max_output or 1024 * 1024,
    mem = 0, max_memory = opts.max_memory or liquid.MAX_MEMORY,
    strict = opts.strict or false, report = { undefined = {}, filters = {}, tags = {} },
    seen = {}, cycles = {}, offsets = {}, now = 0, liquid = liquid, depth = 0,
  }
end

-- Compile and run; returns the output (or nil and the error), the context and the compile info.
local function run(source, data, opts)
  opts = opts or {}
  local fn, info = compiler.compile(parser.parse(source), liquid.filters, { strict = opts.strict })
  local ctx = context(data, opts)
  local ok, err = pcall(fn, ctx)
  if not ok then return nil, err, info end
  return table.concat(ctx.out, "", 1, ctx.n), ctx, info
end

describe("compiler.compile", function()
  it("renders outputs, filters and conditions against ctx.data", function()
    assert.are.equal("Hi ADA (3)", (run("Hi {{ c.name | upcase }} ({{ c.n }})", { c = { name = "Ada", n = 3 } })))
    assert.are.equal("yes", (run("{% if a > 1 and b %}yes{% else %}no{% endif %}", { a = 2, b = true })))
  end)

  it("gives loop variables their own slots: nested loops with one name shadow and restore", function()
    local out = run("{% for i in (1..2) %}[{{ i }}{% for i in (7..8) %}{{ i }}{% endfor %}{{ i }}]{% endfor %}{{ i }}",
      { i = "data" })
    assert.are.equal("[1781][2782]data", out)
  end)

  it("exposes forloop, break and continue", function()
    assert.are.equal("1/3 2/3 ", (run("{% for x in (5..9) %}{% if forloop.index == 3 %}{% break %}{% endif %}" ..
      "{{ forloop.index }}/{{ forloop.length | minus: 2 }} {% endfor %}")))
    assert.are.equal("57", (run("{% for x in (5..7) %}{% if x == 6 %}{% continue %}{% endif %}{{ x }}{% endfor %}")))
  end)

  it("lets an assignment inside a loop be read after it, and keeps data untouched", function()
    local data = { n = "orig" }
    local out, ctx = run("{% for x in (1..3) %}{% assign n = x %}{% endfor %}{{ n }}", data)
    assert.are.equal("3", out)
    assert.are.equal("orig", data.n)
    assert.are.equal(3, ctx.locals.n)
  end)

  it("records each undefined variable once per place, with its position", function()
    local out, ctx = run("{{ a }}\n{% for x in (1..3) %}{{ b.c }}{% endfor %}")
    assert.are.equal("\n", out)
    assert.are.same({ { variable = "a", line = 1, column = 4 }, { variable = "b.c", line = 2, column = 25 } },
      ctx.report.undefined)
  end)

  it("raises for an undefined variable in strict mode", function()
    local out, err = run("x\n  {{ missing.key }}", {}, { strict = true })
    assert.is_nil(out)
    assert.are.equal("undefined_variable", err.kind)
    assert.are.equal("missing.key", err.variable)
    assert.are.equal("line 2, column 6: undefined variable 'missing.key'", tostring(err))
  end)

  it("lists unknown filters with their position at compile time", function()
    local out, _, info = run("{{ 'a' | nope }}\n{{ 'b' | upcase | nada: 1 }}")
    assert.are.equal("ab", out:gsub("%s", ""):lower())
    local names = {}
    for i, f in ipairs(info.unknown_filters) do names[i] = f.filter .. "@" .. f.line end
    assert.are.same({ "nope@1", "nada@2" }, names)
  end)

  it("stops a render at the iteration and output limits", function()
    local out, err = run("{% for i in (1..1000) %}{% endfor %}", {}, { max_steps = 100 })
    assert.is_nil(out)
    assert.are.equal("limit", err.kind)
    out, err = run("{% for i in (1..100) %}0123456789{% endfor %}", {}, { max_output = 500 })
    assert.is_nil(out)
    assert.are.equal("limit", err.kind)
  end)
end)

describe("compiler.index", function()
  local index = compiler.index

  it("reads hashes, and size/first as properties only when the key is absent", function()
    assert.are.same({ 1, true }, { index({ a = 1 }, "a", true) })
    assert.are.same({ 2, true }, { index({ a = 1, b = 2 }, "size", true) })
    assert.are.same({ 9, true }, { index({ size = 9 }, "size", true) })
    assert.are.same({ nil, false }, { index({ a = 1 }, "size", false) }) -- ["size"] is a plain lookup
  end)

  it("reads arrays by zero-based and negative index, and their size, first and last", function()
    local arr = { "a", "b", "c" }
    assert.are.same({ "a", true }, { index(arr, 0) })
    assert.are.same({ "c", true }, { index(arr, -1) })
    assert.are.same({ nil, false }, { index(arr, 3) })
    assert.are.same({ nil, false }, { index(arr, -4) })
    assert.are.same({ nil, false }, { index(arr, 0.5) })
    assert.are.same({ 3, true }, { index(arr, "size", true) })
    assert.are.same({ "c", true }, { index(arr, "last", true) })
  end)

  it("measures strings in characters", function()
    assert.are.same({ 3, true }, { index("héé", "size", true) })
    assert.are.same({ "é", true }, { index("éa", "first", true) })
    assert.are.same({ nil, false }, { index("abc", 0) })
  end)

  it("finds nothing in numbers, booleans and nil", function()
    assert.are.same({ nil, false }, { index(5, "size", true) })
    assert.are.same({ nil, false }, { index(true, "x", true) })
    assert.are.same({ nil, false }, { index(nil, "x", true) })
  end)
end)
