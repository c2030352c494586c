-- customerio.ratelimit across nginx workers: two workers, one `lua_shared_dict`, one budget.
-- Each worker's init_worker starts a timer that makes 6 App API calls through a client with
-- `rate_limit = { shared_dict = "cio_rl", app = 5 }` (slots 200 ms apart) against the test
-- server. Whatever the order the workers run in, the k-th request the server receives came no
-- earlier than the k-th slot, and the first slot is no earlier than the moment nginx was
-- started: t0 + (k - 1) * 200 ms (less 1 ms: the server's clock is read at ms precision).
local server = require("support.server")
local core = require("customerio.core")
local nginx = require("tools.nginx")

local APP = [==[
local M = {}
function M.init_worker(upstream)
  ngx.timer.at(0, function()
    local customerio = require("customerio")
    local api = customerio.APIClient.new("ngx-rl-key", { url = upstream .. "/v1", retry = false,
      headers = { ["X-Worker"] = tostring(ngx.worker.id()) },
      rate_limit = { shared_dict = "cio_rl", app = 5 } })
    for _ = 1, 6 do
      local res, err = api:list_segments()
      if not res then ngx.log(ngx.ERR, "rl call failed: ", tostring(err)) end
    end
  end)
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
    lua_shared_dict cio_rl 1m;
    init_worker_by_lua_block { require("rlapp").init_worker("{{UPSTREAM}}") }
    server {
        listen 127.0.0.1:{{PORT}};
        location / { return 200 "ok"; }
    }
}
]==]

local has_nginx_lua = io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
local describe_ngx = has_nginx_lua and describe or pending

describe_ngx("customerio.ratelimit with a lua_shared_dict", function()
  it("keeps two nginx workers together to one budget", function()
    server.reset()
    local t0 = core.now_ms()
    local app = nginx.start({ name = "cio-rlngx", template_text = CONF, files = { ["rlapp.lua"] = APP },
      vars = { UPSTREAM = server.url() }, ready = "/" })
    local ok, err = pcall(function()
      server.wait(12, 20000)
      assert.are.equal(12, server.count())
      local got, workers = {}, {}
      for _, r in ipairs(server.requests("/v1/segments")) do
        got[#got + 1] = r.time * 1000
        workers[r.headers["x-worker"]] = true
      end
      table.sort(got)
      assert.are.equal(12, #got)
      assert.is_true(workers["0"] and workers["1"], "both workers sent")
      for k = 1, 12 do
        assert.is_true(got[k] >= t0 + (k - 1) * 200 - 1, "request " .. k .. " came " .. (got[k] - t0) .. " ms after t0")
      end
    end)
    local log = app:stop()
    assert(ok, err)
    assert.is_nil(log:find("rl call failed", 1, true), log)
    assert.is_nil(log:find("unusable", 1, true), log)
  end)
end)
