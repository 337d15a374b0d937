/**
 * Single writer: the owner record `.swiftfs/owner` says which session holds the volume read-write.
 *
 * Opening read-write reads the record; a live holder (renewed within the lease) refuses the open with
 * VolumeBusyError naming it, unless `force`. A holder on this machine whose process is gone is not live. The new
 * owner writes the record with a higher epoch (the epoch also names its data objects), renews it periodically,
 * and then commits a segment (committer.ts): a create-only segment put is what fences an older owner that is still
 * running (it loses the race for its next segment number and turns read-only).
 *
 * Where the store has no conditional create (Swift 2.30's S3 API), the fence is weaker: before each commit the
 * committer checks that the owner record is still ours (check-then-put), which leaves a window of one commit in
 * which two writers that both think they own the volume can both write a segment (see `guarantee`).
 */

import * as os from 'node:os';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreErrorCode } from '../store/errors.js';
import { OWNER_KEY } from './layout.js';
import type { Logger } from './log.js';

export interface OwnerRecord {
  epoch: number;
  host: string;
  /** Machine identity (/etc/machine-id when readable, else the host name): decides whether `pid` is ours to probe. */
  machine: string;
  pid: number;
  /** Random id of this session (tells two sessions of one process apart). */
  session: string;
  /** ms since the epoch. */
  since: number;
  renewedAt: number;
  mode: 'rw';
  /** Set by a clean close: the volume is free. */
  released?: boolean;
}

/** Opening read-write failed because another session holds the volume. Not an FsError (doors map it to EBUSY). */
export class VolumeBusyError extends Error {
  readonly holder: OwnerRecord;
  constructor(holder: OwnerRecord, message?: string) {
    super(
      message ??
        `volume is in use read-write by ${holder.host} (pid ${holder.pid}) since ${new Date(holder.since).toISOString()}, ` +
          `last renewed ${new Date(holder.renewedAt).toISOString()}; open it read-only, wait for the lease to expire, or force a takeover`,
    );
    this.name = 'VolumeBusyError';
    this.holder = holder;
  }
}

/** This session no longer owns the volume (another one took it over). */
export class FencedError extends Error {
  readonly holder: OwnerRecord | null;
  constructor(holder: OwnerRecord | null) {
    super(holder ? `volume was taken over by ${holder.host} (pid ${holder.pid}, epoch ${holder.epoch})` : 'volume owner record is gone');
    this.name = 'FencedError';
    this.holder = holder;
  }
}

let machineIdCache: string | undefined;
export function machineId(): string {
  if (machineIdCache === undefined) {
    try {
      machineIdCache = readFileSync('/etc/machine-id', 'utf8').trim() || os.hostname();
    } catch {
      machineIdCache = os.hostname();
    }
  }
  return machineIdCache;
}

/** Sessions of this process that hold a volume (a record naming our pid but not one of these is dead). */
const liveSessions = new Set<string>();

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface OwnershipOptions {
  store: ObjectStore;
  container: string;
  /** A holder not renewed for this long is considered gone (default 120 s). */
  leaseMs?: number;
  /** Renewal period (default 30 s). */
  renewMs?: number;
  /** Take the volume even from a live holder. */
  force?: boolean;
  /** Whether the store honours create-only puts (decides the guarantee). */
  conditionalCreate: boolean;
  logger?: Logger;
}

export type OwnershipGuarantee = 'fenced' | 'check-then-put';

export class Ownership {
  readonly record: OwnerRecord;
  /** Who held it before us (when we took it over from a session that did not release it). */
  readonly tookOverFrom: OwnerRecord | null;
  /**
   * 'fenced': two writers can never both commit (create-only segments).
   * 'check-then-put': no conditional create; the owner record is checked before each commit, leaving a race
   * window of about one commit between two writers that both believe they own the volume.
   */
  readonly guarantee: OwnershipGuarantee;
  private readonly opts: OwnershipOptions;
  private timer: NodeJS.Timeout | null = null;
  private lost = false;
  private renewing: Promise<void> | null = null;

  private constructor(opts: OwnershipOptions, record: OwnerRecord, tookOverFrom: OwnerRecord | null) {
    this.opts = opts;
    this.record = record;
    this.tookOverFrom = tookOverFrom;
    this.guarantee = opts.conditionalCreate ? 'fenced' : 'check-then-put';
  }

  get epoch(): number {
    return this.record.epoch;
  }

