// The seam between the core and its backends. A backend's module registers
// how it opens a receiver when it loads (lib/backends/index.ts loads every
// one, and each entry point that opens receivers imports that); the core
// opens through openBackend(), so it imports no backend file. The types a
// backend needs from the core come from this file, never from receiver.ts.
//
// Today only the dgram backend opens through here: the native one is still
// UdpReceiver itself (core/receiver.ts reads the ring through
// backends/native/), until receiver.ts is split into the core's receiver and
// the native backend's consumer side.
import type { Backend, ResolvedReceiverOptions } from './options.js';

export type { AddressInfo, ReceiverStats } from './receiver.js';
export type { Backend, CloseOptions, ResolvedReceiverOptions } from './options.js';

/**
 * Opens a bound receiver on `address` (already resolved) with the resolved options. What it
 * returns has UdpReceiver's public methods and Batch accessors; the core hands it out as one.
 */
export type BackendOpener = (options: ResolvedReceiverOptions, address: string) => Promise<object>;

const openers = new Map<Backend, BackendOpener>();

/** Called once by a backend's module as it loads. */
export function registerBackend(name: Backend, open: BackendOpener): void {
  openers.set(name, open);
}

/** Opens a receiver on the named backend; a backend whose module never loaded is an error that says so. */
export function openBackend(name: Backend, options: ResolvedReceiverOptions, address: string): Promise<object> {
  const open = openers.get(name);
  if (!open) {
    throw new Error(`udp-ring: the '${name}' backend is not loaded (import the package, 'udp-ring', ` +
      'or one of its entry points, not a file inside it)');
  }
  return open(options, address);
}
