--- The App API catalogue, as data: every method of `APIClient` that is one HTTP call.
--
-- Each entry is customerio-node 5.2.0's method (its camelCase name; ours is the
-- snake_case form) or, marked `node = false`, an endpoint of Customer.io's App API that Node
-- 5.2.0 does not have (named by the operationId of Customer.io's API reference), the HTTP
-- method, the path under the App root (`/v1`) with
-- `{name}` for the path parameters, and the positional arguments, from which
-- `customerio.app` generates the methods. The generated reference is
-- docs/app_endpoints.md (regenerate with `endpoints.markdown()`; spec/app/endpoints_spec.lua
-- fails when it is stale).
--
-- Fields of an entry:
--
-- - `[1]` Node's name, `[2]` HTTP method, `[3]` path template, `[4]` arguments: a comma list of
--   names; a name in the path is a required id (string or number, percent-encoded);
--   `options` is an optional table of query options; `id_type` a positional id type; other
--   names carry a type: `:table` (required table), `:data` (optional table, default `{}`),
--   `:list` (required non-empty list), `:array` (required list, may be empty; `{}` is sent as
--   `[]`), `:any` (required, not nil/null), `:id` (required id
--   kept as given), `:email` (a non-empty string);
-- - `query`: the query keys in Node's order, taken from the positional argument of that name
--   or else from `options`, where the wire's snake_case name and its camelCase spelling are
--   both accepted (`aliases` adds other names);
-- - `body`: `"<arg>"` sends that argument as the body, a table builds the body from arguments
--   (`{segment = "segment"}`, `["..."] = "options"` spreads a table), `{}` sends `{}`;
--   POST and PUT send `{}` when no body is described, as Node does;
-- - `required`: fields checked after the arguments (`"segment.name"`, `"options.start"`);
-- - `id_type`: `"person"` (`id`, `email`, `cio_id`) or `"object"` (`object_id`, `cio_object_id`);
-- - `defaults`: values of absent arguments; `enums`: allowed values of arguments;
-- - `cursor`: the endpoint pages with `start` / `next` (see `APIClient:pages`);
-- - `node = false`: not a method of customerio-node 5.2.0;
-- - `idempotent = false`: the call creates or sends something, so repeating it may do it twice;
--   it is replayed only when the request provably did not reach Customer.io (see docs/app.md,
--   "Retries");
-- - `family`, `doc`: for the reference.
-- @module customerio.app.endpoints
local endpoints = {}

local list = {}
local family

local function F(name) family = name end
local function E(t)
  t.family = family
  list[#list + 1] = t
end

local METRICS = "period steps"
local LINKS = "period steps unique"
local DS_LIST = "parent_folder_id direct_descendants_only sort_by sort_order created_before created_after " ..
  "updated_before updated_after page limit"
local DELIVERIES = "start limit metric type start_ts end_ts get_tracked_responses"

F("customers")
E{ "getCustomersByEmail", "GET", "customers", "email:email", query = "email",
  doc = "People with this email address: `{results = {...}}`." }
E{ "getAttributes", "GET", "customers/{id}/attributes", "id, id_type", query = "id_type",
  id_type = "person", defaults = { id_type = "id" },
  doc = "A person's attributes and devices: `{customer = {...}}`." }
E{ "getCustomerActivities", "GET", "customers/{customer_id}/activities", "customer_id, options",
  query = "id_type start limit type name", id_type = "person", cursor = true,
  doc = "A person's activities (events, attribute changes, messages)." }
E{ "getCustomerMessages", "GET", "customers/{customer_id}/messages", "customer_id, options",
  query = "id_type start limit start_ts end_ts", id_type = "person", cursor = true,
  doc = "Messages sent to a person." }
E{ "getCustomerRelationships", "GET", "customers/{customer_id}/relationships", "customer_id, options",
  query = "start limit", cursor = true,
  doc = "A person's relationships to objects." }
E{ "getCustomerSegments", "GET", "customers/{customer_id}/segments", "customer_id, id_type",
  query = "id_type", id_type = "person", defaults = { id_type = "id" },
  doc = "The segments a person belongs to." }
E{ "getCustomerSubscriptionPreferences", "GET", "customers/{customer_id}/subscription_preferences",
  "customer_id, options", query = "id_type language", id_type = "person",
  doc = "A person's subscription (topic) preferences." }
E{ "searchCustomers", "POST", "customers", "filter:any, options", query = "start limit",
  body = { filter = "filter" }, cursor = true,
  doc = "People matching a filter (see `customerio.filters`)." }
E{ "getCustomersAttributes", "POST", "customers/attributes", "ids:list", body = { ids = "ids" },
  doc = "Attributes and devices of several people at once (up to 100 ids)." }

F("optouts")
E{ "getOptouts", "GET", "optouts", "options", query = "from start limit", cursor = true, node = false,
  doc = "SMS and WhatsApp opt-outs across the workspace, one entry per person (`from` filters by sender)." }
E{ "getPersonOptouts", "GET", "customers/{customer_id}/optouts", "customer_id, id_type", query = "id_type",
  id_type = "person", node = false,
  doc = "The senders and channels (SMS, WhatsApp) a person has opted out of." }
E{ "updatePersonOptouts", "PUT", "customers/{customer_id}/optouts", "customer_id, optouts:list, id_type",
  query = "id_type", id_type = "person", body = { optouts = "optouts" }, node = false,
  doc = "Opt a person out of, or back in to, senders: `{{from =, optout = true|false, channel = \"sms\"|\"whatsapp\"}}`." }

F("objects")
E{ "getObjectAttributes", "GET", "objects/{object_type_id}/{object_id}/attributes",
  "object_type_id, object_id, id_type", query = "id_type", id_type = "object",
  doc = "An object's attributes." }
E{ "getObjectRelationships", "GET", "objects/{object_type_id}/{object_id}/relationships",
  "object_type_id, object_id, options", query = "id_type start limit", id_type = "object", cursor = true,
  doc = "An object's relationships to people." }
E{ "findObjects", "POST", "objects", "object_type_id:id, filter:any, options", query = "start limit",
  body = { object_type_id = "object_type_id", filter = "filter" }, cursor = true,
  doc = "Objects of a type matching a filter (`object_attribute` conditions)." }
E{ "listObjectTypes", "GET", "object_types", "",
  doc = "The object types of the workspace." }

F("activities")
E{ "listActivities", "GET", "activities", "options",
  query = "start limit type name deleted customer_id id_type", id_type = "person", cursor = true,
  doc = "Activities across the workspace." }

F("segments")
E{ "listSegments", "GET", "segments", "", doc = "The segments of the workspace." }
E{ "createSegment", "POST", idempotent = false, "segments", "segment:table", body = { segment = "segment" },
  required = "segment.name", doc = "Create a manual segment (`name`, `description`)." }
E{ "getSegment", "GET", "segments/{segment_id}", "segment_id", doc = "A segment." }
E{ "deleteSegment", "DELETE", "segments/{segment_id}", "segment_id", doc = "Delete a manual segment." }
E{ "getSegmentCustomerCount", "GET", "segments/{segment_id}/customer_count", "segment_id",
  doc = "The number of people in a segment." }
E{ "getSegmentMembership", "GET", "segments/{segment_id}/membership", "segment_id, options",
  query = "start limit", cursor = true, doc = "The people in a segment." }
E{ "getSegmentUsedBy", "GET", "segments/{segment_id}/used_by", "segment_id",
  doc = "The campaigns, newsletters and others that use a segment." }

F("subscriptions")
E{ "listSubscriptionTopics", "GET", "subscription_topics", "", doc = "The subscription topics." }
E{ "listSubscriptionChannels", "GET", "subscription_channels", "", doc = "The subscription channels." }
E{ "getSubscriptionCenterToken", "GET", "subscription_center/{customer_id}/token", "customer_id",
  doc = "A token for a person's hosted subscription center link." }

F("transactional")
E{ "listTransactionalMessages", "GET", "transactional", "", doc = "The transactional messages." }
E{ "getTransactionalMessage", "GET", "transactional/{transactional_id}", "transactional_id",
  doc = "A transactional message." }
E{ "getTransactionalMessageContents", "GET", "transactional/{transactional_id}/contents",
  "transactional_id", doc = "The content variants of a transactional message." }
E{ "getTransactionalMessageLanguage", "GET", "transactional/{transactional_id}/language/{language}",
  "transactional_id, language", doc = "One translation of a transactional message." }
E{ "updateTransactionalMessageLanguage", "PUT", "transactional/{transactional_id}/language/{language}",
  "transactional_id, language, data:data", body = "data", doc = "Update one translation of a transactional message." }
E{ "getTransactionalMessageDeliveries", "GET", "transactional/{transactional_id}/messages",
  "transactional_id, options", query = "start limit metric start_ts end_ts get_tracked_responses", cursor = true,
  doc = "The deliveries of a transactional message." }
E{ "getTransactionalMessageMetrics", "GET", "transactional/{transactional_id}/metrics",
  "transactional_id, options", query = METRICS, doc = "Delivery metrics of a transactional message." }
E{ "getTransactionalMessageLinkMetrics", "GET", "transactional/{transactional_id}/metrics/links",
  "transactional_id, options", query = LINKS, doc = "Link click metrics of a transactional message." }
E{ "updateTransactionalMessageContent", "PUT", "transactional/{transactional_id}/content/{content_id}",
  "transactional_id, content_id, data:data", body = "data", doc = "Update a content variant of a transactional message." }

F("campaigns")
E{ "listCampaigns", "GET", "campaigns", "", doc = "The campaigns." }
E{ "getCampaign", "GET", "campaigns/{campaign_id}", "campaign_id", doc = "A campaign." }
E{ "getCampaignActions", "GET", "campaigns/{campaign_id}/actions", "campaign_id, options",
  query = "start", cursor = true, doc = "The actions of a campaign." }
E{ "getCampaignAction", "GET", "campaigns/{campaign_id}/actions/{action_id}", "campaign_id, action_id",
  doc = "An action of a campaign." }
E{ "updateCampaignAction", "PUT", "campaigns/{campaign_id}/actions/{action_id}",
  "campaign_id, action_id, data:data", body = "data", doc = "Update an action of a campaign." }
E{ "getCampaignActionLanguage", "GET", "campaigns/{campaign_id}/actions/{action_id}/language/{language}",
  "campaign_id, action_id, language", doc = "One translation of a campaign action." }
E{ "updateCampaignActionLanguage", "PUT", "campaigns/{campaign_id}/actions/{action_id}/language/{language}",
  "campaign_id, action_id, language, data:data", body = "data", doc = "Update one translation of a campaign action." }
E{ "getCampaignActionMetrics", "GET", "campaigns/{campaign_id}/actions/{action_id}/metrics",
  "campaign_id, action_id, options", query = "version res tz start end period steps",
  doc = "Metrics of a campaign action." }
E{ "getCampaignActionMetricsLinks", "GET", "campaigns/{campaign_id}/actions/{action_id}/metrics/links",
  "campaign_id, action_id, options", query = LINKS, doc = "Link click metrics of a campaign action." }
E{ "getCampaignMetrics", "GET", "campaigns/{campaign_id}/metrics", "campaign_id, options",
  query = "version type res tz start end period steps", doc = "Metrics of a campaign." }
E{ "getCampaignMetricsLinks", "GET", "campaigns/{campaign_id}/metrics/links", "campaign_id, options",
  query = LINKS, doc = "Link click metrics of a campaign." }
E{ "getCampaignJourneyMetrics", "GET", "campaigns/{campaign_id}/journey_metrics", "campaign_id, options",
  query = "start end resolution", aliases = { res = "resolution" },
  required = "options.start options.end options.res",
  doc = "Journey metrics of a campaign; `start`, `end` and `res` (sent as `resolution`) are required." }
E{ "getCampaignMessages", "GET", "campaigns/{campaign_id}/messages", "campaign_id, options",
  query = "start limit type metric drafts start_ts end_ts get_tracked_responses", cursor = true,
  doc = "The deliveries of a campaign." }

F("broadcasts")
E{ "getBroadcastTriggerStatus", "GET", "campaigns/{broadcast_id}/triggers/{trigger_id}",
  "broadcast_id, trigger_id", doc = "The status of a broadcast trigger." }
E{ "getBroadcastTriggerErrors", "GET", "campaigns/{broadcast_id}/triggers/{trigger_id}/errors",
  "broadcast_id, trigger_id, options", query = "start limit", cursor = true,
  doc = "The per-recipient errors of a broadcast trigger." }
E{ "listBroadcasts", "GET", "broadcasts", "", doc = "The broadcasts." }
E{ "getBroadcast", "GET", "broadcasts/{broadcast_id}", "broadcast_id", doc = "A broadcast." }
E{ "getBroadcastActions", "GET", "broadcasts/{broadcast_id}/actions", "broadcast_id",
  doc = "The actions of a broadcast." }
E{ "getBroadcastAction", "GET", "broadcasts/{broadcast_id}/actions/{action_id}", "broadcast_id, action_id",
  doc = "An action of a broadcast." }
E{ "updateBroadcastAction", "PUT", "broadcasts/{broadcast_id}/actions/{action_id}",
  "broadcast_id, action_id, data:data", body = "data", doc = "Update an action of a broadcast." }
E{ "getBroadcastActionLanguage", "GET", "broadcasts/{broadcast_id}/actions/{action_id}/language/{language}",
  "broadcast_id, action_id, language", doc = "One translation of a broadcast action." }
E{ "updateBroadcastActionLanguage", "PUT", "broadcasts/{broadcast_id}/actions/{action_id}/language/{language}",
  "broadcast_id, action_id, language, data:data", body = "data", doc = "Update one translation of a broadcast action." }
E{ "getBroadcastActionMetrics", "GET", "broadcasts/{broadcast_id}/actions/{action_id}/metrics",
  "broadcast_id, action_id, options", query = METRICS, doc = "Metrics of a broadcast action." }
E{ "getBroadcastActionMetricsLinks", "GET", "broadcasts/{broadcast_id}/actions/{action_id}/metrics/links",
  "broadcast_id, action_id, options", query = LINKS, doc = "Link click metrics of a broadcast action." }
E{ "getBroadcastMetrics", "GET", "broadcasts/{broadcast_id}/metrics", "broadcast_id, options",
  query = "period steps type", doc = "Metrics of a broadcast." }
E{ "getBroadcastMetricsLinks", "GET", "broadcasts/{broadcast_id}/metrics/links", "broadcast_id, options",
  query = LINKS, doc = "Link click metrics of a broadcast." }
E{ "getBroadcastMessages", "GET", "broadcasts/{broadcast_id}/messages", "broadcast_id, options",
  query = DELIVERIES, cursor = true, doc = "The deliveries of a broadcast." }
E{ "getBroadcastTriggers", "GET", "broadcasts/{broadcast_id}/triggers", "broadcast_id",
  doc = "The API triggers of a broadcast." }

F("newsletters")
E{ "listNewsletters", "GET", "newsletters", "options", query = "start limit sort", cursor = true,
  doc = "The newsletters." }
E{ "createNewsletter", "POST", idempotent = false, "newsletters", "data:data", body = "data", doc = "Create a newsletter." }
E{ "getNewsletter", "GET", "newsletters/{newsletter_id}", "newsletter_id", doc = "A newsletter." }
E{ "deleteNewsletter", "DELETE", "newsletters/{newsletter_id}", "newsletter_id", doc = "Delete a newsletter." }
E{ "getNewsletterContents", "GET", "newsletters/{newsletter_id}/contents", "newsletter_id",
  doc = "The content variants of a newsletter." }
E{ "getNewsletterContent", "GET", "newsletters/{newsletter_id}/contents/{content_id}",
  "newsletter_id, content_id", doc = "A content variant of a newsletter." }
E{ "updateNewsletterContent", "PUT", "newsletters/{newsletter_id}/contents/{content_id}",
  "newsletter_id, content_id, data:data", body = "data", doc = "Update a content variant of a newsletter." }
E{ "getNewsletterContentMetrics", "GET", "newsletters/{newsletter_id}/contents/{content_id}/metrics",
  "newsletter_id, content_id, options", query = METRICS, doc = "Metrics of a newsletter content variant." }
E{ "getNewsletterContentMetricsLinks", "GET", "newsletters/{newsletter_id}/contents/{content_id}/metrics/links",
  "newsletter_id, content_id, options", query = LINKS, doc = "Link click metrics of a newsletter content variant." }
E{ "getNewsletterMetrics", "GET", "newsletters/{newsletter_id}/metrics", "newsletter_id, options",
  query = METRICS, doc = "Metrics of a newsletter." }
E{ "getNewsletterMetricsLinks", "GET", "newsletters/{newsletter_id}/metrics/links", "newsletter_id, options",
  query = LINKS, doc = "Link click metrics of a newsletter." }
E{ "getNewsletterMessages", "GET", "newsletters/{newsletter_id}/messages", "newsletter_id, options",
  query = DELIVERIES, cursor = true, doc = "The deliveries of a newsletter." }
E{ "sendNewsletter", "POST", idempotent = false, "newsletters/{newsletter_id}/send", "newsletter_id, data:data", body = "data",
  doc = "Send a newsletter (optional rate-limit settings in `data`)." }
E{ "scheduleNewsletter", "POST", idempotent = false, "newsletters/{newsletter_id}/schedule", "newsletter_id, data:data",
  body = "data", doc = "Schedule a newsletter." }
E{ "createNewsletterLanguage", "POST", idempotent = false, "newsletters/{newsletter_id}/language", "newsletter_id, data:data",
  body = "data", doc = "Add a translation to a newsletter." }
E{ "getNewsletterLanguage", "GET", "newsletters/{newsletter_id}/language/{language}",
  "newsletter_id, language", doc = "One translation of a newsletter." }
E{ "updateNewsletterLanguage", "PUT", "newsletters/{newsletter_id}/language/{language}",
  "newsletter_id, language, data:data", body = "data", doc = "Update one translation of a newsletter." }
E{ "deleteNewsletterLanguage", "DELETE", "newsletters/{newsletter_id}/language/{language}",
  "newsletter_id, language", doc = "Delete one translation of a newsletter." }
E{ "getNewsletterTestGroups", "GET", "newsletters/{newsletter_id}/test_groups", "newsletter_id",
  doc = "The A/B test groups of a newsletter." }
E{ "createNewsletterTestGroup", "POST", idempotent = false, "newsletters/{newsletter_id}/test_groups", "newsletter_id",
  body = {}, doc = "Add an empty A/B test group to a newsletter." }
E{ "createNewsletterTestGroupLanguage", "POST", idempotent = false,
  "newsletters/{newsletter_id}/test_group/{test_group_id}/language",
  "newsletter_id, test_group_id, data:data", body = "data", doc = "Add a translation to a newsletter test group." }
E{ "getNewsletterTestGroupLanguage", "GET",
  "newsletters/{newsletter_id}/test_group/{test_group_id}/language/{language}",
  "newsletter_id, test_group_id, language", doc = "One translation of a newsletter test group." }
E{ "updateNewsletterTestGroupLanguage", "PUT",
  "newsletters/{newsletter_id}/test_group/{test_group_id}/language/{language}",
  "newsletter_id, test_group_id, language, data:data", body = "data",
  doc = "Update one translation of a newsletter test group." }
E{ "deleteNewsletterTestGroupLanguage", "DELETE",
  "newsletters/{newsletter_id}/test_group/{test_group_id}/language/{language}",
  "newsletter_id, test_group_id, language", doc = "Delete one translation of a newsletter test group." }

F("design_studio")
E{ "listDesignStudioFolders", "GET", "design_studio/folders", "options", query = DS_LIST,
  doc = "Design Studio folders (page-based: `page`, `limit`)." }
E{ "createDesignStudioFolder", "POST", idempotent = false, "design_studio/folders", "folder:table", body = "folder",
  required = "folder.name", doc = "Create a Design Studio folder (`name`, `parent_folder_id`)." }
E{ "getDesignStudioFolder", "GET", "design_studio/folders/{folder_id}", "folder_id",
  doc = "A Design Studio folder." }
E{ "updateDesignStudioFolder", "PUT", "design_studio/folders/{folder_id}", "folder_id, updates:table",
  body = "updates", doc = "Update a Design Studio folder (`parent_folder_id = customerio.null` moves it to the root)." }
E{ "deleteDesignStudioFolder", "DELETE", "design_studio/folders/{folder_id}", "folder_id",
  doc = "Delete a Design Studio folder." }
E{ "listDesignStudioEmails", "GET", "design_studio/emails", "options",
  query = DS_LIST .. " is_template has_translations is_linked", doc = "Design Studio emails." }
E{ "createDesignStudioEmail", "POST", idempotent = false, "design_studio/emails", "email:table", body = "email",
  required = "email.name", doc = "Create a Design Studio email." }
E{ "getDesignStudioEmail", "GET", "design_studio/emails/{email_id}", "email_id", doc = "A Design Studio email." }
E{ "updateDesignStudioEmail", "PUT", "design_studio/emails/{email_id}", "email_id, updates:table",
  body = "updates", doc = "Update a Design Studio email." }
E{ "deleteDesignStudioEmail", "DELETE", "design_studio/emails/{email_id}", "email_id",
  doc = "Delete a Design Studio email." }
E{ "listDesignStudioEmailLanguages", "GET", "design_studio/emails/{email_id}/languages", "email_id",
  doc = "The translations of a Design Studio email." }
E{ "createDesignStudioEmailLanguage", "POST", idempotent = false, "design_studio/emails/{email_id}/languages",
  "email_id, translation:table", body = "translation", required = "translation.language",
  doc = "Add a translation to a Design Studio email." }
E{ "getDesignStudioEmailLanguage", "GET", "design_studio/emails/{email_id}/languages/{language}",
  "email_id, language", doc = "One translation of a Design Studio email." }
E{ "updateDesignStudioEmailLanguage", "PUT", "design_studio/emails/{email_id}/languages/{language}",
  "email_id, language, updates:table", body = "updates", doc = "Update one translation of a Design Studio email." }
E{ "deleteDesignStudioEmailLanguage", "DELETE", "design_studio/emails/{email_id}/languages/{language}",
  "email_id, language", doc = "Delete one translation of a Design Studio email." }
E{ "listDesignStudioComponents", "GET", "design_studio/components", "options", query = DS_LIST .. " tag",
  doc = "Design Studio components." }
E{ "createDesignStudioComponent", "POST", idempotent = false, "design_studio/components", "component:table", body = "component",
  required = "component.name component.tag", doc = "Create a Design Studio component (`name`, `tag`, `content`)." }
E{ "getDesignStudioComponent", "GET", "design_studio/components/{component_id}", "component_id",
  doc = "A Design Studio component." }
E{ "updateDesignStudioComponent", "PUT", "design_studio/components/{component_id}",
  "component_id, updates:table", body = "updates", doc = "Update a Design Studio component." }
E{ "deleteDesignStudioComponent", "DELETE", "design_studio/components/{component_id}", "component_id",
  doc = "Delete a Design Studio component." }

F("assets")
E{ "listAssets", "GET", "assets", "options", query = "parent_folder_id direct_descendants_only page limit",
  doc = "Uploaded files (page-based)." }
E{ "createAsset", "POST", idempotent = false, "assets/files", "file:table", multipart = true, required = "file.filename",
  doc = "Upload a file (multipart): `{data =, filename =, content_type =, name =, parent_folder_id =}`." }
E{ "getAsset", "GET", "assets/files/{asset_id}", "asset_id", doc = "An uploaded file." }
E{ "updateAsset", "PUT", "assets/files/{asset_id}", "asset_id, updates:table", body = "updates",
  doc = "Rename or move an uploaded file." }
E{ "deleteAsset", "DELETE", "assets/files/{asset_id}", "asset_id", doc = "Delete an uploaded file." }
E{ "listAssetFolders", "GET", "assets/folders", "options",
  query = "parent_folder_id direct_descendants_only page limit", doc = "Asset folders (page-based)." }
E{ "createAssetFolder", "POST", idempotent = false, "assets/folders", "folder:table", body = "folder", required = "folder.name",
  doc = "Create an asset folder." }
E{ "getAssetFolder", "GET", "assets/folders/{folder_id}", "folder_id", doc = "An asset folder." }
E{ "updateAssetFolder", "PUT", "assets/folders/{folder_id}", "folder_id, updates:table", body = "updates",
  doc = "Update an asset folder." }
E{ "deleteAssetFolder", "DELETE", "assets/folders/{folder_id}", "folder_id",
  doc = "Delete an (empty) asset folder." }

F("collections")
E{ "listCollections", "GET", "collections", "", doc = "The collections." }
E{ "createCollection", "POST", idempotent = false, "collections", "collection:table", body = "collection",
  required = "collection.name", doc = "Create a collection (`name`, `data` or `url`)." }
E{ "getCollection", "GET", "collections/{collection_id}", "collection_id", doc = "A collection." }
E{ "updateCollection", "PUT", "collections/{collection_id}", "collection_id, updates:table", body = "updates",
  doc = "Update a collection." }
E{ "deleteCollection", "DELETE", "collections/{collection_id}", "collection_id", doc = "Delete a collection." }
E{ "getCollectionContent", "GET", "collections/{collection_id}/content", "collection_id",
  doc = "The contents of a collection." }
E{ "updateCollectionContent", "PUT", "collections/{collection_id}/content", "collection_id, content:array",
  body = "content", doc = "Replace the contents of a collection." }

F("suppressions")
E{ "searchSuppression", "GET", "esp/search_suppression/{email}", "email",
  doc = "The ESP suppression lists an address is on." }
E{ "getSuppressions", "GET", "esp/suppression/{suppression_type}", "suppression_type, options",
  query = "limit offset email domain", doc = "Addresses suppressed by the ESP for one reason (offset-based)." }
E{ "getDomainSuppressions", "GET", "esp/domains/{domain_name}/suppression/{suppression_type}",
  "domain_name, suppression_type, options", query = "limit email start", cursor = true,
  doc = "Addresses suppressed by the ESP for one reason on one sending domain." }
E{ "createSuppression", "POST", idempotent = false, "esp/suppression/{suppression_type}/{email}", "suppression_type, email",
  doc = "Suppress an address at the ESP." }
E{ "deleteSuppression", "DELETE", "esp/suppression/{suppression_type}/{email}", "suppression_type, email",
  doc = "Remove an address from an ESP suppression list." }

F("reporting_webhooks")
E{ "listReportingWebhooks", "GET", "reporting_webhooks", "", doc = "The reporting webhooks." }
E{ "createReportingWebhook", "POST", idempotent = false, "reporting_webhooks", "webhook:table", body = "webhook",
  required = "webhook.endpoint", doc = "Create a reporting webhook." }
E{ "getReportingWebhook", "GET", "reporting_webhooks/{webhook_id}", "webhook_id", doc = "A reporting webhook." }
E{ "updateReportingWebhook", "PUT", "reporting_webhooks/{webhook_id}", "webhook_id, updates:table",
  body = "updates", doc = "Update a reporting webhook." }
E{ "deleteReportingWebhook", "DELETE", "reporting_webhooks/{webhook_id}", "webhook_id",
  doc = "Delete a reporting webhook." }

F("snippets")
E{ "getSnippets", "GET", "snippets", "", doc = "The snippets." }
E{ "createSnippet", "POST", idempotent = false, "snippets", "snippet:table", body = "snippet",
  required = "snippet.name snippet.value",
  doc = "Create a snippet (`name`, `value`)." }
E{ "updateSnippet", "PUT", "snippets", "snippet:table", body = "snippet", required = "snippet.name snippet.value",
  doc = "Create or update a snippet by name." }
E{ "deleteSnippet", "DELETE", "snippets/{name}", "name", doc = "Delete a snippet." }

F("sender_identities")
E{ "getSenderIdentities", "GET", "sender_identities", "options", query = "start limit sort hidden",
  cursor = true, doc = "The sender identities." }
E{ "getSenderIdentity", "GET", "sender_identities/{sender_id}", "sender_id", doc = "A sender identity." }
E{ "getSenderIdentityUsedBy", "GET", "sender_identities/{sender_id}/used_by", "sender_id",
  doc = "The messages that use a sender identity." }

F("messages")
E{ "getMessages", "GET", "messages", "options",
  query = "start limit drafts metric type campaign_id action_id newsletter_id transactional_id trigger_id " ..
    "template_id content_id start_ts end_ts associations get_tracked_responses",
  cursor = true, doc = "Deliveries across the workspace." }
E{ "getMessage", "GET", "messages/{message_id}", "message_id, options",
  query = "archived_message associations get_tracked_responses", doc = "A delivery." }
E{ "getArchivedMessage", "GET", "messages/{message_id}/archived_message", "message_id",
  doc = "The archived copy of a delivery." }

F("imports")
E{ "createImport", "POST", idempotent = false, "imports", "import_data:table", body = { import = "import_data" },
  required = "import_data.data_file_url import_data.type",
  doc = "Import people, objects or events from a CSV at `data_file_url`." }
E{ "getImport", "GET", "imports/{import_id}", "import_id", doc = "An import." }

F("exports")
E{ "listExports", "GET", "exports", "", doc = "The exports." }
E{ "getExport", "GET", "exports/{id}", "id", doc = "An export." }
E{ "downloadExport", "GET", "exports/{id}/download", "id", doc = "A time-limited download URL of an export." }
E{ "createCustomersExport", "POST", idempotent = false, "exports/customers", "filters:any", body = { filters = "filters" },
  doc = "Export the people matching a filter." }
E{ "createDeliveriesExport", "POST", idempotent = false, "exports/deliveries", "newsletter_id:id, options",
  body = { newsletter_id = "newsletter_id", ["..."] = "options" },
  doc = "Export the deliveries of a newsletter (`start`, `end`, `attributes`, `metric`, `drafts`)." }

F("data_index")
E{ "batchUpdateAttributes", "POST", "data_index/attributes", "attributes:list", body = { attributes = "attributes" },
  doc = "Update the descriptions of attributes in the data index." }
E{ "batchUpdateEvents", "POST", "data_index/events", "events:list", body = { events = "events" },
  doc = "Update the descriptions of events in the data index." }

F("live_notifications")
E{ "startLiveNotification", "POST", idempotent = false, "live_notifications/start", "notification:table", body = "notification",
  required = "notification.identifiers notification.notification_type notification.attributes notification.content_state",
  node = false, doc = "Start a live notification (iOS Live Activity, Android live update): `{instance_id = ...}`." }
E{ "updateLiveNotification", "POST", "live_notifications/update", "update:table", body = "update",
  required = "update.instance_id", node = false, doc = "Update a running live notification." }
E{ "endLiveNotification", "POST", "live_notifications/end", "update:table", body = "update",
  required = "update.instance_id", node = false, doc = "End a live notification." }
E{ "getLiveNotification", "GET", "live_notifications/{instance_id}", "instance_id", node = false,
  doc = "A live notification's state and its last delivery." }

F("workspaces")
E{ "listWorkspaces", "GET", "workspaces", "", doc = "The workspaces of the account." }

F("info")
E{ "getIpAddresses", "GET", "info/ip_addresses", "", doc = "The IP addresses Customer.io sends from." }

--- Allowed values of some arguments, with Node's messages.
endpoints.enums = {
  person = { values = { "id", "email", "cio_id", "phone" },
    message = 'id_type must be one of "id", "cio_id", "email", or "phone"' },
  object = { values = { "object_id", "cio_object_id" },
    message = 'id_type must be one of "object_id" or "cio_object_id"' },
  suppression_type = { values = { "blocks", "bounces", "spam_reports", "invalid_emails" },
    message = 'suppression_type must be one of "blocks", "bounces", "spam_reports", or "invalid_emails"' },
}

--- Node's camelCase name to ours: `getCustomerActivities` -> `get_customer_activities`.
-- @tparam string name
-- @treturn string
function endpoints.snake(name)
  return (name:gsub("(%l)(%u)", "%1_%2"):gsub("(%u)(%u%l)", "%1_%2"):lower())
end

--- A snake_case name in camelCase: `parent_folder_id` -> `parentFolderId`.
-- @tparam string name
-- @treturn string
function endpoints.camel(name)
  return (name:gsub("_(%l)", string.upper))
end

local function words(s)
  local out = {}
  if s then for w in s:gmatch("[^%s,]+") do out[#out + 1] = w end end
  return out
end

-- Normalise an entry: name, path parts, argument descriptors, option names.
local function prepare(t)
  local ep = {
    node = t.node ~= false and t[1] or nil, operation = t[1], method = t[2], template = t[3],
    name = endpoints.snake(t[1]),
    family = t.family, doc = t.doc, body = t.body, multipart = t.multipart, cursor = t.cursor,
    idempotent = t.idempotent ~= false,
    id_type = t.id_type, defaults = t.defaults or {}, required = words(t.required),
    query = words(t.query), aliases = t.aliases or {},
  }
  local in_path = {}
  ep.path = {}
  for part in t[3]:gmatch("[^/]+") do
    local param = part:match("^{([%w_]+)}$")
    if param then
      in_path[param] = true
      ep.path[#ep.path + 1] = { param = param }
    else
      ep.path[#ep.path + 1] = part
    end
  end
  ep.args = {}
  for _, a in ipairs(words(t[4])) do
    local name, kind = a:match("^([%w_]+):(%w+)$")
    if not name then
      name = a
      if in_path[a] then kind = "path"
      elseif a == "options" then kind = "options"
      elseif a == "id_type" then kind = "id_type"
      else error("endpoint " .. t[1] .. ": argument " .. a .. " has no type") end
    end
    ep.args[#ep.args + 1] = { name = name, kind = kind }
    if kind == "options" then ep.options_index = #ep.args end
  end
  -- Query keys bound to a positional argument; the others come from `options`.
  local positional = {}
  for _, a in ipairs(ep.args) do positional[a.name] = true end
  ep.option_names = {}   -- accepted option name -> wire key
  ep.option_keys = {}    -- wire keys taken from options, in order
  for _, k in ipairs(ep.query) do
    if not positional[k] then
      ep.option_keys[#ep.option_keys + 1] = k
      ep.option_names[k] = k
      ep.option_names[endpoints.camel(k)] = k
    end
  end
  for alias, k in pairs(ep.aliases) do ep.option_names[alias] = k end
  return ep
end

--- The entries, in catalogue order (prepared: `name`, `node`, `method`, `path`, `args`...).
endpoints.list = {}
--- The entries by our name.
endpoints.by_name = {}

for _, t in ipairs(list) do
  local ep = prepare(t)
  assert(not endpoints.by_name[ep.name], "duplicate endpoint " .. ep.name)
  endpoints.list[#endpoints.list + 1] = ep
  endpoints.by_name[ep.name] = ep
end

--- The signature of an entry as documentation: `get_segment(segment_id)`.
-- @tparam table ep entry
-- @treturn string
function endpoints.signature(ep)
  local names = {}
  for i, a in ipairs(ep.args) do
    local optional = a.kind == "options" or a.kind == "data" or a.kind == "id_type"
    names[i] = optional and ("[" .. a.name .. "]") or a.name
  end
  return ep.name .. "(" .. table.concat(names, ", ") .. ")"
end

local FAMILY_TITLES = {
  customers = "Customers", objects = "Objects", activities = "Activities", segments = "Segments",
  subscriptions = "Subscriptions", transactional = "Transactional messages", campaigns = "Campaigns",
  broadcasts = "Broadcasts", newsletters = "Newsletters", design_studio = "Design Studio",
  assets = "Assets", collections = "Collections", suppressions = "ESP suppressions",
  reporting_webhooks = "Reporting webhooks", snippets = "Snippets",
  sender_identities = "Sender identities", messages = "Messages", imports = "Imports",
  exports = "Exports", data_index = "Data index", workspaces = "Workspaces", info = "Info",
  optouts = "SMS and WhatsApp opt-outs", live_notifications = "Live notifications",
}
endpoints.family_titles = FAMILY_TITLES

local function body_doc(ep)
  if ep.multipart then return "multipart/form-data" end
  local b = ep.body
  if b == nil then
    if ep.method == "POST" or ep.method == "PUT" then return "`{}`" end
    return ""
  end
  if type(b) == "string" then return "`" .. b .. "`" end
  local keys = {}
  for k, v in pairs(b) do
    if k == "..." then keys[#keys + 1] = "..." .. v
    elseif k == v then keys[#keys + 1] = k
    else keys[#keys + 1] = k .. " = " .. v end
  end
  table.sort(keys)
  return "`{" .. table.concat(keys, ", ") .. "}`"
end

--- The reference of the catalogue in Markdown (docs/app_endpoints.md).
-- @treturn string
function endpoints.markdown()
  local out = {
    "# App API methods (generated)",
    "",
    "Generated from `lua/customerio/app/endpoints.lua` by `endpoints.markdown()`; do not edit by hand.",
    "Each method of `customerio.APIClient` below is one HTTP call under the App root",
    "(`https://api.customer.io/v1`, `https://api-eu.customer.io/v1`) and returns the decoded JSON",
    "body (and the response), or `nil, err`. Path arguments are strings or numbers and are",
    "percent-encoded; `options` tables take the query keys listed, in snake_case or in",
    "customerio-node's camelCase (`id_type` or `idType`). Methods marked *pages* page with",
    "`start` / `next` cursors: `for page, err in api:pages(\"name\", args...) do ... end`.",
    "The Node column names customerio-node 5.2.0's method; \"—\" marks an endpoint of",
    "Customer.io's App API reference that Node 5.2.0 does not have. A person's `id_type` is",
    "`id`, `email`, `cio_id` or `phone` (E.164; Customer.io accepts `email` and `phone` only",
    "when they are identifiers in the workspace's settings).",
    "Methods marked *not replayed* create or send something: they are retried only when the",
    "request provably did not reach Customer.io (docs/app.md, \"Retries: no duplicate sends\").",
    "",
    "The transactional sends, `trigger_broadcast`, `request` and `pages` are documented in",
    "docs/app.md.",
    "",
  }
  local current
  for _, ep in ipairs(endpoints.list) do
    if ep.family ~= current then
      current = ep.family
      out[#out + 1] = ""
      out[#out + 1] = "## " .. (FAMILY_TITLES[current] or current)
      out[#out + 1] = ""
      out[#out + 1] = "| Method | HTTP | Query | Body | Node |"
      out[#out + 1] = "|---|---|---|---|---|"
    end
    local q = table.concat(ep.query, ", ")
    if next(ep.aliases) then
      local a = {}
      for alias, k in pairs(ep.aliases) do a[#a + 1] = alias .. " → " .. k end
      table.sort(a)
      q = q .. " (" .. table.concat(a, ", ") .. ")"
    end
    local desc = ep.doc or ""
    if ep.cursor then desc = desc .. " *pages*" end
    if not ep.idempotent then desc = desc .. " *not replayed*" end
    out[#out + 1] = string.format("| `%s`<br>%s | %s `/v1/%s` | %s | %s | %s |",
      endpoints.signature(ep), desc, ep.method, ep.template, q ~= "" and ("`" .. q .. "`") or "",
      body_doc(ep), ep.node and ("`" .. ep.node .. "`") or "—")
  end
  out[#out + 1] = ""
  out[#out + 1] = string.format("%d methods.", #endpoints.list)
  out[#out + 1] = ""
  return table.concat(out, "\n")
end

return endpoints
