--- The plain Lua client of `customerio.ratelimit.redis`: one blocking connection over hiredis
-- (the C core's `redis_new` handle, src/redis.c), opened on first use and again after a
-- failure. Not used inside nginx (see `customerio.ratelimit.redis.cosocket`).
--
-- Client interface (shared with the cosocket client): `client:open()` → `conn, fresh` (fresh:
-- a new connection, which needs AUTH/SELECT) or `nil, message, kind`; `conn:command(...)` →
-- reply or `nil, message, kind` (kind "reply": an error reply, the connection is usable; "io":
-- the connection failed); `client:done(conn, ok)` after each use (not ok: close it).
-- @module customerio.ratelimit.redis.hiredis
local core = require("customerio.core")

local M = {}

local Client = {}
Client.__index = Client

--- A client for one Redis server.
-- @tparam table conf from `customerio.ratelimit.redis.parse_url` (host, port)
-- @tparam table opts `timeout` (ms, for connecting and for each command)
function M.new(conf, opts)
  return setmetatable({ handle = core.redis_new(conf.host, conf.port, opts.timeout) }, Client)
end

--- The connection, opened unless it is open.
-- @return conn, fresh (or nil, message, "io")
function Client:open()
  local ok, fresh_or_err, kind = self.handle:connect()
  if not ok then return nil, fresh_or_err, kind end
  return self.handle, fresh_or_err
end

--- After a use: a connection left in an unknown state (a failed AUTH or SELECT) is closed.
function Client.done(_, conn, ok)
  if not ok then conn:close() end
end

--- Close the connection.
function Client:close()
  self.handle:close()
end

return M
