/**
 * The layout of a volume in its container (DESIGN.md "Layout"): object names, the format record, and reading
 * the newest checkpoint plus the journal tail that follows it (what mounting a volume starts from).
 */

import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { LABELS_OBJECT, PROBE_PREFIX } from '../store/object-store.js';
import {
  decodeCheckpoint,
  decodeSegment,
  RecordDecodeError,
  type CheckpointHeader,
  type DecodedSegment,
} from './records.js';
import type { Snapshot } from './metadata.js';

export const PREFIX = '.swiftfs/';
export const FORMAT_KEY = '.swiftfs/format';
export const OWNER_KEY = '.swiftfs/owner';
/** The owner's liveness heartbeat (renewal time, clean release): written by the owner only, never the owner record. */
export const HEARTBEAT_KEY = '.swiftfs/owner-heartbeat';
export const JOURNAL_PREFIX = '.swiftfs/journal/';
export const CHECKPOINT_PREFIX = '.swiftfs/checkpoint/';
export const DATA_PREFIX = '.swiftfs/data/';

/** The format version this code writes and the newest it can open. */
export const FORMAT_VERSION = 1;
/** Container label holding the volume's UUID (lets a volume be found by UUID). */
export const UUID_LABEL = 'swiftfs-uuid';

export const DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;
export const MIN_BLOCK_SIZE = 64 * 1024;
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024;

export function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

export function segmentKey(seq: number): string {
  return JOURNAL_PREFIX + hex(seq, 16);
}
export function checkpointKey(seq: number): string {
  return CHECKPOINT_PREFIX + hex(seq, 16);
}
/** A data object id is `<epoch:08x>/<n:010x>`; its key is under DATA_PREFIX. */
export function objectId(epoch: number, n: number): string {
  return `${hex(epoch, 8)}/${hex(n, 10)}`;
}
export function dataKey(id: string): string {
  return DATA_PREFIX + id;
}
export function parseObjectId(id: string): { epoch: number; n: number } | null {
  const m = /^([0-9a-f]{8})\/([0-9a-f]{10})$/.exec(id);
  if (!m) return null;
  return { epoch: parseInt(m[1]!, 16), n: parseInt(m[2]!, 16) };
}
/** The seq of a journal or checkpoint key, or null for a foreign name. */
export function parseSeqKey(key: string, prefix: string): number | null {
  if (!key.startsWith(prefix)) return null;
  const rest = key.slice(prefix.length);
  if (!/^[0-9a-f]{16}$/.test(rest)) return null;
  return parseInt(rest, 16);
}

// ---------------------------------------------------------------------------------------------------------------
// Errors of opening/formatting a container
// ---------------------------------------------------------------------------------------------------------------

export type VolumeFormatProblem = 'not-formatted' | 'not-swiftfs' | 'newer-format' | 'already-formatted' | 'damaged' | 'no-container';

