--- Transport over the C core's libcurl handle: blocking, keep-alive, TLS verified.
--
-- One handle per client, so consecutive calls reuse the connection.
-- @module customerio.transport.curl
local core = require("customerio.core")
local transport = require("customerio.transport")

local Curl = {}
Curl.__index = Curl

local M = {}

--- Create a transport.
-- @tparam[opt] table opts `ca_file`, `connect_timeout` (ms), `max_response` (bytes)
-- @return transport
function M.new(opts)
  opts = opts or {}
  local handle = core.http_new({
    ca_file = opts.ca_file,
    connect_timeout = opts.connect_timeout,
    max_response = opts.max_response,
  })
  return setmetatable({ handle = handle, name = "curl" }, Curl)
end

--- Send one request.
-- @tparam table req `{method, url, headers, body}`
-- @tparam number timeout_ms whole-exchange timeout
-- @return `{status, headers, body}` or nil, kind, message, stage: where the exchange failed,
-- "resolve", "connect", "tls" (no request byte written), "send" (connected, the request not
-- fully written), "receive" (written: the server may have acted on it), "response" (a
-- response broke a limit) or "request" (refused before sending). Every transport reports it;
-- customerio.http.client decides from it whether a call that is not idempotent is replayed.
function Curl:send(req, timeout_ms)
  local repeated = transport.repeated_header(req.headers)
  if repeated then return nil, "request", repeated, "request" end
  local status, headers, body, stage = self.handle:perform(req.method, req.url, req.headers, req.body, timeout_ms)
  if not status then return nil, headers, body, stage end
  return { status = status, headers = headers, body = body }
end

--- Block for ms milliseconds (between retries).
function Curl.sleep(_, ms)
  core.sleep_ms(ms)
end

--- New connections made by the last exchange (0 means the connection was reused).
function Curl:connects()
  return self.handle:info().connects
end

--- Close the connection now instead of at garbage collection.
function Curl:close()
  self.handle:close()
end

return M
