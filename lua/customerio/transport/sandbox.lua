--- The sandbox as a transport: what makes `customerio.sandbox.new()` usable as a client's
-- `transport` option. `send` turns the request's URL into a path and query, lets the sandbox
-- answer (`Sandbox:handle`) and records the call (`Sandbox:record`, credentials masked); `sleep` does nothing (no real
-- time passes between retries in-process). The sandbox takes these as its own methods.
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

--- No sleeping between retries.
function M.sleep() end

return M
