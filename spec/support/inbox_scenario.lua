-- A scripted scenario against a sandbox over HTTP, through the real clients: segments,
-- templates, people, events, devices, a merge, a deletion, transactional sends on every channel,
-- a broadcast, a delivery that fails on a missing variable and a message carrying <script>.
-- Returns what the inbox specs look for.
local customerio = require("customerio")

local M = {}

local function ok(res, err)
  if res == nil then error(tostring(err), 2) end
  return res
end

M.RESET_BODY = table.concat({
  '<div style="font-family:Georgia,serif;max-width:520px;margin:24px auto;padding:24px;'
    .. 'border:1px solid #e2e2e2;border-radius:8px">',
  '<h1 style="color:#3a4fd8;font-size:24px">Reset your password</h1>',
  "<p>Hi {{ customer.first_name | default: 'there' }},</p>",
  '<p>Someone asked to reset the password of {{ customer.email }}. The link works for {{ trigger.expiry_hours }} hours:</p>',
  '<p><a href="{{ trigger.reset_url }}" style="background:#3a4fd8;color:#fff;padding:10px 18px;border-radius:6px;'
    .. 'text-decoration:none">Choose a new password</a></p>',
  '<p style="color:#777;font-size:13px">Not you? Ignore this email.</p></div>',
}, "\n")

-- The script a hostile message carries: it would retitle the page and add a marker element.
M.SCRIPT = "<script>document.title='PWNED';var m=document.createElement('p');m.id='pw'+'ned';"
  .. "document.body.appendChild(m)</script>"

function M.run(h)
  local track = customerio.TrackClient.new("site", "track-secret-key", { url = h.base .. "/api/v1", retry = false })
  local api = customerio.APIClient.new("app-secret-key", { url = h.base .. "/v1", retry = false })
  local c = h.control
  c("POST", "reset", {})
  c("POST", "segments", { id = 1, name = "Power users",
    filter = { attribute = { field = "plan", operator = "eq", value = "pro" } } })
  c("POST", "segments", { id = 2, name = "High value",
    filter = { attribute = { field = "total_revenue", operator = "gt", value = 500 } } })
  c("POST", "segments", { id = 3, name = "Beta testers", manual = true })
  local reset_template = c("POST", "transactional", { id = "password_reset", template = {
    from = "Example <help@example.com>", subject = "Reset your password",
    body = M.RESET_BODY,
    body_plain = "Hi {{ customer.first_name | default: 'there' }}, reset it here: {{ trigger.reset_url }}",
  } }).id
  c("POST", "transactional", { id = "welcome", template = {
    from = "Example <hello@example.com>", subject = "Welcome, {{ customer.first_name }} " .. M.SCRIPT,
    body = "<title>Welcome</title><p>Welcome aboard, {{ customer.first_name }}!</p>" .. M.SCRIPT,
  } })
  c("POST", "transactional", { id = "order_shipped", template = { type = "push",
    title = "Order {{ trigger.order_id }} shipped", message = "It arrives {{ trigger.eta }}." } })
  c("POST", "transactional", { id = "login_code", template = { type = "sms",
    body = "Your Example code is {{ trigger.code }}" } })
  c("POST", "broadcasts", { id = 42, name = "Product update", segment = 1, template = {
    from = "Example <news@example.com>", subject = "What's new in {{ trigger.version }}",
    body = "<p>Hi {{ customer.first_name }}, version {{ trigger.version }} is out.</p>",
  } })

  ok(track:identify("ada", { email = "ada@example.com", first_name = "Ada", plan = "pro", total_revenue = 812.5,
    logins = 64, admin = false, tags = customerio.array({ "early", "math" }), address = { city = "London" } }))
  ok(track:identify("bob", { email = "bob@example.com", first_name = "Bob", plan = "free", total_revenue = 120 }))
  ok(track:identify("cy", { email = "cy@example.com", first_name = "Cy", plan = "pro", total_revenue = "900" }))
  ok(track:identify("ada-old", { email = "ada.l@example.org", newsletter = true }))
  ok(track:identify("temp", { email = "temp@example.com" }))
  ok(track:track("ada", "purchase", { sku = "TEA-1", price = 4.5 }))
  ok(track:track_page_view("ada", "https://example.com/pricing"))
  ok(track:add_device("ada", "fcm_token_ada", "android", { last_used = 1700000000 }))
  ok(track:merge_customers("id", "ada", "id", "ada-old"))
  ok(track:destroy("temp"))
  ok(track:add_customers_to_segment(3, { "bob" }))

  local out = { reset_template = reset_template }
  out.reset = ok(api:send_email({ to = "ada@example.com", transactional_message_id = "password_reset",
    identifiers = { id = "ada" },
    message_data = { reset_url = "https://app.example.com/reset/abc123", expiry_hours = 24 } })).delivery_id
  out.push = ok(api:send_push({ transactional_message_id = "order_shipped", identifiers = { id = "bob" },
    message_data = { order_id = "A-1001", eta = "tomorrow" } })).delivery_id
  out.sms = ok(api:send_sms({ transactional_message_id = "login_code", identifiers = { id = "cy" },
    message_data = { code = "482913" } })).delivery_id
  -- No reset_url: Customer.io fails the delivery on the missing variable (line 4 of the body).
  out.failed = ok(api:send_email({ to = "bob@example.com", transactional_message_id = "password_reset",
    identifiers = { id = "bob" }, message_data = { expiry_hours = 2 } })).delivery_id
  out.script = ok(api:send_email({ to = "cy@example.com", transactional_message_id = "welcome",
    identifiers = { id = "cy" } })).delivery_id
  out.trigger = ok(api:trigger_broadcast(42, { version = "2.0" })).id
  return out
end

return M
