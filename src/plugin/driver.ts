/**
 * The volume driver behind the Docker plugin protocol: volumes on a VolumeBackend (Swift/S3), one mount process
 * per mounted volume (through a MountRunner), reference counts per Docker mount ID, all persisted in a StateFile.
 *
 * Rules it keeps (see the shared reference, protocols.md §1):
 *  - Every call answers within `callBudgetMs` (default 25 s, under the managed plugin's 30 s client timeout);
 *    work that may take longer (uploading a large volume's last changes, deleting a big container) goes on in
 *    the background and is tracked in the state file, so that it resumes after a restart.
 *  - Get answers from local state when the store cannot be reached (the engine drops a volume on a non-network
 *    Get error), with the problem in Status. It answers "no such volume" only when the store says so.
 *  - Create is idempotent; the engine calls Get first and Create only when Get found nothing.
 *  - Mount IDs are counted, not just recorded: the engine may Mount the same ID twice (docker cp) and then
 *    Unmount it twice. The first Mount starts the mount process; the last Unmount flushes and stops it.
 *  - A mount process that dies while containers use the volume is restarted at the same path (by the health
 *    check, and on plugin start); a live one found on start is re-adopted.
 *  - Calls on one volume are serialised; calls on different volumes run concurrently.
 *  - Regions: a volume relocated to another region (`swiftfs relocate`, with its containers stopped) is
 *    followed at the next Mount: the old home's fence names the new one (or, when the old home does not
 *    answer, the container another region took it over into), the record's location is updated and the volume
 *    is mounted from there. A replica is never mounted read-write. Status shows the region, the replicas and,
 *    while mounted, their lag.
 */

import { mkdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { isUnreachable, type BackendVolume, type VolumeBackend } from './backend.js';
import type { MountRunner, MountStats } from './mount-runner.js';
import { volumeUrl } from './mount-process.js';
import type { WireVolume } from './protocol.js';
import type { PluginLogger, VolumeDriver } from './server.js';
import { silentLogger } from './server.js';
import { mountRefs, type StateFile, type VolumeLocation, type VolumeRecord } from './state.js';

export interface DriverConfig {
  /** This host's name in owner records (a volume held by another host is not mounted here). */
  hostId: string;
  /** Mount points are `<mountRoot>/<volume name>` (in a managed plugin: under propagatedMount). */
  mountRoot: string;
  /** Cache directories are `<cacheRoot>/<volume uuid>`. */
  cacheRoot: string;
  /** Mount process logs are `<logRoot>/<volume name>.log`. */
  logRoot: string;
  /** Deadline of one plugin call (ms). */
  callBudgetMs?: number;
  /** Deadline for asking the store about a volume during Get/Path/Mount (ms). */
  storeCheckMs?: number;
  /** How long Get reuses the last store check of a volume (ms). */
  storeCheckCacheMs?: number;
  /** Interval of the mount health check (ms); 0 disables it. */
  healthIntervalMs?: number;
  /** A record this young is never dropped because its container seems missing (eventual consistency), ms. */
  newVolumeGraceMs?: number;
  /** After a store did not answer, how long calls answer from local state without asking it again (ms). */
  unreachableHoldMs?: number;
}

/** An error the protocol returns as `Err` (a message for the user). */
export class DriverError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DriverError';
  }
}

