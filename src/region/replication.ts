/**
 * Replication as the rest of swiftfs uses it:
 *
 *  - startReplication(source, targets): inside the writer's process (the mount daemon, the plugin's mount
 *    process). One Replicator per target in "swiftfs" mode, woken by the volume's own commits (it watches the
 *    journal head in memory, so lag counts from the commit); one StoreReplicationMonitor per target in "store"
 *    mode (Swift container sync, a global cluster, S3 replication), which only compares journal heads.
 *    status() gives the lag (seconds and bytes) per target for `swiftfs status` and `docker volume inspect`.
 *  - startRegionServices(config, ...): reads the volume's `.swiftfs/regions` record and starts replication to
 *    each replica it names, plus the watcher that fences old homes left pending by a failover. One call for a
 *    mount daemon after Volume.open.
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
import { readRegions, type ReplicationMode, type VolumePlace } from './records.js';
import { openRegion, sameRegion } from './regions.js';
import { watchPendingFences } from './fence.js';

/** What replication needs of a mounted volume (core Volume fits). */
export interface ReplicatedVolume {
  readonly uuid: string;
  readonly container: string;
  status(): { journalSeq: number; lastCommitAt: number | null };
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
  /** Called when a target stops for good (taken over, diverged, another replicator). */
  onFatal?: (target: string, err: Error) => void;
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

/** Starts replication of a mounted volume to `targets`. */
export function startReplication(
  source: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  targets: ReplicationTargetSpec[],
  opts: ReplicationOptions = {},
): ReplicationHandle {
  const log = opts.logger ?? silentLogger;
  const sourcePlace = { region: source.region, container: source.volume.container };
  const runners: TargetRunner[] = [];
  const replicators: Replicator[] = [];

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
      const rep = new Replicator({
        source: { store: source.store, container: source.volume.container, region: source.region },
        target: { store: t.store, container, region: t.region },
        logger: log,
        ...(opts.copyConcurrency ? { copyConcurrency: opts.copyConcurrency } : {}),
      });
      replicators.push(rep);
      rep.start(opts.pollMs ?? 5000, (err) => opts.onFatal?.(label, err));
      runner = { label, status: () => rep.status(), drain: (ms) => rep.drain({ timeoutMs: ms, seq: source.volume.status().journalSeq }), stop: () => rep.stop() };
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
  let lastSeq = source.volume.status().journalSeq;
  const watcher = setInterval(() => {
    let seq: number;
    try {
      seq = source.volume.status().journalSeq;
    } catch {
      return;
    }
    if (seq !== lastSeq) {
      lastSeq = seq;
      for (const r of replicators) r.noteSourceHead(seq);
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
      clearInterval(watcher);
      await Promise.all(runners.map((r) => r.stop().catch(() => undefined)));
    },
  };
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

export interface RegionServices {
  replication: ReplicationHandle | null;
  /** Replication and pending fences, for a status endpoint. */
  status(): { region: string; replicas: ReplicationStatus[]; pendingFences: boolean };
  stop(opts?: { drain?: boolean; timeoutMs?: number }): Promise<void>;
}

/**
 * Starts what a read-write mount of a volume owes its regions: replication to each replica its regions record
 * names (resolved through this host's configuration; one a host cannot resolve is logged and skipped), and the
 * watcher that applies pending fences. `region` is the name of the store the volume is mounted from
 * (regionNameOfStore). Returns at once; failures are logged and shown in status().
 */
export async function startRegionServices(
  config: Config,
  mounted: { volume: ReplicatedVolume; store: ObjectStore; region: string },
  opts: ReplicationOptions = {},
): Promise<RegionServices> {
  const log = opts.logger ?? silentLogger;
  const regions = await readRegions(mounted.store, mounted.volume.container).catch(() => null);
  const opened: ObjectStore[] = [];
  const openByName = async (name: string): Promise<ObjectStore> => {
    const { store } = await openRegion(config, name);
    opened.push(store);
    return store;
  };
  let replication: ReplicationHandle | null = null;
  if (regions && regions.uuid === mounted.volume.uuid) {
    if (!sameRegion(config, regions.home.region, mounted.region)) {
      log.warn({ home: regions.home.region, mountedFrom: mounted.region }, 'this volume is mounted from a region that is not its recorded home; not replicating (relocate it to make this region its home)');
    } else {
      const targets: ReplicationTargetSpec[] = [];
      for (const r of regions.replicas) {
        try {
          targets.push({ region: r.region, store: await openByName(r.region), container: r.container, mode: r.mode });
        } catch (err) {
          log.error({ replica: r.region, err: (err as Error).message }, 'replication: this host cannot reach the replica region (not configured?); skipped');
        }
      }
      if (targets.length) replication = startReplication(mounted, targets, opts);
    }
  }
  let pending = true;
  const watcher = watchPendingFences({ store: mounted.store, container: mounted.volume.container }, openByName, { logger: log });
  void watcher.done.then(() => {
    pending = false;
  });
  return {
    replication,
    status: () => ({ region: mounted.region, replicas: replication?.status() ?? [], pendingFences: pending }),
    async stop(stopOpts = {}) {
      watcher.stop();
      await replication?.stop(stopOpts);
      await Promise.all(opened.map((s) => s.close().catch(() => undefined)));
    },
  };
}

export { Replicator, ReplicationError };
