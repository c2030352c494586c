--- The built-in HTTP/1.1 backend of `customerio.transport.ngx`, over `ngx.socket.tcp`: the
-- request line, headers and a Content-Length body; responses framed by Content-Length,
-- chunked transfer-encoding or the end of the connection. Used when lua-resty-http is not
-- installed, or with `backend = "builtin"`.
-- @module customerio.transport.ngx.cosocket
local base = require("customerio.transport.ngx")
local ngx = ngx

local add_header, content_length = base.add_header, base.content_length
local stale, transfer_error, valid_header = base.stale, base.transfer_error, base.valid_header
local READ_CHUNK = base.READ_CHUNK
local MAX_HEAD = 256 * 1024

local M = { name = "builtin" }

--- A new connection object and its cosocket (the same object here).
function M.open()
  local sock = ngx.socket.tcp()
  return sock, sock
end

--- The TLS handshake (certificate and host name verified).
function M.handshake(sock, host)
  return sock:sslhandshake(false, host, true)
end

--- The request head and body as a list of strings for sock:send; nil, err for a bad request.
function M.prepare(req, host_header, target)
  local method = req.method or "GET"
  if type(method) ~= "string" or not method:match("^%u+$") then return nil, "invalid HTTP method" end
  local body = req.body
  if body ~= nil and type(body) ~= "string" then return nil, "request body must be a string" end
  local out = { method, " ", target, " HTTP/1.1\r\n" }
  local seen_host, seen_accept = false, false
  local headers = req.headers or {}
  for name, value in pairs(headers) do
    if not valid_header(name, value) then
      return nil, "header name or value contains forbidden characters (CR, LF, NUL): " .. tostring(name)
    end
    local lower = name:lower()
    if lower == "host" then seen_host = true end
    if lower == "accept" then seen_accept = true end
    -- Framing and connection management belong to the transport.
    if lower ~= "content-length" and lower ~= "transfer-encoding" and lower ~= "connection"
      and lower ~= "expect" then
      value = tostring(value)
      out[#out + 1] = name
      out[#out + 1] = value == "" and ":\r\n" or ": "
      if value ~= "" then
        out[#out + 1] = value
        out[#out + 1] = "\r\n"
      end
    end
  end
  if not seen_host then
    out[#out + 1] = "Host: " .. host_header .. "\r\n"
  end
  if not seen_accept then out[#out + 1] = "Accept: */*\r\n" end
  if body ~= nil then out[#out + 1] = "Content-Length: " .. #body .. "\r\n" end
  out[#out + 1] = "\r\n"
  if body ~= nil and body ~= "" then out[#out + 1] = body end
  return out, method
end

-- A buffered reader over a cosocket. Every read is a receiveany bounded by what is left of the
-- request's budget: a cosocket read timeout only bounds the wait for the next packet, so one
-- receive(n) or receive("*l") on a peer that drips its answer could outlast any timeout.
local Reader = {}
Reader.__index = Reader

local function reader(sock, b)
  return setmetatable({ sock = sock, b = b, buf = "", pos = 1 }, Reader)
end

-- Bytes received but not consumed yet.
function Reader:pending()
  return #self.buf - self.pos + 1
end

function Reader:fill()
  if not self.b:apply(self.sock) then return nil, "timeout" end
  local data, err = self.sock:receiveany(READ_CHUNK)
  if not data then return nil, err end
  if self.pos > 1 then
    self.buf = self.buf:sub(self.pos)
    self.pos = 1
  end
  self.buf = self.buf .. data
  return true
end

-- One line without its CRLF (or LF); nil, err, protocol_error.
function Reader:line(max)
  while true do
    local nl = self.buf:find("\n", self.pos, true)
    if nl then
      local line = self.buf:sub(self.pos, nl - 1)
      self.pos = nl + 1
      if line:sub(-1) == "\r" then line = line:sub(1, -2) end
      return line
    end
    if self:pending() > max then return nil, "response line longer than " .. max .. " bytes", true end
    local ok, err = self:fill()
    if not ok then return nil, err end
  end
end

-- Exactly n bytes; nil, err.
function Reader:bytes(n)
  local avail = self:pending()
  if avail >= n then
    local out = self.buf:sub(self.pos, self.pos + n - 1)
    self.pos = self.pos + n
    return out
  end
  local parts, got = { self.buf:sub(self.pos) }, avail
  self.buf, self.pos = "", 1
  while got < n do
    if not self.b:apply(self.sock) then return nil, "timeout" end
    local want = n - got
    if want > READ_CHUNK then want = READ_CHUNK end
    local data, err = self.sock:receiveany(want)
    if not data then
      if err == "closed" then return nil, "closed after " .. got .. " of " .. n .. " bytes" end
      return nil, err
    end
    got = got + #data
    parts[#parts + 1] = data
  end
  return table.concat(parts)
end

-- Everything until the peer closes, at most max bytes; nil, "too_large" beyond.
function Reader:rest(max)
  local parts, total = { self.buf:sub(self.pos) }, self:pending()
  self.buf, self.pos = "", 1
  if total > max then return nil, "too_large" end
  while true do
    if not self.b:apply(self.sock) then return nil, "timeout" end
    local data, err = self.sock:receiveany(READ_CHUNK)
    if not data then
      if err == "closed" then return table.concat(parts) end
      return nil, err
    end
    total = total + #data
    if total > max then return nil, "too_large" end
    parts[#parts + 1] = data
  end
end

-- Reads one response head: status, version, headers; or nil, err, protocol_error.
local function read_head(r)
  local line, err, protocol = r:line(MAX_HEAD)
  if not line then return nil, err, protocol end
  local version, status = line:match("^HTTP/(%d%.%d)%s+(%d%d%d)")
  if not version then
    local shown = #line > 80 and (line:sub(1, 80) .. "...") or line
    return nil, "invalid HTTP status line: " .. string.format("%q", shown), true
  end
  local headers, last, size = {}, nil, 0
  while true do
    line, err, protocol = r:line(MAX_HEAD)
    if not line then return nil, err, protocol end
    if line == "" then break end
    size = size + #line
    if size > MAX_HEAD then return nil, "response headers larger than " .. MAX_HEAD .. " bytes", true end
    local first = line:sub(1, 1)
    if (first == " " or first == "\t") and last then
      -- obsolete line folding: a continuation of the previous header
      local cont = line:gsub("^%s+", ""):gsub("%s+$", "")
      headers[last] = headers[last] .. " " .. cont
    else
      local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
      if not name then return nil, "invalid header line: " .. string.format("%q", line:sub(1, 80)), true end
      last = name:lower()
      add_header(headers, last, value)
    end
  end
  return tonumber(status), version, headers
end

local function read_chunked(r, max)
  local parts, total = {}, 0
  while true do
    local line, err, protocol = r:line(4096)
    if not line then return nil, err, protocol end
    local hex = line:match("^%s*(%x+)%s*;?")
    if not hex or #hex > 15 then return nil, "invalid chunk size line", true end
    local size = tonumber(hex, 16)
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        line, err, protocol = r:line(MAX_HEAD)
        if not line then return nil, err, protocol end
      until line == ""
      return table.concat(parts)
    end
    total = total + size
    if total > max then return nil, "too_large" end
    local data
    data, err = r:bytes(size)
    if not data then return nil, err end
    parts[#parts + 1] = data
    local crlf
    crlf, err = r:bytes(2)
    if not crlf then return nil, err end
    if crlf ~= "\r\n" then return nil, "missing CRLF after a chunk", true end
  end
end

-- One exchange on one connection. Returns the response and whether the connection may be
-- kept, or nil, kind, message, retry_fresh, stage (as customerio.transport.curl reports it;
-- "receive" when not given).
function M.exchange(t, sock, b, req, method, out, where) -- luacheck: ignore 212/req
  local reused = (sock:getreusedtimes() or 0) > 0
  if not b:apply(sock) then return nil, "timeout", "timed out before sending the request to " .. where, nil, "send" end
  local sent, err = sock:send(out)
  if not sent then
    if reused and stale(err) then return nil, nil, nil, true end
    local kind, msg, stage = transfer_error(err, "sending the request to", where, b.total)
    return nil, kind, msg, nil, stage
  end
  local r = reader(sock, b)
  local status, version, headers, protocol
  repeat
    status, version, headers = read_head(r)
    if not status then
      err, protocol = version, headers
      if reused and stale(err) and r.buf == "" then return nil, nil, nil, true end
      if protocol then return nil, "network", "invalid HTTP response from " .. where .. ": " .. err end
      local kind, msg, stage = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg, nil, stage
    end
    reused = false
  until status >= 200 or status == 101
  local keep = version == "1.1"
  local conn = headers["connection"]
  if conn and conn:lower():find("close", 1, true) then keep = false end
  local body = ""
  if method ~= "HEAD" and status ~= 204 and status ~= 304 and status ~= 101 then
    local te = headers["transfer-encoding"]
    local max = t.max_response
    if te and te:lower():find("chunked", 1, true) then
      body, err, protocol = read_chunked(r, max)
    else
      local n, bad = content_length(headers["content-length"])
      if bad then return nil, "network", "invalid Content-Length in the response from " .. where end
      if n then
        if n > max then
          body, err = nil, "too_large"
        elseif n > 0 then
          body, err = r:bytes(n)
        end
      else
        keep = false
        body, err = r:rest(max)
      end
    end
    if not body then
      if err == "too_large" then
        return nil, "too_large", "response body larger than " .. math.floor(max) .. " bytes"
      end
      if protocol then return nil, "network", "invalid HTTP response from " .. where .. ": " .. err end
      local kind, msg, stage = transfer_error(err, "reading the response from", where, b.total)
      return nil, kind, msg, nil, stage
    end
  end
  -- Bytes after the response mean the framing is not what we think: do not reuse.
  if status == 101 or r:pending() > 0 then keep = false end
  return { status = status, headers = headers, body = body }, keep
end


return M
