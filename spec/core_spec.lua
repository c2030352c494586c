-- The C core's small helpers: percent-encoding, ULIDs, clocks, crypto.
local core = require("customerio.core")

describe("core.uri_encode", function()
  it("encodes like JavaScript's encodeURIComponent", function()
    local cases = {
      ["a+b@c.com/x y"] = "a%2Bb%40c.com%2Fx%20y",
      ["!'()*-._~"] = "!'()*-._~",
      ["user+tag@example.com"] = "user%2Btag%40example.com",
      ["a/b c@d"] = "a%2Fb%20c%40d",
      ["tok/with+chars="] = "tok%2Fwith%2Bchars%3D",
      ["#?&=%"] = "%23%3F%26%3D%25",
      ["Zoë"] = "Zo%C3%AB",
      ["\r\n\0"] = "%0D%0A%00",
      [""] = "",
      ["../etc"] = "..%2Fetc",
    }
    for input, want in pairs(cases) do
      assert.are.equal(want, core.uri_encode(input))
    end
  end)

  it("accepts numbers", function()
    assert.are.equal("12345", core.uri_encode(12345))
  end)

  it("raises on a non-string", function()
    assert.has_error(function() core.uri_encode({}) end)
  end)
end)

describe("core.ulid", function()
  it("returns 26 Crockford base32 characters", function()
    local id = core.ulid()
    assert.are.equal(26, #id)
    assert.truthy(id:match("^[0-7][0-9A-HJKMNP-TV-Z]+$"))
  end)

  it("is monotonic and unique within a burst", function()
    local prev, seen = "", {}
    for _ = 1, 10000 do
      local id = core.ulid()
      assert.is_true(id > prev)
      assert.is_nil(seen[id])
      seen[id], prev = true, id
    end
  end)

  it("encodes the current time in its first 10 characters", function()
    local alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    local id, t = core.ulid(), 0
    for i = 1, 10 do t = t * 32 + (alphabet:find(id:sub(i, i), 1, true) - 1) end
    assert.is_true(math.abs(t - core.now_ms()) < 5000)
  end)
end)

describe("core clocks", function()
  it("sleep_ms waits at least the time asked", function()
    local t0 = core.monotonic_ms()
    core.sleep_ms(20)
    assert.is_true(core.monotonic_ms() - t0 >= 19)
  end)

  it("now_ms is the Unix time in milliseconds", function()
    assert.is_true(math.abs(core.now_ms() / 1000 - os.time()) < 2)
  end)
end)

describe("core crypto", function()
  it("computes digests of known vectors", function()
    assert.are.equal("900150983cd24fb0d6963f7d28e17f72", core.hex(core.digest("md5", "abc")))
    assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d", core.hex(core.digest("sha1", "abc")))
    assert.are.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      core.hex(core.digest("sha256", "abc")))
    assert.are.equal(128, #core.hex(core.digest("sha512", "abc")))
  end)

  it("computes HMAC-SHA256 (RFC 4231 case 2)", function()
    assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      core.hex(core.hmac("sha256", "Jefe", "what do ya want for nothing?")))
  end)

  it("rejects unknown algorithms", function()
    assert.has_error(function() core.digest("sha3", "x") end)
  end)

  it("base64 round-trips binary data without line breaks", function()
    local data = {}
    for i = 0, 255 do data[#data + 1] = string.char(i) end
    data = table.concat(data):rep(10)
    local enc = core.base64_encode(data)
    assert.is_nil(enc:find("\n"))
    assert.are.equal(data, core.base64_decode(enc))
    assert.are.equal("aGVsbG8=", core.base64_encode("hello"))
    assert.are.equal("", core.base64_encode(""))
  end)

  it("base64_decode reports bad input", function()
    local v, err = core.base64_decode("aGV$bG8=")
    assert.is_nil(v)
    assert.matches("invalid base64 at byte 4", err)
    v, err = core.base64_decode("aGVsbG8==x")
    assert.is_nil(v)
    assert.truthy(err)
  end)

  it("random_bytes returns the length asked", function()
    assert.are.equal(32, #core.random_bytes(32))
    assert.are_not.equal(core.random_bytes(16), core.random_bytes(16))
    assert.has_error(function() core.random_bytes(-1) end)
  end)

  it("equal_ct compares in constant time", function()
    assert.is_true(core.equal_ct("abc", "abc"))
    assert.is_false(core.equal_ct("abc", "abd"))
    assert.is_false(core.equal_ct("abc", "ab"))
  end)
end)
