/**
 * Replicator: a log shipper that keeps a replica container (another region) a consistent copy of a volume.
 *
 * It follows the source's journal from the last segment the target holds. For each segment it copies the data
 * objects the segment references that the target lacks, and only once they are all acknowledged it puts the
 * segment (create-only where the target supports it). A source checkpoint is copied once every segment it
 * covers is in the target; after that the target's own garbage is collected by the rule the core uses. When
 * the source's garbage collection removed segments not yet shipped (or an object they reference), the
 * replicator restarts from the source's newest checkpoint: it copies the objects that checkpoint references,
 * then the checkpoint. A brand-new replica is seeded the same way and gets the format record last.
 *
 * So whatever moment the replicator is stopped or killed at, the target is a state of the filesystem the
 * source went through: a checkpoint plus consecutive segments whose every object is present.
 *
 * One replicator at a time writes a target: it holds the lease `.swiftfs/replicator` there (renewed while it
 * runs, verified before it deletes anything). It stops for good when a segment it would put exists with other
 * bytes (the journals diverged), and when the target's owner record changes: it writes under the core's
 * single-writer lease (core/ownership.ts `OwnerLease.follow`, DESIGN.md "Single writer") on the target's owner
 * record as it found it (none, for a replica): every write to the target starts within S/2 of a read of that
 * record showing it unchanged, puts are single attempts read back on an unknown outcome, so a takeover there
 * (which waits S after writing its record) can count on nothing from this replicator landing after its wait.
 * A record that changed stops it: `taken-over` (an owner), or `fenced` (a fence owner, a retire).
 *
 * Progress goes to `.swiftfs/replica-status` in the target (source head seen, replicated seq, commit times,
 * lag), which is what a failover reads to report what was lost.
 */

import { randomUUID } from 'node:crypto';
import * as os from 'node:os';
import type { ObjectStore, ObjectInfo } from '../store/object-store.js';
import { LABELS_OBJECT, listAll } from '../store/object-store.js';
import { isStoreError, StoreError, StoreErrorCode } from '../store/errors.js';
import {
  CHECKPOINT_PREFIX,
  DATA_PREFIX,
  FORMAT_KEY,
  JOURNAL_PREFIX,
  OWNER_KEY,
  UUID_LABEL,
  checkpointKey,
  dataKey,
  fetchSegment,
  listCheckpointSeqs,
  listSegmentSeqs,
  parseSeqKey,
  readFormat,
  segmentKey,
  VolumeFormatError,
  type FormatRecord,
  type LoadedSegment,
} from '../core/layout.js';
import { decodeCheckpoint, decodeSegment } from '../core/records.js';
import { FsState } from '../core/metadata.js';
import { DEFAULT_SETTLE_MS, FencedError, OwnerLease, Ownership, machineId } from '../core/ownership.js';
import { silentLogger, type Logger } from '../core/log.js';
import {
  HOME_LABEL,
  REPLICA_STATUS_KEY,
  REPLICATOR_KEY,
  ROLE_LABEL,
  isFenceOwner,
  readJson,
  readReplicaStatus,
  writeJson,
  type ReplicaStatusRecord,
  type ReplicatorLease,
  type VolumePlace,
} from './records.js';

export interface ReplicaEndpoint {
  store: ObjectStore;
  container: string;
  /** Region name (recorded in the replica status). */
  region: string;
}

/** Where the replicator is about to write; tests stop it there to check the target in every state. */
export type ReplicatorStep =
  | { kind: 'object'; id: string }
  | { kind: 'segment'; seq: number }
  | { kind: 'checkpoint'; seq: number }
  | { kind: 'format' }
  | { kind: 'status' }
  | { kind: 'gc-object'; id: string }
  | { kind: 'gc-segment'; seq: number }
  | { kind: 'gc-checkpoint'; seq: number };

export interface ReplicatorOptions {
  source: ReplicaEndpoint;
  target: ReplicaEndpoint;
  logger?: Logger;
  /** Objects copied at once (default 8). */
  copyConcurrency?: number;
  /** Segments read ahead of the one being put (default 16). */
  lookahead?: number;
  /** Lease of the replicator on the target (default 60 s; renewed every third of it). */
  leaseMs?: number;
  /** Take the lease from a live replicator. */
  forceLease?: boolean;
  /** Write the replica status at most this often while shipping (default 2 s) and at least this often while idle (default 10 s). */
  statusEveryMs?: number;
  idleStatusEveryMs?: number;
  /** The target was a home (a relocation fenced it) or its journal diverged: drop its journal and re-seed. */
  reset?: boolean;
  /** Create the target container when it does not exist (default true). */
  createTarget?: boolean;
  /** Called before every write to the target (tests). May throw to stop the replicator right there. */
  onStep?: (step: ReplicatorStep) => void | Promise<void>;
  /**
   * Settle delay S of the lease on the target's owner record (default 4 s): at most what a takeover of the
   * target waits, i.e. the volume's fenceSettleMs (the smaller of this and the record's own is used).
   */
  settleMs?: number;
}

/** `taken-over` / `fenced`: the target's owner record changed (an owner, or a fence owner: a retire): stopped for good. */
export type ReplicatorState = 'starting' | 'syncing' | 'caught-up' | 'error' | 'stopped' | 'diverged' | 'taken-over' | 'fenced';

export interface ReplicationStatus {
  mode: 'swiftfs' | 'store';
  source: VolumePlace;
  target: VolumePlace;
  state: ReplicatorState;
  lastError?: string | undefined;
  /** Newest source segment seen, its commit time, when the source was last read successfully. */
  sourceSeq: number;
  sourceTime: number | null;
  sourceCheckedAt: number | null;
  /** Newest segment complete in the target and its commit time. */
  replicatedSeq: number;
  replicatedTime: number | null;
  checkpointSeq: number;
  /** Age of the oldest committed change not yet in the target (0 when caught up). */
  lagSeconds: number;
  /** Bytes (segments + the objects they need) still to copy, as last estimated. */
  lagBytes: number;
  /** Largest lagSeconds seen over the last minute. */
  recentMaxLagSeconds: number;
  /** When lagBytes was last measured from listings (null: never; it is then only what copies subtracted). */
  lagEstimatedAt: number | null;
  pendingSegments: number;
  /** Totals of this replicator's life. */
  shippedSegments: number;
  copiedObjects: number;
  copiedBytes: number;
  seeds: number;
  lastSyncAt: number | null;
}

