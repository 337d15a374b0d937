// The conformance suite against MemoryStore (with and without conditional create), plus what only the memory
// store has: simulated latency, its stricter checks, close().

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';
import { compareUtf8, MemoryStore } from '../../src/store/memory-store.js';
import { chunked, expectStoreError, runConformance } from '../conformance/suite.js';

let counter = 0;
const containerName = (purpose: string) => `mem-${purpose}-${++counter}`;

runConformance('memory', async () => ({ store: new MemoryStore(), kind: 'memory', containerName }));
runConformance('memory without conditional create', async () => ({ store: new MemoryStore({ conditionalCreate: false }), kind: 'memory', containerName }));
runConformance('memory with latency', async () => ({ store: new MemoryStore({ latencyMs: 1 }), kind: 'memory', containerName }));

describe('MemoryStore specifics', () => {
  it('compareUtf8 orders by bytes, not UTF-16 code units', () => {
    assert.ok(compareUtf8('\uFF5E', '\u{1F600}') < 0);
    assert.ok('\uFF5E' > '\u{1F600}', 'JavaScript order differs (the reason compareUtf8 exists)');
    assert.ok(compareUtf8('a', 'a/') < 0);
    assert.equal(compareUtf8('x', 'x'), 0);
  });

  it('latency delays each call, and an abort during it gives Aborted quickly', async () => {
    const store = new MemoryStore({ latencyMs: (op) => (op === 'get' ? 3_000 : 20) });
    await store.createContainer('c');
    await store.put('c', 'k', Buffer.from('v'));
    let started = Date.now();
    await store.head('c', 'k');
    assert.ok(Date.now() - started >= 15, 'head waited for its latency');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    started = Date.now();
    await expectStoreError(store.get('c', 'k', { signal: controller.signal }), StoreErrorCode.Aborted);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 2_000, `the abort took ${elapsed} ms to take effect (the latency was 3 s)`);
  });

  it('a put aborted during its latency stores nothing', async () => {
    const store = new MemoryStore({ latencyMs: 100 });
    await store.createContainer('c');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 10);
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { signal: controller.signal }), StoreErrorCode.Aborted);
    await expectStoreError(store.head('c', 'k'), StoreErrorCode.NotFound);
  });

  it('rejects what real backends would silently change: metadata keys, values, size', async () => {
    const store = new MemoryStore();
    await store.createContainer('c');
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { metadata: { Upper: 'x' } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { metadata: { ok: ' padded' } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { metadata: { ok: 'naïve' } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { metadata: { big: 'x'.repeat(2100) } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('c', '', Buffer.from('v')), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('c', 'k', Buffer.from('v'), { ifNoneMatch: 'etag' as '*' }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.createContainer('a/b'), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.get('c', 'k', { range: { offset: -1 } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.list('c', { limit: 0 }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.head('c', 'k'), StoreErrorCode.NotFound);
  });

  it('maxObjectSize: bodies over it are TooLarge, buffer or stream', async () => {
    const store = new MemoryStore({ maxObjectSize: 1000 });
    await store.createContainer('c');
    await store.put('c', 'ok', Buffer.alloc(1000));
    await expectStoreError(store.put('c', 'big', Buffer.alloc(1001)), StoreErrorCode.TooLarge);
    await expectStoreError(store.put('c', 'big', chunked(Buffer.alloc(5000), 100)), StoreErrorCode.TooLarge);
    await expectStoreError(store.head('c', 'big'), StoreErrorCode.NotFound);
    assert.equal((await store.capabilities()).maxObjectSize, 1000);
  });

  it('a failing body stream rejects with a StoreError and stores nothing', async () => {
    const store = new MemoryStore();
    await store.createContainer('c');
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array([1, 2, 3]);
      throw new Error('disk read failed');
    }
    const err = await expectStoreError(store.put('c', 'k', broken()), StoreErrorCode.Internal);
    assert.match(String((err.cause as Error).message), /disk read failed/);
    await expectStoreError(store.head('c', 'k'), StoreErrorCode.NotFound);
  });

  it('storage policy: kept, and a different one for an existing container is a Conflict', async () => {
    const store = new MemoryStore();
    await store.createContainer('c', { storagePolicy: 'gold' });
    assert.equal((await store.headContainer('c')).storagePolicy, 'gold');
    assert.deepEqual(await store.createContainer('c', { storagePolicy: 'gold' }), { created: false });
    await expectStoreError(store.createContainer('c', { storagePolicy: 'silver' }), StoreErrorCode.Conflict);
  });

  it('after close() every call rejects with a StoreError', async () => {
    const store = new MemoryStore();
    await store.createContainer('c');
    await store.close();
    const err = await store.head('c', 'k').catch((e: unknown) => e);
    assert.ok(err instanceof StoreError);
    assert.equal(err.code, StoreErrorCode.Internal);
  });

  it('list: a page ends exactly at limit, and next is only set when more entries follow', async () => {
    const store = new MemoryStore();
    await store.createContainer('c');
    for (const k of ['a', 'b', 'c']) await store.put('c', k, Buffer.from(k));
    const exact = await store.list('c', { limit: 3 });
    assert.equal(exact.objects.length, 3);
    assert.equal(exact.next, undefined);
    const first = await store.list('c', { limit: 2 });
    assert.equal(first.next, 'b');
    const grouped = await store.list('c', { limit: 1, delimiter: '/', prefix: '' });
    assert.equal(grouped.next, 'a');
  });
});
