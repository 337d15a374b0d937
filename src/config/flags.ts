/**
 * Command-line flags generated from the option table, and loading the configuration for a command.
 *
 * `addOptionFlags(cmd, ['volume', 'mount'])` gives a command a --NAME flag for every option of those scopes
 * (a boolean gets --NAME and --no-NAME). Flags carry no default of their own: an absent flag leaves the value
 * to the environment, the config file and the table default, in that order (load.ts). Secrets and store
 * identity options have no flag (see options.ts).
 */

import { Option, type Command } from 'commander';
import { loggerFromConfig, type Logger } from '../log.js';
import { loadConfig, type Config, type LoadConfigInput } from './load.js';
import { OPTIONS, envBindings, hasFlag, type OptionScope, type OptionSpec } from './options.js';

const GROUP_HEADINGS: Readonly<Record<OptionScope, string>> = {
  global: 'Global options:',
  store: 'Store options (for every store):',
  volume: 'Volume options:',
  mount: 'Mount options:',
  plugin: 'Plugin options:',
};

const ARG_BY_TYPE: Readonly<Record<string, string>> = { string: 'value', int: 'n', size: 'size', duration: 'duration', enum: 'choice' };

function envNames(spec: OptionSpec): string[] {
  return envBindings(spec).map((binding) => (typeof binding === 'string' ? binding : binding.name));
}

/** The --help line of an option: its help, then default and environment variable. */
export function flagDescription(spec: OptionSpec): string {
  const notes: string[] = [];
  if (spec.default !== undefined) notes.push(`default: ${String(spec.default)}`);
  const vars = envNames(spec);
  if (vars.length > 0) notes.push(`env: ${vars.join(', ')}`);
  return notes.length === 0 ? spec.help : `${spec.help} [${notes.join('; ')}]`;
}

/** Adds a flag to `command` for every option of `scopes` that has one. */
export function addOptionFlags(command: Command, scopes: readonly OptionScope[], options: { except?: readonly string[] } = {}): Command {
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    if (!scopes.includes(spec.scope) || !hasFlag(spec) || options.except?.includes(spec.name)) continue;
    const heading = GROUP_HEADINGS[spec.scope];
    if (spec.type === 'bool') {
      const positive = new Option(`--${spec.name}`, flagDescription(spec)).helpGroup(heading);
      const negative = new Option(`--no-${spec.name}`, `Turn ${spec.name} off.`).helpGroup(heading);
      // Show the flag that changes something: --no-create for a default-true option, --read-only otherwise.
      if (spec.default === true) positive.hideHelp();
      else negative.hideHelp();
      if (spec.default === true) negative.description = flagDescription(spec);
      command.addOption(positive).addOption(negative);
    } else {
      const flag = new Option(`--${spec.name} <${spec.arg ?? ARG_BY_TYPE[spec.type] ?? 'value'}>`, flagDescription(spec)).helpGroup(heading);
      if (spec.type === 'enum' && spec.choices) flag.choices(spec.choices);
      command.addOption(flag);
    }
  }
  return command;
}

/** Loads the configuration for a running command, from its flags and those of its parents. */
export function configFromCommand(command: Command, input: Omit<LoadConfigInput, 'flags'> = {}): Config {
  return loadConfig({ ...input, flags: command.optsWithGlobals() });
}

/**
 * What most command actions start with: the configuration (from the command's flags and its parents') and the
 * root logger built from it, with the configuration's warnings already logged.
 */
export function commandContext(command: Command, input: Omit<LoadConfigInput, 'flags'> & { logDestination?: { write(line: string): unknown } } = {}): { config: Config; log: Logger } {
  const { logDestination, ...loadInput } = input;
  const config = configFromCommand(command, loadInput);
  const log = loggerFromConfig(config, logDestination);
  for (const warning of config.warnings) log.warn({ component: 'config' }, warning);
  return { config, log };
}
