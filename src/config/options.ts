/**
 * The one table of swiftfs options (as rclone's OptionsInfo).
 *
 * Every setting swiftfs has is declared here once, and this table alone feeds: the command-line flags
 * (./flags.ts), the environment variables and the config file (./load.ts), the per-volume options of
 * `docker volume create -o` (`volumeOpt`), `swiftfs config show`, and the option reference in README.md
 * (./doc.ts, scripts/gen-options-doc.mjs). Nothing else may read process.env for a setting.
 *
 * Scopes:
 *   global  the process: logging, metrics, which store is the default.
 *   store   one object store (a Swift account or an S3 endpoint): identity, credentials, endpoint. A config file
 *           names several stores; the OpenStack (OS_*, ST_*) or AWS (AWS_*) variables define the store named
 *           `default`. Options marked `common` (timeouts, retries, connections) may also be set once for all
 *           stores (top level of the file, env, flags).
 *   volume  chosen when a volume is created (block size, storage policy, which store).
 *   mount   how a volume is served on this host (cache, durability, permissions).
 *   plugin  the Docker volume plugin daemon.
 *
 * Secrets (`secret: true`) are never printed (config show masks them), never logged (log.ts redacts them by
 * key and by value) and have no command-line flag (a flag would show in `ps`).
 */

export type OptionType = 'string' | 'int' | 'size' | 'duration' | 'bool' | 'enum';
export type OptionScope = 'global' | 'store' | 'volume' | 'mount' | 'plugin';
export type StoreKind = 'swift' | 's3' | 'memory';
export type SwiftAuthKind = 'tempauth' | 'keystone' | 'token';

/**
 * An environment variable that sets an option. A conditional binding applies only when another option of the
 * same store already resolved to a value (e.g. ST_AUTH is the auth URL only for TempAuth).
 */
export type EnvBinding = string | { readonly name: string; readonly when: { readonly option: 'type' | 'auth'; readonly is: string } };

export interface OptionSpec {
  /** kebab-case; the flag is --NAME, the config-file key is NAME. */
  readonly name: string;
  readonly type: OptionType;
  /** In the option's own syntax ("4M", "1s", true). Absent: unset unless given. */
  readonly default?: string | number | boolean;
  /** For enums. */
  readonly choices?: readonly string[];
  /** For enums: other spellings accepted for a choice (OS_ENDPOINT_TYPE's publicURL). */
  readonly aliases?: Readonly<Record<string, string>>;
  /** Environment variables, first set wins. Absent: SWIFTFS_<NAME>. Empty: none. */
  readonly env?: readonly EnvBinding[];
  readonly scope: OptionScope;
  /** Never printed or logged; no command-line flag. */
  readonly secret?: boolean;
  /** Settable per volume: `docker volume create -o NAME=VALUE`. */
  readonly volumeOpt?: boolean;
  /** Has a command-line flag. Default: true, except for secrets and store identity options. */
  readonly flag?: boolean;
  /** Store options: applies to every store and may be set once for all of them. */
  readonly common?: boolean;
  /** Store options: the store kinds it applies to (absent: all). */
  readonly kinds?: readonly StoreKind[];
  /** Swift store options: the auth methods it applies to (absent: all). */
  readonly auth?: readonly SwiftAuthKind[];
  /** Bounds, in the parsed unit (bytes, ms, number). */
  readonly min?: number;
  readonly max?: number;
  /** int: parse as octal (umask). */
  readonly octal?: boolean;
  /** string: extra syntax check. */
  readonly format?: 'url' | 'name' | 'listen' | 'path' | 'regions';
  /** The placeholder in --help (e.g. <file>). */
  readonly arg?: string;
  readonly help: string;
}

