/**
 * StoreVolumeBackend: the plugin's VolumeBackend over real object stores (Swift or S3, through the ObjectStore
 * contract and the configuration's stores).
 *
 * A Docker volume is one container (bucket), named exactly as the volume unless `-o container=NAME` says
 * otherwise, so that `swiftfs mount swift://NAME DIR` opens the same volume. The container carries labels:
 *   swiftfs-volume   the Docker volume name (how other hosts find a volume whose container has another name)
 *   swiftfs-opts     the per-volume options given at creation (URL-encoded), so every host mounts it alike
 *   swiftfs-created  creation time (RFC 3339)
 *   swiftfs-deleting set while a Remove empties the container (other hosts stop listing it)
 * and the core's own `swiftfs-uuid` label and format record.
 *
 * Options of Create (`-o`): every option the table (src/config/options.ts) marks `volumeOpt`, validated by
 * resolveVolumeOptions, plus three addressing options of the plugin: `container` (container/bucket name),
 * `backend` (swift|s3: use the store of that kind) and `region` (the store serving that region; same as
 * `store=REGION`). `replicas=dr[,other]` must name regions this host's configuration knows, other than the
 * volume's own; the mount processes record and replicate to them.
 *
 * Regions (src/region/README.md): a volume's containers in other regions carry the same labels, with the role
 * label `swiftfs-region-role` (home, replica, retired). Lookups prefer the home; a replica is reported as one
 * (the driver refuses to mount it read-write), and an old home fenced by a relocation names where the volume
 * went (`relocatedTo`, followed by findHome).
 */

import type { Config } from '../config/load.js';
import { ConfigError, resolveVolumeOptions } from '../config/load.js';
import { resolveStoreRef, resolveVolume } from '../config/resolve.js';
import type { VolumeRef } from '../config/volume-url.js';
import { FORMAT_KEY, UUID_LABEL, readFormat } from '../core/layout.js';
import { Ownership, type OwnerRecord } from '../core/ownership.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import type { ObjectStore } from '../store/object-store.js';
import { listAll } from '../store/object-store.js';
import { isFenceOwner, readRegions, ROLE_LABEL } from '../region/records.js';
import type { BackendVolume, VolumeBackend, VolumeHolder, VolumeSpec } from './backend.js';
import type { VolumeLocation } from './state.js';

export const VOLUME_LABEL = 'swiftfs-volume';
export const OPTIONS_LABEL = 'swiftfs-opts';
export const CREATED_LABEL = 'swiftfs-created';
export const DELETING_LABEL = 'swiftfs-deleting';

/** Plugin-only options that say where a volume lives (not in the option table: the CLI has them in its URL). */
export const ADDRESS_OPTIONS = ['container', 'backend', 'region'] as const;

/** What creating a volume's filesystem needs: the core's Volume.format, injected (tests pass a fake). */
export interface FormatRequest {
  store: ObjectStore;
  container: string;
  blockSize: number;
  storagePolicy: string | undefined;
  /** Labels to put on the container along with the core's own. */
  labels: Record<string, string>;
  uid: number | undefined;
  gid: number | undefined;
  signal: AbortSignal;
}
export type FormatVolume = (request: FormatRequest) => Promise<{ uuid: string }>;

export interface StoreBackendOptions {
  config: Config;
  /** Opens (or returns the cached) store of that name. */
  openStore: (storeName: string) => Promise<ObjectStore>;
  format: FormatVolume;
  /** A holder not renewed for this long is gone (must match the mount processes' lease; default 120 s). */
  leaseMs?: number;
  /** How long a container's labels are trusted by list/lookup scans (ms, default 30 s). */
  labelCacheMs?: number;
  /** Parallel label reads in a scan. */
  scanConcurrency?: number;
}

function abortable<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export function encodeOptions(options: Record<string, string>): string {
  const params = new URLSearchParams();
  for (const key of Object.keys(options).sort()) params.set(key, options[key]!);
  return params.toString();
}

export function decodeOptions(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined || text === '') return out;
  for (const [k, v] of new URLSearchParams(text)) out[k] = v;
  return out;
}

function storeKindScheme(kind: string): VolumeRef['scheme'] {
  return kind === 'swift' ? 'swift' : kind === 's3' ? 's3' : kind === 'memory' ? 'mem' : undefined;
}

