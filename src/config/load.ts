/**
 * Loads the effective configuration: defaults ← config file ← environment ← command-line flags (← per-volume
 * options, see resolveVolumeOptions), validated against the option table (./options.ts), returned frozen and
 * typed, with where each setting came from.
 *
 * Stores: a config file names several (`stores: {NAME: {type: ..., ...}}`); the OpenStack (ST_*, OS_*) or AWS
 * (AWS_*) variables define (or override) the store named `default`. A value that does not parse is an error
 * at load; a store that lacks what it needs (say, a password) is recorded in `storeProblems` and reported
 * when that store is used, so a half-set environment never breaks commands that use another store.
 *
 * Error messages name the option, the bad value (never for a secret) and where it came from.
 */

import { readFileSync, statSync } from 'node:fs';
import { dirname, extname, resolve as resolvePath } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import {
  OPTIONS,
  camelCase,
  envBindings,
  findOption,
  hasFlag,
  optionsOfScope,
  type GlobalOptions,
  type OptionScope,
  type OptionSpec,
  type PluginOptions,
  type StoreKind,
  type StoreTuning,
  type SwiftAuthKind,
  type VolumeOptions,
} from './options.js';
import { ValueError, checkRange, formatDuration, formatSize, parseBool, parseDuration, parseEnum, parseInteger, parseSize } from './values.js';

export type OptionValue = string | number | boolean;

/** A value and where it came from ("default", "file /etc/swiftfs.yaml", "env OS_PASSWORD", "flag --retries"). */
export interface Setting {
  readonly value: OptionValue;
  readonly origin: string;
}

/** A configuration mistake; the message is meant for the user as it is. */
export class ConfigError extends Error {
  readonly option: string | undefined;
  constructor(message: string, option?: string) {
    super(message);
    this.name = 'ConfigError';
    this.option = option;
  }
}

/** An option given to a store it does not apply to: a mistake in the file, reported at load, not on use. */
class StoreShapeError extends ConfigError {}

// ------------------------------------------------------------------ typed stores

interface StoreBase extends StoreTuning {
  readonly name: string;
  readonly region: string | undefined;
}

export type SwiftAuthConfig =
  | { readonly type: 'tempauth'; readonly authUrl: string; readonly user: string; readonly key: string }
  | {
      readonly type: 'keystone';
      readonly authUrl: string;
      readonly interface: 'public' | 'internal' | 'admin';
      readonly username: string | undefined;
      readonly userId: string | undefined;
      readonly userDomainName: string | undefined;
      readonly userDomainId: string | undefined;
      readonly password: string | undefined;
      readonly projectName: string | undefined;
      readonly projectId: string | undefined;
      readonly projectDomainName: string | undefined;
      readonly projectDomainId: string | undefined;
      readonly applicationCredentialId: string | undefined;
      readonly applicationCredentialName: string | undefined;
      readonly applicationCredentialSecret: string | undefined;
    }
  | { readonly type: 'token'; readonly token: string };

export interface SwiftStoreConfig extends StoreBase {
  readonly kind: 'swift';
  readonly auth: SwiftAuthConfig;
  /** Overrides the storage URL authentication returns (required with token auth). */
  readonly storageUrl: string | undefined;
}

export interface S3StoreConfig extends StoreBase {
  readonly kind: 's3';
  /** Unset: AWS. */
  readonly endpoint: string | undefined;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string | undefined;
  /** Undefined: the store decides (path style when an endpoint is given). */
  readonly forcePathStyle: boolean | undefined;
}

export interface MemoryStoreConfig extends StoreBase {
  readonly kind: 'memory';
}

export type StoreConfig = SwiftStoreConfig | S3StoreConfig | MemoryStoreConfig;

export interface Config {
  readonly global: GlobalOptions;
  /** Defaults for every volume (volume and mount options); a volume's own options go on top (resolveVolumeOptions). */
  readonly volume: VolumeOptions;
  readonly plugin: PluginOptions;
  /** Usable stores, by name. */
  readonly stores: Readonly<Record<string, StoreConfig>>;
  /** Stores that are named but incomplete or inconsistent: name -> what is wrong. Using one throws that. */
  readonly storeProblems: Readonly<Record<string, string>>;
  /** The store used when a volume names none: default-store, else the only store, else `default`. */
  readonly defaultStore: string | undefined;
  readonly configFile: string | undefined;
  readonly warnings: readonly string[];
  /** Every setting with its origin, for `config show` (secrets included: mask before printing). */
  readonly settings: {
    readonly global: Readonly<Record<string, Setting>>;
    readonly volume: Readonly<Record<string, Setting>>;
    readonly plugin: Readonly<Record<string, Setting>>;
    readonly stores: Readonly<Record<string, Readonly<Record<string, Setting>>>>;
  };
}

