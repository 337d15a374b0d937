/**
 * Renders the option table and the effective configuration for people: the markdown reference in README.md
 * (`swiftfs config options --markdown`, scripts/gen-options-doc.mjs), a plain-text listing, and the masked
 * view of `swiftfs config show`. Secrets are always shown as MASK, whatever their source.
 */

import { Document, isMap, isScalar, isPair } from 'yaml';
import type { Config, OptionValue, Setting } from './load.js';
import { OPTIONS, envBindings, findOption, hasFlag, type OptionScope, type OptionSpec } from './options.js';
import { formatDuration, formatSize } from './values.js';

export const MASK = '*****';

const SCOPE_TITLES: Readonly<Record<OptionScope, string>> = {
  global: 'Global',
  store: 'Stores',
  volume: 'Volumes (chosen when a volume is created)',
  mount: 'Mounts (how a volume is served on this host)',
  plugin: 'Docker volume plugin',
};

const SCOPE_ORDER: readonly OptionScope[] = ['global', 'store', 'volume', 'mount', 'plugin'];

function envText(spec: OptionSpec): string {
  return envBindings(spec)
    .map((binding) => (typeof binding === 'string' ? binding : `${binding.name} (${binding.when.option} ${binding.when.is})`))
    .join(', ');
}

function typeText(spec: OptionSpec): string {
  if (spec.type === 'enum') return (spec.choices ?? []).join(' \\| ');
  if (spec.type === 'int' && spec.octal) return 'octal';
  return spec.type;
}

