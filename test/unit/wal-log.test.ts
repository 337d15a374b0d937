import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { Wal } from '../../src/core/wal.js';
import { FsError } from '../../src/core/errors.js';
import type { MetaRecord } from '../../src/core/types.js';
import { tempDir, pattern, MiB, KiB } from './volume-helpers.js';

const SEG = 1 * MiB;

async function openWal(dir: string, extra: { maxSegments?: number } = {}) {
  return Wal.open({ dir, volume: 'vol-1', segmentSize: SEG, ...extra });
}

function writePlan(ino: number, off: number, len: number) {
  return (ref: { wal: number; off: number } | null): MetaRecord[] => [{ t: 'write', ino, off, len, ref: ref!, mtime: 1 }];
}

async function append(wal: Wal, plan: (ref: { wal: number; off: number } | null) => MetaRecord[], data: Buffer | null) {
  for (;;) {
    const r = wal.append(plan, data);
    if (r === 'full') {
      await wal.ready(wal.maxEntrySize);
      continue;
    }
    assert.notEqual(r, 'empty');
    if (r === 'empty') throw new Error('unreachable');
    await r.written;
    return r.entry;
  }
}

test('append, read back by ref, replay after reopen in order', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal, entries, fresh } = await openWal(dir);
    assert.equal(fresh, true);
    assert.equal(entries.length, 0);
    const written: { seq: number; ref: { wal: number; off: number }; data: Buffer }[] = [];
    for (let i = 0; i < 40; i++) {
      const data = pattern(60 * KiB + i, i + 1);
      const e = await append(wal, writePlan(2, i * 100, data.length), data);
      const rec = e.batch[0] as Extract<MetaRecord, { t: 'write' }>;
      assert.ok('wal' in rec.ref);
      written.push({ seq: e.seq, ref: rec.ref as { wal: number; off: number }, data });
    }
    // 40 x 60 KiB > 1 MiB: several segments
    assert.ok(new Set(written.map((w) => w.ref.wal)).size >= 2);
    for (const w of written) {
      const out = Buffer.alloc(w.data.length);
      await wal.read(w.ref.wal, w.ref.off, w.data.length, out, 0);
      assert.deepEqual(out, w.data);
    }
    await wal.sync();
    assert.equal(wal.syncedSeq, 40);
    await append(wal, () => [{ t: 'unlink', dir: 1, name: 'x' }], null);
    await wal.close();

    const again = await openWal(dir);
    assert.equal(again.fresh, false);
    assert.deepEqual(
      again.entries.map((e) => e.seq),
      Array.from({ length: 41 }, (_, i) => i + 1),
    );
    for (const w of written) {
      const e = again.entries.find((x) => x.seq === w.seq)!;
      const out = Buffer.alloc(w.data.length);
      await again.wal.read(e.segment, e.dataOffset, w.data.length, out, 0);
      assert.deepEqual(out, w.data);
    }
    assert.deepEqual(again.entries[40]!.batch, [{ t: 'unlink', dir: 1, name: 'x' }]);
    // New entries continue the sequence.
    const e = await append(again.wal, () => [{ t: 'unlink', dir: 1, name: 'y' }], null);
    assert.equal(e.seq, 42);
    await again.wal.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('empty plan appends nothing; plan errors change nothing', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal } = await openWal(dir);
    assert.equal(wal.append(() => [], null), 'empty');
    assert.throws(() => wal.append(() => { throw new FsError('ENOENT'); }, null), FsError);
    assert.equal(wal.lastSeq, 0);
    await wal.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('replay stops at a torn entry and never resumes past it, even after new entries', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal } = await openWal(dir);
    const entries = [];
    for (let i = 0; i < 5; i++) entries.push(await append(wal, writePlan(2, i, 1000), pattern(1000, i + 9)));
    await wal.sync();
    // Crash without close: simulate a torn 4th entry by corrupting its data (as if half written).
    const e4 = entries[3]!;
    const segFile = (await fs.readdir(dir)).filter((n) => n.startsWith('seg-')).sort()[0]!;
    const fh = await fs.open(path.join(dir, segFile), 'r+');
    await fh.write(Buffer.alloc(100, 0xee), 0, 100, e4.dataOffset + 200);
    await fh.close();
    // (the first WAL object is abandoned without close, like a killed process)

    const r1 = await openWal(dir);
    assert.deepEqual(r1.entries.map((e) => e.seq), [1, 2, 3]);
    assert.equal(r1.droppedTail, true);
    // New entries get 4, 5, ... in a new segment; the stale valid entry 5 of the old segment must never come back.
    const n4 = await append(r1.wal, () => [{ t: 'unlink', dir: 1, name: 'new4' }], null);
    assert.equal(n4.seq, 4);
    await r1.wal.sync();
    const r2 = await openWal(dir);
    assert.deepEqual(r2.entries.map((e) => e.seq), [1, 2, 3, 4]);
    assert.deepEqual(r2.entries[3]!.batch, [{ t: 'unlink', dir: 1, name: 'new4' }]);
    await r2.wal.close();
    await r1.wal.close().catch(() => undefined);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('committed segments are released (recycled); close after commit leaves nothing to replay', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal } = await openWal(dir, { maxSegments: 4 });
    let last = 0;
    // 6 MiB through 1 MiB segments with at most 4 alive: only possible because committed ones are released.
    for (let i = 0; i < 60; i++) {
      last = (await append(wal, writePlan(2, 0, 100 * KiB), pattern(100 * KiB, i))).seq;
      if (i % 5 === 4) wal.markCommitted(last);
      assert.ok(wal.liveSegments().length <= 4);
    }
    wal.markCommitted(last);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(wal.liveSegments().length, 1, 'only the active segment stays');
    await wal.close();
    const again = await openWal(dir);
    assert.equal(again.entries.length, 0);
    assert.ok(again.markedCommitted <= last);
    const e = await append(again.wal, () => [{ t: 'unlink', dir: 1, name: 'z' }], null);
    assert.ok(e.seq > again.markedCommitted);
    await again.wal.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('the WAL at its segment limit waits for releases (no failure, no overwrite)', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal } = await openWal(dir, { maxSegments: 3 });
    const seqs: number[] = [];
    const writer = (async () => {
      for (let i = 0; i < 40; i++) seqs.push((await append(wal, writePlan(2, 0, 100 * KiB), pattern(100 * KiB, i))).seq);
    })();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(seqs.length < 40, 'the writer waits at the limit');
    const blockedAt = seqs.length;
    wal.markCommitted(seqs[seqs.length - 1]!);
    await writer;
    assert.equal(seqs.length, 40);
    assert.ok(blockedAt > 10);
    await wal.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});

test('pinned segments are not released until unpinned; concurrent syncs share fdatasyncs', async () => {
  const dir = await tempDir('swiftfs-wal-');
  try {
    const { wal } = await openWal(dir);
    const e1 = await append(wal, writePlan(2, 0, 10), pattern(10, 1));
    for (let i = 0; i < 12; i++) await append(wal, writePlan(2, 0, 100 * KiB), pattern(100 * KiB, i));
    assert.ok(wal.pin(e1.segment));
    wal.markCommitted(wal.lastSeq - 1);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(wal.liveSegments().includes(e1.segment));
    const out = Buffer.alloc(10);
    await wal.read(e1.segment, e1.dataOffset, 10, out, 0);
    assert.deepEqual(out, pattern(10, 1));
    wal.unpin(e1.segment);
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(!wal.liveSegments().includes(e1.segment));
    // group sync: 20 concurrent syncs complete and cover everything
    await Promise.all(Array.from({ length: 20 }, () => wal.sync()));
    assert.equal(wal.syncedSeq, wal.lastSeq);
    await wal.close();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
});
