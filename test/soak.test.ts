// The CI-sized soak (soak/soak.mjs --short, about 40 s), run as an
// unprivileged user: no SO_RCVBUFFORCE, so the kernel buffer is capped by
// net.core.rmem_max and the loss accounting is exercised hardest.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const asRoot = process.getuid?.() === 0;
const unprivileged = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all'];

describe('soak --short', () => {
  it('every datagram delivered intact and in order, or counted as dropped; memory flat', { timeout: 180_000 }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'udp-ring-soak-'));
    chmodSync(dir, 0o777);
    const json = join(dir, 'soak.json');
    const command = [...(asRoot ? unprivileged : []), process.execPath, '--expose-gc', 'soak/soak.mjs', '--short', '--json', json];
    const run = spawnSync(command[0], command.slice(1), { cwd: root, encoding: 'utf8', timeout: 170_000 });
    try {
      expect(run.error).toBeUndefined();
      expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      const summary = JSON.parse(readFileSync(json, 'utf8'));
      expect(summary.ok).toBe(true);
      if (asRoot) expect(summary.uid).toBe(65534);
      expect(summary.phases).toHaveLength(4);
      for (const phase of summary.phases) {
        expect(phase.failures).toEqual([]);
        expect(phase.sent).toBeGreaterThan(0);
        expect(phase.delivered + phase.ringDrops + phase.kernelDrops).toBe(phase.sent);
        if (phase.overflow === 'block') expect(phase.ringDrops).toBe(0);
      }
      expect(summary.delivered).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
