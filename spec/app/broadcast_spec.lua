-- API-triggered broadcasts: each audience variant, the wire shaping of customerio-node 5.2
-- (list audiences at the top level with their flags), filters, checks and errors; trigger
-- status, errors and the list of triggers.
local customerio = require("customerio")
local server = require("support.server")

local f = customerio.filters


local app = require("support.app")
local new_api, offline, refuses = app.new_api, app.offline, app.refuses

describe("APIClient:trigger_broadcast", function()
  local api
  before_each(function()
    server.reset()
    api = new_api()
  end)

  local function sent(broadcast_id, data, recipients)
    server.reset()
    server.respond({ body = '{"id":1001}' })
    local res, err = api:trigger_broadcast(broadcast_id, data, recipients)
    assert(res, tostring(err))
    assert.are.equal(1001, res.id)
    local got = server.last()
    assert.are.equal("POST", got.method)
    return got.json, got
  end

  it("with nothing: the broadcast's own audience, body {}", function()
    local body, got = sent(12)
    assert.are.equal("/v1/campaigns/12/triggers", got.path)
    assert.are.equal("{}", got.body)
    assert.are.same({}, body)
    -- Empty data and empty recipients are left out too.
    assert.are.equal("{}", select(2, sent(12, {}, {})).body)
    assert.are.equal("{}", select(2, sent(12, customerio.null, customerio.null)).body)
  end)

  it("with data only", function()
    local body = sent(7, { headline = "Sale", items = { "a", "b" } })
    assert.are.same({ data = { headline = "Sale", items = { "a", "b" } } }, body)
  end)

  it("to a segment", function()
    local body = sent(7, { a = 1 }, { segment = { id = 3 } })
    assert.are.same({ data = { a = 1 }, recipients = { segment = { id = 3 } } }, body)
    assert.are.same({ recipients = { segment = { id = 3 } } }, (sent(7, nil, f.segment(3))))
  end)

  it("to a filter built with customerio.filters", function()
    local audience = f.all_of({ f.segment(3), f.any_of({ f.attribute("plan", "eq", "pro"), f.none_of(f.segment(4)) }) })
    local body = sent(7, nil, audience)
    assert.are.same({ recipients = { ["and"] = {
      { segment = { id = 3 } },
      { ["or"] = { { attribute = { field = "plan", operator = "eq", value = "pro" } }, { ["not"] = { segment = { id = 4 } } } } },
    } } }, body)
    body = sent(7, nil, f.exists("vip"))
    assert.are.same({ recipients = { attribute = { field = "vip", operator = "exists" } } }, body)
  end)

  it("to ids, with id_ignore_missing at the top level", function()
    local body = sent(9, nil, { ids = { "a", "b", 3 }, id_ignore_missing = true })
    assert.are.same({ ids = { "a", "b", 3 }, id_ignore_missing = true }, body)
  end)

  it("to emails, with their two flags; false flags are left out as Node does", function()
    local body = sent(8, { a = 1 }, { emails = { "a@example.com" }, email_ignore_missing = true, email_add_duplicates = true })
    assert.are.same({ data = { a = 1 }, emails = { "a@example.com" }, email_ignore_missing = true,
      email_add_duplicates = true }, body)
    body = sent(8, nil, { emails = { "a@example.com" }, email_ignore_missing = false, email_add_duplicates = false })
    assert.are.same({ emails = { "a@example.com" } }, body)
  end)

  it("with per_user_data, taking all three flags", function()
    local per_user = { { id = "1", data = { v = "A" } }, { email = "b@example.com", data = { v = "B" } } }
    local body = sent(10, nil, { per_user_data = per_user, id_ignore_missing = true,
      email_ignore_missing = true, email_add_duplicates = true })
    assert.are.same({ per_user_data = per_user, id_ignore_missing = true, email_ignore_missing = true,
      email_add_duplicates = true }, body)
  end)

  it("from a data file", function()
    local body = sent(11, { x = 1 }, { data_file_url = "https://example.com/r.jsonl", email_add_duplicates = true })
    assert.are.same({ data = { x = 1 }, data_file_url = "https://example.com/r.jsonl", email_add_duplicates = true }, body)
  end)

  it("encodes the broadcast id in the path", function()
    local _, got = sent("a/b c")
    assert.are.equal("/v1/campaigns/a%2Fb%20c/triggers", got.path)
  end)

  it("says so when the broadcast does not exist (404)", function()
    server.respond({ status = 404, body = '{"errors":[{"detail":"The broadcast_id does not exist.","status":"404"}]}' })
    local res, err = api:trigger_broadcast(999, { a = 1 })
    assert.is_nil(res)
    assert.are.equal(404, err.status)
    assert.are.equal("broadcast 999 not found: The broadcast_id does not exist.", err.message)
    server.respond({ status = 404, body = "" })
    res, err = api:trigger_broadcast(998)
    assert.is_nil(res)
    assert.are.equal("broadcast 998 not found: Not Found", err.message)
  end)

  it("returns the 422 detail of an invalid trigger", function()
    server.respond({ status = 422, body = '{"errors":[{"detail":"empty recipients filter is not valid","status":"422"}]}' })
    local res, err = api:trigger_broadcast(7, nil, { segment = { id = 3 } })
    assert.is_nil(res)
    assert.are.equal(422, err.status)
    assert.are.equal("empty recipients filter is not valid", err.message)
  end)

  describe("checks before sending", function()
    it("needs a broadcast id", function()
      refuses("broadcast_id is required", function() offline:trigger_broadcast(nil, { a = 1 }) end)
      refuses("broadcast_id is required", function() offline:trigger_broadcast("  ") end)
      refuses("broadcast_id must be a string or a number, got table", function() offline:trigger_broadcast({}) end)
    end)

    it("needs tables for data and recipients", function()
      refuses("data must be a table, got string", function() offline:trigger_broadcast(7, "x") end)
      refuses("recipients must be a table, got string", function() offline:trigger_broadcast(7, nil, "x") end)
    end)

    it("takes one audience", function()
      refuses("recipients: give one audience, not both ids and emails", function()
        offline:trigger_broadcast(7, nil, { ids = { "1" }, emails = { "a@b.c" } })
      end)
      refuses("recipients: give one audience, not both emails and segment", function()
        offline:trigger_broadcast(7, nil, { emails = { "a@b.c" }, segment = { id = 1 } })
      end)
    end)

    it("takes only the flags of the audience", function()
      refuses("recipients.email_ignore_missing does not apply to ids", function()
        offline:trigger_broadcast(7, nil, { ids = { "1" }, email_ignore_missing = true })
      end)
      refuses("recipients.id_ignore_missing only applies to ids, emails, per_user_data or data_file_url", function()
        offline:trigger_broadcast(7, nil, { segment = { id = 1 }, id_ignore_missing = true })
      end)
    end)

    it("takes non-empty lists of at most 10000 people", function()
      refuses("recipients.ids must be a non-empty list", function()
        offline:trigger_broadcast(7, nil, { ids = {} })
      end)
      refuses("recipients.emails must be a non-empty list", function()
        offline:trigger_broadcast(7, nil, { emails = "a@b.c" })
      end)
      refuses("recipients.data_file_url must be a URL string", function()
        offline:trigger_broadcast(7, nil, { data_file_url = { "https://x" } })
      end)
      local many = {}
      for i = 1, 10001 do many[i] = "id" .. i end
      refuses("recipients.ids holds 10001 entries; the limit is 10000", function()
        offline:trigger_broadcast(7, nil, { ids = many })
      end)
      many[10001] = nil
      assert(offline:trigger_broadcast(7, nil, { ids = many }))
    end)

    it("checks a filter audience against the grammar", function()
      refuses('recipients.and[2]: value is required with operator "eq" (attribute "plan")', function()
        offline:trigger_broadcast(7, nil,
          { ["and"] = { { segment = { id = 1 } }, { attribute = { field = "plan", operator = "eq" } } } })
      end)
      refuses('recipients: unknown filter "segmnet" (expected one of "and", "or", "not", "segment", "attribute")', function()
        offline:trigger_broadcast(7, nil, { segmnet = { id = 1 } })
      end)
      refuses('recipients.and[1].or[1]: "and" lists nest at most two deep', function()
        offline:trigger_broadcast(7, nil, { ["and"] = { { ["or"] = { { ["and"] = { { segment = { id = 1 } } } } } } } })
      end)
    end)
  end)
end)

