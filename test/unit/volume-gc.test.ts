/**
 * Garbage collection: the decision rule (pure), and on a volume: after overwrites and a checkpoint, exactly the
 * objects the state references remain (plus the current session's uncommitted ones), old segments and
 * checkpoints go, and nothing a committed state references is deleted (every file still reads back).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isGarbageObject } from '../../src/core/gc.js';
import { objectId, DATA_PREFIX, JOURNAL_PREFIX, CHECKPOINT_PREFIX } from '../../src/core/layout.js';
import { setup, tempDir, readFile, writeFile, pattern, KiB, type Setup } from './volume-helpers.js';

type TestVolume = Awaited<ReturnType<Setup['open']>>;

/** A file /db holding pattern(size, seed), committed; returns that model and a read-write handle on it. */
async function committedFile(v: TestVolume, size: number, seed: number): Promise<{ model: Buffer; fh: number }> {
  const model = pattern(size, seed);
  await writeFile(v, '/db', model);
  await v.syncAll();
  return { model, fh: await v.open('/db', 2) };
}

/** Writes a 4 KiB page of pattern(seed) at `off` through `fh`, and into `model`. */
async function writePage(v: TestVolume, fh: number, model: Buffer, off: number, seed: number): Promise<void> {
  const page = pattern(4 * KiB, seed);
  await v.write(fh, page, off);
  page.copy(model, off);
}

/** A fresh read-only open (another cache directory) reads `model` from the store. */
async function assertStoreHolds(s: Setup, model: Buffer): Promise<void> {
  const fresh = await s.open({ readOnly: true }, await tempDir());
  assert.deepEqual(await readFile(fresh, '/db'), model);
  await fresh.close();
}

test('isGarbageObject: referenced, newer-epoch and not-yet-committed objects are kept', () => {
  const input = { checkpointSeq: 10, referenced: new Set([objectId(3, 1)]), epoch: 3, keepFrom: 5 };
  assert.equal(isGarbageObject(objectId(3, 1), input), false, 'referenced');
  assert.equal(isGarbageObject(objectId(3, 2), input), true, 'ours, committed before, unreferenced');
  assert.equal(isGarbageObject(objectId(3, 5), input), false, 'ours, maybe in flight');
  assert.equal(isGarbageObject(objectId(3, 99), input), false);
  assert.equal(isGarbageObject(objectId(2, 99), input), true, 'older epoch, unreferenced');
  assert.equal(isGarbageObject(objectId(4, 0), input), false, 'newer epoch: another owner');
  assert.equal(isGarbageObject('something/else', input), false, 'foreign names are left alone');
});

async function keys(s: Setup, prefix: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await s.memory.list(s.container, { prefix, ...(after ? { after } : {}) });
    out.push(...page.objects.map((o) => ({ key: o.key, size: o.size })));
    if (!page.next) return out;
    after = page.next;
  }
}

test('after overwrites and deletes, a checkpoint leaves only live data', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 5 });
    for (let round = 0; round < 5; round++) {
      await writeFile(v, '/over', pattern(200 * KiB, round));
      await writeFile(v, `/tmp${round}`, pattern(50 * KiB, 100 + round));
      await v.syncAll();
      if (round > 0) await v.unlink(`/tmp${round - 1}`);
      await v.syncAll();
    }
    const before = (await keys(s, DATA_PREFIX)).reduce((n, o) => n + o.size, 0);
    await v.checkpointNow();
    await v.mkdir('/later', 0o755);
    await v.checkpointNow(); // a second one: the first one's segments become collectable
    await v.rmdir('/later');
    const data = await keys(s, DATA_PREFIX);
    const bytes = data.reduce((n, o) => n + o.size, 0);
    assert.ok(bytes < before, `data ${before} -> ${bytes}`);
    // live: /over (200 KiB) + /tmp4 (50 KiB), no more than a block of slack for packing
    assert.ok(bytes <= 250 * KiB + 64 * KiB, `live data ${bytes}`);
    assert.ok((await keys(s, CHECKPOINT_PREFIX)).length <= 2);
    const segs = await keys(s, JOURNAL_PREFIX);
    assert.ok(segs.length < 10, `${segs.length} segments left`);
    assert.deepEqual(await readFile(v, '/over'), pattern(200 * KiB, 4));
    await v.close();
    const fresh = await s.open({}, await tempDir());
    assert.deepEqual(await readFile(fresh, '/over'), pattern(200 * KiB, 4));
    assert.deepEqual(await readFile(fresh, '/tmp4'), pattern(50 * KiB, 104));
    assert.deepEqual((await fresh.readdir('/')).map((e) => e.name).sort(), ['over', 'tmp4']);
    await fresh.close();
  } finally {
    await s.cleanup();
  }
});

