-- The sandbox's web inbox in a real browser: Debian's chromium, headless, loads the pages the
-- sandbox serves over HTTP after a scripted scenario (spec/support/inbox_scenario.lua) and the
-- DOM it ends up with is checked. CIO_SCREENSHOTS=docs/img also saves screenshots of the main
-- pages there (1280x800), as shown in the README.
local sandbox_http = require("support.sandbox_http")
local scenario = require("support.inbox_scenario")

local function which(names)
  for _, name in ipairs(names) do
    local p = io.popen("command -v " .. name .. " 2>/dev/null")
    local path = p:read("*l")
    p:close()
    if path and path ~= "" then return path end
  end
  return nil
end

local chromium = which({ "chromium", "chromium-browser" })

if not chromium then
  describe("sandbox web inbox in headless chromium", function()
    pending("chromium is not installed: apt-get install chromium (.ci/packages.txt lists it for CI)")
  end)
  return
end

local shell = require("tools.shell")
local read, shell_quote = shell.read_file, shell.q

-- Where the scenario's expected failure is: the line and column of trigger.reset_url in the body.
local function position_of(source, needle)
  local n = 0
  for line in (source .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local at = line:find(needle, 1, true)
    if at then return n, at end
  end
end

describe("sandbox web inbox in headless chromium", function()
  local h, ids, profile

  local function browse(args, url)
    local cmd = table.concat({ shell_quote(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--hide-scrollbars", "--user-data-dir=" .. shell_quote(profile), args, shell_quote(h.base .. url),
      "2>/dev/null" }, " ")
    local p = assert(io.popen(cmd))
    local out = p:read("*a")
    p:close()
    return out
  end

  -- The DOM after chromium loaded the page and ran its scripts.
  local function dom(url)
    local out = browse("--dump-dom", url)
    assert.matches("</html>", out, 1, true)
    return out
  end

  -- The page as served (for checks where the browser adds nothing; chromium is slow to start).
  local function get(url)
    local p = assert(io.popen("curl -s " .. shell_quote(h.base .. url)))
    local out = p:read("*a")
    p:close()
    assert.matches("</html>", out, 1, true)
    return out
  end

  local function title(page)
    return page:match("<title>(.-)</title>")
  end

  setup(function()
    profile = assert(io.popen("mktemp -d /tmp/cio-chromium.XXXXXX")):read("*l")
    h = sandbox_http.start()
    ids = scenario.run(h)
  end)

  teardown(function()
    if h then h.stop() end
    if profile then os.execute("rm -rf " .. shell_quote(profile)) end
  end)

  it("lists every delivery, newest first, with recipient, template and status", function()
    local page = dom("/")
    assert.are.equal("Messages · Customer.io sandbox", title(page))
    for _, text in ipairs({ "Reset your password", "Order A-1001 shipped", "Your Example code is 482913",
      "What's new in 2.0", "Transactional password_reset", "Broadcast 42 · Product update" }) do
      assert.matches(text, page, 1, true)
    end
    assert.is_true(page:find("What's new in 2.0", 1, true) < page:find("Reset your password", 1, true))
    for _, id in pairs({ ids.reset, ids.push, ids.sms, ids.failed, ids.script }) do
      assert.matches('href="/messages/' .. id .. '"', page, 1, true)
    end
    assert.matches('<span class="badge badge-failed">failed</span>', page, 1, true)
    -- The scenario's <script> subject is listed as text, not run.
    assert.matches("Welcome, Cy &lt;script&gt;", page, 1, true)
    assert.is_nil(page:find('id="pwned"', 1, true))
  end)

  it("shows an email's fields, its HTML part in a sandboxed iframe and its text part", function()
    local page = dom("/messages/" .. ids.reset)
    assert.matches('<iframe class="email" sandbox="" referrerpolicy="no-referrer" title="HTML part" src="/messages/'
      .. ids.reset .. '/html">', page, 1, true)
    assert.matches("Hi Ada, reset it here: https://app.example.com/reset/abc123", page, 1, true)
    assert.matches("Example &lt;help@example.com&gt;", page, 1, true)
    local part = dom("/messages/" .. ids.reset .. "/html")
    assert.matches("<p>Hi Ada,</p>", part, 1, true)
    assert.matches('href="https://app.example.com/reset/abc123"', part, 1, true)
    assert.matches("The link works for 24 hours", part, 1, true)
  end)

  it("previews push and SMS messages", function()
    local push = get("/messages/" .. ids.push)
    assert.matches('<div class="notification"><div class="title">Order A-1001 shipped</div><div>It arrives tomorrow.</div>',
      push, 1, true)
    local sms = get("/messages/" .. ids.sms)
    assert.matches('<div class="bubble">Your Example code is 482913</div>', sms, 1, true)
  end)

  it("shows a failed delivery's Liquid error with its line and column, and its message_data", function()
    local page = dom("/messages/" .. ids.failed)
    local line, column = position_of(scenario.RESET_BODY, "trigger.reset_url")
    assert.matches("body, line " .. line .. ", column " .. column, page, 1, true)
    assert.matches("undefined variable 'trigger.reset_url'", page, 1, true)
    assert.matches('<span class="badge badge-failed">failed</span>', page, 1, true)
    assert.matches('"expiry_hours": 2', page, 1, true)
  end)

  it("shows a person's attributes with their JSON types, segments, events, devices and merges", function()
    local page = dom("/people/ada")
    assert.matches('<a href="/segments/1">Power users</a>, <a href="/segments/2">High value</a>', page, 1, true)
    assert.is_nil(page:find("Beta testers", 1, true))
    assert.matches('<code>total_revenue</code></td><td><span class="type">number</span>', page, 1, true)
    assert.matches('<code>admin</code></td><td><span class="type">boolean</span>', page, 1, true)
    assert.matches('<code>tags</code></td><td><span class="type">array</span>', page, 1, true)
    assert.matches("Merged into this profile", page, 1, true)
    assert.matches("ada.l@example.org", page, 1, true)
    assert.matches("fcm_token_ada", page, 1, true)
    assert.matches("purchase", page, 1, true)
    -- cy's revenue is the string "900": typed, and so not in High value.
    local cy = get("/people/cy")
    assert.matches('<code>total_revenue</code></td><td><span class="type">string</span>', cy, 1, true)
    assert.matches('<a href="/segments/1">Power users</a></dd>', cy, 1, true)
    assert.matches('<a href="/segments/3">Beta testers</a>', get("/people/bob"), 1, true)
  end)

  it("lists removed people and finds people by id or email", function()
    local page = dom("/people?q=example")
    assert.matches("temp@example.com", page, 1, true)
    assert.matches('<span class="badge badge-deleted">deleted</span>', page, 1, true)
    assert.matches('<span class="badge badge-merged">merged</span>', page, 1, true)
    assert.matches("ada-old", page, 1, true)
    local found = get("/people?q=BOB@")
    assert.matches("bob@example.com", found, 1, true)
    assert.is_nil(found:find("ada@example.com", 1, true))
  end)

  it("shows a broadcast's trigger with its recipients", function()
    local page = dom("/broadcasts/42")
    assert.matches("Trigger " .. ids.trigger, page, 1, true)
    assert.matches('<a href="/people/cio_', page, 1, true)
    local _, recipients = page:gsub('<tr data%-href="/messages/sbx_', "")
    assert.are.equal(2, recipients) -- ada and cy are on the pro plan
  end)

  it("does not run a script a message carries, in the page or in the email", function()
    local pages = {}
    for _, url in ipairs({ "/messages/" .. ids.script, "/messages/" .. ids.script .. "/html" }) do
      local page = dom(url)
      pages[#pages + 1] = page
      assert.is_not_nil(title(page), url)
      assert.is_nil(title(page):find("PWNED", 1, true), url)
      assert.is_nil(page:find('id="pwned"', 1, true), url)
    end
    local page = pages[1]
    assert.matches("Welcome, Cy &lt;script&gt;", page, 1, true)
    assert.is_nil(page:find("<script>document.title", 1, true))
  end)

  it("shows the requests received with credentials masked", function()
    local page = get("/requests")
    assert.matches("/api/v1/customers/ada", page, 1, true)
    assert.matches("/v1/send/email", page, 1, true)
    local seq
    for _, r in ipairs(h.control("GET", "requests").requests) do
      if r.method == "PUT" and r.path == "/api/v1/customers/ada" then seq = r.seq; break end
    end
    local detail = dom("/requests/" .. seq)
    assert.matches("Basic site:****", detail, 1, true)
    assert.is_nil(detail:find("track-secret-key", 1, true))
  end)

  it("previews a template with sample message_data and lists customerio.preview's problems", function()
    local function post(url, fields, origin)
      local args = {}
      for k, v in pairs(fields) do args[#args + 1] = "--data-urlencode " .. shell_quote(k .. "=" .. v) end
      if origin then args[#args + 1] = "-H " .. shell_quote("Origin: " .. origin) end
      local p = assert(io.popen("curl -s -w '\n%{http_code}' " .. table.concat(args, " ") .. " "
        .. shell_quote(h.base .. url)))
      local out = p:read("*a")
      p:close()
      local body, status = out:match("^(.*)\n(%d+)$")
      return tonumber(status), body
    end
    local id = get("/templates"):match('<tr data%-href="/templates/(%d+)"><td><a href="/templates/%d+">%d+</a></td>'
      .. "<td>order_shipped")
    assert.is_not_nil(id)
    assert.matches('<input type="text" id="f-title" name="title" value="Order {{ trigger.order_id }} shipped">',
      get("/templates/" .. id), 1, true)
    local status, page = post("/templates/" .. id, { action = "preview", title = "Order {{ data.order_id }}",
      message = "It arrives {{ trigger.eta }}.", message_data = '{"eta": "today", "order_id": 7}', customer = "{}" })
    assert.are.equal(200, status)
    assert.matches("1 problem(s)", page, 1, true)
    assert.matches("title, line 1, column 10 · data_reference", page, 1, true)
    assert.matches("<h2>message</h2><pre>It arrives today.</pre>", page, 1, true)
    -- A GET with message_data previews the saved template.
    page = get("/templates/" .. id .. "?message_data=%7B%22order_id%22%3A5%7D")
    assert.matches("<h2>title</h2><pre>Order 5 shipped</pre>", page, 1, true)
    assert.matches("message, line 1, column 15 · missing_variable", page, 1, true)
    -- Saved, the next push uses the new parts.
    status = post("/templates/" .. id, { action = "save", title = "Shipped: {{ trigger.order_id }}",
      message = "Soon." })
    assert.are.equal(200, status)
    local api = require("customerio").APIClient.new("k", { url = h.base .. "/v1", retry = false })
    local sent = assert(api:send_push({ transactional_message_id = "order_shipped", identifiers = { id = "bob" },
      message_data = { order_id = "B-2" } }))
    assert.matches('<div class="title">Shipped: B-2</div><div>Soon.</div>', get("/messages/" .. sent.delivery_id), 1, true)
    -- A form posted from another site changes nothing.
    status = post("/templates/" .. id, { action = "save", title = "evil", message = "evil" }, "http://evil.example")
    assert.are.equal(403, status)
    assert.is_nil(get("/templates/" .. id):find("evil", 1, true))
  end)

  it("saves screenshots of the main pages when CIO_SCREENSHOTS names a directory", function()
    local dir = os.getenv("CIO_SCREENSHOTS")
    if not dir or dir == "" then return pending("set CIO_SCREENSHOTS=docs/img to refresh the README's screenshots") end
    local pages = {
      { "inbox-messages.png", "/" }, { "inbox-email.png", "/messages/" .. ids.reset },
      { "inbox-failure.png", "/messages/" .. ids.failed }, { "inbox-person.png", "/people/ada" },
      { "inbox-broadcast.png", "/broadcasts/42" }, { "inbox-requests.png", "/requests" },
      { "inbox-template.png", "/templates/" .. ids.reset_template
        .. "?message_data=%7B%22expiry_hours%22%3A24%7D&customer=%7B%22first_name%22%3A%22Ada%22%7D" },
    }
    for _, p in ipairs(pages) do
      local path = dir .. "/" .. p[1]
      os.remove(path)
      browse("--window-size=1280,800 --screenshot=" .. shell_quote(path), p[2])
      assert.are.equal("\137PNG", (read(path) or ""):sub(1, 4), path)
    end
  end)
end)
