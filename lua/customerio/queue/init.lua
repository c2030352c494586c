--- Background delivery of Track operations: `customerio.Queue.new(track, opts)`.
--
-- Inside nginx (lua-nginx-module) it makes a `customerio.queue.ngx` queue (a per-worker buffer
-- sent from timers over cosockets); anywhere else a `customerio.queue.thread` queue (a C worker
-- thread with its own libcurl handles). Both have the same methods and return values; what they
-- share lives in `customerio.queue.common`.
-- @module customerio.queue
local transport = require("customerio.transport")

local M = {}

--- The public `customerio.Queue`.
-- @type Queue
M.Queue = {}

--- Create a queue for a Track client (see `customerio.queue.thread` and `customerio.queue.ngx`
-- for the options of each).
-- @tparam TrackClient track
-- @tparam[opt] table opts
-- @return a queue
function M.Queue.new(track, opts)
  if transport.in_nginx() then return require("customerio.queue.ngx").new(track, opts) end
  return require("customerio.queue.thread").new(track, opts)
end

return M
