--- `customerio import`: identify everyone in a CSV or NDJSON file through the background queue
-- (`customerio.Queue`), with a progress line on a terminal, a report of the rows that could
-- not be imported (file:line: reason) and exit status 1 when any row failed.
-- @module customerio.cli.import
local cli = require("customerio.cli")
local rows_of = require("customerio.cli.rows")
local core = require("customerio.core")

local M = {}

M.HELP = [[
usage: customerio import FILE [--id-column NAME] [--types NAME=TYPE,...] [--sandbox URL]

Identify every person in FILE through the background queue (Track API v2 batches).
FILE is CSV with a header line (.csv) or one JSON object per line (.ndjson, .jsonl).

  --id-column NAME   the column holding each person's id (default: id)
  --types LIST       CSV cells are strings; convert some: revenue=number,visits=integer,
                     active=boolean,tags=json (also applies to NDJSON string values)
  --format csv|ndjson  when the file name does not say
  --sandbox URL      send to a sandbox (make sandbox) instead of Customer.io

Empty CSV cells are left out. Rows that cannot be imported (a missing id, a value that does
not convert, a wrong number of fields, invalid JSON, refused by Customer.io) are listed on
stderr as FILE:LINE: reason. Progress is shown on a terminal; otherwise a summary line.
Exit status: 0 every row imported, 1 some rows failed, 2 bad usage.
Credentials: CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY (or CUSTOMERIO_API_KEY).
]]

local SPEC = { ["id-column"] = "string", types = "string", format = "string", sandbox = "string" }

local function clean(message)
  return (tostring(message):gsub("^[^:\n]*:%d+: ", ""))
end

local function format_count(n)
  local s = tostring(math.floor(n))
  return (s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

local function progress_line(p)
  local elapsed = math.max((core.monotonic_ms() - p.started) / 1000, 0.001)
  local done = p.sent + p.failed
  local rate = done / elapsed
  local left = p.total - done - p.rejected
  local eta = rate > 0 and left > 0 and string.format("%ds", math.ceil(left / rate)) or "-"
  return string.format("\r%s/%s rows · %s rows/s · sent %s · failed %s · ETA %s\027[K",
    format_count(done + p.rejected), format_count(p.total), format_count(rate), format_count(p.sent),
    format_count(p.failed + p.rejected), eta)
end

--- Run `customerio import`.
function M.run(args, env)
  local opts = cli.parse(args, SPEC)
  if opts.help then env.stdout:write(M.HELP); return 0 end
  local path = opts[1]
  if not path or opts[2] then cli.usage_error("give one FILE to import") end
  env.sandbox = opts.sandbox
  local types, terr = rows_of.parse_types(opts.types)
  if not types then cli.usage_error(terr) end
  local format = opts.format or (path:match("%.csv$") and "csv")
    or ((path:match("%.ndjson$") or path:match("%.jsonl$")) and "ndjson")
  if format ~= "csv" and format ~= "ndjson" then
    cli.usage_error("cannot tell the format of " .. path .. ": name it .csv or .ndjson, or give --format")
  end
  local text, err = cli.read_file(path)
  if not text then env.stderr:write("customerio import: ", err, "\n"); return 1 end
  local rows, rerr = rows_of[format](text, opts["id-column"] or "id", types)
  if not rows then env.stderr:write("customerio import: ", path, ": ", rerr, "\n"); return 1 end

  local track = cli.client(env, "track")
  local customerio = require("customerio")
  local line_of = {}          -- person id -> line (to place Customer.io's refusals)
  local failures = {}         -- {line, reason}
  local q = customerio.Queue.new(track, {
    -- Once per failed batch: its operations, and each one's error in e.op_errors (a 207).
    on_error = function(ops, e)
      for i, op in ipairs(ops) do
        local oe = e.op_errors and e.op_errors[i] or e
        local ids = type(op) == "table" and op.identifiers
        local id = ids and (ids.id or ids.email or ids.cio_id)
        failures[#failures + 1] = { line = id and line_of[tostring(id)], reason = clean(oe.message or oe), id = id }
      end
    end,
  })
  local tty = env.isatty
  if tty == nil then tty = cli.stderr_is_tty() end
  local p = { total = #rows, sent = 0, failed = 0, rejected = 0, started = core.monotonic_ms() }
  local last_draw = 0
  local function draw(force)
    local s = q:stats()
    p.sent, p.failed = s.sent, s.failed
    local now = core.monotonic_ms()
    if tty and (force or now - last_draw >= 200) then
      last_draw = now
      env.stderr:write(progress_line(p))
    end
  end
  local rejected = {}
  for i, row in ipairs(rows) do
    if row.error then
      rejected[#rejected + 1] = row
    else
      line_of[row.id] = row.line
      local ok, res, qerr = pcall(q.identify, q, row.id, row.attributes)
      while ok and not res and qerr and qerr.kind == "queue_full" do
        q:flush(1000)
        ok, res, qerr = pcall(q.identify, q, row.id, row.attributes)
      end
      if not ok then
        row.error = clean(res)
        rejected[#rejected + 1] = row
      elseif not res then
        row.error = clean(qerr)
        rejected[#rejected + 1] = row
      end
    end
    p.rejected = #rejected
    if i % 100 == 0 then draw() end
  end
  repeat -- until nothing is pending ("failed": all finished, some reported to on_error)
    local done, flush_err = q:flush(200)
    draw()
  until done or flush_err.kind ~= "timeout"
  q:close()
  draw(true)
  if tty then env.stderr:write("\n") end
  local s = q:stats()
  for _, f in ipairs(failures) do
    rejected[#rejected + 1] = { line = f.line, error = "refused by Customer.io: " .. f.reason, id = f.id }
  end
  table.sort(rejected, function(a, b) return (a.line or math.huge) < (b.line or math.huge) end)
  for _, r in ipairs(rejected) do
    env.stderr:write(path, ":", r.line and tostring(r.line) or "?", ": ", r.error, "\n")
  end
  local elapsed = (core.monotonic_ms() - p.started) / 1000
  env.stdout:write(string.format("%s: %d rows, %d sent, %d failed (%d rejected before sending, %d refused) in %.1f s\n",
    path, #rows, s.sent, #rejected, #rejected - #failures, #failures, elapsed))
  return #rejected > 0 and 1 or 0
end

return M
