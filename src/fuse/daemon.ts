/**
 * The mount daemon: what `swiftfs mount VOLUME MOUNTPOINT` runs (in the foreground, or as the detached child
 * of the command). It opens the store, formats the volume when its container is missing or empty (unless
 * create is off), opens it, mounts it with FUSE, registers itself and serves its control socket (status,
 * unmount) and, if asked, Prometheus metrics; then waits for the end:
 *
 *  - SIGTERM / SIGINT: flush everything to the store (syncAll), unmount (lazily if files are still open: the
 *    processes holding them keep working until they close them... as long as this daemon still runs, which it
 *    does not for much longer), close the volume (final commit, release ownership), exit 0. A second signal
 *    while flushing gives up waiting for the store: the volume is closed with `abandon` (uncommitted changes
 *    stay in the local write-ahead log and are committed by the next mount on this cache directory), exit 1.
 *  - POST /unmount on the control socket (`swiftfs unmount`): the same, but a busy mount is refused (unless
 *    lazy) and the daemon keeps serving.
 *  - the mount disappearing (someone ran fusermount -u / umount): close the volume, exit.
 *  - an uncaught error: logged; the process exits 1 and the kernel's mount turns dead (ENOTCONN) until the
 *    next mount cleans it up. Nothing acknowledged is lost: it is in the WAL or the store.
 *
 * Regions (src/region/README.md): a read-write mount replicates the volume to the replicas its regions record
 * names (and records those its `replicas` option names first), fences old homes left pending by a failover, and
 * shows the replicas' lag in its status and metrics. At the end, once the volume is closed, it waits up to
 * `replica-drain-timeout` for the replicas to hold the final commit (state "replicating"), then exits.
 *
 * Never touch the mount from this process (see mount.ts): everything here works on the store, the cache
 * directory, the run directory and /proc.
 */

import { hostname } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { Server } from 'node:http';
import type { Config } from '../config/load.js';
import { resolveVolume } from '../config/resolve.js';
import { describeStore, openStoreConfig } from '../store/open.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Logger } from '../log.js';
import { componentLogger } from '../log.js';
import { volumeMetrics, startMetricsServer, enableProcessMetrics, type VolumeMetrics } from '../metrics.js';
import { regionNameOfStore } from '../region/regions.js';
import { startMountRegionServices, type RegionServices, type RegionServicesStatus } from '../region/replication.js';
import { replicationGauges } from '../region/replication-metrics.js';
import { createFuseAdapter, type FuseAdapter } from './adapter.js';
import { FuseMount, prepareMountpoint, mountAt } from './mount.js';
import { isKernelProbedXattr } from './native.js';
import {
  controlRequest,
  findMount,
  processStartTime,
  removeRegistration,
  socketPath,
  startControlServer,
  writeRegistration,
  type MountRegistration,
  type UnmountProgress,
} from './control.js';

/** Threads of libuv's pool for a mount process (cache and WAL I/O run there while FUSE ops wait). */
export const MOUNT_THREADPOOL_SIZE = 64;

export interface MountDaemonOptions {
  config: Config;
  /** The volume as the user wrote it (swift://NAME, s3://STORE/NAME, NAME...). */
  volume: string;
  /** Absolute path. */
  mountpoint: string;
  runDir: string;
  log: Logger;
  /** Where the daemon's log goes (shown by status), if a file. */
  logFile?: string | null;
  /** libfuse's own debug output. */
  fuseDebug?: boolean;
  /** Take the volume over from another live owner (Volume.open force). */
  force?: boolean;
  /** Told once the mount is usable. */
  onReady?: (info: { mountpoint: string; volume: string; pid: number }) => void;
}

/** What GET /status answers (and `swiftfs status --json` prints, one per mount). */
export interface MountStatus {
  pid: number;
  mountpoint: string;
  volume: string;
  store: string;
  storeDescription: string;
  host: string;
  state: 'mounted' | 'flushing' | 'unmounting' | 'closing' | 'replicating';
  startedAt: string;
  logFile: string | null;
  options: { readOnly: boolean; fsync: string; cacheDir: string; cacheSize: number; allowOther: boolean; uid: number; gid: number; umask: number };
  volumeStatus: unknown;
  fuse: ReturnType<FuseAdapter['stats']>;
  /** Replication and pending fences (read-write mounts; null for a read-only one). */
  regions: RegionServicesStatus | null;
}

