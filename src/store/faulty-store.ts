/**
 * FaultyStore: a decorator around any ObjectStore that injects scripted failures, for unit tests of the layers
 * above (committer, ownership, volume) without a real server.
 *
 * A test scripts what the next calls do:
 *   faulty.failNext('put', 2, 'Unavailable')          the next 2 puts reject with StoreError Unavailable
 *   faulty.failNext('put', 1, 'Timeout', { after: true })  the next put happens in the inner store, then rejects
 *                                                      (an unknown outcome: the write landed, the caller saw an error)
 *   faulty.hangNext('get', 1)                          the next get never answers until its signal aborts, the
 *                                                      store's deadline (option hangDeadlineMs) passes, or
 *                                                      releaseHung() lets it through
 *   faulty.addLatency('*', 50)                         every call waits 50 ms first
 *   faulty.goOffline() / faulty.comeBack()             every call rejects with Unavailable until comeBack()
 * and reads what happened: calls('put'), callLog (op, container, key, outcome of every call).
 *
 * Rules can be limited to some calls with `match` (e.g. only keys under a prefix). The first matching rule with
 * calls remaining is consumed; latency rules add up and are not consumed.
 */

import { StoreError, StoreErrorCode } from './errors.js';
import type {
  Capabilities,
  ContainerInfo,
  CreateContainerOptions,
  GetOptions,
  GetResult,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutBody,
  PutOptions,
  PutResult,
} from './object-store.js';

export type StoreOp =
  | 'capabilities'
  | 'createContainer'
  | 'headContainer'
  | 'deleteContainer'
  | 'listContainers'
  | 'setLabels'
  | 'getLabels'
  | 'get'
  | 'put'
  | 'head'
  | 'delete'
  | 'list';

export interface StoreCall {
  op: StoreOp;
  container?: string;
  key?: string;
}

export interface CallRecord extends StoreCall {
  /** 'ok', or the code of the StoreError the caller saw. */
  outcome: 'ok' | StoreErrorCode;
  /** True when a scripted fault decided the outcome. */
  injected: boolean;
}

export interface FaultOptions {
  /** Only calls this returns true for are affected (and counted against the rule). */
  match?: (call: StoreCall) => boolean;
  /** Run the call in the inner store first, then fail anyway (unknown outcome). Only for failNext. */
  after?: boolean;
  /** HTTP status to put in the error (default: a typical one for the code). */
  status?: number;
}

export interface FaultyStoreOptions {
  /** A hung call that has no signal (or whose signal never fires) rejects with Timeout after this many ms. */
  hangDeadlineMs?: number;
}

type Action = { type: 'fail'; code: StoreErrorCode; after: boolean; status: number | undefined } | { type: 'hang' };

interface Rule {
  ops: ReadonlySet<StoreOp> | '*';
  remaining: number;
  action: Action;
  match: ((call: StoreCall) => boolean) | undefined;
}

interface LatencyRule {
  ops: ReadonlySet<StoreOp> | '*';
  ms: number;
}

const TYPICAL_STATUS: Partial<Record<StoreErrorCode, number>> = {
  NotFound: 404,
  PreconditionFailed: 412,
  Conflict: 409,
  Auth: 401,
  Forbidden: 403,
  Throttled: 429,
  Unavailable: 503,
  InvalidArgument: 400,
  NotSupported: 501,
  TooLarge: 413,
  InsufficientStorage: 507,
  Integrity: 422,
};

export class FaultyStore implements ObjectStore {
  readonly description: string;
  readonly callLog: CallRecord[] = [];
  private rules: Rule[] = [];
  private latencies: LatencyRule[] = [];
  private offline: { code: StoreErrorCode } | undefined;
  private readonly hung = new Set<() => void>();
  private readonly counts = new Map<StoreOp, number>();

  constructor(
    readonly inner: ObjectStore,
    private readonly options: FaultyStoreOptions = {},
  ) {
    this.description = `faulty(${inner.description})`;
  }

  // ---- scripting -------------------------------------------------------------------------------------------

