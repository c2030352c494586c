--- `customerio send-email` and `customerio trigger-broadcast`: one App API call each, the
-- answer printed as JSON; exit status 1 on an API error.
-- @module customerio.cli.send
local cli = require("customerio.cli")
local core = require("customerio.core")

local M = {}

M.HELP = {
  ["send-email"] = [[
usage: customerio send-email --template ID (--id ID | --email EMAIL | --cio-id CIO_ID)
                             [--to ADDRESS] [--data MESSAGE_DATA.json] [--from ADDRESS]
                             [--subject TEXT] [--body HTML] [--sandbox URL]

Send a transactional email (POST /v1/send/email) and print the answer (delivery_id).

  --template ID      the transactional message: its id or trigger name (optional when
                     --from, --subject and --body are all given)
  --id, --email, --cio-id   who receives it (exactly one)
  --to ADDRESS       the address (default: the --email, else the person's email)
  --data FILE        message_data, a JSON object (the template's `trigger`)
  --from, --subject, --body  override the template's parts
  --sandbox URL      send to a sandbox (make sandbox) instead of Customer.io

Credentials: CUSTOMERIO_APP_API_KEY (CUSTOMERIO_REGION=eu for the EU data center).
]],
  ["trigger-broadcast"] = [[
usage: customerio trigger-broadcast ID [--data DATA.json] [--ids a,b,... | --emails a@x,b@y,...]
                                       [--sandbox URL]

Trigger an API-triggered broadcast (POST /v1/campaigns/ID/triggers) and print the answer
(the trigger id). Without --ids or --emails it goes to the broadcast's own audience.

  --data FILE        data for the broadcast's Liquid (`trigger`), a JSON object
  --ids LIST         send to these person ids (comma-separated)
  --emails LIST      send to these emails (comma-separated)
  --sandbox URL      send to a sandbox (make sandbox) instead of Customer.io

Credentials: CUSTOMERIO_APP_API_KEY (CUSTOMERIO_REGION=eu for the EU data center).
]],
}

local SPECS = {
  ["send-email"] = { template = "string", id = "string", email = "string", ["cio-id"] = "string", to = "string",
    data = "string", from = "string", subject = "string", body = "string", sandbox = "string" },
  ["trigger-broadcast"] = { data = "string", ids = "string", emails = "string", sandbox = "string" },
}

local function list(s)
  local out = {}
  for item in s:gmatch("[^,]+") do
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return setmetatable(out, core.array_mt)
end

local function answer(env, res, err)
  if not res then
    env.stderr:write("error: ", tostring(err), "\n")
    return 1
  end
  env.stdout:write(assert(core.json_encode(res)), "\n")
  return 0
end

local function send_email(opts, env)
  local identifiers, n = {}, 0
  for flag, key in pairs({ id = "id", email = "email", ["cio-id"] = "cio_id" }) do
    if opts[flag] then identifiers[key] = opts[flag]; n = n + 1 end
  end
  if n ~= 1 then cli.usage_error("give exactly one of --id, --email, --cio-id") end
  if not opts.template and not (opts.from and opts.subject and opts.body) then
    cli.usage_error("--template is required unless --from, --subject and --body are all given")
  end
  local data
  if opts.data then
    local err
    data, err = cli.read_json(opts.data, "--data")
    if not data then env.stderr:write(err, "\n"); return 1 end
  end
  local api = cli.client(env, "app")
  return answer(env, api:send_email({
    transactional_message_id = opts.template and (tonumber(opts.template) or opts.template),
    identifiers = identifiers, to = opts.to or opts.email, message_data = data,
    from = opts.from, subject = opts.subject, body = opts.body,
  }))
end

local function trigger_broadcast(opts, env)
  local id = opts[1]
  if not id or opts[2] then cli.usage_error("give one broadcast ID") end
  if opts.ids and opts.emails then cli.usage_error("give --ids or --emails, not both") end
  local data
  if opts.data then
    local err
    data, err = cli.read_json(opts.data, "--data")
    if not data then env.stderr:write(err, "\n"); return 1 end
  end
  local recipients
  if opts.ids then recipients = { ids = list(opts.ids) } end
  if opts.emails then recipients = { emails = list(opts.emails) } end
  local api = cli.client(env, "app")
  return answer(env, api:trigger_broadcast(tonumber(id) or id, data, recipients))
end

--- Run `send-email` or `trigger-broadcast` (`name`).
function M.run(args, env, name)
  local opts = cli.parse(args, SPECS[name])
  if opts.help then env.stdout:write(M.HELP[name]); return 0 end
  env.sandbox = opts.sandbox
  if name == "send-email" then
    if opts[1] then cli.usage_error("unexpected argument " .. opts[1]) end
    return send_email(opts, env)
  end
  return trigger_broadcast(opts, env)
end

return M
