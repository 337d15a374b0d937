/**
 * Single writer: the owner record `.swiftfs/owner` names the one session that holds a volume read-write, and a
 * LEASE with a settle delay S keeps every other session from committing (DESIGN.md "Single writer").
 *
 *  - Takeover (open read-write, forced or not, and the region layer's fences): read the record, write a new one
 *    with a higher epoch (its answer must come within S/2 of that read's start, else start over), wait S, read it
 *    back (another session's record: lost the race, VolumeBusyError). Only then is the journal probed for the
 *    first free segment number.
 *  - The lease: every read of the record that shows our session confirms ownership as of the moment that read
 *    STARTED (monotonic clock). A segment put, a checkpoint put or a GC delete may only start before
 *    confirmedAt + S/2 (`beforeWrite`); a segment put may only be acknowledged when its answer came before
 *    confirmedAt + S (`afterWrite`), else after a fresh read still shows our session. A background read every S/4
 *    keeps the lease fresh, so a commit normally pays no extra round trip.
 *  - Why it holds: a takeover's record lands after our last confirming read started, and its first segment put
 *    comes at least S after that; so every put we acknowledged had landed before the new owner looked for the
 *    first free number, and every put we started had (by the assumption below) landed too, or carries an older
 *    timestamp than the new owner's and loses to it. Create-only puts are no longer what fences.
 *  - Assumptions: clocks run at the same RATE (not the same time) and a request takes effect within S/2 of its
 *    start, or never; reads see a completed write. Where create-only puts are atomic (the memory store) the
 *    takeover needs no wait: the create-only segment put decides.
 *  - Renewal and release never write the owner record (a newer owner may have written it since we read it): the
 *    owner's liveness goes to `.swiftfs/owner-heartbeat` ({session, renewedAt, released}), which `read()` merges
 *    into the record when it names the same session. Records of older versions (renewedAt/released in the
 *    record itself) still read as before.
 *  - `OwnerLease` is the lease alone (confirmations, the write window, single-attempt puts); `Ownership` is it for
 *    the session the record names. `OwnerLease.follow` gives the same rules to a writer that does not own the
 *    container but must stop once its owner record changes (the region replicator on a replica: a takeover there
 *    can count on none of its writes landing after the settle wait).
 */

import * as os from 'node:os';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Capabilities, ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreError, StoreErrorCode } from '../store/errors.js';
import { HEARTBEAT_KEY, OWNER_KEY } from './layout.js';
import type { Logger } from './log.js';

/** Default settle delay S of the lease, in ms. */
export const DEFAULT_SETTLE_MS = 4000;

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
  /** Last renewal (ms since the epoch): the record's own value, or the heartbeat's when read() merged it. */
  renewedAt: number;
  mode: 'rw';
  /** The session ended cleanly: the volume is free (from the heartbeat, or set in the record by older versions). */
  released?: boolean;
  /**
   * The settle delay S a takeover of this volume waits: the largest any owner used (each takeover writes the
   * larger of its own and the one it replaced). Absent in records of older versions.
   */
  settleMs?: number;
}

