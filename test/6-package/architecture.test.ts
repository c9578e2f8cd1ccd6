// The compiled import graph (dist/, the ESM build): no cycle, so each module
// can be read, and loaded, after the ones it imports; and the layers of lib/
// (lib/*/README.md) hold: the core imports no backend, adapter or tool; a
// backend imports no adapter or tool, nor another backend; nothing but a tool
// imports a tool.
// Static imports and re-exports between the package's own files count;
// type-only imports are gone by then, so they never count.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../../dist/', import.meta.url));

function graph(): Map<string, string[]> {
  const files = (readdirSync(dist, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.js') && !f.startsWith('cjs'));
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(dist, file), 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?(?:\bfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      targets.push(relative(dist, normalize(join(dist, dirname(file), m[1]))).split(sep).join('/'));
    }
    edges.set(file.split(sep).join('/'), targets);
  }
  return edges;
}

function cycles(edges: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    if (state.get(node) === 'done') return;
    if (state.get(node) === 'open') {
      found.push([...path.slice(path.indexOf(node)), node]);
      return;
    }
    state.set(node, 'open');
    path.push(node);
    for (const next of edges.get(node) ?? []) visit(next);
    path.pop();
    state.set(node, 'done');
  };
  for (const node of edges.keys()) visit(node);
  return found;
}

type Layer = 'core' | 'backends' | 'adapters' | 'tools' | 'entry';

function layer(file: string): Layer {
  const top = file.split('/')[0];
  return top === 'core' || top === 'backends' || top === 'adapters' || top === 'tools' ? top : 'entry';
}

// What each layer may import (entry: lib/index.ts, the package's root entry point).
const allowed: Record<Layer, Layer[]> = {
  core: ['core'],
  backends: ['core', 'backends'],
  adapters: ['core', 'backends', 'adapters', 'entry'],
  tools: ['core', 'backends', 'adapters', 'tools', 'entry'],
  entry: ['core', 'backends', 'adapters'],
};

// backends/native/... or backends/dgram/...: a backend never imports another (backends/index.ts loads them all).
function backendOf(file: string): string | null {
  const [top, name, rest] = file.split('/');
  return top === 'backends' && rest !== undefined ? name : null;
}

function violations(edges: Map<string, string[]>): string[] {
  const found: string[] = [];
  for (const [from, targets] of edges) {
    for (const to of targets) {
      const across = backendOf(from) !== null && backendOf(to) !== null && backendOf(from) !== backendOf(to);
      if (!allowed[layer(from)].includes(layer(to)) || across) found.push(`${from} -> ${to}`);
    }
  }
  return found.sort();
}

// Arrows allowed against the layers, none: the Batch reads the core's ring format (core/ring-format.ts)
// and asks the registered backend for interface names, and the options ask it for its limits, so
// the core imports no backend. Kept as a list so that one that has to come back says so here.
const pending: string[] = [];

describe('architecture', () => {
  it('the compiled modules import each other without a cycle', () => {
    const edges = graph();
    expect(edges.size).toBeGreaterThan(20);
    expect(edges.get('core/receiver.js')).toContain('core/options.js');
    // Before close()'s option check moved to options.ts: the dgram backend -> core/receiver.js -> back.
    expect(cycles(edges).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('no arrow from the core to a backend, adapter or tool, from a backend to an adapter, a tool or another backend, or into a tool', () => {
    const edges = graph();
    // The seam the core opens the dgram backend through: the backend imports the core's registry,
    // and the core reaches the backend only through it.
    expect(edges.get('backends/dgram/receiver.js')).toContain('core/backend.js');
    expect(edges.get('core/receiver.js')).toContain('core/backend.js');
    expect(edges.get('index.js')).toContain('backends/index.js');
    // The sender's seam: the public UdpSender opens a sender backend through the registry too.
    expect(edges.get('core/sender.js')).toContain('core/backend.js');
    expect(edges.get('backends/native/sender.js')).toContain('core/backend.js');
    expect(edges.get('backends/dgram/sender.js')).toContain('core/backend.js');
    expect(violations(edges)).toEqual(pending);
  });

  it('the checks find a cycle and a layer violation when there is one', () => {
    const planted = new Map([['a.js', ['b.js']], ['b.js', ['c.js']], ['c.js', ['a.js']], ['d.js', ['a.js']]]);
    expect(cycles(planted).map((c) => c.join(' -> '))).toEqual(['a.js -> b.js -> c.js -> a.js']);
    const layered = new Map([
      ['core/receiver.js', ['core/options.js', 'backends/dgram/receiver.js', 'adapters/stream.js']],
      ['backends/dgram/receiver.js', ['core/backend.js', 'backends/dgram/batch.js', 'backends/native/addon.js', 'tools/cli/format.js']],
      ['backends/index.js', ['backends/dgram/receiver.js', 'backends/native/sender.js']],
      ['adapters/stream.js', ['core/receiver.js', 'index.js']],
      ['index.js', ['tools/doctor/index.js']],
      ['tools/cli/index.js', ['index.js', 'tools/cli/format.js']],
    ]);
    expect(violations(layered)).toEqual([
      'backends/dgram/receiver.js -> backends/native/addon.js',
      'backends/dgram/receiver.js -> tools/cli/format.js',
      'core/receiver.js -> adapters/stream.js',
      'core/receiver.js -> backends/dgram/receiver.js',
      'index.js -> tools/doctor/index.js',
    ]);
  });
});
