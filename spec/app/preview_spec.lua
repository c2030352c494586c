-- customerio.preview: render a transactional request's parts and list its problems.

local preview = require("customerio.app.preview")
local json = require("customerio.liquid.json")

local function J(text) return assert(json.decode(text, { ordered = true })) end

local function kinds(result)
  local out = {}
  for i, p in ipairs(result.problems) do out[i] = p.part .. ":" .. p.kind .. ":" .. (p.variable or p.filter or "") end
  return out
end

local message = {
  to = "ada@example.com",
  identifiers = { id = "42", email = "ada@example.com" },
  transactional_message_id = "password_reset",
  message_data = J([=[{"name": "Ada", "reset_url": "https://example.com/r/abc",
    "items": [{"name": "Mug", "price": 9.5}, {"name": "Pen"}], "plan": null}]=]),
}

describe("customerio.app.preview", function()
  it("renders every part with trigger = message_data and customer = identifiers + attributes", function()
    local r = preview(message, {
      subject = "Reset your password, {{ trigger.name }}",
      body = "<p>Hi {{ customer.first_name }} ({{ customer.id }})</p><a href='{{ trigger.reset_url }}'>Reset</a>",
      from = "Support <{{ customer.email }}>",
    }, { customer = { first_name = "Ada" } })
    assert.is_true(r.ok)
    assert.same({}, r.problems)
    assert.equal("Reset your password, Ada", r.parts.subject)
    assert.equal("<p>Hi Ada (42)</p><a href='https://example.com/r/abc'>Reset</a>", r.parts.body)
    assert.equal("Support <ada@example.com>", r.parts.from)
  end)

  it("finds a missing variable even in a branch the data does not take", function()
    local r = preview(message, {
      body = "{% if trigger.vip %}\n  Your code: {{ trigger.vip_code }}\n{% endif %}",
    })
    assert.is_false(r.ok)
    assert.same({ "body:missing_variable:trigger.vip_code" }, kinds(r))
    local p = r.problems[1]
    assert.same({ 2, 17, "error" }, { p.line, p.column, p.severity })
    assert.equal("", r.parts.body)
  end)

  it("flags data.x, which Customer.io exposes as trigger.x", function()
    local r = preview(message, { subject = "Hi {{ data.name }}" })
    assert.is_false(r.ok)
    local p = r.problems[1]
    assert.same({ "data_reference", "data.name", "trigger.name" }, { p.kind, p.variable, p.suggestion })
    assert.matches("trigger.x, not data.x", p.message, 1, true)
  end)

  it("does not count uses guarded by default or tested by if, nor null values", function()
    local r = preview(message, {
      body = "{{ trigger.nickname | default: 'friend' }}{% if trigger.coupon %}{{ trigger.coupon }}{% endif %}"
        .. "{% unless customer.vip %}!{% endunless %}{{ trigger.plan }}",
    })
    assert.is_true(r.ok)
    assert.same({}, r.problems)
    assert.equal("friend!", r.parts.body)
  end)

  it("reports missing fields of loop items found while rendering", function()
    local r = preview(message, { body = "{% for i in trigger.items %}{{ i.name }}={{ i.price }};{% endfor %}" })
    assert.same({ "body:missing_variable:i.price" }, kinds(r))
    assert.equal("Mug=9.5;Pen=;", r.parts.body)
  end)

  it("reports syntax errors with line and column and keeps the other parts", function()
    local r = preview(message, { subject = "ok {{ trigger.name }}", body = "line 1\n{% for x in %}" })
    assert.is_false(r.ok)
    assert.same({ "body:syntax:" }, kinds(r))
    assert.same({ 2, 13 }, { r.problems[1].line, r.problems[1].column })
    assert.equal("ok Ada", r.parts.subject)
    assert.is_nil(r.parts.body)
  end)

  it("reports unknown filters and render errors", function()
    local r = preview(message, { subject = "{{ trigger.name | shout }}", body = "{{ 1 | divided_by: 0 }}" })
    assert.same({ "subject:unknown_filter:shout", "body:argument:" }, kinds(r))
  end)

  it("makes missing variables warnings when strict is false", function()
    local r = preview(message, { body = "{{ trigger.nope }}" }, { strict = false })
    assert.is_true(r.ok)
    assert.equal("warning", r.problems[1].severity)
  end)

  it("lists Customer.io tags rendered as placeholders", function()
    local r = preview(message, { body = "<a href=\"{% unsubscribe_url %}\">stop</a>" })
    assert.is_true(r.ok)
    assert.equal('<a href="https://example.invalid/unsubscribe">stop</a>', r.parts.body)
    assert.same({ part = "body", tag = "unsubscribe_url", line = 1, column = 10 }, r.placeholders[1])
  end)

  it("renders the message's own content fields when no template is given", function()
    local m = { to = "x@example.com", identifiers = { id = "1" }, message_data = { n = 2 },
      subject = "{{ trigger.n }} new", body = "{{ trigger.n | times: 2 }}" }
    local r = preview(m)
    assert.same({ subject = "2 new", body = "4" }, r.parts)
  end)

  it("takes a request object whose message is in .message", function()
    local r = preview({ message = message }, { subject = "{{ trigger.name }}" })
    assert.equal("Ada", r.parts.subject)
  end)

  it("takes a customerio.SendEmailRequest", function()
    local ok, requests = pcall(require, "customerio.app.requests")
    if not ok or requests.SendEmailRequest == nil then
      return pending("customerio.app.requests (needs the C core) is not available")
    end
    local req = requests.SendEmailRequest({
      to = "ada@example.com", identifiers = { id = "42" }, transactional_message_id = "reset",
      message_data = { name = "Ada" },
    })
    local r = preview(req, { subject = "Hi {{ trigger.name }} ({{ customer.id }})" })
    assert.equal("Hi Ada (42)", r.parts.subject)
  end)

  it("does not report variables Customer.io provides at send time", function()
    local r = preview(message, { body = "{{ campaign.name }}{{ delivery_id }}{{ snippets.footer }}" })
    assert.is_true(r.ok)
    r = preview(message, { body = "{{ snippets.footer }}" }, { data = { snippets = { footer = "F" } } })
    assert.equal("F", r.parts.body)
  end)

  it("rejects a request that is not a table", function()
    local r = preview("nope")
    assert.is_false(r.ok)
    assert.equal("argument", r.problems[1].kind)
  end)
end)
