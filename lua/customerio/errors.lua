--- Error objects returned as the second value of every failed call.
--
-- An error is a table with `kind`, `status`, `message`, `body`, `headers`,
-- `retryable` and `attempts` (plus `method` and `url` of the request); `sent` ("no", "yes",
-- "unknown": whether the request reached the server); for an HTTP status, `code` (and `codes`
-- when there are several) from Customer.io's error body; for a transport failure `stage` and
-- `detail` (the transport's own text; `message` words the failure the same way for every
-- transport); `retry_after` (ms) when a client-side rate limit or a 429 says when to try again
-- (kinds "rate_limited" and "quota" come from `customerio.http.client`). Its `tostring` reads
-- well and it concatenates like a string. Bad arguments are not errors of this kind: they raise.
-- @module customerio.errors
local errors = {}

--- Metatable shared by all error objects.
local Error = {}
Error.__index = Error
errors.Error = Error

function Error.__tostring(e)
  local head = "customerio " .. tostring(e.kind or "error") .. " error"
  if e.status then head = head .. " " .. tostring(e.status) end
  if e.message and e.message ~= "" then return head .. ": " .. e.message end
  return head
end

function Error.__concat(a, b)
  return tostring(a) .. tostring(b)
end

--- Whether a value is an error object of this module.
-- @param v any value
-- @treturn boolean
function errors.is(v)
  return getmetatable(v) == Error
end

--- Make an error object.
-- @tparam table fields `kind` (required), `message`, `status`, `body`, `headers`, `retryable`, `attempts`...
-- @treturn table the error
function errors.new(fields)
  fields.retryable = fields.retryable or false
  fields.attempts = fields.attempts or 1
  return setmetatable(fields, Error)
end

local function decode(body)
  if type(body) ~= "string" or body == "" then return nil end
  local first = body:match("^%s*(.)")
  if first ~= "{" and first ~= "[" then return nil end
  local ok, core = pcall(require, "customerio.core")
  if not ok then return nil end
  local v = core.json_decode(body)
  return v
end

