// The iterator plumbing both backends share: one consumer reads a receiver,
// and leaving its for-await loop (break, return, throw) closes the receiver.
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