describe("APIClient broadcast triggers", function()
  local api
  before_each(function()
    server.reset()
    api = new_api()
  end)

  it("get_broadcast_trigger_status", function()
    server.respond({ body = '{"id":1001,"broadcast_id":7,"created_at":1700000000,"processed_at":1700000060}' })
    local res = assert(api:get_broadcast_trigger_status(7, 1001))
    assert.are.equal(1700000060, res.processed_at)
    assert.are.equal("GET", server.last().method)
    assert.are.equal("/v1/campaigns/7/triggers/1001", server.last().path)
    refuses("broadcast_id is required", function() offline:get_broadcast_trigger_status(nil, 1) end)
    refuses("trigger_id is required", function() offline:get_broadcast_trigger_status(7) end)
  end)

  it("get_broadcast_trigger_errors, with pagination options", function()
    assert(api:get_broadcast_trigger_errors(7, 1001, { start = "c1", limit = 10 }))
    assert.are.equal("/v1/campaigns/7/triggers/1001/errors?start=c1&limit=10", server.last().path)
    assert(api:get_broadcast_trigger_errors(7, 1001))
    assert.are.equal("/v1/campaigns/7/triggers/1001/errors", server.last().path)
  end)

  it("get_broadcast_triggers", function()
    server.respond({ body = '{"triggers":[{"id":1,"broadcast_id":7}]}' })
    local res = assert(api:get_broadcast_triggers(7))
    assert.are.equal(1, res.triggers[1].id)
    assert.are.equal("/v1/broadcasts/7/triggers", server.last().path)
  end)

  it("pages through trigger errors", function()
    server.respond({ body = '{"errors":[{"id":"1"}],"next":"p2"}' })
    server.respond({ body = '{"errors":[{"id":"2"}],"next":""}' })
    local seen = {}
    for page, err in api:pages("get_broadcast_trigger_errors", 7, 1001, { limit = 1 }) do
      assert(page, tostring(err))
      seen[#seen + 1] = page.errors[1].id
    end
    assert.are.same({ "1", "2" }, seen)
    local reqs = server.requests()
    assert.are.equal("/v1/campaigns/7/triggers/1001/errors?limit=1", reqs[1].path)
    assert.are.equal("/v1/campaigns/7/triggers/1001/errors?start=p2&limit=1", reqs[2].path)
  end)
end)
