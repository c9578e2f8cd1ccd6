// Micro-benchmark of the Batch accessor loop, to price the stale-batch check:
// a synthetic ring of N descriptors read with offset/size/port per datagram,
// plus the per-batch cost of moving to the next batch. Usage:
//   node scripts/bench-stale.mjs [path/to/batch.js]   (default: dist/core/batch.js)
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const modulePath = resolve(process.argv[2] ?? 'dist/core/batch.js');
const { Batch } = await import(pathToFileURL(modulePath).href);
const { nativeLayout } = await import(pathToFileURL(resolve('dist/backends/native/layout.js')).href);

const count = 4096;
const descriptorsOffset = nativeLayout.controlBytes;
const buffer = new ArrayBuffer(descriptorsOffset + count * nativeLayout.descriptorSize + count * 64);
const u32 = new Uint32Array(buffer);
for (let i = 0; i < count; i++) {
  const at = descriptorsOffset + i * nativeLayout.descriptorSize;
  u32[(at + nativeLayout.descriptor.offset) >>> 2] = descriptorsOffset + count * nativeLayout.descriptorSize + i * 64;
  u32[(at + nativeLayout.descriptor.size) >>> 2] = 64;
}

let batch = new Batch(buffer, descriptorsOffset, count);
// Moves to the next batch the way the receiver does with this Batch version.
// Returns the batch to read, as `for await (const batch of rx)` hands it over.
const advance = typeof batch._successor === 'function'
  ? (length) => (batch = batch._successor(0, length))
  : (length) => { batch._reset(0, 0); batch._reset(0, length); return batch; };

function run(batchLength, rounds) {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) {
    const b = advance(batchLength);
    for (let i = 0; i < b.length; i++) sink += b.offset(i) + b.size(i) + b.port(i);
  }
  const ns = Number(process.hrtime.bigint() - start);
  return { nsPerDatagram: ns / (rounds * batchLength), sink };
}

for (const batchLength of [1, 16, 256, 4096]) {
  const rounds = Math.ceil(20_000_000 / batchLength);
  run(batchLength, Math.ceil(rounds / 10)); // warm-up
  const samples = [];
  for (let k = 0; k < 5; k++) samples.push(run(batchLength, rounds).nsPerDatagram);
  samples.sort((a, b) => a - b);
  console.log(`batch length ${String(batchLength).padStart(4)}: ${samples[2].toFixed(2)} ns/datagram (median of 5, 3 accessors each)`);
}
