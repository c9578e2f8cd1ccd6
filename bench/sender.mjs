// The load generator: a child process that sends with UdpSender (sendmmsg),
// paced in bursts on the monotonic clock. It blocks its own event loop while
// sending, which is why it runs alone. Datagram layout: bytes 0-3 the
// sequence number (u32 LE), bytes 8-15 the send time in ns (f64 LE) when the
// datagram is at least 16 bytes. With `mix: { min, max }`, sizes spread over
// that range (syslog- or statsd-like traffic), each fixed by its sequence number.
import { UdpSender } from '../dist/index.js';
import { nowNs, sleepSync } from './clock.mjs';

const maxBurst = 1024;

// A datagram's size when `mix` is { min, max }: spread over the range, fixed by its sequence number.
const mixedSize = (seq, { min, max }) => min + (((seq * 2654435761) >>> 0) % (max - min + 1));

function send({ port, size, rate, count, durationMs, burstMs = 0.5, gso = false, mix = null }) {
  const total = count ?? Math.round((rate * durationMs) / 1000);
  if (mix) size = mix.max;
  const data = new Uint8Array(maxBurst * size);
  // With `mix`, each burst's datagrams are packed one after another, their sizes here.
  const sizes = mix ? new Uint32Array(maxBurst) : null;
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
      let at = 0;
      for (let k = 0; k < n; k++) {
        if (sizes) sizes[k] = mixedSize(sent + k, mix);
        view.setUint32(at, sent + k, true);
        if (stamped && (!sizes || sizes[k] >= 16)) view.setFloat64(at + 8, stamp, true);
        at += sizes ? sizes[k] : size;
      }
      sent += sizes ? tx.sendBatch(data, sizes, n) : tx.sendBatch(data, size, n);
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
