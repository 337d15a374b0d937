/**
 * The small JSON records the region layer keeps in a volume's containers (see ./README.md):
 *
 *   .swiftfs/regions          where the volume lives: home region and container, replica regions, past moves
 *                             (the same content in every container of the volume; written by replicate/relocate)
 *   .swiftfs/replica-status   in a replica: how far the replicator got and what it last saw of the source
 *                             (what a failover reads to say what was lost)
 *   .swiftfs/replicator       in a replica: the lease of the one replicator allowed to write it
 *   .swiftfs/pending-fences   in a new home: fences of old homes that could not be reached at takeover, applied
 *                             the moment they answer again
 *
 * plus the fence form of the core's owner record (`.swiftfs/owner`, ownership.ts): an owner that never expires,
 * left in an old home so that nobody opens it read-write again without forcing.
 *
 * Every reader treats a missing or malformed record as absent (never as an error that blocks a failover).
 */

import * as os from 'node:os';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { OWNER_KEY, PREFIX } from '../core/layout.js';
import { machineId, type OwnerRecord } from '../core/ownership.js';

export const REGIONS_KEY = `${PREFIX}regions`;
export const REPLICA_STATUS_KEY = `${PREFIX}replica-status`;
export const REPLICATOR_KEY = `${PREFIX}replicator`;
export const PENDING_FENCES_KEY = `${PREFIX}pending-fences`;

/** Container label naming the volume's home region (informative; the regions record is authoritative). */
export const HOME_LABEL = 'swiftfs-home-region';
/** Container label: "home", "replica" or "retired" (an old home that was fenced by a relocation). */
export const ROLE_LABEL = 'swiftfs-region-role';

export type ReplicationMode = 'swiftfs' | 'store';

export interface VolumePlace {
  /** Region name as the operator's configuration names it (a store name, a store's region, STORE@REGION). */
  region: string;
  container: string;
}

export interface ReplicaPlace extends VolumePlace {
  /** swiftfs: swiftfs ships the journal; store: the store replicates by itself (container sync, S3 replication). */
  mode: ReplicationMode;
}

export interface RegionMove {
  from: VolumePlace;
  to: VolumePlace;
  kind: 'planned' | 'failover';
  at: number;
  /** Journal seq of the fence segment the new home starts from. */
  seq: number;
  /** Owner epoch of the takeover. */
  epoch: number;
  /** Failover only: the newest source seq the replicator had seen, and the seq taken over (what may be lost). */
  lost?: { sourceSeq: number; sourceTime: number | null; takenSeq: number; takenTime: number | null } | undefined;
}

export interface RegionsRecord {
  v: 1;
  uuid: string;
  home: VolumePlace;
  replicas: ReplicaPlace[];
  moves: RegionMove[];
  updatedAt: number;
}

export interface ReplicaStatusRecord {
  v: 1;
  uuid: string;
  mode: ReplicationMode;
  source: VolumePlace;
  target: VolumePlace;
  /** Newest source segment the replicator saw committed, its commit time, and when it last looked. */
  sourceSeq: number;
  sourceTime: number | null;
  sourceCheckedAt: number;
  /** Newest segment (or checkpoint) complete in the target, and its commit time in the source. */
  replicatedSeq: number;
  replicatedTime: number | null;
  checkpointSeq: number;
  lagSeconds: number;
  lagBytes: number;
  /** Largest lag (seconds) seen in the minute before this record was written: the loss window to expect. */
  recentMaxLagSeconds?: number;
  updatedAt: number;
  host: string;
}

export interface ReplicatorLease {
  v: 1;
  session: string;
  host: string;
  machine: string;
  pid: number;
  source: VolumePlace;
  since: number;
  renewedAt: number;
  leaseMs: number;
  released?: boolean;
}

export interface PendingFence {
  /** The old home to fence. */
  place: VolumePlace;
  uuid: string;
  /** Fence with an epoch above this (the takeover epoch). */
  minEpoch: number;
  /** Where the volume went (recorded in the old home's fence). */
  movedTo: VolumePlace;
  createdAt: number;
  attempts: number;
  lastError?: string;
}

export interface PendingFencesRecord {
  v: 1;
  uuid: string;
  fences: PendingFence[];
  updatedAt: number;
}

/** What a fence owner record carries on top of the core's OwnerRecord (extra JSON fields the core ignores). */
export interface FenceOwnerRecord extends OwnerRecord {
  fence: { movedTo: VolumePlace | null; reason: string; at: number };
}

