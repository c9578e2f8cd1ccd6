// Loads a musl Node-API prebuild under musl's real dynamic loader, without a musl Node.
//
//   node scripts/load-musl-prebuild.mjs <file.node> [--zig <path>] [--no-init] [--trace]
//
// A tiny C host is compiled for musl, dynamically linked (PT_INTERP is musl's loader,
// /lib/ld-musl-x86_64.so.1: Debian's `musl` package), exporting a stub of every Node-API
// function the addon leaves undefined (the list is read from the addon with readelf each time,
// so it cannot go stale). The host then
//   1. dlopen(addon, RTLD_NOW | RTLD_LOCAL): musl's loader maps it, resolves every undefined
//      symbol against musl libc and the stubs, and runs its static constructors (libc++'s
//      included). A glibc build fails here (libstdc++.so.6 / libc.so.6, versioned symbols,
//      __*_chk), and so would a musl build that needed anything musl and Node do not provide;
//   2. dlsym(handle, "napi_register_module_v1") must find the entry point;
//   3. unless --no-init: calls napi_register_module_v1(env, exports) with fake handles. The stubs
//      (typed from Node's own node_api.h, preprocessed by the same compiler) return napi_ok and
//      write a non-null dummy handle (or zero) to an output last parameter, so the addon's Init
//      runs through: node-addon-api's DefineClass, Function::New, Object::Set… It must return
//      the exports handle it was given. Stubs do nothing: this proves the module initialises
//      against musl, not that any JavaScript-visible behaviour is right.
// What it does not prove: that the addon works inside a real musl Node (Alpine's), whose
// Node-API functions do real work. No musl Node is reachable here.
// Exit: 0 loaded; 1 did not load (or Init failed); 2 could not run the check (no musl loader,
// no compiler, bad usage). Without musl's loader, loadMuslPrebuild() says so in `skipped`.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dynamicSymbols } from './check-musl-prebuild.mjs';

/** musl's dynamic loader for x86-64, where Alpine and Debian's `musl` package put it. */
export const MUSL_LOADER = '/lib/ld-musl-x86_64.so.1';
const NODE_API = /^(napi|node_api)_/;
// Opaque handle types (pointer typedefs): an output of one of these gets a dummy non-null handle.
const HANDLE_TYPES = new Set([
  'napi_value', 'napi_ref', 'napi_handle_scope', 'napi_escapable_handle_scope', 'napi_callback_scope', 'napi_deferred',
  'napi_async_work', 'napi_async_context', 'napi_threadsafe_function', 'napi_env', 'void*',
]);

function cacheRoot() {
  const base = process.env.XDG_CACHE_HOME && isAbsolute(process.env.XDG_CACHE_HOME) ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'udp-ring');
}

/** $ZIG, a `zig` on PATH, else the one scripts/prebuild.mjs fetched into the cache (newest first). */
export function findZig() {
  if (process.env.ZIG) return process.env.ZIG;
  const onPath = spawnSync('sh', ['-c', 'command -v zig'], { encoding: 'utf8' });
  if (onPath.status === 0 && onPath.stdout.trim()) return onPath.stdout.trim();
  const cache = cacheRoot();
  const fetched = existsSync(cache) ? readdirSync(cache).filter((d) => d.startsWith('zig-')).sort().reverse() : [];
  return fetched.map((d) => join(cache, d, 'package', 'zig')).find(existsSync) ?? null;
}

function zigEnv(zig) {
  const version = spawnSync(zig, ['version'], { encoding: 'utf8' }).stdout?.trim().replace(/\+.*/, '');
  const cache = join(cacheRoot(), `zig-${version || 'unknown'}`);
  return { ZIG_GLOBAL_CACHE_DIR: join(cache, 'global-cache'), ZIG_LOCAL_CACHE_DIR: join(cache, 'local-cache') };
}

/** Node's own headers: npm_config_nodedir, the running Node's prefix, node-gyp's cache. */
function nodeIncludeDir() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(dirname(process.execPath)), 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ];
  return candidates.find((dir) => dir && existsSync(join(dir, 'node_api.h'))) ?? null;
}

/**
 * The prototypes of `names` from node_api.h, as the compiler sees them (preprocessed, so version
 * guards and macros are resolved): name → { returns, params: [{ type, name }] }.
 */
