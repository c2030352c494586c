-- Where the render time goes, per filter family: each fragment renders over the 50 items of
-- receipt.json; prints µs per render and µs above the bare loop. Usage (from the project root):
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' lua5.4 bench/liquid/families.lua [renders]

local liquid = require("customerio.liquid")
local json = require("customerio.liquid.json")

local dir = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local f = assert(io.open(dir .. "/receipt.json", "rb"))
local data = assert(json.decode(f:read("*a"), { ordered = true }))
f:close()
local renders = tonumber(arg and arg[1]) or 2000

local LOOP = "{%% for item in trigger.order.items %%}%s{%% endfor %%}"
local fragments = {
  { "bare loop", LOOP:format("x") },
  { "forloop.index", LOOP:format("{{ forloop.index }}") },
  { "cycle", LOOP:format("{% cycle 'odd', 'even' %}") },
  { "if", LOOP:format("{% if item.gift %}g{% endif %}") },
  { "variable (number)", LOOP:format("{{ item.quantity }}") },
  { "escape", LOOP:format("{{ item.name | escape }}") },
  { "capitalize / upcase", LOOP:format("{{ item.name | capitalize }}{{ item.variant | upcase }}") },
  { "replace / append", LOOP:format("{{ item.name | replace: '&', 'and' | append: '!' }}") },
  { "times | round", LOOP:format("{{ item.price | times: item.quantity | round: 2 }}") },
  { "assign + plus (receipt)", LOOP:format("{% assign t = item.price | times: item.quantity %}"
    .. "{% assign s = s | plus: t %}") },
  { "capture", LOOP:format("{% capture c %}{{ item.sku }}-{{ item.quantity }}{% endcapture %}") },
  { "date (once)", "{{ trigger.order.placed_at | date: '%b %d, %Y' }}" },
  { "map | join | truncate (once)", "{{ trigger.order.items | map: 'name' | join: ', ' | truncate: 120 }}" },
  { "where | sort (once)", "{{ trigger.order.items | where: 'gift' | sort: 'price' | size }}" },
}

local clock = os.clock
local function time(tpl)
  for _ = 1, 100 do tpl:render(data) end
  local best = math.huge
  local per = math.max(1, math.floor(renders / 5))
  for _ = 1, 5 do
    local t0 = clock()
    for _ = 1, per do tpl:render(data) end
    local us = (clock() - t0) * 1e6 / per
    if us < best then best = us end
  end
  return best
end

local version = (jit and jit.version) or _VERSION
print(("customerio.liquid (%s), µs per render (best of 5 batches), 50 items"):format(version))
local base
for _, fr in ipairs(fragments) do
  local us = time(assert(liquid.parse(fr[2])))
  if not base then base = us end
  local above = fr[1]:find("once") and us or us - base
  print(("  %-30s %8.1f   %+8.1f"):format(fr[1], us, fr[1] == "bare loop" and 0 or above))
end
