-- The retry policy (pure functions; the HTTP behaviour is in client_spec).
local retry = require("customerio.http.retry")

describe("customerio.http.retry", function()
  it("has customerio-node 5.x defaults", function()
    local p = retry.policy()
    assert.are.equal(3, p.max_retries)
    assert.are.equal(200, p.min_timeout)
    assert.are.equal(5000, p.max_timeout)
    assert.are.equal(300, p.retry_after_max)
    assert.are.equal(30000, p.max_total_backoff)
    for _, s in ipairs({ 408, 429, 500, 502, 503, 504, 522, 524 }) do
      assert.is_true(retry.status_retryable(p, s))
    end
    for _, s in ipairs({ 400, 401, 404, 409, 422, 501 }) do
      assert.is_false(retry.status_retryable(p, s))
    end
  end)

  it("accepts Node's camelCase names and false", function()
    local p = retry.policy({ maxRetries = 1, minTimeoutMs = 10 })
    assert.are.equal(1, p.max_retries)
    assert.are.equal(10, p.min_timeout)
    assert.are.equal(0, retry.policy(false).max_retries)
  end)

  it("rejects unknown or bad options", function()
    assert.has_error(function() retry.policy({ retries = 2 }) end, "unknown retry option: retries")
    assert.has_error(function() retry.policy({ max_retries = -1 }) end, "retry.max_retries must be a non-negative number")
    assert.has_error(function() retry.policy("often") end, "retry must be a table or false")
  end)

  it("backs off exponentially with jitter in [1, 2) and a cap", function()
    local p = retry.policy()
    assert.are.equal(200, retry.delay(p, 0, nil, function() return 0 end))
    assert.are.equal(399, math.floor(retry.delay(p, 0, nil, function() return 0.999 end)))
    assert.are.equal(800, retry.delay(p, 2, nil, function() return 0 end))
    assert.are.equal(5000, retry.delay(p, 10, nil, function() return 0.5 end))
  end)

  it("honours Retry-After in seconds, capped", function()
    local p = retry.policy()
    assert.are.equal(7000, retry.delay(p, 0, { ["retry-after"] = "7" }))
    assert.are.equal(300000, retry.delay(p, 0, { ["retry-after"] = "100000" }))
    local q = retry.policy({ respect_retry_after = false })
    assert.are.equal(200, retry.delay(q, 0, { ["retry-after"] = "7" }, function() return 0 end))
  end)

  it("parses Retry-After as customerio-node 5.x does: delta seconds or an HTTP date (in C, once)", function()
    -- 2015-10-21 07:28:00 UTC = 1445412480 s
    local at = 1445412480 * 1000
    assert.are.equal(30000, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at - 30000))
    assert.are.equal(0, retry.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at + 10000)) -- in the past
    -- the obsolete forms HTTP still asks recipients to read: RFC 850 and asctime
    assert.are.equal(30000, retry.parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", at - 30000))
    assert.are.equal(30000, retry.parse_retry_after("Wed Oct 21 07:28:00 2015", at - 30000))
    assert.are.equal(7000, retry.parse_retry_after("7", at))
    assert.are.equal(7000, retry.parse_retry_after(" 7 ", at))
    assert.are.equal(1500, retry.parse_retry_after("1.5", at)) -- Node reads it with Number()
    assert.are.equal(0, retry.parse_retry_after("0", at))
    assert.is_nil(retry.parse_retry_after("soon", 0))
    assert.is_nil(retry.parse_retry_after("-5", 0))
    assert.is_nil(retry.parse_retry_after("", 0))
    assert.is_nil(retry.parse_retry_after("7s", 0))
    assert.is_nil(retry.parse_retry_after("Wed, 21 Foo 2015 07:28:00 GMT", 0))
    assert.is_nil(retry.parse_retry_after(string.rep("9", 2000), 0)) -- longer than any date: unparsable
    assert.is_nil(retry.parse_retry_after(nil, 0))
    -- the same function the queue's C worker calls
    assert.are.equal(30000, require("customerio.core").retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at - 30000))
  end)

  it("caps a Retry-After date at retry_after_max, and a past date means at once", function()
    local p = retry.policy()
    local now = 1445412480 * 1000
    assert.are.equal(0, retry.delay(p, 0, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, nil, now + 5000))
    assert.are.equal(300000, retry.delay(p, 0, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, nil, now - 3600000))
    assert.are.equal(12000, retry.delay(p, 0, { ["retry-after"] = "Wed, 21 Oct 2015 07:28:00 GMT" }, nil, now - 12000))
  end)

  it("retries network and timeout failures, not tls, request or too_large; the policy carries that list", function()
    local p = retry.policy()
    assert.same({ "network", "timeout" }, p.retry_kinds)
    for _, k in ipairs({ "network", "timeout" }) do assert.is_true(retry.kind_retryable(k)) end
    for _, k in ipairs({ "tls", "request", "too_large" }) do assert.is_false(retry.kind_retryable(k)) end
  end)
  it("replays a call that is not idempotent only when it provably was not processed", function()
    local p = retry.policy()
    assert.is_false(p.unsafe)
    -- idempotent: anything transient
    assert.is_true(retry.replay_allowed(p, true, 500))
    assert.is_true(retry.replay_allowed(p, true, nil, "unknown"))
    -- not idempotent: 429 and "not sent" only
    assert.is_true(retry.replay_allowed(p, false, 429))
    assert.is_true(retry.replay_allowed(p, false, nil, "no"))
    for _, status in ipairs({ 408, 500, 502, 503, 504, 522, 524 }) do
      assert.is_false(retry.replay_allowed(p, false, status))
    end
    assert.is_false(retry.replay_allowed(p, false, nil, "unknown"))
    assert.is_false(retry.replay_allowed(p, false, nil, nil))
    -- unsafe: Node's behaviour
    local node = retry.policy({ unsafe = true })
    assert.is_true(retry.replay_allowed(node, false, 503))
    assert.is_true(retry.replay_allowed(node, false, nil, "unknown"))
  end)
end)
