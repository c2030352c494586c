--- Fleet-wide rate limiting through Redis: one budget shared by every process and machine.
--
-- Customer.io's limits are per account, so twenty app servers that each keep 10 requests/s
-- still get 429s. With `rate_limit = { redis = "redis://127.0.0.1:6379/0" }` the limiter
-- (`customerio.ratelimit`) keeps each budget in Redis instead of in the process: every
-- reservation is one atomic script run inside Redis (GCRA, below), timed by **Redis' own
-- clock** (`TIME`), so the machines' clocks play no part.
--
-- Reached from plain Lua through hiredis (the C core's blocking `redis_new` handle, see
-- `customerio.ratelimit.redis.hiredis`) and from nginx over cosockets
-- (`customerio.ratelimit.redis.cosocket`), chosen when the backend is created. Inside nginx,
-- in a phase without cosockets (init, init_worker, set, header_filter, body_filter, log),
-- a call returns an error of kind "phase" and the caller uses its local limiter for that call.
--
-- The backend interface (what `customerio.ratelimit` calls):
--
-- * `backend:reserve(key, interval_ms, burst, max_wait_ms)` → `wait_ms` (a slot is reserved
--   at now + wait_ms), or `nil, wait_ms` (the wait would exceed `max_wait_ms`: nothing is
--   reserved), or `nil, nil, err` (Redis is unusable: use the local limiter).
-- * `backend:penalize(key, ms)` → `true`, or `nil, err`: no slot of the key before now + ms.
--
-- GCRA, per key, in microseconds of Redis' clock (the same step as
-- `customerio.ratelimit.memory.gcra`): T = interval, tau = (burst - 1) * T; tat = max(stored,
-- now); wait = max(0, tat - tau - now); a wait over max_wait changes nothing, else stored =
-- tat + T, with an expiry (PX) a second after it, so idle keys vanish. In any window of W the
-- slots granted number at most burst + floor(W / T). `penalize(key, ms)` makes the stored tat
-- at least now + ms, like the other backends (the limiter adds tau, so that the next slot is
-- at least ms away and the burst does not follow at once).
--
-- `M.with_fallback` wraps a Redis backend and a local one: when Redis is unreachable it
-- reports once, uses the local backend, and tries Redis again after a back-off.
-- @module customerio.ratelimit.redis
local check = require("customerio.http.check")
local errors = require("customerio.errors")
local fail = check.fail

local M = {}

--- The script run in Redis for every reservation and penalty (the one copy: both clients
-- send it). KEYS[1]: the budget's key, holding its theoretical arrival time (tat) in µs of
-- Redis' clock. ARGV: "reserve", T µs, burst, max wait µs; or "penalize", µs.
-- Returns { granted (1|0), wait µs, now µs }. The key expires a second after its tat: by then
-- it says nothing a missing key does not.
M.SCRIPT = [[
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local key = KEYS[1]
local tat = math.max(tonumber(redis.call('GET', key)) or 0, now)
local function store(v)
  redis.call('SET', key, string.format('%.0f', v), 'PX', math.ceil((v - now) / 1000) + 1000)
end
if ARGV[1] == 'penalize' then
  local at = now + tonumber(ARGV[2])
  if at > tat then store(at) end
  return { 1, 0, now }
end
local T, burst, max_wait = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = math.max(tat - (burst - 1) * T - now, 0)
if wait > max_wait then return { 0, wait, now } end
store(tat + T)
return { 1, wait, now }
]]

local core = require("customerio.core")
--- SHA-1 of `M.SCRIPT` (for EVALSHA).
M.SCRIPT_SHA = core.hex(core.digest("sha1", M.SCRIPT))

local DEFAULT_PORT = 6379
local DEFAULT_TIMEOUT = 500
local DEFAULT_PREFIX = ""
local DEFAULT_BACKOFF = 1000
local DEFAULT_RETRY = 5000
local MAX_DB = 2147483647

