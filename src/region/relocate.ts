/**
 * Relocating a volume to another region (the library behind `swiftfs relocate`, see ./README.md).
 *
 * Planned move (the source answers):
 *   1. stop the writer: a mount of the volume on this host is asked to flush and unmount (control socket);
 *      a live owner elsewhere refuses the move unless forced (then it is fenced and loses what it had not
 *      committed);
 *   2. fence the source (it becomes a retired home that names where the volume went);
 *   3. catch the replica up to the source's final journal (replicating, or re-seeding a retired home);
 *   4. take the volume over in the target (epoch above everything, fence segment), record the move in the
 *      regions record, release the owner record for the next mount.
 * Nothing committed in the source is lost: the target ends with the source's whole journal.
 *
 * Failover (`failover`, the source does not answer, or the operator says so):
 *   1. take the volume over in the target at the newest consistent state it holds (a replica always is one);
 *   2. report what may be lost, from the replica status (the source head the replicator last saw) against the
 *      target head;
 *   3. fence the source now if it answers, else record a pending fence in the target (applied by the new
 *      owner's mount and by any later relocate the moment the source answers again).
 *
 * A plan (what would happen, and every reason to refuse) is computed first; `dryRun` stops there.
 */

import type { Config } from '../config/load.js';
import type { ObjectStore } from '../store/object-store.js';
import { isStoreError, StoreError } from '../store/errors.js';
import { FORMAT_VERSION, readFormat, VolumeFormatError, type FormatRecord } from '../core/layout.js';
import { Ownership, guaranteeOf, type OwnerRecord } from '../core/ownership.js';
import { silentLogger, type Logger } from '../core/log.js';
import { findAllVolumeContainers, findVolumeByUuid } from './find.js';
import { readJournalHead, type JournalHeadInfo } from './journal.js';
import { openRegion, resolveRegion, sameRegion } from './regions.js';
import { Replicator, ReplicationError, type ReplicationStatus } from './replicator.js';
import { addPendingFence, applyPendingFences, fenceContainer, fenceGuarantee, releaseTakeover, type FenceResult } from './fence.js';
import { isFenceOwner, readRegions, readReplicaStatus, type RegionMove, type ReplicaStatusRecord, type VolumePlace } from './records.js';
import { recordAfterMove, regionsOrDefault, writeRegionsEverywhere } from './volume-regions.js';

/** A swiftfs mount of the volume on this host, and how to stop it (the FUSE daemon's control socket). */
export interface LocalMount {
  mountpoint: string;
  /** Flushes everything, unmounts and closes the volume (releasing its owner record). */
  unmount(onProgress: (p: { state: string; dirtyBytes?: number }) => void): Promise<void>;
}

export interface RelocateRequest {
  config: Config;
  /** Where the volume is now: a region (store) name and its container there. */
  source: VolumePlace;
  /** Region to move it to. */
  to: string;
  /** Container in the target region (default: the one holding the volume's UUID, else the source's name). */
  targetContainer?: string;
  failover?: boolean;
  dryRun?: boolean;
  /** Fence a live writer elsewhere; accept stores without create-only puts; fail over to a stale retired home. */
  force?: boolean;
  /** The volume's UUID, when the source cannot be read (failover) and the target holds several candidates. */
  uuid?: string;
  /** A mount of the source on this host (found by the caller through the mount registry). */
  localMount?: LocalMount | null;
  /** Opens a region's store (default: from the configuration). Tests and the plugin inject their own. */
  openStore?: (region: string) => Promise<ObjectStore>;
  /** How long the source may take to answer before it counts as unreachable (default 20 s). */
  probeTimeoutMs?: number;
  /** Settle delay S of the fences' takeovers (see FenceOptions.settleMs; default 4 s, the volumes' default). */
  fenceSettleMs?: number;
  /** How long the catch-up may take (default 1 h). */
  catchUpTimeoutMs?: number;
  logger?: Logger;
  onPhase?: (phase: RelocatePhase, message: string) => void;
  onProgress?: (p: CatchUpProgress) => void;
}

export type RelocatePhase = 'inspect' | 'unmount' | 'fence-source' | 'catch-up' | 'takeover' | 'record' | 'done';

