// The first datagram after 'listening': how late it arrives on a server socket (a named port).
// Usage: node bench/dgram-first-datagram.mjs node|facade [trials=40] [delayMs=0]
// delayMs: the datagram leaves that long after 'listening' (0: from the 'listening' callback itself);
// a few ms puts it while a facade server's thread starts and prefaults its ring.
import nodeDgram from 'node:dgram';

const side = process.argv[2] ?? 'facade';
const trials = Number(process.argv[3] ?? 40);
const delayMs = Number(process.argv[4] ?? 0);
const dgram = side === 'facade' ? (await import('../dist/adapters/dgram/index.js')).default : nodeDgram;
const sender = nodeDgram.createSocket('udp4');
await new Promise((resolve) => sender.bind(0, '127.0.0.1', resolve));
const late = [];
for (let i = 0; i < trials; i++) {
  const probe = nodeDgram.createSocket('udp4');
  await new Promise((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const port = probe.address().port;
  await new Promise((resolve) => probe.close(resolve));
  const server = dgram.createSocket('udp4');
  await new Promise((resolve) => {
    let sentAt = 0;
    server.on('message', () => {
      late.push(Number(process.hrtime.bigint() - sentAt) / 1e6);
      server.close(resolve);
    });
    const send = () => {
      sentAt = process.hrtime.bigint();
      sender.send('first', port, '127.0.0.1');
    };
    server.bind(port, '127.0.0.1', () => (delayMs > 0 ? setTimeout(send, delayMs) : send()));
  });
}
sender.close();
late.sort((a, b) => a - b);
const q = (p) => +late[Math.min(late.length - 1, Math.floor(p * late.length))].toFixed(2);
console.log(JSON.stringify({ side, trials, delayMs, medianMs: q(0.5), p90Ms: q(0.9), maxMs: q(1), over5ms: late.filter((x) => x > 5).length }));
