--- The in-process backend of `customerio.ratelimit`: GCRA state in a Lua table.
--
-- The state is module-level: every client of one Lua state (one process, or one nginx worker)
-- that uses the same key shares one budget. Nothing in it yields or blocks, so a reservation is
-- atomic with respect to coroutines (the async API) and to nginx's light threads.
-- @module customerio.ratelimit.memory
local core = require("customerio.core")

local M = {}

--- The GCRA step every backend applies (memory, shdict, and the Redis script in the same terms).
-- T = interval_ms, tolerance tau = (burst - 1) * T; tat = max(stored, now);
-- wait = max(0, tat - tau - now); a wait over max_wait reserves nothing; otherwise the key's
-- next theoretical arrival time becomes tat + T.
-- @tparam number stored the key's theoretical arrival time (ms), or nil
-- @tparam number now ms, on the clock `stored` is in
-- @tparam number interval_ms
-- @tparam number burst
-- @tparam number max_wait_ms
-- @treturn number|nil the new stored value (nil: nothing reserved)
-- @treturn number wait in ms
function M.gcra(stored, now, interval_ms, burst, max_wait_ms)
  local tat = stored
  if tat == nil or tat < now then tat = now end
  local wait = tat - (burst - 1) * interval_ms - now
  if wait < 0 then wait = 0 end
  if wait > max_wait_ms then return nil, wait end
  return tat + interval_ms, wait
end

local Memory = {}
Memory.__index = Memory

-- The process-wide state: key -> theoretical arrival time on core.monotonic_ms.
local shared = {}
-- Forget keys whose time is long past (a slot in the past is the same as no entry).
local sweep_at, SWEEP_EVERY = 0, 60000

--- The backend. Without options it is the process-wide one; `clock` (a function returning
-- ms) and a fresh table make a private one (the in-process sandbox's virtual clock).
-- @tparam[opt] table opts `clock`, `private` (boolean)
-- @return backend
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    name = "memory",
    state = opts.private and {} or shared,
    clock = opts.clock or core.monotonic_ms,
  }, Memory)
end

local function sweep(self, now)
  if self.state ~= shared or now < sweep_at then return end
  sweep_at = now + SWEEP_EVERY
  for k, tat in pairs(self.state) do
    if tat < now - SWEEP_EVERY then self.state[k] = nil end
  end
end

--- Reserve the next slot of a key (the backend interface, docs/INTERNALS.md).
-- @tparam string key
-- @tparam number interval_ms
-- @tparam number burst
-- @tparam number max_wait_ms
-- @treturn number|nil wait_ms: a slot is reserved at now + wait_ms; nil, wait_ms: over max_wait
function Memory:reserve(key, interval_ms, burst, max_wait_ms)
  local now = self.clock()
  sweep(self, now)
  local stored, wait = M.gcra(self.state[key], now, interval_ms, burst, max_wait_ms)
  if not stored then return nil, wait end
  self.state[key] = stored
  return wait
end

--- Push a key's next free slot to at least now + ms (after a 429).
-- @tparam string key
-- @tparam number ms
function Memory:penalize(key, ms)
  local at = self.clock() + ms
  local stored = self.state[key]
  if stored == nil or stored < at then self.state[key] = at end
  return true
end

return M
