/**
 * Test doubles for the volume plugin's unit tests: an in-memory VolumeBackend (a shared "store" several plugin
 * instances can see, with switches to make it unreachable or slow) and a MountRunner that simulates mount
 * processes (they outlive a plugin "restart", can be killed, can be slow to flush), plus an HTTP client that
 * talks to the plugin socket exactly as the Docker engine does (POST, no Content-Type, Accept v1.2, empty body
 * on Activate).
 */

import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import type { BackendVolume, VolumeBackend, VolumeHolder, VolumeSpec } from '../../src/plugin/backend.js';
import type { MountRunner, MountStats, StartMountRequest, StopResult } from '../../src/plugin/mount-runner.js';
import type { MountProcessRecord, VolumeLocation, VolumeRecord } from '../../src/plugin/state.js';

export class StoreDown extends Error {
  readonly code = 'Unavailable';
  constructor() {
    super('connection refused (store down)');
  }
}

export const KNOWN_OPTIONS = new Set(['container', 'fsync', 'cache-size', 'block-size', 'read-only']);

/** One shared in-memory "store" of volumes keyed by container. */
export class FakeBackend implements VolumeBackend {
  readonly scope = 'global' as const;
  readonly containers = new Map<string, BackendVolume>();
  unreachable = false;
  delayMs = 0;
  calls: string[] = [];

  resolve(name: string, opts: Record<string, string>): VolumeSpec {
    for (const key of Object.keys(opts)) {
      if (!KNOWN_OPTIONS.has(key)) throw new Error(`unknown option ${JSON.stringify(key)}; valid options: ${[...KNOWN_OPTIONS].join(', ')}`);
    }
    if (opts['fsync'] !== undefined && !['remote', 'local'].includes(opts['fsync'])) throw new Error('option fsync must be remote or local');
    const { container = name, ...rest } = opts;
    return { name, location: { backend: 'memory', store: 'default', container }, options: rest };
  }

  private async enter(what: string, signal: AbortSignal): Promise<void> {
    this.calls.push(what);
    if (this.delayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, this.delayMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(signal.reason);
        });
      });
    }
    if (this.unreachable) throw new StoreDown();
  }

  async create(spec: VolumeSpec, signal: AbortSignal): Promise<BackendVolume> {
    await this.enter('create', signal);
    const existing = this.containers.get(spec.location.container);
    if (existing !== undefined && !existing.deleting) return { ...existing };
    const volume: BackendVolume = {
      name: spec.name,
      uuid: randomUUID(),
      createdAt: new Date().toISOString(),
      location: spec.location,
      options: spec.options,
    };
    this.containers.set(spec.location.container, volume);
    return { ...volume };
  }

  async lookup(name: string, signal: AbortSignal): Promise<BackendVolume | null> {
    await this.enter('lookup', signal);
    for (const v of this.containers.values()) if (v.name === name) return { ...v };
    return null;
  }

  async inspect(location: VolumeLocation, signal: AbortSignal): Promise<BackendVolume | null> {
    await this.enter('inspect', signal);
    const v = this.containers.get(location.container);
    return v === undefined ? null : { ...v };
  }

  async list(signal: AbortSignal): Promise<BackendVolume[]> {
    await this.enter('list', signal);
    return [...this.containers.values()].map((v) => ({ ...v }));
  }

  async markDeleting(location: VolumeLocation, signal: AbortSignal): Promise<void> {
    await this.enter('markDeleting', signal);
    const v = this.containers.get(location.container);
    if (v) v.deleting = true;
  }

  async destroy(location: VolumeLocation, signal: AbortSignal): Promise<void> {
    await this.enter('destroy', signal);
    this.containers.delete(location.container);
  }

  async findHome(known: { name: string; uuid: string; location: VolumeLocation }, signal: AbortSignal): Promise<BackendVolume | null> {
    await this.enter('findHome', signal);
    let at = this.containers.get(known.location.container);
    for (let hop = 0; at?.relocatedTo && hop < 8; hop++) at = this.containers.get(at.relocatedTo.container);
    return at !== undefined && at.uuid === known.uuid && at.location.container !== known.location.container ? { ...at } : null;
  }

  /** Simulates `swiftfs relocate`: the volume in `from` is now in container `to` (same uuid), `from` is fenced. */
  relocate(from: string, to: string, region = 'dr'): BackendVolume {
    const v = this.containers.get(from);
    if (!v) throw new Error(`no container ${from}`);
    const moved: BackendVolume = { ...v, location: { ...v.location, store: region, container: to }, role: 'home' };
    delete moved.relocatedTo;
    this.containers.set(to, moved);
    v.role = 'retired';
    v.relocatedTo = { region, container: to };
    delete v.holder;
    return moved;
  }

  setHolder(container: string, holder: VolumeHolder | undefined): void {
    const v = this.containers.get(container);
    if (!v) throw new Error(`no container ${container}`);
    if (holder === undefined) delete v.holder;
    else v.holder = holder;
  }

  async close(): Promise<void> {}
}