export interface LoadConfigInput {
  /** Default: process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Parsed command-line options, camelCase or kebab-case keys (commander's opts()); unknown keys are ignored. */
  flags?: Readonly<Record<string, unknown>>;
  /** The config file; default: flags.config, then SWIFTFS_CONFIG. */
  configFile?: string;
  /** For relative paths; default: process.cwd(). */
  cwd?: string;
}

// ------------------------------------------------------------------ values

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\x00-\x1f\x7f]/;

function showValue(spec: OptionSpec, raw: unknown): string {
  if (spec.secret) return 'its value';
  return JSON.stringify(typeof raw === 'string' ? raw : String(raw));
}

function showBound(spec: OptionSpec): (n: number) => string {
  if (spec.type === 'size') return formatSize;
  if (spec.type === 'duration') return formatDuration;
  return String;
}

/**
 * Parses one option value from any source. `raw` is a string (env, flags, YAML) or a JSON scalar.
 * Paths are made absolute against `baseDir`.
 */
export function parseOptionValue(spec: OptionSpec, raw: unknown, origin: string, baseDir: string = process.cwd()): OptionValue {
  try {
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw new ValueError(raw !== null && typeof raw === 'object' ? 'a single value, not a list or a map' : 'a value');
    }
    switch (spec.type) {
      case 'bool':
        return parseBool(typeof raw === 'number' ? String(raw) : raw);
      case 'int': {
        if (spec.octal && typeof raw === 'number') throw new ValueError('an octal number written as a string, such as "022"');
        if (typeof raw === 'boolean') throw new ValueError('a whole number');
        const options: { octal?: boolean; min?: number; max?: number } = {};
        if (spec.octal) options.octal = true;
        if (spec.min !== undefined) options.min = spec.min;
        if (spec.max !== undefined) options.max = spec.max;
        return parseInteger(raw, options);
      }
      case 'size': {
        if (typeof raw === 'boolean') throw new ValueError('a size such as 4M');
        const bytes = parseSize(raw);
        checkRange(bytes, spec.min, spec.max, showBound(spec));
        return bytes;
      }
      case 'duration': {
        if (typeof raw === 'boolean') throw new ValueError('a duration such as 5s');
        const ms = parseDuration(raw);
        checkRange(ms, spec.min, spec.max, showBound(spec));
        return ms;
      }
      case 'enum': {
        const text = String(raw);
        return parseEnum(spec.aliases?.[text] ?? text, spec.choices ?? []);
      }
      case 'string':
        return parseStringValue(spec, String(raw), baseDir);
    }
  } catch (err) {
    if (err instanceof ValueError) {
      throw new ConfigError(`${spec.name}: ${showValue(spec, raw)} is not valid (from ${origin}): expected ${err.expected}`, spec.name);
    }
    throw err;
  }
}

/**
 * A comma-separated list of region names (`dr`, `dr,backup`, `os@RegionTwo`): each a name as NAME_RE, optionally
 * followed by "@" and a catalog region; spaces around commas are dropped, duplicates removed, order kept.
 * Whether each region exists is checked where the configuration is known (src/region/regions.ts).
 */
