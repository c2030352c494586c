-- lua-customerio quickstart (make demo): Customer.io's core features end to end.
--
-- Without credentials it runs against the built-in sandbox, a local emulation of
-- Customer.io, so you can see every step without an account. With
-- CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY and CUSTOMERIO_APP_API_KEY set, the same
-- calls go to real Customer.io (CUSTOMERIO_REGION=eu for the EU data center); the
-- transactional templates (ids "password_reset", "order_confirmation"), broadcast 42 and
-- segments 1-3 must then exist in your workspace.
local customerio = require("customerio")

local site_id = os.getenv("CUSTOMERIO_SITE_ID")
local track_key = os.getenv("CUSTOMERIO_TRACK_API_KEY")
local app_key = os.getenv("CUSTOMERIO_APP_API_KEY")
local live = site_id and track_key and app_key

local sb, track, api
if live then
  local region = os.getenv("CUSTOMERIO_REGION") or "us"
  track = customerio.TrackClient.new(site_id, track_key, { region = region })
  api = customerio.APIClient.new(app_key, { region = region })
else
  sb = customerio.sandbox.new()
  track = customerio.TrackClient.new("demo-site", "demo-track-key", { transport = sb })
  api = customerio.APIClient.new("demo-app-key", { transport = sb })
end

local step = 0
local function section(title)
  step = step + 1
  print(("\n%d. %s"):format(step, title))
end

local function say(fmt, ...)
  print("   " .. fmt:format(...))
end

-- Every call returns a result, or nil and an error object; stop on the first error.
local function ok(result, err)
  if result == nil then
    print("   FAILED: " .. tostring(err))
    os.exit(1)
  end
  return result
end

local function members(segment_id)
  if not sb then
    return ("%d people"):format(ok(api:get_segment_customer_count(segment_id)).count)
  end
  local list = sb:segment_members(segment_id)
  return #list == 0 and "(nobody)" or table.concat(list, ", ")
end

print(("lua-customerio %s quickstart against %s"):format(customerio.version,
  live and "Customer.io (live credentials)" or "the local sandbox (no credentials set)"))

if sb then
  -- In your workspace these are built in the dashboard; the sandbox takes them as data.
  sb:add_segment({ id = 1, name = "Power users",
    filter = { attribute = { field = "engagement_tier", operator = "eq", value = "power_user" } } })
  sb:add_segment({ id = 2, name = "At risk", filter = { ["and"] = {
    { attribute = { field = "days_since_last_login", operator = "gt", value = 30 } },
    { ["not"] = { attribute = { field = "plan", operator = "eq", value = "free" } } },
  } } })
  sb:add_segment({ id = 3, name = "High value",
    filter = { attribute = { field = "total_revenue", operator = "gt", value = 500 } } })
  sb:add_transactional("password_reset", {
    from = "Example <help@example.com>",
    subject = "Reset your password",
    body = "Hi {{ customer.first_name | default: 'there' }}, reset it here: {{ trigger.reset_url }}\n"
      .. "The link expires in {{ trigger.expiry_hours }} hours. Questions? {{ trigger.support_email }}",
  })
  sb:add_transactional("order_confirmation", {
    from = "Example Shop <shop@example.com>",
    subject = "Order {{ trigger.order_id }} confirmed",
    body = "{% for item in trigger.items %}{{ item.qty }} x {{ item.name }} @ {{ item.price | currency }}\n"
      .. "{% endfor %}Total: {{ trigger.total | currency }}",
  })
  sb:add_broadcast(42, { name = "Product update", segment = 1, template = {
    from = "Example <news@example.com>",
    subject = "What's new in {{ trigger.version }}",
    body = "Hi {{ customer.first_name | default: 'there' }}: {{ trigger.changelog }}",
  } })
end

section("Identify people with the attributes that drive segments")
local now = os.time()
local people = {
  { "ada", { email = "ada@example.com", first_name = "Ada", plan = "pro", session_count = 64,
    total_revenue = 812.5, days_since_last_login = 1, last_active_at = now } },
  { "bob", { email = "bob@example.com", first_name = "Bob", plan = "pro", session_count = 12,
    total_revenue = 120, days_since_last_login = 45, last_active_at = now - 45 * 86400 } },
  { "cy", { email = "cy@example.com", first_name = "Cy", plan = "free", session_count = 3,
    total_revenue = "900", days_since_last_login = 60, last_active_at = now - 60 * 86400 } },
}
for _, p in ipairs(people) do
  local attrs = p[2]
  attrs.engagement_tier = attrs.session_count > 50 and "power_user" or attrs.session_count > 10 and "active" or "casual"
  ok(track:identify(p[1], attrs))
  say("identify(%q): tier %s, revenue %s (%s)", p[1], attrs.engagement_tier, tostring(attrs.total_revenue),
    type(attrs.total_revenue))
