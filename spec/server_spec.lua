-- The local test server itself (spec/support/server.lua), exercised with the curl CLI only.

local server = require("support.server")

local shell = require("tools.shell")
local q, read_file, write_file = shell.q, shell.read_file, shell.write_file

-- Runs curl with `args` (a string of shell words). Returns
-- {exit, status, headers = {lower-case name = value}, body, time (seconds), stderr}.
local function curl(args)
  local body_file, head_file, err_file = os.tmpname(), os.tmpname(), os.tmpname()
  local p = assert(io.popen("curl -q -sS --noproxy '*' -o " .. q(body_file) .. " -D " .. q(head_file) ..
    " -w '%{http_code} %{time_total}' " .. args .. " 2>" .. q(err_file) .. "; echo \" $?\""))
  local out = p:read("*a")
  p:close()
  local code, time, exit = out:match("^(%d+) ([%d.]+) (%d+)")
  local res = {
    exit = tonumber(exit), status = tonumber(code), time = tonumber(time),
    body = read_file(body_file) or "", stderr = read_file(err_file) or "", headers = {},
  }
  for line in (read_file(head_file) or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then res.headers[k:lower()] = v end
  end
  os.remove(body_file); os.remove(head_file); os.remove(err_file)
  return res
end

local function get(path, extra)
  return curl((extra or "") .. " " .. q(server.url() .. path))
end

describe("test server", function()
  before_each(function()
    server.reset()
  end)

  it("listens on 127.0.0.1 only", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", server.url())
    assert.matches("^https://127%.0%.0%.1:%d+$", server.tls_url())
    assert.matches("^https://127%.0%.0%.1:%d+$", server.tls_wrong_host_url())
  end)

  it("answers 200 {} as JSON when nothing is scripted", function()
    local res = get("/anything")
    assert.equal(0, res.exit)
    assert.equal(200, res.status)
    assert.equal("{}", res.body)
    assert.equal("application/json; charset=utf-8", res.headers["content-type"])
  end)

  it("records method, raw path, query, headers, body and decoded JSON", function()
    local res = curl("-X PUT --path-as-is -H 'Authorization: Basic abc' -H 'X-Extra: 1' " ..
      "-H 'Content-Type: application/json' --data-binary '{\"a\":[1,2.5,null],\"b\":{\"c\":\"d\"}}' " ..
      q(server.url() .. "/api/v1/customers/a%2Fb%20c?id_type=email&x=%41"))
    assert.equal(200, res.status)
    assert.equal(1, server.count())
    local r = server.last()
    assert.equal("PUT", r.method)
    assert.equal("/api/v1/customers/a%2Fb%20c?id_type=email&x=%41", r.path)
    assert.equal("/api/v1/customers/a%2Fb%20c", r.uri)
    assert.equal("id_type=email&x=%41", r.query)
    assert.equal("Basic abc", r.headers.authorization)
    assert.equal("1", r.headers["x-extra"])
    assert.equal("application/json", r.headers["content-type"])
    assert.equal('{"a":[1,2.5,null],"b":{"c":"d"}}', r.body)
    assert.same({ a = { 1, 2.5, server.null }, b = { c = "d" } }, r.json)
    assert.equal(server.array_mt, getmetatable(r.json.a))
    assert.is_number(r.connection)
    assert.equal(1, r.connection_requests)
    assert.is_true(math.abs(r.time - os.time()) < 5)
  end)

  it("records requests without body or query", function()
    get("/plain")
    local r = server.last()
    assert.equal("GET", r.method)
    assert.equal("/plain", r.path)
    assert.equal("", r.query)
    assert.equal("", r.body)
    assert.is_nil(r.json)
  end)

  it("keeps requests in arrival order and reuses keep-alive connections", function()
    local base = server.url()
    curl(q(base .. "/one") .. " " .. q(base .. "/two") .. " " .. q(base .. "/three"))
    local list = server.requests()
    assert.equal(3, #list)
    assert.same({ "/one", "/two", "/three" }, { list[1].path, list[2].path, list[3].path })
    assert.equal(list[1].connection, list[3].connection)
    assert.same({ 1, 2, 3 }, { list[1].connection_requests, list[2].connection_requests,
      list[3].connection_requests })
    assert.equal(2, #server.requests("/t"))
  end)

  it("does not record control requests", function()
    get("/x")
    server.stats()
    server.count()
    server.requests()
    assert.equal(1, server.count())
    assert.equal(1, server.stats().total)
  end)

  it("keeps bodies byte for byte, up to 20 MB", function()
    local bytes = {}
    for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
    local binary = table.concat(bytes) .. "\"\\/\226\130\172"
    local file = os.tmpname()
    write_file(file, binary)
    curl("--data-binary @" .. q(file) .. " " .. q(server.url() .. "/bin"))
    assert.equal(binary, server.last().body)
    assert.is_nil(server.last().json)

    local big = string.rep("0123456789abcdef", 20 * 1024 * 1024 / 16)
    write_file(file, big)
    local res = curl("--data-binary @" .. q(file) .. " " .. q(server.url() .. "/big"))
    os.remove(file)
    assert.equal(200, res.status)
    local r = server.last()
    assert.equal(#big, #r.body)
    assert.is_true(r.body == big)
  end)

  it("plays scripted responses in FIFO order, then the default", function()
    server.respond({ status = 500, body = '{"meta":{"error":"boom"}}' })
    server.respond({ status = 429, headers = { ["Retry-After"] = "1" } })
    server.respond_many(2, { status = 201, body = "created", headers = { ["Content-Type"] = "text/plain" } })
    local r1, r2, r3, r4, r5 = get("/a"), get("/b"), get("/c"), get("/d"), get("/e")
    assert.same({ 500, '{"meta":{"error":"boom"}}' }, { r1.status, r1.body })
    assert.same({ 429, "{}", "1" }, { r2.status, r2.body, r2.headers["retry-after"] })
    assert.same({ 201, "created", "text/plain" }, { r3.status, r3.body, r3.headers["content-type"] })
    assert.same({ 201, "created" }, { r4.status, r4.body })
    assert.same({ 200, "{}" }, { r5.status, r5.body })
    assert.equal(5, server.count())
  end)

  it("applies path-filtered responses only to matching paths, FIFO among them", function()
    server.respond({ path = "/v1/send/email", status = 400, body = "first" })
    server.respond({ path = "/v1/send/email", status = 401, body = "second" })
    server.respond({ status = 503 })
    local other = get("/v1/other")
    local first = get("/v1/send/email?x=1")
    local again = get("/v1/other")
    local second = get("/v1/send/email")
    assert.same({ 503, 400, 200, 401 }, { other.status, first.status, again.status, second.status })
    assert.same({ "first", "second" }, { first.body, second.body })
  end)

  it("filters scripted responses by method", function()
    server.respond({ method = "DELETE", status = 204 })
    assert.equal(200, get("/x").status)
    local res = get("/x", "-X DELETE")
    assert.equal(204, res.status)
    assert.equal("", res.body)
  end)

  it("drops the connection without a response", function()
    server.respond({ drop = true })
    local res = get("/drop")
    assert.equal(52, res.exit) -- curl: empty reply from server
    assert.equal(1, server.count())
    assert.equal(200, get("/after").status)
  end)

  it("delays responses", function()
    server.respond({ delay = 300, status = 202 })
    local res = get("/slow")
    assert.equal(202, res.status)
    assert.is_true(res.time >= 0.29, "took " .. res.time)

    server.respond({ delay = 1000 })
    local timed_out = get("/slower", "--max-time 0.2")
    assert.equal(28, timed_out.exit) -- curl: operation timed out
  end)

  it("redirects without following", function()
    server.respond({ status = 307, redirect = "http://127.0.0.1:1/elsewhere?x=1" })
    server.respond({ status = 301, redirect = "/relative" })
    local res = get("/r")
    assert.equal(307, res.status)
    assert.equal("http://127.0.0.1:1/elsewhere?x=1", res.headers.location)
    local rel = get("/r2")
    assert.equal(301, rel.status)
    assert.equal("/relative", rel.headers.location)
  end)

  it("generates big response bodies", function()
    server.respond({ status = 200, body_size = 10 * 1024 * 1024 })
    local res = get("/big")
    assert.equal(200, res.status)
    assert.equal(10 * 1024 * 1024, #res.body)
    assert.equal(tostring(10 * 1024 * 1024), res.headers["content-length"])
    assert.is_nil(res.body:find("[^a]"))
  end)

  it("drips the body slowly", function()
    server.respond({ body = "abcdefgh", drip = { chunks = 4, interval = 100 } })
    local res = get("/drip")
    assert.equal("abcdefgh", res.body)
    assert.is_true(res.time >= 0.35, "took " .. res.time)
  end)

  it("reset clears requests, scripted responses and counters", function()
    server.respond({ status = 500 })
    server.respond({ status = 501 })
    assert.equal(500, get("/a").status)
    assert.equal(1, server.count())
    server.reset()
    assert.equal(0, server.count())
    assert.same({}, server.requests())
    assert.is_nil(server.last())
    assert.same({ in_flight = 0, max_in_flight = 0, total = 0, queued = 0 }, server.stats())
    assert.equal(200, get("/b").status)
  end)

  it("counts concurrent requests", function()
    server.respond_many(2, { delay = 600 })
    local base = server.url()
    local cmd = "curl -q -s --noproxy '*' -o /dev/null " .. q(base .. "/p1") .. " & " ..
      "curl -q -s --noproxy '*' -o /dev/null " .. q(base .. "/p2") .. " & wait"
    os.execute(cmd)
    local st = server.stats()
    assert.equal(2, st.max_in_flight)
    assert.equal(0, st.in_flight)
    assert.equal(2, st.total)

    get("/serial1")
    get("/serial2")
    assert.equal(2, server.stats().max_in_flight)
    server.reset()
    get("/serial3")
    get("/serial4")
    assert.same({ in_flight = 0, max_in_flight = 1, total = 2, queued = 0 }, server.stats())
  end)

  it("waits for requests", function()
    os.execute("(sleep 0.2; curl -q -s --noproxy '*' -o /dev/null " .. q(server.url() .. "/late") .. ") &")
    assert.equal(1, server.wait(1, 3000))
    assert.has_error(function() server.wait(5, 100) end)
  end)

  describe("TLS", function()
    it("serves https with a certificate for 127.0.0.1 and localhost signed by the CA", function()
      local ca = server.ca_file()
      assert.truthy(read_file(ca):find("BEGIN CERTIFICATE", 1, true))
      local res = curl("--cacert " .. q(ca) .. " " .. q(server.tls_url() .. "/secure?x=1"))
      assert.equal(0, res.exit, res.stderr)
      assert.equal(200, res.status)
      local r = server.last()
      assert.equal("/secure?x=1", r.path)
      assert.equal("https", r.scheme)

      local port = server.tls_url():match(":(%d+)$")
      local by_name = curl("--cacert " .. q(ca) .. " " .. q("https://localhost:" .. port .. "/n"))
      assert.equal(0, by_name.exit, by_name.stderr)
    end)

    it("plays scripted responses over https too", function()
      server.respond({ status = 503 })
      local res = curl("--cacert " .. q(server.ca_file()) .. " " .. q(server.tls_url() .. "/x"))
      assert.equal(503, res.status)
    end)

    it("is refused without the CA", function()
      local res = curl(q(server.tls_url() .. "/x"))
      assert.equal(60, res.exit) -- curl: peer certificate cannot be authenticated
      assert.equal(0, server.count())
    end)

    it("is refused for the wrong host name even with the CA", function()
      local res = curl("--cacert " .. q(server.ca_file()) .. " " .. q(server.tls_wrong_host_url() .. "/x"))
      assert.equal(60, res.exit, res.stderr)
      assert.matches("subject name", res.stderr)
      assert.equal(0, server.count())
      -- the certificate is otherwise valid: accepted when asked for by its own name
      local by_name = curl("--cacert " .. q(server.ca_file()) .. " --resolve wrong.example:" ..
        server.tls_wrong_host_url():match(":(%d+)$") .. ":127.0.0.1 " ..
        q("https://wrong.example:" .. server.tls_wrong_host_url():match(":(%d+)$") .. "/ok"))
      assert.equal(0, by_name.exit, by_name.stderr)
      assert.equal(1, server.count())
    end)
  end)
end)