export function parseRegionList(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(',')) {
    const name = raw.trim();
    const [store, region, extra] = name.split('@');
    if (name === '' || extra !== undefined || !NAME_RE.test(store!) || (region !== undefined && !NAME_RE.test(region))) {
      throw new ValueError('region names separated by commas (a store name, a store\'s region, or STORE@REGION), e.g. dr or dr,backup');
    }
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

function parseStringValue(spec: OptionSpec, text: string, baseDir: string): string {
  if (text === '') throw new ValueError('a non-empty value');
  if (CONTROL_RE.test(text)) throw new ValueError('no control characters');
  switch (spec.format) {
    case 'url': {
      let url: URL;
      try {
        url = new URL(text);
      } catch {
        throw new ValueError('an http:// or https:// URL');
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValueError('an http:// or https:// URL');
      if (url.username || url.password) throw new ValueError('a URL without user:password (give credentials in their own options)');
      return text;
    }
    case 'name':
      if (!NAME_RE.test(text)) throw new ValueError('a name of letters, digits, ".", "_" and "-" (at most 63, starting with a letter or digit)');
      return text;
    case 'listen': {
      const match = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(text);
      const port = match ? Number(match[2]) : NaN;
      if (!match || port < 1 || port > 65535) throw new ValueError('HOST:PORT or PORT, e.g. 127.0.0.1:9464');
      return text;
    }
    case 'path':
      return resolvePath(baseDir, text);
    case 'regions':
      return parseRegionList(text).join(',');
    default:
      return text;
  }
}

// ------------------------------------------------------------------ sources

type Settings = Map<string, Setting>;

function envValue(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Reads the first set, unconditional (or satisfied) environment binding of `spec`. */
function fromEnv(
  spec: OptionSpec,
  env: Readonly<Record<string, string | undefined>>,
  context: { type?: string; auth?: string } = {},
): { raw: string; origin: string } | undefined {
  for (const binding of envBindings(spec)) {
    const name = typeof binding === 'string' ? binding : binding.name;
    if (typeof binding !== 'string' && context[binding.when.option] !== binding.when.is) continue;
    const raw = envValue(env, name);
    if (raw !== undefined) return { raw, origin: `env ${name}` };
  }
  return undefined;
}

/** Maps commander's opts() (camelCase) to option names; only options that have a flag. */
function normalizeFlags(flags: Readonly<Record<string, unknown>>): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (!hasFlag(spec)) continue;
    const value = flags[camelCase(spec.name)] ?? flags[spec.name];
    if (value !== undefined) out.set(spec.name, value);
  }
  return out;
}

function setFrom(settings: Settings, spec: OptionSpec, raw: unknown, origin: string, baseDir: string): void {
  if (raw === undefined || raw === null || raw === '') return;
  settings.set(spec.name, { value: parseOptionValue(spec, raw, origin, baseDir), origin });
}

function applyDefaults(settings: Settings, specs: readonly OptionSpec[]): void {
  for (const spec of specs) {
    if (spec.default !== undefined) settings.set(spec.name, { value: parseOptionValue(spec, spec.default, 'default'), origin: 'default' });
  }
}

// ------------------------------------------------------------------ the config file

interface ConfigFile {
  path: string;
  dir: string;
  /** Top-level options (global, plugin, common store tuning). */
  top: Map<string, unknown>;
  stores: Map<string, Map<string, unknown>>;
  volumeDefaults: Map<string, unknown>;
  holdsSecrets: boolean;
}

const TOP_SCOPES: readonly OptionScope[] = ['global', 'plugin'];

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = current;
    }
  }
  return row[b.length]!;
}

/** " (did you mean X?)" for a near miss among `candidates`, else "". */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(name, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readConfigFile(path: string, warnings: string[]): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`config file ${path}: ${code === 'ENOENT' ? 'not found' : code === 'EACCES' ? 'permission denied' : `cannot be read (${code ?? String(err)})`}`, 'config');
  }
  let data: unknown;
  if (extname(path).toLowerCase() === '.json') {
    try {
      data = JSON.parse(text);
    } catch (err) {
      // JSON.parse messages quote at most a few characters around the error position.
      const position = /position (\d+)/.exec(String((err as Error).message));
      throw new ConfigError(`config file ${path}: not valid JSON${position ? ` (at character ${position[1]})` : ''}`, 'config');
    }
  } else {
    try {
      // failsafe: every scalar is a string, parsed by the option table (so umask: 022 stays octal).
      data = parseYaml(text, { schema: 'failsafe', uniqueKeys: true });
    } catch (err) {
      if (err instanceof YAMLParseError) {
        // The library's message quotes the offending line, which may hold a secret: keep only the description.
        const description = err.message.split(/ at line |:\n/)[0];
        const where = err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
        throw new ConfigError(`config file ${path}: not valid YAML${where}: ${description}`, 'config');
      }
      throw err;
    }
  }
  if (data === null || data === undefined || data === '') data = {};
  if (!isPlainObject(data)) throw new ConfigError(`config file ${path}: expected a map of options at the top`, 'config');

  const file: ConfigFile = { path, dir: dirname(path), top: new Map(), stores: new Map(), volumeDefaults: new Map(), holdsSecrets: false };
  const topAllowed = new Set<string>([
    ...optionsOfScope(...TOP_SCOPES).filter((spec) => spec.name !== 'config').map((spec) => spec.name),
    ...optionsOfScope('store').filter((spec) => spec.common).map((spec) => spec.name),
  ]);
  for (const [key, value] of Object.entries(data)) {
    if (key === 'stores') {
      if (!isPlainObject(value)) throw new ConfigError(`config file ${path}: stores must be a map of store names to their options`, 'config');
      for (const [storeName, storeValue] of Object.entries(value)) file.stores.set(storeName, readStoreSection(path, storeName, storeValue, file));
      continue;
    }
    if (key === 'volumes') {
      if (value === '' || value === null) continue;
      if (!isPlainObject(value)) throw new ConfigError(`config file ${path}: volumes must be a map (volumes: {defaults: {...}})`, 'config');
      for (const [subKey, subValue] of Object.entries(value)) {
        if (subKey !== 'defaults') throw new ConfigError(`config file ${path}: volumes.${subKey}: only volumes.defaults is supported`, 'config');
        if (subValue === '' || subValue === null) continue;
        if (!isPlainObject(subValue)) throw new ConfigError(`config file ${path}: volumes.defaults must be a map of volume options`, 'config');
        for (const [name, optionValue] of Object.entries(subValue)) {
          const spec = findOption(name);
          if (!spec || !(spec.scope === 'volume' || spec.scope === 'mount' || spec.name === 'log-level')) {
            throw new ConfigError(`config file ${path}: volumes.defaults.${name}: not a volume option${spec ? ` (${name} is a ${spec.scope} option)` : didYouMean(name, optionsOfScope('volume', 'mount').map((s) => s.name))}`, name);
          }
          file.volumeDefaults.set(name, optionValue);
        }
      }
      continue;
    }
    if (topAllowed.has(key)) {
      file.top.set(key, value);
      continue;
    }
    const spec = findOption(key);
    if (spec && (spec.scope === 'volume' || spec.scope === 'mount')) {
      throw new ConfigError(`config file ${path}: ${key} is a volume option: put it under volumes.defaults`, key);
    }
    if (spec && spec.scope === 'store') {
      throw new ConfigError(`config file ${path}: ${key} belongs to a store: put it under stores.NAME`, key);
    }
    if (key === 'config') throw new ConfigError(`config file ${path}: a config file cannot name another config file`, key);
    throw new ConfigError(`config file ${path}: unknown option ${key}${didYouMean(key, [...topAllowed, 'stores', 'volumes'])}`, key);
  }

  if (file.holdsSecrets) {
    try {
      const mode = statSync(path).mode & 0o777;
      if ((mode & 0o077) !== 0) {
        warnings.push(`config file ${path} holds secrets but is readable by others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it`);
      }
    } catch {
      // It was just read; a stat failure here is not worth failing for.
    }
  }
  return file;
}

