/**
 * MemoryStore: an ObjectStore held in memory, exact to the contract of ./object-store.ts, for fast unit tests of
 * the layers above (and as the reference the conformance suite is checked against).
 *
 * It behaves like a strict real backend: keys are listed in UTF-8 byte order, ranged gets are clipped, create-only
 * puts lose with PreconditionFailed, labels merge, deleting a non-empty container is a Conflict. Bytes are copied
 * in and out, so a caller that mutates its buffer after put() (or the buffer get() returned) cannot change what is
 * stored. It is stricter than the real backends where they silently change data: metadata keys must already be
 * lowercase [a-z0-9-], values printable ASCII without leading/trailing spaces (HTTP would trim them), the whole
 * metadata set at most 2 KiB, so a bug shows up in a unit test rather than against Swift.
 *
 * Options simulate latency (per call, honouring the caller's AbortSignal) and a backend without conditional create
 * (then a create-only put is rejected with NotSupported, as the contract asks).
 */

import { createHash } from 'node:crypto';
import { StoreError, StoreErrorCode } from './errors.js';
import {
  checkLabel,
  type Capabilities,
  type ContainerInfo,
  type CreateContainerOptions,
  type GetOptions,
  type GetResult,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
  type PutResult,
} from './object-store.js';

export interface MemoryStoreOptions {
  /** Delay before each call completes, in ms (a number, or a function of the operation for variable latency). */
  latencyMs?: number | ((op: string) => number);
  /** Whether create-only puts are honoured (default true). When false they reject with NotSupported. */
  conditionalCreate?: boolean;
  /** Largest object put() accepts (default 5 GiB); larger bodies reject with TooLarge. */
  maxObjectSize?: number;
  /** Longest key in UTF-8 bytes (default 1024). */
  maxKeyLength?: number;
  /** Shown in `description`. */
  name?: string;
}

interface StoredObject {
  data: Buffer;
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType: string | undefined;
}

interface StoredContainer {
  objects: Map<string, StoredObject>;
  /** Keys sorted in byte order; rebuilt lazily after an insert or delete. */
  sortedKeys: string[] | null;
  labels: Record<string, string>;
  storagePolicy: string | undefined;
}

const DEFAULT_MAX_OBJECT_SIZE = 5 * 1024 * 1024 * 1024;
const DEFAULT_MAX_KEY_LENGTH = 1024;
const MAX_METADATA_BYTES = 2048;
const DEFAULT_LIST_LIMIT = 1000;

