// Structural check of a musl Node-API prebuild, with readelf (binutils): no
// musl Node can run here, so this is what stands between a wrong binary and a
// file tagged `musl`. It fails on anything a glibc build would show.
//
//   node scripts/check-musl-prebuild.mjs <file.node> [--arch x64|arm64] [--libc <libc.S | libc.so>]
//
// A musl x86-64 (or, with --arch arm64, AArch64) Node-API addon must be:
// * an ELF64 x86-64 (AArch64) shared object, with no program interpreter and a stack that is not executable;
// * NEEDED exactly one libc, by a musl name: `libc.musl-x86_64.so.1` (Alpine's gcc) or `libc.so`
//   (Zig's). musl's loader (ldso/dynlink.c, load_library) takes any NEEDED `libc.*` as itself.
//   Nothing else: not libc.so.6 or ld-linux (glibc), not libstdc++/libc++/libgcc_s/libunwind
//   (the C++ runtime must be linked in statically; Alpine's Node does not carry libc++);
// * without symbol versions (musl has none; GLIBC_*, GLIBCXX_*, CXXABI_*, GCC_* are glibc/gcc's);
// * undefined: only napi_* / node_api_* (from Node) and libc functions. With --libc, the names
//   are checked against that libc's (Zig's lib/libc/musl/libc.S, or a musl libc.so); without,
//   against glibc-only and C++-runtime names (fortify __*_chk, __isoc99_*, _Z*, __cxa_*, _Unwind_*);
// * exporting napi_register_module_v1 and nothing but napi_* / node_api_* entry points.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** readelf's Machine and musl's libc soname, by Node's arch name. */
export const MACHINES = {
  x64: { machine: 'Advanced Micro Devices X86-64', musl: 'x86_64' },
  arm64: { machine: 'AArch64', musl: 'aarch64' },
};
// crtstuff's weak references, harmless when absent; a gcc-based musl toolchain emits them.
export const WEAK_OPTIONAL = new Set(['__gmon_start__', '_ITM_registerTMCloneTable', '_ITM_deregisterTMCloneTable', '__cxa_finalize']);
export const NODE_API = /^(napi|node_api)_/;
// Names no musl libc defines: glibc's fortify and C23/C99 scanf aliases, glibc internals, and a
// C++ runtime that should have been linked in. musl does define __cxa_atexit and __cxa_finalize.
const NOT_MUSL = /^(_Z|__cxa_(?!atexit$|finalize$)|__gxx_|_Unwind_|__.*_chk$|__isoc(99|23)_|__libc_|gnu_get_libc)/;

