// The node22 stage (`npm run test:node22`) runs the dgram files under Node 22 (scripts/node22.mjs),
// so the facade is compared with Node 22's node:dgram. This file proves the stage really runs there,
// the child processes the tests spawn (the register hook's apps) included.
import { expect, it } from 'vitest';
import { spawnAsync } from './helpers.js';

it('runs under Node 22, and so do the child processes the tests spawn', async () => {
  expect(process.versions.node.split('.')[0]).toBe('22');
  const child = await spawnAsync(process.execPath, ['-p', 'process.versions.node']);
  expect(child.status).toBe(0);
  expect(child.stdout.trim().split('.')[0]).toBe('22');
});
