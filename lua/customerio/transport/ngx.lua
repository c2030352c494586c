--- Transport over nginx cosockets (lua-nginx-module / OpenResty): non-blocking.
--
-- Inside an nginx worker a blocking libcurl call stalls every request the worker serves, so
-- the clients send over `ngx.socket.tcp` instead: HTTP/1.1, TLS with certificate
-- verification (always on), a per-worker keep-alive pool, the client's whole-request timeout.
-- `customerio.transport.default()` picks this transport automatically inside nginx.
--
-- With lua-resty-http installed (`require "resty.http"` succeeds) the exchange goes through
-- it; otherwise through the small HTTP/1.1 client below (request line, headers and a
-- Content-Length body; responses framed by Content-Length, chunked transfer-encoding or the
-- end of the connection).
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
local check = require("customerio.check")

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
local MAX_HEAD = 256 * 1024
local READ_CHUNK = 65536

local function in_nginx()
  return type(ngx) == "table" and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function"
    and type(ngx.get_phase) == "function"
end

--- Whether this code runs inside nginx with the Lua module (any phase).
-- @treturn boolean
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
    error(name .. " must be a positive number", 3)
  end
  return v
end

local resty_http_checked, resty_http
local function load_resty_http()
  if not resty_http_checked then
    resty_http_checked = true
    local ok, mod = pcall(require, "resty.http")
    if ok and type(mod) == "table" and type(mod.new) == "function" then resty_http = mod end
  end
  return resty_http
