/**
 * Garbage collection of a volume's container, run by the owner after a checkpoint is durable (DESIGN.md
 * "Garbage"). With checkpoint `c` new and `p` the checkpoint before it:
 *  - journal segments ≤ p and checkpoints < p are deleted (p and the segments after it are kept so that a
 *    damaged checkpoint c can be replaced by p + segments);
 *  - a data object is deleted when checkpoint c does not reference it and it cannot be referenced by anything
 *    newer: objects of a newer epoch (another owner) are never touched, and objects of the current epoch are only
 *    deleted below `keepFrom`, the first object number that was not yet committed at segment c (everything from
 *    there on may belong to a later segment or to an upload in flight).
 * Objects of older epochs that c does not reference were left by crashed or fenced writers.
 *
 * Every delete starts only while the owner's lease allows a write (`beforeDelete`, ownership.ts): a session that
 * lost the volume stops deleting within the settle delay, before a new owner commits anything.
 */

import type { ObjectStore } from '../store/object-store.js';
import { listAll } from '../store/object-store.js';
import { CHECKPOINT_PREFIX, DATA_PREFIX, JOURNAL_PREFIX, checkpointKey, parseObjectId, parseSeqKey, segmentKey } from './layout.js';
import type { Logger } from './log.js';

export interface GcPlanInput {
  /** The checkpoint just written. */
  checkpointSeq: number;
  /** Data objects checkpoint `checkpointSeq` references. */
  referenced: ReadonlySet<string>;
  /** Our owner epoch. */
  epoch: number;
  /** Objects of our epoch numbered from here on are kept. */
  keepFrom: number;
}

export interface GcResult {
  segments: number;
  checkpoints: number;
  objects: number;
  /** Bytes of the data objects deleted. */
  objectBytes: number;
}

/** Whether data object `id` is garbage under `input` (pure; unit-tested). */
export function isGarbageObject(id: string, input: GcPlanInput): boolean {
  if (input.referenced.has(id)) return false;
  const parsed = parseObjectId(id);
  if (!parsed) return false; // not ours to judge
  if (parsed.epoch > input.epoch) return false;
  if (parsed.epoch === input.epoch && parsed.n >= input.keepFrom) return false;
  return true;
}

export interface GcOptions extends GcPlanInput {
  store: ObjectStore;
  container: string;
  /** Awaited before each delete: resolves while our lease allows writes, throws once we no longer own the volume. */
  beforeDelete: () => Promise<void>;
  /** Called for each data object deleted (to drop it from the local cache). */
  onObjectDeleted?: (id: string) => void;
  parallel?: number;
  logger?: Logger;
}

async function deleteAll(store: ObjectStore, container: string, keys: string[], parallel: number, beforeDelete: () => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, keys.length) }, async () => {
      while (next < keys.length) {
        const key = keys[next++]!;
        await beforeDelete();
        await store.delete(container, key);
      }
    }),
  );
}

export async function collectGarbage(opts: GcOptions): Promise<GcResult> {
  const { store, container } = opts;
  const parallel = opts.parallel ?? 16;
  const result: GcResult = { segments: 0, checkpoints: 0, objects: 0, objectBytes: 0 };

  const checkpoints: number[] = [];
  for await (const e of listAll(store, container, { prefix: CHECKPOINT_PREFIX })) {
    if ('key' in e) {
      const s = parseSeqKey(e.key, CHECKPOINT_PREFIX);
      if (s !== null && s <= opts.checkpointSeq) checkpoints.push(s);
    }
  }
  checkpoints.sort((a, b) => a - b);
  // The checkpoint before ours (kept, with its segments).
  const older = checkpoints.filter((s) => s < opts.checkpointSeq);
  const previous = older.length ? older[older.length - 1]! : null;

  const segmentKeys: string[] = [];
  if (previous !== null) {
    for await (const e of listAll(store, container, { prefix: JOURNAL_PREFIX })) {
      if (!('key' in e)) continue;
      const s = parseSeqKey(e.key, JOURNAL_PREFIX);
      if (s === null) continue;
      if (s > previous) break;
      segmentKeys.push(segmentKey(s));
    }
  }
  const checkpointKeys = previous === null ? [] : older.filter((s) => s < previous).map(checkpointKey);

  const garbage: { key: string; id: string; size: number }[] = [];
  for await (const e of listAll(store, container, { prefix: DATA_PREFIX })) {
    if (!('key' in e)) continue;
    const id = e.key.slice(DATA_PREFIX.length);
    if (isGarbageObject(id, opts)) garbage.push({ key: e.key, id, size: e.size });
  }

  if (segmentKeys.length + checkpointKeys.length + garbage.length === 0) return result;
  // Data first: if we stop half way, the journal still describes everything that remains referenced.
  await deleteAll(store, container, garbage.map((g) => g.key), parallel, opts.beforeDelete);
  for (const g of garbage) opts.onObjectDeleted?.(g.id);
  result.objects = garbage.length;
  result.objectBytes = garbage.reduce((n, g) => n + g.size, 0);
  await deleteAll(store, container, segmentKeys, parallel, opts.beforeDelete);
  result.segments = segmentKeys.length;
  await deleteAll(store, container, checkpointKeys, parallel, opts.beforeDelete);
  result.checkpoints = checkpointKeys.length;
  opts.logger?.info({ container, ...result, checkpoint: opts.checkpointSeq }, 'garbage collected');
  return result;
}
