// Unhappy paths of S3Store against the S3 API of the real test Swift, through a FaultProxy: a server that never
// answers, 503s, resets, a stopped server, wrong credentials, a missing bucket, an unsupported create-only put,
// a caller's abort. Every error case asserts the StoreError code AND how long it took.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { StoreErrorCode } from '../../src/store/errors.js';
import { createS3Store, type S3Store, type S3StoreOptions } from '../../src/store/s3/s3-store.js';
import { chunked, expectStoreError } from '../conformance/suite.js';
import { closedPort, FaultProxy } from '../helpers/fault-proxy.js';
import { uniqueName } from '../helpers/saio.js';
import { assertWithin, storeFaultsFixture, timed } from '../helpers/store-faults.js';
import { readSwiftEnv, requireSwift } from '../helpers/swift-env.js';

const swift = readSwiftEnv('A');

it('a test Swift (S3 API) is configured', (t) => {
  requireSwift(t, 'A');
});

describe('S3Store faults (Swift s3api)', { skip: swift ? false : 'no test Swift configured (SWIFTFS_TEST_ST_AUTH unset)', timeout: 300_000 }, () => {
  const makeStore = (endpoint: string, overrides: Partial<S3StoreOptions> = {}): S3Store =>
    createS3Store({
      endpoint,
      accessKeyId: swift!.s3AccessKey,
      secretAccessKey: swift!.s3Secret,
      requestTimeoutMs: 1_000,
      retry: { retries: 2, baseDelayMs: 20, maxDelayMs: 100 },
      ...overrides,
    });
  const fixture = storeFaultsFixture({ upstream: () => swift!.s3Endpoint, makeDirect: () => makeStore(swift!.s3Endpoint, { requestTimeoutMs: 20_000 }), prefix: 'faults-s3' });
  let proxy: FaultProxy;
  let direct: S3Store;
  let bucket: string;
  before(() => {
    ({ proxy, direct, container: bucket } = fixture);
  });
  const storeVia = (endpoint: string, overrides: Partial<S3StoreOptions> = {}): S3Store => fixture.track(makeStore(endpoint, overrides));

  it('passes through: signed requests stay valid through the proxy', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin);
    const { body } = await store.get(bucket, 'present');
    assert.equal(body.toString(), 'present object');
    await store.put(bucket, 'via-proxy', Buffer.from('written through the proxy'));
    assert.equal((await direct.get(bucket, 'via-proxy')).body.toString(), 'written through the proxy');
    assert.ok(proxy.forwarded.length >= 2);
  });

  it('a server that never answers: Timeout within the deadline, each attempt bounded', async () => {
    proxy.hang().clearRecords();
    const store = storeVia(proxy.origin, { requestTimeoutMs: 1_000, retry: { retries: 1, baseDelayMs: 20, maxDelayMs: 50 } });
    const { ms } = await timed(() => expectStoreError(store.get(bucket, 'present'), StoreErrorCode.Timeout));
    // Two attempts of 1 s each, plus a short backoff.
    assertWithin(ms, 1_900, 3_500, 'get against a hung server');
    assert.equal(proxy.requests.length, 2, 'one retry after the first timeout');
    proxy.clearRecords();
    const list = await timed(() => expectStoreError(store.list(bucket), StoreErrorCode.Timeout));
    assertWithin(list.ms, 1_900, 3_500, 'list against a hung server');
    proxy.pass();
  });

  it('a stream put to a server that never answers: Timeout after the idle deadline, not retried', async () => {
    proxy.hang().clearRecords();
    const store = storeVia(proxy.origin, { requestTimeoutMs: 1_000 });
    const data = Buffer.alloc(200_000, 7);
    const { ms } = await timed(() => expectStoreError(store.put(bucket, 'hung-stream', chunked(data, 10_000), { size: data.length }), StoreErrorCode.Timeout));
    assertWithin(ms, 900, 2_500, 'stream put against a hung server');
    assert.equal(proxy.requests.length, 1, 'a stream put is not retried');
    proxy.pass();
    await expectStoreError(direct.head(bucket, 'hung-stream'), StoreErrorCode.NotFound);
  });

  it('503 to the next requests: success after retries', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin, { retry: { retries: 3, baseDelayMs: 20, maxDelayMs: 100 } });
    proxy.failNext(2, 503);
    const { ms, value } = await timed(() => store.get(bucket, 'present'));
    assert.equal(value.body.toString(), 'present object');
    assert.equal(proxy.requests.filter((r) => r.fault === 'status').length, 2);
    assert.equal(proxy.forwarded.length, 1);
    assertWithin(ms, 0, 1_500, 'get after two 503s');
    proxy.failNext(2, 503);
    await store.put(bucket, 'after-503', Buffer.from('buffer bodies are retried'));
    assert.equal((await direct.get(bucket, 'after-503')).body.toString(), 'buffer bodies are retried');
  });

  it('503 on a stream put: Unavailable at once, one request, nothing written', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin, { retry: { retries: 3, baseDelayMs: 20, maxDelayMs: 100 } });
    proxy.failNext(1, 503);
    const data = Buffer.alloc(100_000, 1);
    const { ms } = await timed(() => expectStoreError(store.put(bucket, 'stream-503', chunked(data, 10_000), { size: data.length }), StoreErrorCode.Unavailable));
    assertWithin(ms, 0, 1_500, 'stream put meeting a 503');
    assert.equal(proxy.requests.length, 1, 'the stream put was not retried');
    // An unknown-size stream small enough to be buffered is still a stream put: not retried either.
    proxy.clearRecords();
    proxy.failNext(1, 503);
    await expectStoreError(store.put(bucket, 'stream-503b', chunked(data, 10_000)), StoreErrorCode.Unavailable);
    assert.equal(proxy.requests.length, 1);
    await expectStoreError(direct.head(bucket, 'stream-503'), StoreErrorCode.NotFound);
    await expectStoreError(direct.head(bucket, 'stream-503b'), StoreErrorCode.NotFound);
  });

  it('503 for longer than the retry budget: Unavailable after retries+1 attempts', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin, { retry: { retries: 2, baseDelayMs: 20, maxDelayMs: 100 } });
    proxy.failNext(10, 503);
    const { ms } = await timed(() => expectStoreError(store.head(bucket, 'present'), StoreErrorCode.Unavailable));
    assert.equal(proxy.requests.length, 3);
    assertWithin(ms, 0, 1_500, 'head through persistent 503s');
    proxy.pass();
  });

  it('SlowDown is Throttled; 500 with an XML error is Unavailable', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin, { retry: { retries: 0, baseDelayMs: 20, maxDelayMs: 100 } });
    proxy.failNext(1, 503, { s3Code: 'SlowDown' });
    assertWithin((await timed(() => expectStoreError(store.get(bucket, 'present'), StoreErrorCode.Throttled))).ms, 0, 1_500, 'Throttled answer');
    proxy.failNext(1, 429, { s3Code: 'TooManyRequests' });
    assertWithin((await timed(() => expectStoreError(store.list(bucket), StoreErrorCode.Throttled))).ms, 0, 1_500, 'Throttled answer');
    proxy.failNext(1, 500);
    assertWithin((await timed(() => expectStoreError(store.list(bucket), StoreErrorCode.Unavailable))).ms, 0, 1_500, 'Unavailable answer');
    proxy.failNext(1, 501, { s3Code: 'NotImplemented' });
    assertWithin((await timed(() => expectStoreError(store.list(bucket), StoreErrorCode.NotSupported))).ms, 0, 1_500, 'NotSupported answer');
  });

  it('connections reset: retried, then success', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin, { retry: { retries: 3, baseDelayMs: 20, maxDelayMs: 100 } });
    proxy.resetNext(2);
    const { ms, value } = await timed(() => store.get(bucket, 'present'));
    assert.equal(value.body.toString(), 'present object');
    assertWithin(ms, 0, 1_500, 'get after two resets');
    proxy.resetNext(5);
    const failed = await timed(() => expectStoreError(store.list(bucket), StoreErrorCode.Unavailable));
    assertWithin(failed.ms, 0, 1_500, 'list through persistent resets');
    proxy.pass();
  });

  it('a stopped server (nothing listening): Unavailable quickly', async () => {
    const port = await closedPort();
    const store = storeVia(`http://127.0.0.1:${port}`, { retry: { retries: 2, baseDelayMs: 20, maxDelayMs: 100 } });
    for (const call of [() => store.get(bucket, 'present'), () => store.list(bucket), () => store.put(bucket, 'x', Buffer.from('x')), () => store.headContainer(bucket)]) {
      const { ms } = await timed(() => expectStoreError(call(), StoreErrorCode.Unavailable));
      assertWithin(ms, 0, 1_000, 'a call to a stopped server');
    }
  });

  it('wrong credentials: Auth (also for HEAD requests, which carry no error body), no secret in messages', async () => {
    const wrongSecret = 'wrong-secret-Zq8xV';
    const badSecret = storeVia(swift!.s3Endpoint, { secretAccessKey: wrongSecret });
    for (const call of [() => badSecret.get(bucket, 'present'), () => badSecret.head(bucket, 'present'), () => badSecret.list(bucket), () => badSecret.headContainer(bucket), () => badSecret.put(bucket, 'x', Buffer.from('x'))]) {
      const { ms } = await timed(() => expectStoreError(call(), StoreErrorCode.Auth, [wrongSecret]));
      assertWithin(ms, 0, 2_000, 'a call with a wrong secret');
    }
    const badKey = storeVia(swift!.s3Endpoint, { accessKeyId: 'nobody:nouser', secretAccessKey: wrongSecret });
    await expectStoreError(badKey.list(bucket), StoreErrorCode.Auth, [wrongSecret]);
    await expectStoreError(badKey.head(bucket, 'present'), StoreErrorCode.Auth, [wrongSecret]);
  });

  it('a missing bucket: NotFound for every object call', async () => {
    const store = storeVia(swift!.s3Endpoint);
    const missing = uniqueName('faults-missing');
    for (const call of [() => store.get(missing, 'k'), () => store.head(missing, 'k'), () => store.list(missing), () => store.put(missing, 'k', Buffer.from('x')), () => store.headContainer(missing), () => store.getLabels(missing)]) {
      const { ms } = await timed(() => expectStoreError(call(), StoreErrorCode.NotFound));
      assertWithin(ms, 0, 2_000, 'a call on a missing bucket');
    }
    await store.delete(missing, 'k'); // idempotent
    await store.deleteContainer(missing); // idempotent
  });

  it('create-only put where the S3 layer does not support it: NotSupported, nothing written, nothing sent', async () => {
    proxy.pass().clearRecords();
    const store = storeVia(proxy.origin);
    const caps = await store.capabilities(bucket);
    assert.equal(caps.conditionalCreate, false, 'Swift 2.30 s3api answers 501 to conditional PUTs');
    proxy.clearRecords();
    assertWithin((await timed(() => expectStoreError(store.put(bucket, 'create-only', Buffer.from('x'), { ifNoneMatch: '*' }), StoreErrorCode.NotSupported))).ms, 0, 1_500, 'NotSupported answer');
    assertWithin((await timed(() => expectStoreError(store.put(bucket, 'present', Buffer.from('overwrite?'), { ifNoneMatch: '*' }), StoreErrorCode.NotSupported))).ms, 0, 1_500, 'NotSupported answer');
    assert.equal(proxy.requests.filter((r) => r.method === 'PUT').length, 0, 'no PUT was sent once the probe said no');
    await expectStoreError(direct.head(bucket, 'create-only'), StoreErrorCode.NotFound);
    assert.equal((await direct.get(bucket, 'present')).body.toString(), 'present object');
  });

  it("the caller's abort during a hung request: Aborted promptly, not retried", async () => {
    proxy.hang().clearRecords();
    const store = storeVia(proxy.origin, { requestTimeoutMs: 10_000 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const { ms } = await timed(() => expectStoreError(store.get(bucket, 'present', { signal: controller.signal }), StoreErrorCode.Aborted));
    assertWithin(ms, 150, 1_000, 'an aborted get');
    assert.equal(proxy.requests.length, 1);
    proxy.pass();
  });
});
