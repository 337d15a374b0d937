/**
 * Every VolumeFs operation through a Volume on the memory store, and the results surviving a reopen on an
 * empty cache directory (i.e. coming from the store alone).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { O_CREAT, O_RDONLY, O_RDWR } from '../../src/core/types.js';
import { setup, tempDir } from './volume-helpers.js';
import { errno, exerciseEverything, checkEverything } from './volume-scenarios.js';

test('every VolumeFs operation, then the same state from the store alone', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    await exerciseEverything(v);
    await checkEverything(v);
    await v.close();
    const fresh = await s.open({}, await tempDir());
    await checkEverything(fresh);
    await fresh.close();
    // and read-only
    const ro = await s.open({ readOnly: true }, await tempDir());
    await checkEverything(ro);
    assert.equal(await errno(ro.mkdir('/no', 0o755)), 'EROFS');
    assert.equal(await errno(ro.open('/dir/a', O_RDWR)), 'EROFS');
    const h = await ro.open('/dir/a', O_RDONLY);
    await ro.fsync(h, false);
    await ro.release(h);
    await ro.close();
  } finally {
    await s.cleanup();
  }
});

test('the same operations on a store without conditional create (S3 on Swift 2.30)', async () => {
  const s = await setup({ conditionalCreate: false });
  try {
    const v = await s.open({ fenceSettleMs: 100 });
    assert.equal(v.status().owner?.guarantee, 'lease');
    await exerciseEverything(v);
    await v.close();
    const fresh = await s.open({ fenceSettleMs: 100 }, await tempDir());
    await checkEverything(fresh);
    await fresh.close();
  } finally {
    await s.cleanup();
  }
});

test('handles: numbers from 1, EBADF for unknown ones, reused only after release', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    const a = await v.create('/f', 0o644, O_CREAT | O_RDWR);
    const b = await v.open('/f', O_RDONLY);
    assert.equal(a, 1);
    assert.equal(b, 2);
    assert.equal(await errno(v.fgetattr(99)), 'EBADF');
    assert.equal(await errno(v.release(99)), 'EBADF');
    await v.release(a);
    assert.equal(await errno(v.write(a, Buffer.from('x'), 0)), 'EBADF');
    await v.release(b);
    await v.close();
  } finally {
    await s.cleanup();
  }
});
