// The ring layout is defined in native/ring.h, and TypeScript reads the
// control block's offsets from the addon; the datagram records the Batch reads
// are the core's format (lib/core/ring-format.ts), which the native backend
// checks against the addon as it loads. These tests fail if the sides could
// disagree: the exported offsets must describe fields of the widths TypeScript
// reads them at, the core's format must equal the addon's, computeLayout must
// match what native writes into the control block, and a datagram read raw
// through those offsets must match the Batch accessors.
import { describe, expect, it } from 'vitest';
import { nativeLayout, UdpReceiver, UdpSender } from '../../dist/index.js';
import { native } from '../../dist/backends/native/addon.js';
import { ringFormatMismatches } from '../../dist/backends/native/layout.js';
import * as format from '../../dist/core/ring-format.js';

const { control, descriptor } = nativeLayout;
const line = 128;

/** Fields as [name, offset, width]; sorted by offset, each must end where the next begins (or before). */
function expectPacked(fields: Array<[string, number, number]>, total: number): void {
  const sorted = [...fields].sort((a, b) => a[1] - b[1]);
  for (let k = 0; k < sorted.length; k++) {
    const [name, offset, width] = sorted[k];
    expect(offset % Math.min(width, 8), `${name} at ${offset} is aligned to ${width}`).toBe(0);
    const end = k + 1 < sorted.length ? sorted[k + 1][1] : total;
    expect(offset + width, `${name} (${width} bytes at ${offset}) ends before the next field`).toBeLessThanOrEqual(end);
  }
}

function power2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

