-- customerio.Queue after fork(): the child's copy of a queue has no worker thread (threads do
-- not survive fork), so it refuses operations with an error that says why instead of taking
-- them and dropping them at exit; the child can make a queue of its own; the parent's queue is
-- unaffected. Lua has no fork(): spec/support/fork_host.c is a small interpreter that has one.
local server = require("support.server")

local shell = require("tools.shell")
local q, sh = shell.q, shell.sh
-- The pkg-config name of the running interpreter's library is its command's name.
local PC = shell.interpreter()

local SCRIPT = [[
local customerio = require("customerio")
local out = assert(io.open(os.getenv("CIO_FORK_OUT"), "w"))
local track = customerio.TrackClient.new("s", "k", { url = os.getenv("CIO_FORK_URL") .. "/api/v1" })
local q = customerio.Queue.new(track, { flush_interval = 60000, close_timeout = 60000 })
assert(q:identify("parent-before", {}))
local pid = fork_process()
if pid == 0 then
  local ok, err = q:identify("child", {})
  out:write("push ", tostring(ok), " ", tostring(err and err.kind), " ", tostring(err), "\n")
  ok, err = q:flush(1000)
  out:write("flush ", tostring(ok), " ", tostring(err and err.kind), "\n")
  ok, err = q:close()
  out:write("close ", tostring(ok), " ", tostring(err and err.kind), "\n")
  out:write("closed ", tostring(q:stats().closed), "\n")
  local q2 = customerio.Queue.new(track, { flush_interval = 60000 })
  assert(q2:identify("child-own", {}))
  out:write("own ", tostring(q2:flush(5000)), "\n")
  q2:close()
  out:close()
  exit_process(0) -- exit() with the parent's queue still referenced: its atexit hook must skip it
end
assert(q:identify("parent-after", {}))
local status = wait_process(pid)
out:write("child exit ", tostring(status), "\n")
out:write("parent flush ", tostring(q:flush(5000)), "\n")
q:close()
out:close()
]]

describe("customerio.Queue after fork()", function()
  -- The host program is built here without the sanitizers, so it cannot load make
  -- check-memory's instrumented core; make test runs this spec.
  if os.getenv("ASAN_OPTIONS") ~= nil or (os.getenv("LUA_CPATH") or ""):find("/build/asan", 1, true) then
    pending("the fork host is not built with the sanitizers (make test runs this spec)")
    return
  end
  it("refuses operations in the child, which can make its own queue; the parent's is unaffected", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    local host, script, out = dir .. "/fork_host", dir .. "/fork.lua", dir .. "/out.txt"
    local built, log = sh("cc -std=c99 $(pkg-config --cflags " .. PC .. ") -o " .. q(host) ..
      " spec/support/fork_host.c $(pkg-config --libs " .. PC .. ")")
    assert(built, log)
    local f = assert(io.open(script, "w"))
    f:write(SCRIPT)
    f:close()
    server.reset()
    local ok, output = sh("CIO_FORK_URL=" .. q(server.url()) .. " CIO_FORK_OUT=" .. q(out) .. " " .. q(host) .. " " .. q(script))
    assert(ok, output)
    f = assert(io.open(out, "r"))
    local text = f:read("*a")
    f:close()
    os.execute("rm -rf " .. q(dir))

    assert.matches("push nil forked .*this process is a fork%(%) child", text)
    assert.matches("create a new queue in the child", text)
    assert.matches("flush nil forked", text)
    assert.matches("close nil forked", text)
    assert.matches("closed true", text)
    assert.matches("own true", text)
    assert.matches("child exit 0", text)
    assert.matches("parent flush true", text)

    local ids = {}
    for _, r in ipairs(server.requests("/api/v2/batch")) do
      for _, op in ipairs(r.json.batch) do ids[#ids + 1] = op.identifiers.id end
    end
    table.sort(ids)
    -- The parent's operations once each (from the parent), the child's own queue's, nothing else.
    assert.are.same({ "child-own", "parent-after", "parent-before" }, ids)
  end)
end)
