// Bad options are refused before anything native runs, as Node's own APIs
// refuse them: a wrong type is a TypeError (ERR_INVALID_ARG_TYPE), a wrong
// range a RangeError (ERR_OUT_OF_RANGE), each naming the option and the value.
// A refused open leaves no fd behind.
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../../dist/index.js';

const openFds = () => readdirSync('/proc/self/fd').length;

interface Refusal {
  name: string;
  code: string;
  message: string;
}

async function refusal(open: () => Promise<unknown>): Promise<Refusal> {
  let opened: unknown;
  try {
    opened = await open();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { name: e.name, code: String(e.code), message: e.message };
  }
  await (opened as { close(): unknown }).close();
  throw new Error('open() was expected to be refused, and it succeeded');
}

const receiver = (options: unknown) => () => UdpReceiver.open(options as Parameters<typeof UdpReceiver.open>[0]);
const sender = (options: unknown) => () => UdpSender.open(options as Parameters<typeof UdpSender.open>[0]);

// [option, bad value, how the value is shown in the message]
const wrongTypes: Array<[string, unknown, string]> = [
  ['port', '9000', "type string ('9000')"],
  ['port', null, 'null'],
  ['host', 127001, 'type number (127001)'],
  ['ringBytes', 32n * 1024n * 1024n, 'type bigint'],
  ['ringBytes', '32M', "type string ('32M')"],
  ['maxMessageSize', true, 'type boolean (true)'],
  ['batchSize', [64], 'an instance of Array'],
  ['maxBatchLength', {}, 'an instance of Object'],
  ['recvBufferSize', '1M', "type string ('1M')"],
  ['reuseAddr', 1, 'type number (1)'],
  ['reusePort', 'yes', "type string ('yes')"],
  ['ipv6Only', 0, 'type number (0)'],
  ['signal', { aborted: false }, 'an instance of Object'],
  ['signal', new AbortController(), 'an instance of AbortController'],
];

// [option, bad value, valid range as the message states it]
const wrongRanges: Array<[string, number, string]> = [
  ['port', -1, '>= 0 and <= 65535'],
  ['port', 65536, '>= 0 and <= 65535'],
  ['port', 80.5, '>= 0 and <= 65535'],
  ['port', Number.NaN, '>= 0 and <= 65535'],
  ['maxMessageSize', 0, '>= 1 and <= 65535'],
  ['maxMessageSize', 65536, '>= 1 and <= 65535'],
  ['batchSize', 0, '>= 1 and <= 1024'],
  ['batchSize', 1025, '>= 1 and <= 1024'],
  ['batchSize', 1.5, '>= 1 and <= 1024'],
  ['maxBatchLength', 0, '>= 1'],
  ['maxBatchLength', Number.POSITIVE_INFINITY, '>= 1'],
  ['recvBufferSize', -1, '>= 0'],
  ['recvBufferSize', 2 ** 31, '>= 0'],
  ['ringBytes', 0, '>= 1'],
  ['ringBytes', 2 ** 53, '>= 1'],
];

let fdsBefore = 0;
beforeAll(() => {
  fdsBefore = openFds();
});
afterAll(() => {
  // Every refused open in this file, native or not, gave back what it took.
  expect(openFds()).toBe(fdsBefore);
});

