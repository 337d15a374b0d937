/**
 * Turns what @aws-sdk/client-s3 throws (service exceptions, socket errors, aborts) into StoreErrors with a stable
 * code, keeping the SDK error as `cause` and never putting a credential in the message.
 *
 * Order of evidence: a socket error code (ECONNREFUSED...; the SDK renames resets "TimeoutError"), then the S3
 * error code (the exception's `name`, e.g. NoSuchKey), then the HTTP status ($metadata.httpStatusCode). HEAD requests carry no error body, so the SDK
 * names them after the status ("NotFound", "Unknown"); the status decides then.
 */

import { codeForStatus, StoreError, StoreErrorCode } from '../errors.js';

/** S3 error codes (and SDK exception names) and what they mean for us. */
const BY_NAME: Readonly<Record<string, StoreErrorCode>> = {
  NoSuchKey: StoreErrorCode.NotFound,
  NoSuchBucket: StoreErrorCode.NotFound,
  NotFound: StoreErrorCode.NotFound,
  NoSuchUpload: StoreErrorCode.NotFound,
  PreconditionFailed: StoreErrorCode.PreconditionFailed,
  BucketNotEmpty: StoreErrorCode.Conflict,
  BucketAlreadyExists: StoreErrorCode.Conflict,
  OperationAborted: StoreErrorCode.Conflict,
  InvalidAccessKeyId: StoreErrorCode.Auth,
  SignatureDoesNotMatch: StoreErrorCode.Auth,
  ExpiredToken: StoreErrorCode.Auth,
  InvalidToken: StoreErrorCode.Auth,
  TokenRefreshRequired: StoreErrorCode.Auth,
  CredentialsProviderError: StoreErrorCode.Auth,
  AccessDenied: StoreErrorCode.Forbidden,
  AllAccessDisabled: StoreErrorCode.Forbidden,
  AccountProblem: StoreErrorCode.Forbidden,
  RequestTimeTooSkewed: StoreErrorCode.Forbidden,
  SlowDown: StoreErrorCode.Throttled,
  Throttling: StoreErrorCode.Throttled,
  ThrottlingException: StoreErrorCode.Throttled,
  TooManyRequests: StoreErrorCode.Throttled,
  TooManyRequestsException: StoreErrorCode.Throttled,
  RequestLimitExceeded: StoreErrorCode.Throttled,
  ServiceUnavailable: StoreErrorCode.Unavailable,
  InternalError: StoreErrorCode.Unavailable,
  // A concurrent conditional write on AWS: the documented answer is to retry.
  ConditionalRequestConflict: StoreErrorCode.Unavailable,
  NotImplemented: StoreErrorCode.NotSupported,
  EntityTooLarge: StoreErrorCode.TooLarge,
  BadDigest: StoreErrorCode.Integrity,
  InvalidDigest: StoreErrorCode.Integrity,
  XAmzContentSHA256Mismatch: StoreErrorCode.Integrity,
  RequestTimeout: StoreErrorCode.Timeout,
  RequestTimeoutException: StoreErrorCode.Timeout,
  TimeoutError: StoreErrorCode.Timeout,
  // Our own deadline (or the caller's signal) aborted the request; retrying() tells the two apart.
  AbortError: StoreErrorCode.Timeout,
  InvalidRange: StoreErrorCode.InvalidArgument,
  KeyTooLongError: StoreErrorCode.InvalidArgument,
  InvalidBucketName: StoreErrorCode.InvalidArgument,
  InvalidArgument: StoreErrorCode.InvalidArgument,
  InvalidRequest: StoreErrorCode.InvalidArgument,
  MalformedXML: StoreErrorCode.InvalidArgument,
  MetadataTooLarge: StoreErrorCode.InvalidArgument,
  EntityTooSmall: StoreErrorCode.InvalidArgument,
  InvalidPart: StoreErrorCode.InvalidArgument,
  InvalidPartOrder: StoreErrorCode.InvalidArgument,
};

