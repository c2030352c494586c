--- The sandbox served over HTTP from nginx (`make sandbox`), so any client can use it.
--
-- In nginx.conf (tools/sandbox writes one):
--
--     location / { content_by_lua_block { require("customerio.sandbox.server").handle() } }
--
-- Customer.io paths (`/api/v1/...`, `/api/v2/...`, `/v1/...`, `/unsubscribe/...`) go to the
-- emulator; `/__sandbox/...` is a small JSON control API to set up and inspect it:
--
--     POST /__sandbox/reset
--     POST /__sandbox/config          {"site_id", "api_key", "app_key", "rate_limits", "strict_liquid"}
--     POST /__sandbox/transactional   {"id": 3 | "password_reset", "template": {...}}
--     POST /__sandbox/broadcasts      {"id": 42, "segment": 1, "filter": {...}, "template": {...}}
--     POST /__sandbox/segments        {"id": 1, "name": "...", "filter": {...}} or {"manual": true}
--     POST /__sandbox/data_files      {"url": "...", "rows": [...]}
--     GET  /__sandbox/outbox          {"messages": [...]}
--     GET  /__sandbox/deliveries      {"deliveries": [...]}
--     GET  /__sandbox/people          {"people": [...]}
--     GET  /__sandbox/people/<ident>  {"person": {...}}   (404 when absent)
--     GET  /__sandbox/segments/<id>/members   {"members": ["id or email", ...]}
--
-- State lives in the nginx worker (run one worker, as tools/sandbox does).
-- @module customerio.sandbox.server
local core = require("customerio.core")
local sandbox = require("customerio.sandbox")

local M = {}

local sb = sandbox.new()

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
    rate_limits = sb.rate_limits, strict_liquid = sb.strict_liquid }
  sb = sandbox.new(opts)
  return 200, {}
end

control["POST config"] = function(body)
  sb.site_id, sb.api_key, sb.app_key = body.site_id, body.api_key, body.app_key
  if body.rate_limits ~= nil then sb.rate_limits = body.rate_limits == true end
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
  local fn = control[method .. " " .. rest]
  if not fn then return 404, { error = "unknown control call " .. method .. " /__sandbox/" .. rest } end
  local ok, status, out = pcall(fn, body)
  if not ok then return 400, { error = tostring(status) } end
  return status, out
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
  local res = sb:handle(method, path, query, ngx.req.get_headers(), raw or "")
  sb.log[#sb.log + 1] = { method = method, path = path, status = res.status }
  ngx.status = res.status
  for k, v in pairs(res.headers) do ngx.header[k] = v end
  if res.body ~= "" then ngx.print(res.body) end
end

return M