export const OPTIONS = [
  // ---------------------------------------------------------------- global
  {
    name: 'config', type: 'string', scope: 'global', env: ['SWIFTFS_CONFIG'], arg: 'file', format: 'path',
    help: 'Config file (YAML or JSON) naming stores and volume defaults. Optional: with one store, the OpenStack or AWS variables are enough.',
  },
  {
    name: 'log-level', type: 'enum', scope: 'global', default: 'info', volumeOpt: true,
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    help: 'Least severe level logged. Per volume, the level of that volume\'s logs.',
  },
  {
    name: 'log-format', type: 'enum', scope: 'global', default: 'json', choices: ['json', 'pretty'],
    help: 'Logs as JSON lines (for collectors) or as readable text.',
  },
  {
    name: 'default-store', type: 'string', scope: 'global', format: 'name', arg: 'name',
    help: 'Store used when a volume names none. Default: the only store, or the one named `default`.',
  },
  {
    name: 'metrics-listen', type: 'string', scope: 'global', format: 'listen', arg: 'host:port',
    help: 'Serve Prometheus metrics on http://HOST:PORT/metrics (e.g. 127.0.0.1:9464). Unset: no metrics server.',
  },

  // ---------------------------------------------------------------- stores: common tuning
  {
    name: 'request-timeout', type: 'duration', scope: 'store', common: true, default: '30s', min: 100, max: 3_600_000,
    help: 'Deadline of one request to the object store (each retry gets its own).',
  },
  {
    name: 'retries', type: 'int', scope: 'store', common: true, default: 4, min: 0, max: 20,
    help: 'Retries of a failed idempotent request (timeouts, 5xx, throttling), with exponential backoff.',
  },
  {
    name: 'connections', type: 'int', scope: 'store', common: true, default: 16, min: 1, max: 1024,
    help: 'Most concurrent connections to one store.',
  },

  // ---------------------------------------------------------------- stores: identity
  {
    name: 'type', type: 'enum', scope: 'store', choices: ['swift', 's3', 'memory'], env: ['SWIFTFS_STORE_TYPE'],
    help: 'Kind of store. From the environment it is guessed: swift when ST_AUTH, OS_AUTH_URL or OS_STORAGE_URL is set, else s3 when AWS_ACCESS_KEY_ID or AWS_ENDPOINT_URL is set.',
  },
  {
    name: 'auth', type: 'enum', scope: 'store', kinds: ['swift'], choices: ['tempauth', 'keystone', 'token'], env: ['SWIFTFS_AUTH'],
    help: 'Swift authentication: tempauth (v1.0, ST_*), keystone (v3, OS_*), or token (a ready OS_AUTH_TOKEN and OS_STORAGE_URL). Guessed from which variables are set.',
  },
  {
    name: 'auth-url', type: 'string', scope: 'store', kinds: ['swift'], auth: ['tempauth', 'keystone'], format: 'url',
    env: ['SWIFTFS_AUTH_URL', { name: 'ST_AUTH', when: { option: 'auth', is: 'tempauth' } }, { name: 'OS_AUTH_URL', when: { option: 'auth', is: 'keystone' } }],
    help: 'Authentication URL: TempAuth\'s …/auth/v1.0, or Keystone\'s …/v3.',
  },
  {
    name: 'user', type: 'string', scope: 'store', kinds: ['swift'], auth: ['tempauth'], env: ['ST_USER'],
    help: 'TempAuth user, as ACCOUNT:USER.',
  },
  {
    name: 'key', type: 'string', scope: 'store', kinds: ['swift'], auth: ['tempauth'], env: ['ST_KEY'], secret: true,
    help: 'TempAuth key (password).',
  },
  {
    name: 'username', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_USERNAME'],
    help: 'Keystone user name (in the domain user-domain-name or user-domain-id; default the domain named Default).',
  },
  {
    name: 'user-id', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_USER_ID'],
    help: 'Keystone user id (instead of username and domain).',
  },
  {
    name: 'password', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_PASSWORD'], secret: true,
    help: 'Keystone password.',
  },
  {
    name: 'user-domain-name', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_USER_DOMAIN_NAME'],
    help: 'Keystone domain of the user, by name (e.g. Default).',
  },
  {
    name: 'user-domain-id', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_USER_DOMAIN_ID'],
    help: 'Keystone domain of the user, by id (e.g. default).',
  },
  {
    name: 'project-name', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_PROJECT_NAME', 'OS_TENANT_NAME'],
    help: 'Keystone project to scope the token to, by name (in the domain project-domain-name or project-domain-id; default the user\'s domain).',
  },
  {
    name: 'project-id', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_PROJECT_ID', 'OS_TENANT_ID'],
    help: 'Keystone project to scope the token to, by id.',
  },
  {
    name: 'project-domain-name', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_PROJECT_DOMAIN_NAME'],
    help: 'Keystone domain of the project, by name.',
  },
  {
    name: 'project-domain-id', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_PROJECT_DOMAIN_ID'],
    help: 'Keystone domain of the project, by id.',
  },
  {
    name: 'application-credential-id', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_APPLICATION_CREDENTIAL_ID'],
    help: 'Keystone application credential id (instead of user and password).',
  },
  {
    name: 'application-credential-name', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_APPLICATION_CREDENTIAL_NAME'],
    help: 'Keystone application credential name (with the user it belongs to, instead of the id).',
  },
  {
    name: 'application-credential-secret', type: 'string', scope: 'store', kinds: ['swift'], auth: ['keystone'], env: ['OS_APPLICATION_CREDENTIAL_SECRET'], secret: true,
    help: 'Keystone application credential secret.',
  },
  {
    name: 'interface', type: 'enum', scope: 'store', kinds: ['swift'], auth: ['keystone'], choices: ['public', 'internal', 'admin'], default: 'public', env: ['OS_INTERFACE', 'OS_ENDPOINT_TYPE'],
    aliases: { publicURL: 'public', internalURL: 'internal', adminURL: 'admin' },
    help: 'Which object-store endpoint of the Keystone catalog to use.',
  },
  {
    name: 'region', type: 'string', scope: 'store', kinds: ['swift', 's3', 'memory'],
    env: ['SWIFTFS_REGION', { name: 'OS_REGION_NAME', when: { option: 'type', is: 'swift' } }, { name: 'AWS_REGION', when: { option: 'type', is: 's3' } }, { name: 'AWS_DEFAULT_REGION', when: { option: 'type', is: 's3' } }],
    help: 'Region of the store: the Keystone catalog region of the object-store endpoint, the S3 signing region (default us-east-1). A volume may name its store by region (swift://REGION/CONTAINER).',
  },
  {
    name: 'storage-url', type: 'string', scope: 'store', kinds: ['swift'], format: 'url', env: ['OS_STORAGE_URL'],
    help: 'Swift storage URL (…/v1/AUTH_account). With auth token it is required; otherwise it overrides the one authentication returns.',
  },
  {
    name: 'auth-token', type: 'string', scope: 'store', kinds: ['swift'], auth: ['token'], env: ['OS_AUTH_TOKEN'], secret: true,
    help: 'A ready Swift token (auth token). It cannot be renewed: the store stops working when it expires.',
  },
  {
    name: 'endpoint', type: 'string', scope: 'store', kinds: ['s3'], format: 'url', env: ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'],
    help: 'S3 endpoint URL (e.g. http://127.0.0.1:8080 for Swift\'s S3 API). Unset: AWS.',
  },
  {
    name: 'access-key-id', type: 'string', scope: 'store', kinds: ['s3'], env: ['AWS_ACCESS_KEY_ID'],
    help: 'S3 access key id (on Swift\'s S3 API with TempAuth: ACCOUNT:USER).',
  },
  {
    name: 'secret-access-key', type: 'string', scope: 'store', kinds: ['s3'], env: ['AWS_SECRET_ACCESS_KEY'], secret: true,
    help: 'S3 secret access key.',
  },
  {
    name: 'session-token', type: 'string', scope: 'store', kinds: ['s3'], env: ['AWS_SESSION_TOKEN'], secret: true,
    help: 'S3 session token, for temporary credentials.',
  },
  {
    name: 'force-path-style', type: 'bool', scope: 'store', kinds: ['s3'], env: ['SWIFTFS_S3_FORCE_PATH_STYLE'],
    help: 'Address buckets as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT (which needs wildcard DNS). Default: on when an endpoint is given, off for AWS.',
  },

  // ---------------------------------------------------------------- volume (set when created)
  {
    name: 'store', type: 'string', scope: 'volume', volumeOpt: true, format: 'name', arg: 'name',
    help: 'Store (or region of a store) that holds the volume. Default: default-store.',
  },
  {
    name: 'block-size', type: 'size', scope: 'volume', volumeOpt: true, default: '4M', min: 64 * 1024, max: 64 * 1024 * 1024,
    help: 'Largest data object, and the unit of sequential writes and of reads from the store. Fixed when the volume is created.',
  },
  {
    name: 'storage-policy', type: 'string', scope: 'volume', volumeOpt: true, arg: 'name',
    help: 'Swift storage policy of a new volume\'s container (it cannot be changed later). Unset: the cluster\'s default.',
  },
  {
    name: 'replicas', type: 'string', scope: 'volume', volumeOpt: true, format: 'regions', arg: 'regions',
    help: 'Regions to keep a replica of the volume in, comma-separated (a store name, a store\'s region, or STORE@REGION), e.g. dr or dr,backup. A read-write mount records them in the volume\'s regions record and replicates to every replica recorded there (see swiftfs replicate).',
  },
  {
    name: 'create', type: 'bool', scope: 'volume', volumeOpt: true, default: true,
    help: 'Create and format the volume when its container does not exist. With --no-create (-o create=false), only attach to an existing volume.',
  },

  // ---------------------------------------------------------------- mount (how a volume is served here)
  {
    name: 'cache-dir', type: 'string', scope: 'mount', default: '/var/cache/swiftfs', format: 'path', arg: 'dir',
    help: 'Local directory for the write-ahead log and the read cache (one subdirectory per volume). Keep it on a disk that survives reboots: fsync local relies on it.',
  },
  {
    name: 'cache-size', type: 'size', scope: 'mount', volumeOpt: true, default: '10G', min: 16 * 1024 * 1024,
    help: 'Most bytes of clean data cached per volume (dirty data is never evicted; see dirty-limit).',
  },
  {
    name: 'dirty-limit', type: 'size', scope: 'mount', volumeOpt: true, default: '256M', min: 64 * 1024,
    help: 'Most bytes written but not yet uploaded per volume; writers wait beyond it. Capped at half of cache-size.',
  },
  {
    name: 'fsync', type: 'enum', scope: 'mount', volumeOpt: true, default: 'remote', choices: ['remote', 'local'],
    help: 'remote: fsync returns when the data is committed in the object store. local: when it is in the write-ahead log on the cache disk; the upload follows within commit-interval.',
  },
  {
    name: 'close-sync', type: 'bool', scope: 'mount', volumeOpt: true, default: false,
    help: 'close() waits for the commit, as fsync does. Off: close returns once the data is in the local write-ahead log.',
  },
  {
    name: 'commit-interval', type: 'duration', scope: 'mount', volumeOpt: true, default: '1s', min: 10, max: 3_600_000,
    help: 'Longest time a change waits in the local write-ahead log before it is committed to the store.',
  },
  {
    name: 'read-only', type: 'bool', scope: 'mount', volumeOpt: true, default: false,
    help: 'Serve the volume read-only (does not take ownership; several hosts may do so at once).',
  },
  {
    name: 'replica-drain-timeout', type: 'duration', scope: 'mount', volumeOpt: true, default: '1m', min: 0, max: 86_400_000,
    help: 'On unmount, after the final commit, longest wait for the replicas to hold it too (0: do not wait). Past it the mount exits anyway; the next mount or swiftfs replicate catches the replicas up.',
  },
  {
    name: 'allow-other', type: 'bool', scope: 'mount', default: false,
    help: 'Let users other than the mounting one access the mount (FUSE allow_other; needs user_allow_other in /etc/fuse.conf when not root). The plugin always sets it.',
  },
  {
    name: 'uid', type: 'int', scope: 'mount', volumeOpt: true, min: 0, max: 4_294_967_294,
    help: 'Owner of the root directory of a new volume and, when set, of every file created through the mount, whoever creates it. Unset: the root belongs to the mounting user and each new file to the process that creates it.',
  },
  {
    name: 'gid', type: 'int', scope: 'mount', volumeOpt: true, min: 0, max: 4_294_967_294,
    help: 'Group of the root directory of a new volume and, when set, of every file created through the mount. Unset: the mounting user\'s group for the root, and the creating process\'s group (or the directory\'s, when it is setgid) for new files.',
  },
  {
    name: 'umask', type: 'int', scope: 'mount', volumeOpt: true, octal: true, min: 0, max: 0o777,
    help: 'Permission bits cleared from new files and directories, in octal (e.g. 022), on top of the caller\'s own umask.',
  },

  // ---------------------------------------------------------------- plugin
  {
    name: 'socket', type: 'string', scope: 'plugin', default: '/run/docker/plugins/swiftfs.sock', format: 'path', arg: 'path', env: ['SWIFTFS_PLUGIN_SOCKET'],
    help: 'Unix socket the Docker volume plugin listens on (its base name is the driver name).',
  },
  {
    name: 'state-dir', type: 'string', scope: 'plugin', default: '/var/lib/swiftfs', format: 'path', arg: 'dir',
    help: 'Where the plugin keeps its list of volumes and mounts across restarts.',
  },
  {
    name: 'mount-root', type: 'string', scope: 'plugin', default: '/var/lib/swiftfs/mounts', format: 'path', arg: 'dir',
    help: 'Directory under which the plugin mounts volumes (a managed plugin uses its propagated mount).',
  },
] as const satisfies readonly OptionSpec[];