function readStoreSection(path: string, storeName: string, value: unknown, file: ConfigFile): Map<string, unknown> {
  if (!NAME_RE.test(storeName)) {
    throw new ConfigError(`config file ${path}: store name ${JSON.stringify(storeName)} must be letters, digits, ".", "_" and "-" (at most 63)`, 'stores');
  }
  if (!isPlainObject(value)) throw new ConfigError(`config file ${path}: stores.${storeName} must be a map of store options`, 'stores');
  const out = new Map<string, unknown>();
  const storeOptions = optionsOfScope('store').map((spec) => spec.name);
  for (const [key, optionValue] of Object.entries(value)) {
    const spec = findOption(key);
    if (!spec || spec.scope !== 'store') {
      throw new ConfigError(`config file ${path}: stores.${storeName}.${key}: not a store option${spec ? ` (${key} is a ${spec.scope} option)` : didYouMean(key, storeOptions)}`, key);
    }
    if (spec.secret && optionValue !== '' && optionValue !== null) file.holdsSecrets = true;
    out.set(key, optionValue);
  }
  return out;
}

// ------------------------------------------------------------------ stores

const SWIFT_ENV = ['ST_AUTH', 'OS_AUTH_URL', 'OS_STORAGE_URL'];
const S3_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3'];

/** Guesses the kind of the environment's store from which variables are set. */
function guessEnvKind(env: Readonly<Record<string, string | undefined>>): StoreKind | undefined {
  if (SWIFT_ENV.some((name) => envValue(env, name) !== undefined)) return 'swift';
  if (S3_ENV.some((name) => envValue(env, name) !== undefined)) return 's3';
  return undefined;
}

/** Guesses the Swift auth method of the environment's store. */
function guessEnvAuth(env: Readonly<Record<string, string | undefined>>): SwiftAuthKind | undefined {
  const has = (name: string) => envValue(env, name) !== undefined;
  const tempauth = has('ST_AUTH');
  const keystone = has('OS_AUTH_URL');
  if (tempauth && keystone) {
    const tempauthCreds = has('ST_KEY');
    const keystoneCreds = has('OS_PASSWORD') || has('OS_APPLICATION_CREDENTIAL_SECRET');
    if (tempauthCreds && !keystoneCreds) return 'tempauth';
    if (keystoneCreds && !tempauthCreds) return 'keystone';
    return undefined; // reported as a problem of the store: ask for SWIFTFS_AUTH
  }
  if (tempauth) return 'tempauth';
  if (keystone) return 'keystone';
  if (has('OS_STORAGE_URL') && has('OS_AUTH_TOKEN')) return 'token';
  return undefined;
}

