// Which backend runs when nobody says: on Linux the addon, and its absence is
// an error that says why and what to do, never a quiet downgrade to node:dgram;
// off Linux node:dgram, with one warning per process. 'dgram' and 'auto' are
// the explicit ways to accept node:dgram. Each case runs in a child process
// whose addon cannot load (test/fixtures/no-addon.cjs) or which believes it
// runs on macOS (test/fixtures/other-platform.cjs).
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const noAddon = join(root, 'test', 'fixtures', 'no-addon.cjs');
const otherPlatform = join(root, 'test', 'fixtures', 'other-platform.cjs');
const cli = join(root, 'dist', 'tools', 'cli', 'index.js');

// Opens a receiver and a sender with `options`, exchanges a datagram, prints what ran and every warning.
const probe = `
import { UdpReceiver, UdpSender, nativeAddon } from ${JSON.stringify(join(root, 'dist', 'index.js'))};
const warnings = [];
process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
const options = JSON.parse(process.argv[1] ?? '{}');
const result = { addon: nativeAddon };
try {
  const rx = await UdpReceiver.open({ host: '127.0.0.1', ...options });
  const tx = await UdpSender.open({ port: rx.address().port, ...options });
  tx.send(new TextEncoder().encode('hi'));
  for await (const batch of rx) { result.text = Buffer.from(batch.payload(0)).toString(); break; }
  await tx.close();
  const again = await UdpReceiver.open({ host: '127.0.0.1', ...options });
  await again.close();
  Object.assign(result, { receiver: rx.stats().backend, sender: tx.backend });
} catch (error) {
  result.error = { code: error.code, message: error.message };
}
await new Promise((r) => setImmediate(r));
result.warnings = warnings;
console.log(JSON.stringify(result));
`;

interface Probe {
  addon: { loaded: boolean; file: string | null; error: string | null };
  receiver?: string;
  sender?: string;
  text?: string;
  error?: { code: string; message: string };
  warnings: { code: string; message: string }[];
}

function run(preload: string, options: object = {}, env: NodeJS.ProcessEnv = {}): Probe {
  const child = spawnSync(process.execPath, ['-r', preload, '--input-type=module', '-e', probe, JSON.stringify(options)], {
    encoding: 'utf8', timeout: 60_000, env: { ...process.env, UDP_RING_BACKEND: '', ...env },
  });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout) as Probe;
}

