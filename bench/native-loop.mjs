// Builds the benchmark's C receive loops with the system's C compiler (cc, or
// $CC) into build/bench/, once per change of the source:
// bench/recvmmsg-loop.c, the drain table's outside ceiling, and
// bench/iouring-loop.c, the same job with io_uring (multishot recvmsg); both
// include bench/loop-common.h (their socket and counters) and, through it,
// native/sockopt_compat.h (the socket options older libc headers lack).
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function build(name) {
  const source = fileURLToPath(new URL(`./${name}.c`, import.meta.url));
  const binary = fileURLToPath(new URL(`../build/bench/${name}`, import.meta.url));
  // The loops include bench/loop-common.h, which includes native/sockopt_compat.h: a change to
  // either rebuilds them too.
  const headers = ['./loop-common.h', '../native/sockopt_compat.h'].map((h) => fileURLToPath(new URL(h, import.meta.url)));
  const built = (() => {
    try {
      return statSync(binary).mtimeMs >= Math.max(statSync(source).mtimeMs, ...headers.map((h) => statSync(h).mtimeMs));
    } catch {
      return false;
    }
  })();
  if (!built) {
    mkdirSync(fileURLToPath(new URL('../build/bench/', import.meta.url)), { recursive: true });
    // To a temporary name first: two processes building at once never run a half-written binary.
    const partial = `${binary}.${process.pid}`;
    execFileSync(process.env.CC || 'cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', partial, source], { stdio: 'inherit' });
    renameSync(partial, binary);
  }
  return binary;
}

export function buildNativeLoop() {
  return build('recvmmsg-loop');
}

export function buildIouringLoop() {
  return build('iouring-loop');
}
