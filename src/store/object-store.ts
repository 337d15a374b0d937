/**
 * The one interface between swiftfs and an object store (OpenStack Swift, S3, or memory for unit tests).
 *
 * CONTRACT (every implementation must keep it; test/conformance checks it against all of them):
 *
 * Names
 *  - A container is a Swift container or an S3 bucket. Keys are UTF-8 strings of at most 1024 bytes; `/` is an
 *    ordinary character (pseudo-directories exist only through `delimiter` in list()).
 *
 * Results and errors
 *  - A promise resolves only when the backend really did what was asked: a PUT resolves after the backend
 *    acknowledged it with a success status (201/200), never on a status that merely "is not an error".
 *  - Every failure rejects with a StoreError (./errors.ts) with a stable code, the original failure as `cause`,
 *    and no credentials in its message. NotFound for a missing object or container, PreconditionFailed for a
 *    create-only put that lost, Auth for rejected credentials (after one re-authentication), Timeout when no
 *    answer came within the deadline, Unavailable for refused/reset connections and 5xx, Throttled for 429/498.
 *
 * Time and retries
 *  - Every call has a deadline (the store's configured request timeout, or `signal`). A server that accepts the
 *    connection and never answers yields Timeout; it never hangs the caller.
 *  - Idempotent calls (get, head, list, delete, container calls, and put of a Uint8Array body) are retried on
 *    retryable errors with exponential backoff and jitter, up to the store's retry budget. A put whose body is a
 *    stream is not retried (the stream cannot be replayed): the caller sees the first failure.
 *  - A create-only put (`ifNoneMatch: '*'`) that is retried after an unknown outcome and then meets 412 is
 *    resolved by comparing the stored object's MD5 with the body's: if they match, the put succeeded (it was
 *    ours); otherwise PreconditionFailed.
 *
 * Semantics
 *  - get() with a range returns exactly the bytes [offset, offset+length) clipped to the object's size; a range
 *    starting at or past the end returns an empty buffer. Without a range, the whole object.
 *  - put() replaces the object atomically (readers see the old or the new object, never a mix). With
 *    `ifNoneMatch: '*'` it only creates: it fails with PreconditionFailed if the object exists. Use it only when
 *    `capabilities().conditionalCreate` is true; where it is false the store rejects it with NotSupported rather
 *    than silently writing.
 *  - delete() is idempotent: deleting a missing object resolves.
 *  - list() returns one page in lexicographic (byte) order of keys, at most `limit` entries (objects plus
 *    prefixes); `next` is set when more may follow and is passed back as `after` (keys strictly after it).
 *  - createContainer() creates if missing and resolves either way (`created` says which); labels given are set.
 *  - deleteContainer() is idempotent for a missing container and fails with Conflict when it is not empty.
 *  - Labels are small key/value metadata on a container (Swift: X-Container-Meta-*; S3: a marker object, see
 *    LABELS_OBJECT, since bucket tagging is a stub on Swift's S3 layer). Keys are lowercase [a-z0-9-], values
 *    printable ASCII of at most 256 bytes. setLabels() merges: a null value removes that key.
 *  - capabilities() is found by probing the backend once (cached), not assumed from its kind.
 */

import type { Readable } from 'node:stream';

/** A body for put(): bytes in memory (retryable) or a stream (sent chunked, not retryable). */
export type PutBody = Uint8Array | Readable | AsyncIterable<Uint8Array>;

export interface ObjectInfo {
  key: string;
  size: number;
  /** Hex MD5 of the content for simple objects, unquoted; absent where the backend has none. */
  etag?: string;
  lastModified?: Date;
  /** User metadata (lowercase keys); only filled by head() and get(). */
  metadata?: Record<string, string>;
}

export interface ByteRange {
  offset: number;
  /** Omitted: to the end of the object. */
  length?: number;
}

export interface GetOptions {
  range?: ByteRange;
  signal?: AbortSignal;
}

export interface GetResult {
  body: Buffer;
  info: ObjectInfo;
}

export interface PutOptions {
  /** Create only: fail with PreconditionFailed if the object exists. */
  ifNoneMatch?: '*';
  /** User metadata; lowercase keys [a-z0-9-], small values (the whole set under ~2 KiB). */
  metadata?: Record<string, string>;
  contentType?: string;
  /** Length of a stream body when known (lets S3 send a plain PUT). */
  size?: number;
  signal?: AbortSignal;
}

