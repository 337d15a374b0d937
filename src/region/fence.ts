/**
 * Fencing: making sure that once a volume has moved (or been taken over), no older writer can commit to a
 * container of it again.
 *
 * A fence in a container (a region's copy of the volume) is a takeover under the core's single-writer lease
 * (core/ownership.ts, DESIGN.md "Single writer"):
 *   1. takes the owner record with an epoch above every epoch that ever wrote there (the owner record's, the
 *      journal's, the data objects', and a floor the caller gives): the record is written, the fence waits the
 *      settle delay S (none where create-only puts are atomic) and reads it back (another takeover at the same
 *      moment makes this one fail). A writer still running finds the record in its next lease check and stops
 *      committing; by the end of the wait nothing it started can still land;
 *   2. commits an empty journal segment with that epoch at the first free number after that wait, started within
 *      S/2 of a read of the record that showed the fence (create-only where the store has it): where create-only
 *      puts are atomic, an old writer that is still running loses the race for that number; on 412 the segment
 *      found there is an older writer's (the next number) or a newer owner's (this fence lost);
 *   3. reads the segment and the owner record back.
 *
 * `retire` leaves a fence owner that never expires (an old home: nobody opens it read-write without forcing,
 * and the error names where the volume went); `takeover` leaves a live owner for the duration of the relocation,
 * released by `releaseTakeover` (its heartbeat says released) so that the next mount takes the volume without
 * forcing. Stores without create-only puts (Swift 2.30's S3 API) get the same guarantee: the lease does not need
 * them.
 *
 * When an old home cannot be reached, the fence is recorded as pending in the new home
 * (`.swiftfs/pending-fences`) and applied by `applyPendingFences` the moment it answers again: from the new
 * owner's process (watchPendingFences) and from any later relocate.
 */

import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import { UUID_LABEL, fetchSegment, readFormat, segmentKey } from '../core/layout.js';
import { encodeSegment } from '../core/records.js';
import { DEFAULT_SETTLE_MS, FencedError, Ownership, VolumeBusyError, explainGuarantee, guaranteeOf, type OwnerRecord, type OwnershipGuarantee } from '../core/ownership.js';
import { silentLogger, type Logger } from '../core/log.js';
import { maxDataEpoch, readJournalHead, type JournalHeadInfo } from './journal.js';
import {
  ROLE_LABEL,
  fenceOwnerRecord,
  heldOwnerRecord,
  isFenceOwner,
  readPendingFences,
  writePendingFences,
  type PendingFence,
  type VolumePlace,
} from './records.js';

