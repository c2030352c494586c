-- customerio.ratelimit.redis inside nginx (lua-nginx-module, the LuaJIT core of build/luajit):
-- two nginx workers (timers, over cosockets) and plain Lua processes (hiredis) take slots of
-- one budget in one redis-server; every slot, in Redis' clock, stays within the GCRA bound.
-- Also: a phase without cosockets (init_worker) gives kind "phase", and with_fallback then
-- uses the local limiter without reporting an outage; connections come from the worker's pool.
local redis = require("support.redis")
local core = require("customerio.core")
local nginx = require("tools.nginx")

local T, BURST, PER_WORKER, PER_CHILD = 20, 3, 25, 25

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local ROOT = sh("pwd"):gsub("%s+$", "")

local APP = [==[
local R = require("customerio.ratelimit.redis")
local core = require("customerio.core")
local M = {}

function M.init_worker(url, T, burst, n)
  local dict = ngx.shared.results
  local id = ngx.worker.id()
  local b = R.new(url, { timeout = 2000 })
  -- init_worker has no cosockets: the backend says so, the fallback limits locally.
  local w, over, err = b:reserve("phase", 10, 1, 0)
  local local_calls, reports = 0, 0
  local fb = R.with_fallback(b, {
    reserve = function() local_calls = local_calls + 1 return 0 end,
    penalize = function() return true end,
  }, function() reports = reports + 1 end)
  local fw = fb:reserve("phase", 10, 1, 0)
  dict:set("phase:" .. id, core.json_encode({ wait = w or false, over = over or false,
    kind = err and err.kind or false, message = err and tostring(err) or false,
    fallback_wait = fw, local_calls = local_calls, reports = reports, down = fb:is_down() }))
  assert(ngx.timer.at(0, function(premature)
    if premature then return end
    while not dict:get("go") do
      if ngx.worker.exiting() then return end
      ngx.sleep(0.01)
    end
    local slots = {}
    while #slots < n do
      local granted, wait_us, now_us = b:reserve_detail("shared", T, burst, 2 * T)
      if granted == nil then
        dict:set("error:" .. id, tostring(wait_us))
        return
      end
      if granted then
        slots[#slots + 1] = string.format("%.0f", now_us + wait_us)
        ngx.sleep(wait_us / 1e6)
      else
        ngx.sleep(T / 2000)
      end
    end
    dict:set("slots:" .. id, table.concat(slots, " "))
  end))
end

local backends = {}

function M.content()
  local dict = ngx.shared.results
  if ngx.var.uri == "/reserve" then
    -- In a request (content phase), with the URL given: AUTH and SELECT over cosockets.
    local args = ngx.req.get_uri_args()
    local b = backends[args.url] or R.new(args.url, { retry_ms = 0 })
    backends[args.url] = b
    local wait, over, err = b:reserve(args.key, 100000, 1, 0)
    ngx.header["Content-Type"] = "application/json"
    return ngx.print(core.json_encode({ wait = wait or false, over = over or false,
      err = err and tostring(err) or false }))
  end
  if ngx.var.uri == "/go" then
    dict:set("go", true)
    return ngx.say("go")
  end
  local out = { phase = {}, slots = {}, errors = {} }
  for _, key in ipairs(dict:get_keys(0)) do
    local what, id = key:match("^(%a+):(%d+)$")
    if what == "phase" then out.phase[#out.phase + 1] = core.json_decode(dict:get(key)) end
    if what == "slots" then out.slots[id + 1] = dict:get(key) end
    if what == "error" then out.errors[#out.errors + 1] = dict:get(key) end
  end
  out.slots = { out.slots[1] or false, out.slots[2] or false }
  ngx.header["Content-Type"] = "application/json"
  ngx.print(core.json_encode(out))
end

return M
]==]

local CONF = [==[
{{USER}}
daemon on;
master_process on;
worker_processes 2;
pid "{{PREFIX}}/nginx.pid";
error_log "{{PREFIX}}/error.log" warn;
load_module {{MODULES}}/ndk_http_module.so;
load_module {{MODULES}}/ngx_http_lua_module.so;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path "{{PREFIX}}/tmp/body";
    proxy_temp_path "{{PREFIX}}/tmp/proxy";
    fastcgi_temp_path "{{PREFIX}}/tmp/fastcgi";
    uwsgi_temp_path "{{PREFIX}}/tmp/uwsgi";
    scgi_temp_path "{{PREFIX}}/tmp/scgi";
    lua_package_path "{{ROOT}}/lua/?.lua;{{ROOT}}/lua/?/init.lua;{{PREFIX}}/?.lua;/usr/share/lua/5.1/?.lua;;";
    lua_package_cpath "{{ROOT}}/build/luajit/?.so;;";
    lua_socket_log_errors off;
    lua_shared_dict results 1m;
    init_worker_by_lua_block { require("rlapp").init_worker("{{REDIS}}", {{T}}, {{BURST}}, {{N}}) }
    server {
        listen 127.0.0.1:{{PORT}};
        location / { content_by_lua_block { require("rlapp").content() } }
    }
}
]==]

local function window_violation(slots, T_us, burst)
  table.sort(slots)
  for i = 1, #slots do
    for j = i + 1, #slots do
      if j - i + 1 > burst + math.floor((slots[j] - slots[i]) / T_us) then
        return string.format("%d grants within %d µs", j - i + 1, slots[j] - slots[i])
      end
    end
  end
end

local has_nginx_lua = io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
local has_luajit_core = io.open(ROOT .. "/build/luajit/customerio/core.so") ~= nil
local describe_ngx = describe
if not redis.available() then
  describe_ngx = function(name) pending(name .. ": " .. redis.MISSING) end
elseif not has_nginx_lua then
  describe_ngx = function(name) pending(name .. ": nginx with the Lua module (libnginx-mod-http-lua) is not installed") end
elseif not has_luajit_core then
  describe_ngx = function(name) pending(name .. ": build/luajit is not built (make LUA=luajit)") end
end

describe_ngx("customerio.ratelimit.redis in nginx", function()
  local srv, app

  setup(function()
    srv = redis.start()
    app = nginx.start({ name = "cio-rlngx", template_text = CONF, files = { ["rlapp.lua"] = APP },
      vars = { REDIS = srv.url, T = T, BURST = BURST, N = PER_WORKER }, ready = "/results" })
  end)

  teardown(function()
    if app then app:stop() end
    if srv then srv:stop() end
  end)

  local function results()
    local body = sh("curl -q -s --noproxy '*' --max-time 30 " .. q(app.url .. "/results"))
    return core.json_decode(body) or error("bad reply: " .. body .. "\n" .. app:error_log())
  end

  local function connections_received()
    return tonumber(srv:cli("INFO", "stats"):match("total_connections_received:(%d+)"))
  end

  it("two workers and plain Lua processes share one budget", function()
    local children = { { "lua5.4", ROOT .. "/build/5.4/?.so;;" }, { "luajit", ROOT .. "/build/luajit/?.so;;" } }
    for i = #children, 1, -1 do
      local dir = children[i][1] == "luajit" and "luajit" or "5.4"
      if not io.open(ROOT .. "/build/" .. dir .. "/customerio/core.so") then table.remove(children, i) end
    end
    local child = [[
      local R = require("customerio.ratelimit.redis")
      local core = require("customerio.core")
      local T, burst, n = tonumber(os.getenv("T")), tonumber(os.getenv("BURST")), tonumber(os.getenv("N"))
      local b = R.new(os.getenv("URL"))
      local got = 0
      while got < n do
        local granted, wait_us, now_us = b:reserve_detail("shared", T, burst, 2 * T)
        if granted == nil then io.stderr:write(tostring(wait_us), "\n") os.exit(3) end
        if granted then
          got = got + 1
          io.write(string.format("G %.0f\n", now_us + wait_us))
          core.sleep_ms(wait_us / 1000)
        else
          core.sleep_ms(T / 2)
        end
      end
    ]]
    local before = connections_received()
    local lua_path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;"
    local cmds = { "curl -q -s --noproxy '*' --max-time 30 " .. q(app.url .. "/go") .. " >/dev/null" }
    local tmp = os.tmpname()
    for i, c in ipairs(children) do
      cmds[#cmds + 1] = "LUA_PATH=" .. q(lua_path) .. " LUA_CPATH=" .. q(c[2]) .. " URL=" .. q(srv.url) ..
        " T=" .. T .. " BURST=" .. BURST .. " N=" .. PER_CHILD .. " " .. c[1] .. " -e " .. q(child) ..
        " >" .. q(tmp .. "." .. i) .. " 2>&1 &"
    end
    os.execute(table.concat(cmds, "\n") .. "\nwait")
    local slots = {}
    for i = 1, #children do
      local f = assert(io.open(tmp .. "." .. i))
      local out = f:read("*a")
      f:close()
      os.remove(tmp .. "." .. i)
      local n = 0
      for g in out:gmatch("G (%d+)") do
        slots[#slots + 1] = tonumber(g)
        n = n + 1
      end
      assert.are.equal(PER_CHILD, n, children[i][1] .. ": " .. out)
    end
    os.remove(tmp)
    local res
    for _ = 1, 300 do
      res = results()
      if #res.errors > 0 or (res.slots[1] and res.slots[2]) then break end
      sh("sleep 0.1")
    end
    assert.are.same({}, res.errors)
    for w = 1, 2 do
      assert.is_string(res.slots[w], "worker " .. (w - 1) .. " did not finish")
      local n = 0
      for g in res.slots[w]:gmatch("%d+") do
        slots[#slots + 1] = tonumber(g)
        n = n + 1
      end
      assert.are.equal(PER_WORKER, n)
    end
    assert.are.equal(2 * PER_WORKER + #children * PER_CHILD, #slots)
    assert.is_nil(window_violation(slots, T * 1000, BURST))
    -- One connection per worker (taken from and given back to its pool for every reservation)
    -- and one per plain process; the last 1 is this INFO's own redis-cli.
    assert.is_true(connections_received() - before - 1 <= 2 + #children)
  end)

  it("authenticates and selects the database over cosockets, also on pooled connections", function()
    local locked = redis.start({ password = "ngx-pw" })
    local ok, err = pcall(function()
      local function reserve(url, key)
        local body = sh("curl -q -s --noproxy '*' --max-time 30 " ..
          q(app.url .. "/reserve?key=" .. key .. "&url=" .. core.uri_encode(url)))
        return core.json_decode(body) or error("bad reply: " .. body)
      end
      local good = "redis://:ngx-pw@127.0.0.1:" .. locked.port .. "/3"
      -- Four requests: each worker's first one authenticates, later ones may reuse the pool.
      for i = 1, 4 do
        local r = reserve(good, "auth" .. i)
        assert.are.equal(0, r.wait, r.err)
      end
      local keys = {}
      for k in locked:cli("-n", "3", "KEYS", "auth*"):gmatch("%S+") do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "auth1", "auth2", "auth3", "auth4" }, keys)
      -- The same budget again: over max_wait, nothing reserved.
      local r = reserve(good, "auth1")
      assert.is_false(r.wait)
      assert.is_true(r.over > 0)
      r = reserve("redis://:wrong@127.0.0.1:" .. locked.port .. "/3", "auth5")
      assert.is_false(r.wait)
      assert.truthy(r.err:find("WRONGPASS", 1, true), r.err)
      assert.falsy(r.err:find("wrong", 1, true))
      r = reserve("redis://127.0.0.1:" .. locked.port .. "/3", "auth5")
      assert.truthy(r.err:find("NOAUTH", 1, true), r.err)
    end)
    locked:stop()
    assert(ok, err)
  end)

  it("a phase without cosockets gives kind \"phase\"; the fallback limits locally and reports nothing", function()
    local res = results()
    assert.are.equal(2, #res.phase)
    for _, p in ipairs(res.phase) do
      assert.is_false(p.wait)
      assert.is_false(p.over)
      assert.are.equal("phase", p.kind)
      assert.truthy(p.message:find("init_worker phase", 1, true), p.message)
      assert.are.equal(0, p.fallback_wait)
      assert.are.equal(1, p.local_calls)
      assert.are.equal(0, p.reports)
      assert.is_false(p.down)
    end
  end)
end)