/** `.swiftfs/owner-heartbeat`: the liveness of the session the owner record names (written by that session only). */
export interface OwnerHeartbeat {
  session: string;
  renewedAt: number;
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

/** The monotonic clock of the lease (ms). Wall-clock time is never compared between hosts. */
const monotonic = (): number => performance.now();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * How a store's volumes are kept to one writer:
 *  - 'fenced': create-only puts are atomic; the create-only segment put decides between two writers (and the
 *    lease rules apply on top, without a settle wait at takeover).
 *  - 'lease': the lease with settle delay S (Swift, whose create-only put is not atomic; S3 without it).
 */
export type OwnershipGuarantee = 'fenced' | 'lease';

export function guaranteeOf(caps: Capabilities): OwnershipGuarantee {
  return caps.conditionalCreate && caps.createOnlyAtomic === true ? 'fenced' : 'lease';
}

/** What a guarantee means, for status output and for operators. */
export function explainGuarantee(g: OwnershipGuarantee, settleMs = DEFAULT_SETTLE_MS): string {
  if (g === 'fenced') return 'atomic create-only commits: two writers can never both commit a segment';
  return (
    `lease with a ${settleMs} ms settle delay: a takeover waits it out before its first commit, and a writer commits only ` +
    `while its last owner check is recent; assumes clocks that run at the same rate and requests that take effect within ` +
    `${settleMs / 2} ms of being sent, or never`
  );
}

export interface OwnershipOptions {
  store: ObjectStore;
  container: string;
  /** A holder not renewed for this long is considered gone (default 120 s). */
  leaseMs?: number;
  /** Heartbeat period (default 30 s). The owner record is also re-read at least this often. */
  renewMs?: number;
  /** Take the volume even from a live holder. */
  force?: boolean;
  /** Whether the store honours create-only puts (segments are put create-only where it does). */
  conditionalCreate: boolean;
  /** Whether those are atomic (capabilities().createOnlyAtomic): then a takeover needs no settle wait. */
  createOnlyAtomic?: boolean;
  /** The lease's settle delay S (default 4 s). Every host of a volume should use the same. */
  settleMs?: number;
  logger?: Logger;
}

/** Outcome of a put under the lease: ours and acknowledged, or the name holds another writer's object. */
export type LeasePutOutcome = { ok: true } | { ok: false; existing: Buffer };

/** Store errors after which nothing was written (any other failure may still have landed). */
const DEFINITE_FAILURES: ReadonlySet<StoreErrorCode> = new Set<StoreErrorCode>([
  StoreErrorCode.InvalidArgument,
  StoreErrorCode.Auth,
  StoreErrorCode.Forbidden,
  StoreErrorCode.NotFound,
  StoreErrorCode.NotSupported,
  StoreErrorCode.TooLarge,
  StoreErrorCode.Integrity,
]);

/** Attempts of a takeover whose record write answered too late after its read. */
const MAX_TAKEOVER_ATTEMPTS = 5;

/** What a lease needs: the container whose owner record it follows, and the settle delay S. */
export type LeaseOptions = Pick<OwnershipOptions, 'store' | 'container' | 'settleMs' | 'logger'>;

/**
 * The lease (module comment, DESIGN.md "Single writer"): reads of a container's owner record confirm it as of
 * their start while `holds` accepts what they show; any other record loses it for good (FencedError). Writes
 * that change the container may start only within S/2 of a confirmation (`beforeWrite`), are acknowledged only
 * when answered within S (`afterWrite`), and puts are single attempts read back on an unknown outcome
 * (`putUnderLease`). `Ownership` is this lease for the session the record names; `follow` for a writer that
 * owns nothing there (the region replicator on a replica).
 */
export class OwnerLease {
  /** The settle delay S (the lease is valid until confirmedAt + S). */
  readonly settleMs: number;
  protected readonly leaseOpts: LeaseOptions;
  private readonly holds: (current: OwnerRecord | null) => boolean;
  /** Monotonic start time of the newest read of the owner record that `holds` accepted. */
  private confirmedAt: number;
  private confirming: Promise<void> | null = null;
  protected lost = false;
  protected lostTo: OwnerRecord | null = null;

  protected constructor(opts: LeaseOptions, holds: (current: OwnerRecord | null) => boolean, confirmedAt: number) {
    this.leaseOpts = opts;
    this.settleMs = opts.settleMs ?? DEFAULT_SETTLE_MS;
    this.holds = holds;
    this.confirmedAt = confirmedAt;
  }

  /**
   * A lease for writing into a container this session does not own: it holds while the owner record is still
   * `seen` (the same session; still none when `seen` is null), as read by a read that started at `readStartedAt`
   * (monotonic, `OwnerLease.now()`). Use a settle delay no larger than what a takeover there waits (the same S as
   * the volume's hosts, or the record's `settleMs`, whichever is smaller): then once a takeover's wait is over,
   * nothing this lease let start can still land.
   */
  static follow(opts: LeaseOptions, seen: OwnerRecord | null, readStartedAt: number): OwnerLease {
    const session = seen?.session ?? null;
    return new OwnerLease(opts, (current) => (current?.session ?? null) === session, readStartedAt);
  }

  /** The lease's monotonic clock (ms), for `follow`'s `readStartedAt`. */
  static now(): number {
    return monotonic();
  }

  /**
   * Reads the owner record: ours refreshes the lease (as of the read's start), another session's (or none) loses
   * it for good (FencedError). A read already running is shared. Store failures are thrown as they are.
   */
  async confirm(): Promise<void> {
    if (this.lost) throw new FencedError(this.lostTo);
    if (!this.confirming) {
      const startedAt = monotonic();
      const p = (async () => {
        const current = await Ownership.readRecord(this.leaseOpts.store, this.leaseOpts.container);
        if (!this.holds(current)) {
          this.lose(current);
          throw new FencedError(current);
        }
        if (startedAt > this.confirmedAt) this.confirmedAt = startedAt;
      })();
      this.confirming = p;
      p.then(
        () => {
          if (this.confirming === p) this.confirming = null;
        },
        () => {
          if (this.confirming === p) this.confirming = null;
        },
      );
    }
    await this.confirming;
  }

