// bullmq.js: the BullMQ peer of `scripts/bench broker`.
//   node bullmq.js worker URL CONCURRENCY   one worker process (noop jobs)
//   node bullmq.js submit URL N             adds N noop jobs (addBulk, 1000
//                                           at a time) and waits until every
//                                           one completed; prints seconds
// Completion is counted from QueueEvents' "completed" events; completed jobs
// are removed (removeOnComplete) so Redis holds what is in flight only.
'use strict';
const { Queue, Worker, QueueEvents } = require('bullmq');

const [mode, url, arg] = process.argv.slice(2);
const u = new URL(url);
const connection = { host: u.hostname, port: Number(u.port || 6379),
                     maxRetriesPerRequest: null };
const name = 'beltbench';

async function submit(n) {
  const queue = new Queue(name, { connection });
  const events = new QueueEvents(name, { connection });
  await events.waitUntilReady();
  let done = 0;
  const all = new Promise((resolve) => {
    events.on('completed', () => { if (++done === n) resolve(); });
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      batch.push({ name: 'noop', data: { i: j },
                   opts: { removeOnComplete: true, removeOnFail: true } });
    await queue.addBulk(batch);
  }
  await all;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(s.toFixed(3));
  await events.close();
  await queue.close();
}

async function work(concurrency) {
  const w = new Worker(name, async () => {}, { connection, concurrency });
  const stop = async () => { await w.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (mode === 'submit') submit(Number(arg)).then(() => process.exit(0),
  (e) => { console.error(e); process.exit(1); });
else if (mode === 'worker') work(Number(arg));
else { console.error('usage: bullmq.js worker|submit URL N'); process.exit(2); }
