/**
 * Single writer: a second read-write open is refused while the first lives; a forced takeover fences the old
 * session (its next commit fails, it turns read-only, the volume keeps the new owner's state), with atomic
 * create-only puts and with the lease alone; a released or dead holder does not block; read-only opens need no
 * ownership. (The lease against a Swift-like store: volume-lease.test.ts.)
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FsError } from '../../src/core/errors.js';
import { VolumeBusyError, Ownership } from '../../src/core/ownership.js';
import { OWNER_KEY } from '../../src/core/layout.js';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { setup, tempDir, readFile, writeFile, memoryLogger } from './volume-helpers.js';

test('second read-write open is refused with VolumeBusyError naming the holder; read-only is fine', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    await assert.rejects(s.open({}, await tempDir()), (e: unknown) => {
      assert.ok(e instanceof VolumeBusyError);
      assert.equal(e.holder.pid, process.pid);
      assert.match(e.message, /in use read-write by/);
      return true;
    });
    // the same cache dir in the same process is refused too
    await assert.rejects(s.open(), (e: unknown) => e instanceof VolumeBusyError || (e instanceof FsError && e.code === 'EBUSY'));
    const ro = await s.open({ readOnly: true }, await tempDir());
    await ro.close();
    await v.close();
    // released: the next open takes it at once, with a higher epoch
    const before = await Ownership.read(s.store, s.container);
    assert.equal(before?.released, true);
    const next = await s.open({}, await tempDir());
    assert.ok(next.status().owner!.epoch > before!.epoch);
    await next.close();
  } finally {
    await s.cleanup();
  }
});

for (const conditionalCreate of [true, false]) {
  test(`forced takeover fences the old owner (conditionalCreate=${conditionalCreate})`, async () => {
    const s = await setup({ conditionalCreate });
    try {
      const log = memoryLogger();
      const old = await s.open({ logger: log, commitIntervalMs: 60_000, fenceSettleMs: 200 });
      await writeFile(old, '/before', Buffer.from('committed'));
      await old.syncAll();
      const fh = await old.create('/late', 0o644, O_CREAT | O_RDWR);
      await old.write(fh, Buffer.from('never committed'), 0);

      const taker = await s.open({ force: true, fenceSettleMs: 200 }, await tempDir());
      await writeFile(taker, '/new', Buffer.from('new owner'));
      await taker.syncAll();

      await assert.rejects(old.fsync(fh, false), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
      assert.ok(old.status().readOnly);
      assert.match(old.status().readOnlyReason ?? '', /fenced/);
      await assert.rejects(old.mkdir('/x', 0o755), (e: unknown) => e instanceof FsError && e.code === 'EROFS');
      assert.equal(log.lines.filter((l) => l.level === 'error' && l.msg.includes('taken over')).length, 1, 'one clear log line');
      // reads still work on the fenced mount
      assert.deepEqual(await readFile(old, '/before'), Buffer.from('committed'));
      await old.release(fh);
      await old.close();

      // the volume is the new owner's
      assert.deepEqual((await taker.readdir('/')).map((e) => e.name).sort(), ['before', 'new']);
      await taker.close();
      const check = await s.open({ readOnly: true }, await tempDir());
      assert.deepEqual((await check.readdir('/')).map((e) => e.name).sort(), ['before', 'new']);
      await check.close();
    } finally {
      await s.cleanup();
    }
  });
}

test('a holder whose lease expired, or whose process is gone, does not block', async () => {
  const s = await setup();
  try {
    const stale = { epoch: 7, host: 'elsewhere', machine: 'other-machine', pid: 1, session: 'x', since: 0, renewedAt: Date.now() - 10 * 60_000, mode: 'rw' };
    await s.memory.put(s.container, OWNER_KEY, Buffer.from(JSON.stringify(stale)));
    const v = await s.open();
    assert.equal(v.status().owner!.epoch, 8);
    await v.close();
    const live = { ...stale, renewedAt: Date.now() };
    await s.memory.put(s.container, OWNER_KEY, Buffer.from(JSON.stringify(live)));
    await assert.rejects(s.open({}, await tempDir()), VolumeBusyError);
    const dead = { ...live, machine: (await import('../../src/core/ownership.js')).machineId(), pid: 2 ** 22 + 12345 };
    await s.memory.put(s.container, OWNER_KEY, Buffer.from(JSON.stringify(dead)));
    const v2 = await s.open({}, await tempDir());
    await v2.close();
  } finally {
    await s.cleanup();
  }
});

test('lease renewal notices a takeover even without a commit', async () => {
  const s = await setup();
  try {
    const old = await s.open({ renewMs: 30 });
    const taker = await s.open({ force: true }, await tempDir());
    await new Promise((r) => setTimeout(r, 150));
    assert.ok(old.status().readOnly, 'the old session turned read-only on its own');
    await old.close();
    await taker.close();
  } finally {
    await s.cleanup();
  }
});

test('after an abandoned session (a crash), the same process may open again without force', async () => {
  const s = await setup();
  try {
    const v = await s.open({ fsync: 'local' });
    await writeFile(v, '/x', Buffer.from('x'));
    await v.close({ abandon: true });
    const again = await s.open();
    assert.deepEqual(await readFile(again, '/x'), Buffer.from('x'));
    await again.close();
  } finally {
    await s.cleanup();
  }
});