/** A fence owner never expires by lease: 100 years (a valid Date, so messages that print it still work). */
export const FENCE_RENEWED_AHEAD_MS = 100 * 365 * 24 * 3600 * 1000;
export const FENCE_MACHINE = 'swiftfs-fence';

export async function readJson<T>(store: ObjectStore, container: string, key: string): Promise<T | null> {
  try {
    const { body } = await store.get(container, key);
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as T) : null;
  } catch (err) {
    if (isStoreError(err, StoreErrorCode.NotFound)) return null;
    if (err instanceof SyntaxError) return null;
    throw err;
  }
}

export async function writeJson(store: ObjectStore, container: string, key: string, value: unknown): Promise<void> {
  await store.put(container, key, Buffer.from(JSON.stringify(value), 'utf8'), { contentType: 'application/json' });
}

export async function readRegions(store: ObjectStore, container: string): Promise<RegionsRecord | null> {
  const rec = await readJson<RegionsRecord>(store, container, REGIONS_KEY);
  if (!rec || rec.v !== 1 || typeof rec.uuid !== 'string' || typeof rec.home?.region !== 'string') return null;
  rec.replicas = Array.isArray(rec.replicas) ? rec.replicas : [];
  rec.moves = Array.isArray(rec.moves) ? rec.moves : [];
  return rec;
}

export async function writeRegions(store: ObjectStore, container: string, rec: RegionsRecord): Promise<void> {
  await writeJson(store, container, REGIONS_KEY, { ...rec, updatedAt: Date.now() });
}

export async function readReplicaStatus(store: ObjectStore, container: string): Promise<ReplicaStatusRecord | null> {
  const rec = await readJson<ReplicaStatusRecord>(store, container, REPLICA_STATUS_KEY);
  if (!rec || rec.v !== 1 || typeof rec.replicatedSeq !== 'number') return null;
  return rec;
}

export async function readPendingFences(store: ObjectStore, container: string): Promise<PendingFencesRecord | null> {
  const rec = await readJson<PendingFencesRecord>(store, container, PENDING_FENCES_KEY);
  if (!rec || rec.v !== 1 || !Array.isArray(rec.fences)) return null;
  return rec;
}

export async function writePendingFences(store: ObjectStore, container: string, rec: PendingFencesRecord): Promise<void> {
  if (rec.fences.length === 0) {
    await store.delete(container, PENDING_FENCES_KEY);
    return;
  }
  await writeJson(store, container, PENDING_FENCES_KEY, { ...rec, updatedAt: Date.now() });
}

/** True when an owner record is a relocation fence (an old home), not a running session. */
export function isFenceOwner(rec: OwnerRecord | null): rec is FenceOwnerRecord {
  return rec !== null && typeof (rec as Partial<FenceOwnerRecord>).fence === 'object' && (rec as Partial<FenceOwnerRecord>).fence !== null;
}

export function fenceOwnerRecord(epoch: number, movedTo: VolumePlace | null, reason: string, session: string): FenceOwnerRecord {
  const now = Date.now();
  return {
    epoch,
    host: movedTo ? `(relocated to region ${movedTo.region}, container ${movedTo.container})` : '(fenced by swiftfs relocate)',
    machine: FENCE_MACHINE,
    pid: 0,
    session,
    since: now,
    renewedAt: now + FENCE_RENEWED_AHEAD_MS,
    mode: 'rw',
    fence: { movedTo, reason, at: now },
  };
}

/** The owner record a takeover leaves in the new home: released (the next mount takes it without forcing). */
export function releasedOwnerRecord(epoch: number, session: string): OwnerRecord {
  const now = Date.now();
  return { epoch, host: os.hostname(), machine: machineId(), pid: process.pid, session, since: now, renewedAt: now, mode: 'rw', released: true };
}

/** The owner record a takeover holds while the relocation finishes (a live session of this process). */
export function heldOwnerRecord(epoch: number, session: string): OwnerRecord {
  const now = Date.now();
  return { epoch, host: `${os.hostname()} (swiftfs relocate)`, machine: machineId(), pid: process.pid, session, since: now, renewedAt: now, mode: 'rw' };
}

export async function writeOwner(store: ObjectStore, container: string, rec: OwnerRecord): Promise<void> {
  await writeJson(store, container, OWNER_KEY, rec);
}

export function placeText(p: VolumePlace): string {
  return `${p.region}/${p.container}`;
}
