/**
 * Fencing: making sure that once a volume has moved (or been taken over), no older writer can commit to a
 * container of it again.
 *
 * A fence in a container (a region's copy of the volume):
 *   1. writes an owner record with an epoch above every epoch that ever wrote there (the owner record's, the
 *      journal's, and the data objects'), so that a writer that looks at the owner record (lease renewal, the
 *      check before each commit where there is no create-only put) knows it lost the volume;
 *   2. commits an empty journal segment with that epoch at the first free number, create-only, so that an old
 *      writer that is still running loses the race for its next segment number and turns its mount read-only
 *      (committer.ts: PreconditionFailed on a segment put fences it);
 *   3. reads the owner record back (another fence or takeover at the same moment makes this one fail).
 *
 * `retire` leaves a fence owner that never expires (an old home: nobody opens it read-write without forcing,
 * and the error names where the volume went); `takeover` leaves a live owner for the duration of the relocation,
 * released by `releaseTakeover` so that the next mount takes the volume without forcing.
 *
 * Where the store has no create-only puts (Swift 2.30's S3 API), step 2 is a plain put after a check: a writer
 * that committed between the check and the put would have its segment overwritten, and an old writer that does
 * not read the owner record in time commits once more. What remains is the owner record checked before every
 * commit (ownership.ts, check-then-put): at most about one commit of overlap. Callers must have the operator
 * confirm (`force`) before fencing such a store.
 *
 * When an old home cannot be reached, the fence is recorded as pending in the new home
 * (`.swiftfs/pending-fences`) and applied by `applyPendingFences` the moment it answers again: from the new
 * owner's process (watchPendingFences) and from any later relocate.
 */

import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { UUID_LABEL, fetchSegment, readFormat, segmentKey } from '../core/layout.js';
import { encodeSegment } from '../core/records.js';
import { Ownership, type OwnerRecord, type OwnershipGuarantee } from '../core/ownership.js';
import { silentLogger, type Logger } from '../core/log.js';
import { maxDataEpoch, readJournalHead, type JournalHeadInfo } from './journal.js';
import {
  ROLE_LABEL,
  fenceOwnerRecord,
  heldOwnerRecord,
  isFenceOwner,
  readPendingFences,
  releasedOwnerRecord,
  writeOwner,
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
  /** Fence even without create-only puts (the operator confirmed the weaker guarantee). */
  force?: boolean;
  /** takeover: refuse when a live session owns the container, unless this is set. */
  forceOwner?: boolean;
  /**
   * Pause after writing the owner record and again after the fence segment's put before reading it back
   * (default 1 s). Swift's create-only put is not atomic against a concurrent put of the same name (both may
   * succeed; the later timestamp wins), so the fence verifies that its segment is the one that stayed.
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
  /** The journal as it was just before the fence (its head is what the volume holds there). */
  headBefore: JournalHeadInfo;
  previousOwner: OwnerRecord | null;
  session: string;
}

/** The guarantee a store gives for fencing, and the text saying what it means. */
export async function fenceGuarantee(store: ObjectStore, container: string): Promise<{ guarantee: OwnershipGuarantee; explanation: string }> {
  const caps = await store.capabilities(container);
  if (caps.conditionalCreate) {
    return { guarantee: 'fenced', explanation: 'create-only puts: an old writer can never commit again after the fence' };
  }
  return {
    guarantee: 'check-then-put',
    explanation:
      'this store has no create-only puts: the fence relies on writers checking the owner record before each commit, ' +
      'so an old writer that is still running may commit once more (about one commit interval) before it stops',
  };
}

