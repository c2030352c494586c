--- People pages of the web inbox: search by id, email or cio_id; one person's attributes
-- with their JSON types, segments, events, devices, merges, deleted and suppressed state.
-- @module customerio.sandbox.web.people
local html = require("customerio.sandbox.web.html")

local esc, url = html.esc, html.url

local M = {}

local function label(p)
  return p.id or p.email or ("cio_" .. p.cio_id)
end

local function link(p)
  return '<a href="/people/cio_' .. url(p.cio_id) .. '">' .. esc(label(p)) .. "</a>"
end

local function segment_links(sb, p)
  local out = {}
  for _, seg in ipairs(sb.segments:of(p)) do
    out[#out + 1] = '<a href="/segments/' .. url(seg.id) .. '">' .. esc(seg.name or seg.id) .. "</a>"
  end
  return table.concat(out, ", ")
end

local function matches(p, q)
  if q == "" then return true end
  for _, v in ipairs({ p.id, p.email, p.cio_id, "cio_" .. p.cio_id }) do
    if type(v) == "string" and v:lower():find(q, 1, true) then return true end
  end
  return false
end

local function removal(sb, p)
  if p.merged_into then
    local into = sb.state.people[p.merged_into]
    return html.badge("merged", "merged") .. " into " .. (into and link(into) or esc("cio_" .. p.merged_into))
  end
  local suppressed = sb.state.suppressed[p.cio_id] or (p.id and sb.state.suppressed[p.id])
    or (p.email and sb.state.suppressed[p.email:lower()])
  if suppressed then return html.badge("suppressed") end
  return html.badge("deleted")
end

--- `/people?q=`: everyone (searchable), then removed people and suppressed identifiers.
function M.list(sb, ctx)
  local q = (ctx.query.q or ""):lower()
  local rows, links, total = {}, {}, 0
  local all = sb.state:list()
  for i = #all, 1, -1 do
    local p = all[i]
    local match = matches(p, q)
    if match then total = total + 1 end
    if match and #rows < html.MAX_ROWS then
      local n = 0
      for _ in pairs(p.attributes) do n = n + 1 end
      rows[#rows + 1] = { esc(p.id or "—"), esc(p.email or "—"), "<code>" .. esc(p.cio_id) .. "</code>",
        tostring(n), segment_links(sb, p), html.time(p.updated_at or p.created_at) }
      links[#links + 1] = "/people/cio_" .. url(p.cio_id)
    end
  end
  local body = {
    "<h1>People</h1>",
    '<form class="search" method="get" action="/people"><input type="search" name="q" value="', esc(ctx.query.q),
    '" placeholder="Search by id, email or cio_id" aria-label="Search people"><button type="submit">Search</button></form>',
    html.table({ "id", "email", "cio_id", "Attributes", "Segments", "Updated (UTC)" }, rows,
      q ~= "" and "Nobody matches." or "Nobody yet. Identify someone through the Track API.", links),
    html.more(#rows, total),
  }
  local removed, rlinks = {}, {}
  for i = #sb.removed, 1, -1 do
    local r = sb.removed[i]
    if matches(r.person, q) then
      removed[#removed + 1] = { esc(label(r.person)), esc(r.person.email or "—"), removal(sb, r.person), html.time(r.at) }
      rlinks[#rlinks + 1] = "/people/cio_" .. url(r.person.cio_id)
    end
  end
  if #removed > 0 then
    body[#body + 1] = "<h2>Removed</h2>" .. html.table({ "Person", "email", "State", "When (UTC)" }, removed, nil, rlinks)
  end
  local suppressed = html.sorted_keys(sb.state.suppressed)
  if #suppressed > 0 then
    local items = {}
    for i, s in ipairs(suppressed) do items[i] = "<code>" .. esc(s) .. "</code>" end
    body[#body + 1] = '<h2>Suppressed identifiers</h2><p>' .. table.concat(items, " ")
      .. '</p><p class="muted">Identifying these again is refused until they are unsuppressed.</p>'
  end
  return { title = "People", body = table.concat(body) }
end

local function find(sb, ident)
  local p = sb.state:find(ident)
  if p then return p end
  local cio = ident:match("^cio_(.+)$")
  for i = #sb.removed, 1, -1 do
    local r = sb.removed[i].person
    if r.cio_id == cio or r.id == ident or (r.email and r.email:lower() == ident:lower()) then return r end
  end
  return nil
end

local function value_cell(v)
  local t = html.json_type(v)
  if t == "array" or t == "object" then return "<pre>" .. esc(html.json(v)) .. "</pre>" end
  if t == "string" then return esc(v) end
  return "<code>" .. esc(html.json(v)) .. "</code>"
end

--- `/people/<ident>` (an id, an email or `cio_<cio_id>`).
function M.show(sb, ctx)
  local p = find(sb, ctx.arg)
  if not p then return nil end
  local state = p.deleted and removal(sb, p) or html.badge("active")
  local body = {
    "<h1>", esc(label(p)), "</h1>", '<div class="panel">',
    html.fields({
      { "State", state }, { "id", p.id and esc(p.id) }, { "email", p.email and esc(p.email) },
      { "cio_id", "<code>" .. esc(p.cio_id) .. "</code>" }, { "Created", html.time(p.created_at) },
      { "Updated", html.time(p.updated_at) },
      { "Segments", not p.deleted and (segment_links(sb, p) ~= "" and segment_links(sb, p)
        or '<span class="muted">none</span>') },
    }), "</div>",
  }
  if p.merged and #p.merged > 0 then
    local rows = {}
    for i, m in ipairs(p.merged) do
      rows[i] = { esc(m.id or "—"), esc(m.email or "—"), "<code>" .. esc(m.cio_id) .. "</code>", html.time(m.at) }
    end
    body[#body + 1] = "<h2>Merged into this profile</h2>" .. html.table({ "id", "email", "cio_id", "When (UTC)" }, rows)
  end
  local rows = {}
  for _, k in ipairs(html.sorted_keys(p.attributes)) do
    local v = p.attributes[k]
    rows[#rows + 1] = { "<code>" .. esc(k) .. "</code>", '<span class="type">' .. html.json_type(v) .. "</span>", value_cell(v) }
  end
  body[#body + 1] = "<h2>Attributes</h2>" .. html.table({ "Name", "JSON type", "Value" }, rows, "No attributes.")
  local events = {}
  for i = #p.events, 1, -1 do
    local e = p.events[i]
    events[#events + 1] = { esc(e.name), esc(e.type), html.time(e.timestamp),
      next(e.data or {}) and ("<pre>" .. esc(html.json(e.data)) .. "</pre>") or "" }
  end
  body[#body + 1] = "<h2>Events</h2>" .. html.table({ "Name", "Type", "Time (UTC)", "Data" }, events, "No events.")
  local devices = {}
  for _, token in ipairs(p.device_order) do
    local d = p.devices[token]
    devices[#devices + 1] = { "<code>" .. esc(d.token) .. "</code>", esc(d.platform), html.time(d.last_used),
      next(d.attributes or {}) and ("<pre>" .. esc(html.json(d.attributes)) .. "</pre>") or "" }
  end
  body[#body + 1] = "<h2>Devices</h2>" .. html.table({ "Token", "Platform", "Last used (UTC)", "Attributes" }, devices,
    "No devices.")
  local sent, links = {}, {}
  for i = #sb.delivery_list, 1, -1 do
    local d = sb.delivery_list[i]
    if d.cio_id == p.cio_id then
      sent[#sent + 1] = { html.time(d.created_at), esc(d.type), html.badge(d.status) }
      links[#links + 1] = "/messages/" .. url(d.id)
    end
  end
  body[#body + 1] = "<h2>Messages</h2>" .. html.table({ "Time (UTC)", "Channel", "Status" }, sent, "No messages.", links)
  return { title = label(p), body = table.concat(body) }
end

return M
