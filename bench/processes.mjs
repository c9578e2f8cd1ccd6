// Child processes of the benchmark and a small request/reply protocol over
// their IPC channel: every request carries an id, every reply echoes it.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const here = (name) => fileURLToPath(new URL(name, import.meta.url));

class Child {
  #process;
  #pending = new Map();
  #nextId = 1;
  #exited = null;

  constructor(script, args, limitMs) {
    this.limitMs = limitMs;
    this.#process = fork(here(script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve, reject) => {
      this.#process.on('message', (message) => {
        if (message.type === 'ready') {
          resolve(message);
          return;
        }
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        clearTimeout(pending.timer);
        if (message.error) pending.reject(new Error(`${script}: ${message.error}`));
        else pending.resolve(message);
      });
      this.#process.on('exit', (code, signal) => {
        this.#exited = `${script} exited (code ${code}, signal ${signal})`;
        const error = new Error(this.#exited);
        reject(error);
        for (const pending of this.#pending.values()) {
          clearTimeout(pending.timer);
          pending.reject(error);
        }
        this.#pending.clear();
      });
    });
    this.exited = new Promise((resolve) => this.#process.once('exit', resolve));
  }

  get pid() {
    return this.#process.pid;
  }

  /** Sends a command and resolves with the reply; rejects if none comes within the limit (a hang). */
  call(cmd, body = {}) {
    if (this.#exited) return Promise.reject(new Error(this.#exited));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`no reply to ${cmd} within ${this.limitMs} ms`));
      }, this.limitMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#process.send({ id, cmd, ...body });
    });
  }

  /** Asks the child to exit; kills it (by its own pid) if it does not within 5 s. */
  async stop() {
    if (this.#exited) return;
    try {
      this.#process.send({ cmd: 'exit' });
    } catch { /* channel already closed */ }
    const timer = setTimeout(() => this.#process.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

export async function startReceiver(config, limitMs = 60_000) {
  const child = new Child('./receiver.mjs', [JSON.stringify(config)], limitMs);
  child.info = await child.ready;
  return child;
}

export async function startSender(limitMs = 60_000) {
  const child = new Child('./sender.mjs', [], limitMs);
  await child.ready;
  return child;
}
