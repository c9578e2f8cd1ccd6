// Source addresses as the ring's descriptors hold them (core/ring-format.ts): rinfo.address
// written as 4 or 16 network-order bytes, as the native thread writes a sockaddr's.

/** Writes rinfo.address as 4 or 16 network-order bytes at `at`; returns the family (4 or 6). */
export function writeAddress(target: Uint8Array, at: number, address: string, family: string | number): 4 | 6 {
  if (family === 'IPv4' || family === 4) {
    let part = 0;
    let value = 0;
    for (let i = 0; i < address.length; i++) {
      const c = address.charCodeAt(i);
      if (c === 46) {
        target[at + part++] = value;
        value = 0;
      } else {
        value = value * 10 + (c - 48);
      }
    }
    target[at + part] = value;
    return 4;
  }
  parseIPv6(address, target, at);
  return 6;
}

function parseIPv6(text: string, target: Uint8Array, at: number): void {
  const scope = text.indexOf('%');
  if (scope >= 0) text = text.slice(0, scope);
  target.fill(0, at, at + 16);
  const words: number[] = [];
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string): number[] => {
    if (part === '') return [];
    const out: number[] = [];
    for (const group of part.split(':')) {
      if (group.includes('.')) {
        const q = group.split('.').map(Number);
        out.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
      } else {
        out.push(Number.parseInt(group, 16));
      }
    }
    return out;
  };
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  words.push(...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back);
  for (let g = 0; g < 8; g++) {
    target[at + 2 * g] = words[g] >>> 8;
    target[at + 2 * g + 1] = words[g] & 0xff;
  }
}