class BusyError extends Error {
  readonly busy = true;
}

type VolumeModule = typeof import('../core/volume.js');
type VolumeInstance = Awaited<ReturnType<VolumeModule['Volume']['open']>>;

/** Opens (formatting first when allowed and needed) the volume. */
async function openVolume(
  mod: VolumeModule,
  store: ObjectStore,
  container: string,
  config: Config,
  log: Logger,
  force: boolean,
): Promise<VolumeInstance> {
  const v = config.volume;
  const uid = v.uid ?? process.getuid?.() ?? 0;
  const gid = v.gid ?? process.getgid?.() ?? 0;
  const openOpts = {
    cacheDir: v.cacheDir,
    cacheSize: v.cacheSize,
    dirtyLimit: v.dirtyLimit,
    fsync: v.fsync,
    closeSync: v.closeSync,
    commitIntervalMs: v.commitInterval,
    readOnly: v.readOnly,
    logger: componentLogger(log, 'volume'),
    ...(force ? { force: true } : {}),
  };
  try {
    return await mod.Volume.open(store, container, openOpts);
  } catch (err) {
    if (!(err instanceof mod.VolumeFormatError) || (err.problem !== 'no-container' && err.problem !== 'not-formatted')) throw err;
    if (!v.create) throw new Error(`${err.message}; not creating it (create is off: drop --no-create to format a new volume)`);
    if (v.readOnly) throw new Error(`${err.message}; a read-only mount does not create volumes`);
    log.info({ container, blockSize: v.blockSize, why: err.problem }, 'formatting a new volume');
    try {
      await mod.Volume.format(store, container, {
        blockSize: v.blockSize,
        createContainer: err.problem === 'no-container',
        ...(v.storagePolicy ? { storagePolicy: v.storagePolicy } : {}),
        root: { uid, gid },
        label: `swiftfs mount on ${hostname()}`,
      });
    } catch (formatErr) {
      // Another host may have formatted it at the same moment: opening it is then right.
      log.warn({ err: (formatErr as Error).message }, 'format failed; trying to open the volume as it is');
    }
    return mod.Volume.open(store, container, openOpts);
  }
}

function publishVolumeGauges(metrics: VolumeMetrics, volume: VolumeInstance): void {
  const s = volume.status();
  metrics.setDirtyBytes(s.dirtyBytes);
  metrics.setUploadQueueDepth(s.uploadsQueued + s.uploadsActive);
  metrics.setCacheBytes(s.cache.diskBytes + s.cache.walBytes);
}

/**
 * Runs the daemon until it is told to stop. Resolves the process exit status. Throws (before anything is
 * mounted) for errors the user must see: bad mount point, volume busy, store unreachable...
 */
