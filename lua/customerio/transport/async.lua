--- The transport of `customerio.async` calls: `send` starts a transfer on the engine's
-- libcurl multi handle (`customerio.core.async_new`) and yields until the engine's poll
-- finishes it; `sleep` (the backoff between retries) yields until a deadline the poll checks.
-- Called outside an async call, it blocks like the curl transport.
--
-- The engine (`customerio.async`) runs each call in a coroutine and resumes it; this module
-- only needs of it `current()` (the call running now, if any) and `handle()` (the multi handle).
-- @module customerio.transport.async
local core = require("customerio.core")
local check = require("customerio.http.check")

local yield = coroutine.yield
local now_ms = core.monotonic_ms

local M = {}

--- What this transport yields, so that the engine recognises a stray yield (not ours).
M.TOKEN = {}
local TOKEN = M.TOKEN

--- The async transport.
-- @type Transport
local Transport = {}
Transport.__index = Transport
M.Transport = Transport

--- A transport for one engine.
-- @param engine a `customerio.async` engine
-- @tparam[opt] table opts `ca_file`, `connect_timeout` (ms), `max_response` (bytes)
-- @return transport
function M.new(engine, opts)
  opts = opts or {}
  return setmetatable({
    engine = engine, name = "async",
    ca_file = opts.ca_file, connect_timeout = opts.connect_timeout, max_response = opts.max_response,
  }, Transport)
end

--- Send one request: inside an async call, start it and yield until it is done.
-- @tparam table req `{method, url, headers, body}`
-- @tparam number timeout_ms
-- @return `{status, headers, body}` or nil, kind, message, stage (see customerio.transport.curl)
function Transport:send(req, timeout_ms)
  local engine = self.engine
  if not engine:current() then
    self.blocking = self.blocking or require("customerio.transport.curl").new({
      ca_file = self.ca_file, connect_timeout = self.connect_timeout, max_response = self.max_response,
    })
    return self.blocking:send(req, timeout_ms)
  end
  local repeated = require("customerio.transport").repeated_header(req.headers)
  if repeated then return nil, "request", repeated end
  local id, kind, message = engine:handle():add(req.method, req.url, req.headers, req.body, timeout_ms,
    self.connect_timeout, self.ca_file, self.max_response)
  if not id then return nil, kind, message, "request" end
  local code, headers, body, stage = yield(TOKEN, "transfer", id)
  if code == nil then return nil, headers, body, stage end
  return { status = code, headers = headers, body = body }
end

--- Wait ms milliseconds between retries: inside an async call, yield until poll sees the
-- deadline pass.
function Transport:sleep(ms)
  ms = check.ms(ms, "sleep: ms")
  if not self.engine:current() then return core.sleep_ms(ms) end
  yield(TOKEN, "sleep", now_ms() + ms)
end

return M
