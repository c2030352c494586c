--- Segments and broadcasts pages of the web inbox: members, broadcast triggers with their
-- status, recipients and errors.
-- @module customerio.sandbox.web.audiences
local html = require("customerio.sandbox.web.html")

local esc, url = html.esc, html.url

local M = {}

local function person_link(sb, cio_id, fallback)
  local p = cio_id and sb.state.people[cio_id]
  if not p then return esc(fallback or (cio_id and ("cio_" .. cio_id)) or "") end
  return '<a href="/people/cio_' .. url(p.cio_id) .. '">' .. esc(p.id or p.email or ("cio_" .. p.cio_id)) .. "</a>"
end

local function segment_link(sb, id)
  local seg = sb.segments.by_id[tonumber(id)]
  return '<a href="/segments/' .. url(id) .. '">' .. esc(seg and seg.name or ("Segment " .. tostring(id))) .. "</a>"
end

--- `/segments`.
function M.segments(sb)
  local rows, links = {}, {}
  for _, seg in ipairs(sb.segments.list) do
    rows[#rows + 1] = { esc(seg.id), esc(seg.name), esc(seg.type), tostring(#sb.segments:members(seg.id)) }
    links[#links + 1] = "/segments/" .. url(seg.id)
  end
  return { title = "Segments", body = "<h1>Segments</h1>" .. html.table({ "id", "Name", "Type", "Members" }, rows,
    "No segments. Add them with POST /__sandbox/segments (docs/sandbox.md).", links) }
end

--- `/segments/<id>`.
function M.segment(sb, ctx)
  local seg = sb.segments.by_id[tonumber(ctx.arg)]
  if not seg then return nil end
  local members, links = {}, {}
  for _, p in ipairs(sb.segments:members(seg.id)) do
    members[#members + 1] = { esc(p.id or "—"), esc(p.email or "—"), "<code>" .. esc(p.cio_id) .. "</code>" }
    links[#links + 1] = "/people/cio_" .. url(p.cio_id)
  end
  local used = {}
  for _, b in ipairs(sb.broadcast_list) do
    if tostring(b.segment) == tostring(seg.id) then
      used[#used + 1] = '<a href="/broadcasts/' .. url(b.id) .. '">' .. esc(b.name) .. "</a>"
    end
  end
  local body = {
    "<h1>", esc(seg.name), "</h1>", '<div class="panel">',
    html.fields({ { "id", esc(seg.id) }, { "Type", esc(seg.type) }, { "Description", esc(seg.description) },
      { "Used by", table.concat(used, ", ") } }),
    "</div>",
    seg.filter and ("<h2>Filter</h2>" .. html.pre_json(seg.filter)) or "",
    "<h2>Members (", tostring(#members), ")</h2>",
    html.table({ "id", "email", "cio_id" }, members, "Nobody matches.", links),
  }
  return { title = seg.name, body = table.concat(body) }
end

local function triggers_of(sb, b)
  local out = {}
  for _, t in ipairs(sb.trigger_list) do
    if tostring(t.broadcast_id) == tostring(b.id) then out[#out + 1] = t end
  end
  return out
end

--- `/broadcasts`.
function M.broadcasts(sb)
  local rows, links = {}, {}
  for _, b in ipairs(sb.broadcast_list) do
    local audience = b.segment and segment_link(sb, b.segment) or (b.filter and "filter") or "per trigger"
    rows[#rows + 1] = { esc(b.id), esc(b.name), esc(b.type), audience, tostring(#triggers_of(sb, b)) }
    links[#links + 1] = "/broadcasts/" .. url(b.id)
  end
  return { title = "Broadcasts", body = "<h1>Broadcasts</h1>" .. html.table({ "id", "Name", "Channel", "Audience",
    "Triggers" }, rows, "No broadcasts. Add them with POST /__sandbox/broadcasts (docs/sandbox.md).", links) }
end

--- `/broadcasts/<id>`: its template, audience and every trigger with its recipients.
function M.broadcast(sb, ctx)
  local b = sb.broadcasts[ctx.arg]
  if not b then return nil end
  local body = {
    "<h1>", esc(b.name), "</h1>", '<div class="panel">',
    html.fields({ { "id", esc(b.id) }, { "Channel", esc(b.type) }, { "Created", html.time(b.created_at) },
      { "Segment", b.segment and segment_link(sb, b.segment) } }),
    "</div>",
    b.filter and ("<h2>Audience filter</h2>" .. html.pre_json(b.filter)) or "",
  }
  local triggers = triggers_of(sb, b)
  body[#body + 1] = "<h2>Triggers (" .. #triggers .. ")</h2>"
  if #triggers == 0 then body[#body + 1] = '<p class="empty">Not triggered yet.</p>' end
  for i = #triggers, 1, -1 do
    local t = triggers[i]
    local rows, links = {}, {}
    for _, id in ipairs(t.deliveries) do
      local d = sb.deliveries[id]
      rows[#rows + 1] = { "<code>" .. esc(id) .. "</code>", person_link(sb, d and d.cio_id), html.badge(d and d.status or "?") }
      links[#links + 1] = "/messages/" .. url(id)
    end
    for _, e in ipairs(t.errors) do
      rows[#rows + 1] = { "", person_link(sb, e.cio_id, e.id or e.email), html.badge("failed") .. " " .. esc(e.reason) }
      links[#links + 1] = false
    end
    for _, s in ipairs(t.skipped) do
      rows[#rows + 1] = { "", person_link(sb, s.cio_id), html.badge("skipped", "warn") .. " " .. esc(s.reason) }
      links[#links + 1] = false
    end
    local status = t.processed_at and (#t.errors > 0 and html.badge("processed with errors", "warn")
      or html.badge("processed", "ok")) or html.badge("queued")
    body[#body + 1] = '<div class="panel"><h2>Trigger ' .. esc(t.id) .. " " .. status .. "</h2>"
      .. html.fields({ { "Created", html.time(t.created_at) }, { "Recipients", tostring(#t.deliveries) },
        { "Errors", tostring(#t.errors) }, { "Skipped", tostring(#t.skipped) } })
      .. "</div>" .. html.table({ "Delivery", "Recipient", "Status" }, rows, "No recipients.", links)
  end
  body[#body + 1] = "<h2>Template</h2>" .. html.pre_json(b.template)
  return { title = b.name, body = table.concat(body) }
end

return M
