// The soak's sender, in a worker thread: sends numbered datagrams as fast as
// sendmmsg takes them for the given time, then reports how many it sent.
import { parentPort, workerData } from 'node:worker_threads';
import { UdpSender } from '../dist/index.js';
import { fillPayload, sizeFor, templates } from './pattern.mjs';

const { port, host, type, seconds, maxMessageSize } = workerData;
const tx = await UdpSender.open({ port, host, type, sendBufferSize: 4 * 1024 * 1024 });
const chunk = 256;
const rows = templates(maxMessageSize + 601);
const data = new Uint8Array(chunk * (maxMessageSize + 601));
const sizes = new Uint32Array(chunk);
let seq = 0;
const end = performance.now() + seconds * 1000;
while (performance.now() < end) {
  let at = 0;
  for (let k = 0; k < chunk; k++) {
    const size = sizeFor(seq + k, maxMessageSize);
    fillPayload(data, at, seq + k, size, rows);
    sizes[k] = size;
    at += size;
  }
  // sendBatch blocks until the kernel takes them; a short count only on error.
  let done = 0;
  while (done < chunk) {
    let skip = 0;
    for (let k = 0; k < done; k++) skip += sizes[k];
    done += tx.sendBatch(data.subarray(skip), sizes.subarray(done), chunk - done);
  }
  seq += chunk;
}
tx.close();
parentPort.postMessage({ sent: seq });