export class FenceError extends Error {
  readonly reason: 'uuid-mismatch' | 'no-conditional-create' | 'race' | 'not-a-volume' | 'busy';
  constructor(reason: FenceError['reason'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FenceError';
    this.reason = reason;
  }
}

export interface FenceOptions {
  store: ObjectStore;
  container: string;
  region: string;
  /** The volume this must be (refuses another). */
  uuid: string;
  /** retire: an old home (fence owner forever); takeover: the new home (owner held until releaseTakeover). */
  mode: 'retire' | 'takeover';
  /** Where the volume went (retire). */
  movedTo?: VolumePlace | null;
  reason: string;
  /** The fence epoch is above this too (e.g. the epochs seen in the other region). */
  minEpoch?: number;
  /** Accepted for compatibility: every store is fenced with the same guarantee now (the lease needs no create-only puts). */
  force?: boolean;
  /** takeover: refuse when a live session owns the container, unless this is set. */
  forceOwner?: boolean;
  /**
   * The lease's settle delay S (default 4 s, the volumes' default): the fence waits it (or the larger one the
   * owner record names) after writing its owner record, before it looks for the first free segment number.
   */
  settleMs?: number;
  logger?: Logger;
}

export interface FenceResult {
  place: VolumePlace;
  epoch: number;
  /** The fence segment's number and commit time. */
  seq: number;
  time: number;
  guarantee: OwnershipGuarantee;
  /** The journal as it was just before the fence segment (its head is what the volume holds there). */
  headBefore: JournalHeadInfo;
  previousOwner: OwnerRecord | null;
  session: string;
}

/** The guarantee a store gives for fencing, and the text saying what it means. */
export async function fenceGuarantee(store: ObjectStore, container: string): Promise<{ guarantee: OwnershipGuarantee; explanation: string }> {
  const guarantee = guaranteeOf(await store.capabilities(container));
  return { guarantee, explanation: explainGuarantee(guarantee) };
}

const MAX_FENCE_ATTEMPTS = 1000;

/** Fences one container of a volume (see the module comment). */
export async function fenceContainer(opts: FenceOptions): Promise<FenceResult> {
  const { store, container } = opts;
  const log = opts.logger ?? silentLogger;
  const format = await readFormat(store, container).catch((err: unknown) => {
    throw new FenceError('not-a-volume', `cannot fence ${opts.region}/${container}: ${(err as Error).message}`, { cause: err });
  });
  if (format.uuid !== opts.uuid) {
    throw new FenceError('uuid-mismatch', `${opts.region}/${container} holds volume ${format.uuid}, not ${opts.uuid}; not fencing it`);
  }
  const caps = await store.capabilities(container);
  const guarantee = guaranteeOf(caps);
  const headSeen = await readJournalHead(store, container, { epochs: true });
  const dataEpoch = await maxDataEpoch(store, container);
  const session = `fence-${randomUUID()}`;

  // 1. The owner record, the settle wait, the read back.
  let taken: Awaited<ReturnType<typeof Ownership.takeOver>>;
  try {
    taken = await Ownership.takeOver(
      {
        store,
        container,
        conditionalCreate: caps.conditionalCreate,
        ...(caps.createOnlyAtomic ? { createOnlyAtomic: true } : {}),
        settleMs: opts.settleMs ?? DEFAULT_SETTLE_MS,
        logger: log,
      },
      (current) => {
        if (opts.mode === 'takeover' && current && !opts.forceOwner && Ownership.isLive(current, 120_000) && !isFenceOwner(current)) {
          throw new FenceError('busy', `${opts.region}/${container} is in use read-write by ${current.host} (pid ${current.pid}, epoch ${current.epoch}); it cannot be taken over without forcing`);
        }
        const epoch = Math.max(current?.epoch ?? 0, headSeen.maxEpoch, dataEpoch, opts.minEpoch ?? 0) + 1;
        return opts.mode === 'retire' ? fenceOwnerRecord(epoch, opts.movedTo ?? null, opts.reason, session) : heldOwnerRecord(epoch, session);
      },
    );
  } catch (err) {
    if (err instanceof VolumeBusyError) {
      throw new FenceError('race', `${opts.region}/${container}: another session took the volume while it was being fenced (${err.holder.host}, epoch ${err.holder.epoch})`, { cause: err });
    }
    throw err;
  }
  const lease = taken.ownership;
  const epoch = lease.epoch;
  const previousOwner = taken.previous;

  // 2. The fence segment, at the first number free after the wait. Under the lease (a settle wait) epochs only
  // grow along the journal: no older writer's put lands after a newer owner's wait, so the last segment's epoch
  // tells whether a newer owner committed meanwhile (one segment read, not every one since the checkpoint).
  // Where create-only puts are atomic there is no wait: an older writer may still commit after a newer owner's
  // segment, so every segment after the checkpoint is looked at.
  const headBefore = await readJournalHead(store, container, guarantee === 'lease' ? {} : { epochs: true });
  if (headBefore.maxEpoch >= epoch) {
    throw new FenceError('race', `${opts.region}/${container}: a writer of epoch ${headBefore.maxEpoch} committed while it was being fenced (fence epoch ${epoch})`);
  }
  let seq = headBefore.seq + 1;
  let time = Date.now();
  for (let attempt = 0; ; attempt++) {
    if (attempt >= MAX_FENCE_ATTEMPTS) throw new FenceError('race', `${opts.region}/${container}: could not commit a fence segment after ${MAX_FENCE_ATTEMPTS} attempts (a writer keeps committing)`);
    time = Date.now();
    const bytes = encodeSegment({ v: 1, seq, epoch, walId: session, walSeq: 0, time, objects: [] }, []);
    let out;
    try {
      out = await lease.putUnderLease(segmentKey(seq), bytes, { createOnly: caps.conditionalCreate });
    } catch (err) {
      if (err instanceof FencedError) {
        throw new FenceError('race', `${opts.region}/${container}: another session took the volume while it was being fenced${err.holder ? ` (${err.holder.host}, epoch ${err.holder.epoch})` : ''}`, { cause: err });
      }
      throw err;
    }
    if (!out.ok) {
      // Another writer's segment has this number: an older one that was still committing (the next number), or
      // a newer owner (this fence lost the volume).
      const other = await fetchSegment(store, container, seq).catch(() => null);
      if (other && other.decoded.header.epoch >= epoch) {
        throw new FenceError('race', `${opts.region}/${container}: a writer of epoch ${other.decoded.header.epoch} committed segment ${seq} while it was being fenced (fence epoch ${epoch})`);
      }
      seq++;
      continue;
    }
    // 3. Read it back (a writer that ignores the lease could have replaced it).
    const stored = await fetchSegment(store, container, seq).catch(() => null);
    if (!stored || !stored.bytes.equals(bytes)) {
      if (stored && stored.decoded.header.epoch >= epoch) {
        throw new FenceError('race', `${opts.region}/${container}: a writer of epoch ${stored.decoded.header.epoch} replaced the fence segment ${seq}`);
      }
      log.warn({ region: opts.region, container, seq }, "fence: another writer's segment replaced the fence segment; fencing at the next number");
      seq++;
      continue;
    }
    break;
  }
  const back = await Ownership.readRecord(store, container);
  if (!back || back.session !== session) {
    throw new FenceError('race', `${opts.region}/${container}: another session took the volume while it was being fenced${back ? ` (${back.host}, epoch ${back.epoch})` : ''}`);
  }
  await store.setLabels(container, { [UUID_LABEL]: format.uuid, [ROLE_LABEL]: opts.mode === 'retire' ? 'retired' : 'home' }).catch((err: unknown) => {
    log.warn({ err: (err as Error).message }, 'fence: could not set the container labels');
  });
  log.info({ region: opts.region, container, epoch, seq, mode: opts.mode, guarantee, waitedMs: taken.waitedMs }, opts.mode === 'retire' ? 'old home fenced' : 'volume taken over');
  return { place: { region: opts.region, container }, epoch, seq, time, guarantee, headBefore, previousOwner, session };
}

/**
 * Ends a takeover: the session's heartbeat says released (same epoch in the record), so that the next mount takes
 * the volume freely. The owner record itself is not rewritten (a newer owner may have written it since).
 */
export async function releaseTakeover(store: ObjectStore, container: string, result: FenceResult): Promise<void> {
  const current = await Ownership.readRecord(store, container);
  if (!current || current.session !== result.session) {
    throw new FenceError('race', `${result.place.region}/${container}: another session took the volume before the takeover finished`);
  }
  await Ownership.writeHeartbeat(store, container, { session: result.session, renewedAt: Date.now(), released: true });
}

// ---------------------------------------------------------------------------------------------------------------
// Pending fences
// ---------------------------------------------------------------------------------------------------------------

/** Records a fence that could not be applied (its region did not answer) in the new home. */
export async function addPendingFence(home: { store: ObjectStore; container: string }, uuid: string, fence: Omit<PendingFence, 'attempts' | 'createdAt' | 'uuid'>): Promise<void> {
  const rec = (await readPendingFences(home.store, home.container)) ?? { v: 1 as const, uuid, fences: [], updatedAt: 0 };
  rec.fences = rec.fences.filter((f) => !(f.place.region === fence.place.region && f.place.container === fence.place.container));
  rec.fences.push({ ...fence, uuid, createdAt: Date.now(), attempts: 0 });
  await writePendingFences(home.store, home.container, rec);
}

export interface PendingFenceOutcome {
  fence: PendingFence;
  applied: FenceResult | null;
  error?: string;
}

/**
 * Tries every pending fence of a home; the ones applied (or found already fenced) are removed. `openRegion`
 * gives the store of a region (it may throw, e.g. for a region this host does not know: kept pending).
 */
export async function applyPendingFences(
  home: { store: ObjectStore; container: string },
  openRegion: (region: string) => Promise<ObjectStore>,
  opts: { force?: boolean; logger?: Logger; settleMs?: number } = {},
): Promise<PendingFenceOutcome[]> {
  const rec = await readPendingFences(home.store, home.container);
  if (!rec || rec.fences.length === 0) return [];
  const log = opts.logger ?? silentLogger;
  const out: PendingFenceOutcome[] = [];
  const keep: PendingFence[] = [];
  for (const fence of rec.fences) {
    try {
      const store = await openRegion(fence.place.region);
      const current = await Ownership.read(store, fence.place.container);
      if (current && isFenceOwner(current) && current.epoch > fence.minEpoch) {
        out.push({ fence, applied: null });
        continue; // fenced already (by another relocate)
      }
      const applied = await fenceContainer({
        store,
        container: fence.place.container,
        region: fence.place.region,
        uuid: fence.uuid,
        mode: 'retire',
        movedTo: fence.movedTo,
        reason: 'pending fence of a failover, applied once the region answered',
        minEpoch: fence.minEpoch,
        force: opts.force ?? true, // the operator confirmed the failover already
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}),
      });
      log.warn({ region: fence.place.region, container: fence.place.container, epoch: applied.epoch, seq: applied.seq }, 'pending fence applied: the old home of the volume is fenced');
      out.push({ fence, applied });
    } catch (err) {
      const message = (err as Error).message;
      if (err instanceof FenceError && (err.reason === 'uuid-mismatch' || err.reason === 'not-a-volume')) {
        log.error({ region: fence.place.region, container: fence.place.container, err: message }, 'pending fence dropped: the old home is not this volume any more');
        out.push({ fence, applied: null, error: message });
        continue;
      }
      keep.push({ ...fence, attempts: fence.attempts + 1, lastError: message });
      out.push({ fence, applied: null, error: message });
    }
  }
  // Re-read before writing: another process may have changed the list meanwhile (only drop what we handled).
  const latest = (await readPendingFences(home.store, home.container)) ?? rec;
  const handled = new Set(rec.fences.map((f) => `${f.place.region}\0${f.place.container}\0${f.createdAt}`));
  const merged = [...latest.fences.filter((f) => !handled.has(`${f.place.region}\0${f.place.container}\0${f.createdAt}`)), ...keep];
  await writePendingFences(home.store, home.container, { ...latest, fences: merged });
  return out;
}

/**
 * Applies the pending fences of a home every `intervalMs` (default 15 s) until none is left or stop() is
 * called. Meant for the new owner's process (the mount daemon): the old home is fenced the moment it answers.
 */
export function watchPendingFences(
  home: { store: ObjectStore; container: string },
  openRegion: (region: string) => Promise<ObjectStore>,
  opts: { intervalMs?: number; logger?: Logger; settleMs?: number; onApplied?: (o: PendingFenceOutcome) => void } = {},
): { stop(): void; done: Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  const done = (async () => {
    while (!stopped) {
      try {
        const outcomes = await applyPendingFences(home, openRegion, { ...(opts.logger ? { logger: opts.logger } : {}), ...(opts.settleMs !== undefined ? { settleMs: opts.settleMs } : {}) });
        for (const o of outcomes) if (o.applied) opts.onApplied?.(o);
        const left = await readPendingFences(home.store, home.container);
        if (!left || left.fences.length === 0) return;
      } catch (err) {
        opts.logger?.warn({ err: (err as Error).message }, 'pending fences: cannot check (will retry)');
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, opts.intervalMs ?? 15_000);
        timer.unref?.();
      });
    }
  })();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      (wake as (() => void) | null)?.();
    },
    done,
  };
}
