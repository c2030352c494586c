--- Rows of people from CSV or NDJSON text, for `customerio import`: each row is its attributes
-- and the line it starts on, or the reason it cannot be imported.
--
-- CSV (RFC 4180): a header line names the columns; fields may be quoted (`"a, b"`, `""` for a
-- quote, line breaks inside quotes); cells are strings unless `types` says otherwise; empty
-- cells are left out (an empty value would remove the attribute at Customer.io). NDJSON: one
-- JSON object per line, values keep their JSON types; blank lines are skipped.
-- @module customerio.cli.rows
local core = require("customerio.core")

local M = {}

--- Column types `--types` accepts, and how a cell becomes that type (nil, reason on failure).
M.converters = {
  string = function(s) return tostring(s) end,
  number = function(s)
    if type(s) == "number" then return s end
    local n = type(s) == "string" and s:match("^%s*[-+]?[%d.]+[eE]?[-+]?%d*%s*$") and tonumber(s)
    if not n or n ~= n or n == math.huge or n == -math.huge then return nil, "is not a number" end
    return n
  end,
  integer = function(s)
    local n = type(s) == "number" and s or (type(s) == "string" and s:match("^%s*[-+]?%d+%s*$") and tonumber(s))
    if not n or n % 1 ~= 0 then return nil, "is not an integer" end
    return math.tointeger and math.tointeger(n) or n
  end,
  boolean = function(s)
    if type(s) == "boolean" then return s end
    local l = type(s) == "string" and s:lower() or ""
    if l == "true" or l == "1" or l == "yes" then return true end
    if l == "false" or l == "0" or l == "no" then return false end
    return nil, "is not a boolean (true/false, 1/0, yes/no)"
  end,
  json = function(s)
    if type(s) ~= "string" then return s end
    local v, err = core.json_decode(s)
    if v == nil then return nil, "is not JSON: " .. tostring(err) end
    return v
  end,
}

--- Parse `--types revenue=number,active=boolean` into `{revenue = "number", ...}`.
-- @treturn table|nil types, or nil and a message
function M.parse_types(spec)
  local types = {}
  if spec == nil or spec == "" then return types end
  for item in spec:gmatch("[^,]+") do
    local name, kind = item:match("^%s*([^=]-)%s*=%s*(%a+)%s*$")
    if not name or name == "" then return nil, "--types: expected name=type, got '" .. item .. "'" end
    if not M.converters[kind] then
      return nil, "--types: unknown type '" .. kind .. "' for " .. name .. " (string, number, integer, boolean, json)"
    end
    types[name] = kind
  end
  return types
end

-- CSV records with the line each starts on; `bad` is set for an unterminated quote.
local function csv_records(text)
  local records = {}
  local pos, line, n = 1, 1, #text
  while pos <= n do
    local fields, start, field = {}, line, {}
    local done = false
    while not done do
      local c = text:sub(pos, pos)
      if c == '"' then
        local j = pos + 1
        while true do
          local q = text:find('"', j, true)
          if not q then
            records[#records + 1] = { line = start, bad = "unterminated quoted field" }
            return records
          end
          field[#field + 1] = text:sub(j, q - 1)
          if text:sub(q + 1, q + 1) == '"' then
            field[#field + 1] = '"'
            j = q + 2
          else
            pos = q + 1
            break
          end
        end
        local quoted = table.concat(field)
        local _, breaks = quoted:gsub("\n", "")
        line = line + breaks
        -- Anything after the closing quote up to the separator is kept, as most readers do.
        local rest = text:match("^[^,\r\n]*", pos)
        field = { quoted .. rest }
        pos = pos + #rest
      else
        local cell = text:match("^[^,\r\n]*", pos)
        field[#field + 1] = cell
        pos = pos + #cell
      end
      fields[#fields + 1] = table.concat(field)
      field = {}
      local sep = text:sub(pos, pos)
      if sep == "," then
        pos = pos + 1
      else
        if sep == "\r" then pos = pos + 1 end
        if text:sub(pos, pos) == "\n" then pos = pos + 1 end
        line = line + 1
        done = true
      end
    end
    if not (#fields == 1 and fields[1] == "") then records[#records + 1] = { line = start, fields = fields } end
  end
  return records
end

local function apply_types(attrs, types)
  for name, kind in pairs(types) do
    local v = attrs[name]
    if v ~= nil and v ~= core.null then
      local out, why = M.converters[kind](v)
      if out == nil then return nil, name .. ": '" .. tostring(v) .. "' " .. why end
      attrs[name] = out
    end
  end
  return true
end

local function take_id(attrs, id_column)
  local id = attrs[id_column]
  if type(id) == "number" then id = (math.tointeger and math.tointeger(id)) or id end
  if id == nil or id == core.null or (type(id) == "string" and not id:find("%S")) then
    return nil, "no " .. id_column .. " (the --id-column)"
  end
  if type(id) ~= "string" and type(id) ~= "number" then return nil, id_column .. " must be a string or a number" end
  attrs[id_column] = nil
  return tostring(id)
end

--- Read rows from CSV text.
-- @treturn table|nil list of `{line, id, attributes}` or `{line, error}`; nil and a message
--   when the file has no header
function M.csv(text, id_column, types)
  local records = csv_records(text)
  local header = table.remove(records, 1)
  if not header or not header.fields then return nil, "no header line" end
  local names = header.fields
  local has_id = false
  for _, name in ipairs(names) do if name == id_column then has_id = true end end
  if not has_id then return nil, "no column named '" .. id_column .. "' in the header (see --id-column)" end
  local rows = {}
  for _, r in ipairs(records) do
    local row = { line = r.line }
    if r.bad then
      row.error = r.bad
    elseif #r.fields ~= #names then
      row.error = string.format("%d fields, the header has %d", #r.fields, #names)
    else
      local attrs = {}
      for i, name in ipairs(names) do
        if r.fields[i] ~= "" then attrs[name] = r.fields[i] end
      end
      local ok, err = apply_types(attrs, types)
      if ok then row.id, err = take_id(attrs, id_column) end
      if not ok or not row.id then row.error = err else row.attributes = attrs end
    end
    rows[#rows + 1] = row
  end
  return rows
end

--- Read rows from NDJSON text (one object per line).
function M.ndjson(text, id_column, types)
  local rows, n = {}, 0
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    n = n + 1
    if line:find("%S") then
      local row = { line = n }
      local v, err = core.json_decode(line)
      local mt = type(v) == "table" and getmetatable(v)
      if v == nil then
        row.error = "invalid JSON: " .. tostring(err)
      elseif type(v) ~= "table" or (mt and mt.__jsontype == "array") then
        row.error = "not a JSON object"
      else
        local ok, why = apply_types(v, types)
        if ok then row.id, why = take_id(v, id_column) end
        if not ok or not row.id then row.error = why else row.attributes = v end
      end
      rows[#rows + 1] = row
    end
  end
  return rows
end

return M
