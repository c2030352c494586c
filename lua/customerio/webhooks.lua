--- Verify that a webhook request comes from Customer.io.
--
-- Customer.io signs each reporting webhook with HMAC-SHA256 of
-- `v0:<timestamp>:<raw body>`, keyed with the webhook's signing secret, and sends
-- the hex digest in `X-CIO-Signature` and the timestamp in `X-CIO-Timestamp`.
--
--     local ok = customerio.webhooks.verify(secret,
--       ngx.var.http_x_cio_timestamp, raw_body, ngx.var.http_x_cio_signature)
--     if not ok then return ngx.exit(401) end
--
-- Pass the body exactly as received: a re-encoded JSON body will not match.
-- @module customerio.webhooks
local core = require("customerio.core")
local check = require("customerio.http.check")

local webhooks = {}

local function to_text(v)
  if type(v) == "number" then return check.id(v, "timestamp") end
  return v
end

--- The hex signature Customer.io sends for a body (lower-case hex).
-- @tparam string signing_secret the webhook's signing secret
-- @tparam string|number timestamp value of `X-CIO-Timestamp`
-- @tparam string raw_body the body as received
-- @treturn string 64 hex digits
function webhooks.sign(signing_secret, timestamp, raw_body)
  if check.is_empty(signing_secret) then check.fail("signing_secret is required") end
  if type(signing_secret) ~= "string" then check.fail("signing_secret must be a string") end
  timestamp = to_text(timestamp)
  if type(timestamp) ~= "string" then check.fail("timestamp must be a string or a number") end
  if type(raw_body) ~= "string" then check.fail("raw_body must be a string") end
  return core.hex(core.hmac("sha256", signing_secret, "v0:" .. timestamp .. ":" .. raw_body))
end

--- Whether a webhook request's signature is valid (compared in constant time).
--
-- Returns false, never raises, for a missing or malformed signature or timestamp
-- (headers may be absent); raises only when `signing_secret` is missing.
-- Upper-case hex signatures are accepted.
-- @tparam string signing_secret the webhook's signing secret
-- @tparam string|number timestamp value of `X-CIO-Timestamp`
-- @tparam string raw_body the body as received
-- @tparam string signature value of `X-CIO-Signature`
-- @treturn boolean
function webhooks.verify(signing_secret, timestamp, raw_body, signature)
  if check.is_empty(signing_secret) then check.fail("signing_secret is required") end
  if type(signing_secret) ~= "string" then check.fail("signing_secret must be a string") end
  if type(signature) ~= "string" or #signature ~= 64 then return false end
  timestamp = to_text(timestamp)
  if type(timestamp) ~= "string" or timestamp == "" then return false end
  if type(raw_body) ~= "string" then return false end
  local expected = webhooks.sign(signing_secret, timestamp, raw_body)
  return core.equal_ct(expected, signature:lower())
end

--- Verify with a table of request headers (any case of names) instead of two arguments.
-- @tparam string signing_secret the webhook's signing secret
-- @tparam table headers request headers (`X-CIO-Timestamp`, `X-CIO-Signature`)
-- @tparam string raw_body the body as received
-- @treturn boolean
function webhooks.verify_headers(signing_secret, headers, raw_body)
  if type(headers) ~= "table" then return webhooks.verify(signing_secret, nil, raw_body, nil) end
  local timestamp, signature
  for k, v in pairs(headers) do
    if type(k) == "string" then
      local name = k:lower():gsub("_", "-")
      if type(v) == "table" then v = v[1] end
      if name == "x-cio-timestamp" then timestamp = v end
      if name == "x-cio-signature" then signature = v end
    end
  end
  return webhooks.verify(signing_secret, timestamp, raw_body, signature)
end

return webhooks
