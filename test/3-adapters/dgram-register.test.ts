// udp-ring/register swaps dgram for a whole process, with nothing in the app changed:
// --require (CommonJS twin) and --import (ES module), each with a CommonJS and an ES module
// app whose dependency requires node:dgram itself; createSocket({ udpRing: false }) opts out.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
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
