-- The sandbox over HTTP for specs: nginx from tools/sandbox.conf started by tools/nginx.lua on a
-- free port (always stopped, also when its set-up fails), a control client for /__sandbox/...,
-- and stop(). Each spec file that needs one starts its own.
local Client = require("customerio.http.client")
local nginx = require("tools.nginx")

local M = {}

--- Start a sandbox; returns `{port, prefix, base, control = function(method, path, body), stop}`.
function M.start()
  local n = nginx.start({ name = "cio-sbspec", template = nginx.root .. "/tools/sandbox.conf",
    ready = "/__sandbox/outbox" })
  local h = { port = n.port, prefix = n.prefix, base = n.url }
  local control = Client.new({ base_url = h.base .. "/__sandbox", user_agent = "spec", retry = false })
  function h.control(method, path, body)
    local res, err = control:request(method, path, { body = body })
    if not res and err.status ~= 404 then error(tostring(err), 2) end
    return res
  end
  function h.stop()
    n:stop()
  end
  return h
end

return M
