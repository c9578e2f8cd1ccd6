// node:dgram's errors, as node:dgram makes them: the codes, messages and classes its users test for.
import * as nodeDgram from 'node:dgram';
import { getSystemErrorMap, inspect } from 'node:util';

export function codeError(Kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string, message: string): Error {
  const error = new Kind(message);
  (error as NodeJS.ErrnoException).code = code;
  return error;
}

// Node's determineSpecificType: how ERR_INVALID_ARG_TYPE and ERR_SOCKET_BAD_PORT show a value.
export function received(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'function') return `function ${(value as { name?: string }).name}`;
  if (typeof value === 'object') {
    const name = (value as object).constructor?.name;
    return name ? `an instance of ${name}` : inspect(value, { depth: -1 });
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `type ${typeof value} (${shown})`;
}

export function argType(name: string, expected: string, value: unknown): TypeError {
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${received(value)}`) as TypeError;
}

export function validPort(port: unknown, allowZero = true): number {
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < (allowZero ? 0 : 1) || n > 65535) {
    throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT', `Port should be ${allowZero ? '>=' : '>'} 0 and < 65536. Received ${received(port)}.`);
  }
  return n;
}

export function notRunning(): Error {
  return codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
}

// node:dgram's buffer-size errors are SystemErrors (code ERR_SOCKET_BUFFER_SIZE, with `info` and
// `errno`). Node does not export the class; one is taken from node:dgram itself, once.
let BufferSizeError: (new (context: object) => Error) | null | undefined;

export function bufferSizeError(errno: number, syscall: string): Error {
  if (BufferSizeError === undefined) {
    BufferSizeError = null;
    const probe = nodeDgram.createSocket('udp4');
    try {
      probe.getRecvBufferSize(); // unbound: throws EBADF
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_SOCKET_BUFFER_SIZE') {
        BufferSizeError = (error as Error).constructor as new (context: object) => Error;
      }
    }
    probe.close();
  }
  const [code, message] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, 'unknown error'];
  const context = { errno: -errno, code, message, syscall };
  if (BufferSizeError) return new BufferSizeError(context);
  const error = codeError(Error, 'ERR_SOCKET_BUFFER_SIZE', `Could not get or set buffer size: ${syscall} returned ${code} (${message})`);
  Object.assign(error, { info: context, errno: -errno, syscall });
  return error;
}
