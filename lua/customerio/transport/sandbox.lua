--- The sandbox as a transport: what makes `customerio.sandbox.new()` usable as a client's
-- `transport` option. `send` turns the request's URL into a path and query, lets the sandbox
-- answer (`Sandbox:handle`) and records the call in its log; `sleep` does nothing (no real
-- time passes between retries in-process). The sandbox takes these as its own methods.
-- @module customerio.transport.sandbox
local M = {}

--- Handle one request (the transport interface of customerio.http.client).
-- @param sb a sandbox
-- @tparam table req `{method, url, headers, body}`
-- @return response `{status, headers, body}`
function M.send(sb, req)
  local path, query = req.url:match("^%a[%w+.-]*://[^/]*([^?#]*)%??([^#]*)")
  path = path or req.url
  local res = sb:handle(req.method, path, query, req.headers, req.body)
  sb.log[#sb.log + 1] = { method = req.method, path = path, status = res.status }
  return res
end

--- No sleeping between retries.
function M.sleep() end

return M
