// Builds bench/recvmmsg-loop.c with the system's C compiler (cc, or $CC) into
// build/bench/, once per change of the source: the drain table's outside ceiling.
import { execFileSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = fileURLToPath(new URL('./recvmmsg-loop.c', import.meta.url));
const binary = fileURLToPath(new URL('../build/bench/recvmmsg-loop', import.meta.url));

export function buildNativeLoop() {
  const built = (() => {
    try {
      return statSync(binary).mtimeMs >= statSync(source).mtimeMs;
    } catch {
      return false;
    }
  })();
  if (!built) {
    mkdirSync(fileURLToPath(new URL('../build/bench/', import.meta.url)), { recursive: true });
    execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', binary, source], { stdio: 'inherit' });
  }
  return binary;
}
