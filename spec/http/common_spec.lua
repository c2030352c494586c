-- What every libcurl user of the C core shares (src/http_common.c), over real HTTP to the local
-- test server: one Retry-After reader (seconds and HTTP dates) for the request path and the
-- queue's worker, bounded and linear response-header parsing, the URL length limit, and the
-- libcurl failure kinds.
local customerio = require("customerio")
local core = require("customerio.core")
local Client = require("customerio.http.client")
local retry = require("customerio.http.retry")
local server = require("support.server")

local function http_date(unix_s)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", unix_s)
end

local function new_client(opts)
  opts = opts or {}
  opts.base_url = server.url()
  return Client.new(opts)
end

-- With this policy a computed backoff (at least 1 s) never fits the 100 ms budget: a retry
-- happens only when a Retry-After value was read and said "now".
local ONLY_RETRY_AFTER = { min_timeout = 1000, max_timeout = 1000, max_total_backoff = 100 }

local function raised(f)
  local ok, err = pcall(f)
  assert.is_false(ok)
  return tostring(err)
end

describe("http_common", function()
  before_each(function() server.reset() end)

  describe("Retry-After with an HTTP date", function()
    it("a date in the past means retry at once, on the request path", function()
      server.respond({ status = 429, headers = { ["Retry-After"] = http_date(os.time() - 3600) } })
      local c = new_client({ retry = ONLY_RETRY_AFTER })
      local res = c:request("GET", { "x" })
      assert.are.same({}, res)
      assert.are.equal(2, server.count())
      assert.are.equal("1", server.requests()[2].headers["x-retry-count"])
    end)

    it("an unreadable value falls back to the backoff (which here does not fit the budget)", function()
      server.respond({ status = 503, headers = { ["Retry-After"] = "in a moment" } })
      local c = new_client({ retry = ONLY_RETRY_AFTER })
      local _, err = c:request("GET", { "x" })
      assert.are.equal(503, err.status)
      assert.are.equal(1, server.count())
    end)

    it("a future date is waited for, capped at retry_after_max", function()
      server.respond({ status = 503, headers = { ["Retry-After"] = http_date(os.time() + 3600) } })
      local c = new_client({ retry = { retry_after_max = 1 } })
      local t0 = core.monotonic_ms()
      assert(c:request("GET", { "x" }))
      assert.is_true(core.monotonic_ms() - t0 >= 950)
      assert.are.equal(2, server.count())
    end)

    it("a date in the past means retry at once, in the queue's worker", function()
      server.respond({ status = 429, headers = { ["Retry-After"] = http_date(os.time() - 3600) } })
      local failed = {}
      local track = customerio.TrackClient.new("site", "key", { url = server.url() .. "/api/v1" })
      local q = customerio.Queue.new(track, {
        flush_interval = 60000, retry = ONLY_RETRY_AFTER,
        on_error = function(_, e) failed[#failed + 1] = e end,
      })
      assert.is_true(q:track("u1", "e"))
      assert.is_true(q:flush(10000))
      local s = q:stats()
      q:close()
      assert.are.same({}, failed)
      assert.are.equal(1, s.sent)
      assert.are.equal(1, s.retried)
      local reqs = server.requests("/api/v2/batch")
      assert.are.equal(2, #reqs)
      assert.are.equal("1", reqs[2].headers["x-retry-count"])
    end)

    it("a seconds value is waited for in the queue's worker; an unreadable one falls back to the backoff", function()
      server.respond({ status = 503, headers = { ["Retry-After"] = "1" } })
      local track = customerio.TrackClient.new("site", "key", { url = server.url() .. "/api/v1" })
      local q = customerio.Queue.new(track, { flush_interval = 60000, retry = { min_timeout = 1, max_timeout = 1 } })
      assert.is_true(q:track("u1", "e"))
      local t0 = core.monotonic_ms()
      assert.is_true(q:flush(10000))
      assert.is_true(core.monotonic_ms() - t0 >= 950)
      assert.are.equal(1, q:stats().sent)
      q:close()

      server.reset()
      server.respond({ status = 503, headers = { ["Retry-After"] = "later" } })
      local failed = {}
      q = customerio.Queue.new(track, {
        flush_interval = 60000, retry = ONLY_RETRY_AFTER,
        on_error = function(_, e) failed[#failed + 1] = e end,
      })
      assert.is_true(q:track("u1", "e"))
      q:flush(10000)
      q:close()
      assert.are.equal(1, #failed)
      assert.are.equal(503, failed[1].status)
      assert.are.equal(1, server.count())
    end)
  end)

  describe("response headers", function()
    it("joins many repeats of one name with \", \"", function()
      local list = {}
      for i = 1, 900 do list[i] = "v" .. i end
      server.respond({ headers = { ["X-Many"] = list } })
      local h = core.http_new()
      local status, headers = h:perform("GET", server.url() .. "/h")
      h:close()
      assert.are.equal(200, status)
      assert.are.equal(table.concat(list, ", "), headers["x-many"])
      assert.are.equal("application/json; charset=utf-8", headers["content-type"])
    end)

    it("refuses more than 1000 header lines with kind too_large, not retried", function()
      local list = {}
      for i = 1, 1001 do list[i] = "a" end
      server.respond({ headers = { X = list } })
      local h = core.http_new()
      local status, kind, message = h:perform("GET", server.url() .. "/h")
      h:close()
      assert.is_nil(status)
      assert.are.equal("too_large", kind)
      assert.matches("response headers over the limit %(1000 lines", message)

      server.reset()
      server.respond({ headers = { X = list } })
      local _, err = new_client():request("GET", { "x" })
      assert.are.equal("too_large", err.kind)
      assert.is_false(err.retryable)
      assert.are.equal(1, server.count())
    end)

    it("the async engine applies the same limit", function()
      local list = {}
      for i = 1, 1001 do list[i] = "a" end
      server.respond({ headers = { X = list } })
      local m = core.async_new()
      local id = m:add("GET", server.url() .. "/h")
      local done
      for _ = 1, 1000 do
        done = m:poll(100)
        if done then break end
      end
      m:close()
      assert.are.same({ id, nil, "too_large" }, { done[1][1], done[1][2], done[1][3] })
    end)
  end)

  describe("URL length", function()
    it("raises on a URL over 8192 bytes in the request path, before sending", function()
      assert.are.equal(8192, Client.MAX_URL_BYTES)
      local c = new_client()
      local long = string.rep("a", 9000)
      assert.matches("URL is %d+ bytes, longer than the 8192 bytes a request may have",
        raised(function() c:request("GET", { long }) end))
      assert.matches("longer than the 8192 bytes",
        raised(function() c:request("GET", { "x" }, { query = { q = long } }) end))
      assert.are.equal(0, server.count())
      -- just under the limit goes out
      local path = string.rep("b", 8192 - #server.url() - 1)
      assert(c:request("GET", { path }))
      assert.are.equal(1, server.count())
    end)

    it("the C core refuses it too, as an argument error, whichever caller reaches it", function()
      local h = core.http_new()
      local long = server.url() .. "/" .. string.rep("a", 9 * 1024 * 1024)
      assert.matches("URL is longer than 8192 bytes", raised(function() h:perform("GET", long) end))
      local m = core.async_new()
      assert.matches("URL is longer than 8192 bytes", raised(function() m:add("GET", long) end))
      m:close()
      h:close()
      assert.are.equal(0, server.count())
    end)
  end)

  describe("libcurl failure kinds", function()
    it("an argument libcurl refuses (CURLE_BAD_FUNCTION_ARGUMENT, 43) is a request error, never retried", function()
      assert.are.equal("request", core.curl_error_kind(43))
      assert.are.equal("request", core.curl_error_kind(3))  -- CURLE_URL_MALFORMAT
      assert.are.equal("timeout", core.curl_error_kind(28))
      assert.are.equal("tls", core.curl_error_kind(60))
      assert.are.equal("network", core.curl_error_kind(7)) -- couldn't connect
      assert.is_false(retry.kind_retryable(core.curl_error_kind(43)))
      assert.is_true(retry.kind_retryable(core.curl_error_kind(7)))
    end)
  end)
end)
