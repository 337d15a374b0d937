/**
 * Prometheus metrics (prom-client) of one swiftfs process, in one registry, and the small HTTP server that
 * exposes them (`metrics-listen`).
 *
 * The hot path never builds label sets: `volumeMetrics(volume)` and `storeMetrics(store)` return objects whose
 * methods use label children cached per (volume, op, result), so recording an operation is a Map lookup and an
 * increment. Durations are recorded in seconds; take the start with `startTimer()` and pass `elapsed(start)`.
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
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The process's registry (not prom-client's global one, so tests and embedders stay isolated). */
export const registry = new Registry();

const LATENCY_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const COMMIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const registers = [registry];

export const fsOperations = new Counter({
  name: 'swiftfs_fs_operations_total',
  help: 'Filesystem operations, by volume, operation and result ("ok" or the errno name).',
  labelNames: ['volume', 'op', 'result'] as const,
  registers,
});
export const fsOperationDuration = new Histogram({
  name: 'swiftfs_fs_operation_duration_seconds',
  help: 'Time to serve a filesystem operation.',
  labelNames: ['volume', 'op'] as const,
  buckets: LATENCY_BUCKETS,
  registers,
});
export const readBytes = new Counter({ name: 'swiftfs_read_bytes_total', help: 'Bytes read through the filesystem.', labelNames: ['volume'] as const, registers });
export const writtenBytes = new Counter({ name: 'swiftfs_written_bytes_total', help: 'Bytes written through the filesystem.', labelNames: ['volume'] as const, registers });
export const dirtyBytes = new Gauge({ name: 'swiftfs_dirty_bytes', help: 'Bytes written but not yet committed to the object store.', labelNames: ['volume'] as const, registers });
export const uploadQueueDepth = new Gauge({ name: 'swiftfs_upload_queue_depth', help: 'Data objects waiting for or in upload.', labelNames: ['volume'] as const, registers });
export const commits = new Counter({ name: 'swiftfs_commits_total', help: 'Journal commits, by result ("ok" or "error").', labelNames: ['volume', 'result'] as const, registers });
export const commitDuration = new Histogram({
  name: 'swiftfs_commit_duration_seconds',
  help: 'Time of one commit: data uploads plus the journal segment.',
  labelNames: ['volume'] as const,
  buckets: COMMIT_BUCKETS,
  registers,
});
export const storeRequests = new Counter({
  name: 'swiftfs_store_requests_total',
  help: 'Requests to an object store, by operation and outcome (HTTP status, or the error code when there was none).',
  labelNames: ['store', 'op', 'code'] as const,
  registers,
});
export const storeRequestDuration = new Histogram({
  name: 'swiftfs_store_request_duration_seconds',
  help: 'Time of one request to an object store (one attempt).',
  labelNames: ['store', 'op'] as const,
  buckets: LATENCY_BUCKETS,
  registers,
});
export const storeBytes = new Counter({ name: 'swiftfs_store_bytes_total', help: 'Bytes moved to ("out") and from ("in") an object store.', labelNames: ['store', 'direction'] as const, registers });
export const cacheBytes = new Gauge({ name: 'swiftfs_cache_bytes', help: 'Bytes held in the local object cache.', labelNames: ['volume'] as const, registers });
export const cacheHits = new Counter({ name: 'swiftfs_cache_hits_total', help: 'Reads of a data object served from the local cache.', labelNames: ['volume'] as const, registers });
export const cacheMisses = new Counter({ name: 'swiftfs_cache_misses_total', help: 'Reads of a data object that had to be downloaded.', labelNames: ['volume'] as const, registers });
export const cacheEvictedBytes = new Counter({ name: 'swiftfs_cache_evicted_bytes_total', help: 'Bytes evicted from the local cache.', labelNames: ['volume'] as const, registers });

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

type CounterChild = ReturnType<Counter['labels']>;
type GaugeChild = ReturnType<Gauge['labels']>;
type HistogramChild = ReturnType<Histogram['labels']>;

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
    const series = <C>(metric: { labels(...values: string[]): C; remove(...values: string[]): void }, ...values: string[]): C => {
      removers.push(() => metric.remove(...values));
      return metric.labels(...values);
    };
    const opCounters = new Map<string, CounterChild>();
    const opHistograms = new Map<string, HistogramChild>();
    const read = series<CounterChild>(readBytes, volume);
    const written = series<CounterChild>(writtenBytes, volume);
    const dirty = series<GaugeChild>(dirtyBytes, volume);
    const queue = series<GaugeChild>(uploadQueueDepth, volume);
    const commitOk = series<CounterChild>(commits, volume, 'ok');
    const commitError = series<CounterChild>(commits, volume, 'error');
    const commitTime = series<HistogramChild>(commitDuration, volume);
    const hits = series<CounterChild>(cacheHits, volume);
    const misses = series<CounterChild>(cacheMisses, volume);
    const cacheSize = series<GaugeChild>(cacheBytes, volume);
    const evicted = series<CounterChild>(cacheEvictedBytes, volume);
    const recorder: VolumeMetrics = {
      op(op, result, seconds) {
        cached(opCounters, `${op}\u0000${result}`, () => series<CounterChild>(fsOperations, volume, op, result)).inc();
        cached(opHistograms, op, () => series<HistogramChild>(fsOperationDuration, volume, op)).observe(seconds);
      },
      read: (bytes) => read.inc(bytes),
      written: (bytes) => written.inc(bytes),
      setDirtyBytes: (bytes) => dirty.set(bytes),
      setUploadQueueDepth: (depth) => queue.set(depth),
      commit(ok, seconds) {
        (ok ? commitOk : commitError).inc();
        commitTime.observe(seconds);
      },
      cacheHit: () => hits.inc(),
      cacheMiss: () => misses.inc(),
      setCacheBytes: (bytes) => cacheSize.set(bytes),
      cacheEvicted: (bytes) => evicted.inc(bytes),
    };
    return { recorder, removers };
  }).recorder;
}

/** The recorder of one store (the same object for the same name). */
export function storeMetrics(store: string): StoreMetrics {
  return cached(storeRecorders, store, () => {
    const counters = new Map<string, CounterChild>();
    const histograms = new Map<string, HistogramChild>();
    const bytesIn: CounterChild = storeBytes.labels(store, 'in');
    const bytesOut: CounterChild = storeBytes.labels(store, 'out');
    return {
      request(op, code, seconds) {
        cached(counters, `${op}\u0000${code}`, () => storeRequests.labels(store, op, String(code))).inc();
        cached(histograms, op, () => storeRequestDuration.labels(store, op)).observe(seconds);
      },
      transferred: (direction, bytes) => (direction === 'in' ? bytesIn : bytesOut).inc(bytes),
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