describe('layout: native and TypeScript agree', () => {
  it('descriptor: 32 bytes, fields of the widths Batch reads them at, aligned', () => {
    expect(nativeLayout.descriptorSize).toBe(32);
    // The widths Batch uses: u32 offset and scope id, u16 size/wireSize/port, u8 family/flags, 16 address bytes.
    const fields: Array<[string, number, number]> = [
      ['offset', descriptor.offset, 4], ['size', descriptor.size, 2], ['port', descriptor.port, 2],
      ['family', descriptor.family, 1], ['flags', descriptor.flags, 1], ['wireSize', descriptor.wireSize, 2],
      ['scopeId', descriptor.scopeId, 4], ['address', descriptor.address, 16],
    ];
    expectPacked(fields, nativeLayout.descriptorSize);
    // Packed exactly: nothing unaccounted for inside the 32 bytes.
    expect(fields.reduce((sum, f) => sum + f[2], 0)).toBe(32);
    expect(new Set(fields.map((f) => f[1])).size).toBe(fields.length);
  });

  it('packet info: 24 bytes, fields of the widths Batch reads them at, not overlapping', () => {
    const p = nativeLayout.packetInfo;
    expect(nativeLayout.packetInfoSize).toBe(24);
    expectPacked([['destination', p.destination, 16], ['interfaceIndex', p.interfaceIndex, 4],
      ['destinationFamily', p.destinationFamily, 1], ['tos', p.tos, 1], ['flags', p.flags, 1]], nativeLayout.packetInfoSize);
    expect(power2(nativeLayout.packetInfoTos)).toBe(true);
  });

  it("the core's ring format (what Batch reads) is the addon's, and a record that moved is caught at load", () => {
    const d = nativeLayout.descriptor;
    const p = nativeLayout.packetInfo;
    expect(format.descriptor).toEqual({ size: nativeLayout.descriptorSize, offset: d.offset, bytes: d.size, wireSize: d.wireSize,
      port: d.port, family: d.family, flags: d.flags, scopeId: d.scopeId, address: d.address });
    expect(format.packetInfo).toEqual({ size: nativeLayout.packetInfoSize, destination: p.destination, interfaceIndex: p.interfaceIndex,
      destinationFamily: p.destinationFamily, tos: p.tos, flags: p.flags, flagTos: nativeLayout.packetInfoTos });
    expect([format.flagTruncated, format.timestampSize]).toEqual([nativeLayout.flagTruncated, nativeLayout.timestampSize]);
    expect(ringFormatMismatches(nativeLayout)).toEqual([]);
    // An addon built from another ring.h: the check names what moved.
    const moved = { ...nativeLayout, flagTruncated: 2, descriptor: { ...d, port: d.port + 2, wireSize: d.port } };
    expect(ringFormatMismatches(moved)).toEqual([
      `descriptor.wireSize: addon ${d.port}, core ${d.wireSize}`,
      `descriptor.port: addon ${d.port + 2}, core ${d.port}`,
      `flagTruncated: addon 2, core ${nativeLayout.flagTruncated}`,
    ]);
  });

  it('control block: aligned fields, whole cache lines, producer and consumer on separate lines', () => {
    const c = control;
    const wide: Array<keyof typeof c> = ['packets', 'bytes', 'batches', 'kernelDrops', 'ringDrops', 'truncated',
      'ringHighWater', 'wakeups', 'producerStalls', 'receiveCalls', 'directBatches', 'coalesced', 'discarded', 'threadWakeups', 'windows'];
    // Positions are 32 bits that wrap: JavaScript reads and writes them with no BigInt.
    const narrow: Array<keyof typeof c> = ['magic', 'version', 'descriptorSize', 'descriptorCount', 'descriptorsOffset',
      'payloadOffset', 'payloadCapacity', 'maxMessageSize', 'timestampsOffset', 'packetInfoOffset', 'descriptorTail', 'payloadTailOffset', 'descriptorHead',
      'consumerWaiting', 'producerWaiting'];
    expect(Object.keys(c).sort()).toEqual([...wide, ...narrow].sort());
    expectPacked([...wide.map((k) => [k, c[k], 8] as [string, number, number]),
      ...narrow.map((k) => [k, c[k], 4] as [string, number, number])], nativeLayout.controlBytes);
    expect(nativeLayout.controlBytes % line).toBe(0);
    const lineOf = (offset: number) => Math.floor(offset / line);
    // Written by different sides (or at different rates): each on a line of its own.
    const owners = [c.descriptorTail, c.descriptorHead, c.consumerWaiting, c.producerWaiting, c.packets].map(lineOf);
    expect(new Set(owners).size).toBe(owners.length);
    expect(lineOf(c.payloadTailOffset)).toBe(lineOf(c.descriptorTail));
    expect(nativeLayout.magic).toBe(0x52504455); // "UDPR" little-endian
    expect(power2(nativeLayout.payloadAlign) && nativeLayout.payloadAlign >= 8).toBe(true);
    expect(power2(nativeLayout.flagTruncated)).toBe(true);
    expect(nativeLayout.payloadReserve).toBeGreaterThanOrEqual(nativeLayout.payloadAlign);
  });

  it('computeLayout splits a ring into control, descriptors, timestamps and packet info (when kept) and payload without gaps', () => {
    const sizes = [4096, 19_208, 65_536, 100_000, 1 << 20, 3 * (1 << 20) + 12_345, 32 << 20, 2 ** 31];
    const kinds = [[false, false], [true, false], [false, true], [true, true]] as const;
    for (const [ringBytes, timestamps, packetInfo] of sizes.flatMap((n) => kinds.map(([t, p]) => [n, t, p] as const))) {
      const split = native.computeLayout(ringBytes, timestamps, packetInfo);
      // The smallest ring has no room for payload beside 64 descriptors, their timestamps and packet info.
      if (ringBytes === 4096 && packetInfo) {
        expect(split).toBeNull();
        continue;
      }
      expect(split, `layout of ${ringBytes}`).not.toBeNull();
      if (!split) continue;
      const { descriptorCount, descriptorsOffset, payloadOffset, payloadCapacity } = split;
      expect(descriptorsOffset).toBe(nativeLayout.controlBytes);
      const timestampBytes = timestamps ? descriptorCount * nativeLayout.timestampSize : 0;
      expect(split.timestampsOffset).toBe(timestamps ? descriptorsOffset + descriptorCount * nativeLayout.descriptorSize : 0);
      const packetInfoBytes = packetInfo ? descriptorCount * nativeLayout.packetInfoSize : 0;
      expect(split.packetInfoOffset).toBe(packetInfo ? descriptorsOffset + descriptorCount * nativeLayout.descriptorSize + timestampBytes : 0);
      expect(payloadOffset).toBe(descriptorsOffset + descriptorCount * nativeLayout.descriptorSize + timestampBytes + packetInfoBytes);
      expect(power2(descriptorCount) && descriptorCount >= 64).toBe(true);
      // One descriptor per bytesPerDescriptor ring bytes, rounded down to a power of two (64 at least).
      const wanted = Math.max(64, 2 ** Math.floor(Math.log2(ringBytes / nativeLayout.bytesPerDescriptor)));
      expect(descriptorCount).toBe(wanted);
      expect(payloadCapacity % nativeLayout.payloadAlign).toBe(0);
      expect(payloadOffset % nativeLayout.payloadAlign).toBe(0);
      expect(payloadOffset + payloadCapacity).toBeLessThanOrEqual(ringBytes);
      expect(ringBytes - (payloadOffset + payloadCapacity)).toBeLessThan(nativeLayout.payloadAlign);
    }
    expect(native.computeLayout(nativeLayout.controlBytes + 64 * 32)).toBeNull();
    expect(native.computeLayout(2 ** 31 + 8)).toBeNull();
  });

  it('the control block native writes at open matches computeLayout and the options', async () => {
    const maxMessageSize = 1500;
    const rx = await UdpReceiver.open({ host: '127.0.0.1', port: 0, maxMessageSize, ringBytes: 3 << 20 });
    const tx = await UdpSender.open({ port: rx.address().port });
    tx.send(new Uint8Array([1, 2, 3, 4, 5]));
    for await (const batch of rx) {
      const ring = batch.bytes.buffer;
      expect(batch.bytes.byteOffset).toBe(0);
      expect(ring.byteLength).toBe(rx.stats().ringBytes);
      const view = new DataView(ring);
      const u32 = (offset: number) => view.getUint32(offset, true);
      const split = native.computeLayout(ring.byteLength);
      expect({
        magic: u32(control.magic), version: u32(control.version), descriptorSize: u32(control.descriptorSize),
        descriptorCount: u32(control.descriptorCount), descriptorsOffset: u32(control.descriptorsOffset),
        payloadOffset: u32(control.payloadOffset), payloadCapacity: u32(control.payloadCapacity),
        maxMessageSize: u32(control.maxMessageSize), timestampsOffset: u32(control.timestampsOffset),
        packetInfoOffset: u32(control.packetInfoOffset),
      }).toEqual({
        magic: nativeLayout.magic, version: nativeLayout.version, descriptorSize: nativeLayout.descriptorSize,
        ...split, maxMessageSize,
      });
      // Counters and positions sit where stats() and the iterator look for them.
      expect(view.getUint32(control.descriptorTail, true)).toBe(1);
      expect(view.getUint32(control.payloadTailOffset, true)).toBe(8);
      expect(Number(view.getBigUint64(control.packets, true))).toBe(rx.stats().packets);
      expect(Number(view.getBigUint64(control.bytes, true))).toBe(5);
      expect(view.getUint32(control.descriptorHead, true)).toBe(0);
      break;
    }
    tx.close();
  });

  /** Opens a sender bound to a fixed local port, trying a few in case one is taken. */
  async function senderFromKnownPort(port: number, host: string, localAddress: string): Promise<[UdpSender, number]> {
    const first = 20_000 + (process.pid % 20_000);
    for (let localPort = first; localPort < first + 50; localPort++) {
      try {
        return [await UdpSender.open({ port, host, localAddress, localPort }), localPort];
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      }
    }
    throw new Error('no free local port');
  }

  for (const family of [4, 6] as const) {
    it(`a datagram from a known IPv${family} port reads the same raw and through Batch`, async () => {
      const host = family === 4 ? '127.0.0.1' : '::1';
      const address = family === 4 ? [127, 0, 0, 1, ...new Array(12).fill(0)] : [...new Array(15).fill(0), 1];
      const maxMessageSize = 64;
      const rx = await UdpReceiver.open({ host, port: 0, maxMessageSize });
      const [tx, localPort] = await senderFromKnownPort(rx.address().port, host, host);
      expect(tx.address().port).toBe(localPort);
      const whole = Uint8Array.from({ length: 37 }, (_, k) => (k * 11 + 3) & 0xff);
      const long = Uint8Array.from({ length: 300 }, (_, k) => (k * 5 + 1) & 0xff);
      tx.send(whole);
      tx.send(long);
      const seen: unknown[] = [];
      let total = 0;
      for await (const batch of rx) {
        const view = new DataView(batch.bytes.buffer);
        const split = native.computeLayout(batch.bytes.buffer.byteLength)!;
        for (let i = 0; i < batch.length; i++, total++) {
          // Datagram `total` is in descriptor slot `total` (the ring has not wrapped yet).
          const at = split.descriptorsOffset + total * nativeLayout.descriptorSize;
          const raw = {
            offset: view.getUint32(at + descriptor.offset, true),
            size: view.getUint16(at + descriptor.size, true),
            wireSize: view.getUint16(at + descriptor.wireSize, true),
            scopeId: view.getUint32(at + descriptor.scopeId, true),
            port: view.getUint16(at + descriptor.port, true),
            family: view.getUint8(at + descriptor.family),
            truncated: (view.getUint8(at + descriptor.flags) & nativeLayout.flagTruncated) !== 0,
            address: [...new Uint8Array(batch.bytes.buffer, at + descriptor.address, 16)],
          };
          const accessors = {
            offset: batch.offset(i), size: batch.size(i), wireSize: batch.wireSize(i), scopeId: batch.scopeId(i), port: batch.port(i),
            family: batch.family(i), truncated: batch.truncated(i),
            address: [...batch.bytes.subarray(batch.addressOffset(i), batch.addressOffset(i) + 16)],
          };
          expect(accessors).toEqual(raw);
          seen.push({ ...raw, payload: [...batch.bytes.subarray(raw.offset, raw.offset + raw.size)], text: batch.address(i) });
        }
        if (total >= 2) break;
      }
      tx.close();
      const payloadOffset = native.computeLayout(rx.stats().ringBytes)!.payloadOffset;
      expect(seen).toEqual([
        { offset: payloadOffset, size: 37, wireSize: 37, scopeId: 0, port: localPort, family, truncated: false, address,
          payload: [...whole], text: host },
        { offset: payloadOffset + 40, size: 64, wireSize: 300, scopeId: 0, port: localPort, family, truncated: true, address,
          payload: [...long.subarray(0, 64)], text: host },
      ]);
    });
  }
});