/** The replicator cannot go on with this target (taken over, fenced, diverged, another volume, busy). */
export class ReplicationError extends Error {
  readonly reason: 'uuid-mismatch' | 'taken-over' | 'fenced' | 'diverged' | 'busy' | 'not-a-volume' | 'format-mismatch' | 'stopped';
  constructor(reason: ReplicationError['reason'], message: string) {
    super(message);
    this.name = 'ReplicationError';
    this.reason = reason;
  }
}

/** A segment's object is gone from the source: its garbage collection moved past us; re-seed from a checkpoint. */
class NeedCheckpoint extends Error {}

interface Pending {
  seg: LoadedSegment;
  refs: string[];
  copy: Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Attempts of one put to the target (each a single attempt under the lease) before the sync fails and backs off. */
const PUT_ATTEMPTS = 4;

/** Data object ids a segment references (its header's new objects and every write record's object). */
export function segmentRefs(seg: LoadedSegment): string[] {
  const out = new Set<string>(seg.decoded.header.objects ?? []);
  for (const batch of seg.decoded.batches) {
    for (const rec of batch) if (rec.t === 'write' && 'obj' in rec.ref) out.add(rec.ref.obj);
  }
  return [...out];
}

export class Replicator {
  readonly source: ReplicaEndpoint;
  readonly target: ReplicaEndpoint;
  private readonly o: ReplicatorOptions;
  private readonly log: Logger;
  private readonly session = randomUUID();

  private prepared: Promise<void> | null = null;
  private format: FormatRecord | null = null;
  private targetConditional = true;
  /** Data objects the target holds (listed at start, then tracked), with their sizes. */
  private readonly have = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<void>>();
  /** Refs of the target's segments after its checkpoint (for its garbage collection). */
  private readonly shippedRefs = new Map<number, string[]>();
  private maxShippedId = '';

  private state: ReplicatorState = 'starting';
  private lastError: string | undefined;
  private replicatedSeq = -1;
  private replicatedTime: number | null = null;
  private checkpointSeq = -1;
  private sourceSeq = -1;
  private sourceTime: number | null = null;
  private sourceCheckedAt: number | null = null;
  /** Commit time (or first sighting) of the oldest segment not yet shipped. */
  private pendingSince: number | null = null;
  private lagBytes = 0;
  private readonly lagSamples: { at: number; lag: number }[] = [];
  /** Segments read ahead and not yet put (their bytes count in the lag). */
  private window: Pending[] = [];
  /** Sizes of source objects seen in listings and not yet copied. */
  private readonly objectSizes = new Map<string, number>();
  private lagEstimatedAt: number | null = null;
  private shippedSegments = 0;
  private copiedObjects = 0;
  private copiedBytes = 0;
  private seeds = 0;
  private lastSyncAt: number | null = null;
  private lastStatusWrite = 0;
  private statusWrittenSeq = -2;
  private statusWrittenSourceSeq = -2;
  private leaseRenewedAt = 0;
  private stopped = false;
  private syncing: Promise<ReplicationStatus> | null = null;
  /** The lease on the target's owner record (set by prepare): every write to the target goes through it. */
  private lease: OwnerLease | null = null;
  /** Why it stopped for good when the target's owner record changed (reported even if a concurrent write saw 'stopped' first). */
  private fatal: ReplicationError | null = null;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private kicked = false;

  constructor(opts: ReplicatorOptions) {
    this.o = opts;
    this.source = opts.source;
    this.target = opts.target;
    this.log = opts.logger ?? silentLogger;
  }

  get uuid(): string | null {
    return this.format?.uuid ?? null;
  }

  private place(e: ReplicaEndpoint): VolumePlace {
    return { region: e.region, container: e.container };
  }

  private get leaseMs(): number {
    return this.o.leaseMs ?? 60_000;
  }

