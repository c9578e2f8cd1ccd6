// What the dgram backend reads around node:dgram: the kernel's line for its
// socket in /proc/net/udp{,6} (queue and drops), and the socket's libuv handle
// (to stop reading for overflow 'block').
import type * as dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from '../../core/backend.js';
import { writeAddress } from './address.js';

/** The kernel's own line for a bound socket in /proc/net/udp{,6}: its queue and drop count. */
export function procSocketLine(address: AddressInfo): { queuedBytes: number; drops: number } | null {
  // The file is read a page at a time while sockets open and close around
  // ours, so one read can miss our line or show it twice: read again before
  // giving up (a close counting its kernel queue depends on it).
  for (let attempt = 0; attempt < 3; attempt++) {
    const line = readSocketLine(address);
    if (line) return line;
  }
  return null;
}

function readSocketLine(address: AddressInfo): { queuedBytes: number; drops: number } | null {
  const bytes = new Uint8Array(16);
  const family = writeAddress(bytes, 0, address.address, address.family);
  let local = '';
  for (let word = 0; word < (family === 4 ? 1 : 4); word++) {
    // Each 32-bit word is printed in host order (little-endian here).
    for (let b = 3; b >= 0; b--) local += bytes[word * 4 + b].toString(16).padStart(2, '0');
  }
  local = `${local.toUpperCase()}:${address.port.toString(16).toUpperCase().padStart(4, '0')}`;
  let text: string;
  try {
    text = readFileSync(family === 4 ? '/proc/net/udp' : '/proc/net/udp6', 'utf8');
  } catch {
    return null;
  }
  let found: { queuedBytes: number; drops: number } | null = null;
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== local) continue;
    // Several sockets on one port (SO_REUSEPORT): which one is ours is unknown.
    if (found) return null;
    found = { queuedBytes: Number.parseInt(fields[4].split(':')[1], 16), drops: Number(fields[12]) };
  }
  return found;
}

export interface RecvHandle {
  recvStart(): number;
  recvStop(): number;
}

// Reaches the socket's libuv handle so overflow 'block' can stop reading and
// leave datagrams in the kernel queue, as the native thread does. node:dgram
// has no public pause; where the handle cannot be found 'block' drops instead.
export function recvHandle(socket: dgram.Socket): RecvHandle | null {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const handle = state ? (socket as unknown as Record<symbol, { handle?: Partial<RecvHandle> }>)[state]?.handle : undefined;
  return handle && typeof handle.recvStart === 'function' && typeof handle.recvStop === 'function'
    ? (handle as RecvHandle)
    : null;
}
