--- Client-side rate limiting: calls wait for their turn instead of getting a 429.
--
-- One limiter per API client, built from its `rate_limit` option (`ratelimit.new`). Every
-- attempt of a limited request (the first and each retry) first reserves a slot in a budget
-- shared by all clients with the same credentials and root URL: in the process (the memory
-- backend), across an nginx server's workers (`shared_dict`, the shdict backend) or across a
-- fleet (`redis`, the Redis backend). The algorithm is GCRA (a leaky bucket as a meter): one
-- stored number per key, the key's theoretical arrival time.
--
-- Budgets (keys) of the App API, per Customer.io's App API overview: `app` (the general
-- 10 requests/s), `transactional` (the six `/v1/send/*` calls, 100/s, outside the general
-- limit) and one per broadcast (`trigger_broadcast`, one trigger per 10 s, outside the general
-- limit). The Track API has none by default (Customer.io documents its limit as not strictly
-- enforced); `track = n` sets one. See docs/app.md, "Rate limits".
--
-- The backend interface (memory, shdict, redis):
--
--     backend:reserve(key, interval_ms, burst, max_wait_ms)
--       -> wait_ms          a slot is reserved at now + wait_ms (wait_ms >= 0)
--       -> nil, wait_ms     the wait would exceed max_wait_ms: nothing reserved
--       -> nil, nil, err    the backend cannot be used (the limiter falls back to memory)
--     backend:penalize(key, ms)
--       -> the key's stored arrival time becomes at least now + ms (after a 429; the limiter
--          adds the burst tolerance, so that the next slot is at least now + the penalty)
--
-- GCRA: T = interval_ms, tau = (burst - 1) * T; tat = max(stored, now);
-- wait = max(0, tat - tau - now); wait > max_wait: not reserved; else stored = tat + T.
-- `penalize` returns true, or nil and an error (then the memory backend is penalized instead).
--
-- Backend modules are required only when configured: `customerio.ratelimit.shdict`'s
-- `new(dict_name)` and `customerio.ratelimit.redis`'s `new({ url = "redis://..." })`, each
-- returning an object with `name`, `reserve` and `penalize` (a constructor raises on a bad
-- configuration; an unreachable server is reported by `reserve` as `nil, nil, err`).
-- @module customerio.ratelimit
local core = require("customerio.core")
local check = require("customerio.http.check")
local memory = require("customerio.ratelimit.memory")

local fail = check.fail

local M = {}

--- The defaults of the App API's `rate_limit` option.
-- @field app 10 requests/s (Customer.io's general App API limit)
-- @field transactional 100 requests/s (the six transactional sends)
-- @field broadcast_interval 10000 ms between two triggers of one broadcast
-- @field burst 1: slots are evenly spaced (1/rate apart), so that no window of 1 s holds more
-- than `app` (or `transactional`) slots. A larger burst lets up to `burst` calls go at once
-- after an idle time, and then a window of 1 s may hold up to `limit + burst - 1` slots.
-- @table defaults
M.defaults = { app = 10, transactional = 100, broadcast_interval = 10000, burst = 1 }

local FIELDS = {
  app = true, transactional = true, broadcast_interval = true, burst = true, track = true,
  shared_dict = true, redis = true, max_wait = true,
}

local function rate(v, name)
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then
    fail("rate_limit." .. name .. " must be a positive number of requests per second")
  end
  return v
end

--- Validate a `rate_limit` option.
-- @param opt nil (the defaults), false (no limits) or a table of overrides
-- @tparam string api "app", "track" or "cdp": which budgets apply by default
-- @treturn table|nil the configuration, nil when there is no limit
function M.config(opt, api)
  if opt == false then return nil end
  if opt ~= nil and type(opt) ~= "table" then
    fail("rate_limit must be a table or false, got " .. type(opt))
  end
  opt = opt or {}
  for k in pairs(opt) do
    if not FIELDS[k] then
      fail("unknown rate_limit option: " .. tostring(k) ..
        " (expected app, transactional, broadcast_interval, burst, track, shared_dict, redis, max_wait)")
    end
  end
  local c = {}
  if api == "app" then
    c.app = rate(opt.app == nil and M.defaults.app or opt.app, "app")
    c.transactional = rate(opt.transactional == nil and M.defaults.transactional or opt.transactional, "transactional")
    c.broadcast_interval = check.ms(opt.broadcast_interval, "rate_limit.broadcast_interval",
      { positive = true, default = M.defaults.broadcast_interval })
  else
    for _, k in ipairs({ "app", "transactional", "broadcast_interval" }) do
      if opt[k] ~= nil then fail("rate_limit." .. k .. " applies to the App API (APIClient) only") end
    end
  end
  if api == "track" and opt.track == nil and next(opt) ~= nil then
    fail("rate_limit.track is required: the Track API has no limit by default (requests per second)")
  end
  if opt.track ~= nil then
    if api ~= "track" then fail("rate_limit.track applies to the Track API (TrackClient) only") end
    c.track = rate(opt.track, "track")
  end
  local burst = opt.burst == nil and M.defaults.burst or opt.burst
  if type(burst) ~= "number" or burst < 1 or burst ~= math.floor(burst) or burst > 1e6 then
    fail("rate_limit.burst must be a whole number from 1 to 1000000")
  end
  c.burst = burst
  c.max_wait = check.ms(opt.max_wait, "rate_limit.max_wait")
  if opt.shared_dict ~= nil and (type(opt.shared_dict) ~= "string" or opt.shared_dict == "") then
    fail("rate_limit.shared_dict must be the name of a lua_shared_dict")
  end
  if opt.redis ~= nil and (type(opt.redis) ~= "string" or not opt.redis:match("^rediss?://")) then
    fail("rate_limit.redis must be a redis:// URL")
  end
  if opt.shared_dict and opt.redis then fail("rate_limit: give shared_dict or redis, not both") end
  c.shared_dict, c.redis = opt.shared_dict, opt.redis
  if not (c.app or c.track) then return nil end
  return c
end

--- A short, stable name for a credential that does not reveal it: the first 16 hex digits of
-- SHA-256 over the credential and the API root (a key used against another root URL, a
-- proxy or a local server, is another budget).
-- @tparam string secret
-- @tparam string root
-- @treturn string
function M.digest(secret, root)
  return core.hex(core.digest("sha256", secret .. "\n" .. root)):sub(1, 16)
end

local Limiter = {}
Limiter.__index = Limiter
M.Limiter = Limiter

local function report(self, err)
  if self.reported then return end
  self.reported = true
  local line = "customerio: rate limit backend " .. tostring(self.backend.name) ..
    " unusable, using the per-process limiter: " .. tostring(err)
  if self.on_report then pcall(self.on_report, line) return end
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.log) == "function" then
    ngx.log(ngx.WARN, line)
  else
    io.stderr:write(line, "\n")
  end
