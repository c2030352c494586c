-- The generated App API methods (customerio.app.endpoints): for each family, every method called
-- with Node's positional arguments and compared with the request of customerio-node 5.2.0's
-- APIClient (method, path, query in Node's order, body); the checks of their arguments; the
-- multipart upload; camelCase options; api:request, api:pages; the generated reference.
local customerio = require("customerio")
local core = require("customerio.core")
local server = require("support.server")
local endpoints = require("customerio.app.endpoints")
local multipart = require("customerio.http.multipart")

local unpack = table.unpack or unpack -- luacheck: ignore 143

local null = customerio.null

local function maxn(t)
  local n = 0
  for k in pairs(t) do
    if type(k) == "number" and k > n then n = k end
  end
  return n
end
local f = customerio.filters


-- { method name, arguments, "HTTP /path?query", body (nil: none; "{}" compared raw) }
local calls = {
  customers = {
    { "get_customers_by_email", { "a+b@x.com" }, "GET /v1/customers?email=a%2Bb%40x.com" },
    { "get_attributes", { "c 1" }, "GET /v1/customers/c%201/attributes?id_type=id" },
    { "get_attributes", { "a@b.c", "email" }, "GET /v1/customers/a%40b.c/attributes?id_type=email" },
    { "get_customer_activities", { "c1", { idType = "email", start = "s", limit = 5, type = "event", name = "buy" } },
      "GET /v1/customers/c1/activities?id_type=email&start=s&limit=5&type=event&name=buy" },
    { "get_customer_activities", { "c1" }, "GET /v1/customers/c1/activities" },
    { "get_customer_messages", { "c1", { start_ts = 1, end_ts = 2, limit = 3 } },
      "GET /v1/customers/c1/messages?limit=3&start_ts=1&end_ts=2" },
    { "get_customer_messages", { "c1", { startTs = 1, endTs = 2, id_type = "cio_id" } },
      "GET /v1/customers/c1/messages?id_type=cio_id&start_ts=1&end_ts=2" },
    { "get_customer_relationships", { "c1", { start = "x", limit = 2 } },
      "GET /v1/customers/c1/relationships?start=x&limit=2" },
    { "get_customer_segments", { "c1" }, "GET /v1/customers/c1/segments?id_type=id" },
    { "get_customer_segments", { "c1", "cio_id" }, "GET /v1/customers/c1/segments?id_type=cio_id" },
    { "get_customer_subscription_preferences", { "c1", { id_type = "email", language = "es-ES" } },
      "GET /v1/customers/c1/subscription_preferences?id_type=email&language=es-ES" },
    { "search_customers", { f.all_of({ f.segment(7) }), { limit = 100 } }, "POST /v1/customers?limit=100",
      { filter = { ["and"] = { { segment = { id = 7 } } } } } },
    { "get_customers_attributes", { { "1", "2" } }, "POST /v1/customers/attributes", { ids = { "1", "2" } } },
  },
  objects = {
    { "get_object_attributes", { 1, "acme" }, "GET /v1/objects/1/acme/attributes" },
    { "get_object_attributes", { 1, "acme", "cio_object_id" }, "GET /v1/objects/1/acme/attributes?id_type=cio_object_id" },
    { "get_object_relationships", { 1, "acme", { idType = "object_id", start = "s", limit = 20 } },
      "GET /v1/objects/1/acme/relationships?id_type=object_id&start=s&limit=20" },
    { "find_objects", { 1, { object_attribute = { field = "plan", operator = "eq", value = "pro" } }, { limit = 5 } },
      "POST /v1/objects?limit=5",
      { object_type_id = 1, filter = { object_attribute = { field = "plan", operator = "eq", value = "pro" } } } },
    { "list_object_types", {}, "GET /v1/object_types" },
  },
  activities = {
    { "list_activities",
      { { type = "event", customerId = "1", idType = "id", deleted = true, start = "s", limit = 2, name = "n" } },
      "GET /v1/activities?start=s&limit=2&type=event&name=n&deleted=true&customer_id=1&id_type=id" },
    { "list_activities", {}, "GET /v1/activities" },
  },
  segments = {
    { "list_segments", {}, "GET /v1/segments" },
    { "create_segment", { { name = "VIPs", description = "d" } }, "POST /v1/segments",
      { segment = { name = "VIPs", description = "d" } } },
    { "get_segment", { 3 }, "GET /v1/segments/3" },
    { "delete_segment", { 3 }, "DELETE /v1/segments/3" },
    { "get_segment_customer_count", { 3 }, "GET /v1/segments/3/customer_count" },
    { "get_segment_membership", { 3, { start = "c", limit = 100 } }, "GET /v1/segments/3/membership?start=c&limit=100" },
    { "get_segment_used_by", { 3 }, "GET /v1/segments/3/used_by" },
  },
  subscriptions = {
    { "list_subscription_topics", {}, "GET /v1/subscription_topics" },
    { "list_subscription_channels", {}, "GET /v1/subscription_channels" },
    { "get_subscription_center_token", { "c/1" }, "GET /v1/subscription_center/c%2F1/token" },
  },
  transactional = {
    { "list_transactional_messages", {}, "GET /v1/transactional" },
    { "get_transactional_message", { 3 }, "GET /v1/transactional/3" },
    { "get_transactional_message_contents", { 3 }, "GET /v1/transactional/3/contents" },
    { "get_transactional_message_language", { 3, "en-US" }, "GET /v1/transactional/3/language/en-US" },
    { "update_transactional_message_language", { 3, "en-US", { subject = "Welcome!" } },
      "PUT /v1/transactional/3/language/en-US", { subject = "Welcome!" } },
    { "update_transactional_message_language", { 3, "fr" }, "PUT /v1/transactional/3/language/fr", "{}" },
    { "get_transactional_message_deliveries", { 3, { metric = "delivered", limit = 50, get_tracked_responses = true } },
      "GET /v1/transactional/3/messages?limit=50&metric=delivered&get_tracked_responses=true" },
    { "get_transactional_message_metrics", { 3, { period = "days", steps = 14 } },
      "GET /v1/transactional/3/metrics?period=days&steps=14" },
    { "get_transactional_message_link_metrics", { 3, { period = "weeks", steps = 4, unique = true } },
      "GET /v1/transactional/3/metrics/links?period=weeks&steps=4&unique=true" },
    { "update_transactional_message_content", { 3, 5, { body = "x" } }, "PUT /v1/transactional/3/content/5", { body = "x" } },
  },
  campaigns = {
    { "list_campaigns", {}, "GET /v1/campaigns" },
    { "get_campaign", { 5 }, "GET /v1/campaigns/5" },
    { "get_campaign_actions", { 5, { start = "n" } }, "GET /v1/campaigns/5/actions?start=n" },
    { "get_campaign_action", { 5, 9 }, "GET /v1/campaigns/5/actions/9" },
    { "update_campaign_action", { 5, 9, { body = "x" } }, "PUT /v1/campaigns/5/actions/9", { body = "x" } },
    { "get_campaign_action_language", { 5, 9, "fr" }, "GET /v1/campaigns/5/actions/9/language/fr" },
    { "update_campaign_action_language", { 5, 9, "fr", { subject = "s" } }, "PUT /v1/campaigns/5/actions/9/language/fr",
      { subject = "s" } },
    { "get_campaign_action_metrics",
      { 5, 9, { version = "2", res = "days", tz = "UTC", start = 1, ["end"] = 2, period = "days", steps = 7 } },
      "GET /v1/campaigns/5/actions/9/metrics?version=2&res=days&tz=UTC&start=1&end=2&period=days&steps=7" },
    { "get_campaign_action_metrics_links", { 5, 9, { unique = false } },
      "GET /v1/campaigns/5/actions/9/metrics/links?unique=false" },
    { "get_campaign_metrics", { 5, { type = "email", period = "weeks" } },
      "GET /v1/campaigns/5/metrics?type=email&period=weeks" },
    { "get_campaign_metrics_links", { 5 }, "GET /v1/campaigns/5/metrics/links" },
    { "get_campaign_journey_metrics", { 5, { start = 1, ["end"] = 2, res = "daily" } },
      "GET /v1/campaigns/5/journey_metrics?start=1&end=2&resolution=daily" },
    { "get_campaign_journey_metrics", { 5, { start = 1, ["end"] = 2, resolution = "hourly" } },
      "GET /v1/campaigns/5/journey_metrics?start=1&end=2&resolution=hourly" },
    { "get_campaign_messages", { 5, { type = "email", metric = "opened", drafts = true, start_ts = 1 } },
      "GET /v1/campaigns/5/messages?type=email&metric=opened&drafts=true&start_ts=1" },
  },
  broadcasts = {
    { "get_broadcast_trigger_status", { 7, 1001 }, "GET /v1/campaigns/7/triggers/1001" },
    { "get_broadcast_trigger_errors", { 7, 1001, { limit = 1 } }, "GET /v1/campaigns/7/triggers/1001/errors?limit=1" },
    { "list_broadcasts", {}, "GET /v1/broadcasts" },
    { "get_broadcast", { 7 }, "GET /v1/broadcasts/7" },
    { "get_broadcast_actions", { 7 }, "GET /v1/broadcasts/7/actions" },
    { "get_broadcast_action", { 7, 2 }, "GET /v1/broadcasts/7/actions/2" },
    { "update_broadcast_action", { 7, 2 }, "PUT /v1/broadcasts/7/actions/2", "{}" },
    { "get_broadcast_action_language", { 7, 2, "de" }, "GET /v1/broadcasts/7/actions/2/language/de" },
    { "update_broadcast_action_language", { 7, 2, "de", { a = 1 } }, "PUT /v1/broadcasts/7/actions/2/language/de", { a = 1 } },
    { "get_broadcast_action_metrics", { 7, 2, { period = "days", steps = 3 } },
      "GET /v1/broadcasts/7/actions/2/metrics?period=days&steps=3" },
    { "get_broadcast_action_metrics_links", { 7, 2, { unique = true } },
      "GET /v1/broadcasts/7/actions/2/metrics/links?unique=true" },
    { "get_broadcast_metrics", { 7, { type = "email", period = "days", steps = 3 } },
      "GET /v1/broadcasts/7/metrics?period=days&steps=3&type=email" },
    { "get_broadcast_metrics_links", { 7 }, "GET /v1/broadcasts/7/metrics/links" },
    { "get_broadcast_messages", { 7, { metric = "sent", type = "push", start = "c" } },
      "GET /v1/broadcasts/7/messages?start=c&metric=sent&type=push" },
    { "get_broadcast_triggers", { 7 }, "GET /v1/broadcasts/7/triggers" },
  },
  newsletters = {
    { "list_newsletters", { { sort = "desc", limit = 2 } }, "GET /v1/newsletters?limit=2&sort=desc" },
    { "create_newsletter", { { name = "n" } }, "POST /v1/newsletters", { name = "n" } },
    { "create_newsletter", {}, "POST /v1/newsletters", "{}" },
    { "get_newsletter", { 20 }, "GET /v1/newsletters/20" },
    { "delete_newsletter", { 20 }, "DELETE /v1/newsletters/20" },
    { "get_newsletter_contents", { 20 }, "GET /v1/newsletters/20/contents" },
    { "get_newsletter_content", { 20, 4 }, "GET /v1/newsletters/20/contents/4" },
    { "update_newsletter_content", { 20, 4, { subject = "s" } }, "PUT /v1/newsletters/20/contents/4", { subject = "s" } },
    { "get_newsletter_content_metrics", { 20, 4, { period = "hours" } },
      "GET /v1/newsletters/20/contents/4/metrics?period=hours" },
    { "get_newsletter_content_metrics_links", { 20, 4, { unique = true } },
      "GET /v1/newsletters/20/contents/4/metrics/links?unique=true" },
    { "get_newsletter_metrics", { 20, { steps = 2 } }, "GET /v1/newsletters/20/metrics?steps=2" },
    { "get_newsletter_metrics_links", { 20 }, "GET /v1/newsletters/20/metrics/links" },
    { "get_newsletter_messages", { 20, { type = "inbox", get_tracked_responses = false } },
      "GET /v1/newsletters/20/messages?type=inbox&get_tracked_responses=false" },
    { "send_newsletter", { 20, { rate_limit_email_rate = 10 } }, "POST /v1/newsletters/20/send", { rate_limit_email_rate = 10 } },
    { "schedule_newsletter", { 20, { send_at = 1 } }, "POST /v1/newsletters/20/schedule", { send_at = 1 } },
    { "create_newsletter_language", { 20, { language = "fr" } }, "POST /v1/newsletters/20/language", { language = "fr" } },
    { "get_newsletter_language", { 20, "fr" }, "GET /v1/newsletters/20/language/fr" },
    { "update_newsletter_language", { 20, "fr", { subject = "s" } }, "PUT /v1/newsletters/20/language/fr", { subject = "s" } },
    { "delete_newsletter_language", { 20, "fr" }, "DELETE /v1/newsletters/20/language/fr" },
    { "get_newsletter_test_groups", { 20 }, "GET /v1/newsletters/20/test_groups" },
    { "create_newsletter_test_group", { 20 }, "POST /v1/newsletters/20/test_groups", "{}" },
    { "create_newsletter_test_group_language", { 20, "tg_1", { language = "fr" } },
      "POST /v1/newsletters/20/test_group/tg_1/language", { language = "fr" } },
    { "get_newsletter_test_group_language", { 20, "tg_1", "fr" }, "GET /v1/newsletters/20/test_group/tg_1/language/fr" },
    { "update_newsletter_test_group_language", { 20, "tg_1", "fr", { a = 1 } },
      "PUT /v1/newsletters/20/test_group/tg_1/language/fr", { a = 1 } },
    { "delete_newsletter_test_group_language", { 20, "tg_1", "fr" }, "DELETE /v1/newsletters/20/test_group/tg_1/language/fr" },
  },
  design_studio = {
    { "list_design_studio_folders", { { parentFolderId = "1f0", directDescendantsOnly = true, limit = 50 } },
      "GET /v1/design_studio/folders?parent_folder_id=1f0&direct_descendants_only=true&limit=50" },
    { "list_design_studio_folders", { { sort_by = "name", sortOrder = "desc", createdBefore = 2, updated_after = 1, page = 3 } },
      "GET /v1/design_studio/folders?sort_by=name&sort_order=desc&created_before=2&updated_after=1&page=3" },
    { "create_design_studio_folder", { { name = "F", parent_folder_id = null } }, "POST /v1/design_studio/folders",
      { name = "F", parent_folder_id = null } },
    { "get_design_studio_folder", { "u-1" }, "GET /v1/design_studio/folders/u-1" },
    { "update_design_studio_folder", { "u-1", { parent_folder_id = null } }, "PUT /v1/design_studio/folders/u-1",
      { parent_folder_id = null } },
    { "delete_design_studio_folder", { "u-1" }, "DELETE /v1/design_studio/folders/u-1" },
    { "list_design_studio_emails", { { isTemplate = "true", has_translations = "any", is_linked = "false", sort_by = "name" } },
      "GET /v1/design_studio/emails?sort_by=name&is_template=true&has_translations=any&is_linked=false" },
    { "create_design_studio_email", { { name = "E", content = { subject = "s" } } }, "POST /v1/design_studio/emails",
      { name = "E", content = { subject = "s" } } },
    { "get_design_studio_email", { "e1" }, "GET /v1/design_studio/emails/e1" },
    { "update_design_studio_email", { "e1", { name = "E2" } }, "PUT /v1/design_studio/emails/e1", { name = "E2" } },
    { "delete_design_studio_email", { "e1" }, "DELETE /v1/design_studio/emails/e1" },
    { "list_design_studio_email_languages", { "e1" }, "GET /v1/design_studio/emails/e1/languages" },
    { "create_design_studio_email_language", { "e1", { language = "fr" } }, "POST /v1/design_studio/emails/e1/languages",
      { language = "fr" } },
    { "get_design_studio_email_language", { "e1", "fr" }, "GET /v1/design_studio/emails/e1/languages/fr" },
    { "update_design_studio_email_language", { "e1", "fr", { content = { subject = "x" } } },
      "PUT /v1/design_studio/emails/e1/languages/fr", { content = { subject = "x" } } },
    { "delete_design_studio_email_language", { "e1", "fr" }, "DELETE /v1/design_studio/emails/e1/languages/fr" },
    { "list_design_studio_components", { { tag = "hdr", page = 2 } }, "GET /v1/design_studio/components?page=2&tag=hdr" },
    { "create_design_studio_component", { { name = "C", tag = "hdr", content = "<p/>" } }, "POST /v1/design_studio/components",
      { name = "C", tag = "hdr", content = "<p/>" } },
    { "get_design_studio_component", { "c1" }, "GET /v1/design_studio/components/c1" },
    { "update_design_studio_component", { "c1", { tag = "t" } }, "PUT /v1/design_studio/components/c1", { tag = "t" } },
    { "delete_design_studio_component", { "c1" }, "DELETE /v1/design_studio/components/c1" },
  },
  assets = {
    { "list_assets", { { parentFolderId = 4, page = 1, limit = 10 } }, "GET /v1/assets?parent_folder_id=4&page=1&limit=10" },
    { "get_asset", { 12 }, "GET /v1/assets/files/12" },
    { "update_asset", { 12, { name = "n" } }, "PUT /v1/assets/files/12", { name = "n" } },
    { "delete_asset", { 12 }, "DELETE /v1/assets/files/12" },
    { "list_asset_folders", { { directDescendantsOnly = false } }, "GET /v1/assets/folders?direct_descendants_only=false" },
    { "create_asset_folder", { { name = "F" } }, "POST /v1/assets/folders", { name = "F" } },
    { "get_asset_folder", { 4 }, "GET /v1/assets/folders/4" },
    { "update_asset_folder", { 4, { name = "G" } }, "PUT /v1/assets/folders/4", { name = "G" } },
    { "delete_asset_folder", { 4 }, "DELETE /v1/assets/folders/4" },
  },
  collections = {
    { "list_collections", {}, "GET /v1/collections" },
    { "create_collection", { { name = "c", data = { { a = 1 } } } }, "POST /v1/collections",
      { name = "c", data = { { a = 1 } } } },
    { "get_collection", { 2 }, "GET /v1/collections/2" },
    { "update_collection", { 2, { name = "d" } }, "PUT /v1/collections/2", { name = "d" } },
    { "delete_collection", { 2 }, "DELETE /v1/collections/2" },
    { "get_collection_content", { 2 }, "GET /v1/collections/2/content" },
    { "update_collection_content", { 2, { { a = 1 }, { a = 2 } } }, "PUT /v1/collections/2/content", { { a = 1 }, { a = 2 } } },
  },
  suppressions = {
    { "search_suppression", { "a+b@x.com" }, "GET /v1/esp/search_suppression/a%2Bb%40x.com" },
    { "get_suppressions", { "bounces", { limit = 50, offset = 10, domain = "example.com" } },
      "GET /v1/esp/suppression/bounces?limit=50&offset=10&domain=example.com" },
    { "get_domain_suppressions", { "example.com", "blocks", { limit = 5, start = "c" } },
      "GET /v1/esp/domains/example.com/suppression/blocks?limit=5&start=c" },
    { "create_suppression", { "spam_reports", "a@x.com" }, "POST /v1/esp/suppression/spam_reports/a%40x.com", "{}" },
    { "delete_suppression", { "invalid_emails", "a@x.com" }, "DELETE /v1/esp/suppression/invalid_emails/a%40x.com" },
  },
  reporting_webhooks = {
    { "list_reporting_webhooks", {}, "GET /v1/reporting_webhooks" },
    { "create_reporting_webhook", { { name = "w", endpoint = "https://x.example/h", events = { "email_sent" } } },
      "POST /v1/reporting_webhooks", { name = "w", endpoint = "https://x.example/h", events = { "email_sent" } } },
    { "get_reporting_webhook", { 3 }, "GET /v1/reporting_webhooks/3" },
    { "update_reporting_webhook", { 3, { disabled = true } }, "PUT /v1/reporting_webhooks/3", { disabled = true } },
    { "delete_reporting_webhook", { 3 }, "DELETE /v1/reporting_webhooks/3" },
  },
  snippets = {
    { "get_snippets", {}, "GET /v1/snippets" },
    { "create_snippet", { { name = "s", value = "v" } }, "POST /v1/snippets", { name = "s", value = "v" } },
    { "update_snippet", { { name = "s", value = "w" } }, "PUT /v1/snippets", { name = "s", value = "w" } },
    { "delete_snippet", { "my snippet" }, "DELETE /v1/snippets/my%20snippet" },
  },
  sender_identities = {
    { "get_sender_identities", { { sort = "asc", hidden = false, limit = 2 } },
      "GET /v1/sender_identities?limit=2&sort=asc&hidden=false" },
    { "get_sender_identity", { 5 }, "GET /v1/sender_identities/5" },
    { "get_sender_identity_used_by", { 5 }, "GET /v1/sender_identities/5/used_by" },
  },
  messages = {
    { "get_messages", { { campaignId = 1, actionId = 2, metric = "opened", startTs = 3, associations = true } },
      "GET /v1/messages?metric=opened&campaign_id=1&action_id=2&start_ts=3&associations=true" },
    { "get_messages", { { transactional_id = 4, template_id = 5, content_id = 6, trigger_id = 7, newsletter_id = 8 } },
      "GET /v1/messages?newsletter_id=8&transactional_id=4&trigger_id=7&template_id=5&content_id=6" },
    { "get_message", { "m1", { archived_message = true } }, "GET /v1/messages/m1?archived_message=true" },
    { "get_archived_message", { "m1" }, "GET /v1/messages/m1/archived_message" },
  },
  imports = {
    { "create_import", { { data_file_url = "https://x.example/f.csv", type = "people", identifier = "email" } },
      "POST /v1/imports", { import = { data_file_url = "https://x.example/f.csv", type = "people", identifier = "email" } } },
    { "get_import", { 8 }, "GET /v1/imports/8" },
  },
  exports = {
    { "list_exports", {}, "GET /v1/exports" },
    { "get_export", { 42 }, "GET /v1/exports/42" },
    { "download_export", { 42 }, "GET /v1/exports/42/download" },
    { "create_customers_export", { f.all_of({ f.segment(3) }) }, "POST /v1/exports/customers",
      { filters = { ["and"] = { { segment = { id = 3 } } } } } },
    { "create_deliveries_export", { 20, { start = 1, ["end"] = 2, metric = "opened", attributes = { "a" } } },
      "POST /v1/exports/deliveries", { newsletter_id = 20, start = 1, ["end"] = 2, metric = "opened", attributes = { "a" } } },
    { "create_deliveries_export", { 20 }, "POST /v1/exports/deliveries", { newsletter_id = 20 } },
  },
  data_index = {
    { "batch_update_attributes", { { { name = "plan", description = "d" } } }, "POST /v1/data_index/attributes",
      { attributes = { { name = "plan", description = "d" } } } },
    { "batch_update_events", { { { name = "buy", description = "d" } } }, "POST /v1/data_index/events",
      { events = { { name = "buy", description = "d" } } } },
  },
  workspaces = {
    { "list_workspaces", {}, "GET /v1/workspaces" },
  },
  info = {
    { "get_ip_addresses", {}, "GET /v1/info/ip_addresses" },
  },
}

local app = require("support.app")
local new_api, offline, refuses = app.new_api, app.offline, app.refuses

describe("APIClient catalogue", function()
  local api
  before_each(function()
    server.reset()
    api = new_api()
  end)

  it("has about 150 methods, each a method of APIClient, each called below", function()
    assert.is_true(#endpoints.list >= 150)
    local called = {}
    for _, list in pairs(calls) do
      for _, c in ipairs(list) do called[c[1]] = true end
    end
    called.create_asset = true   -- its own spec below
    for _, ep in ipairs(endpoints.list) do
      assert.are.equal("function", type(api[ep.name]), ep.name)
      assert(called[ep.name], "no spec calls " .. ep.name)
      assert(calls[ep.family], "no family " .. ep.family)
    end
  end)

  for _, family in ipairs({ "customers", "objects", "activities", "segments", "subscriptions", "transactional",
    "campaigns", "broadcasts", "newsletters", "design_studio", "assets", "collections", "suppressions",
    "reporting_webhooks", "snippets", "sender_identities", "messages", "imports", "exports", "data_index",
    "workspaces", "info" }) do
    it(family .. ": method, path, query and body as customerio-node sends them", function()
      local list = calls[family]
      for _, c in ipairs(list) do
        local name, args = c[1], c[2]
        local res, err = api[name](api, unpack(args, 1, maxn(args)))
        assert(res, name .. ": " .. tostring(err))
      end
      local reqs = server.requests()
      assert.are.equal(#list, #reqs)
      for i, c in ipairs(list) do
        local name, want, body = c[1], c[3], c[4]
        local got = reqs[i]
        assert.are.equal(want, got.method .. " " .. got.path, name)
        assert.are.equal("Bearer appkey_789", got.headers.authorization)
        assert.are.equal("application/json", got.headers["content-type"])
        if body == nil then
          assert.are.equal("", got.body, name .. " sent a body")
        elseif body == "{}" then
          assert.are.equal("{}", got.body, name)
        else
          assert.are.same(body, core.json_decode(got.body), name)
        end
      end
    end)
  end

  it("uploads an asset as multipart/form-data", function()
    local png = "\137PNG\r\n\26\n\0\0binary\0data"
    server.respond({ body = '{"asset":{"id":12}}' })
    local res = assert(api:create_asset({ data = png, filename = "logo.png", name = "Logo", parentFolderId = 4 }))
    assert.are.equal(12, res.asset.id)
    local got = server.last()
    assert.are.equal("POST /v1/assets/files", got.method .. " " .. got.path)
    assert.are.equal("Bearer appkey_789", got.headers.authorization)
    assert.is_truthy(got.headers["content-type"]:find("^multipart/form%-data; boundary="))
    local parts = assert(multipart.decode(got.body, got.headers["content-type"]))
    assert.are.equal(3, #parts)
    assert.are.same({ name = "file", filename = "logo.png", content_type = "image/png", data = png }, parts[1])
    assert.are.same({ name = "name", data = "Logo" }, parts[2])
    assert.are.same({ name = "parent_folder_id", data = "4" }, parts[3])

    assert(api:create_asset({ data = "%PDF", filename = 'we"ird.bin', content_type = "application/pdf" }))
    got = server.last()
    parts = assert(multipart.decode(got.body, got.headers["content-type"]))
    assert.are.equal(1, #parts)
    assert.are.equal("we%22ird.bin", parts[1].filename)
    assert.are.equal("application/pdf", parts[1].content_type)
    assert.are.equal("application/octet-stream", multipart.type_of("x.unknown"))
    assert.are.equal("image/jpeg", multipart.type_of("PHOTO.JPG"))

    refuses("file is required", function() offline:create_asset() end)
    refuses("file.data is required", function() offline:create_asset({ filename = "a.png" }) end)
    refuses("file.filename is required", function() offline:create_asset({ data = "x" }) end)
  end)

  describe("argument checks (Node's messages, nothing sent)", function()
    local cases = {
      { "segment_id is required", "get_segment" },
      { "segment_id is required", "get_segment", "" },
      { "segment_id must be a string or a number, got table", "get_segment", {} },
      { "get_segment takes 1 argument, got 2", "get_segment", 1, 2 },
      { "list_segments takes 0 arguments, got 1", "list_segments", {} },
      { "id is required", "get_attributes" },
      { 'id_type must be one of "id", "cio_id", or "email"', "get_attributes", "1", "phone" },
      { 'id_type must be one of "id", "cio_id", or "email"', "get_customer_activities", "1", { idType = "x" } },
      { 'id_type must be one of "id", "cio_id", or "email"', "list_activities", { id_type = "object_id" } },
      { 'id_type must be one of "id", "cio_id", or "email"', "get_customer_segments", "1", "ID" },
      { 'id_type must be one of "object_id" or "cio_object_id"', "get_object_attributes", 1, "a", "id" },
      { 'id_type must be one of "object_id" or "cio_object_id"', "get_object_relationships", 1, "a", { idType = "id" } },
      { "object_type_id is required", "get_object_attributes", nil, "a" },
      { "object_id is required", "get_object_attributes", 1 },
      { '"email" must be a string', "get_customers_by_email", "" },
      { '"email" must be a string', "get_customers_by_email", 42 },
      { "customer_id is required", "get_customer_messages", null },
      { "segment is required", "create_segment" },
      { "segment must be a table, got string", "create_segment", "VIPs" },
      { "segment.name is required", "create_segment", { description = "x" } },
      { "filter is required", "search_customers" },
      { "ids is required", "get_customers_attributes", {} },
      { "ids must be a list, got string", "get_customers_attributes", "1" },
      { "object_type_id is required", "find_objects", nil, {} },
      { "filter is required", "find_objects", 1 },
      { "options.start is required", "get_campaign_journey_metrics", 5 },
      { "options.end is required", "get_campaign_journey_metrics", 5, { start = 1 } },
      { "options.res is required", "get_campaign_journey_metrics", 5, { start = 1, ["end"] = 2 } },
      { "language is required", "get_transactional_message_language", 3 },
      { "data must be a table, got string", "update_campaign_action", 5, 9, "x" },
      { "folder.name is required", "create_design_studio_folder", {} },
      { "updates is required", "update_design_studio_folder", "u" },
      { "email.name is required", "create_design_studio_email", {} },
      { "translation.language is required", "create_design_studio_email_language", "e1", {} },
      { "component.tag is required", "create_design_studio_component", { name = "C" } },
      { "collection.name is required", "create_collection", {} },
      { "content is required", "update_collection_content", 2 },
      { 'suppression_type must be one of "blocks", "bounces", "spam_reports", or "invalid_emails"',
        "get_suppressions", "nope" },
      { "suppression_type is required", "create_suppression", nil, "a@x.com" },
      { "email is required", "create_suppression", "bounces" },
      { "webhook.endpoint is required", "create_reporting_webhook", { name = "w" } },
      { "snippet.value is required", "create_snippet", { name = "s" } },
      { "snippet.name is required", "update_snippet", { value = "v" } },
      { "import_data is required", "create_import" },
      { "import_data.data_file_url is required", "create_import", { type = "people" } },
      { "import_data.type is required", "create_import", { data_file_url = "https://x" } },
      { "filters is required", "create_customers_export" },
      { "filters is required", "create_customers_export", null },
      { "newsletter_id is required", "create_deliveries_export" },
      { "attributes is required", "batch_update_attributes" },
      { "events is required", "batch_update_events" },
      { "unknown option limt for get_segment_membership (expected start, limit)", "get_segment_membership", 3, { limt = 5 } },
      { "unknown option start for get_transactional_message_metrics (expected period, steps)",
        "get_transactional_message_metrics", 3, { start = "x" } },
      { "options: idType and id_type are the same option; give one", "get_customer_activities", "1",
        { id_type = "id", idType = "email" } },
      { "options must be a table, got string", "get_segment_membership", 3, "x" },
      { "options.limit must be a string, a number, a boolean or a list, got table", "get_segment_membership", 3,
        { limit = { a = 1 } } },
    }
    for _, c in ipairs(cases) do
      local msg, name = c[1], c[2]
      it(name .. ": " .. msg, function()
        local args = {}
        for i = 3, maxn(c) do args[i - 2] = c[i] end
        local n = maxn(c) - 2
        refuses(msg, function() offline[name](offline, unpack(args, 1, n)) end)
      end)
    end
  end)

  it("leaves the caller's options alone and accepts JSON null as absent", function()
    local options = { idType = "email", limit = null }
    assert(api:get_customer_activities("c1", options))
    assert.are.equal("/v1/customers/c1/activities?id_type=email", server.last().path)
    assert.are.same({ idType = "email", limit = null }, options)
  end)

  describe("api:request", function()
    it("calls any path under the App root, with a query and a body", function()
      server.respond({ body = '{"ids":["a"]}' })
      local res = assert(api:request("GET", "/segments/3/membership", { query = { { "limit", 10 }, { "start", "x y" } } }))
      assert.are.equal("a", res.ids[1])
      assert.are.equal("GET /v1/segments/3/membership?limit=10&start=x%20y", server.last().method .. " " .. server.last().path)
      assert(api:request("post", { "segments", 3, "add customers" }, { body = { ids = { "a" } } }))
      local got = server.last()
      assert.are.equal("POST /v1/segments/3/add%20customers", got.method .. " " .. got.path)
      assert.are.same({ ids = { "a" } }, core.json_decode(got.body))
      assert(api:request("DELETE", "/segments/3"))
      assert.are.equal("", server.last().body)
    end)

    it("returns errors like the other methods and checks its arguments", function()
      server.respond({ status = 404, body = '{"errors":[{"detail":"not found here"}]}' })
      local res, err = api:request("GET", "/nope")
      assert.is_nil(res)
      assert.are.equal(404, err.status)
      assert.are.equal("not found here", err.message)
      refuses("method must be one of GET, POST, PUT, PATCH, DELETE", function() offline:request("FETCH", "/x") end)
      refuses("path must be a string or a list of segments", function() offline:request("GET") end)
    end)
  end)

  describe("api:pages", function()
    it("follows next cursors until an empty one, keeping the other options", function()
      server.respond({ body = '{"ids":["1"],"next":"c2"}' })
      server.respond({ body = '{"ids":["2"],"next":"c3"}' })
      server.respond({ body = '{"ids":["3"],"next":""}' })
      local options = { limit = 1 }
      local ids = {}
      for page, err in api:pages("get_segment_membership", 3, options) do
        assert(page, tostring(err))
        ids[#ids + 1] = page.ids[1]
      end
      assert.are.same({ "1", "2", "3" }, ids)
      local reqs = server.requests()
      assert.are.equal(3, #reqs)
      assert.are.equal("/v1/segments/3/membership?limit=1", reqs[1].path)
      assert.are.equal("/v1/segments/3/membership?start=c2&limit=1", reqs[2].path)
      assert.are.equal("/v1/segments/3/membership?start=c3&limit=1", reqs[3].path)
      assert.are.same({ limit = 1 }, options)
    end)

    it("stops when next is missing, null or repeats; works without options", function()
      server.respond({ body = '{"activities":[],"next":null}' })
      local n = 0
      for _ in api:pages("list_activities") do n = n + 1 end
      assert.are.equal(1, n)
      server.respond({ body = '{"newsletters":[]}' })
      n = 0
      for _ in api:pages("list_newsletters", { limit = 5 }) do n = n + 1 end
      assert.are.equal(1, n)
      server.reset()
      server.respond({ body = '{"next":"same"}' })
      server.respond({ body = '{"next":"same"}' })
      n = 0
      for _ in api:pages("get_messages") do n = n + 1 end
      assert.are.equal(2, n)
    end)

    it("yields false and the error once when a page fails", function()
      server.respond({ body = '{"ids":["1"],"next":"c2"}' })
      server.respond({ status = 401, body = '{"meta":{"error":"Unauthorized"}}' })
      local results = {}
      for page, err in api:pages("get_segment_membership", 3) do
        results[#results + 1] = page and "page" or ("error: " .. err.message)
      end
      assert.are.same({ "page", "error: Unauthorized" }, results)
    end)

    it("checks the method and its arguments at once", function()
      refuses("list_segments does not page with start/next cursors", function() offline:pages("list_segments") end)
      refuses("unknown App API method: nope", function() offline:pages("nope") end)
      refuses("segment_id is required", function() offline:pages("get_segment_membership") end)
      refuses("options must be a table, got string", function() offline:pages("get_segment_membership", 3, "x") end)
    end)

    it("is offered by every method that takes a start cursor", function()
      for _, ep in ipairs(endpoints.list) do
        if ep.cursor then
          assert(ep.options_index, ep.name)
          local has_start = false
          for _, k in ipairs(ep.option_keys) do has_start = has_start or k == "start" end
          assert(has_start, ep.name)
        end
      end
    end)
  end)

  it("docs/app_endpoints.md is the reference generated from the catalogue", function()
    local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/app/[^/]+$") or "."
    local path = here .. "/docs/app_endpoints.md"
    local want = endpoints.markdown()
    if os.getenv("CIO_REGEN_DOCS") then
      local out = assert(io.open(path, "wb"))
      out:write(want)
      out:close()
    end
    local fh = assert(io.open(path, "rb"), "missing " .. path .. " (CIO_REGEN_DOCS=1 busted spec/app/endpoints_spec.lua)")
    local have = fh:read("*a")
    fh:close()
    assert(have == want, path .. " is stale: run CIO_REGEN_DOCS=1 busted spec/app/endpoints_spec.lua")
  end)

  it("names follow Node's: snake_case of the Node method", function()
    for _, ep in ipairs(endpoints.list) do
      assert.are.equal(ep.name, endpoints.snake(ep.node))
      assert.is_nil(ep.name:find("%u"))
    end
    assert.are.equal("parentFolderId", endpoints.camel("parent_folder_id"))
    assert.are.equal("get_ip_addresses", endpoints.snake("getIpAddresses"))
  end)
end)