end
say("Power users: %s", members(1))
say("At risk:     %s", members(2))
if live then
  say("High value:  %s   <- cy's revenue is the string \"900\"", members(3))
else
  say("High value:  %s   <- cy's revenue is the string \"900\": the sandbox compares types strictly", members(3))
end
say("             (Customer.io's docs don't say what its segments do with a number sent as a string:")
say("              send numbers as numbers)")

section("Segment membership follows the data")
ok(track:identify("bob", { session_count = 70, engagement_tier = "power_user", days_since_last_login = 0 }))
ok(track:identify("cy", { total_revenue = 900 }))
say("bob logs in a lot -> Power users: %s; At risk: %s", members(1), members(2))
say("cy's revenue sent as a number -> High value: %s", members(3))

section("Send a password reset (transactional email)")
local reset = ok(api:send_email(customerio.SendEmailRequest({
  to = "ada@example.com",
  transactional_message_id = "password_reset",
  identifiers = { id = "ada" },
  message_data = { reset_url = "https://app.example.com/reset/abc123", expiry_hours = 24,
    support_email = "help@example.com" },
})))
say("queued delivery %s", reset.delivery_id)

section("Send an order confirmation with line items")
local order = ok(api:send_email(customerio.SendEmailRequest({
  to = "bob@example.com",
  transactional_message_id = "order_confirmation",
  identifiers = { id = "bob" },
  message_data = {
    order_id = "A-1001",
    items = { { name = "Tea", qty = 2, price = 4.5 }, { name = "Cake", qty = 1, price = 3.25 } },
    total = 12.25,
  },
})))
say("queued delivery %s", order.delivery_id)

if sb then
  section("The rendered emails (sandbox outbox)")
  for _, m in ipairs(sb.outbox) do
    say("To: %s | From: %s | Subject: %s", m.to, m.from, m.subject)
    for line in (m.body .. "\n"):gmatch("(.-)\n") do say("   %s", line) end
  end

  section("A template variable the data forgot fails the delivery, as at Customer.io")
  local bad = ok(api:send_email({ to = "ada@example.com", transactional_message_id = "password_reset",
    identifiers = { id = "ada" }, message_data = { expiry_hours = 24 } }))
  say("delivery %s: %s (%s)", bad.delivery_id, sb.deliveries[bad.delivery_id].status, sb.deliveries[bad.delivery_id].error)
  local preview = customerio.preview({ message_data = { expiry_hours = 24 } },
    { subject = "Reset", body = "Go to {{ trigger.reset_url }} ({{ data.expiry_hours }} hours)" })
  for _, problem in ipairs(preview.problems) do say("preview finds before sending: %s", problem.message) end
end

section("Trigger the product-update broadcast to the Power users segment")
local outbox_before = sb and #sb.outbox or 0
local trig = ok(api:trigger_broadcast(42, { version = "2.0", changelog = "Faster sync." }, { segment = { id = 1 } }))
say("trigger %s", tostring(trig.id))
if sb then
  for i = outbox_before + 1, #sb.outbox do say("-> %s: %s", sb.outbox[i].to, sb.outbox[i].subject) end
end

section("Trigger the same broadcast to a list of emails")
outbox_before = sb and #sb.outbox or 0
trig = ok(api:trigger_broadcast(42, { version = "2.0.1", changelog = "A fix." },
  { emails = { "cy@example.com", "nobody@example.com" }, email_ignore_missing = true }))
say("trigger %s (nobody@example.com is ignored: email_ignore_missing)", tostring(trig.id))
if sb then
  for i = outbox_before + 1, #sb.outbox do say("-> %s: %s", sb.outbox[i].to, sb.outbox[i].subject) end
end

section("Merge a duplicate profile into the primary")
ok(track:identify("ada-duplicate", { email = "ada.lovelace@example.net", phone = "+15555550100" }))
ok(track:track("ada-duplicate", "viewed_pricing", { plan = "team" }))
ok(track:merge_customers("id", "ada", "id", "ada-duplicate"))
if sb then
  local ada = sb:person("ada")
  say("duplicate deleted: %s; ada gained phone %s and %d event(s)", tostring(sb:person("ada-duplicate") == nil),
    tostring(ada.attributes.phone), #ada.events)
  local _, err = track:merge_customers("id", "ada", "id", "ghost")
  say("merging a person who does not exist fails: %s", tostring(err))
end

section("Suppress and delete")
ok(track:suppress("cy"))
ok(track:identify("cy", { plan = "pro" }))
if sb then say("cy suppressed: profile gone (%s) and re-identify ignored", tostring(sb:person("cy") == nil)) end
ok(track:destroy("bob"))
if sb then say("bob deleted: %s; Power users now: %s", tostring(sb:person("bob") == nil), members(1)) end

print("\nDone.")
