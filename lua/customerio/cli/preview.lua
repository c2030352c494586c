--- `customerio preview`: render a Liquid template with sample `message_data` (and a customer)
-- through `customerio.preview`, print the result and list the problems; exit status 1 when
-- there are any.
-- @module customerio.cli.preview
local cli = require("customerio.cli")

local M = {}

M.HELP = [[
usage: customerio preview TEMPLATE --data MESSAGE_DATA.json [--customer ATTRIBUTES.json]
                                   [--subject TEXT] [--lenient]

Render TEMPLATE (a Liquid file: an email body, a push message...) as Customer.io would, with
the JSON object in MESSAGE_DATA.json as `trigger` and ATTRIBUTES.json as `customer`, print
the output on stdout and the problems on stderr as TEMPLATE:LINE:COLUMN: severity: message
(missing variables, data.x instead of trigger.x, unknown filters, syntax errors).

  --data FILE        message_data (required; use a file holding {} for none)
  --customer FILE    the person's attributes
  --subject TEXT     also render a subject line (problems are reported as subject:LINE:COLUMN)
  --lenient          report missing variables as warnings, not errors

Exit status: 0 no problems, 1 problems (or an unreadable file), 2 bad usage.
]]

local SPEC = { data = "string", customer = "string", subject = "string", lenient = "boolean" }

--- Run `customerio preview`.
function M.run(args, env)
  local opts = cli.parse(args, SPEC)
  if opts.help then env.stdout:write(M.HELP); return 0 end
  local path = opts[1]
  if not path or opts[2] then cli.usage_error("give one TEMPLATE file") end
  if not opts.data then cli.usage_error("--data MESSAGE_DATA.json is required") end
  local source, err = cli.read_file(path)
  if not source then env.stderr:write("customerio preview: ", err, "\n"); return 1 end
  local data, derr = cli.read_json(opts.data, "--data")
  if not data then env.stderr:write("customerio preview: ", derr, "\n"); return 1 end
  local customer
  if opts.customer then
    customer, derr = cli.read_json(opts.customer, "--customer")
    if not customer then env.stderr:write("customerio preview: ", derr, "\n"); return 1 end
  end
  local preview = require("customerio.app.preview")
  local result = preview({ message_data = data }, { subject = opts.subject, body = source },
    { customer = customer, strict = not opts.lenient })
  if result.parts.subject then env.stdout:write("Subject: ", result.parts.subject, "\n\n") end
  if result.parts.body then
    env.stdout:write(result.parts.body)
    if result.parts.body:sub(-1) ~= "\n" then env.stdout:write("\n") end
  end
  for _, p in ipairs(result.problems) do
    local where = p.part == "body" and path or p.part
    env.stderr:write(string.format("%s:%s:%s: %s: %s%s\n", where, p.line or "?", p.column or "?", p.severity or "error",
      p.message, p.suggestion and not p.message:find(p.suggestion, 1, true)
        and (" (did you mean " .. p.suggestion .. "?)") or ""))
  end
  return #result.problems > 0 and 1 or 0
end

return M