/** Guesses the auth method of a store from the options it has. */
function guessAuth(settings: Settings): SwiftAuthKind | undefined {
  if (settings.has('user') || settings.has('key')) return 'tempauth';
  if (['username', 'user-id', 'password', 'application-credential-id', 'application-credential-secret'].some((name) => settings.has(name))) return 'keystone';
  if (settings.has('auth-token')) return 'token';
  return undefined;
}

function str(settings: Settings, name: string): string | undefined {
  const setting = settings.get(name);
  return setting === undefined ? undefined : String(setting.value);
}

/** Names an option for a "missing" message: the option, plus its variable when the store comes from the environment. */
function want(name: string, fromEnv: boolean): string {
  if (!fromEnv) return name;
  const spec = findOption(name);
  const vars = spec ? envBindings(spec).map((b) => (typeof b === 'string' ? b : b.name)).filter((v) => !v.startsWith('SWIFTFS_')) : [];
  return vars.length > 0 ? `${name} (${vars[0]})` : name;
}

function buildStore(name: string, settings: Settings, tuning: StoreTuning, fromEnv: boolean): StoreConfig {
  const where = `store ${name}`;
  const kind = settings.get('type')?.value as StoreKind | undefined;
  if (kind === undefined) throw new ConfigError(`${where}: type is required (swift, s3 or memory)`, 'type');
  const region = str(settings, 'region');

  let auth: SwiftAuthKind | undefined;
  if (kind === 'swift') {
    auth = (settings.get('auth')?.value as SwiftAuthKind | undefined) ?? guessAuth(settings);
    if (auth === undefined) {
      throw new ConfigError(
        fromEnv
          ? `${where}: cannot tell the Swift auth method from the environment: set SWIFTFS_AUTH to tempauth, keystone or token`
          : `${where}: auth is required (tempauth, keystone or token)`,
        'auth',
      );
    }
  }
  for (const [optionName, setting] of settings) {
    const spec = findOption(optionName)!;
    if (spec.kinds && !spec.kinds.includes(kind)) {
      throw new StoreShapeError(`${where}: ${optionName} does not apply to a ${kind} store (from ${setting.origin})`, optionName);
    }
    if (auth !== undefined && spec.auth && !spec.auth.includes(auth)) {
      throw new StoreShapeError(`${where}: ${optionName} does not apply to Swift ${auth} auth (from ${setting.origin})`, optionName);
    }
  }
  const missing = (...names: string[]) => new ConfigError(`${where}: ${kind}${auth ? ` ${auth}` : ''} store needs ${names.map((n) => want(n, fromEnv)).join(' and ')}`, names[0]);
  const base = { name, region, ...tuning };

  if (kind === 'memory') return { ...base, kind };

  if (kind === 's3') {
    const accessKeyId = str(settings, 'access-key-id');
    const secretAccessKey = str(settings, 'secret-access-key');
    if (accessKeyId === undefined || secretAccessKey === undefined) {
      throw missing(...['access-key-id', 'secret-access-key'].filter((n) => !settings.has(n)));
    }
    return {
      ...base,
      kind,
      region: region ?? 'us-east-1',
      endpoint: str(settings, 'endpoint'),
      accessKeyId,
      secretAccessKey,
      sessionToken: str(settings, 'session-token'),
      forcePathStyle: settings.get('force-path-style')?.value as boolean | undefined,
    };
  }

  const storageUrl = str(settings, 'storage-url');
  let swiftAuth: SwiftAuthConfig;
  if (auth === 'tempauth') {
    const authUrl = str(settings, 'auth-url');
    const user = str(settings, 'user');
    const key = str(settings, 'key');
    if (authUrl === undefined || user === undefined || key === undefined) throw missing(...['auth-url', 'user', 'key'].filter((n) => !settings.has(n)));
    if (!user.includes(':')) throw new ConfigError(`${where}: user ${JSON.stringify(user)} must be ACCOUNT:USER (e.g. test:tester)`, 'user');
    swiftAuth = { type: 'tempauth', authUrl, user, key };
  } else if (auth === 'token') {
    const token = str(settings, 'auth-token');
    if (token === undefined || storageUrl === undefined) throw missing(...['auth-token', 'storage-url'].filter((n) => !settings.has(n)));
    swiftAuth = { type: 'token', token };
  } else {
    const authUrl = str(settings, 'auth-url');
    if (authUrl === undefined) throw missing('auth-url');
    const get = (n: string) => str(settings, n);
    const keystone = {
      type: 'keystone' as const,
      authUrl,
      interface: ((settings.get('interface')?.value as string | undefined) ?? 'public') as 'public' | 'internal' | 'admin',
      username: get('username'),
      userId: get('user-id'),
      userDomainName: get('user-domain-name'),
      userDomainId: get('user-domain-id'),
      password: get('password'),
      projectName: get('project-name'),
      projectId: get('project-id'),
      projectDomainName: get('project-domain-name'),
      projectDomainId: get('project-domain-id'),
      applicationCredentialId: get('application-credential-id'),
      applicationCredentialName: get('application-credential-name'),
      applicationCredentialSecret: get('application-credential-secret'),
    };
    checkKeystone(where, keystone, fromEnv);
    swiftAuth = keystone;
  }
  return { ...base, kind: 'swift', auth: swiftAuth, storageUrl };
}

