--- Transactional message requests: `SendEmailRequest` and friends.
--
--     local req = customerio.SendEmailRequest{
--       to = "ada@example.com",
--       identifiers = { id = "42" },
--       transactional_message_id = "password_reset",
--       message_data = { reset_url = "https://example.com/r/abc" },
--     }
--     req:attach("receipt.pdf", pdf_bytes)
--     local res, err = api:send_email(req)
--
-- A request keeps the JSON body it will send in `req.message`, as
-- customerio-node does. Every field given is sent (unknown ones included, so
-- `cc`, `auto_create`, `custom_payload` and fields Customer.io adds later
-- work); the email request adds `headers = {}` when none is given, and the
-- push request sends `device` as `custom_device`. The checks of
-- `req:validate()` run when the request is sent.
-- @module customerio.app.requests
local core = require("customerio.core")
local check = require("customerio.http.check")

local requests = {}

--- Total size of the attachments of one email (decoded bytes): 2 MB.
requests.MAX_ATTACHMENTS_BYTES = 2 * 1024 * 1024

--- Recipients of one email across `to`, `cc` and `bcc`.
requests.MAX_RECIPIENTS = 15

local IDENTIFIER_KEYS = { id = true, email = true, cio_id = true }

-- The channels: name of the request class, path segment of /v1/send/<x>.
local kinds = {
  { class = "SendEmailRequest", channel = "email" },
  { class = "SendPushRequest", channel = "push" },
  { class = "SendSMSRequest", channel = "sms" },
  { class = "SendWhatsAppRequest", channel = "whatsapp" },
  { class = "SendInboxMessageRequest", channel = "inbox_message" },
  { class = "SendInAppRequest", channel = "in_app" },
}

local function is_null(v)
  return v == nil or v == core.null
end

-- Split an address list on commas outside quotes and angle brackets.
local function count_addresses(list)
  if type(list) ~= "string" then return 0 end
  local n, current, quoted, angle, escaped = 0, 0, false, false, false
  for i = 1, #list do
    local c = list:sub(i, i)
    if escaped then
      escaped = false
      current = current + 1
    elseif c == "\\" and quoted then
      escaped = true
    elseif c == '"' then
      quoted = not quoted
      current = current + 1
    elseif c == "<" and not quoted then
      angle = true
      current = current + 1
    elseif c == ">" and not quoted then
      angle = false
      current = current + 1
    elseif c == "," and not quoted and not angle then
      if current > 0 then n = n + 1 end
      current = 0
    elseif not c:find("%s") then
      current = current + 1
    end
  end
  if current > 0 then n = n + 1 end
  return n
end
requests.count_addresses = count_addresses

-- Decoded size of a standard base64 string.
local function decoded_size(b64)
  local len = #b64
  local pad = 0
  if b64:sub(-2) == "==" then pad = 2 elseif b64:sub(-1) == "=" then pad = 1 end
  return math.floor(len / 4) * 3 + ((len % 4) > 0 and (len % 4) - 1 or 0) - pad
end

local function attachments_size(attachments)
  local total = 0
  for name, data in pairs(attachments) do
    if type(data) ~= "string" then
      check.fail("attachments[" .. string.format("%q", tostring(name)) .. "] must be a base64 string")
    end
    total = total + decoded_size(data)
  end
  return total
end

local function check_attachments_size(total)
  if total > requests.MAX_ATTACHMENTS_BYTES then
    check.fail(string.format("attachments total %d bytes; the limit is 2 MB (%d bytes)",
      total, requests.MAX_ATTACHMENTS_BYTES))
  end
end

local function check_identifiers(identifiers)
  if is_null(identifiers) then check.fail("identifiers is required") end
  if type(identifiers) ~= "table" then
    check.fail("identifiers must be a table, got " .. type(identifiers))
  end
  local found = 0
  for k, v in pairs(identifiers) do
    if not IDENTIFIER_KEYS[k] or check.is_empty(v) then found = -100 break end
    if type(v) ~= "string" and type(v) ~= "number" then found = -100 break end
    found = found + 1
  end
  if found ~= 1 then
    check.fail('identifiers must hold exactly one of "id", "email" or "cio_id"')
  end
end

local function has(message, key)
  return not check.is_empty(message[key])
end

local Request = {}
Request.__index = Request

--- Check the request as it would be sent; raises with the first problem.
--
-- - `identifiers` holds exactly one of `id`, `email`, `cio_id`;
-- - `transactional_message_id` is given (an email may instead carry `from`, `subject` and `body`);
-- - an email has `to`, at most 15 recipients across `to`, `cc` and `bcc`, and attachments
--   of at most 2 MB in total.
-- @treturn table the request
function Request:validate()
  local m = self.message
  check_identifiers(m.identifiers)
  local tmid = m.transactional_message_id
  if not is_null(tmid) and type(tmid) ~= "string" and type(tmid) ~= "number" then
    check.fail("transactional_message_id must be a string or a number, got " .. type(tmid))
  end
  if self.channel == "email" then
    if check.is_empty(tmid) and not (has(m, "from") and has(m, "subject") and has(m, "body")) then
      check.fail("transactional_message_id is required unless from, subject and body are all given")
    end
    if check.is_empty(m.to) then check.fail("to is required") end
    for _, k in ipairs({ "to", "cc", "bcc" }) do
      if not is_null(m[k]) and type(m[k]) ~= "string" then
        check.fail(k .. " must be a string of comma-separated addresses, got " .. type(m[k]))
      end
    end
    local n = count_addresses(m.to) + count_addresses(m.cc) + count_addresses(m.bcc)
    if n > requests.MAX_RECIPIENTS then
      check.fail(string.format("too many recipients: %d across to, cc and bcc; the limit is %d",
        n, requests.MAX_RECIPIENTS))
    end
    if not is_null(m.attachments) then
      if type(m.attachments) ~= "table" then check.fail("attachments must be a table") end
      check_attachments_size(attachments_size(m.attachments))
    end
  elseif check.is_empty(tmid) then
    check.fail("transactional_message_id is required")
  end
  if not is_null(m.message_data) and type(m.message_data) ~= "table" then
    check.fail("message_data must be a table, got " .. type(m.message_data))
  end
  return self
