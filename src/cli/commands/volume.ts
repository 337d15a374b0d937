/**
 * `swiftfs volume create|ls|inspect|rm`: manage volumes in the object stores without Docker, the same way the
 * Docker volume plugin does (it is the plugin's StoreVolumeBackend underneath: same container labels, same
 * per-volume options), so a volume created here is seen by `docker volume ls` on any host and vice versa.
 *
 *   swiftfs volume create NAME [-o KEY=VALUE]...   options as for `docker volume create -o` (block-size, store,
 *                                                   container, ...)
 *   swiftfs volume ls [--json]                      every swiftfs volume in every configured store
 *   swiftfs volume inspect NAME [--json]
 *   swiftfs volume rm NAME [--force]                deletes the container and everything in it
 *
 * Heavy modules (the core, the stores) are imported inside the actions.
 */

import type { Command } from 'commander';
import { commandContext } from '../../config/flags.js';
import type { Config } from '../../config/load.js';
import type { Logger } from '../../log.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { BackendVolume, VolumeBackend } from '../../plugin/backend.js';

/** Deadline of one volume command's store work. */
const COMMAND_BUDGET_MS = 120_000;

interface Writer {
  write(text: string): unknown;
}

/** The plugin's backend over the configured stores, plus a close() that releases every store it opened. */
export async function openBackend(config: Config, log: Logger): Promise<{ backend: VolumeBackend; close(): Promise<void> }> {
  const [{ StoreVolumeBackend }, { formatWithCore }, { openStoreConfig }, { resolveStoreRef }] = await Promise.all([
    import('../../plugin/store-backend.js'),
    import('../../plugin/main.js'),
    import('../../store/open.js'),
    import('../../config/resolve.js'),
  ]);
  const stores = new Map<string, Promise<ObjectStore>>();
  const open = (name: string): Promise<ObjectStore> => {
    let store = stores.get(name);
    if (store === undefined) {
      store = Promise.resolve().then(() => openStoreConfig(resolveStoreRef(config, name), { logger: log }));
      stores.set(name, store);
    }
    return store;
  };
  const backend = new StoreVolumeBackend({ config, openStore: open, format: formatWithCore });
  return {
    backend,
    async close() {
      await backend.close();
      await Promise.allSettled([...stores.values()].map(async (store) => (await store).close()));
    },
  };
}

function collectOption(value: string, previous: Record<string, string>): Record<string, string> {
  const eq = value.indexOf('=');
  const key = eq < 0 ? value : value.slice(0, eq);
  if (key === '') throw new Error(`-o ${value}: expected KEY=VALUE`);
  return { ...previous, [key]: eq < 0 ? '' : value.slice(eq + 1) };
}

function where(volume: BackendVolume): string {
  const scheme = volume.location.backend === 'memory' ? 'mem' : volume.location.backend;
  return `${scheme}://${volume.location.store}/${volume.location.container}`;
}

/** A fixed-width table. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ')).join('\n') + '\n';
}

function holderText(volume: BackendVolume): string {
  if (!volume.holder) return '-';
  return `${volume.holder.host}${volume.holder.pid === undefined ? '' : `:${volume.holder.pid}`}${volume.holder.live ? '' : ' (expired)'}`;
}

export async function listVolumes(backend: VolumeBackend, out: Writer, options: { json?: boolean } = {}): Promise<BackendVolume[]> {
  const volumes = (await backend.list(AbortSignal.timeout(COMMAND_BUDGET_MS))).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (options.json) {
    out.write(`${JSON.stringify(volumes, null, 2)}\n`);
  } else if (volumes.length === 0) {
    out.write('no volumes\n');
  } else {
    out.write(table([['NAME', 'WHERE', 'UUID', 'HELD BY', 'CREATED'], ...volumes.map((v) => [v.name, where(v), v.uuid, holderText(v), v.createdAt])]));
  }
  return volumes;
}

export async function inspectVolume(backend: VolumeBackend, name: string, out: Writer): Promise<BackendVolume> {
  const volume = await backend.lookup(name, AbortSignal.timeout(COMMAND_BUDGET_MS));
  if (!volume) throw new Error(`no volume named ${JSON.stringify(name)} in the configured stores`);
  out.write(`${JSON.stringify(volume, null, 2)}\n`);
  return volume;
}

export async function createVolume(backend: VolumeBackend, name: string, options: Record<string, string>, out: Writer): Promise<BackendVolume> {
  const spec = backend.resolve(name, options);
  const volume = await backend.create(spec, AbortSignal.timeout(COMMAND_BUDGET_MS));
  out.write(`created ${volume.name} at ${where(volume)} (uuid ${volume.uuid})\n`);
  return volume;
}

export async function removeVolume(backend: VolumeBackend, name: string, options: { force?: boolean }, out: Writer): Promise<void> {
  const signal = AbortSignal.timeout(COMMAND_BUDGET_MS);
  const volume = await backend.lookup(name, signal);
  if (!volume) throw new Error(`no volume named ${JSON.stringify(name)} in the configured stores`);
  if (volume.holder?.live && !options.force) {
    throw new Error(`volume ${name} is in use by ${holderText(volume)}: unmount it there first (or --force to delete it anyway)`);
  }
  await backend.markDeleting(volume.location, signal);
  await backend.destroy(volume.location, signal);
  out.write(`removed ${name} (${where(volume)})\n`);
}

/** Runs `work` with the backend of the command's configuration, and always releases it. */
async function withBackend<T>(command: Command, work: (backend: VolumeBackend) => Promise<T>): Promise<T> {
  const { config, log } = commandContext(command);
  const opened = await openBackend(config, log);
  try {
    return await work(opened.backend);
  } finally {
    await opened.close();
  }
}

export function register(program: Command): void {
  const volume = program.command('volume').description('Manage volumes in the object stores (as the Docker plugin does)');

  volume
    .command('create')
    .description('Create and format a volume (as docker volume create)')
    .argument('<name>', 'volume name (also its container name unless -o container=NAME)')
    .option('-o, --opt <key=value>', 'a per-volume option, as for docker volume create -o (repeatable)', collectOption, {})
    .action(async (name: string, options: { opt: Record<string, string> }, command: Command) => {
      await withBackend(command, (backend) => createVolume(backend, name, options.opt, process.stdout));
    });

  volume
    .command('ls')
    .description('List the swiftfs volumes of every configured store')
    .option('--json', 'as JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      await withBackend(command, (backend) => listVolumes(backend, process.stdout, options));
    });

  volume
    .command('inspect')
    .description('Show one volume: where it is, its uuid, options, holder and size')
    .argument('<name>', 'volume name')
    .action(async (name: string, _options: unknown, command: Command) => {
      await withBackend(command, (backend) => inspectVolume(backend, name, process.stdout));
    });

  volume
    .command('rm')
    .description('Delete a volume: its container and everything in it')
    .argument('<name>', 'volume name')
    .option('--force', 'delete even when a host holds it read-write')
    .action(async (name: string, options: { force?: boolean }, command: Command) => {
      await withBackend(command, (backend) => removeVolume(backend, name, options, process.stdout));
    });
}
