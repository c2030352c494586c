-- customerio.liquid.lexer: templates split into text/tag/output tokens with their byte
-- offsets, offsets mapped to line and column, and tag markup split into expression tokens.
local lexer = require("customerio.liquid.lexer")

local function kinds(tokens)
  local out = {}
  for i, t in ipairs(tokens) do out[i] = t.kind .. ":" .. t.s .. "@" .. t.pos end
  return out
end

local function types(toks)
  local out = {}
  for i, t in ipairs(toks) do out[i] = t.type == t.value and t.type or (t.type .. "=" .. t.value) end
  return out
end

describe("lexer.tokenize", function()
  it("splits text, outputs and tags, keeping byte offsets", function()
    assert.are.same({ "text:a @1", "output:{{ x }}@3", "text: b@10", "tag:{% if y %}@12", "text:é@22",
      "tag:{%- endif -%}@24" }, kinds(lexer.tokenize("a {{ x }} b{% if y %}é{%- endif -%}")))
  end)

  it("ends a tag at the first %} and an output at the first }}, as Shopify Liquid does", function()
    assert.are.same({ "tag:{% a '%}@1", "text:' %}@9" }, kinds(lexer.tokenize("{% a '%}' %}")))
    assert.are.same({ "output:{{ 'a}}@1", "text:' }}@8" }, kinds(lexer.tokenize("{{ 'a}}' }}")))
    -- a lone } ends an output too; an embedded {% ends it at that tag's %}
    assert.are.same({ "output:{{ a }@1", "text: b@7" }, kinds(lexer.tokenize("{{ a } b")))
    assert.are.same({ "output:{{ a {% b %}@1" }, kinds(lexer.tokenize("{{ a {% b %}")))
  end)

  it("marks unterminated tags and outputs", function()
    local t = lexer.tokenize("x{% if")
    assert.are.equal("{% if", t[2].s)
    assert.is_true(t[2].unterminated)
    t = lexer.tokenize("{{ x")
    assert.are.equal("{{ x", t[1].s)
    assert.is_true(t[1].unterminated)
  end)

  it("gives nothing for an empty template and one text token for plain text", function()
    assert.are.same({}, lexer.tokenize(""))
    assert.are.same({ "text:a { b } % c@1" }, kinds(lexer.tokenize("a { b } % c")))
  end)
end)

describe("lexer.locator", function()
  it("maps byte offsets to 1-based line and column", function()
    local at = lexer.locator("ab\ncd\n\nef")
    assert.are.same({ 1, 1 }, { at(1) })
    assert.are.same({ 1, 3 }, { at(3) }) -- the newline itself ends line 1
    assert.are.same({ 2, 1 }, { at(4) })
    assert.are.same({ 3, 1 }, { at(7) })
    assert.are.same({ 4, 2 }, { at(9) })
  end)

  it("counts columns in UTF-8 characters, also far into long lines", function()
    local at = lexer.locator("éé\n" .. string.rep("€", 300) .. "x")
    assert.are.same({ 1, 3 }, { at(5) })
    local x = #"éé\n" + 300 * 3 + 1
    assert.are.same({ 2, 301 }, { at(x) })
  end)
end)

describe("lexer.scan", function()
  it("splits markup into expression tokens with their offsets", function()
    local toks = assert(lexer.scan(" a.b[0] | f: 'x', \"y\" "))
    assert.are.same({ "id=a", ".", "id=b", "[", "number=0", "]", "|", "id=f", ":", "string=x", ",", "string=y",
      "eos=end of expression" }, types(toks))
    assert.are.equal(2, toks[1].pos)
    assert.are.equal(23, toks[#toks].pos)
  end)

  it("reads numbers, ranges and comparison operators", function()
    assert.are.same({ "(", "number=-1", "..", "number=2.5", ")", "eos=end of expression" },
      types(assert(lexer.scan("(-1..2.5)"))))
    assert.are.same({ "id=a", "cmp===", "id=b", "cmp=!=", "id=c", "cmp=<>", "id=d", "cmp=<=", "id=e", "cmp=>=",
      "id=f", "cmp=<", "id=g", "cmp=>", "id=h", "cmp=contains", "string=x", "eos=end of expression" },
      types(assert(lexer.scan("a == b != c <> d <= e >= f < g > h contains 'x'"))))
  end)

  it("reads names with dashes and a trailing ?, and contains after a dot as a name", function()
    assert.are.same({ "id=my-var?", ".", "id=contains", "eos=end of expression" },
      types(assert(lexer.scan("my-var?.contains"))))
    assert.are.same({ "-", "id=a", "eos=end of expression" }, types(assert(lexer.scan("- a"))))
  end)

  it("reports the offending character and its offset", function()
    assert.are.same({ nil, "Unexpected character '", 3 }, { lexer.scan("a 'open") })
    assert.are.same({ nil, "Unexpected character =", 3 }, { lexer.scan("a = b") })
    assert.are.same({ nil, "Unexpected character €", 2 }, { lexer.scan("a€") })
    assert.are.same({ nil, "Unexpected character !", 1 }, { lexer.scan("!a") })
  end)
end)
