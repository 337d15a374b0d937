/**
 * A slow or unreachable store: writers fill the dirty limit, then wait (never fail), and finish once the store
 * is back; reads of cached and dirty data keep working while it is offline; fsync waits for the store; health
 * reports the outage.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { O_CREAT, O_RDWR } from '../../src/core/types.js';
import { setup, tempDir, readFile, writeFile, pattern, sleep, memoryLogger, KiB, MiB } from './volume-helpers.js';

test('offline store: writes up to the dirty limit complete, then wait, then finish when it is back', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const log = memoryLogger();
    const v = await s.open({ dirtyLimit: 2 * MiB, commitIntervalMs: 20, logger: log });
    // something clean and cached first
    const cached = pattern(300 * KiB, 1);
    await writeFile(v, '/cached', cached);
    await v.syncAll();
    assert.deepEqual(await readFile(v, '/cached'), cached);

    s.faulty.goOffline();
    const fh = await v.create('/big', 0o644, O_CREAT | O_RDWR);
    const data = pattern(5 * MiB, 2);
    let written = 0;
    const writer = (async () => {
      for (let o = 0; o < data.length; o += 64 * KiB) {
        await v.write(fh, data.subarray(o, o + 64 * KiB), o);
        written = o + 64 * KiB;
      }
    })();
    let writerError: unknown = null;
    writer.catch((e: unknown) => (writerError = e));
    await sleep(1500);
    assert.equal(writerError, null, 'writers never fail because of the store');
    assert.ok(written >= 1.5 * MiB && written <= 2 * MiB + 64 * KiB, `wrote ${written} bytes while offline`);
    assert.equal(v.status().health.state, 'retrying');
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.msg.includes('retrying until it is back')));

    // reads keep working offline: cached clean data and dirty data
    assert.deepEqual(await readFile(v, '/cached'), cached);
    assert.deepEqual(await v.read(fh, 64 * KiB, 0), data.subarray(0, 64 * KiB));

    // an fsync waits for the store
    let synced = false;
    const fsync = v.fsync(fh, false).then(() => (synced = true));
    await sleep(300);
    assert.equal(synced, false);

    s.faulty.comeBack();
    await writer;
    await fsync;
    await v.fsync(fh, false);
    assert.equal(v.status().health.state, 'ok');
    await v.release(fh);
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/big'), data);
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('a slow store: a writer much faster than the store is held at the dirty limit and everything arrives', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    s.faulty.addLatency('put', 40);
    const v = await s.open({ dirtyLimit: 1 * MiB, commitIntervalMs: 20, uploadConcurrency: 2 });
    let maxDirty = 0;
    const timer = setInterval(() => (maxDirty = Math.max(maxDirty, v.status().dirtyBytes)), 5);
    const data = pattern(4 * MiB, 5);
    await writeFile(v, '/slow', data);
    clearInterval(timer);
    assert.ok(maxDirty <= 1 * MiB + 256 * KiB, `dirty reached ${maxDirty}`);
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/slow'), data);
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('transient put failures are retried: nothing lost, no error surfaces', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const v = await s.open({ commitIntervalMs: 10 });
    s.faulty.failNext('put', 5, 'Unavailable');
    s.faulty.failNext('put', 2, 'Timeout', { after: true }); // landed, but the answer was lost
    const data = pattern(700 * KiB, 8);
    await writeFile(v, '/r', data);
    await v.syncAll();
    await v.close();
    const again = await s.open({ readOnly: true }, await tempDir());
    assert.deepEqual(await readFile(again, '/r'), data);
    await again.close();
  } finally {
    await s.cleanup();
  }
});

test('close({timeoutMs}) gives up on an unreachable store, keeping the changes for the next mount', async () => {
  const s = await setup({ blockSize: 64 * KiB });
  try {
    const log = memoryLogger();
    const v = await s.open({ commitIntervalMs: 60_000, logger: log });
    await writeFile(v, '/pending', Buffer.from('not yet in the store'));
    s.faulty.goOffline();
    const t0 = Date.now();
    await v.close({ timeoutMs: 300 });
    assert.ok(Date.now() - t0 < 3000);
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.msg.includes('could not commit')));
    s.faulty.comeBack();
    const back = await s.open();
    assert.deepEqual(await readFile(back, '/pending'), Buffer.from('not yet in the store'));
    await back.close();
  } finally {
    await s.cleanup();
  }
});
