/**
 * Prometheus metrics (prom-client) of one swiftfs process, in one registry, and the small HTTP server that
 * exposes them (`metrics-listen`).
 *
 * The hot path never builds label sets: `volumeMetrics(volume)` and `storeMetrics(store)` return objects whose
 * methods update plain cells cached per (volume, op, result), so recording an operation is a Map lookup and an
 * addition (prom-client sees the values only when scraped; see the fast metric types below). Durations are recorded in seconds; take the start with `startTimer()` and pass `elapsed(start)`.
 *
 * Metric names:
 *   swiftfs_fs_operations_total{volume,op,result}      filesystem operations; result "ok" or an errno name
 *   swiftfs_fs_operation_duration_seconds{volume,op}
 *   swiftfs_read_bytes_total{volume}, swiftfs_written_bytes_total{volume}     bytes through the filesystem
 *   swiftfs_dirty_bytes{volume}                        written, not yet committed to the store
 *   swiftfs_upload_queue_depth{volume}                 data objects waiting or being uploaded
 *   swiftfs_commits_total{volume,result}, swiftfs_commit_duration_seconds{volume}
 *   swiftfs_store_requests_total{store,op,code}        code: HTTP status, or a StoreError code with no status
 *   swiftfs_store_request_duration_seconds{store,op}
 *   swiftfs_store_bytes_total{store,direction}         direction: "in" (downloaded) or "out" (uploaded)
 *   swiftfs_cache_bytes{volume}, swiftfs_cache_hits_total{volume}, swiftfs_cache_misses_total{volume},
 *   swiftfs_cache_evicted_bytes_total{volume}
 */

import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics, type Metric } from 'prom-client';

/** The process's registry (not prom-client's global one, so tests and embedders stay isolated). */
export const registry = new Registry();

const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const COMMIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

// ------------------------------------------------------------------ fast metric types
//
// prom-client's own label children re-hash their labels on every inc()/observe() (2-4 µs each here). These
// keep one plain cell per label set, updated with an addition, and hand prom-client the values only when the
// registry is scraped (they implement its get() contract and are registered with registerMetric).

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

abstract class FastMetric<C> {
  protected readonly cells = new Map<string, { labels: Record<string, string>; cell: C }>();
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  protected abstract newCell(): C;

  /** The cell of one label set (created at zero on first use). Keep it: updating it is the cheap path. */
  series(...values: string[]): C {
    if (values.length !== this.labelNames.length) throw new Error(`${this.name}: expected labels ${this.labelNames.join(', ')}`);
    const key = values.join('\u0000');
    let entry = this.cells.get(key);
    if (entry === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]!));
      entry = { labels, cell: this.newCell() };
      this.cells.set(key, entry);
    }
    return entry.cell;
  }

  /** Forgets one label set. */
  remove(...values: string[]): void {
    this.cells.delete(values.join('\u0000'));
  }

  reset(): void {
    this.cells.clear();
  }

  protected abstract values(): MetricValue[];

  async get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: 'sum' }> {
    return { name: this.name, help: this.help, type: this.type, values: this.values(), aggregator: this.aggregator };
  }
}

export interface CounterCell {
  value: number;
}

export class FastCounter extends FastMetric<CounterCell> {
  readonly type = 'counter' as const;
  protected newCell(): CounterCell {
    return { value: 0 };
  }
  protected values(): MetricValue[] {
    return [...this.cells.values()].map(({ labels, cell }) => ({ labels, value: cell.value }));
  }
}

export class FastGauge extends FastMetric<CounterCell> {
  readonly type = 'gauge' as const;
  protected newCell(): CounterCell {
    return { value: 0 };
  }
  protected values(): MetricValue[] {
    return [...this.cells.values()].map(({ labels, cell }) => ({ labels, value: cell.value }));
  }
}

export interface HistogramCell {
  /** Observations per bucket (not cumulative); the last slot counts those above every bound. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export class FastHistogram extends FastMetric<HistogramCell> {
  readonly type = 'histogram' as const;
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  protected newCell(): HistogramCell {
    return { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
  }
  /** Records one observation in `cell`. */
  observe(cell: HistogramCell, value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    cell.counts[i]!++;
    cell.sum += value;
    cell.count++;
  }
  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const { labels, cell } of this.cells.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += cell.counts[i]!;
        out.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative });
      });
      out.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cell.count });
      out.push({ metricName: `${this.name}_sum`, labels, value: cell.sum });
      out.push({ metricName: `${this.name}_count`, labels, value: cell.count });
    }
    return out;
  }
}