function checkKeystone(where: string, k: Extract<SwiftAuthConfig, { type: 'keystone' }>, fromEnv: boolean): void {
  // Domains are not required: the store defaults the user's domain to "Default" and the project's to the user's.
  const w = (n: string) => want(n, fromEnv);
  if (k.applicationCredentialId !== undefined || k.applicationCredentialName !== undefined || k.applicationCredentialSecret !== undefined) {
    if (k.applicationCredentialSecret === undefined) throw new ConfigError(`${where}: an application credential needs ${w('application-credential-secret')}`, 'application-credential-secret');
    if (k.applicationCredentialId === undefined) {
      if (k.applicationCredentialName === undefined) throw new ConfigError(`${where}: an application credential needs ${w('application-credential-id')} (or its name with the user)`, 'application-credential-id');
      if (k.userId === undefined && k.username === undefined) {
        throw new ConfigError(`${where}: an application credential given by name needs its user: ${w('username')} or ${w('user-id')}`, 'username');
      }
    }
    if (k.projectName !== undefined || k.projectId !== undefined) {
      throw new ConfigError(`${where}: an application credential is already scoped to its project: remove ${w(k.projectId !== undefined ? 'project-id' : 'project-name')}`, 'project-name');
    }
    return;
  }
  if (k.password === undefined) {
    throw new ConfigError(`${where}: keystone auth needs ${w('password')} (or an application credential: ${w('application-credential-id')} and ${w('application-credential-secret')})`, 'password');
  }
  if (k.userId === undefined && k.username === undefined) throw new ConfigError(`${where}: keystone auth needs ${w('username')} or ${w('user-id')}`, 'username');
  if (k.projectId === undefined && k.projectName === undefined) {
    throw new ConfigError(`${where}: keystone auth needs a project (${w('project-name')} or ${w('project-id')}) to get a storage endpoint`, 'project-name');
  }
}

// ------------------------------------------------------------------ typed views

function typedView<T>(settings: Settings, specs: readonly OptionSpec[]): T {
  const out: Record<string, unknown> = {};
  for (const spec of specs) out[camelCase(spec.name)] = settings.get(spec.name)?.value;
  return Object.freeze(out) as T;
}

