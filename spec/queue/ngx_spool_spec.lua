-- customerio.queue.ngx with a spool inside a real nginx (2 workers, one lane each): operations
-- spooled while Customer.io is unreachable are handed over across `nginx -s reload` (the new
-- workers adopt the lanes the old ones release) and `quit`, and a restarted nginx delivers them
-- all once the server answers. nginx is started by tools/nginx.lua, as in ngx_spec.lua.
local server = require("support.server")
local core = require("customerio.core")

local nginx = require("tools.nginx")

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local APP = [==[
local M = {}
local customerio = require("customerio")
local queue_ngx = require("customerio.queue.ngx")
local core = require("customerio.core")

function M.init_worker(upstream, spool)
  local track = customerio.TrackClient.new("site_s", "spoolkey", {
    url = upstream .. "/api/v1", retry = { max_retries = 1, min_timeout = 1, max_timeout = 5 },
  })
  M.q = queue_ngx.new(track, { flush_interval = 50, stats_dict = "cio_stats", spool = spool,
    on_error = function() end })
end

function M.content()
  local args = ngx.req.get_uri_args()
  local what = ngx.var.uri:match("^/(%w+)")
  local out
  if what == "enqueue" then
    local n = 0
    for i = 1, tonumber(args.n) do
      if M.q:track(args.prefix .. i, "e", { i = i }) then n = n + 1 end
    end
    out = { ok = n }
  elseif what == "stats" then
    out = { stats = M.q:stats() }
  else
    ngx.status = 404
    return
  end
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
events { worker_connections 1024; }
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
    lua_shared_dict cio_stats 1m;
    init_worker_by_lua_block { require("sapp").init_worker("{{UPSTREAM}}", "{{SPOOL}}") }
    server {
        listen 127.0.0.1:{{PORT}};
        location / { content_by_lua_block { require("sapp").content() } }
    }
}
]==]

local function start(upstream, spool)
  return nginx.start({ name = "cio-qspool", template_text = CONF, files = { ["sapp.lua"] = APP },
    vars = { UPSTREAM = upstream, SPOOL = spool }, ready = "/stats" })
end

local function get(app, path)
  local body = sh("curl -q -s --noproxy '*' --max-time 30 " .. q(app.url .. path))
  return core.json_decode(body) or error("bad reply from " .. path .. ": " .. body)
end

-- Poll until f() is true (up to `seconds`).
local function eventually(seconds, f)
  for _ = 1, seconds * 20 do
    if f() then return true end
    sh("sleep 0.05")
  end
  return f()
end

local function received_ids()
  local ids, n = {}, 0
  for _, r in ipairs(server.requests("/api/v2/batch")) do
    for _, op in ipairs(core.json_decode(r.body).batch) do
      local id = op.identifiers and op.identifiers.id
      if id and not ids[id] then
        ids[id] = op.id
        n = n + 1
      elseif id then
        assert.are.equal(ids[id], op.id) -- a replayed event keeps its id
      end
    end
  end
  return ids, n
end

local function logs(dir)
  return sh("ls " .. q(dir) .. " | grep -c '\\.log$' || true"):match("%d+")
end

local has_nginx_lua = io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
local describe_ngx = has_nginx_lua and describe or pending

describe_ngx("customerio.queue.ngx spool", function()
  it("hands spooled operations over across reload and quit; a restart delivers them all", function()
    local dir = os.tmpname()
    os.remove(dir)
    server.reset()
    local app = start("http://127.0.0.1:1", dir) -- nothing listens: nothing is delivered
    local ok, err = pcall(function()
      for _, prefix in ipairs({ "a", "b" }) do assert.are.equal(50, get(app, "/enqueue?prefix=" .. prefix .. "&n=50").ok) end
      -- reload: the old workers release their lanes at exit, the new ones adopt them
      sh("kill -HUP " .. app:pid())
      assert.is_true(eventually(30, function()
        return get(app, "/stats").stats.all.replayed >= 100
      end), "the new workers did not adopt the spooled operations: " .. app:error_log())
      assert.are.equal(100, get(app, "/stats").stats.all.replayed)
      assert.are.equal(50, get(app, "/enqueue?prefix=c&n=50").ok)
      assert.are.equal(0, server.count())
    end)
    local log = app:stop("QUIT") -- quit: what is left stays in the lanes
    assert(ok, tostring(err) .. "\n" .. log)
    assert.are.equal(0, server.count())
    assert.is_true(tonumber(logs(dir)) > 0)

    app = start(server.url(), dir) -- restart, the server answers now
    ok, err = pcall(function()
      assert.is_true(eventually(30, function()
        local _, n = received_ids()
        return n >= 150
      end), "not everything was delivered after the restart")
      local ids, n = received_ids()
      assert.are.equal(150, n)
      for _, prefix in ipairs({ "a", "b", "c" }) do
        for i = 1, 50 do assert.is_string(ids[prefix .. i], prefix .. i .. " never arrived") end
      end
    end)
    log = app:stop("QUIT")
    assert(ok, tostring(err) .. "\n" .. log)
    -- everything acknowledged: the workers deleted their segments when they exited
    assert.are.equal("0", logs(dir))
    sh("rm -rf " .. q(dir))
  end)

  it("a spool directory that cannot be used fails new() with the path and the reason", function()
    local file = os.tmpname()
    local app = start("http://127.0.0.1:1", file .. "/spool")
    -- nginx starts; init_worker's new() raised, so the queue does not exist: /stats fails
    sh("sleep 0.2")
    local log = app:error_log()
    app:stop()
    os.remove(file)
    assert.is_truthy(log:find("spool: cannot create directory " .. file .. "/spool: Not a directory", 1, true), log)
  end)
end)
