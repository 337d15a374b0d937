/**
 * Filesystem errors and the one table that maps every error to a Linux errno.
 *
 * The core throws FsError with an errno name ('ENOENT', ...). Adapters never invent errnos: they call
 * `toErrno(err)` and get the negative number to hand to the kernel. Store failures that reach the filesystem
 * surface map here too (a timeout is ETIMEDOUT, a fenced writer is EROFS, anything unknown is EIO and is
 * logged by the adapter).
 */

import { StoreError, StoreErrorCode } from '../store/errors.js';

/** Linux errno numbers (x86_64 and arm64 agree on all of these). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  ENOTSUP: 95,
  ETIMEDOUT: 110,
  ESTALE: 116,
  EDQUOT: 122,
} as const;
export type ErrnoName = keyof typeof ERRNO;

const kFsError = Symbol.for('swiftfs.FsError');

/**
 * Errnos that are ordinary answers to a caller (a missing name, an existing one, a missing xattr...), raised
 * by the core in its normal course: thousands a second under some workloads (the kernel asks for
 * `security.capability` before every write; `open(O_CREAT)` looks the name up first). Capturing a stack trace
 * for each costs ~20 us, so these FsErrors carry none (`stack` is just "FsError: message"). Every other errno
 * (EIO, EROFS, ETIMEDOUT, ENOSPC...) signals a failure worth diagnosing and keeps its stack.
 */
const STACKLESS = new Set<ErrnoName>([
  'ENOENT', 'ENODATA', 'EEXIST', 'ENOTEMPTY', 'ENOTDIR', 'EISDIR', 'EACCES', 'EPERM', 'ERANGE', 'E2BIG',
  'ENAMETOOLONG', 'EXDEV', 'ELOOP', 'EMLINK', 'EINVAL', 'EBADF', 'ENOTSUP', 'ENOSYS', 'EFBIG',
]);

/** Whether FsErrors with this errno carry a stack trace (see STACKLESS). */
export function keepsStack(code: ErrnoName): boolean {
  return !STACKLESS.has(code);
}

export class FsError extends Error {
  readonly code: ErrnoName;
  readonly syscall: string | undefined;
  readonly path: string | undefined;

  constructor(code: ErrnoName, message?: string, details: { syscall?: string; path?: string; cause?: unknown } = {}) {
    const text = message ?? `${code}${details.syscall ? ` in ${details.syscall}` : ''}${details.path ? ` on ${details.path}` : ''}`;
    const options = details.cause === undefined ? undefined : { cause: details.cause };
    // The stack is captured inside super(): with a limit of 0 it records no frames (super cannot throw).
    const limit = Error.stackTraceLimit;
    const stackless = STACKLESS.has(code);
    if (stackless) Error.stackTraceLimit = 0;
    super(text, options);
    if (stackless) Error.stackTraceLimit = limit;
    this.name = 'FsError';
    this.code = code;
    this.syscall = details.syscall;
    this.path = details.path;
    Object.defineProperty(this, kFsError, { value: true });
  }

  get errno(): number {
    return ERRNO[this.code];
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kFsError] === true;
  }
}

export function fsError(code: ErrnoName, syscall?: string, path?: string): FsError {
  return new FsError(code, undefined, { ...(syscall ? { syscall } : {}), ...(path ? { path } : {}) });
}

const STORE_ERRNO: Record<StoreErrorCode, ErrnoName> = {
  NotFound: 'EIO', // a missing object under a file is damage, not a missing file
  PreconditionFailed: 'EROFS', // lost a create-only commit: another owner took the volume (fenced)
  Conflict: 'EIO',
  Auth: 'EACCES',
  Forbidden: 'EACCES',
  Throttled: 'EAGAIN',
  Unavailable: 'EIO',
  Timeout: 'ETIMEDOUT',
  InvalidArgument: 'EINVAL',
  NotSupported: 'ENOTSUP',
  TooLarge: 'EFBIG',
  InsufficientStorage: 'ENOSPC',
  Integrity: 'EIO',
  Aborted: 'EIO',
  Internal: 'EIO',
};

/** Node's own fs errors (from the cache disk) keep their errno name when it is one we know. */
function nodeErrnoName(err: unknown): ErrnoName | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code in ERRNO) return code as ErrnoName;
  return undefined;
}

/**
 * The errno name for any error. `known` is false when the error was not one the core meant to raise (the
 * adapter logs those, since they are bugs or unexpected failures).
 */
export function errnoNameOf(err: unknown): { name: ErrnoName; known: boolean } {
  if (err instanceof FsError) return { name: err.code, known: true };
  if (err instanceof StoreError) return { name: STORE_ERRNO[err.code], known: true };
  const fromNode = nodeErrnoName(err);
  if (fromNode) return { name: fromNode, known: true };
  return { name: 'EIO', known: false };
}

/** The negative errno that FUSE expects for an error. */
export function toErrno(err: unknown): number {
  return -ERRNO[errnoNameOf(err).name];
}