describe('UdpReceiver.open: wrong types', () => {
  it.each(wrongTypes)('options.%s = %o is a TypeError naming the option and the value', async (option, value, shown) => {
    const before = openFds();
    const r = await refusal(receiver({ host: '127.0.0.1', [option]: value }));
    expect(r.name).toBe('TypeError');
    expect(r.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(r.message).toContain(`"options.${option}"`);
    expect(r.message).toContain(`Received ${shown}`);
    expect(openFds()).toBe(before);
  });

  it.each([null, 42, 'port=0', true])('options = %o is a TypeError', async (value) => {
    const r = await refusal(receiver(value));
    expect(r.name).toBe('TypeError');
    expect(r.code).toBe('ERR_INVALID_ARG_TYPE');
    expect(r.message).toContain('"options"');
  });

  it('no options at all, and undefined for each option, are the defaults', async () => {
    const rx = await UdpReceiver.open();
    const stats = rx.stats();
    expect(rx.address().family).toBe('IPv4');
    expect(rx.address().address).toBe('0.0.0.0');
    expect(stats.batchSize).toBe(64);
    expect(stats.maxMessageSize).toBe(65535);
    expect(stats.ringBytes).toBe(32 * 1024 * 1024);
    expect(stats.overflow).toBe('block');
    await rx.close();
    const explicit = await UdpReceiver.open({
      host: '127.0.0.1', port: undefined, ringBytes: undefined, batchSize: undefined, signal: undefined, reuseAddr: undefined,
    });
    expect(explicit.stats().batchSize).toBe(64);
    await explicit.close();
  });
});

describe('UdpReceiver.open: wrong ranges', () => {
  it.each(wrongRanges)('options.%s = %d is a RangeError naming the option and its range', async (option, value, range) => {
    const before = openFds();
    const r = await refusal(receiver({ host: '127.0.0.1', [option]: value }));
    expect(r.name).toBe('RangeError');
    expect(r.code).toBe('ERR_OUT_OF_RANGE');
    expect(r.message).toContain(`"options.${option}"`);
    expect(r.message).toContain(range);
    expect(r.message).toContain(`Received ${String(value)}`);
    expect(openFds()).toBe(before);
  });

  it.each([
    ['type', 'udp5'],
    ['type', 4],
    ['overflow', 'wait'],
    ['overflow', 1],
    ['host', ''],
  ])('options.%s = %o is refused as an invalid value', async (option, value) => {
    const r = await refusal(receiver({ [option]: value }));
    expect(r.name).toBe('TypeError');
    expect(r.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(r.message).toContain(`"options.${option}"`);
  });
});

describe('UdpReceiver.open: options that do not fit together', () => {
  it('an unknown option key is refused by name, with the known ones listed', async () => {
    for (const key of ['prot', 'ringSize', 'recvBufSize', 'timeout']) {
      const r = await refusal(receiver({ host: '127.0.0.1', [key]: 1 }));
      expect(r.name).toBe('TypeError');
      expect(r.code).toBe('ERR_INVALID_ARG_VALUE');
      expect(r.message).toContain(`"options.${key}"`);
      expect(r.message).toContain('ringBytes');
    }
  });

  it('a ring too small for one landing batch is refused with the minimum it needs, and that minimum works', async () => {
    for (const [batchSize, maxMessageSize] of [[64, 65535], [1024, 1500], [1, 1]]) {
      const r = await refusal(receiver({ host: '127.0.0.1', ringBytes: 1, batchSize, maxMessageSize }));
      expect(r.name).toBe('RangeError');
      expect(r.code).toBe('ERR_OUT_OF_RANGE');
      expect(r.message).toContain('"options.ringBytes"');
      const minimum = Number(/at least (\d+)/.exec(r.message)?.[1]);
      expect(minimum).toBeGreaterThan(1);
      // The stated minimum is the real one: one byte less is refused, the minimum opens and receives.
      expect(minimum).toBeGreaterThanOrEqual(batchSize * maxMessageSize);
      const below = await refusal(receiver({ host: '127.0.0.1', ringBytes: minimum - 1, batchSize, maxMessageSize }));
      expect(below.message).toContain(`at least ${minimum}`);
      const rx = await UdpReceiver.open({ host: '127.0.0.1', ringBytes: minimum, batchSize, maxMessageSize });
      const tx = await UdpSender.open({ port: rx.address().port });
      try {
        expect(rx.stats().ringBytes).toBeGreaterThanOrEqual(minimum);
        const largest = Math.min(maxMessageSize, 65507); // the largest IPv4 UDP payload
        tx.send(new Uint8Array(largest).fill(7));
        for await (const batch of rx) {
          expect(batch.length).toBe(1);
          expect(batch.size(0)).toBe(largest);
          break;
        }
      } finally {
        tx.close();
        await rx.close();
      }
    }
  });

  it('host and type must be the same family', async () => {
    const v6on4 = await refusal(receiver({ host: '::1', type: 'udp4' }));
    expect(v6on4.name).toBe('TypeError');
    expect(v6on4.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(v6on4.message).toContain('"options.host"');
    expect(v6on4.message).toContain("'::1'");
    const v4on6 = await refusal(receiver({ host: '127.0.0.1', type: 'udp6' }));
    expect(v4on6.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(v4on6.message).toContain("'127.0.0.1'");
    // Without a type, the host's family decides.
    const rx = await UdpReceiver.open({ host: '::1' });
    expect(rx.address()).toMatchObject({ address: '::1', family: 'IPv6' });
    await rx.close();
  });

  it('ipv6Only needs type udp6', async () => {
    const r = await refusal(receiver({ host: '127.0.0.1', ipv6Only: true }));
    expect(r.name).toBe('TypeError');
    expect(r.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(r.message).toContain('"options.ipv6Only"');
    expect(r.message).toContain('udp6');
    const implicit = await refusal(receiver({ ipv6Only: true }));
    expect(implicit.message).toContain('"options.ipv6Only"');
    const rx = await UdpReceiver.open({ type: 'udp6', host: '::1', ipv6Only: true });
    expect(rx.address().family).toBe('IPv6');
    await rx.close();
  });
});

describe('UdpSender.open: bad options', () => {
  it('port is required, a number, from 1 to 65535', async () => {
    const missing = await refusal(sender({}));
    expect(missing).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(missing.message).toContain('"options.port"');
    expect(missing.message).toContain('Received undefined');
    const text = await refusal(sender({ port: '9' }));
    expect(text).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    expect(text.message).toContain("Received type string ('9')");
    for (const port of [0, -1, 65536, 1.5]) {
      const r = await refusal(sender({ port }));
      expect(r).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(r.message).toContain('"options.port"');
      expect(r.message).toContain(`Received ${port}`);
    }
  });

  it.each([
    ['host', 1, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['type', 'udp5', 'TypeError', 'ERR_INVALID_ARG_VALUE'],
    ['sendBufferSize', '4M', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['sendBufferSize', -1, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['localAddress', 1, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['localPort', '1', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['localPort', 65536, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ])('options.%s = %o is a %s (%s) naming it', async (option, value, name, code) => {
    const r = await refusal(sender({ port: 9, [option]: value }));
    expect(r.name).toBe(name);
    expect(r.code).toBe(code);
    expect(r.message).toContain(`"options.${option}"`);
  });

  it('options must be an object, with known keys only', async () => {
    for (const value of [undefined, null, 9]) {
      const r = await refusal(sender(value));
      expect(r).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(r.message).toContain('"options"');
    }
    const unknown = await refusal(sender({ port: 9, hots: '127.0.0.1' }));
    expect(unknown.name).toBe('TypeError');
    expect(unknown.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(unknown.message).toContain('"options.hots"');
  });

  it('host and type must be the same family', async () => {
    const r = await refusal(sender({ port: 9, host: '::1', type: 'udp4' }));
    expect(r.name).toBe('TypeError');
    expect(r.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(r.message).toContain('"options.host"');
    const local = await refusal(sender({ port: 9, host: '127.0.0.1', localAddress: '::1' }));
    expect(local.name).toBe('TypeError');
    expect(local.code).toBe('ERR_INVALID_ARG_VALUE');
    expect(local.message).toContain('"options.localAddress"');
  });

  it('send() checks its arguments', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const tx = await UdpSender.open({ port: rx.address().port });
    expect(() => tx.sendBatch('abc' as unknown as Uint8Array, 1)).toThrow(TypeError);
    expect(() => tx.sendBatch(new Uint8Array(4), [1, 1] as unknown as Uint32Array)).toThrow(TypeError);
    // A size table that runs past the data is refused, not read out of bounds.
    expect(() => tx.sendBatch(new Uint8Array(4), new Uint32Array([3, 3]))).toThrow();
    tx.close();
    await rx.close();
  });
});
