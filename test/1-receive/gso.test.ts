// GSO send (UdpSender's gso: true): runs of equal sizes go as one UDP_SEGMENT
// message, the receiver sees the same datagrams as from sendmmsg; where the
// route refuses a segment size, the sender falls back to sendmmsg for it.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';
import { checkDatagram, fillDatagram } from '../helpers.js';

async function roundTrip(gso: boolean, sizes: number[]) {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', gro: true });
  const tx = await UdpSender.open({ port: rx.address().port, gso });
  const data = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
  let at = 0;
  sizes.forEach((n, seq) => { fillDatagram(data, at, seq, n); at += n; });
  const sent = tx.sendBatch(data, Uint32Array.from(sizes));
  const usesGso = tx.gso;
  let seen = 0;
  const bad: number[] = [];
  const iterator = rx[Symbol.asyncIterator]();
  while (seen < sent) {
    const batch = (await iterator.next()).value!;
    for (let i = 0; i < batch.length; i++, seen++) {
      if (batch.size(i) !== sizes[seen] || checkDatagram(batch.bytes, batch.offset(i), seen, sizes[seen]) !== -1) bad.push(seen);
    }
  }
  const { coalesced } = rx.stats();
  await iterator.return!();
  tx.close();
  return { sent, seen, bad, usesGso, coalesced };
}

describe('UdpSender with GSO', () => {
  // Equal runs, short last segments, zero-length datagrams, runs longer than 64 and than 64 KiB.
  const sizes = [...Array(100).fill(1200), 500, ...Array(3).fill(0), 7, ...Array(70).fill(1000), ...Array(40).fill(8000),
    60_000, 60_000, 65_507, 1, 1, 1];
  it('delivers the same datagrams as sendmmsg, byte for byte, in fewer messages', async () => {
    const withGso = await roundTrip(true, sizes);
    const without = await roundTrip(false, sizes);
    expect(withGso).toMatchObject({ sent: sizes.length, seen: sizes.length, bad: [], usesGso: true });
    expect(without).toMatchObject({ sent: sizes.length, seen: sizes.length, bad: [], usesGso: false, coalesced: 0 });
    // GRO on the receiver shows the segments arrived coalesced: GSO sent them as one message.
    expect(withGso.coalesced).toBeGreaterThan(150);
  });

  it('is off unless asked for, and on the dgram backend', async () => {
    const tx = await UdpSender.open({ port: 9 });
    expect(tx.gso).toBe(false);
    tx.close();
    const dgram = await UdpSender.open({ port: 9, gso: true, backend: 'dgram' });
    expect(dgram.gso).toBe(false);
    dgram.close();
    await expect(UdpSender.open({ port: 9, gso: 1 as unknown as boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  // Needs a network namespace (root or user namespaces): loopback there gets an MTU of 1500.
  const unshare = spawnSync('unshare', ['-rn', 'true']);
  it.skipIf(unshare.status !== 0)('a segment size above the route MTU falls back to sendmmsg; smaller ones keep GSO', () => {
    const fixture = fileURLToPath(new URL('../fixtures/gso-mtu.mjs', import.meta.url));
    const run = spawnSync('unshare', ['-rn', 'sh', '-c', `ip link set lo up && ip link set lo mtu 1500 && "${process.execPath}" "${fixture}"`],
      { encoding: 'utf8', timeout: 60_000 });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toMatchObject({ sent: 110, seen: 110, bad: 0, gsoAfter: true });
    expect(JSON.parse(run.stdout).coalesced).toBeGreaterThan(50);
  });
});
