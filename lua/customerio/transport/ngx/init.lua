--- Transport over nginx cosockets (lua-nginx-module / OpenResty): non-blocking.
--
-- Inside an nginx worker a blocking libcurl call stalls every request the worker serves, so
-- the clients send over `ngx.socket.tcp` instead: HTTP/1.1, TLS with certificate
-- verification (always on), a per-worker keep-alive pool, the client's whole-request timeout.
-- `customerio.transport.default()` picks this transport automatically inside nginx.
--
-- This module holds what both HTTP backends share (URL parsing, the
-- deadline, connecting, the pool, TLS, the stale-connection retry) and chooses the backend
-- once, when the transport is created: `customerio.transport.ngx.resty_http` when
-- lua-resty-http is installed (`require "resty.http"` succeeds), else the built-in HTTP/1.1
-- client `customerio.transport.ngx.cosocket`.
--
-- Cosockets work in the rewrite, access, content, timer, ssl_cert, ssl_session_fetch and
-- ssl_client_hello phases (and stream's preread). In any other phase `send` returns
-- `nil, "phase", message`; the client turns that into an error of kind "phase".
--
-- Trust: nginx verifies against the `lua_ssl_trusted_certificate` directive (and chains up
-- to `lua_ssl_verify_depth`), so the `ca_file` option cannot be applied per connection
-- here; it only separates keep-alive pools. See examples/openresty/README.md.
-- @module customerio.transport.ngx
local ngx = ngx
local check = require("customerio.http.check")
local fail = check.fail

local M = {}

local Ngx = {}
Ngx.__index = Ngx
M.Transport = Ngx

--- Phases in which cosockets (and ngx.sleep) are available.
M.cosocket_phases = {
  rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
  preread = true, -- stream subsystem
}

local DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
local READ_CHUNK = 65536

local in_nginx = require("customerio.transport").in_nginx

--- Whether this code runs inside nginx with the Lua module (any phase): `customerio.transport.in_nginx`.
-- @function in_nginx
M.in_nginx = in_nginx

--- The current phase and whether cosockets can be used in it.
-- @treturn boolean usable
-- @treturn string phase name ("content", "log", ...), or nil outside nginx
function M.phase()
  if not in_nginx() then return false, nil end
  local phase = ngx.get_phase()
  return M.cosocket_phases[phase] == true, phase
end

--- The message returned when a call is made in a phase without cosockets.
-- @tparam string phase
-- @treturn string
function M.phase_message(phase)
  return "cosockets are not available in the " .. tostring(phase) .. " phase; enqueue with " ..
    "customerio.Queue (background delivery) or call from access/content/timer"
end

local function positive(v, name, default)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
    fail(name .. " must be a positive number")
  end
  return v
end

local BACKENDS = { builtin = "customerio.transport.ngx.cosocket", ["resty.http"] = "customerio.transport.ngx.resty_http" }

--- Create a transport. One per client is fine; the keep-alive pool belongs to the worker.
-- @tparam[opt] table opts
--   `connect_timeout` (ms, default 10000, never more than the request's timeout);
--   `keepalive_timeout` (ms an idle pooled connection is kept, default 30000: below the idle
--   timeouts of the usual load balancers);
--   `pool_size` (connections per pool and worker, default 30);
--   `max_response` (bytes, default 64 MiB);
--   `ca_file` (cannot be applied inside nginx: set `lua_ssl_trusted_certificate` to the same
--   file; here it only keeps connections verified against different files apart);
--   `backend` ("auto" (default): lua-resty-http when installed, else "builtin"; or
--   "resty.http", "builtin").
-- @return transport
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("transport options must be a table") end
  local backend = opts.backend or "auto"
  if backend == "auto" then
    backend = require(BACKENDS["resty.http"]).available and "resty.http" or "builtin"
  elseif backend == "resty.http" then
    if not require(BACKENDS["resty.http"]).available then
      fail("lua-resty-http is not installed (require \"resty.http\" failed)")
    end
  elseif backend ~= "builtin" then
    fail("backend must be \"auto\", \"resty.http\" or \"builtin\"")
  end
  if opts.ca_file ~= nil and type(opts.ca_file) ~= "string" then fail("ca_file must be a path") end
  return setmetatable({
    name = "ngx",
    backend = backend,
    http = require(BACKENDS[backend]),
    connect_timeout = check.ms(opts.connect_timeout, "connect_timeout", { positive = true, default = 10000 }),
    keepalive_timeout = check.ms(opts.keepalive_timeout, "keepalive_timeout", { positive = true, default = 30000 }),
    pool_size = math.floor(positive(opts.pool_size, "pool_size", 30)),
    max_response = positive(opts.max_response, "max_response", DEFAULT_MAX_RESPONSE),
    ca_file = opts.ca_file,
    pool_tag = opts.pool,
    stats = { requests = 0, connects = 0, reused = 0 },
    last_connects = 0,
  }, Ngx)
end

-- URL and request -------------------------------------------------------------------------

-- scheme, host (for connect and TLS), port, Host header value, request target
local function parse_url(u)
  if type(u) ~= "string" or u:find("[%z\1-\32\127]") then return nil, "URL contains spaces or control characters" end
  local scheme, authority, rest = u:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil, "not an absolute URL: " .. u end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil, "unsupported URL scheme: " .. scheme end
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  local bracketed = host ~= nil
  if not host then host, port = authority:match("^([^:%[%]]+):?(%d*)$") end
  if not host or host == "" then return nil, "no host in URL: " .. u end
  local default_port = scheme == "https" and 443 or 80
  local nport = default_port
  if port ~= "" then nport = tonumber(port) end
  if not nport or nport < 1 or nport > 65535 then return nil, "bad port in URL: " .. u end
  host = host:lower()
  local host_header = bracketed and ("[" .. host .. "]") or host
  if nport ~= default_port then host_header = host_header .. ":" .. nport end
  rest = rest:gsub("#.*$", "")
  if rest == "" then rest = "/" elseif rest:sub(1, 1) == "?" then rest = "/" .. rest end
  return scheme, host, nport, host_header, rest
end
M.parse_url = parse_url

--- Whether a request header may be sent as is (no CR, LF or NUL; a token for a name).
local function valid_header(name, value)
  return type(name) == "string" and name:match("^[!#$%%&'*+.^_`|~%w-]+$") ~= nil
    and (type(value) == "string" or type(value) == "number")
    and not tostring(value):find("[\r\n%z]")
end

-- Helpers of both backends ---------------------------------------------------------------

M.valid_header = valid_header
M.READ_CHUNK = READ_CHUNK

--- Add a response header; a repeated one joins the earlier value with ", ".
function M.add_header(headers, name, value)
  local old = headers[name]
  if old == nil then headers[name] = value else headers[name] = old .. ", " .. value end
end

-- Content-Length value: a number, or nil and whether the header was malformed.
function M.content_length(value)
  if value == nil then return nil, false end
  local n
  for item in value:gmatch("[^,]+") do
    local digits = item:match("^%s*(%d+)%s*$")
    if not digits or #digits > 15 then return nil, true end
    local v = tonumber(digits)
    if n and v ~= n then return nil, true end
    n = v
  end
  if not n then return nil, true end
  return n, false
end

-- Error helpers ---------------------------------------------------------------------------

local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end

--- The kind, message and stage of a failed send or read.
local function transfer_error(err, what, where, budget)
  local stage = what == "sending the request to" and "send" or "receive"
  if err == "timeout" then
    return "timeout", "timed out " .. what .. " " .. where .. " (timeout " .. budget .. " ms)", stage
  end
  return "network", what .. " " .. where .. " failed: " .. tostring(err), stage
end

local function connect_error(err, host, where, budget)
  if err == "timeout" then
    return "timeout", "timed out connecting to " .. where .. " (timeout " .. budget .. " ms)"
  end
  local msg = "cannot connect to " .. where .. ": " .. tostring(err)
  local stage = "connect"
  if tostring(err):find("no resolver defined", 1, true) then
    msg = msg .. " (add a `resolver` directive to nginx.conf so that nginx can resolve " .. host .. ")"
    stage = "resolve"
  elseif tostring(err):find("could not be resolved", 1, true) then
    stage = "resolve"
  end
  return "network", msg, stage
end

local function tls_error(err, host, where, budget)
  if err == "timeout" then
    return "timeout", "timed out in the TLS handshake with " .. where .. " (timeout " .. budget .. " ms)"
  end
  local msg = "TLS handshake with " .. where .. " failed: " .. tostring(err) ..
    " (inside nginx certificates are verified against lua_ssl_trusted_certificate," ..
    " up to lua_ssl_verify_depth"
  if tostring(err):find("mismatch", 1, true) and (host:match("^[%d.]+$") or host:find(":", 1, true)) then
    msg = msg .. "; nginx matches host names only, not IP addresses: use the certificate's host name"
  end
  return "tls", msg .. ")"
end

--- Whether a failure on a reused connection means the server had closed it while idle.
local function stale(err)
  return err == "closed" or err == "broken pipe" or err == "connection reset by peer"
end
M.transfer_error, M.stale = transfer_error, stale

-- Deadline tracking: each socket operation gets what is left of the request's timeout.
local Budget = {}
Budget.__index = Budget

local function budget(timeout_ms)
  return setmetatable({ deadline = now_ms() + timeout_ms, total = timeout_ms }, Budget)
end

function Budget:left()
  local left = math.floor(self.deadline - now_ms())
  if left < 1 then return nil end
  return left
end

-- Apply the remaining time to a socket's send and read timeouts; false when none is left.
function Budget:apply(sock, connect_ms)
  local left = self:left()
  if not left then return false end
  sock:settimeouts(connect_ms and math.min(connect_ms, left) or left, left, left)
  return true
end

-- send ----------------------------------------------------------------------------------------

-- Like libcurl: a request that dies on a reused connection before any byte of the answer
-- (the server closed it while idle) is sent once more on a new connection.
local MAX_STALE_RETRIES = 1

--- Send one request.
-- @tparam table req `{method, url, headers, body}`
-- @tparam number timeout_ms whole-exchange timeout (connect, TLS, send and receive together)
-- @return `{status, headers (lower-case names), body}` or nil, kind, message, stage; kind is
-- "timeout", "network", "tls", "too_large", "request" or "phase"; stage as
-- customerio.transport.curl reports it ("resolve", "connect", "tls", "send", "receive",
-- "response", "request")
function Ngx:send(req, timeout_ms)
  local usable, phase = M.phase()
  if not usable then
    if phase == nil then return nil, "phase", "the ngx transport only works inside nginx (lua-nginx-module)", "request" end
    return nil, "phase", M.phase_message(phase), "request"
  end
  timeout_ms = timeout_ms or 10000
  if type(timeout_ms) ~= "number" or timeout_ms <= 0 or timeout_ms ~= timeout_ms then
    return nil, "request", "timeout must be a positive number", "request"
  end
  local scheme, host, port, host_header, target = parse_url(req.url)
  if not scheme then return nil, "request", host, "request" end
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then return nil, "request", "invalid HTTP method", "request" end
  local repeated = require("customerio.transport").repeated_header(req.headers)
  if repeated then return nil, "request", repeated, "request" end

  local backend = self.http
  local prepared, perr = backend.prepare(req, host_header, target)
  if not prepared then return nil, "request", perr, "request" end

  local where = host_header
  local tls = scheme == "https"
  -- nginx's resolver does not read /etc/hosts; "localhost" is the loopback address.
  -- IPv6 literals go to connect in brackets.
  local connect_host = host
  if host == "localhost" then
    connect_host = "127.0.0.1"
  elseif host:find(":", 1, true) then
    connect_host = "[" .. host .. "]"
  end
  local pool = "customerio:" .. scheme .. ":" .. host .. ":" .. port
  if tls then pool = pool .. ":sni=" .. host .. ":verify" end
  if self.ca_file then pool = pool .. ":ca=" .. self.ca_file end
  if self.pool_tag then pool = pool .. ":" .. tostring(self.pool_tag) end

  local b = budget(timeout_ms)
  self.stats.requests = self.stats.requests + 1
  local connects = 0
  for _ = 1, MAX_STALE_RETRIES + 1 do
    local conn, sock = backend.open()
    if not b:apply(sock, self.connect_timeout) then
      return nil, "timeout", "timed out before connecting to " .. where, "connect"
    end
    local ok, err = conn:connect(connect_host, port, { pool = pool, pool_size = self.pool_size })
    if not ok then
      local kind, msg, stage = connect_error(err, host, where, math.min(self.connect_timeout, b.total))
      return nil, kind, msg, stage
    end
    local reused = sock:getreusedtimes() > 0
    if reused then
      self.stats.reused = self.stats.reused + 1
    else
      connects = connects + 1
      self.stats.connects = self.stats.connects + 1
    end
    if tls and not reused then
      if not b:apply(sock) then
        sock:close()
        return nil, "timeout", "timed out before the TLS handshake with " .. where, "tls"
      end
      local session
      session, err = backend.handshake(conn, host)
      -- lua-nginx-module 0.10.23 / lua-resty-core 0.1.25: when the handshake completes at
      -- once but verification fails, sslhandshake(false, ...) returns true and closes the
      -- socket. A closed socket after a "successful" handshake is a verification failure.
      if session and not sock:getreusedtimes() then
        session, err = nil, "certificate verification failed (untrusted certificate or host name mismatch)"
      end
      if not session then
        sock:close()
        local kind, msg = tls_error(err, host, where, b.total)
        return nil, kind, msg, "tls"
      end
    end

    local res, keep_or_kind, msg, retry_fresh, stage = backend.exchange(self, conn, b, req, method, prepared, where)
    if res then
      self.last_connects = connects
      if keep_or_kind then
        local kept, kerr = sock:setkeepalive(self.keepalive_timeout, self.pool_size)
        if not kept and kerr then sock:close() end
      else
        sock:close()
      end
      return res
    end
    sock:close()
    if not retry_fresh then
      self.last_connects = connects
      if keep_or_kind == "too_large" then stage = "response" end
      return nil, keep_or_kind, msg, stage or "receive"
    end
    -- The pooled connection had been closed by the server while idle: try another one.
  end
  self.last_connects = connects
  return nil, "network", "the connection to " .. where .. " was closed before a response arrived", "receive"
end

--- Wait between retries without blocking the worker (ngx.sleep).
-- @tparam number ms
function Ngx:sleep(ms) -- luacheck: ignore 212/self
  if ms and ms > 0 and M.phase() then ngx.sleep(ms / 1000) end
end

--- Whether `sleep` can wait in the current phase (ngx.sleep needs a cosocket phase). The
-- rate limiter does not reserve a slot it could not wait for.
-- @treturn boolean
function Ngx.can_sleep()
  return (M.phase())
end

--- New connections made by the last exchange of this transport (0 means a pooled connection
-- was reused). With concurrent requests in a worker this is whichever finished last.
-- @treturn number
function Ngx:connects()
  return self.last_connects
end

--- Nothing to release: connections live in the worker's pool (or are closed after use).
function Ngx.close() end

return M
