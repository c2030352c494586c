-- The test server's request handler. Runs inside nginx (lua-nginx-module, LuaJIT); loaded by
-- the config that spec/support/server.lua generates from spec/support/nginx.conf.
--
-- Every request outside /__cio/ is recorded and answered with the next matching scripted
-- response (FIFO), or 200 `{}` when none is queued. /__cio/ is the control API used by
-- server.lua; control requests are never recorded nor counted.
--
-- State lives in the `cio` shared dict (worker_processes 1, so FIFO order is simply the order
-- in which the single worker runs the handlers; no dict operation yields):
--   req:count, req:<n>       recorded requests, JSON-encoded, n = arrival number
--   q:head, q:tail, q:<i>    scripted responses (JSON), qm:<i> = path prefix .. "\0" .. method
--   st:gen, st:in_flight, st:max_in_flight, st:total   counters; gen changes on reset

local json = require("json")

local ngx = ngx
local dict = ngx.shared.cio

local M = {}

local function now()
  ngx.update_time()
  return ngx.now()
end

local function send(status, body, content_type)
  ngx.status = status
  ngx.header["Content-Type"] = content_type or "application/json; charset=utf-8"
  ngx.header["Content-Length"] = #body
  ngx.print(body)
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()
  if not file then return "" end
  local f = assert(io.open(file, "rb"))
  body = f:read("*a")
  f:close()
  return body
end

-- Control API ---------------------------------------------------------------------------------

local function reset()
  local gen = (dict:get("st:gen") or 0) + 1
  dict:flush_all()
  dict:flush_expired()
  dict:set("st:gen", gen)
  dict:set("st:in_flight", 0)
  dict:set("st:max_in_flight", 0)
  dict:set("st:total", 0)
  dict:set("req:count", 0)
  dict:set("q:head", 1)
  dict:set("q:tail", 0)
end

local function enqueue(spec)
  local n = tonumber(spec.count) or 1
  spec.count = nil
  local encoded = json.encode(spec)
  local meta = (type(spec.path) == "string" and spec.path or "") .. "\0" ..
    (type(spec.method) == "string" and spec.method:upper() or "")
  for _ = 1, n do
    local i = dict:incr("q:tail", 1, 0)
    local ok, err = dict:safe_set("q:" .. i, encoded)
    if not ok then return nil, "cannot queue the response: " .. tostring(err) end
    dict:safe_set("qm:" .. i, meta)
  end
  return true
end

