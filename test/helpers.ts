// Shared by the test files: datagrams that can be checked byte for byte, and
// waiting on counters without timing assumptions.
import { UdpReceiver } from '../dist/index.js';

/**
 * Datagram `seq` of `size` bytes: the first 4 bytes (when they fit) are the
 * sequence number, little-endian; every other byte is a function of seq and
 * its position, so any misplaced or overwritten byte is caught.
 */
export function fillDatagram(target: Uint8Array, at: number, seq: number, size: number): void {
  for (let k = 0; k < size; k++) target[at + k] = (seq * 31 + k * 7 + 13) & 0xff;
  if (size >= 4) {
    target[at] = seq & 0xff;
    target[at + 1] = (seq >>> 8) & 0xff;
    target[at + 2] = (seq >>> 16) & 0xff;
    target[at + 3] = (seq >>> 24) & 0xff;
  }
}

/** Returns -1 when bytes [at, at+size) are exactly datagram `seq`, else the first bad index. */
export function checkDatagram(bytes: Uint8Array, at: number, seq: number, size: number): number {
  if (size >= 4) {
    if (bytes[at] !== (seq & 0xff) || bytes[at + 1] !== ((seq >>> 8) & 0xff) ||
        bytes[at + 2] !== ((seq >>> 16) & 0xff) || bytes[at + 3] !== ((seq >>> 24) & 0xff)) return 0;
  }
  for (let k = size >= 4 ? 4 : 0; k < size; k++) {
    if (bytes[at + k] !== ((seq * 31 + k * 7 + 13) & 0xff)) return k;
  }
  return -1;
}

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
