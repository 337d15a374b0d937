/**
 * Keeping a volume's `.swiftfs/regions` record: creating it for a volume that has none (its home is where it
 * is), adding or removing a replica, and recording a move. The record is written to the home first, then to
 * every replica that answers (each container of the volume carries the same record, so that it can be read
 * wherever the volume is found); a replica that does not answer is updated by the next write.
 */

import type { ObjectStore } from '../store/object-store.js';
import { readRegions, writeRegions, type RegionMove, type RegionsRecord, type ReplicaPlace, type ReplicationMode, type VolumePlace } from './records.js';

/** The record of the volume at `home`, or a fresh one naming `home` as its home. */
export async function regionsOrDefault(store: ObjectStore, home: VolumePlace, uuid: string): Promise<RegionsRecord> {
  const rec = await readRegions(store, home.container);
  if (rec && rec.uuid === uuid) return rec;
  return { v: 1, uuid, home, replicas: [], moves: [], updatedAt: Date.now() };
}

/** Adds (or updates the mode of) a replica in the home's record; returns the record written. */
export async function addReplica(homeStore: ObjectStore, home: VolumePlace, uuid: string, replica: VolumePlace, mode: ReplicationMode): Promise<RegionsRecord> {
  const rec = await regionsOrDefault(homeStore, home, uuid);
  const others = rec.replicas.filter((r) => !(r.region === replica.region && r.container === replica.container));
  const next: RegionsRecord = { ...rec, home: rec.home.region === home.region ? rec.home : home, replicas: [...others, { ...replica, mode }] };
  await writeRegions(homeStore, home.container, next);
  return next;
}

export async function removeReplica(homeStore: ObjectStore, home: VolumePlace, uuid: string, region: string): Promise<RegionsRecord> {
  const rec = await regionsOrDefault(homeStore, home, uuid);
  const next: RegionsRecord = { ...rec, replicas: rec.replicas.filter((r) => r.region !== region) };
  await writeRegions(homeStore, home.container, next);
  return next;
}

/**
 * The record after a move to `to`: `to` is the home, it is no longer among the replicas, the old home is not a
 * replica (it is fenced; `replicate --reset` makes it one again), the move is appended (the last 50 kept).
 */
export function recordAfterMove(rec: RegionsRecord, to: VolumePlace, move: RegionMove): RegionsRecord {
  const replicas: ReplicaPlace[] = rec.replicas.filter((r) => !(r.region === to.region && r.container === to.container) && !(r.region === rec.home.region && r.container === rec.home.container));
  return { ...rec, home: to, replicas, moves: [...rec.moves, move].slice(-50), updatedAt: Date.now() };
}

/** Writes a record to several containers; returns the ones that failed (best effort past the first). */
export async function writeRegionsEverywhere(rec: RegionsRecord, places: { store: ObjectStore; place: VolumePlace }[]): Promise<{ place: VolumePlace; error: string }[]> {
  const failed: { place: VolumePlace; error: string }[] = [];
  for (const p of places) {
    try {
      await writeRegions(p.store, p.place.container, rec);
    } catch (err) {
      failed.push({ place: p.place, error: (err as Error).message });
    }
  }
  return failed;
}
