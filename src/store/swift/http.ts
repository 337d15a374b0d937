/**
 * HTTP plumbing shared by the Swift authenticator and the Swift store: classifying transport failures and
 * HTTP statuses into StoreErrors, draining or reading undici response bodies (always consumed, so that the
 * connection goes back to the pool), and building request paths with each segment URL-encoded.
 *
 * Nothing here ever sees or formats a credential: messages are built from the operation, the container, the
 * key, a credential-free URL and the server's own (small) error text.
 */

import type { Dispatcher } from 'undici';
import { StoreError, StoreErrorCode, codeForStatus, type StoreErrorDetails } from '../errors.js';

/** A pino-like logger: (object, message). */
export interface SwiftLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: SwiftLogger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});

export type ResponseBody = Dispatcher.ResponseData['body'];

const TIMEOUT_CODES = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
]);

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
  'UND_ERR_INFO',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_RES_EXCEEDED_MAX_SIZE',
  'HPE_INVALID_CONSTANT',
  'HPE_INVALID_CHUNK_SIZE',
]);

function errorCodeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function errorNameOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const name = (err as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** The innermost error code of a failure and its causes (undici wraps socket errors). */
function transportCode(err: unknown): string | undefined {
  let current: unknown = err;
  let fallback: string | undefined;
  for (let depth = 0; depth < 5 && current !== undefined && current !== null; depth++) {
    const code = errorCodeOf(current);
    if (code !== undefined && (TIMEOUT_CODES.has(code) || UNAVAILABLE_CODES.has(code))) return code;
    fallback ??= code;
    current = (current as { cause?: unknown }).cause;
  }
  return fallback;
}

/** Describes where a request went, for messages: "put c/k". */
export function target(op: string, container?: string, key?: string): string {
  if (container === undefined) return op;
  return key === undefined ? `${op} ${container}` : `${op} ${container}/${key}`;
}

/**
 * Turns anything thrown by undici (or by an aborted signal) into a StoreError. A StoreError passes through.
 * Aborts become Aborted here; retrying() turns an abort caused by its own deadline into Timeout.
 */
export function transportError(err: unknown, details: StoreErrorDetails & { op: string }, where?: string): StoreError {
  if (err instanceof StoreError) return err;
  const place = where ?? target(details.op, details.container, details.key);
  const code = transportCode(err);
  const name = errorNameOf(err);
  const base = { ...details, cause: err };
  if (name === 'TimeoutError' || (code !== undefined && TIMEOUT_CODES.has(code))) {
    return new StoreError(StoreErrorCode.Timeout, `swift ${place}: no answer in time (${code ?? name})`, base);
  }
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new StoreError(StoreErrorCode.Aborted, `swift ${place}: aborted`, base);
  }
  if (code !== undefined && UNAVAILABLE_CODES.has(code)) {
    return new StoreError(StoreErrorCode.Unavailable, `swift ${place}: connection failed (${code})`, base);
  }
  if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
    return new StoreError(StoreErrorCode.InvalidArgument, `swift ${place}: the body's length differs from the size given`, base);
  }
  if (code === 'UND_ERR_INVALID_ARG' || code === 'ERR_INVALID_ARG_TYPE' || code === 'ERR_INVALID_URL') {
    return new StoreError(StoreErrorCode.InvalidArgument, `swift ${place}: invalid request (${code})`, base);
  }
  if (code !== undefined && /^E[A-Z]+$/.test(code)) {
    // Other socket-level errno codes: the connection did not work out.
    return new StoreError(StoreErrorCode.Unavailable, `swift ${place}: connection failed (${code})`, base);
  }
  const text = err instanceof Error ? err.message : String(err);
  return new StoreError(StoreErrorCode.Internal, `swift ${place}: ${text.slice(0, 200)}`, base);
}

/** A StoreError for an HTTP answer that was not the expected success. `detail` is the server's own text. */
export function statusError(status: number, details: StoreErrorDetails & { op: string }, detail?: string, where?: string): StoreError {
  const place = where ?? target(details.op, details.container, details.key);
  const extra = detail !== undefined && detail.length > 0 ? `: ${detail}` : '';
  return new StoreError(codeForStatus(status), `swift ${place}: HTTP ${status}${extra}`, { ...details, status });
}

