// The musl (Alpine) prebuild, made by the real prebuild script into a scratch
// --out directory: Zig is fetched into the user's cache on first use (73 MB; on
// this 2-core machine about 2.5 min from an empty cache, 15 s warm), then the
// binary is checked structurally and loaded by musl's real dynamic loader (Debian's
// `musl` package, which .ci/run installs; its absence fails these tests) in a musl
// host exporting Node-API stubs: dlopen RTLD_NOW, napi_register_module_v1 found and
// run through. The glibc build must fail that load. No musl Node is reachable here,
// so the addon is never run inside one; node-gyp-build's choice of file is checked too.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnOrThrow } from '../helpers.js';
// @ts-expect-error: a plain .mjs script, untyped
import { checkMuslPrebuild } from '../../scripts/check-musl-prebuild.mjs';
// @ts-expect-error: a plain .mjs script, untyped
import { loadMuslPrebuild, MUSL_LOADER as muslLoader } from '../../scripts/load-musl-prebuild.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(root, 'scripts', 'prebuild.mjs');
const nodeGypBuild = createRequire(import.meta.url).resolve('node-gyp-build');

type Check = {
  ok: boolean;
  problems: string[];
  facts: { needed: string[]; versionNames: string[]; exported: string[]; undefinedNodeApi: number; undefinedOther: string[] };
};
const check = checkMuslPrebuild as (file: string) => Check;
type Load = { ok: boolean; skipped?: string; interpreter: string; stubs: number; typedStubs: number; init: boolean; output: string; problems: string[] };
const load = loadMuslPrebuild as (file: string, options?: { init?: boolean; env?: Record<string, string>; loader?: string }) => Load;
const MUSL_LOADER = muslLoader as string;

// Not a skip: CI installs the loader (.ci/run), so its absence is a broken machine, said plainly.
function needMuslLoader() {
  expect(existsSync(MUSL_LOADER), `musl's dynamic loader ${MUSL_LOADER} is missing: apt-get install musl (.ci/run does)`).toBe(true);
}

