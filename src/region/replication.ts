/**
 * Replication as the rest of swiftfs uses it:
 *
 *  - startReplication(source, targets): inside the writer's process (the mount daemon, the plugin's mount
 *    process). One Replicator per target in "swiftfs" mode, woken by the volume's own commits (it watches the
 *    journal head in memory, so lag counts from the commit); one StoreReplicationMonitor per target in "store"
 *    mode (Swift container sync, a global cluster, S3 replication), which only compares journal heads.
 *    status() gives the lag (seconds and bytes) per target for `swiftfs status` and `docker volume inspect`.
 *    A target whose lease another replicator holds (a standalone `swiftfs replicate`, or the previous mount
 *    still draining) is retried every `busyRetryMs` until that one lets go.
 *  - startRegionServices(config, ...): reads the volume's `.swiftfs/regions` record and starts replication to
 *    each replica it names (and to replicas recorded later: the record is read again every minute), plus the
 *    watcher that fences old homes left pending by a failover.
 *  - startMountRegionServices(config, ...): what a read-write mount daemon calls after Volume.open: records the
 *    replicas its `replicas` option names, then startRegionServices, in the background (the mount never waits
 *    for another region); status() and stop({drain}) for `swiftfs status`, metrics and unmount.
 */

import type { Config } from '../config/load.js';
import type { ObjectStore } from '../store/object-store.js';
import { listAll } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { DATA_PREFIX, JOURNAL_PREFIX, dataKey, fetchSegment, parseSeqKey, segmentKey } from '../core/layout.js';
import { silentLogger, type Logger } from '../core/log.js';
import { findVolumeByUuid } from './find.js';
import { readJournalHead } from './journal.js';
import { Replicator, ReplicationError, segmentRefs, type ReplicationStatus } from './replicator.js';
import { placeText, readRegions, type ReplicaPlace, type ReplicationMode, type VolumePlace } from './records.js';
import { openRegion, resolveRegion, sameRegion } from './regions.js';
import { addReplica, regionsOrDefault } from './volume-regions.js';
import { watchPendingFences } from './fence.js';

/** What replication needs of a mounted volume (core Volume fits). */
export interface ReplicatedVolume {
  readonly uuid: string;
  readonly container: string;
  status(): { journalSeq: number; lastCommitAt: number | null; owner?: { settleMs: number } | null };
}

export interface ReplicationTargetSpec {
  region: string;
  store: ObjectStore;
  /** Default: the container holding the volume's UUID there, else the source's container name. */
  container?: string;
  mode?: ReplicationMode;
}

export interface ReplicationOptions {
  logger?: Logger;
  /** How often a replicator looks at the source without being woken (default 5 s). */
  pollMs?: number;
  /** How often the volume's journal head is checked in memory (default 100 ms). */
  watchMs?: number;
  /** How often a store-mode monitor compares the heads (default 15 s). */
  monitorMs?: number;
  copyConcurrency?: number;
  /** Called when a target stops for good (taken over, diverged, another volume). */
  onFatal?: (target: string, err: Error) => void;
  /** How long to wait before trying again a target another replicator holds (default 15 s). */
  busyRetryMs?: number;
}

export interface ReplicationHandle {
  /** One entry per target. */
  status(): ReplicationStatus[];
  /** Ships everything committed so far to every swiftfs-mode target; resolves with the statuses. */
  drain(timeoutMs?: number): Promise<ReplicationStatus[]>;
  /** Stops (after draining, when asked); releases the replicators' leases. */
  stop(opts?: { drain?: boolean; timeoutMs?: number }): Promise<void>;
}

interface TargetRunner {
  label: string;
  status(): ReplicationStatus;
  drain(timeoutMs: number): Promise<ReplicationStatus>;
  stop(): Promise<void>;
}

function placeholderStatus(source: VolumePlace, target: VolumePlace, mode: ReplicationMode, state: ReplicationStatus['state'], lastError?: string): ReplicationStatus {
  return {
    mode,
    source,
    target,
    state,
    lastError,
    sourceSeq: -1,
    sourceTime: null,
    sourceCheckedAt: null,
    replicatedSeq: -1,
    replicatedTime: null,
    checkpointSeq: -1,
    lagSeconds: 0,
    lagBytes: 0,
    lagEstimatedAt: null,
    recentMaxLagSeconds: 0,
    pendingSegments: 0,
    shippedSegments: 0,
    copiedObjects: 0,
    copiedBytes: 0,
    seeds: 0,
    lastSyncAt: null,
  };
}

