-- bin/customerio, run as a process with the interpreter running the suite, against the sandbox
-- over HTTP; the progress line through customerio.cli.main with a terminal pretended.
local cli = require("customerio.cli")
local sandbox_http = require("support.sandbox_http")

local shell = require("tools.shell")
local interpreter = shell.interpreter()
local q, read, write = shell.q, shell.read_file, shell.write_file

local function lines(s)
  local out = {}
  for line in s:gmatch("[^\n]+") do out[#out + 1] = line end
  return out
end

describe("bin/customerio", function()
  local h, dir

  -- Run the command; returns exit status, stdout, stderr.
  local function run(args, env)
    local cmd = (env or "") .. " " .. interpreter .. " bin/customerio " .. args .. " >" .. q(dir .. "/out") .. " 2>"
      .. q(dir .. "/err") .. "; echo $?"
    local p = assert(io.popen(cmd))
    local status = tonumber(p:read("*l"))
    p:close()
    return status, read(dir .. "/out"), read(dir .. "/err")
  end

  local function sandbox_flag()
    return "--sandbox " .. h.base
  end

  setup(function()
    h = sandbox_http.start()
    dir = assert(io.popen("mktemp -d /tmp/cio-cli.XXXXXX")):read("*l")
  end)
  teardown(function()
    if h then h.stop() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)
  before_each(function()
    h.control("POST", "reset", {})
    h.control("POST", "config", {})
  end)

  describe("usage", function()
    it("prints help for itself and every subcommand, exit status 0", function()
      local status, out = run("--help")
      assert.are.equal(0, status)
      assert.matches("usage: customerio <command>", out, 1, true)
      for name in pairs(cli.commands) do
        status, out = run(name .. " --help")
        assert.are.equal(0, status, name)
        assert.matches("usage: customerio " .. name, out, 1, true)
      end
    end)

    it("exits 2 with a clear message on bad usage", function()
      local cases = {
        { "", "usage: customerio <command>" },
        { "frobnicate", "unknown command 'frobnicate'" },
        { "import", "give one FILE to import" },
        { "import people.txt", "cannot tell the format of people.txt" },
        { "import x.csv --types revenue=money", "unknown type 'money' for revenue" },
        { "import x.csv --colour red", "unknown option --colour" },
        { "preview t.liquid", "--data MESSAGE_DATA.json is required" },
        { "send-email --template 1", "give exactly one of --id, --email, --cio-id" },
        { "trigger-broadcast 1 --ids a --emails b", "give --ids or --emails, not both" },
        { "sandbox --port 99999", "--port must be a TCP port" },
      }
      for _, c in ipairs(cases) do
        local status, _, err = run(c[1])
        assert.are.equal(2, status, c[1])
        assert.matches(c[2], err, 1, true)
      end
    end)

    it("needs credentials from the environment unless given a sandbox", function()
      write(dir .. "/one.csv", "id\n1\n")
      local status, _, err = run("import " .. q(dir .. "/one.csv"), "env -u CUSTOMERIO_SITE_ID -u CUSTOMERIO_TRACK_API_KEY "
        .. "-u CUSTOMERIO_API_KEY -u CUSTOMERIO_SANDBOX_URL")
      assert.are.equal(2, status)
      assert.matches("set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY", err, 1, true)
    end)
  end)

  describe("import", function()
    it("imports 10 000 CSV rows, reports exactly the 3 bad ones by line and exits 1", function()
      local rows = { "id,email,revenue,active,name" }
      for i = 1, 10000 do
        if i == 17 then
          rows[#rows + 1] = ",nobody@example.com,1,true,x"                 -- no id
        elseif i == 5000 then
          rows[#rows + 1] = "u5000,u5000@example.com,abc,true,x"           -- not a number
        elseif i == 9999 then
          rows[#rows + 1] = "u9999,u9999@example.com,3"                    -- fields missing
        else
          rows[#rows + 1] = ('u%d,u%d@example.com,%d.5,%s,"Name, %d"'):format(i, i, i, tostring(i % 2 == 0), i)
        end
      end
      local path = dir .. "/people.csv"
      write(path, table.concat(rows, "\n") .. "\n")
      local status, out, err = run("import " .. q(path) .. " --types revenue=number,active=boolean " .. sandbox_flag())
      assert.are.equal(1, status)
      assert.are.same({
        path .. ":18: no id (the --id-column)",
        path .. ":5001: revenue: 'abc' is not a number",
        path .. ":10000: 3 fields, the header has 5",
      }, lines(err))
      assert.matches(path .. ": 10000 rows, 9997 sent, 3 failed", out, 1, true)
      assert.are.equal(9997, #h.control("GET", "people").people)
      local p = h.control("GET", { "people", "u42" }).person
      assert.are.equal(42.5, p.attributes.revenue)
      assert.are.equal(true, p.attributes.active)
      assert.are.equal("Name, 42", p.attributes.name)
      assert.is_nil(p.attributes.id_column)
    end)

    it("imports NDJSON with its JSON types and exits 0 when every row went through", function()
      local path = dir .. "/people.ndjson"
      write(path, '{"id":"a","plan":"pro","logins":3,"tags":["x"]}\n\n{"id":7,"email":"b@example.com","vip":true}\n')
      local status, out, err = run("import " .. q(path) .. " " .. sandbox_flag())
      assert.are.equal(0, status, err)
      assert.are.equal("", err)
      assert.matches(": 2 rows, 2 sent, 0 failed", out, 1, true)
      assert.are.equal(3, h.control("GET", { "people", "a" }).person.attributes.logins)
      assert.are.equal(true, h.control("GET", { "people", "7" }).person.attributes.vip)
    end)

    it("reports bad NDJSON lines with their line numbers", function()
      local path = dir .. "/bad.ndjson"
      write(path, '{"id":"a"}\n{"id":\n[1,2]\n{"email":"x@example.com"}\n{"id":"b","n":"x"}\n')
      local status, _, err = run("import " .. q(path) .. " --types n=integer " .. sandbox_flag())
      assert.are.equal(1, status)
      local got = lines(err)
      assert.are.equal(4, #got)
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ":2: invalid JSON", got[1])
      assert.are.equal(path .. ":3: not a JSON object", got[2])
      assert.are.equal(path .. ":4: no id (the --id-column)", got[3])
      assert.are.equal(path .. ":5: n: 'x' is not an integer", got[4])
    end)

    it("reports rows Customer.io refuses with their lines", function()
      -- The first batch is refused (a 400 is not retried): its rows come back through on_error.
      h.control("POST", "faults", { path = "/api/v2/batch", status = 400, count = 1,
        body = { errors = { { reason = "invalid", field = "", message = "refused by the fault" } } } })
      local path = dir .. "/five.csv"
      write(path, "id,plan\np1,a\np2,b\np3,c\np4,d\np5,e\n")
      local status, _, err = run("import " .. q(path) .. " " .. sandbox_flag())
      assert.are.equal(1, status)
      local refused = lines(err)
      assert.is_true(#refused >= 1)
      for _, line in ipairs(refused) do
        assert.matches("^" .. path:gsub("%p", "%%%0") .. ":[2-6]: refused by Customer.io: ", line)
      end
      assert.are.equal(5, #refused + #h.control("GET", "people").people)
    end)

    it("shows a progress line on a terminal and a plain summary otherwise", function()
      local path = dir .. "/few.csv"
      write(path, "id,plan\np1,a\np2,b\n")
      local function capture()
        local buf = {}
        return { write = function(self, ...) for _, s in ipairs({ ... }) do buf[#buf + 1] = s end return self end,
          flush = function() end, text = function() return table.concat(buf) end }
      end
      local out, err = capture(), capture()
      local env = { getenv = os.getenv, stdout = out, stderr = err, isatty = true }
      assert.are.equal(0, cli.main({ "import", path, "--sandbox", h.base }, env))
      assert.matches("\r2/2 rows · [%d,]+ rows/s · sent 2 · failed 0 · ETA %-", err.text())
      out, err = capture(), capture()
      env = { getenv = os.getenv, stdout = out, stderr = err, isatty = false }
      assert.are.equal(0, cli.main({ "import", path, "--sandbox", h.base }, env))
      assert.are.equal("", err.text())
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ": 2 rows, 2 sent, 0 failed", out.text())
    end)
  end)

  describe("preview", function()
    it("renders the template and exits 0 without problems", function()
      write(dir .. "/ok.liquid", "Hi {{ customer.first_name }}, code {{ trigger.code }}\n")
      write(dir .. "/data.json", '{"code": 42}')
      write(dir .. "/customer.json", '{"first_name": "Ada"}')
      local status, out, err = run("preview " .. q(dir .. "/ok.liquid") .. " --data " .. q(dir .. "/data.json")
        .. " --customer " .. q(dir .. "/customer.json"))
      assert.are.equal(0, status, err)
      assert.are.equal("Hi Ada, code 42\n", out)
      assert.are.equal("", err)
    end)

    it("lists problems with file, line and column and exits 1", function()
      local path = dir .. "/bad.liquid"
      write(path, "Hi {{ customer.first_name }},\n{{ data.reset_url }} {{ trigger.missing }}\n")
      write(dir .. "/data.json", "{}")
      local status, _, err = run("preview " .. q(path) .. " --data " .. q(dir .. "/data.json"))
      assert.are.equal(1, status)
      local got = lines(err)
      assert.are.equal(3, #got)
      assert.matches(path .. ":1:7: error: ", err, 1, true)
      assert.matches(path .. ":2:4: error: data.reset_url", err, 1, true)
      assert.matches(path .. ":2:25: error: ", err, 1, true)
    end)

    it("exits 1 on a template that does not parse or a file that cannot be read", function()
      write(dir .. "/syntax.liquid", "{% if %}x{% endif %}")
      write(dir .. "/data.json", "{}")
      local status, _, err = run("preview " .. q(dir .. "/syntax.liquid") .. " --data " .. q(dir .. "/data.json"))
      assert.are.equal(1, status)
      assert.matches(dir .. "/syntax.liquid:1:7: error: ", err, 1, true)
      status, _, err = run("preview " .. q(dir .. "/nope.liquid") .. " --data " .. q(dir .. "/data.json"))
      assert.are.equal(1, status)
      assert.matches("nope.liquid", err, 1, true)
      write(dir .. "/list.json", "[1]")
      status, _, err = run("preview " .. q(dir .. "/syntax.liquid") .. " --data " .. q(dir .. "/list.json"))
      assert.are.equal(1, status)
      assert.matches("is not a JSON object", err, 1, true)
    end)
  end)

  describe("send-email and trigger-broadcast", function()
    it("send a transactional email and trigger a broadcast in the sandbox", function()
      h.control("POST", "transactional", { id = "hello", template = { from = "a@example.com",
        subject = "Hi {{ trigger.name }}", body = "<p>Hello {{ trigger.name }}</p>" } })
      h.control("POST", "segments", { id = 1, name = "all", filter = { attribute = { field = "plan",
        operator = "exists" } } })
      h.control("POST", "broadcasts", { id = 9, segment = 1, template = { from = "a@example.com", subject = "News",
        body = "v{{ trigger.v }}" } })
      write(dir .. "/data.json", '{"name": "Ada", "v": 2}')
      local status, out, err = run("send-email --template hello --email ada@example.com --data "
        .. q(dir .. "/data.json") .. " " .. sandbox_flag())
      assert.are.equal(0, status, err)
      assert.matches('"delivery_id":"sbx_', out, 1, true)
      local m = h.control("GET", "outbox").messages[1]
      assert.are.equal("Hi Ada", m.subject)
      assert.are.equal("ada@example.com", m.to)
      assert.are.equal(1, (run("import " .. q(dir .. "/seg.csv") .. " " .. sandbox_flag()))) -- no such file
      write(dir .. "/seg.csv", "id,plan,email\nx,pro,x@example.com\n")
      assert.are.equal(0, (run("import " .. q(dir .. "/seg.csv") .. " " .. sandbox_flag())))
      status, out, err = run("trigger-broadcast 9 --data " .. q(dir .. "/data.json") .. " " .. sandbox_flag())
      assert.are.equal(0, status, err)
      assert.matches('^{"id":%d+}', out)
      local last = h.control("GET", "outbox").messages
      assert.are.equal("v2", last[#last].body)
    end)

    it("exit 1 with the API's error", function()
      local status, _, err = run("send-email --template nope --id 1 --to a@example.com " .. sandbox_flag())
      assert.are.equal(1, status)
      assert.matches("not found", err, 1, true)
      status, _, err = run("trigger-broadcast 404 " .. sandbox_flag())
      assert.are.equal(1, status)
      assert.matches("broadcast 404 not found", err, 1, true)
    end)
  end)

  describe("sandbox", function()
    it("starts the sandbox and prints the inbox URL", function()
      local started
      for _ = 1, 5 do
        local port = math.random(20000, 60000)
        os.remove(dir .. "/sb.out")
        -- Its own process group, so that the spec can stop it (nginx included) by that id.
        os.execute("setsid sh -c 'echo $$ >" .. dir .. "/sb.pid; exec " .. interpreter .. " bin/customerio sandbox --port "
          .. port .. " >" .. dir .. "/sb.out 2>&1' &")
        local Client = require("customerio.http.client")
        local probe = Client.new({ base_url = "http://127.0.0.1:" .. port, retry = false, timeout = 500 })
        for _ = 1, 100 do
          local res = probe:request("GET", "/__sandbox/version")
          if res then started = port; break end
          local out = io.open(dir .. "/sb.out") and read(dir .. "/sb.out") or ""
          if out:find("Address already in use", 1, true) then break end
          require("customerio.core").sleep_ms(100)
        end
        local pid = tonumber((read(dir .. "/sb.pid"):match("%d+")))
        local out = read(dir .. "/sb.out")
        -- The URLs are printed once the launcher has seen the sandbox answer, which can be just
        -- after this probe did: wait for them (bounded).
        for _ = 1, 100 do
          if not started or out:find("Inbox:", 1, true) then break end
          require("customerio.core").sleep_ms(100)
          out = read(dir .. "/sb.out")
        end
        os.execute("kill -TERM -" .. pid .. " 2>/dev/null")
        if started then
          assert.matches("Inbox: http://127.0.0.1:" .. port .. "/", out, 1, true)
          break
        end
      end
      assert.is_not_nil(started, "customerio sandbox did not start")
    end)
  end)
end)
