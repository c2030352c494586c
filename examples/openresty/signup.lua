-- POST /signup  {"email": "ada@example.com", "name": "Ada", "plan": "pro"}
--
-- Creates the person in Customer.io (identify) and records a "signed_up" event (track), from
-- inside nginx over cosockets. Both calls finish before the answer; to answer first and
-- deliver afterwards, run the same code in `ngx.timer.at(0, ...)` (cosockets work in timers),
-- or enqueue with customerio.Queue.
--
-- nginx.conf: content_by_lua_file .../signup.lua; (see nginx.conf next to this file)
local customerio = require("customerio")

local ngx = ngx

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(customerio.json.encode(body))
  return ngx.exit(status)
end

ngx.req.read_body()
local input = customerio.json.decode(ngx.req.get_body_data() or "")
if type(input) ~= "table" or type(input.email) ~= "string" or not input.email:match("^[^@%s]+@[^@%s]+$") then
  return reply(400, { error = "a JSON body with a valid email is required" })
end

local track = customerio.TrackClient.new(os.getenv("CUSTOMERIO_SITE_ID"), os.getenv("CUSTOMERIO_TRACK_API_KEY"), {
  region = os.getenv("CUSTOMERIO_REGION"),
  url = os.getenv("CUSTOMERIO_TRACK_URL"),
  timeout = 3000,
})

-- Your user id; the email works as an identifier too.
local id = input.email
local now = ngx.time()

local ok, err = track:identify(id, {
  email = input.email,
  name = type(input.name) == "string" and input.name or nil,
  plan = type(input.plan) == "string" and input.plan or "free",
  created_at = now,
})
if ok then
  ok, err = track:track(id, "signed_up", { plan = input.plan or "free", source = ngx.var.http_referer })
end

if not ok then
  -- The signup itself succeeded; Customer.io failing must not fail it. Log and move on.
  ngx.log(ngx.ERR, "customer.io for signup ", id, ": ", tostring(err))
end

return reply(201, { status = "created", id = id, tracked = ok ~= nil })
