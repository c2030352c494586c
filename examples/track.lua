-- Track API tour: people, events, devices, v2 batch, and the Pipelines client.
--
--   make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 examples/track.lua
--
-- With CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY set it talks to Customer.io (and
-- CUSTOMERIO_REGION=eu to the EU hosts). Without them it runs dry: a stand-in transport prints
-- each request instead of sending it and answers 200 {}.
local customerio = require("customerio")

local site_id = os.getenv("CUSTOMERIO_SITE_ID")
local api_key = os.getenv("CUSTOMERIO_API_KEY")
local region = os.getenv("CUSTOMERIO_REGION") or "us"

local transport -- nil: the real one (libcurl)
if not (site_id and api_key) then
  print("(dry run: set CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY to send for real)")
  site_id, api_key = "site_id", "api_key"
  transport = {
    send = function(_, req)
      print(req.method .. " " .. req.url)
      if req.body then print("  " .. req.body) end
      return { status = 200, headers = {}, body = "{}" }
    end,
  }
end

local track = customerio.TrackClient.new(site_id, api_key, { region = region, transport = transport })

-- Every call returns the decoded body, or nil and an error object.
local function check(result, err)
  if result == nil then
    io.stderr:write("failed: ", tostring(err), "\n")
    os.exit(1)
  end
  return result
end

-- People: identify with attributes; created_at may be given as an ISO-8601 string.
check(track:identify("42", { email = "ada@example.com", first_name = "Ada", created_at = "2023-11-14T22:13:20Z" }))

-- Events: Python/Go form (name, data, opts) or Node form (one table). Each gets an id (ULID)
-- so that a retry is not counted twice.
check(track:track("42", "purchase", { price = 23.45, currency = "EUR" }, { timestamp = os.time() }))
check(track:track("42", { name = "login", data = { method = "password" } }))
check(track:track_page_view("42", "https://example.com/pricing"))
check(track:track_screen("42", "Home"))
check(track:track_anonymous("anon_7f3a", "visited", { page = "/pricing" }))

-- Devices.
check(track:add_device("42", "fcm_token_xyz", "android", { last_used = os.time(), app_version = "2.1.0" }))

-- Several operations in one request (Track API v2). A 207 means some were refused:
-- result.failed lists them with their 1-based index.
local ops = customerio.operations
local result = check(track:batch({
  ops.identify({ email = "grace@example.com" }, { plan = "pro" }),
  ops.event("42", "trial_started", { days = 14 }),
  ops.object_identify({ object_type_id = "1", object_id = "acme" }, { name = "Acme" },
    { cio_relationships = { { identifiers = { id = "42" } } } }),
}))
for _, f in ipairs(result.failed) do
  print(string.format("operation %d refused: %s (%s)", f.index, tostring(f.message), tostring(f.field)))
end

-- Bad arguments raise at once, before anything is sent.
local ok, err = pcall(track.track, track, "42", "ping", nil, { timestamp = os.time() * 1000 })
print("milliseconds refused: " .. tostring(not ok) .. " - " .. tostring(err))

-- Pipelines (CDP) client: payloads use the API's camelCase keys.
local write_key = os.getenv("CUSTOMERIO_WRITE_KEY")
-- (Dry run too when the Track credentials are missing.)
local cdp = customerio.PipelinesClient.new(write_key or "write_key", { region = region, transport = transport })
if write_key or transport then
  check(cdp:track({ userId = "42", event = "Order Completed", properties = { total = 20.48 } }))
end

print("done")
