// Socket activation: a service given a bound UDP socket as fd 3 (test/fixtures/fd/activate.py
// does what systemd does) adopts it with bind({ fd }); node:dgram and the facade must log the
// same, bad fds included.
import { spawn } from 'node:child_process';
import * as nodeDgram from 'node:dgram';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'fd');

async function activate(side: 'node' | 'facade'): Promise<string[]> {
  const child = spawn('python3', [join(fixtures, 'activate.py'), process.execPath, join(fixtures, 'service.mjs'), side],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const client = nodeDgram.createSocket('udp4');
  let result: string[] = [];
  let reply = '';
  client.on('message', (msg) => { reply = msg.toString(); });
  for await (const line of lines) {
    if (line.startsWith('ready ')) client.send('ping', Number(line.slice(6)), '127.0.0.1');
    else result = JSON.parse(line) as string[];
  }
  await once(child, 'exit');
  client.close();
  return [...result, `client heard ${reply}`];
}

it('bind({ fd }) adopts an inherited socket, as node:dgram does', async () => {
  const expected = await activate('node');
  expect(expected).toContain('message ping');
  expect(await activate('facade')).toEqual(expected);
});
