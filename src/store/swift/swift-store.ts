/**
 * SwiftStore: the ObjectStore contract (../object-store.ts) on the native OpenStack Swift API, over undici with
 * keep-alive connection pools.
 *
 * Every call runs inside retrying() (../retry.ts) with a per-attempt deadline; idempotent calls (and puts of an
 * in-memory body) are retried on Unavailable/Timeout/Throttled. Authentication (./auth.ts) is shared and cached; a
 * 401 from the storage leads to exactly one re-authentication and one repeat of the request. Buffer puts carry
 * the body's MD5 as ETag so that Swift verifies it (422 on mismatch); stream puts are hashed on the way and checked
 * against the ETag Swift answers. Buffer puts also store the body's CRC32 in the object's metadata (CRC_METADATA):
 * a whole-object GET is checked against it as the bytes arrive (a CRC32 costs a fifth of an MD5, which halved a
 * download stream on a busy host), and against the stored MD5 (the ETag) when the object has no CRC32. The CRC32
 * is the store's own: callers never see it in `metadata`. Response bodies are always read, dumped or destroyed so
 * that no connection leaks.
 */

import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { Agent, type Dispatcher } from 'undici';
import { StoreError, StoreErrorCode, type StoreErrorDetails } from '../errors.js';
import {
  checkLabel,
  PROBE_PREFIX,
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
} from '../object-store.js';
import { DEFAULT_RETRY_POLICY, retrying, type RetryPolicy } from '../retry.js';
import { SwiftAuth, type SwiftAuthSettings, type SwiftSession } from './auth.js';
import {
  discard,
  encodeKey,
  encodeSegment,
  fromHeaderValue,
  header,
  readBody,
  readErrorText,
  safeUrl,
  silentLogger,
  statusError,
  target,
  toHeaderValue,
  transportError,
  type SwiftLogger,
} from './http.js';

export type { SwiftAuthSettings, TempAuthSettings, KeystoneSettings, PreIssuedTokenSettings, KeystoneInterface } from './auth.js';
export type { SwiftLogger } from './http.js';

export interface SwiftStoreOptions {
  auth: SwiftAuthSettings;
  /** Use this storage URL instead of the one authentication returns (OS_STORAGE_URL style). */
  storageUrl?: string;
  /** Deadline of one attempt of one call, in ms (overrides retry.attemptTimeoutMs). */
  requestTimeoutMs?: number;
  /** Retry budget; fields not given take DEFAULT_RETRY_POLICY's values. */
  retry?: Partial<RetryPolicy>;
  /** Connections kept per origin (the pool size). Default 16. */
  connections?: number;
  logger?: SwiftLogger;
  /**
   * Check whole-object downloads (Integrity error on mismatch): against the CRC32 stored at upload, or the stored
   * MD5 (ETag) for objects without one. Default true.
   */
  verifyDownloads?: boolean;
  /** Refresh a token this long before it expires. Default 60 s (at most a quarter of its lifetime). */
  authRefreshMarginMs?: number;
  /** Idle keep-alive connections are closed after this long. Default 20 s (below Swift's 60 s client_timeout). */
  keepAliveTimeoutMs?: number;
}

/** Limits Swift publishes at /info. */
interface SwiftInfo {
  maxFileSize: number;
  maxObjectNameLength: number;
  containerListingLimit: number;
  /** Policy names and aliases, when /info said. */
  policies: string[];
}

const DEFAULT_INFO: SwiftInfo = Object.freeze({
  maxFileSize: 5 * 1024 ** 3 + 2,
  maxObjectNameLength: 1024,
  containerListingLimit: 10_000,
  policies: [],
});

const USER_AGENT = 'swiftfs';
/** User-metadata key under which buffer puts store the body's CRC32 (8 hex digits); hidden from callers. */
export const CRC_METADATA = 'swiftfs-crc32';
const CRC_HEADER = `x-object-meta-${CRC_METADATA}`;
const MAX_LIST_LIMIT = 10_000;
const META_KEY = /^[a-z0-9][a-z0-9-]*$/;

interface RequestSpec {
  method: Dispatcher.HttpMethod;
  /** Path relative to the storage URL, already encoded ('' for the account, '/c', '/c/k'). */
  path: string;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  body?: Buffer | Readable | AsyncIterable<Uint8Array> | null;
}

type Details = StoreErrorDetails & { op: string };

interface CallOptions {
  idempotent: boolean;
  signal?: AbortSignal | undefined;
}

function isHexMd5(value: string | undefined): value is string {
  return value !== undefined && /^[0-9a-f]{32}$/.test(value);
}

function md5Hex(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function buildQuery(query: RequestSpec['query']): string {
  if (query === undefined) return '';
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

/** Stored ETag of a response: the hex MD5 for simple objects; undefined for manifests (quoted) and others. */
function plainEtag(headers: Dispatcher.ResponseData['headers']): string | undefined {
  const etag = header(headers, 'etag');
  return isHexMd5(etag) ? etag : undefined;
}

function metadataFrom(headers: Dispatcher.ResponseData['headers'], prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith(prefix) || value === undefined || name === CRC_HEADER) continue;
    out[name.slice(prefix.length)] = fromHeaderValue(Array.isArray(value) ? value.join(',') : value);
  }
  return out;
}

