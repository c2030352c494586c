--- JSON encode/decode throughput: the C core (customerio.core) against lua-cjson, same interpreter.
--
--     lua5.4 bench/json.lua [SECONDS_PER_SAMPLE]
--     luajit bench/json.lua
--
-- Two realistic payloads: an identify (about 300 bytes of attributes) and a transactional
-- send (nested message_data with a 50-item order array, unicode strings, ints and floats,
-- about 14 KB). Each library encodes the payload and decodes its own encoding. Every figure is
-- the median of 5 samples, each a timed loop of about SECONDS_PER_SAMPLE (default 0.25) of CPU
-- time (os.clock); the samples of ours and of lua-cjson alternate, so both meet the same
-- machine. Prints one JSON object.
local sample_seconds = tonumber(arg and arg[1]) or 0.25

local ok_core, core = pcall(require, "customerio.core")
if not ok_core then core = nil end
local cjson = require("cjson")

local function identify_payload()
  return dofile((arg[0]:match("^(.*)/") or ".") .. "/payload.lua")
end

local function transactional_payload()
  local items = {}
  for i = 1, 50 do
    items[i] = {
      sku = string.format("SKU-%05d", i * 7919 % 100000),
      name = "Tasse en porcelaine n°" .. i .. " – café crème ☕",
      quantity = i % 5 + 1,
      unit_price = 4.5 + i * 1.25,
      discount = (i % 3 == 0) and 0.15 or 0,
      weight_kg = 0.35 + i / 100,
      in_stock = i % 7 ~= 0,
      categories = { "kitchen", "tableware", i % 2 == 0 and "gifts" or "sale" },
      image = "https://cdn.example.com/img/products/" .. i .. ".jpg?w=600&h=600",
    }
  end
  return {
    transactional_message_id = 44,
    to = "Zoë Ångström <zoe.angstrom@example.com>",
    identifiers = { id = "user-0012345" },
    subject = "Votre commande n° 2024-000123 est confirmée 🎉",
    send_at = 1700000100,
    disable_message_retention = false,
    send_to_unsubscribed = true,
    tracked = true,
    message_data = {
      customer = {
        first_name = "Zoë", last_name = "Ångström", city = "Zürich", country = "CH",
        greeting = "こんにちは", loyalty_points = 12840, tier = "gold", member_since = 1499990400,
      },
      order = {
        id = "2024-000123",
        currency = "EUR",
        subtotal = 2873.75,
        tax_rate = 0.077,
        total = 3095.03,
        created_at = 1700000000,
        items = items,
        shipping = {
          method = "express", cost = 12.9, eta_days = 2,
          address = { line1 = "Bahnhofstrasse 1", line2 = "3. Stock", postcode = "8001", city = "Zürich" },
        },
        notes = "Bitte nicht knicken.\nMerci !\t\"Fragile\" – handle with care / ❤",
      },
    },
  }
end

local function time_loop(fn, arg1, n)
  local t0 = os.clock()
  for _ = 1, n do fn(arg1) end
  return os.clock() - t0
end

-- Loop count giving about sample_seconds of CPU time for fn(arg1).
local function calibrate(fn, arg1)
  local n = 16
  local elapsed = time_loop(fn, arg1, n)
  while elapsed < 0.05 do
    n = n * 4
    elapsed = time_loop(fn, arg1, n)
  end
  return math.max(1, math.floor(n * sample_seconds / elapsed))
end

local function median(t)
  table.sort(t)
  return t[math.floor((#t + 1) / 2)]
end

-- ops/s of each {fn, arg} of a list: calibrated, then SAMPLES rounds in which every entry runs
-- one sample in turn (so that ours and lua-cjson see the same machine), median per entry.
local SAMPLES = 5
local function rates(list)
  local counts, samples = {}, {}
  for i, e in ipairs(list) do
    counts[i] = calibrate(e[1], e[2])
    samples[i] = {}
  end
  for _ = 1, SAMPLES do
    for i, e in ipairs(list) do
      table.insert(samples[i], counts[i] / time_loop(e[1], e[2], counts[i]))
    end
  end
  local out = {}
  for i = 1, #list do out[i] = median(samples[i]) end
  return out
end

local cases = {
  { name = "identify", value = identify_payload() },
  { name = "transactional", value = transactional_payload() },
}

local ours_encode = core and core.json_encode
local ours_decode = core and core.json_decode
local out = {}
for _, case in ipairs(cases) do
  local theirs_text = cjson.encode(case.value)
  local r = { bytes = #theirs_text, encode = {}, decode = {} }
  if not ours_encode then
    local got = rates({ { cjson.encode, case.value }, { cjson.decode, theirs_text } })
    r.encode.cjson, r.decode.cjson = got[1], got[2]
  else
    local text, err = ours_encode(case.value)
    if not text then error("customerio.core.json_encode failed: " .. tostring(err)) end
    -- Sanity: both encodings must decode to the same value (checked on a few fields).
    local back = cjson.decode(text)
    assert(back.to == case.value.to and back.email == case.value.email, "encoders disagree")
    if case.value.message_data then
      assert(#back.message_data.order.items == 50, "order items lost")
      assert(back.message_data.order.items[50].unit_price == case.value.message_data.order.items[50].unit_price)
    end
    r.bytes_ours = #text
    local decoded = ours_decode(text)
    assert(type(decoded) == "table", "customerio.core.json_decode failed")
    local got = rates({
      { ours_encode, case.value }, { cjson.encode, case.value },
      { ours_decode, text }, { cjson.decode, theirs_text },
    })
    r.encode.ours, r.encode.cjson, r.decode.ours, r.decode.cjson = got[1], got[2], got[3], got[4]
  end
  out[#out + 1] = string.format(
    '"%s":{"bytes":%d,"bytes_ours":%s,"encode":{"ours":%s,"cjson":%.1f},"decode":{"ours":%s,"cjson":%.1f}}',
    case.name, r.bytes, r.bytes_ours and tostring(r.bytes_ours) or "null",
    r.encode.ours and string.format("%.1f", r.encode.ours) or "null", r.encode.cjson,
    r.decode.ours and string.format("%.1f", r.decode.ours) or "null", r.decode.cjson)
end

io.write(string.format('{"lua":"%s","cjson":"%s","ours_available":%s,"cases":{%s}}\n',
  jit and jit.version or _VERSION, cjson._VERSION or "?", tostring(ours_encode ~= nil), table.concat(out, ",")))
