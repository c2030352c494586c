-- customerio.timestamp: seconds since the epoch from numbers, ISO-8601 strings and date
-- tables; milliseconds refused. And the ISO-8601 formatting used by the Pipelines client.
local customerio = require("customerio")
local ts = require("customerio.track.timestamp")

local function refusal(...)
  local ok, err = pcall(ts.timestamp, ...)
  assert.is_false(ok)
  return err
end

local MS = "looks like milliseconds; Customer.io expects seconds since the Unix epoch (divide by 1000)"

describe("customerio.track.timestamp", function()
  it("is the module's timestamp function", function()
    assert.are.equal(ts.timestamp, customerio.timestamp)
  end)

  it("passes seconds through and drops a fraction", function()
    assert.are.equal(1700000000, customerio.timestamp(1700000000))
    assert.are.equal(1700000000, customerio.timestamp(1700000000.9))
    assert.are.equal(0, customerio.timestamp(0))
    assert.are.equal(-86400, customerio.timestamp(-86400))
    assert.are.equal(99999999999, customerio.timestamp(99999999999))
  end)

  it("returns integers (the integer subtype where there is one)", function()
    if math.type then
      assert.are.equal("integer", math.type(customerio.timestamp(1.7e9)))
      assert.are.equal("integer", math.type(customerio.timestamp("2023-11-14T22:13:20.5Z")))
      assert.are.equal("integer", math.type(customerio.timestamp(os.date("*t", 1700000000))))
    end
  end)

  it("reads strings of digits", function()
    assert.are.equal(1700000000, customerio.timestamp("1700000000"))
    assert.are.equal(1700000000, customerio.timestamp(" 1700000000 "))
  end)

  it("reads ISO-8601 date-times in UTC and with offsets", function()
    local cases = {
      ["2023-11-14T22:13:20Z"] = 1700000000,
      ["2023-11-14t22:13:20z"] = 1700000000,
      ["2023-11-14 22:13:20Z"] = 1700000000,
      ["2023-11-14T22:13:20.999Z"] = 1700000000,
      ["2023-11-14T22:13:20,5Z"] = 1700000000,
      ["2023-11-14T22:13:20"] = 1700000000,
      ["2023-11-14T23:13:20+01:00"] = 1700000000,
      ["2023-11-14T17:13:20-0500"] = 1700000000,
      ["2023-11-15T00:13:20+02"] = 1700000000,
      ["2023-11-14T22:13Z"] = 1699999980,
      ["2023-11-14"] = 1699920000,
      ["1970-01-01T00:00:00Z"] = 0,
      ["2024-02-29T12:00:00Z"] = 1709208000,
      ["2000-03-01T00:00:00Z"] = 951868800,
      ["1969-12-31T23:59:59Z"] = -1,
    }
    for s, want in pairs(cases) do
      assert.are.equal(want, customerio.timestamp(s), s)
    end
  end)

  it("refuses strings that are not ISO-8601 dates", function()
    for _, s in ipairs({ "yesterday", "", "2023-13-01", "2023-02-29", "2023-04-31", "2023-11-14T24:00:00Z",
      "2023-11-14T22:60:00Z", "2023-11-14T22:13:20+1", "2023-11-14T22:13:20 UTC", "14/11/2023", "2023-11-14T" }) do
      assert.are.equal('timestamp is not an ISO-8601 date-time (e.g. "2023-11-14T22:13:20Z"): ' .. string.format("%q", s),
        refusal(s))
    end
  end)

  it("reads date tables as os.time does (local time)", function()
    assert.are.equal(1700000000, customerio.timestamp(os.date("*t", 1700000000)))
    assert.are.equal(os.time({ year = 2024, month = 1, day = 2, hour = 0 }),
      customerio.timestamp({ year = 2024, month = 1, day = 2 }))
    assert.are.equal("timestamp must be a number of seconds, an ISO-8601 string or a date table with year, month and day",
      refusal({ month = 1, day = 2 }))
  end)

  it("refuses milliseconds, naming the value", function()
    assert.are.equal("timestamp 1700000000000 " .. MS, refusal(1700000000000))
    assert.are.equal("timestamp 1700000000000 " .. MS, refusal("1700000000000"))
    assert.are.equal("created_at -1700000000000 " .. MS, refusal(-1700000000000, "created_at"))
  end)

  it("refuses other impossible numbers and other types", function()
    assert.are.equal("timestamp 170000000000 is not a plausible number of seconds since the Unix epoch",
      refusal(170000000000))
    assert.are.equal("timestamp must be a finite number of seconds", refusal(0 / 0))
    assert.are.equal("timestamp must be a finite number of seconds", refusal(math.huge))
    assert.are.equal("timestamp must be a number of seconds, an ISO-8601 string or a date table, got boolean",
      refusal(true))
    assert.are.equal("timestamp must be a number of seconds, an ISO-8601 string or a date table, got nil",
      refusal(nil))
  end)

  it("converts a field of a table in place", function()
    local t = { timestamp = "2023-11-14T22:13:20Z", other = 1 }
    assert.are.equal(t, ts.field(t, "timestamp", "data"))
    assert.are.equal(1700000000, t.timestamp)
    assert.are.same({ other = 1 }, ts.field({ other = 1 }, "timestamp", "data"))
    local ok, err = pcall(ts.field, { timestamp = 1700000000000 }, "timestamp", "data")
    assert.is_false(ok)
    assert.are.equal("data.timestamp 1700000000000 " .. MS, err)
  end)

  it("formats milliseconds as ISO-8601 UTC with milliseconds", function()
    assert.are.equal("2023-11-14T22:13:20.000Z", ts.iso8601(1700000000000))
    assert.are.equal("2023-11-14T22:13:20.123Z", ts.iso8601(1700000000123))
    assert.are.equal("1970-01-01T00:00:00.000Z", ts.iso8601(0))
    assert.are.equal("2024-02-29T23:59:59.999Z", ts.iso8601(1709251199999))
  end)

  it("round-trips: iso8601 then timestamp", function()
    for _, s in ipairs({ 0, 951868800, 1700000000, 1709251199, 4102444800 }) do
      assert.are.equal(s, customerio.timestamp(ts.iso8601(s * 1000)))
    end
  end)
end)
