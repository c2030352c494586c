--- The memory budget of a render (`max_memory`, see `customerio.liquid`).
--
-- Every string and array a template builds is charged to the render context as it is made:
-- a string costs its length, an array `ITEM` bytes per item. The count is cheap (one length
-- per filter result, capture or expanded range, never per byte) and cumulative: what a
-- template builds and drops still counts, so the budget bounds CPU as well as memory.
-- Filters whose result can be much larger than their inputs (`join` with a long glue,
-- `replace`, `split`, ranges expanded into arrays) `check` the size first and are refused
-- before they build anything.
-- @module customerio.liquid.budget

local errors = require("customerio.liquid.errors")

local type, rawequal = type, rawequal

local M = {}

--- Bytes charged per array item.
M.ITEM = 16

local function exceeded(ctx, need)
  local at = ctx.at
  errors.raise("limit", "memory limit exceeded: the template would build more than " .. ctx.max_memory
    .. " bytes of strings and arrays (" .. need .. " needed; raise with max_memory)", at and at[1], at and at[2])
end

--- Charge `bytes` to the render; raises a `limit` error past `ctx.max_memory`.
-- @tparam table ctx render context
-- @tparam number bytes
function M.charge(ctx, bytes)
  local m = ctx.mem + bytes
  ctx.mem = m
  if m > ctx.max_memory then exceeded(ctx, m) end
end

--- Raise a `limit` error unless `bytes` more fit in the budget (charges nothing: the result
-- is charged when it is made).
-- @tparam table ctx render context
-- @tparam number bytes
function M.check(ctx, bytes)
  local m = ctx.mem + bytes
  if m > ctx.max_memory then exceeded(ctx, m) end
end

--- Charge a filter's result `r` made from input `v` (nothing when it is `v` itself).
-- @tparam table ctx render context
-- @param r the result
-- @param v the input
function M.result(ctx, r, v)
  if rawequal(r, v) then return end
  local t = type(r)
  local m
  if t == "string" then
    m = ctx.mem + #r
  elseif t == "table" then
    m = ctx.mem + M.ITEM * #r
  else
    return
  end
  ctx.mem = m
  if m > ctx.max_memory then exceeded(ctx, m) end
end

return M
