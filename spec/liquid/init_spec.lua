-- customerio.liquid: API, language, filters, strict/lax modes, static analysis, Customer.io
-- additions, errors and limits. The standard language is also covered case by case by
-- spec/liquid/golden_spec.lua.

local liquid = require("customerio.liquid")
local json = require("customerio.liquid.json")
local cio = require("customerio.liquid.cio")

local NOW = 1700000000 -- 2023-11-14T22:13:20Z

-- Render `src`; returns the output, or "ERROR: <message>" and the error.
local function R(src, ctx, opts)
  opts = opts or {}
  if opts.now == nil then opts.now = NOW end
  local out, err = liquid.render(src, ctx, opts)
  if out == nil then return "ERROR: " .. tostring(err), err end
  return out, err
end

local function J(text) return assert(json.decode(text, { ordered = true })) end

local function has_core_crypto()
  return cio.core() ~= nil
end

describe("customerio.liquid", function()
  describe("API", function()
    it("parses once and renders many times with different contexts", function()
      local tpl = assert(liquid.parse("Hi {{ name }}{% increment n %}{% cycle 'a', 'b' %}"))
      assert.equal("Hi Ada0a", (tpl:render({ name = "Ada" })))
      assert.equal("Hi Bob0a", (tpl:render({ name = "Bob" })))
    end)

    it("returns the output and a report", function()
      local out, report = liquid.render("{{ a }}{{ b }}", { a = 1 })
      assert.equal("1", out)
      assert.same({ { variable = "b", line = 1, column = 11 } }, report.undefined)
      assert.same({}, report.filters)
    end)

    it("returns nil and an error table with line, column and __tostring", function()
      local tpl, err = liquid.parse("ok\n{% if x %}\n  {% for %}")
      assert.is_nil(tpl)
      assert.equal("syntax", err.kind)
      assert.equal(3, err.line)
      assert.equal(type(err.message), "string")
      assert.equal("line 3, column " .. err.column .. ": " .. err.message, tostring(err))
      assert.equal("x: " .. tostring(err), "x: " .. err)
    end)

    it("rejects a non-string source", function()
      local tpl, err = liquid.parse(nil)
      assert.is_nil(tpl)
      assert.equal("argument", err.kind)
    end)

    it("does not modify the context", function()
      local ctx = { items = { 3, 1, 2 } }
      assert.equal("123", R("{% assign s = items | sort %}{{ s | join: '' }}{% assign items = 'x' %}", ctx))
      assert.same({ 3, 1, 2 }, ctx.items)
    end)

    it("accepts custom filters", function()
      local tpl = assert(liquid.parse("{{ 'a' | shout: 3 }}", {
        filters = { shout = { fn = function(s, n) return s:upper():rep(n) end, min = 1, max = 1 } },
      }))
      assert.equal("AAA", (tpl:render()))
      liquid.register_filter("twice", function(s) return s .. s end)
      assert.equal("abab", R("{{ 'ab' | twice }}"))
    end)

    it("renders with liquid.render in one call", function()
      assert.equal("3", R("{{ 1 | plus: 2 }}"))
    end)
  end)

  describe("text, whitespace control, raw and comments", function()
    it("trims with - on outputs and tags", function()
      assert.equal("a|b", R("a  {{- '|' -}}  b"))
      assert.equal("ab", R("a \n {%- if true -%} \n b {%- endif -%} \n"))
      assert.equal("a!", R("a\n{{-}}\n!"))
    end)

    it("drops whitespace-only blocks that only assign", function()
      assert.equal("!!", R("!{% if true %}\n  {% assign x = 1 %}\n{% endif %}!"))
      assert.equal("!\n  1\n!", R("!{% if true %}\n  {{ 1 }}\n{% endif %}!"))
    end)

    it("keeps raw text", function()
      assert.equal("{{ x }} {% if %}", R("{% raw %}{{ x }} {% if %}{% endraw %}"))
    end)

    it("ignores comments, nested comments and inline comments", function()
      assert.equal("ab", R("a{% comment %}{% if %}{% comment %}x{% endcomment %}{% endcomment %}b"))
      assert.equal("ab", R("a{% # a note %}b"))
      assert.equal("ab", R("a{%- # note -%}  b"))
    end)
  end)

  describe("expressions", function()
    it("reads paths, brackets and negative indexes", function()
      local ctx = J([=[{"a": {"b": [10, 20, 30], "c d": 1}, "k": "b"}]=])
      assert.equal("10 30 20 1 20", R("{{ a.b[0] }} {{ a.b[-1] }} {{ a[k][1] }} {{ a['c d'] }} {{ a.b[1] }}", ctx))
    end)

    it("knows size, first and last", function()
      local ctx = J([=[{"a": [1, 2, 3], "s": "héllo", "h": {"x": 1, "size": 9}}]=])
      assert.equal("3 1 3 5 h o 9", R("{{ a.size }} {{ a.first }} {{ a.last }} {{ s.size }} {{ s.first }} "
        .. "{{ s.last }} {{ h.size }}", ctx))
    end)

    it("has literals and ranges", function()
      assert.equal("1 -2 3.5 5.0 true  hello 1..3 1,2,3",
        R("{{ 1 }} {{ -2 }} {{ 3.5 }} {{ 5.0 }} {{ true }} {{ nil }} {{ 'hello' }} {{ (1..3) }} {{ (1..3) | join: ',' }}"))
    end)

    it("evaluates and/or from the right, without parentheses or not", function()
      assert.equal("", R("{% if true and false and false or true %}x{% endif %}"))
      assert.equal("x", R("{% if false or true and true %}x{% endif %}"))
      assert.matches("^ERROR", R("{% if not true %}x{% endif %}"))
      assert.matches("^ERROR", R("{% if (true) %}x{% endif %}"))
    end)

    it("compares", function()
      local ctx = { a = { 1, 2 }, s = "hello" }
      assert.equal("1111111", R("{% if 1 == 1.0 %}1{% endif %}{% if 2 > 1 %}1{% endif %}{% if 'b' >= 'a' %}1{% endif %}"
        .. "{% if s contains 'ell' %}1{% endif %}{% if a contains 2 %}1{% endif %}{% if 1 != 2 %}1{% endif %}"
        .. "{% if 1 <> 2 %}1{% endif %}", ctx))
      assert.equal("", R("{% if '1' == 1 %}x{% endif %}"))
      assert.matches("^ERROR: .*comparison", R("{% if '2' > 1 %}x{% endif %}"))
    end)

    it("treats blank and empty specially in comparisons", function()
      local ctx = J([=[{"e": "", "w": "  ", "n": null, "a": [], "h": {}}]=])
      assert.equal("1111", R("{% if e == blank %}1{% endif %}{% if w == blank %}1{% endif %}"
        .. "{% if n == blank %}1{% endif %}{% if a == empty %}1{% endif %}", ctx))
      assert.equal("", R("{% if n == empty %}x{% endif %}{% if w == empty %}x{% endif %}", ctx))
    end)
  end)

  describe("values", function()
    it("treats JSON null as nil", function()
      local ctx = J([=[{"a": null, "b": [1, null, 2]}]=])
      assert.equal("|1,,2|3", R("{{ a }}|{{ b | join: ',' }}|{{ b.size }}", ctx))
      assert.equal("no", R("{% if a %}yes{% else %}no{% endif %}", ctx))
      assert.equal("1,2", R("{{ b | compact | join: ',' }}", ctx))
    end)

    it("iterates hashes in JSON order, or sorted by key", function()
      local ctx = J([=[{"h": {"b": 1, "a": 2}}]=])
      assert.equal("b=1 a=2 ", R("{% for p in h %}{{ p[0] }}={{ p[1] }} {% endfor %}", ctx))
      assert.equal("a=2 b=1 ", R("{% for p in h %}{{ p[0] }}={{ p[1] }} {% endfor %}", { h = { b = 1, a = 2 } }))
    end)

    it("prints arrays joined and hashes like Liquid", function()
      local ctx = J([=[{"a": ["x", ["y"]], "h": {"k": "v", "n": 1}}]=])
      assert.equal("xy", R("{{ a }}", ctx))
      assert.equal('{"k"=>"v", "n"=>1}', R("{{ h }}", ctx))
    end)

    it("keeps integers and floats apart", function()
      assert.equal("2 2.5 5.0 7.9 0.3", R("{{ 10 | divided_by: 4 }} {{ 10 | divided_by: 4.0 }} "
        .. "{{ 10.0 | divided_by: 2 }} {{ 10.1 | minus: 2.2 }} {{ 0.1 | plus: 0.2 | plus: 0 }}"))
      assert.equal("3.14 1.0e-05 12345678.9", R("{{ 3.14159 | round: 2 }} {{ tiny }} {{ big }}",
        { tiny = 0.00001, big = 12345678.9 }))
    end)
  end)

  describe("tags", function()
    it("assign and capture", function()
      assert.equal("FOO-hi Ada", R("{% assign x = 'foo' | upcase %}{% capture y %}hi {{ n }}{% endcapture %}{{ x }}-{{ y }}",
        { n = "Ada" }))
    end)

    it("assign shadows data and survives loops", function()
      assert.equal("a3", R("{{ x }}{% for i in (1..3) %}{% assign x = i %}{% endfor %}{{ x }}", { x = "a" }))
    end)

    it("if / elsif / else and unless", function()
      local src = "{% if n == 1 %}one{% elsif n == 2 %}two{% else %}many{% endif %}"
      assert.equal("one", R(src, { n = 1 }))
      assert.equal("two", R(src, { n = 2 }))
      assert.equal("many", R(src, { n = 3 }))
      assert.equal("no", R("{% unless true %}yes{% else %}no{% endunless %}"))
    end)

    it("case / when with or, commas and else", function()
      local src = "{% case x %}{% when 1 %}one{% when 2 or 3 %}few{% when 'a', 'b' %}letter{% else %}other{% endcase %}"
      assert.equal("one", R(src, { x = 1 }))
      assert.equal("few", R(src, { x = 3 }))
      assert.equal("letter", R(src, { x = "b" }))
      assert.equal("other", R(src, { x = 9 }))
    end)

    it("for with limit, offset, reversed, ranges and else", function()
      local ctx = { a = { 1, 2, 3, 4, 5, 6 } }
      assert.equal("23", R("{% for i in a limit: 2 offset: 1 %}{{ i }}{% endfor %}", ctx))
      assert.equal("321", R("{% for i in (1..3) reversed %}{{ i }}{% endfor %}"))
      assert.equal("empty", R("{% for i in none %}x{% else %}empty{% endfor %}"))
      assert.equal("12|345|6", R("{% for i in a limit: 2 %}{{ i }}{% endfor %}|{% for i in a offset: continue limit: 3 %}"
        .. "{{ i }}{% endfor %}|{% for i in a offset: continue %}{{ i }}{% endfor %}", ctx))
    end)

    it("for exposes forloop and parentloop", function()
      assert.equal("1/3:t 2/2:f 3/1:f ", R("{% for i in (1..3) %}{{ forloop.index }}/{{ forloop.rindex }}:"
        .. "{% if forloop.first %}t{% else %}f{% endif %} {% endfor %}"))
      assert.equal("1.1 1.2 2.1 2.2 ", R("{% for i in (1..2) %}{% for j in (1..2) %}{{ forloop.parentloop.index }}."
        .. "{{ forloop.index }} {% endfor %}{% endfor %}"))
      assert.equal("x-(1..2)", R("{% for x in (1..2) limit: 1 %}{{ forloop.name }}{% endfor %}"))
    end)

    it("break and continue", function()
      assert.equal("13", R("{% for i in (1..5) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}"
        .. "{% endif %}{{ i }}{% endfor %}"))
    end)

    it("cycle, increment, decrement", function()
      assert.equal("abab", R("{% for i in (1..4) %}{% cycle 'a', 'b' %}{% endfor %}"))
      assert.equal("xyx", R("{% cycle g: 'x', 'y' %}{% cycle g: 'x', 'y' %}{% cycle g: 'x', 'y' %}"))
      assert.equal("0 1 -1 -2 2", R("{% increment c %} {% increment c %} {% decrement d %} {% decrement d %} {{ c }}"))
    end)

    it("echo and liquid", function()
      assert.equal("HI 1,2,", R("{% liquid\n  assign x = 'hi'\n  echo x | upcase\n  echo ' '\n"
        .. "  for i in (1..2)\n    echo i\n    echo ','\n  endfor\n%}"))
    end)
  end)

  describe("filters", function()
    it("handles strings", function()
      assert.equal("Hello world|HELLO|&lt;b&gt;|a+b%26c|Ground...|one two...|a-b|hi",
        R("{{ 'hello world' | capitalize }}|{{ 'hello' | upcase }}|{{ '<b>' | escape }}|{{ 'a b&c' | url_encode }}|"
          .. "{{ 'Ground control' | truncate: 9 }}|{{ 'one two three' | truncatewords: 2 }}|"
          .. "{{ 'a,b' | split: ',' | join: '-' }}|{{ '  hi  ' | strip }}"))
    end)

    it("handles arrays", function()
      local ctx = J([=[{"items": [{"n": "b", "p": 2}, {"n": "a", "p": 1}, {"n": "c", "p": 3, "x": true}]}]=])
      assert.equal("a,b,c|6|c|b,a,c|c|3", R("{{ items | sort: 'n' | map: 'n' | join: ',' }}|{{ items | sum: 'p' }}|"
        .. "{{ items | where: 'x' | map: 'n' | join }}|{{ items | map: 'n' | uniq | join: ',' }}|"
        .. "{{ items | find: 'p', 3 | map: 'n' | first }}|{{ items | size }}", ctx))
    end)

    it("handles numbers", function()
      assert.equal("5|3|4|1|2|-3|8|12.35", R("{{ 2 | plus: 3 }}|{{ 5 | minus: 2 }}|{{ 2 | times: 2 }}|{{ 7 | modulo: 3 }}|"
        .. "{{ 2.4 | round }}|{{ -3.4 | ceil }}|{{ 3 | at_least: 8 }}|{{ 12.345 | round: 2 }}"))
      assert.matches("^ERROR: line 1, column 8: divided by 0", R("{{ 1 | divided_by: 0 }}"))
    end)

    it("formats dates with strftime in UTC, fixed offsets and zones", function()
      assert.equal("2023-11-14 22:13:20 Tue November +0000", R("{{ 'now' | date: '%Y-%m-%d %H:%M:%S %a %B %z' }}"))
      assert.equal("Nov 14, 2023 17:13 -0500", R("{{ ts | date: '%b %-d, %Y %H:%M %z', '-05:00' }}", { ts = NOW }))
      assert.equal("16:13 -0600", R("{{ ts | date: '%H:%M %z', 360 }}", { ts = NOW }))
      assert.equal("March 14, 2016", R("{{ '2016-03-14T10:00:00Z' | date: '%B %-d, %Y' }}"))
      assert.equal("07/05/2006", R("{{ 1152098955 | date: '%m/%d/%Y' }}"))
      assert.equal("not a date", R("{{ 'not a date' | date: '%Y' }}"))
      assert.matches("unknown time zone 'Nowhere/City'", R("{{ 0 | date: '%Y', 'Nowhere/City' }}"))
    end)

    it("formats dates in IANA zones when the system has zoneinfo", function()
      local f = io.open("/usr/share/zoneinfo/America/New_York", "rb")
      if not f then return pending("no /usr/share/zoneinfo") end
      f:close()
      assert.equal("17:13 EST", R("{{ ts | date: '%H:%M %Z', 'America/New_York' }}", { ts = NOW }))
      assert.equal("07:29 EDT", R("{{ 1152098955 | date: '%H:%M %Z', 'America/New_York' }}"))
    end)

    it("checks argument counts when parsing", function()
      local tpl, err = liquid.parse("{{ 'a' |\n  append }}")
      assert.is_nil(tpl)
      assert.same({ 2, 3 }, { err.line, err.column })
      assert.matches("wrong number of arguments for filter 'append'", err.message)
    end)
  end)

  describe("strict and lax modes", function()
    it("renders undefined variables as empty in lax mode and reports them", function()
      local out, report = liquid.render("a{{ customer.name }}b\n{{ trigger.x.y }}", { customer = {} })
      assert.equal("ab\n", out)
      assert.same({ { variable = "customer.name", line = 1, column = 5 },
        { variable = "trigger.x.y", line = 2, column = 4 } }, report.undefined)
    end)

    it("fails on an undefined variable in strict mode, with its position", function()
      local out, err = liquid.render("Hi\n  {{ customer.name }}", { customer = {} }, { strict = true })
      assert.is_nil(out)
      assert.equal("undefined_variable", err.kind)
      assert.equal("customer.name", err.variable)
      assert.same({ 2, 6 }, { err.line, err.column })
      assert.equal("line 2, column 6: undefined variable 'customer.name'", tostring(err))
    end)

    it("does not count uses guarded by default or tested by if", function()
      local src = "{{ x | default: 'd' }}{% if y %}y{% elsif z.w %}z{% endif %}{% unless q %}u{% endunless %}"
      local out, report = liquid.render(src, {}, { strict = true })
      assert.equal("du", out)
      assert.same({}, report.undefined)
    end)

    it("treats JSON null as defined", function()
      assert.equal("", R("{{ a }}", J('{"a": null}'), { strict = true }))
    end)

    it("reports undefined filters in lax mode and fails in strict mode", function()
      local out, report = liquid.render("{{ 'a' | nosuch }}")
      assert.equal("a", out)
      assert.same({ { filter = "nosuch", line = 1, column = 10 } }, report.filters)
      local tpl, err = liquid.parse("{{ 'a' | nosuch }}", { strict = true })
      assert.is_nil(tpl)
      assert.equal("undefined_filter", err.kind)
      tpl = assert(liquid.parse("{{ 'a' | nosuch }}"))
      local o2, e2 = tpl:render({}, { strict = true })
      assert.is_nil(o2)
      assert.same({ "undefined_filter", 1, 10 }, { e2.kind, e2.line, e2.column })
    end)

    it("reports an undefined loop collection", function()
      local _, err = liquid.render("{% for i in items %}{% endfor %}", {}, { strict = true })
      assert.equal("items", err.variable)
    end)
  end)

  describe("variables (static analysis)", function()
    it("lists global paths in order, without locals", function()
      local src = [[
{% assign total = trigger.order.total %}
{% capture name %}{{ customer.first_name }}{% endcapture %}
{% for item in trigger.order.items %}{{ item.name }} {{ forloop.index }} {{ total }}{% endfor %}
{% if trigger.vip %}{{ trigger.reset_url }}{% endif %}
{{ name }} {{ trigger.order.items.size }} {{ menu[key].title }} {% increment n %}{{ n }}]]
      local paths = assert(liquid.variables(src))
      assert.same({ "trigger.order.total", "customer.first_name", "trigger.order.items", "trigger.vip",
        "trigger.reset_url", "menu", "key" }, paths)
    end)

    it("gives positions and whether each use is guarded", function()
      local _, refs = liquid.variables("{{ a.b | default: 1 }}\n{% if c %}{{ d[0].e }}{% endif %}")
      assert.same({ "a.b", 1, 4, true }, { refs[1].path, refs[1].line, refs[1].column, refs[1].guarded })
      assert.same({ "c", 2, 7, true }, { refs[2].path, refs[2].line, refs[2].column, refs[2].guarded })
      assert.same({ "d[0].e", false }, { refs[3].path, refs[3].guarded })
    end)

    it("marks uses inside a block whose condition proves them present as guarded", function()
      local _, refs = liquid.variables("{% if a.b %}{{ a.b }}{{ a }}{{ a.b.c }}{% endif %}"
        .. "{% if x != blank and y > 1 %}{{ x }}{{ y }}{% else %}{{ x }}{% endif %}"
        .. "{% unless z == nil %}{{ z }}{% endunless %}{% case w %}{% when 'q' %}{{ w }}{% endcase %}")
      local g = {}
      for _, r in ipairs(refs) do g[#g + 1] = r.path .. "=" .. tostring(r.guarded) end
      assert.same({ "a.b=true", "a.b=true", "a=true", "a.b.c=false", "x=true", "y=true", "x=true", "y=true",
        "x=false", "z=true", "z=true", "w=false", "w=true" }, g)
    end)

    it("counts a variable used before it is assigned", function()
      assert.same({ "x" }, liquid.variables("{{ x }}{% assign x = 1 %}{{ x }}"))
    end)

    it("returns the parse error for a bad template", function()
      local paths, err = liquid.variables("{% if %}")
      assert.is_nil(paths)
      assert.equal("syntax", err.kind)
    end)
  end)

  describe("Customer.io additions", function()
    it("shifts dates", function()
      assert.equal("2023-11-19|2023-10-14|2024-11-14|2020-02-29",
        R("{{ ts | add_day: 5 | date: '%F' }}|{{ ts | subtract_month: 1 | date: '%F' }}|"
          .. "{{ ts | add_year: 1 | date: '%F' }}|{{ '2020-01-31' | add_month: 1 | date: '%F' }}", { ts = NOW }))
    end)

    it("formats numbers and currency", function()
      assert.equal("10,000|1,234.568|1.234,5|$1,234,567.90|£1,234,567.90|€1,234,567.90|€1,234,568|$10.00|10,00\194\160€",
        R("{{ 10000 | format_number }}|{{ 1234.5678 | format_number }}|{{ 1234.5 | format_number: 'de' }}|"
          .. "{{ 1234567.896 | currency }}|{{ 1234567.896 | currency: 'en-GB' }}|{{ 1234567.896 | currency: 'en', 'EUR' }}|"
          .. "{{ 1234567.896 | rounded_currency: 'en', 'EUR' }}|{{ 10 | currency: 'en-us' }}|{{ 10 | currency: 'de' }}"))
    end)

    it("has string helpers", function()
      assert.equal("Hello World|3 items|1 item|hello-world|a b|a, b, and c|a%20b",
        R("{{ 'hello world' | titlecase }}|{{ 3 | pluralize: 'item', 'items' }}|{{ 1 | pluralize: 'item', 'items' }}|"
          .. "{{ 'Hello, World!' | slugify }}|{{ ' a \n b ' | normalize_whitespace }}|"
          .. "{{ 'a,b,c' | split: ',' | array_to_sentence_string }}|{{ 'a b' | uri_escape }}"))
    end)

    it("encodes and decodes JSON", function()
      local ctx = J([=[{"o": {"b": [1, 2.5, null], "a": "x"}}]=])
      assert.equal('{"b":[1,2.5,null],"a":"x"}', R("{{ o | json }}", ctx))
      assert.equal("2", R("{% assign v = s | from_json %}{{ v.k[1] }}", { s = '{"k": [1, 2]}' }))
    end)

    it("filters arrays with expressions", function()
      local ctx = J([=[{"p": [{"n": "a", "s": 40, "t": "k"}, {"n": "b", "s": 10, "t": "k"}, {"n": "c", "s": 50, "t": "b"}]}]=])
      assert.equal("a|c|k:2,b:1|b,c", R("{{ p | where_exp: 'i', 'i.s > 30 and i.t == \"k\"' | map: 'n' | join: ',' }}|"
        .. "{{ p | find_exp: 'i', 'i.s > 45' | map: 'n' | join }}|"
        .. "{% assign g = p | group_by: 't' %}{% for x in g %}{{ x.name }}:{{ x.size }}"
        .. "{% unless forloop.last %},{% endunless %}{% endfor %}|"
        .. "{{ p | where_not: 'n', 'a' | map: 'n' | join: ',' }}", ctx))
      assert.equal("a b|a b c z|q a b c|a b|b c", R("{{ l | limit: 2 | join }}|{{ l | push: 'z' | join }}|"
        .. "{{ l | unshift: 'q' | join }}|{{ l | pop | join }}|{{ l | shift | join }}", { l = { "a", "b", "c" } }))
    end)

    it("hashes through the C core", function()
      if not has_core_crypto() then return pending("customerio.core with digest() is not built") end
      assert.equal("900150983cd24fb0d6963f7d28e17f72|a9993e364706816aba3e25717850c26c9cd0d89d|"
        .. "6dddb773238216bce273133bc3f6a12a824f41dd184d09452f05c7659dae7d57|"
        .. "bd23cyOCFrzicxM7w/ahKoJPQd0YTQlFLwXHZZ2ufVc=",
        R("{{ 'abc' | md5 }}|{{ 'abc' | sha1 }}|{{ 'Customer.io' | hmac_sha256: 'some_key' }}|"
          .. "{{ 'Customer.io' | hmac_sha256: 'some_key' | hex_base64 }}"))
    end)

    it("base64 without the core", function()
      assert.equal("aGk=|hi", R("{{ 'hi' | base64 }}|{{ 'aGk=' | base64_decode }}"))
    end)

    it("renders Customer.io tags as placeholders and reports them", function()
      local out, report = liquid.render("{% unsubscribe_url %} {% view_in_browser_url %} {% cio_link url:\"https://x.test/a\" %}")
      assert.equal("https://example.invalid/unsubscribe https://example.invalid/view-in-browser https://x.test/a", out)
      assert.same({ "unsubscribe_url", "view_in_browser_url", "cio_link" },
        { report.tags[1].tag, report.tags[2].tag, report.tags[3].tag })
      assert.equal("U", R("{% unsubscribe_url %}", {}, { placeholders = { unsubscribe_url = "U" } }))
    end)

    it("renders Liquid held in a variable with render_liquid", function()
      assert.equal("Hi Ada", R("{% render_liquid customer.snippet %}", { customer = { snippet = "Hi {{ customer.name }}",
        name = "Ada" } }))
    end)
  end)

  describe("bad templates", function()
    local cases = {
      { "{% if x %}", 1, 1, "never closed" },
      { "{% for x in y %}{% endif %}", 1, 17, "not a valid delimiter" },
      { "a\n{% nosuchtag %}", 2, 1, "Unknown tag 'nosuchtag'" },
      { "{{ x | }}", 1, 8, "filter name" },
      { "{{ x | append }}", 1, 8, "wrong number of arguments" },
      { "{{ a..b }}", 1, 5, "unexpected" },
      { "{{ x", 1, 1, "not properly terminated" },
      { "{% assign x = %}{{ 'a' | append: 1, 2 }}", 1, 26, "wrong number" },
      { "{% case x %}{% when %}{% endcase %}", 1, 21, "expected an expression" },
      { "{% for i in (1..3) limit %}{% endfor %}", 1, 20, "Invalid attribute" },
      { "x {% comment %} {% endcomment", 1, 3, "never closed" },
      { "{% else %}", 1, 1, "outside a block" },
    }
    for _, c in ipairs(cases) do
      it("reports " .. c[4] .. " at its line and column: " .. c[1]:gsub("\n", "\\n"), function()
        local tpl, err = liquid.parse(c[1])
        assert.is_nil(tpl)
        assert.same({ c[2], c[3] }, { err.line, err.column })
        assert.matches(c[4], err.message, 1, true)
      end)
    end

    it("never raises, whatever the input", function()
      local pieces = { "{{", "}}", "{%", "%}", "if", "for", "x", " ", "|", ":", "'", '"', "(", ")", "..", "[", "]",
        "endif", "endfor", "in", "-", "assign", "=", "raw", "endraw", "comment", "endcomment", "liquid", "\n", ",",
        "1", "2.5", "case", "when", "cycle", "echo", "#", ".", "{{-", "-%}", "default", "date", "capture" }
      local seed = 12345
      local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
      for _ = 1, 3000 do
        local parts = {}
        for i = 1, rnd(14) do parts[i] = pieces[rnd(#pieces)] end
        local src = table.concat(parts)
        local ok, out, err = pcall(liquid.render, src, { x = { 1, 2 }, y = "s" })
        assert(ok, "raised for " .. src .. ": " .. tostring(out))
        if out == nil then
          assert(type(err) == "table" and type(err.message) == "string", "bad error for " .. src)
          assert.is_not_nil(tostring(err):match("^line %d+, column %d+: ") or err.line == nil and err.message)
        end
      end
    end)

    it("reports runtime errors with the position of the tag", function()
      local out, err = liquid.render("ok\n{% assign x = 1 | divided_by: 0 %}")
      assert.is_nil(out)
      assert.same({ "argument", 2, 19 }, { err.kind, err.line, err.column })
    end)
  end)

  describe("limits", function()
    it("stops runaway loops", function()
      local out, err = liquid.render("{% for i in (1..1000000) %}{% for j in (1..1000000) %}{% endfor %}{% endfor %}")
      assert.is_nil(out)
      assert.equal("limit", err.kind)
      assert.matches("loop limit", err.message)
      out, err = liquid.render("{% for i in (1..20) %}x{% endfor %}", nil, { max_iterations = 10 })
      assert.is_nil(out)
      assert.equal("limit", err.kind)
    end)

    it("stops runaway output", function()
      local src = "{% capture s %}xxxxxxxxxx{% endcapture %}{% for i in (1..100) %}{{ s }}{% endfor %}"
      local out, err = liquid.render(src, nil, { max_output = 500 })
      assert.is_nil(out)
      assert.equal("limit", err.kind)
      assert.matches("output limit", err.message)
      assert.equal(1000, #(liquid.render(src, nil, { max_output = 1010 })))
    end)

    it("stops deep nesting and self-rendering", function()
      local deep = string.rep("{% if true %}", 200) .. string.rep("{% endif %}", 200)
      local tpl, err = liquid.parse(deep)
      assert.is_nil(tpl)
      assert.matches("too deep", err.message)
      local out, err2 = liquid.render("{% render_liquid s %}", { s = "{% render_liquid s %}" })
      assert.is_nil(out)
      assert.equal("limit", err2.kind)
    end)

    it("does not materialise huge ranges", function()
      assert.equal("1 2 ", R("{% for i in (1..100000000000) limit: 2 %}{{ i }} {% endfor %}"))
    end)
  end)
end)
