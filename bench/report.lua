--- Turns the raw measurements of bench/run.sh into the printed table and bench/results.json.
--
--     lua5.4 bench/report.lua OUT.json     (run by bench/run.sh; needs lua-cjson)
--
-- Input, from the environment run.sh sets: CIO_BENCH_TMP (raw.jsonl, one line per client run;
-- json-5.4.json and json-luajit.json from bench/json.lua; ext-<name>.json from the queue and
-- Liquid suites), CIO_BENCH_NODE, CIO_BENCH_CALLS, CIO_BENCH_REPS, CIO_BENCH_INFLIGHT,
-- CIO_BENCH_WRK_SECONDS. Every figure is the median over the repetitions.
local cjson = require("cjson")

local out_path = assert(arg[1], "usage: report.lua OUT.json")
local tmp = assert(os.getenv("CIO_BENCH_TMP"), "CIO_BENCH_TMP not set")
local CALLS = tonumber(os.getenv("CIO_BENCH_CALLS")) or 0
local INFLIGHT = tonumber(os.getenv("CIO_BENCH_INFLIGHT")) or 32

-- ------------------------------------------------------------ helpers

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function shell(cmd)
  local p = io.popen(cmd .. " 2>&1")
  if not p then return nil end
  local s = p:read("a")
  p:close()
  s = s and s:gsub("%s+$", "") or ""
  if s == "" then return nil end
  return s
end

local function first_line(s) return s and s:match("^[^\n]*") or nil end

local function median(list)
  if #list == 0 then return nil end
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  local n = #t
  if n % 2 == 1 then return t[(n + 1) / 2] end
  return (t[n / 2] + t[n / 2 + 1]) / 2
end

local function round(x, digits)
  if x == nil then return nil end
  local m = 10 ^ (digits or 0)
  local r = math.floor(x * m + 0.5) / m
  if (digits or 0) == 0 then return math.tointeger(r) or r end
  return r
end

local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" elseif c == "\n" then return "\\n" end
    return string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- Ordered JSON objects: obj{"k1", v1, "k2", v2, ...} keeps its keys in that order.
local ORDER = setmetatable({}, { __mode = "k" })
local function obj(list)
  local t, keys = {}, {}
  for i = 1, #list, 2 do
    if list[i + 1] ~= nil then
      keys[#keys + 1] = list[i]
      t[list[i]] = list[i + 1]
    end
  end
  ORDER[t] = keys
  return t
end

local function encode(v, indent)
  indent = indent or ""
  local tv = type(v)
  if v == nil or v == cjson.null then return "null" end
  if tv == "boolean" then return tostring(v) end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then return "null" end
    if math.type(v) == "integer" or (v == math.floor(v) and math.abs(v) < 2 ^ 53) then
      return string.format("%d", v)
    end
    return (string.format("%.10g", v))
  end
  if tv == "string" then return quote(v) end
  assert(tv == "table", "cannot encode " .. tv)
  local inner = indent .. "  "
  local keys = ORDER[v]
  if not keys then
    if #v > 0 or next(v) == nil and getmetatable(v) == cjson.array_mt then
      local parts = {}
      local scalar = true
      for i = 1, #v do
        parts[i] = encode(v[i], inner)
        if type(v[i]) == "table" then scalar = false end
      end
      if #parts == 0 then return "[]" end
      if scalar then return "[" .. table.concat(parts, ", ") .. "]" end
      return "[\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "]"
    end
    keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
  end
  if #keys == 0 then return "{}" end
  local parts = {}
  for i, k in ipairs(keys) do
    parts[i] = quote(k) .. ": " .. encode(v[k], inner)
  end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. "\n" .. indent .. "}"
end

-- ------------------------------------------------------------ raw runs

local runs = {} -- id -> list of raw records
local warnings = {}
for line in io.lines(tmp .. "/raw.jsonl") do
  local r = cjson.decode(line)
  runs[r.id] = runs[r.id] or {}
  table.insert(runs[r.id], r)
end

