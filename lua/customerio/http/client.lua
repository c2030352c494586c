--- The request path every API client shares.
--
-- A client method validates its arguments and calls `client:request`; this
-- module builds the request (URL, headers, JSON body), hands it to a
-- transport, and applies the retry policy and redirects in one place. See
-- docs/INTERNALS.md.
-- @module customerio.http.client
local core = require("customerio.core")
local check = require("customerio.http.check")
local errors = require("customerio.errors")
local retry = require("customerio.http.retry")
local url = require("customerio.http.url")

local Client = {}
Client.__index = Client

local M = { Client = Client }

local MAX_REDIRECTS = 5

--- The longest URL a request may have, in bytes (8192, the C core's limit: servers commonly
-- refuse longer request lines). `build` raises on a longer one, before anything is sent.
M.MAX_URL_BYTES = core.max_url_bytes

local function check_header(name, value, where)
  if type(name) ~= "string" or not name:match("^[!#$%%&'*+.^_`|~%w-]+$") then
    check.fail(where .. ": invalid header name " .. string.format("%q", tostring(name)))
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then check.fail(where .. ": header " .. name .. " must be a string") end
  if value:find("[\r\n%z]") then
    check.fail(where .. ": header " .. name .. " contains CR, LF or NUL")
  end
  return value
end

-- Header names are case-insensitive: a user's "authorization" must not sit beside ours.
local function set_header(headers, name, value)
  local lower = name:lower()
  for k in pairs(headers) do
    if k:lower() == lower then headers[k] = nil end
  end
  headers[name] = value
end
M.set_header = set_header

