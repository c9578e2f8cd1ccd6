// `udp-ring send`, the load generator, run as the real binary; a receiver in
// this process checks what arrived against what it says it sent.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { openLoopback } from './helpers.js';

const cli = fileURLToPath(new URL('../dist/tools/cli/index.js', import.meta.url));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('udp-ring send', () => {
  it('sends --count datagrams of --size bytes, numbered, and reports it as JSON', async () => {
    const rx = await openLoopback();
    const { port } = rx.address();
    const result = await run(['send', '--port', String(port), '--count', '5000', '--size', '300', '--rate', '0', '--json']);
    expect(result.code).toBe(0);
    const sent = JSON.parse(result.stdout);
    expect(sent).toMatchObject({ type: 'sent', target: `127.0.0.1:${port}`, sent: 5000, bytes: 1_500_000, size: 300, reason: 'count' });
    let received = 0;
    let last = -1;
    for await (const batch of rx) {
      for (let i = 0; i < batch.length; i++, received++) {
        expect(batch.size(i)).toBe(300);
        // The first 4 bytes are the sequence number, little-endian: rising (by one unless the kernel dropped some).
        const seq = batch.view.getUint32(batch.offset(i), true);
        expect(seq).toBeGreaterThan(last);
        last = seq;
      }
      if (received + rx.stats().kernelDrops >= 5000) break;
    }
    expect(received + rx.stats().kernelDrops).toBe(5000);
    if (rx.stats().kernelDrops === 0) expect(last).toBe(4999);
  });

  it('paces on --rate: N datagrams at R/s take at least (N-1)/R seconds', async () => {
    const rx = await openLoopback();
    const result = await run(['send', '--port', String(rx.address().port), '--count', '3000', '--rate', '5000', '--json']);
    const sent = JSON.parse(result.stdout);
    expect(sent.sent).toBe(3000);
    expect(sent.seconds).toBeGreaterThanOrEqual(2999 / 5000);
    await rx.close();
  });

  it('stops after --seconds, never ahead of the schedule', async () => {
    const rx = await openLoopback();
    const result = await run(['send', '--port', String(rx.address().port), '--seconds', '0.5', '--rate', '2000', '--json']);
    const sent = JSON.parse(result.stdout);
    expect(sent.reason).toBe('seconds');
    // The schedule allows floor(elapsed * rate) + 1 datagrams by any moment before the deadline.
    expect(sent.sent).toBeLessThanOrEqual(1001);
    expect(sent.sent).toBeGreaterThan(0);
    expect(sent.seconds).toBeGreaterThanOrEqual(0.5);
    await rx.close();
  });

  it('ends on SIGINT and says what it sent', async () => {
    const rx = await openLoopback();
    const child = spawn(process.execPath, [cli, 'send', '--port', String(rx.address().port), '--rate', '1000', '--json']);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    // Interrupt once datagrams are arriving, so the run is surely under way. The receiver stays
    // open until the sender is done: datagrams refused by a closed port would make it exit 1.
    const { done } = await rx[Symbol.asyncIterator]().next();
    expect(done).toBe(false);
    child.kill('SIGINT');
    const code = await exited;
    await rx.close();
    expect(code).toBe(0);
    const sent = JSON.parse(stdout);
    expect(sent.reason).toBe('SIGINT');
    expect(sent.sent).toBeGreaterThan(0);
    expect(sent.refused).toBe(0);
  });

  it('prints a line for people without --json', async () => {
    const rx = await openLoopback();
    const { port } = rx.address();
    const result = await run(['send', '--port', String(port), '--count', '10', '--size', '64']);
    expect(result.stdout).toMatch(new RegExp(`^sent 10 datagrams of 64 bytes \\(640 B\\) to 127\\.0\\.0\\.1:${port} in \\d+\\.\\d+ s`));
    await rx.close();
  });

  it('rejects bad options with the option named', async () => {
    const tooLarge = await run(['send', '--port', '9', '--size', '70000']);
    expect(tooLarge.code).toBe(1);
    expect(tooLarge.stderr).toContain('--size must be an integer from 0 to 65507');
    const noPort = await run(['send']);
    expect(noPort.code).toBe(1);
    expect(noPort.stderr).toContain("required option '-p, --port <port>' not specified");
  });
});

describe('udp-ring (the binary)', () => {
  it('is the package bin, starts with a shebang, and has --help and --version', async () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.bin).toEqual({ 'udp-ring': 'dist/tools/cli/index.js' });
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['doctor', 'listen', 'send']) expect(help.stdout).toContain(command);
    const version = await run(['--version']);
    expect(version.stdout.trim()).toBe(pkg.version);
    const sendHelp = await run(['send', '--help']);
    for (const option of ['--port', '--host', '--rate', '--count', '--size', '--json']) expect(sendHelp.stdout).toContain(option);
  });
});
