/** format/open errors: missing, empty, foreign, newer-format, already formatted containers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.js';
import { Volume, VolumeFormatError } from '../../src/core/volume.js';
import { FORMAT_KEY, UUID_LABEL, readFormat } from '../../src/core/layout.js';
import { tempDir, readFile, writeFile } from './volume-helpers.js';

function problem(p: string) {
  return (e: unknown) => {
    assert.ok(e instanceof VolumeFormatError, String(e));
    assert.equal(e.problem, p, e.message);
    return true;
  };
}

test('format: creates the container when asked, labels it, and opens empty', async () => {
  const store = new MemoryStore();
  await assert.rejects(Volume.format(store, 'nope'), problem('no-container'));
  const rec = await Volume.format(store, 'c1', { createContainer: true, blockSize: 1024 * 1024, label: 'db' });
  assert.match(rec.uuid, /^[0-9a-f-]{36}$/);
  assert.equal((await store.getLabels('c1'))[UUID_LABEL], rec.uuid);
  assert.deepEqual((await readFormat(store, 'c1')).blockSize, 1024 * 1024);
  const v = await Volume.open(store, 'c1', { cacheDir: await tempDir() });
  assert.equal(v.uuid, rec.uuid);
  assert.equal(v.blockSize, 1024 * 1024);
  assert.deepEqual(await v.readdir('/'), []);
  await writeFile(v, '/x', Buffer.from('y'));
  await v.close();
  await assert.rejects(Volume.format(store, 'c1'), problem('already-formatted'));
  const again = await Volume.open(store, 'c1', { cacheDir: await tempDir() });
  assert.deepEqual(await readFile(again, '/x'), Buffer.from('y'));
  await again.close();
  await assert.rejects(Volume.format(store, 'c2', { createContainer: true, blockSize: 3000 }), RangeError);
});

test('open/format refuse containers that are not (or not yet) swiftfs volumes, with clear errors', async () => {
  const store = new MemoryStore();
  const cacheDir = await tempDir();
  await assert.rejects(Volume.open(store, 'missing', { cacheDir }), problem('no-container'));
  await store.createContainer('empty');
  await assert.rejects(Volume.open(store, 'empty', { cacheDir }), problem('not-formatted'));
  await store.createContainer('foreign');
  await store.put('foreign', 'photos/cat.jpg', Buffer.from('meow'));
  await assert.rejects(Volume.open(store, 'foreign', { cacheDir }), problem('not-swiftfs'));
  await assert.rejects(Volume.format(store, 'foreign'), problem('not-swiftfs'));
  await store.createContainer('garbled');
  await store.put('garbled', FORMAT_KEY, Buffer.from('not json'));
  await assert.rejects(Volume.open(store, 'garbled', { cacheDir }), problem('not-swiftfs'));
  await assert.rejects(Volume.format(store, 'garbled'), problem('not-swiftfs'));
  await Volume.format(store, 'future', { createContainer: true });
  const rec = JSON.parse((await store.get('future', FORMAT_KEY)).body.toString());
  await store.put('future', FORMAT_KEY, Buffer.from(JSON.stringify({ ...rec, format: 2 })));
  await assert.rejects(Volume.open(store, 'future', { cacheDir }), (e: unknown) => {
    problem('newer-format')(e);
    assert.match((e as Error).message, /format 2.*upgrade swiftfs/);
    return true;
  });
  await assert.rejects(Volume.format(store, 'future'), problem('already-formatted'));
});
