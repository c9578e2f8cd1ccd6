// Runs the pinned Bun (glibc or musl build) for the `npm run test:bun` stage.
//
//   node scripts/bun.mjs <glibc|musl> [bun args...]     runs bun, exit code passed through
//   node scripts/bun.mjs <glibc|musl> --print-path      prints the bun binary (after fetching it)
//
// Bun is not a dependency: npm pack fetches @oven/bun-linux-x64[-musl]@BUN.version
// once, held to the pinned integrity, into $XDG_CACHE_HOME/udp-ring/bun-<version>/
// (default ~/.cache).
//
// The musl build is a real musl program (musl's loader, musl libc: Debian's
// `musl` package) that expects Alpine's libstdc++. Debian has no musl
// libstdc++, so it runs with Debian's libstdc++.so.6 and libgcc_s.so.1 beside
// a small shim (compiled here with cc, linked to nothing) for the seven
// glibc-only names they import (arc4random, __strftime_l,
// __cxa_thread_atexit_impl, __libc_single_threaded, _dl_find_object,
// __cpu_indicator_init, __cpu_model), as Alpine's gcompat does. The shim is
// named ld-linux-x86-64.so.2, which libstdc++ lists as NEEDED. Only Bun's own
// C++ runtime goes through it; udp-ring's musl addon carries libc++ inside.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BUN = {
  version: '1.4.5',
  glibc: { package: '@oven/bun-linux-x64', integrity: 'sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVPZtt1aJ1g==' },
  musl: { package: '@oven/bun-linux-x64-musl', integrity: 'sha512-10QoW/YfTgnURaGEaHpJCiXjLI2e5iTtfVDaA5JKcyUzaa1cq6cVUY9/Uq5XkYzvtRjHLRe9Oj/lTDIQcxy8HQ==' },
};
export const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1';

const say = (message) => console.error(`udp-ring bun: ${message}`);

function cacheDir() {
  const base = process.env.XDG_CACHE_HOME && isAbsolute(process.env.XDG_CACHE_HOME) ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'udp-ring', `bun-${BUN.version}`);
}

function npmCommand() {
  const execPath = process.env.npm_execpath;
  if (execPath && /npm-cli\.js$/.test(execPath)) return [process.execPath, [execPath]];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  return existsSync(bundled) ? [process.execPath, [bundled]] : ['npm', []];
}

/** The bun binary of `flavor`, fetched on first use. */
export function bunPath(flavor) {
  const pin = BUN[flavor];
  const dir = join(cacheDir(), flavor);
  const bun = join(dir, 'package', 'bin', 'bun');
  if (existsSync(bun)) return bun;
  say(`fetching ${pin.package}@${BUN.version} into ${dir}`);
  mkdirSync(dir, { recursive: true });
  const download = mkdtempSync(join(dir, 'download-'));
  try {
    const [npm, npmArgs] = npmCommand();
    const packed = execFileSync(npm, [...npmArgs, 'pack', `${pin.package}@${BUN.version}`, '--json', '--ignore-scripts', '--pack-destination', download], {
      cwd: download, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [info] = JSON.parse(packed);
    if (info?.integrity !== pin.integrity) throw new Error(`${pin.package}@${BUN.version}: integrity ${info?.integrity} is not the pinned ${pin.integrity}`);
    execFileSync('tar', ['-xzf', join(download, info.filename), '-C', download], { stdio: 'inherit' });
    rmSync(join(dir, 'package'), { recursive: true, force: true });
    renameSync(join(download, 'package'), join(dir, 'package'));
    return bun;
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
}

const SHIM = `
#include <stddef.h>
#include <stdlib.h>
#include <pthread.h>
#include <time.h>
struct __locale_struct;
size_t strftime_l(char *, size_t, const char *, const struct tm *, struct __locale_struct *);
size_t __strftime_l(char *s, size_t n, const char *f, const struct tm *t, struct __locale_struct *l) { return strftime_l(s, n, f, t, l); }
int getentropy(void *, size_t);
unsigned int arc4random(void) { unsigned int v = 0; getentropy(&v, sizeof v); return v; }
char __libc_single_threaded = 0;
/* thread_local destructors, run at thread exit through a pthread key (LIFO). */
struct node { void (*f)(void *); void *o; struct node *next; };
static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void run(void *p) { for (struct node *n = p, *next; n; n = next) { next = n->next; n->f(n->o); free(n); } }
static void make(void) { pthread_key_create(&key, run); }
int __cxa_thread_atexit_impl(void (*f)(void *), void *o, void *dso) {
  (void)dso;
  pthread_once(&once, make);
  struct node *n = malloc(sizeof *n);
  if (!n) return -1;
  n->f = f; n->o = o; n->next = pthread_getspecific(key);
  pthread_setspecific(key, n);
  return 0;
}
/* -1: not found, so libgcc's unwinder falls back to dl_iterate_phdr. */
int _dl_find_object(void *pc, void *result) { (void)pc; (void)result; return -1; }
int __cpu_indicator_init(void) { return 0; }
struct { unsigned int vendor, type, subtype, features[1]; } __cpu_model;
`;

/** LD_LIBRARY_PATH for the musl build: Debian's libstdc++ and libgcc_s, and the shim. */
export function muslLibraryPath() {
  if (!existsSync(MUSL_LOADER)) throw new Error(`musl's dynamic loader ${MUSL_LOADER} is missing: apt-get install musl (.ci/run does)`);
  const dir = join(cacheDir(), 'musl-libs');
  const shim = join(dir, 'ld-linux-x86-64.so.2');
  if (existsSync(shim)) return dir;
  mkdirSync(dir, { recursive: true });
  for (const name of ['libstdc++.so.6', 'libgcc_s.so.1']) {
    const found = spawnSync('cc', ['-print-file-name=' + name], { encoding: 'utf8' }).stdout?.trim();
    if (!found || !isAbsolute(found) || !existsSync(found)) throw new Error(`${name} not found (cc -print-file-name): apt-get install g++`);
    copyFileSync(found, join(dir, name));
  }
  writeFileSync(join(dir, 'shim.c'), SHIM);
  execFileSync('cc', ['-O2', '-shared', '-fPIC', '-nostdlib', '-Wall', '-o', `${shim}.tmp`, join(dir, 'shim.c')], { stdio: 'inherit' });
  renameSync(`${shim}.tmp`, shim);
  return dir;
}

/** Environment for running `flavor`. */
export function bunEnv(flavor, env = process.env) {
  if (flavor !== 'musl') return { ...env };
  const libs = muslLibraryPath();
  return { ...env, LD_LIBRARY_PATH: env.LD_LIBRARY_PATH ? `${libs}:${env.LD_LIBRARY_PATH}` : libs };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [flavor, ...args] = process.argv.slice(2);
  if (!BUN[flavor] || flavor === 'version') {
    console.error('usage: node scripts/bun.mjs <glibc|musl> [--print-path | bun args...]');
    process.exit(2);
  }
  const bun = bunPath(flavor);
  if (args[0] === '--print-path') {
    console.log(bun);
    process.exit(0);
  }
  const run = spawnSync(bun, args, { stdio: 'inherit', env: bunEnv(flavor) });
  if (run.error) throw run.error;
  process.exit(run.status ?? 1);
}
