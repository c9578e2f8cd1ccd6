// One receiver of bench/jetstream.mjs, in its own process: UDP on loopback into a
// JetStream stream, every publish with a Nats-Msg-Id and its ack checked, at most
// 512 in flight. Usage: node bench/jetstream-receiver.mjs <udp-ring|dgram> <servers> <subject>
// Prints {"ready":true,"port":n}; on SIGTERM stops, finishes, prints its counters.
//   udp-ring: udp-ring/jetstream (the ring holds what the bound keeps back; overflow 'block').
//   dgram: node:dgram and the same client; what the bound keeps back waits in a JS queue of at
//   most 32 MiB of payload (the ring's default size), beyond which datagrams are dropped, counted.
//   Its kernel buffer is forced to udp-ring's default size as the main benchmark does (root:
//   bench/force-rcvbuf.pl), and its kernel drops read from /proc/net/udp.
import dgram from 'node:dgram';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { UdpReceiver, defaults } from '../dist/index.js';
import { JetStreamPublisher } from '../dist/adapters/jetstream.js';
import { forceRecvBuffer, socketFd, udpSocketRow } from './system.mjs';

const [mode, servers, subject] = process.argv.slice(2);
const nc = await connect({ servers: servers.split(','), maxReconnectAttempts: -1 });
const js = jetstream(nc);
const maxInFlight = 512;
const report = (extra) => console.log(JSON.stringify(extra));

if (mode === 'udp-ring') {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0 });
  const publisher = new JetStreamPublisher(rx, js, { subject, maxInFlight });
  process.on('SIGTERM', () => void publisher.close());
  report({ ready: true, port: rx.address().port, recvBufferSize: rx.stats().recvBufferSize });
  await publisher.done;
  await publisher.close();
  const s = publisher.stats();
  report({ received: s.receiver.packets, acked: s.acked, failed: s.failed, dropped: s.receiver.kernelDrops + s.receiver.ringDrops,
    discarded: s.receiver.discarded, recvBufferSize: s.receiver.recvBufferSize });
} else {
  const socket = dgram.createSocket({ type: 'udp4' });
  let port = 0;
  let kernelDrops = 0;
  let recvBufferSize = 0;
  let inFlight = 0;
  let acked = 0;
  let failed = 0;
  let dropped = 0;
  let received = 0;
  let queuedBytes = 0;
  const queue = [];
  let id = 0;
  const prefix = `dgram-${process.pid}`;
  const publish = (payload) => {
    inFlight++;
    const msgID = `${prefix}-${id++}`;
    const attempt = (left) => js.publish(subject, payload, { msgID, timeout: 5000 }).then(() => { acked++; done(); }, (e) => {
      if (left > 0 && /timeout|no responders/i.test(String(e?.message))) setTimeout(() => attempt(left - 1), 100);
      else { failed++; done(); }
    });
    attempt(10);
  };
  const done = () => {
    inFlight--;
    while (inFlight < maxInFlight && queue.length > 0) {
      const next = queue.shift();
      queuedBytes -= next.length;
      publish(next);
    }
    if (closing && inFlight === 0 && queue.length === 0) finish();
  };
  socket.on('message', (msg) => {
    received++;
    if (inFlight < maxInFlight) publish(msg);
    else if (queuedBytes + msg.length <= 32 << 20) { queue.push(msg); queuedBytes += msg.length; }
    else dropped++;
  });
  let closing = false;
  const finish = async () => {
    await nc.drain();
    report({ received, acked, failed, dropped: dropped + kernelDrops, discarded: 0, recvBufferSize });
    process.exit(0);
  };
  process.on('SIGTERM', () => {
    closing = true;
    kernelDrops = udpSocketRow(port)?.drops ?? 0;
    socket.close();
    if (inFlight === 0 && queue.length === 0) void finish();
  });
  socket.bind(0, '127.0.0.1', () => {
    port = socket.address().port;
    const fd = socketFd(udpSocketRow(port)?.inode);
    recvBufferSize = (fd >= 0 ? forceRecvBuffer(fd, defaults.recvBufferSize) : null) ?? socket.getRecvBufferSize();
    report({ ready: true, port, recvBufferSize });
  });
}
if (mode === 'udp-ring') await nc.drain();
