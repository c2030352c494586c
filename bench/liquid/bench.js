// Render a template of bench/liquid (receipt, numeric or digest; default receipt) with
// receipt.json using liquidjs; prints ms per render.
// Usage: node bench.js [iterations] [template] [--print]
'use strict';
const fs = require('fs');
const path = require('path');
const { Liquid } = require('liquidjs');

const dir = __dirname;
const name = process.argv.slice(3).filter((a) => a !== '--print')[0] || 'receipt';
const source = fs.readFileSync(path.join(dir, name + '.liquid'), 'utf8');
const data = JSON.parse(fs.readFileSync(path.join(dir, 'receipt.json'), 'utf8'));
const iterations = parseInt(process.argv[2] || '2000', 10);

// UTC dates, like Customer.io and customerio.liquid
const engine = new Liquid({ timezoneOffset: 0 });
const template = engine.parse(source);

if (process.argv.includes('--print')) {
  process.stdout.write(engine.renderSync(template, data));
  process.exit(0);
}

for (let i = 0; i < 200; i++) engine.renderSync(template, data);   // warm up the JIT

const batches = [];
const perBatch = Math.max(1, Math.floor(iterations / 10));
for (let b = 0; b < 10; b++) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < perBatch; i++) engine.renderSync(template, data);
  const t1 = process.hrtime.bigint();
  batches.push(Number(t1 - t0) / 1e6 / perBatch);
}
batches.sort((a, b) => a - b);
const median = batches[Math.floor(batches.length / 2)];
console.log(`liquidjs ${require('liquidjs/package.json').version} ${name}: ${median.toFixed(4)} ms/render (median of 10 batches x ${perBatch})`);
