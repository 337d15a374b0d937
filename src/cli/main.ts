#!/usr/bin/env node
/**
 * The `swiftfs` command: global options from the option table, and one subcommand per module in ./commands/
 * (each exports `register(program)`). A planned command whose module is not there yet is still listed, marked
 * "(not yet built)", and says so when run (exit status 2).
 *
 * Exit status: 0 success; 1 a failure at run time (store unreachable, volume busy...); 2 a usage or
 * configuration mistake, or a command not yet built. Messages go to stderr as "swiftfs: ...", never with a
 * credential in them.
 *
 * Command modules are imported at start to build --help, so they must keep heavy imports (the AWS SDK, the
 * FUSE binding) inside their actions.
 */

import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { addOptionFlags } from '../config/flags.js';
import { ConfigError } from '../config/load.js';
import { VolumeUrlError } from '../config/volume-url.js';
import { isStoreError } from '../store/errors.js';
import { scrubSecrets } from '../log.js';

// The AWS SDK warns on every run under Node 20 that versions published after January 2027 will need Node 22;
// swiftfs pins its SDK version, so the warning tells the user nothing they can act on.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

/**
 * Every command swiftfs has or will have, in --help order. `module` names the file in ./commands/ that registers
 * it when that is not the command's own name (one module may register several commands); the list is what
 * --help shows even when a module is missing or broken.
 */
export const PLANNED_COMMANDS: readonly { name: string; usage: string; summary: string; module?: string }[] = [
  { name: 'mount', usage: 'VOLUME MOUNTPOINT', summary: 'Mount a volume on a directory (FUSE)' },
  { name: 'unmount', usage: 'MOUNTPOINT', summary: 'Unmount a volume after committing everything it holds' },
  { name: 'status', usage: '[MOUNTPOINT]', summary: 'Show mounted volumes: dirty bytes, upload queue, owner, store, replica lag' },
  { name: 'plugin', usage: '', summary: 'Run the Docker volume plugin' },
  { name: 'relocate', usage: 'VOLUME --to REGION', summary: 'Move a volume to another store or region' },
  { name: 'replicate', usage: 'VOLUME --to REGION', summary: 'Keep a replica of a volume in another region', module: 'relocate' },
  { name: 'volume', usage: 'create|ls|inspect|rm', summary: 'Manage volumes in the object store' },
  { name: 'config', usage: 'show|options', summary: 'Show the effective configuration or the option reference' },
  { name: 'bench', usage: '', summary: 'Compare swiftfs with rclone, s3fs and the raw backend on one Swift' },
];

type CommandModule = { register?: (program: Command) => void };

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Registers a command that is planned but not built: listed in --help, exits 2 when run. */
function registerNotBuilt(program: Command, planned: { name: string; usage: string; summary: string }, why = 'not yet built'): void {
  program
    .command(planned.name)
    .usage(planned.usage)
    .description(`${planned.summary} (${why})`)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(() => {
      process.stderr.write(`swiftfs ${planned.name}: ${why}\n`);
      process.exitCode = 2;
    });
}

function isMissingModule(err: unknown, moduleUrl: URL): boolean {
  const e = err as { code?: string; message?: string; url?: string };
  return e?.code === 'ERR_MODULE_NOT_FOUND' && (e.url === moduleUrl.href || (e.message ?? '').includes(moduleUrl.pathname));
}

/** Builds the program with every planned command registered. */
export async function buildProgram(): Promise<Command> {
  const program = new Command('swiftfs');
  program
    .description('Persistent, portable volumes on OpenStack Swift and S3, served as a POSIX filesystem.')
    .version(version(), '-V, --version')
    .showHelpAfterError('(swiftfs --help for usage)')
    .exitOverride();
  addOptionFlags(program, ['global', 'store']);
  program.addHelpText(
    'after',
    '\nVolumes are addressed as swift://CONTAINER, swift://STORE/CONTAINER, swift://CONTAINER@REGION, s3://BUCKET,\n' +
      's3://STORE/BUCKET or mem://NAME (STORE: a store name, a store\'s region, or STORE@REGION of a Keystone catalog).\n' +
      'Stores come from a config file (--config) or from ST_* / OS_* / AWS_* variables; see `swiftfs config options`.',
  );

  const registered = new Set<string>();
  for (const planned of PLANNED_COMMANDS) {
    const moduleName = planned.module ?? planned.name;
    if (registered.has(moduleName)) {
      // Its module registered it along with another command; a module that forgot it still lists it.
      if (!program.commands.some((c) => c.name() === planned.name)) registerNotBuilt(program, planned, `broken: module ${moduleName} does not register it`);
      continue;
    }
    const moduleUrl = new URL(`./commands/${moduleName}.js`, import.meta.url);
    let module: CommandModule;
    try {
      module = (await import(moduleUrl.href)) as CommandModule;
    } catch (err) {
      const why = isMissingModule(err, moduleUrl) ? 'not yet built' : `broken: ${scrubSecrets(String((err as Error).message ?? err))}`;
      registerNotBuilt(program, planned, why);
      continue;
    }
    if (typeof module.register !== 'function') {
      registerNotBuilt(program, planned, 'broken: its module has no register()');
      continue;
    }
    module.register(program);
    registered.add(moduleName);
  }
  return program;
}

/** Prints an error for the user and returns the exit status it means. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander printed its own message (or the help/version, which are not errors).
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
    return err.exitCode === 0 ? 0 : 2;
  }
  if (err instanceof ConfigError || err instanceof VolumeUrlError) {
    process.stderr.write(`swiftfs: ${scrubSecrets(err.message)}\n`);
    return 2;
  }
  if (isStoreError(err)) {
    process.stderr.write(`swiftfs: ${err.code}: ${scrubSecrets(err.message)}\n`);
    return 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`swiftfs: ${scrubSecrets(message)}\n`);
  if (process.env['SWIFTFS_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${scrubSecrets(err.stack)}\n`);
  return 1;
}

export async function main(argv: readonly string[] = process.argv): Promise<number> {
  try {
    const program = await buildProgram();
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    return reportError(err);
  }
}

// Run when executed (not when imported by tests).
function isEntryPoint(): boolean {
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(invoked)).href; // bin links resolve to this file
  } catch {
    return false;
  }
}
if (isEntryPoint()) {
  main().then(
    (status) => {
      process.exitCode = status;
    },
    (err: unknown) => {
      process.exitCode = reportError(err);
    },
  );
}
