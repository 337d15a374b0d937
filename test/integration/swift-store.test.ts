/**
 * SwiftStore against a real Swift (scripts/swift-saio.sh; SWIFTFS_TEST_ST_* variables, see test/helpers/swift-env.ts):
 * every operation of the ObjectStore contract, metadata and labels round trips, ranged reads at the edges,
 * create-only puts, capabilities, listing pagination, awkward keys. Skips without a server (fails under CI=true).
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it, type TestContext } from 'node:test';
import { StoreError } from '../../src/store/errors.js';
import { listAll, type ObjectInfo } from '../../src/store/object-store.js';
import { createSwiftStore, type SwiftStore } from '../../src/store/swift/swift-store.js';
import { readSwiftEnv, requireSwift, type SwiftTestEnv } from '../helpers/swift-env.js';

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

const md5 = (data: Uint8Array | string) => createHash('md5').update(data).digest('hex');

describe('SwiftStore on a real Swift', () => {
  const env: SwiftTestEnv | undefined = readSwiftEnv('A');
  const run = Math.random().toString(36).slice(2, 8);
  const container = `swiftfs-it-store-${run}`;
  const created: string[] = [];
  let store: SwiftStore;
  const need = (t: TestContext) => requireSwift(t) !== undefined;

  before(() => {
    if (env === undefined) return;
    store = createSwiftStore({
      auth: { type: 'tempauth', authUrl: env.authUrl, user: env.user, key: env.key },
      retry: { retries: 2, baseDelayMs: 50, maxDelayMs: 500, attemptTimeoutMs: 20_000 },
    });
  });

  after(async () => {
    if (env === undefined) return;
    for (const name of [container, ...created]) {
      try {
        for await (const entry of listAll(store, name)) if ('key' in entry) await store.delete(name, entry.key);
        await store.deleteContainer(name);
      } catch {
        // best effort
      }
    }
    await store.close();
  });

  it('creates, heads, labels, lists and deletes containers', async (t) => {
    if (!need(t)) return;
    assert.deepEqual(await store.createContainer(container, { labels: { owner: 'it', purpose: 'test run' } }), { created: true });
    assert.deepEqual(await store.createContainer(container), { created: false });
    const info = await store.headContainer(container);
    assert.equal(info.name, container);
    assert.equal(info.objectCount, 0);
    assert.equal(info.bytesUsed, 0);
    assert.equal(info.storagePolicy, 'Policy-0');
    assert.deepEqual(info.labels, { owner: 'it', purpose: 'test run' });

    await store.setLabels(container, { purpose: null, tier: 'gold' });
    assert.deepEqual(await store.getLabels(container), { owner: 'it', tier: 'gold' });
    assert.equal((await rejection(store.setLabels(container, { 'Bad Key': 'x' }))).code, 'InvalidArgument');

    // Labels given to createContainer on an existing container are set too.
    assert.deepEqual(await store.createContainer(container, { labels: { extra: 'yes' } }), { created: false });
    assert.deepEqual(await store.getLabels(container), { owner: 'it', tier: 'gold', extra: 'yes' });

    assert.ok((await store.listContainers('swiftfs-it-store-')).includes(container));
    assert.ok(!(await store.listContainers('swiftfs-it-store-zzz-nothing')).includes(container));

    const policyErr = await rejection(store.createContainer(`${container}-policy`, { storagePolicy: 'no-such-policy' }));
    assert.equal(policyErr.code, 'InvalidArgument');
    assert.match(policyErr.message, /unknown storage policy "no-such-policy" \(the cluster has: Policy-0/);
    const withPolicy = `${container}-p0`;
    created.push(withPolicy);
    assert.deepEqual(await store.createContainer(withPolicy, { storagePolicy: 'Policy-0' }), { created: true });
    assert.equal((await store.headContainer(withPolicy)).storagePolicy, 'Policy-0');

    await store.put(withPolicy, 'x', Buffer.from('x'));
    const conflict = await rejection(store.deleteContainer(withPolicy));
    assert.equal(conflict.code, 'Conflict');
    assert.match(conflict.message, /not empty/);
    await store.delete(withPolicy, 'x');
    await store.deleteContainer(withPolicy);
    await store.deleteContainer(withPolicy); // idempotent
    assert.equal((await rejection(store.headContainer(withPolicy))).code, 'NotFound');
    assert.equal((await rejection(store.getLabels(withPolicy))).code, 'NotFound');
  });

  it('puts, heads and gets objects with metadata; deletes idempotently', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const body = Buffer.from('hello, swift');
    const put = await store.put(container, 'obj/one', body, { metadata: { mtime: '1700000000', 'x-y': 'héllo wörld' }, contentType: 'text/plain' });
    assert.equal(put.etag, md5(body));
    const head = await store.head(container, 'obj/one');
    assert.equal(head.key, 'obj/one');
    assert.equal(head.size, body.length);
    assert.equal(head.etag, md5(body));
    assert.deepEqual(head.metadata, { mtime: '1700000000', 'x-y': 'héllo wörld' });
    assert.ok(head.lastModified instanceof Date && Math.abs(head.lastModified.getTime() - Date.now()) < 120_000);
    const got = await store.get(container, 'obj/one');
    assert.deepEqual(got.body, body);
    assert.deepEqual(got.info.metadata, head.metadata);

    // A put replaces the object, metadata included.
    await store.put(container, 'obj/one', Buffer.from('v2'));
    const replaced = await store.get(container, 'obj/one');
    assert.equal(replaced.body.toString(), 'v2');
    assert.deepEqual(replaced.info.metadata, {});

    await store.delete(container, 'obj/one');
    await store.delete(container, 'obj/one');
    assert.equal((await rejection(store.get(container, 'obj/one'))).code, 'NotFound');
    assert.equal((await rejection(store.head(container, 'obj/one'))).code, 'NotFound');
    assert.equal((await rejection(store.get(`${container}-missing`, 'k'))).code, 'NotFound');
    assert.equal((await rejection(store.put(`${container}-missing`, 'k', Buffer.from('x')))).code, 'NotFound');
  });

  it('streams puts (chunked and sized) and round-trips 3 MiB of random bytes', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const chunks = function* () {
      for (let i = 0; i < data.length; i += 65_536) yield data.subarray(i, i + 65_536);
    };
    const chunked = await store.put(container, 'stream/chunked', Readable.from(chunks()));
    assert.equal(chunked.etag, md5(data));
    const sized = await store.put(container, 'stream/sized', Readable.from(chunks()), { size: data.length, metadata: { kind: 'sized' } });
    assert.equal(sized.etag, md5(data));
    for (const key of ['stream/chunked', 'stream/sized']) {
      const got = await store.get(container, key);
      assert.equal(got.body.length, data.length);
      assert.ok(got.body.equals(data));
    }
    assert.deepEqual((await store.head(container, 'stream/sized')).metadata, { kind: 'sized' });
    const buffered = await store.put(container, 'stream/buffer', new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    assert.equal(buffered.etag, md5(data));
    const wrongSize = await rejection(store.put(container, 'stream/wrong', Readable.from([Buffer.from('abc')]), { size: 10 }));
    assert.ok(['InvalidArgument', 'Unavailable', 'Timeout'].includes(wrongSize.code), wrongSize.code);
    assert.equal((await rejection(store.head(container, 'stream/wrong'))).code, 'NotFound', 'a short stream must not create the object');
  });

  it('reads ranges at the edges', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const data = Buffer.from('0123456789abcdef');
    await store.put(container, 'range', data, { metadata: { m: 'v' } });
    const read = async (offset: number, length?: number) =>
      (await store.get(container, 'range', { range: length === undefined ? { offset } : { offset, length } })).body.toString();
    assert.equal(await read(0, 1), '0');
    assert.equal(await read(5, 3), '567');
    assert.equal(await read(15, 1), 'f');
    assert.equal(await read(10), 'abcdef');
    assert.equal(await read(12, 100), 'cdef');
    assert.equal(await read(0, 16), '0123456789abcdef');
    assert.equal(await read(16), '');
    assert.equal(await read(16, 4), '');
    assert.equal(await read(1000, 1), '');
    assert.equal(await read(3, 0), '');
    // Info still describes the whole object, even when the range is past the end (Swift's 416).
    const past = await store.get(container, 'range', { range: { offset: 99 } });
    assert.equal(past.info.size, 16);
    assert.equal(past.info.etag, md5(data));
    assert.deepEqual(past.info.metadata, { m: 'v' });
    const mid = await store.get(container, 'range', { range: { offset: 4, length: 4 } });
    assert.equal(mid.info.size, 16);

    await store.put(container, 'empty', Buffer.alloc(0));
    assert.equal((await store.get(container, 'empty')).body.length, 0);
    assert.equal((await store.get(container, 'empty', { range: { offset: 0, length: 10 } })).body.length, 0);
    assert.equal((await store.get(container, 'empty', { range: { offset: 0 } })).info.size, 0);
    assert.equal((await store.head(container, 'empty')).size, 0);
  });

  it('create-only put: 201 then PreconditionFailed; capabilities probed; no probe left behind', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const caps = await store.capabilities(container);
    assert.deepEqual(caps, { kind: 'swift', conditionalCreate: true, nativeLabels: true, maxObjectSize: 5368709122, maxKeyLength: 1024 });
    await store.put(container, 'once', Buffer.from('first'), { ifNoneMatch: '*' });
    const err = await rejection(store.put(container, 'once', Buffer.from('second'), { ifNoneMatch: '*' }));
    assert.equal(err.code, 'PreconditionFailed');
    assert.equal((await store.get(container, 'once')).body.toString(), 'first');
    const streamErr = await rejection(store.put(container, 'once', Readable.from([Buffer.from('third')]), { ifNoneMatch: '*' }));
    assert.equal(streamErr.code, 'PreconditionFailed');
    assert.equal((await store.get(container, 'once')).body.toString(), 'first');
    assert.deepEqual((await store.list(container, { prefix: '.swiftfs-probe/' })).objects, []);
    // Without a container: reuses a probed container's answer, or (fresh store) probes in a temporary container
    // that is removed afterwards.
    assert.equal((await store.capabilities()).conditionalCreate, true);
    const fresh = createSwiftStore({ auth: { type: 'tempauth', authUrl: env!.authUrl, user: env!.user, key: env!.key } });
    try {
      assert.equal((await fresh.capabilities()).conditionalCreate, true);
    } finally {
      await fresh.close();
    }
    assert.deepEqual(await store.listContainers('swiftfs-probe-'), []);
  });

  it('lists with pagination, prefixes and delimiters', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const keys = ['list/a', 'list/b', 'list/c/1', 'list/c/2', 'list/d', 'list/e/x', 'list/f'];
    await Promise.all(keys.map((k) => store.put(container, k, Buffer.from(k))));

    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await store.list(container, { prefix: 'list/', limit: 2, ...(after === undefined ? {} : { after }) });
      assert.ok(page.objects.length + page.prefixes.length <= 2);
      seen.push(...page.objects.map((o) => o.key));
      after = page.next;
      pages++;
    } while (after !== undefined);
    assert.deepEqual(seen, keys);
    assert.ok(pages >= 4);

    const top = await store.list(container, { prefix: 'list/', delimiter: '/' });
    assert.deepEqual(top.objects.map((o) => o.key), ['list/a', 'list/b', 'list/d', 'list/f']);
    assert.deepEqual(top.prefixes, ['list/c/', 'list/e/']);
    assert.equal(top.next, undefined);
    const first = top.objects[0] as ObjectInfo;
    assert.equal(first.size, 'list/a'.length);
    assert.equal(first.etag, md5('list/a'));
    assert.ok(first.lastModified instanceof Date && Math.abs(first.lastModified.getTime() - Date.now()) < 120_000);

    // Paging with a delimiter: a prefix as `after` skips everything under it.
    const entries: string[] = [];
    after = undefined;
    do {
      const page = await store.list(container, { prefix: 'list/', delimiter: '/', limit: 2, ...(after === undefined ? {} : { after }) });
      entries.push(...page.objects.map((o) => o.key), ...page.prefixes);
      after = page.next;
    } while (after !== undefined);
    assert.deepEqual(entries.sort(), ['list/a', 'list/b', 'list/c/', 'list/d', 'list/e/', 'list/f']);

    const walked: string[] = [];
    for await (const entry of listAll(store, container, { prefix: 'list/', delimiter: '/', limit: 3 })) walked.push('key' in entry ? entry.key : entry.prefix);
    assert.deepEqual(walked, ['list/a', 'list/b', 'list/c/', 'list/d', 'list/e/', 'list/f']);
  });

  it('round-trips awkward keys (spaces, unicode, ?, #, %, dot segments, 1024 bytes)', async (t) => {
    if (!need(t)) return;
    await store.createContainer(container);
    const keys = ['odd/with space', 'odd/ünïcödé/日本', 'odd/q?x=1&y=2', 'odd/hash#frag', 'odd/100%/x', 'odd/a/../b', 'odd/./c', 'odd/trailing/', 'odd/+plus', `odd/${'l'.repeat(1024 - 4)}`];
    for (const key of keys) await store.put(container, key, Buffer.from(key));
    for (const key of keys) assert.equal((await store.get(container, key)).body.toString(), key, key);
    const listed = (await store.list(container, { prefix: 'odd/' })).objects.map((o) => o.key);
    assert.deepEqual(listed, [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    const tooLong = await rejection(store.put(container, `odd/${'l'.repeat(1024)}`, Buffer.from('x')));
    assert.equal(tooLong.code, 'InvalidArgument');
  });

  it('wrong credentials: Auth, naming the user, never the key', async (t) => {
    if (!need(t)) return;
    const wrongKey = `wrong-${run}-key`;
    const bad = createSwiftStore({ auth: { type: 'tempauth', authUrl: env!.authUrl, user: env!.user, key: wrongKey }, retry: { retries: 0 } });
    try {
      const err = await rejection(bad.head(container, 'x'));
      assert.equal(err.code, 'Auth');
      assert.match(err.message, new RegExp(`authentication failed for user ${env!.user}`));
      assert.ok(!err.message.includes(wrongKey) && !String(err.stack).includes(wrongKey));
    } finally {
      await bad.close();
    }
  });
});
