-- Transactional messages: a password reset email with an attachment, a push, an SMS.
--
--   make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 examples/transactional.lua
--
-- With CUSTOMERIO_APP_API_KEY set it sends through Customer.io (CUSTOMERIO_REGION=eu for the EU
-- hosts; the template ids below must exist in your workspace). Without it it runs dry: a
-- stand-in transport prints each request and answers like Customer.io does.
local customerio = require("customerio")

local key = os.getenv("CUSTOMERIO_APP_API_KEY")
local region = os.getenv("CUSTOMERIO_REGION") or "us"

local transport -- nil: the real one (libcurl)
if not key then
  print("(dry run: set CUSTOMERIO_APP_API_KEY to send for real)")
  key = "app_api_key"
  local n = 0
  transport = {
    send = function(_, req)
      n = n + 1
      print(req.method .. " " .. req.url)
      if req.body then print("  " .. req.body:sub(1, 300) .. (#req.body > 300 and " ..." or "")) end
      return { status = 200, headers = {},
        body = string.format('{"delivery_id":"dry-run-%d","queued_at":%d}', n, os.time()) }
    end,
  }
end

local api = customerio.APIClient.new(key, { region = region, transport = transport })

-- A password reset: the template (its id or its trigger name) is designed in Customer.io and
-- reads {{trigger.reset_url}}; the person is created if they do not exist.
local email = customerio.SendEmailRequest({
  to = "ada@example.com",
  identifiers = { id = "42" },
  transactional_message_id = "password_reset",
  message_data = { reset_url = "https://example.com/reset/abc123", expiry_hours = 24 },
})
-- Attachments are base64-encoded for you; the total must stay under 2 MB.
email:attach("instructions.txt", "Open the link within 24 hours.\n")

local res, err = api:send_email(email)
if not res then
  -- A 4xx carries Customer.io's own explanation, e.g. an unknown template id.
  io.stderr:write("send_email failed: ", tostring(err), "\n")
  os.exit(1)
end
print("email queued: " .. res.delivery_id .. " at " .. res.queued_at)

-- A receipt without a template: from, subject and body instead of transactional_message_id.
assert(api:send_email({
  to = '"Ada Lovelace" <ada@example.com>',
  bcc = "receipts@example.com",
  identifiers = { email = "ada@example.com" },
  from = "Shop <shop@example.com>",
  subject = "Your receipt for order {{trigger.order_id}}",
  body = "<p>Thanks! Total: {{trigger.total}}</p>",
  message_data = { order_id = "A-1001", total = "23.45 EUR" },
}))

-- A push to the device the person used last, registering a device on the way.
assert(api:send_push(customerio.SendPushRequest({
  identifiers = { id = "42" },
  transactional_message_id = "order_shipped",
  to = "last_used",
  title = "Your order shipped",
  device = { token = "apns_token_abc", platform = "ios" },    -- sent as custom_device
})))

-- An SMS; the template provides the text.
assert(api:send_sms({
  identifiers = { id = "42" },
  transactional_message_id = "login_code",
  to = "+15555550100",
  message_data = { code = "123456" },
}))

-- Mistakes raise before anything is sent, with a plain message:
local ok, msg = pcall(api.send_sms, api, { identifiers = { id = "42", email = "ada@example.com" },
  transactional_message_id = "login_code" })
print(ok, msg)   --> false   identifiers must hold exactly one of "id", "email" or "cio_id"
