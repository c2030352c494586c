-- customerio.ratelimit.redis against a real redis-server (Debian's, started by
-- spec/support/redis.lua on a free port): the C client (src/redis.c), the GCRA script, the
-- shared budget of several OS processes (Lua 5.4 and LuaJIT children) checked in Redis'
-- clock, max_wait, penalize, AUTH and database selection, malformed URLs, and the fallback to
-- a local limiter when Redis is down at start or killed mid-run.
local redis = require("support.redis")
local core = require("customerio.core")
local R = require("customerio.ratelimit.redis")

local ROOT = (function()
  local p = assert(io.popen("pwd"))
  local dir = p:read("*l")
  p:close()
  return dir
end)()

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function interpreter()
  if type(jit) == "table" then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

-- Every pair of grants (sorted slot times, µs) within the GCRA bound: in any window of W at
-- most burst + floor(W / T) slots. Returns nil or a description of the first violation.
local function window_violation(slots, T_us, burst)
  table.sort(slots)
  for i = 1, #slots do
    for j = i + 1, #slots do
      local count = j - i + 1
      local allowed = burst + math.floor((slots[j] - slots[i]) / T_us)
      if count > allowed then
        return string.format("%d grants in %d µs (from %.0f to %.0f), at most %d allowed", count,
          slots[j] - slots[i], slots[i], slots[j], allowed)
      end
    end
  end
end

-- A stand-in for the local limiter: counts the calls it takes.
local function counting_backend()
  local b = { reserves = 0, penalties = 0 }
  function b.reserve(self)
    self.reserves = self.reserves + 1
    return 0
  end
  function b.penalize(self)
    self.penalties = self.penalties + 1
    return true
  end
  return b
end

