--- Asynchronous calls for single-threaded hosts: game loops, editors, embedded scripting.
--
--     local customerio = require("customerio")
--     local track = customerio.async(customerio.TrackClient.new(site_id, api_key))
--     track:identify("42", { email = "ada@example.com" }, function(result, err)
--       if not result then print("identify failed: " .. err) end
--     end)
--     -- once per frame, in the game loop:
--     customerio.poll(0)        -- never blocks; runs the callbacks of finished calls
--
-- `customerio.async(client)` (or `customerio.async.wrap(client)`) wraps any client
-- (`TrackClient`, `APIClient`, `PipelinesClient`): each of its methods takes the same arguments
-- plus a callback last, returns at once, and later calls `callback(result, err, response)`:
-- `result` is what the blocking method returns on success (`err` nil, the response third),
-- or `nil, err` with the same error objects (`customerio.errors`). Bad arguments still raise at
-- the call, as with the blocking API. Without a callback the call is fire-and-forget.
--
-- Nothing happens between polls: the transfers run on one libcurl multi handle
-- (`customerio.core.async_new`) that advances only inside `customerio.poll(timeout_ms)`, and
-- callbacks run only there, on the thread that calls it. `poll(0)` never blocks; `poll(ms)`
-- waits up to `ms` for at least one callback. Many calls are in flight at once; connections
-- are kept alive and shared by all the clients of an engine.
--
-- `poll(0)` never blocks whatever DNS, TLS or the server do, and does at most a budget of work
-- (`poll(0, { budget = 2 })`, ms, default `DEFAULT_BUDGET` = 2): host names are resolved on
-- threads of the C core (a stalled lookup never stalls the poll, and a call's `timeout` covers
-- its lookup), transfers join libcurl a few at a time, libcurl runs one ready socket at a time,
-- and finished calls are resumed and their callbacks run until the budget is spent; the rest
-- carries over to the next poll. Each stage always takes one step, so every poll makes
-- progress; one step (a callback, a socket's work) is what a poll can exceed its budget by.
--
-- Each call runs the blocking client code (`customerio.http.client`: retries, backoff,
-- `Retry-After`, redirects, error objects) in a coroutine whose transport yields until poll
-- completes its transfer, and whose backoff sleeps yield until a deadline poll checks. So
-- async calls behave exactly like blocking ones, retries included, without blocking the host.
--
-- An error raised by a callback does not reach the client or the other callbacks: it goes to
-- the engine's `on_error` handler (default: a line on stderr) and is counted in `stats()`.
--
-- The engine behind `customerio.poll` is per Lua state and created on first use;
-- `customerio.async.engine(opts)` makes another one (own multi handle, own poll).
-- @module customerio.async
local core = require("customerio.core")
local errors = require("customerio.errors")
local async_transport = require("customerio.transport.async")
local check = require("customerio.http.check")
local fail = check.fail

local unpack = table.unpack or unpack -- luacheck: ignore 143
local create, resume, running, status = coroutine.create, coroutine.resume,
  coroutine.running, coroutine.status
local now_ms = core.monotonic_ms

local M = {}

-- What our transports yield, so that a stray yield (not ours) is recognised.
local TOKEN = async_transport.TOKEN
-- The key of a wrapper's private state.
local STATE = {}

local function pack(...)
  return { n = select("#", ...), ... }
end

-- xpcall passes arguments on 5.2+ and LuaJIT, not on 5.1.
local XPCALL_ARGS = select(2, xpcall(function(v) return v end, debug.traceback, true)) == true

-- Message handler of callbacks: a string with a traceback, whatever was raised.
local function traceback(e)
  if type(e) ~= "string" then e = tostring(e) end
  return debug.traceback(e, 2)
end

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and type(mt.__call) == "function"
end

local function default_on_error(message)
  local stderr = io and io.stderr
  if stderr then stderr:write("customerio.async: error in a callback: ", tostring(message), "\n") end
end

--- Engines: a multi handle, the calls in progress and their callbacks.
-- @type Engine
local Engine = {}
Engine.__index = Engine

local ENGINE_OPTIONS = {
  max_connections = true, max_host_connections = true, keepalive = true, pool = true, on_error = true,
  budget = true,
}

--- The work one `poll` does by default (ms).
M.DEFAULT_BUDGET = 2

local function check_budget(budget, name)
  if type(budget) ~= "number" or budget ~= budget or budget <= 0 or budget == math.huge then
    fail(name .. ": budget must be a positive number of milliseconds")
  end
  return budget
end

--- Create an engine (a `customerio.poll` of its own).
-- @tparam[opt] table opts `max_connections` (total, default unlimited),
-- `max_host_connections` (default unlimited), `keepalive` (idle connections kept, default 64),
-- `pool` (idle easy handles kept, default 16), `on_error` (function(message) called with the
-- error and traceback of a callback that raised; default: writes a line to stderr), `budget`
-- (ms of work per poll, default `DEFAULT_BUDGET`)
-- @treturn Engine
function M.engine(opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("async engine options must be a table") end
  for k in pairs(opts) do
    if not ENGINE_OPTIONS[k] then fail("unknown async engine option: " .. tostring(k)) end
  end
  if opts.on_error ~= nil and not callable(opts.on_error) then fail("on_error must be a function") end
  if opts.budget ~= nil then check_budget(opts.budget, "async engine") end
  return setmetatable({
    budget = opts.budget or M.DEFAULT_BUDGET,
    finished = {},     -- transfers reported by the multi handle, not yet resumed (FIFO)
    multi_opts = {
      max_connections = opts.max_connections, max_host_connections = opts.max_host_connections,
      keepalive = opts.keepalive, pool = opts.pool,
    },
    multi = nil,       -- created on the first transfer
    calls = {},        -- coroutine -> call, for calls whose coroutine is alive
    transfers = {},    -- transfer id -> call waiting for it
    n_transfers = 0,
    sleepers = {},     -- calls waiting for a deadline (backoff)
    done = {},         -- finished calls whose callbacks have not run yet (FIFO)
    seq = 0,
    pending = 0,       -- calls started and not delivered
    polling = false,
    on_error = opts.on_error or default_on_error,
    callbacks = 0,
    callback_errors = 0,
  }, Engine)
end

function Engine:handle()
  local multi = self.multi
  if not multi then
    multi = core.async_new(self.multi_opts)
    self.multi = multi
  end
  return multi
end

-- The call whose coroutine is running, if it is one of this engine's.
function Engine:current()
  local co = running()
  return co and self.calls[co]
end

local function finish(self, call, first, second, third)
  call.finished = true
  if first ~= nil then
    call.result, call.err, call.response = first, nil, second
  else
    call.result, call.err, call.response = nil, second, third
  end
  local done = self.done
  done[#done + 1] = call
end

-- Record what a call that yielded waits for.
local function park(self, call, token, kind, value)
  if token ~= TOKEN then
    -- Someone else's yield inside a client call: nothing here can resume it properly.
    self.calls[call.co] = nil
    return finish(self, call, nil, errors.new({
      kind = "internal", message = "unexpected coroutine.yield inside an async call",
    }))
  end
  if kind == "transfer" then
    call.transfer = value
    self.transfers[value] = call
    self.n_transfers = self.n_transfers + 1
  else
    call.wake = value
    local sleepers = self.sleepers
    sleepers[#sleepers + 1] = call
  end
end

-- What became of a call after a resume (`ok, ...` of coroutine.resume).
local function resumed(self, call, ok, a, b, c)
  local co = call.co
  if status(co) == "dead" then
    self.calls[co] = nil
    if ok then
      finish(self, call, a, b, c)
    elseif call.started then
      finish(self, call, nil, errors.new({
        kind = "internal", message = debug.traceback(co, tostring(a)),
      }))
    else
      return false, a
    end
  else
    park(self, call, a, b, c)
  end
  call.started = true
  return true
end

-- Resume a call with values; returns false, message when it raised before its first yield.
local function step(self, call, ...)
  return resumed(self, call, resume(call.co, ...))
end

--- Start a call: `fn(...)` in a coroutine of this engine; `callback(result, err, response)`
-- runs inside a later `poll`. Errors raised before the call first waits (bad arguments) are
-- raised here.
-- @tparam function fn
-- @tparam[opt] function callback
-- @param ... arguments of fn
function Engine:start(fn, callback, ...)
  return self:start_for(nil, fn, callback, ...)
end

function Engine:start_for(owner, fn, callback, ...)
  self.seq = self.seq + 1
  local call = { co = create(fn), callback = callback, owner = owner, seq = self.seq }
  self.calls[call.co] = call
  local ok, err = step(self, call, ...)
  if not ok then error(err, 0) end
  self.pending = self.pending + 1
  if owner then owner.pending = owner.pending + 1 end
  return true
end

-- Run the callbacks of the calls finished so far, until the monotonic time `limit` (at least
-- one); the others wait for the next poll, ahead of calls finishing meanwhile (so that a
-- callback starting calls cannot keep one poll busy forever).
local function deliver(self, limit)
  local done = self.done
  local n = #done
  if n == 0 then return 0 end
  self.done = {}
  local i = 0
  while i < n do
    i = i + 1
    local call = done[i]
    self.pending = self.pending - 1
    local owner = call.owner
    if owner then owner.pending = owner.pending - 1 end
    local cb = call.callback
    if cb then
      local result, err, response = call.result, call.err, call.response
      local ok, message
      if XPCALL_ARGS then
        ok, message = xpcall(cb, traceback, result, err, response)
      else
        ok, message = xpcall(function() return cb(result, err, response) end, traceback)
      end
      if not ok then
        self.callback_errors = self.callback_errors + 1
        pcall(self.on_error, message)
      end
    end
    self.callbacks = self.callbacks + 1
    if limit and now_ms() >= limit then break end
  end
  if i < n then
    local rest, newer = {}, self.done
    for j = i + 1, n do rest[#rest + 1] = done[j] end
    for j = 1, #newer do rest[#rest + 1] = newer[j] end
    self.done = rest
  end
  return i
end

-- Wake the calls whose backoff is over.
local function wake_sleepers(self, now)
  local sleepers = self.sleepers
  if #sleepers == 0 then return end
  local due, keep = {}, {}
  for i = 1, #sleepers do
    local call = sleepers[i]
    if call.wake <= now then due[#due + 1] = call else keep[#keep + 1] = call end
  end
  if #due == 0 then return end
  self.sleepers = keep
  for i = 1, #due do step(self, due[i]) end
end

local function next_wake(self)
  local t
  local sleepers = self.sleepers
  for i = 1, #sleepers do
    local w = sleepers[i].wake
    if not t or w < t then t = w end
  end
  return t
end

-- Resume the calls whose transfers finished, until `limit` (at least one).
local function resume_finished(self, limit)
  local finished = self.finished
  local n = #finished
  if n == 0 then return end
  local i = 0
  while i < n do
    i = i + 1
    local r = finished[i]
    local call = self.transfers[r[1]]
    if call then
      self.transfers[r[1]] = nil
      self.n_transfers = self.n_transfers - 1
      call.transfer = nil
      step(self, call, r[2], r[3], r[4], r[5])
    end
    if now_ms() >= limit then break end
  end
  local rest = {}
  for j = i + 1, n do rest[#rest + 1] = finished[j] end
  self.finished = rest
end

local function poll_once(self, wait, limit)
  if #self.finished > 0 then
    resume_finished(self, limit)
    if #self.finished > 0 or now_ms() >= limit then return wake_sleepers(self, now_ms()) end
  end
  if self.n_transfers > 0 then
    -- The C core gets 80% of what is left of the budget (it always takes one step of each
    -- kind); the rest is for resuming the finished calls and running their callbacks.
    local budget = (limit - now_ms()) * 0.8
    local finished = self.multi:poll(wait, budget > 0.05 and budget or 0.05)
    if finished then
      if wait > 0 then limit = now_ms() + self.budget end -- the work starts after the wait
      self.finished = finished
      resume_finished(self, limit)
    end
  elseif wait > 0 and #self.sleepers > 0 then
    core.sleep_ms(wait) -- only backoffs to wait for (wait is capped by the first deadline)
  end
  wake_sleepers(self, now_ms())
end

local function check_timeout(timeout_ms, name)
  return check.ms(timeout_ms, name .. ": timeout_ms", { default = 0 })
end

-- One poll: at least one non-blocking pass over the transfers, then passes that wait up to
-- the deadline until a callback ran (or until `more` says stop). Each pass works for at most
-- `budget` ms (plus one step).
local function run_poll(self, timeout_ms, more, budget)
  if self.pending == 0 then return 0 end
  local deadline = now_ms() + timeout_ms
  local ran = 0
  repeat
    local now = now_ms()
    local wait = deadline - now
    if wait < 0 or #self.done > 0 or #self.finished > 0 then wait = 0 end
    local wake = next_wake(self)
    if wake and wake - now < wait then wait = wake > now and wake - now or 0 end
    local limit = now + budget
    poll_once(self, wait, limit)
    if wait > 0 then limit = now_ms() + budget end
    ran = ran + deliver(self, limit)
  until self.pending == 0 or (ran > 0 and not more(self)) or now_ms() >= deadline
  return ran
end

local function never() return false end

-- The budget of one poll from its options table.
local function poll_budget(self, opts, name)
  if opts == nil then return self.budget end
  if type(opts) ~= "table" then fail(name .. ": options must be a table") end
  for k in pairs(opts) do
    if k ~= "budget" then fail(name .. ": unknown option: " .. tostring(k)) end
  end
  if opts.budget == nil then return self.budget end
  return check_budget(opts.budget, name)
end

--- Advance every call of this engine and run the callbacks of those that finished.
-- With `timeout_ms` 0 (the default) it never blocks, whatever DNS, TLS or the server do: one
-- pass that does at most `budget` ms of work (resolved names handed to libcurl, transfers
-- started a few at a time, ready sockets, finished calls resumed, callbacks run), carrying
-- the rest to the next poll; it exceeds the budget by at most one step (one socket's work,
-- one callback). Otherwise it waits up to `timeout_ms` for at least one callback. Not
-- re-entrant: a callback may start calls, not poll.
-- @tparam[opt] number timeout_ms default 0
-- @tparam[opt] table opts `budget` (ms of work, default the engine's, `DEFAULT_BUDGET` = 2)
-- @treturn integer the number of calls completed (callbacks run) by this poll
function Engine:poll(timeout_ms, opts)
  return self:drive(check_timeout(timeout_ms, "poll"), never, poll_budget(self, opts, "poll"))
end

function Engine:drive(timeout_ms, more, budget)
  if self.polling then fail("customerio.poll: not re-entrant (called from inside a callback?)") end
  self.polling = true
  local ok, ran = pcall(run_poll, self, timeout_ms, more, budget or self.budget)
  self.polling = false
  if not ok then error(ran, 0) end
  return ran
end

--- Poll until no call of this engine is pending, or until `timeout_ms` passed (blocking;
-- for shutdown and tests).
-- @tparam[opt] number timeout_ms default: no limit
-- @treturn boolean true when nothing is pending
function Engine:wait(timeout_ms)
  timeout_ms = timeout_ms == nil and math.huge or check_timeout(timeout_ms, "wait")
  if self.pending > 0 then
    self:drive(timeout_ms, function(e) return e.pending > 0 end)
  end
  return self.pending == 0
end

--- Calls started and not yet delivered to their callbacks.
-- @treturn integer
function Engine:pending_calls()
  return self.pending
end

--- Counters: `pending` calls, `in_flight` transfers, `sleeping` calls (backoff), `callbacks`
-- run, `callback_errors`, and the multi handle's `started`, `completed`, `connects`.
-- @treturn table
function Engine:stats()
  local s = {
    pending = self.pending, in_flight = self.n_transfers, sleeping = #self.sleepers,
    callbacks = self.callbacks, callback_errors = self.callback_errors,
    started = 0, completed = 0, connects = 0,
  }
  if self.multi then
    local m = self.multi:stats()
    s.started, s.completed, s.connects = m.started, m.completed, m.connects
  end
  return s
end

--- Abandon every pending call: each callback runs now with `nil, err` (kind "cancelled"),
-- and the connections are closed. The engine can be used again afterwards.
function Engine:close()
  local calls = {}
  for _, call in pairs(self.calls) do calls[#calls + 1] = call end
  self.calls, self.transfers, self.n_transfers, self.sleepers, self.finished = {}, {}, 0, {}, {}
  if self.multi then
    self.multi:close()
    self.multi = nil
  end
  table.sort(calls, function(a, b) return (a.seq or 0) < (b.seq or 0) end)
  for i = 1, #calls do
    finish(self, calls[i], nil, errors.new({ kind = "cancelled", message = "the async engine was closed" }))
  end
  deliver(self)
end

--- The transport of this engine's calls (what `wrap` gives a client): `send` starts a
-- transfer on the multi handle and yields until poll finishes it; `sleep` yields until a
-- deadline. Called outside an async call, it blocks like the curl transport.
-- @tparam[opt] table opts `ca_file`, `connect_timeout` (ms), `max_response` (bytes)
-- @return transport
function Engine:transport(opts)
  return async_transport.new(self, opts)
end

-- The default engine, behind customerio.poll.
local default_engine

--- The engine behind `customerio.poll` (created on first use).
-- @treturn Engine
function M.default()
  if not default_engine then default_engine = M.engine() end
  return default_engine
end

--- Wrapped clients: every method of the client, with a callback last.
-- @type Async
local Async = {}

-- Methods that do not send a request, and are not wrapped.
local NOT_WRAPPED = { new = true, pages = true, endpoint = true }

--- Advance this wrapper's engine (all its calls, not only this wrapper's); see `Engine:poll`.
-- @tparam[opt] number timeout_ms default 0
-- @tparam[opt] table opts `budget` (ms)
-- @treturn integer callbacks run
function Async:poll(timeout_ms, opts)
  local engine = self[STATE].engine
  return engine:drive(check_timeout(timeout_ms, "poll"), never, poll_budget(engine, opts, "poll"))
end

--- Calls made through this wrapper whose callbacks have not run yet.
-- @treturn integer
function Async:pending()
  return self[STATE].pending
end

--- Poll until every call made through this wrapper has been delivered (blocking).
-- @tparam[opt] number timeout_ms default: no limit
-- @treturn boolean true when none is pending
function Async:wait(timeout_ms)
  local state = self[STATE]
  timeout_ms = timeout_ms == nil and math.huge or check_timeout(timeout_ms, "wait")
  if state.pending > 0 then
    state.engine:drive(timeout_ms, function() return state.pending > 0 end)
  end
  return state.pending == 0
end

--- The wrapped client (blocking API).
function Async:unwrap()
  return self[STATE].target
end

--- The engine this wrapper's calls run on.
-- @treturn Engine
function Async:engine()
  return self[STATE].engine
end

local function is_client(c)
  return type(c) == "table" and type(c.send) == "function" and type(c.build) == "function"
    and c.transport ~= nil
end

-- A view of a customerio.http.client whose transport is the engine's (when it was libcurl's).
local function async_client(client, engine)
  local transport = client.transport
  if type(transport) == "table" and transport.name == "curl" then
    transport = engine:transport({
      ca_file = client.ca_file, connect_timeout = client.connect_timeout, max_response = client.max_response,
    })
  end
  -- Any other transport (the sandbox, a user's) runs as it is inside the call's coroutine.
  return setmetatable({ transport = transport }, { __index = client, __tostring = client.__tostring })
end

local wrapper_mt = {}

function wrapper_mt.__index(self, name)
  local own = Async[name]
  if own ~= nil then return own end
  local state = rawget(self, STATE)
  local v = state.target[name]
  if type(v) ~= "function" or type(name) ~= "string" or name:sub(1, 2) == "__" or NOT_WRAPPED[name] then
    return v
  end
  local view, engine = state.view, state.engine
  local f = function(_, ...)
    local n = select("#", ...)
    local callback
    if n > 0 then
      local last = select(n, ...)
      if callable(last) then
        callback = last
        n = n - 1
      end
    end
    if not callback then return engine:start_for(state, v, nil, view, ...) end
    -- Drop the callback from the arguments (methods may count theirs with select("#", ...)).
    if n <= 3 then
      local a1, a2, a3 = ...
      if n == 0 then return engine:start_for(state, v, callback, view) end
      if n == 1 then return engine:start_for(state, v, callback, view, a1) end
      if n == 2 then return engine:start_for(state, v, callback, view, a1, a2) end
      return engine:start_for(state, v, callback, view, a1, a2, a3)
    end
    local args = pack(...)
    return engine:start_for(state, v, callback, view, unpack(args, 1, n))
  end
  rawset(self, name, f)
  return f
end

function wrapper_mt.__tostring(self)
  return "customerio.async (" .. tostring(rawget(self, STATE).target) .. ")"
end

--- Wrap a client for asynchronous calls.
--
--     local api = customerio.async(customerio.APIClient.new(key))
--     api:send_email(req, function(result, err) ... end)
--
-- @param client a `TrackClient`, `APIClient`, `PipelinesClient` (anything whose requests go
-- through a `client` field), or a `customerio.http.client` itself
-- @tparam[opt] table opts `engine` (default: the engine behind `customerio.poll`)
-- @treturn Async the wrapper: the client's methods with a callback last, plus `poll`,
-- `pending`, `wait`, `unwrap`, `engine`
function M.wrap(client, opts)
  opts = opts or {}
  if type(opts) ~= "table" then fail("async options must be a table") end
  local engine = opts.engine or M.default()
  if getmetatable(engine) ~= Engine then fail("opts.engine must be an engine from customerio.async.engine()") end
  local view
  if type(client) == "table" and is_client(rawget(client, "client")) then
    view = setmetatable({ client = async_client(client.client, engine) }, { __index = client })
  elseif is_client(client) then
    view = async_client(client, engine)
  else
    fail("customerio.async: expected a client (TrackClient, APIClient, PipelinesClient)")
  end
  return setmetatable({ [STATE] = { target = client, view = view, engine = engine, pending = 0 } }, wrapper_mt)
end

--- Advance the default engine: see `Engine:poll`. Also `customerio.poll`.
-- @tparam[opt] number timeout_ms default 0 (never blocks)
-- @tparam[opt] table opts `budget` (ms of work, default 2)
-- @treturn integer the number of calls completed (callbacks run)
function M.poll(timeout_ms, opts)
  local engine = M.default()
  return engine:drive(check_timeout(timeout_ms, "poll"), never, poll_budget(engine, opts, "poll"))
end

--- Calls of the default engine not yet delivered.
-- @treturn integer
function M.pending()
  return default_engine and default_engine.pending or 0
end

--- Poll the default engine until nothing is pending (blocking); see `Engine:wait`.
-- @tparam[opt] number timeout_ms
-- @treturn boolean
function M.wait(timeout_ms)
  return M.default():wait(timeout_ms)
end

--- Set the handler of errors raised by callbacks on the default engine.
-- @tparam function fn receives the message with a traceback
function M.on_error(fn)
  if not callable(fn) then fail("on_error must be a function") end
  M.default().on_error = fn
end

M.Engine = Engine
--- The transport class of engines (`customerio.transport.async`).
M.Transport = async_transport.Transport

return setmetatable(M, { __call = function(_, client, opts) return M.wrap(client, opts) end })
