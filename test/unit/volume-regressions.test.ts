/**
 * Regression tests for what the Volume property test (test/unit/volume-property.test.ts) found, each minimised
 * to the few operations that showed it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { O_CREAT, O_RDWR, O_TRUNC, O_WRONLY } from '../../src/core/types.js';
import { setup, writeFile, readFile, memoryLogger, pattern, sleep, tempDir, KiB } from './volume-helpers.js';

const OLD = 946_684_800_000; // 2000-01-01

test('open(O_TRUNC) and create(O_CREAT|O_TRUNC) of an existing empty file set its mtime, as Linux does', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    await writeFile(v, '/empty', Buffer.alloc(0));
    await v.utimens('/empty', OLD, OLD);
    await v.release(await v.open('/empty', O_WRONLY | O_TRUNC));
    assert.ok((await v.getattr('/empty')).mtime > OLD + 1000, 'open(O_TRUNC) updates mtime');

    await v.utimens('/empty', OLD, OLD);
    await v.release(await v.create('/empty', 0o644, O_CREAT | O_RDWR | O_TRUNC));
    assert.ok((await v.getattr('/empty')).mtime > OLD + 1000, 'create(O_CREAT|O_TRUNC) of an existing file updates mtime');

    // a new file is created once (one WAL entry), not created and then truncated
    const before = v.status().pendingEntries;
    await v.release(await v.create('/new', 0o644, O_CREAT | O_RDWR | O_TRUNC));
    assert.equal(v.status().pendingEntries - before, 1);
    await v.close();
  } finally {
    await s.cleanup();
  }
});

test('a checkpoint cut short by close({abandon}) (a crash) logs no error', async () => {
  const s = await setup();
  try {
    const log = memoryLogger();
    const v = await s.open({ checkpointEvery: 1, commitIntervalMs: 60_000, logger: log });
    await writeFile(v, '/f', Buffer.from('data'));
    await v.syncAll(); // one segment: a checkpoint starts in the background
    await v.close({ abandon: true });
    await sleep(100);
    assert.deepEqual(log.lines.filter((l) => l.level === 'error'), []);
  } finally {
    await s.cleanup();
  }
});

test('crash recovery with more than half the dirty limit to replay commits every replayed entry (none claimed but left out)', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ fsync: 'local', commitIntervalMs: 60_000, dirtyLimit: 256 * KiB });
    const fh = await v.create('/f', 0o644, O_CREAT | O_RDWR);
    s.faulty.goOffline(); // nothing gets committed: everything stays in the WAL
    const expected = Buffer.concat([pattern(60 * KiB, 1), pattern(60 * KiB, 2), pattern(60 * KiB, 3), pattern(1000, 4)]);
    let off = 0;
    for (const len of [60 * KiB, 60 * KiB, 60 * KiB, 1000]) {
      await v.write(fh, expected.subarray(off, off + len), off);
      off += len;
    }
    await v.fsync(fh, false);
    await v.close({ abandon: true });
    s.faulty.comeBack();

    // Replaying: the third entry reaches half the dirty limit, the fourth must be in the same first commit.
    const back = await s.open({ force: true, dirtyLimit: 256 * KiB });
    assert.deepEqual(await readFile(back, '/f'), expected);
    await back.close({ abandon: true }); // a second crash: what the first commit claimed must really be there
    const fresh = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(fresh, '/f'), expected);
    await fresh.close();
  } finally {
    await s.cleanup();
  }
});
