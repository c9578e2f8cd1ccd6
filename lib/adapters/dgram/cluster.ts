// In a cluster worker, unless exclusive: node:dgram shares the primary's socket; here each worker
// binds its own with SO_REUSEPORT (the kernel spreads datagrams across them) and tells the
// primary it listens, as node:dgram's worker does.
import cluster from 'node:cluster';
import type { UdpReceiver } from '../../core/receiver.js';
import type { SocketType } from './types.js';

/** A cluster worker's socket on a named port, not exclusive: its own socket, with SO_REUSEPORT. */
export function sharesPort(port: number, exclusive: boolean): boolean {
  return cluster.isWorker && !exclusive && port !== 0;
}

/** A cluster worker's socket, not exclusive: the primary hears that it listens. */
export function announces(exclusive: boolean): boolean {
  return cluster.isWorker && !exclusive;
}

// cluster's own message from a worker that listens (the primary emits 'listening' for it).
export function announce(receiver: UdpReceiver, type: SocketType): void {
  const { address, port } = receiver.address();
  if (cluster.worker) (cluster.worker as unknown as { state: string }).state = 'listening';
  process.send?.({ cmd: 'NODE_CLUSTER', act: 'listening', addressType: type, address, port, fd: -1, data: null });
}