-- The URL with its password replaced, for messages.
local function redact(url)
  return (url:gsub("^(%a[%w+.-]*://).*@", "%1***@"))
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parse `redis://[[username]:password@]host[:port][/db]` (raises on anything else).
-- host is a name, an IPv4 address or a bracketed IPv6 address; the port defaults to 6379
-- and the database to 0; username and password are percent-decoded.
-- @tparam string url
-- @treturn table `{host, port, db, username, password}`
function M.parse_url(url)
  local example = " (like redis://127.0.0.1:6379/0 or redis://:password@host:6379/2)"
  if type(url) ~= "string" then fail("rate_limit.redis must be a redis:// URL" .. example .. ", got " .. type(url)) end
  local shown = redact(url)
  local function bad(why)
    fail("rate_limit.redis " .. string.format("%q", shown) .. " " .. why .. example)
  end
  if url:find("[%z\1-\32\127]") then bad("contains spaces or control characters") end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then bad("is not a URL") end
  scheme = scheme:lower()
  if scheme == "rediss" then bad("asks for TLS, which this client does not support (use a local TLS tunnel)") end
  if scheme ~= "redis" then bad("must start with redis://") end
  if rest:find("[?#]") then bad("has a query or fragment; no options are read from the URL") end
  local userinfo, hostpart = rest:match("^(.*)@([^@]*)$")
  if not userinfo then hostpart = rest end
  local username, password
  if userinfo then
    local u, p = userinfo:match("^([^:]*):(.*)$")
    if u then
      username, password = unescape(u), unescape(p)
    else
      password = unescape(userinfo) -- redis://password@host: the usual shorthand
    end
    if username == "" then username = nil end
    if password == "" then bad("has an empty password") end
  end
  local authority, path = hostpart:match("^([^/]*)(.*)$")
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^%[([%x:.]+)%]:?(.*)$")
    if not host then bad("has a malformed IPv6 address") end
  else
    host, port = authority:match("^([^:]*):?(.*)$")
    if not host:find("^[%w.-]+$") then bad(host == "" and "has no host" or "has an invalid host") end
  end
  if port == "" then
    if authority:sub(-1) == ":" then bad("has an empty port") end
    port = DEFAULT_PORT
  else
    if not port:find("^%d+$") or tonumber(port) < 1 or tonumber(port) > 65535 then bad("has an invalid port") end
    port = tonumber(port)
  end
  local db = 0
  if path ~= "" and path ~= "/" then
    local d = path:match("^/(%d+)$")
    if not d or #d > 10 or tonumber(d) > MAX_DB then bad("has an invalid database (the path must be /0, /1, ...)") end
    db = tonumber(d)
  end
  return { host = host, port = port, db = db, username = username, password = password }
end

local Backend = {}
Backend.__index = Backend
M.Backend = Backend

local function redis_error(self, message, kind)
  return errors.new({ kind = kind or "redis", message = "redis " .. self.address .. ": " .. message,
    retryable = true })
end

local function count_arg(v, name, min)
  if type(v) ~= "number" or v ~= v or v < min or v == math.huge then
    fail(name .. " must be a number, " .. min .. " or more")
  end
  return v
end

-- µs as an exact decimal integer string, rounded up.
local function us(ms)
  return string.format("%.0f", math.ceil(ms * 1000))
end

-- AUTH and SELECT on a new connection, then the script (EVALSHA; EVAL when Redis does not
-- know it yet, which also loads it). Returns the reply or nil, message.
local function run_script(self, ...)
  local conn, fresh, kind = self.client:open()
  if not conn then return nil, fresh, kind end
  local c = self.conf
  if fresh then
    local err, _
    if c.password and c.username then
      _, err = conn:command("AUTH", c.username, c.password)
    elseif c.password then
      _, err = conn:command("AUTH", c.password)
    end
    if err == nil and c.db ~= 0 then _, err = conn:command("SELECT", c.db) end
    if err ~= nil then
      self.client:done(conn, false)
      return nil, err
    end
  end
  local reply, err
  reply, err, kind = conn:command("EVALSHA", M.SCRIPT_SHA, 1, ...)
  if reply == nil and kind == "reply" and tostring(err):find("^NOSCRIPT") then
    reply, err, kind = conn:command("EVAL", M.SCRIPT, 1, ...)
  end
  self.client:done(conn, reply ~= nil or kind == "reply")
  return reply, err, kind
end

-- One run of the script. After a failure, calls within retry_ms fail at once with the same
-- error (a Redis that does not answer would otherwise cost every call its timeout).
local function call(self, key, ...)
  if type(key) ~= "string" or key == "" then fail("rate limit key must be a non-empty string") end
  local now = self.clock()
  if self.failed_at and now - self.failed_at < self.retry_ms then return nil, self.last_error end
  local reply, err, kind = run_script(self, self.prefix .. key, ...)
  if reply ~= nil and (type(reply) ~= "table" or type(reply[1]) ~= "number" or type(reply[2]) ~= "number"
    or type(reply[3]) ~= "number") then
    reply, err = nil, "unexpected reply to the rate limit script"
  end
  if reply == nil then
    if kind == "phase" then return nil, redis_error(self, tostring(err), "phase") end
    self.failed_at, self.last_error = now, redis_error(self, tostring(err))
    return nil, self.last_error
  end
  self.failed_at, self.last_error = nil, nil
  return reply
end

