-- The static library for hosts that embed Lua (make static): builds libcustomerio.a and the
-- example host program (examples/embed/host.c) for the interpreter running this spec, runs the
-- host against the test server, and checks what the server recorded.
local server = require("support.server")

local VERSION = (type(jit) == "table" and "luajit") or _VERSION:match("%d+%.%d+")
local BUILD = "build/" .. VERSION

local shell = require("tools.shell")
local q, sh = shell.q, shell.sh

local function root()
  return shell.trim(shell.capture("pwd"))
end

describe("static library (make static) on " .. VERSION, function()
  local ROOT = root()
  local built, build_log

  local function build()
    if built == nil then
      built, build_log = sh("make --no-print-directory -C " .. q(ROOT) .. " LUA=" .. VERSION .. " static embed-host")
    end
    assert(built, "make static embed-host failed:\n" .. tostring(build_log))
  end

  before_each(function() server.reset() end)

  it("builds libcustomerio.a exporting only luaopen_customerio and luaopen_customerio_core", function()
    build()
    local ok, out = sh("nm -g --defined-only " .. q(ROOT .. "/" .. BUILD .. "/libcustomerio.a"))
    assert(ok, out)
    local names = {}
    for kind, name in out:gmatch("%x+ (%a) ([%w_]+)") do
      if kind:match("[A-Z]") then names[#names + 1] = name end
    end
    table.sort(names)
    assert.are.same({ "luaopen_customerio", "luaopen_customerio_core" }, names)
  end)

  it("embeds every pure-Lua module but the nginx-only ones", function()
    build()
    local f = assert(io.open(ROOT .. "/" .. BUILD .. "/static/embedded_lua.h", "rb"))
    local h = f:read("*a")
    f:close()
    local names = {}
    for name in h:gmatch('\n  {"([%w_.]+)", "@') do names[name] = true end
    for _, m in ipairs({ "customerio", "customerio.http.client", "customerio.async", "customerio.track",
      "customerio.app", "customerio.liquid", "customerio.transport", "customerio.transport.curl" }) do
      assert.is_true(names[m], m .. " is not embedded")
    end
    assert.is_nil(names["customerio.transport.ngx"])
    assert.is_nil(names["customerio.queue.ngx"])
    assert.is_nil(names["customerio.sandbox.server"])
    assert.is_nil(names["customerio.ratelimit.redis.cosocket"])
    -- Every module of the tree (but the skipped ones) is there.
    local _, list = sh("cd " .. q(ROOT) .. " && find lua/customerio -name '*.lua'")
    local count = 0
    for path in list:gmatch("[^\n]+") do
      local name = path:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/", "."):gsub("%.init$", "")
      local nginx_only = name:find("^customerio%.transport%.ngx") or name == "customerio.queue.ngx"
        or name == "customerio.sandbox.server" or name == "customerio.ratelimit.redis.cosocket"
      if not nginx_only then
        assert.is_true(names[name], name .. " is not embedded")
        count = count + 1
      end
    end
    assert.is_true(count > 30)
  end)

  it("runs the example host: identify and send_email, then async calls from a frame loop", function()
    build()
    -- The send is accepted (queued), then the host asks for the delivery until it is sent.
    server.respond({ path = "/v1/send/email", body = '{"delivery_id":"d-1","queued_at":1700000000}' })
    server.respond({ path = "/v1/messages/", body = '{"message":{"id":"d-1","metrics":{"created":1700000000}}}' })
    server.respond({ path = "/v1/messages/",
      body = '{"message":{"id":"d-1","metrics":{"created":1700000000,"sent":1700000001},"failure_message":null}}' })
    -- From a directory without any Lua file, with no LUA_PATH: nothing comes from disk.
    local ok, out = sh("cd / && env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_3 -u LUA_PATH_5_4 "
      .. q(ROOT .. "/" .. BUILD .. "/embed-host") .. " " .. q(server.url()))
    assert(ok, out)
    assert.is_truthy(out:find("identify: ok", 1, true), out)
    assert.is_truthy(out:find("send_email: sent d-1", 1, true), out)
    assert.is_truthy(out:find("async: 20 ok, 0 failed", 1, true), out)
    assert.is_truthy(out:find("host: done", 1, true), out)

    local identify = server.requests("/api/v1/customers/player-1")[1]
    assert.are.equal("PUT", identify.method)
    assert.are.equal("/api/v1/customers/player-1", identify.path)
    assert.are.same({ email = "player@example.com", level = 1 }, identify.json)
    assert.are.equal("Basic c2l0ZS1pZDphcGkta2V5", identify.headers["authorization"])
    assert.is_truthy(identify.headers["user-agent"]:find("^Customer.io Lua Client/"))

    local email = server.requests("/v1/send/email")
    assert.are.equal(1, #email)
    assert.are.equal("POST", email[1].method)
    assert.are.equal("Bearer app-key", email[1].headers["authorization"])
    assert.are.equal("welcome", email[1].json.transactional_message_id)
    assert.are.same({ id = "player-1" }, email[1].json.identifiers)
    assert.are.same({ name = "Ada" }, email[1].json.message_data)

    local polls = server.requests("/v1/messages/")
    assert.are.equal(2, #polls)
    assert.are.equal("GET /v1/messages/d-1", polls[2].method .. " " .. polls[2].path)

    local events = server.requests("/api/v1/customers/player-1/events")
    assert.are.equal(20, #events)
    local levels = {}
    for _, r in ipairs(events) do
      assert.are.equal("level_up", r.json.name)
      levels[r.json.data.level] = true
    end
    for i = 1, 20 do assert.is_true(levels[i]) end
  end)

  it("stops with the delivery's failure_message when the email was accepted but not sent", function()
    build()
    server.respond({ path = "/v1/send/email", body = '{"delivery_id":"d-2","queued_at":1700000000}' })
    server.respond({ path = "/v1/messages/", body = '{"message":{"id":"d-2","metrics":{"created":1700000000,'
      .. '"failed":1700000001},"failure_message":"undefined variable \'message_data.name\'"}}' })
    local ok, out, status = sh(q(ROOT .. "/" .. BUILD .. "/embed-host") .. " " .. q(server.url()))
    assert.is_false(ok)
    assert.are.equal(1, status)
    assert.is_truthy(out:find("host: send_email: delivery d-2 failed: undefined variable 'message_data.name'", 1, true), out)
    assert.is_nil(out:find("host: done", 1, true), out)
    assert.are.equal(0, #server.requests("/api/v1/customers/player-1/events"))
  end)

  it("reports a failure with the error object's message and a non-zero status", function()
    build()
    local ok, out, status = sh(q(ROOT .. "/" .. BUILD .. "/embed-host") .. " http://127.0.0.1:1")
    assert.is_false(ok)
    assert.are.equal(1, status)
    assert.is_truthy(out:find("identify: customerio network error", 1, true), out)
  end)
end)
