--- Sequential identify calls with our TrackClient against the bench responder.
--
--     lua5.4 bench/identify.lua BASE_URL [CALLS] [WARMUP] [MODE]
--
-- BASE_URL is the responder root (http://127.0.0.1:PORT); the client gets BASE_URL/api/v1.
-- MODE "client" (default) goes through customerio.TrackClient; "core" sends the same
-- prebuilt request straight through the C core's handle:perform, which is the floor of what
-- the Lua layer can reach (the difference is the Lua layer's cost per call); "layer" runs the
-- TrackClient over a transport that answers 200 `{}` at once, without any I/O: the cost of
-- the Lua layer and JSON alone (BASE_URL is then only used to build URLs).
-- Prints one JSON line: calls, warmup, seconds (of the timed loop only).
local base = assert(arg[1], "usage: identify.lua BASE_URL [CALLS] [WARMUP] [MODE]")
local calls = tonumber(arg[2]) or 20000
local warmup = tonumber(arg[3]) or 200
local mode = arg[4] or "client"

local core = require("customerio.core")

-- The same attributes as bench/identify.js: a realistic identify.
local attrs = dofile((arg[0]:match("^(.*)/") or ".") .. "/payload.lua")

local call
if mode == "client" then
  local customerio = require("customerio")
  local track = customerio.TrackClient.new("site-id", "api-key", { url = base .. "/api/v1" })
  call = function(i)
    local res, err = track:identify("user-" .. i, attrs)
    if not res then error("identify failed: " .. tostring(err)) end
  end
elseif mode == "layer" then
  local customerio = require("customerio")
  local sent = 0
  local transport = {
    send = function(_, req)
      sent = sent + #req.body
      return { status = 200, headers = { ["content-type"] = "application/json" }, body = "{}" }
    end,
  }
  local track = customerio.TrackClient.new("site-id", "api-key", { url = base .. "/api/v1", transport = transport })
  call = function(i)
    local res, err = track:identify("user-" .. i, attrs)
    if not res then error("identify failed: " .. tostring(err)) end
  end
elseif mode == "core" then
  local handle = core.http_new()
  local url = base .. "/api/v1/customers/"
  local headers = {
    ["Authorization"] = "Basic " .. core.base64_encode("site-id:api-key"),
    ["Content-Type"] = "application/json",
    ["User-Agent"] = "Customer.io Lua Client/bench",
  }
  call = function(i)
    local body = core.json_encode(attrs)
    local status, _, err = handle:perform("PUT", url .. "user-" .. i, headers, body, 10000)
    if status ~= 200 then error("perform failed: " .. tostring(_) .. " " .. tostring(err)) end
  end
else
  error("unknown mode " .. mode)
end

for i = 1, warmup do call(i) end
local t0 = core.monotonic_ms()
for i = warmup + 1, warmup + calls do call(i) end
local seconds = (core.monotonic_ms() - t0) / 1000

io.write(string.format('{"client":"lua-customerio (%s)","lua":"%s","calls":%d,"warmup":%d,"seconds":%.6f}\n',
  mode, jit and jit.version or _VERSION, calls, warmup, seconds))
