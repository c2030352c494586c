-- The thread queue's durable spool (`spool = dir`, docs/queue.md "Crashes"): a child process
-- killed with SIGKILL at several points loses nothing `enqueue` acknowledged, and its replay
-- keeps event ids and each person's order; a truncated or corrupt tail is reported and never
-- sent; a file-size limit (EFBIG) and a directory the process may not use reach the caller.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")

local interpreter = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
local FAST_RETRY = { min_timeout = 1, max_timeout = 10, max_retries = 10 }
local DEAD_URL = "http://127.0.0.1:1/api/v1" -- nothing listens there: nothing is acknowledged

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function tmpdir()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function write(path, s, mode)
  local f = assert(io.open(path, mode or "wb"))
  f:write(s)
  f:close()
end

local function ls(dir, pattern)
  local out = {}
  local p = io.popen("ls " .. q(dir) .. " 2>/dev/null")
  for name in p:lines() do
    if name:match(pattern) then out[#out + 1] = name end
  end
  p:close()
  table.sort(out)
  return out
end

-- The operations the server received under a path prefix, in arrival order (batch order within).
local function received(prefix)
  local out = {}
  for _, r in ipairs(server.requests(prefix)) do
    local v = core.json_decode(r.body)
    for _, op in ipairs(v and v.batch or {}) do out[#out + 1] = op end
  end
  return out
end

-- The indexes a child printed, one complete line each (a line cut by the kill is not counted).
local function printed(path)
  local set, n, max = {}, 0, 0
  for line in (read(path) or ""):gmatch("([^\n]*)\n") do
    local i = tonumber(line)
    if i then
      set[i] = true
      n = n + 1
      if i > max then max = i end
    end
  end
  return set, n, max
end

-- A child Lua process: `script` is run with the arguments; returns its pid.
local function spawn(dir, script, args, prefix)
  local file = dir .. ".child.lua"
  write(file, script)
  local pidfile = dir .. ".pid"
  os.remove(pidfile)
  sh((prefix or "") .. "sh -c " .. q("echo $$ >" .. q(pidfile) .. "; exec " .. interpreter .. " " .. q(file) .. " "
    .. args .. " >" .. q(dir .. ".out") .. " 2>" .. q(dir .. ".err")) .. " &")
  local pid
  for _ = 1, 500 do
    pid = tonumber(read(pidfile) or "")
    if pid then break end
    sh("sleep 0.01")
  end
  return assert(pid, "child did not start")
end

local function alive(pid)
  return sh("kill -0 " .. pid .. " 2>/dev/null")
end

local function wait_dead(pid)
  for _ = 1, 3000 do
    if not alive(pid) then return true end
    sh("sleep 0.01")
  end
  return false
end

-- Wait until the child printed at least n lines (or died).
local function wait_lines(dir, pid, n)
  for _ = 1, 6000 do
    local _, count = printed(dir .. ".out")
    if count >= n or not alive(pid) then return count end
    sh("sleep 0.01")
  end
  return -1
end

local function cleanup(dir)
  sh("rm -rf " .. q(dir) .. " " .. q(dir) .. ".*")
end

-- The child of the SIGKILL test: identify updates and events, alternating, for 10 people;
-- prints each index once enqueue returned true, then waits to be killed.
local KILL_CHILD = [[
local url, dir, n, interval = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local customerio = require("customerio")
local track = customerio.TrackClient.new("child", "childkey", { url = url .. "/child/api/v1" })
local q = customerio.Queue.new(track, { spool = dir, flush_interval = interval, on_error = function() end })
for i = 1, n do
  local p = "p" .. (i % 10)
  local ok, err
  if i % 2 == 1 then ok, err = q:identify(p, { n = i }) else ok, err = q:track(p, "ev", { i = i }) end
  if not ok then io.stderr:write(tostring(err), "\n") os.exit(3) end
  io.stdout:write(i, "\n")
  io.stdout:flush()
end
while true do q:poll() os.execute("sleep 0.05") end
]]

describe("customerio.Queue spool", function()
  local function replay_queue(dir, opts)
    opts = opts or {}
    opts.spool = dir
    if opts.retry == nil then opts.retry = FAST_RETRY end
    local track = customerio.TrackClient.new("replay", "replaykey", { url = server.url() .. "/replay/api/v1" })
    return customerio.Queue.new(track, opts)
  end

  describe("a child killed with SIGKILL", function()
    -- kill after `lines` printed lines of `total`; interval: the child's flush_interval (a
    -- large one with few operations: no batch leaves, so nothing was acknowledged before the kill).
    local function run(lines, interval, total)
      server.reset()
      local dir = tmpdir()
      local pid = spawn(dir, KILL_CHILD, q(server.url()) .. " " .. q(dir) .. " " .. (total or 40000) .. " " .. interval)
      local seen = wait_lines(dir, pid, lines)
      assert.is_true(alive(pid), "child ended early: " .. tostring(read(dir .. ".err")))
      assert.is_true(seen >= lines)
      sh("kill -9 " .. pid)
      assert.is_true(wait_dead(pid))
      local set, count, max = printed(dir .. ".out")
      assert.is_true(count >= lines)

      local errors_seen = {}
      local rq = replay_queue(dir, { on_error = function(ops, err) errors_seen[#errors_seen + 1] = { ops, err } end })
      local replayed = rq:stats().replayed
      assert.is_true(rq:flush(60000))
      assert.are.same({}, errors_seen)
      assert.is_true(rq:close())

      local child_ops, replay_ops = received("/child/api/v2/batch"), received("/replay/api/v2/batch")
      if interval >= 600000 then -- nothing had left: all of it came from the spool
        assert.are.equal(0, #child_ops)
        assert.are.equal(count, replayed)
      end
      -- Every printed operation arrived at least once; nothing the child did not make.
      local got, ids, id_of = {}, {}, {}
      local function note(op)
        local i = op.action == "identify" and op.attributes.n or op.attributes.i
        assert.is_true(i >= 1 and i <= max + 1, "an operation the child did not enqueue: " .. tostring(i))
        got[i] = true
        if op.action == "event" then
          assert.is_string(op.id)
          assert.is_true(ids[op.id] == nil or ids[op.id] == i, "one id for two events")
          assert.is_true(id_of[i] == nil or id_of[i] == op.id, "a replayed event changed its id")
          ids[op.id], id_of[i] = i, op.id
        end
      end
      for _, op in ipairs(child_ops) do note(op) end
      for _, op in ipairs(replay_ops) do note(op) end
      for i in pairs(set) do assert.is_true(got[i], "printed operation " .. i .. " was never delivered") end
      local nids, nevents = 0, 0
      for _ in pairs(ids) do nids = nids + 1 end
      for i in pairs(got) do if i % 2 == 0 then nevents = nevents + 1 end end
      assert.are.equal(nevents, nids)
      -- Each person's identify updates: in order within each process, and the last one wins.
      local function in_order(list)
        local last = {}
        for _, op in ipairs(list) do
          if op.action == "identify" then
            local p = op.identifiers.id
            assert.is_true((last[p] or 0) <= op.attributes.n, "person " .. p .. " out of order")
            last[p] = op.attributes.n
          end
        end
        return last
      end
      local final = in_order(child_ops)
      for p, n in pairs(in_order(replay_ops)) do final[p] = n end
      for i in pairs(got) do
        if i % 2 == 1 then
          local p = "p" .. (i % 10)
          assert.is_true(final[p] >= i, "person " .. p .. " ended on an older update")
        end
      end
      -- Everything acknowledged: the spool is empty.
      assert.are.same({}, ls(dir, "%.log$"))
      cleanup(dir)
      return count
    end

    it("before any batch was acknowledged: the replay delivers everything printed", function()
      run(150, 600000, 150)
    end)

    it("mid-stream, at several points: every printed operation delivered, ids and order kept", function()
      run(2000, 5)
      run(7000, 5)
      run(math.random(300, 5000), 1)
    end)
  end)

  describe("a damaged segment", function()
    -- A spool with `n` events left behind (nothing delivered): the segment's path.
    local function leave(dir, n)
      local track = customerio.TrackClient.new("s", "k", { url = DEAD_URL })
      local lq = customerio.Queue.new(track, {
        spool = dir, flush_interval = 600000, retry = { max_retries = 0 }, on_error = function() end,
      })
      for i = 1, n do assert(lq:track("p" .. i, "ev", { i = i })) end
      lq:close(0) -- gives up at once: the operations stay in the spool
      local logs = ls(dir, "%.log$")
      assert.are.equal(1, #logs)
      return dir .. "/" .. logs[1]
    end

    -- The record boundaries of a segment (offsets of each record's start, and the end).
    local function records(data)
      local function u32(at)
        local a, b, c, d = data:byte(at + 1, at + 4)
        return a + b * 256 + c * 65536 + d * 16777216
      end
      local offs, at = {}, 8
      while at < #data do
        offs[#offs + 1] = at
        at = at + 16 + u32(at + 4) + u32(at + 8)
      end
      return offs, at
    end

    local function replay(dir)
      server.reset()
      local reports = {}
      local rq = replay_queue(dir, { on_error = function(ops, err) reports[#reports + 1] = { ops = ops, err = err } end })
      rq:flush(20000)
      rq:close()
      local sent = {}
      for _, op in ipairs(received("/replay/api/v2/batch")) do sent[#sent + 1] = op.attributes.i end
      table.sort(sent)
      return sent, reports
    end

    local function upto(n)
      local t = {}
      for i = 1, n do t[i] = i end
      return t
    end

    local function check_report(reports, file, why)
      assert.are.equal(1, #reports)
      local err = reports[1].err
      assert.are.same({}, reports[1].ops)
      assert.are.equal("spool", err.kind)
      local msg = tostring(err.message)
      assert.is_truthy(msg:find(file, 1, true), msg)
      assert.is_truthy(msg:find(why, 1, true), msg)
      local off, skipped = msg:match("at offset (%d+); (%d+) byte%(s%) skipped")
      assert.is_truthy(off, msg)
      return tonumber(off), tonumber(skipped)
    end

    it("a record cut in the middle (crash mid-write): the records before it are sent, it is reported", function()
      local dir = tmpdir()
      local file = leave(dir, 20)
      local data = read(file)
      local offs = records(data)
      write(file, data:sub(1, #data - 5))
      local sent, reports = replay(dir)
      assert.are.same(upto(19), sent)
      local off, skipped = check_report(reports, file, "truncated record")
      assert.are.equal(offs[20], off)
      assert.are.equal(#data - 5 - offs[20], skipped)
      cleanup(dir)
    end)

    it("garbage after the last record: every record sent, the garbage reported, never sent", function()
      local dir = tmpdir()
      local file = leave(dir, 20)
      local size = #read(file)
      write(file, string.rep("\255garbage", 40), "ab")
      local sent, reports = replay(dir)
      assert.are.same(upto(20), sent)
      local off, skipped = check_report(reports, file, "bad record magic")
      assert.are.equal(size, off)
      assert.are.equal(320, skipped)
      cleanup(dir)
    end)

    it("a flipped byte in record 10: records 1-9 sent, the rest reported (CRC)", function()
      local dir = tmpdir()
      local file = leave(dir, 20)
      local data = read(file)
      local offs, stop = records(data)
      assert.are.equal(#data, stop)
      local at = offs[10] + 30 -- inside record 10's key or JSON
      write(file, data:sub(1, at) .. string.char((data:byte(at + 1) + 1) % 256) .. data:sub(at + 2))
      local sent, reports = replay(dir)
      assert.are.same(upto(9), sent)
      local off, skipped = check_report(reports, file, "CRC mismatch")
      assert.are.equal(offs[10], off)
      assert.are.equal(#data - offs[10], skipped)
      cleanup(dir)
    end)
  end)

  describe("write failures reach the caller", function()
    it("a file-size limit (EFBIG): nil, err of kind spool; nothing acknowledged is lost", function()
      local dir = tmpdir()
      local child = [[
local url, dir = arg[1], arg[2]
local customerio = require("customerio")
local track = customerio.TrackClient.new("s", "k", { url = url })
local q = customerio.Queue.new(track, { spool = dir, flush_interval = 600000, close_timeout = 0,
  retry = { max_retries = 0 }, on_error = function() end })
for i = 1, 5000 do
  local ok, err = q:track("p" .. (i % 10), "ev", { i = i })
  if not ok then
    print("ERR " .. tostring(err.kind) .. " " .. tostring(err.message))
    local ok2, err2 = q:track("p", "ev", { i = 99999 })
    print("AGAIN " .. tostring(ok2) .. " " .. tostring(err2 and err2.kind))
    print("STATS " .. q:stats().enqueued .. " " .. q:stats().spool_errors)
    os.exit(0)
  end
  print(i)
end
]]
      -- 512 blocks of 512 bytes: 256 KiB per file (the segment file grows by 64 KiB, then 128,
      -- 256, 512: refused). SIGXFSZ ignored, so posix_fallocate fails with EFBIG.
      write(dir .. ".child.lua", child)
      assert.is_true(sh("sh -c " .. q("trap '' XFSZ; ulimit -f 512; exec " .. interpreter .. " " .. q(dir .. ".child.lua")
        .. " " .. q(DEAD_URL) .. " " .. q(dir) .. " >" .. q(dir .. ".out") .. " 2>" .. q(dir .. ".err"))))
      local out = read(dir .. ".out")
      local kind, message = out:match("ERR (%S+) ([^\n]*)")
      assert.are.equal("spool", kind, out .. (read(dir .. ".err") or ""))
      assert.is_truthy(message:find(dir, 1, true), message)
      assert.is_truthy(message:find("File too large", 1, true), message)
      assert.is_truthy(message:find("not queued", 1, true), message)
      assert.is_truthy(out:find("AGAIN nil spool", 1, true), out)
      local set, count = printed(dir .. ".out")
      assert.is_true(count > 10)
      local enqueued, spool_errors = out:match("STATS (%d+) (%d+)")
      assert.are.equal(count, tonumber(enqueued)) -- the failed writes were not queued
      assert.are.equal(2, tonumber(spool_errors))

      server.reset()
      local rq = replay_queue(dir)
      assert.are.equal(count, rq:stats().replayed)
      assert.is_true(rq:flush(20000))
      rq:close()
      local got, n = {}, 0
      for _, op in ipairs(received("/replay/api/v2/batch")) do
        if not got[op.attributes.i] then n = n + 1 end
        got[op.attributes.i] = true
      end
      for i in pairs(set) do assert.is_true(got[i], "operation " .. i .. " lost") end
      assert.are.equal(count, n)
      cleanup(dir)
    end)

    it("a directory the process may not use: Queue.new fails with the path and the reason", function()
      local dir = tmpdir()
      assert.is_true(sh("mkdir -m 0700 " .. q(dir)))
      local child = [[
local customerio = require("customerio")
local track = customerio.TrackClient.new("s", "k", { url = arg[1] })
local ok, err = pcall(customerio.Queue.new, track, { spool = arg[2] })
print(ok and "CREATED" or ("FAILED " .. tostring(err)))
]]
      write(dir .. ".child.lua", child)
      sh("chmod 0644 " .. q(dir .. ".child.lua"))
      -- As root, run the child as nobody (root may write anywhere); otherwise take the write bit away.
      local is_root = (io.popen("id -u"):read("*l")) == "0"
      local prefix = ""
      if is_root then
        prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups "
      else
        sh("chmod 0500 " .. q(dir))
      end
      sh(prefix .. interpreter .. " " .. q(dir .. ".child.lua") .. " " .. q(DEAD_URL) .. " " .. q(dir .. "/spool")
        .. " >" .. q(dir .. ".out") .. " 2>&1")
      local out = read(dir .. ".out") or ""
      assert.is_truthy(out:find("FAILED", 1, true), out)
      assert.is_truthy(out:find(dir, 1, true), out)
      assert.is_truthy(out:find("Permission denied", 1, true), out)
      sh("chmod 0700 " .. q(dir))
      cleanup(dir)
    end)

    it("a path that cannot be a directory: Queue.new fails with a clear error", function()
      local file = os.tmpname()
      local track = customerio.TrackClient.new("s", "k", { url = DEAD_URL })
      local ok, err = pcall(customerio.Queue.new, track, { spool = file .. "/spool" })
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find("spool: cannot create directory " .. file .. "/spool", 1, true), err)
      assert.is_truthy(tostring(err):find("Not a directory", 1, true), err)
      os.remove(file)
    end)
  end)

  describe("core.spool_open (the nginx queue's binding of the engine)", function()
    it("appends, acknowledges, replays what is left into a new spool, and reports damage", function()
      local dir = tmpdir()
      local opts = { max_bytes = 100000, segment_bytes = 4096, sync = true }
      local sp = assert(core.spool_open(dir, opts))
      local ids = {}
      for i = 1, 100 do ids[i] = assert(sp:append('{"i":' .. i .. '}', i % 2 == 0 and ("k" .. i) or nil)) end
      assert.is_true(sp:bytes() > 0)
      for i = 1, 50 do sp:ack(ids[i]) end
      sp:flush()
      assert.is_true(sp:sync())
      -- a second spool on the directory takes another lane; the first one's is still held
      local other = assert(core.spool_open(dir, opts))
      assert.are.same({}, other:replay(function() error("nothing to replay") end))
      other:close()
      sp:close()
      sp:close() -- idempotent
      assert.has_error(function() sp:append("{}") end, "spool is closed")
      -- garbage after the last segment's records: reported, the records before it replayed
      local logs = ls(dir, "%.log$")
      write(dir .. "/" .. logs[#logs], "\1\2\3\4garbage-garbage-garbage", "ab")
      local again = assert(core.spool_open(dir, opts))
      local got = {}
      local problems = assert(again:replay(function(json, key)
        local i = tonumber(json:match("%d+"))
        got[#got + 1] = i
        assert.are.equal(i % 2 == 0 and ("k" .. i) or nil, key)
        assert(again:append(json, key, true))
      end))
      assert.are.equal(1, #problems)
      assert.is_truthy(problems[1]:find("bad record magic", 1, true), problems[1])
      local want = {}
      for i = 51, 100 do want[#want + 1] = i end
      assert.are.same(want, got)
      -- a Lua error in the callback stops the replay: nil, the error; the old files stay
      again:close()
      local third = assert(core.spool_open(dir, opts))
      local ok, err = third:replay(function() error("stop here") end)
      assert.is_nil(ok)
      assert.is_truthy(tostring(err):find("stop here", 1, true))
      third:close()
      local tiny = assert(core.spool_open(dir, { max_bytes = 10, segment_bytes = 4096 }))
      assert.are.same({ "full" }, { select(2, tiny:append("{}")) })
      tiny:close()
      local file = os.tmpname()
      local nope, why = core.spool_open(file .. "/x", opts)
      assert.is_nil(nope)
      assert.is_truthy(why:find("Not a directory", 1, true), why)
      os.remove(file)
      cleanup(dir)
    end)
  end)

  describe("bounds and options", function()
    it("max_bytes bounds the unacknowledged bytes on disk: past it, nil, err of kind queue_full", function()
      local dir = tmpdir()
      local track = customerio.TrackClient.new("s", "k", { url = DEAD_URL })
      local bq = customerio.Queue.new(track, {
        spool = dir, max_bytes = 4000, flush_interval = 600000, retry = { max_retries = 0 },
        on_error = function() end,
      })
      local n, err = 0, nil
      for i = 1, 1000 do
        local ok, e = bq:track("p", "ev", { i = i })
        if not ok then
          err = e
          break
        end
        n = n + 1
      end
      assert.is_true(n > 5)
      assert.are.equal("queue_full", err.kind)
      assert.is_truthy(tostring(err.message):find("spool is full", 1, true))
      assert.is_true(bq:stats().spool_bytes <= 4000)
      bq:close(0)
      cleanup(dir)
    end)

    it("checks spool, spool_sync and spool_segment_bytes", function()
      local track = customerio.TrackClient.new("s", "k", { url = DEAD_URL })
      assert.has_error(function() customerio.Queue.new(track, { spool = "" }) end,
        "spool must be a directory path (a non-empty string)")
      assert.has_error(function() customerio.Queue.new(track, { spool = "/tmp/x", spool_sync = "sometimes" }) end,
        'spool_sync must be "always", "never" or a whole number of ms (at least 1)')
      assert.has_error(function() customerio.Queue.new(track, { spool = "/tmp/x", spool_sync = 0 }) end,
        'spool_sync must be "always", "never" or a whole number of ms (at least 1)')
      assert.has_error(function() customerio.Queue.new(track, { spool = "/tmp/x", spool_segment_bytes = 1 }) end,
        "spool_segment_bytes must be an integer of at least 64")
    end)

    it("spool_sync always and never, small segments: everything delivered, the spool emptied", function()
      for _, policy in ipairs({ "always", "never", 5 }) do
        server.reset()
        local dir = tmpdir()
        local sq = replay_queue(dir, { spool_sync = policy, spool_segment_bytes = 2048, flush_interval = 10 })
        for i = 1, 300 do assert(sq:track("p" .. (i % 7), "ev", { i = i })) end
        assert.is_true(sq:flush(20000))
        assert.is_true(sq:close())
        assert.are.equal(300, #received("/replay/api/v2/batch"))
        assert.are.same({}, ls(dir, "."))
        cleanup(dir)
      end
    end)

    it("two queues on one directory take two lanes; a lane left by a closed queue is replayed", function()
      local dir = tmpdir()
      local track = customerio.TrackClient.new("s", "k", { url = DEAD_URL })
      local opts = { spool = dir, flush_interval = 600000, retry = { max_retries = 0 }, on_error = function() end }
      local a = customerio.Queue.new(track, opts)
      local b = customerio.Queue.new(track, opts)
      assert(a:track("pa", "ev", { i = 1 }))
      assert(b:track("pb", "ev", { i = 2 }))
      assert.are.same({ "lane-1.lock", "lane-2.lock" }, ls(dir, "%.lock$"))
      a:close(0)
      b:close(0)
      server.reset()
      local rq = replay_queue(dir)
      assert.are.equal(2, rq:stats().replayed)
      assert.is_true(rq:flush(20000))
      rq:close()
      local sent = {}
      for _, op in ipairs(received("/replay/api/v2/batch")) do sent[#sent + 1] = op.attributes.i end
      table.sort(sent)
      assert.are.same({ 1, 2 }, sent)
      assert.are.same({}, ls(dir, "."))
      cleanup(dir)
    end)
  end)
end)
