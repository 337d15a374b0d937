/**
 * Regions are the configuration's stores: each named store (a Swift account at one endpoint, an S3 endpoint)
 * is a region, addressed by the store's name or by its `region` option. A Keystone store also reaches every
 * other region of its catalog: `STORE@REGION` (or a bare REGION when exactly one Keystone store is configured)
 * is that store with its region replaced, so a catalog with several regions needs one store section only.
 *
 * Region names are what the volume records (`.swiftfs/regions`, replica status) keep; hosts that share
 * volumes should name their stores alike (or give them the same `region`), so that a name written by one host
 * resolves on another.
 */

import type { Config, StoreConfig } from '../config/load.js';
import { resolveStoreRef } from '../config/resolve.js';
import { describeStore, openStoreConfig } from '../store/open.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Logger } from '../log.js';

export interface RegionRef {
  /** The name as the operator wrote it (what volume records keep). */
  name: string;
  store: StoreConfig;
  /** One line, no secrets. */
  description: string;
}

/** Resolves a region name against the configuration. Throws ConfigError naming the choices. */
export function resolveRegion(config: Config, name: string): RegionRef {
  const store = resolveStoreRef(config, name);
  return { name, store, description: describeStore(store) };
}

/** The region name a store is known by: its region option when it has one no other store shares, else its name. */
export function regionNameOfStore(config: Config, store: StoreConfig): string {
  if (store.region !== undefined) {
    const same = Object.values(config.stores).filter((s) => s.region === store.region);
    if (same.length === 1 && !(store.region in config.stores)) return store.region;
  }
  return store.name;
}

export interface OpenRegion {
  ref: RegionRef;
  store: ObjectStore;
}

/** Opens a region's store. */
export async function openRegion(config: Config, name: string, logger?: Logger): Promise<OpenRegion> {
  const ref = resolveRegion(config, name);
  const store = await openStoreConfig(ref.store, logger ? { logger } : {});
  return { ref, store };
}

/** True when two region names resolve to the same store endpoint and account (same config entry). */
export function sameRegion(config: Config, a: string, b: string): boolean {
  try {
    const ra = resolveRegion(config, a);
    const rb = resolveRegion(config, b);
    return ra.store.name === rb.store.name && ra.store.region === rb.store.region;
  } catch {
    return a === b;
  }
}