export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${Math.round(ms / 1000)} s`);
    this.name = 'DeadlineError';
  }
}

/** Runs `work` with an AbortSignal that fires after `ms`; rejects with DeadlineError at the deadline. */
export async function withDeadline<T>(what: string, ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const err = new DeadlineError(what, ms);
      controller.abort(err);
      reject(err);
    }, ms);
  });
  try {
    return await Promise.race([work(controller.signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The time left to answer one plugin call (started when the call arrived, before any lock wait). */
export class CallBudget {
  private readonly end: number;
  constructor(ms: number) {
    this.end = Date.now() + ms;
  }
  /** Milliseconds left (never below `min`). */
  left(min = 0): number {
    return Math.max(min, this.end - Date.now());
  }
}

/** Serialises async work per key. */
class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await work();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface StoreCheck {
  at: number;
  volume?: BackendVolume | null;
  error?: string;
}

export class SwiftfsDriver implements VolumeDriver {
  private readonly lock = new KeyedLock();
  private readonly background = new Set<Promise<unknown>>();
  private readonly storeChecks = new Map<string, StoreCheck>();
  /** Stores that did not answer recently (by store name), and the listing: calls answer from local state. */
  private readonly unreachable = new Map<string, { until: number; error: string }>();
  private listUnreachableUntil = 0;
  private healthTimer: NodeJS.Timeout | undefined;
  private readonly checking = new Set<string>();
  private closed = false;
  readonly config: Required<DriverConfig>;

  constructor(
    private readonly backend: VolumeBackend,
    private readonly runner: MountRunner,
    private readonly state: StateFile,
    config: DriverConfig,
    private readonly log: PluginLogger = silentLogger,
  ) {
    this.config = {
      callBudgetMs: 25_000,
      storeCheckMs: 5_000,
      storeCheckCacheMs: 3_000,
      healthIntervalMs: 10_000,
      newVolumeGraceMs: 60_000,
      unreachableHoldMs: 15_000,
      ...config,
    };
    mkdirSync(this.config.mountRoot, { recursive: true, mode: 0o755 });
    mkdirSync(this.config.cacheRoot, { recursive: true, mode: 0o700 });
    mkdirSync(this.config.logRoot, { recursive: true, mode: 0o700 });
  }

  scope(): 'global' | 'local' {
    return this.backend.scope;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Reconciles the persisted state with the world after a (re)start: re-adopts live mount processes, restarts
   * the ones that died while containers still use them, follows background uploads and deletions. Fast: the
   * remounts run in the background (calls on those volumes wait for them).
   */
  async start(): Promise<void> {
    for (const record of Object.values(this.state.data.volumes)) {
      this.track(this.lock.run(record.name, () => this.reconcile(record.name, 'start')));
    }
    for (const removal of Object.values(this.state.data.removals)) this.startRemoval(removal.name);
    if (this.config.healthIntervalMs > 0) {
      this.healthTimer = setInterval(() => this.healthCheck(), this.config.healthIntervalMs);
      this.healthTimer.unref();
    }
  }

  /** Stops the health check and waits (bounded) for background work. Mount processes are left running. */
  async close(graceMs = 5_000): Promise<void> {
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await Promise.race([this.idle(), new Promise((r) => setTimeout(r, graceMs).unref())]);
  }

  /**
   * Flushes and stops every mount process within `budgetMs` (in parallel). For a plugin whose mount processes
   * cannot outlive it (the managed plugin: its container ends with the server): better a clean flush and release
   * of each volume than a kill. References are kept, so the next start remounts what containers still use.
   */
  async stopAllMounts(budgetMs: number): Promise<void> {
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    const records = Object.values(this.state.data.volumes).filter((r) => r.process !== undefined || r.draining !== undefined);
    await Promise.all(
      records.map(async (record) => {
        for (const proc of [record.process, record.draining]) {
          if (proc === undefined || !this.runner.isAlive(proc)) continue;
          this.log.info({ name: record.name, pid: proc.pid }, 'plugin stopping: flushing and stopping the mount');
          const result = await this.runner.stop(proc, budgetMs).catch(() => 'pending' as const);
          if (result === 'pending') this.log.warn({ name: record.name }, 'mount did not finish flushing before the plugin stopped; its journal is kept in the cache');
        }
      }),
    );
  }

  /** Resolves when no background work is pending (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private track(work: Promise<unknown>): void {
    const p = work.catch((err) => this.log.error({ err: message(err) }, 'background task failed'));
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }

  private healthCheck(): void {
    if (this.closed) return;
    for (const record of Object.values(this.state.data.volumes)) {
      if (record.process === undefined && record.draining === undefined && mountRefs(record) === 0) continue;
      const name = record.name;
      if (this.checking.has(name)) continue; // the previous check of this volume is still queued or running
      this.checking.add(name);
      this.track(this.lock.run(name, () => this.reconcile(name, 'health')).finally(() => this.checking.delete(name)));
    }
  }

  /** Brings one volume's mount in line with its references. Called under the volume's lock. */
  private async reconcile(name: string, why: 'start' | 'health'): Promise<void> {
    const record = this.state.data.volumes[name];
    if (record === undefined) return;
    let changed = false;
    if (record.draining !== undefined) {
      if (this.runner.isAlive(record.draining)) {
        if (why === 'start') this.followDrain(record.name);
      } else {
        delete record.draining;
        changed = true;
      }
    }
    const refs = mountRefs(record);
    if (record.process !== undefined) {
      const alive = this.runner.isAlive(record.process);
      const mounted = alive && (await this.runner.isMounted(record.process.dir));
      if (alive && mounted) {
        if (refs === 0) {
          // Nobody uses it any more (we stopped between the last Unmount and the stop): flush and stop it.
          this.log.info({ name }, 'stopping an unused mount found at start');
          await this.stopMount(record, this.config.callBudgetMs);
          changed = true;
        } else if (why === 'start') {
          this.log.info({ name, pid: record.process.pid }, 're-adopted a live mount process');
        }
      } else {
        // Dead, or alive without its mount (someone unmounted it: the process is on its way out). A live
        // process is never killed for being slow: only its mount's absence or its death count.
        this.log.warn({ name, pid: record.process.pid, alive }, alive ? 'mount process lost its mount; stopping it' : 'mount process is gone; cleaning its mount point');
        if (alive) {
          const result = await this.runner.stop(record.process, 15_000).catch(() => 'pending' as const);
          if (result === 'pending' && this.runner.isAlive(record.process)) process.kill(record.process.pid, 'SIGKILL');
        }
        await this.runner.cleanupDeadMount(record.process.dir);
        delete record.process;
        changed = true;
      }
    }
    if (record.process === undefined && refs > 0 && !this.closed) {
      try {
        await this.startMount(record, new CallBudget(this.config.callBudgetMs));
        record.lastError = undefined;
        this.log.info({ name, refs }, 'remounted a volume still used by containers');
      } catch (err) {
        record.lastError = `remount failed: ${message(err)}`;
        this.log.error({ name, err: message(err) }, 'remount failed');
      }
      changed = true;
    }
    if (changed) await this.state.save();
  }

  /** Drops a mount process that is dead or has lost its mount (under the volume's lock). */
  private async reconcileNow(record: VolumeRecord): Promise<void> {
    const proc = record.process;
    if (proc === undefined) return;
    if (this.runner.isAlive(proc)) {
      const result = await this.runner.stop(proc, 10_000).catch(() => 'pending' as const);
      if (result === 'pending' && this.runner.isAlive(proc)) process.kill(proc.pid, 'SIGKILL');
    }
    await this.runner.cleanupDeadMount(proc.dir);
    delete record.process;
  }

  // ------------------------------------------------------------------ protocol calls

  async create(name: string, opts: Record<string, string>): Promise<void> {
    const spec = this.backend.resolve(name, opts);
    const budget = new CallBudget(this.config.callBudgetMs);
    await this.lock.run(name, async () => {
      if (this.state.data.volumes[name] !== undefined) return; // idempotent
      if (this.state.data.removals[name] !== undefined) {
        throw new DriverError(`volume ${name} is still being deleted from the store; try again in a moment`);
      }
      const volume = await withDeadline(`creating volume ${name}`, budget.left(), (signal) => this.backend.create(spec, signal)).catch(
        (err: unknown) => {
          throw new DriverError(`cannot create volume ${name}: ${message(err)}`, { cause: err });
        },
      );
      this.adoptRecord(volume);
      await this.state.save();
    });
  }

  async get(name: string): Promise<WireVolume> {
    const budget = new CallBudget(this.config.callBudgetMs);
    return this.lock.run(name, async () => {
      let record = this.state.data.volumes[name];
      if (record === undefined) {
        record = await this.discover(name, budget);
        if (record === undefined) throw new DriverError(`no such volume: ${name}`);
      }
      const check = await this.checkStore(record, budget);
      if ((check.volume === null || check.volume?.deleting) && this.mayForget(record)) {
        delete this.state.data.volumes[name];
        await this.state.save();
        throw new DriverError(
          `no such volume: ${name} (its container ${record.location.container} ${check.volume === null ? 'no longer exists' : 'is being deleted'})`,
        );
      }
      return this.describe(record, check);
    });
  }

  async list(): Promise<WireVolume[]> {
    const byName = new Map<string, WireVolume>();
    if (Date.now() >= this.listUnreachableUntil) {
      try {
        const found = await withDeadline('listing volumes', Math.min(15_000, this.config.callBudgetMs - 2_000), (signal) => this.backend.list(signal));
        for (const v of found) if (!v.deleting && this.state.data.removals[v.name] === undefined) byName.set(v.name, { Name: v.name });
      } catch (err) {
        if (isUnreachable(err)) this.listUnreachableUntil = Date.now() + this.config.unreachableHoldMs;
        this.log.warn({ err: message(err) }, 'store listing failed; listing the volumes known on this host');
      }
    }
    for (const record of Object.values(this.state.data.volumes)) {
      byName.set(record.name, mountRefs(record) > 0 ? { Name: record.name, Mountpoint: record.mountpoint } : { Name: record.name });
    }
    return [...byName.values()].sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
  }

  async path(name: string): Promise<string> {
    const record = this.state.data.volumes[name];
    if (record === undefined) {
      const budget = new CallBudget(this.config.callBudgetMs);
      return this.lock.run(name, async () => {
        const found = await this.discover(name, budget);
        if (found === undefined) throw new DriverError(`no such volume: ${name}`);
        return '';
      });
    }
    return mountRefs(record) > 0 && record.process !== undefined ? record.mountpoint : '';
  }

  async mount(name: string, id: string): Promise<string> {
    const budget = new CallBudget(this.config.callBudgetMs);
    return this.lock.run(name, async () => {
      let record = this.state.data.volumes[name];
      if (record === undefined) {
        record = await this.discover(name, budget);
        if (record === undefined) throw new DriverError(`no such volume: ${name}`);
      }
      if (record.process !== undefined && (!this.runner.isAlive(record.process) || !(await this.runner.isMounted(record.process.dir)))) {
        // Its process died or lost its mount since the last health check: start afresh at the same path.
        await this.reconcileNow(record);
      }
      if (record.process === undefined) {
        if (record.draining !== undefined && this.runner.isAlive(record.draining) && (await this.drainingOnlyReplicates(record))) {
          // The previous mount process has closed the volume (committed, ownership released) and only waits for
          // its replicas: the new mount may start (its replicator takes the replicas over when that one ends).
          this.log.info({ name, pid: record.draining.pid }, 'the previous mount process is only replicating its last commit; mounting anyway');
        } else if (record.draining !== undefined && this.runner.isAlive(record.draining)) {
          // The last user's data is still being uploaded by the previous mount process; wait for it (bounded).
          // Leave the mount itself at least half of what is left.
          const wait = budget.left() / 2;
          const finished = await withDeadline('waiting for the previous mount to finish uploading', wait, (signal) =>
            this.runner.waitExit(record!.draining!, signal),
          ).then(
            () => true,
            () => false,
          );
          if (!finished) {
            throw new DriverError(
              `volume ${name} is still uploading the changes of its last use to the store; try again in a moment`,
            );
          }
          delete record.draining;
        }
        const started = Date.now();
        try {
          await this.startMount(record, budget);
        } catch (err) {
          record.lastError = `mount failed: ${message(err)}`;
          await this.state.save();
          throw new DriverError(`cannot mount volume ${name}: ${message(err)}`, { cause: err });
        }
        record.lastError = undefined;
        this.log.info({ name, ms: Date.now() - started, pid: (record as VolumeRecord).process?.pid }, 'volume mounted');
      }
      record.mounts[id] = (record.mounts[id] ?? 0) + 1;
      await this.state.save();
      return record.mountpoint;
    });
  }

  async unmount(name: string, id: string): Promise<void> {
    const budget = new CallBudget(this.config.callBudgetMs);
    await this.lock.run(name, async () => {
      const record = this.state.data.volumes[name];
      if (record === undefined || record.mounts[id] === undefined) {
        this.log.warn({ name, id }, 'unmount of an unknown mount ID; nothing to do');
        return;
      }
      const left = (record.mounts[id] ?? 1) - 1;
      if (left > 0) record.mounts[id] = left;
      else delete record.mounts[id];
      if (mountRefs(record) === 0 && record.process !== undefined) {
        await this.state.save(); // the reference is gone even if the stop below fails
        await this.stopMount(record, budget.left() - 1_500);
      }
      await this.state.save();
    });
  }

  async remove(name: string): Promise<void> {
    const budget = new CallBudget(this.config.callBudgetMs);
    await this.lock.run(name, async () => {
      let record = this.state.data.volumes[name];
      if (record === undefined) record = await this.discover(name, budget);
      if (record === undefined) {
        if (this.state.data.removals[name] !== undefined) return; // already being removed
        throw new DriverError(`no such volume: ${name}`);
      }
      const refs = mountRefs(record);
      if (refs > 0) throw new DriverError(`volume ${name} is in use by ${refs} container mount(s) on this host`);
      if (record.draining !== undefined && this.runner.isAlive(record.draining)) {
        throw new DriverError(`volume ${name} is still uploading the changes of its last use; try again in a moment`);
      }
      const location = record.location;
      const current = await withDeadline(`reading volume ${name}`, Math.min(this.config.storeCheckMs * 2, budget.left() / 3), (signal) => this.backend.inspect(location, signal)).catch(
        (err: unknown) => {
          throw new DriverError(`cannot remove volume ${name}: the store is not reachable (${message(err)})`, { cause: err });
        },
      );
      if (current?.holder?.live) {
        throw new DriverError(`volume ${name} is in use by ${describeHolder(current.holder)}; unmount it there first`);
      }
      if (current !== null) {
        await withDeadline(`marking volume ${name} for deletion`, Math.min(this.config.storeCheckMs * 2, budget.left() / 2), (signal) => this.backend.markDeleting(location, signal)).catch(
          (err: unknown) => {
            throw new DriverError(`cannot remove volume ${name}: ${message(err)}`, { cause: err });
          },
        );
        this.state.data.removals[name] = { name, uuid: record.uuid, location, since: new Date().toISOString() };
      }
      delete this.state.data.volumes[name];
      this.storeChecks.delete(name);
      await this.state.save();
      rmSync(join(this.config.cacheRoot, record.uuid), { recursive: true, force: true });
      try {
        rmdirSync(record.mountpoint);
      } catch {
        // not empty or still a mount point: leave it
      }
      if (current !== null) {
        // Delete the objects; answer within the budget and finish in the background if it takes longer.
        const removal = this.startRemoval(name);
        await Promise.race([removal, new Promise((r) => setTimeout(r, budget.left() - 1_000).unref())]);
      }
    });
  }

  // ------------------------------------------------------------------ helpers

  private startRemoval(name: string): Promise<void> {
    const run = (async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        const removal = this.state.data.removals[name];
        if (removal === undefined) return;
        try {
          await withDeadline(`deleting volume ${name}`, 10 * 60_000, (signal) => this.backend.destroy(removal.location, signal));
          delete this.state.data.removals[name];
          await this.state.save();
          this.log.info({ name }, 'volume deleted from the store');
          return;
        } catch (err) {
          removal.lastError = message(err);
          this.log.warn({ name, err: message(err) }, 'deleting volume from the store failed; will retry');
          await new Promise((r) => setTimeout(r, Math.min(60_000, 1000 * 2 ** attempt)).unref());
        }
      }
    })();
    this.track(run);
    return run;
  }

  /** Finds a volume unknown to this host in the store and records it; undefined if it does not exist. */
  private async discover(name: string, budget: CallBudget): Promise<VolumeRecord | undefined> {
    if (this.state.data.removals[name] !== undefined) return undefined;
    let found: BackendVolume | null;
    try {
      found = await withDeadline(`looking up volume ${name}`, budget.left() - 3_000, (signal) => this.backend.lookup(name, signal));
    } catch (err) {
      throw new DriverError(`cannot look up volume ${name}: ${message(err)}`, { cause: err });
    }
    if (found === null || found.deleting) return undefined;
    const record = this.adoptRecord(found);
    await this.state.save();
    return record;
  }

  private adoptRecord(volume: BackendVolume): VolumeRecord {
    const record: VolumeRecord = {
      name: volume.name,
      uuid: volume.uuid,
      createdAt: volume.createdAt,
      location: volume.location,
      options: { ...volume.options },
      mountpoint: join(this.config.mountRoot, volume.name),
      mounts: {},
      recordedAt: new Date().toISOString(),
    };
    this.state.data.volumes[volume.name] = record;
    this.storeChecks.set(volume.name, { at: Date.now(), volume });
    return record;
  }

  /** Asks the store about a known volume (bounded, cached briefly); never throws. */
  private async checkStore(record: VolumeRecord, budget?: CallBudget): Promise<StoreCheck> {
    const cached = this.storeChecks.get(record.name);
    if (cached !== undefined && Date.now() - cached.at < this.config.storeCheckCacheMs) return cached;
    const down = this.unreachable.get(record.location.store);
    if (down !== undefined && Date.now() < down.until) {
      // The store did not answer a moment ago: do not make every call wait for it again.
      return { at: Date.now(), error: down.error };
    }
    let check: StoreCheck;
    try {
      const volume = await withDeadline(`reading volume ${record.name}`, Math.min(this.config.storeCheckMs, budget?.left() ?? Infinity), (signal) => this.backend.inspect(record.location, signal));
      // A container that now holds another volume (deleted and recreated elsewhere) means this record is stale.
      check = { at: Date.now(), volume: volume !== null && volume.uuid === record.uuid ? volume : null };
    } catch (err) {
      check = { at: Date.now(), error: isUnreachable(err) ? `store unreachable: ${message(err)}` : `store error: ${message(err)}` };
      if (isUnreachable(err)) this.unreachable.set(record.location.store, { until: Date.now() + this.config.unreachableHoldMs, error: check.error! });
    }
    if (check.error === undefined) this.unreachable.delete(record.location.store);
    this.storeChecks.set(record.name, check);
    return check;
  }

  /** Only forget a volume whose container is gone when nothing here uses it and it is not brand new. */
  private mayForget(record: VolumeRecord): boolean {
    return (
      mountRefs(record) === 0 &&
      record.process === undefined &&
      (record.draining === undefined || !this.runner.isAlive(record.draining)) &&
      Date.now() - Date.parse(record.recordedAt) > this.config.newVolumeGraceMs
    );
  }

  private cacheDir(record: VolumeRecord): string {
    return join(this.config.cacheRoot, record.uuid);
  }

  /** True when the draining mount process of `record` has closed its volume and only waits for its replicas. */
  private async drainingOnlyReplicates(record: VolumeRecord): Promise<boolean> {
    const stats = await withDeadline('reading mount stats', 2_000, () => this.runner.stats(record, this.cacheDir(record))).catch(() => undefined);
    return stats?.state === 'replicating';
  }

  /**
   * When the volume was relocated (its recorded home is fenced, or does not answer and another region took it
   * over), points the record at its new home. Returns the store check of the location to mount from.
   */
  private async followRelocation(record: VolumeRecord, check: StoreCheck, budget: CallBudget): Promise<StoreCheck> {
    const moved = check.volume?.role === 'retired' || (check.error !== undefined && check.error.startsWith('store unreachable'));
    if (!moved) return check;
    let home: BackendVolume | null;
    try {
      home = await withDeadline(`looking for the new home of volume ${record.name}`, Math.max(1_000, budget.left() / 3), (signal) => this.backend.findHome(record, signal));
    } catch (err) {
      if (check.volume?.role === 'retired') throw new DriverError(`volume ${record.name} was relocated${check.volume.relocatedTo ? ` to region ${check.volume.relocatedTo.region}` : ''}, and its new home cannot be used from this host: ${message(err)}`, { cause: err });
      return check; // unreachable, and no new home found: the mount reports the store's problem
    }
    if (home === null) {
      if (check.volume?.role === 'retired') {
        throw new DriverError(`volume ${record.name} was relocated${check.volume.relocatedTo ? ` to region ${check.volume.relocatedTo.region} (container ${check.volume.relocatedTo.container})` : ''}, and its new home is not found from this host`);
      }
      return check;
    }
    this.log.info({ name: record.name, from: record.location, to: home.location }, 'volume was relocated: mounting it from its new home');
    record.location = home.location;
    record.lastError = undefined;
    this.storeChecks.delete(record.name);
    await this.state.save();
    return this.checkStore(record, new CallBudget(Math.max(1_000, budget.left() / 4)));
  }

  private async startMount(record: VolumeRecord, budget: CallBudget): Promise<void> {
    // Refuse early, with a clear message, a volume that another host holds (the mount process would refuse too).
    this.storeChecks.delete(record.name);
    let check = await this.checkStore(record, new CallBudget(budget.left() / 4));
    check = await this.followRelocation(record, check, budget);
    if (check.volume?.role === 'replica') {
      throw new DriverError(
        `volume ${record.name} here (${record.location.store}/${record.location.container}) is a replica kept up to date from its home region${check.volume.regions ? ` ${check.volume.regions.home.region}` : ''}; relocate it to this region first (swiftfs relocate, with --failover if its home is gone)`,
      );
    }
    const holder = check.volume?.holder;
    if (holder?.live) {
      throw new DriverError(`volume ${record.name} is in use by ${describeHolder(holder)}; stop its containers there first`);
    }
    if (check.volume === null) throw new DriverError(`the container ${record.location.container} of volume ${record.name} no longer exists`);
    if (check.volume?.deleting) throw new DriverError(`volume ${record.name} is being deleted`);
    mkdirSync(record.mountpoint, { recursive: true, mode: 0o755 });
    const proc = await withDeadline(`mounting volume ${record.name}`, budget.left() - 1_000, (signal) =>
      this.runner.start({ record, dir: record.mountpoint, cacheDir: this.config.cacheRoot, logFile: join(this.config.logRoot, `${record.name}.log`) }, signal),
    );
    record.process = proc;
    await this.state.save();
  }

  /** Flushes and stops the mount process; goes on in the background past the call budget. */
  private async stopMount(record: VolumeRecord, budgetMs: number): Promise<void> {
    const proc = record.process;
    if (proc === undefined) return;
    let result: 'done' | 'pending';
    try {
      result = await this.runner.stop(proc, Math.max(0, budgetMs));
    } catch (err) {
      // The process could not flush (store down?): it keeps its data in the cache (journal) and keeps running,
      // so nothing is lost; follow it as a drain.
      record.lastError = `unmount: ${message(err)}`;
      this.log.error({ name: record.name, err: message(err) }, 'flush on unmount failed; the mount process keeps the data');
      result = this.runner.isAlive(proc) ? 'pending' : 'done';
    }
    delete record.process;
    if (result === 'pending') {
      record.draining = proc;
      this.log.warn({ name: record.name, pid: proc.pid }, 'unmount answered before the upload finished; it continues in the background');
      this.followDrain(record.name);
    } else {
      delete record.draining;
    }
  }

  private followDrain(name: string): void {
    const proc = this.state.data.volumes[name]?.draining;
    if (proc === undefined) return;
    this.track(
      this.runner.waitExit(proc).then(() =>
        this.lock.run(name, async () => {
          const record = this.state.data.volumes[name];
          if (record?.draining?.pid === proc.pid && record.draining.startTime === proc.startTime) {
            delete record.draining;
            await this.state.save();
            this.log.info({ name }, 'background upload of the last use finished');
          }
        }),
      ),
    );
  }

  private async describe(record: VolumeRecord, check: StoreCheck): Promise<WireVolume> {
    const refs = mountRefs(record);
    let stats: MountStats | undefined;
    if (record.process !== undefined || record.draining !== undefined) {
      stats = await withDeadline('reading mount stats', 2_000, () => this.runner.stats(record, this.cacheDir(record))).catch(() => undefined);
    }
    const mountedOk = record.process !== undefined && this.runner.isAlive(record.process);
    const health =
      record.process !== undefined && !mountedOk
        ? 'mount process died; it will be remounted'
        : check.error !== undefined
          ? check.error
          : record.draining !== undefined
            ? 'uploading the changes of the last use'
            : (stats?.health ?? (record.lastError !== undefined ? record.lastError : 'ok'));
    const location: VolumeLocation = record.location;
    const regions = regionsStatus(check.volume, stats);
    const status: Record<string, unknown> = {
      uuid: record.uuid,
      url: volumeUrl(record),
      backend: location.backend,
      store: location.store,
      ...(location.region !== undefined ? { region: location.region } : {}),
      container: location.container,
      ...regions,
      mounted: mountedOk,
      mounts: refs,
      health,
      ...(stats?.cacheBytes !== undefined ? { cacheBytes: stats.cacheBytes } : {}),
      ...(stats?.dirtyBytes !== undefined ? { dirtyBytes: stats.dirtyBytes } : {}),
      ...(stats?.uploadsQueued !== undefined ? { uploadsQueued: stats.uploadsQueued } : {}),
      ...(stats?.lastCommitAt !== undefined ? { lastCommitAt: stats.lastCommitAt } : {}),
      ...(record.draining !== undefined ? { uploading: true } : {}),
      ...(check.volume?.holder !== undefined ? { holder: describeHolder(check.volume.holder) } : {}),
      ...(check.volume?.bytesUsed !== undefined ? { storeBytes: check.volume.bytesUsed } : {}),
      ...(record.lastError !== undefined ? { lastError: record.lastError } : {}),
      options: { ...record.options },
    };
    return { Name: record.name, Mountpoint: record.mountpoint, CreatedAt: record.createdAt, Status: status };
  }
}

export function describeHolder(holder: { host: string; pid?: number; since?: string; live: boolean }): string {
  return `host ${holder.host}${holder.pid !== undefined ? ` (pid ${holder.pid})` : ''}${holder.since !== undefined ? ` since ${holder.since}` : ''}${holder.live ? '' : ' (lease expired)'}`;
}

/**
 * The regions part of a volume's Status: its role here, where a relocation moved it, its home and replicas as
 * recorded, and — while mounted (the mount process replicates) — each replica's state and lag.
 */
export function regionsStatus(volume: BackendVolume | null | undefined, stats: MountStats | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (volume?.role !== undefined && volume.role !== 'home') out['role'] = volume.role;
  if (volume?.relocatedTo) out['relocatedTo'] = `${volume.relocatedTo.region}/${volume.relocatedTo.container}`;
  const live = stats?.replication;
  if (live !== undefined) {
    out['mountedFromRegion'] = live.region;
    if (live.home) out['home'] = `${live.home.region}/${live.home.container}`;
    out['replicas'] = live.replicas.map((r) => ({
      replica: `${r.region}/${r.container}`,
      mode: r.mode,
      state: r.state,
      lagSeconds: r.lagSeconds,
      lagBytes: r.lagBytes,
      replicatedSeq: r.replicatedSeq,
      sourceSeq: r.sourceSeq,
      lastSyncAt: r.lastSyncAt,
      ...(r.lastError ? { lastError: r.lastError } : {}),
    }));
    if (live.note) out['replication'] = live.note;
  } else if (volume?.regions) {
    out['home'] = `${volume.regions.home.region}/${volume.regions.home.container}`;
    out['replicas'] = volume.regions.replicas.map((r) => ({ replica: `${r.region}/${r.container}`, mode: r.mode, state: 'not replicating from this host (not mounted here)' }));
  }
  return out;
}
