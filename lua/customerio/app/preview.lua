--- Preview a transactional message locally and list what would make it fail at Customer.io.
--
--     local preview = require("customerio.app.preview")   -- also customerio.preview
--     local result = preview(customerio.SendEmailRequest{
--       to = "ada@example.com", identifiers = { id = "42" },
--       transactional_message_id = "reset", message_data = { name = "Ada" },
--     }, {
--       subject = "Reset your password, {{ trigger.name }}",
--       body = "<a href='{{ trigger.reset_url }}'>Reset</a>",
--     })
--     -- result.ok == false
--     -- result.parts.subject == "Reset your password, Ada"
--     -- result.problems[1] == { part = "body", kind = "missing_variable",
--     --   variable = "trigger.reset_url", line = 1, column = 10, severity = "error", message = ... }
--
-- Each part is rendered with `trigger` = the request's `message_data` and `customer` = the
-- request's `identifiers` merged with `opts.customer`. Problems come from a static check of
-- every variable the part references (so a branch the sample data does not take is checked
-- too) and from the render itself:
--
-- * `syntax`: the part does not parse (line and column given);
-- * `missing_variable`: a variable that is not in the data and is not guarded by `default`
--   or tested by `if`/`unless` (Customer.io fails such messages);
-- * `data_reference`: `data.x`; Customer.io exposes `message_data` as `trigger.x`;
-- * `unknown_filter`;
-- * `argument`, `limit`, ...: the render failed (a filter got bad input, a limit was hit).
--
-- Customer.io tags (`{% unsubscribe_url %}` ...) render as placeholders and are listed in
-- `result.placeholders`.
-- @module customerio.app.preview

local liquid = require("customerio.liquid")

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local sort = table.sort

--- Message fields rendered, in this order, when they hold strings.
local PART_ORDER = { "subject", "from", "reply_to", "preheader", "body", "body_plain", "plaintext_body",
  "amp_body", "title", "message" }
local PART_RANK = {}
for i, name in ipairs(PART_ORDER) do PART_RANK[name] = i end

--- Roots that Customer.io fills in at send time; references to them are not reported unless
-- `opts.data` provides them.
local PROVIDED = { campaign = true, message = true, delivery_id = true, layout = true, content = true,
  snippets = true, journey = true, workspace = true }

local function is_nil(v) return v == nil or v == liquid.null end

local function copy_into(dst, src)
  if type(src) ~= "table" then return dst end
  for k, v in pairs(src) do dst[k] = v end
  return dst
end

-- The render context of a message.
local function build_context(message, opts)
  local data = copy_into({}, opts.data)
  local trigger = message.message_data
  if is_nil(trigger) then trigger = {} end
  data.trigger = trigger
  local customer = {}
  if type(message.identifiers) == "table" then copy_into(customer, message.identifiers) end
  copy_into(customer, opts.customer)
  data.customer = customer
  return data
end

-- Does a static reference resolve in `data`?
local function resolves(data, ref)
  local _, found = liquid.lookup(data, ref)
  return found
end