const glibcBuild = () => [join(root, 'build', 'Release', 'udp_ring.node'), join(root, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node')].find(existsSync);

// Names and mtimes under a directory, to show the run left the repo's prebuilds/ alone (it
// builds in a scratch copy, so build/ is not touched either).
function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort().map((f) => `${f} ${statSync(join(dir, f)).mtimeMs}`);
}

// The prebuild script, run as `npm run prebuild` would. Not spawnSync: minutes of a blocked event
// loop time out vitest's worker RPC.
function prebuild(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnOrThrow(process.execPath, [script, ...args], { cwd: root, env: { ...process.env, UDP_RING_NO_MUSL: '', ...env } });
}

let scratch = '';
let musl = '';

describe('prebuild: the musl prebuild', () => {
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-musl-'));
  });

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('prebuild.mjs --only musl makes linux-x64/udp-ring.musl.node with no compiler warning, outside the repo', async () => {
    const before = snapshot(join(root, 'prebuilds'));
    const out = join(scratch, 'out');
    const run = await prebuild(['--arch', 'x64', '--only', 'musl', '--out', out]);
    expect(run.status, run.stderr.slice(-4000)).toBe(0);
    expect(readdirSync(out)).toEqual(['linux-x64']);
    expect(readdirSync(join(out, 'linux-x64'))).toEqual(['udp-ring.musl.node']);
    musl = join(out, 'linux-x64', 'udp-ring.musl.node');
    // -Wall -Wextra hold for clang against musl's headers too.
    expect(`${run.stdout}\n${run.stderr}`.split('\n').filter((l) => /\bwarning:/.test(l))).toEqual([]);
    // The script's own checks ran, and passed: structure, then the load under musl's loader.
    expect(run.stderr).toContain('udp-ring.musl.node: musl Node-API addon');
    expect(run.stderr).toContain("udp-ring.musl.node: loads under musl's dynamic loader");
    expect(snapshot(join(root, 'prebuilds'))).toEqual(before);
  }, 900_000);

  it('is a musl Node-API addon by its structure: musl libc only, no symbol versions, libc++ inside', () => {
    expect(musl).not.toBe('');
    const result = check(musl);
    expect(result.problems).toEqual([]);
    expect(result.facts.needed).toHaveLength(1);
    expect(['libc.so', 'libc.musl-x86_64.so.1']).toContain(result.facts.needed[0]);
    expect(result.facts.versionNames).toEqual([]);
    expect(result.facts.exported).toEqual(['napi_register_module_v1', 'node_api_module_get_api_version_v1']);
    expect(result.facts.undefinedNodeApi).toBeGreaterThan(20);
    // The syscalls the receiver is built on come from libc; nothing from a C++ runtime.
    expect(result.facts.undefinedOther).toEqual(expect.arrayContaining(['recvmmsg', 'sendmmsg', 'eventfd', 'pthread_create']));
    expect(result.facts.undefinedOther.filter((s) => /^(_Z|__cxa_|_Unwind_|__gxx_)/.test(s))).toEqual([]);
    // The script's CLI says the same.
    const cli = spawnSync(process.execPath, [join(root, 'scripts', 'check-musl-prebuild.mjs'), musl], { encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
  });

  it("loads under musl's real dynamic loader: dlopen RTLD_NOW binds every symbol, napi_register_module_v1 is found and runs through", () => {
    expect(musl).not.toBe('');
    needMuslLoader();
    const result = load(musl);
    expect(result.skipped).toBeUndefined();
    expect(result.problems).toEqual([]);
    expect(result.ok, result.output).toBe(true);
    // The host really is a musl program: musl's loader maps it, and with it the addon.
    expect(result.interpreter).toBe(MUSL_LOADER);
    expect(result.stubs).toBeGreaterThan(20);
    expect(result.typedStubs).toBe(result.stubs);
    expect(result.output).toContain('dlopen: ok');
    expect(result.output).toContain('dlsym napi_register_module_v1: found');
    // Init ran against stubs that do nothing: the two classes defined, the exports set.
    expect(result.init).toBe(true);
    expect(result.output).toMatch(/napi_register_module_v1: returned the exports handle after \d+ Node-API calls/);
    expect(result.output).toMatch(/napi_define_class\*2\b/);
    expect(result.output).not.toMatch(/called outside Init|napi_fatal_error/);
    // The required part alone, and through the CLI.
    expect(load(musl, { init: false }).output).not.toContain('napi_register_module_v1: returned');
    const cli = spawnSync(process.execPath, [join(root, 'scripts', 'load-musl-prebuild.mjs'), musl], { encoding: 'utf8' });
    expect(cli.status, cli.stderr).toBe(0);
    expect(cli.stdout).toContain("loads under musl's dynamic loader");
    // Where there is no musl loader the script says so rather than failing (prebuild.mjs skips the load).
    expect(load(musl, { loader: join(scratch, 'no-ld-musl.so.1') }).skipped).toMatch(/is not installed \(Debian\/Ubuntu: apt-get install musl\)/);
  }, 180_000);

  it("a glibc build does not load under musl's dynamic loader", () => {
    needMuslLoader();
    const glibc = glibcBuild();
    expect(glibc, 'no glibc build to compare with').toBeDefined();
    const result = load(glibc!);
    expect(result.skipped).toBeUndefined();
    expect(result.interpreter).toBe(MUSL_LOADER);
    expect(result.ok).toBe(false);
    // musl's loader looks in its own library dirs, where no libstdc++.so.6 (or libc.so.6) is;
    // under scripts/test-asan.sh the build at hand is instrumented and needs libasan first.
    expect(result.output).toMatch(/dlopen failed: Error loading shared library (libstdc\+\+\.so\.6|libc\.so\.6|libasan\.so\.\d+)/);
    expect(result.output).not.toContain('dlsym napi_register_module_v1: found');
    // Not a search-path accident: given glibc's own directories, it fails on glibc-only symbols.
    const withGlibcDirs = load(glibc!, { env: { LD_LIBRARY_PATH: '/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu' } });
    expect(withGlibcDirs.ok).toBe(false);
    expect(withGlibcDirs.output).toMatch(/dlopen failed: Error relocating .*: symbol not found/);
    const cli = spawnSync(process.execPath, [join(root, 'scripts', 'load-musl-prebuild.mjs'), glibc!], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toContain("does NOT load under musl's dynamic loader");
  }, 180_000);

  it('the check refuses a glibc build', () => {
    const glibc = glibcBuild();
    expect(glibc, 'no glibc build to compare with').toBeDefined();
    const result = check(glibc!);
    expect(result.ok).toBe(false);
    expect(result.problems.join('\n')).toMatch(/libc\.so\.6/);
    expect(result.problems.join('\n')).toMatch(/GLIBC_/);
    const cli = spawnSync(process.execPath, [join(root, 'scripts', 'check-musl-prebuild.mjs'), glibc!], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
  });

  it('node-gyp-build loads the musl file on Alpine (LIBC=musl) and the glibc file elsewhere', () => {
    expect(musl).not.toBe('');
    const pkg = join(scratch, 'pkg');
    mkdirSync(join(pkg, 'prebuilds', 'linux-x64'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'udp-ring' }));
    copyFileSync(musl, join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.musl.node'));
    writeFileSync(join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node'), '');
    const resolveWith = (env: NodeJS.ProcessEnv) => {
      const run = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(nodeGypBuild)}).resolve(${JSON.stringify(pkg)})`], {
        cwd: root, encoding: 'utf8', env: { PATH: process.env.PATH, ...env },
      });
      expect(run.status, run.stderr).toBe(0);
      return run.stdout.trim();
    };
    // node-gyp-build takes libc from LIBC, else from /etc/alpine-release.
    expect(resolveWith({ LIBC: 'musl' })).toBe(join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.musl.node'));
    expect(resolveWith({})).toBe(join(pkg, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node'));
  });

  it('a glibc compiler given as MUSL_CXX fails the run loudly, and nothing is tagged musl', async () => {
    const out = join(scratch, 'refused');
    const run = await prebuild(['--arch', 'x64', '--only', 'musl', '--out', out], { MUSL_CXX: 'g++', MUSL_CC: 'gcc' });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('udp-ring.musl.node: NOT a usable musl Node-API addon');
    expect(run.stderr).toMatch(/problem: NEEDED other than musl libc: libc\.so\.6/);
    expect(run.stderr).toContain('musl prebuild failed');
    expect(existsSync(join(out, 'linux-x64', 'udp-ring.musl.node'))).toBe(false);
  }, 300_000);

  it('--no-musl or UDP_RING_NO_MUSL=1 skips the musl build and says so', async () => {
    for (const [args, env, reason] of [
      [['--no-musl'], {}, '--no-musl'],
      [[], { UDP_RING_NO_MUSL: '1' }, 'UDP_RING_NO_MUSL is set'],
    ] as const) {
      const out = join(scratch, 'skipped');
      const run = await prebuild(['--arch', 'x64', '--only', 'musl', '--out', out, ...args], env);
      expect(run.status, run.stderr).toBe(0);
      expect(run.stderr).toContain(`udp-ring prebuild: musl prebuild skipped (${reason})`);
      expect(existsSync(out)).toBe(false);
    }
  });
});