export interface CatchUpProgress {
  segmentsDone: number;
  segmentsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface RelocatePlan {
  uuid: string | null;
  kind: 'planned' | 'failover';
  source: VolumePlace & { reachable: boolean; error?: string | undefined; head: JournalHeadInfo | null; owner: OwnerRecord | null; guarantee: string | null };
  target: VolumePlace & { exists: boolean; head: JournalHeadInfo | null; owner: OwnerRecord | null; replicaStatus: ReplicaStatusRecord | null; guarantee: string | null; retired: boolean };
  localMount: string | null;
  format: FormatRecord | null;
  /** What would be done, in order. */
  steps: string[];
  /** Why it cannot be done as asked (empty: it can). */
  refusals: string[];
  /** Things the operator should know (weaker guarantees, data that may be lost). */
  warnings: string[];
  /** Failover: what the target lacks as far as anyone knows. */
  loss: LossReport | null;
}

export interface LossReport {
  /** The target's head: everything committed up to it is in the target. */
  takenSeq: number;
  takenTime: number | null;
  /** The newest source head known (from the source itself if it answered, else the replica status). */
  sourceSeq: number;
  sourceTime: number | null;
  /** When that source head was seen. */
  sourceSeenAt: number | null;
  /** Segments known to be lost (sourceSeq - takenSeq). */
  segmentsLost: number;
  /**
   * Seconds of changes that may be lost: from the target head's commit time to the source head's (exact), or to
   * when the source was last seen (not exact). Everything committed more than this before that moment is there.
   */
  lagSeconds: number;
  /** True when the source head is exact (the source answered); false: changes after sourceSeenAt are unknown. */
  exact: boolean;
  /** The largest replication lag in the minute before the replica status was last written (the usual loss window). */
  recentMaxLagSeconds: number | null;
}

export interface RelocateResult {
  plan: RelocatePlan;
  done: boolean;
  home: VolumePlace;
  takeover: FenceResult | null;
  sourceFence: FenceResult | null;
  pendingFence: boolean;
  loss: LossReport | null;
  catchUp: ReplicationStatus | null;
  durationMs: number;
  phases: { phase: RelocatePhase; ms: number }[];
  nextSteps: string[];
}

export class RelocateError extends Error {
  readonly plan: RelocatePlan | null;
  constructor(message: string, plan: RelocatePlan | null = null) {
    super(message);
    this.name = 'RelocateError';
    this.plan = plan;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreError('Timeout', `${what}: no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/** Whether an error means "the region does not answer" (as opposed to "it answered no"). */
function isUnreachable(err: unknown): boolean {
  return isStoreError(err) && err.retryable;
}

function iso(t: number | null | undefined): string {
  return t ? new Date(t).toISOString() : 'unknown';
}

export function lossReport(taken: JournalHeadInfo, status: ReplicaStatusRecord | null, sourceHead: JournalHeadInfo | null): LossReport {
  const exact = sourceHead !== null && sourceHead.seq >= 0;
  const sourceSeq = exact ? sourceHead.seq : Math.max(status?.sourceSeq ?? taken.seq, taken.seq);
  const sourceTime = exact ? sourceHead.time : status && status.sourceSeq >= taken.seq ? status.sourceTime : taken.time;
  const sourceSeenAt = exact ? Date.now() : (status?.sourceCheckedAt ?? null);
  // Known lag: commits the source made that the target lacks. Not exact: the source may also have committed
  // anything between the target's head and when it was last seen, so the window runs to that sighting.
  const known = sourceSeq > taken.seq && sourceTime && taken.time ? Math.max(0, (sourceTime - taken.time) / 1000) : 0;
  const window = !exact && sourceSeenAt && taken.time ? Math.max(0, (sourceSeenAt - taken.time) / 1000) : 0;
  const recent = status?.recentMaxLagSeconds ?? null;
  const lag = Math.max(known, window, exact ? 0 : (recent ?? 0));
  return { takenSeq: taken.seq, takenTime: taken.time, sourceSeq, sourceTime, sourceSeenAt, segmentsLost: Math.max(0, sourceSeq - taken.seq), lagSeconds: lag, exact, recentMaxLagSeconds: recent };
}

export function describeLoss(l: LossReport): string {
  if (l.exact && l.segmentsLost === 0) return `nothing lost: the target holds the source's whole journal (segment ${l.takenSeq}, committed ${iso(l.takenTime)})`;
  const known =
    l.segmentsLost > 0
      ? `${l.segmentsLost} journal segment(s) the source committed after it (up to segment ${l.sourceSeq} at ${iso(l.sourceTime)}) are not in the target`
      : `the target held everything the replicator had seen`;
  const unknown = l.exact
    ? ''
    : `; changes the source committed after ${iso(l.takenTime)} may be missing (it was last seen ${iso(l.sourceSeenAt)}${l.recentMaxLagSeconds !== null ? `; the replica was up to ${l.recentMaxLagSeconds.toFixed(1)} s behind in the minute before` : ''})`;
  return `the target holds every change committed up to ${iso(l.takenTime)} (segment ${l.takenSeq}); ${known}${unknown}: replication lag ${l.lagSeconds.toFixed(1)} s`;
}

interface Opened {
  source: ObjectStore;
  target: ObjectStore;
  close(): Promise<void>;
}

async function openBoth(req: RelocateRequest): Promise<Opened> {
  const open = req.openStore ?? (async (name: string) => (await openRegion(req.config, name)).store);
  const source = await open(req.source.region);
  const target = await open(req.to);
  return {
    source,
    target,
    async close() {
      if (req.openStore) return; // the caller's stores
      await source.close().catch(() => undefined);
      await target.close().catch(() => undefined);
    },
  };
}

/** Finds the target container: by UUID; without one, the replica whose status names this source. */
async function findTarget(req: RelocateRequest, target: ObjectStore, uuid: string | null): Promise<{ container: string; uuid: string | null; exists: boolean; candidates: string[] }> {
  const hint = req.targetContainer ?? req.source.container;
  if (uuid) {
    const found = await findVolumeByUuid(target, uuid, { hint });
    if (found) return { container: found.container, uuid, exists: true, candidates: [] };
    if (req.targetContainer !== undefined) {
      // The named container may exist without being this volume: the checks below say so.
      return { container: req.targetContainer, uuid, exists: false, candidates: [] };
    }
    return { container: hint, uuid, exists: false, candidates: [] };
  }
  // The source cannot be read: which replica in the target is of this source?
  const all = await findAllVolumeContainers(target);
  const matches: { container: string; uuid: string }[] = [];
  for (const v of all) {
    if (req.targetContainer !== undefined && v.container !== req.targetContainer) continue;
    const st = await readReplicaStatus(target, v.container).catch(() => null);
    const regions = await readRegions(target, v.container).catch(() => null);
    const fromSource =
      (st && st.source.container === req.source.container && sameRegion(req.config, st.source.region, req.source.region)) ||
      (regions && regions.home.container === req.source.container && sameRegion(req.config, regions.home.region, req.source.region));
    if (fromSource || v.container === req.targetContainer) matches.push(v);
  }
  if (matches.length === 1) return { container: matches[0]!.container, uuid: matches[0]!.uuid, exists: true, candidates: [] };
  return { container: req.targetContainer ?? hint, uuid: null, exists: false, candidates: matches.map((m) => `${m.container} (${m.uuid})`) };
}

/** Inspects both regions and says what a relocation would do, or why it must not. Changes nothing. */
export async function planRelocation(req: RelocateRequest, opened?: Opened): Promise<RelocatePlan> {
  const own = opened ?? (await openBoth(req));
  try {
    return await buildPlan(req, own);
  } finally {
    if (!opened) await own.close();
  }
}

async function buildPlan(req: RelocateRequest, o: Opened): Promise<RelocatePlan> {
  const refusals: string[] = [];
  const warnings: string[] = [];
  const steps: string[] = [];
  const probeMs = req.probeTimeoutMs ?? 20_000;
  resolveRegion(req.config, req.to); // a ConfigError for an unknown region, before anything else
  if (sameRegion(req.config, req.source.region, req.to) && (req.targetContainer === undefined || req.targetContainer === req.source.container)) {
    throw new RelocateError(`the volume is already in region ${req.to}`);
  }

  // The source.
  let format: FormatRecord | null = null;
  let reachable = true;
  let sourceError: string | undefined;
  let sourceHead: JournalHeadInfo | null = null;
  let sourceOwner: OwnerRecord | null = null;
  let sourceGuarantee: string | null = null;
  try {
    format = await withTimeout(readFormat(o.source, req.source.container), probeMs, `region ${req.source.region}`);
    sourceOwner = await withTimeout(Ownership.read(o.source, req.source.container), probeMs, `region ${req.source.region}`);
    sourceHead = await withTimeout(readJournalHead(o.source, req.source.container), probeMs, `region ${req.source.region}`);
    sourceGuarantee = (await withTimeout(fenceGuarantee(o.source, req.source.container), probeMs, `region ${req.source.region}`)).guarantee;
  } catch (err) {
    if (!isUnreachable(err)) {
      if (err instanceof VolumeFormatError) throw new RelocateError(`source ${req.source.region}/${req.source.container}: ${err.message}`);
      throw err;
    }
    reachable = false;
    sourceError = (err as Error).message;
  }
  const kind: 'planned' | 'failover' = req.failover ? 'failover' : 'planned';
  const uuid = format?.uuid ?? req.uuid ?? null;

  // The target.
  const found = await findTarget(req, o.target, uuid);
  const volumeUuid = uuid ?? found.uuid;
  let targetFormat: FormatRecord | null = null;
  let targetHead: JournalHeadInfo | null = null;
  let targetOwner: OwnerRecord | null = null;
  let replicaStatus: ReplicaStatusRecord | null = null;
  let targetGuarantee: string | null = null;
  let containerExists = false;
  try {
    await o.target.headContainer(found.container);
    containerExists = true;
  } catch (err) {
    if (!isStoreError(err, 'NotFound')) throw err;
  }
  if (containerExists) {
    try {
      targetFormat = await readFormat(o.target, found.container);
    } catch (err) {
      if (!(err instanceof VolumeFormatError)) throw err;
      if (err.problem === 'newer-format') refusals.push(`target ${req.to}/${found.container}: ${err.message}`);
      else if (err.problem === 'not-swiftfs' && !found.exists) refusals.push(`target ${req.to}/${found.container} holds other objects (not a swiftfs volume); choose another container`);
    }
    targetOwner = await Ownership.read(o.target, found.container);
    targetHead = targetFormat ? await readJournalHead(o.target, found.container) : null;
    replicaStatus = await readReplicaStatus(o.target, found.container);
    targetGuarantee = (await fenceGuarantee(o.target, found.container)).guarantee;
  } else {
    targetGuarantee = guaranteeOf(await o.target.capabilities());
  }
  const retired = isFenceOwner(targetOwner);

  // Refusals.
  if (!volumeUuid) {
    refusals.push(
      found.candidates.length > 1
        ? `region ${req.source.region} does not answer and region ${req.to} holds several candidate replicas (${found.candidates.join(', ')}): name one with --container or give --uuid`
        : `region ${req.source.region} does not answer (${sourceError}) and no replica of ${req.source.container} was found in region ${req.to}`,
    );
  }
  if (targetFormat && volumeUuid && targetFormat.uuid !== volumeUuid) refusals.push(`target ${req.to}/${found.container} holds another volume (uuid ${targetFormat.uuid}, not ${volumeUuid})`);
  if (targetFormat && targetFormat.format > FORMAT_VERSION) refusals.push(`target ${req.to}/${found.container} has format ${targetFormat.format}, newer than this swiftfs reads`);
  if (targetFormat && format && targetFormat.blockSize !== format.blockSize) refusals.push(`target ${req.to}/${found.container} has block size ${targetFormat.blockSize}, the source ${format.blockSize}: not the same volume layout`);
  if (targetOwner && !retired && Ownership.isLive(targetOwner, 120_000)) {
    refusals.push(`target ${req.to}/${found.container} has a live owner (${targetOwner.host}, pid ${targetOwner.pid}, epoch ${targetOwner.epoch}): the volume is in use there already`);
  } else if (targetOwner && !retired && !targetOwner.released) {
    warnings.push(`target ${req.to}/${found.container} has a stale owner record (${targetOwner.host}, epoch ${targetOwner.epoch}); it will be replaced`);
  }

  if (kind === 'planned') {
    if (!reachable) {
      const behind = replicaStatus && targetHead ? `; the replica holds segment ${targetHead.seq} (committed ${iso(targetHead.time)}), the source was last seen at segment ${replicaStatus.sourceSeq} (${iso(replicaStatus.sourceCheckedAt)})` : '';
      refusals.push(`region ${req.source.region} does not answer (${sourceError}): a planned move needs it. Use --failover to take the volume over in ${req.to} at what the replica holds${behind}`);
    }
    if (reachable && sourceOwner && !isFenceOwner(sourceOwner) && Ownership.isLive(sourceOwner, 120_000)) {
      if (req.localMount) steps.push(`ask the mount at ${req.localMount.mountpoint} to commit everything and unmount`);
      else if (req.force) warnings.push(`the volume is in use by ${sourceOwner.host} (pid ${sourceOwner.pid}): it will be fenced and lose what it has not committed`);
      else refusals.push(`the volume is in use read-write by ${sourceOwner.host} (pid ${sourceOwner.pid}, renewed ${iso(sourceOwner.renewedAt)}): unmount it there first, or force (it is fenced and loses what it has not committed)`);
    }
    const towardTarget = reachable && isFenceOwner(sourceOwner) && sourceOwner.fence.movedTo !== null && sameRegion(req.config, sourceOwner.fence.movedTo.region, req.to) && sourceOwner.fence.movedTo.container === found.container;
    // Fenced toward this target but not taken over there yet: an interrupted relocation, which we finish.
    const resuming = towardTarget && (!targetOwner || (!isFenceOwner(targetOwner) && !targetOwner.released && !Ownership.isLive(targetOwner, 120_000)));
    if (towardTarget && !resuming) {
      refusals.push(`the volume already moved to ${req.to}/${found.container} (${req.source.region}/${req.source.container} is its retired home)`);
    } else if (resuming) {
      warnings.push(`the source was already fenced by an unfinished relocation to ${req.to}/${found.container}: continuing it`);
    } else if (reachable && isFenceOwner(sourceOwner)) {
      refusals.push(`the source ${req.source.region}/${req.source.container} is a retired home (the volume moved to ${sourceOwner.fence.movedTo ? `${sourceOwner.fence.movedTo.region}/${sourceOwner.fence.movedTo.container}` : 'another region'})`);
    }
    if (retired && !req.force && targetHead) warnings.push(`target ${req.to}/${found.container} is a former home: its journal is dropped and re-seeded from the source (identical objects are kept)`);
    if (!resuming) steps.push(`fence ${req.source.region}/${req.source.container} (epoch bump, fence segment after ${sourceHead ? `segment ${sourceHead.seq}` : 'its head'}; it becomes a retired home)`);
    steps.push(
      targetHead
        ? `catch ${req.to}/${found.container} up from segment ${targetHead.seq} to the source's last (${sourceHead ? sourceHead.seq - targetHead.seq : '?'} segment(s) behind)`
        : `copy the volume to ${req.to}/${found.container} (seed from the source's newest checkpoint, then its journal)`,
    );
  } else {
    if (!containerExists || !targetFormat || !targetHead || targetHead.checkpointSeq < 0) {
      refusals.push(`region ${req.to} has no complete replica of the volume${found.container ? ` (container ${found.container})` : ''}: nothing to fail over to`);
    }
    if (retired && !req.force) {
      refusals.push(`target ${req.to}/${found.container} is a former home of the volume (fenced ${iso(isFenceOwner(targetOwner) ? targetOwner.fence.at : null)}): its content is older than the move; force to use it anyway`);
    }
    if (reachable) warnings.push(`region ${req.source.region} answers: a planned move (without --failover) would lose nothing`);
  }
  const loss = kind === 'failover' && targetHead ? lossReport(targetHead, replicaStatus, reachable ? sourceHead : null) : null;
  steps.push(`take the volume over in ${req.to}/${found.container} (owner epoch above every epoch seen, fence segment at its head${targetHead && kind === 'failover' ? ` ${targetHead.seq}` : ''})`);
  if (kind === 'failover') {
    steps.push(reachable ? `fence ${req.source.region}/${req.source.container} (it answers)` : `record a pending fence of ${req.source.region}/${req.source.container}, applied as soon as it answers`);
  }
  steps.push(`record ${req.to} as the volume's home in its regions record, release the owner record for the next mount`);
  if (loss) warnings.push(describeLoss(loss));

  return {
    uuid: volumeUuid,
    kind,
    source: { ...req.source, reachable, error: sourceError, head: sourceHead, owner: sourceOwner, guarantee: sourceGuarantee },
    target: { region: req.to, container: found.container, exists: containerExists && targetFormat !== null, head: targetHead, owner: targetOwner, replicaStatus, guarantee: targetGuarantee, retired },
    localMount: req.localMount?.mountpoint ?? null,
    format: format ?? targetFormat,
    steps,
    refusals,
    warnings,
    loss,
  };
}

/** Plans and, unless `dryRun` or the plan refuses, relocates. */
export async function relocate(req: RelocateRequest): Promise<RelocateResult> {
  const started = Date.now();
  const log = req.logger ?? silentLogger;
  const phases: { phase: RelocatePhase; ms: number }[] = [];
  let phaseStart = started;
  let current: RelocatePhase = 'inspect';
  const phase = (p: RelocatePhase, message: string): void => {
    const now = Date.now();
    phases.push({ phase: current, ms: now - phaseStart });
    current = p;
    phaseStart = now;
    log.info({ phase: p }, message);
    req.onPhase?.(p, message);
  };
  req.onPhase?.('inspect', `inspecting ${req.source.region}/${req.source.container} and region ${req.to}`);
  const o = await openBoth(req);
  try {
    const plan = await buildPlan(req, o);
    const base: RelocateResult = {
      plan,
      done: false,
      home: req.source,
      takeover: null,
      sourceFence: null,
      pendingFence: false,
      loss: plan.loss,
      catchUp: null,
      durationMs: 0,
      phases,
      nextSteps: [],
    };
    if (req.dryRun) return { ...base, durationMs: Date.now() - started };
    if (plan.refusals.length) throw new RelocateError(`cannot relocate: ${plan.refusals.join('; ')}`, plan);
    const uuid = plan.uuid!;
    const target: VolumePlace = { region: req.to, container: plan.target.container };
    const source: VolumePlace = { region: req.source.region, container: req.source.container };
    const openByName = async (name: string): Promise<ObjectStore> =>
      sameRegion(req.config, name, req.source.region) ? o.source : sameRegion(req.config, name, req.to) ? o.target : req.openStore ? req.openStore(name) : (await openRegion(req.config, name)).store;

    let result: RelocateResult;
    if (plan.kind === 'planned') result = await planned(req, o, plan, uuid, source, target, phase, log);
    else result = await failover(req, o, plan, uuid, source, target, phase, log);

    // Older pending fences of the volume (an earlier failover) are applied while we are at it.
    await applyPendingFences({ store: o.target, container: target.container }, openByName, { logger: log, ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}) }).catch(() => undefined);
    phase('done', 'relocation done');
    return { ...result, durationMs: Date.now() - started, phases: phases.slice(1) };
  } finally {
    await o.close();
  }
}

type PhaseFn = (p: RelocatePhase, message: string) => void;

async function planned(req: RelocateRequest, o: Opened, plan: RelocatePlan, uuid: string, source: VolumePlace, target: VolumePlace, phase: PhaseFn, log: Logger): Promise<RelocateResult> {
  const owner = plan.source.owner;
  if (req.localMount && owner && !owner.released && !isFenceOwner(owner)) {
    phase('unmount', `committing everything and unmounting ${req.localMount.mountpoint}`);
    await req.localMount.unmount((p) => log.info(p, 'unmount progress'));
  }

  let sourceFence: FenceResult;
  if (isFenceOwner(owner) && owner.fence.movedTo?.container === target.container && plan.source.head) {
    // An interrupted relocation to this same target fenced the source already: its journal ends here.
    const head = plan.source.head;
    sourceFence = { place: source, epoch: owner.epoch, seq: head.seq, time: head.time ?? Date.now(), guarantee: plan.source.guarantee === 'fenced' ? 'fenced' : 'lease', headBefore: head, previousOwner: owner, session: owner.session };
  } else {
    phase('fence-source', `fencing ${source.region}/${source.container}`);
    sourceFence = await fenceContainer({
      store: o.source,
      container: source.container,
      region: source.region,
      uuid,
      mode: 'retire',
      movedTo: target,
      reason: 'planned relocation',
      force: req.force === true,
      logger: log,
      ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}),
    });
  }

  phase('catch-up', `copying to ${target.region}/${target.container} up to segment ${sourceFence.seq}`);
  const catchUp = await catchUpTo(req, o, source, target, sourceFence.seq, plan.target.retired, log);

  phase('takeover', `taking the volume over in ${target.region}/${target.container}`);
  const takeover = await fenceContainer({
    store: o.target,
    container: target.container,
    region: target.region,
    uuid,
    mode: 'takeover',
    reason: 'planned relocation',
    minEpoch: sourceFence.epoch,
    force: req.force === true,
    forceOwner: true,
    logger: log,
    ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}),
  });
  if (takeover.headBefore.seq < sourceFence.seq) {
    throw new RelocateError(`internal: the target's head ${takeover.headBefore.seq} is behind the source's fence ${sourceFence.seq} at takeover`);
  }

  phase('record', 'recording the move');
  const move: RegionMove = { from: source, to: target, kind: 'planned', at: Date.now(), seq: takeover.seq, epoch: takeover.epoch };
  await recordMove(o, uuid, source, target, move, log);
  await releaseTakeover(o.target, target.container, takeover);
  return {
    plan,
    done: true,
    home: target,
    takeover,
    sourceFence,
    pendingFence: false,
    loss: { takenSeq: takeover.headBefore.seq, takenTime: takeover.headBefore.time, sourceSeq: sourceFence.seq, sourceTime: sourceFence.time, sourceSeenAt: Date.now(), segmentsLost: 0, lagSeconds: 0, exact: true, recentMaxLagSeconds: null },
    catchUp,
    durationMs: 0,
    phases: [],
    nextSteps: [],
  };
}