end

--- Attach a file to an email (`SendEmailRequest` only).
-- @tparam string filename the name the recipient sees; it must have an extension ("receipt.pdf")
-- @tparam string data the file's bytes, or base64 text when `encode = false`
-- @tparam[opt] table opts `encode` (default true): base64-encode `data` (standard alphabet,
-- no line breaks); pass `false` for data that is already base64
-- @treturn table the request (calls chain)
function Request:attach(filename, data, opts)
  if self.channel ~= "email" then check.fail("only email requests take attachments") end
  if check.is_empty(filename) then check.fail("filename is required") end
  if type(filename) ~= "string" then check.fail("filename must be a string, got " .. type(filename)) end
  if not filename:find("[^.]%.[^.]+$") then
    check.fail('attachment filename "' .. filename .. '" must have an extension, e.g. "receipt.pdf"')
  end
  if type(data) ~= "string" then check.fail("data must be a string, got " .. type(data)) end
  opts = check.optional_table(opts, "opts")
  local attachments = self.message.attachments
  if is_null(attachments) then
    attachments = {}
    self.message.attachments = attachments
  end
  if attachments[filename] ~= nil then check.fail("attachment " .. filename .. " already exists") end
  local encoded
  if opts.encode == false then
    if not core.base64_decode(data) then
      check.fail("attachment " .. filename .. " is not valid base64 (encode = false)")
    end
    encoded = data
  else
    encoded = core.base64_encode(data)
  end
  check_attachments_size(attachments_size(attachments) + decoded_size(encoded))
  attachments[filename] = encoded
  return self
end

function Request:__tostring()
  return "customerio." .. self.class
end

local function new_request(kind, opts)
  if type(opts) ~= "table" then
    check.fail(kind.class .. " options must be a table, got " .. type(opts))
  end
  if getmetatable(opts) == Request then opts = opts.message end
  local message = {}
  for k, v in pairs(opts) do message[k] = v end
  if kind.channel == "email" then
    if message.headers == nil then message.headers = {} end
    if type(message.attachments) == "table" then
      local copy = {}
      for k, v in pairs(message.attachments) do copy[k] = v end
      message.attachments = copy
    end
  elseif kind.channel == "push" and message.device ~= nil then
    if message.custom_device ~= nil then check.fail("give device or custom_device, not both") end
    message.custom_device = message.device
    message.device = nil
  end
  return setmetatable({ message = message, class = kind.class, channel = kind.channel }, Request)
end

--- Whether a value is a request object, optionally of one class.
-- @param v any value
-- @tparam[opt] string class e.g. "SendEmailRequest"
-- @treturn boolean
function requests.is(v, class)
  return getmetatable(v) == Request and (class == nil or v.class == class)
end

--- The request for a channel from a request object or a plain table of its fields.
-- Raises customerio-node's message when given a request of another class.
-- @tparam string class e.g. "SendEmailRequest"
-- @param v request object or table
-- @treturn table request object
function requests.coerce(class, v)
  if getmetatable(v) == Request then
    if v.class ~= class then check.fail('"request" must be an instance of ' .. class) end
    return v
  end
  if type(v) ~= "table" then check.fail('"request" must be an instance of ' .. class) end
  return requests[class](v)
end

--- The path segment under /v1/send/ of each request class.
requests.channels = {}

for _, kind in ipairs(kinds) do
  local class = setmetatable({ channel = kind.channel }, {
    __call = function(_, opts) return new_request(kind, opts) end,
    __tostring = function() return "customerio." .. kind.class end,
  })
  class.new = function(opts) return new_request(kind, opts) end
  requests[kind.class] = class
  requests.channels[kind.class] = kind.channel
end

--- A transactional email: `to` and `identifiers`, and `transactional_message_id` or
-- `from` + `subject` + `body`; any other field of the API (`message_data`, `cc`, `bcc`,
-- `headers`, `attachments`, `send_at`, `language`, `tracked`...) is sent as given.
-- @function SendEmailRequest
-- @tparam table opts the message fields
-- @treturn table request with `message`, `attach`, `validate`

--- A transactional push: `transactional_message_id`, `identifiers`, and optional `to`,
-- `title`, `message`, `image_url`, `link`, `sound`, `custom_data`, `custom_payload`,
-- `device` (sent as `custom_device`)...
-- @function SendPushRequest
-- @tparam table opts the message fields
-- @treturn table request

--- A transactional SMS: `transactional_message_id`, `identifiers`, and optional `to`, `from`...
-- @function SendSMSRequest
-- @tparam table opts the message fields
-- @treturn table request

--- A transactional WhatsApp message: `transactional_message_id`, `identifiers`, optional
-- `to`, `from`, `tracked`...
-- @function SendWhatsAppRequest
-- @tparam table opts the message fields
-- @treturn table request

--- A transactional inbox message: `transactional_message_id`, `identifiers`, `message_data`...
-- @function SendInboxMessageRequest
-- @tparam table opts the message fields
-- @treturn table request

--- A transactional in-app message: `transactional_message_id`, `identifiers`, `message_data`...
-- @function SendInAppRequest
-- @tparam table opts the message fields
-- @treturn table request

return requests
