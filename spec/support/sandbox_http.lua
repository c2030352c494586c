-- The sandbox over HTTP for specs: tools/sandbox --daemon on a free port, a control client for
-- /__sandbox/..., and stop(). Each spec file that needs one starts its own.
local Client = require("customerio.http.client")
local core = require("customerio.core")

local M = {}

-- os.execute returns true on 5.2+ and 0 on 5.1/LuaJIT when the command succeeds.
function M.succeeded(a, _, c)
  return a == true or a == 0 or (a and c == 0)
end

--- Start a sandbox; returns `{port, prefix, base, control = function(method, path, body), stop}`.
function M.start()
  local prefix = assert(io.popen("mktemp -d /tmp/cio-sbspec.XXXXXX")):read("*l")
  local port
  for _ = 1, 20 do
    local try = math.random(20000, 60000)
    if M.succeeded(os.execute("sh tools/sandbox --daemon " .. try .. " " .. prefix .. " 2>/dev/null")) then
      -- Wait until it answers (nginx daemonizes before the worker accepts).
      local probe = Client.new({ base_url = "http://127.0.0.1:" .. try, user_agent = "spec", retry = false, timeout = 500 })
      for _ = 1, 50 do
        local res, err = probe:request("GET", "/__sandbox/version")
        if res or (err and err.status) then port = try; break end
        core.sleep_ms(100)
      end
      if port then break end
      os.execute("sh tools/sandbox --stop " .. prefix)
    end
  end
  assert(port, "could not start the sandbox over HTTP")
  local h = { port = port, prefix = prefix, base = "http://127.0.0.1:" .. port }
  local control = Client.new({ base_url = h.base .. "/__sandbox", user_agent = "spec", retry = false })
  function h.control(method, path, body)
    local res, err = control:request(method, path, { body = body })
    if not res and err.status ~= 404 then error(tostring(err), 2) end
    return res
  end
  function h.stop()
    os.execute("sh tools/sandbox --stop " .. prefix)
    os.execute("rm -rf " .. prefix)
  end
  return h
end

return M
