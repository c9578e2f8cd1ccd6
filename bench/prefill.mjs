// A receiver whose ring already holds `count` datagrams of `size` bytes, sent on loopback
// before any is read (bench/handoff-path.mjs and bench/yield-budget.mjs read them back):
// a 256 MiB ring and a 1 GiB kernel buffer (forced as root) hold them all.
import { UdpReceiver, UdpSender } from '../dist/index.js';

export async function prefilledReceiver(options, count, size) {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, ringBytes: 256 * 1024 * 1024, recvBufferSize: 2 ** 30 - 1,
    maxMessageSize: 2048, ...options });
  const tx = await UdpSender.open({ host: '127.0.0.1', port: rx.address().port });
  const data = new Uint8Array(64 * size);
  let sent = 0;
  while (sent < count) sent += tx.sendBatch(data, size, Math.min(64, count - sent));
  tx.close();
  while (rx.stats().packets + rx.stats().kernelDrops < sent) await new Promise((r) => setTimeout(r, 5));
  return rx;
}
