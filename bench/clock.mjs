// One clock for every process of the benchmark: CLOCK_MONOTONIC in
// nanoseconds, as a double. performance.now() reads the same clock without
// allocating; the offset ties it to process.hrtime, which all processes share.
const originNs = calibrate();

// The first calls of either clock are slow (lazy setup): warm both, then keep
// the sample whose two hrtime reads bracket performance.now() most tightly.
function calibrate() {
  let best = Infinity;
  let origin = 0;
  for (let k = 0; k < 20; k++) {
    const before = Number(process.hrtime.bigint());
    const now = performance.now();
    const after = Number(process.hrtime.bigint());
    if (after - before < best) {
      best = after - before;
      origin = (before + after) / 2 - now * 1e6;
    }
  }
  return origin;
}

/** Monotonic nanoseconds, comparable across processes on this machine. */
export function nowNs() {
  return originNs + performance.now() * 1e6;
}

/** Blocks the event loop for `ms` (a synchronous stall, as a slow serializer would). */
export function stall(ms) {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Sleeps the whole thread for `ms` (fractions allowed) without spinning. */
export function sleepSync(ms) {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}
