// What the tests of the packed package share (install, prebuild): npm as this
// Node ships it, the glibc prebuild the tarball carries, and a PATH with no
// compiler to install under.
import { existsSync, mkdirSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { spawnAsync, type SpawnResult } from '../helpers.js';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const npmCli = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
export const glibcPrebuild = join(root, 'prebuilds', 'linux-x64', 'udp-ring.glibc.node');

/**
 * Build output, not committed: the x64 glibc prebuild, made with g++ when missing or older than
 * the sources. The Zig builds (a download on first use) are `npm run test:prebuilds`'.
 */
export async function freshGlibcPrebuild(): Promise<void> {
  const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native')).map((f) => join(root, 'native', f))];
  if (existsSync(glibcPrebuild) && statSync(glibcPrebuild).mtimeMs >= Math.max(...sources.map((f) => statSync(f).mtimeMs))) return;
  const built = await spawnAsync(process.execPath, [join(root, 'scripts', 'prebuild.mjs'), '--arch', 'x64', '--only', 'glibc', '--system-gxx'],
    { cwd: root, timeout: 300_000 });
  expect(built.status, built.stderr).toBe(0);
}

/** A folder in `scratch` for PATH holding only `node` and `sh` (npm runs install scripts with sh): no g++, make or python3. */
export function barePath(scratch: string): string {
  const bare = join(scratch, 'bin');
  mkdirSync(bare);
  symlinkSync(process.execPath, join(bare, 'node'));
  symlinkSync('/bin/sh', join(bare, 'sh'));
  return bare;
}

/** Runs a command with PATH = `bare` (and HOME and npm's cache kept). */
export function runBare(bare: string, file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<SpawnResult> {
  return spawnAsync(file, args, {
    cwd,
    timeout: 120_000,
    env: { HOME: process.env.HOME, PATH: bare, npm_config_cache: process.env.npm_config_cache, ...env },
  });
}
