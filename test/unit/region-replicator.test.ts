/**
 * The replicator on memory stores: the target follows the source through commits, checkpoints and the
 * source's garbage collection; whatever step it is killed at, the target is a state the source went through
 * (every object it references is there, and its content is the source's at that journal seq); lag figures;
 * it stops on a taken-over or diverged target and leaves a busy one alone; a fenced old home is re-seeded only
 * with reset, reusing the objects that are the same.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory-store.js';
import { listAll } from '../../src/store/object-store.js';
import { Replicator, ReplicationError, type ReplicatorStep } from '../../src/region/replicator.js';
import { DATA_PREFIX, JOURNAL_PREFIX, CHECKPOINT_PREFIX, OWNER_KEY, segmentKey, UUID_LABEL } from '../../src/core/layout.js';
import { Ownership } from '../../src/core/ownership.js';
import { decodeSegment, encodeSegment } from '../../src/core/records.js';
import { readReplicaStatus, fenceOwnerRecord, writeOwner } from '../../src/region/records.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import type { Volume } from '../../src/core/volume.js';
import { checkContainerConsistent, fsDigest, sourceVolume, withReadOnly, KiB } from './region-helpers.js';
import { pattern } from './volume-helpers.js';

async function put(v: Volume, p: string, data: Buffer, at = 0): Promise<void> {
  const fh = await v.create(p, 0o644, O_CREAT | O_RDWR);
  try {
    await v.write(fh, data, at);
  } finally {
    await v.release(fh);
  }
}

async function countKeys(store: MemoryStore, container: string, prefix: string): Promise<number> {
  let n = 0;
  for await (const e of listAll(store, container, { prefix })) if ('key' in e) n++;
  return n;
}

/** A little PRNG for reproducible random runs. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/** One random change of the tree, committed (one journal segment per call: commits only happen on syncAll). */
async function randomChange(v: Volume, r: () => number, i: number): Promise<void> {
  const files = (await v.readdir('/d').catch(() => []))
    .filter((e) => e.name !== '.' && e.name !== '..' && (e.attr.mode & 0o170000) === 0o100000)
    .map((e) => e.name);
  const pick = r();
  if (files.length === 0 || pick < 0.4) {
    await v.mkdir('/d', 0o755).catch(() => undefined);
    const size = Math.floor(r() * 200 * KiB) + 1;
    await put(v, `/d/f${i}`, pattern(size, i + 1));
  } else if (pick < 0.6) {
    const f = files[Math.floor(r() * files.length)]!;
    const size = Math.floor(r() * 40 * KiB) + 1;
    await put(v, `/d/${f}`, pattern(size, i + 1000), Math.floor(r() * 100 * KiB));
  } else if (pick < 0.75) {
    const f = files[Math.floor(r() * files.length)]!;
    await v.unlink(`/d/${f}`);
  } else if (pick < 0.9) {
    const f = files[Math.floor(r() * files.length)]!;
    await v.rename(`/d/${f}`, `/d/r${i}`);
  } else {
    await v.symlink(`/d/${files[0]}`, `/d/l${i}`).catch(() => undefined);
  }
  await v.syncAll();
}

test('the target follows commits, source checkpoints and source garbage collection; its own garbage is collected', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore({ name: 'region-b' });
  try {
    const v = src.volume;
    await v.mkdir('/d', 0o755);
    for (let i = 0; i < 5; i++) await put(v, `/d/f${i}`, pattern(100 * KiB, i));
    await v.syncAll();
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'copy', region: 'B' } });
    let st = await rep.syncOnce();
    assert.equal(st.state, 'caught-up');
    assert.equal(st.replicatedSeq, v.status().journalSeq);
    assert.equal((await target.getLabels('copy'))[UUID_LABEL], v.uuid);
    assert.equal(await withReadOnly(target, 'copy', fsDigest), await fsDigest(v));

    // Overwrite everything twice with checkpoints in between: the source collects segments and objects.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) await put(v, `/d/f${i}`, pattern(100 * KiB, 100 + round * 10 + i));
      await v.syncAll();
      await v.checkpointNow();
      st = await rep.syncOnce();
      assert.equal(st.replicatedSeq, v.status().journalSeq);
      assert.equal(await withReadOnly(target, 'copy', fsDigest), await fsDigest(v), `round ${round}`);
    }
    assert.ok(st.checkpointSeq > 0, 'a source checkpoint was copied');
    // The target holds no more data than the source (its garbage was collected by the same rule).
    assert.equal(await countKeys(target, 'copy', DATA_PREFIX), await countKeys(src.store, src.container, DATA_PREFIX));
    assert.ok((await countKeys(target, 'copy', JOURNAL_PREFIX)) <= (await countKeys(src.store, src.container, JOURNAL_PREFIX)) + 1);
    await rep.stop(); // writes the final status (while running it is written at most every 2 s)
    const status = await readReplicaStatus(target, 'copy');
    assert.ok(status);
    assert.equal(status.replicatedSeq, st.replicatedSeq);
    assert.equal(status.uuid, v.uuid);
    assert.deepEqual(status.source, { region: 'A', container: src.container });
  } finally {
    await src.cleanup();
  }
});

