--- The nginx backend of `customerio.ratelimit`: GCRA state in a `lua_shared_dict`, so that
-- every worker of one nginx server shares one budget (`rate_limit = { shared_dict = "name" }`).
--
-- Atomicity: a reservation reads the key's arrival time, computes and writes it back. Two
-- workers doing that at once could both take the same slot, so each reservation holds a short
-- lock: `dict:add(key .. ":lock", ...)` succeeds for one worker only (add is atomic in the
-- dict), with an expiry (`LOCK_TTL`) so that a worker that dies holding it cannot stall the
-- others for longer. Between add and delete nothing yields (no cosocket, no sleep), so the
-- lock is held for microseconds; a worker that finds it taken waits 1 ms (ngx.sleep, where
-- the phase allows it) and tries again, up to `LOCK_TRIES` times, then reports the backend
-- unusable for this call (the limiter uses its per-worker memory budget and says so once).
-- The clock is `ngx.now()` after `ngx.update_time()`: the wall clock every worker reads.
-- @module customerio.ratelimit.shdict
local memory = require("customerio.ratelimit.memory")

local M = {}

local LOCK_TTL = 0.1 -- s
local LOCK_TRIES = 50

local Shdict = {}
Shdict.__index = Shdict

--- The backend over one dict.
-- @tparam string name the `lua_shared_dict`'s name
-- @return backend
function M.new(name)
  local ngx = rawget(_G, "ngx")
  local dict = type(ngx) == "table" and ngx.shared and ngx.shared[name]
  if not dict then
    require("customerio.http.check").fail("rate_limit.shared_dict: no lua_shared_dict named " ..
      tostring(name) .. (type(ngx) == "table" and "" or " (this is not nginx)"))
  end
  return setmetatable({ name = "shdict", dict = dict, dict_name = name }, Shdict)
end

local function now_ms()
  ngx.update_time()
  return ngx.now() * 1000
end

local function can_sleep()
  return require("customerio.transport.ngx").phase()
end

-- Run fn(now) holding the key's lock; nil, err when the lock cannot be had.
local function locked(self, key, fn)
  local dict, lock = self.dict, key .. ":lock"
  for _ = 1, LOCK_TRIES do
    local ok, err = dict:add(lock, true, LOCK_TTL)
    if ok then
      local a, b = fn(now_ms())
      dict:delete(lock)
      return a, b
    end
    if err ~= "exists" then return nil, "lua_shared_dict " .. self.dict_name .. ": " .. tostring(err) end
    if not can_sleep() then break end
    ngx.sleep(0.001)
  end
  return nil, "lua_shared_dict " .. self.dict_name .. ": the lock of " .. key .. " stayed taken"
end

--- Reserve the next slot of a key (see `customerio.ratelimit`).
function Shdict:reserve(key, interval_ms, burst, max_wait_ms)
  local dict = self.dict
  local failure
  local stored, wait = locked(self, key, function(now)
    local new, w = memory.gcra(dict:get(key), now, interval_ms, burst, max_wait_ms)
    if not new then return false, w end
    -- Kept until the slot is well past (a slot in the past is the same as no entry).
    local ok, err = dict:set(key, new, (new - now) / 1000 + 60)
    if not ok then failure = "lua_shared_dict " .. self.dict_name .. ": " .. tostring(err) return nil end
    return true, w
  end)
  if stored == nil then return nil, nil, failure or wait end
  if stored == false then return nil, wait end
  return wait
end

--- After a 429: the key's arrival time becomes at least now + ms.
function Shdict:penalize(key, ms)
  local dict = self.dict
  local ok, err = locked(self, key, function(now)
    local at = now + ms
    local stored = dict:get(key)
    if stored == nil or stored < at then dict:set(key, at, ms / 1000 + 60) end
    return true
  end)
  if not ok then return nil, err end
  return true
end

return M
