/**
 * The logger factory (pino): structured JSON lines by default, readable text when asked, the level from the
 * configuration, and two layers that keep credentials out of every log line:
 *
 *  1. by key: `redact` paths covering every secret option (camelCase and kebab-case), tokens, and the
 *     Authorization / X-Auth-Key / X-Auth-Token / X-Storage-Token / X-Subject-Token headers, at the top level
 *     and one or two levels down (`*.password`, `req.headers["x-auth-token"]`);
 *  2. by value: every secret value known to the process (the configured credentials, and tokens the stores
 *     obtain, registered with `addSecretValue`) is replaced in the finished line, whatever field, message or
 *     stack trace carried it.
 *
 * Components log through children: `log.child({ component: 'committer', volume })`.
 * Logs go to stderr (stdout is for command output) unless a destination is given.
 */

import { pino, type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';
import type { Config } from './config/load.js';
import { OPTIONS, camelCase } from './config/options.js';

export type { Logger } from 'pino';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const CENSOR = '[REDACTED]';

/** Header names that carry credentials (lowercase and as commonly written). */
const SECRET_HEADERS = [
  'authorization',
  'Authorization',
  'x-auth-key',
  'X-Auth-Key',
  'x-auth-token',
  'X-Auth-Token',
  'x-storage-pass',
  'X-Storage-Pass',
  'x-storage-token',
  'X-Storage-Token',
  'x-subject-token',
  'X-Subject-Token',
  'x-amz-security-token',
  'X-Amz-Security-Token',
  'cookie',
  'set-cookie',
];

/**
 * Field names that hold secrets wherever they appear. The TempAuth option `key` is deliberately not here:
 * `key` is the object name in store logs. It is covered under `auth`, `credentials` and store settings instead.
 */
const SECRET_FIELDS = [
  ...new Set([
    ...OPTIONS.filter((spec) => 'secret' in spec && spec.secret && spec.name !== 'key').flatMap((spec) => [spec.name, camelCase(spec.name)]),
    'password',
    'secret',
    'token',
    'authToken',
    'accessToken',
    'secretAccessKey',
    'sessionToken',
    'applicationCredentialSecret',
  ]),
];

function pathSegment(name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? `.${name}` : `["${name}"]`;
}

function buildRedactPaths(): string[] {
  const paths = new Set<string>();
  const add = (prefix: string, name: string) => paths.add(`${prefix}${pathSegment(name)}`.replace(/^\./, ''));
  for (const field of SECRET_FIELDS) {
    add('', field);
    add('*', field);
    add('*.*', field);
  }
  for (const header of SECRET_HEADERS) {
    for (const prefix of ['headers', '*.headers', 'req.headers', 'request.headers', 'res.headers', 'response.headers']) add(prefix, header);
  }
  for (const prefix of ['auth', '*.auth', 'credentials', '*.credentials', 'store', 'stores.*']) add(prefix, 'key');
  return [...paths];
}

/** Paths pino redacts in every log object. */
export const REDACT_PATHS: readonly string[] = buildRedactPaths();

// ------------------------------------------------------------------ secret values

const MIN_SECRET_LENGTH = 4;
const MAX_SECRET_VALUES = 256;
/** Secret values to scrub, in insertion order (oldest first); both the raw and the JSON-escaped form. */
const secretValues = new Set<string>();

/**
 * Registers a secret value (a password, key or token) so that it never appears in any log line, in any field.
 * Values shorter than 4 characters are not scrubbed by value (they would mangle ordinary text); redaction by
 * key still applies to them. The newest 256 values are kept (tokens are renewed over time).
 */
export function addSecretValue(value: string | undefined | null): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return;
  for (const form of new Set([value, JSON.stringify(value).slice(1, -1)])) {
    secretValues.delete(form);
    secretValues.add(form);
  }
  while (secretValues.size > MAX_SECRET_VALUES) secretValues.delete(secretValues.values().next().value!);
}

/** Registers every secret of a loaded configuration (all stores). */
export function addConfigSecrets(config: Config): void {
  for (const settings of Object.values(config.settings.stores)) {
    for (const [name, setting] of Object.entries(settings)) {
      if (OPTIONS.some((spec) => spec.name === name && 'secret' in spec && spec.secret)) addSecretValue(String(setting.value));
    }
  }
}

/** Replaces every registered secret value in `text`. */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const secret of secretValues) {
    if (out.includes(secret)) out = out.split(secret).join(CENSOR);
  }
  return out;
}

// ------------------------------------------------------------------ destinations

interface WritableLike {
  write(chunk: string): unknown;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PRETTY_SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'component', 'volume']);

function prettyValue(value: unknown): string {
  if (typeof value === 'string') return /\s|"|=/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value);
}

/** Formats one JSON log line as text: "12:00:00.123 INFO  [committer pgdata] message key=value". */
export function prettyLine(jsonLine: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const time = typeof record['time'] === 'number' ? new Date(record['time']).toISOString().slice(11, 23) : '';
  const level = (LEVEL_NAMES[record['level'] as number] ?? String(record['level'])).padEnd(5);
  const where = [record['component'], record['volume']].filter((v) => v !== undefined).join(' ');
  const err = record['err'] as { stack?: string } | undefined;
  const fields = Object.entries(record)
    .filter(([name]) => !PRETTY_SKIP.has(name) && name !== 'err')
    .map(([name, value]) => `${name}=${prettyValue(value)}`);
  let line = `${time} ${level} ${where ? `[${where}] ` : ''}${String(record['msg'] ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}`;
  if (err?.stack) line += `\n    ${err.stack.replaceAll('\n', '\n    ')}`;
  return `${line}\n`;
}

/** Wraps a destination: scrubs secret values from each finished line, and formats it as text when pretty. */
class ScrubbingDestination implements DestinationStream {
  constructor(
    private readonly inner: WritableLike,
    private readonly pretty: boolean,
  ) {}

  write(line: string): void {
    const clean = scrubSecrets(line);
    this.inner.write(this.pretty ? prettyLine(clean) : clean);
  }

  flushSync(): void {
    const inner = this.inner as { flushSync?: () => void };
    inner.flushSync?.();
  }
}

// ------------------------------------------------------------------ factory

export interface CreateLoggerOptions {
  level?: LogLevel;
  format?: 'json' | 'pretty';
  /** Where lines go; default stderr. */
  destination?: WritableLike;
  /** Extra bindings on every line (e.g. { component: 'plugin' }). */
  base?: Record<string, unknown>;
}

/** Creates the root logger. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 2, sync: true });
  const pinoOptions: PinoOptions = {
    level: options.level ?? 'info',
    base: { pid: process.pid, ...(options.base ?? {}) },
    redact: { paths: [...REDACT_PATHS], censor: CENSOR },
    formatters: { level: (_label: string, number: number) => ({ level: number }) },
  };
  return pino(pinoOptions, new ScrubbingDestination(destination, options.format === 'pretty'));
}

/** Creates the root logger from a configuration, registering its secrets for scrubbing first. */
export function loggerFromConfig(config: Config, destination?: WritableLike): Logger {
  addConfigSecrets(config);
  return createLogger({
    level: config.global.logLevel,
    format: config.global.logFormat,
    ...(destination === undefined ? {} : { destination }),
  });
}

/** A component's logger: `componentLogger(log, 'committer', { volume })`, optionally at its own level. */
export function componentLogger(parent: Logger, component: string, bindings: Record<string, unknown> = {}, level?: LogLevel): Logger {
  return parent.child({ component, ...bindings }, level === undefined ? undefined : { level });
}

/** A logger that drops everything (tests, libraries used without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
