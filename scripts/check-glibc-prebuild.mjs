// Structural check of a glibc Node-API prebuild, with readelf (binutils): what
// stands between a cross-compiled binary (linux-arm64, which nothing here can
// run) and a file tagged `glibc`.
//
//   node scripts/check-glibc-prebuild.mjs <file.node> [--arch x64|arm64] [--max-glibc 2.28]
//
// A glibc Node-API addon for a distribution Node 20 supports must be:
// * an ELF64 shared object for the arch's machine, with no program interpreter and a stack that is
//   not executable;
// * NEEDED libc.so.6 and otherwise only glibc's own libraries (libm, libpthread, libdl, librt, the
//   dynamic loader): no C++ runtime (libstdc++, libc++, libgcc_s, libunwind), which is linked in
//   statically, so the binary does not depend on the host's GCC;
// * with symbol versions GLIBC_* only, none newer than --max-glibc (default 2.28: Node 20's own floor
//   on x64 and arm64; RHEL 8, Debian 10, Ubuntu 18.10); no GLIBCXX_*, CXXABI_*, GCC_*;
// * undefined: only napi_* / node_api_* (from Node) and symbols bound to a GLIBC_ version;
// * exporting napi_register_module_v1 and nothing but napi_* / node_api_* entry points.
import { fileURLToPath } from 'node:url';
import {
  MACHINES, NODE_API, WEAK_OPTIONAL, describeAddon, dynamicSymbols, elfHeader, exportProblems, nodeApiSymbols, readelf, segmentProblems,
} from './check-musl-prebuild.mjs';

const GLIBC_LIBRARIES = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-(x86-64|aarch64)\.so\.[12])$/;

const versionNumber = (v) => v.split('.').map(Number).reduce((n, part, i) => n + part * 1000 ** (2 - i), 0);

/**
 * @param {string} file
 * @param {{ arch?: 'x64' | 'arm64', maxGlibc?: string }} [options]
 */
export function checkGlibcPrebuild(file, { arch = 'x64', maxGlibc = '2.28' } = {}) {
  const problems = [];
  const facts = elfHeader(file, arch, problems);

  const dynamic = readelf(['-d'], file);
  facts.needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  if (!facts.needed.includes('libc.so.6')) problems.push('libc.so.6 is not NEEDED');
  const others = facts.needed.filter((n) => !GLIBC_LIBRARIES.test(n));
  if (others.length) problems.push(`NEEDED beyond glibc: ${others.join(', ')}`);

  segmentProblems(file, problems);

  const versions = readelf(['-V'], file);
  facts.versionNames = [...new Set([...versions.matchAll(/Name: ([A-Z][A-Z_]*_[0-9][0-9.]*)/g)].map((m) => m[1]))].sort();
  const foreignVersions = facts.versionNames.filter((v) => !v.startsWith('GLIBC_'));
  if (foreignVersions.length) problems.push(`symbol versions not glibc's: ${foreignVersions.join(', ')}`);
  const glibcVersions = facts.versionNames.filter((v) => /^GLIBC_[0-9.]+$/.test(v)).map((v) => v.slice(6));
  facts.newestGlibc = glibcVersions.sort((a, b) => versionNumber(a) - versionNumber(b)).at(-1) ?? null;
  if (facts.newestGlibc && versionNumber(facts.newestGlibc) > versionNumber(maxGlibc)) {
    problems.push(`needs glibc ${facts.newestGlibc}, newer than ${maxGlibc}`);
  }

  const symbols = dynamicSymbols(file);
  const undefinedSymbols = nodeApiSymbols(symbols, facts, (name) => name.replace(/@.*/, ''));
  const foreign = undefinedSymbols.filter((s) => {
    if (NODE_API.test(s.name) || /@GLIBC_[0-9.]+$/.test(s.name)) return false;
    return !(s.bind === 'WEAK' && WEAK_OPTIONAL.has(s.name));
  });
  if (foreign.length) problems.push(`undefined symbols that are neither Node-API nor glibc's: ${foreign.map((s) => s.name).join(', ')}`);
  exportProblems(facts, problems);

  return { file, ok: problems.length === 0, problems, facts };
}

/** Human-readable summary of a check. */
export function describeGlibc(result) {
  const { facts } = result;
  return describeAddon(result, 'glibc', { versions: `${facts.versionNames.join(', ') || 'none'} (newest glibc: ${facts.newestGlibc ?? 'none'})` });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const take = (flag, fallback) => {
    const at = args.indexOf(flag);
    return at >= 0 ? args.splice(at, 2)[1] : fallback;
  };
  const arch = take('--arch', 'x64');
  const maxGlibc = take('--max-glibc', '2.28');
  if (args.length !== 1 || !MACHINES[arch] || !/^\d+\.\d+$/.test(maxGlibc ?? '')) {
    console.error('usage: node scripts/check-glibc-prebuild.mjs <file.node> [--arch x64|arm64] [--max-glibc 2.28]');
    process.exit(2);
  }
  try {
    const result = checkGlibcPrebuild(args[0], { arch, maxGlibc });
    (result.ok ? console.log : console.error)(describeGlibc(result));
    process.exit(result.ok ? 0 : 1);
  } catch (error) {
    console.error(error.message);
    process.exit(2);
  }
}