/** Compares two strings by their UTF-8 bytes (the order Swift and S3 list in; not JavaScript's UTF-16 order). */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function md5Hex(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

export class MemoryStore implements ObjectStore {
  readonly description: string;
  private readonly containers = new Map<string, StoredContainer>();
  private readonly options: Required<Omit<MemoryStoreOptions, 'latencyMs' | 'name'>> & Pick<MemoryStoreOptions, 'latencyMs'>;
  private closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.options = {
      latencyMs: options.latencyMs,
      conditionalCreate: options.conditionalCreate ?? true,
      maxObjectSize: options.maxObjectSize ?? DEFAULT_MAX_OBJECT_SIZE,
      maxKeyLength: options.maxKeyLength ?? DEFAULT_MAX_KEY_LENGTH,
    };
    this.description = `memory${options.name ? ` (${options.name})` : ''}`;
  }

  async capabilities(_container?: string): Promise<Capabilities> {
    await this.enter('capabilities');
    return {
      kind: 'memory',
      conditionalCreate: this.options.conditionalCreate,
      // One process, one map: a create-only put checks and stores without an await in between.
      ...(this.options.conditionalCreate ? { createOnlyAtomic: true } : {}),
      nativeLabels: true,
      maxObjectSize: this.options.maxObjectSize,
      maxKeyLength: this.options.maxKeyLength,
    };
  }

  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<{ created: boolean }> {
    const op = 'createContainer';
    checkContainerName(name, op);
    const labels = validLabels(options.labels ?? {}, op, name);
    await this.enter(op);
    const existing = this.containers.get(name);
    if (existing) {
      if (options.storagePolicy !== undefined && existing.storagePolicy !== undefined && options.storagePolicy !== existing.storagePolicy) {
        throw new StoreError(StoreErrorCode.Conflict, `${op} ${name}: the container exists with another storage policy`, { op, container: name, status: 409 });
      }
      mergeLabels(existing.labels, labels);
      return { created: false };
    }
    const container: StoredContainer = { objects: new Map(), sortedKeys: [], labels: {}, storagePolicy: options.storagePolicy };
    mergeLabels(container.labels, labels);
    this.containers.set(name, container);
    return { created: true };
  }

  async headContainer(name: string): Promise<ContainerInfo> {
    const op = 'headContainer';
    await this.enter(op);
    const container = this.container(name, op);
    let bytesUsed = 0;
    for (const object of container.objects.values()) bytesUsed += object.data.length;
    const info: ContainerInfo = { name, objectCount: container.objects.size, bytesUsed, labels: { ...container.labels } };
    if (container.storagePolicy !== undefined) info.storagePolicy = container.storagePolicy;
    return info;
  }

  async deleteContainer(name: string): Promise<void> {
    const op = 'deleteContainer';
    await this.enter(op);
    const container = this.containers.get(name);
    if (!container) return;
    if (container.objects.size > 0) {
      throw new StoreError(StoreErrorCode.Conflict, `${op} ${name}: the container is not empty`, { op, container: name, status: 409 });
    }
    this.containers.delete(name);
  }

  async listContainers(prefix = ''): Promise<string[]> {
    await this.enter('listContainers');
    return [...this.containers.keys()].filter((name) => name.startsWith(prefix)).sort(compareUtf8);
  }

  async setLabels(name: string, labels: Record<string, string | null>): Promise<void> {
    const op = 'setLabels';
    const valid = validLabels(labels, op, name);
    await this.enter(op);
    mergeLabels(this.container(name, op).labels, valid);
  }

  async getLabels(name: string): Promise<Record<string, string>> {
    const op = 'getLabels';
    await this.enter(op);
    return { ...this.container(name, op).labels };
  }

  async get(containerName: string, key: string, options: GetOptions = {}): Promise<GetResult> {
    const op = 'get';
    const range = options.range;
    if (range && (!Number.isSafeInteger(range.offset) || range.offset < 0 || (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)))) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${containerName}/${key}: invalid range`, { op, container: containerName, key });
    }
    await this.enter(op, options.signal);
    const object = this.object(containerName, key, op);
    let body: Buffer;
    if (range) {
      const start = Math.min(range.offset, object.data.length);
      const end = range.length === undefined ? object.data.length : Math.min(object.data.length, range.offset + range.length);
      body = Buffer.from(object.data.subarray(start, Math.max(start, end)));
    } else {
      body = Buffer.from(object.data);
    }
    return { body, info: infoOf(key, object, true) };
  }

  async put(containerName: string, key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    const op = 'put';
    checkKey(key, this.options.maxKeyLength, op, containerName);
    const metadata = validMetadata(options.metadata ?? {}, op, containerName, key);
    if (options.ifNoneMatch !== undefined && options.ifNoneMatch !== '*') {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${containerName}/${key}: ifNoneMatch only supports '*'`, { op, container: containerName, key });
    }
    if (options.ifNoneMatch === '*' && !this.options.conditionalCreate) {
      throw new StoreError(StoreErrorCode.NotSupported, `${op} ${containerName}/${key}: this store does not support create-only puts`, { op, container: containerName, key });
    }
    // Copy the body now: the caller may reuse its buffer as soon as put() returns a promise.
    const data = await this.readBody(body, op, containerName, key, options);
    await this.enter(op, options.signal);
    const container = this.container(containerName, op);
    if (options.ifNoneMatch === '*' && container.objects.has(key)) {
      throw new StoreError(StoreErrorCode.PreconditionFailed, `${op} ${containerName}/${key}: the object already exists`, { op, container: containerName, key, status: 412 });
    }
    const etag = md5Hex(data);
    if (!container.objects.has(key)) container.sortedKeys = null;
    container.objects.set(key, { data, etag, lastModified: new Date(), metadata, contentType: options.contentType });
    return { etag };
  }

  async head(containerName: string, key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const op = 'head';
    await this.enter(op, options.signal);
    return infoOf(key, this.object(containerName, key, op), true);
  }

  async delete(containerName: string, key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const op = 'delete';
    await this.enter(op, options.signal);
    // Like Swift, a delete in a missing container cannot be told from a delete of a missing object: both resolve.
    const container = this.containers.get(containerName);
    if (container?.objects.delete(key)) container.sortedKeys = null;
  }

  async list(containerName: string, options: ListOptions = {}): Promise<ListPage> {
    const op = 'list';
    const limit = options.limit ?? DEFAULT_LIST_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${containerName}: limit must be a positive integer`, { op, container: containerName });
    }
    await this.enter(op, options.signal);
    const container = this.container(containerName, op);
    const prefix = options.prefix ?? '';
    const delimiter = options.delimiter || undefined;
    const after = options.after;
    const keys = this.sortedKeys(container);
    // Start at the first key that is both strictly after `after` and not before `prefix` (binary searches).
    let index = firstIndex(keys, Buffer.from(prefix, 'utf8'), false);
    if (after !== undefined) index = Math.max(index, firstIndex(keys, Buffer.from(after, 'utf8'), true));
    const page: ListPage = { objects: [], prefixes: [] };
    let count = 0;
    let last: string | undefined;
    for (; index < keys.length; index++) {
      const key = keys[index]!;
      if (!key.startsWith(prefix)) {
        if (compareUtf8(key, prefix) > 0) break; // past every key with this prefix
        continue;
      }
      let entry: { prefix: string } | { key: string };
      if (delimiter !== undefined) {
        const at = key.indexOf(delimiter, prefix.length);
        entry = at >= 0 ? { prefix: key.slice(0, at + delimiter.length) } : { key };
      } else {
        entry = { key };
      }
      if ('prefix' in entry) {
        // Like Swift: a common prefix equal to the marker (the previous page ended on it) is not repeated.
        if (entry.prefix === last || entry.prefix === after) continue;
      }
      if (count === limit) {
        page.next = last;
        break;
      }
      if ('prefix' in entry) {
        page.prefixes.push(entry.prefix);
        last = entry.prefix;
      } else {
        page.objects.push(infoOf(key, container.objects.get(key)!, false));
        last = key;
      }
      count++;
    }
    return page;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Number of objects in a container, or undefined if it does not exist (for tests). */
  objectCount(container: string): number | undefined {
    return this.containers.get(container)?.objects.size;
  }

  private sortedKeys(container: StoredContainer): string[] {
    if (container.sortedKeys === null) container.sortedKeys = [...container.objects.keys()].sort(compareUtf8);
    return container.sortedKeys;
  }

  private container(name: string, op: string): StoredContainer {
    const container = this.containers.get(name);
    if (!container) throw new StoreError(StoreErrorCode.NotFound, `${op} ${name}: no such container`, { op, container: name, status: 404 });
    return container;
  }

  private object(containerName: string, key: string, op: string): StoredObject {
    const object = this.container(containerName, op).objects.get(key);
    if (!object) throw new StoreError(StoreErrorCode.NotFound, `${op} ${containerName}/${key}: no such object`, { op, container: containerName, key, status: 404 });
    return object;
  }

  /** Common entry of every call: refuses after close(), honours the signal, applies the simulated latency. */
  private async enter(op: string, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw new StoreError(StoreErrorCode.Internal, `${op}: the store is closed`, { op });
    if (signal?.aborted) throw aborted(op, signal);
    const latency = typeof this.options.latencyMs === 'function' ? this.options.latencyMs(op) : this.options.latencyMs ?? 0;
    if (latency > 0) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          clearTimeout(timer);
          reject(aborted(op, signal!));
        };
        const timer = setTimeout(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        }, latency);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
    if (this.closed) throw new StoreError(StoreErrorCode.Internal, `${op}: the store is closed`, { op });
  }

  private async readBody(body: PutBody, op: string, container: string, key: string, options: PutOptions): Promise<Buffer> {
    let data: Buffer;
    if (body instanceof Uint8Array) {
      data = Buffer.from(body); // a copy, also of a Buffer
    } else {
      const chunks: Buffer[] = [];
      let total = 0;
      try {
        for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
          if (options.signal?.aborted) throw aborted(op, options.signal);
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
          total += bytes.length;
          if (total > this.options.maxObjectSize) {
            throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: the body exceeds ${this.options.maxObjectSize} bytes`, { op, container, key, status: 413 });
          }
          chunks.push(bytes);
        }
      } catch (err) {
        if (err instanceof StoreError) throw err;
        throw new StoreError(StoreErrorCode.Internal, `${op} ${container}/${key}: reading the body failed`, { op, container, key, cause: err });
      }
      data = Buffer.concat(chunks, total);
      if (options.size !== undefined && options.size !== data.length) {
        throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: the body has ${data.length} bytes, size said ${options.size}`, { op, container, key });
      }
    }
    if (data.length > this.options.maxObjectSize) {
      throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: the body exceeds ${this.options.maxObjectSize} bytes`, { op, container, key, status: 413 });
    }
    return data;
  }
}

