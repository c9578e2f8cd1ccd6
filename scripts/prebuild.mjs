// `npm run prebuild`: Node-API prebuilds for this platform under prebuilds/,
// made by prebuildify in a scratch copy of the sources so the working build/
// (which tests and colleagues load) is never torn down mid-run.
//
// linux-x64 glibc is built here. A musl prebuild needs a musl C++ toolchain
// (libstdc++ built against musl); Debian's musl-tools gives only musl-gcc for
// C, so without one the musl build is skipped and said so: a glibc binary is
// never tagged musl.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const prebuildify = join(dirname(require.resolve('prebuildify/package.json')), 'bin.js');

function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

// Installed headers (e.g. /usr/include/node from the distribution's nodejs) avoid a download.
function headers() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? { npm_config_nodedir: prefix } : {};
}

function build(libc, env) {
  const scratch = mkdtempSync(join(tmpdir(), 'udp-ring-prebuild-'));
  try {
    for (const entry of ['binding.gyp', 'package.json', 'native']) cpSync(join(root, entry), join(scratch, entry), { recursive: true });
    // binding.gyp asks node-addon-api for its include dir from the package's own node_modules.
    symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
    // Node-API binaries do not depend on the Node version: build against this
    // Node's headers (no download) rather than prebuildify's default, the newest.
    const args = ['--napi', '--strip', '--tag-libc', '--libc', libc, '--target', process.versions.node, '--cwd', scratch];
    execFileSync(process.execPath, [prebuildify, ...args], { cwd: scratch, stdio: 'inherit', env: { ...headers(), ...process.env, ...env } });
    mkdirSync(join(root, 'prebuilds'), { recursive: true });
    cpSync(join(scratch, 'prebuilds'), join(root, 'prebuilds'), { recursive: true });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

if (process.platform !== 'linux') {
  console.error('udp-ring prebuild: the addon is Linux-only; nothing to build on ' + process.platform);
  process.exit(1);
}

build('glibc', {});
// A real musl C++ toolchain (e.g. x86_64-linux-musl-g++ from musl.cc, or Alpine's g++) is
// required; musl-gcc alone cannot link C++ against a musl libstdc++.
const muslCxx = process.env.MUSL_CXX ?? (hasCommand('x86_64-linux-musl-g++') ? 'x86_64-linux-musl-g++' : null);
if (muslCxx) {
  const muslCc = process.env.MUSL_CC ?? 'x86_64-linux-musl-gcc';
  build('musl', { CC: muslCc, CXX: muslCxx, LINK: muslCxx });
} else {
  console.error('udp-ring prebuild: no musl C++ toolchain (set MUSL_CXX); musl prebuild skipped, glibc only.');
}

for (const dir of readdirSync(join(root, 'prebuilds'))) {
  for (const file of readdirSync(join(root, 'prebuilds', dir))) console.log(`prebuilds/${dir}/${file}`);
}
