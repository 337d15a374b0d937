/**
 * Typed errors of the object-store layer.
 *
 * Every failure an ObjectStore reports is a StoreError with a stable `code` (never a bare Error, never a
 * status code to interpret). The original failure (HTTP status, SDK exception, socket error) is kept as
 * `cause`, and `status` keeps the HTTP status where there was one. Nothing in these errors may contain a
 * credential: messages name the operation, the container and the key, never headers or URLs with tokens.
 *
 * The brand uses Symbol.for so that `instanceof` holds even if the module is loaded twice.
 */

export const StoreErrorCode = {
  /** The object or container does not exist. */
  NotFound: 'NotFound',
  /** A create-only put lost: the object already exists. */
  PreconditionFailed: 'PreconditionFailed',
  /** The request conflicts with the state of the resource (container not empty, policy change). */
  Conflict: 'Conflict',
  /** Credentials were rejected (401 after one re-authentication). */
  Auth: 'Auth',
  /** Authenticated but not allowed (403). */
  Forbidden: 'Forbidden',
  /** The backend asked us to slow down (429, 498, SlowDown). Retryable. */
  Throttled: 'Throttled',
  /** The backend could not serve the request (5xx, connection refused or reset). Retryable. */
  Unavailable: 'Unavailable',
  /** No answer within the deadline. Retryable for idempotent operations. */
  Timeout: 'Timeout',
  /** The request was malformed or refused as such (400, 411, 416...). Not retryable. */
  InvalidArgument: 'InvalidArgument',
  /** The backend does not implement this request (501). */
  NotSupported: 'NotSupported',
  /** The body is larger than the backend accepts (413). */
  TooLarge: 'TooLarge',
  /** The backend has no space left (507). */
  InsufficientStorage: 'InsufficientStorage',
  /** Data did not match its checksum (422 on upload, or an MD5 mismatch on download). */
  Integrity: 'Integrity',
  /** The caller aborted the operation. */
  Aborted: 'Aborted',
  /** Anything the store could not classify. Treated as not retryable. */
  Internal: 'Internal',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

const RETRYABLE: ReadonlySet<StoreErrorCode> = new Set<StoreErrorCode>([
  StoreErrorCode.Throttled,
  StoreErrorCode.Unavailable,
  StoreErrorCode.Timeout,
]);

const kStoreError = Symbol.for('swiftfs.StoreError');

export interface StoreErrorDetails {
  /** The operation, e.g. "put", "get", "list", "auth". */
  op?: string;
  container?: string;
  key?: string;
  /** HTTP status, where the failure came from an HTTP answer. */
  status?: number;
  cause?: unknown;
}

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  readonly op: string | undefined;
  readonly container: string | undefined;
  readonly key: string | undefined;
  readonly status: number | undefined;

  constructor(code: StoreErrorCode, message: string, details: StoreErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'StoreError';
    this.code = code;
    this.op = details.op;
    this.container = details.container;
    this.key = details.key;
    this.status = details.status;
    Object.defineProperty(this, kStoreError, { value: true });
  }

  /** True for failures worth retrying (when the operation itself is safe to repeat). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kStoreError] === true;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/** Maps an HTTP status that is not a success to the error code it means. */
export function codeForStatus(status: number): StoreErrorCode {
  switch (status) {
    case 401:
      return StoreErrorCode.Auth;
    case 403:
      return StoreErrorCode.Forbidden;
    case 404:
      return StoreErrorCode.NotFound;
    case 409:
      return StoreErrorCode.Conflict;
    case 412:
      return StoreErrorCode.PreconditionFailed;
    case 413:
      return StoreErrorCode.TooLarge;
    case 422:
      return StoreErrorCode.Integrity;
    case 429:
    case 498:
      return StoreErrorCode.Throttled;
    case 408:
    case 504:
      return StoreErrorCode.Timeout;
    case 501:
      return StoreErrorCode.NotSupported;
    case 507:
      return StoreErrorCode.InsufficientStorage;
    default:
      if (status >= 500) return StoreErrorCode.Unavailable;
      if (status >= 400) return StoreErrorCode.InvalidArgument;
      return StoreErrorCode.Internal;
  }
}
