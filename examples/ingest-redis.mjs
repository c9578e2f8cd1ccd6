// A statsd ingest service: datagrams received with udp-ring, parsed in place
// in the ring, published to a Redis Stream one pipeline per batch.
//
//   redis-server --port 6379 &
//   node examples/ingest-redis.mjs [udpPort=8125] [redisUrl=redis://127.0.0.1:6379] [stream=statsd] [host=127.0.0.1]
//   echo -n "api.requests:1|c" | nc -u -w0 127.0.0.1 8125
//   redis-cli XRANGE statsd - +
//
// Prints one JSON line when ready ({ ready, port }); on SIGTERM or SIGINT it
// finishes the batch in hand, then prints its counters and exits.
// A statsd line is `name:value|type[|@rate][|#tags]`; a datagram may carry
// several, separated by newlines. Lines that do not parse are counted, not
// published.
import { createClient } from 'redis';
import { UdpReceiver } from 'udp-ring';

const [udpPort = '8125', redisUrl = 'redis://127.0.0.1:6379', stream = 'statsd', host = '127.0.0.1'] = process.argv.slice(2);

const COLON = 0x3a;
const PIPE = 0x7c;
const NEWLINE = 0x0a;
const AT = 0x40;
const decoder = new TextDecoder('latin1');

/**
 * Parses the statsd lines of one datagram in place (bytes[start, end)) and
 * appends one stream entry per metric to `entries`. Returns how many lines
 * were malformed.
 */
export function parseStatsd(bytes, start, end, entries) {
  let bad = 0;
  let line = start;
  while (line < end) {
    let stop = line;
    while (stop < end && bytes[stop] !== NEWLINE) stop++;
    if (stop > line) {
      // Find the field separators without making strings of the whole line.
      let colon = -1;
      let pipe = -1;
      let second = -1;
      for (let k = line; k < stop; k++) {
        const c = bytes[k];
        if (c === COLON && colon < 0) colon = k;
        else if (c === PIPE && colon >= 0) {
          if (pipe < 0) pipe = k;
          else if (second < 0) second = k;
        }
      }
      const typeEnd = second < 0 ? stop : second;
      if (colon <= line || pipe <= colon + 1 || typeEnd <= pipe + 1) {
        bad++;
      } else {
        const entry = {
          name: decoder.decode(bytes.subarray(line, colon)),
          value: decoder.decode(bytes.subarray(colon + 1, pipe)),
          type: decoder.decode(bytes.subarray(pipe + 1, typeEnd)),
        };
        if (!Number.isFinite(Number(entry.value))) bad++;
        else {
          if (second >= 0 && bytes[second + 1] === AT) {
            let rateEnd = second + 2;
            while (rateEnd < stop && bytes[rateEnd] !== PIPE) rateEnd++;
            entry.rate = decoder.decode(bytes.subarray(second + 2, rateEnd));
          }
          entries.push(entry);
        }
      }
    }
    line = stop + 1;
  }
  return bad;
}

async function main() {
  const redis = createClient({ url: redisUrl });
  redis.on('error', (error) => console.error('redis:', error.message));
  await redis.connect();
  const rx = await UdpReceiver.open({ host, port: Number(udpPort) });
  const counters = { datagrams: 0, metrics: 0, malformed: 0, published: 0, pipelines: 0 };
  let stopping = false;
  let busy = false;
  // Finish the batch being published, then stop (closing ends the loop below).
  const stop = () => {
    stopping = true;
    if (!busy) void rx.close();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.log(JSON.stringify({ ready: true, port: rx.address().port, stream }));

  for await (const batch of rx) {
    busy = true;
    const entries = [];
    for (let i = 0; i < batch.length; i++) {
      const at = batch.offset(i);
      counters.malformed += parseStatsd(batch.bytes, at, at + batch.size(i), entries);
    }
    counters.datagrams += batch.length;
    counters.metrics += entries.length;
    // One round trip per batch. Awaiting it is the backpressure: the ring (and
    // then the kernel queue, with overflow 'block') holds what arrives meanwhile.
    if (entries.length > 0) {
      const pipeline = redis.multi();
      for (const entry of entries) pipeline.xAdd(stream, '*', entry);
      await pipeline.execAsPipeline();
      counters.published += entries.length;
      counters.pipelines++;
    }
    busy = false;
    if (stopping) break;
  }
  const stats = rx.stats();
  await rx.close();
  await redis.quit();
  console.log(JSON.stringify({
    ...counters,
    kernelDrops: stats.kernelDrops,
    ringDrops: stats.ringDrops,
    truncated: stats.truncated,
    packets: stats.packets,
    backend: stats.backend,
  }));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
