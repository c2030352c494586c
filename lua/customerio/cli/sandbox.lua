--- `customerio sandbox`: start the local Customer.io sandbox (tools/sandbox: nginx with the
-- Lua module), which prints the URL of its web inbox.
-- @module customerio.cli.sandbox
local cli = require("customerio.cli")

local M = {}

M.HELP = [[
usage: customerio sandbox [--port PORT] [--no-rate-limits]

Start the Customer.io sandbox on 127.0.0.1:PORT (default 8180) in the foreground and print
its URLs: the web inbox, the Track and App API roots, the control API (docs/sandbox.md).
It answers 429 with Retry-After over Customer.io's documented rate limits unless
--no-rate-limits is given.
Ctrl-C stops it. Needs nginx with the Lua module (Debian: nginx, libnginx-mod-http-lua) and a
source checkout of lua-customerio (tools/sandbox); from one, `make sandbox` does the same.
]]

--- Where tools/sandbox is: next to this module's checkout (lua/customerio/cli/ -> tools/).
function M.script()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  for _, candidate in ipairs({ here .. "/../../../tools/sandbox", "tools/sandbox" }) do
    local f = io.open(candidate, "r")
    if f then f:close(); return candidate end
  end
  return nil
end

--- Run `customerio sandbox`.
function M.run(args, env)
  local opts = cli.parse(args, { port = "number", ["no-rate-limits"] = "boolean" })
  if opts.help then env.stdout:write(M.HELP); return 0 end
  if opts[1] then cli.usage_error("unexpected argument " .. opts[1]) end
  local port = opts.port or 8180
  if port < 1 or port > 65535 or port % 1 ~= 0 then cli.usage_error("--port must be a TCP port") end
  local script = M.script()
  if not script then
    env.stderr:write("customerio sandbox: tools/sandbox not found; run it from a lua-customerio checkout ",
      "(make sandbox)\n")
    return 1
  end
  local a, _, c = os.execute(string.format("sh '%s' %s%d", script:gsub("'", "'\\''"),
    opts["no-rate-limits"] and "--no-rate-limits " or "", port))
  return (a == true or a == 0 or c == 0) and 0 or 1
end

return M