--- Reserve a slot, with the details in Redis' clock (for tests and tools).
-- @tparam string key the budget (the prefix is added)
-- @tparam number interval_ms T: one slot per interval on average
-- @tparam number burst slots that may be taken at once (1 or more)
-- @tparam number max_wait_ms the longest wait accepted (0 or more; math.huge: any)
-- @treturn boolean granted
-- @treturn number the wait in µs (when not granted: the wait it would have been)
-- @treturn number Redis' time of the reservation in µs (the slot is at now + wait)
-- @return or nil, err
function Backend:reserve_detail(key, interval_ms, burst, max_wait_ms)
  count_arg(interval_ms, "interval_ms", 0)
  if interval_ms == 0 then fail("interval_ms must be a number, more than 0") end
  count_arg(burst, "burst", 1)
  if max_wait_ms == nil or max_wait_ms == math.huge then max_wait_ms = check.MAX_MS end
  count_arg(max_wait_ms, "max_wait_ms", 0)
  local r, err = call(self, key, "reserve", us(interval_ms), string.format("%.0f", math.floor(burst)), us(max_wait_ms))
  if not r then return nil, err end
  return r[1] == 1, r[2], r[3]
end

--- Reserve a slot of the key's budget.
-- @tparam string key the budget (workspace and API; the prefix is added)
-- @tparam number interval_ms one slot per interval on average
-- @tparam number burst slots that may be taken at once
-- @tparam number max_wait_ms the longest wait accepted
-- @treturn number wait_ms: the slot is at now + wait_ms (0 or more)
-- @return or nil, wait_ms: the wait would exceed max_wait_ms, nothing was reserved
-- @return or nil, nil, err: Redis is unusable (err.kind "redis", or "phase" inside nginx)
function Backend:reserve(key, interval_ms, burst, max_wait_ms)
  local granted, wait_us = self:reserve_detail(key, interval_ms, burst, max_wait_ms)
  if granted == nil then return nil, nil, wait_us end
  if granted then return wait_us / 1000 end
  return nil, wait_us / 1000
end

--- After a 429: the key's theoretical arrival time becomes at least now + ms (Redis' clock),
-- as `customerio.ratelimit.memory` does; the next slot is then at tat - (burst - 1) * interval.
-- @tparam string key
-- @tparam number ms
-- @treturn boolean true
-- @return or nil, err
function Backend:penalize(key, ms)
  count_arg(ms, "ms", 0)
  local r, err = call(self, key, "penalize", us(math.min(ms, check.MAX_MS)))
  if not r then return nil, err end
  return true
end

--- Close the connection (the plain Lua client; inside nginx connections go back to the pool).
function Backend:close()
  if self.client.close then self.client:close() end
end

