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

local nginx = require("tools.nginx")

local shell = require("tools.shell")
local q, capture, run, trim = shell.q, shell.capture, shell.run, shell.trim
local read_file, write_file = shell.read_file, shell.write_file

local APP = shell.script_dir("spec/support/ngx_app/launch.lua")
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

local App = {}
App.__index = App

--- The core .so that nginx's LuaJIT will load.
function launch.core_so()
  return REPO .. "/build/luajit/customerio/core.so"
end

local function check_core()
  if not read_file(launch.core_so()) then
    error("ngx app: " .. launch.core_so() .. " is missing; run `make LUA=luajit` first", 0)
  end
end

-- Starts nginx through tools/nginx.lua; the app is ready once ready_path answers.
local function boot(opts, nginx_opts)
  check_core()
  nginx_opts.name, nginx_opts.owner = "cio-ngxapp", opts.owner
  local ok, inst = pcall(nginx.start, nginx_opts)
  if not ok then error("ngx app: " .. tostring(inst), 0) end
  return setmetatable({ inst = inst, prefix = inst.prefix, port = inst.port, url = inst.url }, App)
end

--- Start nginx. opts: `config` (table handed to the handlers), `ca_file` (for
-- lua_ssl_trusted_certificate in /run_trusted), `owner` (pid whose death stops nginx).
function launch.start(opts)
  opts = opts or {}
  local extra = os.getenv("CIO_RESTY_HTTP_PATH")
  extra = (extra and extra ~= "") and (extra .. "/?.lua;") or ""
  return boot(opts, { template = APP .. "/nginx.conf", ready = "/phase/init", vars = function(ctx)
    local config = {}
    for k, v in pairs(opts.config or {}) do config[k] = v end
    config.self = "http://127.0.0.1:" .. ctx.port
    return {
      REPO = REPO, APP = APP, EXTRA_PATH = extra,
      CA_FILE = opts.ca_file or "/etc/ssl/certs/ca-certificates.crt",
      CONFIG = literal(config),
    }
  end })
end

--- Start examples/openresty/nginx.conf as a user would, with the checkout's paths, a
-- 127.0.0.1 port and `env NAME=value;` for each entry of opts.env.
function launch.start_example(opts)
  opts = opts or {}
  local text = assert(read_file(REPO .. "/examples/openresty/nginx.conf"), "no examples/openresty/nginx.conf")
  return boot(opts, { ready = "/signup", conf = function(ctx)
    local conf = text:gsub("/opt/lua%-customerio", (REPO:gsub("%%", "%%%%")))
    conf = conf:gsub("listen 8080;", "listen 127.0.0.1:" .. ctx.port .. ";")
    conf = conf:gsub("worker_processes auto;", "worker_processes 1;")
    conf = conf:gsub("\nenv ([%w_]+);", function(name)
      local v = opts.env and opts.env[name]
      if v == nil then return nil end
      return "\nenv " .. name .. "=" .. v .. ";"
    end)
    return ctx.user .. "\n" .. conf
  end })
end

function App:stop()
  return self.inst:stop()
end

--- The nginx error log (for failure messages).
function App:error_log()
  return self.inst:error_log()
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
