// Receiving on several cores: one UdpReceiver per worker thread, all bound to
// the same port with SO_REUSEPORT, so the kernel spreads datagrams across
// them by a hash of source and destination (one sender's flow always lands
// on the same worker, keeping its order). Each receiver keeps its own thread,
// ring and counters; sum their stats() for the whole.
//
// In the main thread:   const { port, workers } = await startReceiverWorkers(new URL('./rx.mjs', import.meta.url), 4, { host });
// In rx.mjs (a worker): const rx = await openWorkerReceiver(); for await (const batch of rx) { ... }
import { isMainThread, parentPort, Worker, workerData, type WorkerOptions } from 'node:worker_threads';
import type { ReceiverOptions } from '../core/options.js';
import { UdpReceiver } from '../core/receiver.js';

export interface ReceiverWorkersOptions {
  /** Port to share; 0 (default) lets the first worker pick one, which the others then join. */
  port?: number;
  host?: string;
  type?: 'udp4' | 'udp6';
  /** Passed to every worker as workerData.data. */
  data?: unknown;
  /** Extra Worker options (resourceLimits, env, ...). */
  worker?: Omit<WorkerOptions, 'workerData'>;
}

export interface ReceiverWorkers {
  port: number;
  workers: Worker[];
}

interface Ready {
  udpRingReady: number;
}

interface Shared {
  udpRing: { port: number; host?: string; type?: 'udp4' | 'udp6'; index: number; count: number };
  data: unknown;
}

function ready(worker: Worker): Promise<number> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      if (message && typeof (message as Ready).udpRingReady === 'number') {
        cleanup();
        resolve((message as Ready).udpRingReady);
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onExit = (code: number) => {
      cleanup();
      reject(new Error(`udp-ring: receiver worker exited (code ${code}) before its receiver was open`));
    };
    const cleanup = () => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.once('error', onError);
    worker.once('exit', onExit);
  });
}

/**
 * Starts `count` workers running `script`, each of which calls
 * openWorkerReceiver(). Resolves once every receiver is bound, so traffic
 * sent afterwards is spread over all of them.
 */
export async function startReceiverWorkers(script: string | URL, count: number, options: ReceiverWorkersOptions = {}): Promise<ReceiverWorkers> {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`udp-ring: count must be an integer >= 1. Received ${count}`);
  const workers: Worker[] = [];
  const spawn = (index: number, port: number) => {
    const shared: Shared = { udpRing: { port, host: options.host, type: options.type, index, count }, data: options.data };
    const worker = new Worker(script, { ...options.worker, workerData: shared });
    workers.push(worker);
    return ready(worker);
  };
  try {
    // The first worker binds (port 0 picks one); the rest join its port.
    const port = await spawn(0, options.port ?? 0);
    await Promise.all(Array.from({ length: count - 1 }, (_, k) => spawn(k + 1, port)));
    return { port, workers };
  } catch (error) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw error;
  }
}

/** In a worker started by startReceiverWorkers: opens this worker's receiver on the shared port and reports it bound. */
export async function openWorkerReceiver(options: Omit<ReceiverOptions, 'port' | 'reusePort'> = {}): Promise<UdpReceiver> {
  const shared = workerData as Shared | undefined;
  if (isMainThread || !parentPort || !shared?.udpRing) {
    throw new Error('udp-ring: openWorkerReceiver() runs in a worker started by startReceiverWorkers()');
  }
  const { port, host, type } = shared.udpRing;
  const rx = await UdpReceiver.open({ host, type, ...options, port, reusePort: true });
  parentPort.postMessage({ udpRingReady: rx.address().port } satisfies Ready);
  return rx;
}

/** In a worker: which of the group this is (0-based), how many there are, and the data passed to startReceiverWorkers. */
export function workerInfo(): { index: number; count: number; data: unknown } {
  const shared = workerData as Shared;
  return { index: shared.udpRing.index, count: shared.udpRing.count, data: shared.data };
}