local function strings_of(list, field)
  local out = {}
  if type(list) ~= "table" then return out end
  for i = 1, #list do
    local item = list[i]
    if type(item) == "string" then
      out[#out + 1] = item
    elseif type(item) == "table" then
      local v = item[field] or item.message or item.detail
      if type(v) == "string" then out[#out + 1] = v end
    end
  end
  return out
end

local function join(list)
  if #list == 1 then return list[1] end
  return #list .. " errors: " .. table.concat(list, "; ")
end

--- The human message in a Customer.io error body.
-- Tries `meta.error`, `meta.errors[]`, `errors[].detail`, `errors[].message`, `error`,
-- then the raw text (trimmed, redacted and cut at 500 bytes: see `errors.cut`).
-- @tparam string body raw response body
-- @tparam[opt] table secrets strings to redact before the text is cut
-- @treturn string|nil message
function errors.parse_message(body, secrets)
  local v = decode(body)
  if type(v) == "table" then
    local meta = v.meta
    if type(meta) == "table" then
      if type(meta.error) == "string" and meta.error ~= "" then return meta.error end
      local list = strings_of(meta.errors, "message")
      if #list > 0 then return join(list) end
    end
    local list = strings_of(v.errors, "detail")
    if #list > 0 then return join(list) end
    if type(v.error) == "string" and v.error ~= "" then return v.error end
    if type(v.message) == "string" and v.message ~= "" then return v.message end
  end
  if type(body) ~= "string" then return nil end
  local text = body:gsub("^%s+", ""):gsub("%s+$", "")
  if text == "" then return nil end
  return errors.cut(text, 500, secrets)
end

--- The machine-readable codes of a Customer.io error body: the `code` of each entry of its
-- `errors` list (or of `meta.errors`), else the entry's `reason` (Track v2 batch and entity
-- errors), as strings, in order.
-- @tparam string body raw response body
-- @treturn table list (empty when there are none)
function errors.parse_codes(body)
  local out = {}
  local v = decode(body)
  if type(v) ~= "table" then return out end
  local lists = { v.errors, type(v.meta) == "table" and v.meta.errors or nil }
  for _, list in ipairs(lists) do
    if type(list) == "table" then
      for i = 1, #list do
        local item = list[i]
        if type(item) == "table" then
          local code = item.code
          if code == nil then code = item.reason end
          if type(code) == "number" then code = tostring(code) end
          if type(code) == "string" and code ~= "" then out[#out + 1] = code end
        end
      end
    end
  end
  return out
end

local reasons = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [408] = "Request Timeout", [409] = "Conflict", [413] = "Payload Too Large",
  [422] = "Unprocessable Entity", [429] = "Too Many Requests", [500] = "Internal Server Error",
  [502] = "Bad Gateway", [503] = "Service Unavailable", [504] = "Gateway Timeout",
}

--- An error for a response with a non-2xx status.
-- @tparam table res `{status, headers, body}`
-- @tparam[opt] table extra fields to add (`attempts`, `retryable`, `method`, `url`)
-- @tparam[opt] table secrets strings to redact before the message is cut (the caller still
-- redacts the whole error with `errors.redact`)
-- @treturn table error
function errors.from_response(res, extra, secrets)
  local e = {
    kind = "http",
    status = res.status,
    body = res.body,
    headers = res.headers,
    message = errors.parse_message(res.body, secrets) or reasons[res.status] or ("HTTP status " .. tostring(res.status)),
  }
  local codes = errors.parse_codes(res.body)
  e.code = codes[1]
  if #codes > 1 then e.codes = codes end
  for k, v in pairs(extra or {}) do e[k] = v end
  return errors.new(e)
end

-- Transport failures -------------------------------------------------------------------------

--- Whether the request reached the server, from the stage at which a transport failed:
-- "no" (name resolution, connection or TLS handshake failed, or the request was refused before
-- sending: nothing of it was written), "yes" (a response arrived), "unknown" (the connection
-- broke or timed out after the request was, or may have been, written).
-- @table SENT
errors.SENT = {
  resolve = "no", connect = "no", tls = "no", request = "no",
  send = "unknown", receive = "unknown",
  response = "yes",
}

-- One wording per failure, whichever transport saw it (curl, async, nginx): the transport's
-- own text goes to `err.detail`. Keys are stage, then kind.
local WORDING = {
  resolve = { network = "could not resolve the host name %s", timeout = "timed out resolving the host name %s" },
  connect = { network = "could not connect to %s", timeout = "timed out connecting to %s" },
  tls = { tls = "TLS handshake with %s failed", timeout = "timed out in the TLS handshake with %s",
          network = "TLS handshake with %s failed" },
  send = { network = "the connection to %s failed before a complete response arrived",
           timeout = "timed out before a complete response arrived from %s" },
}
WORDING.receive = WORDING.send

local function host_port(u)
  local scheme, authority = tostring(u):match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then return tostring(u) end
  authority = authority:gsub("^.*@", "")
  if authority:find(":%d+$") then return authority end
  return authority .. ":" .. (scheme:lower() == "https" and "443" or "80")
end

--- The fields of an error for a transport failure: `kind`, `message` (the same words for the
-- same failure through every transport), `detail` (the transport's own text), `stage`, `sent`.
-- @tparam string kind "network", "timeout", "tls", "request", "too_large", "phase"
-- @tparam[opt] string stage where it failed (see `SENT`); nil is taken as "receive" (unknown)
-- @tparam string detail the transport's message
-- @tparam string url the request URL (its host and port are named)
-- @treturn table fields for `errors.new`
function errors.transport_fields(kind, stage, detail, url)
  stage = errors.SENT[stage] and stage or "receive"
  local words = WORDING[stage] and WORDING[stage][kind]
  local host = host_port(url)
  if stage == "resolve" then host = host:gsub(":%d+$", "") end
  return {
    kind = kind, stage = stage, sent = errors.SENT[stage], detail = detail,
    message = words and string.format(words, host) or detail,
  }
end


-- Redaction. Every error and queue report goes through `errors.redact` before a caller sees
-- it, and every text this library cuts short goes through `errors.cut`; both use one list of
-- secrets built by `secret_list`.
--
-- * Each secret (4 bytes or longer) is replaced by [REDACTED] wherever it occurs, also in its
--   JSON-escaped form (`/` written as `\/`), in every string field of the error, in nested
--   tables (headers, `errors[]` entries) and in table keys.
-- * Text is redacted *before* it is cut, so a secret straddling the cut cannot survive in part.
-- * At the end of a cut text (and of any text ending in "..." or known to be truncated), the
--   longest prefix of a secret of at least PARTIAL bytes is masked too: what reached us may
--   itself have been cut inside a key. Shorter prefixes say nothing usable about a key.
local PARTIAL = 4
errors.PARTIAL_SECRET_BYTES = PARTIAL
local REDACTED = "[REDACTED]"

local function secret_list(secrets)
  local list = {}
  if type(secrets) ~= "table" then return list end
  for i = 1, #secrets do
    local s = secrets[i]
    if type(s) == "string" and #s >= PARTIAL then
      list[#list + 1] = s
      if s:find("/", 1, true) then list[#list + 1] = (s:gsub("/", "\\/")) end
    end
  end
  -- Longest first: "Basic <credentials>" before "<credentials>", so one marker replaces it.
  table.sort(list, function(a, b) return #a > #b end)
  return list
end

local function replace_all(s, list)
  for i = 1, #list do
    local secret = list[i]
    local at = s:find(secret, 1, true)
    while at do
      s = s:sub(1, at - 1) .. REDACTED .. s:sub(at + #secret)
      at = s:find(secret, at + #REDACTED, true)
    end
  end
  return s
end

-- Mask the longest prefix (>= PARTIAL bytes) of a secret that ends the string.
local function mask_tail(s, list)
  local best = 0
  for i = 1, #list do
    local secret = list[i]
    for n = math.min(#secret - 1, #s), PARTIAL, -1 do
      if n <= best then break end
      if s:sub(-n) == secret:sub(1, n) then best = n; break end
    end
  end
  if best == 0 then return s end
  return s:sub(1, #s - best) .. REDACTED
end

local function redact_string(s, list, truncated)
  if type(s) ~= "string" or #list == 0 then return s end
  s = replace_all(s, list)
  if truncated then return mask_tail(s, list) end
  local head = s:match("^(.-)%.%.%.$") -- text someone else cut ("...")
  if head then return mask_tail(head, list) .. "..." end
  return s
end

local function redact_value(v, list, seen, depth)
  local t = type(v)
  if t == "string" then return redact_string(v, list) end
  if t ~= "table" or seen[v] or depth > 32 then return v end
  seen[v] = true
  local renamed
  for k, item in pairs(v) do
    v[k] = redact_value(item, list, seen, depth + 1)
    if type(k) == "string" then
      local k2 = redact_string(k, list)
      if k2 ~= k then renamed = renamed or {}; renamed[k] = k2 end
    end
  end
  for k, k2 in pairs(renamed or {}) do
    v[k2], v[k] = v[k], nil
  end
  return v
end

--- Cut a text to at most `max` bytes (then "..." is appended), redacting the secrets first and
-- masking a partial secret left at the cut.
-- @tparam string s
-- @tparam number max bytes kept
-- @tparam[opt] table secrets list of strings
-- @treturn string
function errors.cut(s, max, secrets)
  local list = secret_list(secrets or {})
  s = redact_string(s, list, false)
  if #s <= max then return s end
  return redact_string(s:sub(1, max), list, true) .. "..."
end

--- Remove every occurrence of the given secrets from a string (for logs).
-- @tparam string s
-- @tparam table secrets list of strings (those shorter than 4 bytes are ignored)
-- @treturn string
function errors.redact_text(s, secrets)
  return redact_string(s, secret_list(secrets))
end

--- Remove every occurrence of the given secrets from an error: every string field (`message`,
-- `body`, `url`, `reason`, ...), every header, every `errors[]` entry and nested table, and
-- table keys. Servers and proxies sometimes echo requests back; credentials must never reach a
-- log through an error.
-- @tparam table e error
-- @tparam table secrets list of strings (those shorter than 4 bytes are ignored)
-- @tparam[opt] boolean truncated the body was cut short before it reached us (mask a
-- partial secret at its end)
-- @treturn table the same error
function errors.redact(e, secrets, truncated)
  local list = secret_list(secrets)
  if #list == 0 then return e end
  if truncated then e.body = redact_string(e.body, list, true) end
  return redact_value(e, list, {}, 0)
end

return errors
