/**
 * S3Store: the ObjectStore contract (../object-store.ts) over the S3 API, with @aws-sdk/client-s3.
 *
 * Works against AWS and S3 clones, and is tested against OpenStack Swift 2.30's s3api layer, which shapes a few
 * choices (see /work/shared/reference/protocols.md §5):
 *  - Checksums only WHEN_REQUIRED: the SDK's default aws-chunked uploads are refused by Swift < 2.36.
 *  - Path-style addressing whenever an endpoint is given (no wildcard DNS needed).
 *  - The SDK's own retries are off (maxAttempts 1): `retrying()` (../retry.ts) is the one retry policy, and every
 *    attempt gets its own deadline through the abort signal passed to send().
 *  - Create-only puts (If-None-Match: *) are used only where a probe showed the backend honours them: Swift 2.30
 *    answers 501, an S3 clone might silently ignore the header. Where unsupported, put() rejects with NotSupported
 *    before sending anything, so nothing is ever written unconditionally by mistake.
 *  - Labels live in a marker object (LABELS_OBJECT, JSON) in the bucket, since bucket tagging is a stub on Swift's
 *    S3 layer (PutBucketTagging 501). list() hides that object and deleteContainer() removes it when it is all
 *    that is left. `nativeLabels` is therefore always false for this store.
 *
 * Integrity: a Uint8Array body also gets its CRC32 stored as object metadata (CRC_METADATA, hidden from callers); a
 * whole-object GET is checked against it (a fifth of an MD5's CPU), or against the content's MD5 (the ETag) when
 * the object has none.
 *
 * Bodies: a Uint8Array is sent as one PutObject with Content-MD5 (the server verifies it) and is retried. A stream
 * of known size (`size`) is sent as one PutObject with Content-Length; a stream of unknown size is read up to
 * `streamBufferBytes` (default 8 MiB): if it ends by then it is sent as one PutObject, otherwise as a multipart
 * upload with parts of `partSizeBytes`, so memory stays bounded. A stream put is not retried (the contract: the
 * caller sees the first failure); only the parts of a multipart upload, which are buffered, are. A stream put's
 * deadline is one of inactivity: it fails with Timeout when no body bytes moved and no answer came for
 * requestTimeoutMs, however long the whole upload takes.
 */

import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type BucketLocationConstraint,
  type CompletedPart,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { StoreError, StoreErrorCode } from '../errors.js';