function appliesText(spec: OptionSpec): string {
  const parts: string[] = [];
  if (spec.kinds && spec.kinds.length < 3) parts.push(spec.kinds.join('/'));
  if (spec.auth) parts.push(`${spec.auth.join('/')} auth`);
  return parts.length === 0 ? '' : ` *(${parts.join(', ')})*`;
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

/** The option reference as markdown: one table per scope. */
export function optionsMarkdown(): string {
  const lines: string[] = [
    'Every option can be given, from lowest to highest precedence, by its default, the config file (`--config` or',
    '`SWIFTFS_CONFIG`), its environment variable, and its flag (`--NAME`; booleans also `--no-NAME`). Options marked',
    '**-o** can also be set per volume with `docker volume create -o NAME=VALUE`. Secrets have no flag and are never',
    'printed or logged. Sizes: `4M`, `64KiB`, `1G` (K/M/G/T are powers of 1024, KB/MB/GB/TB of 1000). Durations:',
    '`500ms`, `5s`, `2m`, `1h30m`. Booleans: `true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`.',
    '',
    'A config file (YAML or JSON; keep it `chmod 600` when it holds secrets) names stores and volume defaults:',
    '',
    '```yaml',
    'stores:',
    '  home: { type: swift, auth: tempauth, auth-url: "http://swift.example:8080/auth/v1.0", user: "acct:me", key: "…", region: A }',
    '  dr:   { type: swift, auth: keystone, auth-url: "https://keystone.example:5000/v3", username: me, password: "…",',
    '          project-name: vols, region: RegionTwo }',
    '  s3a:  { type: s3, endpoint: "http://127.0.0.1:8080", access-key-id: "acct:me", secret-access-key: "…" }',
    'default-store: home',
    'retries: 6                  # store options at the top apply to every store',
    'volumes:',
    '  defaults: { block-size: 4M, fsync: remote }',
    '```',
    '',
    'Volumes are addressed as `swift://CONTAINER`, `swift://STORE/CONTAINER` (STORE: a store name, the region of',
    'one store, or `STORE@REGION`: a Keystone store in another region of its catalog, e.g. `swift://os@RegionTwo/pg`),',
    '`swift://CONTAINER@REGION` (the same as `swift://REGION/CONTAINER`, e.g. `swift://pgdata@dr`), `s3://BUCKET`,',
    '`s3://STORE/BUCKET`, `mem://NAME` (in-process, for tests), or a bare container name on the default store. Each',
    'part of a URL is %-decoded (a container name holding `@` is written `%40`).',
    '',
  ];
  for (const scope of SCOPE_ORDER) {
    const specs = (OPTIONS as readonly OptionSpec[]).filter((spec) => spec.scope === scope);
    lines.push(`#### ${SCOPE_TITLES[scope]}`, '');
    if (scope === 'store') {
      lines.push(
        'In a config file, under `stores.NAME`. Without a file, the variables define the store named `default`.',
        'Options marked *all stores* may also be set once at the top of the file, or by flag, for every store.',
        '',
      );
    }
    lines.push('| Option | Type | Default | Environment | -o | Description |', '| --- | --- | --- | --- | --- | --- |');
    for (const spec of specs) {
      const name = `\`${spec.name}\`${spec.secret ? ' (secret)' : ''}${spec.common ? ' *(all stores)*' : ''}`;
      const flagNote = hasFlag(spec) ? '' : spec.secret ? ' No flag.' : '';
      lines.push(
        `| ${name} | ${typeText(spec)} | ${spec.default === undefined ? '' : `\`${String(spec.default)}\``} | ${escapeCell(envText(spec))} | ${spec.volumeOpt ? 'yes' : ''} | ${escapeCell(spec.help)}${appliesText(spec)}${flagNote} |`,
      );
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** The option reference as plain text for a terminal. */
export function optionsText(): string {
  const lines: string[] = [];
  for (const scope of SCOPE_ORDER) {
    lines.push(`${SCOPE_TITLES[scope]}:`);
    for (const spec of (OPTIONS as readonly OptionSpec[]).filter((s) => s.scope === scope)) {
      const facts = [typeText(spec).replaceAll('\\|', '|')];
      if (spec.default !== undefined) facts.push(`default ${String(spec.default)}`);
      const vars = envText(spec);
      if (vars) facts.push(`env ${vars}`);
      if (spec.volumeOpt) facts.push('-o');
      if (spec.secret) facts.push('secret');
      lines.push(`  ${spec.name}  (${facts.join('; ')})`, `      ${spec.help}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}

/** A value as written in a config file: sizes and durations in their short form, secrets masked. */
export function displayValue(spec: OptionSpec | undefined, value: OptionValue): OptionValue {
  if (spec?.secret) return MASK;
  if (typeof value === 'number' && spec?.type === 'size') return formatSize(value);
  if (typeof value === 'number' && spec?.type === 'duration') return formatDuration(value);
  if (typeof value === 'number' && spec?.octal) return `0${value.toString(8)}`;
  return value;
}

function displaySection(settings: Readonly<Record<string, Setting>>): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [name, setting] of Object.entries(settings)) out[name] = displayValue(findOption(name), setting.value);
  return out;
}

/** The effective configuration as a plain object, in config-file shape, secrets masked. */
export function displayConfig(config: Config): Record<string, unknown> {
  const stores: Record<string, unknown> = {};
  for (const [name, settings] of Object.entries(config.settings.stores)) stores[name] = displaySection(settings);
  const out: Record<string, unknown> = {};
  if (config.configFile !== undefined) out['config'] = config.configFile;
  Object.assign(out, displaySection(Object.fromEntries(Object.entries(config.settings.global).filter(([name]) => name !== 'config'))));
  if (config.defaultStore !== undefined && !('default-store' in out)) out['default-store'] = config.defaultStore;
  out['stores'] = stores;
  out['volumes'] = { defaults: displaySection(config.settings.volume) };
  Object.assign(out, displaySection(config.settings.plugin));
  if (Object.keys(config.storeProblems).length > 0) out['problems'] = Object.values(config.storeProblems);
  return out;
}

/** `config show` as YAML; with `origins`, each value carries a comment saying where it came from. */
export function showConfigYaml(config: Config, options: { origins?: boolean } = {}): string {
  const doc = new Document(displayConfig(config));
  if (options.origins) {
    const annotate = (mapNode: unknown, settings: Readonly<Record<string, Setting>>) => {
      if (!isMap(mapNode)) return;
      for (const pair of mapNode.items) {
        if (!isPair(pair) || !isScalar(pair.key) || !isScalar(pair.value)) continue;
        const setting = settings[String(pair.key.value)];
        if (setting) pair.value.comment = ` ${setting.origin}`;
      }
    };
    annotate(doc.contents, { ...config.settings.global, ...config.settings.plugin });
    const stores = doc.get('stores', true);
    if (isMap(stores)) {
      for (const pair of stores.items) {
        if (isPair(pair) && isScalar(pair.key)) annotate(pair.value, config.settings.stores[String(pair.key.value)] ?? {});
      }
    }
    const volumes = doc.get('volumes', true);
    if (isMap(volumes)) annotate(volumes.get('defaults', true), config.settings.volume);
  }
  return doc.toString({ lineWidth: 0 });
}