/**
 * Discards a response body: read to its end when small (so that the connection goes back to the pool at once),
 * destroyed when larger than `limit` (closing the connection rather than downloading what nobody wants).
 * (Not undici's dump(): it resolves on 'close', after which the pool may still count the connection busy.)
 */
export function discard(body: ResponseBody, limit = 64 * 1024): Promise<void> {
  if (body.readableEnded || body.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve();
    };
    body.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit && !done) {
        body.destroy();
        finish();
      }
    });
    body.on('end', finish);
    body.on('error', finish);
    body.on('close', finish);
  });
}

/**
 * Reads at most `limit` bytes of a (presumably small) error body as text. A body that ends within the limit is
 * read to its end, so that its connection stays reusable; a longer one is destroyed (closing its connection).
 * (Not `for await`: its implicit destroy at the end aborts undici's request and closes the connection.)
 */
export function readErrorText(body: ResponseBody, limit = 512): Promise<string> {
  return new Promise<string>((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(parts).subarray(0, limit).toString('utf8');
      // Swift answers errors as a tiny HTML page or plain text: keep the words.
      resolve(text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300));
    };
    body.on('data', (chunk: Buffer) => {
      if (done) return;
      parts.push(chunk);
      size += chunk.length;
      if (size > 64 * 1024) {
        body.destroy();
        finish();
      }
    });
    body.on('end', finish);
    body.on('error', finish);
    body.on('close', finish);
  });
}

/**
 * Reads a whole response body. With a known length, the bytes go straight into one preallocated Buffer (no
 * concatenation copy); a body shorter or longer than announced is an Unavailable error (retryable).
 */
export function readBody(
  body: ResponseBody,
  contentLength: number | undefined,
  details: StoreErrorDetails & { op: string },
  /** Sees each chunk as it arrives (e.g. a hash: its work overlaps with the network). */
  onChunk?: (chunk: Buffer) => void,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const known = contentLength !== undefined && Number.isSafeInteger(contentLength) && contentLength >= 0;
    const out = known ? Buffer.allocUnsafe(contentLength) : undefined;
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      if (!body.destroyed) body.destroy();
      reject(transportError(err, details));
    };
    body.on('data', (chunk: Buffer) => {
      if (settled) return;
      if (out !== undefined) {
        if (size + chunk.length > out.length) {
          fail(new StoreError(StoreErrorCode.Unavailable, `swift ${target(details.op, details.container, details.key)}: body longer than its Content-Length`, details));
          return;
        }
        chunk.copy(out, size);
      } else {
        parts.push(chunk);
      }
      size += chunk.length;
      onChunk?.(chunk);
    });
    body.on('error', fail);
    body.on('end', () => {
      if (settled) return;
      settled = true;
      if (out !== undefined) {
        if (size !== out.length) {
          reject(new StoreError(StoreErrorCode.Unavailable, `swift ${target(details.op, details.container, details.key)}: body ended after ${size} of ${out.length} bytes`, details));
          return;
        }
        resolve(out);
      } else {
        resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
      }
    });
  });
}

/** Encodes one path segment; `.` and `..` are encoded too so that nothing on the way normalises them. */
export function encodeSegment(segment: string): string {
  if (segment === '.') return '%2E';
  if (segment === '..') return '%2E%2E';
  return encodeURIComponent(segment);
}

/** Encodes an object key: each `/`-separated segment encoded, the `/` between segments kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeSegment).join('/');
}

/** A URL without userinfo, query or fragment, for messages and logs. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

/** The first value of a response header. */
export function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value[0] : value;
}

/** Header values travel as latin1 in undici; Swift stores the raw bytes. These carry UTF-8 through. */
export function toHeaderValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(value) ? value : Buffer.from(value, 'utf8').toString('latin1');
}

export function fromHeaderValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\x00-\x7f]*$/.test(value) ? value : Buffer.from(value, 'latin1').toString('utf8');
}

/** Rejects when the signal fires, otherwise settles like `promise` (which keeps running for others). */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
