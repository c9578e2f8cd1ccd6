// The CommonJS build: the entry points compiled again by tsc with module
// CommonJS into dist/cjs, marked {"type":"commonjs"}, for require() on every
// Node the package supports (require(esm) is unflagged only from 20.19).
// Each import.meta.url (lib/backends/native/addon.ts, where the package root
// is found; lib/adapters/register.ts, where the package's modules are) becomes
// the URL of the ES module twin; anything else that CommonJS cannot run fails
// here.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'cjs');
const tsc = join(dirname(createRequire(import.meta.url).resolve('typescript/package.json')), 'bin', 'tsc');

rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.cjs.json')], { stdio: 'inherit' });
writeFileSync(join(out, 'package.json'), `${JSON.stringify({ type: 'commonjs' })}\n`);

const problems = [];
for (const file of readdirSync(out, { recursive: true }).map(String).filter((f) => f.endsWith('.js'))) {
  const path = join(out, file);
  let text = readFileSync(path, 'utf8');
  if (text.includes('import.meta.url')) {
    // The URL of the ES module twin (dist/a/x.js for dist/cjs/a/x.js), so paths made from it are the same.
    const twin = relative(dirname(path), join(root, 'dist', file)).split(sep).join('/');
    text = text.replaceAll('import.meta.url',
      `require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(twin)})).href`);
    writeFileSync(path, text);
  }
  const code = text.replace(/^\s*\/\/.*$/gm, '');
  if (/\bimport\.meta\b/.test(code)) problems.push(`${file}: import.meta`);
  if (/^\s*(import|export)\s/m.test(code)) problems.push(`${file}: an ES module statement`);
}
if (problems.length > 0) {
  console.error(`build-cjs: dist/cjs cannot run as CommonJS:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
