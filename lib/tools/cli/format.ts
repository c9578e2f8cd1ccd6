import { InvalidArgumentError } from 'commander';
// Number formatting for the terminal views: counts with thousands
// separators, byte sizes in binary units, rates per second.

export function count(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function size(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(value >= 100 ? 0 : 1)} ${units[unit]}`;
}

export function percent(part: number, whole: number): string {
  return whole === 0 ? '0.0 %' : `${((100 * part) / whole).toFixed(1)} %`;
}

/** Hex dump in the layout of `hexdump -C`: offset, 16 bytes, printable text. */
export function hexDump(bytes: Uint8Array, limit = 512): string {
  const lines: string[] = [];
  const shown = Math.min(bytes.length, limit);
  for (let at = 0; at < shown; at += 16) {
    const row = bytes.subarray(at, Math.min(at + 16, shown));
    let hex = '';
    let text = '';
    for (let k = 0; k < 16; k++) {
      hex += k < row.length ? `${row[k].toString(16).padStart(2, '0')} ` : '   ';
      if (k === 7) hex += ' ';
      if (k < row.length) text += row[k] >= 0x20 && row[k] < 0x7f ? String.fromCharCode(row[k]) : '.';
    }
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex} |${text}|`);
  }
  if (bytes.length > shown) lines.push(`... ${bytes.length - shown} more bytes`);
  return lines.join('\n');
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Parses a non-negative integer option for commander, with a message naming the option. */
export function integerOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?(e\d+)?$/i.test(value.trim()) || !Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got '${value}'`);
    }
    return n;
  };
}

export function numberOption(name: string, min: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number >= ${min}, got '${value}'`);
    return n;
  };
}
