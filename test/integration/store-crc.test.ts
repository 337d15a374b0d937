/**
 * The stores' download verification on the real test Swift, through both APIs: a buffer put stores the body's
 * CRC32 as object metadata (the same key on both APIs, so an object written through one is checked through the
 * other), callers never see it, and a stored CRC32 that does not match the bytes fails a whole-object GET with
 * Integrity (the object's metadata is changed behind the stores' back with a Swift POST).
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { createS3Store } from '../../src/store/s3/s3-store.js';
import { createSwiftStore } from '../../src/store/swift/swift-store.js';
import { uniqueName } from '../helpers/saio.js';
import { readSwiftEnv, requireSwift } from '../helpers/swift-env.js';

const swift = readSwiftEnv('A');

it('a test Swift is configured', (t) => {
  requireSwift(t, 'A');
});

async function integrity(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (err: unknown) => err instanceof StoreError && err.code === StoreErrorCode.Integrity);
}

describe('stored CRC32 of objects (Swift and S3 APIs)', { skip: swift ? false : 'no test Swift configured (SWIFTFS_TEST_ST_AUTH unset)', timeout: 120_000 }, () => {
  let swiftStore: ObjectStore;
  let s3Store: ObjectStore;
  let container: string;
  let token: string;
  let storageUrl: string;

  /** The object's headers as Swift serves them, and a way to replace its metadata (POST) behind the stores. */
  const raw = async (key: string, method: 'HEAD' | 'POST', headers: Record<string, string> = {}) => {
    const res = await fetch(`${storageUrl}/${container}/${key}`, { method, headers: { 'x-auth-token': token, ...headers }, signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    assert.ok(res.status < 300, `${method} ${key}: ${res.status}`);
    return res.headers;
  };

  before(async () => {
    swiftStore = createSwiftStore({ auth: { type: 'tempauth', authUrl: swift!.authUrl, user: swift!.user, key: swift!.key }, retry: { retries: 1, baseDelayMs: 10 } });
    s3Store = createS3Store({ endpoint: swift!.s3Endpoint, accessKeyId: swift!.s3AccessKey, secretAccessKey: swift!.s3Secret, retry: { retries: 1, baseDelayMs: 10 } });
    container = uniqueName('crc');
    await swiftStore.createContainer(container);
    const auth = await fetch(swift!.authUrl, { headers: { 'x-auth-user': swift!.user, 'x-auth-key': swift!.key }, signal: AbortSignal.timeout(10_000) });
    await auth.arrayBuffer();
    token = auth.headers.get('x-auth-token')!;
    storageUrl = auth.headers.get('x-storage-url')!;
  });

  after(async () => {
    for (const key of ['via-swift', 'via-s3']) await swiftStore?.delete(container, key).catch(() => undefined);
    await swiftStore?.deleteContainer(container).catch(() => undefined);
    await Promise.all([swiftStore?.close(), s3Store?.close()]);
  });

  for (const [name, key] of [['Swift', 'via-swift'], ['S3', 'via-s3']] as const) {
    it(`a buffer put through the ${name} API stores the CRC32; both APIs verify it and hide it`, async () => {
      const writer = name === 'Swift' ? swiftStore : s3Store;
      const body = Buffer.from(`the bytes written through ${name}`);
      await writer.put(container, key, body, { metadata: { note: 'kept' } });
      const expected = (crc32(body) >>> 0).toString(16).padStart(8, '0');
      assert.equal((await raw(key, 'HEAD')).get('x-object-meta-swiftfs-crc32'), expected);
      for (const reader of [swiftStore, s3Store]) {
        const got = await reader.get(container, key);
        assert.deepEqual(got.body, body);
        assert.deepEqual(got.info.metadata, { note: 'kept' });
        assert.deepEqual((await reader.head(container, key)).metadata, { note: 'kept' });
      }
      // A stored CRC32 that does not match the bytes: a whole GET fails through both APIs; a ranged one is not checked.
      await raw(key, 'POST', { 'x-object-meta-swiftfs-crc32': expected === '00000000' ? '00000001' : '00000000', 'x-object-meta-note': 'kept' });
      await integrity(swiftStore.get(container, key));
      await integrity(s3Store.get(container, key));
      assert.equal((await swiftStore.get(container, key, { range: { offset: 4, length: 5 } })).body.toString(), body.subarray(4, 9).toString());
    });
  }

  it('callers cannot set the reserved key', async () => {
    for (const store of [swiftStore, s3Store]) {
      await assert.rejects(store.put(container, 'reserved', Buffer.from('x'), { metadata: { 'swiftfs-crc32': '00000000' } }), (err: unknown) => err instanceof StoreError && err.code === StoreErrorCode.InvalidArgument);
    }
  });
});