  static async read(store: ObjectStore, container: string): Promise<OwnerRecord | null> {
    try {
      const { body } = await store.get(container, OWNER_KEY);
      const rec = JSON.parse(body.toString('utf8')) as OwnerRecord;
      if (typeof rec.epoch !== 'number') return null;
      return rec;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.NotFound)) return null;
      if (err instanceof SyntaxError) return null;
      throw err;
    }
  }

  /** Whether `holder` still holds the volume as far as we can tell. */
  static isLive(holder: OwnerRecord, leaseMs: number, now = Date.now()): boolean {
    if (holder.released) return false;
    if (holder.machine === machineId()) {
      if (holder.pid === process.pid) return liveSessions.has(holder.session);
      if (!processAlive(holder.pid)) return false;
    }
    return now - holder.renewedAt < leaseMs;
  }

  /**
   * Takes the volume: checks the current holder, writes a new record with an epoch above both the record's and
   * `minEpoch` (the highest epoch seen in the journal), and reads it back.
   */
  static async acquire(opts: OwnershipOptions, minEpoch: number): Promise<Ownership> {
    const leaseMs = opts.leaseMs ?? 120_000;
    const current = await Ownership.read(opts.store, opts.container);
    if (current && Ownership.isLive(current, leaseMs) && !opts.force) throw new VolumeBusyError(current);
    const now = Date.now();
    const record: OwnerRecord = {
      epoch: Math.max(current?.epoch ?? 0, minEpoch) + 1,
      host: os.hostname(),
      machine: machineId(),
      pid: process.pid,
      session: randomUUID(),
      since: now,
      renewedAt: now,
      mode: 'rw',
    };
    await Ownership.write(opts.store, opts.container, record);
    const back = await Ownership.read(opts.store, opts.container);
    if (!back || back.session !== record.session) {
      throw new VolumeBusyError(back ?? record, `another session took the volume at the same time${back ? ` (${back.host}, pid ${back.pid})` : ''}`);
    }
    const tookOverFrom = current && !current.released ? current : null;
    if (tookOverFrom && Ownership.isLive(tookOverFrom, leaseMs, now)) {
      opts.logger?.warn({ previous: { host: tookOverFrom.host, pid: tookOverFrom.pid, epoch: tookOverFrom.epoch } }, 'forced takeover of a volume held by a live session; it will be fenced on its next commit');
    }
    liveSessions.add(record.session);
    return new Ownership(opts, record, tookOverFrom);
  }

  private static async write(store: ObjectStore, container: string, record: OwnerRecord): Promise<void> {
    await store.put(container, OWNER_KEY, Buffer.from(JSON.stringify(record), 'utf8'), { contentType: 'application/json' });
  }

  /** Throws FencedError when the owner record is no longer ours. */
  async verify(): Promise<void> {
    if (this.lost) throw new FencedError(null);
    const current = await Ownership.read(this.opts.store, this.opts.container);
    if (!current || current.session !== this.record.session) {
      this.lost = true;
      throw new FencedError(current);
    }
  }

  /** Renews the lease every renewMs; calls onLost once if another session took the volume. */
  startRenewal(onLost: (err: FencedError) => void): void {
    const renewMs = this.opts.renewMs ?? 30_000;
    const tick = (): void => {
      if (this.lost || this.renewing) return;
      this.renewing = (async () => {
        try {
          await this.verify();
          this.record.renewedAt = Date.now();
          await Ownership.write(this.opts.store, this.opts.container, this.record);
        } catch (err) {
          if (err instanceof FencedError) {
            this.stop();
            onLost(err);
          } else this.opts.logger?.warn({ err: (err as Error).message }, 'cannot renew the volume lease (will retry)');
        } finally {
          this.renewing = null;
        }
      })();
    };
    this.timer = setInterval(tick, renewMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** This session is over (closed or abandoned): a later open in this process may take the volume at once. */
  end(): void {
    this.stop();
    liveSessions.delete(this.record.session);
  }

  get isLost(): boolean {
    return this.lost;
  }

  markLost(): void {
    this.lost = true;
    this.stop();
  }

  /** Clean release: the record says the volume is free (keeps the epoch for the next owner). */
  async release(): Promise<void> {
    this.stop();
    await this.renewing?.catch(() => undefined);
    if (this.lost) return;
    const current = await Ownership.read(this.opts.store, this.opts.container);
    if (!current || current.session !== this.record.session) return;
    await Ownership.write(this.opts.store, this.opts.container, { ...this.record, renewedAt: Date.now(), released: true });
  }
}
