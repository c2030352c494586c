// Sequential (or N-in-flight) identify calls with customerio-node 5.2.0 against the bench
// responder. Usage:
//   node identify.js BASE_URL CALLS [IN_FLIGHT] [WARMUP]   -> one JSON line of figures
//   node identify.js --body                                -> the identify request body
// BASE_URL is the responder root (http://127.0.0.1:PORT); the client gets BASE_URL/api/v1.
'use strict';

// The same attributes as bench/identify.lua: a realistic identify.
const attrs = {
  email: 'ada.lovelace@example.com',
  first_name: 'Ada',
  last_name: 'Lovelace',
  created_at: 1700000000,
  plan: 'pro',
  plan_price: 49.99,
  trial: false,
  locale: 'en-GB',
  company: { name: 'Analytical Engines Ltd', size: 42, industry: 'computing' },
  tags: ['beta', 'newsletter', 'vip'],
};

if (process.argv[2] === '--body') {
  process.stdout.write(JSON.stringify(attrs));
  process.exit(0);
}

const { TrackClient } = require('customerio-node');
// The package's "exports" hide package.json: read it next to the resolved entry point.
const fs = require('fs');
const path = require('path');
function packageVersion() {
  let dir = path.dirname(require.resolve('customerio-node'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}
const version = packageVersion();

const base = process.argv[2];
const calls = Number(process.argv[3] || 20000);
const inFlight = Number(process.argv[4] || 1);
const warmup = Number(process.argv[5] || 200);

async function run(client, from, count, width) {
  let next = from;
  const end = from + count;
  async function worker() {
    while (next < end) {
      const i = next++;
      await client.identify('user-' + i, attrs);
    }
  }
  const workers = [];
  for (let w = 0; w < width; w++) workers.push(worker());
  await Promise.all(workers);
}

(async () => {
  const client = new TrackClient('site-id', 'api-key', { url: base + '/api/v1' });
  await run(client, 0, warmup, inFlight);
  const t0 = process.hrtime.bigint();
  await run(client, warmup, calls, inFlight);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(JSON.stringify({
    client: 'customerio-node ' + version, node: process.version,
    calls, warmup, in_flight: inFlight, seconds,
  }) + '\n');
})().catch((err) => {
  process.stderr.write('identify.js: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});
