--- The one nginx launcher of the repository: the test server (spec/support/server.lua), the
-- nginx specs (spec/support/ngx_app, spec/queue/ngx_spec.lua, spec/sandbox_spec.lua), the
-- benchmarks' responder (bench/) and `make sandbox` (tools/sandbox) all start nginx here.
-- Plain Lua (5.1, 5.4, LuaJIT); uses the nginx, curl, mktemp and sh commands.
--
--   local nginx = require("tools.nginx")     -- the repository root is on the specs' LUA_PATH
--   local inst = nginx.start({
--     template = "/path/nginx.conf",   -- config with {{NAME}} placeholders (or template_text = "...",
--                                      -- or conf = function(ctx) return text end; ctx: prefix, ports, port)
--     vars = {...} or function(ctx) return {...} end,   -- placeholder values besides the built-in ones
--     ports = 1,                       -- how many free 127.0.0.1 ports to pick, or a list of fixed ones
--     files = { ["app.lua"] = text },  -- written into the prefix before nginx starts
--     prepare = function(prefix) end, -- runs once before nginx starts (certificates ...)
--     ready = "/path",                 -- GET it until nginx answers (any status), or function(inst) -> bool
--     timeout = 10,                    -- seconds to wait for ready
--     name = "cio-nginx",              -- the prefix is a fresh $TMPDIR/NAME.XXXXXXXX
--     owner = pid,                     -- nginx stops when this process dies (default: this process; 0: none)
--     detached = true,                 -- do not stop it when this Lua process exits
--   })
--   inst.prefix, inst.port, inst.ports, inst.url ("http://127.0.0.1:PORT"), inst:pid()
--   inst:stop([signal])  stops nginx ("TERM", or "QUIT" to let workers finish), removes the prefix,
--                        returns the error log; safe to call twice
--   inst:error_log()
--   nginx.stop(prefix [, signal])    the same for a prefix made by this launcher (others: false)
--
-- Built-in placeholders: {{PREFIX}}, {{PREFIX_LUA}} (a Lua string literal), {{USER}} ("user root;"
-- when run as root), {{MODULES}} (nginx's module directory), {{ROOT}} (this repository),
-- {{PORT}}, {{PORT2}}, {{PORT3}} ... The config must daemonize and write its pid to
-- PREFIX/nginx.pid or PREFIX/logs/nginx.pid.
--
-- What is started is always stopped: a failed start (bad template, nginx error, no answer)
-- stops nginx and removes the prefix before raising; live instances stop when the Lua state
-- closes or os.exit is called (unless detached); and a watcher process (sh, in its own
-- session) stops nginx when the owner dies, however it dies.
--
-- Command line, for shell callers:
--   lua5.4 tools/nginx.lua start [--owner PID] [--name NAME] [--ports N | --port P] [--ready PATH]
--                                TEMPLATE [NAME=VALUE ...]
--       prints shell assignments: NGINX_PREFIX=... NGINX_PORT=... NGINX_URL=... NGINX_PID=...
--       (for `eval`); nginx keeps running after this command, until `stop` or the owner's death
--   lua5.4 tools/nginx.lua stop PREFIX [QUIT]

local nginx = {}

local REGISTRY_KEY = "lua-customerio.tools.nginx"
local MARKER = ".cio-nginx-launcher"

local function env(...)
  for _, name in ipairs({ ... }) do
    local v = os.getenv(name)
    if v and v ~= "" then return v end
  end
end

-- Loaded by its path next to this file: the command line runs without the specs' LUA_PATH.
local shell = dofile((debug.getinfo(1, "S").source:match("^@(.-)[^/]*$") or "tools/") .. "shell.lua")
local q, capture, run, trim = shell.q, shell.capture, shell.run, shell.trim
local read_file, write_file, sleep, exists = shell.read_file, shell.write_file, shell.sleep, shell.exists

local NGINX = env("CIO_NGINX", "CIO_TEST_NGINX") or (exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or "nginx"
local MODULES = env("CIO_NGINX_MODULES", "CIO_TEST_NGINX_MODULES") or "/usr/lib/nginx/modules"

-- The repository: this file is tools/nginx.lua.
local ROOT = shell.script_dir("tools/nginx.lua"):gsub("/tools$", "")
nginx.root, nginx.modules, nginx.bin = ROOT, MODULES, NGINX

-- Live instances, kept in the registry: busted's insulation drops modules from package.loaded
-- between spec files, and the exit hooks must find every instance whichever copy started it.
local registry = debug.getregistry()
local function live()
  local s = registry[REGISTRY_KEY]
  if not s then
    s = { instances = {} }
    registry[REGISTRY_KEY] = s
  end
  return s
end

local function my_pid()
  -- The shell run by io.popen is our child: its parent is this process.
  return tonumber(trim(capture("echo $PPID")))
end

-- A zombie counts as gone (daemonized nginx is reparented to an init that may reap late).
local function pid_alive(pid)
  if not pid then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  local st = stat:match("%)%s+(%a)")
  return st ~= "Z" and st ~= "X"
end

local function master_pid(prefix)
  return tonumber(read_file(prefix .. "/nginx.pid") or read_file(prefix .. "/logs/nginx.pid") or "")
end

local function listening_ports()
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

local function pick_ports(n)
  local used = listening_ports()
  local ports = {}
  while #ports < n do
    local p = math.random(20000, 60000)
    if not used[p] then
      used[p] = true
      ports[#ports + 1] = p
    end
  end
  return ports
end

--- `n` random ports in 20000..60000 that nothing on this machine listens on (also used by
-- spec/support/redis.lua).
nginx.pick_ports = pick_ports

local function render(template, vars, where)
  return (template:gsub("{{([%w_]+)}}", function(name)
    local v = vars[name]
    if v == nil then error("nginx: no value for {{" .. name .. "}} in " .. where, 0) end
    return tostring(v)
  end))
end

--- Stops the nginx running in `prefix` and removes the prefix. Only prefixes made by this
-- launcher are touched (they hold a marker file); returns the error log, or false.
function nginx.stop(prefix, signal)
  if type(prefix) ~= "string" or not exists(prefix .. "/" .. MARKER) then return false end
  local pid = master_pid(prefix)
  if pid_alive(pid) then
    run("kill -" .. (signal or "TERM") .. " " .. pid .. " 2>/dev/null")
    for _ = 1, 200 do
      if not pid_alive(pid) then break end
      sleep(0.05)
    end
    if pid_alive(pid) then
      -- Workers outlive a killed master: kill them first.
      run("pkill -KILL -P " .. pid .. " 2>/dev/null; kill -KILL " .. pid .. " 2>/dev/null")
    end
  end
  local log = (read_file(prefix .. "/error.log") or "") .. (read_file(prefix .. "/logs/error.log") or "")
  run("rm -rf " .. q(prefix))
  live().instances[prefix] = nil
  return log
end

local function stop_all()
  for prefix, inst in pairs(live().instances) do nginx.stop(prefix, inst.signal) end
end

local function install_exit_hooks(s)
  if s.sentinel then return end
  -- __gc on a sentinel runs when the Lua state closes (5.4, LuaJIT, and 5.1's lua.c on normal
  -- end); os.exit without close (5.1) skips that, so os.exit is wrapped as well.
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

-- A watcher in its own session (terminal signals do not reach it): while the prefix exists
-- and the owner lives, it sleeps; when the owner is gone it stops nginx and removes the prefix.
local WATCHER = [[
trap '' INT HUP
while [ -d "$1" ] && kill -0 "$2" 2>/dev/null; do sleep 1; done
[ -f "$1/]] .. MARKER .. [[" ] || exit 0
for f in "$1/nginx.pid" "$1/logs/nginx.pid"; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
sleep 1
rm -rf "$1"
]]

local function watch(prefix, owner)
  local setsid = run("command -v setsid >/dev/null 2>&1") and "setsid " or ""
  run(setsid .. "sh -c " .. q(WATCHER) .. " cio-nginx-watcher " .. q(prefix) .. " " .. owner ..
    " </dev/null >/dev/null 2>&1 &")
end

local Instance = {}
Instance.__index = Instance

function Instance:pid()
  return master_pid(self.prefix)
end

function Instance:error_log()
  return (read_file(self.prefix .. "/error.log") or "") .. (read_file(self.prefix .. "/logs/error.log") or "")
end

function Instance:stop(signal)
  if self.stopped then return self.log end
  self.stopped = true
  self.log = nginx.stop(self.prefix, signal or self.signal) or ""
  return self.log
end

local function answers(url)
  local code = trim(capture("curl -q -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' " ..
    q(url) .. " 2>/dev/null"))
  return code ~= "" and code ~= "000"
end

local function boot(self, opts)
  for name, text in pairs(opts.files or {}) do write_file(self.prefix .. "/" .. name, text) end
  if opts.prepare then opts.prepare(self.prefix) end
  local template = opts.template_text
  if opts.template then
    template = read_file(opts.template) or error("nginx: cannot read " .. opts.template, 0)
  end
  if not template and not opts.conf then error("nginx: template, template_text or conf is required", 0) end
  local fixed = type(opts.ports) == "table" and opts.ports or nil
  local is_root = trim(capture("id -u")) == "0"
  local log = ""
  for _ = 1, fixed and 1 or 20 do
    self.ports = fixed or pick_ports(opts.ports or 1)
    self.port = self.ports[1]
    self.url = "http://127.0.0.1:" .. self.port
    local ctx = { prefix = self.prefix, ports = self.ports, port = self.port, user = is_root and "user root;" or "" }
    local conf
    if opts.conf then
      conf = opts.conf(ctx)
    else
      local vars = {
        PREFIX = self.prefix, PREFIX_LUA = string.format("%q", self.prefix), USER = is_root and "user root;" or "",
        MODULES = MODULES, ROOT = ROOT, PORT = self.port,
      }
      for i = 2, #self.ports do vars["PORT" .. i] = self.ports[i] end
      local extra = opts.vars
      if type(extra) == "function" then extra = extra(ctx) end
      for k, v in pairs(extra or {}) do vars[k] = v end
      conf = render(template, vars, opts.template or "the template")
    end
    write_file(self.prefix .. "/nginx.conf", conf)
    for _, name in ipairs({ "start.log", "early.log", "error.log" }) do os.remove(self.prefix .. "/" .. name) end
    local started = run(NGINX .. " -p " .. q(self.prefix .. "/") .. " -c " .. q(self.prefix .. "/nginx.conf") ..
      " -e " .. q(self.prefix .. "/early.log") .. " >" .. q(self.prefix .. "/start.log") .. " 2>&1")
    log = (read_file(self.prefix .. "/start.log") or "") .. (read_file(self.prefix .. "/early.log") or "") ..
      self:error_log()
    if started then
      local ready = opts.ready
      local check = type(ready) == "function" and ready or function()
        if ready then return answers(self.url .. ready) end
        return pid_alive(self:pid())
      end
      local polls = math.ceil((opts.timeout or 10) / 0.05)
      for _ = 1, polls do
        if check(self) then return end
        sleep(0.05)
      end
      error("nginx: started but not ready on " .. self.url .. " within " .. (opts.timeout or 10) .. " s\n" ..
        self:error_log(), 0)
    elseif fixed or not log:find("in use", 1, true) then
      break
    end
  end
  error("nginx: failed to start:\n" .. log, 0)
end

--- Starts nginx in a fresh prefix (see the top of this file); raises on failure, after
-- stopping whatever it had started.
function nginx.start(opts)
  opts = opts or {}
  local pid = my_pid() or 0
  math.randomseed(os.time() + pid * 1000 + math.floor(os.clock() * 1e6))
  local tmp = env("TMPDIR") or "/tmp"
  local name = opts.name or "cio-nginx"
  local prefix = trim(capture("mktemp -d " .. q(tmp .. "/" .. name .. ".XXXXXXXX")))
  if not prefix:match("^/") then error("nginx: mktemp -d failed", 0) end
  if prefix:find('["\\;{}$]') or ROOT:find('["\\;{}$?]') then
    error("nginx: unsupported characters in " .. prefix .. " or " .. ROOT, 0)
  end
  write_file(prefix .. "/" .. MARKER, "")
  run("mkdir -p " .. q(prefix .. "/tmp") .. " " .. q(prefix .. "/logs"))
  local self = setmetatable({ prefix = prefix, signal = opts.signal }, Instance)
  local owner = opts.owner
  if owner == nil then owner = opts.detached and 0 or pid end
  if (tonumber(owner) or 0) > 1 then watch(prefix, tonumber(owner)) end
  local s = live()
  if not opts.detached then
    install_exit_hooks(s)
    s.instances[prefix] = self
  end
  local ok, err = pcall(boot, self, opts)
  if not ok then
    self:stop()
    error(err, 0)
  end
  return self
end

-- Command line ---------------------------------------------------------------------------------

local argv = { ... }
local IS_MAIN = type(arg) == "table" and type(arg[0]) == "string" and arg[0]:match("nginx%.lua$") ~= nil
  and argv[1] == arg[1] and (argv[1] == "start" or argv[1] == "stop")

local function main()
  local usage = "usage: nginx.lua start [--owner PID] [--name NAME] [--ports N | --port P] [--ready PATH] " ..
    "TEMPLATE [NAME=VALUE ...]\n       nginx.lua stop PREFIX [SIGNAL]\n"
  if argv[1] == "stop" then
    if not argv[2] then
      io.stderr:write(usage)
      return 2
    end
    nginx.stop(argv[2], argv[3])
    return 0
  end
  local opts = { detached = true, owner = 0, vars = {} }
  local i = 2
  while argv[i] and argv[i]:sub(1, 2) == "--" do
    local flag, value = argv[i], argv[i + 1]
    if value == nil then
      io.stderr:write(usage)
      return 2
    end
    if flag == "--owner" then opts.owner = tonumber(value)
    elseif flag == "--name" then opts.name = value
    elseif flag == "--ports" then opts.ports = tonumber(value)
    elseif flag == "--port" then opts.ports = { tonumber(value) }
    elseif flag == "--ready" then opts.ready = value
    else
      io.stderr:write("nginx.lua: unknown option " .. flag .. "\n" .. usage)
      return 2
    end
    i = i + 2
  end
  opts.template = argv[i]
  if not opts.template then
    io.stderr:write(usage)
    return 2
  end
  for j = i + 1, #argv do
    local k, v = argv[j]:match("^([%w_]+)=(.*)$")
    if not k then
      io.stderr:write("nginx.lua: expected NAME=VALUE, got " .. argv[j] .. "\n")
      return 2
    end
    opts.vars[k] = v
  end
  local ok, inst = pcall(nginx.start, opts)
  if not ok then
    io.stderr:write(tostring(inst), "\n")
    return 1
  end
  io.write("NGINX_PREFIX=", q(inst.prefix), "\nNGINX_PORT=", inst.port, "\nNGINX_URL=", q(inst.url),
    "\nNGINX_PID=", tostring(inst:pid()), "\n")
  for k = 2, #inst.ports do io.write("NGINX_PORT", k, "=", inst.ports[k], "\n") end
  return 0
end

if IS_MAIN then os.exit(main()) end

return nginx
