--- Wire captures of customerio-node 5.2.0 (spec/fixtures/node-wire.jsonl, a copy of
-- ../shared/conformance) and the comparison of what our client sent with them.
--
--     local conformance = require("support.conformance")
--     local case = conformance.case("track.identify.basic")
--     local args, n = conformance.args(case)          -- Lua values, markers converted
--     track:identify(table.unpack(args, 1, n))
--     conformance.assert_match(case, server.last())   -- method, path, auth, JSON-equal body
local core = require("customerio.core")

local conformance = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/support/[^/]+$") or "spec"
local fixture = here .. "/fixtures/node-wire.jsonl"

local cases, order
local function load()
  if cases then return end
  cases, order = {}, {}
  local f = assert(io.open(fixture, "rb"))
  for line in f:lines() do
    if line:find("%S") then
      local c = assert(core.json_decode(line))
      cases[c.label] = c
      order[#order + 1] = c.label
    end
  end
  f:close()
end

--- The capture with this label (raises if unknown).
function conformance.case(label)
  load()
  return assert(cases[label], "no capture labelled " .. label)
end

--- Labels that start with a prefix, in file order ("track.", "app.sendEmail").
function conformance.labels(prefix)
  load()
  local out = {}
  for _, label in ipairs(order) do
    if label:sub(1, #prefix) == prefix then out[#out + 1] = label end
  end
  return out
end

local function convert(v, on_request)
  if type(v) ~= "table" then return v end
  if v["$undefined"] then return nil end
  if v["$bytes_b64"] then return assert(core.base64_decode(v["$bytes_b64"])) end
  if v["$request"] then
    local message = convert(v.message, on_request)
    if on_request then return on_request(v["$request"], message) end
    return message
  end
  local out = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do out[k] = convert(x, on_request) end
  return out
end

--- The positional arguments of a capture as Lua values, and their count.
-- `{"$undefined": true}` becomes nil, `{"$bytes_b64"}` a byte string, and
-- `{"$request": name, message}` whatever `on_request(name, message)` returns
-- (the message table itself by default).
-- @return args table, n
function conformance.args(case, on_request)
  local args, n = {}, #case.args
  for i = 1, n do args[i] = convert(case.args[i], on_request) end
  return args, n
end

local function is_array(t)
  local mt = getmetatable(t)
  return mt ~= nil and mt.__jsontype == "array"
end

local function describe_path(path)
  return path == "" and "body" or ("body" .. path)
end

--- Compare two decoded JSON values; returns true or false plus the first difference.
function conformance.json_equal(a, b, path, ignore)
  path = path or ""
  if type(a) ~= type(b) then
    return false, describe_path(path) .. ": " .. tostring(a) .. " vs " .. tostring(b)
  end
  if type(a) ~= "table" then
    if a ~= b then return false, describe_path(path) .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  if is_array(a) ~= is_array(b) then
    return false, describe_path(path) .. ": array vs object"
  end
  for k, v in pairs(a) do
    if not (path == "" and ignore and ignore[k]) then
      local ok, why = conformance.json_equal(v, b[k], path .. "." .. tostring(k), ignore)
      if not ok then return false, why end
    end
  end
  for k, v in pairs(b) do
    if a[k] == nil and not (path == "" and ignore and ignore[k]) then
      return false, describe_path(path .. "." .. tostring(k)) .. ": missing (expected " .. tostring(v) .. ")"
    end
  end
  return true
end

--- Assert that a recorded request (from support.server) matches a capture:
-- method, path with query, authorization, content-type, and a JSON-equal body.
-- @tparam table case capture
-- @tparam table got recorded request
-- @tparam[opt] table opts `ignore_body_keys = {"id"}` top-level keys to leave out of the comparison
function conformance.assert_match(case, got, opts)
  opts = opts or {}
  assert(got, "no request was recorded for " .. case.label)
  local function same(field, want, have)
    if want ~= have then
      error(string.format("%s: %s differs\n  node: %s\n  ours: %s", case.label, field, tostring(want), tostring(have)), 2)
    end
  end
  same("method", case.method, got.method)
  same("path", case.path, got.path)
  same("authorization", case.headers.authorization, got.headers.authorization)
  same("content-type", case.headers["content-type"], got.headers["content-type"])
  if case.body == nil or case.body == core.null then  -- "body": null in the capture: none sent
    if got.body ~= nil and got.body ~= "" then
      error(case.label .. ": node sent no body, ours sent " .. got.body, 2)
    end
    return
  end
  local body, err = core.json_decode(got.body or "")
  if body == nil then error(case.label .. ": our body is not JSON: " .. tostring(err), 2) end
  local ignore
  if opts.ignore_body_keys then
    ignore = {}
    for _, k in ipairs(opts.ignore_body_keys) do ignore[k] = true end
  end
  local ok, why = conformance.json_equal(case.body, body, "", ignore)
  if not ok then error(case.label .. ": " .. why .. "\n  ours: " .. got.body, 2) end
end

return conformance