end

--- Create a limiter.
-- @tparam table config from `ratelimit.config`
-- @tparam table o `secret` (the credential), `root` (the API's root URL), `backend` (an object
-- with the interface above, used instead of the configured one: the in-process sandbox's),
-- `on_report` (called once with a line when the backend fails and memory takes over)
-- @return limiter
function M.new(config, o)
  local self = setmetatable({ config = config, prefix = "cio:rl:" .. M.digest(o.secret, o.root) .. ":",
    on_report = o.on_report }, Limiter)
  if o.backend then
    self.backend = o.backend
  elseif config.shared_dict then
    self.backend = require("customerio.ratelimit.shdict").new(config.shared_dict)
  elseif config.redis then
    self.backend = require("customerio.ratelimit.redis").new({ url = config.redis })
  else
    self.backend = memory.new()
  end
  self.memory = self.backend.name == "memory" and self.backend or memory.new()
  return self
end

--- The limiter of an API client, from its options, or nil when it has none.
-- A transport with a `rate_limit_backend` method (the in-process sandbox) supplies the backend:
-- its budgets then run on the sandbox's clock.
-- @tparam table opts the client's options (`rate_limit`, `transport`, `debug`)
-- @tparam string api "app" or "track"
-- @tparam string secret the credential the budgets belong to
-- @tparam string root the API's root URL
-- @return limiter or nil
function M.limiter(opts, api, secret, root)
  local config = M.config(opts.rate_limit, api)
  if not config then return nil end
  local transport = opts.transport
  local backend
  if (type(transport) == "table" or type(transport) == "userdata") and transport.rate_limit_backend then
    backend = transport:rate_limit_backend()
  end
  return M.new(config, { secret = secret, root = root, backend = backend, on_report = opts.debug })
end

--- The budget of a request, from its `rate` field: "app", "transactional", "track" or
-- `{ "broadcast", id }`. Nil when the request is not limited.
-- @param rate
-- @treturn table|nil `{key, interval, burst, penalty}` (ms)
function Limiter:budget(which)
  local c = self.config
  if type(which) == "table" then
    if not c.broadcast_interval then return nil end
    -- One trigger per broadcast per interval: no burst.
    return { key = self.prefix .. "broadcast:" .. which[2], interval = c.broadcast_interval, burst = 1,
      penalty = c.broadcast_interval }
  end
  local per_second = c[which]
  if not per_second then return nil end
  return { key = self.prefix .. which, interval = 1000 / per_second, burst = c.burst, penalty = 1000 }
end

--- Reserve a slot for one attempt.
-- @tparam table b from `budget`
-- @tparam number max_wait ms
-- @treturn number|nil ms to wait before sending; nil and the wait that was over max_wait
function Limiter:reserve(b, max_wait)
  local wait, over, err = self.backend:reserve(b.key, b.interval, b.burst, max_wait)
  if wait == nil and over == nil then
    report(self, err)
    return self.memory:reserve(b.key, b.interval, b.burst, max_wait)
  end
  return wait, over
end

--- After a 429: no slot of this budget before now + ms.
-- @tparam table b from `budget`
-- @tparam number ms
function Limiter:penalize(b, ms)
  local extra = (b.burst - 1) * b.interval
  local ok, err = self.backend:penalize(b.key, ms + extra)
  if ok == nil and err then
    report(self, err)
    self.memory:penalize(b.key, ms + extra)
  end
end

return M