function settingsRecord(settings: Settings): Readonly<Record<string, Setting>> {
  return Object.freeze(Object.fromEntries(settings));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

const VOLUME_SPECS = () => [...optionsOfScope('volume', 'mount'), findOption('log-level')!];

/** Checks rules between volume options; throws ConfigError. */
export function checkVolumeOptions(volume: VolumeOptions, origin?: (name: string) => string): void {
  const from = (name: string) => (origin ? ` (${origin(name)})` : '');
  if (volume.cacheSize < 4 * volume.blockSize) {
    throw new ConfigError(`cache-size (${formatSize(volume.cacheSize)}) must be at least 4 × block-size (${formatSize(volume.blockSize)})${from('cache-size')}`, 'cache-size');
  }
  if (volume.dirtyLimit < volume.blockSize) {
    throw new ConfigError(`dirty-limit (${formatSize(volume.dirtyLimit)}) must be at least block-size (${formatSize(volume.blockSize)})${from('dirty-limit')}`, 'dirty-limit');
  }
}

// ------------------------------------------------------------------ loadConfig

/** Loads, validates and freezes the configuration. Throws ConfigError with a message for the user. */
export function loadConfig(input: LoadConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const flags = normalizeFlags(input.flags ?? {});
  const warnings: string[] = [];

  // The config file itself.
  const configSpec = findOption('config')!;
  let configFile: string | undefined;
  if (input.configFile !== undefined) configFile = resolvePath(cwd, input.configFile);
  else if (flags.has('config')) configFile = String(parseOptionValue(configSpec, flags.get('config'), 'flag --config', cwd));
  else {
    const fromEnvironment = fromEnv(configSpec, env);
    if (fromEnvironment) configFile = String(parseOptionValue(configSpec, fromEnvironment.raw, fromEnvironment.origin, cwd));
  }
  const file = configFile === undefined ? undefined : readConfigFile(configFile, warnings);
  const fileOrigin = file ? `file ${file.path}` : '';

  // Global, plugin, common store tuning, volume defaults: defaults ← file ← env ← flags.
  const sections = {
    global: { specs: optionsOfScope('global').filter((s) => s.name !== 'config'), settings: new Map() as Settings, fileValues: file?.top },
    plugin: { specs: optionsOfScope('plugin'), settings: new Map() as Settings, fileValues: file?.top },
    tuning: { specs: optionsOfScope('store').filter((s) => s.common), settings: new Map() as Settings, fileValues: file?.top },
    volume: { specs: VOLUME_SPECS(), settings: new Map() as Settings, fileValues: file?.volumeDefaults },
  };
  for (const [sectionName, section] of Object.entries(sections)) {
    applyDefaults(section.settings, section.specs);
    for (const spec of section.specs) {
      if (section.fileValues?.has(spec.name)) {
        const where = sectionName === 'volume' ? `${fileOrigin} (volumes.defaults)` : fileOrigin;
        setFrom(section.settings, spec, section.fileValues.get(spec.name), where, file!.dir);
      }
      const fromEnvironment = fromEnv(spec, env);
      if (fromEnvironment) setFrom(section.settings, spec, fromEnvironment.raw, fromEnvironment.origin, cwd);
      if (hasFlag(spec) && flags.has(spec.name)) setFrom(section.settings, spec, flags.get(spec.name), `flag --${spec.name}`, cwd);
    }
  }
  // A volume's log level follows the process's unless volumes.defaults sets it (env and flags set both).
  const globalLevel = sections.global.settings.get('log-level')!;
  const volumeLevel = sections.volume.settings.get('log-level')!;
  if (globalLevel.origin.startsWith('env') || globalLevel.origin.startsWith('flag') || volumeLevel.origin === 'default') {
    sections.volume.settings.set('log-level', globalLevel);
  }

  const volume = typedView<VolumeOptions>(sections.volume.settings, sections.volume.specs);
  checkVolumeOptions(volume, (name) => `from ${sections.volume.settings.get(name)?.origin}`);

  // Stores: file stores, then the environment's store `default`.
  const storeSettings = new Map<string, Settings>();
  const storeSpecs = optionsOfScope('store');
  if (file) {
    for (const [storeName, values] of file.stores) {
      const settings: Settings = new Map();
      for (const [optionName, raw] of values) setFrom(settings, findOption(optionName)!, raw, `${fileOrigin} (stores.${storeName})`, file.dir);
      storeSettings.set(storeName, settings);
    }
  }
  const envStore = storeFromEnvironment(env, storeSettings.get('default'), cwd, storeSpecs);
  if (envStore) storeSettings.set('default', envStore.settings);

  const stores: Record<string, StoreConfig> = {};
  const storeProblems: Record<string, string> = {};
  const storeRecords: Record<string, Readonly<Record<string, Setting>>> = {};
  for (const [storeName, settings] of storeSettings) {
    // Tuning: the store's own file value, unless env or flags set it for all stores.
    const tuningSettings: Settings = new Map(sections.tuning.settings);
    for (const spec of sections.tuning.specs) {
      const own = settings.get(spec.name);
      const shared = sections.tuning.settings.get(spec.name)!;
      if (own && !(shared.origin.startsWith('env') || shared.origin.startsWith('flag'))) tuningSettings.set(spec.name, own);
      settings.set(spec.name, tuningSettings.get(spec.name)!);
    }
    const tuning = typedView<StoreTuning>(tuningSettings, sections.tuning.specs);
    const identity: Settings = new Map([...settings].filter(([optionName]) => !findOption(optionName)!.common));
    try {
      stores[storeName] = buildStore(storeName, identity, tuning, storeName === 'default' && envStore?.fromEnv === true);
    } catch (err) {
      if (!(err instanceof ConfigError) || err instanceof StoreShapeError) throw err;
      storeProblems[storeName] = err.message;
      warnings.push(err.message);
    }
    storeRecords[storeName] = settingsRecord(settings);
  }

  // The default store.
  const named = sections.global.settings.get('default-store');
  const allNames = [...storeSettings.keys()];
  let defaultStore: string | undefined;
  if (named) {
    defaultStore = String(named.value);
    if (!storeSettings.has(defaultStore)) {
      throw new ConfigError(`default-store: no store named ${JSON.stringify(defaultStore)} (from ${named.origin}); stores: ${allNames.join(', ') || 'none'}`, 'default-store');
    }
  } else if (allNames.length === 1) {
    defaultStore = allNames[0];
  } else if (storeSettings.has('default')) {
    defaultStore = 'default';
  }

  if (configFile !== undefined) sections.global.settings.set('config', { value: configFile, origin: input.configFile !== undefined ? 'argument' : flags.has('config') ? 'flag --config' : 'env SWIFTFS_CONFIG' });
  return deepFreeze({
    global: typedView<GlobalOptions>(sections.global.settings, optionsOfScope('global')),
    volume,
    plugin: typedView<PluginOptions>(sections.plugin.settings, sections.plugin.specs),
    stores,
    storeProblems,
    defaultStore,
    configFile,
    warnings,
    settings: {
      global: settingsRecord(sections.global.settings),
      volume: settingsRecord(sections.volume.settings),
      plugin: settingsRecord(sections.plugin.settings),
      stores: storeRecords,
    },
  });
}

/** The store the environment defines (merged over the file's store `default`), or undefined when none. */
function storeFromEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  fileDefault: Settings | undefined,
  cwd: string,
  storeSpecs: readonly OptionSpec[],
): { settings: Settings; fromEnv: boolean } | undefined {
  const settings: Settings = new Map(fileDefault ?? []);
  const typeSpec = findOption('type')!;
  const explicitType = fromEnv(typeSpec, env);
  if (explicitType) setFrom(settings, typeSpec, explicitType.raw, explicitType.origin, cwd);
  let guessedType = false;
  if (!settings.has('type')) {
    const guessed = guessEnvKind(env);
    if (guessed === undefined) return fileDefault ? { settings, fromEnv: false } : undefined;
    settings.set('type', { value: guessed, origin: 'env (guessed from the variables set)' });
    guessedType = true;
  }
  const kind = settings.get('type')!.value as StoreKind;
  let auth: string | undefined;
  if (kind === 'swift') {
    const authSpec = findOption('auth')!;
    const explicitAuth = fromEnv(authSpec, env);
    if (explicitAuth) setFrom(settings, authSpec, explicitAuth.raw, explicitAuth.origin, cwd);
    if (!settings.has('auth')) {
      const guessed = guessEnvAuth(env);
      if (guessed !== undefined) settings.set('auth', { value: guessed, origin: 'env (guessed from the variables set)' });
    }
    auth = settings.get('auth')?.value as string | undefined;
  }
  let any = explicitType !== undefined || guessedType;
  for (const spec of storeSpecs) {
    if (spec.common || spec.name === 'type' || spec.name === 'auth') continue;
    if (spec.kinds && !spec.kinds.includes(kind)) continue;
    // Auth-specific options only once the method is known (else buildStore asks for SWIFTFS_AUTH).
    if (kind === 'swift' && spec.auth && (auth === undefined || !spec.auth.includes(auth as SwiftAuthKind))) continue;
    const found = fromEnv(spec, env, { type: kind, ...(auth === undefined ? {} : { auth }) });
    if (found) {
      setFrom(settings, spec, found.raw, found.origin, cwd);
      any = true;
    }
  }
  if (!any && !fileDefault) return undefined;
  return { settings, fromEnv: any };
}

