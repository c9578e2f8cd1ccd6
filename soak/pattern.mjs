// The soak's datagrams: sizes and bytes are functions of the sequence number,
// so the receiver can check each one without being told what was sent.
export const TINY_PERIOD = 1000;
export const TINY_PHASE = 500;

function hash(seq) {
  return Math.imul(seq, 2654435761) >>> 0;
}

/** Size of datagram `seq`: mostly small, some up to maxMessageSize, some beyond (truncated), a few of 1-3 bytes. */
export function sizeFor(seq, maxMessageSize) {
  if (seq % TINY_PERIOD === TINY_PHASE) return 1 + (Math.floor(seq / TINY_PERIOD) % 3);
  if (seq % 997 === 0) return maxMessageSize + 1 + (hash(seq) % 600);
  if (seq % 61 === 0) return 4 + (hash(seq) % (maxMessageSize - 3));
  return 4 + (hash(seq) % 160);
}

// Byte k (k >= 4) of datagram seq depends only on seq mod 256 and k, so 256
// template rows serve every datagram; bytes 0-3 are seq, little-endian.
const rows = new Map();
export function templates(maxBytes) {
  let t = rows.get(maxBytes);
  if (!t) {
    t = [];
    for (let r = 0; r < 256; r++) {
      const row = new Uint8Array(maxBytes);
      for (let k = 0; k < maxBytes; k++) row[k] = (r * 31 + k * 7 + 13) & 0xff;
      t.push(row);
    }
    rows.set(maxBytes, t);
  }
  return t;
}

export function fillPayload(target, at, seq, size, rowsOfMax) {
  target.set(size === rowsOfMax[0].length ? rowsOfMax[seq & 255] : rowsOfMax[seq & 255].subarray(0, size), at);
  if (size >= 4) {
    target[at] = seq & 0xff;
    target[at + 1] = (seq >>> 8) & 0xff;
    target[at + 2] = (seq >>> 16) & 0xff;
    target[at + 3] = (seq >>> 24) & 0xff;
  }
}

const checkRows = templates(65536);
/** -1 when bytes [at, at + size) are datagram seq's first `size` bytes, else the first bad index. */
export function checkPayload(bytes, at, seq, size) {
  const row = checkRows[seq & 255];
  let k = 0;
  if (size >= 4) {
    if (bytes[at] !== (seq & 0xff) || bytes[at + 1] !== ((seq >>> 8) & 0xff) ||
        bytes[at + 2] !== ((seq >>> 16) & 0xff) || bytes[at + 3] !== ((seq >>> 24) & 0xff)) return 0;
    k = 4;
  }
  for (; k < size; k++) if (bytes[at + k] !== row[k]) return k;
  return -1;
}
