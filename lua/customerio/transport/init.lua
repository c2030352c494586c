--- Choosing a transport.
--
-- `transport.default(opts)` is what a client uses when it is not given one:
--
-- * inside nginx (lua-nginx-module, OpenResty): `customerio.transport.ngx`, over cosockets,
--   so a call never blocks the worker. It is chosen whatever the phase the client is created
--   in (clients are often built at module level or in init_worker); a call made in a phase
--   without cosockets (init, init_worker, set, header_filter, body_filter, log) fails with an
--   error of kind "phase" that names the phase and points to `customerio.Queue`.
-- * anywhere else: `customerio.transport.curl`, the C core's libcurl handle.
--
-- A transport is any object with `send(req, timeout_ms)` → `{status, headers, body}` or
-- `nil, kind, message`, and optionally `sleep(ms)` (see docs/INTERNALS.md).
-- @module customerio.transport
local M = {}

--- Whether this code runs inside nginx with the Lua module (cosockets exist in this VM).
-- @treturn boolean
function M.in_nginx()
  local ngx = rawget(_G, "ngx")
  return type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function"
    and type(ngx.get_phase) == "function"
end

--- The name of the transport `default` would create: "ngx" or "curl".
-- @treturn string
function M.default_name()
  return M.in_nginx() and "ngx" or "curl"
end

--- Why a request's headers cannot be sent, or nil: a name given twice in two cases
-- ("Authorization" and "authorization"). Header names are case-insensitive, so both would go
-- out; every transport refuses such a request (kind "request") rather than guess.
-- @tparam[opt] table headers name -> value
-- @treturn string|nil
function M.repeated_header(headers)
  if type(headers) ~= "table" then return nil end
  local seen = {}
  for name in pairs(headers) do
    if type(name) == "string" then
      local lower = name:lower()
      if seen[lower] then return "header " .. lower .. " is given twice, in two cases" end
      seen[lower] = true
    end
  end
  return nil
end

--- Create the default transport for where this code runs.
-- @tparam[opt] table opts `ca_file`, `connect_timeout` (ms), `max_response` (bytes); the ngx
-- transport also takes `keepalive_timeout`, `pool_size`, `backend` (see its module)
-- @return transport
function M.default(opts)
  return require("customerio.transport." .. M.default_name()).new(opts)
end

return M
