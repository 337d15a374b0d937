/**
 * Resolves names against a loaded Config: which store a name, a region or STORE@REGION means, and which store and container a
 * volume address (./volume-url.ts) means once the default store and the volume's `store` option are applied.
 */

import { ConfigError, type Config, type MemoryStoreConfig, type StoreConfig } from './load.js';
import { findOption, type StoreKind } from './options.js';
import { KIND_SCHEME, SCHEME_KIND, VolumeUrlError, checkContainerName, encodeStoreRef, parseVolumeUrl, type VolumeRef } from './volume-url.js';
import { parseDuration } from './values.js';

function storeList(config: Config): string {
  const names = [...Object.keys(config.stores), ...Object.keys(config.storeProblems)].sort();
  return names.length === 0 ? 'none' : names.join(', ');
}

const NO_STORE_HELP =
  'configure one: set ST_AUTH/ST_USER/ST_KEY (Swift TempAuth), OS_AUTH_URL and the other OS_* variables (Keystone), or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_ENDPOINT_URL (S3); or name stores in a config file (--config)';

/**
 * The name of the store that `nameOrRegion` means: a store of that name, else the one store whose region it
 * is. Without a name: the default store. Throws ConfigError naming the choices.
 */
export function resolveStoreName(config: Config, nameOrRegion?: string): string {
  if (nameOrRegion === undefined) {
    if (config.defaultStore !== undefined) return config.defaultStore;
    const count = Object.keys(config.stores).length + Object.keys(config.storeProblems).length;
    if (count === 0) throw new ConfigError(`no store is configured: ${NO_STORE_HELP}`, 'store');
    throw new ConfigError(`several stores are configured (${storeList(config)}) and none is the default: name one (swift://STORE/CONTAINER, --store) or set default-store`, 'store');
  }
  if (nameOrRegion in config.stores || nameOrRegion in config.storeProblems) return nameOrRegion;
  const inRegion = Object.values(config.stores).filter((store) => store.region === nameOrRegion);
  if (inRegion.length === 1) return inRegion[0]!.name;
  if (inRegion.length > 1) {
    throw new ConfigError(`region ${nameOrRegion} is served by several stores (${inRegion.map((s) => s.name).join(', ')}): name the store`, 'store');
  }
  throw new ConfigError(`no store or region named ${JSON.stringify(nameOrRegion)} (stores: ${storeList(config)})`, 'store');
}

/** The configuration of store `name`; throws the store's problem when it is incomplete. */
export function storeConfig(config: Config, name: string): StoreConfig {
  const store = config.stores[name];
  if (store) return store;
  const problem = config.storeProblems[name];
  if (problem !== undefined) throw new ConfigError(problem, 'store');
  throw new ConfigError(`no store named ${JSON.stringify(name)} (stores: ${storeList(config)})`, 'store');
}

function keystoneStores(config: Config): StoreConfig[] {
  return Object.values(config.stores).filter((s) => s.kind === 'swift' && s.auth.type === 'keystone');
}

/** `store` with its Keystone catalog region replaced by `region` (named STORE@REGION). */
export function storeInCatalogRegion(store: StoreConfig, region: string): StoreConfig {
  if (store.kind !== 'swift' || store.auth.type !== 'keystone') {
    throw new ConfigError(`store ${store.name} is not a Keystone store: only Keystone catalogs have other regions (write the region's own store name)`, 'store');
  }
  if (store.storageUrl !== undefined) {
    throw new ConfigError(`store ${store.name} has a fixed storage-url: it cannot reach region ${region} of its catalog (configure a store for that region)`, 'store');
  }
  return Object.freeze({ ...store, name: `${store.name}@${region}`, region });
}

/**
 * The store a store reference means: a store name, the region of one store, STORE@REGION (Keystone store STORE
 * in region REGION of its catalog), or a bare catalog region when exactly one Keystone store is configured.
 * Throws ConfigError naming the choices.
 */
export function resolveStoreRef(config: Config, name: string): StoreConfig {
  const at = name.indexOf('@');
  if (at > 0) {
    const storeName = name.slice(0, at);
    const region = name.slice(at + 1);
    if (region === '') throw new ConfigError(`region ${JSON.stringify(name)}: nothing after "@" (write STORE@REGION)`, 'store');
    return storeInCatalogRegion(storeConfig(config, resolveStoreName(config, storeName)), region);
  }
  try {
    return storeConfig(config, resolveStoreName(config, name));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const keystone = keystoneStores(config);
    if (keystone.length === 1 && !(name in config.storeProblems)) return storeInCatalogRegion(keystone[0]!, name);
    throw err;
  }
}

/** An in-process memory store for mem:// addresses when the config names none. */
function implicitMemoryStore(): MemoryStoreConfig {
  const tuningDefault = (name: string) => findOption(name)!.default!;
  return Object.freeze({
    name: 'mem',
    kind: 'memory',
    region: undefined,
    requestTimeout: parseDuration(String(tuningDefault('request-timeout'))),
    retries: Number(tuningDefault('retries')),
    connections: Number(tuningDefault('connections')),
  });
}

export interface ResolvedVolume {
  readonly ref: VolumeRef;
  readonly store: StoreConfig;
  readonly container: string;
  /** The canonical address with the store named: swift://home/pgdata. */
  readonly url: string;
}

/**
 * Resolves a volume address to its store and container. The store (any store reference, see resolveStoreRef;
 * STORE@REGION gives a store named so) is, in order: the one the address names,
 * `options.store` (the volume option), the default store. With a scheme, the store must be of that kind; when the
 * default store is of another kind, the only store of the scheme's kind is used.
 */
export function resolveVolume(config: Config, address: string | VolumeRef, options: { store?: string | undefined } = {}): ResolvedVolume {
  const ref = typeof address === 'string' ? parseVolumeUrl(address) : address;
  const wantKind: StoreKind | undefined = ref.scheme === undefined ? undefined : SCHEME_KIND[ref.scheme];
  const shown = typeof address === 'string' ? address : `${ref.scheme ?? ''}${ref.scheme ? '://' : ''}${ref.container}`;
  let store: StoreConfig;
  const named = ref.store ?? options.store;
  if (named !== undefined) {
    store = resolveStoreRef(config, named);
  } else {
    const ofKind = wantKind === undefined ? [] : Object.values(config.stores).filter((s) => s.kind === wantKind);
    const defaultStore = config.defaultStore === undefined ? undefined : config.stores[config.defaultStore];
    if (wantKind !== undefined && (defaultStore === undefined || defaultStore.kind !== wantKind) && ofKind.length === 1) {
      store = ofKind[0]!;
    } else if (wantKind === 'memory' && ofKind.length === 0) {
      store = implicitMemoryStore();
    } else {
      store = storeConfig(config, resolveStoreName(config));
    }
  }
  if (wantKind !== undefined && store.kind !== wantKind) {
    throw new ConfigError(`volume ${shown}: store ${store.name} is a ${store.kind} store, not ${wantKind} (write ${KIND_SCHEME[store.kind]}://${store.name}/${ref.container}, or name a ${wantKind} store)`, 'store');
  }
  try {
    checkContainerName(ref.container, store.kind);
  } catch (err) {
    if (err instanceof VolumeUrlError) throw new VolumeUrlError(`volume ${shown}: ${err.message}`);
    throw err;
  }
  const url = `${KIND_SCHEME[store.kind]}://${encodeStoreRef(store.name)}/${encodeURIComponent(ref.container)}`;
  return Object.freeze({ ref, store, container: ref.container, url });
}