export interface PutResult {
  etag?: string;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  /** Return keys strictly after this one (a previous page's `next`). */
  after?: string;
  /** Page size; the store may return fewer. Default 1000. */
  limit?: number;
  signal?: AbortSignal;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Common prefixes when `delimiter` is set, each ending with the delimiter. */
  prefixes: string[];
  /** Set when more entries may follow; pass as `after` for the next page. */
  next?: string;
}

export interface ContainerInfo {
  name: string;
  objectCount?: number;
  bytesUsed?: number;
  storagePolicy?: string;
  labels: Record<string, string>;
}

export interface CreateContainerOptions {
  labels?: Record<string, string>;
  /** Swift storage policy (ignored by S3, which has none). */
  storagePolicy?: string;
}

export interface Capabilities {
  /** What kind of backend this is: for display and for backend-specific advice, never for feature tests. */
  kind: 'swift' | 's3' | 'memory';
  /** put() with ifNoneMatch '*' is honoured (201, or 412 when the object exists). */
  conditionalCreate: boolean;
  /**
   * Create-only puts are atomic: of concurrent create-only puts of one name exactly one succeeds. Absent means
   * no: Swift's object server checks If-None-Match when a PUT starts, so two racing ones can both succeed (the
   * later timestamp stays). Only a backend known to serialise them says true (the memory store). The single-
   * writer lease (core/ownership.ts) skips its settle wait where this holds.
   */
  createOnlyAtomic?: boolean;
  /** Labels are stored as real container metadata (not a marker object). */
  nativeLabels: boolean;
  /** Largest single object put() accepts. */
  maxObjectSize: number;
  /** Longest key the backend accepts, in bytes. */
  maxKeyLength: number;
}

export interface ObjectStore {
  /** A short description for logs and status ("swift http://127.0.0.1:8080 (tempauth test:tester)"); no secrets. */
  readonly description: string;

  capabilities(container?: string): Promise<Capabilities>;

  createContainer(name: string, options?: CreateContainerOptions): Promise<{ created: boolean }>;
  headContainer(name: string): Promise<ContainerInfo>;
  deleteContainer(name: string): Promise<void>;
  /** Containers of the account, by name prefix, in order. */
  listContainers(prefix?: string): Promise<string[]>;
  setLabels(container: string, labels: Record<string, string | null>): Promise<void>;
  getLabels(container: string): Promise<Record<string, string>>;

  get(container: string, key: string, options?: GetOptions): Promise<GetResult>;
  put(container: string, key: string, body: PutBody, options?: PutOptions): Promise<PutResult>;
  head(container: string, key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo>;
  delete(container: string, key: string, options?: { signal?: AbortSignal }): Promise<void>;
  list(container: string, options?: ListOptions): Promise<ListPage>;

  /** Releases connections. The store is unusable afterwards. */
  close(): Promise<void>;
}

/** Object name of the labels marker where a backend has no container metadata (S3). */
export const LABELS_OBJECT = '.swiftfs-labels.json';

/** Key prefix of the objects capabilities() writes and deletes while probing (a listing may still show one). */
export const PROBE_PREFIX = '.swiftfs-probe/';

/** Walks every page of a listing. */
export async function* listAll(store: ObjectStore, container: string, options: ListOptions = {}): AsyncGenerator<ObjectInfo | { prefix: string }> {
  let after = options.after;
  for (;;) {
    const page = await store.list(container, { ...options, ...(after === undefined ? {} : { after }) });
    const merged: (ObjectInfo | { prefix: string })[] = [...page.objects, ...page.prefixes.map((prefix) => ({ prefix }))];
    // Stores list in byte order of the UTF-8 names, which is not JavaScript's UTF-16 string order.
    merged.sort((a, b) => Buffer.compare(Buffer.from('prefix' in a ? a.prefix : a.key), Buffer.from('prefix' in b ? b.prefix : b.key)));
    yield* merged;
    if (page.next === undefined) return;
    after = page.next;
  }
}

/** Validates a label key and value against the contract; throws a plain Error naming what is wrong. */
export function checkLabel(key: string, value: string | null): void {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(key)) throw new Error(`label key ${JSON.stringify(key)} must be lowercase [a-z0-9-], at most 63 characters`);
  if (value !== null && (value.length > 256 || !/^[\x20-\x7e]*$/.test(value))) {
    throw new Error(`label ${key}: value must be printable ASCII of at most 256 characters`);
  }
}
