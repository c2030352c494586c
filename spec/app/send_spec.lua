-- Transactional messages: one spec per channel, the request objects (fields, attachments,
-- device), the checks made before sending (exact messages, nothing sent) and Customer.io's
-- error bodies.
local customerio = require("customerio")
local core = require("customerio.core")
local requests = require("customerio.app.requests")
local server = require("support.server")

local APP_KEY = "appkey_789"

local function new_api(opts)
  local o = { url = server.url() .. "/v1", retry = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return customerio.APIClient.new(APP_KEY, o)
end

local app = require("support.app")
local offline, refuses = app.offline, app.refuses

local QUEUED = '{"delivery_id":"RPILAgABcRhIBqSp7kiPekGBIeVh","queued_at":1700000000}'

describe("APIClient transactional sends", function()
  local api
  before_each(function()
    server.reset()
    api = new_api()
  end)

  local channels = {
    { method = "send_email", class = "SendEmailRequest", path = "/v1/send/email",
      fields = { to = "ada@example.com", identifiers = { email = "ada@example.com" }, transactional_message_id = "welcome" } },
    { method = "send_push", class = "SendPushRequest", path = "/v1/send/push",
      fields = { identifiers = { id = "42" }, transactional_message_id = 3, title = "Hi" } },
    { method = "send_sms", class = "SendSMSRequest", path = "/v1/send/sms",
      fields = { identifiers = { id = "42" }, transactional_message_id = "sms_1", to = "+15555550100" } },
    { method = "send_whatsapp", class = "SendWhatsAppRequest", path = "/v1/send/whatsapp",
      fields = { identifiers = { id = "42" }, transactional_message_id = "wa_1", from = "+15555550199" } },
    { method = "send_inbox_message", class = "SendInboxMessageRequest", path = "/v1/send/inbox_message",
      fields = { identifiers = { cio_id = "03000001" }, transactional_message_id = "inbox_1" } },
    { method = "send_in_app", class = "SendInAppRequest", path = "/v1/send/in_app",
      fields = { identifiers = { id = 42 }, transactional_message_id = "inapp_1", message_data = { a = 1 } } },
  }

  for _, ch in ipairs(channels) do
    describe(ch.method, function()
      it("posts the request's message and returns delivery_id and queued_at", function()
        server.respond({ body = QUEUED })
        local req = customerio[ch.class](ch.fields)
        local res, resp = api[ch.method](api, req)
        assert.are.same({ delivery_id = "RPILAgABcRhIBqSp7kiPekGBIeVh", queued_at = 1700000000 }, res)
        assert.are.equal(200, resp.status)
        local got = server.last()
        assert.are.equal("POST", got.method)
        assert.are.equal(ch.path, got.path)
        assert.are.equal("Bearer " .. APP_KEY, got.headers.authorization)
        assert.are.equal("application/json", got.headers["content-type"])
        for k, v in pairs(ch.fields) do
          if type(v) == "table" then
            for kk, vv in pairs(v) do assert.are.equal(vv, got.json[k][kk]) end
          else
            assert.are.equal(v, got.json[k])
          end
        end
      end)

      it("takes a plain table of fields as well", function()
        assert(api[ch.method](api, ch.fields))
        assert.are.equal(ch.path, server.last().path)
        assert.are.equal(ch.fields.transactional_message_id, server.last().json.transactional_message_id)
      end)

      it("sends fields it does not know (auto_create, future ones) as given", function()
        local fields = { auto_create = true, some_new_field = { x = 1 } }
        for k, v in pairs(ch.fields) do fields[k] = v end
        assert(api[ch.method](api, customerio[ch.class](fields)))
        assert.is_true(server.last().json.auto_create)
        assert.are.equal(1, server.last().json.some_new_field.x)
      end)

      it("refuses identifiers that are missing or not exactly one of id, email, cio_id", function()
        local function without(k)
          local t = {}
          for kk, v in pairs(ch.fields) do if kk ~= k then t[kk] = v end end
          return t
        end
        refuses("identifiers is required", function() offline[ch.method](offline, without("identifiers")) end)
        local bad = without("identifiers")
        bad.identifiers = "42"
        refuses("identifiers must be a table, got string", function() offline[ch.method](offline, bad) end)
        local msg = 'identifiers must hold exactly one of "id", "email" or "cio_id"'
        for _, ids in ipairs({ {}, { id = "1", email = "a@b.c" }, { phone = "+15555550100" }, { id = "" },
          { id = "1", cio_id = "2" }, { email = customerio.null } }) do
          local t = without("identifiers")
          t.identifiers = ids
          refuses(msg, function() offline[ch.method](offline, t) end)
        end
      end)

      it("refuses a request of another channel with Node's message", function()
        local other = ch.class == "SendEmailRequest" and customerio.SendPushRequest(channels[2].fields)
          or customerio.SendEmailRequest(channels[1].fields)
        refuses('"request" must be an instance of ' .. ch.class, function() offline[ch.method](offline, other) end)
        refuses('"request" must be an instance of ' .. ch.class, function() offline[ch.method](offline, "x") end)
        refuses('"request" must be an instance of ' .. ch.class, function() offline[ch.method](offline) end)
      end)

      it("returns Customer.io's meta.error for a 4xx, without retrying", function()
        local a = new_api({ retry = { max_retries = 3, min_timeout = 1, max_timeout = 2 } })
        server.respond({ status = 400,
          body = '{"meta":{"error":"The transactional_message_id \\"nope\\" does not exist"}}' })
        local res, err = a[ch.method](a, ch.fields)
        assert.is_nil(res)
        assert.are.equal(400, err.status)
        assert.are.equal("http", err.kind)
        assert.are.equal('The transactional_message_id "nope" does not exist', err.message)
        assert.are.equal(1, server.count())
      end)
    end)
  end

  for _, ch in ipairs({ "SendPushRequest", "SendSMSRequest", "SendWhatsAppRequest",
    "SendInboxMessageRequest", "SendInAppRequest" }) do
    it(ch .. " requires transactional_message_id", function()
      local method = ({ SendPushRequest = "send_push", SendSMSRequest = "send_sms",
        SendWhatsAppRequest = "send_whatsapp", SendInboxMessageRequest = "send_inbox_message",
        SendInAppRequest = "send_in_app" })[ch]
      refuses("transactional_message_id is required", function()
        offline[method](offline, customerio[ch]({ identifiers = { id = "1" }, to = "x" }))
      end)
      refuses("transactional_message_id is required", function()
        offline[method](offline, { identifiers = { id = "1" }, transactional_message_id = "  " })
      end)
      refuses("transactional_message_id must be a string or a number, got table", function()
        offline[method](offline, { identifiers = { id = "1" }, transactional_message_id = {} })
      end)
    end)
  end

  describe("email", function()
    local base = { to = "a@example.com", identifiers = { id = "1" }, transactional_message_id = 1 }
    local function with(fields)
      local t = {}
      for k, v in pairs(base) do t[k] = v end
      for k, v in pairs(fields) do t[k] = v end
      return t
    end

    it("adds headers = {} like Node and keeps cc, which Node drops", function()
      assert(api:send_email(with({ cc = "b@example.com" })))
      local body = server.last().json
      assert.are.equal("b@example.com", body.cc)
      assert.are.same({}, body.headers)
      assert.is_nil(body.attachments)
    end)

    it("needs a template id unless from, subject and body are all given", function()
      local msg = "transactional_message_id is required unless from, subject and body are all given"
      refuses(msg, function() offline:send_email(with({ transactional_message_id = customerio.null })) end)
      refuses(msg, function()
        offline:send_email({ to = "a@b.c", identifiers = { id = "1" }, from = "x@y.z", subject = "Hi" })
      end)
      refuses(msg, function()
        offline:send_email({ to = "a@b.c", identifiers = { id = "1" }, from = "x@y.z", subject = "Hi", body = "" })
      end)
      assert(api:send_email({ to = "a@b.c", identifiers = { id = "1" }, from = "x@y.z", subject = "Hi", body = "<p>x</p>" }))
      assert.is_nil(server.last().json.transactional_message_id)
    end)

    it("needs to, and addresses as strings", function()
      refuses("to is required", function()
        offline:send_email({ identifiers = { id = "1" }, transactional_message_id = 1 })
      end)
      refuses("to must be a string of comma-separated addresses, got table", function()
        offline:send_email(with({ to = { "a@b.c" } }))
      end)
      refuses("cc must be a string of comma-separated addresses, got table", function()
        offline:send_email(with({ cc = { "a@b.c" } }))
      end)
    end)

    it("allows 15 recipients across to, cc and bcc, not 16", function()
      local function addresses(n, prefix)
        local t = {}
        for i = 1, n do t[i] = prefix .. i .. "@example.com" end
        return table.concat(t, ", ")
      end
      assert(api:send_email(with({ to = addresses(5, "t"), cc = addresses(5, "c"), bcc = addresses(5, "b") })))
      refuses("too many recipients: 16 across to, cc and bcc; the limit is 15", function()
        offline:send_email(with({ to = addresses(6, "t"), cc = addresses(5, "c"), bcc = addresses(5, "b") }))
      end)
      -- Commas inside quoted display names do not separate addresses.
      local quoted = {}
      for i = 1, 15 do quoted[i] = '"Doe, Jane ' .. i .. '" <j' .. i .. '@example.com>' end
      assert(api:send_email(with({ to = table.concat(quoted, ",") })))
      assert.are.equal(15, requests.count_addresses(table.concat(quoted, ",")))
      assert.are.equal(1, requests.count_addresses("{{customer.email}}"))
      assert.are.equal(2, requests.count_addresses(" a@b.c ,, d@e.f, "))
    end)

    it("refuses message_data that is not a table", function()
      refuses("message_data must be a table, got string", function()
        offline:send_email(with({ message_data = "x" }))
      end)
    end)

    it("does not change the caller's table", function()
      local fields = with({})
      local req = customerio.SendEmailRequest(fields)
      req:attach("a.txt", "x")
      assert.is_nil(fields.headers)
      assert.is_nil(fields.attachments)
    end)
  end)

  describe("attachments", function()
    local function new_req()
      return customerio.SendEmailRequest({ to = "a@example.com", identifiers = { id = "1" }, transactional_message_id = 1 })
    end

    it("are standard base64 without line breaks", function()
      local req = new_req()
      local bytes = {}
      for i = 0, 299 do bytes[#bytes + 1] = string.char(i % 256) end
      local data = table.concat(bytes)
      assert.are.equal(req, req:attach("blob.bin", data))
      req:attach("hello.txt", "Hello, world!\n")
      assert(api:send_email(req))
      local sent = server.last().json.attachments
      assert.are.equal("SGVsbG8sIHdvcmxkIQo=", sent["hello.txt"])
      assert.is_nil(sent["blob.bin"]:find("[\r\n]"))
      assert.is_truthy(sent["blob.bin"]:find("+", 1, true) or sent["blob.bin"]:find("/", 1, true))
      assert.are.equal(data, core.base64_decode(sent["blob.bin"]))
    end)

    it("take already encoded data with encode = false", function()
      local req = new_req()
      req:attach("invoice.pdf", "JVBERi0xLjQK", { encode = false })
      assert.are.equal("JVBERi0xLjQK", req.message.attachments["invoice.pdf"])
      assert.has_error(function() req:attach("bad.pdf", "not base64!", { encode = false }) end,
        "attachment bad.pdf is not valid base64 (encode = false)")
    end)

    it("refuse a duplicate filename", function()
      local req = new_req()
      req:attach("a.txt", "1")
      assert.has_error(function() req:attach("a.txt", "2") end, "attachment a.txt already exists")
    end)

    it("need a filename with an extension and string data", function()
      local req = new_req()
      assert.has_error(function() req:attach(nil, "x") end, "filename is required")
      assert.has_error(function() req:attach("README", "x") end,
        'attachment filename "README" must have an extension, e.g. "receipt.pdf"')
      assert.has_error(function() req:attach("a.txt", 42) end, "data must be a string, got number")
      assert.has_error(function() customerio.SendPushRequest({}):attach("a.txt", "x") end,
        "only email requests take attachments")
    end)

    it("over 2 MB in total are refused before sending", function()
      local req = new_req()
      req:attach("one.bin", string.rep("a", 1024 * 1024))
      assert.has_error(function() req:attach("two.bin", string.rep("b", 1024 * 1024 + 1)) end,
        "attachments total 2097153 bytes; the limit is 2 MB (2097152 bytes)")
      assert.is_nil(req.message.attachments["two.bin"])
      req:attach("two.bin", string.rep("b", 1024 * 1024))   -- exactly 2 MB is fine
      assert(api:send_email(req))
      -- Attachments given directly (already base64) are measured at send time.
      local big = core.base64_encode(string.rep("c", 2 * 1024 * 1024 + 3))
      refuses("attachments total 2097155 bytes; the limit is 2 MB (2097152 bytes)", function()
        offline:send_email({ to = "a@b.c", identifiers = { id = "1" }, transactional_message_id = 1,
          attachments = { ["big.bin"] = big } })
      end)
    end)
  end)

  describe("push", function()
    it("sends device as custom_device, and custom_payload", function()
      local device = { token = "abc", platform = "ios", last_used = 1700000000, attributes = { app_version = "1" } }
      local payload = { ios = { aps = { alert = "hi" } }, android = { message = { data = { k = "v" } } } }
      local req = customerio.SendPushRequest({ identifiers = { id = "1" }, transactional_message_id = 3,
        device = device, custom_payload = payload })
      assert.is_nil(req.message.device)
      assert(api:send_push(req))
      local body = server.last().json
      assert.is_nil(body.device)
      assert.are.equal("abc", body.custom_device.token)
      assert.are.equal("1", body.custom_device.attributes.app_version)
      assert.are.equal("hi", body.custom_payload.ios.aps.alert)
      assert.are.equal("v", body.custom_payload.android.message.data.k)
    end)

    it("refuses device and custom_device together", function()
      assert.has_error(function()
        customerio.SendPushRequest({ identifiers = { id = "1" }, transactional_message_id = 3, device = {}, custom_device = {} })
      end, "give device or custom_device, not both")
    end)
  end)

  it("request objects are checked by class, build with .new too, and print their class", function()
    local req = customerio.SendSMSRequest.new({ identifiers = { id = "1" }, transactional_message_id = 1 })
    assert.is_true(requests.is(req, "SendSMSRequest"))
    assert.is_false(requests.is(req, "SendEmailRequest"))
    assert.is_false(requests.is({}))
    assert.are.equal("customerio.SendSMSRequest", tostring(req))
    assert.are.equal(req, req:validate())
    assert.has_error(function() customerio.SendSMSRequest("x") end, "SendSMSRequest options must be a table, got string")
  end)

  it("never shows the App API key in errors", function()
    server.respond({ status = 401, body = '{"meta":{"error":"bad key Bearer appkey_789"}}' })
    local res, err = api:send_email({ to = "a@b.c", identifiers = { id = "1" }, transactional_message_id = 1 })
    assert.is_nil(res)
    assert.is_nil(tostring(err):find(APP_KEY, 1, true))
    assert.is_nil(err.body:find(APP_KEY, 1, true))
  end)
end)
