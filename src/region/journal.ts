/**
 * Reading where a volume's journal stands in one container, without mounting it: the newest readable
 * checkpoint, the last consecutive segment after it (its commit time and epoch), and the highest epoch anything
 * in the container was written with. Used to compare a replica with its source (lag, "store" replication),
 * to pick the first free journal number for a fence segment, and to choose a fence epoch above every epoch
 * that ever wrote there.
 */

import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import {
  CHECKPOINT_PREFIX,
  DATA_PREFIX,
  checkpointKey,
  fetchSegment,
  listCheckpointSeqs,
  listSegmentSeqs,
  readJournalTail,
  VolumeFormatError,
  type LoadedSegment,
} from '../core/layout.js';
import { decodeCheckpointHeader, type CheckpointHeader } from '../core/records.js';

export interface JournalHeadInfo {
  /** Newest readable checkpoint (-1 when the container has none: not a volume, or not yet seeded). */
  checkpointSeq: number;
  checkpointHeader: CheckpointHeader | null;
  /** Last segment of the consecutive run after the checkpoint (= checkpointSeq when there is none). */
  seq: number;
  /** Commit time (ms) of `seq`: its segment header's time, or the checkpoint's. */
  time: number | null;
  /** Owner epoch that wrote `seq`. */
  epoch: number;
  /** Highest epoch in the checkpoint header and every segment after it (only with `epochs: true`; else a floor). */
  maxEpoch: number;
  /** The segments after the checkpoint when they were read (with `epochs: true`). */
  segments?: LoadedSegment[];
}

/** The newest checkpoint that can be read, or null when there is none. */
export async function newestCheckpoint(store: ObjectStore, container: string): Promise<{ seq: number; header: CheckpointHeader; bytes: Buffer } | null> {
  const seqs = await listCheckpointSeqs(store, container);
  for (let i = seqs.length - 1; i >= 0; i--) {
    const seq = seqs[i]!;
    try {
      const bytes = (await store.get(container, checkpointKey(seq))).body;
      const header = decodeCheckpointHeader(bytes);
      if (header.seq !== seq) continue;
      return { seq, header, bytes };
    } catch (err) {
      if (isStoreError(err)) {
        if (err.code === StoreErrorCode.NotFound) continue;
        throw err;
      }
      continue; // damaged: the one before
    }
  }
  return null;
}

/**
 * Where the journal stands. With `epochs`, every segment after the checkpoint is read (maxEpoch exact, and the
 * segments are returned); without, only the listing plus the last segment (cheap enough to poll).
 */
export async function readJournalHead(store: ObjectStore, container: string, opts: { epochs?: boolean } = {}): Promise<JournalHeadInfo> {
  const ck = await newestCheckpoint(store, container);
  if (!ck) return { checkpointSeq: -1, checkpointHeader: null, seq: -1, time: null, epoch: 0, maxEpoch: 0 };
  const base: JournalHeadInfo = { checkpointSeq: ck.seq, checkpointHeader: ck.header, seq: ck.seq, time: ck.header.time, epoch: ck.header.epoch, maxEpoch: ck.header.maxEpoch };
  if (opts.epochs) {
    const segments = await readJournalTail(store, container, ck.seq);
    let out = { ...base, segments };
    for (const s of segments) {
      const h = s.decoded.header;
      out = { ...out, seq: h.seq, time: h.time, epoch: h.epoch, maxEpoch: Math.max(out.maxEpoch, h.epoch) };
    }
    return out;
  }
  const listed = await listSegmentSeqs(store, container, ck.seq);
  let last = ck.seq;
  for (const s of listed) {
    if (s !== last + 1) break;
    last = s;
  }
  // The listing may lag behind writes: probe past it. Then read the last one for its time and epoch.
  let lastSeg: LoadedSegment | null = null;
  for (;;) {
    const seg = await fetchSegment(store, container, last + 1);
    if (!seg) break;
    lastSeg = seg;
    last++;
  }
  if (!lastSeg && last > ck.seq) {
    lastSeg = await fetchSegment(store, container, last);
    // Listed but gone (collected under us after a newer checkpoint): report the checkpoint's view.
    if (!lastSeg) return base;
  }
  if (!lastSeg) return base;
  const h = lastSeg.decoded.header;
  return { ...base, seq: h.seq, time: h.time, epoch: h.epoch, maxEpoch: Math.max(base.maxEpoch, h.epoch) };
}

/** Highest epoch among the data objects of a container (their ids begin with the epoch), 0 when none. */
export async function maxDataEpoch(store: ObjectStore, container: string): Promise<number> {
  let max = 0;
  let after: string | undefined;
  for (;;) {
    const page = await store.list(container, { prefix: DATA_PREFIX, delimiter: '/', limit: 1000, ...(after === undefined ? {} : { after }) });
    for (const p of page.prefixes) {
      const m = /([0-9a-f]{8})\/$/.exec(p);
      if (m) max = Math.max(max, parseInt(m[1]!, 16));
    }
    if (page.next === undefined) break;
    after = page.next;
  }
  return max;
}

/** Whether a container holds any checkpoint (a volume, or a replica that finished its first seed). */
export async function hasCheckpoint(store: ObjectStore, container: string): Promise<boolean> {
  try {
    const page = await store.list(container, { prefix: CHECKPOINT_PREFIX, limit: 1 });
    return page.objects.length > 0;
  } catch (err) {
    if (isStoreError(err, StoreErrorCode.NotFound)) return false;
    throw err;
  }
}

export { VolumeFormatError };