end

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
  if type(opts) ~= "table" then error("transport options must be a table", 2) end
  local backend = opts.backend or "auto"
  if backend == "auto" then
    backend = load_resty_http() and "resty.http" or "builtin"
  elseif backend == "resty.http" then
    if not load_resty_http() then error("lua-resty-http is not installed (require \"resty.http\" failed)", 2) end
  elseif backend ~= "builtin" then
    error("backend must be \"auto\", \"resty.http\" or \"builtin\"", 2)
  end
  if opts.ca_file ~= nil and type(opts.ca_file) ~= "string" then error("ca_file must be a path", 2) end
  return setmetatable({
    name = "ngx",
    backend = backend,
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

local function valid_header(name, value)
  return type(name) == "string" and name:match("^[!#$%%&'*+.^_`|~%w-]+$") ~= nil
    and (type(value) == "string" or type(value) == "number")
    and not tostring(value):find("[\r\n%z]")
end

-- The request head and body as a list of strings for sock:send, plus header overrides.
local function format_request(req, host_header, target)
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then return nil, "invalid HTTP method" end
  local body = req.body
  if body ~= nil and type(body) ~= "string" then return nil, "request body must be a string" end
  local out = { method, " ", target, " HTTP/1.1\r\n" }
  local seen_host, seen_accept = false, false
  local headers = req.headers or {}
  for name, value in pairs(headers) do
    if not valid_header(name, value) then
      return nil, "header name or value contains forbidden characters (CR, LF, NUL): " .. tostring(name)
    end
    local lower = name:lower()
    if lower == "host" then seen_host = true end
    if lower == "accept" then seen_accept = true end
    -- Framing and connection management belong to the transport.
    if lower ~= "content-length" and lower ~= "transfer-encoding" and lower ~= "connection"
      and lower ~= "expect" then
      value = tostring(value)
      out[#out + 1] = name
      out[#out + 1] = value == "" and ":\r\n" or ": "
      if value ~= "" then
        out[#out + 1] = value
        out[#out + 1] = "\r\n"
      end
    end
  end
  if not seen_host then
    out[#out + 1] = "Host: " .. host_header .. "\r\n"
  end
  if not seen_accept then out[#out + 1] = "Accept: */*\r\n" end
  if body ~= nil then out[#out + 1] = "Content-Length: " .. #body .. "\r\n" end
  out[#out + 1] = "\r\n"
  if body ~= nil and body ~= "" then out[#out + 1] = body end
  return out, method
end

-- Error helpers ---------------------------------------------------------------------------

local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end

local function transfer_error(err, what, where, budget)
  if err == "timeout" then
    return "timeout", "timed out " .. what .. " " .. where .. " (timeout " .. budget .. " ms)"
  end
  return "network", what .. " " .. where .. " failed: " .. tostring(err)
end

local function connect_error(err, host, where, budget)
  if err == "timeout" then
    return "timeout", "timed out connecting to " .. where .. " (timeout " .. budget .. " ms)"
  end
  local msg = "cannot connect to " .. where .. ": " .. tostring(err)
  if tostring(err):find("no resolver defined", 1, true) then
    msg = msg .. " (add a `resolver` directive to nginx.conf so that nginx can resolve " .. host .. ")"
  end
  return "network", msg
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

-- Whether a failure on a reused connection means the server had closed it while idle.
local function stale(err)
  return err == "closed" or err == "broken pipe" or err == "connection reset by peer"
end

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

-- Built-in HTTP/1.1 client ------------------------------------------------------------------

local function add_header(headers, name, value)
  local old = headers[name]
  if old == nil then headers[name] = value else headers[name] = old .. ", " .. value end
end

-- A buffered reader over a cosocket. Every read is a receiveany bounded by what is left of the
-- request's budget: a cosocket read timeout only bounds the wait for the next packet, so one
-- receive(n) or receive("*l") on a peer that drips its answer could outlast any timeout.
local Reader = {}
Reader.__index = Reader

local function reader(sock, b)
  return setmetatable({ sock = sock, b = b, buf = "", pos = 1 }, Reader)
end

-- Bytes received but not consumed yet.
function Reader:pending()
  return #self.buf - self.pos + 1
end

function Reader:fill()
  if not self.b:apply(self.sock) then return nil, "timeout" end
  local data, err = self.sock:receiveany(READ_CHUNK)
  if not data then return nil, err end
  if self.pos > 1 then
    self.buf = self.buf:sub(self.pos)
    self.pos = 1
  end
  self.buf = self.buf .. data
  return true
end

-- One line without its CRLF (or LF); nil, err, protocol_error.
function Reader:line(max)
  while true do
    local nl = self.buf:find("\n", self.pos, true)
    if nl then
      local line = self.buf:sub(self.pos, nl - 1)
      self.pos = nl + 1
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      return line
    end
    if self:pending() > max then return nil, "response line longer than " .. max .. " bytes", true end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- Exactly n bytes; nil, err.
function Reader:bytes(n)
  local avail = self:pending()
  if avail >= n then
    local out = self.buf:sub(self.pos, self.pos + n - 1)
    self.pos = self.pos + n
    return out
  end
  local parts, got = { self.buf:sub(self.pos) }, avail
  self.buf, self.pos = "", 1
  while got < n do
    if not self.b:apply(self.sock) then return nil, "timeout" end
    local want = n - got
    if want > READ_CHUNK then want = READ_CHUNK end
    local data, err = self.sock:receiveany(want)
    if not data then
      if err == "closed" then return nil, "closed after " .. got .. " of " .. n .. " bytes" end
      return nil, err
    end
    got = got + #data
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- Everything until the peer closes, at most max bytes; nil, "too_large" beyond.
function Reader:rest(max)
  local parts, total = { self.buf:sub(self.pos) }, self:pending()
  self.buf, self.pos = "", 1
  if total > max then return nil, "too_large" end
  while true do
    if not self.b:apply(self.sock) then return nil, "timeout" end
    local data, err = self.sock:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then return table.concat(parts) end
      return nil, err
    end
    total = total + #data
    if total > max then return nil, "too_large" end
    parts[#parts + 1] = data
  end
end

-- Reads one response head: status, version, headers; or nil, err, protocol_error.
local function read_head(r)
  local line, err, protocol = r:line(MAX_HEAD)
  if not line then return nil, err, protocol end
  local version, status = line:match("^HTTP/(%d%.%d)%s+(%d%d%d)")
  if not version then
    local shown = #line > 80 and (line:sub(1, 80) .. "...") or line
    return nil, "invalid HTTP status line: " .. string.format("%q", shown), true
  end
  local headers, last, size = {}, nil, 0
  while true do
    line, err, protocol = r:line(MAX_HEAD)
    if not line then return nil, err, protocol end
    if line == "" then break end
    size = size + #line
    if size > MAX_HEAD then return nil, "response headers larger than " .. MAX_HEAD .. " bytes", true end
    local first = line:sub(1, 1)
    if (first == " " or first == "\t") and last then
      -- obsolete line folding: a continuation of the previous header
      local cont = line:gsub("^%s+", ""):gsub("%s+$", "")
      headers[last] = headers[last] .. " " .. cont
    else
      local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
      if not name then return nil, "invalid header line: " .. string.format("%q", line:sub(1, 80)), true end
      last = name:lower()
      add_header(headers, last, value)
    end
  end
  return tonumber(status), version, headers
end

local function read_chunked(r, max)
  local parts, total = {}, 0
  while true do
    local line, err, protocol = r:line(4096)
    if not line then return nil, err, protocol end
    local hex = line:match("^%s*(%x+)%s*;?")
    if not hex or #hex > 15 then return nil, "invalid chunk size line", true end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        line, err, protocol = r:line(MAX_HEAD)
        if not line then return nil, err, protocol end
      until line == ""
      return table.concat(parts)
    end
    total = total + size
    if total > max then return nil, "too_large" end
    local data
    data, err = r:bytes(size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    local crlf
    crlf, err = r:bytes(2)
    if not crlf then return nil, err end
    if crlf ~= "\r\n" then return nil, "missing CRLF after a chunk", true end
  end
end

-- Content-Length value: a number, or nil and whether the header was malformed.
local function content_length(value)
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

-- One exchange on one connection. Returns the response and whether the connection may be
-- kept, or nil, kind, message, retry_fresh.
function Ngx:exchange_builtin(sock, b, method, out, where)
  local reused = (sock:getreusedtimes() or 0) > 0
  if not b:apply(sock) then return nil, "timeout", "timed out before sending the request to " .. where end
  local sent, err = sock:send(out)
  if not sent then
    if reused and stale(err) then return nil, nil, nil, true end
    local kind, msg = transfer_error(err, "sending the request to", where, b.total)
    return nil, kind, msg
  end
  local r = reader(sock, b)
  local status, version, headers, protocol
  repeat
    status, version, headers = read_head(r)
    if not status then
      err, protocol = version, headers
      if reused and stale(err) and r.buf == "" then return nil, nil, nil, true end
      if protocol then return nil, "network", "invalid HTTP response from " .. where .. ": " .. err end
      local kind, msg = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg
    end
    reused = false
  until status >= 200 or status == 101
  local keep = version == "1.1"
  local conn = headers["connection"]
  if conn and conn:lower():find("close", 1, true) then keep = false end
  local body = ""
  if method ~= "HEAD" and status ~= 204 and status ~= 304 and status ~= 101 then
    local te = headers["transfer-encoding"]
    local max = self.max_response
    if te and te:lower():find("chunked", 1, true) then
      body, err, protocol = read_chunked(r, max)
    else
      local n, bad = content_length(headers["content-length"])
      if bad then return nil, "network", "invalid Content-Length in the response from " .. where end
      if n then
        if n > max then
          body, err = nil, "too_large"
        elseif n > 0 then
          body, err = r:bytes(n)
        end
      else
        keep = false
        body, err = r:rest(max)
      end
    end
    if not body then
      if err == "too_large" then
        return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes"
      end
      if protocol then return nil, "network", "invalid HTTP response from " .. where .. ": " .. err end
      local kind, msg = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg
    end
  end
  -- Bytes after the response mean the framing is not what we think: do not reuse.
  if status == 101 or r:pending() > 0 then keep = false end
  return { status = status, headers = headers, body = body }, keep
end

-- lua-resty-http backend ----------------------------------------------------------------------

local EXPECTS_BODY = { POST = true, PUT = true, PATCH = true }

local function header_value(v)
  if type(v) == "table" then
    local list = {}
    for i = 1, #v do list[i] = tostring(v[i]) end
    return table.concat(list, ", ")
  end
  return tostring(v)
end

function Ngx:exchange_resty(httpc, b, req, method, target, host_header, where)
  local reused = (httpc:get_reused_times() or 0) > 0
  local headers = {}
  local seen_accept = false
  for name, value in pairs(req.headers or {}) do
    if not valid_header(name, value) then
      return nil, "request", "header name or value contains forbidden characters (CR, LF, NUL): " .. tostring(name)
    end
    local lower = name:lower()
    if lower == "accept" then seen_accept = true end
    if lower ~= "content-length" and lower ~= "transfer-encoding" and lower ~= "connection"
      and lower ~= "expect" then
      headers[name] = tostring(value)
    end
  end
  if not seen_accept then headers["Accept"] = "*/*" end
  local has_host = false
  for name in pairs(headers) do if name:lower() == "host" then has_host = true end end
  if not has_host then headers["Host"] = host_header end
  local body = req.body
  if body == nil and EXPECTS_BODY[method] then body = "" end
  if not b:apply(httpc.sock) then return nil, "timeout", "timed out before sending the request to " .. where end
  local res, err = httpc:request({ method = method, path = target, headers = headers, body = body })
  if not res then
    if reused and stale(err) then return nil, nil, nil, true end
    local kind, msg = transfer_error(err, "exchanging with", where, b.total)
    return nil, kind, msg
  end
  -- 1xx interim responses (lua-resty-http only skips 100 after its own Expect)
  while res.status >= 100 and res.status < 200 and res.status ~= 101 do
    if not b:apply(httpc.sock) then return nil, "timeout", "timed out waiting for the response from " .. where end
    res, err = httpc:read_response({ method = method, headers = {} })
    if not res then
      local kind, msg = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg
    end
  end
  local out = {}
  for name, value in pairs(res.headers or {}) do
    if type(name) == "string" then add_header(out, name:lower(), header_value(value)) end
  end
  local max = self.max_response
  local n = content_length(out["content-length"])
  if n and n > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
  local parts, total = {}, 0
  if res.has_body and res.body_reader then
    while true do
      if not b:apply(httpc.sock) then return nil, "timeout", "timed out reading the response from " .. where end
      local chunk, rerr = res.body_reader(READ_CHUNK)
      if rerr == "closed" and not n and not (out["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        -- a body delimited by the end of the connection: the last piece comes with "closed"
        if chunk and chunk ~= "" then
          total = total + #chunk
          if total > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
          parts[#parts + 1] = chunk
        end
        break
      end
      if rerr then
        local kind, msg = transfer_error(rerr, "reading the response from", where, b.total)
        return nil, kind, msg
      end
      if not chunk then break end
      total = total + #chunk
      if total > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
      parts[#parts + 1] = chunk
    end
  end
  local keep = httpc.keepalive ~= false
  return { status = res.status, headers = out, body = table.concat(parts) }, keep
end

-- send ----------------------------------------------------------------------------------------

-- Like libcurl: a request that dies on a reused connection before any byte of the answer
-- (the server closed it while idle) is sent once more on a new connection.
local MAX_STALE_RETRIES = 1

--- Send one request.
-- @tparam table req `{method, url, headers, body}`
-- @tparam number timeout_ms whole-exchange timeout (connect, TLS, send and receive together)
-- @return `{status, headers (lower-case names), body}` or nil, kind, message; kind is
-- "timeout", "network", "tls", "too_large", "request" or "phase"
function Ngx:send(req, timeout_ms)
  local usable, phase = M.phase()
  if not usable then
    if phase == nil then return nil, "phase", "the ngx transport only works inside nginx (lua-nginx-module)" end
    return nil, "phase", M.phase_message(phase)
  end
  timeout_ms = timeout_ms or 10000
  if type(timeout_ms) ~= "number" or timeout_ms <= 0 or timeout_ms ~= timeout_ms then
    return nil, "request", "timeout must be a positive number"
  end
  local scheme, host, port, host_header, target = parse_url(req.url)
  if not scheme then return nil, "request", host end
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then return nil, "request", "invalid HTTP method" end
  local repeated = require("customerio.transport").repeated_header(req.headers)
  if repeated then return nil, "request", repeated end

  local out
  if self.backend == "builtin" then
    local err
    out, err = format_request(req, host_header, target)
    if not out then return nil, "request", err end
  end

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
    local conn, sock
    if self.backend == "resty.http" then
      conn = resty_http.new()
      sock = conn.sock
    else
      sock = ngx.socket.tcp()
      conn = sock
    end
    if not b:apply(sock, self.connect_timeout) then
      return nil, "timeout", "timed out before connecting to " .. where
    end
    local ok, err = conn:connect(connect_host, port, { pool = pool, pool_size = self.pool_size })
    if not ok then
      local kind, msg = connect_error(err, host, where, math.min(self.connect_timeout, b.total))
      return nil, kind, msg
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
        return nil, "timeout", "timed out before the TLS handshake with " .. where
      end
      local session
      if conn ~= sock then
        session, err = conn:ssl_handshake(false, host, true)
      else
        session, err = sock:sslhandshake(false, host, true)
      end
      -- lua-nginx-module 0.10.23 / lua-resty-core 0.1.25: when the handshake completes at
      -- once but verification fails, sslhandshake(false, ...) returns true and closes the
      -- socket. A closed socket after a "successful" handshake is a verification failure.
      if session and not sock:getreusedtimes() then
        session, err = nil, "certificate verification failed (untrusted certificate or host name mismatch)"
      end
      if not session then
        sock:close()
        local kind, msg = tls_error(err, host, where, b.total)
        return nil, kind, msg
      end
    end

    local res, keep_or_kind, msg, retry_fresh
    if conn ~= sock then
      res, keep_or_kind, msg, retry_fresh = self:exchange_resty(conn, b, req, method, target, host_header, where)
    else
      res, keep_or_kind, msg, retry_fresh = self:exchange_builtin(sock, b, method, out, where)
    end
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
      return nil, keep_or_kind, msg
    end
    -- The pooled connection had been closed by the server while idle: try another one.
  end
  self.last_connects = connects
  return nil, "network", "the connection to " .. where .. " was closed before a response arrived"
end

--- Wait between retries without blocking the worker (ngx.sleep).
-- @tparam number ms
function Ngx:sleep(ms) -- luacheck: ignore 212/self
  if ms and ms > 0 and M.phase() then ngx.sleep(ms / 1000) end
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