export async function runMountDaemon(opts: MountDaemonOptions): Promise<number> {
  const { config, runDir } = opts;
  const log = componentLogger(opts.log, 'mount', { mountpoint: opts.mountpoint });
  const mountpoint = resolvePath(opts.mountpoint);
  const resolved = resolveVolume(config, opts.volume, { store: config.volume.store });
  const v = config.volume;
  const uid = v.uid ?? process.getuid?.() ?? 0;
  const gid = v.gid ?? process.getgid?.() ?? 0;
  const umask = v.umask ?? 0;

  const other = await findMount(runDir, mountpoint);
  // A daemon that has closed its volume and only waits for its replicas no longer serves the mount point.
  if (other && other.pid !== process.pid && !(await onlyReplicating(other))) throw new Error(`${mountpoint} is already served by swiftfs pid ${other.pid} (${other.volume})`);
  await prepareMountpoint(mountpoint, componentLogger(opts.log, 'mount'), async (dir) => (await findMount(runDir, dir)) !== undefined);

  const store = await openStoreConfig(resolved.store, { logger: opts.log });
  const mod = await import('../core/volume.js');
  let volume: VolumeInstance;
  try {
    volume = await openVolume(mod, store, resolved.container, config, log, opts.force === true);
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }

  const metrics = volumeMetrics(resolved.url);
  // The binding answers getxattr of kernel-probed names itself while no file has one (see adapter.ts).
  let mountRef: FuseMount | undefined;
  let probedXattrSet = false;
  const adapter = createFuseAdapter({
    fs: volume,
    log: componentLogger(opts.log, 'fuse', { volume: resolved.url }),
    caller: { uid, gid },
    owner: { uid: v.uid, gid: v.gid },
    umask,
    observer: { op: (op, result, seconds) => metrics.op(op, result, seconds), bytes: (op, n) => (op === 'read' ? metrics.read(n) : metrics.written(n)) },
    debugOps: opts.log.isLevelEnabled('debug'),
    beforeKernelProbedXattr: () => {
      probedXattrSet = true;
      mountRef?.setXattrShortcut(false);
    },
  });

  let mount: FuseMount;
  try {
    mount = await FuseMount.mount(adapter.ops, { mountpoint, fsname: resolved.url, readOnly: v.readOnly, allowOther: v.allowOther, debug: opts.fuseDebug === true }, componentLogger(opts.log, 'mount'));
  } catch (err) {
    await volume.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  mountRef = mount;
  if (!probedXattrSet && !volume.anyXattr(isKernelProbedXattr)) {
    const on = mount.setXattrShortcut(true);
    log.debug({ xattrShortcut: on }, on ? 'no security.* or POSIX ACL xattrs: the binding answers the kernel\'s probes for them' : 'the binding cannot answer xattr probes itself (patch level < 3)');
  }

  // ---------------------------------------------------------------- regions: replication, pending fences
  const regions = startRegions(config, volume, store, resolved, log);

  let state: MountStatus['state'] = 'mounted';
  const startedAt = new Date().toISOString();
  const status = (): MountStatus => ({
    pid: process.pid,
    mountpoint,
    volume: resolved.url,
    store: resolved.store.name,
    storeDescription: describeStore(resolved.store),
    host: hostname(),
    state,
    startedAt,
    logFile: opts.logFile ?? null,
    options: { readOnly: v.readOnly, fsync: v.fsync, cacheDir: v.cacheDir, cacheSize: v.cacheSize, allowOther: v.allowOther, uid, gid, umask },
    volumeStatus: volume.status(),
    fuse: adapter.stats(),
    regions: regions?.services.status() ?? null,
  });

  // ---------------------------------------------------------------- the end, in one place
  let finished: ((code: number) => void) | undefined;
  const exitCode = new Promise<number>((resolve) => (finished = resolve));
  let shutdown: Promise<void> | undefined;
  let abandon = false;
  let abandonNow: () => void = () => undefined;
  const abandoned = new Promise<void>((resolve) => (abandonNow = resolve));
  const progressListeners = new Set<(p: UnmountProgress) => void>();
  const progress = (p: UnmountProgress): void => {
    for (const l of progressListeners) l(p);
  };
  let progressTimer: NodeJS.Timeout | undefined;

  /** Flush, unmount, close. `lazy`: detach even when busy; `refuseBusy`: a busy mount is an error (kept mounted). */
  const stop = (why: string, how: { lazy: boolean; refuseBusy: boolean; alreadyUnmounted?: boolean }): Promise<void> => {
    if (shutdown) return shutdown;
    shutdown = (async () => {
      log.info({ why }, 'stopping: committing everything to the store');
      progressTimer = setInterval(() => {
        const s = volume.status();
        const replicas = state === 'replicating' ? regions?.services.status().replicas.map((r) => ({ replica: `${r.target.region}/${r.target.container}`, lagSeconds: r.lagSeconds, lagBytes: r.lagBytes })) : undefined;
        const p = { state: state as UnmountProgress['state'], dirtyBytes: s.dirtyBytes, uploadsQueued: s.uploadsQueued, uploadsActive: s.uploadsActive, ...(replicas ? { replicas } : {}) };
        progress(p);
        if (state === 'flushing') log.info(p, 'still committing');
      }, 500);
      progressTimer.unref();
      let code = 0;
      try {
        if (!how.alreadyUnmounted) {
          state = 'flushing';
          try {
            await Promise.race([volume.syncAll(), abandoned]);
          } catch (err) {
            // Unmount anyway: close() below tries once more, and what it cannot commit stays in the WAL.
            code = 1;
            log.error({ err }, 'committing before unmount failed');
          }
          state = 'unmounting';
          try {
            await mount.unmount({ lazyIfBusy: how.lazy || !how.refuseBusy });
          } catch (err) {
            if (how.refuseBusy) {
              state = 'mounted';
              throw new BusyError(`${mountpoint} is busy (files are open, or a process has its working directory in it); close them, or unmount lazily with --lazy`, { cause: err });
            }
            // Still close the volume: everything is committed already, and the ownership must be released.
            code = 1;
            log.error({ err }, 'unmounting failed; closing the volume anyway');
          }
        }
        state = 'closing';
        try {
          await volume.close(abandon ? { abandon: true } : {});
        } catch (err) {
          code = 1;
          log.error({ err }, 'closing the volume failed: uncommitted changes stay in the local write-ahead log for the next mount');
        }
        if (abandon) code = 1;
        if (regions) {
          state = 'replicating';
          await regions.stop(abandon ? 0 : v.replicaDrainTimeout, abandoned);
        }
        await store.close().catch(() => undefined);
        await removeRegistration(runDir, mountpoint);
        log.info({ exitCode: code, abandoned: abandon }, 'stopped');
        clearInterval(progressTimer);
        finished?.(code);
      } catch (err) {
        clearInterval(progressTimer);
        shutdown = undefined;
        throw err;
      }
    })();
    return shutdown;
  };

  // ---------------------------------------------------------------- control socket, registry, metrics
  const socket = socketPath(runDir, mountpoint);
  let controlServer: Server | undefined;
  let metricsServer: Server | undefined;
  try {
    const reg: MountRegistration = {
      pid: process.pid,
      startTime: processStartTime(process.pid) ?? '',
      mountpoint,
      volume: resolved.url,
      store: resolved.store.name,
      socket,
      logFile: opts.logFile ?? null,
      startedAt,
    };
    await writeRegistration(runDir, reg);
    controlServer = await startControlServer(socket, {
      status,
      unmount: async (lazy, onProgress) => {
        progressListeners.add(onProgress);
        try {
          await stop('unmount requested', { lazy, refuseBusy: !lazy });
        } finally {
          progressListeners.delete(onProgress);
        }
      },
    });
    if (config.global.metricsListen) {
      enableProcessMetrics();
      metricsServer = await startMetricsServer(config.global.metricsListen);
      metricsServer.unref();
    }
  } catch (err) {
    log.error({ err }, 'cannot set up the control socket or metrics; unmounting');
    await mount.unmount({ lazyIfBusy: true }).catch(() => undefined);
    await regions?.stop(0, abandoned);
    await volume.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    await removeRegistration(runDir, mountpoint);
    throw err;
  }
  const gauges = setInterval(() => publishVolumeGauges(metrics, volume), 5000);
  gauges.unref();

  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) {
      log.info({ signal: sig }, 'signal: flushing and unmounting (send it again to stop waiting for the store)');
      void stop(`signal ${sig}`, { lazy: true, refuseBusy: false }).catch((err: unknown) => {
        log.error({ err }, 'stop failed');
        finished?.(1);
      });
    } else if (!abandon) {
      abandon = true;
      abandonNow();
      log.warn({ signal: sig, state }, 'second signal: not waiting for the store; uncommitted changes stay in the local write-ahead log for the next mount');
    } else {
      // Third time: exit now. Everything acknowledged is in the WAL or the store; the next mount recovers it.
      log.warn({ signal: sig, state }, 'third signal: exiting now');
      process.exit(1);
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => log.info('SIGHUP ignored (use SIGTERM to unmount)'));

  mount.watch(() => {
    log.warn('the mount was removed from outside (fusermount -u / umount): closing the volume');
    void stop('mount gone', { lazy: true, refuseBusy: false, alreadyUnmounted: true }).catch(() => finished?.(1));
  });

  log.info({ volume: resolved.url, store: describeStore(resolved.store), readOnly: v.readOnly, fsync: v.fsync, cacheDir: v.cacheDir }, 'volume mounted');
  opts.onReady?.({ mountpoint, volume: resolved.url, pid: process.pid });

  const code = await exitCode;
  clearInterval(gauges);
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  // Closing a unix-socket server unlinks its path: not when a new daemon took the mount point over while this
  // one waited for its replicas (the path is the new daemon's socket now; this process exits without it).
  const successor = await findMount(runDir, mountpoint);
  if (successor === undefined || successor.pid === process.pid) controlServer?.close();
  metricsServer?.close();
  if (await mountAt(mountpoint).then((m) => m?.fsType === 'fuse.swiftfs')) log.warn('the mount point is still mounted (lazy detach pending)');
  return code;
}

