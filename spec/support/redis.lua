-- A throwaway redis-server (Debian's) for the specs: 127.0.0.1 on a free port, no persistence
-- (`--save '' --appendonly no`), its own directory under $TMPDIR.
--
--   local redis = require("support.redis")
--   if not redis.available() then pending(redis.MISSING) end
--   local r = redis.start({ password = "pw" })   -- raises when it does not come up
--   r.port, r.url ("redis://:pw@127.0.0.1:PORT/0"), r.dir
--   r:cli("GET", "k")      -- redis-cli output (the server's answer as text)
--   r:kill()               -- SIGKILL, as a crash would (the directory and port are kept)
--   r:restart()            -- again on the same port (after kill)
--   r:stop()               -- stop and remove the directory; safe to call twice
--
-- What is started is always stopped: instances still running when the Lua state closes or
-- os.exit is called are stopped, and a watcher (sh, in its own session) kills the server when
-- the process that started it dies, however it dies.
local nginx = require("tools.nginx") -- for pick_ports

local M = {}

M.BIN = os.getenv("CIO_REDIS_SERVER") or "redis-server"
M.MISSING = "redis-server is not installed (Debian: apt-get install redis-server); " ..
  "the Redis rate limiter specs did not run"

local REGISTRY_KEY = "lua-customerio.spec.support.redis"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Whether redis-server and redis-cli can be run.
function M.available()
  return run("command -v " .. q(M.BIN) .. " >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1")
end

local function live()
  local reg = debug.getregistry()
  local s = reg[REGISTRY_KEY]
  if not s then
    s = { instances = {} }
    reg[REGISTRY_KEY] = s
  end
  return s
end

local Instance = {}
Instance.__index = Instance

function Instance:pid()
  return tonumber(read_file(self.dir .. "/redis.pid") or "")
end

local function alive(pid)
  if not pid then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%)%s+(%a)") ~= "Z"
end

--- redis-cli against this server (with its password); returns the output, trimmed.
function Instance:cli(...)
  local words = {}
  for i = 1, select("#", ...) do words[#words + 1] = q(select(i, ...)) end
  local auth = self.password and (" --no-auth-warning -a " .. q(self.password)) or ""
  return trim(capture("redis-cli -h 127.0.0.1 -p " .. self.port .. auth .. " " .. table.concat(words, " ") .. " 2>&1"))
end

local function wait_until(pred, seconds)
  for _ = 1, seconds * 20 do
    if pred() then return true end
    run("sleep 0.05")
  end
  return pred()
end

-- Starts the server on self.port; true, or false and the reason.
local function boot(self)
  os.remove(self.dir .. "/redis.pid")
  local args = {
    M.BIN, "--port", self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
    "--dir", self.dir, "--daemonize", "yes", "--pidfile", self.dir .. "/redis.pid",
    "--logfile", self.dir .. "/redis.log",
  }
  if self.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = self.password
  end
  local words = {}
  for i, a in ipairs(args) do words[i] = q(a) end
  if not run(table.concat(words, " ") .. " >/dev/null 2>&1") then return false, "redis-server failed to start" end
  local up = wait_until(function() return self:cli("PING"):find("PONG") ~= nil end, 10)
  if not up then return false, "redis-server did not answer: " .. (read_file(self.dir .. "/redis.log") or "") end
  return true
end

-- Whether something listens on 127.0.0.1:port (state 0A in /proc/net/tcp).
local function listening(port)
  local f = io.open("/proc/net/tcp", "r")
  if not f then return false end
  for line in f:lines() do
    local lport, state = line:match("^%s*%d+:%s+%x+:(%x+)%s+%x+:%x+%s+(%x+)")
    if lport and tonumber(lport, 16) == port and state == "0A" then
      f:close()
      return true
    end
  end
  f:close()
  return false
end

--- Kill the server with SIGKILL and wait until it is gone and its port refuses connections
-- (the main thread of a killed process can show as a zombie while its other threads still
-- hold the listening socket).
function Instance:kill()
  local pid = self:pid()
  if alive(pid) then run("kill -KILL " .. pid .. " 2>/dev/null") end
  wait_until(function() return not alive(pid) and not listening(self.port) end, 10)
  os.remove(self.dir .. "/redis.pid")
end

--- Start it again on the same port (after `kill`).
function Instance:restart()
  local ok, err = boot(self)
  if not ok then error(err, 0) end
end

--- Stop the server and remove its directory.
function Instance:stop()
  if self.stopped then return end
  self.stopped = true
  self:kill()
  run("rm -rf " .. q(self.dir))
  live().instances[self.dir] = nil
end

local function stop_all()
  for _, inst in pairs(live().instances) do inst:stop() end
end

local function install_exit_hooks(s)
  if s.sentinel then return end
  local sentinel
  if newproxy then ---@diagnostic disable-line: undefined-global
    sentinel = newproxy(true) ---@diagnostic disable-line: undefined-global
    getmetatable(sentinel).__gc = stop_all
  else
    sentinel = setmetatable({}, { __gc = stop_all })
  end
  s.sentinel = sentinel
  local real_exit = os.exit
  os.exit = function(...) -- luacheck: ignore 122
    stop_all()
    return real_exit(...)
  end
end

-- While the directory exists and the owner lives, sleep; then kill the server, remove the dir.
local WATCHER = [[
trap '' INT HUP
while [ -d "$1" ] && kill -0 "$2" 2>/dev/null; do sleep 1; done
[ -f "$1/redis.pid" ] && kill -KILL "$(cat "$1/redis.pid")" 2>/dev/null
rm -rf "$1"
]]

--- Start a server; raises when it does not come up (after cleaning up).
-- @tparam[opt] table opts `password` (requirepass)
function M.start(opts)
  opts = opts or {}
  local tmp = os.getenv("TMPDIR") or "/tmp"
  local dir = trim(capture("mktemp -d " .. q(tmp .. "/cio-redis.XXXXXXXX")))
  if not dir:match("^/") then error("redis: mktemp -d failed", 0) end
  local self = setmetatable({ dir = dir, password = opts.password }, Instance)
  local s = live()
  install_exit_hooks(s)
  s.instances[dir] = self
  local owner = tonumber(trim(capture("echo $PPID")))
  math.randomseed(os.time() + owner * 1000 + math.floor(os.clock() * 1e6))
  local setsid = run("command -v setsid >/dev/null 2>&1") and "setsid " or ""
  run(setsid .. "sh -c " .. q(WATCHER) .. " cio-redis-watcher " .. q(dir) .. " " .. owner ..
    " </dev/null >/dev/null 2>&1 &")
  local err
  for _ = 1, 5 do -- another process may take the port between the pick and the bind
    self.port = nginx.pick_ports(1)[1]
    local ok
    ok, err = boot(self)
    if ok then
      local auth = opts.password and (":" .. opts.password .. "@") or ""
      self.url = "redis://" .. auth .. "127.0.0.1:" .. self.port .. "/0"
      return self
    end
    self:kill()
  end
  self:stop()
  error(err, 0)
end

return M
