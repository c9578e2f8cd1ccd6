#!/usr/bin/env node
// Issue 9: where the V8 heap bytes of an event-loop wakeup come from. Builds
// bench/wakeup-alloc.cc (a test-only addon, never shipped) and runs each mode
// in its own process with a young generation large enough that no GC runs
// while it measures: one datagram per wakeup, lockstep, and the heap's growth
// over the measured wakeups divided by their count. Modes: see the .cc; also
//   immediate     a setImmediate loop in JavaScript (no I/O)
//   udp-ring modes through test/fixtures/alloc-trickle.mjs: onBatch, iterator, dgram
//   node bench/wakeup-alloc.mjs [--modes recv,scope,...] [--rounds 3] [--count 20000]
//   node bench/wakeup-alloc.mjs --build     builds the addon only and prints its path
//   node bench/wakeup-alloc.mjs --child <mode> <count>   one mode in this process: one JSON line
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { homedir, loadavg } from 'node:os';
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver } from 'node:perf_hooks';

const here = dirname(fileURLToPath(import.meta.url));
const addonModes = ['recv', 'scope', 'global', 'make', 'makeNull', 'cbScope', 'call', 'v8call', 'nodeScope', 'nodeMake',
  'checkpoint', 'keptObjects', 'setIdle', 'async'];
const fixtureModes = ['onBatch', 'iterator', 'dgram'];

// Node's headers (node_api.h, v8.h): NODE_INCLUDE, else beside the node binary (the official
// tarballs), else node-gyp's download for this version, else a distribution's /usr/include/node.
function nodeInclude() {
  const candidates = [process.env.NODE_INCLUDE, join(dirname(process.execPath), '..', 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'), '/usr/include/node'].filter(Boolean);
  const found = candidates.find((dir) => existsSync(join(dir, 'node_api.h')));
  if (!found) throw new Error(`Node's headers (node_api.h) are in none of ${candidates.join(', ')}: set NODE_INCLUDE`);
  return found;
}

export function buildWakeupAddon() {
  const source = join(here, 'wakeup-alloc.cc');
  const binary = join(here, '..', 'build', 'bench', 'wakeup-alloc.node');
  let built = false;
  try {
    built = statSync(binary).mtimeMs >= statSync(source).mtimeMs;
  } catch {}
  if (!built) {
    mkdirSync(dirname(binary), { recursive: true });
    const include = nodeInclude();
    const partial = `${binary}.${process.pid}`;
    execFileSync(process.env.CXX || 'c++', ['-O2', '-std=c++17', '-Wall', '-Wextra', '-Wno-unused-parameter', '-fPIC', '-shared',
      `-I${include}`, '-o', partial, source, '-lpthread'], { stdio: 'inherit' });
    renameSync(partial, binary);
  }
  return binary;
}

const used = () => getHeapSpaceStatistics().reduce((sum, space) => sum + space.space_used_size, 0);

// In the child: one mode, a warm-up run and a measured run.
async function child(mode, count) {
  if (mode === 'immediate') {
    let gcs = 0;
    new PerformanceObserver((list) => { gcs += list.getEntries().length; }).observe({ entryTypes: ['gc'] });
    const loop = (n) => new Promise((resolve) => {
      let left = n;
      const step = () => (--left > 0 ? setImmediate(step) : resolve());
      setImmediate(step);
    });
    await loop(2000);
    const before = used();
    const gcsBefore = gcs;
    await loop(count);
    const after = used();
    return { mode, count, gcsDuring: gcs - gcsBefore, bytesPerWakeup: (after - before) / count };
  }
  const addon = createRequire(import.meta.url)(buildWakeupAddon());
  let gcs = 0;
  new PerformanceObserver((list) => { gcs += list.getEntries().length; }).observe({ entryTypes: ['gc'] });
  const target = () => {};
  const run = (n) => new Promise((resolve) => addon.run(mode, n, target, () => resolve(used())));
  await run(2000);
  const gcsBefore = gcs;
  const before = used();
  const after = await run(count);
  addon.close();
  return { mode, count, gcsDuring: gcs - gcsBefore, bytesPerWakeup: (after - before) / count };
}

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const main = process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href;
if (main && process.argv[2] === '--build') {
  console.log(buildWakeupAddon());
} else if (main && process.argv[2] === '--child') {
  console.log(JSON.stringify(await child(process.argv[3], Number(process.argv[4]))));
} else if (main) {
  const modes = option('--modes', [...addonModes, 'immediate', 'onBatch', 'dgram'].join(',')).split(',');
  const rounds = Number(option('--rounds', 3));
  const count = Number(option('--count', 20000));
  if (modes.some((m) => addonModes.includes(m))) buildWakeupAddon();
  const results = new Map(modes.map((m) => [m, []]));
  const flags = ['--min-semi-space-size=64', '--max-semi-space-size=64'];
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? modes : [...modes].reverse();
    for (const mode of order) {
      const args = fixtureModes.includes(mode)
        ? [...flags, join(here, '..', 'test', 'fixtures', 'alloc-trickle.mjs'), mode, String(count)]
        : [...flags, fileURLToPath(import.meta.url), '--child', mode, String(count)];
      const out = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }).trim().split('\n').pop());
      if (out.gcsDuring !== 0) console.error(`${mode}: ${out.gcsDuring} GCs while measuring (figure is not the allocation)`);
      results.get(mode).push(out.bytesPerWakeup ?? out.bytesPerDatagram);
    }
  }
  console.log(`heap bytes per wakeup (one datagram per wakeup), ${count} wakeups x ${rounds} rounds, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (const [mode, xs] of results) {
    const sorted = [...xs].sort((a, b) => a - b);
    console.log(`${mode.padEnd(12)} median ${sorted[Math.floor((sorted.length - 1) / 2)].toFixed(1).padStart(7)}   all ${xs.map((x) => x.toFixed(1)).join(' ')}`);
  }
}
