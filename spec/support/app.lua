--- Helpers shared by the App API specs.
--
--     local app = require("support.app")
--     local api = app.new_api()                 -- an APIClient on the test server, no retries
--     app.refuses("customer_id is required", function() app.offline:get_attributes(nil) end)
local customerio = require("customerio")
local luassert = require("luassert")
local server = require("support.server")

local app = {}

--- An APIClient against the local test server (retries and rate limits off); opts are merged in.
function app.new_api(opts)
  -- Client-side rate limits off: these specs are not about them (spec/ratelimit_spec.lua is),
  -- and every spec file of a run shares one server, so one budget per key.
  local o = { url = server.url() .. "/v1", retry = false, rate_limit = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return customerio.APIClient.new("appkey_789", o)
end

-- A client whose transport records what reaches it: checks must raise before anything does.
local sent = {}
app.offline = customerio.APIClient.new("appkey_789", { url = "http://cio.invalid/v1", transport = {
  send = function(_, req)
    sent[#sent + 1] = req
    return { status = 200, headers = {}, body = "{}" }
  end,
} })
app.offline_sent = sent

--- Assert that fn raises exactly msg and that nothing reached the transport of `app.offline`.
function app.refuses(msg, fn)
  local before = #sent
  luassert.has_error(fn, msg)
  luassert.are.equal(before, #sent)
end

return app
