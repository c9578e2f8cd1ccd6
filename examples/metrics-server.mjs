// Receives UDP with udp-ring and serves its counters to Prometheus.
//
//   node examples/metrics-server.mjs [udpPort=9000] [metricsPort=9464] [host=127.0.0.1]
//   udp-ring send --port 9000 --rate 50000 --seconds 10
//   curl -s http://127.0.0.1:9464/metrics | grep udp_ring_
//
// Prints one JSON line with both addresses once it is ready.
import { createServer } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { UdpReceiver } from 'udp-ring';
import { registerReceiverMetrics } from 'udp-ring/prometheus';

const [udpPort = '9000', metricsPort = '9464', host = '127.0.0.1'] = process.argv.slice(2);

const registry = new Registry();
collectDefaultMetrics({ register: registry });

const receiver = await UdpReceiver.open({ host, port: Number(udpPort) });
const metrics = registerReceiverMetrics(receiver, { registry });

const server = createServer(async (request, response) => {
  if (request.url !== '/metrics') {
    response.writeHead(404).end('try /metrics\n');
    return;
  }
  response.writeHead(200, { 'content-type': registry.contentType });
  response.end(await registry.metrics());
});
await new Promise((resolve) => server.listen(Number(metricsPort), host, resolve));
const { port } = server.address();
console.log(JSON.stringify({ socket: metrics.socket, metrics: `http://${host}:${port}/metrics` }));

const stop = () => {
  server.close();
  void receiver.close();
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

// The application's work goes here; the metrics need nothing per datagram.
let checksum = 0;
for await (const batch of receiver) {
  for (let i = 0; i < batch.length; i++) checksum ^= batch.size(i);
}
metrics.remove();
console.log(JSON.stringify({ stopped: true, stats: receiver.stats(), checksum }));