function prototypes(compile, include, names, dir) {
  const source = join(dir, 'headers.c');
  writeFileSync(source, '#include <node_api.h>\n');
  const run = compile.preprocess(source, include);
  if (run.status !== 0) throw new Error(`preprocessing node_api.h failed: ${run.stderr}`);
  const text = run.stdout.replace(/__attribute__\s*\(\((?:[^()]|\([^()]*\))*\)\)/g, ' ').replace(/\s+/g, ' ');
  const found = new Map();
  for (const m of text.matchAll(/\b(napi_status|void) (\w+) ?\(([^;{()]*)\) ?;/g)) {
    const [, returns, name, list] = m;
    if (!names.includes(name) || found.has(name)) continue;
    const params = list.split(',').map((p) => p.trim()).map((p) => {
      const parts = /^(.*?[\s*])(\w+)$/.exec(p);
      return parts ? { type: parts[1].replace(/\s+/g, ' ').replace(/ \*/g, '*').trim(), name: parts[2] } : null;
    });
    if (params.some((p) => !p)) continue;
    found.set(name, { returns, params });
  }
  return found;
}

/** The C source of the host: stubs for `names` (typed where `typed` has them), then main(). */
function hostSource(names, typed) {
  const lines = [
    '#include <dlfcn.h>', '#include <stdint.h>', '#include <stdio.h>', '#include <stdlib.h>', '#include <string.h>',
    ...(typed.size ? ['#include <node_api.h>'] : []),
    `static const char *const stub_names[${names.length}] = {${names.map((n) => JSON.stringify(n)).join(', ')}};`,
    `static unsigned long stub_calls[${names.length}];`,
    'static int in_init, trace;',
    'static char dummy_handles[1 << 16];',
    'static unsigned next_handle;',
    '/* A distinct non-null address per handle handed out; never dereferenced by the addon (only stubs take handles). */',
    'static void *dummy(void) { next_handle = (next_handle + 1) % sizeof dummy_handles; return &dummy_handles[next_handle]; }',
    'static int called(int i) {',
    '  stub_calls[i]++;',
    '  if (trace) fprintf(stderr, "host: %s\\n", stub_names[i]);',
    '  if (!in_init) fprintf(stderr, "host: Node-API stub %s called outside Init\\n", stub_names[i]);',
    '  return in_init;',
    '}',
  ];
  names.forEach((name, i) => {
    const proto = typed.get(name);
    if (!proto) {
      // No prototype (not in these headers): enough for the loader to bind; Init is not run.
      // An asm label, so no C declaration of the same name in node_api.h can clash with it.
      lines.push(`int untyped_stub_${i}(void) __asm__("${name}");`);
      lines.push(`int untyped_stub_${i}(void) { called(${i}); fprintf(stderr, "host: untyped stub %s called\\n", "${name}"); abort(); }`);
      return;
    }
    const params = proto.params.length === 1 && proto.params[0].type === 'void' ? [] : proto.params;
    const signature = `${proto.returns} ${name}(${params.length ? params.map((p) => `${p.type} ${p.name}`).join(', ') : 'void'})`;
    if (name === 'napi_fatal_error') {
      const [location, , message] = params.map((p) => p.name);
      lines.push(`${signature} { called(${i}); fprintf(stderr, "host: napi_fatal_error: %s: %s\\n", ${location} ? ${location} : "?", ${message} ? ${message} : "?"); exit(3); }`);
      return;
    }
    const body = [`if (!called(${i})) ${proto.returns === 'void' ? 'return;' : 'return napi_generic_failure;'}`];
    const last = params.at(-1);
    // An output is a last parameter that points to something writable (const T** is an output too).
    if (last && last.type.endsWith('*') && (!last.type.startsWith('const ') || last.type.endsWith('**'))) {
      const pointee = last.type.slice(0, -1);
      body.push(`if (${last.name}) { memset((void *)${last.name}, 0, sizeof *${last.name});`);
      if (HANDLE_TYPES.has(pointee)) body.push(`  *${last.name} = (${pointee})dummy();`);
      body.push('}');
    }
    if (proto.returns !== 'void') body.push('return napi_ok;');
    lines.push(`${signature} {`, ...body.map((b) => `  ${b}`), '}');
  });
  lines.push(
    'int main(int argc, char **argv) {',
    '  if (argc < 2) { fprintf(stderr, "usage: host <addon.node> [--init] [--trace]\\n"); return 2; }',
    '  int run_init = 0;',
    '  for (int a = 2; a < argc; a++) { if (!strcmp(argv[a], "--init")) run_init = 1; if (!strcmp(argv[a], "--trace")) trace = 1; }',
    '  void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);',
    '  if (!handle) { const char *e = dlerror(); printf("dlopen failed: %s\\n", e ? e : "(no dlerror)"); return 1; }',
    '  printf("dlopen: ok (RTLD_NOW: every symbol bound, static constructors run)\\n");',
    '  void *reg = dlsym(handle, "napi_register_module_v1");',
    '  if (!reg) { const char *e = dlerror(); printf("dlsym napi_register_module_v1 failed: %s\\n", e ? e : "(no dlerror)"); return 1; }',
    '  printf("dlsym napi_register_module_v1: found\\n");',
    '  if (!run_init) return 0;',
    '  void *env = dummy(), *exports = dummy();',
    '  in_init = 1;',
    '  void *(*init)(void *, void *) = (void *(*)(void *, void *))reg;',
    '  void *returned = init(env, exports);',
    '  in_init = 0;',
    '  unsigned long total = 0;',
    `  for (int i = 0; i < ${names.length}; i++) total += stub_calls[i];`,
    '  printf("napi_register_module_v1: %s after %lu Node-API calls:", returned == exports ? "returned the exports handle" : "returned another handle", total);',
    `  for (int i = 0; i < ${names.length}; i++) if (stub_calls[i]) printf(" %s*%lu", stub_names[i], stub_calls[i]);`,
    '  printf("\\n");',
    '  return returned == exports ? 0 : 1;',
    '}',
  );
  return `${lines.join('\n')}\n`;
}

/** How the host is compiled: Zig (build-exe -dynamic: `zig cc` links musl statically whatever it is told), or a musl cc. */
function compiler({ zig, cc }) {
  if (zig) {
    const env = { ...process.env, ...zigEnv(zig) };
    return {
      name: `${zig} build-exe -target x86_64-linux-musl -dynamic`,
      preprocess: (source, include) => spawnSync(zig, ['cc', '-target', 'x86_64-linux-musl', '-E', '-P', '-DNAPI_VERSION=2147483646', `-I${include}`, source], { encoding: 'utf8', env, maxBuffer: 64 << 20 }),
      build: (source, out, include) => spawnSync(zig, [
        'build-exe', '-target', 'x86_64-linux-musl', '-dynamic', '-rdynamic', '-lc', '-O', 'ReleaseSafe',
        '--dynamic-linker', MUSL_LOADER, ...(include ? ['-I', include, '-DNAPI_VERSION=2147483646'] : []), source, `-femit-bin=${out}`,
      ], { encoding: 'utf8', env, cwd: dirname(out) }),
    };
  }
  return {
    name: cc,
    preprocess: (source, include) => spawnSync(cc, ['-E', '-P', '-DNAPI_VERSION=2147483646', `-I${include}`, source], { encoding: 'utf8', maxBuffer: 64 << 20 }),
    build: (source, out, include) => spawnSync(cc, ['-rdynamic', '-O1', ...(include ? [`-I${include}`, '-DNAPI_VERSION=2147483646'] : []), '-o', out, source], { encoding: 'utf8' }),
  };
}

/** The PT_INTERP of an executable, from readelf -l. */
export function interpreter(file) {
  const segments = execFileSync('readelf', ['-lW', file], { encoding: 'utf8' });
  return /\[Requesting program interpreter: ([^\]]+)\]/.exec(segments)?.[1] ?? null;
}