/** Every option, by name. */
export type OptionName = (typeof OPTIONS)[number]['name'];
type SpecOf<N extends OptionName> = Extract<(typeof OPTIONS)[number], { name: N }>;

const BY_NAME: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.map((spec) => [spec.name, spec as OptionSpec]));

/** The spec of option `name`, or undefined for an unknown name. */
export function findOption(name: string): OptionSpec | undefined {
  return BY_NAME.get(name);
}

/** The spec of a known option (throws on a typo: a bug). */
export function option(name: OptionName): OptionSpec {
  const spec = BY_NAME.get(name);
  if (!spec) throw new Error(`unknown option ${name}`);
  return spec;
}

export function optionsOfScope(...scopes: OptionScope[]): OptionSpec[] {
  return (OPTIONS as readonly OptionSpec[]).filter((spec) => scopes.includes(spec.scope));
}

/** The environment variables that set `spec`, in order of precedence. */
export function envBindings(spec: OptionSpec): readonly EnvBinding[] {
  return spec.env ?? [envName(spec.name)];
}

export function envName(optionName: string): string {
  return `SWIFTFS_${optionName.toUpperCase().replaceAll('-', '_')}`;
}

/** Whether `spec` has a command-line flag. */
export function hasFlag(spec: OptionSpec): boolean {
  if (spec.flag !== undefined) return spec.flag;
  if (spec.secret) return false;
  if (spec.scope === 'store') return spec.common === true;
  return true;
}

