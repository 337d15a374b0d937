/**
 * StoreVolumeBackend over the in-memory ObjectStore: -o validation against the option table, container naming,
 * labels, idempotent create, refusal of foreign containers, lookup by name and by label, listing, the holder
 * from the core's owner record, deletion.
 */

import { test, describe, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { loadConfig } from '../../src/config/load.js';
import { FORMAT_KEY, OWNER_KEY, UUID_LABEL, writeFormat } from '../../src/core/layout.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { StoreVolumeBackend, VOLUME_LABEL, type FormatVolume } from '../../src/plugin/store-backend.js';

const signal = () => new AbortController().signal;

let store: MemoryStore;
let backend: StoreVolumeBackend;
let formats: number;

const fakeFormat: FormatVolume = async (req) => {
  formats++;
  const uuid = randomUUID();
  await req.store.createContainer(req.container, { labels: { ...req.labels, [UUID_LABEL]: uuid }, ...(req.storagePolicy ? { storagePolicy: req.storagePolicy } : {}) });
  await writeFormat(req.store, req.container, { format: 1, uuid, blockSize: req.blockSize, createdAt: Date.now(), createdBy: 'test' }, true);
  return { uuid };
};

beforeEach(() => {
  store = new MemoryStore();
  formats = 0;
  backend = new StoreVolumeBackend({
    config: loadConfig({ env: { SWIFTFS_STORE_TYPE: 'memory' } }),
    openStore: async () => store,
    format: fakeFormat,
  });
});

describe('StoreVolumeBackend', () => {
  test('resolve: container named as the volume; options validated against the table', () => {
    const spec = backend.resolve('pgdata', { fsync: 'local', 'cache-size': '1G', 'read-only': '' });
    assert.deepEqual(spec.location, { backend: 'memory', store: 'default', container: 'pgdata' });
    assert.deepEqual(spec.options, { fsync: 'local', 'cache-size': '1G', 'read-only': '' });
    assert.equal(backend.resolve('v', { container: 'other' }).location.container, 'other');
    assert.throws(() => backend.resolve('v', { nosuch: '1' }), /unknown option/);
    assert.throws(() => backend.resolve('v', { fsync: 'sometimes' }), /fsync/);
    assert.throws(() => backend.resolve('v', { socket: '/x' }), /cannot be set per volume/);
    assert.throws(() => backend.resolve('v', { 'cache-size': '1k' }), /cache-size/);
    assert.throws(() => backend.resolve('v', { store: 'elsewhere' }), /no store or region named "elsewhere"/);
    assert.throws(() => backend.resolve('v', { backend: 'ftp' }), /backend must be swift or s3/);
    assert.throws(() => backend.resolve('v', { backend: 's3' }), /not s3/);
  });

  test('a credential given as -o is refused without echoing its value', () => {
    for (const key of ['password', 'key', 'secret-access-key', 'auth-token']) {
      assert.throws(
        () => backend.resolve('v', { [key]: 'S3CR3T-VALUE' }),
        (err: Error) => !err.message.includes('S3CR3T-VALUE') && /cannot be set per volume|unknown option/.test(err.message),
      );
    }
  });

  test('create formats a labelled container; idempotent; seen by lookup, inspect and list', async () => {
    const spec = backend.resolve('vol', { fsync: 'local' });
    const created = await backend.create(spec, signal());
    assert.equal(formats, 1);
    const labels = await store.getLabels('vol');
    assert.equal(labels[VOLUME_LABEL], 'vol');
    assert.equal(labels['swiftfs-opts'], 'fsync=local');
    assert.equal(labels[UUID_LABEL], created.uuid);
    const again = await backend.create(spec, signal());
    assert.equal(again.uuid, created.uuid);
    assert.equal(formats, 1, 'not formatted twice');
    const found = await backend.lookup('vol', signal());
    assert.equal(found?.uuid, created.uuid);
    assert.deepEqual(found?.options, { fsync: 'local' });
    assert.equal((await backend.inspect(spec.location, signal()))?.uuid, created.uuid);
    assert.deepEqual((await backend.list(signal())).map((v) => v.name), ['vol']);
    assert.equal(await backend.lookup('nothere', signal()), null);
  });

  test('create=false attaches to an existing volume only', async () => {
    await assert.rejects(backend.create(backend.resolve('absent', { create: 'false' }), signal()), /create=false/);
    assert.equal(formats, 0);
    const made = await backend.create(backend.resolve('present', {}), signal());
    const attached = await backend.create(backend.resolve('present', { create: 'false' }), signal());
    assert.equal(attached.uuid, made.uuid);
  });

  test('a volume in a container of another name is found by its label', async () => {
    const spec = backend.resolve('app', { container: 'app-data-2' });
    await backend.create(spec, signal());
    const found = await backend.lookup('app', signal());
    assert.equal(found?.location.container, 'app-data-2');
  });

  test('refuses a container holding other data, or another volume', async () => {
    await store.createContainer('taken');
    await store.put('taken', 'photo.jpg', Buffer.from('x'));
    await assert.rejects(backend.create(backend.resolve('taken', {}), signal()), /not a swiftfs volume/);
    assert.equal(formats, 0);
    await backend.create(backend.resolve('first', {}), signal());
    await assert.rejects(backend.create(backend.resolve('second', { container: 'first' }), signal()), /already holds the swiftfs volume first/);
    // an empty existing container is fine
    await store.createContainer('empty');
    await backend.create(backend.resolve('empty', {}), signal());
    assert.equal((await backend.lookup('empty', signal()))?.name, 'empty');
  });

  test('inspect reports the holder from the owner record', async () => {
    const spec = backend.resolve('held', {});
    await backend.create(spec, signal());
    const now = Date.now();
    await store.put('held', OWNER_KEY, Buffer.from(JSON.stringify({ epoch: 3, host: 'node-b', machine: 'another-machine', pid: 77, session: 's', since: now - 1000, renewedAt: now, mode: 'rw' })));
    const v = await backend.inspect(spec.location, signal());
    assert.equal(v?.holder?.host, 'node-b');
    assert.equal(v?.holder?.pid, 77);
    assert.equal(v?.holder?.live, true);
    await store.put('held', OWNER_KEY, Buffer.from(JSON.stringify({ epoch: 3, host: 'node-b', machine: 'another-machine', pid: 77, session: 's', since: now - 1000, renewedAt: now - 10 * 60_000, mode: 'rw' })));
    assert.equal((await backend.inspect(spec.location, signal()))?.holder?.live, false);
  });

  test('markDeleting hides a volume; destroy deletes every object and the container', async () => {
    const spec = backend.resolve('gone', {});
    await backend.create(spec, signal());
    for (let i = 0; i < 30; i++) await store.put('gone', `.swiftfs/data/${i}`, Buffer.from('x'));
    await backend.markDeleting(spec.location, signal());
    assert.deepEqual(await backend.list(signal()), []);
    assert.equal(await backend.lookup('gone', signal()), null);
    assert.ok((await store.get('gone', FORMAT_KEY)).body.length > 0);
    await backend.destroy(spec.location, signal());
    assert.deepEqual(await store.listContainers(), []);
    await backend.destroy(spec.location, signal()); // idempotent
  });
});
