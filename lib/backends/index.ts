// Every backend that opens through the core's registry (core/backend.ts),
// loaded for its effect: each registers itself as its module loads. Imported
// by each entry point that opens receivers (lib/index.ts, adapters/workers.ts,
// adapters/dgram/index.ts), so a backend is there before the first open().
import './dgram/receiver.js';
import './dgram/sender.js';
import './native/ring-reader.js';
import './native/sender.js';
