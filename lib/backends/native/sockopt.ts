// Socket options set after bind, as node:dgram's methods do, built on the
// native receiver's setsockopt. Option names and struct offsets come from the
// addon (native.Receiver.socketOptions); the structs are the kernel's
// (ip_mreq, ip_mreq_source, ipv6_mreq, group_source_req).
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { systemError } from '../../core/errors.js';

export interface OptionSetter {
  setOption(level: number, name: number, value: number | Uint8Array): void;
  getOption(level: number, name: number): number;
}

export type SocketOptionNames = Record<string, number>;

function ipv4Bytes(text: string, target: Uint8Array, at: number): void {
  const parts = text.split('.').map(Number);
  for (let k = 0; k < 4; k++) target[at + k] = parts[k];
}

function ipv6Bytes(text: string, target: Uint8Array, at: number): void {
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const words = (part: string | undefined): number[] => {
    if (!part) return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const q = group.split('.').map(Number);
        out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
      } else out.push(Number.parseInt(group, 16));
    }
    return out;
  };
  const front = words(head);
  const back = words(tail);
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  for (let g = 0; g < 8; g++) {
    target[at + 2 * g] = all[g] >>> 8;
    target[at + 2 * g + 1] = all[g] & 0xff;
  }
}

/** Interface index of an IPv6 scope ('%eth0' or '%2'), 0 when none. */
function scopeIndex(address: string | undefined, syscall: string): number {
  if (!address) return 0;
  const at = address.indexOf('%');
  if (at < 0) return 0;
  const scope = address.slice(at + 1);
  if (/^\d+$/.test(scope)) return Number(scope);
  try {
    return Number.parseInt(readFileSync(`/sys/class/net/${scope}/ifindex`, 'utf8'), 10);
  } catch {
    throw systemError({ errno: 19, syscall }); // ENODEV
  }
}

function stripScope(address: string): string {
  const at = address.indexOf('%');
  return at < 0 ? address : address.slice(0, at);
}

function invalid(syscall: string): NodeJS.ErrnoException {
  return systemError({ errno: 22, syscall }); // EINVAL, as libuv reports a bad address
}

/** Calls setOption, turning a native failure into Node's error for `syscall` (the dgram method name). */
function set(socket: OptionSetter, syscall: string, level: number, name: number, value: number | Uint8Array): void {
  try {
    socket.setOption(level, name, value);
  } catch (cause) {
    const e = cause as { errno?: number };
    if (typeof e?.errno === 'number') throw systemError({ errno: e.errno, syscall });
    throw cause;
  }
}

export function membership(
  socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, join: boolean, group: string, iface?: string,
): void {
  const syscall = join ? 'addMembership' : 'dropMembership';
  if (family === 4) {
    if (isIP(group) !== 4 || (iface !== undefined && isIP(iface) !== 4)) throw invalid(syscall);
    const mreq = new Uint8Array(8);
    ipv4Bytes(group, mreq, 0);
    ipv4Bytes(iface ?? '0.0.0.0', mreq, 4);
    set(socket, syscall, names.IPPROTO_IP, join ? names.IP_ADD_MEMBERSHIP : names.IP_DROP_MEMBERSHIP, mreq);
    return;
  }
  if (isIP(stripScope(group)) !== 6) throw invalid(syscall);
  const mreq = new Uint8Array(20);
  ipv6Bytes(stripScope(group), mreq, 0);
  new DataView(mreq.buffer).setUint32(16, scopeIndex(iface ?? group, syscall), true);
  set(socket, syscall, names.IPPROTO_IPV6, join ? names.IPV6_JOIN_GROUP : names.IPV6_LEAVE_GROUP, mreq);
}

export function sourceMembership(
  socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, join: boolean, source: string, group: string, iface?: string,
): void {
  const syscall = join ? 'addSourceSpecificMembership' : 'dropSourceSpecificMembership';
  if (family === 4) {
    if (isIP(group) !== 4 || isIP(source) !== 4 || (iface !== undefined && isIP(iface) !== 4)) throw invalid(syscall);
    // struct ip_mreq_source: multiaddr, interface, sourceaddr.
    const mreq = new Uint8Array(12);
    ipv4Bytes(group, mreq, 0);
    ipv4Bytes(iface ?? '0.0.0.0', mreq, 4);
    ipv4Bytes(source, mreq, 8);
    set(socket, syscall, names.IPPROTO_IP, join ? names.IP_ADD_SOURCE_MEMBERSHIP : names.IP_DROP_SOURCE_MEMBERSHIP, mreq);
    return;
  }
  if (isIP(stripScope(group)) !== 6 || isIP(stripScope(source)) !== 6) throw invalid(syscall);
  // struct group_source_req: interface index, then two sockaddr_in6 (family AF_INET6 = 10).
  const req = new Uint8Array(names.sizeofGroupSourceReq);
  const view = new DataView(req.buffer);
  view.setUint32(0, scopeIndex(iface ?? group, syscall), true);
  for (const [offset, address] of [[names.offsetofGsrGroup, group], [names.offsetofGsrSource, source]] as const) {
    view.setUint16(offset, 10, true);
    ipv6Bytes(stripScope(address), req, offset + 8);
  }
  set(socket, syscall, names.IPPROTO_IPV6, join ? names.MCAST_JOIN_SOURCE_GROUP : names.MCAST_LEAVE_SOURCE_GROUP, req);
}

export function setTTL(socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, ttl: number): void {
  if (ttl < 1 || ttl > 255) throw invalid('setTTL');
  if (family === 4) set(socket, 'setTTL', names.IPPROTO_IP, names.IP_TTL, ttl);
  else set(socket, 'setTTL', names.IPPROTO_IPV6, names.IPV6_UNICAST_HOPS, ttl);
}

export function setMulticastTTL(socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, ttl: number): void {
  if (ttl < 0 || ttl > 255) throw invalid('setMulticastTTL');
  if (family === 4) set(socket, 'setMulticastTTL', names.IPPROTO_IP, names.IP_MULTICAST_TTL, ttl);
  else set(socket, 'setMulticastTTL', names.IPPROTO_IPV6, names.IPV6_MULTICAST_HOPS, ttl);
}

export function setMulticastLoopback(socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, on: boolean): void {
  if (family === 4) set(socket, 'setMulticastLoopback', names.IPPROTO_IP, names.IP_MULTICAST_LOOP, on ? 1 : 0);
  else set(socket, 'setMulticastLoopback', names.IPPROTO_IPV6, names.IPV6_MULTICAST_LOOP, on ? 1 : 0);
}

export function setMulticastInterface(socket: OptionSetter, names: SocketOptionNames, family: 4 | 6, iface: string): void {
  if (family === 4) {
    if (isIP(iface) !== 4) throw invalid('setMulticastInterface');
    const address = new Uint8Array(4);
    ipv4Bytes(iface, address, 0);
    set(socket, 'setMulticastInterface', names.IPPROTO_IP, names.IP_MULTICAST_IF, address);
    return;
  }
  set(socket, 'setMulticastInterface', names.IPPROTO_IPV6, names.IPV6_MULTICAST_IF, scopeIndex(iface, 'setMulticastInterface'));
}

export function setBroadcast(socket: OptionSetter, names: SocketOptionNames, on: boolean): void {
  set(socket, 'setBroadcast', names.SOL_SOCKET, names.SO_BROADCAST, on ? 1 : 0);
}