  /** The next `count` calls of `op` (or of any op for '*') reject with a StoreError of `code`. */
  failNext(op: StoreOp | StoreOp[] | '*', count: number, code: StoreErrorCode, options: FaultOptions = {}): this {
    this.rules.push({ ops: opSet(op), remaining: count, action: { type: 'fail', code, after: options.after ?? false, status: options.status }, match: options.match });
    return this;
  }

  /** The next `count` calls of `op` never answer: until their signal aborts, hangDeadlineMs, or releaseHung(). */
  hangNext(op: StoreOp | StoreOp[] | '*', count: number, options: Pick<FaultOptions, 'match'> = {}): this {
    this.rules.push({ ops: opSet(op), remaining: count, action: { type: 'hang' }, match: options.match });
    return this;
  }

  /** Every later call of `op` waits `ms` first (cumulative with other latency rules). */
  addLatency(op: StoreOp | StoreOp[] | '*', ms: number): this {
    this.latencies.push({ ops: opSet(op), ms });
    return this;
  }

  /** Every call rejects with `code` (default Unavailable) until comeBack(). */
  goOffline(code: StoreErrorCode = StoreErrorCode.Unavailable): this {
    this.offline = { code };
    return this;
  }

  comeBack(): this {
    this.offline = undefined;
    return this;
  }

  /** Lets every hung call proceed to the inner store. */
  releaseHung(): void {
    for (const release of [...this.hung]) release();
  }

  /** Number of calls currently hung. */
  get hungCount(): number {
    return this.hung.size;
  }

  /** Removes every scripted fault and latency (hung calls stay hung until released or aborted). */
  clearFaults(): this {
    this.rules = [];
    this.latencies = [];
    this.offline = undefined;
    return this;
  }

  /** Number of calls of `op` (or of all ops) made so far, faulted or not. */
  calls(op?: StoreOp): number {
    if (op) return this.counts.get(op) ?? 0;
    let total = 0;
    for (const n of this.counts.values()) total += n;
    return total;
  }

  /** Scripted failures not yet consumed. */
  get pendingFaults(): number {
    return this.rules.reduce((sum, rule) => sum + rule.remaining, 0);
  }

  // ---- the ObjectStore -----------------------------------------------------------------------------------

  capabilities(container?: string): Promise<Capabilities> {
    return this.run({ op: 'capabilities', ...(container === undefined ? {} : { container }) }, undefined, () => this.inner.capabilities(container));
  }
  createContainer(name: string, options?: CreateContainerOptions): Promise<{ created: boolean }> {
    return this.run({ op: 'createContainer', container: name }, undefined, () => this.inner.createContainer(name, options));
  }
  headContainer(name: string): Promise<ContainerInfo> {
    return this.run({ op: 'headContainer', container: name }, undefined, () => this.inner.headContainer(name));
  }
  deleteContainer(name: string): Promise<void> {
    return this.run({ op: 'deleteContainer', container: name }, undefined, () => this.inner.deleteContainer(name));
  }
  listContainers(prefix?: string): Promise<string[]> {
    return this.run({ op: 'listContainers' }, undefined, () => this.inner.listContainers(prefix));
  }
  setLabels(container: string, labels: Record<string, string | null>): Promise<void> {
    return this.run({ op: 'setLabels', container }, undefined, () => this.inner.setLabels(container, labels));
  }
  getLabels(container: string): Promise<Record<string, string>> {
    return this.run({ op: 'getLabels', container }, undefined, () => this.inner.getLabels(container));
  }
  get(container: string, key: string, options?: GetOptions): Promise<GetResult> {
    return this.run({ op: 'get', container, key }, options?.signal, () => this.inner.get(container, key, options));
  }
  put(container: string, key: string, body: PutBody, options?: PutOptions): Promise<PutResult> {
    return this.run({ op: 'put', container, key }, options?.signal, () => this.inner.put(container, key, body, options));
  }
  head(container: string, key: string, options?: { signal?: AbortSignal }): Promise<ObjectInfo> {
    return this.run({ op: 'head', container, key }, options?.signal, () => this.inner.head(container, key, options));
  }
  delete(container: string, key: string, options?: { signal?: AbortSignal }): Promise<void> {
    return this.run({ op: 'delete', container, key }, options?.signal, () => this.inner.delete(container, key, options));
  }
  list(container: string, options?: ListOptions): Promise<ListPage> {
    return this.run({ op: 'list', container }, options?.signal, () => this.inner.list(container, options));
  }
  close(): Promise<void> {
    this.releaseHung();
    return this.inner.close();
  }