interface FakeProcess {
  proc: MountProcessRecord;
  alive: boolean;
  mounted: boolean;
  volume: string;
}

/** Simulated mount processes; one instance plays "the host", shared by successive plugin instances. */
export class FakeRunner implements MountRunner {
  private nextPid = 1000;
  readonly processes = new Map<number, FakeProcess>();
  /** When set, start() fails with this message (as a mount process refusing would). */
  failStart: string | undefined;
  /** When set, stop() takes this long to flush (ms). */
  stopDelayMs = 0;
  starts: string[] = [];
  stops: string[] = [];

  /** When set, start() takes this long (and gives up, leaving nothing, when the signal fires first). */
  startDelayMs = 0;

  async start(request: StartMountRequest, signal: AbortSignal): Promise<MountProcessRecord> {
    if (signal.aborted) throw signal.reason;
    if (this.startDelayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, this.startDelayMs);
        signal.addEventListener('abort', () => {
          clearTimeout(t);
          reject(signal.reason);
        });
      });
    }
    if (this.failStart !== undefined) throw new Error(this.failStart);
    this.starts.push(request.record.name);
    const pid = this.nextPid++;
    const proc: MountProcessRecord = { pid, startTime: `t${pid}`, dir: request.dir, startedAt: new Date().toISOString() };
    this.processes.set(pid, { proc, alive: true, mounted: true, volume: request.record.name });
    return proc;
  }

  private find(proc: MountProcessRecord): FakeProcess | undefined {
    const p = this.processes.get(proc.pid);
    return p !== undefined && p.proc.startTime === proc.startTime ? p : undefined;
  }

  isAlive(proc: MountProcessRecord): boolean {
    return this.find(proc)?.alive === true;
  }

  async isMounted(dir: string): Promise<boolean> {
    for (const p of this.processes.values()) if (p.alive && p.mounted && p.proc.dir === dir) return true;
    return false;
  }

  async stop(proc: MountProcessRecord, budgetMs: number): Promise<StopResult> {
    const p = this.find(proc);
    if (p === undefined || !p.alive) return 'done';
    this.stops.push(p.volume);
    p.mounted = false;
    if (this.stopDelayMs > budgetMs) {
      setTimeout(() => (p.alive = false), this.stopDelayMs).unref();
      await new Promise((r) => setTimeout(r, budgetMs));
      return p.alive ? 'pending' : 'done';
    }
    await new Promise((r) => setTimeout(r, this.stopDelayMs));
    p.alive = false;
    return 'done';
  }

  async waitExit(proc: MountProcessRecord, signal?: AbortSignal): Promise<void> {
    while (this.isAlive(proc)) {
      if (signal?.aborted) throw signal.reason;
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async cleanupDeadMount(dir: string): Promise<void> {
    void dir;
  }

  /** What stats() adds for a volume (e.g. its replication, or state "replicating"). */
  readonly extraStats = new Map<string, Partial<MountStats>>();

  async stats(record: VolumeRecord): Promise<MountStats | undefined> {
    return { cacheBytes: 4096, dirtyBytes: 0, health: 'ok', ...(this.extraStats.get(record.name) ?? {}) };
  }

  /** Simulates the mount process of `volume` dying (kill -9). */
  kill(volume: string): void {
    for (const p of this.processes.values()) if (p.volume === volume && p.alive) p.alive = false;
  }

  /** Simulates someone unmounting the volume behind the plugin's back (the process lives on, mountless). */
  unmountBehindBack(volume: string): void {
    for (const p of this.processes.values()) if (p.volume === volume && p.alive) p.mounted = false;
  }

  alive(volume: string): FakeProcess[] {
    return [...this.processes.values()].filter((p) => p.volume === volume && p.alive);
  }
}

export interface EngineReply {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * Calls the plugin the way the engine does: POST, no Content-Type, `Accept: application/vnd.docker.plugins.v1.2+json`,
 * Host plugin.moby.localhost. `body` undefined sends an empty body (Activate).
 */
export function engineCall(socketPath: string, path: string, body?: string | object): Promise<EngineReply> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: 'POST',
        headers: { Host: 'plugin.moby.localhost', Accept: 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(payload) },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { raw: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('plugin call timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

export const MOUNT_ID_A = 'a'.repeat(64);
export const MOUNT_ID_B = '0123456789abcdef'.repeat(4);
