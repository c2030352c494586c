--- The sandbox served over HTTP from nginx (`make sandbox`), so any client can use it.
--
-- In nginx.conf (tools/sandbox writes one):
--
--     location / { content_by_lua_block { require("customerio.sandbox.server").handle() } }
--
-- Customer.io paths (`/api/...`, `/v1/...`, `/unsubscribe/...`) go to the emulator;
-- `/__sandbox/...` is a small JSON control API to set up and inspect it (docs/sandbox.md),
-- and every other path is the web inbox (`customerio.sandbox.web`: `http://127.0.0.1:8180/`):
--
--     POST /__sandbox/reset
--     POST /__sandbox/config          {"site_id", "api_key", "app_key", "rate_limits", "strict_liquid"}
--                                     (rate_limits: true, false, or {"app": 10, "transactional": 100,
--                                     "track": 1000, "broadcast_interval": 10000})
--     POST /__sandbox/transactional   {"id": 3 | "password_reset", "template": {...}}
--     POST /__sandbox/broadcasts      {"id": 42, "segment": 1, "filter": {...}, "template": {...}}
--     POST /__sandbox/segments        {"id": 1, "name": "...", "filter": {...}} or {"manual": true}
--     POST /__sandbox/data_files      {"url": "...", "rows": [...]}
--     GET  /__sandbox/outbox          {"messages": [...]}
--     GET  /__sandbox/deliveries      {"deliveries": [...]}
--     GET  /__sandbox/people          {"people": [...]}
--     GET  /__sandbox/people/<ident>  {"person": {...}}   (404 when absent)
--     GET  /__sandbox/segments/<id>/members   {"members": ["id or email", ...]}
--     GET  /__sandbox/requests        {"requests": [...]}  (credentials masked)
--     GET  /__sandbox/version         {"version": n}  (changes whenever the state may have)
--     POST /__sandbox/faults          {"path", "method", "status", "body", "headers", "delay", "reset", "count"}
--     GET  /__sandbox/faults          {"faults": [...]}
--     DELETE /__sandbox/faults        remove every fault (reset does too)
--
-- State lives in the nginx worker (run one worker, as tools/sandbox does).
-- @module customerio.sandbox.server
local core = require("customerio.core")
local sandbox = require("customerio.sandbox")
local web = require("customerio.sandbox.web")

local M = {}

-- Rate limits on, as at Customer.io, unless the server was started with them off
-- (`tools/sandbox --no-rate-limits` sets CIO_SANDBOX_RATE_LIMITS=off; tools/sandbox.conf passes it).
local sb = sandbox.new({ rate_limits = os.getenv("CIO_SANDBOX_RATE_LIMITS") ~= "off" })
local faults = {}       -- injected faults, in the order added (see match_fault)
local fault_serial = 0

--- The worker's sandbox.
function M.instance()
  return sb
end

local function array(t)
  return setmetatable(t or {}, core.array_mt)
end

local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json; charset=utf-8"
  ngx.print(assert(core.json_encode(body)))
end

local control = {}

control["POST reset"] = function()
  local opts = { site_id = sb.site_id, api_key = sb.api_key, app_key = sb.app_key,
    rate_limits = sb.rate_limits or false, strict_liquid = sb.strict_liquid }
  sb = sandbox.new(opts)
  faults = {}
  return 200, {}
end

control["POST config"] = function(body)
  sb.site_id, sb.api_key, sb.app_key = body.site_id, body.api_key, body.app_key
  if body.rate_limits ~= nil then
    local ok, limits = pcall(sandbox.rate_limits, body.rate_limits)
    if not ok then return 400, { error = tostring(limits) } end
    sb.rate_limits = limits
  end
  if body.strict_liquid ~= nil then sb.strict_liquid = body.strict_liquid == true end
  return 200, {}
end

control["POST transactional"] = function(body)
  local t = sb:add_transactional(body.id, body.template or {})
  return 200, { id = t.id }
end

control["POST broadcasts"] = function(body)
  sb:add_broadcast(body.id, body)
  return 200, {}
end

control["POST segments"] = function(body)
  local seg = sb:add_segment(body)
  return 200, { id = seg.id }
end

control["POST data_files"] = function(body)
  sb:add_data_file(body.url, body.rows)
  return 200, {}
end

control["GET outbox"] = function()
  return 200, { messages = array(sb.outbox) }
end

control["GET deliveries"] = function()
  return 200, { deliveries = array(sb.delivery_list) }
end

