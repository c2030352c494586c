-- API-triggered broadcasts, their status, and a few more App API calls (segments, paging).
--
--   make && LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so;;' lua5.4 examples/broadcast.lua
--
-- With CUSTOMERIO_APP_API_KEY set it talks to Customer.io (CUSTOMERIO_REGION=eu for the EU
-- hosts; broadcast 7 and segment 3 must exist). Without it it runs dry: a stand-in transport
-- prints each request and answers with canned bodies.
local customerio = require("customerio")

local key = os.getenv("CUSTOMERIO_APP_API_KEY")
local region = os.getenv("CUSTOMERIO_REGION") or "us"

local transport -- nil: the real one (libcurl)
if not key then
  print("(dry run: set CUSTOMERIO_APP_API_KEY to send for real)")
  key = "app_api_key"
  local pages = { '{"ids":["1","2"],"next":"cursor2"}', '{"ids":["3"],"next":""}' }
  transport = {
    send = function(_, req)
      print(req.method .. " " .. req.url)
      if req.body then print("  " .. req.body) end
      local body = "{}"
      if req.url:find("/triggers$") then body = '{"id":1001}' end
      if req.url:find("/membership") then body = table.remove(pages, 1) or '{"ids":[]}' end
      return { status = 200, headers = {}, body = body }
    end,
  }
end

local api = customerio.APIClient.new(key, { region = region, transport = transport })
local f = customerio.filters

local function check(result, err)
  if result == nil then
    io.stderr:write("failed: ", tostring(err), "\n")   -- a 404 reads "broadcast 7 not found: ..."
    os.exit(1)
  end
  return result
end

-- To the broadcast's own audience, with data for its Liquid ({{trigger.headline}}).
-- Customer.io allows one trigger per broadcast every 10 seconds.
local trigger = check(api:trigger_broadcast(7, { headline = "Spring sale", discount = 20 }))
print("trigger id: " .. tostring(trigger.id))

-- To a filtered audience: people in segment 3 on the pro plan, or anyone who is a VIP but
-- not in segment 4. The builder checks the filter grammar as you write it.
local audience = f.any_of({
  f.all_of({ f.segment(3), f.attribute("plan", "eq", "pro") }),
  f.all_of({ f.exists("vip"), f.none_of(f.segment(4)) }),
})
check(api:trigger_broadcast(7, { headline = "VIP preview" }, audience))

-- To a list of people, each with their own data; unknown ids are skipped instead of failing.
check(api:trigger_broadcast(7, nil, {
  per_user_data = {
    { id = "42", data = { voucher = "A-42" } },
    { email = "grace@example.com", data = { voucher = "B-7" } },
  },
  id_ignore_missing = true,
}))

-- What happened to a trigger, and its per-recipient errors.
check(api:get_broadcast_trigger_status(7, trigger.id))
check(api:get_broadcast_trigger_errors(7, trigger.id, { limit = 50 }))

-- Every member of a segment, following the next cursors.
local count = 0
for page, err in api:pages("get_segment_membership", 3, { limit = 1000 }) do
  check(page, err)
  count = count + #(page.ids or {})
end
print("segment 3 has " .. count .. " members")

-- Options take Node's camelCase too, so code ported from customerio-node keeps working.
check(api:get_customer_activities("42", { idType = "id", type = "event", limit = 10 }))

-- An endpoint this library does not know yet.
check(api:request("GET", "/segments/3/customer_count"))
