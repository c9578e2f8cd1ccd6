// npm's install step for udp-ring. Never fails the install: where the addon
// cannot be had, UdpReceiver.open() rejects later with the reason (on Linux),
// or the dgram backend runs (elsewhere), and `udp-ring doctor` says which.
//
// * Off Linux: nothing to build (the receiver needs recvmmsg, SO_RXQ_OVFL,
//   eventfd); one line says so.
// * Linux: the shipped prebuild (or an earlier build) if it loads, tried in a
//   child so that a binary this system cannot run does not take npm down; else
//   compile with node-gyp. A failed compile leaves build/install-error.log,
//   which the load error quotes, and a short note instead of a failed install.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const say = (message) => console.error(`udp-ring: ${message}`);
const platform = process.env.npm_config_platform || process.platform;

if (platform !== 'linux') {
  say(`no native addon on ${platform} (the receiver is Linux-only); the dgram backend (node:dgram) will run here.`);
  process.exit(0);
}

// Installing udp-ring's own checkout (npm ci there): always compile, so native changes are what the tests load.
const real = (path) => {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
};
const ownCheckout = process.env.INIT_CWD !== undefined && real(process.env.INIT_CWD) === real(root);
const fromSource = ownCheckout || process.env.npm_config_build_from_source === 'true';
const probe = `require(${JSON.stringify(require.resolve('node-gyp-build'))})(${JSON.stringify(root)})`;
if (!fromSource && spawnSync(process.execPath, ['-e', probe], { stdio: 'ignore', timeout: 60_000 }).status === 0) process.exit(0);

// npm passes its own node-gyp; a development checkout has one in node_modules.
function nodeGyp() {
  const given = process.env.npm_config_node_gyp;
  if (given && existsSync(given)) return [process.execPath, [given]];
  try {
    return [process.execPath, [join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js')]];
  } catch {
    return ['node-gyp', []];
  }
}

const [command, args] = nodeGyp();
let tail = '';
const keep = (chunk) => {
  tail = (tail + chunk).slice(-4000);
};
const child = spawn(command, [...args, 'rebuild'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  keep(chunk);
});
child.stderr.on('data', (chunk) => {
  process.stderr.write(chunk);
  keep(chunk);
});
child.on('error', (error) => keep(`\n${command}: ${error.message}\n`));
child.on('close', (code) => {
  if (code === 0) process.exit(0);
  // In udp-ring's own checkout a failed compile fails, as any build would.
  if (ownCheckout) process.exit(code ?? 1);
  const log = join(root, 'build', 'install-error.log');
  mkdirSync(dirname(log), { recursive: true });
  writeFileSync(log, `node-gyp rebuild exited with ${code} (no prebuild for linux-${process.arch} loaded):\n${tail}`);
  say(`no prebuild for linux-${process.arch} loaded here and compiling the addon failed (see ${log}).`);
  say('UdpReceiver.open() will reject with ERR_UDP_RING_NATIVE until it is fixed: install python3, make and g++, then');
  say("`npm rebuild udp-ring`; or choose backend 'dgram' (node:dgram, no stall protection) explicitly.");
  process.exit(0);
});