control["GET people"] = function()
  local out = array()
  for _, p in ipairs(sb:people()) do out[#out + 1] = sb:person_view(p) end
  return 200, { people = out }
end

control["GET requests"] = function()
  return 200, { requests = array(sb.requests) }
end

control["GET version"] = function()
  return 200, { version = sb.version }
end

-- Faults ------------------------------------------------------------------------------

-- A path pattern: `*` matches any run of characters (also `/`), everything else itself.
local function glob(path)
  return "^" .. path:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
end

local FAULT_FIELDS = { path = "string", method = "string", status = "number", body = true, headers = "table",
  delay = "number", reset = "boolean", count = "number" }

control["POST faults"] = function(body)
  for k, v in pairs(body) do
    local want = FAULT_FIELDS[k]
    if not want then error("unknown fault field " .. tostring(k), 0) end
    if want ~= true and type(v) ~= want then error(k .. " must be a " .. want, 0) end
  end
  if body.status and (body.status < 100 or body.status > 599 or body.status % 1 ~= 0) then
    error("status must be an HTTP status (100-599)", 0)
  end
  if body.delay and body.delay < 0 then error("delay must be at least 0 (milliseconds)", 0) end
  if body.count and (body.count < 1 or body.count % 1 ~= 0) then error("count must be a positive integer", 0) end
  if not (body.status or body.delay or body.reset) then error("a fault needs status, delay or reset", 0) end
  fault_serial = fault_serial + 1
  local f = { id = fault_serial, path = body.path or "*", method = body.method and body.method:upper(),
    status = body.status, body = body.body, headers = body.headers, delay = body.delay, reset = body.reset == true,
    count = body.count, remaining = body.count, hits = 0 }
  f.pattern = glob(f.path)
  faults[#faults + 1] = f
  sb.version = sb.version + 1
  return 200, { id = f.id }
end

control["GET faults"] = function()
  local out = array()
  for _, f in ipairs(faults) do
    out[#out + 1] = { id = f.id, path = f.path, method = f.method, status = f.status, delay = f.delay,
      reset = f.reset, count = f.count, remaining = f.remaining, hits = f.hits }
  end
  return 200, { faults = out }
end

control["DELETE faults"] = function()
  faults = {}
  sb.version = sb.version + 1
  return 200, {}
end

-- The first fault for this request that has uses left (and uses one).
local function match_fault(method, path)
  for _, f in ipairs(faults) do
    if (f.remaining == nil or f.remaining > 0) and (f.method == nil or f.method == method) and path:find(f.pattern) then
      f.hits = f.hits + 1
      if f.remaining then f.remaining = f.remaining - 1 end
      return f
    end
  end
  return nil
end

-- Apply a fault: wait, then answer its status or drop the connection; nil to carry on.
local function inject(f)
  if f.delay and f.delay > 0 then ngx.sleep(f.delay / 1000) end
  if f.reset then return { status = 444, headers = {}, body = "", reset = true } end
  if not f.status then return nil end
  local body = f.body
  if body == nil then
    body = { meta = { error = "fault injected by the sandbox: HTTP " .. f.status } }
  end
  if type(body) ~= "string" then body = assert(core.json_encode(body)) end
  local headers = { ["content-type"] = "application/json; charset=utf-8" }
  for k, v in pairs(f.headers or {}) do headers[k] = tostring(v) end
  return { status = f.status, headers = headers, body = body }
end

local function handle_control(method, rest, raw)
  local body = {}
  if raw and raw:find("%S") then
    local v, err = core.json_decode(raw)
    if v == nil then return 400, { error = "invalid JSON: " .. tostring(err) } end
    body = v
  end
  local ident = rest:match("^people/(.+)$")
  if method == "GET" and ident then
    local view = sb:person_view(ngx.unescape_uri(ident))
    if not view then return 404, { error = "no such person" } end
    return 200, { person = view }
  end
  local seg = rest:match("^segments/([^/]+)/members$")
  if method == "GET" and seg then
    local members = sb:segment_members(seg)
    if not members then return 404, { error = "no such segment" } end
    return 200, { members = array(members) }
  end
  if method ~= "GET" then sb.version = sb.version + 1 end
  local fn = control[method .. " " .. rest]
  if not fn then return 404, { error = "unknown control call " .. method .. " /__sandbox/" .. rest } end
  local ok, status, out = pcall(fn, body)
  if not ok then return 400, { error = tostring(status) } end
  return status, out
end

local function is_api(path)
  return path:sub(1, 5) == "/api/" or path:sub(1, 4) == "/v1/" or path:sub(1, 13) == "/unsubscribe/"
end

local function send(res)
  ngx.status = res.status
  for k, v in pairs(res.headers) do ngx.header[k] = v end
  if res.body ~= "" then ngx.print(res.body) end
end

--- The content handler.
function M.handle()
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw then
    local file = ngx.req.get_body_file()
    if file then
      local f = io.open(file, "rb")
      if f then raw = f:read("*a"); f:close() end
    end
  end
  local method = ngx.req.get_method()
  -- The raw request target: ngx.var.uri is decoded, and %2F must stay inside its segment.
  local target = ngx.var.request_uri
  local path, query = target:match("^([^?]*)%??(.*)$")
  local rest = path:match("^/__sandbox/(.*)$")
  if rest then
    return reply(handle_control(method, rest, raw))
  end
  local headers = ngx.req.get_headers()
  if not is_api(path) then
    return send(web.handle(sb, { method = method, path = path, query = query, headers = headers, body = raw }))
  end
  local started = ngx.now()
  local fault = match_fault(method, path)
  local res = fault and inject(fault)
  if not res then res = sb:handle(method, path, query, headers, raw or "") end
  ngx.update_time()
  sb:record({ method = method, path = path, query = query, headers = headers, body = raw, status = res.status,
    response = res.body, ms = math.floor((ngx.now() - started) * 1000 + 0.5),
    fault = fault and ("fault " .. fault.id) or nil })
  if res.reset then return ngx.exit(444) end
  send(res)
end

return M
