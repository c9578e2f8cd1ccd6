// A sender whose datagrams are refused says so. The kernel accepts a datagram
// sent to a port nothing listens on (sendBatch counts it), and the destination
// answers with ICMP port unreachable: stats().refused counts those, on both
// backends alike; `udp-ring send` says nothing is listening and exits 1.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UdpReceiver, UdpSender } from '../dist/index.js';
import { checkDatagram, fillDatagram, waitUntil } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/tools/cli/index.js', import.meta.url));
const backends = ['native', 'dgram'] as const;

/** A port that was just bound and closed again: nothing listens on it. */
async function deadPort(type: 'udp4' | 'udp6' = 'udp4'): Promise<number> {
  const rx = await UdpReceiver.open({ host: type === 'udp4' ? '127.0.0.1' : '::1' });
  const { port } = rx.address();
  await rx.close();
  return port;
}

function numbered(count: number, size: number): Uint8Array {
  const data = new Uint8Array(count * size);
  for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
  return data;
}

/** The sender's stats once the dgram backend's sends have all completed (the native sender's are final at once). */
async function settled(tx: UdpSender, sent: number, refused = sent) {
  await waitUntil(() => { const s = tx.stats(); return s.sent >= sent && s.refused + s.icmpErrors >= refused; }, 10_000, 'every send to complete and be refused');
  return tx.stats();
}

describe('UdpSender.stats(): sent and refused', () => {
  for (const type of ['udp4', 'udp6'] as const) {
    it(`${type}: to a port nothing listens on, every datagram is sent and refused, native and dgram alike`, async () => {
      const port = await deadPort(type);
      const results: Record<string, unknown> = {};
      for (const backend of backends) {
        const tx = await UdpSender.open({ port, type, backend });
        expect(tx.stats()).toEqual({ sent: 0, refused: 0, icmpErrors: 0, backend });
        // One, then a burst, then one sendBatch per timer turn.
        expect(tx.sendBatch(numbered(1, 64), 64)).toBe(1);
        expect(tx.sendBatch(numbered(1000, 64), 64)).toBe(1000);
        for (let k = 0; k < 4; k++) {
          expect(tx.sendBatch(numbered(5, 64), 64)).toBe(5);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
        const { backend: _, ...stats } = await settled(tx, 1021);
        tx.close();
        // Final after close, and unchanged by it.
        expect(tx.stats()).toEqual({ ...stats, backend });
        results[backend] = stats;
      }
      expect(results.native).toEqual({ sent: 1021, refused: 1021, icmpErrors: 0 });
      expect(results.dgram).toEqual(results.native);
    });
  }

  it('to a receiver that listens, nothing is refused; when it closes mid-run, exactly the rest is', async () => {
    for (const backend of backends) {
      const rx = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
      const tx = await UdpSender.open({ port: rx.address().port, backend });
      const data = numbered(200, 100);
      expect(tx.sendBatch(data, 100)).toBe(200);
      let received = 0;
      for await (const batch of rx) {
        for (let i = 0; i < batch.length; i++, received++) expect(checkDatagram(batch.bytes, batch.offset(i), received, 100)).toBe(-1);
        if (received === 200) break; // closes the receiver
      }
      expect(rx.stats().kernelDrops).toBe(0);
      // The dgram backend counts a send when its callback runs, which may be after the receiver has it.
      expect(await settled(tx, 200, 0)).toMatchObject({ sent: 200, refused: 0, icmpErrors: 0 });
      // Nothing listens now: these 300 are sent and refused.
      expect(tx.sendBatch(numbered(300, 100), 100)).toBe(300);
      expect(await settled(tx, 500, 300)).toEqual({ sent: 500, refused: 300, icmpErrors: 0, backend });
      tx.close();
    }
  });
});

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('errors of the send itself are still thrown', () => {
  it('a datagram too large for UDP throws EMSGSIZE from sendmmsg (reading the error queue leaves errno alone)', async () => {
    const tx = await UdpSender.open({ port: await deadPort(), backend: 'native' });
    expect(() => tx.sendBatch(new Uint8Array(70_000), 70_000)).toThrow(expect.objectContaining({ code: 'EMSGSIZE', syscall: 'sendmmsg' }));
    expect(tx.sendBatch(numbered(3, 100), 100)).toBe(3);
    expect(tx.stats()).toMatchObject({ sent: 3, refused: 3 });
    tx.close();
  });
});

describe('udp-ring send to a port nothing listens on', () => {
  it('says nothing is listening, counts the refusals, and exits 1 (text and --json)', async () => {
    const port = await deadPort();
    const text = await run(['send', '--port', String(port), '--count', '5000', '--rate', '0']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^sent 5,000 datagrams of 100 bytes .* to 127\\.0\\.0\\.1:${port} .*; 5,000 refused\\n$`));
    expect(text.stderr).toBe(`udp-ring: nothing is listening at 127.0.0.1:${port}: all 5,000 datagrams were refused (ICMP port unreachable)\n`);
    const json = await run(['send', '--port', String(port), '--count', '10', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ sent: 10, refused: 10, icmpErrors: 0 });
    expect(json.stderr).toContain('nothing is listening');
  });

  it('to a receiver, exits 0 with nothing refused', async () => {
    const rx = await UdpReceiver.open({ host: '127.0.0.1' });
    const result = await run(['send', '--port', String(rx.address().port), '--count', '100', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ sent: 100, refused: 0, icmpErrors: 0 });
    await rx.close();
  });
});
