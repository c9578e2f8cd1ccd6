import { defineConfig } from 'vitest/config';
import { base, stages } from './vitest.config.js';

// One CI stage's files (UDP_RING_STAGE=prebuilds|system|bun|node22): `npm run test:prebuilds`, `test:system`,
// `test:bun`, `test:node22`.
const stage = process.env.UDP_RING_STAGE as keyof typeof stages;
if (!stages[stage]) throw new Error(`UDP_RING_STAGE must be one of ${Object.keys(stages).join(', ')}, not ${stage}`);

export default defineConfig({
  test: { ...base, include: stages[stage] },
});