/** The container of `uuid` in a target region: found by UUID, else `fallback` (created by the replicator). */
export async function targetContainer(store: ObjectStore, uuid: string, fallback: string): Promise<string> {
  const found = await findVolumeByUuid(store, uuid, { hint: fallback });
  return found?.container ?? fallback;
}

/** The journal head of the volume, or undefined when it cannot tell (then the source's head in the store counts). */
function volumeHead(volume: ReplicatedVolume): number | undefined {
  try {
    return volume.status().journalSeq;
  } catch {
    return undefined;
  }
}

/** The settle delay S of the volume's single-writer lease, when it tells. */
function volumeSettleMs(volume: ReplicatedVolume): number | undefined {
  try {
    return volume.status().owner?.settleMs;
  } catch {
    return undefined;
  }
}

/** Starts replication of a mounted volume to `targets`. */
export function startReplication(
  source: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  targets: ReplicationTargetSpec[],
  opts: ReplicationOptions = {},
): ReplicationHandle {
  const log = opts.logger ?? silentLogger;
  const sourcePlace = { region: source.region, container: source.volume.container };
  const runners: TargetRunner[] = [];
  /** The live replicator of each swiftfs-mode target (replaced when a busy target is tried again). */
  const live = new Set<Replicator>();
  let stopping = false;

  for (const t of targets) {
    const mode = t.mode ?? 'swiftfs';
    let runner: TargetRunner | null = null;
    let setupError: string | undefined;
    let container = t.container;
    const label = `${t.region}/${t.container ?? source.volume.container}`;
    const ready = (async () => {
      container ??= await targetContainer(t.store, source.volume.uuid, source.volume.container);
      if (mode === 'store') {
        const monitor = new StoreReplicationMonitor({ store: source.store, container: source.volume.container, region: source.region }, { store: t.store, container, region: t.region }, log);
        monitor.start(opts.monitorMs ?? 15_000);
        runner = { label, status: () => monitor.status(), drain: (ms) => monitor.waitCaughtUp(ms), stop: async () => monitor.stop() };
        return;
      }
      const targetContainerName = container;
      let rep: Replicator | null = null;
      let waiting: string | undefined;
      let retryTimer: NodeJS.Timeout | null = null;
      const launch = (): void => {
        retryTimer = null;
        if (stopping) return;
        const r = new Replicator({
          source: { store: source.store, container: source.volume.container, region: source.region },
          target: { store: t.store, container: targetContainerName, region: t.region },
          logger: log,
          ...(opts.copyConcurrency ? { copyConcurrency: opts.copyConcurrency } : {}),
          // The replicator's lease on the replica's owner record: the volume's own settle delay (its hosts' S).
          ...(volumeSettleMs(source.volume) !== undefined ? { settleMs: volumeSettleMs(source.volume)! } : {}),
        });
        rep = r;
        live.add(r);
        const head = volumeHead(source.volume);
        if (head !== undefined) r.noteSourceHead(head);
        r.start(opts.pollMs ?? 5000, (err) => {
          live.delete(r);
          if (err.reason === 'busy' && !stopping) {
            // Another replicator writes this replica (a standalone `swiftfs replicate`, a mount still draining
            // elsewhere): not an end, a wait. Try again until its lease is released or expires.
            waiting = err.message;
            const retry = opts.busyRetryMs ?? 15_000;
            log.warn({ target: label, err: err.message, retryInMs: retry }, 'replication: another replicator holds this replica; waiting for it');
            retryTimer = setTimeout(() => {
              waiting = undefined;
              launch();
            }, retry);
            retryTimer.unref();
            return;
          }
          opts.onFatal?.(label, err);
        });
      };
      launch();
      runner = {
        label,
        status: () => {
          const st = rep!.status();
          return waiting ? { ...st, state: 'error', lastError: `waiting: ${waiting}` } : st;
        },
        drain: async (ms) => {
          if (waiting || !rep) throw new Error(`replication to ${label} is not running (${waiting ?? 'not started'})`);
          return drainRetrying(rep, ms, volumeHead(source.volume));
        },
        stop: async () => {
          if (retryTimer) clearTimeout(retryTimer);
          await rep?.stop();
        },
      };
    })().catch((err: unknown) => {
      setupError = (err as Error).message;
      log.error({ target: label, err: setupError }, 'replication: cannot start');
      opts.onFatal?.(label, err as Error);
    });
    runners.push({
      label,
      status: () => runner?.status() ?? placeholderStatus(sourcePlace, { region: t.region, container: container ?? source.volume.container }, mode, setupError ? 'error' : 'starting', setupError),
      drain: async (ms) => {
        await ready;
        if (!runner) throw new Error(`replication to ${label} is not running${setupError ? `: ${setupError}` : ''}`);
        return (runner as TargetRunner).drain(ms);
      },
      stop: async () => {
        await ready;
        await (runner as TargetRunner | null)?.stop();
      },
    });
  }

  // Wake the replicators on every commit (the journal head moves in memory).
  let lastSeq = volumeHead(source.volume);
  const watcher = setInterval(() => {
    const seq = volumeHead(source.volume);
    if (seq !== undefined && seq !== lastSeq) {
      lastSeq = seq;
      for (const r of live) r.noteSourceHead(seq);
    }
  }, opts.watchMs ?? 100);
  watcher.unref();

  return {
    status: () => runners.map((r) => r.status()),
    drain: (timeoutMs = 600_000) => Promise.all(runners.map((r) => r.drain(timeoutMs))),
    async stop(stopOpts = {}) {
      if (stopOpts.drain) {
        await Promise.all(runners.map((r) => r.drain(stopOpts.timeoutMs ?? 600_000).catch((err: unknown) => log.warn({ target: r.label, err: (err as Error).message }, 'replication: could not drain before stopping'))));
      }
      stopping = true;
      clearInterval(watcher);
      await Promise.all(runners.map((r) => r.stop().catch(() => undefined)));
    },
  };
}

