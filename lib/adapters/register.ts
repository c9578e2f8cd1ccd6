// `node --require udp-ring/register app.js` or `node --import udp-ring/register app.mjs`:
// every `dgram` / `node:dgram` in the process, the dependencies' included, becomes
// udp-ring/dgram, for require() and import alike, without a change to their code. The
// package's own modules keep the real node:dgram (the facade is built on it). One socket
// opts out with `dgram.createSocket({ type: 'udp4', udpRing: false })`, which returns a
// node:dgram socket.
import { createRequire, register } from 'node:module';
import Module from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// This file is dist/adapters/register.js (the CommonJS twin, dist/cjs/adapters/register.js, sees
// the same URL: build-cjs.mjs); `dist` is the folder of every module of the package.
// @ts-ignore TS1343 in the CommonJS build only
const here = fileURLToPath(import.meta.url as string);
const dist = join(dirname(here), '..');
const installed = Symbol.for('udp-ring.register');

type Loader = (request: string, parent: { filename?: string | null } | null | undefined, isMain: boolean) => unknown;

function ownModule(filename: string | null | undefined): boolean {
  return typeof filename === 'string' && filename.startsWith(dist + sep);
}

function install(): void {
  const state = globalThis as { [installed]?: boolean };
  if (state[installed]) return;
  state[installed] = true;

  // require(): CommonJS code (every app tried needs this; on Node 20 ESM hooks do not see require).
  const requireHere = createRequire(here);
  let facade: unknown;
  const modules = Module as unknown as { _load: Loader };
  const load = modules._load;
  modules._load = function (this: unknown, request, parent, isMain) {
    if ((request === 'dgram' || request === 'node:dgram') && !ownModule(parent?.filename)) {
      facade ??= requireHere(join(dist, 'cjs', 'adapters', 'dgram', 'index.js'));
      return facade;
    }
    return load.call(this, request, parent, isMain);
  } as Loader;

  // import: a resolve hook (module.register, Node >= 20.6) sends both specifiers to the ES facade.
  register(pathToFileURL(join(dist, 'adapters', 'register-hooks.js')), {
    data: { facade: pathToFileURL(join(dist, 'adapters', 'dgram', 'index.js')).href, own: pathToFileURL(dist).href + '/' },
  });
}

install();
