// udp-ring/register swaps dgram for a whole process, with nothing in the app changed:
// --require (CommonJS twin) and --import (ES module), each with a CommonJS and an ES module
// app whose dependency requires node:dgram itself; createSocket({ udpRing: false }) opts out.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnAsync } from './helpers.js';

const root = join(import.meta.dirname, '..');
const run = (...args: string[]) =>
  JSON.parse(execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', timeout: 30_000 }).trim().split('\n').at(-1)!);

describe('udp-ring/register', () => {
  for (const flag of ['--require', '--import']) {
    for (const app of ['app.cjs', 'app.mjs']) {
      it(`node ${flag} udp-ring/register ${app}: dgram and node:dgram are the facade, dependencies included`, () => {
        expect(run(flag, 'udp-ring/register', `test/fixtures/register/${app}`)).toEqual({
          echo: 'ping', sameModule: true, server: true, dependency: true, optOut: false,
        });
      });
    }
  }

  // Node passes execArgv (and NODE_OPTIONS) to a worker thread by default, so the hook is installed
  // again in each worker's own module system: require and import there get the facade too.
  const inWorkers = { echo: 'ping', server: true, dependency: true };
  const workers = async (args: string[], env: NodeJS.ProcessEnv = process.env) => {
    const result = await spawnAsync(process.execPath, [...args, 'test/fixtures/register/workers.cjs'], { cwd: root, env, timeout: 30_000 });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    return JSON.parse(result.stdout.trim().split('\n').at(-1)!);
  };
  for (const flag of ['--require', '--import']) {
    it(`node ${flag} udp-ring/register: dgram in worker threads (CommonJS and ES module workers) is the facade`, async () => {
      expect(await workers([flag, 'udp-ring/register'])).toEqual({ 'worker.cjs': inWorkers, 'worker.mjs': inWorkers });
    });
  }

  it("NODE_OPTIONS='--import udp-ring/register': worker threads too; without it, node:dgram", async () => {
    expect(await workers([], { ...process.env, NODE_OPTIONS: '--import udp-ring/register' })).toEqual({ 'worker.cjs': inWorkers, 'worker.mjs': inWorkers });
    const plain = { echo: 'ping', server: false, dependency: false };
    expect(await workers([], { ...process.env, NODE_OPTIONS: '' })).toEqual({ 'worker.cjs': plain, 'worker.mjs': plain });
  });

  it('without the flag, the same app runs on node:dgram', () => {
    expect(run('test/fixtures/register/app.cjs')).toEqual({
      echo: 'ping', sameModule: true, server: false, dependency: false, optOut: false,
    });
  });

  it('both flags at once install the hook once', () => {
    expect(run('--require', 'udp-ring/register', '--import', 'udp-ring/register', 'test/fixtures/register/app.mjs')).toEqual({
      echo: 'ping', sameModule: true, server: true, dependency: true, optOut: false,
    });
  });
});
