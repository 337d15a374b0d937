/**
 * The composition root of `swiftfs plugin`: configuration -> stores -> StoreVolumeBackend + ProcessMountRunner
 * + StateFile -> SwiftfsDriver -> express server on the plugin socket; signals; and the optional supervisor.
 *
 * Two ways to run:
 *  - legacy (v1) plugin on a host: `swiftfs plugin` (systemd unit docker/swiftfs-plugin.service, or socket
 *    activation with docker/swiftfs-plugin.socket). Mount processes are detached: stopping or restarting the
 *    plugin leaves live mounts alone (the unit uses KillMode=process).
 *  - inside the managed (v2) plugin: the same, under `--supervise` (behind tini as PID 1): the supervisor keeps
 *    the plugin server running and restarts it if it dies, so a crash of the server does not end the plugin
 *    container and with it every mount process.
 *
 * On SIGTERM/SIGINT the server stops accepting calls and exits; mount processes keep serving their containers
 * (the next plugin instance re-adopts them).
 */

import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/load.js';
import { componentLogger, loggerFromConfig, type Logger } from '../log.js';
import { Volume } from '../core/volume.js';
import { openStoreConfig } from '../store/open.js';
import { resolveStoreRef } from '../config/resolve.js';
import type { ObjectStore } from '../store/object-store.js';
import { SwiftfsDriver } from './driver.js';
import { ProcessMountRunner } from './mount-process.js';
import { closeServer, createPluginApp, listenPlugin } from './server.js';
import { StateFile } from './state.js';
import { StoreVolumeBackend, type FormatVolume } from './store-backend.js';

export interface PluginRunOptions {
  config: Config;
  /** argv of the swiftfs CLI for mount processes; default: this Node and dist/src/cli/main.js. */
  mountCommand?: string[];
  /** Group owning the socket (e.g. the docker group's gid). */
  socketGid?: number;
  /** Per-call deadline in ms (default 25 s). */
  callTimeoutMs?: number;
  /** Interval of the mount health check in ms (default 10 s). */
  healthIntervalMs?: number;
  /**
   * On SIGTERM, flush and stop every mount process (within 8 s) instead of leaving them running: for a plugin
   * run in a container that ends with it (the managed plugin), where they would be killed anyway.
   */
  stopMountsOnExit?: boolean;
  logger?: Logger;
}

/** The CLI entry of this installation (dist/src/cli/main.js next to dist/src/plugin/). */
export function defaultMountCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('../cli/main.js', import.meta.url))];
}

/** Formats a volume with the core: labelled container first, then the filesystem. */
export const formatWithCore: FormatVolume = async (req) => {
  await req.store.createContainer(req.container, { labels: req.labels, ...(req.storagePolicy !== undefined ? { storagePolicy: req.storagePolicy } : {}) });
  const root = req.uid !== undefined || req.gid !== undefined ? { uid: req.uid ?? 0, gid: req.gid ?? 0 } : undefined;
  const record = await Volume.format(req.store, req.container, { blockSize: req.blockSize, createContainer: false, ...(root ? { root } : {}) });
  return { uuid: record.uuid };
};

export interface RunningPlugin {
  driver: SwiftfsDriver;
  /** Stops serving; with `stopMounts`, also flushes and stops the mount processes (bounded). */
  stop(stopMounts?: boolean): Promise<void>;
}

/** Starts the plugin and resolves once it serves its socket. */
export async function startPlugin(options: PluginRunOptions): Promise<RunningPlugin> {
  const { config } = options;
  const log = options.logger ?? componentLogger(loggerFromConfig(config), 'plugin');
  const stores = new Map<string, Promise<ObjectStore>>();
  const open = (name: string): Promise<ObjectStore> => {
    let store = stores.get(name);
    if (store === undefined) {
      // A store name, or STORE@REGION (a Keystone store in another region of its catalog).
      store = Promise.resolve().then(() => openStoreConfig(resolveStoreRef(config, name), { logger: log }));
      stores.set(name, store);
      store.catch(() => stores.delete(name));
    }
    return store;
  };
  const backend = new StoreVolumeBackend({ config, openStore: open, format: formatWithCore });
  const extraArgs: string[] = [];
  if (config.configFile !== undefined) extraArgs.push('--config', config.configFile);
  const runner = new ProcessMountRunner({ command: options.mountCommand ?? defaultMountCommand(), extraArgs });
  const stateDir = join(config.plugin.stateDir, 'plugin');
  const state = StateFile.load(stateDir);
  const driver = new SwiftfsDriver(
    backend,
    runner,
    state,
    {
      hostId: hostname(),
      mountRoot: config.plugin.mountRoot,
      cacheRoot: config.volume.cacheDir,
      logRoot: join(stateDir, 'logs'),
      ...(options.callTimeoutMs !== undefined ? { callBudgetMs: options.callTimeoutMs } : {}),
      ...(options.healthIntervalMs !== undefined ? { healthIntervalMs: options.healthIntervalMs } : {}),
    },
    log,
  );
  await driver.start();
  const server = await listenPlugin(createPluginApp(driver, log), {
    socketPath: config.plugin.socket,
    ...(options.socketGid !== undefined ? { gid: options.socketGid } : {}),
  });
  log.info(
    { socket: config.plugin.socket, stateDir, mountRoot: config.plugin.mountRoot, cacheDir: config.volume.cacheDir, stores: Object.keys(config.stores), defaultStore: config.defaultStore },
    'swiftfs volume plugin serving',
  );
  for (const warning of config.warnings) log.warn({ warning }, 'configuration warning');
  return {
    driver,
    async stop(stopMounts = false) {
      await closeServer(server, 1000);
      if (stopMounts) await driver.stopAllMounts(8_000);
      await driver.close(1000);
      for (const store of stores.values()) await store.then((s) => s.close()).catch(() => undefined);
    },
  };
}

/** Runs the plugin until SIGTERM/SIGINT. */
export async function runPlugin(options: PluginRunOptions): Promise<void> {
  const running = await startPlugin(options);
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await running.stop(options.stopMountsOnExit === true);
}

/**
 * Supervisor: runs `argv` (the plugin server) and restarts it when it exits unexpectedly, with backoff.
 * Forwards SIGTERM/SIGINT and exits with the child's status after a forwarded signal. Used where the plugin runs
 * in a container that ends with the supervisor, so the caller adds --stop-mounts-on-exit to the server's argv.
 */
export async function supervise(argv: string[], log: Pick<Logger, 'info' | 'error' | 'warn'>): Promise<number> {
  let stopping = false;
  let child: ReturnType<typeof spawn> | undefined;
  const forward = (signal: NodeJS.Signals) => () => {
    stopping = true;
    child?.kill(signal);
  };
  process.on('SIGTERM', forward('SIGTERM'));
  process.on('SIGINT', forward('SIGINT'));
  let failures = 0;
  for (;;) {
    const started = Date.now();
    child = spawn(argv[0]!, argv.slice(1), { stdio: 'inherit' });
    const status = await new Promise<number>((resolve) => {
      child!.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
      child!.once('error', () => resolve(127));
    });
    if (stopping) return status;
    failures = Date.now() - started > 60_000 ? 1 : failures + 1;
    const delay = Math.min(10_000, 500 * 2 ** Math.min(failures - 1, 5));
    log.error({ status, restartInMs: delay }, 'plugin server exited; restarting it (mount processes keep running)');
    await new Promise((r) => setTimeout(r, delay));
    if (stopping) return status;
  }
}
