// Formats source addresses from the 4 or 16 bytes a descriptor holds, the way
// Node's dgram does in `rinfo.address` (RFC 5952, IPv4-mapped as dotted quad).

export function formatIPv4(bytes: Uint8Array, at: number): string {
  return `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
}

export function formatIPv6(bytes: Uint8Array, at: number): string {
  const groups = new Array<number>(8);
  for (let g = 0; g < 8; g++) groups[g] = (bytes[at + 2 * g] << 8) | bytes[at + 2 * g + 1];
  // ::ffff:a.b.c.d (mapped) is written with the IPv4 part dotted, as inet_ntop does.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes, at + 12)}`;
  }
  // The longest run of two or more zero groups becomes '::' (the first such run on a tie).
  let bestStart = -1;
  let bestLength = 0;
  for (let g = 0; g < 8; ) {
    if (groups[g] !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && groups[end] === 0) end++;
    if (end - g > bestLength && end - g >= 2) {
      bestStart = g;
      bestLength = end - g;
    }
    g = end;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((n) => n.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLength, 8)}`;
}

/** Formats the 4 (family 4) or 16 (family 6) address bytes at `at`. */
export function formatAddress(bytes: Uint8Array, at: number, family: number): string {
  return family === 6 ? formatIPv6(bytes, at) : formatIPv4(bytes, at);
}
