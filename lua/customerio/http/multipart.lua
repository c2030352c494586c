--- multipart/form-data bodies (RFC 7578), as `fetch` builds them from a FormData.
--
--     local body, content_type = multipart.encode{
--       { name = "file", filename = "logo.png", content_type = "image/png", data = bytes },
--       { name = "name", data = "Logo" },
--     }
-- @module customerio.http.multipart
local core = require("customerio.core")
local check = require("customerio.http.check")

local multipart = {}

-- Content types by extension for uploads whose type is not given.
multipart.types = {
  bmp = "image/bmp", gif = "image/gif", jpeg = "image/jpeg", jpg = "image/jpeg",
  png = "image/png", pdf = "application/pdf",
}

--- The content type for a filename (by extension), `application/octet-stream` otherwise.
-- @tparam string filename
-- @treturn string
function multipart.type_of(filename)
  local ext = filename:match("%.([^./\\]+)$")
  return ext and multipart.types[ext:lower()] or "application/octet-stream"
end

-- Quote a name or filename in Content-Disposition the way browsers do (WHATWG).
local function quote(s)
  return (s:gsub('[\r\n"]', { ["\r"] = "%0D", ["\n"] = "%0A", ['"'] = "%22" }))
end

--- Encode parts into a body.
-- @tparam table parts list of `{name, data, filename?, content_type?}`
-- @tparam[opt] string boundary (random by default)
-- @treturn string body
-- @treturn string the Content-Type header value, with its boundary
function multipart.encode(parts, boundary)
  local function build(b)
    local out = {}
    for i = 1, #parts do
      local p = parts[i]
      if type(p.name) ~= "string" then check.fail("multipart part " .. i .. " needs a name") end
      if type(p.data) ~= "string" then check.fail("multipart part " .. p.name .. " must be a string") end
      out[#out + 1] = "--" .. b .. "\r\n"
      local disposition = 'Content-Disposition: form-data; name="' .. quote(p.name) .. '"'
      if p.filename then
        disposition = disposition .. '; filename="' .. quote(p.filename) .. '"'
        out[#out + 1] = disposition .. "\r\n"
        out[#out + 1] = "Content-Type: " .. (p.content_type or multipart.type_of(p.filename)) .. "\r\n\r\n"
      else
        out[#out + 1] = disposition .. "\r\n\r\n"
      end
      out[#out + 1] = p.data
      out[#out + 1] = "\r\n"
    end
    out[#out + 1] = "--" .. b .. "--\r\n"
    return table.concat(out)
  end
  local function collides(b)
    for i = 1, #parts do
      if type(parts[i].data) == "string" and parts[i].data:find(b, 1, true) then return true end
    end
    return false
  end
  local b = boundary
  if not b then
    repeat
      b = "----customerio" .. core.hex(core.random_bytes(16))
    until not collides(b)
  end
  return build(b), "multipart/form-data; boundary=" .. b
end

--- Split a multipart body back into parts (for tests and the sandbox).
-- @tparam string body
-- @tparam string content_type the Content-Type header value
-- @treturn table list of `{name, filename, content_type, data}`, or nil and a message
function multipart.decode(body, content_type)
  local b = content_type and content_type:match('boundary="?([^";]+)"?')
  if not b then return nil, "no boundary in content type" end
  local parts = {}
  local delim = "--" .. b
  local pos = body:find(delim, 1, true)
  if not pos then return nil, "boundary not found" end
  pos = pos + #delim
  while true do
    if body:sub(pos, pos + 1) == "--" then break end
    if body:sub(pos, pos + 1) ~= "\r\n" then return nil, "malformed boundary line" end
    pos = pos + 2
    local head_end = body:find("\r\n\r\n", pos, true)
    if not head_end then return nil, "part without headers" end
    local head = body:sub(pos, head_end - 1)
    local next_at = body:find("\r\n" .. delim, head_end + 4, true)
    if not next_at then return nil, "unterminated part" end
    local part = { data = body:sub(head_end + 4, next_at - 1) }
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      local name, value = line:match("^([^:]+):%s*(.*)$")
      if name and name:lower() == "content-disposition" then
        part.name = value:match('[; ]name="([^"]*)"')
        part.filename = value:match('filename="([^"]*)"')
      elseif name and name:lower() == "content-type" then
        part.content_type = value
      end
    end
    parts[#parts + 1] = part
    pos = next_at + 2 + #delim
  end
  return parts
end

return multipart
