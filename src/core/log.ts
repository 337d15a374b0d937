/**
 * The logger interface the core writes to: the subset of pino's API it uses (a pino logger fits as is), and a
 * logger that drops everything (the default).
 */

export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  error: LogFn;
  warn: LogFn;
  info: LogFn;
  debug: LogFn;
}

const drop: LogFn = () => undefined;
export const silentLogger: Logger = { error: drop, warn: drop, info: drop, debug: drop };