/** A container that cannot be opened or formatted as asked. Not an FsError: it happens before any mount. */
export class VolumeFormatError extends Error {
  readonly problem: VolumeFormatProblem;
  readonly container: string;
  constructor(problem: VolumeFormatProblem, container: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VolumeFormatError';
    this.problem = problem;
    this.container = container;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The format record
// ---------------------------------------------------------------------------------------------------------------

export interface FormatRecord {
  format: number;
  uuid: string;
  blockSize: number;
  createdAt: number;
  createdBy: string;
  label?: string;
}

/** True when the container holds something other than the labels marker. */
async function containerHasObjects(store: ObjectStore, container: string): Promise<boolean> {
  // The labels marker and the stores' capability probes (deleted right after, but a listing can lag) are ours.
  const page = await store.list(container, { limit: 10 });
  return page.objects.some((o) => o.key !== LABELS_OBJECT && !o.key.startsWith(PROBE_PREFIX)) || page.prefixes.some((p) => p !== PROBE_PREFIX);
}

/**
 * Writes the format record of a new volume. Refuses a container that already holds a volume or anything else.
 * Create-only where the store supports it (two concurrent formats cannot both win).
 */
export async function writeFormat(
  store: ObjectStore,
  container: string,
  record: FormatRecord,
  conditionalCreate: boolean,
  /** Runs after the checks and before the format record is written (writes the initial checkpoint). */
  beforeCommit?: () => Promise<void>,
): Promise<void> {
  let existing: Buffer | null = null;
  try {
    existing = (await store.get(container, FORMAT_KEY)).body;
  } catch (err) {
    if (!isStoreError(err, StoreErrorCode.NotFound)) throw err; // NotFound: not formatted (or no container: the put says)
  }
  if (existing) {
    let uuid = '?';
    try {
      uuid = parseFormat(existing, container).uuid;
    } catch (err) {
      if (!(err instanceof VolumeFormatError) || err.problem !== 'newer-format') {
        throw new VolumeFormatError('not-swiftfs', container, `container ${container} has a ${FORMAT_KEY} object that is not a swiftfs format record; refusing to format it`);
      }
    }
    throw new VolumeFormatError('already-formatted', container, `container ${container} already holds a swiftfs volume (uuid ${uuid}); refusing to format it again`);
  }
  if (await containerHasObjects(store, container)) {
    throw new VolumeFormatError('not-swiftfs', container, `container ${container} is not empty; refusing to format it as a swiftfs volume`);
  }
  await beforeCommit?.();
  const body = Buffer.from(JSON.stringify(record), 'utf8');
  try {
    await store.put(container, FORMAT_KEY, body, { contentType: 'application/json', ...(conditionalCreate ? { ifNoneMatch: '*' as const } : {}) });
  } catch (err) {
    if (isStoreError(err, StoreErrorCode.PreconditionFailed)) {
      throw new VolumeFormatError('already-formatted', container, `container ${container} was formatted by someone else at the same time`);
    }
    throw err;
  }
}

function parseFormat(body: Buffer, container: string): FormatRecord {
  let rec: FormatRecord;
  try {
    rec = JSON.parse(body.toString('utf8')) as FormatRecord;
  } catch {
    throw new VolumeFormatError('not-swiftfs', container, `container ${container}: ${FORMAT_KEY} is not valid JSON; not a swiftfs volume`);
  }
  if (typeof rec !== 'object' || rec === null || typeof rec.format !== 'number' || typeof rec.uuid !== 'string' || typeof rec.blockSize !== 'number') {
    throw new VolumeFormatError('not-swiftfs', container, `container ${container}: ${FORMAT_KEY} is not a swiftfs format record`);
  }
  if (rec.format > FORMAT_VERSION) {
    throw new VolumeFormatError('newer-format', container, `container ${container} holds a swiftfs volume of format ${rec.format}; this swiftfs reads format ${FORMAT_VERSION} at most (upgrade swiftfs)`);
  }
  if (rec.blockSize < MIN_BLOCK_SIZE || rec.blockSize > MAX_BLOCK_SIZE) {
    throw new VolumeFormatError('damaged', container, `container ${container}: format record has an invalid block size ${rec.blockSize}`);
  }
  return rec;
}

/** Reads and checks the format record, with clear errors for an empty, foreign or newer container. */
export async function readFormat(store: ObjectStore, container: string): Promise<FormatRecord> {
  let body: Buffer;
  try {
    body = (await store.get(container, FORMAT_KEY)).body;
  } catch (err) {
    if (!isStoreError(err, StoreErrorCode.NotFound)) throw err;
    let hasObjects: boolean;
    try {
      hasObjects = await containerHasObjects(store, container);
    } catch (listErr) {
      if (isStoreError(listErr, StoreErrorCode.NotFound)) {
        throw new VolumeFormatError('no-container', container, `container ${container} does not exist`);
      }
      throw listErr;
    }
    if (hasObjects) throw new VolumeFormatError('not-swiftfs', container, `container ${container} is not a swiftfs volume (it holds other objects and no ${FORMAT_KEY})`);
    throw new VolumeFormatError('not-formatted', container, `container ${container} is empty: not formatted as a swiftfs volume (run format first)`);
  }
  return parseFormat(body, container);
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint + journal tail
// ---------------------------------------------------------------------------------------------------------------

export interface LoadedSegment {
  seq: number;
  /** The encoded segment as stored (kept to build the next checkpoint without re-downloading). */
  bytes: Buffer;
  decoded: DecodedSegment;
}

export interface LoadedVolume {
  checkpoint: { header: CheckpointHeader; snapshot: Snapshot; bytes: Buffer };
  /** Segments after the checkpoint, consecutive from checkpoint.seq + 1. */
  segments: LoadedSegment[];
  /** Checkpoint seqs found in the listing, ascending. */
  checkpointSeqs: number[];
  /** Checkpoints that were listed but could not be read (damaged), newest first; for logging. */
  skippedCheckpoints: { seq: number; error: string }[];
}

async function listSeqs(store: ObjectStore, container: string, prefix: string, after?: number): Promise<number[]> {
  const seqs: number[] = [];
  let cursor = after === undefined ? undefined : prefix + hex(after, 16);
  for (;;) {
    const page = await store.list(container, { prefix, limit: 1000, ...(cursor === undefined ? {} : { after: cursor }) });
    for (const o of page.objects) {
      const s = parseSeqKey(o.key, prefix);
      if (s !== null) seqs.push(s);
    }
    if (page.next === undefined) break;
    cursor = page.next;
  }
  return seqs.sort((a, b) => a - b);
}

export async function listCheckpointSeqs(store: ObjectStore, container: string): Promise<number[]> {
  return listSeqs(store, container, CHECKPOINT_PREFIX);
}
export async function listSegmentSeqs(store: ObjectStore, container: string, after?: number): Promise<number[]> {
  return listSeqs(store, container, JOURNAL_PREFIX, after);
}

/** Gets one segment; null when it does not exist. Throws VolumeFormatError('damaged') when it does not decode. */
export async function fetchSegment(store: ObjectStore, container: string, seq: number): Promise<LoadedSegment | null> {
  let bytes: Buffer;
  try {
    bytes = (await store.get(container, segmentKey(seq))).body;
  } catch (err) {
    if (isStoreError(err, StoreErrorCode.NotFound)) return null;
    throw err;
  }
  try {
    const decoded = decodeSegment(bytes);
    if (decoded.header.seq !== seq) throw new RecordDecodeError(`segment ${seq} says it is segment ${decoded.header.seq}`);
    return { seq, bytes, decoded };
  } catch (err) {
    throw new VolumeFormatError('damaged', container, `container ${container}: journal segment ${seq} is damaged (${(err as Error).message})`, { cause: err });
  }
}

/**
 * Reads the journal segments after `after`, consecutive, until the first missing number. The listing gives the
 * ones it knows (fetched in parallel); since listings can lag behind writes, the numbers after the last listed
 * one are probed until one is missing.
 */
export async function readJournalTail(store: ObjectStore, container: string, after: number, parallel = 8): Promise<LoadedSegment[]> {
  const listed = await listSegmentSeqs(store, container, after);
  const wanted: number[] = [];
  for (const s of listed) {
    if (s !== after + 1 + wanted.length) break;
    wanted.push(s);
  }
  const out: LoadedSegment[] = new Array<LoadedSegment>(wanted.length);
  let next = 0;
  let missingAt = Infinity;
  const workers = Array.from({ length: Math.min(parallel, wanted.length) }, async () => {
    while (next < wanted.length) {
      const i = next++;
      const seg = await fetchSegment(store, container, wanted[i]!);
      if (seg) out[i] = seg;
      else missingAt = Math.min(missingAt, i);
    }
  });
  await Promise.all(workers);
  const segments = out.slice(0, Math.min(missingAt, wanted.length));
  if (missingAt !== Infinity) return segments; // listed but gone: stop there (the next opener will see the same)
  // Probe past the listing.
  for (let seq = after + 1 + segments.length; ; seq++) {
    const seg = await fetchSegment(store, container, seq);
    if (!seg) break;
    segments.push(seg);
  }
  return segments;
}

/**
 * Finds the newest readable checkpoint and the journal tail after it. A damaged newest checkpoint is skipped in
 * favour of the previous one (whose segments are kept until the next checkpoint, see gc.ts).
 */
export async function loadVolume(store: ObjectStore, container: string): Promise<LoadedVolume> {
  const checkpointSeqs = await listCheckpointSeqs(store, container);
  const skipped: { seq: number; error: string }[] = [];
  // The listing may lag: also probe for checkpoints just after the newest listed one? Not needed: segments of a
  // checkpoint are only deleted once the next checkpoint exists, so an older checkpoint + tail is equivalent.
  for (let i = checkpointSeqs.length - 1; i >= 0; i--) {
    const seq = checkpointSeqs[i]!;
    let bytes: Buffer;
    try {
      bytes = (await store.get(container, checkpointKey(seq))).body;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.NotFound)) {
        skipped.push({ seq, error: 'listed but not found' });
        continue;
      }
      throw err;
    }
    let decoded: ReturnType<typeof decodeCheckpoint>;
    try {
      decoded = decodeCheckpoint(bytes);
      if (decoded.header.seq !== seq) throw new RecordDecodeError(`checkpoint ${seq} says it is ${decoded.header.seq}`);
    } catch (err) {
      skipped.push({ seq, error: (err as Error).message });
      continue;
    }
    const segments = await readJournalTail(store, container, seq);
    return { checkpoint: { ...decoded, bytes }, segments, checkpointSeqs, skippedCheckpoints: skipped };
  }
  throw new VolumeFormatError(
    'damaged',
    container,
    `container ${container}: no readable checkpoint${skipped.length ? ` (${skipped.map((s) => `${s.seq}: ${s.error}`).join('; ')})` : ''}`,
  );
}