local function parts_of(template, from_message)
  local names = {}
  for name, v in pairs(template) do
    if type(name) == "string" and type(v) == "string" and (not from_message or PART_RANK[name]) then
      names[#names + 1] = name
    end
  end
  sort(names, function(a, b)
    local ra, rb = PART_RANK[a] or 1000, PART_RANK[b] or 1000
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  return names
end

local function suggestion_for(path)
  return (path:gsub("^data", "trigger", 1))
end

--- Render the parts of a transactional message and list its problems.
-- @tparam table request a message table (`{to, identifiers, message_data, ...}`) or a request
--   object whose message is `request.message` (e.g. `customerio.SendEmailRequest{...}`)
-- @tparam[opt] table template the parts to render (`subject`, `body`, `from`, `preheader`,
--   `body_plain`, `title`, `message`, ... any string fields); by default the content fields
--   of the message itself (`subject`, `body`, ... as sent to override a template)
-- @tparam[opt] table opts
--   `customer` (profile attributes),
--   `strict` (default true: missing variables are errors; false makes them warnings),
--   `data` (extra top-level variables, e.g. `campaign`, `snippets`),
--   `now`, `timezone`, `placeholders`, `max_output`, `max_iterations` (render options of
--   `customerio.liquid`)
-- @treturn table `{ ok = bool, parts = { name = rendered text }, problems = { {part, kind,
--   message, line, column, severity, variable?, suggestion?, filter?}... },
--   placeholders = { {part, tag, line, column}... }, context = the data used }`
local function preview(request, template, opts)
  opts = opts or {}
  local result = { ok = true, parts = {}, problems = {}, placeholders = {} }
  local message = request
  if type(request) == "table" and type(request.message) == "table" then message = request.message end
  if type(message) ~= "table" then
    result.ok = false
    result.problems[1] = { kind = "argument", severity = "error",
      message = "preview needs a message table or a request object, got " .. type(request) }
    return result
  end
  local from_message = template == nil
  if from_message then template = message end
  if type(template) ~= "table" then
    result.ok = false
    result.problems[1] = { kind = "argument", severity = "error",
      message = "preview template must be a table of parts, got " .. type(template) }
    return result
  end

  local data = build_context(message, opts)
  result.context = data
  local missing_severity = opts.strict == false and "warning" or "error"
  local render_opts = { now = opts.now, timezone = opts.timezone, placeholders = opts.placeholders,
    max_output = opts.max_output, max_iterations = opts.max_iterations }
  local problems = result.problems

  for _, part in ipairs(parts_of(template, from_message)) do
    local tpl, err = liquid.parse(template[part])
    if not tpl then
      problems[#problems + 1] = { part = part, kind = err.kind or "syntax", message = err.message,
        line = err.line, column = err.column, severity = "error" }
    else
      local reported = {}
      local function report_missing(variable, line, column)
        local key = variable .. "@" .. tostring(line) .. ":" .. tostring(column)
        if reported[key] then return end
        reported[key] = true
        local root = variable:match("^[^.%[]+")
        if root == "data" and is_nil(data.data) then
          problems[#problems + 1] = { part = part, kind = "data_reference", variable = variable,
            suggestion = suggestion_for(variable), line = line, column = column, severity = "error",
            message = variable .. ": Customer.io exposes message_data as trigger.x, not data.x (use "
              .. suggestion_for(variable) .. ")" }
        else
          problems[#problems + 1] = { part = part, kind = "missing_variable", variable = variable,
            line = line, column = column, severity = missing_severity,
            message = variable .. " is not defined in the data of this message" }
        end
      end

      local _, refs = tpl:variables()
      for _, ref in ipairs(refs) do
        if not ref.guarded and not (PROVIDED[ref.root] and data[ref.root] == nil)
          and not resolves(data, ref) then
          report_missing(ref.path, ref.line, ref.column)
        end
      end

      for _, f in ipairs(tpl.info.unknown_filters) do
        problems[#problems + 1] = { part = part, kind = "unknown_filter", filter = f.filter, line = f.line,
          column = f.column, severity = "error", message = "unknown filter '" .. f.filter .. "'" }
      end

      local out, report = tpl:render(data, render_opts)
      if out == nil then
        local e = report
        problems[#problems + 1] = { part = part, kind = e.kind or "render", message = e.message,
          line = e.line, column = e.column, severity = "error" }
      else
        result.parts[part] = out
        for _, u in ipairs(report.undefined) do
          local root = u.variable:match("^[^.%[]+")
          if not (PROVIDED[root] and data[root] == nil) then
            report_missing(u.variable, u.line, u.column)
          end
        end
        for _, t in ipairs(report.tags) do
          result.placeholders[#result.placeholders + 1] = { part = part, tag = t.tag, line = t.line,
            column = t.column }
        end
      end
    end
  end

  for _, p in ipairs(problems) do
    if p.severity == "error" then result.ok = false end
  end
  local order = {}
  for i, p in ipairs(problems) do order[p] = i end
  sort(problems, function(a, b)
    local ra, rb = PART_RANK[a.part] or 1000, PART_RANK[b.part] or 1000
    if ra ~= rb then return ra < rb end
    if a.part ~= b.part then return tostring(a.part) < tostring(b.part) end
    if (a.line or 0) ~= (b.line or 0) then return (a.line or 0) < (b.line or 0) end
    if (a.column or 0) ~= (b.column or 0) then return (a.column or 0) < (b.column or 0) end
    return order[a] < order[b]
  end)
  return result
end

return preview
