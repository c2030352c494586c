--- JSON encoding and decoding by the C core (src/json_encode.c, src/json_decode.c).
--
-- `customerio.null` is JSON null; `customerio.array(t)` marks a table as an
-- array so an empty one encodes as `[]`; decoded arrays keep that mark.
-- @module customerio.json
local core = require("customerio.core")
local errors = require("customerio.errors")

local json = {}

--- Encode a Lua value.
-- @param value
-- @tparam[opt] table opts `root` (name used in error paths), `max_depth`
-- @treturn string|nil JSON text
-- @treturn table|nil error object of kind "json" naming where the problem is
function json.encode(value, opts)
  local s, err = core.json_encode(value, opts)
  if s == nil then return nil, errors.new({ kind = "json", message = err }) end
  return s
end

--- Decode JSON text.
-- @tparam string text
-- The reader is strict RFC 8259 (no leading zeros, lone surrogates, raw control characters in
-- strings or trailing data).
-- @tparam[opt] table opts `ordered = true` keeps object key order (see docs), `max_depth`
-- (1000), `max_values` (values in the document, 1000000), `deadline_ms` (a
-- `customerio.core.monotonic_ms()` instant after which decoding stops)
-- @return value, or nil and an error object naming the byte offset: kind "json" for text that
-- is not JSON, "too_large" past `max_values`, "timeout" past `deadline_ms`
function json.decode(text, opts)
  if type(text) ~= "string" then
    return nil, errors.new({ kind = "json", message = "expected a string to decode, got " .. type(text) })
  end
  local v, err, reason = core.json_decode(text, opts)
  if v == nil and err then
    return nil, errors.new({ kind = (reason == "too_large" or reason == "timeout") and reason or "json", message = err })
  end
  return v
end

--- JSON null.
json.null = core.null

return json