/** Socket-level error codes (err.code) from Node. */
const BY_SOCKET_CODE: Readonly<Record<string, StoreErrorCode>> = {
  ECONNREFUSED: StoreErrorCode.Unavailable,
  ECONNRESET: StoreErrorCode.Unavailable,
  ECONNABORTED: StoreErrorCode.Unavailable,
  EPIPE: StoreErrorCode.Unavailable,
  EHOSTUNREACH: StoreErrorCode.Unavailable,
  EHOSTDOWN: StoreErrorCode.Unavailable,
  ENETUNREACH: StoreErrorCode.Unavailable,
  ENETDOWN: StoreErrorCode.Unavailable,
  ENOTFOUND: StoreErrorCode.Unavailable,
  EAI_AGAIN: StoreErrorCode.Unavailable,
  ERR_STREAM_PREMATURE_CLOSE: StoreErrorCode.Unavailable,
  UND_ERR_SOCKET: StoreErrorCode.Unavailable,
  ETIMEDOUT: StoreErrorCode.Timeout,
  ESOCKETTIMEDOUT: StoreErrorCode.Timeout,
};

/** Names the SDK gives to errors it could not parse a code for: the HTTP status decides. */
const GENERIC_NAMES = new Set(['Unknown', 'UnknownError', 'Error', 'S3ServiceException']);

export interface S3ErrorFacts {
  /** The S3 error code or exception name, if a meaningful one. */
  name: string | undefined;
  status: number | undefined;
  socketCode: string | undefined;
  message: string;
}

/** What an SDK error says, read defensively (it may be anything thrown). */
export function s3ErrorFacts(err: unknown): S3ErrorFacts {
  const e = (typeof err === 'object' && err !== null ? err : {}) as Record<string, unknown>;
  const metadata = e.$metadata as { httpStatusCode?: unknown } | undefined;
  const status = typeof metadata?.httpStatusCode === 'number' ? metadata.httpStatusCode : undefined;
  const rawName = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : undefined;
  const name = rawName !== undefined && !GENERIC_NAMES.has(rawName) ? rawName : undefined;
  const socketCode = typeof e.code === 'string' ? e.code : undefined;
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return { name, status, socketCode, message };
}

/** The StoreError code an SDK error means. */
export function codeForS3Error(err: unknown): StoreErrorCode {
  const facts = s3ErrorFacts(err);
  // The socket code first: the SDK renames ECONNRESET/EPIPE errors "TimeoutError" (to mark them transient).
  if (facts.socketCode !== undefined && BY_SOCKET_CODE[facts.socketCode] !== undefined) return BY_SOCKET_CODE[facts.socketCode]!;
  if (facts.name !== undefined && BY_NAME[facts.name] !== undefined) return BY_NAME[facts.name]!;
  if (facts.status !== undefined && facts.status >= 400) return codeForStatus(facts.status);
  return StoreErrorCode.Internal;
}

/** True when the SDK error says the bucket itself is missing (not just the key). */
export function isNoSuchBucket(err: unknown): boolean {
  const cause = err instanceof StoreError ? err.cause : err;
  return s3ErrorFacts(cause).name === 'NoSuchBucket';
}

export interface MapContext {
  op: string;
  container?: string | undefined;
  key?: string | undefined;
  /** Strings that must never appear in a message (the secret key, the session token). */
  secrets: readonly string[];
}

/** Wraps anything the SDK threw into a StoreError (a StoreError passes through unchanged). */
export function mapS3Error(err: unknown, context: MapContext, forceCode?: StoreErrorCode): StoreError {
  if (err instanceof StoreError && forceCode === undefined) return err;
  const facts = s3ErrorFacts(err);
  const code = forceCode ?? codeForS3Error(err);
  const where = `${context.op}${context.container === undefined ? '' : ` ${context.container}`}${context.key === undefined ? '' : `/${context.key}`}`;
  const what = [facts.name ?? facts.socketCode, facts.status === undefined ? undefined : `HTTP ${facts.status}`].filter(Boolean).join(', ');
  let detail = facts.message.length > 200 ? `${facts.message.slice(0, 200)}...` : facts.message;
  for (const secret of context.secrets) {
    if (secret.length > 0) detail = detail.split(secret).join('[redacted]');
  }
  const message = `${where}: ${code}${what ? ` (${what})` : ''}${detail ? `: ${detail}` : ''}`;
  return new StoreError(code, message, { op: context.op, container: context.container, key: context.key, status: facts.status, cause: err });
}
