// File descriptors handed to bind({ fd }) or held by node:dgram: what kind they are, and where
// node:dgram keeps its own.
import type * as NodeDgram from 'node:dgram';
import { fstatSync, readFileSync, type Stats } from 'node:fs';
import { isatty } from 'node:tty';

// libuv's uv_guess_handle, as far as bind({ fd }) needs it: a socket is taken as UDP here and
// the native open refuses a stream socket ('TCP').
export function handleType(fd: number): string {
  let stats: Stats;
  try {
    stats = fstatSync(fd);
  } catch {
    return 'UNKNOWN';
  }
  if (stats.isSocket()) return 'UDP';
  if (stats.isFile()) return 'FILE';
  if (stats.isFIFO()) return 'PIPE';
  if (stats.isCharacterDevice()) return isatty(fd) ? 'TTY' : 'FILE';
  return 'UNKNOWN';
}

// A stream socket that libuv calls a pipe (AF_UNIX): its inode is listed in /proc/net/unix.
export function unixSocket(fd: number): boolean {
  try {
    const inode = String(fstatSync(fd).ino);
    return readFileSync('/proc/net/unix', 'utf8').split('\n').some((line) => line.trim().split(/\s+/)[6] === inode);
  } catch {
    return false;
  }
}

// The fd of a node:dgram socket, without the deprecated _handle getter (DEP0112): node:dgram keeps
// its handle in a symbol-keyed state object. 0 when not found (the socket then stays on the loop).
export function dgramFd(socket: NodeDgram.Socket): number {
  for (const key of Object.getOwnPropertySymbols(socket)) {
    const state = (socket as unknown as Record<symbol, { handle?: { fd?: unknown } } | undefined>)[key];
    const fd = state && typeof state === 'object' ? state.handle?.fd : undefined;
    if (typeof fd === 'number') return fd;
  }
  return 0;
}