export function readelf(args, file) {
  try {
    return execFileSync('readelf', [...args, '-W', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
  } catch (error) {
    if (error.code === 'ENOENT') throw new Error('check-musl-prebuild: readelf not found (install binutils)');
    throw new Error(`check-musl-prebuild: readelf ${args.join(' ')} ${file} failed: ${error.stderr || error.message}`);
  }
}

/** The dynamic symbols of an ELF file, from `readelf --dyn-syms`. */
export function dynamicSymbols(file) {
  const symbols = [];
  for (const line of readelf(['--dyn-syms'], file).split('\n')) {
    // Num: Value Size Type Bind Vis Ndx Name [(version)]
    const m = /^\s*\d+:\s+[0-9a-f]+\s+\S+\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(line);
    if (!m || !m[5]) continue;
    const [, type, bind, visibility, ndx, name] = m;
    symbols.push({ name, type, bind, visibility, defined: ndx !== 'UND' });
  }
  return symbols;
}

/** The names a libc defines: from Zig's libc.S stub source, or from a libc.so's dynamic symbols. */
export function libcSymbols(path) {
  if (path.endsWith('.S')) {
    const names = new Set();
    // WEAK64: the stub's macro for names defined .weak on 64-bit, .globl on 32-bit (clock_gettime, …).
    for (const m of readFileSync(path, 'utf8').matchAll(/^(?:\.globl|\.weak|WEAK64)\s+(\S+)/gm)) names.add(m[1]);
    return names;
  }
  return new Set(dynamicSymbols(path).filter((s) => s.defined && s.bind !== 'LOCAL').map((s) => s.name.replace(/@.*/, '')));
}

/**
 * Checks `file`; returns what readelf showed and every problem found (none: the binary is a
 * musl Node-API addon as far as its structure can tell).
 * @param {string} file
 * @param {{ libc?: Set<string>, arch?: 'x64' | 'arm64' }} [options]
 */
/** The ELF header's class, type and machine; what is wrong in them for an addon for `arch` goes to problems. */
export function elfHeader(file, arch, problems) {
  const header = readelf(['-h'], file);
  const field = (name) => new RegExp(`^\\s*${name}:\\s*(.*)$`, 'm').exec(header)?.[1].trim() ?? '?';
  const facts = { class: field('Class'), type: field('Type'), machine: field('Machine') };
  if (facts.class !== 'ELF64') problems.push(`class ${facts.class}, not ELF64`);
  if (!facts.type.startsWith('DYN')) problems.push(`type ${facts.type}, not a shared object`);
  if (facts.machine !== MACHINES[arch].machine) problems.push(`machine ${facts.machine}, not ${MACHINES[arch].machine}`);
  return facts;
}

/** An addon is no executable: no program interpreter, no executable stack. */
export function segmentProblems(file, problems) {
  const segments = readelf(['-l'], file);
  if (/^\s*INTERP\s/m.test(segments)) problems.push('has a program interpreter (PT_INTERP): an executable, not an addon');
  if (/^\s*GNU_STACK\s.*\sRWE\s/m.test(segments)) problems.push('executable stack (GNU_STACK RWE)');
}

/** facts.exported (names as `exportName` gives them) and the undefined symbols, Node-API's counted apart; returns the undefined ones. */
export function nodeApiSymbols(symbols, facts, exportName) {
  const undefinedSymbols = symbols.filter((s) => !s.defined);
  facts.exported = symbols.filter((s) => s.defined && s.bind !== 'LOCAL').map((s) => exportName(s.name)).sort();
  facts.undefinedNodeApi = undefinedSymbols.filter((s) => NODE_API.test(s.name)).length;
  facts.undefinedOther = undefinedSymbols.filter((s) => !NODE_API.test(s.name)).map((s) => s.name).sort();
  return undefinedSymbols;
}

/** An addon exports napi_register_module_v1 and nothing but Node-API entry points. */
export function exportProblems(facts, problems) {
  if (!facts.exported.includes('napi_register_module_v1')) problems.push('does not export napi_register_module_v1');
  const extra = facts.exported.filter((n) => !NODE_API.test(n));
  if (extra.length) problems.push(`exports more than Node-API entry points: ${extra.slice(0, 12).join(', ')}${extra.length > 12 ? ', …' : ''}`);
}

export function checkMuslPrebuild(file, { libc, arch = 'x64' } = {}) {
  const problems = [];
  const MUSL_LIBC_NAMES = ['libc.so', `libc.musl-${MACHINES[arch].musl}.so.1`];
  const facts = elfHeader(file, arch, problems);

  const dynamic = readelf(['-d'], file);
  facts.needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  facts.soname = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(dynamic)?.[1] ?? null;
  facts.runpath = [...dynamic.matchAll(/\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]/g)].map((m) => m[1]);
  const libcs = facts.needed.filter((n) => MUSL_LIBC_NAMES.includes(n));
  const others = facts.needed.filter((n) => !MUSL_LIBC_NAMES.includes(n));
  if (libcs.length !== 1) problems.push(`NEEDED has ${libcs.length} musl libc entries (${MUSL_LIBC_NAMES.join(' or ')}), want 1`);
  if (others.length) problems.push(`NEEDED other than musl libc: ${others.join(', ')}`);

  segmentProblems(file, problems);

  const versions = readelf(['-V'], file);
  facts.versionNames = [...new Set([...versions.matchAll(/Name: ([A-Z][A-Z_]*_[0-9][0-9.]*)/g)].map((m) => m[1]))];
  if (/\.gnu\.version_r/.test(versions) || facts.versionNames.length) {
    problems.push(`symbol versions (musl has none): ${facts.versionNames.join(', ') || '.gnu.version_r present'}`);
  }

  const symbols = dynamicSymbols(file);
  const undefinedSymbols = nodeApiSymbols(symbols, facts, (name) => name);
  const versioned = symbols.filter((s) => s.name.includes('@')).map((s) => s.name);
  if (versioned.length) problems.push(`versioned symbols: ${versioned.slice(0, 8).join(', ')}`);
  const foreign = undefinedSymbols.filter((s) => {
    if (NODE_API.test(s.name) || s.name.includes('@')) return false;
    if (s.bind === 'WEAK' && WEAK_OPTIONAL.has(s.name)) return false;
    return libc ? !libc.has(s.name) : NOT_MUSL.test(s.name);
  });
  if (foreign.length) {
    problems.push(`undefined symbols that are neither Node-API nor ${libc ? 'in the musl libc' : 'plausibly musl libc'}: ${foreign.map((s) => s.name).join(', ')}`);
  }
  exportProblems(facts, problems);

  return { file, ok: problems.length === 0, problems, facts };
}

/** Human-readable summary of a check. */
export function describe(result) {
  const { facts } = result;
  return describeAddon(result, 'musl', {
    needed: `; SONAME ${facts.soname ?? '(none)'}${facts.runpath.length ? `; RUNPATH ${facts.runpath.join(':')}` : ''}`,
    versions: facts.versionNames.length ? facts.versionNames.join(', ') : 'none',
    undefinedTail: ` (${facts.undefinedOther.join(' ')})`,
  });
}

/** The summary of a check of a `libc` addon; what differs by libc comes in `parts`. */
export function describeAddon(result, libc, { needed = '', versions, undefinedTail = '' }) {
  const { facts } = result;
  return [
    `${result.file}: ${result.ok ? `${libc} Node-API addon` : `NOT a usable ${libc} Node-API addon`}`,
    `  ${facts.class} ${facts.type} ${facts.machine}`,
    `  NEEDED ${facts.needed.join(', ') || '(none)'}${needed}`,
    `  symbol versions: ${versions}`,
    `  exports: ${facts.exported.join(', ') || '(none)'}`,
    `  undefined: ${facts.undefinedNodeApi} Node-API, ${facts.undefinedOther.length} other${undefinedTail}`,
    ...result.problems.map((p) => `  problem: ${p}`),
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--libc');
  const libcPath = at >= 0 ? args.splice(at, 2)[1] : undefined;
  const archAt = args.indexOf('--arch');
  const arch = archAt >= 0 ? args.splice(archAt, 2)[1] : 'x64';
  if (args.length !== 1 || (at >= 0 && !libcPath) || !MACHINES[arch]) {
    console.error('usage: node scripts/check-musl-prebuild.mjs <file.node> [--arch x64|arm64] [--libc <libc.S | libc.so>]');
    process.exit(2);
  }
  try {
    const result = checkMuslPrebuild(args[0], { libc: libcPath ? libcSymbols(libcPath) : undefined, arch });
    (result.ok ? console.log : console.error)(describe(result));
    process.exit(result.ok ? 0 : 1);
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
}
