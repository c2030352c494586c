--- The sandbox as a transport: what makes `customerio.sandbox.new()` usable as a client's
-- `transport` option. `send` turns the request's URL into a path and query, lets the sandbox
-- answer (`Sandbox:handle`) and records the call (`Sandbox:record`, credentials masked); `sleep`
-- advances the sandbox's clock instead of waiting. The sandbox takes these as its own methods.
-- @module customerio.transport.sandbox
local core = require("customerio.core")

local M = {}

--- Handle one request (the transport interface of customerio.http.client).
-- @param sb a sandbox
-- @tparam table req `{method, url, headers, body}`
-- @return response `{status, headers, body}`
function M.send(sb, req)
  local path, query = req.url:match("^%a[%w+.-]*://[^/]*([^?#]*)%??([^#]*)")
  path = path or req.url
  local started = core.monotonic_ms()
  local res = sb:handle(req.method, path, query, req.headers, req.body)
  sb:record({ method = req.method, path = path, query = query, headers = req.headers, body = req.body,
    status = res.status, response = res.body, ms = core.monotonic_ms() - started })
  return res
end

--- Waits pass on the sandbox's own clock (`sb:clock_ms()`, which its rate limits use): a
-- retry's backoff or a rate-limit wait advances that clock at once, so specs do not wait
-- in real time and the limits still see the time the client waited.
-- @param sb a sandbox
-- @tparam number ms
function M.sleep(sb, ms)
  if ms and ms > 0 then sb.skew_ms = sb.skew_ms + ms end
end

--- The client-side rate limiter's backend for clients of this sandbox: private to the sandbox
-- and on its clock (see `sleep`).
-- @param sb a sandbox
-- @return a `customerio.ratelimit.memory` backend
function M.rate_limit_backend(sb)
  if not sb.client_limits then
    sb.client_limits = require("customerio.ratelimit.memory").new({ private = true,
      clock = function() return sb:clock_ms() end })
  end
  return sb.client_limits
end

return M
