// `udp-ring listen`, run as the real binary in a child process: JSON lines on
// a pipe, the live view under a pseudo-terminal (script from util-linux),
// dumps, top sources, and a clean end on Ctrl-C, SIGTERM, --count, --seconds.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { UdpSender } from '../../dist/index.js';
import { fillDatagram } from '../helpers.js';

const cli = fileURLToPath(new URL('../../dist/tools/cli/index.js', import.meta.url));

interface Running {
  child: ChildProcess;
  output: () => string;
  errors: () => string;
  /** Resolves with the first JSON line that satisfies `test`. */
  line: (test: (line: any) => boolean, what: string) => Promise<any>;
  /** Resolves when the raw output matches. */
  match: (pattern: RegExp) => Promise<RegExpExecArray>;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(command: string, args: string[], limitMs = 60_000): Running {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      for (const w of waiters) w();
      resolve({ code, signal });
    }));
  const until = <T>(find: () => T | undefined, what: string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) {
          waiters.delete(check);
          resolve(found);
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(check);
          reject(new Error(`exited before ${what}; stdout: ${stdout.slice(-2000)} stderr: ${stderr}`));
        }
      };
      waiters.add(check);
      check();
    });
  return {
    child,
    output: () => stdout,
    errors: () => stderr,
    exit,
    line: (test, what) =>
      until(() => stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find(test), what),
    match: (pattern) => until(() => pattern.exec(stdout) ?? undefined, String(pattern)),
  };
}

