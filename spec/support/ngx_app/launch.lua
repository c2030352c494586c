--- Starts and drives the nginx of spec/transport/ngx_spec.lua (plain Lua: 5.1, 5.4, LuaJIT; uses the
-- nginx, curl and mktemp commands).
--
--   local launch = require("support.ngx_app.launch")
--   local app = launch.start({ config = {...}, ca_file = "...", owner = pid })
--   app:run("/run", scenario)     -- POST a scenario (table), returns the decoded report
--   app:get("/phase/log")         -- status, body, headers (raw text)
--   app:parallel(paths, n)        -- curl --parallel over many URLs; returns the bodies
--   app:stop()
--
-- The config template is spec/support/ngx_app/nginx.conf; handlers are in cio_ngx_app.lua.
-- $CIO_RESTY_HTTP_PATH, when set, is a directory holding resty/http.lua (lua-resty-http and
-- its dependencies) added to nginx's lua_package_path.
local core = require("customerio.core")

local launch = {}

local NGINX = os.getenv("CIO_TEST_NGINX") or "nginx"

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

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

local APP = (function()
  local src = debug.getinfo(1, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or "spec/support/ngx_app/launch.lua"
  local dir = file:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = trim(capture("pwd")) .. "/" .. dir end
  dir = dir:gsub("/%./", "/"):gsub("/%.$", "")
  return dir
end)()
local REPO = APP:gsub("/spec/support/ngx_app$", "")
launch.repo, launch.app_dir = REPO, APP

-- A Lua literal for a table of strings, numbers and booleans (the init_by_lua config).
local function literal(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do
    out[#out + 1] = "[" .. literal(k) .. "] = " .. literal(v[k])
  end
  return "{ " .. table.concat(out, ", ") .. " }"
end

local function render(template, vars)
  return (template:gsub("{{([%w_]+)}}", function(name)
    local v = vars[name]
    if v == nil then error("ngx app: no value for {{" .. name .. "}}", 0) end
    return tostring(v)
  end))
end

local function used_ports()
  local used = {}
  for _, file in ipairs({ "/proc/net/tcp", "/proc/net/tcp6" }) do
    local f = io.open(file, "r")
    if f then
      for line in f:lines() do
        local port = line:match("^%s*%d+:%s+%x+:(%x+)%s")
        if port then used[tonumber(port, 16)] = true end
      end
      f:close()
    end
  end
  return used
end

local function pid_alive(pid)
  if not pid then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local st = stat:match("%)%s+(%a)")
  return st ~= "Z" and st ~= "X"
end

local App = {}
App.__index = App

--- The core .so that nginx's LuaJIT will load.
function launch.core_so()
  return REPO .. "/build/luajit/customerio/core.so"
end

-- Renders a config with make_conf(port, prefix) and starts nginx on a free port; returns the
-- app. ready_path is fetched until it answers 200.
local function boot(make_conf, ready_path)
  local tmp = os.getenv("TMPDIR")
  if not tmp or tmp == "" then tmp = "/tmp" end
  local prefix = trim(capture("mktemp -d " .. q(tmp .. "/cio-ngxapp.XXXXXXXX")))
  if not prefix:match("^/") then error("ngx app: mktemp -d failed", 0) end
  run("mkdir -p " .. q(prefix .. "/tmp") .. " " .. q(prefix .. "/logs"))
  local used = used_ports()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  local log = ""
  for _ = 1, 20 do
    local port
    repeat port = math.random(20000, 60000) until not used[port]
    used[port] = true
    write_file(prefix .. "/nginx.conf", make_conf(port, prefix))
    local started = run(NGINX .. " -p " .. q(prefix .. "/") .. " -c " .. q(prefix .. "/nginx.conf") ..
      " -e " .. q(prefix .. "/early.log") .. " >" .. q(prefix .. "/start.log") .. " 2>&1")
    log = (read_file(prefix .. "/start.log") or "") .. (read_file(prefix .. "/early.log") or "") ..
      (read_file(prefix .. "/error.log") or "") .. (read_file(prefix .. "/logs/error.log") or "")
    if started then
      local app = setmetatable({ prefix = prefix, port = port, url = "http://127.0.0.1:" .. port }, App)
      for _ = 1, 200 do
        local status = app:get(ready_path)
        if status and status ~= 0 then return app end
        run("sleep 0.05")
      end
      app:stop()
      error("ngx app: nginx started but does not answer:\n" .. app:error_log(), 0)
    elseif not log:find("in use", 1, true) then
      break
    end
  end
  run("rm -rf " .. q(prefix))
  error("ngx app: nginx failed to start:\n" .. log, 0)
end

local function check_core()
  if not read_file(launch.core_so()) then
    error("ngx app: " .. launch.core_so() .. " is missing; run `make LUA=luajit` first", 0)
  end
end

local function is_root()
  return trim(capture("id -u")) == "0"
end

--- Start nginx. opts: `config` (table handed to the handlers), `ca_file` (for
-- lua_ssl_trusted_certificate in /run_trusted), `owner` (pid whose death stops nginx).
function launch.start(opts)
  opts = opts or {}
  check_core()
  local template = assert(read_file(APP .. "/nginx.conf"), "ngx app: no nginx.conf template")
  local extra = os.getenv("CIO_RESTY_HTTP_PATH")
  extra = (extra and extra ~= "") and (extra .. "/?.lua;") or ""
  return boot(function(port, prefix)
    local config = {}
    for k, v in pairs(opts.config or {}) do config[k] = v end
    config.self = "http://127.0.0.1:" .. port
    return render(template, {
      USER = is_root() and "user root;" or "",
      PREFIX = prefix,
      PREFIX_LUA = string.format("%q", prefix),
      REPO = REPO,
      APP = APP,
      EXTRA_PATH = extra,
      PORT = port,
      OWNER = tostring(opts.owner or 0),
      CA_FILE = opts.ca_file or "/etc/ssl/certs/ca-certificates.crt",
      CONFIG = literal(config),
    })
  end, "/phase/init")
end

--- Start examples/openresty/nginx.conf as a user would, with the checkout's paths, a
-- 127.0.0.1 port and `env NAME=value;` for each entry of opts.env.
function launch.start_example(opts)
  opts = opts or {}
  check_core()
  local text = assert(read_file(REPO .. "/examples/openresty/nginx.conf"), "no examples/openresty/nginx.conf")
  return boot(function(port, prefix)
    local conf = text:gsub("/opt/lua%-customerio", (REPO:gsub("%%", "%%%%")))
    if opts.owner then
      -- the test's own addition: stop when the process that started it is gone
      local watchdog = "init_worker_by_lua_block { require(\"cio_ngx_app\").watch_owner(" .. tonumber(opts.owner) ..
        ", " .. string.format("%q", prefix) .. ", \"/logs/nginx.pid\") }\n    "
      conf = conf:gsub("init_by_lua_block {", function() return watchdog .. "init_by_lua_block {" end, 1)
      conf = conf:gsub('lua_package_path "', function() return 'lua_package_path "' .. APP .. '/?.lua;' end, 1)
    end
    conf = conf:gsub("listen 8080;", "listen 127.0.0.1:" .. port .. ";")
    conf = conf:gsub("worker_processes auto;", "worker_processes 1;")
    conf = conf:gsub("\nenv ([%w_]+);", function(name)
      local v = opts.env and opts.env[name]
      if v == nil then return nil end
      return "\nenv " .. name .. "=" .. v .. ";"
    end)
    if is_root() then conf = "user root;\n" .. conf end
    return conf
  end, "/signup")
end

function App:stop()
  local pid = tonumber(read_file(self.prefix .. "/nginx.pid") or read_file(self.prefix .. "/logs/nginx.pid") or "")
  if pid_alive(pid) then
    run("kill -TERM " .. pid)
    for _ = 1, 100 do
      if not pid_alive(pid) then break end
      run("sleep 0.05")
    end
    if pid_alive(pid) then run("kill -KILL " .. pid .. " 2>/dev/null") end
  end
  if self.prefix:match("^/.+/cio%-ngxapp%.[%w]+$") then run("rm -rf " .. q(self.prefix)) end
end

--- The nginx error log (for failure messages).
function App:error_log()
  return (read_file(self.prefix .. "/error.log") or "") .. (read_file(self.prefix .. "/logs/error.log") or "")
end

local function curl(args)
  local out = os.tmpname()
  local hdr = os.tmpname()
  local res = capture("curl -q -sS --noproxy '*' --max-time 60 -o " .. q(out) .. " -D " .. q(hdr) ..
    " -w '%{http_code}' " .. args .. " 2>&1")
  local body = read_file(out) or ""
  local head = read_file(hdr) or ""
  os.remove(out)
  os.remove(hdr)
  local headers = {}
  for line in head:gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then headers[k:lower()] = v end
  end
  return tonumber(res:match("(%d%d%d)%s*$")), body, headers, res
end

--- GET a path; returns status, body, headers.
function App:get(path)
  return curl(q(self.url .. path))
end

--- POST a scenario; returns the decoded report (raises on a non-200 answer).
function App:run(path, scenario)
  local input = os.tmpname()
  write_file(input, assert(core.json_encode(scenario)))
  local status, body, _, raw = curl("-X POST -H 'Content-Type: application/json' --data-binary @" .. q(input) ..
    " " .. q(self.url .. path))
  os.remove(input)
  if status ~= 200 then
    error("ngx app: POST " .. path .. " answered " .. tostring(status) .. " " .. tostring(raw) .. "\n" ..
      body .. "\n" .. self:error_log():sub(-3000), 2)
  end
  local v, err = core.json_decode(body)
  if v == nil then error("ngx app: bad JSON from " .. path .. ": " .. tostring(err) .. ": " .. body, 2) end
  return v
end

--- GET many paths at once with `curl --parallel`; returns the bodies in order.
function App:parallel(paths, max)
  local dir = trim(capture("mktemp -d"))
  local cfg = {}
  for i, p in ipairs(paths) do
    cfg[#cfg + 1] = "url = " .. string.format("%q", self.url .. p)
    cfg[#cfg + 1] = "output = " .. string.format("%q", dir .. "/" .. i)
  end
  write_file(dir .. "/config", table.concat(cfg, "\n") .. "\n")
  local ok = run("curl -q -sS --noproxy '*' --max-time 120 --parallel --parallel-immediate --parallel-max " ..
    (max or #paths) .. " -K " .. q(dir .. "/config") .. " >" .. q(dir .. "/log") .. " 2>&1")
  local bodies = {}
  for i = 1, #paths do bodies[i] = read_file(dir .. "/" .. i) or "" end
  local log = read_file(dir .. "/log") or ""
  run("rm -rf " .. q(dir))
  return bodies, ok, log
end

return launch
