--- Summarises bench/queue/run.sh's raw lines (medians, ratio to Node) into a JSON object and
-- prints the figures. Usage: lua5.4 report.lua RAW OUT
local raw, out = assert(arg[1]), assert(arg[2])
local json = require("customerio.core")

local TARGET = 20
local SPOOL_TARGET = 0.5 -- delivered with a spool (fsync every 100 ms) / without

local samples = {}
for line in io.lines(raw) do
  local id, text = line:match("^(%S+) (.*)$")
  local v = id and json.json_decode(text)
  if type(v) == "table" then
    samples[id] = samples[id] or {}
    table.insert(samples[id], v)
  end
end

local function median(list, f)
  local xs = {}
  for _, v in ipairs(list or {}) do
    local x = f(v)
    if x then xs[#xs + 1] = x end
  end
  if #xs == 0 then return nil end
  table.sort(xs)
  local m = math.floor((#xs + 1) / 2)
  if #xs % 2 == 1 then return xs[m] end
  return (xs[m] + xs[m + 1]) / 2
end

local result = { target_ratio = TARGET }
local best_name, best
for _, v in ipairs({ "5.4", "luajit" }) do
  local list = samples["queue_" .. v]
  if list then
    local fig = {
      events = list[1].events,
      enqueue_per_s = median(list, function(x) return x.enqueue_per_s end),
      delivered_per_s = median(list, function(x) return x.delivered_per_s end),
      requests = list[1].requests,
      runs = #list,
    }
    result[v == "5.4" and "lua54" or "luajit"] = fig
    if not best or fig.delivered_per_s > best.delivered_per_s then best, best_name = fig, v end
  end
end
for _, v in ipairs({ "5.4", "luajit" }) do
  local list, k = samples["spool_" .. v], v == "5.4" and "lua54" or "luajit"
  if list and result[k] then
    local fig = {
      spool_sync = list[1].spool_sync, runs = #list,
      enqueue_per_s = median(list, function(x) return x.enqueue_per_s end),
      delivered_per_s = median(list, function(x) return x.delivered_per_s end),
    }
    fig.ratio = fig.delivered_per_s / result[k].delivered_per_s
    fig.pass = fig.ratio >= SPOOL_TARGET
    result[k].spool = fig
  end
end
local node = samples.node
if node then
  result.node = {
    client = node[1].client, in_flight = node[1].in_flight, calls = node[1].calls, runs = #node,
    delivered_per_s = median(node, function(x) return x.calls / x.seconds end),
  }
end

local lines = {}
local function p(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
p("customerio.Queue vs customerio-node 5.2.0 (median of %d runs)", (best and best.runs) or 0)
for _, k in ipairs({ "lua54", "luajit" }) do
  local f = result[k]
  if f then
    p("  %-7s enqueue %10.0f events/s   delivered %10.0f events/s   (%d events, %d batch requests)",
      k, f.enqueue_per_s, f.delivered_per_s, f.events, f.requests)
  end
end
for _, k in ipairs({ "lua54", "luajit" }) do
  local f = result[k] and result[k].spool
  if f then
    p("  %-7s with spool (fsync %s ms): enqueue %10.0f events/s   delivered %10.0f events/s   "
      .. "spool/none = %.2f (target %.1f: %s)", k, f.spool_sync, f.enqueue_per_s, f.delivered_per_s, f.ratio,
      SPOOL_TARGET, f.pass and "PASS" or "FAIL")
  end
end
if result.node then
  p("  node    one request per event, %d in flight: %10.0f events/s", result.node.in_flight, result.node.delivered_per_s)
end
local status
if best and result.node and result.node.delivered_per_s > 0 then
  for _, k in ipairs({ "lua54", "luajit" }) do
    local f = result[k]
    if f then
      f.ratio_vs_node = f.delivered_per_s / result.node.delivered_per_s
      p("  ratio %-7s delivered / node = %8.1fx  (target %dx: %s)", k, f.ratio_vs_node, TARGET,
        f.ratio_vs_node >= TARGET and "PASS" or "FAIL")
    end
  end
  result.ratio_vs_node = best.delivered_per_s / result.node.delivered_per_s
  result.pass = result.ratio_vs_node >= TARGET
  status = string.format("delivered %.0f events/s (%s) vs customerio-node %.0f/s: %.1fx (target %dx: %s)",
    best.delivered_per_s, best_name == "5.4" and "Lua 5.4" or "LuaJIT", result.node.delivered_per_s,
    result.ratio_vs_node, TARGET, result.pass and "PASS" or "FAIL")
elseif best then
  status = string.format("delivered %.0f events/s (%s); customerio-node not measured", best.delivered_per_s, best_name)
else
  status = "not measured"
end
result.status = status
print(table.concat(lines, "\n"))

local f = assert(io.open(out, "w"))
f:write(assert(json.json_encode(result)), "\n")
f:close()