function jsonLines(text: string): any[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

async function sendSeq(port: number, count: number, size: number, host = '127.0.0.1'): Promise<UdpSender> {
  const tx = await UdpSender.open({ port, host });
  const data = new Uint8Array(size * count);
  for (let s = 0; s < count; s++) fillDatagram(data, s * size, s, size);
  // In chunks, so a slow receiver is not handed everything in one burst.
  for (let s = 0; s < count; s += 500) expect(tx.sendBatch(data.subarray(s * size), size, Math.min(500, count - s))).toBe(Math.min(500, count - s));
  return tx;
}

describe('udp-ring listen', () => {
  it('--help lists its options', async () => {
    const run = start(process.execPath, [cli, 'listen', '--help']);
    expect((await run.exit).code).toBe(0);
    for (const option of ['--port', '--host', '--json', '--dump', '--seconds', '--count', '--overflow', '--recv-buffer']) {
      expect(run.output()).toContain(option);
    }
  });

  it('writes JSON lines on a pipe and stops after --count, with every datagram accounted for', async () => {
    const count = 20_000;
    const run = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--count', String(count), '--seconds', '50']);
    const listening = await run.line((l) => l.type === 'listening', 'listening');
    expect(listening.address).toBe('127.0.0.1');
    const tx = await sendSeq(listening.port, count, 120);
    const from = tx.address().port;
    tx.close();
    const { code } = await run.exit;
    expect(code).toBe(0);
    const lines = jsonLines(run.output());
    const summary = lines.at(-1);
    expect(summary.type).toBe('summary');
    expect(summary.reason).toBe('count');
    expect(summary.packets + summary.kernelDrops + summary.ringDrops).toBe(count);
    expect(summary.packets).toBe(count);
    expect(summary.bytes).toBe(count * 120);
    expect(summary.topSources).toEqual([{ address: '127.0.0.1', port: from, count }]);
    for (const stats of lines.filter((l) => l.type === 'stats')) {
      for (const key of ['datagramsPerSecond', 'bytesPerSecond', 'meanBatchSize', 'ringUsed', 'ringHighWater', 'kernelDrops', 'ringDrops', 'discarded', 'truncated']) {
        expect(typeof stats[key]).toBe('number');
      }
    }
  });

  it('counts sources separately by address and port, and dumps the first payloads as hex', async () => {
    const run = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '::1', '--json', '--dump', '3', '--count', '700']);
    const { port } = await run.line((l) => l.type === 'listening', 'listening');
    const a = await sendSeq(port, 400, 16, '::1');
    const b = await sendSeq(port, 300, 33, '::1');
    const ports = [a.address().port, b.address().port];
    a.close();
    b.close();
    expect((await run.exit).code).toBe(0);
    const lines = jsonLines(run.output());
    const dumps = lines.filter((l) => l.type === 'dump');
    expect(dumps.map((d) => d.index)).toEqual([1, 2, 3]);
    dumps.forEach((d, seq) => {
      const expected = new Uint8Array(16);
      fillDatagram(expected, 0, seq, 16);
      expect(d.hex).toBe(Buffer.from(expected).toString('hex'));
      expect(d.from).toBe(`[::1]:${ports[0]}`);
      expect(d.size).toBe(16);
    });
    const summary = lines.at(-1);
    expect(summary.topSources).toEqual([
      { address: '::1', port: ports[0], count: 400 },
      { address: '::1', port: ports[1], count: 300 },
    ]);
  });

  it('ends on SIGTERM with a summary that adds up to what was sent', async () => {
    // A small ring that drops when full, and a burst as fast as the sender goes: drops may happen; they must be counted.
    const run = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--overflow', 'drop',
      '--ring-bytes', '262144', '--max-message-size', '512', '--batch-size', '64', '--recv-buffer', '65536', '--coalesce-ms', 'auto']);
    const { port } = await run.line((l) => l.type === 'listening', 'listening');
    const send = start(process.execPath, [cli, 'send', '--port', String(port), '--rate', '0', '--count', '100000', '--size', '200', '--json']);
    expect((await send.exit).code).toBe(0);
    const sent = jsonLines(send.output())[0];
    expect(sent.sent).toBe(100_000);
    // The counters settle once the queue is drained; wait for a stats line that accounts for everything.
    await run.line((l) => l.type === 'stats' && l.packets + l.kernelDrops + l.ringDrops === sent.sent, 'every datagram accounted for');
    run.child.kill('SIGTERM');
    const { code, signal } = await run.exit;
    expect(signal).toBe(null);
    expect(code).toBe(0);
    const summary = jsonLines(run.output()).at(-1);
    expect(summary.type).toBe('summary');
    expect(summary.reason).toBe('SIGTERM');
    expect(summary.packets + summary.kernelDrops + summary.ringDrops).toBe(sent.sent);
    // SIGTERM stops receiving but reads what the ring holds: nothing discarded, all handled.
    expect(summary.discarded).toBe(0);
    expect(summary.handled).toBe(summary.packets);
  });

  it('draws a live view on a terminal and ends on Ctrl-C with a summary', async () => {
    // script(1) gives the child a pseudo-terminal; a ^C typed into it reaches the child as SIGINT. script runs
    // the command through $SHELL -c, and dash stays as a parent that a ^C kills too (exit 130): exec replaces it.
    const run = start('script', ['-qfec', `exec ${process.execPath} ${cli} listen --port 0 --host 127.0.0.1 --dump 1 --seconds 50`, '/dev/null']);
    const [, port] = await run.match(/udp-ring listen 127\.0\.0\.1:(\d+)/);
    const tx = await sendSeq(Number(port), 3000, 48);
    const from = tx.address().port;
    tx.close();
    // Wait for a redraw that shows them all, then type Ctrl-C.
    await run.match(/total 3,000/);
    await run.match(new RegExp(`127\\.0\\.0\\.1:${from}\\s+3,000\\s+100\\.0 %`));
    run.child.stdin!.write('\x03');
    const { code } = await run.exit;
    expect(code).toBe(0);
    const screen = run.output();
    expect(screen).toContain('\x1b[J'); // redrawn in place, not scrolled
    for (const label of ['datagrams/s', 'bytes/s', 'mean batch', 'ring fill', 'high water', 'kernel drops', 'ring drops', 'discarded', 'truncated', 'top sources']) {
      expect(screen).toContain(label);
    }
    expect(screen).toMatch(/#1 from 127\.0\.0\.1:\d+, 48 bytes/);
    expect(screen).toMatch(/^00000000  00 00 00 00 /m);
    expect(screen).toContain('stopped: SIGINT');
    expect(screen).toMatch(/Summary: 3,000 datagrams .* 0 lost/);
    expect(screen).not.toContain('"type"');
  });

  it('exits quietly when the reader of its output goes away (EPIPE)', async () => {
    const run = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--seconds', '50']);
    await run.line((l) => l.type === 'listening', 'listening');
    run.child.stdout!.destroy();
    // The next stats line, within a second, meets the closed pipe.
    expect(await run.exit).toEqual({ code: 0, signal: null });
    expect(run.errors()).toBe('');
  });

  it('stops by itself after --seconds', async () => {
    const run = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--seconds', '1.5']);
    expect((await run.exit).code).toBe(0);
    const lines = jsonLines(run.output());
    expect(lines[0].type).toBe('listening');
    expect(lines.at(-1)).toMatchObject({ type: 'summary', reason: 'seconds', packets: 0 });
    expect(lines.filter((l) => l.type === 'stats').length).toBeGreaterThanOrEqual(1);
  });

  it('rejects a bad option with a message and exit code 1, and a port in use with EADDRINUSE', async () => {
    const bad = start(process.execPath, [cli, 'listen', '--port', '70000']);
    expect((await bad.exit).code).toBe(1);
    expect(bad.errors()).toContain('--port must be an integer from 0 to 65535');
    const negative = start(process.execPath, [cli, 'listen', '--coalesce-ms', '-1']);
    expect((await negative.exit).code).toBe(1);
    expect(negative.errors()).toContain('--coalesce-ms must be a number >= 0');
    const long = start(process.execPath, [cli, 'listen', '--port', '0', '--coalesce-ms', '5000']);
    expect((await long.exit).code).toBe(1);
    expect(long.errors()).toContain('options.coalesceMs');
    const word = start(process.execPath, [cli, 'listen', '--port', '0', '--coalesce-ms', 'soon']);
    expect((await word.exit).code).toBe(1);
    expect(word.errors()).toContain("--coalesce-ms must be a number >= 0, got 'soon'");
    const first = start(process.execPath, [cli, 'listen', '--port', '0', '--host', '127.0.0.1']);
    const { port } = await first.line((l) => l.type === 'listening', 'listening');
    const second = start(process.execPath, [cli, 'listen', '--port', String(port), '--host', '127.0.0.1']);
    expect((await second.exit).code).toBe(1);
    expect(second.errors()).toContain('EADDRINUSE');
    first.child.kill('SIGINT');
    expect((await first.exit).code).toBe(0);
  });
});
