/**
 * Finding a volume by its UUID in a store (a region), whatever its container is called there.
 *
 * Every container of a volume carries the label `swiftfs-uuid` (the core sets it at format; the replicator on
 * every replica). Containers replicated by the store itself may lack it (Swift container sync does not copy
 * container metadata), so a container without the label is checked through its format record. Results are
 * cached per store for a while and re-verified (one label read) before they are returned.
 */

import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { UUID_LABEL, readFormat, VolumeFormatError } from '../core/layout.js';

export interface FoundVolume {
  container: string;
  /** How it was recognised. */
  via: 'label' | 'format';
}

export interface FindOptions {
  /** A container to check first (the same name as in the source region, a remembered one). */
  hint?: string | undefined;
  /** How long a found container is remembered (default 5 min). */
  cacheTtlMs?: number;
  /** Parallel label reads while scanning (default 8). */
  concurrency?: number;
  /** Also read the format record of containers without a UUID label (default true). */
  checkFormat?: boolean;
}

const cache = new WeakMap<ObjectStore, Map<string, { container: string; via: FoundVolume['via']; at: number }>>();

/** Forgets what was cached for a store (tests; after deleting containers). */
export function forgetFoundVolumes(store: ObjectStore): void {
  cache.delete(store);
}

/** The UUID the container holds: its label, else its format record; null when it is not a swiftfs volume. */
export async function containerUuid(store: ObjectStore, container: string, checkFormat = true): Promise<{ uuid: string; via: FoundVolume['via'] } | null> {
  let labels: Record<string, string>;
  try {
    labels = await store.getLabels(container);
  } catch (err) {
    if (isStoreError(err, StoreErrorCode.NotFound)) return null;
    throw err;
  }
  const label = labels[UUID_LABEL];
  if (label) return { uuid: label, via: 'label' };
  if (!checkFormat) return null;
  try {
    const format = await readFormat(store, container);
    return { uuid: format.uuid, via: 'format' };
  } catch (err) {
    if (err instanceof VolumeFormatError) return null;
    if (isStoreError(err, StoreErrorCode.NotFound) || isStoreError(err, StoreErrorCode.Forbidden)) return null;
    throw err;
  }
}

/**
 * The container of `store` holding volume `uuid`, or null. When several do (a copy made outside swiftfs), the
 * hint wins, then the first by name; a warning is the caller's business (see findAllVolumeContainers).
 */
export async function findVolumeByUuid(store: ObjectStore, uuid: string, opts: FindOptions = {}): Promise<FoundVolume | null> {
  const ttl = opts.cacheTtlMs ?? 300_000;
  let byUuid = cache.get(store);
  if (!byUuid) {
    byUuid = new Map();
    cache.set(store, byUuid);
  }
  const cached = byUuid.get(uuid);
  if (cached && Date.now() - cached.at < ttl) {
    const still = await containerUuid(store, cached.container, opts.checkFormat ?? true);
    if (still?.uuid === uuid) return { container: cached.container, via: cached.via };
    byUuid.delete(uuid);
  }
  if (opts.hint !== undefined) {
    const found = await containerUuid(store, opts.hint, opts.checkFormat ?? true);
    if (found?.uuid === uuid) {
      byUuid.set(uuid, { container: opts.hint, via: found.via, at: Date.now() });
      return { container: opts.hint, via: found.via };
    }
  }
  const all = await findAllVolumeContainers(store, { ...opts, stopAt: uuid });
  const hit = all.find((v) => v.uuid === uuid);
  if (!hit) return null;
  byUuid.set(uuid, { container: hit.container, via: hit.via, at: Date.now() });
  return { container: hit.container, via: hit.via };
}

/** Every swiftfs volume container of a store, with its UUID (scan of all containers; `stopAt` ends it early). */
export async function findAllVolumeContainers(
  store: ObjectStore,
  opts: FindOptions & { stopAt?: string } = {},
): Promise<{ container: string; uuid: string; via: FoundVolume['via'] }[]> {
  const names = await store.listContainers();
  const out: { container: string; uuid: string; via: FoundVolume['via'] }[] = [];
  let next = 0;
  let stop = false;
  const workers = Array.from({ length: Math.min(opts.concurrency ?? 8, names.length) }, async () => {
    while (!stop && next < names.length) {
      const name = names[next++]!;
      // Segment containers of big objects and other helpers are not volumes.
      if (name.endsWith('+segments')) continue;
      const found = await containerUuid(store, name, opts.checkFormat ?? true);
      if (found) {
        out.push({ container: name, ...found });
        if (opts.stopAt !== undefined && found.uuid === opts.stopAt) stop = true;
      }
    }
  });
  await Promise.all(workers);
  return out.sort((a, b) => (a.container < b.container ? -1 : a.container > b.container ? 1 : 0));
}