/** True when the daemon of `reg` has unmounted and closed its volume, and only waits for its replicas. */
async function onlyReplicating(reg: MountRegistration): Promise<boolean> {
  const st = await controlRequest<{ state?: string }>(reg.socket, 'GET', '/status', { timeoutMs: 2000 }).catch(() => null);
  return st?.state === 'replicating';
}

/**
 * The region services of a read-write mount (null for a read-only one), with their metrics, and the end: stop
 * after waiting up to `drainMs` for the replicas to hold the final commit, logging progress every 5 s.
 */
function startRegions(
  config: Config,
  volume: VolumeInstance,
  store: ObjectStore,
  resolved: ReturnType<typeof resolveVolume>,
  log: Logger,
): { services: RegionServices; stop(drainMs: number, abandoned: Promise<void>): Promise<void> } | null {
  if (config.volume.readOnly) return null;
  const regionLog = componentLogger(log, 'regions');
  const region = resolved.ref.store ?? regionNameOfStore(config, resolved.store);
  const services = startMountRegionServices(config, { volume, store, region }, {
    logger: regionLog,
    replicas: config.volume.replicas?.split(',').filter((r) => r !== '') ?? [],
  });
  const gauges = replicationGauges(resolved.url);
  const publish = setInterval(() => gauges.publish(services.status().replicas), 5000);
  publish.unref();
  return {
    services,
    async stop(drainMs, abandoned) {
      clearInterval(publish);
      const replicas = services.status().replicas;
      if (drainMs > 0 && replicas.length > 0) {
        const started = Date.now();
        regionLog.info({ replicas: replicas.length, timeoutMs: drainMs }, 'waiting for the replicas to hold the final commit');
        const progress = setInterval(() => {
          const now = services.status().replicas.map((r) => ({ replica: `${r.target.region}/${r.target.container}`, state: r.state, at: r.replicatedSeq, of: r.sourceSeq, lagSeconds: Math.round(r.lagSeconds), lagBytes: r.lagBytes, ...(r.lastError ? { lastError: r.lastError } : {}) }));
          regionLog.info({ replicas: now, waitedMs: Date.now() - started }, 'still replicating the final commit');
        }, 5000);
        progress.unref();
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          services.drain(drainMs).then(
            () => 'caught-up' as const,
            (err: unknown) => (err as Error).message,
          ),
          abandoned.then(() => 'abandoned' as const),
          new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), drainMs + 1000))),
        ]);
        clearTimeout(timer);
        clearInterval(progress);
        if (outcome === 'caught-up') regionLog.info({ ms: Date.now() - started }, 'the replicas hold the final commit');
        else regionLog.warn({ outcome, waitedMs: Date.now() - started }, 'the replicas may not hold the final commit yet: the next mount (or swiftfs replicate) catches them up');
      }
      gauges.publish(services.status().replicas);
      await Promise.race([services.stop(), new Promise((r) => setTimeout(r, 10_000).unref())]);
      gauges.remove();
    },
  };
}
