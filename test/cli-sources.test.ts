// The listen view's source counter: keyed by address bytes and port, no
// string per datagram, bounded, and exact for the sources it holds.
import { describe, expect, it } from 'vitest';
import { SourceCounter } from '../dist/tools/cli/sources.js';

describe('SourceCounter', () => {
  it('counts by family, address and port, and ranks the top sources', () => {
    const counter = new SourceCounter(64);
    const bytes = new Uint8Array(64);
    bytes.set([127, 0, 0, 1], 0);
    bytes.set([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], 16);
    bytes.set([127, 0, 0, 2], 40);
    for (let k = 0; k < 5; k++) counter.add(bytes, 0, 4, 5000);
    for (let k = 0; k < 3; k++) counter.add(bytes, 0, 4, 5001);
    counter.add(bytes, 16, 6, 5000, 7);
    counter.add(bytes, 40, 4, 5000);
    // The same first four bytes as an IPv6 address are a different source.
    counter.add(bytes, 0, 6, 5000);
    expect(counter.size).toBe(5);
    expect(counter.top(3)).toEqual([
      { family: 6, address: '::1', port: 5000, count: 7 },
      { family: 4, address: '127.0.0.1', port: 5000, count: 5 },
      { family: 4, address: '127.0.0.1', port: 5001, count: 3 },
    ]);
    expect(counter.top(10).map((t) => t.address)).toContain('7f00:1::');
    expect(counter.other).toBe(0);
  });

  it('stops taking new sources at three quarters full and counts the rest as other', () => {
    const counter = new SourceCounter(16);
    const bytes = new Uint8Array(4);
    for (let port = 1; port <= 20; port++) counter.add(bytes, 0, 4, port, port);
    expect(counter.size).toBe(12);
    expect(counter.other).toBe(13 + 14 + 15 + 16 + 17 + 18 + 19 + 20);
    // Known sources still count exactly when the table is full.
    counter.add(bytes, 0, 4, 1, 100);
    expect(counter.top(1)).toEqual([{ family: 4, address: '0.0.0.0', port: 1, count: 101 }]);
    expect(() => new SourceCounter(100)).toThrow(RangeError);
  });
});
