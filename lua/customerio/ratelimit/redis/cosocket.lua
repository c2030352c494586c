--- The nginx client of `customerio.ratelimit.redis`: RESP over `ngx.socket.tcp`, so waiting
-- for Redis never blocks the worker. Each use takes a connection from the worker's keep-alive
-- pool (one pool per server, database and credentials) and puts it back afterwards; a
-- connection that failed is closed.
--
-- Cosockets exist only in some phases (`customerio.transport.ngx.cosocket_phases`); in the
-- others `open` returns `nil, message, "phase"` and the limiter uses its local budget for
-- that call.
--
-- Same client interface as `customerio.ratelimit.redis.hiredis`: `client:open()` → `conn,
-- fresh` or `nil, message, kind`; `conn:command(...)` → reply (string, integer, table, or
-- false for a nil reply) or `nil, message, kind` ("reply" or "io"); `client:done(conn, ok)`.
-- @module customerio.ratelimit.redis.cosocket
local ngx_transport = require("customerio.transport.ngx")

local M = {}

local MAX_DEPTH = 8

local Client = {}
Client.__index = Client

local Conn = {}
Conn.__index = Conn

--- A client for one Redis server.
-- @tparam table conf from `customerio.ratelimit.redis.parse_url`
-- @tparam table opts `timeout` (ms), `pool_size` (default 16), `keepalive_timeout` (ms)
function M.new(conf, opts)
  local ngx = rawget(_G, "ngx")
  local secret = (conf.username or "") .. "\0" .. (conf.password or "")
  return setmetatable({
    conf = conf,
    timeout = math.max(1, math.ceil(opts.timeout)),
    pool_size = math.floor(opts.pool_size or 16),
    keepalive_timeout = math.ceil(opts.keepalive_timeout or 30000),
    -- Connections are authenticated and select a database once: never mix them.
    pool = "customerio.redis:" .. conf.host .. ":" .. conf.port .. ":" .. conf.db .. ":" .. ngx.md5(secret),
  }, Client)
end

--- RESP encoding of one command (an array of bulk strings).
-- @param ... strings or numbers
-- @treturn string
function M.encode(...)
  local n = select("#", ...)
  local parts = { "*" .. n .. "\r\n" }
  for i = 1, n do
    local a = select(i, ...)
    if type(a) == "number" then
      a = (a == math.floor(a) and a > -2 ^ 53 and a < 2 ^ 53) and string.format("%.0f", a) or tostring(a)
    elseif type(a) ~= "string" then
      error("redis command arguments must be strings or numbers", 2)
    end
    parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(parts)
end

-- Reads one reply: value, or nil, message, kind.
local function read_reply(sock, depth)
  local line, err = sock:receive("*l")
  if not line then return nil, "read failed: " .. tostring(err), "io" end
  local prefix, rest = line:sub(1, 1), line:sub(2)
  if prefix == "+" then return rest end
  if prefix == "-" then return nil, rest, "reply" end
  if prefix == ":" then
    local n = tonumber(rest)
    if not n then return nil, "protocol error: bad integer", "io" end
    return n
  end
  if prefix == "$" then
    local len = tonumber(rest)
    if not len or len ~= math.floor(len) or len < -1 or len > 512 * 1024 * 1024 then
      return nil, "protocol error: bad bulk length", "io"
    end
    if len == -1 then return false end
    local data, rerr = sock:receive(len + 2)
    if not data then return nil, "read failed: " .. tostring(rerr), "io" end
    if data:sub(-2) ~= "\r\n" then return nil, "protocol error: bulk string not terminated", "io" end
    return data:sub(1, -3)
  end
  if prefix == "*" then
    local n = tonumber(rest)
    if not n or n ~= math.floor(n) or n < -1 or n > 1024 * 1024 then
      return nil, "protocol error: bad array length", "io"
    end
    if n == -1 then return false end
    if depth >= MAX_DEPTH then return nil, "protocol error: reply nested too deep", "io" end
    local out, failure = {}, nil
    for i = 1, n do
      local v, verr, kind = read_reply(sock, depth + 1)
      if v == nil then
        -- An error inside an array (a script's error table): read the rest, report the first.
        if kind ~= "reply" then return nil, verr, kind end
        failure = failure or verr
        v = false
      end
      out[i] = v
    end
    if failure then return nil, failure, "reply" end
    return out
  end
  return nil, "protocol error: unknown reply type", "io"
end

--- Send one command and read its reply.
-- @return reply, or nil, message, kind ("reply": an error reply; "io": the connection failed)
function Conn:command(...)
  local ok, err = self.sock:send(M.encode(...))
  if not ok then return nil, "write failed: " .. tostring(err), "io" end
  return read_reply(self.sock, 0)
end

--- A connection from the pool (or a new one).
-- @return conn, fresh (a new connection: AUTH/SELECT needed), or nil, message, kind
function Client:open()
  local usable, phase = ngx_transport.phase()
  if not usable then
    return nil, "cosockets are not available in the " .. tostring(phase) .. " phase", "phase"
  end
  local ngx = rawget(_G, "ngx")
  local sock = ngx.socket.tcp()
  sock:settimeouts(self.timeout, self.timeout, self.timeout)
  local ok, err = sock:connect(self.conf.host, self.conf.port, { pool = self.pool, pool_size = self.pool_size })
  if not ok then return nil, "cannot connect: " .. tostring(err), "io" end
  local reused = sock:getreusedtimes()
  return setmetatable({ sock = sock }, Conn), (reused or 0) == 0
end

--- Back to the pool after a good use; closed otherwise.
function Client:done(conn, ok)
  if ok then
    local kept = conn.sock:setkeepalive(self.keepalive_timeout, self.pool_size)
    if kept then return end
  end
  conn.sock:close()
end

return M