function register<M extends FastMetric<unknown>>(metric: M): M {
  registry.registerMetric(metric as unknown as Metric);
  return metric;
}

// ------------------------------------------------------------------ the metrics

export const fsOperations = register(new FastCounter('swiftfs_fs_operations_total', 'Filesystem operations, by volume, operation and result ("ok" or the errno name).', ['volume', 'op', 'result']));
export const fsOperationDuration = register(new FastHistogram('swiftfs_fs_operation_duration_seconds', 'Time to serve a filesystem operation.', ['volume', 'op'], LATENCY_BUCKETS));
export const readBytes = register(new FastCounter('swiftfs_read_bytes_total', 'Bytes read through the filesystem.', ['volume']));
export const writtenBytes = register(new FastCounter('swiftfs_written_bytes_total', 'Bytes written through the filesystem.', ['volume']));
export const dirtyBytes = register(new FastGauge('swiftfs_dirty_bytes', 'Bytes written but not yet committed to the object store.', ['volume']));
export const uploadQueueDepth = register(new FastGauge('swiftfs_upload_queue_depth', 'Data objects waiting for or in upload.', ['volume']));
export const commits = register(new FastCounter('swiftfs_commits_total', 'Journal commits, by result ("ok" or "error").', ['volume', 'result']));
export const commitDuration = register(new FastHistogram('swiftfs_commit_duration_seconds', 'Time of one commit: data uploads plus the journal segment.', ['volume'], COMMIT_BUCKETS));
export const storeRequests = register(new FastCounter('swiftfs_store_requests_total', 'Requests to an object store, by operation and outcome (HTTP status, or the error code when there was none).', ['store', 'op', 'code']));
export const storeRequestDuration = register(new FastHistogram('swiftfs_store_request_duration_seconds', 'Time of one request to an object store (one attempt).', ['store', 'op'], LATENCY_BUCKETS));
export const storeBytes = register(new FastCounter('swiftfs_store_bytes_total', 'Bytes moved to ("out") and from ("in") an object store.', ['store', 'direction']));
export const cacheBytes = register(new FastGauge('swiftfs_cache_bytes', 'Bytes held in the local object cache.', ['volume']));
export const cacheHits = register(new FastCounter('swiftfs_cache_hits_total', 'Reads of a data object served from the local cache.', ['volume']));
export const cacheMisses = register(new FastCounter('swiftfs_cache_misses_total', 'Reads of a data object that had to be downloaded.', ['volume']));
export const cacheEvictedBytes = register(new FastCounter('swiftfs_cache_evicted_bytes_total', 'Bytes evicted from the local cache.', ['volume']));

// ------------------------------------------------------------------ timing

/** A start time for `elapsed`. */
export function startTimer(): bigint {
  return process.hrtime.bigint();
}

