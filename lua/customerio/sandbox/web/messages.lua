--- Messages pages of the web inbox: every delivery (transactional and broadcast), newest
-- first; one delivery rendered by channel, or its Liquid error with the template line.
-- @module customerio.sandbox.web.messages
local html = require("customerio.sandbox.web.html")

local esc, url = html.esc, html.url

local M = {}

local function message_of(sb, delivery_id)
  for i = #sb.outbox, 1, -1 do
    if sb.outbox[i].delivery_id == delivery_id then return sb.outbox[i] end
  end
  return nil
end

--- The person a delivery went to (also when since deleted), or nil.
function M.person_of(sb, cio_id)
  if not cio_id then return nil end
  local p = sb.state.people[cio_id]
  if p then return p end
  for i = #sb.removed, 1, -1 do
    if sb.removed[i].person.cio_id == cio_id then return sb.removed[i].person end
  end
  return nil
end

local function person_link(p)
  if not p then return "" end
  local label = p.id or p.email or ("cio_" .. p.cio_id)
  return '<a href="/people/cio_' .. url(p.cio_id) .. '">' .. esc(label) .. "</a>"
end

local function identifiers_text(ids)
  if type(ids) ~= "table" then return "" end
  for _, k in ipairs({ "id", "email", "cio_id" }) do
    if ids[k] ~= nil then return k .. " " .. tostring(ids[k]) end
  end
  return ""
end

local function recipient(sb, d, m)
  local p = M.person_of(sb, d.cio_id)
  local to = m and m.to
  if to and p and p.email ~= to then return esc(to) .. " · " .. person_link(p) end
  if p then return person_link(p) .. (to and to ~= p.id and to ~= p.email and (" " .. esc(to)) or "") end
  return esc(to or identifiers_text(d.identifiers))
end

local function source_of(sb, d)
  if d.broadcast_id then
    local b = sb.broadcasts[tostring(d.broadcast_id)]
    return b and ('<a href="/broadcasts/' .. url(b.id) .. '">Broadcast ' .. esc(b.id) .. " · " .. esc(b.name) .. "</a>")
      or ("Broadcast " .. esc(d.broadcast_id)), b and b.template
  end
  local id = d.transactional_message_id
  if id == nil or id == html.null then return "(no template)", nil end
  local t = sb.transactional[tostring(id)] or (type(id) == "string" and sb.transactional_by_name[id:lower()])
  if not t then return "Transactional " .. esc(id), nil end
  return '<a href="/templates/' .. url(t.id) .. '">Transactional ' .. esc(t.trigger_name or t.id) .. "</a>", t
end

local function headline(d, m)
  if not m then return d.status == "failed" and "Delivery failed" or d.status == "suppressed" and "Not sent" or "" end
  return esc(m.subject or m.title or m.body and m.body:sub(1, 80) or "")
end

