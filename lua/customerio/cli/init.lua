--- The `customerio` command (bin/customerio): subcommands, their options, credentials.
--
--     customerio import people.csv|people.ndjson [--id-column id] [--types revenue=number,...]
--     customerio preview template.liquid --data message_data.json [--customer attrs.json]
--     customerio send-email --template ID --id ID | --email EMAIL [--to ADDRESS] [--data FILE]
--     customerio trigger-broadcast ID [--data FILE] [--ids a,b | --emails a@x,b@y]
--     customerio sandbox [--port 8180]
--
-- Credentials come from the environment, as in examples/: `CUSTOMERIO_SITE_ID` and
-- `CUSTOMERIO_TRACK_API_KEY` (or `CUSTOMERIO_API_KEY`) for the Track API,
-- `CUSTOMERIO_APP_API_KEY` for the App API, `CUSTOMERIO_REGION` (us or eu).
-- `--sandbox URL` (or `CUSTOMERIO_SANDBOX_URL`) sends to a sandbox instead (`make sandbox`),
-- where any credentials do.
--
-- Exit status: 0 success, 1 the command ran and something failed (rows rejected, preview
-- problems, an API error), 2 bad usage.
-- @module customerio.cli
local M = {}

--- The subcommands: name -> module.
M.commands = {
  ["import"] = "customerio.cli.import",
  ["preview"] = "customerio.cli.preview",
  ["send-email"] = "customerio.cli.send",
  ["trigger-broadcast"] = "customerio.cli.send",
  ["sandbox"] = "customerio.cli.sandbox",
}

M.USAGE = [[
usage: customerio <command> [options]

commands:
  import FILE             identify everyone in a CSV or NDJSON file through the queue
  preview TEMPLATE        render a Liquid template with message_data and list its problems
  send-email              send a transactional email
  trigger-broadcast ID    trigger an API-triggered broadcast
  sandbox                 start the local sandbox and print its inbox URL

Run customerio <command> --help for a command's options.

environment (as in examples/):
  CUSTOMERIO_SITE_ID, CUSTOMERIO_TRACK_API_KEY (or CUSTOMERIO_API_KEY)   Track API
  CUSTOMERIO_APP_API_KEY                                                 App API
  CUSTOMERIO_REGION                                                      us (default) or eu
  CUSTOMERIO_SANDBOX_URL (or --sandbox URL)      send to a sandbox, e.g. http://127.0.0.1:8180
]]

--- A usage error (exit status 2).
function M.usage_error(message)
  error({ usage = message }, 0)
end

--- Parse arguments: `spec` maps option names (without `--`) to "string", "boolean" or
-- "number". `--name value` and `--name=value` both work; `--` ends the options.
-- @treturn table options, with the positional arguments in order at [1], [2], ...
function M.parse(args, spec)
  local out = {}
  local i = 1
  local only_positional = false
  while i <= #args do
    local a = args[i]
    if not only_positional and a == "--" then
      only_positional = true
    elseif not only_positional and a:sub(1, 2) == "--" then
      local name, value = a:sub(3):match("^([^=]+)=(.*)$")
      name = name or a:sub(3)
      local kind = spec[name]
      if name == "help" then kind = "boolean" end
      if not kind then M.usage_error("unknown option --" .. name) end
      if kind == "boolean" then
        if value then M.usage_error("--" .. name .. " takes no value") end
        out[name] = true
      else
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then M.usage_error("--" .. name .. " needs a value") end
        end
        if kind == "number" then
          value = tonumber(value) or M.usage_error("--" .. name .. " must be a number")
        end
        out[name] = value
      end
    else
      out[#out + 1] = a
    end
    i = i + 1
  end
  return out
end

--- Read a whole file.
-- @treturn string|nil contents, or nil and a message
function M.read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- Read a JSON object from a file (for --data, --customer).
function M.read_json(path, what)
  local text, err = M.read_file(path)
  if not text then return nil, what .. ": " .. err end
  local v, jerr = require("customerio.core").json_decode(text)
  local mt = type(v) == "table" and getmetatable(v)
  if type(v) ~= "table" or (mt and mt.__jsontype == "array") then
    return nil, what .. ": " .. path .. " is not a JSON object" .. (jerr and (": " .. jerr) or "")
  end
  return v
end

--- Clients for the chosen target: real Customer.io from the environment, or a sandbox.
-- @tparam table env `getenv` function and options (`sandbox`)
-- @tparam string which "track" or "app"
function M.client(env, which)
  local customerio = require("customerio")
  local getenv = env.getenv
  local sandbox = env.sandbox or getenv("CUSTOMERIO_SANDBOX_URL")
  if sandbox and sandbox ~= "" then
    local base = sandbox:gsub("/+$", "")
    if which == "track" then
      return customerio.TrackClient.new(getenv("CUSTOMERIO_SITE_ID") or "sandbox",
        getenv("CUSTOMERIO_TRACK_API_KEY") or getenv("CUSTOMERIO_API_KEY") or "sandbox", { url = base .. "/api/v1" })
    end
    return customerio.APIClient.new(getenv("CUSTOMERIO_APP_API_KEY") or "sandbox", { url = base .. "/v1" })
  end
  local region = getenv("CUSTOMERIO_REGION") or "us"
  if which == "track" then
    local site, key = getenv("CUSTOMERIO_SITE_ID"), getenv("CUSTOMERIO_TRACK_API_KEY") or getenv("CUSTOMERIO_API_KEY")
    if not site or not key then
      M.usage_error("set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY (or --sandbox URL)")
    end
    return customerio.TrackClient.new(site, key, { region = region })
  end
  local key = getenv("CUSTOMERIO_APP_API_KEY")
  if not key then M.usage_error("set CUSTOMERIO_APP_API_KEY (or --sandbox URL)") end
  return customerio.APIClient.new(key, { region = region })
end

--- Whether stderr is a terminal (for the progress line).
function M.stderr_is_tty()
  local a, _, c = os.execute("test -t 2")
  return a == true or a == 0 or (a ~= nil and c == 0)
end

--- Run the command line.
-- @tparam table args the arguments (`arg` of the script)
-- @tparam[opt] table env `getenv`, `stdout`, `stderr`, `isatty` (for tests); defaults to the process's
-- @treturn number exit status
function M.main(args, env)
  env = env or {}
  env.getenv = env.getenv or os.getenv
  env.stdout = env.stdout or io.stdout
  env.stderr = env.stderr or io.stderr
  local name = args[1]
  if name == nil or name == "--help" or name == "-h" or name == "help" then
    env[name and "stdout" or "stderr"]:write(M.USAGE)
    return name and 0 or 2
  end
  local module = M.commands[name]
  if not module then
    env.stderr:write("customerio: unknown command '", name, "'\n\n", M.USAGE)
    return 2
  end
  local rest = {}
  for i = 2, #args do rest[#rest + 1] = args[i] end
  local command = require(module)
  local ok, status = pcall(command.run, rest, env, name)
  if ok then return status end
  if type(status) == "table" and status.usage then
    env.stderr:write("customerio ", name, ": ", status.usage, "\n")
    env.stderr:write("Run customerio ", name, " --help for its options.\n")
    return 2
  end
  env.stderr:write("customerio ", name, ": ", tostring(status), "\n")
  return 1
end

return M
