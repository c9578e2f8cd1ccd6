// `udp-ring send`: the load generator. Datagrams go out in bursts through
// sendmmsg, paced against hrtime: each wakeup sends what the schedule says is
// due, so timer jitter changes burst sizes, not the rate.
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { UdpSender } from '../../index.js';
import { count, size as formatSize } from './format.js';

export interface SendOptions {
  port: number;
  host?: string;
  type?: 'udp4' | 'udp6';
  /** Datagrams per second; 0 sends as fast as the socket takes them. */
  rate: number;
  count?: number;
  seconds?: number;
  size: number;
  burst?: number;
  json?: boolean;
  backend?: 'native' | 'dgram' | 'auto';
}

export interface SendResult {
  type: 'sent';
  target: string;
  sent: number;
  bytes: number;
  size: number;
  seconds: number;
  rate: number;
  requestedRate: number;
  reason: string;
  /** Datagrams the destination refused (ICMP port unreachable): nothing was listening. */
  refused: number;
  /** Datagrams that met another ICMP error (host or network unreachable, ...). */
  icmpErrors: number;
}

// How long to wait after the last send for ICMP errors from a remote host (loopback reports them at once).
const icmpGraceMs = 100;

export async function send(options: SendOptions): Promise<SendResult> {
  const tx = await UdpSender.open({ port: options.port, host: options.host, type: options.type, backend: options.backend });
  const size = options.size;
  const burst = options.burst ?? (options.rate > 0 ? Math.min(1024, Math.max(1, Math.ceil(options.rate / 500))) : 256);
  const data = new Uint8Array(Math.max(1, size * burst));
  for (let k = 0; k < data.length; k++) data[k] = (k % size) & 0xff;
  const view = new DataView(data.buffer);
  const limit = options.count ?? Number.POSITIVE_INFINITY;
  const deadlineNs = options.seconds !== undefined ? BigInt(Math.round(options.seconds * 1e9)) : null;
  let stopReason: string | null = null;
  // The first signal ends the run with a report; a second one exits at once.
  const onSignal = (signal: string, code: number) => () => (stopReason === null ? (stopReason = signal) : process.exit(code));
  const onSigint = onSignal('SIGINT', 130);
  const onSigterm = onSignal('SIGTERM', 143);
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);

  const start = process.hrtime.bigint();
  let sent = 0;
  let sinceYield = 0;
  let seconds = 0;
  let errors = { refused: 0, icmpErrors: 0 };
  try {
    while (stopReason === null) {
      if (sent >= limit) {
        stopReason = 'count';
        break;
      }
      const elapsed = process.hrtime.bigint() - start;
      if (deadlineNs !== null && elapsed >= deadlineNs) {
        stopReason = 'seconds';
        break;
      }
      const due = options.rate > 0 ? Math.floor((Number(elapsed) * options.rate) / 1e9) + 1 - sent : burst;
      const n = Math.min(due, burst, limit - sent);
      if (n <= 0) {
        // Sleep until the next datagram is due (timers are ~1 ms; the next burst catches up).
        const waitMs = ((sent + 1) * 1e9) / options.rate / 1e6 - Number(elapsed) / 1e6;
        await sleep(Math.max(1, Math.floor(waitMs)));
        sinceYield = 0;
        continue;
      }
      // The first 4 bytes of each datagram are its sequence number, little-endian.
      if (size >= 4) for (let k = 0; k < n; k++) view.setUint32(k * size, (sent + k) >>> 0, true);
      sent += tx.sendBatch(data, size, n);
      // Without pacing the loop never sleeps: let signals and timers in now and then.
      if (++sinceYield >= 16) {
        sinceYield = 0;
        await yieldToLoop();
      }
    }
    seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (sent > 0) await sleep(icmpGraceMs);
    errors = tx.stats();
  } finally {
    tx.close();
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
  }
  const host = options.host ?? (options.type === 'udp6' ? '::1' : '127.0.0.1');
  const result: SendResult = {
    type: 'sent',
    target: host.includes(':') ? `[${host}]:${options.port}` : `${host}:${options.port}`,
    sent,
    bytes: sent * size,
    size,
    seconds: Math.round(seconds * 1e6) / 1e6,
    rate: seconds > 0 ? Math.round(sent / seconds) : 0,
    requestedRate: options.rate,
    reason: stopReason ?? 'count',
    refused: errors.refused,
    icmpErrors: errors.icmpErrors,
  };
  if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`sent ${count(sent)} datagrams of ${size} bytes (${formatSize(sent * size)}) to ${result.target} ` +
      `in ${seconds.toFixed(3)} s: ${count(result.rate)}/s` +
      `${options.rate > 0 ? ` (asked ${count(options.rate)}/s)` : ''}, stopped by ${result.reason}` +
      `${result.refused > 0 ? `; ${count(result.refused)} refused` : ''}${result.icmpErrors > 0 ? `; ${count(result.icmpErrors)} met ICMP errors` : ''}\n`);
  }
  // Datagrams that came back refused are lost: say so, and exit non-zero (the CLI's catch prints the message).
  if (result.refused > 0 || result.icmpErrors > 0) {
    const problems: string[] = [];
    if (result.refused === sent) problems.push(`nothing is listening at ${result.target}: all ${count(sent)} datagrams were refused (ICMP port unreachable)`);
    else if (result.refused > 0) problems.push(`${count(result.refused)} of ${count(sent)} datagrams were refused by ${result.target} (ICMP port unreachable): nothing was listening there for part of the run`);
    if (result.icmpErrors > 0) problems.push(`${count(result.icmpErrors)} of ${count(sent)} datagrams met an ICMP error on the way to ${result.target} (host or network unreachable, or too large for the path)`);
    const error = new Error(problems.join('; ')) as Error & { code: string; result: SendResult };
    error.code = 'ERR_UDP_RING_SEND_REFUSED';
    error.result = result;
    throw error;
  }
  return result;
}
