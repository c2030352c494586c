--- Templates pages of the web inbox: the transactional templates; edit one, preview it with
-- sample `message_data` and a customer, and see what `customerio.preview` reports.
-- @module customerio.sandbox.web.templates
local core = require("customerio.core")
local html = require("customerio.sandbox.web.html")
local PARTS = require("customerio.sandbox.app_api").PARTS
local preview = require("customerio.app.preview")

local esc, url = html.esc, html.url

local M = {}

local function sorted_templates(sb)
  local list = {}
  for _, t in pairs(sb.transactional) do list[#list + 1] = t end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

--- `/templates`.
function M.list(sb)
  local rows, links = {}, {}
  for _, t in ipairs(sorted_templates(sb)) do
    rows[#rows + 1] = { esc(t.id), esc(t.trigger_name or ""), esc(t.name or ""), esc(t.type),
      esc(t.subject or t.title or "") }
    links[#links + 1] = "/templates/" .. url(t.id)
  end
  return { title = "Templates", body = "<h1>Transactional templates</h1>"
    .. html.table({ "id", "Trigger name", "Name", "Channel", "Subject / title" }, rows,
      "No templates. Add them with POST /__sandbox/transactional (docs/sandbox.md).", links) }
end

local function decode_object(text, name)
  if text == nil or not text:find("%S") then return {} end
  local v, err = core.json_decode(text)
  if type(v) ~= "table" then return nil, name .. " is not a JSON object" .. (err and (": " .. err) or "") end
  return v
end

local function problem_box(p)
  local where = esc(p.part) .. (p.line and (", line " .. p.line .. ", column " .. (p.column or "?")) or "")
  return '<div class="problem' .. (p.severity == "warning" and " warning" or "") .. '"><div class="where">'
    .. where .. " · " .. esc(p.kind) .. "</div><div>" .. esc(p.message) .. "</div>"
    .. (p.suggestion and ('<div class="muted">did you mean <code>' .. esc(p.suggestion) .. "</code>?</div>") or "")
    .. "</div>"
end

local function results(sb, t, parts, form)
  local data, derr = decode_object(form.message_data, "message_data")
  local customer, cerr = decode_object(form.customer, "customer")
  if not data or not customer then
    return '<div class="problem">' .. esc(derr or cerr) .. "</div>"
  end
  local r = preview({ message_data = data }, parts, { customer = customer, strict = sb.strict_liquid })
  local out = { "<h2>Preview ", r.ok and html.badge("no problems", "ok") or html.badge(#r.problems .. " problem(s)", "failed"),
    "</h2>" }
  for _, p in ipairs(r.problems) do out[#out + 1] = problem_box(p) end
  sb.previews = sb.previews or {}
  sb.previews[tostring(t.id)] = t.type == "email" and r.parts.body or nil
  for _, name in ipairs(PARTS[t.type] or {}) do
    if r.parts[name] then
      if name == "body" and t.type == "email" then
        out[#out + 1] = '<h2>body (HTML)</h2><iframe class="email" sandbox="" referrerpolicy="no-referrer" '
          .. 'title="Preview of the HTML part" src="/templates/' .. url(t.id) .. '/html"></iframe>'
      else
        out[#out + 1] = "<h2>" .. esc(name) .. "</h2><pre>" .. esc(r.parts[name]) .. "</pre>"
      end
    end
  end
  return table.concat(out)
end

--- `/templates/<id>`: GET shows the form (with `?message_data=` also the preview of the saved
-- template); POST `action=preview` renders the posted parts, `action=save` stores them into
-- the template (the next send uses them).
function M.show(sb, ctx)
  local t = sb.transactional[ctx.arg]
  if not t and ctx.arg then t = sb.transactional_by_name[ctx.arg:lower()] end
  if not t then return nil end
  -- GET ?message_data=...&customer=... previews the saved template (a link to share).
  local form = ctx.method == "POST" and ctx.form or ctx.query
  local previewing = ctx.method == "POST" or form.message_data ~= nil
  local names = PARTS[t.type] or {}
  local parts = {}
  for _, name in ipairs(names) do
    local v = form[name]
    if ctx.method == "POST" then
      if v ~= nil and v ~= "" then parts[name] = v:gsub("\r\n", "\n") end
    else
      parts[name] = t[name]
    end
  end
  local notice = ""
  if ctx.method == "POST" and form.action == "save" then
    for _, name in ipairs(names) do t[name] = parts[name] end
    notice = '<div class="notice">Saved: the next message sent with this template uses it.</div>'
  end
  local fields = {}
  for _, name in ipairs(names) do
    local big = name == "body" or name == "body_plain" or name == "body_amp" or name == "message"
    if big then
      fields[#fields + 1] = '<label for="f-' .. name .. '">' .. esc(name) .. '</label><textarea id="f-' .. name
        .. '" name="' .. name .. '" rows="' .. (name == "body" and 12 or 5) .. '">' .. esc(parts[name]) .. "</textarea>"
    else
      fields[#fields + 1] = '<label for="f-' .. name .. '">' .. esc(name) .. '</label><input type="text" id="f-' .. name
        .. '" name="' .. name .. '" value="' .. esc(parts[name]) .. '">'
    end
  end
  local body = {
    "<h1>Template ", esc(t.trigger_name or t.id), "</h1>", notice,
    '<div class="grid2"><form class="panel" method="post" action="/templates/', url(t.id), '">',
    '<p class="muted">', esc(t.type), " template · id ", esc(t.id), "</p>", table.concat(fields),
    '<label for="f-data">Sample message_data (JSON, as <code>trigger</code>)</label>',
    '<textarea id="f-data" name="message_data" rows="6">', esc(form.message_data or '{\n  \n}'), "</textarea>",
    '<label for="f-customer">Customer attributes (JSON, as <code>customer</code>)</label>',
    '<textarea id="f-customer" name="customer" rows="4">', esc(form.customer or '{\n  "id": "42"\n}'), "</textarea>",
    '<div class="actions"><button type="submit" name="action" value="preview">Preview</button>',
    '<button type="submit" name="action" value="save" class="secondary">Save template</button></div></form>',
    "<div>", previewing and results(sb, t, parts, form)
      or '<p class="muted">Preview renders every part with customerio.preview and lists what would make the '
      .. "message fail at Customer.io: missing variables, <code>data.x</code> instead of <code>trigger.x</code>, "
      .. "unknown filters, syntax errors.</p>",
    "</div></div>",
  }
  return { title = "Template " .. tostring(t.trigger_name or t.id), body = table.concat(body) }
end

--- `/templates/<id>/html`: the HTML part of the last preview, for the sandboxed iframe.
function M.html_part(sb, ctx)
  local text = sb.previews and sb.previews[ctx.arg]
  if not text then return nil end
  return { raw = { status = 200, body = text, headers = {
    ["Content-Type"] = "text/html; charset=utf-8", ["Content-Security-Policy"] = html.EMAIL_CSP,
    ["X-Content-Type-Options"] = "nosniff", ["Cache-Control"] = "no-store",
  } } }
end

return M
