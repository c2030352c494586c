--- The retry policy (customerio-node 5.x defaults): the one place where it is defined.
--
-- Every request path uses it: `customerio.http.client` runs it for the blocking clients and
-- for their async and nginx transports, and the nginx queue sends through that client. The
-- C queue worker receives the policy resolved here (`retry.policy`, passed by
-- `customerio.queue.thread`) and applies it as given.
--
-- Up to `max_retries` replays after the first attempt, exponential backoff
-- `min(max_timeout, (random() + 1) * min_timeout * 2^n)`, `Retry-After` (seconds
-- or an HTTP date, capped at `retry_after_max` seconds) when the server sends it,
-- and a total backoff budget after which the last error is returned.
-- @module customerio.http.retry
local core = require("customerio.core")
local check = require("customerio.http.check")

local retry = {}

--- The defaults. Each can be overridden in a client's `retry` option; Node's
-- camelCase names (`maxRetries`, `minTimeoutMs`, ...) are accepted too.
-- @field max_retries 3 replays after the first attempt
-- @field min_timeout 200 ms, the first backoff
-- @field max_timeout 5000 ms, the longest backoff
-- @field retry_statuses 408, 429, 500, 502, 503, 504, 522, 524
-- @field respect_retry_after true
-- @field retry_after_max 300 s
-- @field max_total_backoff 30000 ms
-- @field unsafe false: a call that is not idempotent (a transactional send, a broadcast
-- trigger, a catalogue call that creates something) is replayed only when the request
-- provably did not reach Customer.io's application (see `replay_allowed`); `true` replays it
-- like any other call (customerio-node 5.x's behaviour: the message may be sent twice)
-- @table defaults
retry.defaults = {
  max_retries = 3,
  min_timeout = 200,        -- ms
  max_timeout = 5000,       -- ms
  retry_statuses = { 408, 429, 500, 502, 503, 504, 522, 524 },
  respect_retry_after = true,
  retry_after_max = 300,    -- seconds
  max_total_backoff = 30000, -- ms
  unsafe = false,
}

-- Transport failure kinds that are retried (not an option: "tls", "request" and "too_large"
-- fail the same way again). Part of every policy, so that the queue's worker reads it too.
local RETRY_KINDS = { "network", "timeout" }
local RETRY_KIND_SET = { network = true, timeout = true }

local aliases = {
  maxRetries = "max_retries", minTimeoutMs = "min_timeout", maxTimeoutMs = "max_timeout",
  retryStatusCodes = "retry_statuses", respectRetryAfter = "respect_retry_after",
  retryAfterMaxSeconds = "retry_after_max", maxTotalBackoffMs = "max_total_backoff",
  min_timeout_ms = "min_timeout", max_timeout_ms = "max_timeout", max_total_backoff_ms = "max_total_backoff",
}

local function nonneg_number(v, name)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    check.fail("retry." .. name .. " must be a non-negative number")
  end
  return v
end

--- Normalise a `retry` option into a policy table.
-- @tparam[opt] table|boolean opts overrides; `false` disables retries
-- @treturn table policy
function retry.policy(opts)
  local p = {}
  for k, v in pairs(retry.defaults) do p[k] = v end
  if opts == false then
    p.max_retries = 0
  elseif opts ~= nil then
    if type(opts) ~= "table" then check.fail("retry must be a table or false") end
    for k, v in pairs(opts) do
      local name = aliases[k] or k
      if retry.defaults[name] == nil then check.fail("unknown retry option: " .. tostring(k)) end
      p[name] = v
    end
  end
  nonneg_number(p.max_retries, "max_retries")
  -- Times: math.huge (and anything larger) means the longest wait, check.MAX_MS.
  p.min_timeout = check.ms(p.min_timeout, "retry.min_timeout")
  p.max_timeout = check.ms(p.max_timeout, "retry.max_timeout")
  p.retry_after_max = check.ms(p.retry_after_max, "retry.retry_after_max",
    { unit = "seconds", max = math.floor(check.MAX_MS / 1000) })
  p.max_total_backoff = check.ms(p.max_total_backoff, "retry.max_total_backoff")
  if type(p.unsafe) ~= "boolean" then check.fail("retry.unsafe must be a boolean") end
  if type(p.retry_statuses) ~= "table" then check.fail("retry.retry_statuses must be a list of statuses") end
  p.status_set = {}
  for i = 1, #p.retry_statuses do p.status_set[p.retry_statuses[i]] = true end
  p.retry_kinds = RETRY_KINDS
  return p
end

--- Milliseconds to wait according to a Retry-After header value, as customerio-node 5.x
-- reads it: delta seconds (`"120"`, `"1.5"`) or an HTTP date (IMF-fixdate, RFC 850 or asctime;
-- a date in the past gives 0). The C core parses it (`core.retry_after`), the same code the
-- queue's worker uses. No cap is applied here (`delay` applies `retry_after_max`).
-- @tparam string value the header value
-- @tparam number now_ms current Unix time in milliseconds
-- @treturn number|nil ms (never negative), nil when unparsable
function retry.parse_retry_after(value, now_ms)
  if type(value) ~= "string" then return nil end
  return core.retry_after(value, now_ms)
end

--- Milliseconds to wait before retry number n (0 for the first retry).
-- @tparam table p policy
-- @tparam number n retry number, from 0
-- @tparam[opt] table headers response headers (lower-case names)
-- @tparam[opt] function random returns a number in [0, 1)
-- @tparam[opt] number now_ms current Unix time in milliseconds (default `core.now_ms()`)
-- @treturn number ms
function retry.delay(p, n, headers, random, now_ms)
  if p.respect_retry_after and headers and headers["retry-after"] then
    local wait = retry.parse_retry_after(headers["retry-after"], now_ms or core.now_ms())
    if wait then
      if wait > p.retry_after_max * 1000 then wait = p.retry_after_max * 1000 end
      return wait
    end
  end
  return core.retry_backoff(p.min_timeout, p.max_timeout, n, (random or math.random)())
end

--- Whether a status is retried under this policy.
function retry.status_retryable(p, status)
  return p.status_set[status] == true
end

--- Whether a transport failure kind is retried ("network" and "timeout" are).
function retry.kind_retryable(kind)
  return RETRY_KIND_SET[kind] == true
end

--- Statuses that prove the request was not processed, so that even a call that is not
-- idempotent may be replayed. Only 429: Customer.io documents it as the rate limit's answer
-- (the request was refused, not acted on). Customer.io documents nothing of the kind for
-- 5xx: a 500 may come after the message was queued, and a 502/503/504 from a proxy or load
-- balancer says nothing about whether the application behind it acted on the request.
retry.UNPROCESSED_STATUSES = { [429] = true }

--- Whether a failed attempt may be replayed under this policy.
-- @tparam table p policy
-- @tparam boolean idempotent whether the call may be repeated without effect (Track calls,
--   reads, updates); false for sends, triggers and creations
-- @tparam[opt] number status the response's status (nil for a transport failure)
-- @tparam[opt] string sent for a transport failure: "no", "unknown" (customerio.errors.SENT)
-- @treturn boolean
function retry.replay_allowed(p, idempotent, status, sent)
  if idempotent or p.unsafe then return true end
  if status then return retry.UNPROCESSED_STATUSES[status] == true end
  return sent == "no"
end

return retry