test('objects left by a crashed writer of an older epoch are collected; a newer epoch is never touched', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    await s.memory.put(s.container, DATA_PREFIX + objectId(0, 7), Buffer.from('orphan of a crashed session'));
    await s.memory.put(s.container, DATA_PREFIX + objectId(999, 0), Buffer.from('a future owner'));
    const v = await s.open();
    await writeFile(v, '/f', pattern(10 * KiB, 1));
    await v.checkpointNow();
    const left = (await keys(s, DATA_PREFIX)).map((o) => o.key);
    assert.ok(!left.includes(DATA_PREFIX + objectId(0, 7)));
    assert.ok(left.includes(DATA_PREFIX + objectId(999, 0)));
    assert.deepEqual(await readFile(v, '/f'), pattern(10 * KiB, 1));
    await v.close();
  } finally {
    await s.cleanup();
  }
});

test('compaction rewrites fragmented blocks as one object; old packs become garbage; contents exact', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000, compactAbove: 3 });
    const { model, fh } = await committedFile(v, 256 * KiB, 1);
    let x = 7;
    for (let round = 0; round < 12; round++) {
      for (let i = 0; i < 8; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        await writePage(v, fh, model, ((x >>> 16) % 64) * 4 * KiB, round * 100 + i);
      }
      await v.fsync(fh, false);
    }
    for (let i = 0; i < 50 && v.status().compactedBytes < 4 * 64 * KiB; i++) {
      await v.syncAll();
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(v.status().compactedBytes >= 64 * KiB, `compacted ${v.status().compactedBytes} bytes`);
    assert.deepEqual(await readFile(v, '/db'), model);
    const mtimeBefore = (await v.getattr('/db')).mtime;
    await v.release(fh);
    await v.syncAll();
    await v.checkpointNow();
    await v.mkdir('/tick', 0o755);
    await v.checkpointNow();
    assert.equal((await v.getattr('/db')).mtime, mtimeBefore, 'compaction keeps the times');
    const data = await keys(s, DATA_PREFIX);
    assert.ok(data.length <= 12, `${data.length} data objects left after compaction and GC`);
    await v.close();
    await assertStoreHolds(s, model);
  } finally {
    await s.cleanup();
  }
});

test('compaction threshold: a block in exactly compactAbove objects stays; one more object and it is rewritten', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000, compactAbove: 3 });
    const { model, fh } = await committedFile(v, 128 * KiB, 3);
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) {
        await v.syncAll();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // Block 0: its first object (split into 5 pieces by two pages in its middle) plus two packs = 3 objects.
    for (const [i, off] of [8 * KiB, 32 * KiB].entries()) {
      await writePage(v, fh, model, off, 10 + i);
      await v.fsync(fh, false);
    }
    await settle();
    assert.equal(v.status().compactedBytes, 0, 'three objects, threshold three: nothing compacted');
    // A fourth object in block 0.
    await writePage(v, fh, model, 48 * KiB, 20);
    await v.fsync(fh, false);
    for (let i = 0; i < 50 && v.status().compactedBytes === 0; i++) await settle();
    assert.equal(v.status().compactedBytes, 64 * KiB, 'exactly block 0 was rewritten');
    assert.deepEqual(await readFile(v, '/db'), model);
    await v.release(fh);
    await v.close();
    await assertStoreHolds(s, model);
  } finally {
    await s.cleanup();
  }
});

