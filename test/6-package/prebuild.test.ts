// The package as a user gets it: `npm pack` with its prebuild, installed into
// an empty project by an npm that can reach neither a compiler nor the network,
// then loaded and fed a datagram. Proves the tarball carries a working binary.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script, untyped
import { checkMuslPrebuild } from '../../scripts/check-musl-prebuild.mjs';
// @ts-expect-error: a plain .mjs fixture, untyped
import { dependencyTarballs } from '../fixtures/offline-install.mjs';
import { spawnAsync } from '../helpers.js';
import { barePath, freshGlibcPrebuild, npmCli, root, runBare } from './packaging.js';

let scratch = '';
let tarball = '';
let project = '';
// PATH holding only `node` and `sh` (npm runs install scripts with it): no g++, make or python3.
let bare = '';

const run = (file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) => runBare(bare, file, args, cwd, env);

const consumer = `
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { UdpReceiver } from 'udp-ring';
const backend = process.argv[2];
const rx = await UdpReceiver.open({ host: '127.0.0.1', ...(backend ? { backend } : {}) });
const tx = dgram.createSocket('udp4');
tx.send('hello prebuild', rx.address().port, '127.0.0.1');
let text = '';
for await (const batch of rx) { text = Buffer.from(batch.payload(0)).toString(); break; }
tx.close();
const addons = readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith('.node')).map((l) => l.split(/\\s+/).pop());
console.log(JSON.stringify({ text, backend: rx.stats().backend, addons: [...new Set(addons)] }));
`;

describe('prebuild: the packed package loads without a compiler', () => {
  beforeAll(async () => {
    await freshGlibcPrebuild();
    scratch = mkdtempSync(join(tmpdir(), 'udp-ring-pack-'));
    bare = barePath(scratch);
    project = join(scratch, 'app');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    writeFileSync(join(project, 'main.mjs'), consumer);
  }, 300_000);

  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('npm pack ships the linux-x64 glibc prebuild (and a musl one only if it is one)', async () => {
    const packed = await spawnAsync(process.execPath, [npmCli, 'pack', '--json', '--ignore-scripts', '--pack-destination', scratch], {
      cwd: root, timeout: 120_000,
    });
    expect(packed.status, packed.stderr).toBe(0);
    const [info] = JSON.parse(packed.stdout) as [{ filename: string; files: { path: string }[] }];
    const files = info.files.map((f) => f.path);
    expect(files).toContain('prebuilds/linux-x64/udp-ring.glibc.node');
    expect(files).toContain('dist/index.js');
    // Prebuilds by libc, node-gyp-build's names; a musl one ships only from `npm run prebuild`
    // (with Zig), and whatever file is labelled musl must be one by its structure, never glibc's.
    const prebuilds = files.filter((f) => f.startsWith('prebuilds/'));
    expect(prebuilds.filter((f) => !/^prebuilds\/linux-(x64|arm64)\/udp-ring\.(glibc|musl)\.node$/.test(f))).toEqual([]);
    for (const musl of prebuilds.filter((f) => f.includes('musl'))) {
      const arch = musl.includes('linux-arm64') ? 'arm64' : 'x64';
      const result = checkMuslPrebuild(join(root, musl), { arch }) as { ok: boolean; problems: string[] };
      expect(result.problems, musl).toEqual([]);
    }
    expect(files.filter((f) => f.startsWith('build/'))).toEqual([]);
    tarball = join(scratch, info.filename);
  });

  it('installs offline with no compiler on PATH, loads the prebuild and receives a datagram', async () => {
    for (const compiler of ['g++', 'c++', 'make', 'python3']) {
      expect(spawnSync(compiler, ['--version'], { env: { PATH: bare } }).error).toBeDefined();
    }
    expect(tarball).not.toBe('');
    // Its dependencies packed from node_modules: a fresh machine's npm cache cannot resolve their ranges offline.
    mkdirSync(join(scratch, 'deps'));
    const dependencies = dependencyTarballs(npmCli, join(scratch, 'deps')) as string[];
    const install = await run(process.execPath, [npmCli, 'install', tarball, ...dependencies, '--offline', '--no-audit', '--no-fund'], project);
    expect(install.status, install.stderr).toBe(0);
    const installed = join(project, 'node_modules', 'udp-ring');
    expect(existsSync(join(installed, 'build'))).toBe(false);
    const result = await run(process.execPath, ['main.mjs', 'native'], project);
    expect(result.status, result.stderr).toBe(0);
    const seen = JSON.parse(result.stdout) as { text: string; backend: string; addons: string[] };
    expect(seen.text).toBe('hello prebuild');
    expect(seen.backend).toBe('native');
    expect(seen.addons).toEqual([join(installed, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node')]);
  });

  it("without a prebuild: one error says what was tried and what to do, unforced too; 'auto' takes the dgram backend", async () => {
    const installed = join(project, 'node_modules', 'udp-ring');
    rmSync(join(installed, 'prebuilds'), { recursive: true, force: true });
    const forced = await run(process.execPath, ['main.mjs', 'native'], project);
    expect(forced.status).not.toBe(0);
    expect(forced.stderr).toContain('ERR_UDP_RING_NATIVE');
    expect(forced.stderr).toContain(join(installed, 'prebuilds', 'linux-x64'));
    expect(forced.stderr).toContain(join(installed, 'build', 'Release'));
    expect(forced.stderr).toContain('npm rebuild udp-ring');
    expect(forced.stderr).toContain("backend 'dgram'");
    const unforced = await run(process.execPath, ['main.mjs'], project);
    expect(unforced.status).not.toBe(0);
    expect(unforced.stderr).toContain('ERR_UDP_RING_NATIVE');
    const fallback = await run(process.execPath, ['main.mjs', 'auto'], project);
    expect(fallback.status, fallback.stderr).toBe(0);
    const seen = JSON.parse(fallback.stdout) as { text: string; backend: string; addons: string[] };
    expect(seen).toEqual({ text: 'hello prebuild', backend: 'dgram', addons: [] });
  });
});
