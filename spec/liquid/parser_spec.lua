-- customerio.liquid.parser: the node tree of a template and the syntax errors it reports,
-- with line and column, before anything is compiled or rendered.
local parser = require("customerio.liquid.parser")

local function body(source, opts)
  return parser.parse(source, opts).body
end

-- The syntax error a template raises, as "line L, column C: message".
local function syntax_error(source)
  local ok, e = pcall(parser.parse, source)
  assert.is_false(ok, "expected a syntax error for " .. source)
  assert.are.equal("syntax", e.kind)
  return tostring(e)
end

describe("parser.parse", function()
  it("makes text, output and tag nodes with the byte offset of each tag", function()
    local b = body("Hi {{ customer.name | upcase }}!{% assign n = 3 %}")
    assert.are.same({ "text", "output", "text", "assign" }, { b[1].t, b[2].t, b[3].t, b[4].t })
    assert.are.equal("Hi ", b[1].v)
    assert.are.equal(4, b[2].pos)
    assert.are.equal("customer", b[2].expr.base.root)
    assert.are.equal("customer.name", b[2].expr.base.text)
    assert.are.equal("upcase", b[2].expr.filters[1].name)
    assert.are.equal("n", b[4].name)
    assert.are.equal(3, b[4].value.base.v)
    assert.is_true(b[4].blank)
  end)

  it("groups if / elsif / else into branches with their conditions", function()
    local node = body("{% if a == 1 %}x{% elsif b contains 'q' %}y{% else %}z{% endif %}")[1]
    assert.are.equal("if", node.t)
    assert.are.equal(3, #node.branches)
    assert.are.equal("==", node.branches[1].cond.op)
    assert.are.equal("contains", node.branches[2].cond.op)
    assert.is_nil(node.branches[3].cond)
    assert.are.equal("z", node.branches[3].body[1].v)
    assert.is_false(node.blank)
  end)

  it("gives a for loop its variable, collection and a slot", function()
    local node = body("{% for i in (1..3) %}{{ i }}{% endfor %}")[1]
    assert.are.equal("for", node.t)
    assert.are.equal("i", node.var)
    assert.are.same({ 1, 3 }, node.coll.v)
    assert.are.equal(1, node.slot)
    assert.are.equal(1, parser.parse("{% for i in (1..3) %}{% endfor %}").slots)
  end)

  it("keeps raw text as it is (a text node) and trims around whitespace-control dashes", function()
    local b = body("a {%- raw -%} {{ x }} {% endraw %} b")
    assert.are.equal("a", b[1].v)
    assert.are.equal("text", b[2].t)
    assert.are.equal(" {{ x }} ", b[2].v)
    b = body("a  {{- 'x' -}}  b")
    assert.are.equal("a", b[1].v)
    assert.are.equal("b", b[3].v)
  end)

  it("reads the statements of a liquid tag as a group", function()
    local b = body("{% liquid\n assign a = 1\n echo a\n%}")
    assert.are.equal("group", b[1].t)
  end)
end)

describe("parser syntax errors", function()
  it("name the problem and where it is", function()
    assert.are.equal("line 1, column 1: Unknown tag 'foo'", syntax_error("{% foo %}"))
    assert.are.equal("line 2, column 2: Unexpected 'endif' outside a block", syntax_error("line1\n {% endif %}"))
    assert.are.equal("line 1, column 1: 'if' tag was never closed", syntax_error("{% if a %}"))
    assert.are.equal("line 1, column 7: expected an expression", syntax_error("{% if %}"))
    assert.are.equal("line 1, column 8: expected a filter name but found the end of the expression",
      syntax_error("{{ a | }}"))
    assert.are.equal("line 1, column 4: Unexpected character '", syntax_error("{{ 'a }}"))
  end)

  it("use Shopify Liquid's wording for malformed tags", function()
    assert.are.equal("line 1, column 1: Variable '{{ x' was not properly terminated with '}}'", syntax_error("{{ x"))
    assert.are.equal("line 1, column 10: Syntax error in 'for loop' - Valid syntax: for [item] in [collection]",
      syntax_error("{% for x %}"))
    assert.are.equal("line 1, column 1: Syntax error in 'assign' - Valid syntax: assign [var] = [source]",
      syntax_error("{% assign = 1 %}"))
    assert.are.equal("line 1, column 1: Syntax error in 'capture' - Valid syntax: capture [var]",
      syntax_error("{% capture %}{% endcapture %}"))
  end)

  it("count columns in characters on the line of the error", function()
    assert.matches("^line 3, column 4: Unknown tag 'nope'", syntax_error("é\nü\nöö {% nope %}"))
  end)

  it("refuse a raw tag that is never closed", function()
    assert.matches("'raw' tag was never closed", syntax_error("{% raw %}abc"), 1, true)
  end)

  it("stop at a nesting depth instead of overflowing the stack", function()
    local deep = string.rep("{% if a %}", 5000) .. string.rep("{% endif %}", 5000)
    assert.matches("^line 1, column %d+: Nesting too deep$", syntax_error(deep))
  end)
end)
