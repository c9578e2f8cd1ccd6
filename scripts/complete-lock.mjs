// The npm registry this project is built against serves only some of the
// platform packages that rollup (under vitest) lists as optional; npm then
// writes a package-lock.json without them, and `npm ci` refuses that lock.
// This adds the missing entries as a normal registry would have written them:
// optional, with the os/cpu/libc read from the package name, so `npm ci`
// skips them on this platform without fetching anything.
// Run after any `npm install` that rewrites package-lock.json.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const cpus = { 'arm-eabi': 'arm', 'arm-gnueabihf': 'arm', 'arm-musleabihf': 'arm', arm64: 'arm64', x64: 'x64',
  ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };
let added = 0;
for (const [where, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${name}`;
    if (packages[key]) continue;
    const m = /^@rollup\/rollup-([a-z0-9]+)-(.+?)(?:-(gnu|musl|msvc))?$/.exec(name);
    if (!m) throw new Error(`complete-lock: ${name} (optional for ${where}) is missing and not a known platform package`);
    const [, os, rest, abi] = m;
    const cpu = cpus[rest];
    if (!cpu) throw new Error(`complete-lock: cannot tell the cpu of ${name}`);
    const added_entry = { version, cpu: [cpu], dev: entry.dev || undefined, license: 'MIT', optional: true, os: [os] };
    if (abi === 'gnu' || abi === 'musl' || rest.endsWith('musleabihf') || rest.endsWith('gnueabihf')) {
      added_entry.libc = [abi === 'musl' || rest.endsWith('musleabihf') ? 'musl' : 'glibc'];
    }
    packages[key] = JSON.parse(JSON.stringify(added_entry));
    added++;
  }
}
const sorted = Object.fromEntries(Object.entries(packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)));
lock.packages = sorted;
writeFileSync(path, JSON.stringify(lock, null, 2) + '\n');
console.log(`complete-lock: added ${added} platform entries`);
