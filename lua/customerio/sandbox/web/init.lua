--- The sandbox's web inbox: server-rendered pages over a sandbox's state (`make sandbox`,
-- then open http://127.0.0.1:8180/).
--
--     /                    Messages: every delivery, newest first
--     /messages/<id>       one delivery: the rendered parts, or the Liquid error and message_data
--     /messages/<id>/html  the HTML part alone (shown in a sandboxed iframe, under a CSP without scripts)
--     /people[?q=]         people, searchable by id, email or cio_id; removed people; suppressions
--     /people/<ident>      attributes with their JSON types, segments, events, devices, merges
--     /segments[/<id>]     segments and their members
--     /broadcasts[/<id>]   broadcasts, their triggers and recipients
--     /requests[/<n>]      every API request received, credentials masked
--     /templates[/<id>]    edit a transactional template, preview it with customerio.preview
--     /templates/<id>/html the HTML part of the last preview (sandboxed iframe)
--     /assets/inbox.css, /assets/inbox.js
--
-- `handle(sb, req)` is independent of nginx (the server glue calls it), so the pages can be
-- rendered in-process too. Every page carries a Content-Security-Policy that allows only the
-- sandbox's own script and stylesheet; the version in `<body data-version>` and
-- `/__sandbox/version` let inbox.js refresh the page when the state changes.
-- @module customerio.sandbox.web
local html = require("customerio.sandbox.web.html")
local assets = require("customerio.sandbox.web.assets")
local messages = require("customerio.sandbox.web.messages")
local people = require("customerio.sandbox.web.people")
local audiences = require("customerio.sandbox.web.audiences")
local requests = require("customerio.sandbox.web.requests")
local templates = require("customerio.sandbox.web.templates")

local esc = html.esc

local M = {}

local PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  .. "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'"

local NAV = {
  { "messages", "/", "Messages" },
  { "people", "/people", "People" },
  { "segments", "/segments", "Segments" },
  { "broadcasts", "/broadcasts", "Broadcasts" },
  { "requests", "/requests", "Requests" },
  { "templates", "/templates", "Templates" },
}

local function counts(sb)
  local n_templates = 0
  for _ in pairs(sb.transactional) do n_templates = n_templates + 1 end
  return {
    messages = #sb.delivery_list, people = #sb.state.order, segments = #sb.segments.list,
    broadcasts = #sb.broadcast_list, requests = sb.request_serial, templates = n_templates,
  }
end

local function layout(sb, section, title, body, static)
  local n = counts(sb)
  local nav = { '<nav id="nav">' }
  for _, item in ipairs(NAV) do
    nav[#nav + 1] = '<a href="' .. item[2] .. '"' .. (item[1] == section and ' class="current"' or "") .. ">"
      .. esc(item[3]) .. '<span class="count">' .. n[item[1]] .. "</span></a>"
  end
  nav[#nav + 1] = "</nav>"
  return table.concat({
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<title>", esc(title), " · Customer.io sandbox</title>",
    '<link rel="stylesheet" href="/assets/inbox.css"><script src="/assets/inbox.js" defer></script></head>',
    -- Pages that do not change (a message) or hold a form (templates) are not refreshed.
    '<body data-version="', esc(sb.version), '" data-section="', esc(section), '"',
    (static or section == "templates") and " data-static" or "", ">",
    '<header class="top"><a class="brand" href="/">Customer.io sandbox</a>', table.concat(nav),
    '<span class="live" id="live">live</span></header>',
    '<main id="main">', body, "</main></body></html>\n",
  })
end

local function page(status, text)
  return { status = status, headers = {
    ["Content-Type"] = "text/html; charset=utf-8", ["Content-Security-Policy"] = PAGE_CSP,
    ["X-Content-Type-Options"] = "nosniff", ["Referrer-Policy"] = "no-referrer", ["Cache-Control"] = "no-store",
  }, body = text }
end

local function not_found(sb, what)
  return page(404, layout(sb, "", "Not found", "<h1>Not found</h1><p>" .. esc(what) .. "</p>"))
end

-- Routes: a Lua pattern over the path, the section, the page function.
local ROUTES = {
  { "^/$", "messages", messages.list },
  { "^/messages/?$", "messages", messages.list },
  { "^/messages/([^/]+)/html$", "messages", messages.html_part },
  { "^/messages/([^/]+)$", "messages", messages.show },
  { "^/people/?$", "people", people.list },
  { "^/people/([^/]+)$", "people", people.show },
  { "^/segments/?$", "segments", audiences.segments },
  { "^/segments/([^/]+)$", "segments", audiences.segment },
  { "^/broadcasts/?$", "broadcasts", audiences.broadcasts },
  { "^/broadcasts/([^/]+)$", "broadcasts", audiences.broadcast },
  { "^/requests/?$", "requests", requests.list },
  { "^/requests/([^/]+)$", "requests", requests.show },
  { "^/templates/?$", "templates", templates.list },
  { "^/templates/([^/]+)/html$", "templates", templates.html_part },
  { "^/templates/([^/]+)$", "templates", templates.show },
}

local function header(headers, name)
  for k, v in pairs(headers or {}) do
    if k:lower() == name then return type(v) == "table" and v[1] or v end
  end
  return nil
end

-- A form posted from another site must not change the sandbox (browsers send Origin on POST).
local function cross_site(req)
  local origin = header(req.headers, "origin")
  if not origin or origin == "null" then return origin == "null" end
  local host = header(req.headers, "host")
  return origin:gsub("^https?://", "") ~= host
end

--- Answer one request for a page or an asset.
-- @param sb the sandbox
-- @tparam table req `{method, path, query, headers, body}` (path not decoded)
-- @treturn table `{status, headers, body}`
function M.handle(sb, req)
  local asset = req.path:match("^/assets/([%w%.%-]+)$")
  if asset and assets[asset] and assets.types[asset] then
    return { status = 200, headers = { ["Content-Type"] = assets.types[asset], ["Cache-Control"] = "no-cache",
      ["X-Content-Type-Options"] = "nosniff" }, body = assets[asset] }
  end
  if req.method ~= "GET" and req.method ~= "HEAD" and req.method ~= "POST" then
    return page(405, layout(sb, "", "Method not allowed", "<h1>Method not allowed</h1>"))
  end
  if req.method == "POST" and cross_site(req) then
    return page(403, layout(sb, "", "Forbidden", "<h1>Forbidden</h1><p>Cross-site form posts are refused.</p>"))
  end
  for _, route in ipairs(ROUTES) do
    local arg = req.path:match(route[1])
    if arg or req.path:find(route[1]) then
      local ctx = { method = req.method, query = html.form(req.query), form = html.form(req.body),
        arg = arg and html.unescape(arg) }
      local out = route[3](sb, ctx)
      if out == nil then return not_found(sb, "Nothing at " .. req.path) end
      if out.raw then return out.raw end
      if req.method == "POST" then sb.version = sb.version + 1 end
      return page(out.status or 200, layout(sb, route[2], out.title, out.body, out.static))
    end
  end
  return not_found(sb, "Nothing at " .. req.path .. ". The API is under /api/ and /v1/, the control API under /__sandbox/.")
end

return M