  // ---- machinery -----------------------------------------------------------------------------------------

  private async run<T>(call: StoreCall, signal: AbortSignal | undefined, proceed: () => Promise<T>): Promise<T> {
    this.counts.set(call.op, (this.counts.get(call.op) ?? 0) + 1);
    const record: CallRecord = { ...call, outcome: 'ok', injected: false };
    this.callLog.push(record);
    try {
      const latency = this.latencies.reduce((sum, rule) => sum + (applies(rule.ops, call.op) ? rule.ms : 0), 0);
      if (latency > 0) await delay(latency, signal, call);
      if (this.offline) {
        record.injected = true;
        throw injectedError(this.offline.code, call, undefined, 'the store is offline');
      }
      const rule = this.rules.find((r) => r.remaining > 0 && applies(r.ops, call.op) && (r.match === undefined || r.match(call)));
      if (rule) {
        rule.remaining--;
        this.rules = this.rules.filter((r) => r.remaining > 0);
        record.injected = true;
        if (rule.action.type === 'hang') {
          await this.hang(call, signal);
          record.injected = false; // released: the inner store decides
        } else if (rule.action.after) {
          try {
            await proceed();
          } catch {
            // The scripted outcome wins either way.
          }
          throw injectedError(rule.action.code, call, rule.action.status, 'injected failure after the call reached the store');
        } else {
          throw injectedError(rule.action.code, call, rule.action.status, 'injected failure');
        }
      }
      return await proceed();
    } catch (err) {
      record.outcome = err instanceof StoreError ? err.code : StoreErrorCode.Internal;
      throw err;
    }
  }

  private hang(call: StoreCall, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      // A real hung request holds a socket open; so does a hung call here (deadline timers of AbortSignal.timeout
      // are unref'd and would not keep the process alive).
      const keepAlive = setInterval(() => {}, 60_000);
      const finish = () => {
        this.hung.delete(release);
        clearInterval(keepAlive);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const release = () => {
        finish();
        resolve();
      };
      const onAbort = () => {
        finish();
        reject(abortError(call, signal!));
      };
      this.hung.add(release);
      if (this.options.hangDeadlineMs !== undefined) {
        timer = setTimeout(() => {
          finish();
          reject(new StoreError(StoreErrorCode.Timeout, `${describe(call)}: no answer within ${this.options.hangDeadlineMs} ms (injected hang)`, { op: call.op, container: call.container, key: call.key }));
        }, this.options.hangDeadlineMs);
      }
      if (signal?.aborted) onAbort();
      else signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function opSet(op: StoreOp | StoreOp[] | '*'): ReadonlySet<StoreOp> | '*' {
  return op === '*' ? '*' : new Set(Array.isArray(op) ? op : [op]);
}

function applies(ops: ReadonlySet<StoreOp> | '*', op: StoreOp): boolean {
  return ops === '*' || ops.has(op);
}

function describe(call: StoreCall): string {
  return `${call.op}${call.container === undefined ? '' : ` ${call.container}`}${call.key === undefined ? '' : `/${call.key}`}`;
}

function injectedError(code: StoreErrorCode, call: StoreCall, status: number | undefined, why: string): StoreError {
  return new StoreError(code, `${describe(call)}: ${code} (${why})`, {
    op: call.op,
    container: call.container,
    key: call.key,
    status: status ?? TYPICAL_STATUS[code],
    cause: new Error(why),
  });
}

/** The caller's signal fired: Aborted, whatever its reason (as retrying() does for the real stores). */
function abortError(call: StoreCall, signal: AbortSignal): StoreError {
  return new StoreError(StoreErrorCode.Aborted, `${describe(call)}: aborted by the caller`, {
    op: call.op,
    container: call.container,
    key: call.key,
    cause: signal.reason,
  });
}

function delay(ms: number, signal: AbortSignal | undefined, call: StoreCall): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(call, signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(call, signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