/** Seconds since `start`. */
export function elapsed(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

// ------------------------------------------------------------------ bound, cached recorders

export interface VolumeMetrics {
  /** One filesystem operation finished; `result` is "ok" or the errno name. */
  op(op: string, result: string, seconds: number): void;
  read(bytes: number): void;
  written(bytes: number): void;
  setDirtyBytes(bytes: number): void;
  setUploadQueueDepth(depth: number): void;
  commit(ok: boolean, seconds: number): void;
  cacheHit(): void;
  cacheMiss(): void;
  setCacheBytes(bytes: number): void;
  cacheEvicted(bytes: number): void;
}

export interface StoreMetrics {
  /** One request (attempt) finished; `code` is the HTTP status, or a StoreError code when there was no answer. */
  request(op: string, code: string | number, seconds: number): void;
  transferred(direction: 'in' | 'out', bytes: number): void;
}

function cached<T>(map: Map<string, T>, key: string, make: () => T): T {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

const volumeRecorders = new Map<string, { recorder: VolumeMetrics; removers: (() => void)[] }>();
const storeRecorders = new Map<string, StoreMetrics>();

/** The recorder of one volume (the same object for the same name). */
export function volumeMetrics(volume: string): VolumeMetrics {
  return cached(volumeRecorders, volume, () => {
    const removers: (() => void)[] = [];
    // Every series made for this volume, so that removeVolumeMetrics can drop exactly those.
    const series = <C>(metric: FastMetric<C>, ...values: string[]): C => {
      removers.push(() => metric.remove(...values));
      return metric.series(...values);
    };
    const opCounts = new Map<string, CounterCell>();
    const opTimes = new Map<string, HistogramCell>();
    const read = series(readBytes, volume);
    const written = series(writtenBytes, volume);
    const dirty = series(dirtyBytes, volume);
    const queue = series(uploadQueueDepth, volume);
    const commitOk = series(commits, volume, 'ok');
    const commitError = series(commits, volume, 'error');
    const commitTime = series(commitDuration, volume);
    const hits = series(cacheHits, volume);
    const misses = series(cacheMisses, volume);
    const cacheSize = series(cacheBytes, volume);
    const evicted = series(cacheEvictedBytes, volume);
    const recorder: VolumeMetrics = {
      op(op, result, seconds) {
        cached(opCounts, `${op}\u0000${result}`, () => series(fsOperations, volume, op, result)).value++;
        fsOperationDuration.observe(cached(opTimes, op, () => series(fsOperationDuration, volume, op)), seconds);
      },
      read: (bytes) => void (read.value += bytes),
      written: (bytes) => void (written.value += bytes),
      setDirtyBytes: (bytes) => void (dirty.value = bytes),
      setUploadQueueDepth: (depth) => void (queue.value = depth),
      commit(ok, seconds) {
        (ok ? commitOk : commitError).value++;
        commitDuration.observe(commitTime, seconds);
      },
      cacheHit: () => void hits.value++,
      cacheMiss: () => void misses.value++,
      setCacheBytes: (bytes) => void (cacheSize.value = bytes),
      cacheEvicted: (bytes) => void (evicted.value += bytes),
    };
    return { recorder, removers };
  }).recorder;
}

/** The recorder of one store (the same object for the same name). */
export function storeMetrics(store: string): StoreMetrics {
  return cached(storeRecorders, store, () => {
    const counts = new Map<string, CounterCell>();
    const times = new Map<string, HistogramCell>();
    const bytesIn = storeBytes.series(store, 'in');
    const bytesOut = storeBytes.series(store, 'out');
    return {
      request(op, code, seconds) {
        cached(counts, `${op}\u0000${code}`, () => storeRequests.series(store, op, String(code))).value++;
        storeRequestDuration.observe(cached(times, op, () => storeRequestDuration.series(store, op)), seconds);
      },
      transferred: (direction, bytes) => void ((direction === 'in' ? bytesIn : bytesOut).value += bytes),
    };
  });
}

/** Drops every series of a volume (after it is unmounted for good); a later volumeMetrics() starts afresh. */
export function removeVolumeMetrics(volume: string): void {
  const entry = volumeRecorders.get(volume);
  if (!entry) return;
  volumeRecorders.delete(volume);
  for (const remove of entry.removers) remove();
}

let processMetricsOn = false;

/** Adds the standard process metrics (CPU, memory, event-loop lag) to the registry; once. */
export function enableProcessMetrics(): void {
  if (processMetricsOn) return;
  processMetricsOn = true;
  collectDefaultMetrics({ register: registry, prefix: 'swiftfs_process_' });
}

/** The metrics in Prometheus text format. */
export function metricsText(): Promise<string> {
  return registry.metrics();
}

/**
 * Serves GET /metrics on `listen` ("HOST:PORT" or "PORT", which means 127.0.0.1:PORT). Resolves once listening.
 */
export function startMetricsServer(listen: string): Promise<Server> {
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(listen);
  if (!match) return Promise.reject(new Error(`metrics-listen: ${JSON.stringify(listen)} is not HOST:PORT`));
  const host = (match[1] || '127.0.0.1').replace(/^\[|\]$/g, '');
  const port = Number(match[2]);
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
    );
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