/** Index of the first key >= bound (or > bound when `strictlyAfter`) in byte-ordered keys. */
function firstIndex(keys: string[], bound: Buffer, strictlyAfter: boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const cmp = Buffer.compare(Buffer.from(keys[mid]!, 'utf8'), bound);
    if (cmp < 0 || (strictlyAfter && cmp === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function aborted(op: string, signal: AbortSignal): StoreError {
  return new StoreError(StoreErrorCode.Aborted, `${op}: aborted by the caller`, { op, cause: signal.reason });
}

function infoOf(key: string, object: StoredObject, withMetadata: boolean): ObjectInfo {
  const info: ObjectInfo = { key, size: object.data.length, etag: object.etag, lastModified: new Date(object.lastModified.getTime()) };
  if (withMetadata) info.metadata = { ...object.metadata };
  return info;
}

function checkContainerName(name: string, op: string): void {
  if (name.length === 0 || name.includes('/') || Buffer.byteLength(name, 'utf8') > 256) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${op}: invalid container name ${JSON.stringify(name)}`, { op, container: name, status: 400 });
  }
}

function checkKey(key: string, maxKeyLength: number, op: string, container: string): void {
  if (key.length === 0 || Buffer.byteLength(key, 'utf8') > maxKeyLength) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: a key must have 1 to ${maxKeyLength} UTF-8 bytes`, { op, container, key, status: 400 });
  }
  if (key.includes('\0') || /[\ud800-\udfff]/u.test(key)) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: a key must be valid UTF-8 without NUL`, { op, container, key, status: 400 });
  }
}

function validLabels<T extends string | null>(labels: Record<string, T>, op: string, container: string): Record<string, T> {
  for (const [key, value] of Object.entries(labels)) {
    try {
      checkLabel(key, value);
    } catch (err) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: ${(err as Error).message}`, { op, container, cause: err });
    }
  }
  return { ...labels };
}

function mergeLabels(target: Record<string, string>, changes: Record<string, string | null>): void {
  for (const [key, value] of Object.entries(changes)) {
    if (value === null) delete target[key];
    else target[key] = value;
  }
}

function validMetadata(metadata: Record<string, string>, op: string, container: string, key: string): Record<string, string> {
  let total = 0;
  for (const [name, value] of Object.entries(metadata)) {
    const problem =
      !/^[a-z0-9][a-z0-9-]*$/.test(name) ? `metadata key ${JSON.stringify(name)} must be lowercase [a-z0-9-]`
      : typeof value !== 'string' || !/^[\x20-\x7e]*$/.test(value) ? `metadata ${name}: the value must be printable ASCII`
      : value !== value.trim() ? `metadata ${name}: the value must not begin or end with spaces (HTTP would trim them)`
      : undefined;
    if (problem) throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: ${problem}`, { op, container, key });
    total += name.length + value.length;
  }
  if (total > MAX_METADATA_BYTES) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: metadata exceeds ${MAX_METADATA_BYTES} bytes`, { op, container, key });
  }
  return { ...metadata };
}