async function failover(req: RelocateRequest, o: Opened, plan: RelocatePlan, uuid: string, source: VolumePlace, target: VolumePlace, phase: PhaseFn, log: Logger): Promise<RelocateResult> {
  phase('takeover', `taking the volume over in ${target.region}/${target.container} at what it holds`);
  const takeover = await fenceContainer({
    store: o.target,
    container: target.container,
    region: target.region,
    uuid,
    mode: 'takeover',
    reason: 'failover',
    force: req.force === true,
    forceOwner: true,
    logger: log,
    ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}),
  });
  const status = await readReplicaStatus(o.target, target.container).catch(() => null);
  let sourceFence: FenceResult | null = null;
  let pendingFence = false;
  let sourceHead: JournalHeadInfo | null = null;
  phase('fence-source', `fencing the old home ${source.region}/${source.container}`);
  try {
    sourceHead = await withTimeout(readJournalHead(o.source, source.container), req.probeTimeoutMs ?? 20_000, `region ${source.region}`);
    sourceFence = await withTimeout(
      fenceContainer({ store: o.source, container: source.container, region: source.region, uuid, mode: 'retire', movedTo: target, reason: 'failover', minEpoch: takeover.epoch, force: true, logger: log, ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}) }),
      req.probeTimeoutMs ?? 20_000,
      `region ${source.region}`,
    );
  } catch (err) {
    if (!isUnreachable(err)) log.error({ err: (err as Error).message }, 'fencing the old home failed; recording it as pending');
    sourceHead = null;
    await addPendingFence({ store: o.target, container: target.container }, uuid, { place: source, minEpoch: takeover.epoch, movedTo: target });
    pendingFence = true;
  }
  const loss = lossReport(takeover.headBefore, status, sourceHead);

  phase('record', 'recording the move');
  const move: RegionMove = {
    from: source,
    to: target,
    kind: 'failover',
    at: Date.now(),
    seq: takeover.seq,
    epoch: takeover.epoch,
    lost: { sourceSeq: loss.sourceSeq, sourceTime: loss.sourceTime, takenSeq: loss.takenSeq, takenTime: loss.takenTime },
  };
  await recordMove(o, uuid, source, target, move, log, !sourceFence);
  await releaseTakeover(o.target, target.container, takeover);
  return { plan, done: true, home: target, takeover, sourceFence, pendingFence, loss, catchUp: null, durationMs: 0, phases: [], nextSteps: [] };
}

