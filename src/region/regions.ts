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

import { ConfigError, type Config, type StoreConfig } from '../config/load.js';
import { resolveStoreName, storeConfig } from '../config/resolve.js';
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

function keystoneStores(config: Config): StoreConfig[] {
  return Object.values(config.stores).filter((s) => s.kind === 'swift' && s.auth.type === 'keystone');
}

function withRegion(store: StoreConfig, region: string): StoreConfig {
  if (store.kind !== 'swift' || store.auth.type !== 'keystone') {
    throw new ConfigError(`store ${store.name} is not a Keystone store: only Keystone catalogs have other regions (write the region's own store name)`, 'store');
  }
  if (store.storageUrl !== undefined) {
    throw new ConfigError(`store ${store.name} has a fixed storage-url: it cannot reach region ${region} of its catalog (configure a store for that region)`, 'store');
  }
  return Object.freeze({ ...store, name: `${store.name}@${region}`, region });
}

/** Resolves a region name against the configuration. Throws ConfigError naming the choices. */
export function resolveRegion(config: Config, name: string): RegionRef {
  const at = name.indexOf('@');
  if (at > 0) {
    const storeName = name.slice(0, at);
    const region = name.slice(at + 1);
    if (region === '') throw new ConfigError(`region ${JSON.stringify(name)}: nothing after "@" (write STORE@REGION)`, 'store');
    const store = withRegion(storeConfig(config, resolveStoreName(config, storeName)), region);
    return { name, store, description: describeStore(store) };
  }
  try {
    const store = storeConfig(config, resolveStoreName(config, name));
    return { name, store, description: describeStore(store) };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const keystone = keystoneStores(config);
    if (keystone.length === 1 && !(name in config.storeProblems)) {
      const store = withRegion(keystone[0]!, name);
      return { name, store, description: describeStore(store) };
    }
    throw err;
  }
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
