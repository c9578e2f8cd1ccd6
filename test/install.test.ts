// The packed package as users install it, in fresh projects: CommonJS (on
// Node's own require, not require(esm)), TypeScript compiled with module
// commonjs and with node16, ES modules through every entry point; all with no
// compiler on PATH and --ignore-scripts. And a macOS install, simulated: npm
// and Node are made to believe they run on darwin (test/fixtures/other-platform.cjs),
// which an `os: ["linux"]` package refuses (EBADPLATFORM) and this one must not.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs fixture, untyped
import { dependencyTarballs } from './fixtures/offline-install.mjs';
import { spawnAsync, type SpawnResult } from './helpers.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const prebuild = join(root, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node');
const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const otherPlatform = join(root, 'test', 'fixtures', 'other-platform.cjs');

let scratch = '';
let tarball = '';
// udp-ring's dependencies, packed from node_modules, so installs need no registry.
let dependencies: string[] = [];
// PATH holding only `node` and `sh`: no g++, make or python3.
let bare = '';

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<SpawnResult> {
  return spawnAsync(file, args, {
    cwd,
    timeout: 120_000,
    env: { HOME: process.env.HOME, PATH: bare, npm_config_cache: process.env.npm_config_cache, ...env },
  });
}

/** A fresh project with `files`, the tarball installed into it offline with --ignore-scripts. */
async function project(name: string, packageJson: object, files: Record<string, string>, from = tarball, env: NodeJS.ProcessEnv = {}, scripts = false) {
  const dir = join(scratch, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, ...packageJson }));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  const install = await run(process.execPath, [npmCli, 'install', from, ...dependencies, '--offline', '--no-audit', '--no-fund', ...(scripts ? [] : ['--ignore-scripts'])], dir, env);
  return { dir, install };
}

// Receives one datagram on the default backend; prints what ran and which files were loaded.
const cjsMain = `
'use strict';
const dgram = require('node:dgram');
const { UdpReceiver, UdpSender, Batch, nativeAddon } = require('udp-ring');
const { createSocket } = require('udp-ring/dgram');
const { createReadStream } = require('udp-ring/stream');
const { startReceiverWorkers } = require('udp-ring/workers');
const { registerReceiverMetrics } = require('udp-ring/prometheus');
const warnings = [];
process.on('warning', (w) => warnings.push(w.code));
(async () => {
  const rx = await UdpReceiver.open({ host: '127.0.0.1' });
  const tx = dgram.createSocket('udp4');
  tx.send('hello require', rx.address().port, '127.0.0.1');
  let text = '';
  for await (const batch of rx) { text = Buffer.from(batch.payload(0)).toString(); break; }
  tx.close();
  const kinds = [typeof UdpSender, typeof Batch, typeof createSocket, typeof createReadStream, typeof startReceiverWorkers, typeof registerReceiverMetrics];
  const loaded = Object.keys(require.cache).filter((f) => f.includes('/node_modules/udp-ring/')).map((f) => f.slice(f.lastIndexOf('/node_modules/') + 14));
  await new Promise((r) => setImmediate(r));
  console.log(JSON.stringify({ text, backend: rx.stats().backend, addon: nativeAddon.file, kinds, loaded, warnings }));
})();
`;

const tsMain = `
import { UdpReceiver, type ReceiverStats, type ReceiverOptions } from 'udp-ring';
import { createSocket, type Socket } from 'udp-ring/dgram';
import { createReadStream } from 'udp-ring/stream';
import * as dgram from 'node:dgram';

async function main(): Promise<void> {
  const options: ReceiverOptions = { host: '127.0.0.1', overflow: 'drop', backend: 'native' };
  const rx: UdpReceiver = await UdpReceiver.open(options);
  const tx = dgram.createSocket('udp4');
  tx.send('hello typescript', rx.address().port, '127.0.0.1');
  let text = '';
  for await (const batch of rx) { text = Buffer.from(batch.payload(0)).toString(); break; }
  tx.close();
  const stats: ReceiverStats = rx.stats();
  const socket: Socket = createSocket('udp4');
  socket.close();
  console.log(JSON.stringify({ text, backend: stats.backend, stream: typeof createReadStream }));
}
void main();
`;

const esmMain = `
import dgram from 'node:dgram';
import { UdpReceiver } from 'udp-ring';
import udpRingDgram, { createSocket } from 'udp-ring/dgram';
import { createReadStream } from 'udp-ring/stream';
import { startReceiverWorkers } from 'udp-ring/workers';
import { registerReceiverMetrics } from 'udp-ring/prometheus';
const rx = await UdpReceiver.open({ host: '127.0.0.1' });
const tx = dgram.createSocket('udp4');
tx.send('hello import', rx.address().port, '127.0.0.1');
let text = '';
for await (const batch of rx) { text = Buffer.from(batch.payload(0)).toString(); break; }
tx.close();
const kinds = [typeof createSocket, typeof udpRingDgram.createSocket, typeof createReadStream, typeof startReceiverWorkers, typeof registerReceiverMetrics];
console.log(JSON.stringify({ text, backend: rx.stats().backend, kinds }));
`;