interface LabelEntry {
  at: number;
  labels: Record<string, string> | null;
}

export class StoreVolumeBackend implements VolumeBackend {
  readonly scope = 'global' as const;
  private readonly labelCache = new Map<string, LabelEntry>();
  private readonly opts: Required<StoreBackendOptions>;

  constructor(options: StoreBackendOptions) {
    this.opts = { leaseMs: 120_000, labelCacheMs: 30_000, scanConcurrency: 8, ...options };
  }

  private get config(): Config {
    return this.opts.config;
  }

  resolve(name: string, opts: Record<string, string>): VolumeSpec {
    const rest: Record<string, string> = {};
    let container = name;
    let scheme: VolumeRef['scheme'];
    let store: string | undefined;
    for (const [key, value] of Object.entries(opts)) {
      if (key === 'container') {
        if (value === '') throw new ConfigError('option container needs a value (container=NAME)', 'container');
        container = value;
      } else if (key === 'backend') {
        if (value !== 'swift' && value !== 's3') throw new ConfigError(`option backend must be swift or s3, not ${JSON.stringify(value)}`, 'backend');
        scheme = value;
      } else if (key === 'region') {
        if (value === '') throw new ConfigError('option region needs a value (region=NAME)', 'region');
        store = value;
      } else rest[key] = value;
    }
    if (rest['store'] !== undefined) {
      if (store !== undefined && store !== rest['store']) throw new ConfigError('give either store or region, not both', 'store');
      store = rest['store'];
    }
    // Validates every option against the table (unknown, not per-volume, bad value, inconsistent sizes).
    try {
      resolveVolumeOptions(this.config, rest, 'option');
    } catch (err) {
      if (err instanceof Error && /unknown option/.test(err.message)) {
        throw new ConfigError(`${err.message}; and where the volume lives: ${ADDRESS_OPTIONS.join(', ')}`);
      }
      throw err;
    }
    let resolved: ReturnType<typeof resolveVolume>;
    try {
      resolved = resolveVolume(this.config, { scheme, store, container }, {});
    } catch (err) {
      // A Docker name that is not a valid bucket (S3 naming rules): say how to use it anyway.
      if (err instanceof Error && opts['container'] === undefined && /bucket name|container name/.test(err.message)) {
        throw new ConfigError(`${err.message}; give the volume another name, or name its container with -o container=NAME`, 'container');
      }
      throw err;
    }
    delete rest['store'];
    const location: VolumeLocation = {
      backend: resolved.store.kind,
      store: resolved.store.name,
      ...(resolved.store.region !== undefined ? { region: resolved.store.region } : {}),
      container: resolved.container,
    };
    if (rest['replicas'] !== undefined) {
      // Syntax was checked by the table; here: every region is known to this host, and none is the volume's own.
      const list = resolveVolumeOptions(this.config, { replicas: rest['replicas'] }, 'option').replicas?.split(',') ?? [];
      for (const region of list) {
        const store = resolveStoreRef(this.config, region);
        if (store.name === resolved.store.name) throw new ConfigError(`option replicas: region ${region} is where volume ${name} lives (store ${store.name}); a replica must be in another region`, 'replicas');
      }
      rest['replicas'] = list.join(',');
    }
    if (encodeOptions(rest).length > 256) throw new ConfigError('too many volume options to record with the volume (at most 256 characters)');
    return { name, location, options: rest };
  }

