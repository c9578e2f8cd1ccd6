// The resolve hook behind udp-ring/register (runs on Node's loader thread): `dgram` and
// `node:dgram` imported from outside the package resolve to udp-ring/dgram.
let facade = '';
let own = '';

export function initialize(data: { facade: string; own: string }): void {
  facade = data.facade;
  own = data.own;
}

type Resolved = { url: string; shortCircuit?: boolean; format?: string | null };
type Next = (specifier: string, context: { parentURL?: string }) => Resolved | Promise<Resolved>;

export function resolve(specifier: string, context: { parentURL?: string }, next: Next): Resolved | Promise<Resolved> {
  if ((specifier === 'dgram' || specifier === 'node:dgram') && !(context.parentURL ?? '').startsWith(own)) {
    return { url: facade, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}