describe("customerio.ratelimit.redis URLs", function()
  it("parses redis://[[user]:password@]host[:port][/db]", function()
    assert.are.same({ host = "127.0.0.1", port = 6379, db = 0 }, R.parse_url("redis://127.0.0.1"))
    assert.are.same({ host = "cache.internal", port = 7000, db = 3, password = "p@ss:w/rd" },
      R.parse_url("redis://:p%40ss%3Aw%2Frd@cache.internal:7000/3"))
    assert.are.same({ host = "::1", port = 6380, db = 0, username = "app", password = "pw" },
      R.parse_url("redis://app:pw@[::1]:6380/"))
    assert.are.same({ host = "h", port = 6379, db = 0, password = "pw" }, R.parse_url("redis://pw@h"))
  end)

  it("raises on malformed URLs, saying what was expected and never showing the password", function()
    local cases = {
      { 42, "must be a redis:// URL" },
      { "", "is not a URL" },
      { "127.0.0.1:6379", "is not a URL" },
      { "http://127.0.0.1:6379", "must start with redis://" },
      { "rediss://h:6379", "TLS" },
      { "redis://", "has no host" },
      { "redis://:secret@", "has no host" },
      { "redis://:secret/x@/0", "has no host" },
      { "redis://h:0", "invalid port" },
      { "redis://h:65536", "invalid port" },
      { "redis://h:port", "invalid port" },
      { "redis://h:", "empty port" },
      { "redis://h/x", "invalid database" },
      { "redis://h/-1", "invalid database" },
      { "redis://h/1/2", "invalid database" },
      { "redis://h/99999999999", "invalid database" },
      { "redis://h?db=2", "query" },
      { "redis://h h", "spaces or control characters" },
      { "redis://[::1", "IPv6" },
      { "redis://ho_st!", "invalid host" },
      { "redis://:@h", "empty password" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(R.new, c[1])
      assert.is_false(ok, tostring(c[1]))
      assert.is_string(err)
      assert.truthy(err:find(c[2], 1, true), tostring(c[1]) .. " -> " .. err)
      assert.truthy(err:find("like redis://127.0.0.1:6379/0", 1, true), err)
      assert.falsy(err:find("secret", 1, true), err)
    end
  end)

  it("raises on bad options and bad arguments", function()
    assert.has_error(function() R.new("redis://h", { timeout = -1 }) end,
      "rate_limit.timeout must be a positive number of milliseconds")
    assert.has_error(function() R.new("redis://h", { prefix = 1 }) end, "rate_limit.prefix must be a string")
    assert.has_error(function() R.new("redis://h", "x") end, "rate_limit options must be a table, got string")
    local b = R.new("redis://127.0.0.1:1")
    assert.has_error(function() b:reserve("", 100, 1, 0) end, "rate limit key must be a non-empty string")
    assert.has_error(function() b:reserve("k", 0, 1, 0) end, "interval_ms must be a number, more than 0")
    assert.has_error(function() b:reserve("k", 100, 0, 0) end, "burst must be a number, 1 or more")
    assert.has_error(function() b:reserve("k", 100, 1, -1) end, "max_wait_ms must be a number, 0 or more")
    assert.has_error(function() b:penalize("k", 0 / 0) end, "ms must be a number, 0 or more")
    assert.has_error(function() R.with_fallback(b, nil) end, "local_backend must be a rate limit backend")
    assert.has_error(function() core.redis_new("h", 0, 100) end)
    assert.has_error(function() core.redis_new("", 6379, 100) end)
    assert.has_error(function() core.redis_new("h", 6379, 0) end)
  end)
end)

local describe_redis = redis.available() and describe or function(name)
  pending(name .. ": " .. redis.MISSING)
end

describe_redis("customerio.ratelimit.redis with redis-server", function()
  local srv

  setup(function()
    srv = redis.start()
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  describe("the C client (core.redis_new)", function()
    it("converts every kind of reply, and keeps the connection after an error reply", function()
      local h = core.redis_new("127.0.0.1", srv.port, 1000)
      assert.are.equal("not connected", select(2, h:command("PING")))
      local ok, fresh = h:connect()
      assert.is_true(ok)
      assert.is_true(fresh)
      assert.are.same({ true, false }, { h:connect() })
      assert.are.equal("PONG", h:command("PING"))                 -- status
      assert.are.equal("OK", h:command("SET", "c:k", "a\0b"))
      assert.are.equal("a\0b", h:command("GET", "c:k"))           -- bulk, binary-safe
      assert.is_false(h:command("GET", "c:missing"))              -- nil reply
      assert.are.equal(5, h:command("INCRBY", "c:n", 5))          -- integer
      assert.are.same({ 1, "x", { 2, false } }, h:command("EVAL", "return {1, 'x', {2, false}}", 0))
      local reply, err, kind = h:command("NOSUCHCOMMAND", 1)
      assert.is_nil(reply)
      assert.truthy(err:find("^ERR unknown command"))
      assert.are.equal("reply", kind)
      assert.is_true(h:connected())
      assert.are.equal("PONG", h:command("PING"))
      assert.has_error(function() h:command() end, "redis command: no command given")
      assert.has_error(function() h:command("GET", {}) end)
      h:close()
      assert.is_false(h:connected())
      assert.truthy(tostring(h):find("not connected", 1, true))
    end)

    it("fails with kind io when the server is gone or stalls, and connects again afterwards", function()
      local h = core.redis_new("127.0.0.1", srv.port, 150)
      assert.is_true(h:connect())
      -- Stalled: every client paused for longer than the command timeout.
      assert.are.equal("OK", srv:cli("CLIENT", "PAUSE", "700", "ALL"))
      local reply, err, kind = h:command("PING")
      assert.is_nil(reply)
      assert.are.equal("io", kind)
      assert.truthy(err:find("^connection lost"), err)
      assert.is_false(h:connected())
      core.sleep_ms(800)
      assert.is_true(h:connect())
      assert.are.equal("PONG", h:command("PING"))
      -- Refused: nothing listens on the port.
      local dead = core.redis_new("127.0.0.1", 1, 150)
      reply, err, kind = dead:connect()
      assert.is_nil(reply)
      assert.are.equal("io", kind)
      assert.truthy(err:find("^cannot connect"), err)
    end)
  end)

  describe("reserve", function()
    it("grants the burst at once, then one slot per interval (GCRA in Redis' clock)", function()
      -- 1 min intervals: nothing here waits for a slot, and no stall of the machine can let a
      -- slot pass before the next call.
      local T, BURST = 60000, 3
      local b = R.new(srv.url)
      local tat, slots = 0, {}
      for i = 1, 8 do
        local granted, w, now = b:reserve_detail("spacing", T, BURST, 10 * T)
        assert.is_true(granted)
        -- The same GCRA, computed here from the Redis time the script used.
        tat = math.max(tat, now)
        local slot = math.max(tat - (BURST - 1) * T * 1000, now)
        assert.are.equal(slot, now + w, "reservation " .. i)
        tat = math.max(tat, slot) + T * 1000
        slots[i] = now + w
        if i <= BURST then assert.are.equal(0, w) end
      end
      assert.are.equal(slots[1] + T * 1000, slots[BURST + 1])
      for i = BURST + 2, 8 do assert.are.equal(slots[i - 1] + T * 1000, slots[i]) end
      assert.is_nil(window_violation(slots, T * 1000, BURST))
      local wait = b:reserve("spacing", T, BURST, 10 * T)
      assert.is_true(wait > 5 * T, tostring(wait))
      -- The key is kept only as long as it holds something (plus a second).
      local ttl = tonumber(srv:cli("PTTL", "spacing"))
      assert.is_true(ttl > 8 * T and ttl <= 9 * T + 1000, tostring(ttl)) -- tat: 9 intervals ahead
      b:close()
    end)

    it("reserves nothing when the wait would exceed max_wait", function()
      local T = 60000
      local b = R.new(srv.url, { prefix = "mw:" })
      assert.are.equal(0, b:reserve("k", T, 1, 0))
      local before = srv:cli("GET", "mw:k")
      local wait, over, err = b:reserve("k", T, 1, 10)
      assert.is_nil(wait)
      assert.is_nil(err)
      assert.is_true(over > T / 2 and over <= T, tostring(over))
      for _ = 1, 5 do assert.is_nil((b:reserve("k", T, 1, 10))) end
      assert.are.equal(before, srv:cli("GET", "mw:k"))
      -- The slot refused is still the next one: it is given to a caller that can wait.
      local granted, w, now = b:reserve_detail("k", T, 1, 2 * T)
      assert.is_true(granted)
      assert.are.equal(tonumber(before), now + w)
      assert.are.equal(string.format("%.0f", tonumber(before) + T * 1000), srv:cli("GET", "mw:k"))
    end)

    it("penalize makes the key's tat at least now + ms; slots then follow one per interval", function()
      local b = R.new(srv.url, { prefix = "pen:" })
      local P, T, BURST = 60000, 10, 5
      assert.is_true(b:penalize("k", P))
      local tat = tonumber(srv:cli("GET", "pen:k"))
      local granted, w, now = b:reserve_detail("k", T, BURST, 2 * P)
      assert.is_true(granted)
      assert.is_true(w > P * 1000 / 2, tostring(w))
      -- The first slot is at tat - (burst - 1) * T, each next one T later: no burst after a 429.
      assert.are.equal(tat - (BURST - 1) * T * 1000, now + w)
      for i = 2, 5 do
        granted, w, now = b:reserve_detail("k", T, BURST, 2 * P)
        assert.is_true(granted)
        assert.are.equal(tat - (BURST - 1) * T * 1000 + (i - 1) * T * 1000, now + w)
      end
      local over = select(2, b:reserve("k", T, BURST, P / 2))
      assert.is_true(over > P / 2, tostring(over))
      -- A shorter penalty does not shorten a longer one.
      assert.is_true(b:penalize("k", 10))
      assert.are.equal(tat + 5 * T * 1000, tonumber(srv:cli("GET", "pen:k")))
      local ttl = tonumber(srv:cli("PTTL", "pen:k"))
      assert.is_true(ttl > P / 2 and ttl <= P + 1100, tostring(ttl))
    end)

    it("loads the script again when Redis lost it (NOSCRIPT, then EVAL)", function()
      local b = R.new(srv.url)
      assert.is_number((b:reserve("ns", 10, 1, 1000)))
      assert.are.equal("OK", srv:cli("SCRIPT", "FLUSH"))
      assert.are.equal("0", srv:cli("SCRIPT", "EXISTS", R.SCRIPT_SHA))
      assert.is_number((b:reserve("ns", 10, 1, 1000)))
      assert.are.equal("1", srv:cli("SCRIPT", "EXISTS", R.SCRIPT_SHA))
    end)

    it("keeps within the budget when several processes (Lua and LuaJIT) share one key", function()
      local T, BURST, PER_CHILD = 20, 3, 25
      local child = [[
        local R = require("customerio.ratelimit.redis")
        local core = require("customerio.core")
        local T, burst, n = tonumber(os.getenv("T")), tonumber(os.getenv("BURST")), tonumber(os.getenv("N"))
        local b = R.new(os.getenv("URL"))
        local got, refused = 0, 0
        while got < n do
          local granted, wait_us, now_us = b:reserve_detail("hammer", T, burst, 2 * T)
          if granted == nil then io.stderr:write(tostring(wait_us), "\n") os.exit(3) end
          if granted then
            got = got + 1
            io.write(string.format("G %.0f\n", now_us + wait_us))
            core.sleep_ms(wait_us / 1000)
          else
            refused = refused + 1
            core.sleep_ms(T / 2)
          end
        end
        io.write("R ", refused, "\n")
      ]]
      local interps = { { interpreter(), package.path, package.cpath } }
      local other = interpreter() == "luajit" and "lua5.4" or "luajit"
      local other_dir = other == "luajit" and "luajit" or "5.4"
      if io.open(ROOT .. "/build/" .. other_dir .. "/customerio/core.so") then
        interps[2] = { other, package.path, ROOT .. "/build/" .. other_dir .. "/?.so;;" }
      end
      local dir = os.tmpname()
      os.remove(dir)
      assert(os.execute("mkdir " .. shell_quote(dir)))
      local cmds, files = {}, {}
      for i = 1, 6 do
        local it = interps[(i - 1) % #interps + 1]
        files[i] = dir .. "/child" .. i
        cmds[#cmds + 1] = "LUA_PATH=" .. shell_quote(it[2]) .. " LUA_CPATH=" .. shell_quote(it[3]) ..
          " URL=" .. shell_quote(srv.url) .. " T=" .. T .. " BURST=" .. BURST .. " N=" .. PER_CHILD ..
          " " .. it[1] .. " -e " .. shell_quote(child) .. " >" .. shell_quote(files[i]) .. " 2>&1 &"
      end
      os.execute(table.concat(cmds, "\n") .. "\nwait")
      local slots = {}
      for i = 1, 6 do
        local f = assert(io.open(files[i]))
        local out = f:read("*a")
        f:close()
        local n = 0
        for g in out:gmatch("G (%d+)") do
          slots[#slots + 1] = tonumber(g)
          n = n + 1
        end
        assert.are.equal(PER_CHILD, n, "child " .. i .. ": " .. out)
        assert.truthy(out:match("R (%d+)"), out) -- the child ran to its end
      end
      os.execute("rm -rf " .. shell_quote(dir))
      assert.are.equal(6 * PER_CHILD, #slots)
      assert.is_nil(window_violation(slots, T * 1000, BURST))
    end)
  end)

  describe("AUTH and databases", function()
    local locked

    setup(function()
      locked = redis.start({ password = "s3cret-pw" })
    end)

    teardown(function()
      if locked then locked:stop() end
    end)

    it("authenticates (password, or ACL user and password) and selects the database", function()
      local b = R.new("redis://:s3cret-pw@127.0.0.1:" .. locked.port .. "/3")
      assert.are.equal(0, b:reserve("db", 100000, 1, 0))
      assert.are.equal("db", locked:cli("-n", "3", "KEYS", "*"))
      assert.are.equal("", locked:cli("-n", "0", "KEYS", "*"))
      -- Again after the connection was lost: AUTH and SELECT on the new one too.
      b:close()
      local wait, over, err = b:reserve("db", 100000, 1, 0)
      assert.is_nil(wait)
      assert.is_nil(err)
      assert.is_number(over)
      assert.are.equal("1", locked:cli("-n", "3", "EXISTS", "db"))
      local acl = R.new("redis://default:s3cret-pw@127.0.0.1:" .. locked.port .. "/4")
      assert.are.equal(0, acl:reserve("acl", 100, 1, 0))
      assert.are.equal("acl", locked:cli("-n", "4", "KEYS", "*"))
    end)

    it("reports a wrong or missing password as an error (never showing the password)", function()
      local wrong = R.new("redis://:not-the-pw@127.0.0.1:" .. locked.port .. "/0", { retry_ms = 0 })
      local wait, over, err = wrong:reserve("k", 100, 1, 0)
      assert.is_nil(wait)
      assert.is_nil(over)
      assert.are.equal("redis", err.kind)
      assert.truthy(tostring(err):find("WRONGPASS", 1, true), tostring(err))
      assert.falsy(tostring(err):find("not-the-pw", 1, true))
      -- The failed connection was closed: the next call authenticates again (and fails again).
      err = select(3, wrong:reserve("k", 100, 1, 0))
      assert.truthy(tostring(err):find("WRONGPASS", 1, true), tostring(err))
      local none = R.new("redis://127.0.0.1:" .. locked.port .. "/0")
      err = select(3, none:reserve("k", 100, 1, 0))
      assert.truthy(tostring(err):find("NOAUTH", 1, true), tostring(err))
      local baddb = R.new("redis://:s3cret-pw@127.0.0.1:" .. locked.port .. "/999")
      err = select(3, baddb:reserve("k", 100, 1, 0))
      assert.truthy(tostring(err):find("DB index is out of range", 1, true), tostring(err))
    end)
  end)

  describe("after a failure", function()
    it("fails at once for retry_ms with the same error, then tries Redis again", function()
      local s = redis.start()
      local now = 0
      local b = R.new({ url = s.url, timeout = 200, retry_ms = 1000, clock = function() return now end })
      assert.are.equal("redis", b.name)
      assert.are.equal(0, b:reserve("bo", 1, 100, 0))
      s:kill()
      local wait, over, err = b:reserve("bo", 1, 100, 0)
      assert.is_nil(wait)
      assert.is_nil(over)
      assert.truthy(err.message:find("connection lost", 1, true), err.message)
      s:restart()
      now = 999
      local err2 = select(3, b:reserve("bo", 1, 100, 0))
      assert.are.equal(err, err2) -- not tried: the same error object
      assert.is_nil(b:penalize("bo", 10))
      now = 1000
      assert.are.equal(0, b:reserve("bo", 1, 100, 0))
      s:stop()
    end)
  end)

  describe("with_fallback", function()
    it("falls back when Redis is down at start, reports once, and uses Redis when it returns", function()
      local down = redis.start()
      local url = down.url
      down:kill()
      local now = 0
      local reports = {}
      local local_backend = counting_backend()
      local b = R.with_fallback(R.new(url, { timeout = 200, retry_ms = 0 }), local_backend,
        function(e) reports[#reports + 1] = e end, { retry_ms = 5000, clock = function() return now end })
      for _ = 1, 20 do assert.are.equal(0, b:reserve("fb", 100, 100, 0)) end
      assert.is_true(b:penalize("fb", 10))
      assert.are.equal(20, local_backend.reserves)
      assert.are.equal(1, local_backend.penalties)
      assert.are.equal(1, #reports)
      assert.are.equal("down", reports[1].state)
      assert.are.equal("redis", reports[1].error.kind)
      assert.truthy(reports[1].message:find("cannot connect", 1, true), reports[1].message)
      assert.truthy(reports[1].message:find("limiting locally", 1, true), reports[1].message)
      assert.is_true(b:is_down())
      -- Back-off: Redis is tried again only once retry_ms have passed (still down: no new report).
      now = 5000
      assert.are.equal(0, b:reserve("fb", 100, 100, 0))
      assert.are.equal(21, local_backend.reserves)
      assert.are.equal(1, #reports)
      down:restart()
      now = 9999
      b:reserve("fb", 100, 100, 0)
      assert.are.equal(22, local_backend.reserves) -- not yet retried
      now = 10000
      assert.are.equal(0, b:reserve("fb", 100, 100, 0))
      assert.are.equal(22, local_backend.reserves) -- Redis answered
      assert.are.equal(2, #reports)
      assert.are.equal("up", reports[2].state)
      assert.is_false(b:is_down())
      assert.are.equal("1", down:cli("EXISTS", "fb"))
      down:stop()
    end)

    it("falls back when Redis is killed mid-run, once per outage, and recovers", function()
      local s = redis.start()
      local now = 0
      local reports = {}
      local local_backend = counting_backend()
      local b = R.with_fallback(R.new(s.url, { timeout = 200, retry_ms = 0 }), local_backend,
        function(e) reports[#reports + 1] = e.state end, { retry_ms = 1000, clock = function() return now end })
      for _ = 1, 10 do assert.is_number((b:reserve("mid", 1, 1000, 1000))) end
      assert.are.equal(0, local_backend.reserves)
      for round = 1, 2 do
        s:kill()
        for i = 1, 10 do
          now = now + 100 * i -- tried again after 1000 ms: the outage continues, no new report
          assert.is_number((b:reserve("mid", 1, 1000, 1000)))
        end
        assert.are.same(round == 1 and { "down" } or { "down", "up", "down" }, reports)
        assert.are.equal(10 * round, local_backend.reserves)
        s:restart()
        now = now + 1000
        assert.is_number((b:reserve("mid", 1, 1000, 1000)))
        assert.are.equal(10 * round, local_backend.reserves)
        assert.are.equal(round * 2, #reports)
        assert.are.equal("up", reports[#reports])
      end
      s:stop()
    end)

    it("writes the report to stderr when no report function is given", function()
      local down = redis.start()
      local url = down.url
      down:stop()
      local cmd = "LUA_PATH=" .. shell_quote(package.path) .. " LUA_CPATH=" .. shell_quote(package.cpath) ..
        " " .. interpreter() .. " -e " .. shell_quote([[
          local R = require("customerio.ratelimit.redis")
          local local_backend = { reserve = function() return 0 end, penalize = function() return true end }
          local b = R.with_fallback(R.new(]] .. string.format("%q", url) .. [[), local_backend)
          for _ = 1, 5 do assert(b:reserve("k", 10, 1, 0) == 0) end
        ]]) .. " 2>&1"
      local p = assert(io.popen(cmd))
      local out = p:read("*a")
      p:close()
      local _, lines = out:gsub("\n", "")
      assert.are.equal(1, lines, out)
      assert.truthy(out:find("^customerio rate limit: redis 127%.0%.0%.1:%d+: cannot connect"), out)
    end)
  end)
end)
