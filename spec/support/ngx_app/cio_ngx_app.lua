-- Handlers of the nginx that spec/transport/ngx_spec.lua starts (config: spec/support/ngx_app/nginx.conf).
-- They run the lua-customerio client inside nginx and report what happened as JSON.
--
-- A scenario (POST body of /run, /access, /rewrite, /timer) is a JSON object:
--   api        "track" | "app" | "client" (the shared request path itself)
--   call       method name ("identify", "send_email", "trigger_broadcast"; "request" for client)
--   args       array of arguments (for "client": method, path, opts)
--   opts       client options: url, timeout, retry, ca_file, region ...; for "client" base_url
--   transport  "default" (what the client picks), "builtin" / "resty.http" (the ngx transport
--              with that backend), "curl" (the blocking libcurl transport, for contrast)
--   transport_opts  options for the transport (max_response, keepalive_timeout, pool ...)
--   times      how many times to run the call in a row (default 1)
--   site_id, key   credentials for the Track client; key for the App client
-- The answer: { phase, transport, backend, results = [ {ok, value, err, status, connects} ] }.
local customerio = require("customerio")
local Client = require("customerio.http.client")
local cjson = require("customerio.json")

local ngx = ngx
local dict = ngx.shared.cio_app

local M = {}

local config = {}
local probes = {}

function M.configure(cfg)
  config = cfg or {}
end

local function encode(v)
  local s, err = cjson.encode(v)
  if not s then return '{"encode_error":' .. string.format("%q", tostring(err)) .. "}" end
  return s
end

local function err_table(e)
  if type(e) ~= "table" then return { kind = "raised", message = tostring(e) } end
  return {
    kind = e.kind, message = e.message, status = e.status, attempts = e.attempts,
    retryable = e.retryable, text = tostring(e), body = e.body,
    sent = e.sent, stage = e.stage, detail = e.detail, code = e.code, codes = e.codes,
  }
end

local function make_transport(name, topts)
  if name == nil or name == "default" then
    return nil
  elseif name == "curl" then
    return require("customerio.transport.curl").new(topts)
  elseif name == "ngx" then
    return require("customerio.transport.ngx").new(topts)
  end
  topts = topts or {}
  topts.backend = name
  return require("customerio.transport.ngx").new(topts)
end

local function unpack_args(args)
  args = args or {}
  local n = args.n or #args
  return (table.unpack or unpack)(args, 1, n) -- luacheck: ignore 113
end

local function build(s)
  local opts = {}
  for k, v in pairs(s.opts or {}) do opts[k] = v end
  local transport = make_transport(s.transport, s.transport_opts)
  if transport then opts.transport = transport end
  if s.api == "track" then
    return customerio.TrackClient.new(s.site_id or "site", s.key or "trackkey", opts)
  elseif s.api == "app" then
    return customerio.APIClient.new(s.key or "appkey", opts)
  elseif s.api == "client" then
    opts.base_url = opts.base_url or opts.url
    opts.url = nil
    if s.default_transport_opts then
      for k, v in pairs(s.default_transport_opts) do opts[k] = v end
    end
    return Client.new(opts)
  end
  error("unknown api " .. tostring(s.api))
end

-- The transport object a client ended up with (the Track/App clients keep theirs inside).
local function transport_of(c)
  if type(c) ~= "table" then return nil end
  if c.transport then return c.transport end
  for _, v in pairs(c) do
    if type(v) == "table" and type(v.transport) == "table" and v.transport.send then return v.transport end
  end
  return nil
end

--- Run a scenario in the current phase; returns the report table.
function M.run(s)
  local report = { phase = ngx.get_phase(), results = {} }
  local ok, c = pcall(build, s)
  if not ok then
    report.build_error = tostring(c)
    return report
  end
  local t = transport_of(c)
  report.transport = t and t.name
  report.backend = t and t.backend
  for i = 1, s.times or 1 do
    local r = {}
    local started = ngx.now()
    local pok, value, extra = pcall(function() return c[s.call](c, unpack_args(s.args)) end)
    ngx.update_time()
    r.ms = math.floor((ngx.now() - started) * 1000 + 0.5)
    if not pok then
      r.ok = false
      r.err = { kind = "raised", message = tostring(value) }
    elseif value == nil then
      r.ok = false
      r.err = err_table(extra)
    else
      r.ok = true
      r.value = value
      if type(extra) == "table" then r.status = extra.status; r.headers = extra.headers end
    end
    if t and t.connects then r.connects = t:connects() end
    report.results[i] = r
  end
  if t and t.stats then report.stats = t.stats end
  return report
end

local function read_scenario()
  ngx.req.read_body()
  local body = ngx.req.get_body_data() or "{}"
  local s, err = cjson.decode(body)
  if not s then error("bad scenario: " .. tostring(err)) end
  return s
end

local function reply(report)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(encode(report))
end

function M.run_content()
  reply(M.run(read_scenario()))
end

function M.run_in_phase()
  ngx.ctx.report = M.run(read_scenario())
end

function M.print_ctx_result()
  reply(ngx.ctx.report or { error = "no report" })
end

