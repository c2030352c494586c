--- Small shell and file helpers of the repository's tools and specs: tools/nginx.lua,
-- spec/support/server.lua, spec/support/ngx_app/launch.lua and the specs that run commands.
-- Plain Lua (5.1, 5.3, 5.4, LuaJIT); uses the sh command.
--
--   local shell = require("tools.shell")   -- the repository root is on the specs' LUA_PATH
--   -- tools/nginx.lua and spec/support/server.lua also run as scripts, without that LUA_PATH:
--   -- they load this file by its path (dofile) next to their own.

local shell = {}

--- `s` as one shell word, single-quoted.
function shell.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs `cmd` through sh; returns what it wrote to stdout.
function shell.capture(cmd)
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("*a")
  p:close()
  return out
end

--- Runs `cmd` through sh, its stderr joined to its stdout; returns whether it exited with
-- status 0, the output, and the exit status.
function shell.sh(cmd)
  local out = shell.capture("(" .. cmd .. ") 2>&1; echo \"::status=$?\"")
  local status = tonumber(out:match("::status=(%d+)%s*$"))
  return status == 0, (out:gsub("::status=%d+%s*$", "")), status
end

--- The command of the interpreter running this code ("luajit", "lua5.4" ...), for child
-- processes that must load the same C core.
function shell.interpreter()
  if type(jit) == "table" then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

--- Runs `cmd` through sh; true when it exited with status 0 (os.execute's return differs
-- between 5.1/LuaJIT without 5.2 compatibility and 5.2+).
function shell.run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end
  return a == true and (c == nil or c == 0)
end

--- `s` without leading and trailing white space.
function shell.trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

--- The bytes of the file at `path`, or nil when it cannot be opened.
function shell.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes `data` to the file at `path` (replacing it); raises on failure.
function shell.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
end

--- Whether a file can be opened for reading at `path`.
function shell.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

--- Sleeps `seconds` (fractions allowed) with the sleep command.
function shell.sleep(seconds)
  shell.run("sleep " .. seconds)
end

--- The absolute directory of the Lua file that calls this, without "/./" parts; `default` is
-- that file's path from the working directory when Lua does not know it (a chunk loaded from
-- a string).
function shell.script_dir(default)
  local src = debug.getinfo(2, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or default
  local dir = file:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then dir = shell.trim(shell.capture("pwd")) .. "/" .. dir end
  return (dir:gsub("/%./", "/"):gsub("/%.$", ""))
end

return shell