local function recorded()
  local n = dict:get("req:count") or 0
  local out = {}
  for i = 1, n do
    local r = dict:get("req:" .. i)
    if r then
      local tag = dict:get("tag:" .. i)
      if tag then r = r:sub(1, -2) .. ',"tag":' .. json.encode(tag) .. "}" end
      out[#out + 1] = r
    end
  end
  return "[" .. table.concat(out, ",") .. "]", #out
end

local function stats()
  return json.encode({
    in_flight = dict:get("st:in_flight") or 0,
    max_in_flight = dict:get("st:max_in_flight") or 0,
    total = dict:get("st:total") or 0,
    queued = (dict:get("q:tail") or 0) - (dict:get("q:head") or 1) + 1,
  })
end

local function control(what)
  if what == "ping" then
    return send(200, '{"ok":true}')
  elseif what == "reset" then
    reset()
    return send(200, '{"ok":true}')
  elseif what == "respond" then
    local spec, err = json.decode(read_body())
    if type(spec) ~= "table" then return send(400, json.encode({ error = err or "not an object" })) end
    local ok, qerr = enqueue(spec)
    if not ok then return send(500, json.encode({ error = qerr })) end
    return send(200, '{"ok":true}')
  elseif what == "chaos" then
    local spec = json.decode(read_body())
    if type(spec) ~= "table" then return send(400, '{"error":"not an object"}') end
    dict:set("chaos", json.encode(spec))
    return send(200, '{"ok":true}')
  elseif what == "requests" then
    return send(200, (recorded()))
  elseif what == "last" then
    local n = dict:get("req:count") or 0
    for i = n, 1, -1 do
      local r = dict:get("req:" .. i)
      if r then return send(200, r) end
    end
    return send(200, "{}")
  elseif what == "count" then
    local _, n = recorded()
    return send(200, '{"count":' .. n .. '}')
  elseif what == "stats" then
    return send(200, stats())
  end
  return send(404, '{"error":"unknown control endpoint"}')
end

-- Scripted responses --------------------------------------------------------------------------

local function starts_with(s, prefix)
  return prefix == "" or s:sub(1, #prefix) == prefix
end

-- Takes the first queued response whose filters match, FIFO.
local function dequeue(path, method)
  local head = dict:get("q:head") or 1
  local tail = dict:get("q:tail") or 0
  for i = head, tail do
    local meta = dict:get("qm:" .. i)
    if meta then
      local zero = meta:find("\0", 1, true)
      local p, m = meta:sub(1, zero - 1), meta:sub(zero + 1)
      if starts_with(path, p) and (m == "" or m == method) then
        local spec = dict:get("q:" .. i)
        dict:delete("q:" .. i)
        dict:delete("qm:" .. i)
        -- Advance the head past consumed entries.
        local h = head
        while h <= tail and not dict:get("qm:" .. h) do h = h + 1 end
        dict:set("q:head", h)
        return json.decode(spec)
      end
    end
  end
  return nil
end

-- body compressed by the gzip command (blocking the worker: only for small scripted cases).
local function gzip(body)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(body)
  f:close()
  local p = assert(io.popen("gzip -c -n -6 < '" .. name .. "'", "r"))
  local out = p:read("*a")
  p:close()
  os.remove(name)
  return out
end

local function is_bodyless(status)
  return status < 200 or status == 204 or status == 304
end

-- Answers the request as `spec` says. Returns "drop" when the connection must be closed
-- without a response.
local function play(spec)
  if spec.delay and tonumber(spec.delay) > 0 then
    ngx.sleep(tonumber(spec.delay) / 1000)
  end
  if spec.drop then return "drop" end

  local status = tonumber(spec.status) or (spec.redirect and 302) or 200
  local body
  if spec.body_size then
    body = string.rep(spec.body_char or "a", tonumber(spec.body_size))
  elseif type(spec.body_repeat) == "table" then
    local r = spec.body_repeat
    body = (r.head or "") .. string.rep(r.unit, tonumber(r.count)) .. (r.tail or "")
  elseif spec.body ~= nil then
    body = type(spec.body) == "string" and spec.body or json.encode(spec.body)
  elseif spec.redirect or is_bodyless(status) then
    body = ""
  else
    body = "{}"
  end

  if spec.gzip and #body > 0 then
    body = gzip(body)
    ngx.header["Content-Encoding"] = "gzip"
  end

  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  if spec.redirect then ngx.header["Location"] = spec.redirect end
  local has_length = false
  if type(spec.headers) == "table" then
    for k, v in pairs(spec.headers) do
      if v == false or v == json.null then v = nil end
      ngx.header[k] = v
      if k:lower() == "content-length" then has_length = true end
    end
  end
  if not has_length and not spec.chunked and not is_bodyless(status) then
    ngx.header["Content-Length"] = #body
  end

  local drip = spec.drip
  if type(drip) == "table" and #body > 0 then
    local chunks = math.max(1, tonumber(drip.chunks) or 1)
    local interval = (tonumber(drip.interval) or 0) / 1000
    local size = math.max(1, math.ceil(#body / chunks))
    ngx.send_headers()
    ngx.flush(true)
    local at = 1
    while at <= #body do
      if interval > 0 then ngx.sleep(interval) end
      local ok = ngx.print(body:sub(at, at + size - 1))
      if not ok then break end
      ngx.flush(true)
      at = at + size
    end
  elseif #body > 0 then
    ngx.print(body)
  else
    ngx.send_headers()
  end
  return "done"
end

-- Chaos: a response drawn for request n from (seed, n), for requests with nothing scripted.
local chaos_faults = {
  { status = 500, tag = "refused" },
  { status = 429, headers = { ["Retry-After"] = "0" }, tag = "refused" },
  { drop = true, tag = "refused" },   -- reset before the reply; the server did not apply it
  { drop = true, tag = "accepted" },  -- lost ack: applied, then the reply is lost
}

local function chaos_spec(n, uri)
  local raw = dict:get("chaos")
  if not raw then return nil end
  local c = json.decode(raw)
  if type(c.path) == "string" and uri:sub(1, #c.path) ~= c.path then return nil end
  -- Two draws from a Lehmer generator seeded by (seed, n): deterministic per arrival number.
  local x = ((tonumber(c.seed) or 1) * 7919 + n * 104729) % 2147483647
  if x == 0 then x = 1 end
  x = (x * 48271) % 2147483647
  local u1 = x / 2147483647
  x = (x * 48271) % 2147483647
  local u2 = x / 2147483647
  local jitter = (tonumber(c.jitter) or 0) * u2
  local rate = tonumber(c.rate) or 0
  if u1 < rate then
    local f = chaos_faults[math.floor(u1 / rate * #chaos_faults) + 1]
    return { status = f.status, headers = f.headers, drop = f.drop, tag = f.tag, delay = jitter }
  end
  return { delay = jitter, tag = "accepted" }
end

-- Recording -----------------------------------------------------------------------------------

local function record(n, arrived)
  local raw = ngx.var.request_uri or ""
  local q = raw:find("?", 1, true)
  local headers = {}
  for k, v in pairs(ngx.req.get_headers(0)) do
    headers[k] = type(v) == "table" and table.concat(v, ", ") or v
  end
  local body = read_body()
  local rec = {
    n = n,
    method = ngx.req.get_method(),
    path = raw,
    uri = q and raw:sub(1, q - 1) or raw,
    query = q and raw:sub(q + 1) or "",
    http_version = ngx.req.http_version(),
    scheme = ngx.var.scheme,
    port = tonumber(ngx.var.server_port),
    headers = headers,
    body = body,
    connection = tonumber(ngx.var.connection),
    connection_requests = tonumber(ngx.var.connection_requests),
    time = arrived,
  }
  local encoded = json.encode(rec)
  local ok, err = dict:safe_set("req:" .. n, encoded)
  if not ok then
    ngx.log(ngx.ERR, "cio test server: cannot record request ", n, " (", #body,
      " body bytes): ", err, "; recording it without its body")
    rec.body, rec.body_dropped = "", true
    dict:safe_set("req:" .. n, json.encode(rec))
  end
end

local function serve()
  local gen = dict:get("st:gen")
  local in_flight = dict:incr("st:in_flight", 1, 0)
  if in_flight > (dict:get("st:max_in_flight") or 0) then
    dict:set("st:max_in_flight", in_flight)
  end
  dict:incr("st:total", 1, 0)
  local n = dict:incr("req:count", 1, 0)
  local arrived = now()

  local ok, result = pcall(function()
    record(n, arrived)
    local spec = dequeue(ngx.var.request_uri or "", ngx.req.get_method()) or chaos_spec(n, ngx.var.uri or "")
    if spec and type(spec.tag) == "string" then dict:set("tag:" .. n, spec.tag) end
    if spec then return play(spec) end
    send(200, "{}")
    return "done"
  end)

  if dict:get("st:gen") == gen then dict:incr("st:in_flight", -1, 0) end

  if not ok then
    ngx.log(ngx.ERR, "cio test server: handler failed: ", tostring(result))
    if ngx.headers_sent then return ngx.exit(444) end
    return send(500, json.encode({ error = "test server: " .. tostring(result) }))
  end
  if result == "drop" then return ngx.exit(444) end
end

function M.handle()
  dict:set("st:touched", now())
  local uri = ngx.var.uri or ""
  local what = uri:match("^/__cio/(.*)$")
  if what then return control(what) end
  return serve()
end

-- Watchdog: a server without an owner shuts down and removes its prefix after `idle` seconds
-- without any request, so that no nginx is ever left behind (tools/nginx.lua stops a server
-- whose owner died).
function M.init_worker(opts)
  if not dict:get("st:gen") then reset() end
  dict:set("st:touched", now())
  local idle = tonumber(opts and opts.idle) or 0
  if idle <= 0 then return end
  local function check(premature)
    if premature then return end
    if now() - (dict:get("st:touched") or now()) < idle then return end
    ngx.log(ngx.WARN, "cio test server: idle for ", idle, " s, shutting down")
    local pf = io.open(opts.prefix .. "/nginx.pid", "r")
    local master = pf and tonumber(pf:read("*l"))
    if pf then pf:close() end
    if master then
      os.execute("rm -rf '" .. opts.prefix .. "' ; kill -TERM " .. master)
    end
  end
  ngx.timer.every(1, check)
end

return M