import {
  checkLabel,
  LABELS_OBJECT,
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
import { isNoSuchBucket, mapS3Error, s3ErrorFacts } from './s3-errors.js';

/** The logging this store does (pino's Logger fits). */
export interface StoreLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface S3StoreOptions {
  /** e.g. http://127.0.0.1:8080 for a Swift s3api; omitted for AWS. */
  endpoint?: string;
  /** Default us-east-1. */
  region?: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Path-style URLs (http://host/bucket/key). Default: true when an endpoint is given, else false. */
  forcePathStyle?: boolean;
  /** Deadline of one attempt (for a stream put: of inactivity), in ms. Default 30 s. */
  requestTimeoutMs?: number;
  /** Deadline to establish a TCP connection, in ms. Default min(requestTimeoutMs, 10 s). */
  connectTimeoutMs?: number;
  /** Overrides of the retry policy (attemptTimeoutMs comes from requestTimeoutMs when that is given). */
  retry?: Partial<RetryPolicy>;
  /** Most sockets open to the endpoint at once. Default 32. */
  connections?: number;
  logger?: StoreLogger;
  /** A stream of unknown size up to this many bytes is buffered and sent as one PUT. Default 8 MiB. */
  streamBufferBytes?: number;
  /** Part size of multipart uploads (at least 5 MiB). Default 8 MiB. */
  partSizeBytes?: number;
}

const MiB = 1024 * 1024;
const MAX_SINGLE_PUT = 5 * 1024 * MiB;
const MAX_KEY_LENGTH = 1024;
const MAX_PARTS = 1000; // Swift's s3api max_upload_part_num (AWS allows 10000)
const LABELS_FORMAT = 1;

/** Creates an S3Store; nothing is sent until the first call. */
export function createS3Store(options: S3StoreOptions): S3Store {
  return new S3Store(options);
}

export class S3Store implements ObjectStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly agent: http.Agent;
  private readonly policy: RetryPolicy;
  private readonly secrets: string[];
  private readonly logger: StoreLogger | undefined;
  private readonly streamBufferBytes: number;
  private readonly partSizeBytes: number;
  private readonly region: string;
  private readonly endpoint: string | undefined;
  private probed: Capabilities | undefined;
  private probing: Promise<Capabilities> | undefined;
  private closed = false;

  constructor(options: S3StoreOptions) {
    if (!options.accessKeyId || !options.secretAccessKey) throw new Error('S3Store: accessKeyId and secretAccessKey are required');
    const attemptTimeoutMs = options.requestTimeoutMs ?? options.retry?.attemptTimeoutMs ?? DEFAULT_RETRY_POLICY.attemptTimeoutMs;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry, attemptTimeoutMs };
    this.secrets = [options.secretAccessKey, options.sessionToken ?? ''].filter((s) => s.length > 0);
    this.logger = options.logger;
    this.streamBufferBytes = options.streamBufferBytes ?? 8 * MiB;
    this.partSizeBytes = Math.max(5 * MiB, options.partSizeBytes ?? 8 * MiB);
    this.region = options.region ?? 'us-east-1';
    this.endpoint = options.endpoint;
    const secure = options.endpoint === undefined || options.endpoint.startsWith('https:');
    const agentOptions = { keepAlive: true, maxSockets: options.connections ?? 32 };
    this.agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.client = new S3Client({
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      region: this.region,
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      credentials: {
        accessKeyId: options.accessKeyId,
        secretAccessKey: options.secretAccessKey,
        ...(options.sessionToken === undefined ? {} : { sessionToken: options.sessionToken }),
      },
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The SDK warns on the console when it has no logger; route its messages to ours, at debug level.
      logger: sdkLogger(options.logger),
      requestHandler: {
        ...(secure ? { httpsAgent: this.agent as https.Agent } : { httpAgent: this.agent }),
        connectionTimeout: options.connectTimeoutMs ?? Math.min(attemptTimeoutMs, 10_000),
      },
    });
    this.description = `s3 ${options.endpoint ?? `aws ${this.region}`} (access key ${options.accessKeyId})`;
  }

  // ---- capabilities --------------------------------------------------------------------------------------

  async capabilities(container?: string): Promise<Capabilities> {
    if (this.probed) return { ...this.probed };
    if (container === undefined) {
      // Nothing to probe in: answer conservatively, and do not remember it.
      return this.capabilitiesWith(false);
    }
    this.probing ??= this.probe(container).finally(() => {
      this.probing = undefined;
    });
    return { ...(await this.probing) };
  }

  private capabilitiesWith(conditionalCreate: boolean): Capabilities {
    return { kind: 's3', conditionalCreate, nativeLabels: false, maxObjectSize: MAX_SINGLE_PUT, maxKeyLength: MAX_KEY_LENGTH };
  }

  /** Two create-only puts of a probe object: conditional create works only if the second one gets 412. */
  private async probe(container: string): Promise<Capabilities> {
    const key = `${PROBE_PREFIX}${randomBytes(8).toString('hex')}`;
    const body = new Uint8Array(0);
    let conditionalCreate = false;
    try {
      const first = await this.tryConditionalPut(container, key, body);
      if (first === 'ok') {
        const second = await this.tryConditionalPut(container, key, body);
        conditionalCreate = second === 'precondition-failed';
        if (second === 'ok') this.logger?.warn({ container }, 's3: the endpoint ignores If-None-Match on PUT; create-only puts are disabled');
      }
    } finally {
      await this.delete(container, key).catch(() => undefined);
    }
    this.probed = this.capabilitiesWith(conditionalCreate);
    this.logger?.info({ store: this.description, conditionalCreate }, 's3: capabilities probed');
    return this.probed;
  }

  private async tryConditionalPut(container: string, key: string, body: Uint8Array): Promise<'ok' | 'precondition-failed' | 'unsupported'> {
    try {
      await this.call('probe', container, key, true, undefined, (signal) =>
        this.client.send(new PutObjectCommand({ Bucket: container, Key: key, Body: body, IfNoneMatch: '*', ContentLength: 0 }), { abortSignal: signal }),
      );
      return 'ok';
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      if (err.code === StoreErrorCode.PreconditionFailed) return 'precondition-failed';
      // 501 on Swift 2.30; some clones answer 400 to a header they do not know.
      if (err.code === StoreErrorCode.NotSupported || err.code === StoreErrorCode.InvalidArgument) return 'unsupported';
      throw err;
    }
  }

  // ---- containers ----------------------------------------------------------------------------------------

  async createContainer(name: string, options: CreateContainerOptions = {}): Promise<{ created: boolean }> {
    const op = 'createContainer';
    const labels = this.validLabels(options.labels ?? {}, op, name);
    let created: boolean;
    if (await this.bucketExists(name)) {
      created = false;
    } else {
      created = await this.call(op, name, undefined, true, undefined, async (signal) => {
        try {
          const locationConstraint = this.region === 'us-east-1' ? undefined : (this.region as BucketLocationConstraint);
          await this.client.send(
            new CreateBucketCommand({ Bucket: name, ...(locationConstraint ? { CreateBucketConfiguration: { LocationConstraint: locationConstraint } } : {}) }),
            { abortSignal: signal },
          );
          return true;
        } catch (err) {
          if (s3ErrorFacts(err).name === 'BucketAlreadyOwnedByYou') return false;
          throw err;
        }
      });
    }
    if (Object.keys(labels).length > 0) await this.setLabels(name, labels);
    return { created };
  }

  private async bucketExists(name: string): Promise<boolean> {
    try {
      await this.call('headContainer', name, undefined, true, undefined, (signal) => this.client.send(new HeadBucketCommand({ Bucket: name }), { abortSignal: signal }));
      return true;
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCode.NotFound) return false;
      throw err;
    }
  }

  async headContainer(name: string): Promise<ContainerInfo> {
    const op = 'headContainer';
    await this.call(op, name, undefined, true, undefined, (signal) => this.client.send(new HeadBucketCommand({ Bucket: name }), { abortSignal: signal }));
    return { name, labels: await this.getLabels(name) };
  }

  async deleteContainer(name: string): Promise<void> {
    const op = 'deleteContainer';
    const deleteBucket = () =>
      this.call(op, name, undefined, true, undefined, (signal) => this.client.send(new DeleteBucketCommand({ Bucket: name }), { abortSignal: signal }));
    try {
      await deleteBucket();
      return;
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCode.NotFound) return;
      if (!(err instanceof StoreError && err.code === StoreErrorCode.Conflict)) throw err;
      // Not empty: if only our labels marker is left, the container is empty for the caller.
      const raw = await this.listRaw(name, { limit: 2 }, undefined);
      const keys = (raw.Contents ?? []).map((c) => c.Key);
      if (keys.length !== 1 || keys[0] !== LABELS_OBJECT) throw err;
    }
    await this.delete(name, LABELS_OBJECT);
    try {
      await deleteBucket();
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCode.NotFound) return;
      throw err;
    }
  }

  async listContainers(prefix = ''): Promise<string[]> {
    const op = 'listContainers';
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.call(op, undefined, undefined, true, undefined, (signal) =>
        this.client.send(new ListBucketsCommand({ ...(prefix ? { Prefix: prefix } : {}), ...(token ? { ContinuationToken: token } : {}) }), { abortSignal: signal }),
      );
      // Some servers (Swift 2.30) ignore Prefix: filter here as well.
      for (const bucket of page.Buckets ?? []) if (bucket.Name !== undefined && bucket.Name.startsWith(prefix)) names.push(bucket.Name);
      token = page.ContinuationToken;
    } while (token);
    return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  async setLabels(container: string, labels: Record<string, string | null>): Promise<void> {
    const op = 'setLabels';
    const changes = this.validLabels(labels, op, container);
    const merged = await this.getLabels(container);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) delete merged[key];
      else merged[key] = value;
    }
    if (Object.keys(merged).length === 0) {
      // Nothing left: remove the marker, so that an unlabelled bucket has no object of ours in it.
      await this.delete(container, LABELS_OBJECT);
      return;
    }
    const body = Buffer.from(JSON.stringify({ swiftfsLabels: LABELS_FORMAT, labels: merged }), 'utf8');
    await this.put(container, LABELS_OBJECT, body, { contentType: 'application/json' });
  }

  async getLabels(container: string): Promise<Record<string, string>> {
    const op = 'getLabels';
    let body: Buffer;
    try {
      body = (await this.get(container, LABELS_OBJECT)).body;
    } catch (err) {
      if (err instanceof StoreError && err.code === StoreErrorCode.NotFound && !isNoSuchBucket(err)) {
        // No marker: no labels, if the bucket exists (a GET cannot always tell a missing bucket from a missing key).
        if (await this.bucketExists(container)) return {};
        throw new StoreError(StoreErrorCode.NotFound, `${op} ${container}: no such container`, { op, container, status: 404, cause: err });
      }
      throw relabel(err, op);
    }
    try {
      const parsed = JSON.parse(body.toString('utf8')) as { labels?: unknown };
      const labels: Record<string, string> = {};
      if (typeof parsed.labels === 'object' && parsed.labels !== null) {
        for (const [key, value] of Object.entries(parsed.labels)) if (typeof value === 'string') labels[key] = value;
      }
      return labels;
    } catch (err) {
      throw new StoreError(StoreErrorCode.Integrity, `${op} ${container}: the labels object ${LABELS_OBJECT} is not valid JSON`, { op, container, cause: err });
    }
  }

  // ---- objects -------------------------------------------------------------------------------------------

  async get(container: string, key: string, options: GetOptions = {}): Promise<GetResult> {
    const op = 'get';
    const range = options.range;
    if (range && (!Number.isSafeInteger(range.offset) || range.offset < 0 || (range.length !== undefined && (!Number.isSafeInteger(range.length) || range.length < 0)))) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: invalid range`, { op, container, key });
    }
    if (range && range.length === 0) {
      // An empty range cannot be expressed in a Range header; the object must still exist.
      return { body: Buffer.alloc(0), info: await this.head(container, key, options.signal ? { signal: options.signal } : {}) };
    }
    const rangeHeader = range ? `bytes=${range.offset}-${range.length === undefined ? '' : range.offset + range.length - 1}` : undefined;
    try {
      return await this.call(op, container, key, true, options.signal, async (signal) => {
        const res = await this.client.send(new GetObjectCommand({ Bucket: container, Key: key, ...(rangeHeader ? { Range: rangeHeader } : {}) }), { abortSignal: signal });
        let body = res.Body ? await readAll(res.Body as Readable, signal) : Buffer.alloc(0);
        const total = totalSize(res.ContentRange) ?? (range && res.$metadata.httpStatusCode === 206 ? undefined : body.length);
        const partial = res.$metadata.httpStatusCode === 206;
        if (range && !partial) {
          // The server ignored the Range header and sent everything: clip here.
          const end = range.length === undefined ? body.length : Math.min(body.length, range.offset + range.length);
          body = Buffer.from(body.subarray(Math.min(range.offset, body.length), Math.max(Math.min(range.offset, body.length), end)));
        }
        const etag = contentMd5Etag(res);
        const crc = storedCrc(res.Metadata);
        if (!partial && crc !== undefined) {
          if (crc32(body) >>> 0 !== crc) throw new StoreError(StoreErrorCode.Integrity, `${op} ${container}/${key}: the body does not match its stored CRC32`, { op, container, key });
        } else if (!partial && etag !== undefined && md5Hex(body) !== etag) {
          throw new StoreError(StoreErrorCode.Integrity, `${op} ${container}/${key}: the body does not match its MD5`, { op, container, key });
        }
        const info: ObjectInfo = { key, size: total ?? body.length, metadata: userMetadata(res.Metadata) };
        if (etag !== undefined) info.etag = etag;
        if (res.LastModified) info.lastModified = res.LastModified;
        return { body, info };
      });
    } catch (err) {
      if (range && err instanceof StoreError && s3ErrorFacts(err.cause).status === 416) {
        // The range starts at or past the end: an empty buffer (the contract), with the object's info.
        return { body: Buffer.alloc(0), info: await this.head(container, key, options.signal ? { signal: options.signal } : {}) };
      }
      throw err;
    }
  }

  async head(container: string, key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectInfo> {
    const op = 'head';
    return this.call(op, container, key, true, options.signal, async (signal) => {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: container, Key: key }), { abortSignal: signal });
      const info: ObjectInfo = { key, size: res.ContentLength ?? 0, metadata: userMetadata(res.Metadata) };
      const etag = contentMd5Etag(res);
      if (etag !== undefined) info.etag = etag;
      if (res.LastModified) info.lastModified = res.LastModified;
      return info;
    });
  }

  async delete(container: string, key: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const op = 'delete';
    try {
      await this.call(op, container, key, true, options.signal, (signal) => this.client.send(new DeleteObjectCommand({ Bucket: container, Key: key }), { abortSignal: signal }));
    } catch (err) {
      // Idempotent: a missing object (or, as on Swift, a missing container) is already deleted.
      if (err instanceof StoreError && err.code === StoreErrorCode.NotFound) return;
      throw err;
    }
  }

  async put(container: string, key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    const op = 'put';
    if (options.metadata && CRC_METADATA in options.metadata) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: metadata ${JSON.stringify(CRC_METADATA)} is reserved by the store (its CRC32 of the body)`, { op, container, key });
    }
    if (Buffer.byteLength(key, 'utf8') > MAX_KEY_LENGTH || key.length === 0) {
      throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: a key must have 1 to ${MAX_KEY_LENGTH} UTF-8 bytes`, { op, container, key });
    }
    if (options.ifNoneMatch !== undefined) {
      if (options.ifNoneMatch !== '*') throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: ifNoneMatch only supports '*'`, { op, container, key });
      const capabilities = await this.capabilities(container);
      if (!capabilities.conditionalCreate) {
        throw new StoreError(StoreErrorCode.NotSupported, `${op} ${container}/${key}: this S3 endpoint does not support create-only puts (If-None-Match: *)`, { op, container, key, status: 501 });
      }
    }
    if (body instanceof Uint8Array) return this.putBuffer(container, key, body, options, true);
    const stream = body;
    if (options.size !== undefined) {
      if (!Number.isSafeInteger(options.size) || options.size < 0) throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: invalid size`, { op, container, key });
      if (options.size > MAX_SINGLE_PUT) throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: ${options.size} bytes is more than one PUT takes (${MAX_SINGLE_PUT})`, { op, container, key });
      return this.putStream(container, key, stream, options.size, options);
    }
    // Unknown size: buffer up to streamBufferBytes; one PUT if it ends by then, a multipart upload otherwise.
    const iterator = (stream as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let buffered = 0;
    let ended = false;
    try {
      while (buffered <= this.streamBufferBytes) {
        throwIfAborted(options.signal, op, container, key);
        const next = await iterator.next();
        if (next.done) {
          ended = true;
          break;
        }
        const chunk = toBuffer(next.value);
        head.push(chunk);
        buffered += chunk.length;
      }
    } catch (err) {
      throw bodyError(err, op, container, key);
    }
    const first = Buffer.concat(head, buffered);
    if (ended) return this.putBuffer(container, key, first, options, false);
    return this.putMultipart(container, key, first, iterator, options);
  }

  private async putBuffer(container: string, key: string, body: Uint8Array, options: PutOptions, retry: boolean): Promise<PutResult> {
    const op = 'put';
    if (body.length > MAX_SINGLE_PUT) throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: ${body.length} bytes is more than one PUT takes`, { op, container, key });
    const md5 = createHash('md5').update(body).digest();
    const md5hex = md5.toString('hex');
    const crcHex = (crc32(body) >>> 0).toString(16).padStart(8, '0');
    try {
      return await this.call(op, container, key, retry, options.signal, async (signal) => {
        const res = await this.client.send(
          new PutObjectCommand({
            Bucket: container,
            Key: key,
            Body: body,
            ContentLength: body.length,
            ContentMD5: md5.toString('base64'),
            ...(options.contentType ? { ContentType: options.contentType } : {}),
            Metadata: { ...(options.metadata ?? {}), [CRC_METADATA]: crcHex },
            ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          }),
          { abortSignal: signal },
        );
        const etag = contentMd5Etag(res);
        if (etag !== undefined && etag !== md5hex) {
          throw new StoreError(StoreErrorCode.Integrity, `${op} ${container}/${key}: the server's ETag does not match the body's MD5`, { op, container, key });
        }
        return { etag: md5hex };
      }, (err, attempt) => {
        // A retried create-only put that meets 412 may have lost to its own earlier attempt: resolved below.
        if (attempt > 0 && options.ifNoneMatch && err.code === StoreErrorCode.PreconditionFailed) (err as { retriedCreate?: boolean }).retriedCreate = true;
      });
    } catch (err) {
      if (err instanceof StoreError && (err as { retriedCreate?: boolean }).retriedCreate) {
        const existing = await this.head(container, key, options.signal ? { signal: options.signal } : {}).catch(() => undefined);
        if (existing?.etag === md5hex) return { etag: md5hex };
      }
      throw err;
    }
  }

  private async putStream(container: string, key: string, stream: Readable | AsyncIterable<Uint8Array>, size: number, options: PutOptions): Promise<PutResult> {
    const op = 'put';
    const watchdog = new IdleDeadline(this.policy.attemptTimeoutMs);
    const md5 = createHash('md5');
    let sent = 0;
    // The body is checked against `size` before its last byte goes out: each chunk is held back until the next
    // one (or the end) has been read, so that a body longer than `size` fails before the server has received
    // Content-Length bytes and could store a truncated object.
    const counted = Readable.from(
      (async function* () {
        let held: Buffer | undefined;
        for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
          const bytes = toBuffer(chunk);
          if (bytes.length === 0) continue;
          sent += bytes.length;
          if (sent > size) throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: the body is longer than size ${size}`, { op, container, key });
          md5.update(bytes);
          watchdog.touch();
          if (held) yield held;
          held = bytes;
        }
        if (sent !== size) throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}/${key}: the body has ${sent} bytes, size said ${size}`, { op, container, key });
        if (held) yield held;
      })(),
      { objectMode: false },
    );
    // If the body fails (size mismatch, the caller's stream errors), stop the request at once instead of letting
    // the server wait for the missing bytes.
    let streamError: unknown;
    const bodyFailed = new AbortController();
    counted.on('error', (err) => {
      streamError = err;
      bodyFailed.abort(err);
    });
    const signal = AbortSignal.any([watchdog.signal, bodyFailed.signal, ...(options.signal ? [options.signal] : [])]);
    try {
      const res = await this.call(op, container, key, false, options.signal, (attemptSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: container,
            Key: key,
            Body: counted,
            ContentLength: size,
            ...(options.contentType ? { ContentType: options.contentType } : {}),
            ...(options.metadata ? { Metadata: options.metadata } : {}),
            ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          }),
          { abortSignal: AbortSignal.any([attemptSignal, signal]) },
        ),
        undefined,
        { idleDeadline: watchdog },
      );
      const digest = md5.digest('hex');
      const etag = contentMd5Etag(res);
      if (etag !== undefined && etag !== digest) {
        throw new StoreError(StoreErrorCode.Integrity, `${op} ${container}/${key}: the server's ETag does not match the body's MD5`, { op, container, key });
      }
      return { etag: digest };
    } catch (err) {
      if (streamError instanceof StoreError) throw streamError;
      if (streamError !== undefined && !(err instanceof StoreError && err.code === StoreErrorCode.Aborted)) throw bodyError(streamError, op, container, key);
      throw err;
    } finally {
      watchdog.stop();
      counted.destroy();
    }
  }

  private async putMultipart(container: string, key: string, first: Buffer, rest: AsyncIterator<Uint8Array | string>, options: PutOptions): Promise<PutResult> {
    const op = 'put';
    const created = await this.call(op, container, key, true, options.signal, (signal) =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: container,
          Key: key,
          ...(options.contentType ? { ContentType: options.contentType } : {}),
          ...(options.metadata ? { Metadata: options.metadata } : {}),
        }),
        { abortSignal: signal },
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new StoreError(StoreErrorCode.Internal, `${op} ${container}/${key}: CreateMultipartUpload returned no UploadId`, { op, container, key });
    const parts: CompletedPart[] = [];
    const whole = createHash('md5');
    let total = 0;
    try {
      let pending = first;
      let ended = false;
      while (!ended || pending.length > 0) {
        // Fill one part (the last may be shorter).
        const chunks: Buffer[] = [pending];
        let length = pending.length;
        while (!ended && length < this.partSizeBytes) {
          throwIfAborted(options.signal, op, container, key);
          let next: IteratorResult<Uint8Array | string>;
          try {
            next = await rest.next();
          } catch (err) {
            throw bodyError(err, op, container, key);
          }
          if (next.done) ended = true;
          else {
            const chunk = toBuffer(next.value);
            chunks.push(chunk);
            length += chunk.length;
          }
        }
        const joined = Buffer.concat(chunks, length);
        const part = joined.subarray(0, Math.min(this.partSizeBytes, joined.length));
        pending = joined.subarray(part.length);
        if (part.length === 0) break;
        if (parts.length >= MAX_PARTS) throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: the body needs more than ${MAX_PARTS} parts`, { op, container, key });
        total += part.length;
        if (total > MAX_SINGLE_PUT * 1024) throw new StoreError(StoreErrorCode.TooLarge, `${op} ${container}/${key}: the body is too large`, { op, container, key });
        whole.update(part);
        const partNumber = parts.length + 1;
        const md5 = createHash('md5').update(part).digest();
        const res = await this.call(op, container, key, true, options.signal, (signal) =>
          this.client.send(
            new UploadPartCommand({ Bucket: container, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: part, ContentLength: part.length, ContentMD5: md5.toString('base64') }),
            { abortSignal: signal },
          ),
        );
        parts.push({ PartNumber: partNumber, ETag: res.ETag ?? `"${md5.toString('hex')}"` });
      }
      await this.call(op, container, key, false, options.signal, (signal) =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: container,
            Key: key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
            ...(options.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          }),
          { abortSignal: signal },
        ),
      );
      // A multipart ETag is not the MD5 of the content; report the content's MD5, which we computed.
      return { etag: whole.digest('hex') };
    } catch (err) {
      await this.call('abortMultipartUpload', container, key, true, undefined, (signal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: container, Key: key, UploadId: uploadId }), { abortSignal: signal }),
      ).catch((abortErr: unknown) => this.logger?.warn({ container, key, err: abortErr }, 's3: could not abort a failed multipart upload'));
      throw err;
    }
  }

  async list(container: string, options: ListOptions = {}): Promise<ListPage> {
    const op = 'list';
    const limit = options.limit ?? 1000;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: limit must be a positive integer`, { op, container });
    const after = options.after;
    const afterBytes = after === undefined ? undefined : Buffer.from(after, 'utf8');
    let token: string | undefined;
    for (;;) {
      const raw = await this.listRaw(container, options, token);
      const page: ListPage = { objects: [], prefixes: [] };
      let lastRaw: string | undefined;
      for (const entry of raw.Contents ?? []) {
        if (entry.Key === undefined) continue;
        lastRaw = maxKey(lastRaw, entry.Key);
        if (entry.Key === LABELS_OBJECT) continue; // our labels marker is not the caller's object
        if (afterBytes !== undefined && Buffer.compare(Buffer.from(entry.Key, 'utf8'), afterBytes) <= 0) continue;
        const info: ObjectInfo = { key: entry.Key, size: entry.Size ?? 0 };
        const etag = plainEtag(entry.ETag);
        if (etag !== undefined) info.etag = etag;
        if (entry.LastModified) info.lastModified = entry.LastModified;
        page.objects.push(info);
      }
      for (const entry of raw.CommonPrefixes ?? []) {
        if (entry.Prefix === undefined) continue;
        lastRaw = maxKey(lastRaw, entry.Prefix);
        // AWS repeats the common prefix a previous page ended on (Swift does not): drop it.
        if (afterBytes !== undefined && Buffer.compare(Buffer.from(entry.Prefix, 'utf8'), afterBytes) <= 0) continue;
        page.prefixes.push(entry.Prefix);
      }
      if (raw.IsTruncated && lastRaw !== undefined) page.next = lastRaw;
      // A page emptied by the filtering above while more follow: fetch on rather than return an empty page.
      if (page.objects.length === 0 && page.prefixes.length === 0 && raw.IsTruncated && raw.NextContinuationToken) {
        token = raw.NextContinuationToken;
        continue;
      }
      return page;
    }
  }

  private listRaw(container: string, options: ListOptions, token: string | undefined): Promise<ListObjectsV2CommandOutput> {
    return this.call('list', container, undefined, true, options.signal, (signal) =>
      this.client.send(
        new ListObjectsV2Command({
          Bucket: container,
          MaxKeys: Math.min(options.limit ?? 1000, 1000),
          ...(options.prefix ? { Prefix: options.prefix } : {}),
          ...(options.delimiter ? { Delimiter: options.delimiter } : {}),
          ...(token ? { ContinuationToken: token } : options.after !== undefined ? { StartAfter: options.after } : {}),
        }),
        { abortSignal: signal },
      ),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.destroy();
    this.agent.destroy();
  }

  // ---- machinery -----------------------------------------------------------------------------------------

  /**
   * Runs one SDK request under the retry policy: each attempt gets a deadline (an abort signal), every failure
   * becomes a StoreError. `idleDeadline` replaces the attempt deadline for a stream put (see IdleDeadline).
   */
  private async call<T>(
    op: string,
    container: string | undefined,
    key: string | undefined,
    idempotent: boolean,
    signal: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
    onFailure?: (err: StoreError, attempt: number) => void,
    extra: { idleDeadline?: IdleDeadline } = {},
  ): Promise<T> {
    if (this.closed) throw new StoreError(StoreErrorCode.Internal, `${op}: the store is closed`, { op, container, key });
    const context = { op, container, key, secrets: this.secrets };
    // A stream put is bounded by its idle deadline instead of a whole-request one.
    const policy = extra.idleDeadline ? { ...this.policy, attemptTimeoutMs: 2 ** 31 - 1 } : this.policy;
    return retrying(
      async ({ signal: attemptSignal, attempt }) => {
        try {
          return await fn(attemptSignal);
        } catch (err) {
          let mapped = mapS3Error(err, context);
          if (extra.idleDeadline?.signal.aborted && !signal?.aborted) {
            mapped = new StoreError(StoreErrorCode.Timeout, `${op} ${container}/${key}: no progress within ${this.policy.attemptTimeoutMs} ms`, { op, container, key, cause: err });
          } else if (mapped.status === 403 && s3ErrorFacts(err).name === undefined) {
            // A HEAD gets no error body: a bare 403 may be bad credentials. Ask once with a request that has a body.
            mapped = mapS3Error(err, context, await this.diagnose403(attemptSignal));
          }
          onFailure?.(mapped, attempt);
          throw mapped;
        }
      },
      {
        policy,
        idempotent,
        signal,
        onRetry: (err, attempt, delayMs) => this.logger?.warn({ op, container, key, code: err.code, attempt, delayMs }, `s3: retrying after ${err.code}`),
      },
    );
  }

  private async diagnose403(signal: AbortSignal): Promise<StoreErrorCode> {
    try {
      await this.client.send(new ListBucketsCommand({}), { abortSignal: signal });
      return StoreErrorCode.Forbidden;
    } catch (err) {
      const code = mapS3Error(err, { op: 'diagnose', secrets: this.secrets }).code;
      return code === StoreErrorCode.Auth ? StoreErrorCode.Auth : StoreErrorCode.Forbidden;
    }
  }

  private validLabels<T extends string | null>(labels: Record<string, T>, op: string, container: string): Record<string, T> {
    for (const [key, value] of Object.entries(labels)) {
      try {
        checkLabel(key, value);
      } catch (err) {
        throw new StoreError(StoreErrorCode.InvalidArgument, `${op} ${container}: ${(err as Error).message}`, { op, container, cause: err });
      }
    }
    return { ...labels };
  }
}

/**
 * A deadline of inactivity: fires when touch() was not called for `ms`. Used for stream puts, whose total
 * duration depends on the body, while a stalled upload (or a server that never answers) must still time out.
 */
class IdleDeadline {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(private readonly ms: number) {
    this.timer = setTimeout(() => this.fire(), ms);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    if (this.controller.signal.aborted) return;
    this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private fire(): void {
    this.controller.abort(new DOMException(`no progress within ${this.ms} ms`, 'TimeoutError'));
  }
}

/**
 * The SDK's logger. Its info and error logs repeat every request's input and failure (we report failures
 * ourselves, as StoreErrors); only its warnings, which are plain strings, are kept, as debug messages.
 */
function sdkLogger(logger: StoreLogger | undefined) {
  const warn = (...content: unknown[]) => {
    const text = content.filter((c): c is string => typeof c === 'string').join(' ');
    if (text) logger?.debug({ sdk: text }, 's3: sdk warning');
  };
  const ignore = () => {};
  return { trace: ignore, debug: ignore, info: ignore, warn, error: ignore };
}

/** User-metadata key under which buffer puts store the body's CRC32 (8 hex digits); hidden from callers. */
export const CRC_METADATA = 'swiftfs-crc32';

/** The CRC32 stored with an object at upload, when it has a valid one. */
function storedCrc(metadata: Record<string, string> | undefined): number | undefined {
  const value = metadata?.[CRC_METADATA];
  return value !== undefined && /^[0-9a-f]{8}$/.test(value) ? Number.parseInt(value, 16) : undefined;
}

/** An object's metadata as callers see it (without the store's own CRC32). */
function userMetadata(metadata: Record<string, string> | undefined): Record<string, string> {
  const out = { ...(metadata ?? {}) };
  delete out[CRC_METADATA];
  return out;
}

function md5Hex(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/** The ETag unquoted, if it is a plain MD5 (multipart ETags "<md5>-N" are not the content's MD5). */
function plainEtag(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  const unquoted = etag.replace(/^W\//, '').replace(/^"|"$/g, '').toLowerCase();
  return /^[0-9a-f]{32}$/.test(unquoted) ? unquoted : undefined;
}

/**
 * The ETag as the content's MD5, when the response's ETag is one: not for SSE-KMS or SSE-C objects, whose ETag is
 * something else (AWS documents this), nor for multipart uploads.
 */
function contentMd5Etag(res: { ETag?: string | undefined; ServerSideEncryption?: string | undefined; SSECustomerAlgorithm?: string | undefined }): string | undefined {
  if (res.SSECustomerAlgorithm !== undefined) return undefined;
  if (res.ServerSideEncryption !== undefined && res.ServerSideEncryption.startsWith('aws:kms')) return undefined;
  return plainEtag(res.ETag);
}

/** Total size from a Content-Range header ("bytes 3-4/5" or "bytes * /5"). */
function totalSize(contentRange: string | undefined): number | undefined {
  const match = contentRange ? /\/(\d+)\s*$/.exec(contentRange) : null;
  return match ? Number(match[1]) : undefined;
}

function maxKey(a: string | undefined, b: string): string {
  if (a === undefined) return b;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')) >= 0 ? a : b;
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

function throwIfAborted(signal: AbortSignal | undefined, op: string, container: string, key: string): void {
  if (signal?.aborted) throw new StoreError(StoreErrorCode.Aborted, `${op} ${container}/${key}: aborted by the caller`, { op, container, key, cause: signal.reason });
}

function bodyError(err: unknown, op: string, container: string, key: string): StoreError {
  if (err instanceof StoreError) return err;
  return new StoreError(StoreErrorCode.Internal, `${op} ${container}/${key}: reading the body to upload failed`, { op, container, key, cause: err });
}

/** A StoreError from an inner call, reported under the outer operation's name. */
function relabel(err: unknown, op: string): unknown {
  if (!(err instanceof StoreError)) return err;
  return new StoreError(err.code, err.message.replace(/^\w+/, op), { op, container: err.container, key: err.key, status: err.status, cause: err.cause });
}

/** Reads a response body to the end; destroys it if the signal fires first. */
async function readAll(body: Readable, signal: AbortSignal): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  const onAbort = () => body.destroy(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body) {
      const bytes = toBuffer(chunk as Uint8Array);
      chunks.push(bytes);
      total += bytes.length;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  return Buffer.concat(chunks, total);
}
