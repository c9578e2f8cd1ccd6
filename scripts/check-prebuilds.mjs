// `npm pack` refuses to pack without every prebuild it promises: linux-x64 and
// linux-arm64, glibc and musl, each current (newer than native/ and
// binding.gyp) and passing its structural check (scripts/check-glibc-prebuild.mjs,
// scripts/check-musl-prebuild.mjs). Run by `prepack` after `prebuild --missing`.
//
//   node scripts/check-prebuilds.mjs [<dir>]     (default: prebuilds/)
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkGlibcPrebuild } from './check-glibc-prebuild.mjs';
import { checkMuslPrebuild } from './check-musl-prebuild.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.argv[2] ?? join(root, 'prebuilds'));
export const SHIPPED = ['linux-x64/udp-ring.glibc.node', 'linux-x64/udp-ring.musl.node', 'linux-arm64/udp-ring.glibc.node', 'linux-arm64/udp-ring.musl.node'];

const sources = [join(root, 'binding.gyp'), ...readdirSync(join(root, 'native'), { recursive: true }).map((f) => join(root, 'native', String(f)))];
const newestSource = Math.max(...sources.map((f) => statSync(f).mtimeMs));

const problems = [];
for (const name of SHIPPED) {
  const file = join(dir, name);
  if (!existsSync(file)) {
    problems.push(`${name}: missing`);
    continue;
  }
  if (statSync(file).mtimeMs < newestSource) problems.push(`${name}: older than the native sources`);
  const arch = name.startsWith('linux-arm64/') ? 'arm64' : 'x64';
  const result = name.includes('.glibc.') ? checkGlibcPrebuild(file, { arch }) : checkMuslPrebuild(file, { arch });
  for (const problem of result.problems) problems.push(`${name}: ${problem}`);
}
const unexpected = existsSync(dir)
  ? readdirSync(dir, { recursive: true }).map(String).filter((f) => f.endsWith('.node') && !SHIPPED.includes(f))
  : [];
for (const name of unexpected) problems.push(`${name}: not a prebuild this package ships`);

if (problems.length > 0) {
  console.error(`udp-ring: refusing to pack: ${relative(process.cwd(), dir) || '.'} does not hold the four prebuilds npm pack ships:\n  ${problems.join('\n  ')}\n` +
    'Run `npm run prebuild` (g++ not needed; Zig is fetched through npm on first use).');
  process.exit(1);
}
console.error(`udp-ring: prebuilds checked: ${SHIPPED.join(', ')}`);