test('a replicator that starts after the source collected its early segments seeds from the newest checkpoint', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    const v = src.volume;
    for (let i = 0; i < 4; i++) {
      await put(v, `/f${i}`, pattern(70 * KiB, i));
      await v.syncAll();
      await v.checkpointNow();
    }
    await put(v, '/after', pattern(10 * KiB, 99));
    await v.syncAll();
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    const st = await rep.syncOnce({ estimate: true });
    assert.equal(st.seeds, 1);
    assert.equal(st.replicatedSeq, v.status().journalSeq);
    assert.equal(await withReadOnly(target, 'vol', fsDigest), await fsDigest(v));
    await rep.stop();
  } finally {
    await src.cleanup();
  }
});

test('killed at any step, the target is always a state the source went through; a restart completes it', async () => {
  for (const seed of [1, 2, 3]) {
    const r = rng(seed);
    const src = await sourceVolume({ extra: { commitIntervalMs: 3_600_000 } });
    const target = new MemoryStore();
    const digests = new Map<number, string>();
    const record = async () => digests.set(src.volume.status().journalSeq, await fsDigest(src.volume));
    try {
      await record();
      let change = 0;
      let kills = 0;
      for (let trial = 0; trial < 25; trial++) {
        const n = 1 + Math.floor(r() * 3);
        for (let k = 0; k < n; k++) {
          await randomChange(src.volume, r, change++);
          await record();
          if (r() < 0.25) {
            await src.volume.checkpointNow();
            await record();
          }
        }
        const killAt = Math.floor(r() * 10);
        let steps = 0;
        const rep = new Replicator({
          source: { store: src.store, container: src.container, region: 'A' },
          target: { store: target, container: 'vol', region: 'B' },
          forceLease: true,
          copyConcurrency: 1 + Math.floor(r() * 4),
          lookahead: 1 + Math.floor(r() * 4),
          onStep: (s: ReplicatorStep) => {
            if (steps++ === killAt) throw new Error(`killed at ${s.kind}`);
          },
        });
        try {
          await rep.syncOnce();
        } catch (err) {
          assert.match((err as Error).message, /killed at/);
          kills++;
        }
        const head = await checkContainerConsistent(target, 'vol');
        if (head !== null) {
          const expected = digests.get(head);
          assert.ok(expected !== undefined, `seed ${seed} trial ${trial}: target head ${head} is not a seq the source committed`);
          assert.equal(await withReadOnly(target, 'vol', fsDigest), expected, `seed ${seed} trial ${trial}: target at ${head} differs from the source at ${head}`);
        }
      }
      assert.ok(kills > 5, `the replicator was killed in several places (${kills})`);
      const final = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' }, forceLease: true });
      const st = await final.syncOnce();
      assert.equal(st.replicatedSeq, src.volume.status().journalSeq);
      assert.equal(await withReadOnly(target, 'vol', fsDigest), await fsDigest(src.volume));
      await final.stop();
    } finally {
      await src.cleanup();
    }
  }
});

test('lag: seconds since the oldest commit not shipped, bytes still to copy; zero once caught up', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    const v = src.volume;
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await rep.syncOnce();
    assert.equal(rep.status().lagSeconds, 0);
    assert.equal(rep.status().lagBytes, 0);

    await put(v, '/big', pattern(1024 * KiB, 7));
    await v.syncAll();
    const committedAt = Date.now();
    rep.noteSourceHead(v.status().journalSeq, committedAt);
    await new Promise((res) => setTimeout(res, 300));
    let st = rep.status();
    assert.equal(st.pendingSegments, v.status().journalSeq - st.replicatedSeq);
    assert.ok(st.pendingSegments >= 1);
    assert.ok(st.lagSeconds >= 0.25 && st.lagSeconds < 5, `lag ${st.lagSeconds}`);

    // Look at the figures in the middle of the copy.
    let seen: ReturnType<Replicator['status']> | null = null;
    const rep2 = new Replicator({
      source: { store: src.store, container: src.container, region: 'A' },
      target: { store: target, container: 'vol', region: 'B' },
      forceLease: true,
      copyConcurrency: 1,
      onStep: (s) => {
        if (s.kind === 'object' && !seen) seen = rep2.status();
      },
    });
    st = await rep2.syncOnce({ estimate: true });
    assert.ok(seen);
    const mid = seen as ReturnType<Replicator['status']>;
    assert.ok(mid.lagBytes >= 1024 * KiB, `mid-copy lag bytes ${mid.lagBytes}`);
    assert.ok(mid.lagSeconds > 0.2, `mid-copy lag seconds ${mid.lagSeconds}`);
    assert.equal(mid.state, 'syncing');
    assert.equal(st.lagBytes, 0);
    assert.equal(st.lagSeconds, 0);
    assert.equal(st.pendingSegments, 0);
    assert.ok(st.copiedBytes >= 1024 * KiB);
    await rep.stop();
    await rep2.stop();
  } finally {
    await src.cleanup();
  }
});

