-- The identify attributes every benchmark sends (the same as bench/identify.js):
-- a realistic profile with strings, an integer timestamp, a float, a boolean, a nested
-- object and an array. Scripts load it with dofile, relative to their own path.
return {
  email = "ada.lovelace@example.com",
  first_name = "Ada",
  last_name = "Lovelace",
  created_at = 1700000000,
  plan = "pro",
  plan_price = 49.99,
  trial = false,
  locale = "en-GB",
  company = { name = "Analytical Engines Ltd", size = 42, industry = "computing" },
  tags = { "beta", "newsletter", "vip" },
}
