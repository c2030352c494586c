-- Render a template of bench/liquid (receipt, numeric or digest; default receipt) with
-- receipt.json using customerio.liquid; prints ms per render. Usage (from the project root):
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' lua5.4 bench/liquid/bench.lua [iterations] [template] [--print]

local liquid = require("customerio.liquid")
local json = require("customerio.liquid.json")

local dir = (arg and arg[0] or ""):match("^(.*)[/\\]") or "."
local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local name = "receipt"
for i = 2, arg and #arg or 0 do
  if arg[i] ~= "--print" then name = arg[i] end
end
local source = read(name .. ".liquid")
local data = assert(json.decode(read("receipt.json"), { ordered = true }))
local iterations = tonumber(arg and arg[1]) or 2000
local print_only = false
for i = 1, arg and #arg or 0 do
  if arg[i] == "--print" then print_only = true end
end

local template = assert(liquid.parse(source))
local clock = os.clock

if print_only then
  io.write((assert(template:render(data))))
  return
end

for _ = 1, 200 do assert(template:render(data)) end   -- warm up (LuaJIT traces)

local batches = {}
local per_batch = math.max(1, math.floor(iterations / 10))
for b = 1, 10 do
  local t0 = clock()
  for _ = 1, per_batch do template:render(data) end
  batches[b] = (clock() - t0) * 1000 / per_batch
end
table.sort(batches)
local median = batches[6]
local version = (jit and jit.version) or _VERSION
print(string.format("customerio.liquid (%s) %s: %.4f ms/render (median of 10 batches x %d)", version, name, median,
  per_batch))