// ------------------------------------------------------------------ per-volume options

/**
 * The options of one volume: the config's volume defaults with `perVolume` (Docker's `-o key=value`, or a
 * plugin's saved options) on top. Keys are option names; only options marked volumeOpt are accepted. A bare
 * `-o read-only` (empty value) means true for a boolean.
 */
export function resolveVolumeOptions(config: Config, perVolume: Readonly<Record<string, string | null | undefined>> = {}, origin = 'volume option'): VolumeOptions {
  const specs = VOLUME_SPECS();
  const settings: Settings = new Map(Object.entries(config.settings.volume));
  const volumeOptionNames = (OPTIONS as readonly OptionSpec[]).filter((spec) => spec.volumeOpt).map((spec) => spec.name);
  for (const [key, raw] of Object.entries(perVolume)) {
    const spec = findOption(key);
    if (!spec) throw new ConfigError(`${origin} ${key}: unknown option${didYouMean(key, volumeOptionNames)}; volume options: ${volumeOptionNames.join(', ')}`, key);
    if (!spec.volumeOpt) {
      throw new ConfigError(`${origin} ${key}: cannot be set per volume (it is a ${spec.scope} option: set it with --${key} or ${typeof envBindings(spec)[0] === 'string' ? envBindings(spec)[0] : 'the environment'})`, key);
    }
    const value = raw === null || raw === undefined || raw === '' ? (spec.type === 'bool' ? 'true' : undefined) : raw;
    if (value === undefined) throw new ConfigError(`${origin} ${key}: needs a value (${key}=VALUE)`, key);
    settings.set(key, { value: parseOptionValue(spec, value, `${origin} ${key}`), origin: `${origin} ${key}` });
  }
  const volume = typedView<VolumeOptions>(settings, specs);
  checkVolumeOptions(volume, (name) => `from ${settings.get(name)?.origin}`);
  return volume;
}