  async create(spec: VolumeSpec, signal: AbortSignal): Promise<BackendVolume> {
    const store = await this.opts.openStore(spec.location.store);
    const { container } = spec.location;
    const existing = await abortable(signal, this.readVolume(store, spec.location, true));
    if (existing !== null) {
      if (existing.name !== spec.name) {
        throw new Error(`container ${container} already holds the swiftfs volume ${existing.name}; choose another container (-o container=NAME)`);
      }
      if (existing.deleting) throw new Error(`volume ${spec.name} is being deleted; try again when it is gone`);
      if (existing.role === 'replica') {
        throw new Error(`container ${container} in ${spec.location.store} is a replica of volume ${spec.name}, kept up to date from its home region; to use the volume in this region, relocate it here first (swiftfs relocate VOLUME --to ${spec.location.store}, with --failover if its home is gone)`);
      }
      return existing; // idempotent: adopt the volume as it is
    }
    const volumeOptions = resolveVolumeOptions(this.config, spec.options, 'option');
    if (!volumeOptions.create) {
      throw new ConfigError(`container ${container} holds no swiftfs volume, and create=false asks to attach to an existing one only`, 'create');
    }
    const createdAt = new Date().toISOString();
    const labels: Record<string, string> = {
      [VOLUME_LABEL]: spec.name,
      [OPTIONS_LABEL]: encodeOptions(spec.options),
      [CREATED_LABEL]: createdAt,
    };
    const { uuid } = await this.opts.format({
      store,
      container,
      blockSize: volumeOptions.blockSize,
      storagePolicy: volumeOptions.storagePolicy,
      labels,
      uid: volumeOptions.uid,
      gid: volumeOptions.gid,
      signal,
    });
    this.labelCache.delete(this.cacheKey(spec.location.store, container));
    return { name: spec.name, uuid, createdAt, location: spec.location, options: { ...spec.options } };
  }

  private cacheKey(store: string, container: string): string {
    return `${store}\u0000${container}`;
  }