/** Links the repo's copies of what a consumer would install beside udp-ring (offline, no compiler). */
function linkDependency(dir: string, name: string) {
  const to = join(dir, 'node_modules', name);
  mkdirSync(dirname(to), { recursive: true });
  symlinkSync(join(root, 'node_modules', name), to, 'dir');
}

function newestSource(): number {
  const files = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

describe('install: the packed package in fresh projects', () => {
  beforeAll(async () => {
    // As test/prebuild.test.ts: the glibc prebuild (g++ only), made when missing or stale.
    if (!existsSync(prebuild) || statSync(prebuild).mtimeMs < newestSource()) {
      const built = await spawnAsync(process.execPath, [join(root, 'scripts', 'prebuild.mjs'), '--arch', 'x64', '--only', 'glibc', '--system-gxx'], { cwd: root, timeout: 300_000 });
      expect(built.status, built.stderr).toBe(0);
    }
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-install-'));
    bare = join(scratch, 'bin');
    mkdirSync(bare);
    symlinkSync(process.execPath, join(bare, 'node'));
    symlinkSync('/bin/sh', join(bare, 'sh'));
    const packed = await spawnAsync(process.execPath, [npmCli, 'pack', '--json', '--ignore-scripts', '--pack-destination', scratch], {
      cwd: root, timeout: 120_000,
    });
    expect(packed.status, packed.stderr).toBe(0);
    tarball = join(scratch, (JSON.parse(packed.stdout) as [{ filename: string }])[0].filename);
    mkdirSync(join(scratch, 'deps'));
    dependencies = dependencyTarballs(npmCli, join(scratch, 'deps')) as string[];
  }, 300_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('ships LICENSE, README, docs, both builds and the install script; no os field', async () => {
    const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').map((f) => f.replace(/^package\//, ''));
    for (const file of ['LICENSE', 'README.md', 'docs/benchmark.md', 'docs/cli.md', 'dist/index.js', 'dist/cjs/index.js',
      'dist/cjs/index.d.ts', 'dist/cjs/package.json', 'dist/cjs/adapters/dgram/index.js', 'scripts/install.mjs']) {
      expect(listed, file).toContain(file);
    }
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' }));
    expect(manifest.os).toBeUndefined();
    expect(manifest.license).toBe('MIT');
    // Every relative link in the README reaches a file the tarball carries.
    const readme = execFileSync('tar', ['-xzOf', tarball, 'package/README.md'], { encoding: 'utf8' });
    const links = [...readme.matchAll(/\]\((?!https?:|#)([^)#\s]+)/g)].map((m) => m[1]);
    expect(links.length).toBeGreaterThan(0);
    for (const link of links) expect(listed, `README links to ${link}`).toContain(link);
  });

  it('require() from a CommonJS project loads every entry point from dist/cjs, on Node without require(esm)', async () => {
    const { dir, install } = await project('cjs-app', {}, { 'main.js': cjsMain });
    expect(install.status, install.stderr).toBe(0);
    linkDependency(dir, 'prom-client');
    // --no-experimental-require-module: as on Node 20.5–20.18, where require() cannot load an ES module.
    for (const flags of [['--no-experimental-require-module'], []]) {
      const result = await run(process.execPath, [...flags, 'main.js'], dir);
      expect(result.status, result.stderr).toBe(0);
      const seen = JSON.parse(result.stdout);
      expect(seen).toMatchObject({ text: 'hello require', backend: 'native', warnings: [] });
      expect(seen.addon).toBe(join(dir, 'node_modules', 'udp-ring', 'prebuilds', 'linux-x64', 'udp-ring.glibc.node'));
      expect(seen.kinds).toEqual(['function', 'function', 'function', 'function', 'function', 'function']);
      expect(seen.loaded).toContain('udp-ring/dist/cjs/index.js');
      expect(seen.loaded.filter((f: string) => f.startsWith('udp-ring/dist/') && !f.startsWith('udp-ring/dist/cjs/'))).toEqual([]);
    }
  });

  it('TypeScript with module commonjs (node10 resolution) and with node16 compiles against the types and runs', async () => {
    for (const [name, compilerOptions] of [
      ['ts-commonjs', { module: 'commonjs' }],
      ['ts-node16', { module: 'node16', moduleResolution: 'node16' }],
    ] as const) {
      const tsconfig = { compilerOptions: { ...compilerOptions, target: 'ES2022', strict: true, outDir: 'out', types: ['node'], lib: ['ES2022', 'ESNext.Disposable'] }, files: ['main.ts'] };
      const { dir, install } = await project(name, {}, { 'main.ts': tsMain, 'tsconfig.json': JSON.stringify(tsconfig) });
      expect(install.status, install.stderr).toBe(0);
      linkDependency(dir, '@types/node');
      const compiled = await run(process.execPath, [tsc, '-p', '.'], dir);
      expect(compiled.status, `${name}: ${compiled.stdout}${compiled.stderr}`).toBe(0);
      const emitted = readFileSync(join(dir, 'out', 'main.js'), 'utf8');
      expect(emitted).toContain('require("udp-ring")');
      const result = await run(process.execPath, ['--no-experimental-require-module', join('out', 'main.js')], dir);
      expect(result.status, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ text: 'hello typescript', backend: 'native', stream: 'function' });
    }
    // The types are checked, not waved through: a wrong option is a compile error.
    const dir = join(scratch, 'ts-commonjs');
    writeFileSync(join(dir, 'main.ts'), tsMain.replace("overflow: 'drop'", "overflow: 'spill'"));
    const wrong = await run(process.execPath, [tsc, '-p', '.'], dir);
    expect(wrong.status).not.toBe(0);
    expect(wrong.stdout).toContain('"spill"');
  });

  it('import from an ES module project reaches every entry point', async () => {
    const { dir, install } = await project('esm-app', { type: 'module' }, { 'main.js': esmMain });
    expect(install.status, install.stderr).toBe(0);
    linkDependency(dir, 'prom-client');
    const result = await run(process.execPath, ['main.js'], dir);
    expect(result.status, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ text: 'hello import', backend: 'native', kinds: ['function', 'function', 'function', 'function', 'function'] });
  });

  it('installs on macOS (simulated), scripts and all, where an os: ["linux"] package fails; runs on node:dgram with one warning', async () => {
    const darwin = { NODE_OPTIONS: `--require ${otherPlatform}`, UDP_RING_PLATFORM: 'darwin' };
    // The simulation is faithful: npm itself sees darwin and refuses a package limited to linux.
    const limited = join(scratch, 'limited');
    mkdirSync(limited);
    execFileSync('tar', ['-xzf', tarball, '-C', limited]);
    const manifest = JSON.parse(readFileSync(join(limited, 'package', 'package.json'), 'utf8'));
    writeFileSync(join(limited, 'package', 'package.json'), JSON.stringify({ ...manifest, os: ['linux'] }));
    const limitedTarball = join(limited, 'limited.tgz');
    execFileSync('tar', ['-czf', limitedTarball, '-C', limited, 'package']);
    const refused = (await project('mac-limited', {}, {}, limitedTarball, darwin, true)).install;
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('EBADPLATFORM');
    expect(refused.stderr).toContain('"os":"darwin"');

    // This package installs there, its install script included (it builds nothing off Linux).
    const { dir, install } = await project('mac-app', {}, { 'main.js': cjsMain }, tarball, darwin, true);
    expect(install.status, install.stderr).toBe(0);
    expect(existsSync(join(dir, 'node_modules', 'udp-ring', 'build'))).toBe(false);
    const script = await run(process.execPath, [join(dir, 'node_modules', 'udp-ring', 'scripts', 'install.mjs')], dir, darwin);
    expect(script.status, script.stderr).toBe(0);
    expect(script.stderr).toContain('no native addon on darwin');
    linkDependency(dir, 'prom-client');
    const result = await run(process.execPath, ['main.js'], dir, darwin);
    expect(result.status, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout);
    expect(seen).toMatchObject({ text: 'hello require', backend: 'dgram', addon: null, warnings: ['UDP_RING_DGRAM_BACKEND'] });
  });

  it('on Linux, with no prebuild and no compiler, the install script does not fail the install; the load error then quotes it', async () => {
    // The tarball without its prebuilds, installed with scripts: node-gyp finds no compiler.
    const stripped = join(scratch, 'stripped');
    mkdirSync(stripped);
    execFileSync('tar', ['-xzf', tarball, '-C', stripped]);
    rmSync(join(stripped, 'package', 'prebuilds'), { recursive: true, force: true });
    const strippedTarball = join(stripped, 'stripped.tgz');
    execFileSync('tar', ['-czf', strippedTarball, '-C', stripped, 'package']);
    const nodeGyp = join(dirname(npmCli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    const { dir, install } = await project('no-compiler', {}, { 'main.js': cjsMain }, strippedTarball, { npm_config_node_gyp: nodeGyp }, true);
    expect(install.status, install.stderr).toBe(0);
    // npm may hold dependencies' scripts back until approved; run the script as npm would.
    const installed = join(dir, 'node_modules', 'udp-ring');
    const script = await run(process.execPath, [join(installed, 'scripts', 'install.mjs')], installed, { npm_config_node_gyp: nodeGyp, INIT_CWD: dir });
    expect(script.status, script.stderr).toBe(0);
    expect(script.stderr).toContain('compiling the addon failed');
    expect(existsSync(join(installed, 'build', 'install-error.log'))).toBe(true);
    linkDependency(dir, 'prom-client');
    const result = await run(process.execPath, ['main.js'], dir);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('ERR_UDP_RING_NATIVE');
    expect(result.stderr).toContain('Compiling at install failed');
    expect(result.stderr).toContain('this copy ships no prebuilds');
  });
});
