// Open/receive/close cycles for the valgrind leak run (scripts/test-leak.sh):
// every way a receiver ends (close, break, a failed bind, garbage collection)
// and a sender per cycle, so a leak per cycle stands out against Node's own.
import { UdpReceiver, UdpSender } from '../dist/index.js';

const cycles = Number(process.argv[2] ?? 100);
const options = { host: '127.0.0.1', port: 0, ringBytes: 1 << 20, maxMessageSize: 2048, batchSize: 16, recvBufferSize: 1 << 20 };
const data = new Uint8Array(100 * 64);

for (let k = 0; k < cycles; k++) {
  const rx = await UdpReceiver.open(options);
  const tx = await UdpSender.open({ port: rx.address().port });
  tx.sendBatch(data, 64, 100);
  let seen = 0;
  for await (const batch of rx) {
    seen += batch.length;
    if (seen >= 100) break; // return() closes
  }
  // A failed open: the port is taken (the sender still holds its own).
  try {
    await UdpReceiver.open({ ...options, port: tx.address().port });
  } catch (error) {
    if (error.code !== 'EADDRINUSE') throw error;
  }
  tx.close();
  // Closed without iterating, and one left to the garbage collector.
  await (await UdpReceiver.open(options)).close();
  (await UdpReceiver.open(options)).unref();
  if (k % 10 === 9) globalThis.gc?.();
}
globalThis.gc?.();
await new Promise((resolve) => setTimeout(resolve, 100));
globalThis.gc?.();
console.log(`leak-cycles: ${cycles} cycles done`);
