// NIC drop counters from `ethtool -S`, where ethtool is installed. Drivers
// name their counters freely, so keep the ones whose names say a packet was
// lost on receive.
import { execFile } from 'node:child_process';

export type EthtoolCounters = Record<string, number>;

const LOSS = /drop|discard|miss|no_?buf|fifo|overrun|over_?flow|rx_.*err|err.*rx/i;

export function parseEthtoolStats(text: string): EthtoolCounters {
  const counters: EthtoolCounters = {};
  for (const line of text.split('\n')) {
    const match = /^\s*([^:]+):\s*(\d+)\s*$/.exec(line);
    if (match && LOSS.test(match[1])) counters[match[1].trim()] = Number(match[2]);
  }
  return counters;
}

/**
 * `ethtool -S` for each interface. Null when ethtool is not installed; an
 * interface whose driver has no statistics (lo, virtual devices) is left out.
 */
export async function readEthtool(interfaces: string[]): Promise<Map<string, EthtoolCounters> | null> {
  const result = new Map<string, EthtoolCounters>();
  for (const name of interfaces) {
    const outcome = await new Promise<string | 'absent' | null>((resolve) => {
      execFile('ethtool', ['-S', name], { timeout: 5000, encoding: 'utf8' }, (error, stdout) => {
        if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') resolve('absent');
        else resolve(error ? null : stdout);
      });
    });
    if (outcome === 'absent') return null;
    if (outcome !== null) result.set(name, parseEthtoolStats(outcome));
  }
  return result;
}