  /**
   * Resolves when a write that changes the volume (segment, checkpoint, delete) may START now: the lease was
   * confirmed less than S/2 ago (else the record is read first). FencedError when it is not ours any more; a
   * StoreError when the store does not answer, or answers too slowly for the lease (more than S/2).
   */
  async beforeWrite(): Promise<void> {
    for (let reads = 0; ; reads++) {
      if (this.lost) throw new FencedError(this.lostTo);
      if (monotonic() < this.confirmedAt + this.settleMs / 2) return;
      if (reads >= 2) {
        throw new StoreError(StoreErrorCode.Timeout, `the owner record takes more than ${this.settleMs / 2} ms to read (half the settle delay): not writing until the store answers faster`, {
          op: 'get',
          container: this.leaseOpts.container,
          key: OWNER_KEY,
        });
      }
      await this.confirm();
    }
  }

  /**
   * Resolves when a write answered at `answeredAt` (monotonic) may be acknowledged: it came before the lease
   * ran out, or a read started after it still shows our session. FencedError otherwise (not acknowledged).
   */
  async afterWrite(answeredAt: number): Promise<void> {
    for (;;) {
      if (answeredAt < this.confirmedAt + this.settleMs) return;
      if (this.lost) throw new FencedError(this.lostTo);
      await this.confirm(); // starts after answeredAt unless one was running: then the loop reads again
    }
  }

  /**
   * One put of an object that changes the volume, under the lease: started within S/2 of a confirmation, a
   * single attempt (the store's own retries could start one after the lease), create-only where asked. An
   * unknown outcome (timeout, 5xx, reset) is resolved by reading the object back once the put can no longer land
   * (S/2 after it started): ours counts as answered then, absent rethrows the failure (the caller may try again),
   * another object is reported. Acknowledged only per `afterWrite`.
   */
  async putUnderLease(key: string, bytes: Buffer, options: { createOnly: boolean; contentType?: string }): Promise<LeasePutOutcome> {
    const { store, container } = this.leaseOpts;
    await this.beforeWrite();
    const startedAt = monotonic();
    let answeredAt: number;
    try {
      // A stream body is one attempt (object-store.ts: streams are not retried).
      await store.put(container, key, Readable.from([bytes]), {
        contentType: options.contentType ?? 'application/octet-stream',
        size: bytes.length,
        ...(options.createOnly ? { ifNoneMatch: '*' as const } : {}),
      });
      answeredAt = monotonic();
    } catch (err) {
      // Refused before anything was stored (a 4xx, or a token rejected before the body was sent): nothing landed.
      if (!(err instanceof StoreError) || DEFINITE_FAILURES.has(err.code) || err.status === 401) throw err;
      if (err.code !== StoreErrorCode.PreconditionFailed) {
        const landBy = startedAt + this.settleMs / 2;
        const now = monotonic();
        if (now < landBy) await sleep(landBy - now);
      }
      let existing: Buffer | null = null;
      try {
        existing = (await store.get(container, key)).body;
      } catch (readErr) {
        if (!isStoreError(readErr, StoreErrorCode.NotFound)) throw readErr;
      }
      answeredAt = monotonic();
      if (existing === null) {
        if (err.code === StoreErrorCode.PreconditionFailed) throw new StoreError(StoreErrorCode.Unavailable, `put ${key}: create-only put refused but the object is not there (listing lag?); retrying`, { op: 'put', container, key, cause: err });
        throw err;
      }
      if (!existing.equals(bytes)) return { ok: false, existing };
      this.leaseOpts.logger?.info({ container, key }, 'a put with an unknown outcome landed (read back): it was ours');
    }
    await this.afterWrite(answeredAt);
    return { ok: true };
  }


  protected lose(holder: OwnerRecord | null): void {
    if (this.lost) return;
    this.lost = true;
    this.lostTo = holder;
  }

  get isLost(): boolean {
    return this.lost;
  }

  /** The owner record that replaced the one this lease followed (null: none, or not lost). */
  get lostToRecord(): OwnerRecord | null {
    return this.lostTo;
  }

  markLost(): void {
    this.lose(this.lostTo);
  }
}

export class Ownership extends OwnerLease {
  readonly record: OwnerRecord;
  /** Who held it before us (when we took it over from a session that did not release it). */
  readonly tookOverFrom: OwnerRecord | null;
  readonly guarantee: OwnershipGuarantee;
  private readonly opts: OwnershipOptions;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private lastHeartbeat: number;
  private checkFailingSince: number | null = null;
  private checkLoggedAt = 0;

