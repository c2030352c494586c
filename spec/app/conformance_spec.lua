-- customerio.APIClient against customerio-node 5.2.0's wire captures: every `app.*` label of
-- spec/fixtures/node-wire.jsonl is called with its arguments (request objects built with
-- customerio.Send*Request) and the recorded request compared with Node's.
local customerio = require("customerio")
local server = require("support.server")
local conformance = require("support.conformance")
local endpoints = require("customerio.app.endpoints")

local unpack = table.unpack or unpack -- luacheck: ignore 143

local APP_KEY = "appkey_789"

-- Our name of Node's method where it is not the plain snake_case form.
local NAMES = { sendWhatsApp = "send_whatsapp", sendSMS = "send_sms" }

-- Per capture: client options, and notes on how our request differs (none do).
local expect = {
  ["app.sendEmail.template_id_identifiers_message_data"] = {},
  ["app.sendEmail.email_identifiers_numeric_template"] = {},
  ["app.sendEmail.cio_id_identifiers"] = {},
  ["app.sendEmail.attachments"] = {},
  ["app.sendEmail.all_options"] = {},
  ["app.sendEmail.inline_body_no_template"] = {},
  ["app.sendEmail.via_region_object"] = { opts = { region = customerio.regions.US } },
  ["app.sendPush.template_with_options"] = {},
  ["app.sendPush.custom_payload_and_device"] = {},
  ["app.sendSMS.full"] = {},
  ["app.sendSMS.minimal"] = {},
  ["app.sendWhatsApp.full"] = {},
  ["app.sendInboxMessage.full"] = {},
  ["app.sendInApp.full"] = {},
  ["app.triggerBroadcast.data_and_segment_recipients"] = {},
  ["app.triggerBroadcast.complex_filter_recipients_empty_data"] = {},
  -- Node drops the false email_add_duplicates; so do we (false is the API's default).
  ["app.triggerBroadcast.emails_ignore_missing_add_duplicates_false"] = {},
  ["app.triggerBroadcast.ids"] = {},
  ["app.triggerBroadcast.per_user_data"] = {},
  -- Node drops the false id_ignore_missing; so do we.
  ["app.triggerBroadcast.data_file_url"] = {},
  ["app.triggerBroadcast.no_data_no_recipients"] = {},
  ["app.getBroadcastTriggerStatus"] = {},
  ["app.getBroadcastTriggerErrors"] = {},
  ["app.getCustomersByEmail.basic"] = {},
  ["app.getAttributes.default_id_type"] = {},
  ["app.getAttributes.email_id_type"] = {},
  ["app.getAttributes.cio_id_type"] = {},
  ["app.listSegments"] = {},
  ["app.createSegment"] = {},
  ["app.getSegment"] = {},
  ["app.deleteSegment"] = {},
  ["app.getSegmentCustomerCount"] = {},
  ["app.getSegmentMembership"] = {},
  ["app.getSegmentUsedBy"] = {},
  ["app.listBroadcasts"] = {},
  ["app.getBroadcast"] = {},
  ["app.getBroadcastTriggers"] = {},
  ["app.sendNewsletter"] = {},
  ["app.listExports"] = {},
  ["app.getExport"] = {},
  ["app.createCustomersExport"] = {},
}

local function method_name(case)
  local node = case.sdk_method:match("%.([%w_]+)$")
  return NAMES[node] or endpoints.snake(node)
end

-- Request objects of a capture, built with our constructors.
local function on_request(name, message)
  assert(customerio[name], "no request class " .. name)
  return customerio[name](message)
end

local function run_case(case, opts)
  opts = opts or {}
  local o = { url = server.url() .. "/v1", retry = false }
  for k, v in pairs(opts) do o[k] = v end
  local api = customerio.APIClient.new(APP_KEY, o)
  local method = method_name(case)
  assert(type(api[method]) == "function", "no method " .. method)
  local args, n = conformance.args(case, on_request)
  server.reset()
  local result, err = api[method](api, unpack(args, 1, n))
  assert(result, tostring(err))
  return server.last(), result
end

describe("customerio.APIClient matches customerio-node 5.2.0 on the wire", function()
  it("has a spec for every app.* capture", function()
    local labels = conformance.labels("app.")
    assert.is_true(#labels >= 41)
    for _, label in ipairs(labels) do
      assert(expect[label], "no spec for capture " .. label)
    end
    for label in pairs(expect) do conformance.case(label) end
  end)

  for _, label in ipairs(conformance.labels("app.")) do
    local want = expect[label] or {}
    it(label, function()
      local case = conformance.case(label)
      local got = run_case(case, want.opts)
      conformance.assert_match(case, got)
      assert.are.equal(customerio.user_agent, got.headers["user-agent"])
    end)
  end

  it("leaves out false broadcast flags exactly as Node does (false is the API's default)", function()
    for label, dropped in pairs({
      ["app.triggerBroadcast.emails_ignore_missing_add_duplicates_false"] = "email_add_duplicates",
      ["app.triggerBroadcast.data_file_url"] = "id_ignore_missing",
    }) do
      local case = conformance.case(label)
      assert.is_false(case.args[3][dropped])          -- the caller gave false...
      assert.is_nil(case.body[dropped])               -- ...Node did not send it...
      local got = run_case(case)
      assert.is_nil(got.body:find(dropped, 1, true))  -- ...and neither do we.
    end
  end)

  it("sends the same bodies when the send methods get plain tables instead of request objects", function()
    for _, label in ipairs(conformance.labels("app.send")) do
      local case = conformance.case(label)
      local api = customerio.APIClient.new(APP_KEY, { url = server.url() .. "/v1", retry = false })
      local args = conformance.args(case)   -- the message tables themselves
      server.reset()
      assert(api[method_name(case)](api, args[1]))
      conformance.assert_match(case, server.last())
    end
  end)
end)
