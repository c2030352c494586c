-- End to end: APIClient with `rate_limit = { redis = ... }` (customerio.ratelimit, merged from
-- the rate limit work) in two OS processes against the local test server: the budget taken by
-- one process is seen by the other through Redis. Pending while customerio.ratelimit is absent.
local redis = require("support.redis")
local server = require("support.server")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function interpreter()
  if type(jit) == "table" then return "luajit" end
  return "lua" .. _VERSION:match("%d+%.%d+")
end

local has_limiter = pcall(require, "customerio.ratelimit")
local describe_e2e = describe
if not redis.available() then
  describe_e2e = function(name) pending(name .. ": " .. redis.MISSING) end
elseif not has_limiter then
  describe_e2e = function(name) pending(name .. ": customerio.ratelimit is not in this tree yet") end
end

describe_e2e("APIClient with rate_limit.redis", function()
  local srv

  setup(function() srv = redis.start() end)
  teardown(function() if srv then srv:stop() end end)

  -- One call of list_segments in a fresh process; prints "ok" or the error's kind.
  local function call_in_child(max_wait)
    local code = [[
      local customerio = require("customerio")
      local api = customerio.APIClient.new("e2e-key", { url = os.getenv("URL"), retry = { max_retries = 0 },
        rate_limit = { redis = os.getenv("REDIS"), app = 1 / 60, max_wait = tonumber(os.getenv("MAX_WAIT")) } })
      local res, err = api:list_segments()
      io.write(res and "ok" or tostring(err.kind))
    ]]
    local p = assert(io.popen("LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) ..
      " URL=" .. q(server.url() .. "/v1") .. " REDIS=" .. q(srv.url) .. " MAX_WAIT=" .. max_wait .. " " ..
      interpreter() .. " -e " .. q(code) .. " 2>&1"))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("a slot taken by one process is taken for the others", function()
    server.reset()
    server.respond({ path = "/v1/segments", body = '{"segments":[]}' })
    assert.are.equal("ok", call_in_child(0))
    -- One call per minute: the second process finds the budget's slot taken, in Redis.
    assert.are.equal("rate_limited", call_in_child(0))
    assert.are.equal(1, #server.requests("/v1/segments"))
    local keys = srv:cli("KEYS", "cio:rl:*")
    assert.truthy(keys:find("^cio:rl:%x+:app$"), keys)
  end)
end)