function M.run_in_timer()
  local s = read_scenario()
  local key = "timer:" .. tostring(dict:incr("timer:n", 1, 0))
  local ok, err = ngx.timer.at(0, function(premature)
    if premature then return end
    local pok, report = pcall(M.run, s)
    if not pok then report = { error = tostring(report) } end
    dict:set(key, encode(report))
  end)
  if not ok then return reply({ error = "timer: " .. tostring(err) }) end
  for _ = 1, 3000 do
    local v = dict:get(key)
    if v then
      ngx.header["Content-Type"] = "application/json"
      return ngx.print(v)
    end
    ngx.sleep(0.01)
  end
  reply({ error = "the timer did not finish" })
end

-- Concurrency -------------------------------------------------------------------------------------

local concurrent_clients = {}

function M.concurrent()
  local which = ngx.var.arg_transport or "ngx"
  local c = concurrent_clients[which]
  if not c then
    local opts = { url = config.upstream .. "/api/v1", retry = false, timeout = 30000 }
    if which == "curl" then opts.transport = require("customerio.transport.curl").new() end
    c = customerio.TrackClient.new("site", "trackkey", opts)
    concurrent_clients[which] = c
  end
  local t = transport_of(c)
  local ok, err = c:identify(ngx.var.arg_id or "1", { email = "c" .. (ngx.var.arg_id or "1") .. "@example.com" })
  reply({ ok = ok ~= nil, err = ok == nil and err_table(err) or nil, transport = t and t.name })
end

-- Phases without cosockets -------------------------------------------------------------------------

-- Make a call with a default client in the current phase and describe the outcome.
local function probe_call(phase)
  local report = { phase = phase }
  local ok, err = pcall(function()
    local c = Client.new({ base_url = config.upstream or "http://127.0.0.1:9", retry = false, timeout = 2000 })
    report.transport = c.transport and c.transport.name
    local value, e = c:request("POST", { "probe", phase }, { body = { phase = phase } })
    report.ok = value ~= nil
    if value == nil then report.err = err_table(e) end
  end)
  if not ok then report.raised = tostring(err) end
  return report
end

function M.phase_probe(phase)
  local report = probe_call(phase)
  local text = encode(report)
  probes[phase] = text
  if phase == "log" then dict:set("probe:log", text) end
  return text
end

function M.print_probe(phase)
  local text = probes[phase]
  if phase == "log" then text = dict:get("probe:log") end
  ngx.header["Content-Type"] = "application/json"
  ngx.print(text or "null")
end

function M.header_filter_probe()
  ngx.header["X-Probe"] = M.phase_probe("header_filter")
end

function M.body_filter_probe()
  if ngx.ctx.probed then
    ngx.arg[1] = ""
    return
  end
  ngx.ctx.probed = true
  ngx.arg[1] = M.phase_probe("body_filter")
  ngx.arg[2] = true
end

-- Raw responses -----------------------------------------------------------------------------------

local function chunk(s) return string.format("%x", #s) .. "\r\n" .. s .. "\r\n" end

local raw_responses = {
  -- no Content-Length, no chunking: the body ends when the server closes
  close = { "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n", '{"framing":"close"}' },
  chunked = { "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    "7;ext=1\r\n", '{"a":[1', "\r\n", chunk(",2,3"), chunk("],\"b\":\"x\"}"), "0\r\nX-Trailer: t\r\n\r\n" },
  repeated = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Multi: a\r\nx-multi: b\r\nX-Folded: one\r\n  two\r\n" ..
    "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n{}" },
  continue = { "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" ..
    "HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\n{\"id\":\"c\"}\n" },
  garbage = { "SSH-2.0-OpenSSH\r\n\r\n" },
  bad_length = { "HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n{}" },
  short = { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":" },
  big = { "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n", string.rep("a", 5000) },
  big_close = { "HTTP/1.1 200 OK\r\n\r\n", string.rep("b", 5000) },
  big_chunked = { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", chunk(string.rep("c", 3000)),
    chunk(string.rep("c", 3000)), "0\r\n\r\n" },
  http10 = { "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}" },
  conn_close = { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}" },
  no_content = { "HTTP/1.1 204 No Content\r\n\r\n" },
  error_json = { "HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\nContent-Length: 37\r\n\r\n",
    '{"meta":{"error":"email is invalid"}}' },
  -- the status line never ends: exercises the whole-request budget on a slow reader
  stall = { "HTTP/1.1 200 OK\r\n" },
  -- one header line that never ends, a byte at a time
  drip_line = { "HTTP/1.1 200 OK\r\nX-Long: " },
}

function M.raw()
  local name = ngx.var.uri:match("^/raw/([%w_]+)")
  local parts = raw_responses[name]
  ngx.req.read_body()
  local sock, err = ngx.req.socket(true)
  if not sock then
    ngx.log(ngx.ERR, "raw socket: ", err)
    return ngx.exit(500)
  end
  if not parts then
    sock:send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    return
  end
  for i = 1, #parts do
    sock:send(parts[i])
    if name == "chunked" or name == "big_chunked" then ngx.sleep(0.005) end
  end
  if name == "stall" or name == "drip_line" then
    for _ = 1, 20 do
      ngx.sleep(0.05)
      sock:send(name == "stall" and "X-Slow: 1\r\n" or "a")
    end
  end
end

function M.print_stats()
  local out = {}
  for name, c in pairs(concurrent_clients) do
    local t = transport_of(c)
    out[name] = t and t.stats
  end
  reply(out)
end

-- Worker setup ------------------------------------------------------------------------------------

function M.init_worker()
  M.phase_probe("init_worker")
end

return M
