/**
 * The ObjectStore conformance suite: ONE set of node:test tests that every implementation (memory, Swift, S3)
 * must pass, checking the contract of src/store/object-store.ts operation by operation with its edge cases.
 *
 *   runConformance('swift', async () => ({ store, kind: 'swift', containerName: (p) => uniqueName(p) }));
 *
 * Every write is checked with a read afterwards (head/get/list/getLabels), so that nothing reported as success
 * can have silently not happened. Every failure is checked for its StoreError code. The suite creates its own
 * containers (unique names from the target) and deletes them, with their objects, at the end.
 */

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';
import { listAll, type Capabilities, type ListPage, type ObjectInfo, type ObjectStore } from '../../src/store/object-store.js';

export interface ConformanceTarget {
  store: ObjectStore;
  /** What capabilities().kind must say. */
  kind: Capabilities['kind'];
  /** A new, unique container name (valid as a Swift container and as an S3 bucket) for a purpose. */
  containerName(purpose: string): string;
  /** Strings that must never appear in an error message (credentials). */
  secrets?: string[];
  /**
   * A backend limitation known and explained elsewhere: create-only puts are honoured one at a time but not
   * atomically under concurrency (Swift 2.30: several concurrent PUTs with If-None-Match: * all get 201). The
   * contention test still runs and asserts; its failure is then reported as TODO with this text instead of
   * failing the run.
   */
  racyConditionalCreate?: string;
  /** Called once after the suite, after its containers are deleted (e.g. to close other handles). */
  dispose?(): Promise<void>;
}

export interface ConformanceOptions {
  /** Skip the whole suite with this message (e.g. no test server configured). */
  skip?: string | false;
  /** Per-test timeout in ms (default 60 s). */
  timeoutMs?: number;
}

const MiB = 1024 * 1024;

export function md5(data: Uint8Array): string {
  return createHash('md5').update(data).digest('hex');
}

/** Sorts keys in UTF-8 byte order (the order stores list in). */
export function byteOrder(keys: Iterable<string>): string[] {
  return [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
}

/** Awaits a promise that must reject with a StoreError of `code`; returns the error. */
export async function expectStoreError(promise: Promise<unknown>, code: StoreErrorCode, secrets: string[] = []): Promise<StoreError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (err) {
    assert.ok(err instanceof StoreError, `expected a StoreError ${code}, got ${String(err)}${err instanceof Error && err.stack ? `\n${err.stack}` : ''}`);
    assert.equal(err.code, code, `expected StoreError ${code}, got ${err.code}: ${err.message}`);
    for (const secret of secrets) assert.ok(!err.message.includes(secret), `a credential appears in the message: ${err.message}`);
    return err;
  }
  assert.fail(`expected StoreError ${code}, but the call succeeded with ${JSON.stringify(outcome)?.slice(0, 200)}`);
}

/** A stream of `data` in chunks of `chunkSize` bytes, from an async generator (optionally as a Readable). */
export function chunked(data: Buffer, chunkSize: number, asReadable = true): Readable | AsyncIterable<Uint8Array> {
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let offset = 0; offset < data.length; offset += chunkSize) {
      // Copies, so that nothing aliases the source buffer, and a yield point between chunks.
      yield new Uint8Array(data.subarray(offset, offset + chunkSize));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
  return asReadable ? Readable.from(chunks(), { objectMode: false }) : chunks();
}

