#!/usr/bin/env node
// The JavaScript cost of one hand-off, per batch of one datagram, without the wakeup: a ring
// prefilled with N datagrams is read with maxBatchLength 1 through onBatch and through the
// iterator (for await), alternating, best and median of the rounds. The difference is what the
// iterator's promise, its Batch per batch and its extra checks cost per batch; the wakeup (and
// the latency it adds) is the same for both and not in these figures.
//   node bench/handoff-path.mjs [--count 200000] [--rounds 7]
import { numberOption } from './script-args.mjs';
import { prefilledReceiver } from './prefill.mjs';

const count = numberOption('--count', 200_000);
const rounds = numberOption('--rounds', 7);
const size = 100;

async function prefilled() {
  const rx = await prefilledReceiver({ maxBatchLength: 1, yieldEvery: { datagrams: Infinity, ms: Infinity } }, count, size);
  return { rx, packets: rx.stats().packets };
}

async function viaIterator() {
  const { rx, packets } = await prefilled();
  let read = 0;
  let sum = 0;
  const start = performance.now();
  for await (const batch of rx) {
    sum ^= batch.view.getUint32(batch.offset(0), true);
    if (++read >= packets) break;
  }
  return { nsPerBatch: ((performance.now() - start) * 1e6) / read, sum };
}

async function viaOnBatch() {
  const { rx, packets } = await prefilled();
  let read = 0;
  let sum = 0;
  let end = 0;
  const start = performance.now();
  await new Promise((resolve, reject) => {
    rx.onBatch((batch) => {
      sum ^= batch.view.getUint32(batch.offset(0), true);
      if (++read >= packets) {
        end = performance.now();
        void rx.close().then(resolve, reject);
      }
    }).catch(reject);
  });
  return { nsPerBatch: ((end - start) * 1e6) / read, sum };
}

const results = { onBatch: [], iterator: [] };
for (let r = 0; r < rounds; r++) {
  results.onBatch.push((await viaOnBatch()).nsPerBatch);
  results.iterator.push((await viaIterator()).nsPerBatch);
}
const best = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(`${count} prefilled datagrams read one per batch, ns per batch (best / median of ${rounds} rounds):`);
for (const [name, xs] of Object.entries(results)) console.log(`  ${name.padEnd(9)} ${best(xs).toFixed(0)} / ${median(xs).toFixed(0)}`);
console.log(`  iterator - onBatch: ${(best(results.iterator) - best(results.onBatch)).toFixed(0)} / ${(median(results.iterator) - median(results.onBatch)).toFixed(0)} ns`);