  /**
   * The volume in a container, or null when the container does not exist. A container that exists but holds no
   * swiftfs volume is an error when `strict` (Create must not take it over), else null.
   */
  private async readVolume(store: ObjectStore, location: VolumeLocation, strict: boolean, withHolder = false): Promise<BackendVolume | null> {
    let labels: Record<string, string>;
    let bytesUsed: number | undefined;
    let objectCount: number | undefined;
    try {
      const info = await store.headContainer(location.container);
      labels = info.labels;
      bytesUsed = info.bytesUsed;
      objectCount = info.objectCount;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.NotFound)) return null;
      throw err;
    }
    let uuid = labels[UUID_LABEL];
    if (uuid === undefined) {
      try {
        uuid = (await readFormat(store, location.container)).uuid;
      } catch (err) {
        if (isStoreError(err)) throw err;
        if (!strict) return null;
        if ((objectCount ?? 0) === 0 || (err as { problem?: string }).problem === 'not-formatted') return null; // empty: Create may format it
        throw new Error(`container ${location.container} exists and is not a swiftfs volume (${(err as Error).message}); choose another name or -o container=NAME`);
      }
    }
    let holder: VolumeHolder | undefined;
    let relocatedTo: BackendVolume['relocatedTo'];
    let regions: BackendVolume['regions'];
    if (withHolder) {
      const [owner, record] = await Promise.all([Ownership.read(store, location.container), readRegions(store, location.container).catch(() => null)]);
      if (isFenceOwner(owner)) relocatedTo = owner.fence.movedTo; // an old home: its "owner" is the fence, not a writer
      else if (owner !== null && !owner.released) holder = this.holderOf(owner);
      if (record !== null && record.uuid === uuid) {
        regions = { home: { ...record.home }, replicas: record.replicas.map((r) => ({ region: r.region, container: r.container, mode: r.mode })) };
      }
    }
    const roleLabel = labels[ROLE_LABEL];
    const role = relocatedTo !== undefined ? 'retired' : roleLabel === 'replica' || roleLabel === 'retired' ? roleLabel : 'home';
    const volume: BackendVolume = {
      name: labels[VOLUME_LABEL] ?? location.container,
      uuid,
      createdAt: labels[CREATED_LABEL] ?? new Date(0).toISOString(),
      location,
      options: decodeOptions(labels[OPTIONS_LABEL]),
      ...(labels[DELETING_LABEL] !== undefined ? { deleting: true } : {}),
      ...(holder !== undefined ? { holder } : {}),
      ...(bytesUsed !== undefined ? { bytesUsed } : {}),
      ...(objectCount !== undefined ? { objectCount } : {}),
      role,
      ...(relocatedTo !== undefined ? { relocatedTo } : {}),
      ...(regions !== undefined ? { regions } : {}),
    };
    return volume;
  }

  private holderOf(owner: OwnerRecord): VolumeHolder {
    return {
      host: owner.host,
      pid: owner.pid,
      since: new Date(owner.since).toISOString(),
      renewedAt: new Date(owner.renewedAt).toISOString(),
      live: Ownership.isLive(owner, this.opts.leaseMs),
    };
  }

  private locationIn(storeName: string, container: string): VolumeLocation {
    let store: { kind: VolumeLocation['backend']; region?: string | undefined } | undefined = this.config.stores[storeName];
    if (store === undefined) {
      try {
        store = resolveStoreRef(this.config, storeName); // STORE@REGION
      } catch {
        store = undefined;
      }
    }
    return {
      backend: store?.kind ?? 'swift',
      store: storeName,
      ...(store?.region !== undefined ? { region: store.region } : {}),
      container,
    };
  }

  /** Configured stores that can be used, the default first. */
  private storeNames(): string[] {
    const names = Object.keys(this.config.stores);
    const first = this.config.defaultStore;
    return first !== undefined && names.includes(first) ? [first, ...names.filter((n) => n !== first)] : names;
  }

  async lookup(name: string, signal: AbortSignal): Promise<BackendVolume | null> {
    // Fast path: a container named as the volume, in each store.
    for (const storeName of this.storeNames()) {
      const store = await this.opts.openStore(storeName);
      const kind = this.config.stores[storeName]!.kind;
      try {
        resolveVolume(this.config, { scheme: storeKindScheme(kind), store: storeName, container: name });
      } catch {
        continue; // not a valid container name for this kind of store (e.g. an S3 bucket name)
      }
      const found = await abortable(signal, this.readVolume(store, this.locationIn(storeName, name), false));
      if (found !== null && found.name === name && !found.deleting && found.role === 'home') return found;
    }
    // Slow path: a volume whose container has another name (-o container=...), found by its label; its home
    // first, else a replica or an old home (reported as such: the driver does not mount those read-write).
    const all = (await this.list(signal, true)).filter((v) => v.name === name);
    return all.find((v) => v.role === 'home') ?? all.find((v) => v.role === 'retired') ?? all[0] ?? null;
  }

  async findHome(known: { name: string; uuid: string; location: VolumeLocation }, signal: AbortSignal): Promise<BackendVolume | null> {
    let location = known.location;
    let unreachable: unknown;
    // Follow the fences: an old home names where the volume went (a chain when it moved several times).
    for (let hop = 0; hop < 8; hop++) {
      let here: BackendVolume | null;
      try {
        here = await this.inspect(location, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        unreachable = err;
        break;
      }
      if (here === null || here.uuid !== known.uuid) return null;
      if (here.relocatedTo === undefined || here.relocatedTo === null) return hop === 0 ? null : here;
      let storeName: string;
      try {
        storeName = resolveStoreRef(this.config, here.relocatedTo.region).name;
      } catch (err) {
        throw new Error(`volume ${known.name} was relocated to region ${here.relocatedTo.region}, which this host's configuration does not name (${(err as Error).message})`);
      }
      location = this.locationIn(storeName, here.relocatedTo.container);
    }
    if (unreachable === undefined) return null;
    // The recorded home does not answer: a failover may have made another region its home. Look for the
    // container holding its UUID with the home role (a replica that was taken over) in the other stores.
    const others = this.storeNames().filter((n) => n !== known.location.store);
    const candidates = (await this.list(signal, true, others)).filter((v) => v.uuid === known.uuid && v.role === 'home' && !(v.location.store === known.location.store && v.location.container === known.location.container));
    for (const candidate of candidates) {
      const checked = await this.inspect(candidate.location, signal).catch(() => null);
      if (checked !== null && checked.uuid === known.uuid && checked.role === 'home' && checked.relocatedTo === undefined) return checked;
    }
    return null;
  }

  async inspect(location: VolumeLocation, signal: AbortSignal): Promise<BackendVolume | null> {
    const store = await this.opts.openStore(location.store);
    return abortable(signal, this.readVolume(store, location, false, true));
  }

  /**
   * Every swiftfs volume of the configured stores. Replicas and old homes are left out (they are the same volume
   * as its home) unless `allRoles`, or unless no home of that name is seen (a region holding only a replica
   * still lists the volume, as its copy).
   */
  async list(signal: AbortSignal, allRoles = false, only?: readonly string[]): Promise<BackendVolume[]> {
    const out: BackendVolume[] = [];
    for (const storeName of only ?? this.storeNames()) {
      const store = await this.opts.openStore(storeName);
      let containers: string[];
      try {
        containers = await abortable(signal, store.listContainers());
      } catch (err) {
        if (only === undefined || signal.aborted) throw err;
        continue; // a search of some stores (findHome) goes on without one that does not answer
      }
      const queue = [...containers];
      const workers = Array.from({ length: Math.min(this.opts.scanConcurrency, queue.length) }, async () => {
        for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
          if (signal.aborted) return;
          const labels = await this.labelsOf(store, storeName, c);
          if (labels === null || labels[UUID_LABEL] === undefined || labels[VOLUME_LABEL] === undefined) continue;
          if (labels[DELETING_LABEL] !== undefined) continue;
          const role = labels[ROLE_LABEL];
          out.push({
            name: labels[VOLUME_LABEL],
            uuid: labels[UUID_LABEL],
            createdAt: labels[CREATED_LABEL] ?? new Date(0).toISOString(),
            location: this.locationIn(storeName, c),
            options: decodeOptions(labels[OPTIONS_LABEL]),
            role: role === 'replica' || role === 'retired' ? role : 'home',
          });
        }
      });
      await abortable(signal, Promise.all(workers));
    }
    if (allRoles) return out;
    const homes = new Set(out.filter((v) => v.role === 'home').map((v) => v.name));
    const seen = new Set<string>();
    return out.filter((v) => {
      if (v.role === 'home') return true;
      if (homes.has(v.name) || seen.has(v.name)) return false;
      seen.add(v.name);
      return true;
    });
  }

  private async labelsOf(store: ObjectStore, storeName: string, container: string): Promise<Record<string, string> | null> {
    const key = this.cacheKey(storeName, container);
    const cached = this.labelCache.get(key);
    if (cached !== undefined && Date.now() - cached.at < this.opts.labelCacheMs) return cached.labels;
    let labels: Record<string, string> | null;
    try {
      labels = await store.getLabels(container);
    } catch (err) {
      if (!isStoreError(err, StoreErrorCode.NotFound) && !isStoreError(err, StoreErrorCode.Forbidden)) throw err;
      labels = null;
    }
    this.labelCache.set(key, { at: Date.now(), labels });
    return labels;
  }

  async markDeleting(location: VolumeLocation, signal: AbortSignal): Promise<void> {
    const store = await this.opts.openStore(location.store);
    await abortable(signal, store.setLabels(location.container, { [DELETING_LABEL]: new Date().toISOString() }));
    this.labelCache.delete(this.cacheKey(location.store, location.container));
  }

  async destroy(location: VolumeLocation, signal: AbortSignal): Promise<void> {
    const store = await this.opts.openStore(location.store);
    const { container } = location;
    for (let round = 0; round < 5; round++) {
      if (signal.aborted) throw signal.reason;
      const keys: string[] = [];
      try {
        for await (const entry of listAll(store, container)) if ('key' in entry) keys.push(entry.key);
      } catch (err) {
        if (isStoreError(err, StoreErrorCode.NotFound)) return; // already gone
        throw err;
      }
      // Delete the format record last: a half-deleted container is still recognisable as a volume.
      keys.sort((a, b) => (a === FORMAT_KEY ? 1 : b === FORMAT_KEY ? -1 : 0));
      const last = keys[keys.length - 1] === FORMAT_KEY ? keys.pop() : undefined;
      const queue = [...keys];
      await Promise.all(
        Array.from({ length: Math.min(16, queue.length) }, async () => {
          for (let k = queue.shift(); k !== undefined; k = queue.shift()) {
            if (signal.aborted) throw signal.reason;
            await store.delete(container, k, { signal });
          }
        }),
      );
      if (last !== undefined) await store.delete(container, last, { signal });
      try {
        await store.deleteContainer(container);
        this.labelCache.delete(this.cacheKey(location.store, container));
        return;
      } catch (err) {
        if (isStoreError(err, StoreErrorCode.NotFound)) return;
        if (!isStoreError(err, StoreErrorCode.Conflict)) throw err;
        // Listing lagged behind: go round again.
      }
    }
    throw new Error(`container ${container} is still not empty after several rounds of deletion`);
  }

  async close(): Promise<void> {}
}
