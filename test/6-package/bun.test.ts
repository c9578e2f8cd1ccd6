// Bun (`npm run test:bun`: vitest itself runs under the pinned Bun's glibc
// build, with the core receive test files beside this one). Here: that it is
// Bun, that the native backend serves with the thread receiving everything
// (Bun's libuv is partial: eventLoopReceive is forced off), and the musl
// prebuild loaded and exercised in Bun's musl build, a real musl process
// (scripts/bun.mjs says how it runs on Debian).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnOrThrow } from '../helpers.js';
import { nativeAddon, UdpReceiver, UdpSender } from '../../dist/index.js';
// @ts-expect-error: a plain .mjs script, untyped
import { bunEnv, bunPath } from '../../scripts/bun.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let scratch = '';

function run(file: string, args: string[], env: NodeJS.ProcessEnv) {
  return spawnOrThrow(file, args, { cwd: root, env });
}

describe('bun', () => {
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-bun-'));
  });

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('runs under Bun, on the native backend, with the thread receiving everything', async () => {
    expect(process.versions.bun, 'this file runs under Bun: npm run test:bun').toBeDefined();
    expect(nativeAddon.loaded).toBe(true);
    const rx = await UdpReceiver.open({ host: '127.0.0.1', eventLoopReceive: true });
    const tx = await UdpSender.open({ port: rx.address().port });
    setTimeout(() => tx.send(new TextEncoder().encode('bun')), 50);
    let text = '';
    for await (const b of rx) {
      text = new TextDecoder().decode(b.payload(0));
      break;
    }
    expect(text).toBe('bun');
    expect(rx.stats()).toMatchObject({ backend: 'native', directBatches: 0 });
    tx.close();
  });

  it("loads the musl prebuild in Bun's musl build and receives, truncates, drops and counts exactly", async () => {
    // The musl prebuild, made by the real script (Zig from the cache `npm run test:prebuilds` filled).
    const out = join(scratch, 'out');
    const built = await run('node', [join(root, 'scripts', 'prebuild.mjs'), '--arch', 'x64', '--only', 'musl', '--out', out], { ...process.env, UDP_RING_NO_MUSL: '' });
    expect(built.status, built.stderr.slice(-3000)).toBe(0);
    // A package laid out as the tarball is, carrying only the musl file.
    const pkg = join(scratch, 'pkg');
    cpSync(join(root, 'dist'), join(pkg, 'dist'), { recursive: true });
    cpSync(join(root, 'package.json'), join(pkg, 'package.json'));
    cpSync(out, join(pkg, 'prebuilds'), { recursive: true });
    expect(readdirSync(join(pkg, 'prebuilds', 'linux-x64'))).toEqual(['udp-ring.musl.node']);
    mkdirSync(join(pkg, 'node_modules'));
    symlinkSync(join(root, 'node_modules', 'node-gyp-build'), join(pkg, 'node_modules', 'node-gyp-build'));

    const bun = bunPath('musl') as string;
    expect(execFileSync('readelf', ['-l', bun], { encoding: 'utf8' })).toContain('[Requesting program interpreter: /lib/ld-musl-x86_64.so.1]');
    const env = bunEnv('musl', { PATH: process.env.PATH, HOME: process.env.HOME }) as NodeJS.ProcessEnv;
    const result = await run(bun, [join(root, 'test', 'fixtures', 'runtime-exercise.mjs'), pkg, '200000'], env);
    expect(result.status, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout);
    expect(seen.runtime).toMatch(/^bun 1\.4\./);
    // A musl process: musl's libc mapped, glibc's not; the addon is the musl prebuild, chosen without LIBC.
    expect(seen.muslProcess).toBe(true);
    expect(seen.glibcMapped).toBe(false);
    expect(seen.addon).toBe(join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.musl.node'));
    expect(seen.problems).toEqual([]);
    expect(seen.ipv4).toEqual({ delivered: 200000, kernelDrops: 0, ringDrops: 0, closed: true });
    expect(seen.ipv6).toEqual({ delivered: 50000, kernelDrops: 0, ringDrops: 0, closed: true });
    expect(seen.truncation).toEqual({ size: 100, wireSize: 300, truncated: true, intact: true, counted: 1 });
    expect(seen.drop.delivered + seen.drop.ringDrops + seen.drop.kernelDrops).toBe(seen.drop.sent);
    expect(seen.drop.ringDrops).toBeGreaterThan(0);
    expect(seen.waiting).toMatchObject({ text: 'after a wait', directBatches: 0 });
  }, 600_000);
});
