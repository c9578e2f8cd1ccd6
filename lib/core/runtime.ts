// The JavaScript runtime: Node, or Bun (which loads Node-API addons but has only part of libuv).
export const runtime: 'node' | 'bun' = typeof process.versions.bun === 'string' ? 'bun' : 'node';
