-- POST /password-reset  {"email": "ada@example.com"}
--
-- Sends Customer.io's transactional "password reset" email from inside nginx. The call goes
-- over cosockets (customerio.transport.ngx, chosen automatically), so while Customer.io
-- answers this worker keeps serving other requests.
--
-- nginx.conf: content_by_lua_file .../password_reset.lua; (see nginx.conf next to this file)
local customerio = require("customerio")

local ngx = ngx

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(customerio.json.encode(body))
  return ngx.exit(status)
end

-- Read {"email": ...} from a JSON body (or an email=... form field).
ngx.req.read_body()
local email
local raw = ngx.req.get_body_data()
if raw and raw:find("^%s*{") then
  local input = customerio.json.decode(raw)
  email = type(input) == "table" and input.email or nil
else
  email = ngx.req.get_post_args().email
end
if type(email) ~= "string" or not email:match("^[^@%s]+@[^@%s]+$") then
  return reply(400, { error = "a valid email is required" })
end

-- Your application makes and stores the token; this one is 24 random bytes, hex.
local function new_token()
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(24)
  f:close()
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
local token = new_token()

-- One client per request is cheap: connections are pooled per worker, not per client.
local api = customerio.APIClient.new(os.getenv("CUSTOMERIO_APP_API_KEY"), {
  region = os.getenv("CUSTOMERIO_REGION"),
  url = os.getenv("CUSTOMERIO_APP_URL"),
  timeout = 5000,                                     -- ms, for each attempt
  -- waits use ngx.sleep; a send is replayed only when it provably was not sent (429, no
  -- connection), never after a 5xx or a broken connection: no duplicate emails
  retry = { max_retries = 2, max_total_backoff = 2000 },
})

local res, err = api:send_email(customerio.SendEmailRequest({
  transactional_message_id = os.getenv("RESET_MESSAGE_ID") or "password_reset",
  to = email,
  identifiers = { email = email },
  message_data = {
    reset_url = "https://example.com/reset?token=" .. token,
    expires_in_minutes = 30,
  },
}))

if not res then
  -- err.kind: "http" (err.status, err.message is Customer.io's), "timeout", "network", "tls"...
  -- err.sent: "no", "yes" (a response arrived) or "unknown" (it may have been sent)
  ngx.log(ngx.ERR, "password reset email for ", email, " failed: ", tostring(err))
  if err.kind == "http" and err.status and err.status < 500 then
    return reply(502, { error = "the email could not be sent" })
  end
  return reply(503, { error = "email delivery is unavailable, try again later" })
end

-- Same answer whether or not the address has an account.
return reply(202, { status = "sent", delivery_id = res.delivery_id })