function parseContentRange(value: string | undefined): { start?: number; end?: number; total?: number } {
  if (value === undefined) return {};
  const m = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (m === null) return {};
  const out: { start?: number; end?: number; total?: number } = {};
  if (m[1] !== undefined) out.start = Number(m[1]);
  if (m[2] !== undefined) out.end = Number(m[2]);
  if (m[3] !== undefined && m[3] !== '*') out.total = Number(m[3]);
  return out;
}

/** The CRC32 stored with an object at upload (CRC_METADATA), when it has a valid one. */
function storedCrc(headers: Dispatcher.ResponseData['headers']): number | undefined {
  const value = header(headers, CRC_HEADER);
  return value !== undefined && /^[0-9a-f]{8}$/.test(value) ? Number.parseInt(value, 16) : undefined;
}

function crcHex(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, '0');
}

function objectInfoFrom(key: string, headers: Dispatcher.ResponseData['headers'], size: number): ObjectInfo {
  const info: ObjectInfo = { key, size, metadata: metadataFrom(headers, 'x-object-meta-') };
  const etag = plainEtag(headers);
  if (etag !== undefined) info.etag = etag;
  const lastModified = header(headers, 'last-modified');
  if (lastModified !== undefined) {
    const date = new Date(lastModified);
    if (!Number.isNaN(date.getTime())) info.lastModified = date;
  }
  return info;
}

function checkContainerName(op: string, container: string): void {
  if (typeof container !== 'string' || container.length === 0 || container.includes('/') || Buffer.byteLength(container) > 256) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `swift ${op}: invalid container name ${JSON.stringify(container)} (1..256 bytes, no '/')`, {
      op,
      container,
    });
  }
}

function checkKey(op: string, container: string, key: string): void {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > 1024) {
    throw new StoreError(StoreErrorCode.InvalidArgument, `swift ${op} ${container}: invalid key ${JSON.stringify(key)} (1..1024 bytes)`, { op, container, key });
  }
}

function metadataHeaders(op: string, container: string, key: string, metadata: Record<string, string> | undefined, out: Record<string, string>): void {
  if (metadata === undefined) return;
  for (const [name, value] of Object.entries(metadata)) {
    // eslint-disable-next-line no-control-regex
    if (!META_KEY.test(name) || typeof value !== 'string' || /[\x00-\x1f\x7f]/.test(value)) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `swift ${op} ${container}/${key}: metadata ${JSON.stringify(name)} must have a lowercase [a-z0-9-] name and a value without control characters`, {
        op,
        container,
        key,
      });
    }
    if (name === CRC_METADATA) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `swift ${op} ${container}/${key}: metadata ${JSON.stringify(name)} is reserved by the store (its CRC32 of the body)`, { op, container, key });
    }
    out[`x-object-meta-${name}`] = toHeaderValue(value);
  }
}

/**
 * Passes a stream's chunks through while hashing them, counting bytes and reporting progress. With a declared
 * `size`, a body of another length is an InvalidArgument error that aborts the request before it completes: the
 * chunk that would complete the declared length is held back until the source is known to end there (otherwise
 * the server would see a complete body and store a truncated object).
 */
async function* hashing(
  source: AsyncIterable<Uint8Array>,
  state: { hash: ReturnType<typeof createHash>; size: number },
  progress: () => void,
  declared: number | undefined,
  details: Details,
): AsyncGenerator<Buffer> {
  const mismatch = (what: string) =>
    new StoreError(StoreErrorCode.InvalidArgument, `swift put ${details.container}/${details.key}: the stream is ${what} than the size given (${declared} bytes)`, details);
  const toBuffer = (chunk: Uint8Array | string) => (typeof chunk === 'string' ? Buffer.from(chunk) : asBuffer(chunk));
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const step = await iterator.next();
      if (step.done) {
        finished = true;
        break;
      }
      const buf = toBuffer(step.value);
      if (declared !== undefined) {
        if (state.size + buf.length > declared) throw mismatch('longer');
        if (state.size + buf.length === declared) {
          for (;;) {
            const more = await iterator.next();
            if (more.done) break;
            if (toBuffer(more.value).length > 0) throw mismatch('longer');
          }
          finished = true;
        }
      }
      state.hash.update(buf);
      state.size += buf.length;
      progress();
      yield buf;
      if (finished) break;
    }
    if (declared !== undefined && state.size < declared) throw mismatch('shorter');
  } finally {
    if (!finished) await iterator.return?.();
  }
  progress();
}

/** Longest timer Node accepts: a stream put has no total deadline, only an inactivity one. */
const NO_TOTAL_DEADLINE_MS = 2_147_483_647;

export class SwiftStore implements ObjectStore {
  readonly description: string;

