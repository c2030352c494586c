--- The lua-resty-http backend of `customerio.transport.ngx`: the exchange goes through
-- `resty.http` (chosen by default when `require "resty.http"` succeeds, or with
-- `backend = "resty.http"`).
-- @module customerio.transport.ngx.resty_http
local base = require("customerio.transport.ngx")

local add_header, content_length = base.add_header, base.content_length
local stale, transfer_error, valid_header = base.stale, base.transfer_error, base.valid_header
local READ_CHUNK = base.READ_CHUNK

local ok, http = pcall(require, "resty.http")
if not (ok and type(http) == "table" and type(http.new) == "function") then http = nil end

local M = { name = "resty.http" }

--- Whether lua-resty-http is installed.
M.available = http ~= nil

--- A new connection object (a resty.http client) and its cosocket.
function M.open()
  local httpc = http.new()
  return httpc, httpc.sock
end

--- The TLS handshake (certificate and host name verified).
function M.handshake(httpc, host)
  return httpc:ssl_handshake(false, host, true)
end

--- What `exchange` needs of the request: resty.http builds the head itself.
function M.prepare(_, host_header, target)
  return { target = target, host_header = host_header }
end

local EXPECTS_BODY = { POST = true, PUT = true, PATCH = true }

local function header_value(v)
  if type(v) == "table" then
    local list = {}
    for i = 1, #v do list[i] = tostring(v[i]) end
    return table.concat(list, ", ")
  end
  return tostring(v)
end

function M.exchange(t, httpc, b, req, method, prepared, where)
  local target, host_header = prepared.target, prepared.host_header
  local reused = (httpc:get_reused_times() or 0) > 0
  local headers = {}
  local seen_accept = false
  for name, value in pairs(req.headers or {}) do
    if not valid_header(name, value) then
      return nil, "request", "header name or value contains forbidden characters (CR, LF, NUL): " .. tostring(name)
    end
    local lower = name:lower()
    if lower == "accept" then seen_accept = true end
    if lower ~= "content-length" and lower ~= "transfer-encoding" and lower ~= "connection"
      and lower ~= "expect" then
      headers[name] = tostring(value)
    end
  end
  if not seen_accept then headers["Accept"] = "*/*" end
  local has_host = false
  for name in pairs(headers) do if name:lower() == "host" then has_host = true end end
  if not has_host then headers["Host"] = host_header end
  local body = req.body
  if body == nil and EXPECTS_BODY[method] then body = "" end
  if not b:apply(httpc.sock) then return nil, "timeout", "timed out before sending the request to " .. where, nil, "send" end
  local res, err = httpc:request({ method = method, path = target, headers = headers, body = body })
  if not res then
    if reused and stale(err) then return nil, nil, nil, true end
    local kind, msg, stage = transfer_error(err, "exchanging with", where, b.total)
    return nil, kind, msg, nil, stage
  end
  -- 1xx interim responses (lua-resty-http only skips 100 after its own Expect)
  while res.status >= 100 and res.status < 200 and res.status ~= 101 do
    if not b:apply(httpc.sock) then return nil, "timeout", "timed out waiting for the response from " .. where, nil, "receive" end
    res, err = httpc:read_response({ method = method, headers = {} })
    if not res then
      local kind, msg, stage = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg, nil, stage
    end
  end
  local out = {}
  for name, value in pairs(res.headers or {}) do
    if type(name) == "string" then add_header(out, name:lower(), header_value(value)) end
  end
  local max = t.max_response
  local n = content_length(out["content-length"])
  if n and n > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
  local parts, total = {}, 0
  if res.has_body and res.body_reader then
    while true do
      if not b:apply(httpc.sock) then return nil, "timeout", "timed out reading the response from " .. where, nil, "receive" end
      local chunk, rerr = res.body_reader(READ_CHUNK)
      if rerr == "closed" and not n and not (out["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
        -- a body delimited by the end of the connection: the last piece comes with "closed"
        if chunk and chunk ~= "" then
          total = total + #chunk
          if total > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
          parts[#parts + 1] = chunk
        end
        break
      end
      if rerr then
        local kind, msg, stage = transfer_error(rerr, "reading the response from", where, b.total)
        return nil, kind, msg, nil, stage
      end
      if not chunk then break end
      total = total + #chunk
      if total > max then return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes" end
      parts[#parts + 1] = chunk
    end
  end
  local keep = httpc.keepalive ~= false
  return { status = res.status, headers = out, body = table.concat(parts) }, keep
end


return M
