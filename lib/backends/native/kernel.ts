// What the kernel's sysctls say, read where /proc allows it.
import { readFileSync } from 'node:fs';

/** net.core.rmem_max when it can be read, else null. */
export function readRmemMax(): number | null {
  try {
    return Number.parseInt(readFileSync('/proc/sys/net/core/rmem_max', 'utf8'), 10);
  } catch {
    return null;
  }
}
