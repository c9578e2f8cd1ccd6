// The load generator: a child process that sends with UdpSender (sendmmsg),
// paced in bursts on the monotonic clock. It blocks its own event loop while
// sending, which is why it runs alone. Datagram layout: bytes 0-3 the
// sequence number (u32 LE), bytes 8-15 the send time in ns (f64 LE) when the
// datagram is at least 16 bytes.
import { UdpSender } from '../dist/index.js';
import { nowNs, sleepSync } from './clock.mjs';

const maxBurst = 1024;

function send({ port, size, rate, count, durationMs, burstMs = 0.5, gso = false }) {
  const total = count ?? Math.round((rate * durationMs) / 1000);
  const data = new Uint8Array(maxBurst * size);
  for (let k = 0; k < data.length; k++) data[k] = k & 0xff;
  const view = new DataView(data.buffer);
  const stamped = size >= 16;
  const burst = rate > 0 ? Math.max(1, Math.min(maxBurst, Math.round((rate * burstMs) / 1000))) : maxBurst;
  const nsPerDatagram = rate > 0 ? 1e9 / rate : 0;
  return UdpSender.open({ port, host: '127.0.0.1', gso }).then((tx) => {
    let sent = 0;
    let calls = 0;
    const start = nowNs();
    let last = start;
    while (sent < total) {
      let n = Math.min(maxBurst, total - sent);
      if (rate > 0) {
        const now = nowNs();
        const due = Math.min(total, Math.floor((now - start) / nsPerDatagram));
        n = Math.min(n, due - sent);
        // Wait for a whole burst to be due (or the last, shorter one).
        if (n < Math.min(burst, total - sent)) {
          // Never spin: a spinning sender takes a core from the receiver.
          // A sleep overshoots by about 0.1 ms; what fell due meanwhile goes in the next burst.
          const gapMs = (start + (sent + Math.min(burst, total - sent)) * nsPerDatagram - now) / 1e6;
          sleepSync(Math.max(0.02, gapMs - 0.1));
          continue;
        }
      }
      const stamp = nowNs();
      for (let k = 0; k < n; k++) {
        const at = k * size;
        view.setUint32(at, sent + k, true);
        if (stamped) view.setFloat64(at + 8, stamp, true);
      }
      sent += tx.sendBatch(data, size, n);
      calls++;
      last = nowNs();
    }
    tx.close();
    const elapsedNs = last - start;
    return { sent, calls, elapsedNs, achievedRate: elapsedNs > 0 ? (sent * 1e9) / elapsedNs : 0 };
  });
}

process.on('message', async (message) => {
  if (message.cmd === 'exit') {
    process.disconnect();
    return;
  }
  try {
    const result = await send(message);
    process.send({ id: message.id, ...result });
  } catch (error) {
    process.send({ id: message.id, error: String(error?.stack ?? error) });
  }
});
process.send({ type: 'ready' });
