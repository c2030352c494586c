-- customerio.webhooks: HMAC-SHA256 over "v0:<timestamp>:<body>", compared in constant time.
local customerio = require("customerio")
local core = require("customerio.core")

local webhooks = customerio.webhooks

-- A signature computed independently with the openssl command line, when it is there.
local function openssl_signature(secret, data)
  local path = os.tmpname()
  local fh = assert(io.open(path, "wb"))
  fh:write(data)
  fh:close()
  local p = io.popen("openssl dgst -sha256 -hmac '" .. secret .. "' -r < '" .. path .. "' 2>/dev/null")
  local out = p and p:read("*a") or ""
  if p then p:close() end
  os.remove(path)
  return out:match("^(%x+)")
end

describe("customerio.webhooks", function()
  local secret = "whsec_0123456789abcdef"
  local timestamp = "1700000000"
  local body = '{"event_id":"01E4C4CT6YDC7Y5M7FE1GWWPQJ","object_type":"email","metric":"opened"}'

  it("signs v0:<timestamp>:<body> with HMAC-SHA256 in lower-case hex", function()
    local sig = webhooks.sign(secret, timestamp, body)
    assert.are.equal(64, #sig)
    assert.is_truthy(sig:find("^%x+$"))
    assert.are.equal(core.hex(core.hmac("sha256", secret, "v0:" .. timestamp .. ":" .. body)), sig)
    local reference = openssl_signature(secret, "v0:" .. timestamp .. ":" .. body)
    if reference then assert.are.equal(reference, sig) end
  end)

  it("matches RFC 4231 test case 2 for the HMAC itself", function()
    assert.are.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      core.hex(core.hmac("sha256", "Jefe", "what do ya want for nothing?")))
  end)

  it("verifies a valid signature, also in upper case and with a numeric timestamp", function()
    local sig = webhooks.sign(secret, timestamp, body)
    assert.is_true(webhooks.verify(secret, timestamp, body, sig))
    assert.is_true(webhooks.verify(secret, timestamp, body, sig:upper()))
    assert.is_true(webhooks.verify(secret, 1700000000, body, sig))
  end)

  it("rejects a changed body, timestamp, secret or signature", function()
    local sig = webhooks.sign(secret, timestamp, body)
    assert.is_false(webhooks.verify(secret, timestamp, body .. " ", sig))
    assert.is_false(webhooks.verify(secret, "1700000001", body, sig))
    assert.is_false(webhooks.verify(secret .. "x", timestamp, body, sig))
    local flipped = (sig:sub(1, 63) .. (sig:sub(64) == "0" and "1" or "0"))
    assert.is_false(webhooks.verify(secret, timestamp, body, flipped))
  end)

  it("returns false, without raising, for missing or malformed signatures and timestamps", function()
    local sig = webhooks.sign(secret, timestamp, body)
    assert.is_false(webhooks.verify(secret, timestamp, body, nil))
    assert.is_false(webhooks.verify(secret, timestamp, body, ""))
    assert.is_false(webhooks.verify(secret, timestamp, body, sig:sub(1, 63)))
    assert.is_false(webhooks.verify(secret, timestamp, body, sig .. "0"))
    assert.is_false(webhooks.verify(secret, timestamp, body, { sig }))
    assert.is_false(webhooks.verify(secret, timestamp, body, string.rep("z", 64)))
    assert.is_false(webhooks.verify(secret, nil, body, sig))
    assert.is_false(webhooks.verify(secret, "", body, sig))
    assert.is_false(webhooks.verify(secret, timestamp, nil, sig))
  end)

  it("raises when the signing secret is missing", function()
    assert.has_error(function() webhooks.verify(nil, timestamp, body, "x") end, "signing_secret is required")
    assert.has_error(function() webhooks.verify("", timestamp, body, "x") end, "signing_secret is required")
    assert.has_error(function() webhooks.verify(42, timestamp, body, "x") end, "signing_secret must be a string")
  end)

  it("handles binary bodies byte for byte", function()
    local raw = "\0\1\2\255 caf\195\169"
    local sig = webhooks.sign(secret, timestamp, raw)
    assert.is_true(webhooks.verify(secret, timestamp, raw, sig))
    local reference = openssl_signature(secret, "v0:" .. timestamp .. ":" .. raw)
    if reference then assert.are.equal(reference, sig) end
  end)

  it("verify_headers reads X-CIO-Timestamp and X-CIO-Signature in any case", function()
    local sig = webhooks.sign(secret, timestamp, body)
    assert.is_true(webhooks.verify_headers(secret, { ["X-CIO-Timestamp"] = timestamp, ["X-CIO-Signature"] = sig }, body))
    assert.is_true(webhooks.verify_headers(secret, { ["x-cio-timestamp"] = timestamp, ["x-cio-signature"] = { sig } }, body))
    assert.is_true(webhooks.verify_headers(secret, { x_cio_timestamp = timestamp, x_cio_signature = sig }, body))
    assert.is_false(webhooks.verify_headers(secret, { ["X-CIO-Timestamp"] = timestamp }, body))
    assert.is_false(webhooks.verify_headers(secret, nil, body))
  end)
end)
