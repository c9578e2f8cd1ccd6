// options.poisonReleased (env UDP_RING_POISON=1): a view into the ring kept
// past its batch reads 0xdb at once, on both backends and both ways of
// consuming, instead of now and then reading whatever arrived later; and off,
// nothing is written. What udp-ring/jetstream's slice() would have shown.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender, type Batch } from '../../dist/index.js';
import { checkDatagram, fillDatagram } from '../helpers.js';

async function send(port: number, seq: number, size: number): Promise<void> {
  const tx = await UdpSender.open({ port });
  const data = new Uint8Array(size);
  fillDatagram(data, 0, seq, size);
  expect(tx.sendBatch(data, size, 1)).toBe(1);
  tx.close();
}

const poisoned = (view: Uint8Array) => view.every((b) => b === 0xdb);

describe('poisonReleased', () => {
  for (const backend of ['native', 'dgram'] as const) {
    for (const poisonReleased of [true, false]) {
      it(`${backend}, ${poisonReleased ? 'on' : 'off'}: a payload view kept past its batch (iterator)`, async () => {
        const rx = await UdpReceiver.open({ host: '127.0.0.1', backend, poisonReleased });
        await send(rx.address().port, 7, 300);
        const iterator = rx[Symbol.asyncIterator]();
        const batch = (await iterator.next()).value as Batch;
        const kept = batch.payload(0);
        const sliced = batch.payload(0).slice();
        expect(checkDatagram(kept, 0, 7, 300)).toBe(-1);
        // next() releases the batch, then waits: nothing else arrives meanwhile.
        const waiting = iterator.next();
        await new Promise((r) => setTimeout(r, 20));
        if (poisonReleased) {
          expect({ kept: poisoned(kept), sliced: poisoned(sliced) }).toEqual({ kept: true, sliced: true });
        } else {
          expect(checkDatagram(kept, 0, 7, 300)).toBe(-1);
          expect(checkDatagram(sliced, 0, 7, 300)).toBe(-1);
        }
        await send(rx.address().port, 8, 300);
        const next = (await waiting).value as Batch;
        expect(checkDatagram(next.bytes, next.offset(0), 8, 300)).toBe(-1);
        await iterator.return!();
      });
    }

    it(`${backend}: onBatch, a sync handler's view is poisoned once it returns, an async one's once it settles`, async () => {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', backend, poisonReleased: true });
      const kept: Buffer[] = [];
      const checks: number[] = [];
      let settle: (() => void) | null = null;
      const done = rx.onBatch((batch) => {
        for (let i = 0; i < batch.length; i++) {
          const seq = batch.view.getUint32(batch.offset(i), true);
          checks.push(checkDatagram(batch.bytes, batch.offset(i), seq, batch.size(i)));
          kept.push(batch.payload(i));
        }
        // The second datagram's handler holds its batch until the test settles it.
        if (kept.length === 2) return new Promise<void>((resolve) => { settle = resolve; });
        return undefined;
      });
      await send(rx.address().port, 1, 64);
      await expect.poll(() => kept.length).toBe(1);
      await expect.poll(() => poisoned(kept[0])).toBe(true);
      await send(rx.address().port, 2, 64);
      await expect.poll(() => settle !== null).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      expect(checkDatagram(kept[1], 0, 2, 64)).toBe(-1);
      settle!();
      await expect.poll(() => poisoned(kept[1])).toBe(true);
      expect(checks).toEqual([-1, -1]);
      await rx.close();
      await done;
    });
  }

  it('UDP_RING_POISON=1 turns it on; a value that is not a boolean is refused, named', async () => {
    const script = `
      const { UdpReceiver, UdpSender } = await import(${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)});
      const rx = await UdpReceiver.open({ host: '127.0.0.1' });
      const tx = await UdpSender.open({ port: rx.address().port });
      tx.send(new Uint8Array([1, 2, 3, 4]));
      const it = rx[Symbol.asyncIterator]();
      const view = (await it.next()).value.payload(0);
      const waiting = it.next();
      await new Promise((r) => setTimeout(r, 20));
      console.log(Array.from(view).join(','));
      tx.close();
      await it.return();
    `;
    const run = (env: Record<string, string>) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
    const on = run({ UDP_RING_POISON: '1' });
    expect(on.status, on.stderr).toBe(0);
    expect(on.stdout.trim()).toBe('219,219,219,219');
    const off = run({ UDP_RING_POISON: '' });
    expect(off.status, off.stderr).toBe(0);
    expect(off.stdout.trim()).toBe('1,2,3,4');
    await expect(UdpReceiver.open({ host: '127.0.0.1', poisonReleased: 'yes' as never }))
      .rejects.toThrow(/options\.poisonReleased/);
  });
});
