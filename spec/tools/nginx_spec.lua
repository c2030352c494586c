-- tools/nginx.lua, the one nginx launcher: it starts what the specs, benchmarks and sandbox
-- need, and stops everything it started, also when its own set-up fails half-way or when the
-- process that owns the nginx dies. "Stopped" is checked on the processes themselves (/proc).
local nginx = require("tools.nginx")

local CONF = [[
{{USER}}
daemon on;
worker_processes 1;
pid "{{PREFIX}}/nginx.pid";
error_log "{{PREFIX}}/error.log" warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path "{{PREFIX}}/tmp/body";
    proxy_temp_path "{{PREFIX}}/tmp/proxy";
    fastcgi_temp_path "{{PREFIX}}/tmp/fastcgi";
    uwsgi_temp_path "{{PREFIX}}/tmp/uwsgi";
    scgi_temp_path "{{PREFIX}}/tmp/scgi";
    server {
        listen 127.0.0.1:{{PORT}};
        location / { return 200 "{{GREETING}} {{PORT2}}"; }
    }
}
]]

local function sh(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function get(url)
  return sh("curl -q -s --noproxy '*' --max-time 5 " .. url)
end

local function alive(pid)
  local f = pid and io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local st = f:read("*a"):match("%)%s+(%a)")
  f:close()
  return st ~= "Z" and st ~= "X"
end

local function is_dir(path)
  return sh("[ -d '" .. path .. "' ] && echo yes") == "yes"
end

-- The master and its workers, while they run.
local function processes(inst)
  local master = inst:pid()
  local list = { master }
  for pid in sh("pgrep -P " .. master):gmatch("%d+") do list[#list + 1] = tonumber(pid) end
  return list
end

local function all_gone(pids)
  for _, pid in ipairs(pids) do
    if alive(pid) then return false end
  end
  return true
end

describe("tools/nginx.lua", function()
  it("renders the template into a fresh prefix, starts nginx on free ports and stops it", function()
    local inst = nginx.start({ template_text = CONF, ports = 2, vars = { GREETING = "hello" }, ready = "/" })
    assert.are.equal(2, #inst.ports)
    assert.are_not.equal(inst.ports[1], inst.ports[2])
    assert.are.equal("http://127.0.0.1:" .. inst.port, inst.url)
    assert.are.equal("hello " .. inst.ports[2], get(inst.url .. "/"))
    assert.matches("listen 127.0.0.1:" .. inst.port, assert(io.open(inst.prefix .. "/nginx.conf")):read("*a"), 1, true)
    local pids = processes(inst)
    assert.is_true(#pids >= 2) -- master and worker
    inst:stop()
    assert.is_true(all_gone(pids))
    assert.is_false(is_dir(inst.prefix))
    assert.are.equal("", get(inst.url .. "/"))
    inst:stop() -- twice is fine
  end)

  it("gives vars functions the picked ports and builds whole configs with conf", function()
    local inst = nginx.start({ ready = "/", conf = function(ctx)
      return (CONF:gsub("{{(%w+)}}", { USER = ctx.user, PREFIX = ctx.prefix, PORT = ctx.port, GREETING = "built",
        PORT2 = "p" .. ctx.port }))
    end })
    finally(function() inst:stop() end)
    assert.are.equal("built p" .. inst.port, get(inst.url .. "/"))
  end)

  it("refuses a template placeholder without a value, and leaves nothing behind", function()
    local before = sh("ls -d ${TMPDIR:-/tmp}/cio-nginxspec.* 2>/dev/null")
    local ok, err = pcall(nginx.start, { name = "cio-nginxspec", template_text = CONF, vars = { GREETING = "x" } })
    assert.is_false(ok)
    assert.matches("no value for {{PORT2}}", err, 1, true)
    assert.are.equal(before, sh("ls -d ${TMPDIR:-/tmp}/cio-nginxspec.* 2>/dev/null"))
  end)

  it("stops the nginx it started when set-up fails after the start", function()
    local seen
    local ok, err = pcall(nginx.start, { template_text = CONF, ports = 2, vars = { GREETING = "x" }, timeout = 0.3,
      ready = function(inst)
        seen = seen or { prefix = inst.prefix, pids = processes(inst) }
        return false
      end })
    assert.is_false(ok)
    assert.matches("not ready on http://127.0.0.1:%d+ within 0.3 s", err)
    assert.is_truthy(seen)
    assert.is_true(alive(seen.pids[1]) == false and all_gone(seen.pids))
    assert.is_false(is_dir(seen.prefix))
    assert.are.equal("", sh("pgrep -f '^nginx: master process .*" .. seen.prefix .. "'"))
  end)

  it("stops and cleans up when prepare raises", function()
    local prefix
    local ok, err = pcall(nginx.start, { template_text = CONF, prepare = function(p)
      prefix = p
      error("no certificates today", 0)
    end })
    assert.is_false(ok)
    assert.are.equal("no certificates today", err)
    assert.is_false(is_dir(prefix))
  end)

  it("reports nginx's own error when the port is taken, and leaves nothing behind", function()
    local first = nginx.start({ template_text = CONF, ports = 2, vars = { GREETING = "one" }, ready = "/" })
    finally(function() first:stop() end)
    local ok, err = pcall(nginx.start, { name = "cio-nginxspec", template_text = CONF,
      ports = { first.port, first.ports[2] }, vars = { GREETING = "two" } })
    assert.is_false(ok)
    assert.matches("failed to start", err, 1, true)
    assert.matches("in use", err, 1, true)
    assert.are.equal("", sh("ls -d ${TMPDIR:-/tmp}/cio-nginxspec.* 2>/dev/null"))
    assert.are.equal("one " .. first.ports[2], get(first.url .. "/")) -- the first one is untouched
  end)

  it("stops nginx when its owner process dies", function()
    local owner = tonumber(sh("sleep 300 >/dev/null 2>&1 & echo $!"))
    local inst = nginx.start({ template_text = CONF, ports = 2, vars = { GREETING = "x" }, ready = "/",
      owner = owner, detached = true })
    finally(function() inst:stop() end)
    local pids = processes(inst)
    os.execute("kill -KILL " .. owner)
    -- the watcher polls once a second; allow for a loaded machine
    for _ = 1, 300 do
      if all_gone(pids) and not is_dir(inst.prefix) then break end
      os.execute("sleep 0.1")
    end
    assert.is_true(all_gone(pids))
    assert.is_false(is_dir(inst.prefix))
  end)

  it("only stops prefixes it made", function()
    local dir = sh("mktemp -d")
    assert.is_false(nginx.stop(dir))
    assert.is_true(is_dir(dir))
    os.execute("rm -rf '" .. dir .. "'")
    assert.is_false(nginx.stop(nil))
  end)

  it("has a command line for shell callers", function()
    local template = os.tmpname()
    local f = assert(io.open(template, "w"))
    f:write(CONF)
    f:close()
    local lua = "lua5.4 " .. nginx.root .. "/tools/nginx.lua"
    local out = sh(lua .. " start --ports 2 --ready / " .. template .. " GREETING=shell 2>&1")
    os.remove(template)
    local prefix = out:match("NGINX_PREFIX='([^']+)'")
    local url = out:match("NGINX_URL='([^']+)'")
    local port2 = out:match("NGINX_PORT2=(%d+)")
    assert.is_truthy(prefix, out)
    assert.are.equal("shell " .. port2, get(url .. "/"))
    local pid = tonumber(out:match("NGINX_PID=(%d+)"))
    assert.is_true(alive(pid))
    sh(lua .. " stop " .. prefix)
    assert.is_false(alive(pid))
    assert.is_false(is_dir(prefix))
    assert.matches("usage: nginx.lua start", sh(lua .. " start 2>&1"), 1, true)
  end)
end)