  private readonly agent: Agent;
  private readonly auth: SwiftAuth;
  private readonly policy: RetryPolicy;
  private readonly logger: SwiftLogger;
  private readonly verifyDownloads: boolean;
  private readonly capabilityCache = new Map<string, Promise<Capabilities>>();
  private infoPromise: Promise<SwiftInfo> | undefined;
  private closed = false;

  constructor(options: SwiftStoreOptions) {
    const base = { ...DEFAULT_RETRY_POLICY, ...(options.retry ?? {}) };
    if (options.requestTimeoutMs !== undefined) base.attemptTimeoutMs = options.requestTimeoutMs;
    this.policy = Object.freeze(base);
    this.logger = options.logger ?? silentLogger;
    this.verifyDownloads = options.verifyDownloads ?? true;
    const timeout = this.policy.attemptTimeoutMs;
    this.agent = new Agent({
      connections: options.connections ?? 16,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 20_000,
      keepAliveMaxTimeout: Math.max(options.keepAliveTimeoutMs ?? 20_000, 20_000),
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: Math.min(timeout, 10_000) },
    });
    this.auth = new SwiftAuth({
      settings: options.auth,
      ...(options.storageUrl === undefined ? {} : { storageUrl: options.storageUrl }),
      dispatcher: this.agent,
      timeoutMs: timeout,
      ...(options.authRefreshMarginMs === undefined ? {} : { refreshMarginMs: options.authRefreshMarginMs }),
      logger: this.logger,
    });
    const where = options.storageUrl !== undefined ? safeUrl(options.storageUrl) : this.auth.authUrl ?? '?';
    const how = options.auth.type === 'tempauth' ? `tempauth ${options.auth.user}` : options.auth.type === 'keystone' ? `keystone ${this.auth.identity}${options.auth.region === undefined ? '' : `, region ${options.auth.region}`}` : 'pre-issued token';
    this.description = `swift ${where} (${how})`;
  }

  /** How many authentication requests this store made (for tests and metrics). */
  get authentications(): number {
    return this.auth.authentications;
  }

  // ---------------------------------------------------------------- plumbing

  /** Runs one store call: retries per the policy, maps anything thrown to a StoreError. */
  private run<T>(details: Details, call: CallOptions, fn: (signal: AbortSignal, attempt: number) => Promise<T>, policy: RetryPolicy = this.policy): Promise<T> {
    if (this.closed) return Promise.reject(new StoreError(StoreErrorCode.Internal, `swift ${target(details.op, details.container, details.key)}: the store is closed`, details));
    return retrying(
      async ({ signal, attempt }) => {
        try {
          return await fn(signal, attempt);
        } catch (err) {
          throw transportError(err, details);
        }
      },
      {
        policy,
        idempotent: call.idempotent,
        signal: call.signal,
        onRetry: (err, attempt, delayMs) => {
          this.logger.warn({ op: details.op, container: details.container, key: details.key, code: err.code, status: err.status, attempt, delayMs }, 'swift: retrying');
        },
      },
    );
  }

  private async dispatch(session: SwiftSession, spec: RequestSpec, signal: AbortSignal): Promise<Dispatcher.ResponseData> {
    const url = new URL(session.storageUrl);
    const headers: Record<string, string> = { 'x-auth-token': session.token, 'user-agent': USER_AGENT, ...(spec.headers ?? {}) };
    return this.agent.request({
      origin: url.origin,
      path: url.pathname.replace(/\/+$/, '') + spec.path + buildQuery(spec.query),
      method: spec.method,
      headers,
      body: (spec.body ?? null) as Buffer | Readable | null,
      signal,
      // undici closes the connection after a HEAD by default (for servers that send a body anyway); Swift does not.
      ...(spec.method === 'HEAD' ? { reset: false } : {}),
    });
  }

  /**
   * Sends a request with the current token; on 401 authenticates again (once, shared) and repeats it. A body
   * that cannot be replayed (a stream) is not repeated: the caller gets Unavailable and may send it again.
   */
  private async exchange(details: Details, spec: RequestSpec, signal: AbortSignal, replayable = true): Promise<Dispatcher.ResponseData> {
    let session = await this.auth.session(signal);
    const started = performance.now();
    let res = await this.dispatch(session, spec, signal);
    if (res.statusCode === 401) {
      await discard(res.body);
      this.logger.info({ op: details.op, container: details.container, key: details.key }, 'swift: token rejected (401), authenticating again');
      session = await this.auth.renew(session, signal);
      if (!replayable) {
        throw new StoreError(
          StoreErrorCode.Unavailable,
          `swift ${target(details.op, details.container, details.key)}: the token was rejected during a streamed upload (authenticated again; the upload must be repeated)`,
          { ...details, status: 401 },
        );
      }
      res = await this.dispatch(session, spec, signal);
      if (res.statusCode === 401) {
        await discard(res.body);
        throw new StoreError(
          StoreErrorCode.Auth,
          `swift ${target(details.op, details.container, details.key)}: the storage rejected a freshly issued token for ${this.auth.identity} (HTTP 401)`,
          { ...details, status: 401 },
        );
      }
    }
    this.logger.debug({ op: details.op, method: spec.method, container: details.container, key: details.key, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'swift: request');
    return res;
  }

  /** A StoreError for an unexpected answer; consumes the body. */
  private async failure(res: Dispatcher.ResponseData, details: Details, detail?: string): Promise<StoreError> {
    const text = res.body === undefined ? '' : await readErrorText(res.body);
    return statusError(res.statusCode, details, detail ?? text);
  }

  private objectPath(container: string, key: string): string {
    return `/${encodeSegment(container)}/${encodeKey(key)}`;
  }

  // ---------------------------------------------------------------- capabilities

  private info(signal?: AbortSignal): Promise<SwiftInfo> {
    if (this.infoPromise === undefined) {
      const attempt = this.fetchInfo(signal);
      this.infoPromise = attempt;
      attempt.catch(() => {
        if (this.infoPromise === attempt) this.infoPromise = undefined;
      });
    }
    return this.infoPromise;
  }

  /** GET {proxy}/info (no auth): the cluster's limits. A cluster that hides /info gets Swift's defaults. */
  private async fetchInfo(signal?: AbortSignal): Promise<SwiftInfo> {
    const details: Details = { op: 'info' };
    return this.run(details, { idempotent: true, signal }, async (attemptSignal) => {
      const session = await this.auth.session(attemptSignal);
      const url = new URL(session.storageUrl);
      const versionAt = url.pathname.search(/\/v1(\.0)?(\/|$)/);
      const root = versionAt >= 0 ? url.pathname.slice(0, versionAt) : '';
      const res = await this.agent.request({ origin: url.origin, path: `${root}/info`, method: 'GET', headers: { 'user-agent': USER_AGENT, accept: 'application/json' }, signal: attemptSignal });
      if (res.statusCode >= 500) throw await this.failure(res, details);
      if (res.statusCode !== 200) {
        await discard(res.body);
        this.logger.info({ status: res.statusCode }, 'swift: /info not available, assuming default limits');
        return DEFAULT_INFO;
      }
      let body: { swift?: Record<string, unknown> };
      try {
        body = (await res.body.json()) as typeof body;
      } catch {
        return DEFAULT_INFO;
      }
      const swift = body.swift ?? {};
      const num = (name: string, fallback: number) => (typeof swift[name] === 'number' ? (swift[name] as number) : fallback);
      const policies: string[] = [];
      if (Array.isArray(swift['policies'])) {
        for (const p of swift['policies'] as { name?: unknown; aliases?: unknown }[]) {
          if (typeof p.name === 'string') policies.push(p.name);
          if (typeof p.aliases === 'string') for (const a of p.aliases.split(',')) if (a.trim() !== '' && !policies.includes(a.trim())) policies.push(a.trim());
        }
      }
      return {
        maxFileSize: num('max_file_size', DEFAULT_INFO.maxFileSize),
        maxObjectNameLength: num('max_object_name_length', DEFAULT_INFO.maxObjectNameLength),
        containerListingLimit: num('container_listing_limit', DEFAULT_INFO.containerListingLimit),
        policies,
      };
    });
  }

  capabilities(container?: string): Promise<Capabilities> {
    const cacheKey = container ?? '';
    let cached = this.capabilityCache.get(cacheKey);
    if (cached === undefined) {
      cached = this.probeCapabilities(container);
      this.capabilityCache.set(cacheKey, cached);
      const attempt = cached;
      // A failed probe is not remembered: the next call probes again.
      attempt.catch(() => {
        if (this.capabilityCache.get(cacheKey) === attempt) this.capabilityCache.delete(cacheKey);
      });
    }
    return cached;
  }

  private async probeCapabilities(container: string | undefined): Promise<Capabilities> {
    const info = await this.info();
    let conditionalCreate: boolean;
    if (container !== undefined) {
      checkContainerName('capabilities', container);
      conditionalCreate = await this.probeCreateOnly(container);
    } else {
      conditionalCreate = await this.probeWithoutContainer();
    }
    return { kind: 'swift', conditionalCreate, nativeLabels: true, maxObjectSize: info.maxFileSize, maxKeyLength: info.maxObjectNameLength };
  }

  /** Without a container: reuse a container's result if one was probed, else probe in a temporary container. */
  private async probeWithoutContainer(): Promise<boolean> {
    for (const [name, caps] of this.capabilityCache) {
      if (name === '') continue;
      try {
        return (await caps).conditionalCreate;
      } catch {
        // try the next one
      }
    }
    const temporary = `swiftfs-probe-${randomUUID()}`;
    try {
      await this.createContainer(temporary);
    } catch (err) {
      if (err instanceof StoreError && (err.code === StoreErrorCode.Forbidden || err.code === StoreErrorCode.Auth)) return false;
      throw err;
    }
    try {
      return await this.probeCreateOnly(temporary);
    } finally {
      await this.deleteContainer(temporary).catch((err: unknown) => this.logger.warn({ container: temporary, err: String(err) }, 'swift: could not delete the probe container'));
    }
  }

  /** PUT If-None-Match: * twice on a probe object: 201 then 412 means create-only puts are honoured. */
  private async probeCreateOnly(container: string): Promise<boolean> {
    const key = `${PROBE_PREFIX}${randomUUID()}`;
    const details: Details = { op: 'capabilities', container, key };
    const empty = Buffer.alloc(0);
    const putOnce = () =>
      this.run(details, { idempotent: true }, async (signal) => {
        const res = await this.exchange(details, { method: 'PUT', path: this.objectPath(container, key), headers: { 'if-none-match': '*', 'content-type': 'application/octet-stream' }, body: empty }, signal);
        if (res.statusCode >= 500 || res.statusCode === 404 || res.statusCode === 403 || res.statusCode === 429 || res.statusCode === 498) throw await this.failure(res, details);
        await discard(res.body);
        return res.statusCode;
      });
    try {
      const first = await putOnce();
      if (first !== 201) {
        this.logger.info({ container, status: first }, 'swift: create-only PUT refused by the cluster; conditionalCreate is off');
        return false;
      }
      const second = await putOnce();
      const honoured = second === 412;
      if (!honoured) this.logger.warn({ container, status: second }, 'swift: the cluster ignores If-None-Match: * on PUT; conditionalCreate is off');
      return honoured;
    } finally {
      await this.delete(container, key).catch((err: unknown) => this.logger.warn({ container, key, err: String(err) }, 'swift: could not delete the probe object'));
    }
  }

  // ---------------------------------------------------------------- containers

  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<{ created: boolean }> {
    const details: Details = { op: 'createContainer', container: name };
    checkContainerName(details.op, name);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(options.labels ?? {})) {
      this.checkLabelOrThrow(details, k, v);
      headers[`x-container-meta-${k}`] = v;
    }
    if (options.storagePolicy !== undefined) headers['x-storage-policy'] = options.storagePolicy;
    return this.run(details, { idempotent: true }, async (signal) => {
      const res = await this.exchange(details, { method: 'PUT', path: `/${encodeSegment(name)}`, headers }, signal);
      if (res.statusCode === 201 || res.statusCode === 202) {
        await discard(res.body);
        return { created: res.statusCode === 201 };
      }
      if (res.statusCode === 400 && options.storagePolicy !== undefined) {
        const text = await readErrorText(res.body);
        if (/polic/i.test(text)) {
          const known = (await this.info().catch(() => DEFAULT_INFO)).policies;
          throw new StoreError(
            StoreErrorCode.InvalidArgument,
            `swift createContainer ${name}: unknown storage policy ${JSON.stringify(options.storagePolicy)}${known.length > 0 ? ` (the cluster has: ${known.join(', ')})` : ''}`,
            { ...details, status: 400 },
          );
        }
        throw statusError(400, details, text);
      }
      if (res.statusCode === 409) {
        throw await this.failure(res, details, `container ${name} exists with another storage policy`);
      }
      throw await this.failure(res, details);
    });
  }

  async headContainer(name: string): Promise<ContainerInfo> {
    const details: Details = { op: 'headContainer', container: name };
    checkContainerName(details.op, name);
    return this.run(details, { idempotent: true }, async (signal) => {
      const res = await this.exchange(details, { method: 'HEAD', path: `/${encodeSegment(name)}` }, signal);
      if (res.statusCode !== 204 && res.statusCode !== 200) throw await this.failure(res, details);
      await discard(res.body);
      const info: ContainerInfo = { name, labels: metadataFrom(res.headers, 'x-container-meta-') };
      const count = Number(header(res.headers, 'x-container-object-count'));
      const bytes = Number(header(res.headers, 'x-container-bytes-used'));
      const policy = header(res.headers, 'x-storage-policy');
      if (Number.isFinite(count)) info.objectCount = count;
      if (Number.isFinite(bytes)) info.bytesUsed = bytes;
      if (policy !== undefined) info.storagePolicy = policy;
      return info;
    });
  }

  async deleteContainer(name: string): Promise<void> {
    const details: Details = { op: 'deleteContainer', container: name };
    checkContainerName(details.op, name);
    return this.run(details, { idempotent: true }, async (signal) => {
      const res = await this.exchange(details, { method: 'DELETE', path: `/${encodeSegment(name)}` }, signal);
      if (res.statusCode === 204 || res.statusCode === 200 || res.statusCode === 404) {
        await discard(res.body);
        return;
      }
      if (res.statusCode === 409) throw await this.failure(res, details, `container ${name} is not empty`);
      throw await this.failure(res, details);
    });
  }

  async listContainers(prefix?: string): Promise<string[]> {
    const details: Details = { op: 'listContainers' };
    const names: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const page = await this.run(details, { idempotent: true }, async (signal) => {
        const res = await this.exchange(details, { method: 'GET', path: '', query: { format: 'json', limit: MAX_LIST_LIMIT, prefix, marker }, headers: { accept: 'application/json' } }, signal);
        if (res.statusCode === 204) {
          await discard(res.body);
          return [] as { name: string }[];
        }
        if (res.statusCode !== 200) throw await this.failure(res, details);
        return (await res.body.json()) as { name: string }[];
      });
      for (const entry of page) names.push(entry.name);
      if (page.length < MAX_LIST_LIMIT || page.length === 0) return names;
      marker = page[page.length - 1]!.name;
    }
  }

  async setLabels(container: string, labels: Record<string, string | null>): Promise<void> {
    const details: Details = { op: 'setLabels', container };
    checkContainerName(details.op, container);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) {
      this.checkLabelOrThrow(details, k, v);
      if (v === null) headers[`x-remove-container-meta-${k}`] = 'x';
      else headers[`x-container-meta-${k}`] = v;
    }
    if (Object.keys(headers).length === 0) {
      await this.headContainer(container); // still reports a missing container
      return;
    }
    return this.run(details, { idempotent: true }, async (signal) => {
      const res = await this.exchange(details, { method: 'POST', path: `/${encodeSegment(container)}`, headers }, signal);
      if (res.statusCode !== 204 && res.statusCode !== 202 && res.statusCode !== 200) throw await this.failure(res, details);
      await discard(res.body);
    });
  }

  async getLabels(container: string): Promise<Record<string, string>> {
    return (await this.headContainer(container)).labels;
  }

  private checkLabelOrThrow(details: Details, key: string, value: string | null): void {
    try {
      checkLabel(key, value);
    } catch (cause) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `swift ${target(details.op, details.container)}: ${(cause as Error).message}`, { ...details, cause });
    }
  }

  // ---------------------------------------------------------------- objects

  async get(container: string, key: string, options: GetOptions = {}): Promise<GetResult> {
    const details: Details = { op: 'get', container, key };
    checkContainerName(details.op, container);
    checkKey(details.op, container, key);
    const range = options.range;
    if (range !== undefined && (!Number.isSafeInteger(range.offset) || range.offset < 0 || (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)))) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `swift get ${container}/${key}: invalid range offset ${range.offset} length ${range.length}`, details);
    }
    const headers: Record<string, string> = {};
    const ranged = range !== undefined && (range.offset > 0 || range.length !== undefined);
    if (range !== undefined && ranged) {
      // A zero-length range still asks for one byte, so that the answer carries the object's info; it is dropped.
      const last = range.length === undefined ? '' : String(range.offset + Math.max(range.length, 1) - 1);
      headers['range'] = `bytes=${range.offset}-${last}`;
    }
    return this.run(details, { idempotent: true, signal: options.signal }, async (signal) => {
      const res = await this.exchange(details, { method: 'GET', path: this.objectPath(container, key), headers }, signal);
      const contentLength = Number(header(res.headers, 'content-length'));
      const length = Number.isSafeInteger(contentLength) ? contentLength : undefined;
      if (res.statusCode === 206) {
        const cr = parseContentRange(header(res.headers, 'content-range'));
        let body = await readBody(res.body, length, details);
        if (range!.length === 0) body = body.subarray(0, 0);
        else if (range!.length !== undefined && body.length > range!.length) body = body.subarray(0, range!.length);
        return { body, info: objectInfoFrom(key, res.headers, cr.total ?? range!.offset + body.length) };
      }
      if (res.statusCode === 416) {
        // The range starts at or past the end: an empty body, per the contract.
        const cr = parseContentRange(header(res.headers, 'content-range'));
        await discard(res.body);
        if (cr.total === undefined) {
          const info = await this.headOnce(details, container, key, signal);
          return { body: Buffer.alloc(0), info };
        }
        return { body: Buffer.alloc(0), info: objectInfoFrom(key, res.headers, cr.total) };
      }
      if (res.statusCode !== 200) throw await this.failure(res, details);
      // Verified as the chunks arrive: by the stored CRC32 when the object has one (cheap), else by its MD5 (ETag).
      const expectedCrc = this.verifyDownloads ? storedCrc(res.headers) : undefined;
      const expectedMd5 = this.verifyDownloads && expectedCrc === undefined ? plainEtag(res.headers) : undefined;
      const hash = expectedMd5 === undefined ? undefined : createHash('md5');
      let crc = 0;
      const onChunk = expectedCrc !== undefined ? (chunk: Buffer) => void (crc = crc32(chunk, crc)) : hash !== undefined ? (chunk: Buffer) => void hash.update(chunk) : undefined;
      const whole = await readBody(res.body, length, details, onChunk);
      const info = objectInfoFrom(key, res.headers, whole.length);
      if (expectedCrc !== undefined && crc >>> 0 !== expectedCrc) {
        throw new StoreError(StoreErrorCode.Integrity, `swift get ${container}/${key}: the downloaded bytes do not match the stored CRC32`, details);
      }
      if (hash !== undefined && hash.digest('hex') !== expectedMd5) {
        throw new StoreError(StoreErrorCode.Integrity, `swift get ${container}/${key}: the downloaded bytes do not match the stored MD5`, details);
      }
      if (!ranged || range === undefined) return { body: whole, info };
      // A server that ignored the Range header: cut the range out locally.
      const start = Math.min(range.offset, whole.length);
      const end = range.length === undefined ? whole.length : Math.min(whole.length, range.offset + range.length);
      return { body: whole.subarray(start, end), info };
    });
  }

  private async headOnce(details: Details, container: string, key: string, signal: AbortSignal): Promise<ObjectInfo> {
    const res = await this.exchange({ ...details, op: 'head' }, { method: 'HEAD', path: this.objectPath(container, key) }, signal);
    if (res.statusCode !== 200 && res.statusCode !== 204) throw await this.failure(res, { ...details, op: 'head' });
    await discard(res.body);
    const size = Number(header(res.headers, 'content-length'));
    return objectInfoFrom(key, res.headers, Number.isFinite(size) ? size : 0);
  }

  async head(container: string, key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const details: Details = { op: 'head', container, key };
    checkContainerName(details.op, container);
    checkKey(details.op, container, key);
    return this.run(details, { idempotent: true, signal: options.signal }, (signal) => this.headOnce(details, container, key, signal));
  }

  async put(container: string, key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    const details: Details = { op: 'put', container, key };
    checkContainerName(details.op, container);
    checkKey(details.op, container, key);
    const headers: Record<string, string> = { 'content-type': options.contentType ?? 'application/octet-stream' };
    metadataHeaders(details.op, container, key, options.metadata, headers);
    if (options.ifNoneMatch !== undefined) {
      if (options.ifNoneMatch !== '*') throw new StoreError(StoreErrorCode.InvalidArgument, `swift put ${container}/${key}: ifNoneMatch must be '*'`, details);
      const caps = await this.capabilities(container);
      if (!caps.conditionalCreate) {
        throw new StoreError(StoreErrorCode.NotSupported, `swift put ${container}/${key}: this cluster does not honour create-only puts (If-None-Match: *)`, details);
      }
      headers['if-none-match'] = '*';
    }
    if (body instanceof Uint8Array) return this.putBuffer(details, container, key, asBuffer(body), headers, options);
    return this.putStream(details, container, key, body, headers, options);
  }

  private putBuffer(details: Details, container: string, key: string, body: Buffer, headers: Record<string, string>, options: PutOptions): Promise<PutResult> {
    const md5 = md5Hex(body);
    headers['etag'] = md5;
    headers[CRC_HEADER] = crcHex(crc32(body));
    return this.run(details, { idempotent: true, signal: options.signal }, async (signal, attempt) => {
      const res = await this.exchange(details, { method: 'PUT', path: this.objectPath(container, key), headers, body }, signal);
      if (res.statusCode === 201 || res.statusCode === 200) {
        await discard(res.body);
        const etag = header(res.headers, 'etag');
        if (isHexMd5(etag) && etag !== md5) {
          throw new StoreError(StoreErrorCode.Integrity, `swift put ${container}/${key}: the stored MD5 differs from the body's`, { ...details, status: res.statusCode });
        }
        return { etag: md5 };
      }
      if (res.statusCode === 412 && options.ifNoneMatch === '*' && attempt > 0) {
        // A retried create-only put: an earlier attempt may have created the object. If it holds our bytes, it was ours.
        await discard(res.body);
        const stored = await this.headOnce(details, container, key, signal).catch((err: unknown) => {
          if (err instanceof StoreError && err.code === StoreErrorCode.NotFound) return undefined;
          throw err;
        });
        if (stored !== undefined && stored.etag === md5) {
          this.logger.info({ container, key }, 'swift: create-only put retried after an unknown outcome; the stored object is ours');
          return { etag: md5 };
        }
        throw new StoreError(StoreErrorCode.PreconditionFailed, `swift put ${container}/${key}: the object already exists`, { ...details, status: 412 });
      }
      if (res.statusCode === 412) {
        await discard(res.body);
        throw new StoreError(StoreErrorCode.PreconditionFailed, `swift put ${container}/${key}: the object already exists`, { ...details, status: 412 });
      }
      if (res.statusCode === 422) throw await this.failure(res, details, 'Swift found that the body does not match its MD5');
      throw await this.failure(res, details);
    });
  }

  private putStream(details: Details, container: string, key: string, body: Readable | AsyncIterable<Uint8Array>, headers: Record<string, string>, options: PutOptions): Promise<PutResult> {
    if (options.size !== undefined) {
      if (!Number.isSafeInteger(options.size) || options.size < 0) throw new StoreError(StoreErrorCode.InvalidArgument, `swift put ${container}/${key}: invalid size ${options.size}`, details);
      headers['content-length'] = String(options.size);
    }
    let used = false;
    // A long upload is fine as long as it moves: the deadline is one of inactivity (no chunk taken from the body for
    // attemptTimeoutMs, or no answer within attemptTimeoutMs after the last one), not of the whole transfer.
    const idleMs = this.policy.attemptTimeoutMs;
    const streamPolicy: RetryPolicy = { ...this.policy, attemptTimeoutMs: NO_TOTAL_DEADLINE_MS };
    return this.run(details, { idempotent: false, signal: options.signal }, async (signal) => {
      if (used) throw new StoreError(StoreErrorCode.Internal, `swift put ${container}/${key}: a stream body cannot be sent twice`, details);
      used = true;
      const watchdog = new AbortController();
      const timer = setTimeout(() => watchdog.abort(new DOMException(`no upload progress for ${idleMs} ms`, 'TimeoutError')), idleMs);
      const state = { hash: createHash('md5'), size: 0 };
      const source = Readable.from(hashing(body, state, () => timer.refresh(), options.size, details), { objectMode: false });
      let res: Dispatcher.ResponseData;
      try {
        res = await this.exchange(details, { method: 'PUT', path: this.objectPath(container, key), headers, body: source }, AbortSignal.any([signal, watchdog.signal]), false);
      } catch (err) {
        if (watchdog.signal.aborted && !signal.aborted) {
          throw new StoreError(StoreErrorCode.Timeout, `swift put ${container}/${key}: no upload progress for ${idleMs} ms (${state.size} bytes sent)`, { ...details, cause: err });
        }
        throw err;
      } finally {
        clearTimeout(timer);
        if (!source.destroyed && !source.readableEnded) source.destroy();
      }
      if (res.statusCode === 201 || res.statusCode === 200) {
        await discard(res.body);
        const md5 = state.hash.digest('hex');
        const etag = header(res.headers, 'etag');
        if (isHexMd5(etag) && etag !== md5) {
          throw new StoreError(StoreErrorCode.Integrity, `swift put ${container}/${key}: the stored MD5 differs from the streamed bytes' (${state.size} bytes sent)`, { ...details, status: res.statusCode });
        }
        return { etag: md5 };
      }
      if (res.statusCode === 412) {
        await discard(res.body);
        throw new StoreError(StoreErrorCode.PreconditionFailed, `swift put ${container}/${key}: the object already exists`, { ...details, status: 412 });
      }
      throw await this.failure(res, details);
    }, streamPolicy);
  }

  async delete(container: string, key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const details: Details = { op: 'delete', container, key };
    checkContainerName(details.op, container);
    checkKey(details.op, container, key);
    return this.run(details, { idempotent: true, signal: options.signal }, async (signal) => {
      const res = await this.exchange(details, { method: 'DELETE', path: this.objectPath(container, key) }, signal);
      if (res.statusCode === 204 || res.statusCode === 200 || res.statusCode === 404) {
        await discard(res.body);
        return;
      }
      throw await this.failure(res, details);
    });
  }

  async list(container: string, options: ListOptions = {}): Promise<ListPage> {
    const details: Details = { op: 'list', container };
    checkContainerName(details.op, container);
    const limit = Math.min(Math.max(1, Math.floor(options.limit ?? 1000)), MAX_LIST_LIMIT);
    // Swift lists names strictly after the marker and, with a delimiter, skips a marker that is a common prefix.
    const marker = options.after;
    const delimiter = options.delimiter === '' ? undefined : options.delimiter;
    return this.run(details, { idempotent: true, signal: options.signal }, async (signal) => {
      const res = await this.exchange(
        details,
        { method: 'GET', path: `/${encodeSegment(container)}`, query: { format: 'json', limit, prefix: options.prefix, delimiter, marker }, headers: { accept: 'application/json' } },
        signal,
      );
      let entries: SwiftListingEntry[];
      if (res.statusCode === 204) {
        await discard(res.body);
        entries = [];
      } else if (res.statusCode === 200) {
        entries = (await res.body.json()) as SwiftListingEntry[];
      } else {
        throw await this.failure(res, details);
      }
      const page: ListPage = { objects: [], prefixes: [] };
      for (const entry of entries) {
        if (entry.subdir !== undefined) {
          page.prefixes.push(entry.subdir);
          continue;
        }
        const info: ObjectInfo = { key: entry.name!, size: entry.bytes ?? 0 };
        if (isHexMd5(entry.hash) && entry.slo_etag === undefined) info.etag = entry.hash;
        if (entry.last_modified !== undefined) {
          const date = new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(entry.last_modified) ? entry.last_modified : `${entry.last_modified}Z`);
          if (!Number.isNaN(date.getTime())) info.lastModified = date;
        }
        page.objects.push(info);
      }
      if (entries.length >= limit) {
        const last = entries[entries.length - 1]!;
        page.next = last.subdir ?? last.name!;
      }
      return page;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.auth.close();
    await Promise.race([this.agent.close(), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    await this.agent.destroy().catch(() => {});
  }
}

interface SwiftListingEntry {
  name?: string;
  subdir?: string;
  bytes?: number;
  hash?: string;
  last_modified?: string;
  content_type?: string;
  slo_etag?: string;
}

export function createSwiftStore(options: SwiftStoreOptions): SwiftStore {
  return new SwiftStore(options);
}