export function runConformance(name: string, makeTarget: () => Promise<ConformanceTarget>, options: ConformanceOptions = {}): void {
  const timeout = options.timeoutMs ?? 60_000;
  describe(`ObjectStore conformance: ${name}`, { skip: options.skip || false, timeout: timeout * 40 }, () => {
    let target: ConformanceTarget;
    let store: ObjectStore;
    let box: string; // the shared container of the object tests
    let secrets: string[] = [];
    const created = new Set<string>();
    let counter = 0;
    /** A key prefix unique to one test. */
    const scope = (label: string) => `ct-${++counter}-${label}/`;

    const newContainer = async (purpose: string, labels?: Record<string, string>): Promise<string> => {
      const container = target.containerName(purpose);
      created.add(container);
      const result = await store.createContainer(container, labels ? { labels } : {});
      assert.equal(result.created, true, `createContainer(${container}) must report created: true for a new container`);
      return container;
    };

    /** Puts and checks with a head that the object is there with that size and MD5. */
    const putChecked = async (container: string, key: string, body: Buffer, metadata?: Record<string, string>) => {
      const result = await store.put(container, key, body, metadata ? { metadata } : {});
      if (result.etag !== undefined) assert.equal(result.etag, md5(body), `put(${key}) etag must be the body's MD5`);
      const info = await store.head(container, key);
      assert.equal(info.size, body.length, `head(${key}) after put: size`);
      if (info.etag !== undefined) assert.equal(info.etag, md5(body), `head(${key}) after put: etag`);
      return info;
    };

    const assertContent = async (container: string, key: string, expected: Buffer) => {
      const { body, info } = await store.get(container, key);
      assert.ok(Buffer.isBuffer(body), 'get() returns a Buffer');
      assert.equal(body.length, expected.length, `get(${key}): length`);
      assert.ok(body.equals(expected), `get(${key}): content differs`);
      assert.equal(info.size, expected.length, `get(${key}): info.size`);
      assert.equal(info.key, key);
      if (info.etag !== undefined) assert.equal(info.etag, md5(expected), `get(${key}): info.etag`);
    };

    const collectPages = async (container: string, opts: { prefix?: string; delimiter?: string; limit: number }) => {
      const entries: string[] = [];
      const pages: ListPage[] = [];
      let afterKey: string | undefined;
      for (let i = 0; i < 200; i++) {
        const page = await store.list(container, { ...opts, ...(afterKey === undefined ? {} : { after: afterKey }) });
        pages.push(page);
        const count = page.objects.length + page.prefixes.length;
        assert.ok(count <= opts.limit, `a page has ${count} entries, more than limit ${opts.limit}`);
        entries.push(...byteOrder([...page.objects.map((o) => o.key), ...page.prefixes]));
        if (page.next === undefined) return { entries, pages };
        assert.ok(afterKey === undefined || Buffer.compare(Buffer.from(page.next), Buffer.from(afterKey)) > 0, `next (${page.next}) must advance past ${afterKey}`);
        afterKey = page.next;
      }
      assert.fail('listing did not end within 200 pages');
    };

    before(async () => {
      target = await makeTarget();
      store = target.store;
      secrets = target.secrets ?? [];
      box = await newContainer('box');
    });

    after(async () => {
      if (!store) return;
      for (const container of created) {
        try {
          for await (const entry of listAll(store, container)) {
            if ('key' in entry) await store.delete(container, entry.key);
          }
          await store.deleteContainer(container);
        } catch (err) {
          if (!(err instanceof StoreError && err.code === StoreErrorCode.NotFound)) console.error(`conformance cleanup of ${container}: ${String(err)}`);
        }
      }
      await store.close();
      await target.dispose?.();
    });

    // ---- capabilities ---------------------------------------------------------------------------------------

    it('capabilities: kind, limits, and the same answer twice', { timeout }, async () => {
      const first = await store.capabilities(box);
      assert.equal(first.kind, target.kind);
      assert.equal(typeof first.conditionalCreate, 'boolean');
      assert.equal(typeof first.nativeLabels, 'boolean');
      assert.ok(first.maxKeyLength >= 1024, `maxKeyLength ${first.maxKeyLength} < 1024`);
      assert.ok(first.maxObjectSize >= 1024 * MiB, `maxObjectSize ${first.maxObjectSize} < 1 GiB`);
      const second = await store.capabilities(box);
      assert.deepEqual(second, first);
      assert.equal(typeof store.description, 'string');
      for (const secret of secrets) assert.ok(!store.description.includes(secret), 'the description contains a credential');
    });

    // ---- objects --------------------------------------------------------------------------------------------

    it('put then get and head: bytes, size, etag, lastModified', { timeout }, async () => {
      const key = `${scope('roundtrip')}object`;
      const body = randomBytes(1000);
      const before = Date.now();
      await putChecked(box, key, body);
      await assertContent(box, key, body);
      const info = await store.head(box, key);
      assert.equal(info.key, key);
      if (info.lastModified !== undefined) {
        assert.ok(info.lastModified instanceof Date && !Number.isNaN(info.lastModified.getTime()));
        // Servers keep whole seconds; allow clock granularity.
        assert.ok(Math.abs(info.lastModified.getTime() - before) < 120_000, `lastModified ${info.lastModified.toISOString()} is far from now`);
      }
    });

    it('put replaces an existing object, with its metadata', { timeout }, async () => {
      const key = `${scope('replace')}object`;
      await putChecked(box, key, Buffer.from('first version, longer'), { version: '1' });
      const second = Buffer.from('second');
      await putChecked(box, key, second);
      await assertContent(box, key, second);
      const info = await store.head(box, key);
      assert.deepEqual(info.metadata ?? {}, {}, 'a put without metadata leaves none of the old metadata');
    });

    it('empty objects: buffer and stream bodies', { timeout }, async () => {
      const prefix = scope('empty');
      await putChecked(box, `${prefix}buffer`, Buffer.alloc(0));
      await assertContent(box, `${prefix}buffer`, Buffer.alloc(0));
      await store.put(box, `${prefix}stream`, Readable.from([]));
      assert.equal((await store.head(box, `${prefix}stream`)).size, 0);
      await assertContent(box, `${prefix}stream`, Buffer.alloc(0));
      await store.put(box, `${prefix}sized-stream`, Readable.from([]), { size: 0 });
      await assertContent(box, `${prefix}sized-stream`, Buffer.alloc(0));
      const range = await store.get(box, `${prefix}buffer`, { range: { offset: 0, length: 10 } });
      assert.equal(range.body.length, 0);
      assert.equal(range.info.size, 0);
    });

    it('metadata round trip through head and get', { timeout }, async () => {
      const key = `${scope('meta')}object`;
      const metadata = { color: 'blue', 'x-multi-part': 'a b  c', n: '42', empty: '' };
      await putChecked(box, key, Buffer.from('m'), metadata);
      const expected = { color: 'blue', 'x-multi-part': 'a b  c', n: '42' };
      const headMeta = { ...(await store.head(box, key)).metadata };
      const getMeta = { ...(await store.get(box, key)).info.metadata };
      // An empty value may be dropped by HTTP backends; every other value must come back exactly.
      for (const meta of [headMeta, getMeta]) {
        if (meta.empty !== undefined) assert.equal(meta.empty, '');
        delete meta.empty;
        assert.deepEqual(meta, expected);
      }
    });

    it('keys with spaces, unicode, reserved URL characters and slashes', { timeout }, async () => {
      const prefix = scope('keys');
      const names = [
        'with space',
        'ünïcødé/日本語/ファイル',
        'a/b/c',
        'percent%20sign%',
        'plus+sign',
        'question?mark',
        'hash#tag',
        'amp&eq=semi;colon',
        'tilde~star*quote\'',
        'trailing/',
        'double//slash',
        'emoji-\u{1F600}',
        'tab\tchar',
        '(parens)[brackets]{braces}',
        'back\\slash',
        '"double quotes"',
        '<angle>',
        'comma,colon:at@dollar$excl!',
      ];
      for (const name of names) {
        const key = prefix + name;
        const body = Buffer.from(`content of ${name}`, 'utf8');
        await putChecked(box, key, body);
        await assertContent(box, key, body);
        const page = await store.list(box, { prefix: key });
        assert.ok(page.objects.some((o) => o.key === key), `list(prefix=${JSON.stringify(key)}) must show the key`);
      }
      const listed = (await store.list(box, { prefix })).objects.map((o) => o.key);
      assert.deepEqual(listed, byteOrder(names.map((n) => prefix + n)));
      for (const name of names) {
        await store.delete(box, prefix + name);
        await expectStoreError(store.head(box, prefix + name), StoreErrorCode.NotFound);
      }
    });

    it('keys with dot segments are not normalised away', { timeout }, async () => {
      const prefix = scope('dots');
      const names = ['./here', 'a/../b', 'a/./b', '..', '.', 'x/..', 'x/.'];
      for (const name of names) {
        const key = prefix + name;
        const body = Buffer.from(`dot ${name}`);
        await putChecked(box, key, body);
        await assertContent(box, key, body);
      }
      const listed = (await store.list(box, { prefix })).objects.map((o) => o.key);
      assert.deepEqual(listed, byteOrder(names.map((n) => prefix + n)), 'every dotted key must exist under its own name');
    });

    it('longest key: 1024 bytes works, 1025 bytes is InvalidArgument', { timeout }, async () => {
      const prefix = scope('long');
      const longest = prefix + 'k'.repeat(1024 - Buffer.byteLength(prefix));
      await putChecked(box, longest, Buffer.from('long'));
      await assertContent(box, longest, Buffer.from('long'));
      assert.ok((await store.list(box, { prefix })).objects.some((o) => o.key === longest));
      const tooLong = `${longest}x`;
      await expectStoreError(store.put(box, tooLong, Buffer.from('x')), StoreErrorCode.InvalidArgument, secrets);
      const headError: unknown = await store.head(box, tooLong).then(() => undefined, (err: unknown) => err);
      assert.ok(
        headError instanceof StoreError && (headError.code === StoreErrorCode.NotFound || headError.code === StoreErrorCode.InvalidArgument),
        `head of a too-long key: NotFound or InvalidArgument, got ${String(headError)}`,
      );
      assert.ok(!(await store.list(box, { prefix })).objects.some((o) => o.key === tooLong));
    });

    it('ranged gets: inside, at the edges, clipped, and past the end', { timeout }, async () => {
      const key = `${scope('range')}object`;
      const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      await putChecked(box, key, data);
      const cases: { offset: number; length?: number; expect: [number, number] }[] = [
        { offset: 0, length: 1, expect: [0, 1] },
        { offset: 10, length: 20, expect: [10, 30] },
        { offset: 99, length: 1, expect: [99, 100] },
        { offset: 99, length: 10, expect: [99, 100] },
        { offset: 90, expect: [90, 100] },
        { offset: 0, expect: [0, 100] },
        { offset: 0, length: 100, expect: [0, 100] },
        { offset: 0, length: 1000, expect: [0, 100] },
        { offset: 5, length: 0, expect: [5, 5] },
        { offset: 100, length: 5, expect: [100, 100] },
        { offset: 100, expect: [100, 100] },
        { offset: 150, length: 10, expect: [100, 100] },
      ];
      for (const c of cases) {
        const range = c.length === undefined ? { offset: c.offset } : { offset: c.offset, length: c.length };
        const { body, info } = await store.get(box, key, { range });
        const expected = data.subarray(c.expect[0], c.expect[1]);
        assert.ok(body.equals(expected), `range ${JSON.stringify(range)}: got ${body.length} bytes [${body.subarray(0, 4).join(',')}...], expected ${expected.length}`);
        assert.equal(info.size, 100, `range ${JSON.stringify(range)}: info.size must be the object's size`);
        if (info.etag !== undefined) assert.equal(info.etag, md5(data), `range ${JSON.stringify(range)}: info.etag is the object's`);
      }
      await expectStoreError(store.get(box, `${key}-missing`, { range: { offset: 0, length: 10 } }), StoreErrorCode.NotFound);
      await expectStoreError(store.get(box, `${key}-missing`, { range: { offset: 500 } }), StoreErrorCode.NotFound);
    });

    it('a missing object or container is NotFound for get, head and list', { timeout }, async () => {
      const key = `${scope('missing')}nothing`;
      await expectStoreError(store.get(box, key), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.head(box, key), StoreErrorCode.NotFound, secrets);
      const absent = target.containerName('absent');
      await expectStoreError(store.get(absent, key), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.head(absent, key), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.list(absent), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.put(absent, key, Buffer.from('x')), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.headContainer(absent), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.getLabels(absent), StoreErrorCode.NotFound, secrets);
      await expectStoreError(store.setLabels(absent, { a: 'b' }), StoreErrorCode.NotFound, secrets);
      assert.ok(!(await store.listContainers(absent)).includes(absent), 'nothing created the missing container');
    });

    it('delete is idempotent and really deletes', { timeout }, async () => {
      const prefix = scope('delete');
      await putChecked(box, `${prefix}x`, Buffer.from('x'));
      await store.delete(box, `${prefix}x`);
      await expectStoreError(store.head(box, `${prefix}x`), StoreErrorCode.NotFound);
      await expectStoreError(store.get(box, `${prefix}x`), StoreErrorCode.NotFound);
      assert.deepEqual((await store.list(box, { prefix })).objects, []);
      await store.delete(box, `${prefix}x`);
      await store.delete(box, `${prefix}never-existed`);
    });

    it('buffers are copied: the caller cannot change stored data, Uint8Array views are respected', { timeout }, async () => {
      const prefix = scope('copy');
      const body = Buffer.from('original content');
      await store.put(box, `${prefix}a`, body);
      body.fill(0x21);
      await assertContent(box, `${prefix}a`, Buffer.from('original content'));
      const got = await store.get(box, `${prefix}a`);
      got.body.fill(0x22);
      await assertContent(box, `${prefix}a`, Buffer.from('original content'));
      // A view into a larger buffer: only its own bytes are the body.
      const backing = Buffer.from('XXXinside-the-viewYYY');
      await putChecked(box, `${prefix}view`, backing.subarray(3, 18));
      await assertContent(box, `${prefix}view`, Buffer.from('inside-the-view'));
      const plain = new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 4);
      await store.put(box, `${prefix}u8`, plain);
      await assertContent(box, `${prefix}u8`, Buffer.from([2, 3, 4]));
    });

    it('streaming puts larger than one chunk: Readable and AsyncIterable, with and without size', { timeout: timeout * 2 }, async () => {
      const prefix = scope('stream');
      const small = randomBytes(3 * MiB + 123);
      await store.put(box, `${prefix}sized`, chunked(small, 64 * 1024), { size: small.length });
      await assertContent(box, `${prefix}sized`, small);
      await store.put(box, `${prefix}unsized`, chunked(small, 64 * 1024));
      await assertContent(box, `${prefix}unsized`, small);
      await store.put(box, `${prefix}iterable`, chunked(small, 100_000, false));
      await assertContent(box, `${prefix}iterable`, small);
      // Larger than any single-request buffering a store may do (S3: multipart), with ranges across parts.
      const big = randomBytes(12 * MiB + 7);
      const result = await store.put(box, `${prefix}big`, chunked(big, 256 * 1024), { metadata: { kind: 'big' } });
      if (result.etag !== undefined) assert.equal(result.etag, md5(big));
      const info = await store.head(box, `${prefix}big`);
      assert.equal(info.size, big.length);
      assert.deepEqual(info.metadata, { kind: 'big' });
      await assertContent(box, `${prefix}big`, big);
      for (const offset of [8 * MiB - 10, 5 * MiB - 1, big.length - 3]) {
        const { body } = await store.get(box, `${prefix}big`, { range: { offset, length: 20 } });
        assert.ok(body.equals(big.subarray(offset, offset + 20)), `range at ${offset}`);
      }
    });

    it('a stream whose length differs from size is rejected, and nothing is stored', { timeout }, async () => {
      const prefix = scope('badsize');
      const data = randomBytes(10_000);
      for (const [name, size] of [['short', 20_000], ['long', 5_000]] as const) {
        let failed: unknown;
        await store.put(box, `${prefix}${name}`, chunked(data, 1000), { size }).catch((err: unknown) => {
          failed = err;
        });
        assert.ok(failed instanceof StoreError, `a body of 10000 bytes with size ${size} must reject with a StoreError, got ${String(failed)}`);
        await expectStoreError(store.head(box, `${prefix}${name}`), StoreErrorCode.NotFound);
      }
    });

    it('create-only put: the first wins, the second is PreconditionFailed (or NotSupported, writing nothing)', { timeout }, async () => {
      const prefix = scope('create-only');
      const caps = await store.capabilities(box);
      const first = Buffer.from('first writer');
      const second = Buffer.from('second writer, different');
      if (caps.conditionalCreate) {
        const result = await store.put(box, `${prefix}k`, first, { ifNoneMatch: '*' });
        if (result.etag !== undefined) assert.equal(result.etag, md5(first));
        await assertContent(box, `${prefix}k`, first);
        await expectStoreError(store.put(box, `${prefix}k`, second, { ifNoneMatch: '*' }), StoreErrorCode.PreconditionFailed, secrets);
        await expectStoreError(store.put(box, `${prefix}k`, chunked(second, 5), { ifNoneMatch: '*' }), StoreErrorCode.PreconditionFailed, secrets);
        await assertContent(box, `${prefix}k`, first);
        // A stream body can also create.
        await store.put(box, `${prefix}s`, chunked(first, 4), { ifNoneMatch: '*' });
        await assertContent(box, `${prefix}s`, first);
      } else {
        await expectStoreError(store.put(box, `${prefix}k`, first, { ifNoneMatch: '*' }), StoreErrorCode.NotSupported, secrets);
        await expectStoreError(store.head(box, `${prefix}k`), StoreErrorCode.NotFound);
        await putChecked(box, `${prefix}k`, first);
        await expectStoreError(store.put(box, `${prefix}k`, second, { ifNoneMatch: '*' }), StoreErrorCode.NotSupported, secrets);
        await expectStoreError(store.put(box, `${prefix}k`, chunked(second, 5), { ifNoneMatch: '*' }), StoreErrorCode.NotSupported, secrets);
        await assertContent(box, `${prefix}k`, first);
      }
    });

    it('create-only put under contention: exactly one of concurrent writers wins', { timeout: timeout * 2 }, async (t) => {
      const caps = await store.capabilities(box);
      if (!caps.conditionalCreate) {
        t.skip('the store does not support create-only puts');
        return;
      }
      const prefix = scope('race');
      const writers = 8;
      for (let round = 0; round < 6; round++) {
        const key = `${prefix}segment-${round}`;
        const bodies = Array.from({ length: writers }, (_, i) => Buffer.from(`writer ${i} of round ${round} `.repeat(1 + (i % 3) * 200)));
        const outcomes = await Promise.allSettled(bodies.map((body) => store.put(box, key, body, { ifNoneMatch: '*' })));
        const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
        for (const o of outcomes) {
          if (o.status === 'rejected') {
            assert.ok(o.reason instanceof StoreError && o.reason.code === StoreErrorCode.PreconditionFailed, `a losing writer must get PreconditionFailed, got ${String(o.reason)}`);
          }
        }
        if (winners.length !== 1 && target.racyConditionalCreate) {
          t.todo(`${target.racyConditionalCreate}: round ${round}, ${winners.length} of ${writers} concurrent writers were told they created ${key}`);
          return;
        }
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} writers were told they created ${key} (writers ${winners.join(', ')})`);
        await assertContent(box, key, bodies[winners[0]!]!);
      }
    });

    it('a caller signal that has already fired gives Aborted, and a put writes nothing', { timeout }, async () => {
      const prefix = scope('abort');
      const controller = new AbortController();
      controller.abort();
      const signal = controller.signal;
      await putChecked(box, `${prefix}exists`, Buffer.from('e'));
      await expectStoreError(store.get(box, `${prefix}exists`, { signal }), StoreErrorCode.Aborted);
      await expectStoreError(store.head(box, `${prefix}exists`, { signal }), StoreErrorCode.Aborted);
      await expectStoreError(store.list(box, { prefix, signal }), StoreErrorCode.Aborted);
      await expectStoreError(store.delete(box, `${prefix}exists`, { signal }), StoreErrorCode.Aborted);
      await expectStoreError(store.put(box, `${prefix}new`, Buffer.from('n'), { signal }), StoreErrorCode.Aborted);
      await store.head(box, `${prefix}exists`);
      await expectStoreError(store.head(box, `${prefix}new`), StoreErrorCode.NotFound);
    });

    // ---- listing --------------------------------------------------------------------------------------------

    describe('listing', () => {
      let prefix: string;
      // '~' (7e) < 'ü' (c3 bc) < U+FF5E (ef bd 9e) < U+1F600 (f0 9f 98 80) in bytes; JavaScript's UTF-16 order
      // puts U+1F600 (d83d) before U+FF5E.
      const names = ['a', 'b', 'b/1', 'b/2', 'b/sub/deep', 'c d', 'c/x/y', 'e', '~', 'ü', '\uFF5E', '\u{1F600}', 'z/'];
      let expected: string[];

      before(async () => {
        prefix = scope('list');
        for (const name of names) await store.put(box, prefix + name, Buffer.from(name, 'utf8'));
        expected = byteOrder(names.map((n) => prefix + n));
      });

      it('lists every key under a prefix in byte order, with sizes and etags', { timeout }, async () => {
        const page = await store.list(box, { prefix });
        assert.deepEqual(page.objects.map((o) => o.key), expected);
        assert.deepEqual(page.prefixes, []);
        assert.equal(page.next, undefined);
        for (const object of page.objects) {
          const name = object.key.slice(prefix.length);
          assert.equal(object.size, Buffer.byteLength(name, 'utf8'), `size of ${name}`);
          if (object.etag !== undefined) assert.equal(object.etag, md5(Buffer.from(name, 'utf8')), `etag of ${name}`);
        }
      });

      it('delimiter: common prefixes end with it, objects stay', { timeout }, async () => {
        const page = await store.list(box, { prefix, delimiter: '/' });
        assert.deepEqual(page.objects.map((o) => o.key), byteOrder(['a', 'b', 'c d', 'e', '~', 'ü', '\uFF5E', '\u{1F600}'].map((n) => prefix + n)));
        assert.deepEqual(page.prefixes, [`${prefix}b/`, `${prefix}c/`, `${prefix}z/`]);
        const sub = await store.list(box, { prefix: `${prefix}b/`, delimiter: '/' });
        assert.deepEqual(sub.objects.map((o) => o.key), [`${prefix}b/1`, `${prefix}b/2`]);
        assert.deepEqual(sub.prefixes, [`${prefix}b/sub/`]);
        const partial = await store.list(box, { prefix: `${prefix}c`, delimiter: '/' });
        assert.deepEqual(partial.objects.map((o) => o.key), [`${prefix}c d`]);
        assert.deepEqual(partial.prefixes, [`${prefix}c/`]);
        const trailing = await store.list(box, { prefix: `${prefix}z/`, delimiter: '/' });
        assert.deepEqual(trailing.objects.map((o) => o.key), [`${prefix}z/`]);
        assert.deepEqual(trailing.prefixes, []);
      });

      it('pagination with small limits returns everything once, in order', { timeout: timeout * 2 }, async () => {
        for (const limit of [1, 2, 3, 5]) {
          const flat = await collectPages(box, { prefix, limit });
          assert.deepEqual(flat.entries, expected, `limit ${limit}: flat listing`);
          const grouped = await collectPages(box, { prefix, delimiter: '/', limit });
          const expectedGrouped = byteOrder([...['a', 'b', 'c d', 'e', '~', 'ü', '\uFF5E', '\u{1F600}'].map((n) => prefix + n), `${prefix}b/`, `${prefix}c/`, `${prefix}z/`]);
          assert.deepEqual(grouped.entries, expectedGrouped, `limit ${limit}: listing with delimiter`);
          assert.ok(flat.pages.length >= Math.ceil(expected.length / limit), `limit ${limit}: too few pages`);
        }
      });

      it('after: keys strictly after it, whether or not it exists', { timeout }, async () => {
        const page = await store.list(box, { prefix, after: `${prefix}b` });
        assert.deepEqual(page.objects.map((o) => o.key), expected.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(`${prefix}b`)) > 0));
        const between = await store.list(box, { prefix, after: `${prefix}bb` });
        assert.deepEqual(between.objects.map((o) => o.key), expected.filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(`${prefix}bb`)) > 0));
        const last = await store.list(box, { prefix, after: expected[expected.length - 1]! });
        assert.deepEqual(last.objects, []);
        assert.equal(last.next, undefined);
      });

      it('an empty prefix match, and a limit larger than the listing', { timeout }, async () => {
        const none = await store.list(box, { prefix: `${prefix}nothing-here` });
        assert.deepEqual(none, { objects: [], prefixes: [] });
        const all = await store.list(box, { prefix, limit: 5000 });
        assert.deepEqual(all.objects.map((o) => o.key), expected);
        assert.equal(all.next, undefined);
      });

      it('listAll (object-store.ts) walks every page in byte order', { timeout }, async () => {
        for (const limit of [4, 1000]) {
          const keys: string[] = [];
          for await (const entry of listAll(store, box, { prefix, limit })) keys.push('key' in entry ? entry.key : entry.prefix);
          assert.deepEqual(keys, expected, `listAll with limit ${limit}`);
        }
      });
    });

    // ---- containers -----------------------------------------------------------------------------------------

    it('containers: create twice, head, list, delete when empty, Conflict when not', { timeout }, async () => {
      const name = await newContainer('life');
      const again = await store.createContainer(name);
      assert.equal(again.created, false, 'creating an existing container reports created: false');
      const info = await store.headContainer(name);
      assert.equal(info.name, name);
      assert.deepEqual(info.labels, {});
      if (info.objectCount !== undefined) assert.equal(info.objectCount, 0);
      assert.ok((await store.listContainers(name)).includes(name), 'listContainers(prefix) shows the new container');
      await putChecked(name, 'one', Buffer.from('123'));
      await putChecked(name, 'dir/two', Buffer.from('45678'));
      const filled = await store.headContainer(name);
      if (filled.objectCount !== undefined) assert.equal(filled.objectCount, 2);
      if (filled.bytesUsed !== undefined) assert.equal(filled.bytesUsed, 8);
      await expectStoreError(store.deleteContainer(name), StoreErrorCode.Conflict, secrets);
      await assertContent(name, 'one', Buffer.from('123'));
      await store.delete(name, 'one');
      await expectStoreError(store.deleteContainer(name), StoreErrorCode.Conflict, secrets);
      await store.delete(name, 'dir/two');
      await store.deleteContainer(name);
      await expectStoreError(store.headContainer(name), StoreErrorCode.NotFound);
      await expectStoreError(store.list(name), StoreErrorCode.NotFound);
      assert.ok(!(await store.listContainers(name)).includes(name), 'a deleted container is not listed');
      await store.deleteContainer(name);
    });

    it('listContainers: by prefix, in order', { timeout }, async () => {
      const base = target.containerName('order');
      const names = [`${base}-b`, `${base}-a`, `${base}-c`];
      for (const n of names) {
        created.add(n);
        assert.equal((await store.createContainer(n)).created, true);
      }
      assert.deepEqual(await store.listContainers(base), [...names].sort());
      assert.deepEqual(await store.listContainers(`${base}-a`), [`${base}-a`]);
      for (const n of names) await store.deleteContainer(n);
      assert.deepEqual(await store.listContainers(base), []);
    });

    it('labels: set at creation, merged, removed with null, kept apart from objects', { timeout }, async () => {
      const name = await newContainer('labels', { volume: 'v1', 'format-1': 'two words' });
      assert.deepEqual(await store.getLabels(name), { volume: 'v1', 'format-1': 'two words' });
      assert.deepEqual((await store.headContainer(name)).labels, { volume: 'v1', 'format-1': 'two words' });
      await store.setLabels(name, { owner: 'host-a' });
      assert.deepEqual(await store.getLabels(name), { volume: 'v1', 'format-1': 'two words', owner: 'host-a' });
      await store.setLabels(name, { volume: null, owner: 'host-b' });
      assert.deepEqual(await store.getLabels(name), { 'format-1': 'two words', owner: 'host-b' });
      const long = `${'x'.repeat(200)} ~!@#$%^&*()_+{}|:"<>?`.slice(0, 256);
      await store.setLabels(name, { long });
      assert.equal((await store.getLabels(name)).long, long);
      const again = await store.createContainer(name, { labels: { added: 'later' } });
      assert.equal(again.created, false);
      assert.deepEqual(await store.getLabels(name), { 'format-1': 'two words', owner: 'host-b', long, added: 'later' });
      // Labels are not objects: the container lists empty.
      const listing = await store.list(name);
      assert.deepEqual(listing.objects, [], 'labels must not show up as objects');
      await store.setLabels(name, { 'format-1': null, owner: null, long: null, added: null });
      assert.deepEqual(await store.getLabels(name), {});
      await store.setLabels(name, { last: 'one' });
      // A container with only labels is empty: it can be deleted.
      await store.deleteContainer(name);
      await expectStoreError(store.headContainer(name), StoreErrorCode.NotFound);
      await expectStoreError(store.getLabels(name), StoreErrorCode.NotFound);
    });

    it('labels: invalid keys and values are InvalidArgument and change nothing', { timeout }, async () => {
      const name = await newContainer('badlabels', { good: 'yes' });
      await expectStoreError(store.setLabels(name, { Bad_Key: 'x' }), StoreErrorCode.InvalidArgument);
      await expectStoreError(store.setLabels(name, { fine: 'x', 'also fine': 'y' }), StoreErrorCode.InvalidArgument);
      await expectStoreError(store.setLabels(name, { fine: 'é' }), StoreErrorCode.InvalidArgument);
      await expectStoreError(store.setLabels(name, { fine: 'x'.repeat(257) }), StoreErrorCode.InvalidArgument);
      const other = target.containerName('badlabels2');
      created.add(other);
      await expectStoreError(store.createContainer(other, { labels: { UPPER: 'x' } }), StoreErrorCode.InvalidArgument);
      await expectStoreError(store.headContainer(other), StoreErrorCode.NotFound);
      assert.deepEqual(await store.getLabels(name), { good: 'yes' });
    });
  });
}
