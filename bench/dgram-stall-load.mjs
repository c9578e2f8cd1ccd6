// statsd-style load on a udp-ring/dgram server while its event loop stalls: a child process
// sends `rate` datagrams/s of 200 bytes for `seconds`; the server's loop blocks 50 ms every
// 100 ms. Prints how many arrived, and for the facade its counted drops and what was still undelivered
// after 30 s (late, not lost). Usage: node bench/dgram-stall-load.mjs auto|thread|node [rate=50000] [seconds=3]
import { fork } from 'node:child_process';
import nodeDgram from 'node:dgram';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === 'send') {
  const [, , , port, rate, seconds] = process.argv.map(Number);
  const socket = nodeDgram.createSocket('udp4');
  const payload = Buffer.alloc(200, 97);
  const total = rate * seconds;
  let sent = 0;
  // Counted when the send completes: a send still queued in libuv at close() is cancelled, never sent.
  let done = 0;
  let failed = 0;
  const after = (error) => {
    if (error) failed++;
    if (++done === total) socket.close(() => process.send({ sent: total - failed, failed }));
  };
  const started = Date.now();
  const tick = () => {
    const due = Math.min(total, Math.floor(((Date.now() - started) / 1000) * rate));
    while (sent < due) {
      socket.send(payload, port, '127.0.0.1', after);
      sent++;
    }
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
} else {
  const mode = process.argv[2] ?? 'auto';
  const rate = Number(process.argv[3] ?? 50000);
  const seconds = Number(process.argv[4] ?? 3);
  const dgram = mode === 'node' ? nodeDgram : (await import('../dist/adapters/dgram/index.js')).default;
  const server = dgram.createSocket(mode === 'thread' ? { type: 'udp4', receive: 'thread' } : 'udp4');
  let received = 0;
  server.on('message', () => received++);
  const probe = nodeDgram.createSocket('udp4');
  await new Promise((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  await new Promise((resolve) => server.bind(port, '127.0.0.1', resolve));
  const stall = setInterval(() => {
    const until = Date.now() + 50;
    while (Date.now() < until) { /* a 50 ms stall */ }
  }, 100);
  const child = fork(fileURLToPath(import.meta.url), ['send', String(port), String(rate), String(seconds)]);
  const [{ sent, failed }] = await new Promise((resolve) => child.on('message', (m) => resolve([m])));
  clearInterval(stall);
  // Until every datagram is delivered or counted lost (the facade's stats(); node:dgram has none, so
  // it waits the whole time), at most 30 s: a loaded machine drains the ring slowly, which is late, not lost.
  const counted = () => {
    const stats = server.stats?.();
    return stats ? stats.kernelDrops + stats.ringDrops : 0;
  };
  const deadline = Date.now() + (mode === 'node' ? 3000 : 30_000);
  while (received + counted() < sent && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const stats = server.stats?.();
  console.log(JSON.stringify({ mode, rate, seconds, sent, received, lostPercent: +((100 * (sent - received)) / sent).toFixed(2),
    kernelDrops: stats?.kernelDrops ?? null, ringDrops: stats?.ringDrops ?? null, undelivered: sent - received - counted(),
    sendFailures: failed, ringPackets: stats?.packets ?? null, kernelQueueBytes: stats?.kernelQueueBytes ?? null,
    receivingOn: server.receivingOn?.() ?? 'eventLoop' }));
  server.close();
}