test('compaction yields to commits: its upload does not start while a commit runs', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000, compactAbove: 3 });
    const { model, fh } = await committedFile(v, 128 * KiB, 5);
    // Two commits leave block 0 in 3 objects: at the threshold, not above it.
    await writePage(v, fh, model, 8 * KiB, 1);
    await v.fsync(fh, false);
    await writePage(v, fh, model, 24 * KiB, 2);
    await v.fsync(fh, false);
    assert.equal(v.status().compactedBytes, 0);

    const puts: { key: string; len: number; start: number; end: number }[] = [];
    const put = s.faulty.put.bind(s.faulty);
    s.faulty.put = async (container, key, body, options) => {
      const rec = { key, len: Buffer.isBuffer(body) ? body.length : -1, start: performance.now(), end: Infinity };
      puts.push(rec);
      try {
        return await put(container, key, body, options);
      } finally {
        rec.end = performance.now();
      }
    };
    s.faulty.addLatency('put', 100);
    // Commit A puts block 0 in a fourth object (a compaction candidate); commit B, asked for while A runs,
    // starts as soon as A ends, right when the compaction of block 0 starts (B writes to block 1).
    await writePage(v, fh, model, 40 * KiB, 3);
    const a = v.fsync(fh, false);
    await new Promise((r) => setTimeout(r, 20));
    await writePage(v, fh, model, 72 * KiB, 4); // block 1: block 0 stays clean, a candidate
    const b = v.fsync(fh, false);
    await Promise.all([a, b]);
    for (let i = 0; i < 100 && v.status().compactedBytes === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(v.status().compactedBytes, 64 * KiB);
    const compaction = puts.find((p) => p.key.startsWith(DATA_PREFIX) && p.len === 64 * KiB);
    assert.ok(compaction, 'the compaction upload was seen');
    const journals = puts.filter((p) => p.key.startsWith(JOURNAL_PREFIX));
    assert.ok(journals.length >= 2, 'both commits were seen');
    for (const j of journals) {
      assert.ok(!(j.start <= compaction.start && compaction.start < j.end), `compaction upload at ${compaction.start} started during the commit putting ${j.key} (${j.start}..${j.end})`);
    }
    const packs = puts.filter((p) => p.key.startsWith(DATA_PREFIX) && p !== compaction);
    for (const p of packs) {
      assert.ok(!(p.start <= compaction.start && compaction.start < p.end), 'compaction upload started during a commit\'s data upload');
    }
    s.faulty.clearFaults();
    assert.deepEqual(await readFile(v, '/db'), model);
    await v.release(fh);
    await v.close();
  } finally {
    await s.cleanup();
  }
});

test('compaction budget: what commits packed (small writes) plus the allowance, not the full blocks written', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000, compactAbove: 1, compactionAllowance: 0 });
    const { model, fh } = await committedFile(v, 2048 * KiB, 9); // 32 full blocks, uploaded whole
    const fullBytes = v.status().uploadedBytes;
    assert.ok(fullBytes >= model.length);
    // Each commit: one 4 KiB page in each of 16 blocks; a block in 2 objects is already a candidate.
    for (let round = 0; round < 4; round++) {
      for (let b = 0; b < 16; b++) {
        await writePage(v, fh, model, b * 64 * KiB + (round + 1) * 8 * KiB, round * 100 + b);
      }
      await v.fsync(fh, false);
    }
    for (let i = 0; i < 10; i++) {
      await v.syncAll();
      await new Promise((r) => setTimeout(r, 20));
    }
    const st = v.status();
    const packed = st.uploadedBytes - fullBytes; // 4 commits of 16 pages, packed
    assert.equal(packed, 4 * 16 * 4 * KiB);
    assert.ok(st.compactedBytes > 0, 'compaction ran');
    // A compaction starts while the budget is not spent: at most one block beyond it.
    assert.ok(st.compactedBytes <= packed + 64 * KiB, `compacted ${st.compactedBytes} bytes for ${packed} packed (full blocks: ${fullBytes})`);
    assert.deepEqual(await readFile(v, '/db'), model);
    await v.release(fh);
    await v.close();
  } finally {
    await s.cleanup();
  }
});