--- Create a Redis backend. Nothing is connected yet: the first call connects.
-- @tparam string|table url `redis://[[username]:password@]host[:port][/db]` (raises when
--   malformed); or a table with the URL as `url` and the options
-- @tparam[opt] table opts `timeout` (ms for connecting and for each command, default 500),
--   `retry_ms` (after a failure, calls within this many ms fail at once without trying Redis;
--   default 1000, 0: try every call), `prefix` (added before every key, default none: the
--   limiter's keys already read `cio:rl:<credential digest>:<budget>`), `on_report` (function(event),
--   the default reporter of `M.with_fallback`), `pool_size` (nginx: idle connections kept
--   per worker, default 16), `keepalive_timeout` (nginx: ms, default 30000), `clock` (a
--   function returning ms, for `retry_ms`; default the C core's monotonic clock)
-- @return backend
function M.new(url, opts)
  if type(url) == "table" then url, opts = url.url, url end
  local conf = M.parse_url(url)
  opts = check.optional_table(opts, "rate_limit options")
  local timeout = check.ms(opts.timeout, "rate_limit.timeout", { positive = true, default = DEFAULT_TIMEOUT })
  local prefix = opts.prefix == nil and DEFAULT_PREFIX or opts.prefix
  if type(prefix) ~= "string" then fail("rate_limit.prefix must be a string") end
  if opts.on_report ~= nil and type(opts.on_report) ~= "function" then fail("on_report must be a function") end
  local address = (conf.host:find(":") and "[" .. conf.host .. "]" or conf.host) .. ":" .. conf.port
  local client
  if require("customerio.transport").in_nginx() then
    client = require("customerio.ratelimit.redis.cosocket").new(conf, {
      timeout = timeout,
      pool_size = opts.pool_size,
      keepalive_timeout = check.ms(opts.keepalive_timeout, "keepalive_timeout", { positive = true, default = 30000 }),
    })
  else
    client = require("customerio.ratelimit.redis.hiredis").new(conf, { timeout = timeout })
  end
  return setmetatable({ name = "redis", conf = conf, client = client, prefix = prefix, address = address,
    url = redact(url), on_report = opts.on_report,
    retry_ms = check.ms(opts.retry_ms, "rate_limit.retry_ms", { default = DEFAULT_BACKOFF }),
    clock = opts.clock or core.monotonic_ms }, Backend)
end

-- Fallback ----------------------------------------------------------------------------------

local Fallback = {}
Fallback.__index = Fallback
M.Fallback = Fallback

local function notify(self, event)
  if not self.report then return end
  local ok, err = pcall(self.report, event)
  if not ok and rawget(_G, "io") then
    io.stderr:write("customerio rate limit: the report function failed: ", tostring(err), "\n")
  end
end

-- Whether Redis should be asked now.
local function remote_due(self)
  return not self.down or self.clock() >= self.retry_at
end

-- Notes the outcome of a call to Redis (err nil: it answered).
local function note(self, err)
  if err == nil then
    if self.down then
      self.down = false
      self.outages_ended = self.outages_ended + 1
      notify(self, { state = "up", message = "customerio rate limit: Redis at " .. self.remote.address ..
        " answers again; the shared budget is used again" })
    end
    return
  end
  if err.kind == "phase" then return end -- no cosockets in this nginx phase: not an outage
  self.retry_at = self.clock() + self.retry_ms
  if not self.down then
    self.down = true
    self.outages = self.outages + 1
    notify(self, { state = "down", error = err, message = "customerio rate limit: " .. tostring(err.message) ..
      "; limiting locally (this process only) until it answers, tried again every " ..
      self.retry_ms .. " ms" })
  end
end

--- Reserve through Redis, or through the local backend while Redis is unusable.
-- Same results as `Backend:reserve`, except that a Redis failure is never returned.
function Fallback:reserve(key, interval_ms, burst, max_wait_ms)
  if remote_due(self) then
    local wait, over, err = self.remote:reserve(key, interval_ms, burst, max_wait_ms)
    note(self, err)
    if err == nil then return wait, over end
  end
  return self.local_backend:reserve(key, interval_ms, burst, max_wait_ms)
end

--- Penalize the key in the local backend, and in Redis when it is usable.
function Fallback:penalize(key, ms)
  self.local_backend:penalize(key, ms)
  if remote_due(self) then
    local _, err = self.remote:penalize(key, ms)
    note(self, err)
  end
  return true
end

--- Whether Redis is considered down (the local backend is in use).
-- @treturn boolean
function Fallback:is_down()
  return self.down
end

--- Wrap a Redis backend and a local one (same interface): when Redis is unusable
-- (unreachable, timed out, refusing the password, ...), `report` is called once with
-- `{state = "down", error = err, message = ...}`, the local backend takes every call, and
-- Redis is tried again after `retry_ms` (default 5000) on the next call; when Redis answers
-- again `report` gets `{state = "up", message = ...}` once. A call inside nginx in a phase
-- without cosockets uses the local backend without counting as an outage. The local budget
-- is this process's (or this nginx worker's) only: during an outage the fleet as a whole
-- can exceed the limit.
-- @param remote a backend of `M.new`
-- @param local_backend the local limiter's backend
-- @tparam[opt] function report function(event); default: the remote's `on_report`, else
--   a line on stderr
-- @tparam[opt] table opts `retry_ms` (default 5000), `clock` (function returning ms; default
--   the C core's monotonic clock)
-- @return backend
function M.with_fallback(remote, local_backend, report, opts)
  opts = check.optional_table(opts, "fallback options")
  if type(remote) ~= "table" or type(remote.reserve) ~= "function" then fail("remote must be a rate limit backend") end
  if type(local_backend) ~= "table" or type(local_backend.reserve) ~= "function" then
    fail("local_backend must be a rate limit backend")
  end
  if report ~= nil and type(report) ~= "function" then fail("report must be a function") end
  report = report or remote.on_report or function(event)
    local ngx = rawget(_G, "ngx")
    if require("customerio.transport").in_nginx() then
      ngx.log(event.state == "down" and ngx.ERR or ngx.NOTICE, event.message)
    else
      io.stderr:write(event.message, "\n")
    end
  end
  local clock = opts.clock or core.monotonic_ms
  if type(clock) ~= "function" then fail("clock must be a function") end
  return setmetatable({
    remote = remote, local_backend = local_backend, report = report, clock = clock,
    retry_ms = check.ms(opts.retry_ms, "retry_ms", { default = DEFAULT_RETRY }),
    down = false, retry_at = 0, outages = 0, outages_ended = 0,
  }, Fallback)
end

M.DEFAULT_RETRY_MS = DEFAULT_RETRY

return M