function optionalSeq(seq: number | undefined): { seq?: number } {
  return seq === undefined ? {} : { seq };
}

/**
 * Replicator.drain, going on through store failures (a region briefly down) until `timeoutMs`; a
 * ReplicationError (taken over, diverged, another replicator) ends it at once.
 */
async function drainRetrying(rep: Replicator, timeoutMs: number, seq: number | undefined): Promise<ReplicationStatus> {
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  for (;;) {
    try {
      return await rep.drain({ timeoutMs: Math.max(1, deadline - Date.now()), ...optionalSeq(seq) });
    } catch (err) {
      const left = deadline - Date.now();
      if (err instanceof ReplicationError || left <= 0) throw err;
      await new Promise((r) => setTimeout(r, Math.min(delay, left)));
      delay = Math.min(5000, delay * 2);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Store-side replication: check and report only
// ---------------------------------------------------------------------------------------------------------------

interface Endpoint {
  store: ObjectStore;
  container: string;
  region: string;
}

/**
 * For a replica the store keeps by itself: compares the journal heads of the source and the target and reports
 * the lag (the age of the oldest source segment the target lacks, and the bytes of the segments and objects
 * it lacks). Never writes to the target.
 */
export class StoreReplicationMonitor {
  private current: ReplicationStatus;
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<ReplicationStatus> | null = null;

  constructor(
    private readonly source: Endpoint,
    private readonly target: Endpoint,
    private readonly log: Logger = silentLogger,
  ) {
    this.current = placeholderStatus({ region: source.region, container: source.container }, { region: target.region, container: target.container }, 'store', 'starting');
  }

  status(): ReplicationStatus {
    return { ...this.current };
  }

  check(): Promise<ReplicationStatus> {
    this.checking ??= this.doCheck().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private async doCheck(): Promise<ReplicationStatus> {
    const now = Date.now();
    try {
      const [src, dst] = await Promise.all([readJournalHead(this.source.store, this.source.container), readJournalHead(this.target.store, this.target.container)]);
      let lagSeconds = 0;
      let lagBytes = 0;
      if (src.seq > dst.seq) {
        const first = await fetchSegment(this.source.store, this.source.container, Math.max(dst.seq + 1, src.checkpointSeq + 1)).catch(() => null);
        lagSeconds = first ? Math.max(0, (now - first.decoded.header.time) / 1000) : src.time ? Math.max(0, (now - src.time) / 1000) : 0;
        lagBytes = await this.missingBytes(Math.max(dst.seq, -1));
      }
      this.current = {
        ...this.current,
        state: src.seq > dst.seq ? 'syncing' : 'caught-up',
        lastError: undefined,
        sourceSeq: src.seq,
        sourceTime: src.time,
        sourceCheckedAt: now,
        replicatedSeq: dst.seq,
        replicatedTime: dst.time,
        checkpointSeq: dst.checkpointSeq,
        lagSeconds,
        lagBytes,
        lagEstimatedAt: now,
        recentMaxLagSeconds: Math.max(lagSeconds, this.current.recentMaxLagSeconds * (now - (this.current.lastSyncAt ?? now) < 60_000 ? 1 : 0)),
        pendingSegments: Math.max(0, src.seq - dst.seq),
        lastSyncAt: now,
      };
    } catch (err) {
      this.current = { ...this.current, state: 'error', lastError: (err as Error).message };
      this.log.warn({ target: `${this.target.region}/${this.target.container}`, err: (err as Error).message }, 'store replication check failed');
    }
    return this.status();
  }

  /** Bytes of the source segments after `seq` and of the objects they reference that the target lacks. */
  private async missingBytes(seq: number): Promise<number> {
    let bytes = 0;
    const refs = new Set<string>();
    let heads = 0;
    for await (const e of listAll(this.source.store, this.source.container, { prefix: JOURNAL_PREFIX, ...(seq >= 0 ? { after: segmentKey(seq) } : {}) })) {
      if (!('key' in e)) continue;
      const s = parseSeqKey(e.key, JOURNAL_PREFIX);
      if (s === null) continue;
      bytes += e.size;
      const seg = await fetchSegment(this.source.store, this.source.container, s).catch(() => null);
      if (seg) for (const id of segmentRefs(seg)) refs.add(id);
    }
    for (const id of refs) {
      if (heads++ > 200) break; // an estimate is enough past this
      try {
        await this.target.store.head(this.target.container, dataKey(id));
      } catch (err) {
        if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
        try {
          bytes += (await this.source.store.head(this.source.container, dataKey(id))).size;
        } catch {
          // collected meanwhile
        }
      }
    }
    void DATA_PREFIX;
    return bytes;
  }

  start(intervalMs: number): void {
    if (this.timer) return;
    void this.check();
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
  }

  /** Checks until the target's head reaches the source's (the store replicates on its own schedule). */
  async waitCaughtUp(timeoutMs: number): Promise<ReplicationStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const st = await this.check();
      if (st.state === 'caught-up') return st;
      if (Date.now() > deadline) throw new Error(`store replication to ${this.target.region}/${this.target.container} has not caught up (at ${st.replicatedSeq} of ${st.sourceSeq}, lag ${st.lagSeconds.toFixed(0)} s)`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One call for a mount daemon
// ---------------------------------------------------------------------------------------------------------------

/** What `swiftfs status`, metrics and the plugin show of a mount's regions. */
export interface RegionServicesStatus {
  /** The region the volume is mounted from. */
  region: string;
  /** The volume's home as its regions record names it (null: no record yet, or not read yet). */
  home: VolumePlace | null;
  /** True when this mount replicates (it is mounted from the recorded home, read-write). */
  replicating: boolean;
  /** Why it does not replicate, or what went wrong setting it up. */
  note?: string | undefined;
  replicas: ReplicationStatus[];
  pendingFences: boolean;
}

export interface RegionServices {
  /** Replication and pending fences, for a status endpoint. */
  status(): RegionServicesStatus;
  /** Waits (bounded) until every replica holds the volume's journal as it is now. */
  drain(timeoutMs: number): Promise<ReplicationStatus[]>;
  stop(opts?: { drain?: boolean; timeoutMs?: number }): Promise<void>;
}

function replicaKey(r: ReplicaPlace): string {
  return `${r.region}\u0000${r.container}\u0000${r.mode}`;
}

/**
 * Starts what a read-write mount of a volume owes its regions: replication to each replica its regions record
 * names (resolved through this host's configuration; one a host cannot resolve is logged and skipped), and the
 * watcher that applies pending fences. `region` is the name of the store the volume is mounted from
 * (regionNameOfStore). The record is read again every `recordPollMs` (default 60 s): replicas added later (by
 * `swiftfs replicate`) are started, removed ones stopped. Returns at once; failures are logged and shown in
 * status().
 */
export async function startRegionServices(
  config: Config,
  mounted: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  opts: ReplicationOptions & { recordPollMs?: number } = {},
): Promise<RegionServices> {
  const log = opts.logger ?? silentLogger;
  const opened = new Map<string, ObjectStore>();
  const openByName = async (name: string): Promise<ObjectStore> => {
    let store = opened.get(name);
    if (!store) {
      store = (await openRegion(config, name)).store;
      opened.set(name, store);
    }
    return store;
  };
  /** One replication per recorded replica, by replicaKey. */
  const running = new Map<string, { place: ReplicaPlace; handle: ReplicationHandle }>();
  const unreachable = new Map<string, ReplicationStatus>();
  let home: VolumePlace | null = null;
  let replicating = false;
  let note: string | undefined;
  let stopped = false;

  const sync = async (): Promise<void> => {
    const regions = await readRegions(mounted.store, mounted.volume.container);
    if (stopped) return;
    if (!regions || regions.uuid !== mounted.volume.uuid) {
      home = null;
      replicating = false;
      note = 'no replicas recorded (swiftfs replicate VOLUME --to REGION, or the replicas option)';
      return;
    }
    home = regions.home;
    if (!sameRegion(config, regions.home.region, mounted.region)) {
      if (replicating || note === undefined) log.warn({ home: regions.home.region, mountedFrom: mounted.region }, 'this volume is mounted from a region that is not its recorded home; not replicating (relocate it to make this region its home)');
      replicating = false;
      note = `mounted from ${mounted.region}, but the volume's recorded home is ${placeText(regions.home)}: not replicating`;
      for (const [key, r] of running) {
        running.delete(key);
        await r.handle.stop().catch(() => undefined);
      }
      return;
    }
    replicating = true;
    note = regions.replicas.length === 0 ? 'no replicas recorded' : undefined;
    const wanted = new Map(regions.replicas.filter((r) => !sameRegion(config, r.region, mounted.region)).map((r) => [replicaKey(r), r] as const));
    for (const [key, r] of running) {
      if (wanted.has(key)) continue;
      log.info({ replica: placeText(r.place) }, 'replication: the replica is no longer recorded; stopping replication to it');
      running.delete(key);
      await r.handle.stop().catch(() => undefined);
    }
    for (const [key, r] of wanted) {
      if (running.has(key)) continue;
      let store: ObjectStore;
      try {
        store = await openByName(r.region);
      } catch (err) {
        if (!unreachable.has(key)) log.error({ replica: r.region, err: (err as Error).message }, 'replication: this host cannot reach the replica region (not configured?); skipped');
        unreachable.set(key, placeholderStatus({ region: mounted.region, container: mounted.volume.container }, r, r.mode, 'error', `region ${r.region} is not usable on this host: ${(err as Error).message}`));
        continue;
      }
      unreachable.delete(key);
      if (stopped) return;
      log.info({ replica: placeText(r), mode: r.mode }, 'replication: starting');
      running.set(key, { place: r, handle: startReplication(mounted, [{ region: r.region, store, container: r.container, mode: r.mode }], opts) });
    }
  };

  await sync().catch((err: unknown) => {
    note = `cannot read the regions record: ${(err as Error).message}`;
    log.warn({ err: (err as Error).message }, 'regions: cannot read the regions record (will retry)');
  });
  const poll = setInterval(() => {
    sync().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'regions: cannot read the regions record (will retry)'));
  }, opts.recordPollMs ?? 60_000);
  poll.unref();

  let pending = true;
  const watcher = watchPendingFences({ store: mounted.store, container: mounted.volume.container }, openByName, { logger: log });
  void watcher.done.then(() => {
    pending = false;
  });
  const statuses = (): ReplicationStatus[] => [...[...running.values()].flatMap((r) => r.handle.status()), ...unreachable.values()];
  return {
    status: () => ({ region: mounted.region, home, replicating, note, replicas: statuses(), pendingFences: pending }),
    drain: async (timeoutMs) => (await Promise.all([...running.values()].map((r) => r.handle.drain(timeoutMs)))).flat(),
    async stop(stopOpts = {}) {
      stopped = true;
      clearInterval(poll);
      watcher.stop();
      await Promise.all([...running.values()].map((r) => r.handle.stop(stopOpts)));
      await Promise.all([...opened.values()].map((s) => s.close().catch(() => undefined)));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What a mount daemon starts
// ---------------------------------------------------------------------------------------------------------------

export interface MountRegionOptions extends ReplicationOptions {
  /** Regions the mount's `replicas` option names: recorded as replicas (in the home's record) before starting. */
  replicas?: readonly string[];
  /** Bound of looking a new replica's container up by UUID in its region (default 10 s). */
  lookupTimeoutMs?: number;
  recordPollMs?: number;
}

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Records the replicas a mount was asked for (the `replicas` option) in the volume's regions record, when the
 * volume is mounted from its home (or has no record yet) and the record does not name them already. A replica's
 * container is the one holding the volume's UUID in that region, else the volume's container name. Returns the
 * regions it added. Throws ConfigError for a region this host's configuration does not know.
 */
export async function recordReplicas(
  config: Config,
  mounted: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  replicas: readonly string[],
  opts: { logger?: Logger; lookupTimeoutMs?: number } = {},
): Promise<string[]> {
  const log = opts.logger ?? silentLogger;
  for (const name of replicas) resolveRegion(config, name); // a typo is an error, before anything is written
  const homePlace = { region: mounted.region, container: mounted.volume.container };
  let rec = await regionsOrDefault(mounted.store, homePlace, mounted.volume.uuid);
  if (!sameRegion(config, rec.home.region, mounted.region)) return [];
  const added: string[] = [];
  for (const name of replicas) {
    if (sameRegion(config, name, mounted.region)) {
      log.info({ replica: name }, 'replicas option: this region is the volume\'s home; no replica there');
      continue;
    }
    if (rec.replicas.some((r) => sameRegion(config, r.region, name))) continue;
    let container = mounted.volume.container;
    let store: ObjectStore | undefined;
    try {
      store = (await openRegion(config, name)).store;
      container = await withTimeout(targetContainer(store, mounted.volume.uuid, mounted.volume.container), opts.lookupTimeoutMs ?? 10_000, `looking the volume up in region ${name}`);
    } catch (err) {
      log.warn({ replica: name, err: (err as Error).message }, `replicas option: cannot look the volume up in region ${name}; recording container ${container}`);
    } finally {
      await store?.close().catch(() => undefined);
    }
    rec = await addReplica(mounted.store, rec.home, mounted.volume.uuid, { region: name, container }, 'swiftfs');
    log.info({ replica: `${name}/${container}` }, 'replicas option: recorded a new replica of the volume');
    added.push(name);
  }
  return added;
}

/**
 * For a read-write mount daemon, after Volume.open: records the `replicas` option's regions, then starts the
 * region services, all in the background (the mount does not wait for any region). status() answers at once;
 * stop({drain}) waits (bounded) for the replicas to hold the final commit.
 */
export function startMountRegionServices(
  config: Config,
  mounted: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  opts: MountRegionOptions = {},
): RegionServices {
  const log = opts.logger ?? silentLogger;
  let services: RegionServices | null = null;
  let setupError: string | undefined;
  let stopped = false;
  const ready = (async () => {
    if (opts.replicas && opts.replicas.length > 0) {
      await recordReplicas(config, mounted, opts.replicas, { logger: log, ...(opts.lookupTimeoutMs !== undefined ? { lookupTimeoutMs: opts.lookupTimeoutMs } : {}) }).catch((err: unknown) => {
        setupError = `cannot record the replicas ${opts.replicas!.join(', ')}: ${(err as Error).message}`;
        log.error({ err: (err as Error).message }, 'replicas option: cannot record the replicas');
      });
    }
    if (stopped) return;
    const started = await startRegionServices(config, mounted, opts);
    if (stopped) {
      await started.stop();
      return;
    }
    services = started;
  })().catch((err: unknown) => {
    setupError = (err as Error).message;
    log.error({ err: setupError }, 'regions: cannot start the region services');
  });
  const waiting = (): RegionServicesStatus => ({
    region: mounted.region,
    home: null,
    replicating: false,
    note: setupError ?? 'starting',
    replicas: (opts.replicas ?? []).map((r) => placeholderStatus({ region: mounted.region, container: mounted.volume.container }, { region: r, container: mounted.volume.container }, 'swiftfs', setupError ? 'error' : 'starting', setupError)),
    pendingFences: false,
  });
  return {
    status: () => {
      const st = (services as RegionServices | null)?.status() ?? waiting();
      return setupError && st.note === undefined ? { ...st, note: setupError } : st;
    },
    drain: async (timeoutMs) => {
      await ready;
      return (services as RegionServices | null)?.drain(timeoutMs) ?? [];
    },
    async stop(stopOpts = {}) {
      stopped = true;
      await ready;
      await (services as RegionServices | null)?.stop(stopOpts);
    },
  };
}

export { Replicator, ReplicationError };
