-- customerio.url (customerio.http.url after the layout move): path segments and query strings
-- encoded as customerio-node encodes them (encodeURIComponent), URL parsing and redirects.
local url = require("customerio.http.url")

describe("url.encode", function()
  it("keeps what encodeURIComponent keeps and percent-encodes the rest as UTF-8 bytes", function()
    assert.are.equal("AZaz09-_.!~*'()", url.encode("AZaz09-_.!~*'()"))
    assert.are.equal("a%20b%2Fc%3Fd%23e%26f%3Dg%2Bh%25", url.encode("a b/c?d#e&f=g+h%"))
    assert.are.equal("%C3%A9%E2%82%AC", url.encode("é€"))
    assert.are.equal("%00", url.encode("\0"))
    assert.are.equal("", url.encode(""))
  end)

  it("writes integral numbers without a decimal point", function()
    assert.are.equal("42", url.encode(42))
    assert.are.equal("42", url.encode(42.0))
    assert.are.equal("1.5", url.encode(1.5))
  end)

  it("refuses numbers that are not identifiers", function()
    assert.has_error(function() url.encode(0 / 0) end, "value is NaN, not an identifier")
    assert.has_error(function() url.encode(math.huge) end,
      "value is inf, beyond 2^53, where a double cannot hold every integer; pass the id as a string")
  end)
end)

describe("url.join", function()
  local base = "https://track.customer.io/api/v1"

  it("encodes each segment on its own", function()
    assert.are.equal(base .. "/customers/a%2Fb/events", url.join(base, { "customers", "a/b", "events" }))
    assert.are.equal(base .. "/customers/7", url.join(base, { "customers", 7 }))
  end)

  it("encodes dot segments so that they are not removed by URL normalisation", function()
    assert.are.equal(base .. "/customers/%2E%2E/devices/%2E", url.join(base, { "customers", "..", "devices", "." }))
    assert.are.equal(base .. "/customers/...", url.join(base, { "customers", "..." }))
  end)

  it("takes a string path as it is, adding the leading slash", function()
    assert.are.equal(base .. "/a b", url.join(base, "a b"))
    assert.are.equal(base .. "/x", url.join(base, "/x"))
    assert.are.equal(base, url.join(base, ""))
    assert.are.equal(base, url.join(base, {}))
  end)
end)

describe("url.query", function()
  it("keeps the order of pairs and skips nil and empty values", function()
    assert.are.equal("?z=1&a=2", url.query({ { "z", 1 }, { "skip", nil }, { "a", 2 }, { "empty", "" } }))
  end)

  it("sorts a map by key", function()
    assert.are.equal("?a=1&b=x%20y&c=true", url.query({ c = true, a = 1, b = "x y" }))
  end)

  it("writes booleans as words and lists comma-separated (the comma encoded)", function()
    assert.are.equal("?f=false&ids=1%2C2%2C3", url.query({ { "f", false }, { "ids", { 1, 2, 3 } } }))
  end)

  it("is empty for nil, an empty table or only empty values", function()
    assert.are.equal("", url.query(nil))
    assert.are.equal("", url.query({}))
    assert.are.equal("", url.query({ { "a", "" } }))
  end)
end)

describe("url.parse", function()
  it("splits scheme, lower-cased host, port and the rest", function()
    assert.are.same({ "https", "track.customer.io", 443, "/api/v1?x=1" },
      { url.parse("HTTPS://Track.Customer.IO/api/v1?x=1") })
    assert.are.same({ "http", "127.0.0.1", 8080, "/" }, { url.parse("http://127.0.0.1:8080") })
    assert.are.same({ "http", "example.com", 80, "/p" }, { url.parse("http://example.com/p") })
  end)

  it("drops user info and reads bracketed IPv6 hosts", function()
    assert.are.same({ "https", "::1", 8443, "/x" }, { url.parse("https://user:pw@[::1]:8443/x") })
    assert.are.same({ "http", "h", 80, "/" }, { url.parse("http://u@h") })
  end)

  it("returns nil for what is not an absolute URL", function()
    assert.is_nil(url.parse("/relative/path"))
    assert.is_nil(url.parse("track.customer.io/api"))
    assert.is_nil(url.parse(""))
  end)
end)

describe("url.resolve", function()
  local base = "https://api.customer.io/v1/send/email?x=1"

  it("keeps absolute locations", function()
    assert.are.equal("http://other.example/a", url.resolve(base, "http://other.example/a"))
  end)

  it("resolves scheme-relative, absolute-path and relative references", function()
    assert.are.equal("https://cdn.example/a", url.resolve(base, "//cdn.example/a"))
    assert.are.equal("https://api.customer.io/v2/x", url.resolve(base, "/v2/x"))
    assert.are.equal("https://api.customer.io/v1/send/sms", url.resolve(base, "sms"))
    assert.are.equal("https://api.customer.io/y", url.resolve("https://api.customer.io", "y"))
  end)
end)