describe('backend choice: on Linux, a missing addon is an error', () => {
  it('unset: open() rejects with ERR_UDP_RING_NATIVE saying why and how to fix it', () => {
    const seen = run(noAddon);
    expect(seen.addon.loaded).toBe(false);
    expect(seen.error?.code).toBe('ERR_UDP_RING_NATIVE');
    for (const part of ['could not load its native addon', 'prebuilds/linux-x64', 'build/Release', 'npm rebuild udp-ring',
      '--ignore-scripts', "options.backend 'dgram'", "'auto'", 'no addon in this process']) {
      expect(seen.error?.message).toContain(part);
    }
    expect(seen.warnings).toEqual([]);
  });

  it("'native' rejects the same way; 'dgram', 'auto' and UDP_RING_BACKEND=dgram|auto open node:dgram, without a warning", () => {
    expect(run(noAddon, { backend: 'native' }).error?.code).toBe('ERR_UDP_RING_NATIVE');
    for (const [options, env] of [[{ backend: 'dgram' }, {}], [{ backend: 'auto' }, {}], [{}, { UDP_RING_BACKEND: 'dgram' }],
      [{}, { UDP_RING_BACKEND: 'auto' }]] as const) {
      const seen = run(noAddon, options, env);
      expect(seen, JSON.stringify({ options, env })).toMatchObject({ receiver: 'dgram', sender: 'dgram', text: 'hi', warnings: [] });
    }
  });

  it("with the addon, unset and 'auto' both run native", () => {
    const preload = join(root, 'test', 'fixtures', 'pattern.mjs'); // any harmless module: the addon loads
    for (const options of [{}, { backend: 'auto' }]) {
      const child = spawnSync(process.execPath, ['--import', preload, '--input-type=module', '-e', probe, JSON.stringify(options)], {
        encoding: 'utf8', timeout: 60_000, env: { ...process.env, UDP_RING_BACKEND: '' },
      });
      expect(child.status, child.stderr).toBe(0);
      const seen = JSON.parse(child.stdout) as Probe;
      expect(seen).toMatchObject({ receiver: 'native', sender: 'native', text: 'hi', warnings: [] });
      expect(seen.addon).toMatchObject({ loaded: true, error: null });
      expect(seen.addon.file).toMatch(/\.node$/);
    }
  });

  it('udp-ring listen and send fail with the same error, and run on node:dgram with --backend auto', () => {
    const listen = spawnSync(process.execPath, ['-r', noAddon, cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--seconds', '0.2'], {
      encoding: 'utf8', timeout: 60_000, env: { ...process.env, UDP_RING_BACKEND: '' },
    });
    expect(listen.status).toBe(1);
    expect(listen.stderr).toContain('udp-ring: could not load its native addon');
    const auto = spawnSync(process.execPath, ['-r', noAddon, cli, 'listen', '--port', '0', '--host', '127.0.0.1', '--seconds', '0.2',
      '--json', '--backend', 'auto'], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, UDP_RING_BACKEND: '' } });
    expect(auto.status, auto.stderr).toBe(0);
    expect(auto.stdout).toContain('"backend":"dgram"');
  });

  it('doctor says whether the addon loads, from which file, or why not', () => {
    const doctor = (preload: string[]) => {
      const child = spawnSync(process.execPath, [...preload, cli, 'doctor', '--seconds', '0', '--json'], { encoding: 'utf8', timeout: 60_000 });
      expect(child.status, child.stderr).toBe(0);
      return JSON.parse(child.stdout) as { addon: Probe['addon']; findings: { code: string; severity: string; detail: string }[] };
    };
    const loaded = doctor([]);
    expect(loaded.addon).toMatchObject({ loaded: true, error: null });
    expect(loaded.addon.file).toMatch(/\.node$/);
    expect(loaded.findings.find((f) => f.code === 'native_addon')).toMatchObject({ severity: 'ok' });
    const missing = doctor(['-r', noAddon]);
    expect(missing.addon.loaded).toBe(false);
    expect(missing.findings.find((f) => f.code === 'native_addon')).toMatchObject({ severity: 'critical' });
    expect(missing.findings.find((f) => f.code === 'native_addon')?.detail).toContain('no addon in this process');
    const text = spawnSync(process.execPath, ['-r', noAddon, cli, 'doctor', '--seconds', '0', '--fail-on', 'critical'], { encoding: 'utf8' });
    expect(text.status).toBe(2);
    expect(text.stdout).toContain('Native addon    not loaded');
    expect(text.stdout).toContain('npm rebuild udp-ring');
  });
});

describe('backend choice: off Linux, node:dgram with one warning', () => {
  it('unset: receiver and sender run on node:dgram, and the process is warned once', () => {
    const seen = run(otherPlatform);
    expect(seen).toMatchObject({ receiver: 'dgram', sender: 'dgram', text: 'hi' });
    expect(seen.warnings).toHaveLength(1);
    expect(seen.warnings[0].code).toBe('UDP_RING_DGRAM_BACKEND');
    expect(seen.warnings[0].message).toContain('Linux-only; on darwin the dgram backend runs');
  });

  it("backend 'dgram' or 'auto' silences it; 'native' is the load error", () => {
    expect(run(otherPlatform, { backend: 'dgram' })).toMatchObject({ receiver: 'dgram', warnings: [] });
    expect(run(otherPlatform, { backend: 'auto' })).toMatchObject({ receiver: 'dgram', warnings: [] });
    const native = run(otherPlatform, { backend: 'native' });
    expect(native.error?.code).toBe('ERR_UDP_RING_NATIVE');
    expect(native.error?.message).toContain('Linux-only');
  });
});
