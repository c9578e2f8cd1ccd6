#!/usr/bin/env node
// The udp-ring command line: doctor, listen, send. Each command's module is
// loaded only when it runs, so `doctor` never needs the native addon.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { integerOption, numberOption } from './format.js';

// Output piped into `head` and the like: when the reader goes away, stop quietly, as `yes | head` does.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('udp-ring')
  .description('Zero-copy batched UDP receive for Node.js: diagnose drops, watch a port, generate load.')
  .version(version)
  .showHelpAfterError();

const port = integerOption('--port', 0, 65535);
// Unset, the library's default: the addon on Linux (an error if it cannot load), node:dgram elsewhere.
const backendOption = (verb: string) =>
  new Option('--backend <backend>', `what to ${verb} with: the addon, node:dgram, or the addon when it loads (env UDP_RING_BACKEND)`)
    .choices(['native', 'dgram', 'auto']);
const positive = integerOption('value', 1, Number.MAX_SAFE_INTEGER);

program
  .command('doctor')
  .description('Check everything that makes a Linux host drop UDP datagrams, and say how to fix it')
  .option('-p, --port <port>', 'examine the socket(s) bound to this UDP port in detail', integerOption('--port', 1, 65535))
  .option('-s, --seconds <n>', 'seconds between the two counter samples (0: one sample, totals since boot)', numberOption('--seconds', 0), 1)
  .option('--json', 'print the report as JSON')
  .addOption(new Option('--fail-on <severity>', 'exit 2 when a finding is this severe or worse (for scripts and monitoring)')
    .choices(['warning', 'critical']))
  .addOption(new Option('--proc <dir>', 'read proc from this directory (tests; env UDP_RING_PROC)').hideHelp())
  .addOption(new Option('--proc-later <dir>', 'take the second sample from this directory (tests)').hideHelp())
  .action(async (options) => {
    const { doctor } = await import('./doctor.js');
    await doctor(options);
  });

program
  .command('listen')
  .description('Receive with udp-ring and show rates, ring fill, drops and top sources live')
  .requiredOption('-p, --port <port>', 'UDP port to bind (0 picks a free one)', port)
  .option('-H, --host <host>', 'address to bind', '0.0.0.0')
  .option('--json', 'one JSON stats line per second (the default when stdout is not a terminal)')
  .option('--dump <n>', 'print the first n payloads as hex', integerOption('--dump', 0, Number.MAX_SAFE_INTEGER))
  .option('--seconds <n>', 'stop after n seconds', numberOption('--seconds', 0))
  .option('--count <n>', 'stop after n datagrams', positive)
  .option('--top <n>', 'how many top sources to show', integerOption('--top', 0, 100), 5)
  .option('--ring-bytes <bytes>', 'ring size (udp-ring option ringBytes)', positive)
  .option('--recv-buffer <bytes>', 'kernel receive buffer to ask for (recvBufferSize)', integerOption('--recv-buffer', 0, 2 ** 31 - 1))
  .option('--batch-size <n>', 'datagrams per recvmmsg (batchSize)', positive)
  .option('--max-message-size <bytes>', 'longest datagram kept whole (maxMessageSize)', integerOption('--max-message-size', 1, 65535))
  .option('--coalesce-ms <ms|auto>', "wait up to this long so datagrams share a wakeup: less CPU, more latency; 'auto' only while busy (coalesceMs)",
    (value: string) => (value === 'auto' ? 'auto' : numberOption('--coalesce-ms', 0)(value)))
  .addOption(new Option('--overflow <policy>', 'when the ring is full').choices(['block', 'drop']))
  .option('--reuse-port', 'bind with SO_REUSEPORT')
  .addOption(backendOption('receive'))
  .option('--jetstream <servers>', 'publish every datagram to NATS JetStream (servers comma-separated; udp-ring/jetstream)')
  .option('--subject <subject>', 'JetStream subject, with --jetstream', 'udp')
  .option('--max-in-flight <n>', 'publishes awaiting their ack at most, with --jetstream', positive)
  .action(async (options) => {
    const { listen } = await import('./listen.js');
    await listen(options);
  });

program
  .command('send')
  .description('Send datagrams at a paced rate with sendmmsg (a load generator)')
  .requiredOption('-p, --port <port>', 'destination UDP port', integerOption('--port', 1, 65535))
  .option('-H, --host <host>', 'destination address', '127.0.0.1')
  .option('-r, --rate <n>', 'datagrams per second (0: as fast as possible)', numberOption('--rate', 0), 10000)
  .option('-c, --count <n>', 'datagrams to send (default: until --seconds or Ctrl-C)', integerOption('--count', 0, Number.MAX_SAFE_INTEGER))
  .option('--seconds <n>', 'stop after n seconds', numberOption('--seconds', 0))
  .option('-s, --size <bytes>', 'payload bytes per datagram', integerOption('--size', 0, 65507), 100)
  .option('--burst <n>', 'most datagrams per sendmmsg call', integerOption('--burst', 1, 1024))
  .option('--json', 'print the result as JSON')
  .addOption(backendOption('send'))
  .action(async (options) => {
    const { send } = await import('./send.js');
    await send(options);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  const e = error as NodeJS.ErrnoException;
  // The library's own messages already start with "udp-ring: "; say it once.
  const message = String(e?.message ?? error).replace(/^udp-ring: /, '');
  process.stderr.write(`udp-ring: ${message}\n`);
  process.exitCode = 1;
});