-- Copy src's headers into dst, replacing dst's of the same name in any case. A name given
-- twice in src (in two cases) raises: which one was meant cannot be known. With `auth`
-- (a request's headers, on a client with credentials), an Authorization header raises:
-- credentials come from the client's key, never from one call (docs/SECURITY.md).
local function merge_headers(dst, src, where, auth)
  if src == nil then return dst end
  if type(src) ~= "table" then check.fail(where .. " must be a table") end
  local seen = {}
  for k, v in pairs(src) do
    v = check_header(k, v, where)
    local lower = k:lower()
    if auth and lower == "authorization" then
      check.fail(where .. ": header " .. k .. " is not allowed; the client sends its own credentials")
    end
    if seen[lower] then
      local a, b = seen[lower], k
      if b < a then a, b = b, a end
      check.fail(where .. ": header " .. a .. " is given twice (as " .. a .. " and " .. b .. ")")
    end
    seen[lower] = k
    set_header(dst, k, v)
  end
  return dst
end

-- Most JSON values a response may hold (core.json_decode's max_values): bounds the memory and
-- CPU a small compressed body can cost (a 58 KB gzip of "[0,0,0,...]" inflates to 30 M values).
local DEFAULT_MAX_VALUES = 1000000

local function positive_ms(v, name, default)
  return check.ms(v, name, { positive = true, default = default })
end

--- Create a client context.
-- @tparam table opts `base_url` (required), `auth` (Authorization value), `user_agent`,
-- `headers`, `timeout` (ms, default 10000), `connect_timeout` (ms), `retry`, `ca_file`,
-- `transport`, `max_response_values` (JSON values a response may hold, default 1000000),
-- `secrets` (strings to redact from errors), `debug` (a function called with each
-- line of a request log: method, URL, headers with credentials redacted, status or failure and
-- timing; never bodies)
-- @return client
function M.new(opts)
  if type(opts.base_url) ~= "string" or not opts.base_url:match("^https?://[^/]") then
    check.fail("url must be an absolute http or https URL")
  end
  local self = setmetatable({}, Client)
  self.base_url = opts.base_url:gsub("/+$", "")
  self.timeout = positive_ms(opts.timeout, "timeout", 10000)
  self.retry = retry.policy(opts.retry)
  -- An Authorization among the client's own header options is replaced by its credentials
  -- (set_header below); one in a single request's headers raises (see merge_headers).
  self.headers = merge_headers({}, opts.headers, "headers")
  if opts.auth then set_header(self.headers, "Authorization", check_header("Authorization", opts.auth, "auth")) end
  set_header(self.headers, "User-Agent", check_header("User-Agent", opts.user_agent or "", "user_agent"))
  self.secrets = opts.secrets or {}
  if opts.debug ~= nil and type(opts.debug) ~= "function" then check.fail("debug must be a function") end
  self.debug = opts.debug
  self.ca_file = opts.ca_file -- for customerio.queue
  self.connect_timeout = positive_ms(opts.connect_timeout, "connect_timeout")
  self.max_response = opts.max_response -- for customerio.async
  local max_values = opts.max_response_values
  if max_values ~= nil and (type(max_values) ~= "number" or max_values < 1 or max_values > 2147483647 or
      max_values ~= math.floor(max_values)) then
    check.fail("max_response_values must be an integer from 1 to 2147483647")
  end
  self.max_response_values = max_values or DEFAULT_MAX_VALUES
  -- Client-side rate limiting (customerio.ratelimit): built by the API client, which knows
  -- the credential and the budgets; nil when off.
  self.limiter = opts.limiter
  self.max_wait = opts.limiter and (opts.limiter.config.max_wait or self.timeout)
  if opts.auth then self.secrets[#self.secrets + 1] = opts.auth end
  if opts.transport ~= nil then
    if type(opts.transport) ~= "table" and type(opts.transport) ~= "userdata" then
      check.fail("transport must be an object with a send method")
    end
    self.transport = opts.transport
  else
    if opts.ca_file ~= nil and type(opts.ca_file) ~= "string" then check.fail("ca_file must be a path") end
    self.transport = require("customerio.transport").default({
      ca_file = opts.ca_file, connect_timeout = self.connect_timeout, max_response = opts.max_response,
    })
  end
  return self
end

-- Options every API client (Track, App, Pipelines) takes and passes to its request path.
local CLIENT_OPTIONS = {
  region = true, url = true, timeout = true, connect_timeout = true, retry = true, headers = true,
  user_agent = true, ca_file = true, transport = true, max_response = true, debug = true,
  max_response_values = true,
}

--- Raise on an option that neither the API clients nor this client know.
-- @tparam table opts
-- @tparam[opt] table extra names this client adds (`{event_ids = true}`)
function M.check_options(opts, extra)
  for k in pairs(opts) do
    if not CLIENT_OPTIONS[k] and not (extra and extra[k]) then check.fail("unknown option: " .. tostring(k)) end
  end
end

--- Resolve a `region` option: nil (US), "us", "eu" or one of `customerio.regions`.
-- @param v
-- @treturn table the region
function M.region(v)
  local regions = require("customerio").regions
  if v == nil then return regions.US end
  if v == regions.US or v == regions.EU then return v end
  if type(v) == "string" and regions[v:upper()] then return regions[v:upper()] end
  check.fail('region must be one of customerio.regions.US or customerio.regions.EU (or "us" / "eu")')
end

-- What the root URL of each API looks like: on a customer.io host, that API's host in a
-- region and `path`; elsewhere (a local server, a proxy: Node allows any prefix, e.g.
-- "http://proxy.local:8080/track"), any path but none at all and none that ends like another
-- API's root (`wrong`).
local API_ROOTS = {
  track = { name = "the Track API (TrackClient)", path = "/api/v1", host = "track",
    wrong = function(path) return path:find("/v1$") and not path:find("/api/v1$") end },
  app = { name = "the App API (APIClient)", path = "/v1", host = "api",
    wrong = function(path) return path:find("/api/v[12]$") end },
  cdp = { name = "the Pipelines API (PipelinesClient)", path = "/v1", host = "cdp",
    wrong = function(path) return path:find("/api/v[12]$") end },
}

local function root_problem(u, api)
  local shape = API_ROOTS[api]
  local _, host, _, rest = url.parse(u)
  local path = (rest or ""):gsub("[?#].*$", ""):gsub("/+$", "")
  local regions = require("customerio").regions
  local fits
  if host == "customer.io" or host:sub(-#".customer.io") == ".customer.io" then
    fits = false
    for _, r in pairs(regions) do
      if type(r) == "table" and r[shape.host] and select(2, url.parse(r[shape.host])) == host then
        fits = path == shape.path
      end
    end
  else
    fits = path ~= "" and not shape.wrong(path)
  end
  if fits then return nil end
  local shown = u:gsub("//[^/@]*@", "//") -- no credentials in the message
  return "url " .. string.format("%q", shown) .. " does not look like " .. shape.name ..
    ": expected " .. regions.US[shape.host] .. shape.path .. ", " .. regions.EU[shape.host] .. shape.path ..
    " or, for a local server or a proxy, a URL whose path ends in " .. shape.path
end

--- The root URL of an API client: the `url` option (trailing slashes removed), else the
-- region's host plus the API's prefix. A `url` that does not look like this API's root (the
-- wrong path, or another API's customer.io host) raises, saying what was expected: a Track
-- client pointed at the App API would otherwise fail later with a confusing 401.
-- @tparam table opts the client's options
-- @tparam string default e.g. region.track .. "/api/v1"
-- @tparam[opt] string api "track", "app" or "cdp": check the shape of `url`
-- @treturn string
function M.root(opts, default, api)
  if opts.url == nil then return default end
  if type(opts.url) ~= "string" then check.fail("url must be a string") end
  local root = opts.url:gsub("/+$", "")
  if api then
    if not root:match("^[Hh][Tt][Tt][Pp][Ss]?://[^/]") then check.fail("url must be an absolute http or https URL") end
    local problem = root_problem(root, api)
    if problem then check.fail(problem) end
  end
  return root
end

--- The request path of an API client, from its options.
-- @tparam table opts the client's options (`timeout`, `retry`, `headers`, ...)
-- @tparam table fields `base_url`, `auth`, `secrets`, `headers` to use instead of opts.headers,
-- `limiter` (a `customerio.ratelimit` limiter)
-- @return client
function M.from_options(opts, fields)
  return M.new({
    base_url = fields.base_url,
    auth = fields.auth,
    secrets = fields.secrets,
    headers = fields.headers or opts.headers,
    user_agent = opts.user_agent or require("customerio").user_agent,
    timeout = opts.timeout,
    connect_timeout = opts.connect_timeout,
    retry = opts.retry,
    ca_file = opts.ca_file,
    transport = opts.transport,
    max_response = opts.max_response,
    max_response_values = opts.max_response_values,
    debug = opts.debug,
    limiter = fields.limiter,
  })
end

--- Encode a Lua value as a JSON request body; un-encodable values raise.
-- @param value table
-- @tparam[opt] string name root name for error paths ("data")
-- @treturn string JSON
function M.encode(value, name)
  local body, err = core.json_encode(value, { root = name or "body" })
  if not body then check.fail(err) end
  return body
end

--- Build a request without sending it.
-- @tparam string method
-- @tparam table|string path segments (encoded) or a raw path
-- @tparam[opt] table o `query`, `body`, `body_name`, `raw_body`, `base`, `headers`, `content_type`,
-- `idempotent` (default true; false for a call that must not be repeated: see
-- `customerio.http.retry.replay_allowed`), `rate` (the rate-limit budget of the call: "app",
-- "transactional", "track" or `{"broadcast", id}`; see `customerio.ratelimit`)
-- @treturn table `{method, url, headers, body, idempotent, rate}`
function Client:build(method, path, o)
  o = o or {}
  local headers = {}
  for k, v in pairs(self.headers) do headers[k] = v end
  if o.headers then merge_headers(headers, o.headers, "headers", self.headers.Authorization ~= nil) end
  set_header(headers, "Content-Type", o.content_type or "application/json")
  if o.auth == false then set_header(headers, "Authorization", nil) end
  local body = o.raw_body
  if body == nil and o.body ~= nil then body = M.encode(o.body, o.body_name) end
  local target = url.join(o.base or self.base_url, path) .. url.query(o.query)
  if #target > M.MAX_URL_BYTES then
    check.fail("URL is " .. #target .. " bytes, longer than the " .. M.MAX_URL_BYTES .. " bytes a request may have")
  end
  return {
    method = method,
    url = target,
    headers = headers,
    body = body,
    idempotent = o.idempotent ~= false,
    rate = o.rate,
  }
end

-- The decoded body of a 2xx response. Decoding counts against the call's timeout (it stops at
-- `deadline`, a core.monotonic_ms() instant) and is bounded in values (`max_values`).
local function decode_success(res, max_values, deadline, timeout, secrets)
  local body = res.body
  if body == nil or body == "" or not body:find("%S") then return {} end
  local value, err, reason = core.json_decode(body, { max_values = max_values, deadline_ms = deadline })
  if reason == "too_large" or reason == "timeout" then
    return nil, errors.new({
      kind = reason, status = res.status, headers = res.headers, body = errors.cut(body, 200, secrets),
      message = reason == "timeout" and ("decoding the JSON response passed the timeout (" .. timeout .. " ms)")
        or ("the JSON response has more than " .. max_values .. " values (max_response_values)"),
    })
  end
  if value == nil and err then
    local shown = errors.cut(body, 200, secrets)
    return nil, errors.new({
      kind = "json", status = res.status, headers = res.headers, body = body,
      message = "Unable to parse JSON response: " .. err .. "; body: " .. shown,
    })
  end
  if value == core.null then return {} end
  return value
end

-- Debug log (opt-in `debug` option): one line per request, per header and per outcome, with
-- timing. Bodies are never logged; credential headers are replaced by [REDACTED], and every
-- known secret is removed from every line. A failing logger cannot break a request.
local SENSITIVE = { authorization = true, ["proxy-authorization"] = true, cookie = true }

local function log(self, line)
  pcall(self.debug, errors.redact_text(line, self.secrets))
end

local function log_request(self, req, attempt)
  log(self, "> " .. req.method .. " " .. req.url .. (req.body and (" (" .. #req.body .. " bytes)") or "") ..
    (attempt > 1 and (" attempt " .. attempt) or ""))
  local names = {}
  for k in pairs(req.headers) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local lower = k:lower()
    local v = req.headers[k]
    if SENSITIVE[lower] or lower:find("key", 1, true) or lower:find("token", 1, true) or lower:find("secret", 1, true) then
      v = "[REDACTED]"
    end
    log(self, ">   " .. k .. ": " .. tostring(v))
  end
end

local function log_outcome(self, req, res, kind, message, ms)
  local took = string.format("%.0f ms", ms)
  if res then
    log(self, "< " .. tostring(res.status) .. " " .. req.method .. " " .. req.url .. " in " .. took ..
      " (" .. #(res.body or "") .. " bytes)")
  else
    log(self, "< failed " .. req.method .. " " .. req.url .. " in " .. took .. ": " .. tostring(kind) ..
      ": " .. tostring(message))
  end
end

-- Whether credentials may follow a redirect from one URL to another.
local function same_trust(from, to)
  local s1, h1, p1 = url.parse(from)
  local s2, h2, p2 = url.parse(to)
  if not s2 or (s1 == "https" and s2 ~= "https") then return false end
  if h1 == h2 and p1 == p2 then return true end
  return h2 == "customer.io" or h2:sub(-#".customer.io") == ".customer.io"
end

-- The error `send` returns: e completed with the attempt count and the request, redacted.
local function failure(self, req, current, attempts, e)
  e.attempts = attempts
  if e.sent == nil and e.status then e.sent = "yes" end
  e.method = req.method
  e.url = current.url
  return nil, errors.redact(errors.new(e), self.secrets)
end

local function sleep(transport, ms)
  if transport.sleep then transport:sleep(ms) else core.sleep_ms(ms) end
end

-- Words of a 429 body that mark a daily quota rather than a rate. Customer.io documents no
-- body for it (nor a Retry-After): a 429 without Retry-After whose body speaks of a limit (or
-- quota) per day is taken for one, and is not retried.
local QUOTA_WORDS = { "%f[%a]daily%f[%A]", "%f[%a]per day%f[%A]", "%f[%a]a day%f[%A]", "%f[%a]each day%f[%A]",
  "/day%f[%A]", "%f[%a]24 hours%f[%A]" }

--- Whether a 429's body (without Retry-After) reads as a daily quota: it names a limit or a
-- quota and a day ("daily", "per day", "a day", "each day", "/day", "24 hours"), case aside.
-- @tparam string body
-- @treturn boolean
function M.daily_quota(body)
  if type(body) ~= "string" then return false end
  local text = body:lower()
  if not (text:find("limit", 1, true) or text:find("quota", 1, true)) then return false end
  for _, pattern in ipairs(QUOTA_WORDS) do
    if text:find(pattern) then return true end
  end
  return false
end

local BUDGET_NAMES = { app = "the App API's general", transactional = "the transactional sends'",
  track = "the Track API's" }

-- The error of a call whose turn is further away than max_wait: nothing was sent for this
-- attempt. After a failed attempt (a 429), that attempt's error, with retry_after.
local function rate_limited(self, req, current, attempts, over, max_wait, last)
  local after = math.ceil(over)
  if last then
    last.retry_after = after
    return failure(self, req, current, attempts, last)
  end
  local what = type(req.rate) == "table" and ("broadcast " .. tostring(req.rate[2]) .. "'s trigger")
    or BUDGET_NAMES[req.rate] or tostring(req.rate)
  return failure(self, req, current, attempts, {
    kind = "rate_limited", sent = "no", retryable = true, retry_after = after,
    message = "the next slot of " .. what .. " rate limit is " .. after .. " ms away, more than max_wait (" ..
      math.floor(max_wait) .. " ms); nothing was sent",
  })
end

--- Send a built request: retries, redirects and error objects.
-- @tparam table req from `build`
-- @treturn table|nil decoded body
-- @return the response, or an error object
function Client:send(req)
  local policy, transport = self.retry, self.transport
  local attempts, retries, redirects, waited = 0, 0, 0, 0
  local current = req -- replaced, never changed in place, by redirects and retries
  local limiter = self.limiter
  local budget = limiter and req.rate and limiter:budget(req.rate)
  local last -- the last failed attempt's error, returned when the limiter says no
  while true do
    if budget then
      -- Every attempt (first, retry, redirect) takes a slot of its budget and starts no
      -- earlier than that slot. A wait over max_wait reserves nothing and returns now.
      local max_wait = self.max_wait
      if transport.can_sleep and not transport:can_sleep() then max_wait = 0 end
      local wait, over = limiter:reserve(budget, max_wait)
      if not wait then return rate_limited(self, req, current, attempts, over, max_wait, last) end
      if wait > 0 then sleep(transport, wait) end
    end
    attempts = attempts + 1
    local started = core.monotonic_ms()
    if self.debug then log_request(self, current, attempts) end
    -- Never call the transport (or transport:sleep) through pcall or a metamethod: the async
    -- transport (customerio.async) yields here, which Lua 5.1 cannot do across a C call.
    local res, kind, message, stage = transport:send(current, self.timeout)
    if self.debug then log_outcome(self, current, res, kind, message, core.monotonic_ms() - started) end
    local retryable, limit_wait
    last = nil
    if res then
      local status = res.status
      if status >= 200 and status < 300 then
        local value, err = decode_success(res, self.max_response_values, started + self.timeout, self.timeout, self.secrets)
        if not value then
          err.attempts, err.method, err.url, err.sent = attempts, req.method, current.url, "yes"
          return nil, errors.redact(err, self.secrets)
        end
        return value, res
      end
      if status == 301 or status == 302 or status == 307 or status == 308 then
        local location = res.headers and res.headers["location"]
        if not location or location == "" then
          return failure(self, req, current, attempts, {
            kind = "redirect", status = status, headers = res.headers, body = res.body,
            message = "Received a " .. status .. " status, but no Location header was present" })
        end
        redirects = redirects + 1
        if redirects > MAX_REDIRECTS then
          return failure(self, req, current, attempts, {
            kind = "redirect", status = status, headers = res.headers, body = res.body,
            message = "too many redirects (more than " .. MAX_REDIRECTS .. ")" })
        end
        local target = url.resolve(current.url, location)
        if not target:match("^https?://") or target:find("[%s%z]") then
          return failure(self, req, current, attempts, {
            kind = "redirect", status = status, message = "refusing to follow redirect to an invalid URL" })
        end
        local headers = current.headers
        if not same_trust(current.url, target) then
          headers = {}
          for k, v in pairs(current.headers) do
            if k:lower() ~= "authorization" then headers[k] = v end
          end
        end
        current = { method = current.method, url = target, headers = headers, body = current.body,
          idempotent = current.idempotent, rate = current.rate }
        attempts = attempts - 1
      else
        retryable = retry.status_retryable(policy, status)
        last = errors.from_response(res, { retryable = retryable, sent = "yes" }, self.secrets)
        if status == 429 then
          local after = policy.respect_retry_after and res.headers and res.headers["retry-after"]
          after = after and retry.parse_retry_after(after, core.now_ms())
          if not after and M.daily_quota(res.body) then
            last.kind, last.retryable, retryable = "quota", false, false
          elseif budget then
            -- No slot of this budget before the server's Retry-After, else the documented interval.
            limit_wait = after or budget.penalty
            limiter:penalize(budget, limit_wait)
          end
        end
      end
    else
      last = errors.transport_fields(kind, stage, message, current.url)
      retryable = retry.kind_retryable(kind)
      last.retryable = retryable
    end
    if last then
      if limit_wait then last.retry_after = math.ceil(limit_wait) end
      -- retryable: the failure is transient; replayed only if repeating the call is safe.
      if not retryable or retries >= policy.max_retries
        or not retry.replay_allowed(policy, current.idempotent, res and res.status, last.sent) then
        return failure(self, req, current, attempts, last)
      end
      local wait = retry.delay(policy, retries, res and res.headers)
      if limit_wait then
        -- A 429 on a limited call waits what the limiter now requires (Retry-After, else the
        -- budget's documented interval), not the backoff; a wait over the call's budget
        -- returns at once with err.retry_after, never after sleeping in vain.
        if limit_wait > wait then wait = limit_wait end
        if waited + wait > policy.max_total_backoff or wait > self.max_wait then
          last.retry_after = math.ceil(wait)
          return failure(self, req, current, attempts, last)
        end
      end
      if waited + wait > policy.max_total_backoff then return failure(self, req, current, attempts, last) end
      waited = waited + wait
      retries = retries + 1
      if wait > 0 then sleep(transport, wait) end
      local headers = {}
      for k, v in pairs(current.headers) do headers[k] = v end
      set_header(headers, "X-Retry-Count", tostring(retries))
      current = { method = current.method, url = current.url, headers = headers, body = current.body,
        idempotent = current.idempotent, rate = current.rate }
    end
  end
end

--- Build and send a request.
-- @tparam string method
-- @tparam table|string path
-- @tparam[opt] table o see `build`
-- @return decoded body and response, or nil and an error object
function Client:request(method, path, o)
  return self:send(self:build(method, path, o))
end

function Client:__tostring()
  return "customerio.http.client (" .. self.base_url .. ")"
end

return M
