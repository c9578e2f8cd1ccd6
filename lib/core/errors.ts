// Errors shaped like Node's own: system errors carry code, errno (negative,
// as libuv reports it), syscall, and the address and port when they apply.
import { getSystemErrorName } from 'node:util';

export interface SystemErrorDetails {
  errno: number;
  syscall: string;
  address?: string;
  port?: number;
}

export function systemError({ errno, syscall, address, port }: SystemErrorDetails): NodeJS.ErrnoException {
  const negative = -Math.abs(errno);
  let code: string;
  try {
    code = getSystemErrorName(negative);
  } catch {
    code = `E${Math.abs(errno)}`;
  }
  let message = `${syscall} ${code}`;
  if (address !== undefined) message += port !== undefined && port > 0 ? ` ${address}:${port}` : ` ${address}`;
  const error = new Error(message) as NodeJS.ErrnoException & { address?: string; port?: number };
  error.code = code;
  error.errno = negative;
  error.syscall = syscall;
  if (address !== undefined) error.address = address;
  // As node:dgram does: port 0 (let the kernel pick) is no port to report.
  if (port !== undefined && port > 0) error.port = port;
  return error;
}

/** Converts an error thrown by the addon (plain `errno` + `syscall`) into a system error. */
export function fromNative(cause: unknown, extra: { address?: string; port?: number } = {}): Error {
  const e = cause as { errno?: unknown; syscall?: unknown };
  if (e && typeof e.errno === 'number' && typeof e.syscall === 'string') {
    return systemError({ errno: e.errno, syscall: e.syscall, ...extra });
  }
  return cause instanceof Error ? cause : new Error(String(cause));
}

export function closedError(method: string): Error {
  const error = new Error(`udp-ring: ${method}() called on a closed ${method === 'send' ? 'sender' : 'receiver'}`);
  (error as NodeJS.ErrnoException).code = 'ERR_SOCKET_DGRAM_NOT_RUNNING';
  return error;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return `function ${(value as { name?: string }).name || '(anonymous)'}`;
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  if (typeof value === 'bigint') return `type bigint (${value}n)`;
  let shown = typeof value === 'string' ? `'${value.length > 28 ? value.slice(0, 25) + '...' : value}'` : String(value);
  return `type ${typeof value} (${shown})`;
}

export function invalidType(name: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`The "${name}" option must be ${expected}. Received ${describe(value)}`);
  (error as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_TYPE';
  return error;
}

export function outOfRange(name: string, expected: string, value: unknown): RangeError {
  const error = new RangeError(`The value of "${name}" is out of range. It must be ${expected}. Received ${typeof value === 'number' || typeof value === 'bigint' ? String(value) : describe(value)}`);
  (error as NodeJS.ErrnoException).code = 'ERR_OUT_OF_RANGE';
  return error;
}

export function invalidValue(name: string, expected: string, value: unknown): TypeError {
  const error = new TypeError(`The "${name}" option must be ${expected}. Received ${describe(value)}`);
  (error as NodeJS.ErrnoException).code = 'ERR_INVALID_ARG_VALUE';
  return error;
}
