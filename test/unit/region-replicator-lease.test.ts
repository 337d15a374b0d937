/**
 * The replicator under the single-writer lease on its target (replicator.ts, core/ownership.ts OwnerLease.follow):
 * on a store that behaves like Swift (SwiftLikeStore: create-only puts that are not atomic, the newest timestamp
 * wins), a replicator paused right before a put (a slow request, a process pause) while the replica is taken
 * over or fenced must not land anything there after the takeover's settle wait: it re-reads the replica's owner
 * record before the put (its confirmation is older than S/2 by then), sees the change and stops for good,
 * reporting `taken-over` or `fenced` in its status and in the `swiftfs_replica_fenced` gauge.
 *
 * The old check-then-put replicator (owner checked before each segment, store retries) fails these: the paused
 * data object put lands after the takeover, and without create-only puts the paused segment put replaces the
 * takeover's fence segment.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { PutBody, PutOptions, PutResult } from '../../src/store/object-store.js';
import { Replicator, ReplicationError, type ReplicatorStep } from '../../src/region/replicator.js';
import { fenceContainer } from '../../src/region/fence.js';
import { fetchSegment } from '../../src/core/layout.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import type { Volume } from '../../src/core/volume.js';
import { replicationGauges } from '../../src/region/replication-metrics.js';
import { metricsText } from '../../src/metrics.js';
import { SwiftLikeStore } from './swift-like-store.js';
import { checkContainerConsistent, sourceVolume, KiB } from './region-helpers.js';
import { pattern } from './volume-helpers.js';

const S = 300;

/** A Swift-like target that records every put and delete that completed after `fenceDone` was set. */
class WatchedTarget extends SwiftLikeStore {
  fenceDone = false;
  late: string[] = [];
  override async put(container: string, key: string, body: PutBody, options: PutOptions = {}): Promise<PutResult> {
    const dropped = this.droppedPuts.length;
    const out = await super.put(container, key, body, options);
    if (this.fenceDone && this.droppedPuts.length === dropped) this.late.push(`put ${key}`);
    return out;
  }
  override async delete(container: string, key: string, options?: { signal?: AbortSignal }): Promise<void> {
    await super.delete(container, key, options);
    if (this.fenceDone) this.late.push(`delete ${key}`);
  }
}

async function put(v: Volume, p: string, data: Buffer): Promise<void> {
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, 0);
  } finally {
    await v.release(fh);
  }
}

