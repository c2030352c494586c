-- customerio.requests (customerio.app.requests after the layout move): the transactional
-- request objects, their validation and attachments, without sending anything.
local customerio = require("customerio")
local requests = require("customerio.app.requests")
local core = require("customerio.core")

local function email(fields)
  local t = { to = "ada@example.com", identifiers = { id = "42" }, transactional_message_id = "reset" }
  for k, v in pairs(fields or {}) do t[k] = v end
  return requests.SendEmailRequest(t)
end

describe("transactional requests", function()
  it("are what customerio exposes, one class per channel", function()
    assert.are.equal(requests.SendEmailRequest, customerio.SendEmailRequest)
    assert.are.same({ SendEmailRequest = "email", SendPushRequest = "push", SendSMSRequest = "sms",
      SendWhatsAppRequest = "whatsapp", SendInboxMessageRequest = "inbox_message", SendInAppRequest = "in_app" },
      requests.channels)
    local r = requests.SendSMSRequest.new({ transactional_message_id = 3, identifiers = { id = 1 } })
    assert.is_true(requests.is(r, "SendSMSRequest"))
    assert.is_false(requests.is(r, "SendEmailRequest"))
    assert.are.equal("customerio.SendSMSRequest", tostring(r))
  end)

  it("copy the caller's table and send every field given", function()
    local fields = { to = "a@b.c", identifiers = { email = "a@b.c" }, transactional_message_id = "t",
      future_field = { x = 1 }, attachments = { ["a.txt"] = "eA==" } }
    local r = requests.SendEmailRequest(fields)
    r.message.to = "other@b.c"
    r:attach("b.txt", "y")
    assert.are.equal("a@b.c", fields.to)
    assert.is_nil(fields.attachments["b.txt"])
    assert.are.same({ x = 1 }, r.message.future_field)
    assert.are.same({}, r.message.headers) -- an email always has headers
  end)

  it("send a push device as custom_device, and refuse both", function()
    local r = requests.SendPushRequest({ transactional_message_id = 1, identifiers = { id = 1 }, device = { token = "t" } })
    assert.are.same({ token = "t" }, r.message.custom_device)
    assert.is_nil(r.message.device)
    assert.has_error(function()
      requests.SendPushRequest({ device = {}, custom_device = {} })
    end, "give device or custom_device, not both")
  end)

  it("raise on options that are not a table", function()
    assert.has_error(function() requests.SendEmailRequest("x") end, "SendEmailRequest options must be a table, got string")
  end)
end)

