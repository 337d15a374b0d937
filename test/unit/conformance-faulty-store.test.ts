// FaultyStore: with no faults scripted it passes the conformance suite (it is a transparent decorator); with
// faults it fails, hangs, delays and goes offline exactly as scripted, and counts every call.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StoreErrorCode } from '../../src/store/errors.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { retrying } from '../../src/store/retry.js';
import { expectStoreError, runConformance } from '../conformance/suite.js';

let counter = 0;
runConformance('faulty(memory) without faults', async () => ({
  store: new FaultyStore(new MemoryStore()),
  kind: 'memory',
  containerName: (purpose) => `faulty-${purpose}-${++counter}`,
}));

async function setup(options?: ConstructorParameters<typeof FaultyStore>[1]) {
  const inner = new MemoryStore();
  const store = new FaultyStore(inner, options);
  await inner.createContainer('c');
  await inner.put('c', 'k', Buffer.from('value'));
  return { inner, store };
}

describe('FaultyStore', () => {
  it('failNext: the next N calls of an op fail with the code, then calls pass', async () => {
    const { inner, store } = await setup();
    store.failNext('put', 2, StoreErrorCode.Unavailable);
    const first = await expectStoreError(store.put('c', 'a', Buffer.from('1')), StoreErrorCode.Unavailable);
    assert.equal(first.status, 503);
    assert.equal(first.retryable, true);
    await expectStoreError(store.put('c', 'a', Buffer.from('2')), StoreErrorCode.Unavailable);
    await expectStoreError(inner.head('c', 'a'), StoreErrorCode.NotFound); // nothing reached the inner store
    // Other ops are not affected.
    assert.equal((await store.get('c', 'k')).body.toString(), 'value');
    await store.put('c', 'a', Buffer.from('3'));
    assert.equal((await inner.get('c', 'a')).body.toString(), '3');
    assert.equal(store.calls('put'), 3);
    assert.equal(store.calls('get'), 1);
    assert.equal(store.calls(), 4);
    assert.deepEqual(
      store.callLog.map((r) => [r.op, r.outcome, r.injected]),
      [
        ['put', 'Unavailable', true],
        ['put', 'Unavailable', true],
        ['get', 'ok', false],
        ['put', 'ok', false],
      ],
    );
    assert.equal(store.pendingFaults, 0);
  });

  it("failNext with after: the call reaches the store, the caller still sees the failure (unknown outcome)", async () => {
    const { inner, store } = await setup();
    store.failNext('put', 1, StoreErrorCode.Timeout, { after: true });
    await expectStoreError(store.put('c', 'landed', Buffer.from('it is there')), StoreErrorCode.Timeout);
    assert.equal((await inner.get('c', 'landed')).body.toString(), 'it is there');
  });

  it('match limits a fault to some calls, and several ops or * can be scripted', async () => {
    const { store } = await setup();
    store.failNext('put', 1, StoreErrorCode.InsufficientStorage, { match: (call) => call.key?.startsWith('data/') === true });
    await store.put('c', 'journal/1', Buffer.from('j'));
    await expectStoreError(store.put('c', 'data/1', Buffer.from('d')), StoreErrorCode.InsufficientStorage);
    store.failNext(['get', 'head'], 2, StoreErrorCode.Throttled);
    await expectStoreError(store.head('c', 'k'), StoreErrorCode.Throttled);
    await expectStoreError(store.get('c', 'k'), StoreErrorCode.Throttled);
    await store.get('c', 'k');
    store.failNext('*', 1, StoreErrorCode.Forbidden);
    await expectStoreError(store.listContainers(), StoreErrorCode.Forbidden);
    await store.listContainers();
  });

  it('hangNext: hangs until the caller aborts (Aborted), until hangDeadlineMs (Timeout), or until released', async () => {
    const { store } = await setup({ hangDeadlineMs: 2_000 });
    store.hangNext('get', 2);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    let started = Date.now();
    await expectStoreError(store.get('c', 'k', { signal: controller.signal }), StoreErrorCode.Aborted);
    assert.ok(Date.now() - started < 1_500, 'the abort, not the deadline, ended the hang');
    const pending = store.get('c', 'k');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(store.hungCount, 1);
    store.releaseHung();
    assert.equal((await pending).body.toString(), 'value');
    assert.equal(store.hungCount, 0);
    const short = (await setup({ hangDeadlineMs: 150 })).store;
    short.hangNext('head', 1);
    started = Date.now();
    await expectStoreError(short.head('c', 'k'), StoreErrorCode.Timeout);
    const waited = Date.now() - started;
    assert.ok(waited >= 140 && waited < 5_000, `the deadline ended the hang after ${waited} ms`);
  });

  it('a hang without deadline or signal stays hung until released', async () => {
    const { store } = await setup();
    store.hangNext('list', 1);
    let settled = false;
    const pending = store.list('c').finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(settled, false);
    store.releaseHung();
    assert.equal((await pending).objects.length, 1);
  });

  it('addLatency delays calls of the op; abort during the delay gives Aborted', async () => {
    const { store } = await setup();
    store.addLatency('head', 80);
    let started = Date.now();
    await store.head('c', 'k');
    assert.ok(Date.now() - started >= 75);
    started = Date.now();
    await store.get('c', 'k');
    assert.ok(Date.now() - started < 60, 'get has no latency');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 10);
    await expectStoreError(store.head('c', 'k', { signal: controller.signal }), StoreErrorCode.Aborted);
  });

  it('goOffline / comeBack', async () => {
    const { store } = await setup();
    store.goOffline();
    await expectStoreError(store.get('c', 'k'), StoreErrorCode.Unavailable);
    await expectStoreError(store.put('c', 'x', Buffer.from('x')), StoreErrorCode.Unavailable);
    store.goOffline(StoreErrorCode.Timeout);
    await expectStoreError(store.list('c'), StoreErrorCode.Timeout);
    store.comeBack();
    assert.equal((await store.get('c', 'k')).body.toString(), 'value');
    await expectStoreError(store.head('c', 'x'), StoreErrorCode.NotFound);
  });

  it("works with retrying(): retryable injected failures are retried, others are not", async () => {
    const { store } = await setup();
    const policy = { retries: 3, baseDelayMs: 1, maxDelayMs: 2, attemptTimeoutMs: 1_000 };
    store.failNext('get', 2, StoreErrorCode.Unavailable);
    const result = await retrying(({ signal }) => store.get('c', 'k', { signal }), { policy, idempotent: true });
    assert.equal(result.body.toString(), 'value');
    assert.equal(store.calls('get'), 3);
    store.failNext('get', 1, StoreErrorCode.NotFound);
    await expectStoreError(retrying(({ signal }) => store.get('c', 'k', { signal }), { policy, idempotent: true }), StoreErrorCode.NotFound);
    assert.equal(store.calls('get'), 4);
    // A hang is bounded by the attempt deadline, then retried.
    store.hangNext('get', 1);
    const started = Date.now();
    const after = await retrying(({ signal }) => store.get('c', 'k', { signal }), { policy: { ...policy, attemptTimeoutMs: 100 }, idempotent: true });
    assert.equal(after.body.toString(), 'value');
    assert.ok(Date.now() - started >= 95);
  });

  it('clearFaults removes scripted faults and latency', async () => {
    const { store } = await setup();
    store.failNext('get', 5, StoreErrorCode.Unavailable).addLatency('*', 500).goOffline();
    assert.equal(store.pendingFaults, 5);
    store.clearFaults();
    const started = Date.now();
    await store.get('c', 'k');
    assert.ok(Date.now() - started < 100);
    assert.equal(store.pendingFaults, 0);
  });
});