--- `/`: every delivery, newest first; `?status=failed` to filter.
function M.list(sb, ctx)
  local want = ctx.query.status
  local rows, links, total = {}, {}, 0
  for i = #sb.delivery_list, 1, -1 do
    local d = sb.delivery_list[i]
    if not want or want == "" or d.status == want then total = total + 1 end
    if (not want or want == "" or d.status == want) and #rows < html.MAX_ROWS then
      local m = message_of(sb, d.id)
      local subject = headline(d, m)
      if not m and d.error then
        local first = M.problems(d.error)[1]
        subject = '<span class="muted">' .. esc(first and ((first.part and (first.part .. ": ") or "") .. first.message)
          or d.error) .. "</span>"
      end
      rows[#rows + 1] = { html.time(d.created_at), esc(d.type), recipient(sb, d, m), (source_of(sb, d)), subject,
        html.badge(d.status) }
      links[#links + 1] = "/messages/" .. url(d.id)
    end
  end
  local tabs = { '<div class="tabs">' }
  for _, s in ipairs({ "", "sent", "failed", "suppressed" }) do
    tabs[#tabs + 1] = '<a href="/' .. (s ~= "" and ("?status=" .. s) or "") .. '"'
      .. (((want or "") == s) and ' class="current"' or "") .. ">" .. (s == "" and "All" or s) .. "</a>"
  end
  tabs[#tabs + 1] = "</div>"
  return { title = "Messages", body = "<h1>Messages</h1>" .. table.concat(tabs)
    .. html.table({ "Time (UTC)", "Channel", "Recipient", "Template", "Subject / title", "Status" }, rows,
      "No messages yet. Send a transactional message or trigger a broadcast.", links) .. html.more(#rows, total) }
end

-- The template line a problem points at, with a caret under its column.
local function excerpt(source, line, column)
  if type(source) ~= "string" then return "" end
  local n = 0
  for text in (source .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    if n == line then
      local prefix = tostring(line) .. " | "
      return '<pre class="excerpt">' .. '<span class="line-no">' .. esc(prefix) .. "</span>" .. esc(text) .. "\n"
        .. '<span class="caret">' .. string.rep(" ", #prefix + math.max(column - 1, 0)) .. "^</span></pre>"
    end
  end
  return ""
end

--- Parse "part: line L, column C: message" (how deliveries record Liquid problems).
function M.problems(err)
  local out = {}
  for item in ((err or "") .. "; "):gmatch("(.-); ") do
    local part, line, column, message = item:match("^([%w_]+): line (%d+), column (%d+): (.*)$")
    if part then
      out[#out + 1] = { part = part, line = tonumber(line), column = tonumber(column), message = message }
    elseif item ~= "" then
      local p, rest = item:match("^([%w_]+): (.*)$")
      out[#out + 1] = { part = p, message = rest or item }
    end
  end
  return out
end

local function failure(d, template)
  local out = { '<h2>Why it failed</h2>' }
  for _, p in ipairs(M.problems(d.error)) do
    out[#out + 1] = '<div class="problem"><div class="where">' .. esc(p.part or "delivery")
      .. (p.line and (", line " .. p.line .. ", column " .. p.column) or "") .. "</div><div>"
      .. esc(p.message) .. "</div>"
      .. (p.line and template and excerpt(template[p.part], p.line, p.column) or "") .. "</div>"
  end
  return table.concat(out)
end

local function preview(m, d)
  local t = d.type
  if t == "email" then
    local parts = {
      '<div class="grid2"><div><h2>HTML</h2>',
      m.body and ('<iframe class="email" sandbox="" referrerpolicy="no-referrer" title="HTML part" src="/messages/'
        .. url(d.id) .. '/html"></iframe>') or '<p class="muted">(no HTML part)</p>',
      "</div><div><h2>Text</h2>",
      m.body_plain and ("<pre>" .. esc(m.body_plain) .. "</pre>") or '<p class="muted">(no text part)</p>',
      "</div></div>",
    }
    return table.concat(parts)
  elseif t == "push" then
    return '<h2>Push notification</h2><div class="phone"><div class="notification"><div class="title">'
      .. esc(m.title) .. "</div><div>" .. esc(m.message) .. "</div>"
      .. (m.link and ('<div class="muted">' .. esc(m.link) .. "</div>") or "") .. "</div></div>"
  elseif t == "sms" or t == "whatsapp" then
    return "<h2>" .. (t == "sms" and "SMS" or "WhatsApp") .. '</h2><div class="phone"><div class="bubble">'
      .. esc(m.body) .. "</div></div>"
  end
  return "<h2>" .. (t == "in_app" and "In-app message" or "Inbox message") .. '</h2><div class="card"><div class="title">'
    .. esc(m.title) .. "</div><div>" .. esc(m.body) .. "</div></div>"
end

--- `/messages/<delivery_id>`.
function M.show(sb, ctx)
  local d = sb.deliveries[ctx.arg]
  if not d then return nil end
  local m = message_of(sb, d.id)
  local source, template = source_of(sb, d)
  local fields = {
    { "Status", html.badge(d.status) }, { "Channel", esc(d.type) }, { "Recipient", recipient(sb, d, m) },
    { "Template", source }, { "Delivery id", "<code>" .. esc(d.id) .. "</code>" }, { "Queued", html.time(d.created_at) },
    { "Trigger", d.trigger_id and esc(d.trigger_id) },
  }
  if m and d.type == "email" then
    for _, k in ipairs({ "from", "to", "reply_to", "bcc", "subject", "preheader" }) do
      if m[k] then fields[#fields + 1] = { k:gsub("_", " "):gsub("^%l", string.upper), esc(m[k]) } end
    end
  end
  local body = { "<h1>", headline(d, m) ~= "" and headline(d, m) or esc(d.type .. " message"), "</h1>",
    '<div class="panel">', html.fields(fields), "</div>" }
  if d.status == "failed" then
    body[#body + 1] = failure(d, template)
  elseif d.status == "suppressed" then
    body[#body + 1] = '<div class="problem warning">' .. esc(d.error or "suppressed") .. "</div>"
  end
  if m then body[#body + 1] = preview(m, d) end
  body[#body + 1] = "<h2>message_data</h2>" .. html.pre_json(d.message_data)
  -- A delivery does not change once made: no refresh (which would reload the iframe).
  return { title = "Message " .. d.id, body = table.concat(body), static = true }
end

--- `/messages/<delivery_id>/html`: the HTML part alone, for the sandboxed iframe.
function M.html_part(sb, ctx)
  local m = message_of(sb, ctx.arg)
  if not m or not m.body then return nil end
  return { raw = { status = 200, body = m.body, headers = {
    ["Content-Type"] = "text/html; charset=utf-8", ["Content-Security-Policy"] = html.EMAIL_CSP,
    ["X-Content-Type-Options"] = "nosniff", ["Referrer-Policy"] = "no-referrer", ["Cache-Control"] = "no-store",
  } } }
end

return M