/** Runs a replicator until the target holds the source's journal up to `seq`. */
async function catchUpTo(req: RelocateRequest, o: Opened, source: VolumePlace, target: VolumePlace, seq: number, reset: boolean, log: Logger): Promise<ReplicationStatus> {
  const deadline = Date.now() + (req.catchUpTimeoutMs ?? 3_600_000);
  for (;;) {
    const rep = new Replicator({
      source: { store: o.source, container: source.container, region: source.region },
      target: { store: o.target, container: target.container, region: target.region },
      logger: log,
      reset,
      // The lease on the target's owner record uses the fences' settle delay (no larger than a takeover's wait).
      ...(req.fenceSettleMs !== undefined ? { settleMs: req.fenceSettleMs } : {}),
    });
    let total: { segments: number; bytes: number } | null = null;
    const report = (): void => {
      const st = rep.status();
      if (!total && st.lagEstimatedAt !== null) total = { segments: Math.max(0, seq - Math.max(st.replicatedSeq, 0)), bytes: st.copiedBytes + st.lagBytes };
      if (!total) return;
      total.bytes = Math.max(total.bytes, st.copiedBytes + st.lagBytes);
      req.onProgress?.({ segmentsDone: Math.min(total.segments, st.shippedSegments), segmentsTotal: total.segments, bytesDone: st.copiedBytes, bytesTotal: total.bytes });
    };
    const timer = setInterval(report, 200);
    try {
      let st = await rep.syncOnce({ estimate: true });
      while (st.replicatedSeq < seq) {
        if (Date.now() > deadline) throw new RelocateError(`the replica did not catch up in time (at segment ${st.replicatedSeq} of ${seq})`);
        await new Promise((r) => setTimeout(r, 200));
        st = await rep.syncOnce();
      }
      report();
      const done = rep.status();
      const t = total as { segments: number; bytes: number } | null;
      if (t) req.onProgress?.({ segmentsDone: t.segments, segmentsTotal: t.segments, bytesDone: done.copiedBytes, bytesTotal: done.copiedBytes });
      await rep.stop();
      return rep.status();
    } catch (err) {
      await rep.stop().catch(() => undefined);
      if (err instanceof ReplicationError && err.reason === 'busy') {
        // Another replicator (the writer's own, finishing its drain) holds the replica: wait for it.
        log.info({ err: err.message }, 'the replica is being written by another replicator; waiting');
        if (Date.now() > deadline) throw new RelocateError(`the replica is held by another replicator and did not catch up in time: ${err.message}`);
        const head = await readJournalHead(o.target, target.container).catch(() => null);
        if (head && head.seq >= seq) return rep.status();
        await new Promise((r) => setTimeout(r, 2000));
        continue;
      }
      throw err;
    } finally {
      clearInterval(timer);
    }
  }
}

async function recordMove(o: Opened, uuid: string, source: VolumePlace, target: VolumePlace, move: RegionMove, log: Logger, sourceUnreachable = false): Promise<void> {
  let base = await readRegions(o.target, target.container).catch(() => null);
  if (!sourceUnreachable) {
    const fromSource = await readRegions(o.source, source.container).catch(() => null);
    if (fromSource && fromSource.uuid === uuid && (!base || fromSource.updatedAt >= base.updatedAt)) base = fromSource;
  }
  const current = base && base.uuid === uuid ? base : { ...(await regionsOrDefault(o.target, source, uuid)), home: source };
  const next = recordAfterMove(current, target, move);
  const places = [{ store: o.target, place: target }, ...(sourceUnreachable ? [] : [{ store: o.source, place: source }])];
  const failed = await writeRegionsEverywhere(next, places);
  if (failed.length && failed[0]!.place === target) throw new RelocateError(`cannot record the move in ${target.region}/${target.container}: ${failed[0]!.error}`);
  for (const f of failed) log.warn({ place: `${f.place.region}/${f.place.container}`, err: f.error }, 'could not write the regions record there');
}
