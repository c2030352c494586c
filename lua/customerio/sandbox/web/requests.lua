--- Requests pages of the web inbox: every API call the sandbox received (credentials masked
-- when recorded, see `Sandbox:record`), so a client author sees what their code sent.
-- @module customerio.sandbox.web.requests
local html = require("customerio.sandbox.web.html")

local esc, url = html.esc, html.url

local M = {}

local function when(r)
  return html.time(r.at) .. string.format('<span class="muted">.%03d</span>', math.floor((r.at % 1) * 1000))
end

--- `/requests`: newest first.
function M.list(sb)
  local rows, links = {}, {}
  for i = #sb.requests, 1, -1 do
    local r = sb.requests[i]
    rows[#rows + 1] = { tostring(r.seq), when(r), "<code>" .. esc(r.method) .. "</code>",
      "<code>" .. esc(r.path) .. (r.query and ("?" .. esc(r.query)) or "") .. "</code>",
      html.badge(r.status == 444 and "no response" or r.status, tostring(r.status))
        .. (r.fault and (" " .. html.badge(r.fault, "fault")) or ""),
      r.ms and (tostring(r.ms) .. " ms") or "" }
    links[#links + 1] = "/requests/" .. url(r.seq)
  end
  return { title = "Requests", body = "<h1>Requests</h1>" .. '<p class="muted">The last ' .. #sb.requests
    .. " API requests the sandbox received. Credentials are masked.</p>"
    .. html.table({ "#", "Time (UTC)", "Method", "Path", "Status", "Took" }, rows,
      "No requests yet. Point a client at this sandbox.", links) }
end

--- `/requests/<n>`.
function M.show(sb, ctx)
  local seq = tonumber(ctx.arg)
  local r
  for i = #sb.requests, 1, -1 do
    if sb.requests[i].seq == seq then r = sb.requests[i]; break end
  end
  if not r then return nil end
  local headers = {}
  for i, h in ipairs(r.headers) do headers[i] = { "<code>" .. esc(h[1]) .. "</code>", esc(h[2]) } end
  local body = {
    "<h1><code>", esc(r.method), " ", esc(r.path), "</code></h1>", '<div class="panel">',
    html.fields({ { "Status", html.badge(r.status) }, { "Received", when(r) },
      { "Took", r.ms and (tostring(r.ms) .. " ms") }, { "Query", r.query and ("<code>" .. esc(r.query) .. "</code>") },
      { "Fault", r.fault and html.badge(r.fault, "fault") } }),
    "</div>",
    "<h2>Request headers</h2>", html.table({ "Name", "Value" }, headers, "No headers."),
    '<div class="grid2"><div><h2>Request body</h2>', html.pre_body(r.body),
    "</div><div><h2>Response body</h2>", html.pre_body(r.response), "</div></div>",
  }
  return { title = r.method .. " " .. r.path, body = table.concat(body) }
end

return M