describe("request:validate", function()
  it("needs exactly one of id, email or cio_id", function()
    local msg = 'identifiers must hold exactly one of "id", "email" or "cio_id"'
    assert.has_error(function() email({ identifiers = { id = "1", email = "a@b.c" } }):validate() end, msg)
    assert.has_error(function() email({ identifiers = { phone = "1" } }):validate() end, msg)
    assert.has_error(function() email({ identifiers = { id = "  " } }):validate() end, msg)
    assert.has_error(function() email({ identifiers = {} }):validate() end, msg)
    assert.has_error(function() email({ identifiers = "42" }):validate() end, "identifiers must be a table, got string")
    assert.has_error(function() email({ identifiers = core.null }):validate() end, "identifiers is required")
    assert.are.equal("42", email({ identifiers = { cio_id = "42" } }):validate().message.identifiers.cio_id)
  end)

  it("lets an email without a template carry from, subject and body", function()
    local inline = { transactional_message_id = core.null, from = "x@y.z", subject = "s", body = "b" }
    assert.is_truthy(email(inline):validate())
    inline.body = ""
    assert.has_error(function() email(inline):validate() end,
      "transactional_message_id is required unless from, subject and body are all given")
    assert.has_error(function()
      requests.SendSMSRequest({ identifiers = { id = 1 } }):validate()
    end, "transactional_message_id is required")
    assert.has_error(function() email({ transactional_message_id = {} }):validate() end,
      "transactional_message_id must be a string or a number, got table")
  end)

  it("counts recipients across to, cc and bcc, commas in quotes and angle brackets included", function()
    assert.are.equal(3, requests.count_addresses('"Doe, Jane" <jane@x.y>, bob@x.y , <odd,name@x.y>'))
    assert.are.equal(1, requests.count_addresses('"a \\" , b" <a@x.y>'))
    assert.are.equal(0, requests.count_addresses(" , ,"))
    local many = {}
    for i = 1, 14 do many[i] = "u" .. i .. "@x.y" end
    assert.is_truthy(email({ to = "a@x.y", cc = table.concat(many, ",") }):validate())
    assert.has_error(function()
      email({ to = "a@x.y", cc = table.concat(many, ","), bcc = "z@x.y" }):validate()
    end, "too many recipients: 16 across to, cc and bcc; the limit is 15")
    assert.has_error(function() email({ to = "" }):validate() end, "to is required")
    assert.has_error(function() email({ cc = { "a@x.y" } }):validate() end,
      "cc must be a string of comma-separated addresses, got table")
  end)

  it("checks message_data and attachments", function()
    assert.has_error(function() email({ message_data = "x" }):validate() end, "message_data must be a table, got string")
    assert.has_error(function() email({ attachments = "x" }):validate() end, "attachments must be a table")
    assert.has_error(function() email({ attachments = { ["a.txt"] = 1 } }):validate() end,
      'attachments["a.txt"] must be a base64 string')
  end)
end)

describe("request:attach", function()
  it("base64-encodes the data, or takes base64 as it is", function()
    local r = email():attach("a.txt", "hello"):attach("b.bin", "AAEC", { encode = false })
    assert.are.equal(core.base64_encode("hello"), r.message.attachments["a.txt"])
    assert.are.equal("AAEC", r.message.attachments["b.bin"])
  end)

  it("refuses bad names, duplicates, bad base64 and other channels", function()
    local r = email():attach("a.txt", "x")
    assert.has_error(function() r:attach("a.txt", "y") end, "attachment a.txt already exists")
    assert.has_error(function() r:attach("noext", "y") end,
      'attachment filename "noext" must have an extension, e.g. "receipt.pdf"')
    assert.has_error(function() r:attach(".pdf", "y") end,
      'attachment filename ".pdf" must have an extension, e.g. "receipt.pdf"')
    assert.has_error(function() r:attach("", "y") end, "filename is required")
    assert.has_error(function() r:attach("c.txt", 5) end, "data must be a string, got number")
    assert.has_error(function() r:attach("c.txt", "!!!", { encode = false }) end,
      "attachment c.txt is not valid base64 (encode = false)")
    assert.has_error(function()
      requests.SendPushRequest({}):attach("a.txt", "x")
    end, "only email requests take attachments")
  end)

  it("keeps the total of decoded bytes within 2 MB", function()
    local r = email():attach("a.bin", string.rep("x", requests.MAX_ATTACHMENTS_BYTES - 3))
    r:attach("b.bin", "abc") -- exactly 2 MB
    assert.has_error(function() r:attach("c.bin", "d") end,
      "attachments total 2097153 bytes; the limit is 2 MB (2097152 bytes)")
    assert.is_nil(r.message.attachments["c.bin"])
  end)
end)

describe("requests.coerce", function()
  it("takes a request of the class or a plain table, and refuses another class", function()
    local r = email()
    assert.are.equal(r, requests.coerce("SendEmailRequest", r))
    local c = requests.coerce("SendSMSRequest", { transactional_message_id = 1 })
    assert.is_true(requests.is(c, "SendSMSRequest"))
    assert.has_error(function() requests.coerce("SendSMSRequest", r) end,
      '"request" must be an instance of SendSMSRequest')
    assert.has_error(function() requests.coerce("SendSMSRequest", "x") end,
      '"request" must be an instance of SendSMSRequest')
  end)
end)
