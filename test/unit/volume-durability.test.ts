/**
 * Durability through a Volume on the memory store: random writes against a Buffer model across commits,
 * checkpoints and reopen; fsync in both modes; group commit; crash recovery from the WAL (in-process: the
 * volume is abandoned without committing, as a killed process would leave it); lost+found when the volume
 * moved on under another owner.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { test } from 'node:test';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { JOURNAL_PREFIX, CHECKPOINT_PREFIX } from '../../src/core/layout.js';
import { setup, tempDir, writeFile, readFile, pattern, memoryLogger, sleep, KiB, MiB, type Setup } from './volume-helpers.js';
import { xorshiftRng } from '../helpers/rng.js';

async function countKeys(s: Setup, prefix: string): Promise<number> {
  let n = 0;
  let after: string | undefined;
  for (;;) {
    const page = await s.memory.list(s.container, { prefix, ...(after ? { after } : {}) });
    n += page.objects.length;
    if (!page.next) return n;
    after = page.next;
  }
}


const SEEDS = (process.env.SWIFTFS_TEST_SEEDS ?? '42').split(',').map(Number);

for (const seed of SEEDS)
test(`random writes and truncates match a Buffer model across commits, checkpoints, GC and reopen (seed ${seed})`, async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 5, checkpointEvery: 7, compactAbove: 2 });
    const r = xorshiftRng(seed);
    const files = ['/f0', '/f1', '/f2'];
    const model = new Map<string, Buffer>();
    const fhs = new Map<string, number>();
    for (const f of files) {
      fhs.set(f, await v.create(f, 0o644, O_CREAT | O_RDWR));
      model.set(f, Buffer.alloc(0));
    }
    for (let step = 0; step < 400; step++) {
      const f = files[r(files.length)]!;
      const fh = fhs.get(f)!;
      let m = model.get(f)!;
      const kind = r(20);
      if (kind === 0) {
        const size = r(400 * KiB);
        await v.ftruncate(fh, size);
        const n = Buffer.alloc(size);
        m.copy(n, 0, 0, Math.min(size, m.length));
        m = n;
      } else if (kind <= 3) {
        // big aligned sequential run (early uploads)
        const off = r(4) * 64 * KiB;
        const data = pattern(64 * KiB * (1 + r(3)), step + 1);
        for (let o = 0; o < data.length; o += 16 * KiB) await v.write(fh, data.subarray(o, o + 16 * KiB), off + o);
        if (m.length < off + data.length) {
          const n = Buffer.alloc(off + data.length);
          m.copy(n);
          m = n;
        }
        data.copy(m, off);
      } else {
        const off = r(300 * KiB);
        const data = pattern(1 + r(20 * KiB), step + 1000);
        await v.write(fh, data, off);
        if (m.length < off + data.length) {
          const n = Buffer.alloc(off + data.length);
          m.copy(n);
          m = n;
        }
        data.copy(m, off);
      }
      model.set(f, m);
      if (step % 37 === 0) await sleep(10); // let commits happen in the middle
      if (step % 50 === 0) {
        const check = files[r(files.length)]!;
        const got = await v.read(fhs.get(check)!, model.get(check)!.length + 10, 0);
        assert.deepEqual(got, model.get(check), `${check} at step ${step}`);
      }
    }
    for (const f of files) await v.release(fhs.get(f)!);
    await v.syncAll();
    await v.checkpointNow();
    for (const f of files) assert.deepEqual(await readFile(v, f), model.get(f), f);
    const st = v.status();
    assert.ok(st.checkpointSeq > 0, 'checkpoints were written');
    assert.ok(st.compactedBytes > 0, 'compaction ran during the workload');
    assert.equal(st.dirtyBytes, 0);
    await v.close();
    assert.ok((await countKeys(s, CHECKPOINT_PREFIX)) <= 2, 'old checkpoints are collected');

    for (const extra of [{}, { readOnly: true }]) {
      const again = await s.open(extra, await tempDir());
      for (const f of files) assert.deepEqual(await readFile(again, f), model.get(f), `${f} after reopen`);
      await again.close();
    }
  } finally {
    await s.cleanup();
  }
});

test('fsync remote: once it returns, a reader on an empty cache directory sees the data', async () => {
  const s = await setup();
  try {
    const v = await s.open({ commitIntervalMs: 60_000 });
    const fh = await v.create('/db', 0o644, O_CREAT | O_RDWR);
    const data = pattern(150 * KiB, 3);
    await v.write(fh, data, 0);
    await v.fsync(fh, true);
    const reader = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(reader, '/db'), data);
    await reader.close();
    await v.release(fh);
    await v.close();
  } finally {
    await s.cleanup();
  }
});

test('fsync local: not in the store yet, but survives a crash of the process (same cache dir)', async () => {
  const s = await setup();
  try {
    const v = await s.open({ fsync: 'local', commitIntervalMs: 60_000 });
    const segmentsBefore = await countKeys(s, JOURNAL_PREFIX);
    await v.mkdir('/d', 0o755);
    const fh = await v.create('/d/f', 0o644, O_CREAT | O_RDWR);
    const data = pattern(200 * KiB, 9);
    await v.write(fh, data, 0);
    await v.fsync(fh, false);
    assert.equal(await countKeys(s, JOURNAL_PREFIX), segmentsBefore, 'local fsync does not commit');
    await v.close({ abandon: true }); // the process dies: nothing more reaches the store

    const log = memoryLogger();
    const back = await s.open({ force: true, logger: log });
    assert.deepEqual(await readFile(back, '/d/f'), data);
    assert.ok(log.lines.some((l) => l.msg.includes('recovered uncommitted changes')));
    await back.close();
    // and it was committed by the recovery: visible from the store alone
    const fresh = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(fresh, '/d/f'), data);
    await fresh.close();
  } finally {
    await s.cleanup();
  }
});

test('close() without fsync commits everything; flush with closeSync commits', async () => {
  const s = await setup();
  try {
    const v = await s.open({ commitIntervalMs: 60_000, closeSync: true });
    const fh = await v.create('/a', 0o644, O_CREAT | O_RDWR);
    await v.write(fh, Buffer.from('close-sync'), 0);
    await v.flush(fh);
    const reader = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(reader, '/a'), Buffer.from('close-sync'));
    await reader.close();
    await v.release(fh);
    await writeFile(v, '/b', Buffer.from('no fsync'));
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/b'), Buffer.from('no fsync'));
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('group commit: 40 concurrent fsyncs share far fewer than 40 segments', async () => {
  const s = await setup();
  try {
    s.faulty.addLatency('put', 15);
    const v = await s.open({ commitIntervalMs: 60_000 });
    const before = await countKeys(s, JOURNAL_PREFIX);
    await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const fh = await v.create(`/f${i}`, 0o644, O_CREAT | O_RDWR);
        await v.write(fh, pattern(4 * KiB, i), 0);
        await v.fsync(fh, false);
        await v.release(fh);
      }),
    );
    const segments = (await countKeys(s, JOURNAL_PREFIX)) - before;
    assert.ok(segments <= 8, `${segments} segments for 40 fsyncs`);
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    for (let i = 0; i < 40; i++) assert.deepEqual(await readFile(again, `/f${i}`), pattern(4 * KiB, i));
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('big sequential writes upload whole blocks before any fsync (early uploads)', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000, dirtyLimit: 64 * MiB, cacheSize: 256 * MiB });
    const fh = await v.create('/seq', 0o644, O_CREAT | O_RDWR);
    const data = pattern(2 * MiB, 11);
    for (let o = 0; o < data.length; o += 32 * KiB) await v.write(fh, data.subarray(o, o + 32 * KiB), o);
    await sleep(100);
    const st = v.status();
    assert.ok(st.uploadedBytes >= 1.5 * MiB, `uploaded ${st.uploadedBytes} bytes before fsync`);
    assert.equal(st.commits, 1, 'no commit yet beyond the opening one');
    await v.fsync(fh, false);
    await v.release(fh);
    // whole blocks: 2 MiB / 64 KiB = 32 objects of exactly one block
    const objs = await s.memory.list(s.container, { prefix: '.swiftfs/data/' });
    const sizes = objs.objects.map((o) => o.size);
    assert.equal(sizes.filter((n) => n === 64 * KiB).length, 32, `sizes ${sizes}`);
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/seq'), data);
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('lost+found: local uncommitted changes are set aside when the volume moved on under another owner', async () => {
  const s = await setup();
  try {
    const v = await s.open({ fsync: 'local', commitIntervalMs: 60_000 });
    for (let i = 0; i < 20; i++) await writeFile(v, `/committed${i}`, Buffer.from('in the store'));
    await v.syncAll(); // the local committed note is now well above 0
    await sleep(50);
    await writeFile(v, '/mine', Buffer.from('local only'));
    await v.fsync(await v.open('/mine', 0), false);
    await v.close({ abandon: true });

    const other = await s.open({ force: true }, await tempDir());
    await writeFile(other, '/theirs', Buffer.from('from another host'));
    await other.close();

    const log = memoryLogger();
    const back = await s.open({ logger: log });
    assert.equal((await back.readdir('/')).some((e) => e.name === 'mine'), false);
    assert.deepEqual(await readFile(back, '/theirs'), Buffer.from('from another host'));
    assert.ok(log.lines.some((l) => l.level === 'error' && l.msg.includes('NOT applied')));
    const lf = await fs.readdir(path.join(s.cacheDir, back.uuid, 'lost+found'));
    assert.equal(lf.length, 1);
    // and the mount works normally afterwards: what it fsyncs is in the store
    const fh = await back.create('/after', 0o644, O_CREAT | O_RDWR);
    await back.write(fh, Buffer.from('after recovery'), 0);
    await back.fsync(fh, false);
    const reader = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(reader, '/after'), Buffer.from('after recovery'));
    await reader.close();
    await back.release(fh);
    await back.close({ abandon: true });
    const again = await s.open({}, await tempDir());
    assert.deepEqual(await readFile(again, '/after'), Buffer.from('after recovery'));
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('reopening after a clean close on this host, after another host wrote, is not a false alarm', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    await writeFile(v, '/a', Buffer.from('a'));
    await v.close();
    const other = await s.open({}, await tempDir());
    await writeFile(other, '/b', Buffer.from('b'));
    await other.close();
    const log = memoryLogger();
    const back = await s.open({ logger: log });
    assert.deepEqual((await back.readdir('/')).map((e) => e.name).sort(), ['a', 'b']);
    assert.ok(!log.lines.some((l) => l.level === 'error'), JSON.stringify(log.lines));
    await back.close();
  } finally {
    await s.cleanup();
  }
});

test('data overwritten or truncated away within one commit is not uploaded (and the result is exact)', async () => {
  const { liveParts } = await import('../../src/core/committer.js');
  const w = (ino: number, off: number, len: number) => ({ t: 'write' as const, ino, off, len, ref: { wal: 1, off: 0 }, mtime: 1 });
  const a = w(2, 0, 8192);
  const b = w(2, 0, 4096);
  const c = w(2, 10000, 100);
  const d = w(3, 0, 50);
  const parts = liveParts([{ batch: [a, c] }, { batch: [b, { t: 'trunc', ino: 2, size: 10050, mtime: 2 }] }, { batch: [d, { t: 'free', ino: 3 }] }]);
  assert.deepEqual(parts.get(a), [[4096, 4096]]);
  assert.deepEqual(parts.get(c), [[10000, 50]]);
  assert.equal(parts.has(b), false, 'b is entirely alive');
  assert.deepEqual(parts.get(d), [], 'freed later: dead');

  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 60_000 });
    const fh = await v.create('/hot', 0o644, O_CREAT | O_RDWR);
    const before = v.status().uploadedBytes;
    for (let i = 0; i < 100; i++) await v.write(fh, pattern(4 * KiB, i), 8 * KiB);
    await v.write(fh, pattern(1000, 999), 0);
    await v.fsync(fh, false);
    const uploaded = v.status().uploadedBytes - before;
    assert.ok(uploaded <= 8 * KiB, `uploaded ${uploaded} bytes for 4 KiB + 1000 live`);
    const expected = Buffer.alloc(12 * KiB);
    pattern(1000, 999).copy(expected, 0);
    pattern(4 * KiB, 99).copy(expected, 8 * KiB);
    await v.release(fh);
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/hot'), expected);
    await again.close();
  } finally {
    await s.cleanup();
  }
});
