import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setup, writeFile, readFile, pattern, KiB, MiB } from './volume-helpers.js';

test('smoke: write, read, close, reopen on an empty cache dir', async () => {
  const s = await setup();
  try {
    const v = await s.open();
    await v.mkdir('/d', 0o755);
    const data = pattern(300 * KiB, 7);
    await writeFile(v, '/d/f', data);
    assert.deepEqual(await readFile(v, '/d/f'), data);
    await v.syncAll();
    assert.deepEqual(await readFile(v, '/d/f'), data);
    await v.close();
    const { tempDir } = await import('./volume-helpers.js');
    const v2 = await s.open({}, await tempDir());
    assert.deepEqual(await readFile(v2, '/d/f'), data);
    assert.equal((await v2.getattr('/d/f')).size, data.length);
    await v2.close();
    void MiB;
  } finally {
    await s.cleanup();
  }
});

test('cacheSize bounds the clean data on disk, and the disk tier holds that much (not cacheSize less the dirty limit)', async () => {
  const s = await setup(); // 64 KiB blocks
  try {
    const v = await s.open({ cacheSize: 2 * MiB, dirtyLimit: 512 * KiB });
    const data = pattern(4 * MiB, 11);
    await writeFile(v, '/f', data);
    await v.close();
    const { tempDir, sleep } = await import('./volume-helpers.js');
    const v2 = await s.open({ cacheSize: 2 * MiB, dirtyLimit: 512 * KiB }, await tempDir());
    assert.deepEqual(await readFile(v2, '/f'), data);
    await sleep(200); // objects are written to the disk tier in the background
    const { diskBytes } = v2.status().cache;
    assert.ok(diskBytes <= 2 * MiB, `disk tier ${diskBytes} bytes, above the 2 MiB cache size`);
    assert.ok(diskBytes >= 2 * MiB - 64 * KiB, `disk tier ${diskBytes} bytes: the cache size is not used in full`);
    await v2.close();
  } finally {
    await s.cleanup();
  }
});
