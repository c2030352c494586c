-- customerio.queue.ngx inside a real nginx (lua-nginx-module + LuaJIT, the C core of
-- build/luajit): enqueue from init_worker, content and log phases, batches flushed by timers
-- over cosockets to the shared test server, bounds, 207 reports, retries, and the final flush
-- when the worker exits. The nginx (inline config, random port) is started by tools/nginx.lua.
local server = require("support.server")
local core = require("customerio.core")

local nginx = require("tools.nginx")

local shell = require("tools.shell")
local q = shell.q

local APP = [==[
local M = {}
local customerio = require("customerio")
local queue_ngx = require("customerio.queue.ngx")
local core = require("customerio.core")
local failures = {}
M.failures = failures

function M.init_worker(upstream, stats_dict)
  local track = customerio.TrackClient.new("site_n", "ngxkey_123", {
    url = upstream .. "/api/v1", retry = { max_retries = 10, min_timeout = 1, max_timeout = 10 },
  })
  M.track = track
  M.q = queue_ngx.new(track, { flush_interval = 50, batch_bytes = 8 * 1024, stats_dict = stats_dict,
    on_error = function(ops, err)
      for i, op in ipairs(ops) do
        local e = err.op_errors and err.op_errors[i] or err
        failures[#failures + 1] = { op = op, status = e.status, reason = e.reason, batch = #ops, count = err.count }
      end
    end })
  assert(M.q:track("init-1", "boot"))
  M.small = queue_ngx.new(track, { max_events = 5, flush_interval = 60000 })
  -- customerio.Queue.new picks the nginx half by itself inside nginx.
  M.late = customerio.Queue.new(track, { flush_interval = 600000 })
  assert(getmetatable(M.late) == getmetatable(M.small), "customerio.Queue.new inside nginx is queue_ngx")
end

local function reply(v)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(core.json_encode(v))
end

function M.enqueue(prefix, n)
  local ok_count = 0
  for i = 1, n do
    if M.q:track(prefix .. i, "e", { i = i }) then ok_count = ok_count + 1 end
  end
  return ok_count
end

function M.content()
  local args = ngx.req.get_uri_args()
  local what = ngx.var.uri:match("^/(%w+)")
  if what == "enqueue" then
    return reply({ ok = M.enqueue(args.prefix, tonumber(args.n)) })
  elseif what == "order" then
    -- people x updates identify operations with a counter, round by round, then flush.
    for u = 1, tonumber(args.updates) do
      for p = 1, tonumber(args.people) do assert(M.q:identify("o" .. p, { counter = u })) end
    end
    local ok, err = M.q:flush(60000)
    return reply({ ok = ok or false, err = err and tostring(err) or nil, stats = M.q:stats() })
  elseif what == "enqflush" then
    -- Enqueue and flush in one handler: no timer runs in between, the flush holds them all.
    local n = M.enqueue(args.prefix, tonumber(args.n))
    local ok, err = M.q:flush(tonumber(args.timeout) or 10000)
    return reply({ n = n, ok = ok or false, err = err and tostring(err) or nil, kind = err and err.kind,
      sent = err and err.sent, failed = err and err.failed, pending = err and err.pending })
  elseif what == "flush" then
    local ok, err = M.q:flush(tonumber(args.timeout) or 10000)
    return reply({ ok = ok or false, err = err and tostring(err) or nil, stats = M.q:stats() })
  elseif what == "stats" then
    return reply({ stats = M.q:stats(), failures = failures })
  elseif what == "small" then
    local res = {}
    for i = 1, 8 do
      local ok, err = M.small:identify("s" .. i)
      res[#res + 1] = ok and "ok" or err.kind
    end
    local big = {}
    for i = 1, 40 do big["k" .. i] = string.rep("x", 900) end
    local ok, err = M.small:identify("big", big)
    res[#res + 1] = ok and "ok" or err.kind
    local s = M.small:stats()
    return reply({ res = res, dropped = s.dropped, rejected = s.rejected })
  elseif what == "late" then
    for i = 1, tonumber(args.n) do assert(M.late:track(args.prefix .. i, "e")) end
    return reply({ ok = tonumber(args.n) })
  elseif what == "log" then
    return reply({ ok = true })
  end
  ngx.status = 404
end

function M.log()
  local args = ngx.req.get_uri_args()
  M.enqueue(args.prefix, tonumber(args.n))
  local ok, err = M.q:flush(10)
  M.log_flush = { ok = ok or false, kind = err and err.kind }
end

function M.log_flush_result()
  return reply(M.log_flush or {})
end

return M
]==]

local CONF = [==[
{{USER}}
daemon on;
master_process on;
worker_processes {{WORKERS}};
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
    init_worker_by_lua_block { require("qapp").init_worker("{{UPSTREAM}}", {{DICT}}) }
    server {
        listen 127.0.0.1:{{PORT}};
        location = /logflush { content_by_lua_block { require("qapp").log_flush_result() } }
        location = /log {
            content_by_lua_block { require("qapp").content() }
            log_by_lua_block { require("qapp").log() }
        }
        location / { content_by_lua_block { require("qapp").content() } }
    }
}
]==]

-- nginx through tools/nginx.lua: a failed start stops what it started before raising.
-- `workers` nginx workers (default 1); with more than one, the queues share totals through
-- the shared dict cio_stats.
local function start(workers)
  return nginx.start({ name = "cio-qngx", template_text = CONF, files = { ["qapp.lua"] = APP },
    vars = { UPSTREAM = server.url(), WORKERS = tostring(workers or 1),
      DICT = workers and workers > 1 and '"cio_stats"' or "nil" }, ready = "/stats" })
end

local function get(app, path)
  local body = shell.capture("curl -q -s --noproxy '*' --max-time 30 " .. q(app.url .. path) .. " 2>&1")
  return core.json_decode(body) or error("bad reply from " .. path .. ": " .. body)
end

-- QUIT: the worker exits gracefully and runs the queue's final flush. Returns the error log.
local function stop(app)
  return app:stop("QUIT")
end

local function ids_received()
  local ids = {}
  for _, r in ipairs(server.requests("/api/v2/batch")) do
    for _, op in ipairs(core.json_decode(r.body).batch) do
      local id = op.identifiers and op.identifiers.id
      if id then ids[id] = (ids[id] or 0) + 1 end
    end
  end
  return ids
end

local has_nginx_lua = io.open("/usr/lib/nginx/modules/ngx_http_lua_module.so") ~= nil
local describe_ngx = has_nginx_lua and describe or pending

describe_ngx("customerio.queue.ngx in nginx", function()
  local app

  setup(function()
    server.reset()
    app = start()
  end)

  teardown(function()
    if app then stop(app) end
  end)

  it("delivers what init_worker, content and log phases enqueue, in v2 batches", function()
    assert.are.equal(100, get(app, "/enqueue?prefix=c&n=100").ok)
    get(app, "/log?prefix=l&n=50")
    local res = get(app, "/flush?timeout=5000")
    assert.is_true(res.ok)
    local lf = get(app, "/logflush")
    assert.are.equal("phase", lf.kind) -- flush cannot wait in the log phase; it was scheduled
    res = get(app, "/flush?timeout=5000")
    assert.is_true(res.ok)
    local ids = ids_received()
    assert.are.equal(1, ids["init-1"])
    for i = 1, 100 do assert.are.equal(1, ids["c" .. i]) end
    for i = 1, 50 do assert.are.equal(1, ids["l" .. i]) end
    local reqs = server.requests("/api/v2/batch")
    assert.is_true(#reqs >= 3) -- 8 KB batches
    for _, r in ipairs(reqs) do
      assert.is_true(#r.body <= 8 * 1024)
      assert.are.equal("Basic " .. core.base64_encode("site_n:ngxkey_123"), r.headers["authorization"])
    end
    local s = res.stats
    assert.are.equal(151, s.enqueued)
    assert.are.equal(151, s.sent)
    assert.are.equal(s.enqueued, s.sent + s.failed + s.queued + s.in_flight)
  end)

  it("is bounded and refuses operations over 32 KB", function()
    local res = get(app, "/small")
    assert.are.same({ "ok", "ok", "ok", "ok", "ok", "queue_full", "queue_full", "queue_full", "too_large" }, res.res)
    assert.are.equal(3, res.dropped)
    assert.are.equal(1, res.rejected)
  end)

  it("retries faults, reports 207 rejections, and delivers each event once", function()
    server.reset()
    server.respond({ status = 500 })
    server.respond({ drop = true })
    server.respond({ status = 429 })
    server.respond({ status = 207,
      body = '{"errors":[{"batch_index":0,"reason":"invalid","field":"name","message":"bad name"}]}' })
    local res = get(app, "/enqflush?prefix=r&n=300&timeout=10000")
    assert.are.equal(300, res.n)
    assert.is_false(res.ok) -- honest: one of the operations held was rejected
    assert.are.same({ "failed", 299, 1, 0 }, { res.kind, res.sent, res.failed, res.pending })
    local st = get(app, "/stats")
    assert.are.equal(1, #st.failures)
    assert.are.equal(207, st.failures[1].status)
    assert.are.equal("invalid", st.failures[1].reason)
    assert.are.equal(1, st.failures[1].count) -- one on_error call for the batch, with its one rejection
    local rejected = st.failures[1].op.identifiers.id
    -- every other event arrived; batches that failed were resent whole (same bytes)
    local bodies, distinct = {}, 0
    for _, r in ipairs(server.requests("/api/v2/batch")) do
      if not bodies[r.body] then bodies[r.body] = true; distinct = distinct + 1 end
    end
    local ids = ids_received()
    local seen = {}
    for body in pairs(bodies) do
      for _, op in ipairs(core.json_decode(body).batch) do
        assert.is_nil(seen[op.identifiers.id])
        seen[op.identifiers.id] = true
      end
    end
    for i = 1, 300 do assert.is_true(seen["r" .. i]) end
    assert.is_true(ids[rejected] >= 1)
    assert.is_true(st.stats.retried >= 2)
    assert.are.equal(st.stats.enqueued, st.stats.sent + st.stats.failed + st.stats.queued + st.stats.in_flight)
  end)

  it("keeps each person's updates in order under faults (500, 429, resets, lost acks, jitter)", function()
    server.reset()
    server.chaos({ rate = 0.3, seed = 5, jitter = 10, path = "/api/v2/batch" })
    local res = get(app, "/order?people=40&updates=20")
    local log = server.requests("/api/v2/batch")
    server.reset()
    assert.is_true(res.ok, res.err)
    local top, seen, refused = {}, {}, 0
    for _, r in ipairs(log) do
      if r.tag ~= "accepted" then
        refused = refused + 1
      else
        local per = {}
        for _, op in ipairs(core.json_decode(r.body).batch) do
          local id = op.identifiers.id
          per[id] = per[id] or {}
          table.insert(per[id], op.attributes.counter)
        end
        for id, list in pairs(per) do
          local sig = table.concat(list, ",")
          local before = top[id] or 0
          seen[id] = seen[id] or {}
          if list[1] > before then
            top[id] = list[#list]
          else -- only a replay of an accepted batch (lost ack), before any later one
            assert(seen[id][sig] and list[#list] == before, id .. ": " .. sig .. " accepted after " .. before)
          end
          for k = 2, #list do assert(list[k] > list[k - 1], id .. ": " .. sig) end
          seen[id][sig] = true
        end
      end
    end
    assert.is_true(refused > 0)
    for p = 1, 40 do assert.are.equal(20, top["o" .. p]) end
  end)

  it("sends what is left when the worker exits", function()
    server.reset()
    -- a queue whose periodic flush is 10 minutes away: only the exit can send it
    assert.are.equal(20, get(app, "/late?prefix=x&n=20").ok)
    assert.are.equal(0, server.count())
    local log = stop(app)
    app = nil
    local ids = ids_received()
    for i = 1, 20 do assert.are.equal(1, ids["x" .. i], log) end
  end)
end)

describe_ngx("customerio.queue.ngx stats across workers", function()
  it("adds every worker's counters in the stats_dict (stats().all) next to the worker's own", function()
    server.reset()
    local app = start(2)
    local ok, err = pcall(function()
      for i = 1, 20 do assert.are.equal(10, get(app, "/enqueue?prefix=w" .. i .. "_&n=10").ok) end
      -- Each worker enqueued one event in init_worker: 202 in all, whichever worker served what.
      local st
      for _ = 1, 200 do
        st = get(app, "/stats")
        if st.stats.all.sent == 202 then break end
        shell.sleep(0.05)
      end
      local all, own = st.stats.all, st.stats
      assert.are.equal(202, all.enqueued)
      assert.are.equal(202, all.sent)
      assert.are.equal(0, all.failed + all.queued + all.in_flight)
      assert.is_true(own.enqueued >= 1 and own.enqueued <= all.enqueued)
      assert.is_true(all.requests >= 2 and all.batches >= 2)
      local ids = ids_received()
      assert.are.equal(2, ids["init-1"])
    end)
    stop(app)
    assert(ok, err)
  end)
end)