  private constructor(opts: OwnershipOptions, record: OwnerRecord, tookOverFrom: OwnerRecord | null, confirmedAt: number) {
    // Ours while the record names our session.
    super(opts, (current) => current !== null && current.session === record.session, confirmedAt);
    this.opts = opts;
    this.record = record;
    this.tookOverFrom = tookOverFrom;
    this.guarantee = opts.conditionalCreate && opts.createOnlyAtomic === true ? 'fenced' : 'lease';
    this.lastHeartbeat = monotonic();
  }

  get epoch(): number {
    return this.record.epoch;
  }

  /** The owner record alone (one GET); null when absent or unreadable. */
  static async readRecord(store: ObjectStore, container: string): Promise<OwnerRecord | null> {
    try {
      const { body } = await store.get(container, OWNER_KEY);
      const rec = JSON.parse(body.toString('utf8')) as OwnerRecord;
      if (typeof rec !== 'object' || rec === null || typeof rec.epoch !== 'number') return null;
      return rec;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.NotFound)) return null;
      if (err instanceof SyntaxError) return null;
      throw err;
    }
  }

  static async readHeartbeat(store: ObjectStore, container: string): Promise<OwnerHeartbeat | null> {
    try {
      const { body } = await store.get(container, HEARTBEAT_KEY);
      const hb = JSON.parse(body.toString('utf8')) as OwnerHeartbeat;
      if (typeof hb !== 'object' || hb === null || typeof hb.session !== 'string' || typeof hb.renewedAt !== 'number') return null;
      return hb;
    } catch (err) {
      if (isStoreError(err, StoreErrorCode.NotFound)) return null;
      if (err instanceof SyntaxError) return null;
      throw err;
    }
  }

  /** The owner record with its session's heartbeat merged in (renewal time, clean release). */
  static async read(store: ObjectStore, container: string): Promise<OwnerRecord | null> {
    const [rec, hb] = await Promise.all([Ownership.readRecord(store, container), Ownership.readHeartbeat(store, container)]);
    if (!rec) return null;
    if (!hb || hb.session !== rec.session) return rec;
    return { ...rec, renewedAt: Math.max(rec.renewedAt, hb.renewedAt), ...(hb.released ? { released: true } : {}) };
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

  /** Writes the owner record (takeovers only: nothing else ever writes it). */
  static async writeRecord(store: ObjectStore, container: string, record: OwnerRecord): Promise<void> {
    await store.put(container, OWNER_KEY, Buffer.from(JSON.stringify(record), 'utf8'), { contentType: 'application/json' });
  }

  static async writeHeartbeat(store: ObjectStore, container: string, hb: OwnerHeartbeat): Promise<void> {
    await store.put(container, HEARTBEAT_KEY, Buffer.from(JSON.stringify(hb), 'utf8'), { contentType: 'application/json' });
  }

  /**
   * The takeover protocol (module comment): `make` gets the current record (heartbeat merged) and returns the
   * record to write, or throws to refuse (a live holder). The record's answer must come within S/2 of the read's
   * start (else the whole takeover starts over), then the takeover waits S (the larger of ours and the replaced
   * record's; none where create-only puts are atomic) and reads the record back. Resolves with the session
   * holding a fresh lease; rejects with VolumeBusyError when another session's record replaced ours.
   */
  static async takeOver(opts: OwnershipOptions, make: (current: OwnerRecord | null) => OwnerRecord): Promise<{ ownership: Ownership; previous: OwnerRecord | null; waitedMs: number }> {
    const own = opts.settleMs ?? DEFAULT_SETTLE_MS;
    const atomic = opts.conditionalCreate && opts.createOnlyAtomic === true;
    for (let attempt = 1; ; attempt++) {
      const readAt = monotonic();
      const current = await Ownership.read(opts.store, opts.container);
      const record = make(current);
      // Every taker waits for the largest S used on the volume (a holder with a longer lease may be replaced);
      // the write's answer is bounded by the smaller one (the one a concurrent taker of the same record waits).
      const settleMs = Math.max(own, current?.settleMs ?? 0);
      const writeBoundMs = Math.min(own, current?.settleMs ?? own) / 2;
      record.settleMs = settleMs;
      await Ownership.writeRecord(opts.store, opts.container, record);
      const tookMs = monotonic() - readAt;
      if (tookMs >= writeBoundMs) {
        // It may have replaced a record written after our read that we never saw: not a takeover to trust.
        if (attempt >= MAX_TAKEOVER_ATTEMPTS) {
          throw new StoreError(
            StoreErrorCode.Timeout,
            `taking the volume over: reading and writing the owner record took ${Math.round(tookMs)} ms, more than half the settle delay (${writeBoundMs * 2} ms), ${attempt} times; the store is too slow for this settle delay`,
            { op: 'put', container: opts.container, key: OWNER_KEY },
          );
        }
        opts.logger?.warn({ container: opts.container, ms: Math.round(tookMs), boundMs: writeBoundMs }, 'takeover: the owner record write answered too late after its read; taking over again');
        continue;
      }
      const waitMs = atomic ? 0 : settleMs;
      if (waitMs > 0) await sleep(waitMs);
      const checkAt = monotonic();
      const back = await Ownership.readRecord(opts.store, opts.container);
      if (!back || back.session !== record.session) {
        throw new VolumeBusyError(back ?? record, `another session took the volume at the same time${back ? ` (${back.host}, pid ${back.pid}, epoch ${back.epoch})` : ''}`);
      }
      const tookOverFrom = current && !current.released ? current : null;
      return { ownership: new Ownership(opts, record, tookOverFrom, checkAt), previous: current, waitedMs: waitMs };
    }
  }

  /**
   * Takes the volume for a read-write session: refuses a live holder (VolumeBusyError) unless `force`, takes an
   * epoch above both the record's and `minEpoch` (the highest epoch seen in the journal), and runs the takeover.
   */
  static async acquire(opts: OwnershipOptions, minEpoch: number): Promise<Ownership> {
    const leaseMs = opts.leaseMs ?? 120_000;
    const { ownership, previous } = await Ownership.takeOver(opts, (current) => {
      if (current && Ownership.isLive(current, leaseMs) && !opts.force) throw new VolumeBusyError(current);
      const now = Date.now();
      return {
        epoch: Math.max(current?.epoch ?? 0, minEpoch) + 1,
        host: os.hostname(),
        machine: machineId(),
        pid: process.pid,
        session: randomUUID(),
        since: now,
        renewedAt: now,
        mode: 'rw',
      };
    });
    if (previous && !previous.released && Ownership.isLive(previous, leaseMs)) {
      opts.logger?.warn({ previous: { host: previous.host, pid: previous.pid, epoch: previous.epoch } }, 'forced takeover of a volume held by a live session; it stops committing within the settle delay');
    }
    liveSessions.add(ownership.record.session);
    return ownership;
  }

  protected override lose(holder: OwnerRecord | null): void {
    if (this.lost) return;
    super.lose(holder);
    this.stop();
  }

  /**
   * Keeps the lease fresh (a read of the owner record every min(S/4, renewMs)) and writes the heartbeat every
   * renewMs; calls onLost once when the record names another session.
   */
  startRenewal(onLost: (err: FencedError) => void): void {
    const renewMs = this.opts.renewMs ?? 30_000;
    const everyMs = Math.max(1, Math.min(this.settleMs / 4, renewMs));
    const tick = (): void => {
      if (this.lost || this.ticking) return;
      this.ticking = (async () => {
        try {
          await this.confirm();
          if (monotonic() - this.lastHeartbeat >= renewMs) {
            this.lastHeartbeat = monotonic();
            await Ownership.writeHeartbeat(this.opts.store, this.opts.container, { session: this.record.session, renewedAt: Date.now() });
          }
          this.checkFailingSince = null;
        } catch (err) {
          if (err instanceof FencedError) onLost(err);
          else {
            // Logged when it starts failing and then every renewal period, not every check.
            const now = monotonic();
            if (this.checkFailingSince === null || now - this.checkLoggedAt >= renewMs) {
              this.checkLoggedAt = now;
              this.opts.logger?.warn({ err: (err as Error).message, failingForMs: this.checkFailingSince === null ? 0 : Math.round(now - this.checkFailingSince) }, 'cannot check or renew the volume lease (will retry; commits wait for a check that succeeds)');
            }
            this.checkFailingSince ??= now;
          }
        } finally {
          this.ticking = null;
        }
      })();
    };
    this.timer = setInterval(tick, everyMs);
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

  /**
   * Clean release: the heartbeat says this session ended (the next open takes the volume without forcing). The
   * owner record is not written (a newer owner may have written it since); a heartbeat of a session the record
   * no longer names is ignored by readers.
   */
  async release(): Promise<void> {
    this.stop();
    await this.ticking?.catch(() => undefined);
    if (this.lost) return;
    const current = await Ownership.readRecord(this.opts.store, this.opts.container);
    if (!current || current.session !== this.record.session) return;
    await Ownership.writeHeartbeat(this.opts.store, this.opts.container, { session: this.record.session, renewedAt: Date.now(), released: true });
  }
}
