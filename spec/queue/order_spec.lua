-- customerio.Queue keeps each person's operations in order under concurrency and faults:
-- 200 people × 50 identify updates, many batches in flight, 30% of the batch requests failing
-- (500, 429 with Retry-After: 0, resets before the reply, lost acks) with 0-15 ms of reply
-- jitter. The server's log of accepted requests must show, for every person, their updates in
-- enqueue order, a replayed batch (lost ack) only before any later batch of theirs, and their
-- last update (50) accepted.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")

local PEOPLE, UPDATES = 200, 50
local RETRY = { min_timeout = 1, max_timeout = 5, max_retries = 40, max_total_backoff = 60000 }

-- Accepted batch requests in arrival order (the log decoded by the C core: megabytes), and
-- the number of refused ones.
local function accepted_batches()
  local out, refused = {}, 0
  for _, r in ipairs(server.requests_bulk("/api/v2/batch")) do
    if r.tag == "accepted" then
      out[#out + 1] = assert(core.json_decode(r.body)).batch
    else
      refused = refused + 1
    end
  end
  return out, refused
end

-- The guarantee, checked per person over the accepted requests: within a request their
-- counters increase; each request starts past every counter accepted before it, unless it is
-- the replay of an earlier accepted request of theirs (same list) that no later request of
-- theirs has passed yet; and the last accepted counter is UPDATES.
local function check_order(batches)
  local top, lists = {}, {}
  local problems = {}
  for bi, batch in ipairs(batches) do
    local per = {}
    for _, op in ipairs(batch) do
      local id = op.identifiers.id
      per[id] = per[id] or {}
      table.insert(per[id], op.attributes.counter)
    end
    for id, list in pairs(per) do
      for k = 2, #list do
        if list[k] <= list[k - 1] then
          problems[#problems + 1] = ("person %s: request %d carries %s"):format(id, bi, table.concat(list, ","))
        end
      end
      local sig = table.concat(list, ",")
      local seen = lists[id] or {}
      lists[id] = seen
      local before = top[id] or 0
      if list[1] > before then
        top[id] = list[#list]
      elseif not (seen[sig] and list[#list] == before) then
        problems[#problems + 1] = ("person %s: %s accepted after %d"):format(id, sig, before)
      end
      seen[sig] = true
    end
  end
  for p = 1, PEOPLE do
    local id = "p" .. p
    if top[id] ~= UPDATES then
      problems[#problems + 1] = ("person %s: last accepted update %s"):format(id, tostring(top[id]))
    end
  end
  return problems
end

local function run(order)
  server.reset()
  server.chaos({ rate = 0.3, seed = 16, jitter = 15, path = "/api/v2/batch" })
  local failures = 0
  local track = customerio.TrackClient.new("site_o", "key_o", { url = server.url() .. "/api/v1" })
  local q = customerio.Queue.new(track, {
    batch_bytes = 4096, max_in_flight = 8, flush_interval = 5, retry = RETRY, order = order,
    on_error = function(ops) failures = failures + #ops end,
  })
  for u = 1, UPDATES do
    for p = 1, PEOPLE do
      assert(q:identify("p" .. p, { counter = u }))
    end
  end
  assert(q:flush(120000))
  local s = q:stats()
  assert(q:close(1000))
  assert.are.equal(0, failures)
  assert.are.equal(PEOPLE * UPDATES, s.sent)
  local batches, refused = accepted_batches()
  assert.is_true(refused > 0, "the faults were played")
  assert.is_true(s.retried > 0)
  assert.are.same({}, check_order(batches))
  return batches
end

describe("queue order (per person, under faults)", function()
  after_each(function() server.reset() end)

  it("keeps each person's updates in order with several in a batch (order = \"batch\", the default)", function()
    run(nil)
  end)

  it("keeps each person's updates in order with one per batch (order = \"strict\")", function()
    local batches = run("strict")
    for _, batch in ipairs(batches) do
      local seen = {}
      for _, op in ipairs(batch) do
        assert.is_nil(seen[op.identifiers.id], "one operation per person in a batch")
        seen[op.identifiers.id] = true
      end
    end
  end)

  it("orders a person by the identifier given: id 42 and email ada@... are two keys", function()
    local common = require("customerio.queue.common")
    local ops = require("customerio.track.operations")
    local by_id = common.order_key(ops.identify("42", { a = 1 }))
    assert.are.equal(by_id, common.order_key(ops.identify(42, { a = 2 })))
    assert.are_not.equal(by_id, common.order_key(ops.identify({ email = "ada@example.com" }, { a = 1 })))
    assert.are.equal(by_id, common.order_key(ops.event("42", "x")))
    assert.are.equal(by_id, common.order_key(ops.merge("id", "42", "email", "ada@example.com")))
    assert.are.equal(common.order_key(ops.object_identify({ object_type_id = "1", object_id = "a" }, {})),
      common.order_key({ type = "object", action = "delete", identifiers = { object_id = "a", object_type_id = "1" } }))
  end)

  it("takes an order_key function and an order option, refusing bad ones", function()
    local track = customerio.TrackClient.new("s", "k", { url = server.url() .. "/api/v1" })
    assert.has_error(function() customerio.Queue.new(track, { order = "sometimes" }) end,
      'order must be "batch", "strict", "none" or false')
    assert.has_error(function() customerio.Queue.new(track, { order_key = 1 }) end, "order_key must be a function")
    server.reset()
    local keys = {}
    local q = customerio.Queue.new(track, {
      order_key = function(op) keys[#keys + 1] = op.identifiers.id; return "all" end,
    })
    assert(q:identify("a", {}))
    assert(q:identify("b", {}))
    assert(q:flush(5000))
    q:close()
    assert.are.same({ "a", "b" }, keys)
    local bad = customerio.Queue.new(track, { order_key = function() return {} end })
    assert.has_error(function() bad:identify("a", {}) end, "order_key must return a string or nil")
    bad:close()
  end)
end)