/**
 * Loads `addon` under musl's loader. `zig` (or `cc`, a musl C compiler) builds the host; without
 * either, findZig(). Returns { ok, skipped?, interpreter, output, init, problems }.
 * @param {string} addon
 * `env` is added to the host's environment (e.g. LD_LIBRARY_PATH, which musl's loader honours).
 * @param {{ zig?: string, cc?: string, init?: boolean, trace?: boolean, loader?: string, env?: Record<string, string> }} [options]
 */
export function loadMuslPrebuild(addon, { zig, cc, init = true, trace = false, loader = MUSL_LOADER, env = {} } = {}) {
  if (!existsSync(loader)) return { ok: false, skipped: `musl's dynamic loader ${loader} is not installed (Debian/Ubuntu: apt-get install musl)` };
  if (!zig && !cc) zig = findZig();
  if (!zig && !cc) return { ok: false, skipped: 'no Zig to build the musl host with ($ZIG, zig on PATH, or npm run prebuild fetches one)' };
  const compile = compiler({ zig, cc });
  const dir = mkdtempSync(join(tmpdir(), 'udp-ring-musl-load-'));
  try {
    const names = dynamicSymbols(addon).filter((s) => !s.defined && NODE_API.test(s.name)).map((s) => s.name).sort();
    const include = nodeIncludeDir();
    const problems = [];
    let typed = new Map();
    if (include) {
      try {
        typed = prototypes(compile, include, names, dir);
      } catch (error) {
        problems.push(`no typed stubs: ${error.message.trim()}`);
      }
    }
    const untyped = names.filter((n) => !typed.has(n));
    const source = join(dir, 'host.c');
    writeFileSync(source, hostSource(names, typed));
    const host = join(dir, 'host');
    const built = compile.build(source, host, typed.size ? include : null);
    if (built.status !== 0) throw new Error(`building the musl host with ${compile.name} failed:\n${built.stderr}`);
    const interp = interpreter(host);
    if (interp !== loader) throw new Error(`the host's PT_INTERP is ${interp ?? '(none: static)'}, not musl's loader ${loader}`);
    // Init needs every stub typed (an output it cannot fill would hand the addon garbage).
    const runInit = init && untyped.length === 0;
    if (init && !runInit) problems.push(`Init not run: no prototype in ${include ?? "Node's headers (not found)"} for ${untyped.join(', ')}`);
    // Without LD_PRELOAD: a glibc library preloaded into this process (libasan,
    // under scripts/test-asan.sh) means nothing to musl's loader and stops it.
    const { LD_PRELOAD: _preload, ...inherited } = process.env;
    const run = spawnSync(host, [addon, ...(runInit ? ['--init'] : []), ...(trace ? ['--trace'] : [])], { encoding: 'utf8', timeout: 60_000, env: { ...inherited, ...env } });
    const output = `${run.stdout}${run.stderr}`.trim();
    const ok = run.status === 0;
    if (!ok) problems.push(run.signal ? `host killed by ${run.signal}` : `host exited ${run.status}`);
    const initRan = runInit && /napi_register_module_v1: returned the exports handle/.test(output);
    return { ok, interpreter: interp, stubs: names.length, typedStubs: typed.size, init: initRan, output, problems, compiler: compile.name };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Human-readable summary. */
export function describeLoad(file, result) {
  if (result.skipped) return `${file}: musl load check skipped: ${result.skipped}`;
  return [
    `${file}: ${result.ok ? 'loads under musl\'s dynamic loader' : 'does NOT load under musl\'s dynamic loader'}`,
    `  host: PT_INTERP ${result.interpreter}, ${result.stubs} Node-API stubs (${result.typedStubs} typed from node_api.h)${result.init ? ', Init run through' : ''}`,
    ...result.output.split('\n').map((l) => `  ${l}`),
    ...result.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const take = (flag) => {
    const at = args.indexOf(flag);
    return at >= 0 ? args.splice(at, 2)[1] : undefined;
  };
  const flag = (name) => {
    const at = args.indexOf(name);
    if (at >= 0) args.splice(at, 1);
    return at >= 0;
  };
  const zig = take('--zig');
  const noInit = flag('--no-init');
  const trace = flag('--trace');
  if (args.length !== 1) {
    console.error('usage: node scripts/load-musl-prebuild.mjs <file.node> [--zig <path>] [--no-init] [--trace]');
    process.exit(2);
  }
  try {
    const result = loadMuslPrebuild(args[0], { zig, init: !noInit, trace });
    (result.ok ? console.log : console.error)(describeLoad(args[0], result));
    process.exit(result.skipped ? 2 : result.ok ? 0 : 1);
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
}
