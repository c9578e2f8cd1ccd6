// The compiled import graph (dist/, the ESM build) has no cycle: each module
// can be read, and loaded, after the ones it imports. Static imports and
// re-exports between the package's own files count; type-only imports are
// gone by then, so they never count.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));

function graph(): Map<string, string[]> {
  const files = (readdirSync(dist, { recursive: true }) as string[])
    .filter((f) => f.endsWith('.js') && !f.startsWith('cjs'));
  const edges = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(dist, file), 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]/gm)) {
      targets.push(relative(dist, normalize(join(dist, dirname(file), m[1]))));
    }
    edges.set(file, targets);
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

describe('architecture', () => {
  it('the compiled modules import each other without a cycle', () => {
    const edges = graph();
    expect(edges.size).toBeGreaterThan(20);
    expect(edges.get('core/receiver.js')).toContain('core/options.js');
    // Before close()'s option check moved to options.ts: the dgram backend's receiver -> core/receiver.js -> back.
    expect(cycles(edges).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the check finds a cycle when there is one', () => {
    const planted = new Map([['a.js', ['b.js']], ['b.js', ['c.js']], ['c.js', ['a.js']], ['d.js', ['a.js']]]);
    expect(cycles(planted).map((c) => c.join(' -> '))).toEqual(['a.js -> b.js -> c.js -> a.js']);
  });
});
