// Socket options and multicast membership on a facade socket, wherever it receives: node:dgram's
// socket on the event loop, the native receiver's socket (setsockopt through the addon), or the
// dgram backend's node:dgram socket. Errors as node:dgram's.
import type * as NodeDgram from 'node:dgram';
import { isIP } from 'node:net';
import { systemError } from '../../core/errors.js';
import type { UdpReceiver } from '../../core/receiver.js';
import type { DgramReceiver } from '../../backends/dgram/receiver.js';
import { socketOptionNames } from '../../backends/native/ring-reader.js';
import * as sockopt from '../../backends/native/sockopt.js';
import { argType, bufferSizeError, codeError } from './errors.js';
import type { SocketHost } from './host.js';
import { State } from './types.js';

export class SocketOptionCalls {
  readonly #host: SocketHost;

  constructor(host: SocketHost) {
    this.#host = host;
  }

  get #inner(): NodeDgram.Socket | null {
    return this.#host.inner();
  }

  #bound(syscall: string): UdpReceiver {
    return this.#host.bound(syscall);
  }

  #fallback(): DgramReceiver | null {
    return this.#host.fallback();
  }

  #family(): 4 | 6 {
    return this.#host.family;
  }

  #option(syscall: string, apply: (setter: sockopt.OptionSetter, names: sockopt.SocketOptionNames) => void,
    viaDgram: (socket: NodeDgram.Socket) => void): void {
    const receiver = this.#bound(syscall);
    const fallback = this.#fallback();
    if (fallback) viaDgram(fallback._socket);
    else apply(receiver._socketOptions(), socketOptionNames());
  }

  setRecvBufferSize(size: number): void {
    if (this.#inner) return this.#inner.setRecvBufferSize(size);
    this.#bufferSize('recv', size);
  }

  setSendBufferSize(size: number): void {
    if (this.#inner) return this.#inner.setSendBufferSize(size);
    this.#bufferSize('send', size);
  }

  getRecvBufferSize(): number {
    if (this.#inner) return this.#inner.getRecvBufferSize();
    return this.#bufferSize('recv');
  }

  getSendBufferSize(): number {
    if (this.#inner) return this.#inner.getSendBufferSize();
    return this.#bufferSize('send');
  }

  #bufferSize(which: 'recv' | 'send', size = 0): number {
    // As node:dgram: a uint32 or ERR_SOCKET_BAD_BUFFER_SIZE; 0 reads the size.
    if (size >>> 0 !== size) throw codeError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
    const syscall = `uv_${which}_buffer_size`;
    const receiver = this.#host.receiver();
    if (this.#host.state() === State.Closed || !receiver) throw bufferSizeError(9, syscall); // EBADF
    // libuv passes an int: above INT_MAX is EINVAL.
    if (size > 0x7fffffff) throw bufferSizeError(22, syscall);
    const fallback = this.#fallback();
    if (fallback) {
      const socket = fallback._socket;
      if (size !== 0) which === 'recv' ? socket.setRecvBufferSize(size) : socket.setSendBufferSize(size);
      return which === 'recv' ? socket.getRecvBufferSize() : socket.getSendBufferSize();
    }
    const names = socketOptionNames();
    const setter = receiver._socketOptions();
    const name = which === 'recv' ? names.SO_RCVBUF : names.SO_SNDBUF;
    try {
      if (size !== 0) setter.setOption(names.SOL_SOCKET, name, size);
      return setter.getOption(names.SOL_SOCKET, name);
    } catch (cause) {
      const errno = (cause as { errno?: number }).errno;
      throw bufferSizeError(typeof errno === 'number' ? Math.abs(errno) : 22, syscall);
    }
  }

  setBroadcast(flag: boolean): void {
    if (this.#inner) return this.#inner.setBroadcast(flag);
    this.#option('setBroadcast', (s, n) => sockopt.setBroadcast(s, n, !!flag), (d) => d.setBroadcast(flag));
  }

  setTTL(ttl: number): number {
    if (this.#inner) return this.#inner.setTTL(ttl);
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setTTL', (s, n) => sockopt.setTTL(s, n, this.#family(), ttl), (d) => d.setTTL(ttl));
    return ttl;
  }

  setMulticastTTL(ttl: number): number {
    if (this.#inner) return this.#inner.setMulticastTTL(ttl);
    if (typeof ttl !== 'number') throw argType('ttl', 'of type number', ttl);
    this.#option('setMulticastTTL', (s, n) => sockopt.setMulticastTTL(s, n, this.#family(), ttl), (d) => d.setMulticastTTL(ttl));
    return ttl;
  }

  setMulticastLoopback(flag: boolean): boolean {
    if (this.#inner) return this.#inner.setMulticastLoopback(flag);
    this.#option('setMulticastLoopback', (s, n) => sockopt.setMulticastLoopback(s, n, this.#family(), !!flag),
      (d) => d.setMulticastLoopback(flag));
    return flag;
  }

  setMulticastInterface(iface: string): void {
    if (this.#inner) return this.#inner.setMulticastInterface(iface);
    if (typeof iface !== 'string') throw argType('interfaceAddress', 'of type string', iface);
    // libuv parses the address first: one that is neither IPv4 nor IPv6 (scope aside) is EINVAL.
    if (isIP(iface) === 0 && isIP(iface.split('%')[0]) !== 6) {
      this.#bound('setMulticastInterface');
      throw systemError({ errno: 22, syscall: 'setMulticastInterface' });
    }
    this.#option('setMulticastInterface', (s, n) => sockopt.setMulticastInterface(s, n, this.#family(), iface),
      (d) => d.setMulticastInterface(iface));
  }

  addMembership(group: string, iface?: string): void {
    if (this.#inner) return this.#inner.addMembership(group, iface);
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('addMembership').addMembership(group, iface);
  }

  dropMembership(group: string, iface?: string): void {
    if (this.#inner) return this.#inner.dropMembership(group, iface);
    if (typeof group !== 'string') throw argType('multicastAddress', 'of type string', group);
    this.#bound('dropMembership').dropMembership(group, iface);
  }

  addSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (this.#inner) return this.#inner.addSourceSpecificMembership(source, group, iface);
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('addSourceSpecificMembership').addSourceSpecificMembership(source, group, iface);
  }

  dropSourceSpecificMembership(source: string, group: string, iface?: string): void {
    if (this.#inner) return this.#inner.dropSourceSpecificMembership(source, group, iface);
    if (typeof source !== 'string') throw argType('sourceAddress', 'of type string', source);
    if (typeof group !== 'string') throw argType('groupAddress', 'of type string', group);
    this.#bound('dropSourceSpecificMembership').dropSourceSpecificMembership(source, group, iface);
  }
}
