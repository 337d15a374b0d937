/**
 * Fencing on memory stores: a fence stops a running writer (its next commit fails, its mount turns read-only)
 * and keeps the old home from being opened read-write again; the fence epoch is above every epoch that wrote
 * there; a store without create-only puts is fenced the same way (the lease, no force needed); a takeover
 * refuses a live owner and, once released, lets the next mount in; pending fences are applied when the region
 * answers again; on a Swift-like store (create-only not atomic) a writer's put still landing during the fence's
 * settle wait is kept and the fence goes after it; where create-only puts are atomic (no settle wait), a fence
 * that meets a newer epoch's segment gives up even when an older writer's segment follows it.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import { Volume, VolumeBusyError } from '../../src/core/volume.js';
import { FsError } from '../../src/core/errors.js';
import { Ownership } from '../../src/core/ownership.js';
import { fetchSegment, dataKey, segmentKey, JOURNAL_PREFIX } from '../../src/core/layout.js';
import { encodeSegment } from '../../src/core/records.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { FenceError, addPendingFence, applyPendingFences, fenceContainer, releaseTakeover, watchPendingFences } from '../../src/region/fence.js';
import { isFenceOwner, readPendingFences } from '../../src/region/records.js';
import { FAST, sourceVolume, tempDir, fsFiles, KiB } from './region-helpers.js';
import { SwiftLikeStore } from './swift-like-store.js';

async function writeAndSync(v: Volume, p: string, data: Buffer): Promise<void> {
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, 0);
    await v.fsync(fh, false);
  } finally {
    await v.release(fh).catch(() => undefined);
  }
}

test('a retire fence stops the running writer, and the old home cannot be opened read-write again', async () => {
  const src = await sourceVolume();
  try {
    const v = src.volume;
    await writeAndSync(v, '/before', Buffer.alloc(10 * KiB, 1));
    const writerEpoch = v.status().owner!.epoch;
    const headBefore = v.status().journalSeq;
    const res = await fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'A', uuid: v.uuid, mode: 'retire', movedTo: { region: 'B', container: 'vol-b' }, reason: 'test' });
    assert.equal(res.guarantee, 'fenced');
    assert.ok(res.epoch > writerEpoch);
    assert.equal(res.seq, headBefore + 1);
    const seg = await fetchSegment(src.store, src.container, res.seq);
    assert.ok(seg);
    assert.equal(seg.decoded.header.epoch, res.epoch);
    assert.equal(seg.decoded.batches.length, 0);

    // The writer's next commit loses the race: EROFS, and the mount says why.
    await assert.rejects(writeAndSync(v, '/after', Buffer.alloc(10 * KiB, 2)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    assert.match(v.status().readOnlyReason ?? '', /fenced|taken over/);
    await assert.rejects(v.mkdir('/more', 0o755), (e: unknown) => e instanceof FsError && e.code === 'EROFS');

    // Nobody opens the old home read-write any more (the fence owner never expires), and the error says where it went.
    const other = await tempDir();
    await assert.rejects(Volume.open(src.store, src.container, { cacheDir: other, ...FAST }), (e: unknown) => e instanceof VolumeBusyError && /relocated to region B/.test(e.message));
    const owner = await Ownership.read(src.store, src.container);
    assert.ok(isFenceOwner(owner));
    // Read-only still works, and holds what was committed before the fence (not the refused write).
    const ro = await Volume.open(src.store, src.container, { cacheDir: await tempDir(), readOnly: true });
    const files = await fsFiles(ro);
    assert.ok(files.has('/before'));
    assert.ok(!files.has('/after'));
    await ro.close();
  } finally {
    await src.cleanup();
  }
});

test('the fence epoch is above the owner record, the journal and every data object epoch', async () => {
  const src = await sourceVolume();
  try {
    await src.volume.close();
    await src.store.put(src.container, dataKey('00000063/0000000000'), Buffer.from('left by a writer of epoch 99'));
    const res = await fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'A', uuid: src.volume.uuid, mode: 'retire', movedTo: null, reason: 'test' });
    assert.equal(res.epoch, 100);
    const res2 = await fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'A', uuid: src.volume.uuid, mode: 'retire', movedTo: null, reason: 'again', minEpoch: 500 });
    assert.equal(res2.epoch, 501);
    assert.equal(res2.seq, res.seq + 1);
    await assert.rejects(fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'A', uuid: 'another-uuid', mode: 'retire', reason: 'x' }), (e: unknown) => e instanceof FenceError && e.reason === 'uuid-mismatch');
  } finally {
    await src.cleanup();
  }
});

test('without create-only puts the fence needs no force (the lease does not need them) and still stops the running writer', async () => {
  const src = await sourceVolume({ conditionalCreate: false, extra: { fenceSettleMs: 100 } });
  try {
    const v = src.volume;
    assert.equal(v.status().owner?.guarantee, 'lease');
    await writeAndSync(v, '/a', Buffer.alloc(KiB, 1));
    const res = await fenceContainer({ settleMs: 100, store: src.store, container: src.container, region: 'A', uuid: v.uuid, mode: 'retire', reason: 'test' });
    assert.equal(res.guarantee, 'lease');
    await assert.rejects(writeAndSync(v, '/b', Buffer.alloc(KiB, 2)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    const seg = await fetchSegment(src.store, src.container, res.seq);
    assert.equal(seg?.decoded.header.epoch, res.epoch, 'the fence segment was not overwritten');
  } finally {
    await src.cleanup();
  }
});

test('a takeover refuses a live owner unless forced; released, the next mount takes the volume with a higher epoch', async () => {
  const src = await sourceVolume();
  try {
    await assert.rejects(
      fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'B', uuid: src.volume.uuid, mode: 'takeover', reason: 'test' }),
      (e: unknown) => e instanceof FenceError && e.reason === 'busy',
    );
    await src.volume.close();
    const res = await fenceContainer({ settleMs: 10, store: src.store, container: src.container, region: 'B', uuid: src.volume.uuid, mode: 'takeover', reason: 'test' });
    // Held during the relocation by this (live) process: another process's mount would be refused.
    const held = await Ownership.read(src.store, src.container);
    assert.ok(held && !held.released && held.session === res.session && /swiftfs relocate/.test(held.host));
    assert.equal(Ownership.isLive({ ...held, pid: process.ppid }, 120_000), true);
    await releaseTakeover(src.store, src.container, res);
    const v = await Volume.open(src.store, src.container, { cacheDir: await tempDir(), ...FAST });
    assert.ok(v.status().owner!.epoch > res.epoch);
    await writeAndSync(v, '/x', Buffer.alloc(KiB, 3));
    await v.close();
  } finally {
    await src.cleanup();
  }
});

test('pending fences: kept while the old home does not answer, applied when it does (also by the watcher)', async () => {
  const src = await sourceVolume();
  const home = new MemoryStore({ name: 'home' });
  await home.createContainer('vol');
  try {
    const v = src.volume;
    await writeAndSync(v, '/a', Buffer.alloc(KiB, 1));
    const faulty = new FaultyStore(src.store);
    faulty.goOffline();
    await addPendingFence({ store: home, container: 'vol' }, v.uuid, { place: { region: 'A', container: src.container }, minEpoch: 7, movedTo: { region: 'B', container: 'vol' } });
    const open = async (region: string) => {
      assert.equal(region, 'A');
      return faulty;
    };
    let out = await applyPendingFences({ store: home, container: 'vol' }, open);
    assert.equal(out.length, 1);
    assert.equal(out[0]!.applied, null);
    let rec = await readPendingFences(home, 'vol');
    assert.equal(rec?.fences.length, 1);
    assert.equal(rec?.fences[0]!.attempts, 1);
    assert.ok(rec?.fences[0]!.lastError);
    // The writer keeps going meanwhile (it does not know).
    await writeAndSync(v, '/b', Buffer.alloc(KiB, 2));

    const watcher = watchPendingFences({ store: home, container: 'vol' }, open, { intervalMs: 30 });
    await new Promise((r) => setTimeout(r, 100));
    faulty.comeBack();
    const keepAlive = setInterval(() => undefined, 50); // the watcher's own timer does not hold the process
    await watcher.done;
    clearInterval(keepAlive);
    rec = await readPendingFences(home, 'vol');
    assert.equal(rec, null, 'no fence left pending');
    const owner = await Ownership.read(src.store, src.container);
    assert.ok(isFenceOwner(owner));
    assert.ok(owner.epoch > 7);
    await assert.rejects(writeAndSync(v, '/c', Buffer.alloc(KiB, 3)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
    out = await applyPendingFences({ store: home, container: 'vol' }, open);
    assert.equal(out.length, 0);
  } finally {
    await src.cleanup();
  }
});

test('an old writer\'s segment put still landing during the settle wait is seen (Swift-like store): it stays acknowledged, the fence commits after it', async () => {
  const store = new SwiftLikeStore(new MemoryStore());
  await Volume.format(store, 'vol', { createContainer: true, blockSize: 64 * KiB });
  const v = await Volume.open(store, 'vol', { cacheDir: await tempDir(), ...FAST, commitIntervalMs: 60_000, fenceSettleMs: 300 });
  try {
    await writeAndSync(v, '/a', Buffer.alloc(KiB, 1));
    const writerEpoch = v.status().owner!.epoch;
    const seqBefore = v.status().journalSeq;
    let armed = true;
    let started!: () => void;
    const putStarted = new Promise<void>((r) => (started = r));
    store.putDelayMs = (key) => {
      if (!armed || !key.startsWith(JOURNAL_PREFIX)) return 0;
      armed = false;
      started();
      return 100;
    };
    const synced = writeAndSync(v, '/b', Buffer.alloc(KiB, 2)).then(
      () => 'acknowledged',
      (e: unknown) => e,
    );
    await putStarted;
    const res = await fenceContainer({ store, container: 'vol', region: 'A', uuid: v.uuid, mode: 'retire', reason: 'race', settleMs: 300 });
    assert.equal(res.guarantee, 'lease');
    assert.equal(await synced, 'acknowledged');
    assert.equal(res.seq, seqBefore + 2, 'the fence went after the segment that was still landing');
    assert.equal((await fetchSegment(store, 'vol', seqBefore + 1))?.decoded.header.epoch, writerEpoch);
    assert.equal((await fetchSegment(store, 'vol', res.seq))?.decoded.header.epoch, res.epoch);
    assert.equal(store.droppedPuts.length, 0);
    await assert.rejects(writeAndSync(v, '/c', Buffer.alloc(KiB, 3)), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
  } finally {
    await v.close().catch(() => undefined);
  }
});

test('atomic create-only store (no settle wait): a fence that meets a newer epoch\'s segment gives up, even when an older writer\'s segment follows it', async () => {
  // Where create-only puts are atomic the fence does not wait, so an older writer whose lease is still valid can
  // commit after a newer owner's segment: epochs do not only grow along the journal there, and the fence must
  // look at every segment after the checkpoint, not just the last one (else it goes past the newer owner's
  // segment and that owner's next commit finds a stranger's segment at its number).
  const src = await sourceVolume();
  try {
    const v = src.volume;
    await writeAndSync(v, '/a', Buffer.alloc(4 * KiB, 1));
    const writerEpoch = v.status().owner!.epoch;
    await v.close({ abandon: true });
    const head = (await fetchSegment(src.store, src.container, v.status().journalSeq))!;
    const n = head.seq + 1;
    const inner = src.store;
    let fenceRecordWritten = false;
    let injected = false;
    let newerEpoch = 0;
    const store = Object.create(inner) as MemoryStore;
    store.put = async (container, key, body, options) => {
      const out = await inner.put(container, key, body, options);
      if (key === '.swiftfs/owner' && !fenceRecordWritten) {
        fenceRecordWritten = true;
        const rec = JSON.parse((await inner.get(container, key)).body.toString('utf8')) as { epoch: number };
        newerEpoch = rec.epoch + 1;
      }
      return out;
    };
    store.get = async (container, key, options) => {
      const out = await inner.get(container, key, options);
      if (key === '.swiftfs/owner' && fenceRecordWritten && !injected) {
        // The fence's read-back showed its record. Now a newer owner takes the volume and commits segment n,
        // and the older writer (lease still valid: no settle wait here) commits n + 1.
        injected = true;
        await inner.put(container, '.swiftfs/owner', Buffer.from(JSON.stringify({ epoch: newerEpoch, host: 'newer', machine: 'm', pid: 1, session: 'newer-session', since: Date.now(), renewedAt: Date.now(), mode: 'rw' })));
        await inner.put(container, segmentKey(n), encodeSegment({ v: 1, seq: n, epoch: newerEpoch, walId: 'newer', walSeq: 1, time: Date.now(), objects: [] }, []), { ifNoneMatch: '*' });
        await inner.put(container, segmentKey(n + 1), encodeSegment({ v: 1, seq: n + 1, epoch: writerEpoch, walId: 'older', walSeq: 9, time: Date.now(), objects: [] }, []), { ifNoneMatch: '*' });
      }
      return out;
    };
    await assert.rejects(
      fenceContainer({ store, container: src.container, region: 'A', uuid: v.uuid, mode: 'retire', reason: 'test' }),
      (e: unknown) => e instanceof FenceError && e.reason === 'race',
    );
    assert.ok(injected, 'the newer owner committed during the fence');
    assert.equal(await fetchSegment(inner, src.container, n + 2), null, "no fence segment after the newer owner's");
  } finally {
    await src.cleanup();
  }
});
