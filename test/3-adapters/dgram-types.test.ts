// Strict TypeScript over a facade socket used as a node:dgram Socket (test/types/): dgram's
// overloads, typed 'message' and send callbacks, assignable to dgram.Socket, ESM and CommonJS.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { expect, it } from 'vitest';

it('test/types compiles under --strict against the published declarations', () => {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  let output = '';
  try {
    execFileSync(process.execPath, [tsc, '-p', 'test/types/tsconfig.json'], { encoding: 'utf8', stdio: 'pipe' });
  } catch (error) {
    output = String((error as { stdout?: string }).stdout ?? error);
  }
  expect(output).toBe('');
});
