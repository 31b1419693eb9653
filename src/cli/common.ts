// Shared CLI plumbing: the --socket option, number parsing, and error reporting with exit codes.
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  ControlClient,
  NoServerError,
  ServerError,
  resolveSocket,
} from '../client/control-client.js';

export const EXIT_ERROR = 1;
export const EXIT_NO_SERVER = 2;

export function socketOption(): Option {
  return new Option(
    '-s, --socket <path>',
    'data socket of the server (env TT_ALLOC_SERVER_SOCKET; default ' +
      '/tmp/tt_allocation_server.sock)',
  );
}

export function clientFor(opts: { socket?: string }): ControlClient {
  return new ControlClient(resolveSocket(opts.socket));
}

export function intArg(
  name: string,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}`);
    return n;
  };
}

export function secondsArg(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a number of seconds ≥ 0 (0 turns it off)`);
    return n;
  };
}

/** "0,1,3" → checked and normalised for a query string. */
export function listArg(name: string): (v: string) => string {
  return (v: string) => {
    if (!/^\s*-?\d+(\s*,\s*-?\d+)*\s*$/.test(v))
      throw new InvalidArgumentError(`${name} must be a comma-separated list of integers`);
    return v.replace(/\s+/g, '');
  };
}

/** Runs a command action, turning known failures into one clear line and an exit code. */
export function action<A extends unknown[]>(
  fn: (...args: A) => Promise<void> | void,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      if (e instanceof NoServerError) {
        process.stderr.write(`ttalloc: ${e.message}\n`);
        process.exit(EXIT_NO_SERVER);
      }
      if (e instanceof ServerError) {
        process.stderr.write(`ttalloc: server said: ${e.message}\n`);
        process.exit(EXIT_ERROR);
      }
      process.stderr.write(`ttalloc: ${(e as Error).message}\n`);
      process.exit(EXIT_ERROR);
    }
  };
}

export type { Command };