for (const conditionalCreate of [true, false]) {
  const kind = conditionalCreate ? 'non-atomic create-only puts' : 'no create-only puts';
  for (const mode of ['takeover', 'retire'] as const) {
    for (const pauseAt of ['object', 'segment'] as const) {
      test(`a ${mode} of the replica while the replicator is paused before a ${pauseAt} put: nothing of it lands after the settle wait, it stops as ${mode === 'takeover' ? 'taken-over' : 'fenced'} (${kind})`, async () => {
        const src = await sourceVolume();
        const target = new WatchedTarget(new MemoryStore({ conditionalCreate, name: 'region-b' }));
        let armed = false;
        let pausedAt: ReplicatorStep | null = null;
        let reachedPause!: () => void;
        const reached = new Promise<void>((r) => (reachedPause = r));
        let release!: () => void;
        const released = new Promise<void>((r) => (release = r));
        const rep = new Replicator({
          source: { store: src.store, container: src.container, region: 'A' },
          target: { store: target, container: 'vol', region: 'B' },
          settleMs: S,
          onStep: async (step) => {
            if (!armed || step.kind !== pauseAt) return;
            armed = false;
            pausedAt = step;
            reachedPause();
            await released;
          },
        });
        const gauges = replicationGauges('mem://A/vol');
        try {
          await put(src.volume, '/a', pattern(100 * KiB, 1));
          await src.volume.syncAll();
          const first = await rep.syncOnce();
          assert.equal(first.state, 'caught-up');
          const shipped = first.replicatedSeq;

          // A commit with a new data object: the next sync copies the object, then puts the segment.
          await put(src.volume, '/b', pattern(50 * KiB, 2));
          await src.volume.syncAll();
          armed = true;
          const sync = rep.syncOnce().then(
            () => null,
            (e: unknown) => e,
          );
          await reached;
          assert.equal(pausedAt!.kind, pauseAt);

          // The replica is taken over (or retired) while the replicator waits right before its put.
          const fence = await fenceContainer({ store: target, container: 'vol', region: 'B', uuid: src.volume.uuid, mode, reason: 'test', settleMs: S });
          target.fenceDone = true;
          // (A segment without new objects may have been put before the pause at an object of a later one.)
          assert.ok(fence.headBefore.seq >= shipped, 'the replica held what was shipped');
          assert.equal(fence.seq, fence.headBefore.seq + 1, 'the fence segment follows what the replica held');
          release();
          const err = await sync;

          assert.deepEqual(target.late, [], 'nothing of the replicator landed after the takeover');
          const fenceSeg = await fetchSegment(target, 'vol', fence.seq);
          assert.equal(fenceSeg?.decoded.header.epoch, fence.epoch, "the fence segment is still the takeover's");
          assert.equal(await checkContainerConsistent(target, 'vol'), fence.seq);

          const reason = mode === 'takeover' ? 'taken-over' : 'fenced';
          assert.ok(err instanceof ReplicationError, `stopped with a ReplicationError, not ${String(err)}`);
          assert.equal(err.reason, reason);
          const st = rep.status();
          assert.equal(st.state, reason);
          assert.equal(st.replicatedSeq, fence.headBefore.seq, 'nothing more counted as replicated');
          assert.match(st.lastError ?? '', /replication into it stopped/);
          // Stopped for good: a later sync writes nothing either.
          await assert.rejects(rep.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === reason);
          await rep.stop();
          assert.deepEqual(target.late, [], 'nor after a later sync or stop');
          assert.equal(rep.status().state, reason);

          gauges.publish([rep.status()]);
          const text = await metricsText();
          assert.match(text, /swiftfs_replica_fenced\{volume="mem:\/\/A\/vol",replica="B\/vol"\} 1/);
          assert.match(text, /swiftfs_replica_up\{volume="mem:\/\/A\/vol",replica="B\/vol"\} 0/);
        } finally {
          release();
          gauges.remove();
          await rep.stop().catch(() => undefined);
          await src.cleanup();
        }
      });
    }
  }
}

test('while the replica stays unowned, the lease costs at most one owner record read per S/2 of shipping, and the gauge says not fenced', async () => {
  const src = await sourceVolume();
  const inner = new MemoryStore({ name: 'region-b' });
  const target = new SwiftLikeStore(inner);
  let ownerReads = 0;
  const get = target.get.bind(target);
  target.get = (container, key, options) => {
    if (key === '.swiftfs/owner') ownerReads++;
    return get(container, key, options);
  };
  const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' }, settleMs: 60_000 });
  const gauges = replicationGauges('mem://A/lease');
  try {
    for (let i = 0; i < 5; i++) {
      await put(src.volume, `/f${i}`, pattern(20 * KiB, i + 1));
      await src.volume.syncAll();
    }
    const st = await rep.syncOnce();
    assert.equal(st.state, 'caught-up');
    assert.equal(st.replicatedSeq, src.volume.status().journalSeq);
    // Prepare reads it once (the lease's first confirmation) and the sync confirms once; with S = 60 s no
    // write needed another read.
    assert.ok(ownerReads <= 3, `owner record read ${ownerReads} times`);
    gauges.publish([rep.status()]);
    assert.match(await metricsText(), /swiftfs_replica_fenced\{volume="mem:\/\/A\/lease",replica="B\/vol"\} 0/);
  } finally {
    gauges.remove();
    await rep.stop();
    await src.cleanup();
  }
});
