#!/usr/bin/env node
// The floor of any `for await` consumer that waits for data: heap bytes per iteration of an async
// iterator whose next() returns a pending promise (one executor, made once) that a setImmediate
// resolves with the same result object, minus a bare setImmediate loop's bytes per iteration.
// What is left is the async-iteration protocol itself (the promise, its resolving functions, the
// await's reaction and job), which udp-ring's iterator pays per batch on top of its Batch object.
//   node --expose-gc --max-semi-space-size=64 --min-semi-space-size=64 bench/forawait-floor.mjs
if (typeof globalThis.gc !== 'function') {
  process.stderr.write('run with --expose-gc --max-semi-space-size=64 --min-semi-space-size=64\n');
  process.exit(2);
}
const count = 20_000;
const warmup = 2_000;

function heapPerIteration(run) {
  return new Promise((resolve) => {
    let before = 0;
    run((n) => {
      if (n === warmup) {
        globalThis.gc();
        before = process.memoryUsage().heapUsed;
      }
      if (n === warmup + count) resolve((process.memoryUsage().heapUsed - before) / count);
    });
  });
}

// A setImmediate loop alone: what each event-loop iteration and its immediate allocate.
const immediate = await heapPerIteration((at) => {
  let n = 0;
  const tick = () => {
    at(++n);
    if (n < warmup + count) setImmediate(tick);
  };
  setImmediate(tick);
});

// The same loop, each turn resolving the pending next() of a for-await.
const forAwait = await heapPerIteration(async (at) => {
  const result = { done: false, value: 1 };
  let resolveNext = null;
  const executor = (resolve) => {
    resolveNext = resolve;
  };
  const fire = () => resolveNext(result);
  let n = 0;
  const iterator = {
    next() {
      if (n >= warmup + count) return Promise.resolve({ done: true, value: undefined });
      const pending = new Promise(executor);
      setImmediate(fire);
      return pending;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  for await (const _ of iterator) at(++n);
});

console.log(`heap bytes per iteration: setImmediate loop ${immediate.toFixed(1)}, ` +
  `with a for-await waiting on it ${forAwait.toFixed(1)}: the protocol ${(forAwait - immediate).toFixed(1)} (Node ${process.versions.node})`);