-- A client run's figures: calls/s of the timed loop, CPU µs per call over every call the
-- process made (warm-up included, startup included), peak RSS, connections used.
local function client(id, label)
  local list = runs[id]
  if not list then return nil end
  local rates, cpus, rss, conns, samples = {}, {}, {}, {}, {}
  for _, r in ipairs(list) do
    local o = r.out
    local total, rate
    if id:match("%.curl$") then
      -- One curl process for N URLs: the marginal rate, (N - 1) / (wall(N) - wall(1)), so that
      -- process start and connect (measured by the 1-URL run of the same repetition) are out.
      local base
      for _, b in ipairs(runs["seq.curl1"] or {}) do
        if b.rep == r.rep then base = b.wall_ns end
      end
      total = CALLS
      rate = (CALLS - 1) / ((r.wall_ns - (base or 0)) / 1e9)
    else
      total = o.calls + (o.warmup or 0)
      rate = o.calls / o.seconds
    end
    local expected = id:match("_layer$") and 0 or total
    if r.requests ~= expected then
      warnings[#warnings + 1] = string.format("%s #%d: the responder saw %d requests, expected %d",
        id, r.rep, r.requests, expected)
    end
    rates[#rates + 1] = rate
    samples[#samples + 1] = round(rate, 1)
    cpus[#cpus + 1] = (r.user + r.sys) / total * 1e6
    rss[#rss + 1] = r.rss_kb
    conns[#conns + 1] = r.conns
  end
  local rate = median(rates)
  return obj{
    "label", label,
    "calls_per_s", round(rate, 1),
    "us_per_call", round(1e6 / rate, 2),
    "cpu_us_per_call", round(median(cpus), 2),
    "peak_rss_kb", round(median(rss)),
    "connections", median(conns),
    "samples_calls_per_s", samples,
    "client_reported", list[#list].out ~= cjson.null and list[#list].out or nil,
  }
end

local function wrk(id, label)
  local list = runs[id]
  if not list then return nil end
  local rates, samples, conns = {}, {}, {}
  for _, r in ipairs(list) do
    rates[#rates + 1] = r.out.rps
    samples[#samples + 1] = r.out.rps
    conns[#conns + 1] = r.conns
  end
  local rate = median(rates)
  return obj{
    "label", label,
    "calls_per_s", round(rate, 1),
    "us_per_call", round(1e6 / rate, 2),
    "connections", median(conns),
    "samples_calls_per_s", samples,
  }
end

local node_version = shell((os.getenv("CIO_BENCH_NODE") or "node") .. " --version") or "?"
local seq = obj{
  "wrk_c1", wrk("seq.wrk", "wrk -t1 -c1 (server + loopback limit)"),
  "curl_cli", client("seq.curl", "curl command line, one process, one connection"),
  "ours_lua54", client("seq.lua54", "lua-customerio TrackClient:identify, Lua 5.4"),
  "ours_luajit", client("seq.luajit", "lua-customerio TrackClient:identify, LuaJIT"),
  "core_lua54", client("seq.lua54_core", "C core alone (json_encode + handle:perform), Lua 5.4"),
  "core_luajit", client("seq.luajit_core", "C core alone (json_encode + handle:perform), LuaJIT"),
  "layer_lua54", client("seq.lua54_layer", "Lua layer + JSON alone, no I/O, Lua 5.4"),
  "layer_luajit", client("seq.luajit_layer", "Lua layer + JSON alone, no I/O, LuaJIT"),
  "node", client("seq.node", "customerio-node 5.2.0 identify, Node " .. node_version),
}
local not_yet = obj{ "status", "not measured",
  "reason", runs["conc.node"] and "customerio.async (issue 10) not available in this build"
    or "the concurrent section was not run" }
local conc = obj{
  "in_flight", INFLIGHT,
  "wrk_c32", wrk("conc.wrk", "wrk -t1 -c" .. INFLIGHT .. " (server + loopback limit)"),
  "node", client("conc.node", "customerio-node 5.2.0, " .. INFLIGHT .. " identify promises in flight"),
  "ours_lua54", client("conc.lua54", "lua-customerio async, " .. INFLIGHT .. " in flight, Lua 5.4") or not_yet,
  "ours_luajit", client("conc.luajit", "lua-customerio async, " .. INFLIGHT .. " in flight, LuaJIT") or not_yet,
}

-- ------------------------------------------------------------ JSON

local json = {}
for _, v in ipairs({ "5.4", "luajit" }) do
  local text = read_file(tmp .. "/json-" .. v .. ".json")
  if text then
    local r = cjson.decode(text)
    local names = {}
    for name in pairs(r.cases) do names[#names + 1] = name end
    table.sort(names)
    local list = {}
    for _, name in ipairs(names) do
      local c = r.cases[name]
      local ours_e = c.encode.ours ~= cjson.null and c.encode.ours or nil
      local ours_d = c.decode.ours ~= cjson.null and c.decode.ours or nil
      list[#list + 1] = name
      list[#list + 1] = obj{
        "bytes", c.bytes,
        "bytes_ours", c.bytes_ours ~= cjson.null and c.bytes_ours or nil,
        "encode_ops_per_s", obj{ "ours", ours_e and round(ours_e, 1), "cjson", round(c.encode.cjson, 1) },
        "decode_ops_per_s", obj{ "ours", ours_d and round(ours_d, 1), "cjson", round(c.decode.cjson, 1) },
        "encode_ratio", ours_e and round(ours_e / c.encode.cjson, 3),
        "decode_ratio", ours_d and round(ours_d / c.decode.cjson, 3),
        "encode_mb_per_s", obj{ "ours", ours_e and round(ours_e * (c.bytes_ours or c.bytes) / 1e6, 1),
          "cjson", round(c.encode.cjson * c.bytes / 1e6, 1) },
      }
    end
    json[v == "5.4" and "lua54" or "luajit"] = obj{ "lua", r.lua, "cjson", r.cjson, "cases", obj(list) }
  end
end

-- ------------------------------------------------------------ other suites

local function external(name)
  local text = read_file(tmp .. "/ext-" .. name .. ".json")
  local err = read_file(tmp .. "/ext-" .. name .. ".err.json")
  if not text then
    if err then return cjson.decode(err) end
    return obj{ "status", "not measured", "reason", "bench/" .. name .. "/run.sh not present" }
  end
  local ok, value = pcall(cjson.decode, text)
  if not ok then return obj{ "error", "bench/" .. name .. " wrote invalid JSON: " .. tostring(value) } end
  if err and type(value) == "table" then value.error = cjson.decode(err).error end
  return value
end
local queue, liquid = external("queue"), external("liquid")
-- Any other suite that wrote figures (bench/<name>/run.sh), e.g. async.
local others = {}
do
  local p = io.popen("ls " .. tmp)
  for f in p:lines() do
    local name = f:match("^ext%-([%w_]+)%.json$") or f:match("^ext%-([%w_]+)%.err%.json$")
    if name and name ~= "queue" and name ~= "liquid" and not others[name] then
      others[name] = external(name)
      others[#others + 1] = name
    end
  end
  p:close()
  table.sort(others)
end

-- ------------------------------------------------------------ ratios and targets

local function fig(t, key) return t and t[key] end
local function ratio(a, b)
  if a == nil or b == nil or b == 0 then return nil end
  return round(a / b, 3)
end

local ratios = {}
local ratio_list = {}
local function add_ratio(name, value)
  ratio_list[#ratio_list + 1] = name
  ratio_list[#ratio_list + 1] = value == nil and cjson.null or value
  ratios[name] = value
end
for _, v in ipairs({ "lua54", "luajit" }) do
  local ours = seq["ours_" .. v]
  add_ratio("seq_" .. v .. "_vs_node", ratio(fig(ours, "calls_per_s"), fig(seq.node, "calls_per_s")))
  add_ratio("seq_" .. v .. "_vs_curl_cli", ratio(fig(ours, "calls_per_s"), fig(seq.curl_cli, "calls_per_s")))
  add_ratio("seq_" .. v .. "_vs_wrk_c1", ratio(fig(ours, "calls_per_s"), fig(seq.wrk_c1, "calls_per_s")))
  add_ratio("seq_" .. v .. "_vs_core_alone", ratio(fig(ours, "calls_per_s"), fig(seq["core_" .. v], "calls_per_s")))
  add_ratio("cpu_" .. v .. "_vs_node", ratio(fig(ours, "cpu_us_per_call"), fig(seq.node, "cpu_us_per_call")))
  add_ratio("cpu_" .. v .. "_vs_curl_cli", ratio(fig(ours, "cpu_us_per_call"), fig(seq.curl_cli, "cpu_us_per_call")))
  add_ratio("rss_" .. v .. "_vs_node", ratio(fig(ours, "peak_rss_kb"), fig(seq.node, "peak_rss_kb")))
  add_ratio("cpu_share_of_lua_layer_" .. v, ratio(fig(seq["layer_" .. v], "cpu_us_per_call"), fig(ours, "cpu_us_per_call")))
  local c = conc["ours_" .. v]
  add_ratio("conc_" .. v .. "_vs_node", ratio(fig(c, "calls_per_s"), fig(conc.node, "calls_per_s")))
end
add_ratio("seq_node_vs_wrk_c1", ratio(fig(seq.node, "calls_per_s"), fig(seq.wrk_c1, "calls_per_s")))
add_ratio("seq_curl_cli_vs_wrk_c1", ratio(fig(seq.curl_cli, "calls_per_s"), fig(seq.wrk_c1, "calls_per_s")))
add_ratio("conc_node_vs_wrk_c32", ratio(fig(conc.node, "calls_per_s"), fig(conc.wrk_c32, "calls_per_s")))
local function field(t, ...)
  for _, k in ipairs({ ... }) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  if t == cjson.null then return nil end
  return t
end
for _, v in ipairs({ "lua54", "luajit" }) do
  add_ratio("conc_" .. v .. "_cpu_vs_node", ratio(fig(conc["ours_" .. v], "cpu_us_per_call"), fig(conc.node, "cpu_us_per_call")))
  add_ratio("queue_" .. v .. "_delivered_vs_node", field(queue, v, "ratio_vs_node") and round(queue[v].ratio_vs_node, 3))
  add_ratio("queue_" .. v .. "_spool_vs_none", field(queue, v, "spool", "ratio") and round(queue[v].spool.ratio, 3))
  add_ratio("liquid_" .. v .. "_render_speed_vs_liquidjs", field(liquid, "speedup_" .. v))
  for _, t in ipairs({ "numeric", "digest" }) do
    add_ratio("liquid_" .. t .. "_" .. v .. "_render_speed_vs_liquidjs", field(liquid, "templates", t, "speedup_" .. v))
  end
end
for _, v in ipairs({ "lua54", "luajit" }) do
  for _, case in ipairs({ "identify", "transactional" }) do
    local c = json[v] and json[v].cases[case]
    add_ratio("json_encode_" .. case .. "_" .. v .. "_vs_cjson", c and c.encode_ratio)
    add_ratio("json_decode_" .. case .. "_" .. v .. "_vs_cjson", c and c.decode_ratio)
  end
end

local targets = {}
local function target(name, value, op, bound, detail)
  local pass = cjson.null
  if value ~= nil then
    if op == ">=" then pass = value >= bound else pass = value <= bound end
  end
  targets[#targets + 1] = obj{ "name", name, "value", value, "target", op .. " " .. bound, "pass", pass, "detail", detail }
end
for _, v in ipairs({ "lua54", "luajit" }) do
  local lv = v == "lua54" and "Lua 5.4" or "LuaJIT"
  target("sequential identify vs customerio-node (" .. lv .. ")", ratios["seq_" .. v .. "_vs_node"], ">=", 5)
  target("sequential identify vs curl command line (" .. lv .. ")", ratios["seq_" .. v .. "_vs_curl_cli"], ">=", 0.9)
  target("CPU per call vs customerio-node (" .. lv .. ")", ratios["cpu_" .. v .. "_vs_node"], "<=", 0.2)
  for _, case in ipairs({ "identify", "transactional" }) do
    target("JSON encode " .. case .. " payload vs lua-cjson (" .. lv .. ")",
      ratios["json_encode_" .. case .. "_" .. v .. "_vs_cjson"], ">=", 1)
    target("JSON decode " .. case .. " payload vs lua-cjson (" .. lv .. ")",
      ratios["json_decode_" .. case .. "_" .. v .. "_vs_cjson"], ">=", 1)
  end
  for _, t in ipairs({ "receipt", "numeric" }) do
    target("Liquid render, " .. t .. " template, vs liquidjs (" .. lv .. "; bench/liquid)",
      field(liquid, "templates", t, "speedup_" .. v), ">=", v == "lua54" and 1.5 or 5)
  end
end

-- The async suite: the best of our clients against customerio-node, both 32 in flight.
local async = others.async
if type(async) == "table" and type(async.clients) == "table" then
  local best
  for id, c in pairs(async.clients) do
    if id ~= "node" and type(c) == "table" and type(c.ratio_vs_node) == "number" then
      if not best or c.ratio_vs_node > best then best = c.ratio_vs_node end
      add_ratio("async_" .. id .. "_vs_node", round(c.ratio_vs_node, 3))
    end
  end
  if best and type(async.target_ratio) == "number" then
    target("async identify, 32 in flight, vs customerio-node (best client; bench/async)", round(best, 3), ">=",
      async.target_ratio)
  end
end
if type(queue) == "table" and queue.pass ~= nil and queue.pass ~= cjson.null then
  target("queue delivered events/s vs customerio-node (best interpreter; bench/queue)",
    field(queue, "ratio_vs_node") and round(queue.ratio_vs_node, 3), ">=", field(queue, "target_ratio") or 20)
end
for _, v in ipairs({ "lua54", "luajit" }) do
  if field(queue, v, "spool", "ratio") then
    target("queue delivered events/s with a spool (fsync 100 ms) vs without (" .. v .. "; bench/queue)",
      round(queue[v].spool.ratio, 3), ">=", 0.5)
  end
end

-- ------------------------------------------------------------ machine

local function cpu_model()
  local info = read_file("/proc/cpuinfo") or ""
  return info:match("model name%s*:%s*([^\n]+)")
end
local function meminfo()
  local info = read_file("/proc/meminfo") or ""
  local kb = tonumber(info:match("MemTotal:%s*(%d+)"))
  return kb and string.format("%.1f GiB", kb / 1048576) or nil
end
local root = os.getenv("CIO_BENCH_ROOT") or "."
local cio_node_pkg = read_file(root .. "/bench/node_modules/customerio-node/package.json")
local machine = obj{
  "cpu", cpu_model(),
  "cores", tonumber(shell("nproc")),
  "memory", meminfo(),
  "kernel", shell("uname -sr"),
  "os", (read_file("/etc/os-release") or ""):match('PRETTY_NAME="([^"]+)"'),
  "governor", first_line(read_file("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")),
  -- Other work on the machine skews every figure: the 1/5/15-minute load averages at the
  -- start and the end of the run (a quiet 2-core machine shows well under 1 at the start).
  "loadavg_start", os.getenv("CIO_BENCH_LOAD_START"),
  "loadavg_end", (read_file("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)"),
}
local versions = obj{
  "lua54", first_line(shell("lua5.4 -v")),
  "luajit", first_line(shell("luajit -v")),
  "node", node_version,
  "customerio_node", cio_node_pkg and cio_node_pkg:match('"version"%s*:%s*"([^"]+)"'),
  "curl", first_line(shell("curl --version")),
  "libcurl", first_line(shell("dpkg-query -W -f '${Version}' libcurl4")),
  "libcjson", first_line(shell("dpkg-query -W -f '${Version}' libcjson1")),
  "lua_cjson", first_line(shell("dpkg-query -W -f '${Version}' lua-cjson")),
  "nginx", first_line(shell("nginx -v")),
  "wrk", first_line(shell("wrk -v")),
}
local commit = shell("git -C " .. root .. " rev-parse --short HEAD 2>/dev/null")
if commit and not commit:match("^%x+$") then commit = nil end
local dirty = commit and shell("git -C " .. root .. " status --porcelain --untracked-files=no") ~= nil

local durations = {}
for line in io.lines(tmp .. "/durations.txt") do
  local name, secs = line:match("^(%S+) (%d+)$")
  if name then
    durations[#durations + 1] = name
    durations[#durations + 1] = tonumber(secs)
  end
end

local results = obj{
  "schema", 1,
  "date", os.date("!%Y-%m-%dT%H:%M:%SZ"),
  "commit", commit and (commit .. (dirty and "+dirty" or "")) or "uncommitted",
  "machine", machine,
  "versions", versions,
  "settings", obj{
    "calls_per_run", CALLS,
    "calls_per_run_node", tonumber(os.getenv("CIO_BENCH_NODE_CALLS")),
    "calls_per_run_no_io", CALLS * 2,
    "warmup_calls", 200,
    "repetitions", tonumber(os.getenv("CIO_BENCH_REPS")),
    "statistic", "median of the repetitions",
    "wrk_seconds", tonumber(os.getenv("CIO_BENCH_WRK_SECONDS")),
    "in_flight", INFLIGHT,
    "responder", "nginx, 1 worker, return 200 '{}' (application/json), keep-alive, access_log off",
    "cpu_per_call", "(user + sys of the client process, from /usr/bin/time) / (calls + warm-up calls)",
  },
  "sequential", seq,
  "concurrent", conc,
  "json", obj{ "lua54", json.lua54, "luajit", json.luajit },
  "queue", queue,
  "liquid", liquid,
  "ratios", obj(ratio_list),
  "targets", targets,
  "suites", (function()
    local list = {}
    for _, name in ipairs(others) do
      list[#list + 1] = name
      list[#list + 1] = others[name]
    end
    return #list > 0 and obj(list) or nil
  end)(),
  "durations_s", obj(durations),
  "warnings", #warnings > 0 and warnings or nil,
}

local f = assert(io.open(out_path, "wb"))
f:write(encode(results), "\n")
f:close()

-- ------------------------------------------------------------ table

local function num(x, fmt)
  if x == nil then return "-" end
  return string.format(fmt or "%.0f", x)
end
local lines = {}
local function p(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end

p("")
p("Sequential identify over keep-alive (%d calls per run, %s for Node; median of %s)", CALLS,
  os.getenv("CIO_BENCH_NODE_CALLS") or "?", os.getenv("CIO_BENCH_REPS") or "?")
p("  %-52s %10s %9s %10s %9s %5s", "", "calls/s", "µs/call", "CPU µs", "RSS MB", "conns")
for _, key in ipairs({ "wrk_c1", "curl_cli", "ours_lua54", "ours_luajit", "core_lua54", "core_luajit", "node",
  "layer_lua54", "layer_luajit" }) do
  local r = seq[key]
  if r then
    p("  %-52s %10s %9s %10s %9s %5s", r.label, num(r.calls_per_s), num(r.us_per_call, "%.1f"),
      num(r.cpu_us_per_call, "%.1f"), num(r.peak_rss_kb and r.peak_rss_kb / 1024, "%.1f"), num(r.connections))
  end
end
p("")
p("%d in flight", INFLIGHT)
for _, key in ipairs({ "wrk_c32", "node", "ours_lua54", "ours_luajit" }) do
  local r = conc[key]
  if r and r.calls_per_s then
    p("  %-52s %10s %9s %10s %9s %5s", r.label, num(r.calls_per_s), num(r.us_per_call, "%.1f"),
      num(r.cpu_us_per_call, "%.1f"), num(r.peak_rss_kb and r.peak_rss_kb / 1024, "%.1f"), num(r.connections))
  elseif r then
    p("  %-52s %s", "lua-customerio (" .. key .. ")", r.reason or r.status)
  end
end
p("")
p("JSON, ops/s (ours / lua-cjson)")
for _, v in ipairs({ "lua54", "luajit" }) do
  local j = json[v]
  if j then
    for _, case in ipairs({ "identify", "transactional" }) do
      local c = j.cases[case]
      if c then
        p("  %-8s %-14s %6d B  encode %9s / %9s = %5s   decode %9s / %9s = %5s", v, case, c.bytes,
          num(c.encode_ops_per_s.ours), num(c.encode_ops_per_s.cjson), num(c.encode_ratio, "%.2f"),
          num(c.decode_ops_per_s.ours), num(c.decode_ops_per_s.cjson), num(c.decode_ratio, "%.2f"))
      end
    end
  end
end
p("")
p("Queue: %s", queue.status or queue.error or "see results.json")
p("Liquid: %s", liquid.status or liquid.error or "see results.json")
for _, name in ipairs(others) do
  local o = others[name]
  p("%s: %s", name, type(o) == "table" and (o.status or o.error) or "see results.json (suites." .. name .. ")")
end
p("")
p("Ratios (ours / anchor)")
for i = 1, #ratio_list, 2 do
  if ratio_list[i + 1] ~= cjson.null then p("  %-44s %8.3f", ratio_list[i], ratio_list[i + 1]) end
end
p("")
p("Targets")
for _, t in ipairs(targets) do
  local verdict = t.pass == true and "PASS" or t.pass == false and "FAIL" or "n/a "
  p("  %s  %-58s %8s  (target %s)", verdict, t.name, num(t.value, "%.3f"), t.target)
end
for _, w in ipairs(warnings) do p("warning: %s", w) end
local d = {}
for i = 1, #durations, 2 do d[#d + 1] = durations[i] .. " " .. durations[i + 1] .. " s" end
p("")
p("Durations: %s", table.concat(d, ", "))
io.write(table.concat(lines, "\n"), "\n")