/** Every secret option name: for masking and log redaction. */
export const SECRET_OPTIONS: readonly string[] = (OPTIONS as readonly OptionSpec[]).filter((spec) => spec.secret).map((spec) => spec.name);

/** kebab-case to camelCase ('block-size' -> 'blockSize'). */
export function camelCase(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// ------------------------------------------------------------------ typed views derived from the table

type Camel<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<Camel<Tail>>}` : S;

type ValueOf<S> = S extends { type: 'enum'; choices: readonly (infer C)[] }
  ? C
  : S extends { type: 'bool' }
    ? boolean
    : S extends { type: 'string' }
      ? string
      : number;

type Typed<S> = { readonly [K in S as K extends { name: infer N extends string } ? Camel<N> : never]: K extends { default: unknown } ? ValueOf<K> : ValueOf<K> | undefined };

type OfScope<Sc extends OptionScope> = Extract<(typeof OPTIONS)[number], { scope: Sc }>;

/** Global options, typed (sizes in bytes, durations in ms). */
export type GlobalOptions = Typed<OfScope<'global'>>;
/** Options of a volume: what is chosen at creation and how it is mounted (sizes in bytes, durations in ms). */
export type VolumeOptions = Typed<OfScope<'volume'> | OfScope<'mount'>> & { readonly logLevel: ValueOf<SpecOf<'log-level'>> };
export type PluginOptions = Typed<OfScope<'plugin'>>;
/** Tuning common to every store. */
export type StoreTuning = Typed<Extract<OfScope<'store'>, { common: true }>>;
