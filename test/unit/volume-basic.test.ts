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
