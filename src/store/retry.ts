/**
 * Retries with exponential backoff and full jitter, and per-attempt deadlines, shared by every store.
 *
 * A store wraps each idempotent request in `retrying()`; the request itself gets an AbortSignal that fires at
 * the attempt's deadline (and when the caller's own signal fires). Only StoreErrors whose `retryable` is true
 * are retried; a caller abort is never retried.
 */

import { StoreError, StoreErrorCode } from './errors.js';

export interface RetryPolicy {
  /** Attempts after the first. */
  retries: number;
  /** First backoff, in ms; doubles each time up to maxDelayMs, with full jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Deadline of one attempt, in ms. */
  attemptTimeoutMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  retries: 4,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  attemptTimeoutMs: 30_000,
});

export interface AttemptContext {
  /** Fires at this attempt's deadline or when the caller aborts. */
  signal: AbortSignal;
  /** 0 for the first attempt. */
  attempt: number;
}

/** Backoff before retry number `attempt` (1-based), with full jitter. */
export function backoffDelay(policy: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.floor(random() * ceiling);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortedError(signal));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortedError(signal!));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function abortedError(signal: AbortSignal): StoreError {
  return new StoreError(StoreErrorCode.Aborted, 'operation aborted by the caller', { cause: signal.reason });
}

/**
 * Runs `fn` once per attempt, each with its own deadline, and retries retryable StoreErrors when `idempotent`.
 * A non-StoreError thrown by `fn` is a bug in the store and is passed through unchanged.
 */
export async function retrying<T>(
  fn: (ctx: AttemptContext) => Promise<T>,
  options: { policy: RetryPolicy; idempotent: boolean; signal?: AbortSignal | undefined; onRetry?: (err: StoreError, attempt: number, delayMs: number) => void },
): Promise<T> {
  const { policy, idempotent, signal } = options;
  for (let attempt = 0; ; attempt++) {
    if (signal?.aborted) throw abortedError(signal);
    const deadline = AbortSignal.timeout(policy.attemptTimeoutMs);
    const attemptSignal = signal ? AbortSignal.any([signal, deadline]) : deadline;
    try {
      return await fn({ signal: attemptSignal, attempt });
    } catch (err) {
      let error = err;
      // An abort caused by our deadline is a Timeout, one caused by the caller is Aborted.
      if (signal?.aborted) throw abortedError(signal);
      if (deadline.aborted && !(error instanceof StoreError && error.code === StoreErrorCode.Timeout)) {
        error = new StoreError(StoreErrorCode.Timeout, `no answer within ${policy.attemptTimeoutMs} ms`, { cause: err });
      }
      if (!(error instanceof StoreError)) throw error;
      if (!idempotent || !error.retryable || attempt >= policy.retries) throw error;
      const delay = backoffDelay(policy, attempt + 1);
      options.onRetry?.(error, attempt + 1, delay);
      await sleep(delay, signal);
    }
  }
}
