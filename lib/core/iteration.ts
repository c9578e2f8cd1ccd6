// The iterator plumbing both backends share: one consumer reads a receiver,
// and leaving its for-await loop (break, return, throw) closes the receiver;
// and the turn budget's arithmetic (options.yieldEvery), which sizes batches.
import type { ResolvedReceiverOptions } from './options.js';
export const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

export type BatchIterator<T> = AsyncIterator<T, undefined> & AsyncIterable<T>;

export function alreadyIteratingError(): Error {
  const error = new Error('udp-ring: this receiver is already being iterated; one consumer reads a ring');
  (error as NodeJS.ErrnoException).code = 'ERR_UDP_RING_ALREADY_ITERATING';
  return error;
}

/**
 * The receiver's one iterator: `next` reads the next batch; return() runs
 * `finish` (release what is held, close) and ends the iteration.
 */
export function batchIterator<T>(
  next: () => Promise<IteratorResult<T, undefined>>, finish: () => void | Promise<void>,
): BatchIterator<T> {
  const iterator: BatchIterator<T> = {
    next,
    return: () => {
      // A promise when closing takes a while (the dgram backend counting its kernel queue).
      const closing = finish();
      return closing ? closing.then(() => DONE) : Promise.resolve(DONE);
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}

/** The turn clock (RingReader.nowMicros) wraps at 2^30 µs, ~17.9 minutes: a small integer on every engine. */
export const clockMicrosMask = 0x3fffffff;

/** Microseconds from `since` to `now` on the wrapping turn clock. */
export function microsSince(now: number, since: number): number {
  return (now - since) & clockMicrosMask;
}

/**
 * The turn clock from performance.now(), for a backend without a cheaper one (it allocates 32 B a
 * read on Node 20: the native backend reads its addon's clock instead).
 */
export function performanceMicros(): number {
  return Math.floor(performance.now() * 1000) & clockMicrosMask;
}

/**
 * How many more datagrams this turn's budget (options.yieldEvery) allows, `delivered` of them
 * delivered in the turn so far: its count, and the time left (`elapsedMicros` of the turn spent) at
 * the consumer's recent pace, `paceDatagrams` handled in `paceMicros` (0: not measured yet). At least
 * one. Whole numbers in, so the receiver keeps no fractional number in a field (each would be a heap
 * number allocated at every store).
 */
export function turnRoom(budget: ResolvedReceiverOptions['yieldEvery'], delivered: number, elapsedMicros: number,
  paceMicros: number, paceDatagrams: number): number {
  let room = budget.datagrams - delivered;
  if (paceMicros > 0) {
    // Divides only when the time left is what limits: a fraction is a heap number in code V8 has not
    // optimized yet, which is where this runs when batches are few (coalesceMs, light load).
    const leftMicros = budget.ms * 1000 - elapsedMicros;
    if (leftMicros * paceDatagrams < room * paceMicros) room = Math.ceil((leftMicros * paceDatagrams) / paceMicros);
  }
  return room >= 1 ? room : 1;
}