test('a target that was taken over stops the replicator before it writes anything more', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await rep.syncOnce();
    await put(src.volume, '/x', pattern(10 * KiB, 1));
    await src.volume.syncAll();
    // Someone takes the volume over in the target.
    const cache = await (await import('./region-helpers.js')).tempDir();
    const owner = await (await import('../../src/core/volume.js')).Volume.open(target, 'vol', { cacheDir: cache });
    const before = await countKeys(target, 'vol', JOURNAL_PREFIX);
    await assert.rejects(rep.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'taken-over');
    assert.equal(await countKeys(target, 'vol', JOURNAL_PREFIX), before);
    assert.equal(rep.status().state, 'taken-over');
    // A new replicator refuses it too.
    const rep2 = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' }, forceLease: true });
    await assert.rejects(rep2.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'taken-over');
    await owner.close();
  } finally {
    await src.cleanup();
  }
});

test('a diverged target (same seq, other bytes) is refused; another volume in the target is refused', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await put(src.volume, '/x', pattern(10 * KiB, 1));
    await src.volume.syncAll();
    const st = await rep.syncOnce();
    await rep.stop();
    // Rewrite the target's head segment with other bytes (as if another writer had committed there).
    const original = decodeSegment((await src.store.get(src.container, segmentKey(st.replicatedSeq))).body);
    const forged = encodeSegment({ ...original.header, time: original.header.time + 1 }, original.batches);
    await target.put('vol', segmentKey(st.replicatedSeq), forged);
    const rep2 = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await assert.rejects(rep2.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'diverged');

    await target.createContainer('foreign', { labels: { [UUID_LABEL]: '00000000-0000-0000-0000-000000000000' } });
    const rep3 = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'foreign', region: 'B' } });
    await assert.rejects(rep3.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'uuid-mismatch');
    await target.createContainer('junk');
    await target.put('junk', 'hello.txt', Buffer.from('hi'));
    const rep4 = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'junk', region: 'B' } });
    await assert.rejects(rep4.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'not-a-volume');
  } finally {
    await src.cleanup();
  }
});

test('one replicator per target: a second one is refused while the first holds its lease, accepted once released', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    const mk = () => new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    const a = mk();
    await a.syncOnce();
    const b = mk();
    await assert.rejects(b.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'busy');
    await a.stop();
    const c = mk();
    await c.syncOnce();
    // The first one, if it were still running, would now find the lease gone and stop.
    await c.stop();
  } finally {
    await src.cleanup();
  }
});

test('a fenced old home is re-seeded only with reset; identical objects are kept, others replaced', async () => {
  const src = await sourceVolume();
  const target = new MemoryStore();
  try {
    await put(src.volume, '/a', pattern(300 * KiB, 1));
    await src.volume.syncAll();
    const rep = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await rep.syncOnce();
    await rep.stop();
    const objectsBefore = await countKeys(target, 'vol', DATA_PREFIX);
    // The target becomes a retired home: a fence owner, and an object with the same id but other bytes.
    const rec = fenceOwnerRecord(99, { region: 'A', container: src.container }, 'test', 'fence-test');
    await writeOwner(target, 'vol', rec);
    let someId = '';
    for await (const e of listAll(target, 'vol', { prefix: DATA_PREFIX })) if ('key' in e) someId = e.key;
    await target.put('vol', someId, Buffer.from('not the same bytes'));
    await put(src.volume, '/b', pattern(50 * KiB, 2));
    await src.volume.syncAll();

    const noReset = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' } });
    await assert.rejects(noReset.syncOnce(), (e: unknown) => e instanceof ReplicationError && e.reason === 'taken-over');
    const withReset = new Replicator({ source: { store: src.store, container: src.container, region: 'A' }, target: { store: target, container: 'vol', region: 'B' }, reset: true });
    const st = await withReset.syncOnce();
    assert.equal(st.replicatedSeq, src.volume.status().journalSeq);
    assert.ok(st.copiedObjects < objectsBefore + 2, `objects reused (copied ${st.copiedObjects})`);
    assert.ok(st.copiedObjects >= 1, 'the changed object was copied again');
    assert.equal(await withReadOnly(target, 'vol', fsDigest), await fsDigest(src.volume));
    assert.ok(await Ownership.read(target, 'vol'), 'the fence owner stays until a takeover');
    assert.ok((await countKeys(target, 'vol', CHECKPOINT_PREFIX)) >= 1);
    void OWNER_KEY;
    await withReset.stop();
  } finally {
    await src.cleanup();
  }
});
