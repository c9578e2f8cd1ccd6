// Shared by the test files: datagrams that can be checked byte for byte, and
// waiting on counters without timing assumptions.
import { spawn, type SpawnOptions } from 'node:child_process';
import { expect } from 'vitest';
import { UdpReceiver } from '../dist/index.js';

export { checkDatagram, fillDatagram } from './fixtures/pattern.mjs';

/** Size of datagram `seq` when sizes spread over [1, max]: deterministic, covers both ends. */
export function spreadSize(seq: number, max: number): number {
  if (seq % 1000 === 0) return max;
  if (seq % 1000 === 1) return 1;
  return 1 + ((seq * 2654435761) >>> 0) % max;
}

/** Polls `check` on the event loop until true; fails after `limitMs` (generous: for hangs, not timing). */
export async function waitUntil(check: () => boolean, limitMs = 30_000, what = 'condition'): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Blocks the event loop (a synchronous stall, as a slow serializer would). */
export function stall(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

export async function openLoopback(options: Record<string, unknown> = {}): Promise<UdpReceiver> {
  return UdpReceiver.open({ host: '127.0.0.1', port: 0, ...options });
}

export interface SpawnResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/**
 * spawnSync's result, without blocking the test process's event loop: a long
 * synchronous child (an npm install, a compile) would otherwise stall vitest's
 * worker past its 60 s RPC timeout on a busy machine.
 */
export function spawnAsync(file: string, args: string[], options: SpawnOptions & { timeout?: number } = {}): Promise<SpawnResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let error: Error | undefined;
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = options.timeout ? setTimeout(() => child.kill('SIGTERM'), options.timeout) : null;
    child.on('error', (e) => (error = e));
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ...(error ? { error } : {}) });
    });
  });
}

/** spawnAsync, but a child that could not start (no such file) is the error it was, not a status. */
export async function spawnOrThrow(file: string, args: string[], options: SpawnOptions & { timeout?: number } = {}): Promise<SpawnResult> {
  const result = await spawnAsync(file, args, options);
  if (result.error) throw result.error;
  return result;
}

/** fixtures/life-break-exit.mjs's report: the receiver closed, and the break came after 10 to 14 of the 1000 sent (batches of at most 5). */
export function expectBrokenMidStream(stdout: string): void {
  const report = JSON.parse(stdout);
  expect(report.closed).toBe(true);
  expect(report.received).toBeGreaterThanOrEqual(10);
  expect(report.received).toBeLessThan(15);
}