const MAX_FENCE_ATTEMPTS = 1000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

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
  const { guarantee, explanation } = await fenceGuarantee(store, container);
  if (guarantee !== 'fenced' && !opts.force) {
    throw new FenceError('no-conditional-create', `${opts.region}/${container}: ${explanation}; confirm with --force to go on`);
  }
  const previousOwner = await Ownership.read(store, container);
  if (opts.mode === 'takeover' && previousOwner && !opts.forceOwner && Ownership.isLive(previousOwner, 120_000) && !isFenceOwner(previousOwner)) {
    throw new FenceError('busy', `${opts.region}/${container} is in use read-write by ${previousOwner.host} (pid ${previousOwner.pid}, epoch ${previousOwner.epoch}); it cannot be taken over without forcing`);
  }
  const headBefore = await readJournalHead(store, container, { epochs: true });
  const dataEpoch = await maxDataEpoch(store, container);
  const epoch = Math.max(previousOwner?.epoch ?? 0, headBefore.maxEpoch, dataEpoch, opts.minEpoch ?? 0) + 1;
  const session = `fence-${randomUUID()}`;

  const owner: OwnerRecord = opts.mode === 'retire' ? fenceOwnerRecord(epoch, opts.movedTo ?? null, opts.reason, session) : heldOwnerRecord(epoch, session);
  await writeOwner(store, container, owner);

  // Writers that check the owner record (lease renewal, check-then-put, the replicator before each segment)
  // see it from now on; give one that checked just before a moment to finish the put it had started.
  const settleMs = opts.settleMs ?? 1000;
  if (settleMs > 0) await sleep(settleMs);

  // The fence segment, at the first free number.
  let seq = headBefore.seq + 1;
  let time = Date.now();
  for (let attempt = 0; ; attempt++) {
    if (attempt >= MAX_FENCE_ATTEMPTS) throw new FenceError('race', `${opts.region}/${container}: could not commit a fence segment after ${MAX_FENCE_ATTEMPTS} attempts (a writer keeps committing)`);
    // Still ours? A takeover since (a newer epoch) must not be fenced by this older one.
    const current = await Ownership.read(store, container);
    if (!current || current.session !== session) {
      throw new FenceError('race', `${opts.region}/${container}: another session took the volume while it was being fenced${current ? ` (${current.host}, epoch ${current.epoch})` : ''}`);
    }
    time = Date.now();
    const bytes = encodeSegment({ v: 1, seq, epoch, walId: session, walSeq: 0, time, objects: [] }, []);
    try {
      if (guarantee === 'fenced') {
        await store.put(container, segmentKey(seq), bytes, { contentType: 'application/octet-stream', ifNoneMatch: '*' });
      } else {
        let exists = true;
        try {
          await store.head(container, segmentKey(seq));
        } catch (err) {
          if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
          exists = false;
        }
        if (exists) {
          seq++;
          continue;
        }
        await store.put(container, segmentKey(seq), bytes, { contentType: 'application/octet-stream' });
      }
      // A concurrent put of the same number may have succeeded too and replace ours (Swift keeps the later
      // timestamp): read it back once such a put would have landed; if ours did not stay, the next number.
      if (settleMs > 0) await sleep(settleMs);
      const stored = await fetchSegment(store, container, seq).catch(() => null);
      if (!stored || !stored.bytes.equals(bytes)) {
        log.warn({ region: opts.region, container, seq }, 'fence: another writer\'s segment replaced the fence segment; fencing at the next number');
        seq++;
        continue;
      }
      break;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.PreconditionFailed)) {
        // A writer committed this number first (it is still running): the next one.
        seq++;
        continue;
      }
      throw err;
    }
  }
  const back = await Ownership.read(store, container);
  if (!back || back.session !== session) {
    throw new FenceError('race', `${opts.region}/${container}: another session took the volume while it was being fenced${back ? ` (${back.host}, epoch ${back.epoch})` : ''}`);
  }
  await store.setLabels(container, { [UUID_LABEL]: format.uuid, [ROLE_LABEL]: opts.mode === 'retire' ? 'retired' : 'home' }).catch((err: unknown) => {
    log.warn({ err: (err as Error).message }, 'fence: could not set the container labels');
  });
  log.info({ region: opts.region, container, epoch, seq, mode: opts.mode, guarantee }, opts.mode === 'retire' ? 'old home fenced' : 'volume taken over');
  return { place: { region: opts.region, container }, epoch, seq, time, guarantee, headBefore, previousOwner, session };
}

/** Ends a takeover: the owner record is released (same epoch), so that the next mount takes the volume freely. */
export async function releaseTakeover(store: ObjectStore, container: string, result: FenceResult): Promise<void> {
  const current = await Ownership.read(store, container);
  if (!current || current.session !== result.session) {
    throw new FenceError('race', `${result.place.region}/${container}: another session took the volume before the takeover finished`);
  }
  await writeOwner(store, container, releasedOwnerRecord(result.epoch, result.session));
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