  private async step(step: ReplicatorStep): Promise<void> {
    if (this.stopped) throw new ReplicationError('stopped', 'replicator stopped');
    await this.o.onStep?.(step);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Status
  // -------------------------------------------------------------------------------------------------------------

  status(now = Date.now()): ReplicationStatus {
    const st = this.rawStatus(now);
    this.lagSamples.push({ at: now, lag: st.lagSeconds });
    while (this.lagSamples.length > 0 && (now - this.lagSamples[0]!.at > 60_000 || this.lagSamples.length > 2000)) this.lagSamples.shift();
    let max = 0;
    for (const x of this.lagSamples) max = Math.max(max, x.lag);
    return { ...st, recentMaxLagSeconds: max };
  }

  private rawStatus(now: number): ReplicationStatus {
    const behind = this.sourceSeq > this.replicatedSeq;
    return {
      mode: 'swiftfs',
      source: this.place(this.source),
      target: this.place(this.target),
      state: this.state,
      lastError: this.lastError,
      sourceSeq: this.sourceSeq,
      sourceTime: this.sourceTime,
      sourceCheckedAt: this.sourceCheckedAt,
      replicatedSeq: this.replicatedSeq,
      replicatedTime: this.replicatedTime,
      checkpointSeq: this.checkpointSeq,
      lagSeconds: behind && this.pendingSince !== null ? Math.max(0, (now - this.pendingSince) / 1000) : 0,
      lagBytes: behind ? Math.max(this.lagBytes, this.windowBytes()) : 0,
      lagEstimatedAt: this.lagEstimatedAt,
      recentMaxLagSeconds: 0,
      pendingSegments: Math.max(0, this.sourceSeq - this.replicatedSeq),
      shippedSegments: this.shippedSegments,
      copiedObjects: this.copiedObjects,
      copiedBytes: this.copiedBytes,
      seeds: this.seeds,
      lastSyncAt: this.lastSyncAt,
    };
  }

  /** Bytes of the segments read ahead and of the objects they need that the target lacks. */
  private windowBytes(): number {
    let bytes = 0;
    const counted = new Set<string>();
    for (const p of this.window) {
      bytes += p.seg.bytes.length;
      for (const id of p.refs) {
        if (this.have.has(id) || counted.has(id)) continue;
        counted.add(id);
        bytes += this.objectSizes.get(id) ?? this.format?.blockSize ?? 0;
      }
    }
    return bytes;
  }

  /**
   * The writer's process tells the replicator about a commit it made (journal head `seq`), so that lag counts
   * from the commit, not from the replicator's next look at the store.
   */
  noteSourceHead(seq: number, at = Date.now()): void {
    if (seq > this.sourceSeq) {
      if (this.sourceSeq <= this.replicatedSeq || this.pendingSince === null) this.pendingSince = at;
      this.sourceSeq = seq;
      this.sourceTime = at;
    }
    if (seq > this.replicatedSeq) this.kick();
  }

  // -------------------------------------------------------------------------------------------------------------
  // Preparation: the source's format, the target's container, lease, head and objects
  // -------------------------------------------------------------------------------------------------------------

  private prepare(): Promise<void> {
    this.prepared ??= this.doPrepare().catch((err: unknown) => {
      this.prepared = null;
      throw err;
    });
    return this.prepared;
  }

  private async doPrepare(): Promise<void> {
    const { source, target } = this;
    const format = await readFormat(source.store, source.container);
    this.format = format;

    // The target container, with the volume's labels (so that it is found by UUID and by the plugin there).
    let targetLabels: Record<string, string> = {};
    try {
      targetLabels = await target.store.getLabels(target.container);
    } catch (err) {
      if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
      if (this.o.createTarget === false) throw new ReplicationError('not-a-volume', `target container ${target.container} does not exist in region ${target.region}`);
      await target.store.createContainer(target.container, {});
    }
    if (targetLabels[UUID_LABEL] && targetLabels[UUID_LABEL] !== format.uuid) {
      throw new ReplicationError('uuid-mismatch', `container ${target.container} in region ${target.region} holds another volume (uuid ${targetLabels[UUID_LABEL]}, not ${format.uuid})`);
    }
    let targetFormat: FormatRecord | null = null;
    try {
      targetFormat = await readFormat(target.store, target.container);
    } catch (err) {
      if (!(err instanceof VolumeFormatError)) throw err;
      if (err.problem === 'newer-format' || err.problem === 'damaged') throw new ReplicationError('format-mismatch', err.message);
      // not-formatted / not-swiftfs (our own half-done seed, or foreign objects: checked below) / no-container
      if (err.problem === 'not-swiftfs' && !targetLabels[UUID_LABEL]) {
        throw new ReplicationError('not-a-volume', `container ${target.container} in region ${target.region} holds objects that are not a swiftfs replica of ${format.uuid}; refusing to write into it`);
      }
    }
    if (targetFormat && targetFormat.uuid !== format.uuid) {
      throw new ReplicationError('uuid-mismatch', `container ${target.container} in region ${target.region} holds another volume (uuid ${targetFormat.uuid}, not ${format.uuid})`);
    }
    if (targetFormat && targetFormat.blockSize !== format.blockSize) {
      throw new ReplicationError('format-mismatch', `container ${target.container}: block size ${targetFormat.blockSize} differs from the source's ${format.blockSize}`);
    }

    // A target with a live owner is a home, not a replica. A fenced old home may be re-seeded with reset.
    const ownerReadAt = OwnerLease.now();
    const owner = await Ownership.read(target.store, target.container);
    let reset = false;
    if (owner) {
      if (isFenceOwner(owner)) {
        if (!this.o.reset) {
          throw new ReplicationError(
            'taken-over',
            `container ${target.container} in region ${target.region} is a former home of the volume (fenced when it moved to ${owner.fence.movedTo ? `${owner.fence.movedTo.region}/${owner.fence.movedTo.container}` : 'another region'}); replicate with reset to re-seed it`,
          );
        }
        reset = true;
      } else {
        throw new ReplicationError('taken-over', `container ${target.container} in region ${target.region} has an owner (${owner.host}, epoch ${owner.epoch}): the volume was taken over there; it is not a replica any more`);
      }
    }

    const labels: Record<string, string> = { [UUID_LABEL]: format.uuid, [ROLE_LABEL]: 'replica', [HOME_LABEL]: source.region.slice(0, 256) };
    try {
      const sourceLabels = await source.store.getLabels(source.container);
      for (const [k, v] of Object.entries(sourceLabels)) {
        if (k === UUID_LABEL || k === ROLE_LABEL || k === HOME_LABEL || k === 'swiftfs-deleting') continue;
        if (targetLabels[k] !== v) labels[k] = v;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'replicator: cannot read the source container labels (not copied)');
    }
    // From here on every write to the target is under the lease on its owner record as just read.
    const settle = this.o.settleMs ?? DEFAULT_SETTLE_MS;
    this.lease = OwnerLease.follow({ store: target.store, container: target.container, settleMs: Math.min(settle, owner?.settleMs ?? settle), logger: this.log }, owner, ownerReadAt);
    await this.beforeWrite();
    await target.store.setLabels(target.container, labels);
    this.targetConditional = (await target.store.capabilities(target.container)).conditionalCreate;
    await this.acquireLease();

    if (reset || this.o.reset) await this.resetTarget();
    await this.loadTargetState();
    if (!reset) await this.checkNotDiverged();
    this.state = 'syncing';
    this.log.info(
      { source: `${source.region}/${source.container}`, target: `${target.region}/${target.container}`, replicatedSeq: this.replicatedSeq, objects: this.have.size },
      'replicator ready',
    );
  }

  /** Drops the target's journal and checkpoints (a re-seed follows); keeps data objects identical to the source's. */
  private async resetTarget(): Promise<void> {
    const { source, target } = this;
    this.log.warn({ target: `${target.region}/${target.container}` }, 'replicator: resetting the target (its journal is dropped and re-seeded from the source)');
    const sourceObjects = new Map<string, ObjectInfo>();
    for await (const e of listAll(source.store, source.container, { prefix: DATA_PREFIX })) if ('key' in e) sourceObjects.set(e.key, e);
    const drop: string[] = [];
    for await (const e of listAll(target.store, target.container, { prefix: '.swiftfs/' })) {
      if (!('key' in e)) continue;
      if (e.key.startsWith(JOURNAL_PREFIX) || e.key.startsWith(CHECKPOINT_PREFIX) || e.key === REPLICA_STATUS_KEY) {
        drop.push(e.key);
      } else if (e.key.startsWith(DATA_PREFIX)) {
        const s = sourceObjects.get(e.key);
        // Same id, same size and MD5: the same bytes. Anything else (written in the old home after the volume
        // left it, or unverifiable) goes, so that a copy is never skipped over a different object.
        if (!s || s.size !== e.size || !s.etag || !e.etag || s.etag !== e.etag) drop.push(e.key);
      }
    }
    // Checkpoints first (the container stops being a readable volume), then segments, then the objects.
    drop.sort((a, b) => rank(a) - rank(b));
    for (const key of drop) await this.deleteTarget(key);
  }

  private async loadTargetState(): Promise<void> {
    const { target } = this;
    this.have.clear();
    this.shippedRefs.clear();
    this.maxShippedId = '';
    for await (const e of listAll(target.store, target.container, { prefix: DATA_PREFIX })) {
      if (!('key' in e)) continue;
      const id = e.key.slice(DATA_PREFIX.length);
      this.have.set(id, e.size);
      if (id > this.maxShippedId) this.maxShippedId = id;
    }
    // The target's head: newest checkpoint (listed) and the consecutive segments after it.
    const cps = await listCheckpointSeqs(target.store, target.container);
    let hasFormat = true;
    try {
      await target.store.head(target.container, FORMAT_KEY);
    } catch (err) {
      if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
      hasFormat = false;
    }
    if (cps.length === 0 || !hasFormat) {
      // Not seeded yet (or a seed was interrupted before its format record): seed again from a checkpoint.
      this.checkpointSeq = -1;
      this.replicatedSeq = -1;
      this.replicatedTime = null;
      return;
    }
    const c = cps[cps.length - 1]!;
    this.checkpointSeq = c;
    let seq = c;
    let time: number | null = null;
    const listed = await listSegmentSeqs(target.store, target.container, c);
    for (const s of listed) {
      if (s !== seq + 1) break;
      seq = s;
    }
    for (;;) {
      const next = await fetchSegment(target.store, target.container, seq + 1);
      if (!next) break;
      seq++;
    }
    if (seq > c) {
      const last = await fetchSegment(target.store, target.container, seq);
      time = last?.decoded.header.time ?? null;
    } else {
      try {
        const { header } = decodeCheckpoint((await target.store.get(target.container, checkpointKey(c))).body);
        time = header.time;
      } catch {
        time = null;
      }
    }
    this.replicatedSeq = seq;
    this.replicatedTime = time;
    const st = await readReplicaStatus(target.store, target.container);
    if (st && st.uuid === this.format!.uuid) {
      this.sourceSeq = Math.max(st.sourceSeq, seq);
      this.sourceTime = st.sourceTime;
    } else {
      this.sourceSeq = seq;
      this.sourceTime = time;
    }
  }

  /** The target's newest segment must be the source's (same bytes) when the source still has it. */
  private async checkNotDiverged(): Promise<void> {
    if (this.replicatedSeq <= this.checkpointSeq || this.replicatedSeq < 1) return;
    const [mine, theirs] = await Promise.all([
      fetchSegment(this.target.store, this.target.container, this.replicatedSeq),
      fetchSegment(this.source.store, this.source.container, this.replicatedSeq),
    ]);
    if (mine && theirs && !mine.bytes.equals(theirs.bytes)) {
      this.state = 'diverged';
      throw new ReplicationError(
        'diverged',
        `replica ${this.target.region}/${this.target.container} and its source differ at journal segment ${this.replicatedSeq} (the volume was written in both); replicate with reset to re-seed it`,
      );
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lease
  // -------------------------------------------------------------------------------------------------------------

  private leaseRecord(now: number, released = false): ReplicatorLease {
    return {
      v: 1,
      session: this.session,
      host: os.hostname(),
      machine: machineId(),
      pid: process.pid,
      source: this.place(this.source),
      since: this.leaseRenewedAt || now,
      renewedAt: now,
      leaseMs: this.leaseMs,
      ...(released ? { released: true } : {}),
    };
  }

  static leaseIsLive(lease: ReplicatorLease, now = Date.now()): boolean {
    if (lease.released) return false;
    if (lease.machine === machineId() && lease.pid !== process.pid) {
      try {
        process.kill(lease.pid, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
      }
    }
    return now - lease.renewedAt < (lease.leaseMs || 60_000);
  }

  private async acquireLease(): Promise<void> {
    const { target } = this;
    const current = await readJson<ReplicatorLease>(target.store, target.container, REPLICATOR_KEY);
    if (current && current.session !== this.session && Replicator.leaseIsLive(current) && !this.o.forceLease) {
      throw new ReplicationError(
        'busy',
        `replica ${target.region}/${target.container} is being written by another replicator (${current.host}, pid ${current.pid}, from ${current.source?.region}/${current.source?.container}, renewed ${new Date(current.renewedAt).toISOString()})`,
      );
    }
    const now = Date.now();
    await this.beforeWrite();
    await writeJson(target.store, target.container, REPLICATOR_KEY, this.leaseRecord(now));
    const back = await readJson<ReplicatorLease>(target.store, target.container, REPLICATOR_KEY);
    if (!back || back.session !== this.session) throw new ReplicationError('busy', `another replicator took replica ${target.region}/${target.container} at the same time`);
    this.leaseRenewedAt = now;
  }

  /** Checks the lease is still ours (and renews it when due); stops for good when it is not. */
  private async verifyLease(renew: boolean): Promise<void> {
    const { target } = this;
    const current = await readJson<ReplicatorLease>(target.store, target.container, REPLICATOR_KEY);
    if (!current || current.session !== this.session) {
      this.state = 'stopped';
      this.stopped = true;
      throw new ReplicationError('busy', `replica ${target.region}/${target.container}: another replicator took it over${current ? ` (${current.host}, pid ${current.pid})` : ''}; stopping`);
    }
    const now = Date.now();
    if (renew && now - this.leaseRenewedAt > this.leaseMs / 3) {
      await this.beforeWrite();
      await writeJson(target.store, target.container, REPLICATOR_KEY, this.leaseRecord(now));
      this.leaseRenewedAt = now;
    }
  }

  /** The target's owner record must be as it was found (a takeover or a fence there stops the replicator). */
  private checkTargetNotOwned(): Promise<void> {
    return this.underLease((lease) => lease.confirm());
  }

  /** Resolves when a write to the target may start under the lease (module comment); stops for good when fenced. */
  private beforeWrite(): Promise<void> {
    return this.underLease((lease) => lease.beforeWrite());
  }

  /** Runs `fn` with the lease; a FencedError (the target's owner record changed) stops the replicator for good. */
  private async underLease<T>(fn: (lease: OwnerLease) => Promise<T>): Promise<T> {
    try {
      return await fn(this.lease!);
    } catch (err) {
      if (err instanceof FencedError) this.fenced(err);
      throw err;
    }
  }

  /** The target's owner record changed: stop for good (state `taken-over` for an owner, `fenced` otherwise). */
  private fenced(err: FencedError): never {
    if (!this.fatal) {
      const holder = err.holder;
      const owned = holder !== null && !isFenceOwner(holder);
      const where = `${this.target.region}/${this.target.container}`;
      this.fatal = owned
        ? new ReplicationError('taken-over', `the volume was taken over in ${where} (${holder.host}, epoch ${holder.epoch}); replication into it stopped`)
        : new ReplicationError('fenced', `the owner record of ${where} changed (${holder ? `fenced at epoch ${holder.epoch}` : 'removed'}); replication into it stopped`);
      this.state = owned ? 'taken-over' : 'fenced';
      this.lastError = this.fatal.message;
    }
    this.stopped = true;
    throw this.fatal;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Copying
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Puts an object into the target under the lease (create-only where the target has it): each attempt a single
   * put started within S/2 of a confirmation, read back on an unknown outcome; a few attempts on store failures.
   * 'exists': the name holds other bytes (the caller decides what that means); the same bytes count as created.
   */
  private async putTarget(key: string, body: Buffer): Promise<'created' | 'exists'> {
    for (let attempt = 1; ; attempt++) {
      try {
        const out = await this.underLease((lease) => lease.putUnderLease(key, body, { createOnly: this.targetConditional, contentType: key === FORMAT_KEY ? 'application/json' : 'application/octet-stream' }));
        return out.ok ? 'created' : 'exists';
      } catch (err) {
        if (!(err instanceof StoreError) || !err.retryable || attempt >= PUT_ATTEMPTS || this.stopped) throw err;
        await sleep(Math.min(2000, 100 * 2 ** attempt));
      }
    }
  }

  /** Deletes an object of the target, started under the lease (as the core's garbage collection does). */
  private async deleteTarget(key: string): Promise<void> {
    await this.beforeWrite();
    await this.target.store.delete(this.target.container, key);
  }

  /** Copies one data object unless the target has it (or a copy is under way). */
  private copyObject(id: string): Promise<void> {
    if (this.have.has(id)) return Promise.resolve();
    let p = this.inflight.get(id);
    if (p) return p;
    p = (async () => {
      let body: Buffer;
      try {
        body = (await this.source.store.get(this.source.container, dataKey(id))).body;
      } catch (err) {
        if (isStoreError(err, StoreErrorCode.NotFound)) throw new NeedCheckpoint(`data object ${id} is gone from the source`);
        throw err;
      }
      await this.step({ kind: 'object', id });
      await this.putTarget(dataKey(id), body);
      this.have.set(id, body.length);
      this.objectSizes.delete(id);
      if (id > this.maxShippedId) this.maxShippedId = id;
      this.copiedObjects++;
      this.copiedBytes += body.length;
      this.lagBytes = Math.max(0, this.lagBytes - body.length);
    })().finally(() => this.inflight.delete(id));
    this.inflight.set(id, p);
    return p;
  }

  /** Copies a set of objects with bounded parallelism (shared across segments through `inflight`). */
  private async copyObjects(ids: string[]): Promise<void> {
    const missing = ids.filter((id) => !this.have.has(id));
    if (missing.length === 0) return;
    const limit = Math.max(1, this.o.copyConcurrency ?? 8);
    let next = 0;
    let failed: unknown = null;
    await Promise.all(
      Array.from({ length: Math.min(limit, missing.length) }, async () => {
        while (next < missing.length && failed === null) {
          const id = missing[next++]!;
          try {
            await this.copyObject(id);
          } catch (err) {
            failed ??= err;
          }
        }
      }),
    );
    if (failed !== null) throw failed;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Sync
  // -------------------------------------------------------------------------------------------------------------

  /**
   * Ships everything the source has committed (as of when each segment is looked at) and returns the status.
   * Concurrent calls share one run. Throws ReplicationError when the target cannot be written any more.
   */
  syncOnce(opts: { estimate?: boolean } = {}): Promise<ReplicationStatus> {
    if (this.syncing) return this.syncing;
    this.syncing = this.doSync(opts.estimate === true).finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  private async doSync(estimate: boolean): Promise<ReplicationStatus> {
    try {
      await this.prepare();
      await this.checkTargetNotOwned();
      await this.verifyLease(true);
      // Bytes behind: measured from listings when asked, and every few seconds while the source is ahead.
      if (estimate || (this.sourceSeq > this.replicatedSeq && Date.now() - (this.lagEstimatedAt ?? 0) >= 2000)) await this.estimate();
      let lastCheckpointList = 0;
      for (;;) {
        if (this.stopped) throw new ReplicationError('stopped', 'replicator stopped');
        if (this.replicatedSeq < 0) {
          await this.seedFromNewestCheckpoint();
          continue;
        }
        let progressed: boolean;
        try {
          progressed = await this.shipSegments();
        } catch (err) {
          if (!(err instanceof NeedCheckpoint)) throw err;
          this.log.info({ reason: err.message, at: this.replicatedSeq }, 'replicator: the source collected what it still needed; re-seeding from its newest checkpoint');
          await this.seedFromNewestCheckpoint();
          continue;
        }
        if (progressed && Date.now() - lastCheckpointList < 5000) continue;
        // Checkpoints the target can take now (every segment they cover is there).
        const cps = await listCheckpointSeqs(this.source.store, this.source.container);
        lastCheckpointList = Date.now();
        const covered = cps.filter((c) => c > this.checkpointSeq && c <= this.replicatedSeq);
        if (covered.length) await this.copyCheckpoint(covered[covered.length - 1]!, false);
        if (progressed) continue;
        // Segment replicatedSeq+1 is not in the source: caught up, or collected (a newer checkpoint exists).
        const newest = cps.length ? cps[cps.length - 1]! : -1;
        if (newest > this.replicatedSeq) {
          // The segment may just have been committed since: look once more before copying a whole checkpoint.
          const again = await fetchSegment(this.source.store, this.source.container, this.replicatedSeq + 1);
          if (again) continue;
          const before = this.replicatedSeq;
          await this.seedFromNewestCheckpoint();
          if (this.replicatedSeq <= before) {
            throw new Error(`source checkpoint ${newest} of ${this.source.region}/${this.source.container} cannot be copied and segment ${before + 1} is gone: cannot catch up (will retry)`);
          }
          continue;
        }
        this.sourceCheckedAt = Date.now();
        if (this.sourceSeq <= this.replicatedSeq) {
          this.sourceSeq = this.replicatedSeq;
          this.sourceTime = this.replicatedTime;
          this.pendingSince = null;
        }
        break;
      }
      this.lagBytes = 0;
      this.state = 'caught-up';
      this.lastError = undefined;
      this.lastSyncAt = Date.now();
      await this.writeStatus(true);
      return this.status();
    } catch (err) {
      if (this.fatal) throw this.fatal; // fenced: whatever a concurrent write saw, this is why it stopped
      if (err instanceof ReplicationError) {
        if (err.reason === 'taken-over' || err.reason === 'diverged' || err.reason === 'stopped') this.state = err.reason === 'stopped' ? 'stopped' : err.reason;
        else this.state = 'error';
      } else this.state = 'error';
      this.lastError = (err as Error).message;
      throw err;
    }
  }

  /** Lists what is left to copy (segments after ours, objects after the newest we copied) to size the lag. */
  private async estimate(): Promise<void> {
    const { source } = this;
    let bytes = 0;
    let seq = this.replicatedSeq;
    for await (const e of listAll(source.store, source.container, { prefix: JOURNAL_PREFIX, ...(seq >= 0 ? { after: segmentKey(seq) } : {}) })) {
      if (!('key' in e)) continue;
      const s = parseSeqKey(e.key, JOURNAL_PREFIX);
      if (s === null) continue;
      bytes += e.size;
      seq = Math.max(seq, s);
    }
    for await (const e of listAll(source.store, source.container, { prefix: DATA_PREFIX, ...(this.maxShippedId ? { after: dataKey(this.maxShippedId) } : {}) })) {
      if (!('key' in e)) continue;
      const id = e.key.slice(DATA_PREFIX.length);
      if (!this.have.has(id)) {
        bytes += e.size;
        this.objectSizes.set(id, e.size);
      }
    }
    if (this.replicatedSeq < 0) {
      for await (const e of listAll(source.store, source.container, { prefix: CHECKPOINT_PREFIX })) if ('key' in e) bytes += e.size;
    }
    if (seq > this.sourceSeq) {
      if (this.sourceSeq <= this.replicatedSeq) this.pendingSince ??= Date.now();
      this.sourceSeq = seq;
    }
    this.lagBytes = bytes;
    this.lagEstimatedAt = Date.now();
  }

  /** Reads segment `seq` from the source; records what it says about the source's head. */
  private async fetchSource(seq: number): Promise<LoadedSegment | null> {
    const seg = await fetchSegment(this.source.store, this.source.container, seq);
    this.sourceCheckedAt = Date.now();
    if (seg) {
      const h = seg.decoded.header;
      if (seq > this.sourceSeq) {
        this.sourceSeq = seq;
        this.sourceTime = h.time;
      }
      if (seq === this.replicatedSeq + 1) this.pendingSince = this.pendingSince === null ? h.time : Math.min(this.pendingSince, h.time);
    }
    return seg;
  }

  /**
   * Ships consecutive segments from replicatedSeq+1 while the source has them, reading ahead and copying the
   * objects of several segments at once, but putting each segment only after its own objects and the segment
   * before it. Returns whether anything was shipped.
   */
  private async shipSegments(): Promise<boolean> {
    const lookahead = Math.max(1, this.o.lookahead ?? 16);
    const window: Pending[] = [];
    this.window = window;
    let nextSeq = this.replicatedSeq + 1;
    let sourceEnd = false;
    let shipped = false;
    const fill = async (): Promise<void> => {
      while (!sourceEnd && window.length < lookahead) {
        const seg = await this.fetchSource(nextSeq);
        if (!seg) {
          sourceEnd = true;
          break;
        }
        const refs = segmentRefs(seg);
        const copy = this.copyObjects(refs);
        copy.catch(() => undefined);
        window.push({ seg, refs, copy });
        nextSeq++;
      }
    };
    try {
      await fill();
      while (window.length > 0) {
        const head = window[0]!;
        await head.copy;
        await this.putSegment(head);
        window.shift();
        if (window[0]) this.pendingSince = window[0].seg.decoded.header.time;
        shipped = true;
        await this.maybeWriteStatus();
        await fill();
      }
    } finally {
      // Let copies still running settle before the caller re-seeds or gives up (they only add objects).
      await Promise.allSettled(window.map((p) => p.copy));
      this.window = [];
    }
    return shipped;
  }

  private async putSegment(p: Pending): Promise<void> {
    const { seg, refs } = p;
    const seq = seg.seq;
    for (const id of refs) if (!this.have.has(id)) throw new Error(`internal: segment ${seq} object ${id} not copied`);
    // The put starts under the lease (putTarget): within S/2 of a read showing the target's owner record as it
    // was, so a takeover there (owner record first, then the settle wait) never sees it land after the wait.
    this.status();
    await this.step({ kind: 'segment', seq });
    const outcome = await this.putTarget(segmentKey(seq), seg.bytes);
    if (outcome === 'exists') {
      const existing = await fetchSegment(this.target.store, this.target.container, seq).catch(() => null);
      if (!existing || !existing.bytes.equals(seg.bytes)) {
        const owner = await Ownership.read(this.target.store, this.target.container).catch(() => null);
        if (owner && !isFenceOwner(owner)) {
          this.state = 'taken-over';
          this.stopped = true;
          throw new ReplicationError('taken-over', `journal segment ${seq} exists in ${this.target.region}/${this.target.container}: the volume was taken over there (${owner.host}, epoch ${owner.epoch}); replication stopped`);
        }
        this.state = 'diverged';
        this.stopped = true;
        throw new ReplicationError('diverged', `journal segment ${seq} in ${this.target.region}/${this.target.container} differs from the source's: the journals diverged; replication stopped`);
      }
    }
    this.replicatedSeq = seq;
    this.replicatedTime = seg.decoded.header.time;
    this.shippedRefs.set(seq, refs);
    this.shippedSegments++;
    this.lagBytes = Math.max(0, this.lagBytes - seg.bytes.length);
    // The next one's commit time is set by shipSegments when it has read it; until then this one's bounds it.
    this.pendingSince = this.replicatedSeq >= this.sourceSeq ? null : this.replicatedTime;
  }

  /** (Re)starts from the source's newest checkpoint. */
  private async seedFromNewestCheckpoint(): Promise<void> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const cps = await listCheckpointSeqs(this.source.store, this.source.container);
      for (let i = cps.length - 1; i >= 0; i--) {
        try {
          await this.copyCheckpoint(cps[i]!, true);
          this.seeds++;
          return;
        } catch (err) {
          if (err instanceof NeedCheckpoint) break; // a newer one appeared and collected this one's objects: relist
          if (isStoreError(err, StoreErrorCode.NotFound)) break;
          if (err instanceof StoreError || err instanceof ReplicationError) throw err;
          // Damaged (does not decode): try the one before.
          this.log.warn({ checkpoint: cps[i], err: (err as Error).message }, 'replicator: source checkpoint unreadable, trying an older one');
        }
      }
      await sleep(200 * (attempt + 1));
    }
    throw new Error(`cannot seed ${this.target.region}/${this.target.container}: no source checkpoint could be copied with its objects`);
  }

  /**
   * Copies source checkpoint `c` after the objects it references. As a seed (`seed`), the target's head becomes
   * c; otherwise c must already be covered by shipped segments. Then the target's garbage is collected.
   */
  private async copyCheckpoint(c: number, seed: boolean): Promise<void> {
    const bytes = (await this.source.store.get(this.source.container, checkpointKey(c))).body;
    const { header, snapshot } = decodeCheckpoint(bytes);
    if (header.seq !== c) throw new Error(`source checkpoint ${c} says it is ${header.seq}`);
    const referenced = FsState.restore(snapshot).referencedObjects();
    if (seed && this.replicatedSeq < 0) this.lagBytes = Math.max(this.lagBytes, bytes.length);
    await this.copyObjects([...referenced]);
    await this.step({ kind: 'checkpoint', seq: c });
    await this.putTarget(checkpointKey(c), bytes);
    if (seed) {
      // A first seed: the format record last, so that the container is a volume only once it is complete.
      let hasFormat = true;
      try {
        await this.target.store.head(this.target.container, FORMAT_KEY);
      } catch (err) {
        if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
        hasFormat = false;
      }
      if (!hasFormat) {
        await this.step({ kind: 'format' });
        await this.putTarget(FORMAT_KEY, Buffer.from(JSON.stringify(this.format), 'utf8'));
      }
    }
    this.checkpointSeq = Math.max(this.checkpointSeq, c);
    if (seed && c > this.replicatedSeq) {
      this.replicatedSeq = c;
      this.replicatedTime = header.time;
      if (c > this.sourceSeq) {
        this.sourceSeq = c;
        this.sourceTime = header.time;
      }
      for (const s of [...this.shippedRefs.keys()]) this.shippedRefs.delete(s);
    }
    // After a seed, the target's other objects may be what the next source segments reference (a re-seeded old
    // home, a jump over collected segments): they are judged at the next checkpoint, with those segments known.
    await this.collectTargetGarbage(c, referenced, !seed);
  }

  /**
   * The core's rule applied to the target (gc.ts): with checkpoint c new and p the one before it, objects
   * neither c nor a later segment of the target references are deleted (first), then segments ≤ p and
   * checkpoints < p.
   */
  private async collectTargetGarbage(c: number, referenced: Set<string>, objects: boolean): Promise<void> {
    const { target } = this;
    const keep = new Set(referenced);
    for (let s = c + 1; s <= this.replicatedSeq; s++) {
      let refs = this.shippedRefs.get(s);
      if (!refs) {
        const seg = await fetchSegment(target.store, target.container, s);
        if (!seg) return; // cannot tell what a later segment needs: keep everything this time
        refs = segmentRefs(seg);
        this.shippedRefs.set(s, refs);
      }
      for (const id of refs) keep.add(id);
    }
    for (const s of [...this.shippedRefs.keys()]) if (s <= c) this.shippedRefs.delete(s);
    const garbage = objects ? [...this.have.keys()].filter((id) => !keep.has(id) && !this.inflight.has(id)) : [];
    const cps = await listCheckpointSeqs(target.store, target.container);
    const older = cps.filter((s) => s < c);
    const previous = older.length ? older[older.length - 1]! : null;
    const segments = previous === null ? [] : (await listSegmentSeqs(target.store, target.container)).filter((s) => s <= previous);
    const checkpoints = previous === null ? [] : older.filter((s) => s < previous);
    if (garbage.length + segments.length + checkpoints.length === 0) return;
    await this.verifyLease(false);
    for (const id of garbage) {
      await this.step({ kind: 'gc-object', id });
      await this.deleteTarget(dataKey(id));
      this.have.delete(id);
    }
    for (const s of segments) {
      await this.step({ kind: 'gc-segment', seq: s });
      await this.deleteTarget(segmentKey(s));
    }
    for (const s of checkpoints) {
      await this.step({ kind: 'gc-checkpoint', seq: s });
      await this.deleteTarget(checkpointKey(s));
    }
    if (garbage.length + segments.length + checkpoints.length > 0) {
      this.log.debug?.({ target: `${target.region}/${target.container}`, objects: garbage.length, segments: segments.length, checkpoints: checkpoints.length }, 'replicator: target garbage collected');
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Replica status
  // -------------------------------------------------------------------------------------------------------------

  private async maybeWriteStatus(): Promise<void> {
    if (Date.now() - this.leaseRenewedAt > this.leaseMs / 3) await this.verifyLease(true);
    await this.writeStatus(true);
  }

  /** How long the last written status may stand: short while it is out of date, longer while nothing moves. */
  private statusDue(now: number): boolean {
    const changed = this.replicatedSeq !== this.statusWrittenSeq || this.sourceSeq !== this.statusWrittenSourceSeq;
    return now - this.lastStatusWrite >= (changed ? (this.o.statusEveryMs ?? 2000) : (this.o.idleStatusEveryMs ?? 10_000));
  }

  /** Writes `.swiftfs/replica-status` in the target (every sync that changed something, and periodically). */
  private async writeStatus(onlyIfDue: boolean): Promise<void> {
    const now = Date.now();
    if (onlyIfDue && !this.statusDue(now)) return;
    const s = this.status(now);
    const rec: ReplicaStatusRecord = {
      v: 1,
      uuid: this.format!.uuid,
      mode: 'swiftfs',
      source: s.source,
      target: s.target,
      sourceSeq: s.sourceSeq,
      sourceTime: s.sourceTime,
      sourceCheckedAt: s.sourceCheckedAt ?? now,
      replicatedSeq: s.replicatedSeq,
      replicatedTime: s.replicatedTime,
      checkpointSeq: s.checkpointSeq,
      lagSeconds: s.lagSeconds,
      lagBytes: s.lagBytes,
      recentMaxLagSeconds: s.recentMaxLagSeconds,
      updatedAt: now,
      host: os.hostname(),
    };
    await this.step({ kind: 'status' });
    await this.beforeWrite();
    await writeJson(this.target.store, this.target.container, REPLICA_STATUS_KEY, rec);
    this.lastStatusWrite = now;
    this.statusWrittenSeq = s.replicatedSeq;
    this.statusWrittenSourceSeq = s.sourceSeq;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Running
  // -------------------------------------------------------------------------------------------------------------

  /** Asks a running loop to look at the source now. */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /**
   * Runs syncOnce every `pollMs` (or when kicked) until stop(). Store failures are retried with backoff and
   * show in status(); a ReplicationError (taken over, diverged, busy) ends the loop.
   */
  start(pollMs = 1000, onFatal?: (err: ReplicationError) => void): void {
    if (this.loop) return;
    this.loop = (async () => {
      let delay = pollMs;
      while (!this.stopped) {
        this.kicked = false;
        try {
          await this.syncOnce();
          delay = pollMs;
          await this.writeStatus(true).catch(() => undefined);
        } catch (err) {
          if (err instanceof ReplicationError) {
            const why = this.fatal ?? err;
            if (why.reason !== 'stopped') {
              this.log.error({ err: why.message, reason: why.reason }, 'replication stopped');
              onFatal?.(why);
            }
            return;
          }
          this.log.warn({ err: (err as Error).message, target: `${this.target.region}/${this.target.container}` }, 'replication: store failure (retrying)');
          delay = Math.min(30_000, Math.max(pollMs, delay * 2));
        }
        if (this.stopped) break;
        if (!this.kicked) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, delay);
            timer.unref?.();
            this.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wake = null;
        }
      }
    })();
  }

  /**
   * Waits until the target holds the source's journal up to `seq` (default: the source head when called),
   * syncing as needed. Rejects after `timeoutMs`.
   */
  async drain(opts: { seq?: number; timeoutMs?: number } = {}): Promise<ReplicationStatus> {
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    for (;;) {
      const st = await this.syncOnce();
      if (st.replicatedSeq >= (opts.seq ?? st.sourceSeq)) return st;
      if (Date.now() > deadline) throw new Error(`replication to ${this.target.region}/${this.target.container} did not catch up within ${opts.timeoutMs} ms (at ${st.replicatedSeq} of ${opts.seq ?? st.sourceSeq})`);
      await sleep(100);
    }
  }

  /** Stops the loop, writes a last status and releases the lease. */
  async stop(): Promise<void> {
    if (this.stopped && this.state === 'stopped') return;
    const keepState = this.state === 'taken-over' || this.state === 'diverged' || this.state === 'fenced';
    this.stopped = true;
    this.wake?.();
    await this.loop?.catch(() => undefined);
    await this.syncing?.catch(() => undefined);
    if (!keepState) this.state = 'stopped';
    if (this.prepared && this.format && !keepState) {
      try {
        const current = await readJson<ReplicatorLease>(this.target.store, this.target.container, REPLICATOR_KEY);
        if (current?.session === this.session) {
          this.stopped = false; // let the last writes through step()
          try {
            await this.writeStatus(false);
          } finally {
            this.stopped = true;
          }
          await writeJson(this.target.store, this.target.container, REPLICATOR_KEY, this.leaseRecord(Date.now(), true));
        }
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'replicator: could not release its lease');
      }
    }
  }
}

function rank(key: string): number {
  if (key.startsWith(CHECKPOINT_PREFIX)) return 0;
  if (key === REPLICA_STATUS_KEY) return 1;
  if (key.startsWith(JOURNAL_PREFIX)) return 2;
  return 3;
}

/** The owner key is the core's; re-exported for callers that check a target's ownership. */
export { OWNER_KEY, LABELS_OBJECT };
