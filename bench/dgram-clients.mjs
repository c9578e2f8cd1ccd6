// Short-lived client sockets, as a DNS client that opens one per query (dns2 does): each
// socket sends one query to an echo server and waits for the reply, then closes.
// Usage: node bench/dgram-clients.mjs node|facade [sequential=200] [concurrent=50]
// Prints JSON: ms per sequential query, and the RSS and thread growth while `concurrent` sockets are open.
import nodeDgram from 'node:dgram';
import { readdirSync } from 'node:fs';

const side = process.argv[2] ?? 'facade';
const sequential = Number(process.argv[3] ?? 200);
const concurrent = Number(process.argv[4] ?? 50);
const dgram = side === 'facade' ? (await import('../dist/adapters/dgram/index.js')).default : nodeDgram;

const server = nodeDgram.createSocket('udp4', (msg, rinfo) => server.send(msg, rinfo.port, rinfo.address));
await new Promise((resolve) => server.bind(0, '127.0.0.1', resolve));
const port = server.address().port;

function query(keepOpen = false) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', reject);
    socket.on('message', () => {
      if (keepOpen) resolve(socket);
      else socket.close(() => resolve(null));
    });
    socket.send('query', port, '127.0.0.1');
  });
}

// Warm up (the addon's load, JIT).
for (let i = 0; i < 10; i++) await query();
const started = process.hrtime.bigint();
for (let i = 0; i < sequential; i++) await query();
const msPerQuery = Number(process.hrtime.bigint() - started) / 1e6 / sequential;

global.gc?.();
const threads = () => readdirSync('/proc/self/task').length;
const before = process.memoryUsage().rss;
const threadsBefore = threads();
const open = await Promise.all(Array.from({ length: concurrent }, () => query(true)));
const during = process.memoryUsage().rss;
const threadsDuring = threads();
await Promise.all(open.map((s) => new Promise((resolve) => s.close(resolve))));
server.close();
console.log(JSON.stringify({ side, sequential, msPerQuery: +msPerQuery.toFixed(3), concurrent, rssGrowthMiB: +((during - before) / 2 ** 20).toFixed(1), threadGrowth: threadsDuring - threadsBefore }));
