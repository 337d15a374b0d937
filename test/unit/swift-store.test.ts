/**
 * Unit tests of SwiftStore's request handling against the fake Swift (./swift-fake-server.ts) with injected
 * faults: retries of idempotent calls, no retry of stream puts, the retried create-only put meeting 412,
 * transport errors and timeouts, integrity checks, path encoding, range edges, connection reuse, and the
 * create-only probe on a cluster that ignores If-None-Match.
 */

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StoreError } from '../../src/store/errors.js';
import { createSwiftStore, type SwiftStore, type SwiftStoreOptions } from '../../src/store/swift/swift-store.js';
import { FakeSwift, TEMPAUTH_KEY, TEMPAUTH_USER } from './swift-fake-server.js';

const FAST_RETRY = { retries: 2, baseDelayMs: 5, maxDelayMs: 20, attemptTimeoutMs: 2_000 };

async function rejection(promise: Promise<unknown>): Promise<StoreError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

type Match = (req: IncomingMessage) => boolean;
const objectRequest = (method: string, key: string): Match => (req) => req.method === method && (req.url ?? '').split('?')[0]!.endsWith(`/${key}`);

describe('swift store: requests, faults and retries', () => {
  let fake: FakeSwift;
  const stores: SwiftStore[] = [];
  const open = (extra: Partial<SwiftStoreOptions> = {}) => {
    const s = createSwiftStore({ auth: { type: 'tempauth', authUrl: fake.tempauthUrl, user: TEMPAUTH_USER, key: TEMPAUTH_KEY }, retry: FAST_RETRY, ...extra });
    stores.push(s);
    return s;
  };
  const fault = (match: Match, action: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) => {
    fake.faults.push((req, res, body) => {
      if (!match(req)) return false;
      action(req, res, body);
      return true;
    });
  };
  const count = (method: string, key: string) => fake.requests.filter((r) => r.method === method && r.path.split('?')[0]!.endsWith(`/${key}`)).length;

  let store: SwiftStore;
  beforeEach(async () => {
    fake = await new FakeSwift().start();
    store = open();
    await store.createContainer('c');
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await fake.stop();
  });

  it('retries a buffer put after a 503 and succeeds', async () => {
    fault(objectRequest('PUT', 'k'), (_req, res) => res.writeHead(503).end('busy'));
    const result = await store.put('c', 'k', Buffer.from('hello'));
    assert.equal(result.etag, createHash('md5').update('hello').digest('hex'));
    assert.equal(count('PUT', 'k'), 2);
    assert.equal((await store.get('c', 'k')).body.toString(), 'hello');
  });

  it('sends the MD5 of a buffer body as ETag (Swift answers 422 on mismatch: Integrity)', async () => {
    let sent: string | undefined;
    fake.faults.push((req) => {
      if (req.method === 'PUT' && (req.url ?? '').endsWith('/k')) sent = req.headers['etag'] as string;
      return false;
    });
    await store.put('c', 'k', Buffer.from('abc'));
    assert.equal(sent, createHash('md5').update('abc').digest('hex'));
    fault(objectRequest('PUT', 'k2'), (_req, res) => res.writeHead(422).end('Unprocessable Entity'));
    assert.equal((await rejection(store.put('c', 'k2', Buffer.from('abc')))).code, 'Integrity');
    assert.equal(count('PUT', 'k2'), 1, 'Integrity is not retried');
  });

  it('does not retry a stream put: the caller sees the first failure', async () => {
    fault(objectRequest('PUT', 's'), (_req, res) => res.writeHead(503).end('busy'));
    const err = await rejection(store.put('c', 's', Readable.from([Buffer.from('a'), Buffer.from('b')])));
    assert.equal(err.code, 'Unavailable');
    assert.equal(err.status, 503);
    assert.equal(count('PUT', 's'), 1);
  });

  it('stream puts: chunked without a size, Content-Length with one, MD5 checked against the answer', async () => {
    const seen: Record<string, string | undefined>[] = [];
    fake.faults.push((req) => {
      if (req.method === 'PUT' && (req.url ?? '').includes('/str')) seen.push({ te: req.headers['transfer-encoding'], cl: req.headers['content-length'] });
      return false;
    });
    async function* gen() {
      yield new Uint8Array([1, 2, 3]);
      yield new Uint8Array([4, 5]);
    }
    const r1 = await store.put('c', 'str1', gen());
    const r2 = await store.put('c', 'str2', Readable.from([Buffer.from('xyz')]), { size: 3 });
    assert.deepEqual(seen, [{ te: 'chunked', cl: undefined }, { te: undefined, cl: '3' }]);
    assert.equal(r1.etag, createHash('md5').update(Buffer.from([1, 2, 3, 4, 5])).digest('hex'));
    assert.equal(r2.etag, createHash('md5').update('xyz').digest('hex'));
    assert.deepEqual([...(await store.get('c', 'str1')).body], [1, 2, 3, 4, 5]);
    // A size that does not match the stream is refused, not silently truncated.
    const err = await rejection(store.put('c', 'str3', Readable.from([Buffer.from('toolong')]), { size: 3 }));
    assert.equal(err.code, 'InvalidArgument');
    // Longer, with a chunk boundary exactly at the declared size: the server must never see a complete body.
    const aligned = await rejection(store.put('c', 'str3b', Readable.from([Buffer.from('abc'), Buffer.from('def')]), { size: 3 }));
    assert.equal(aligned.code, 'InvalidArgument');
    assert.match(aligned.message, /longer than the size given/);
    const shorter = await rejection(store.put('c', 'str3c', Readable.from([Buffer.from('ab')]), { size: 3 }));
    assert.equal(shorter.code, 'InvalidArgument');
    assert.match(shorter.message, /shorter than the size given/);
    for (const k of ['str3', 'str3b', 'str3c']) assert.equal(fake.containers.get('c')!.objects.has(k), false, `${k} must not be stored`);
    // Exactly the declared size, even with empty chunks after the last byte.
    await store.put('c', 'str3d', Readable.from([Buffer.from('ab'), Buffer.from('c'), Buffer.alloc(0)]), { size: 3 });
    assert.equal((await store.get('c', 'str3d')).body.toString(), 'abc');
    // A server that stored other bytes than those streamed: Integrity.
    fault(objectRequest('PUT', 'str4'), (_req, res) => res.writeHead(201, { etag: 'ffffffffffffffffffffffffffffffff' }).end());
    assert.equal((await rejection(store.put('c', 'str4', Readable.from([Buffer.from('q')])))).code, 'Integrity');
  });

  it('a stream put has an inactivity deadline, not a total one', async () => {
    const quick = open({ retry: { retries: 1, baseDelayMs: 5, maxDelayMs: 5, attemptTimeoutMs: 300 } });
    async function* steady() {
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 100));
        yield Buffer.from(`chunk${i};`);
      }
    }
    const started = Date.now();
    await quick.put('c', 'steady', steady());
    assert.ok(Date.now() - started >= 800, 'the upload outlived the 300 ms attempt deadline');
    assert.equal((await quick.get('c', 'steady')).body.toString(), Array.from({ length: 8 }, (_, i) => `chunk${i};`).join(''));

    async function* stalled() {
      yield Buffer.from('first');
      await new Promise((r) => setTimeout(r, 5_000));
      yield Buffer.from('never');
    }
    const t0 = Date.now();
    const err = await rejection(quick.put('c', 'stalled', stalled()));
    const elapsed = Date.now() - t0;
    assert.equal(err.code, 'Timeout');
    assert.match(err.message, /no upload progress for 300 ms/);
    assert.ok(elapsed < 1_500, `took ${elapsed} ms`);
    assert.equal(fake.containers.get('c')!.objects.has('stalled'), false);
  });

  it('a token rejected during a stream put: re-authenticates, reports Unavailable, does not resend', async () => {
    fake.revokeAll();
    const err = await rejection(store.put('c', 's401', Readable.from([Buffer.from('data')])));
    assert.equal(err.code, 'Unavailable');
    assert.match(err.message, /must be repeated/);
    assert.equal(fake.tempauthCount, 2);
    assert.equal(count('PUT', 's401'), 1);
    await store.put('c', 's401', Readable.from([Buffer.from('data')]));
    assert.equal((await store.get('c', 's401')).body.toString(), 'data');
  });

  it('a retried create-only put that meets 412 with our bytes stored succeeds', async () => {
    await store.capabilities('c');
    // The first attempt is stored but its answer is lost (connection dropped): an unknown outcome.
    fault(objectRequest('PUT', 'once'), (req, _res, body) => {
      fake.storeObject('c', 'once', body);
      req.socket.destroy();
    });
    const result = await store.put('c', 'once', Buffer.from('mine'), { ifNoneMatch: '*' });
    assert.equal(result.etag, createHash('md5').update('mine').digest('hex'));
    assert.equal(count('PUT', 'once'), 2);
    assert.equal(count('HEAD', 'once'), 1);
  });

  it('a retried create-only put that meets 412 with other bytes is PreconditionFailed', async () => {
    await store.capabilities('c');
    fault(objectRequest('PUT', 'twice'), (req) => {
      fake.storeObject('c', 'twice', Buffer.from('theirs'));
      req.socket.destroy();
    });
    const err = await rejection(store.put('c', 'twice', Buffer.from('mine'), { ifNoneMatch: '*' }));
    assert.equal(err.code, 'PreconditionFailed');
    assert.equal((await store.get('c', 'twice')).body.toString(), 'theirs');
  });

  it('a first-attempt 412 is PreconditionFailed without a HEAD', async () => {
    await store.put('c', 'exists', Buffer.from('mine'));
    const err = await rejection(store.put('c', 'exists', Buffer.from('mine'), { ifNoneMatch: '*' }));
    assert.equal(err.code, 'PreconditionFailed');
    assert.equal(count('HEAD', 'exists'), 0);
  });

  it('a body cut short is retried (GET is idempotent)', async () => {
    await store.put('c', 'big', Buffer.alloc(100_000, 7));
    fault(objectRequest('GET', 'big'), (_req, res) => {
      res.writeHead(200, { 'content-length': '100000', etag: createHash('md5').update(Buffer.alloc(100_000, 7)).digest('hex') });
      res.write(Buffer.alloc(1000, 7), () => res.socket?.destroy());
    });
    const got = await store.get('c', 'big');
    assert.equal(got.body.length, 100_000);
    assert.equal(count('GET', 'big'), 2);
  });

  it('a downloaded body that does not match the stored MD5 is Integrity', async () => {
    await store.put('c', 'm', Buffer.from('good'));
    fault(objectRequest('GET', 'm'), (_req, res) => res.writeHead(200, { 'content-length': '4', etag: createHash('md5').update('good').digest('hex') }).end('evil'));
    assert.equal((await rejection(store.get('c', 'm'))).code, 'Integrity');
    // Without verification the bytes are returned as received.
    fault(objectRequest('GET', 'm'), (_req, res) => res.writeHead(200, { 'content-length': '4', etag: createHash('md5').update('good').digest('hex') }).end('evil'));
    assert.equal((await open({ verifyDownloads: false }).get('c', 'm')).body.toString(), 'evil');
  });

  it('buffer puts store the body\'s CRC32; whole GETs are checked against it (not the MD5); callers never see it', async () => {
    const crcHex = (data: string) => (crc32(Buffer.from(data)) >>> 0).toString(16).padStart(8, '0');
    await store.put('c', 'crc', Buffer.from('good'), { metadata: { color: 'blue' } });
    const stored = fake.containers.get('c')!.objects.get('crc')!;
    assert.equal(stored.meta['x-object-meta-swiftfs-crc32'], crcHex('good'));
    const got = await store.get('c', 'crc');
    assert.equal(got.body.toString(), 'good');
    assert.deepEqual(got.info.metadata, { color: 'blue' });
    assert.deepEqual((await store.head('c', 'crc')).metadata, { color: 'blue' });
    // Other bytes whose MD5 matches the ETag but not the stored CRC32: Integrity (the CRC32 is what is checked).
    const evil = (etagOf: string, body: string) => (_req: IncomingMessage, res: ServerResponse) =>
      res.writeHead(200, { 'content-length': String(body.length), etag: createHash('md5').update(etagOf).digest('hex'), 'x-object-meta-swiftfs-crc32': crcHex('good') }).end(body);
    fault(objectRequest('GET', 'crc'), evil('evil', 'evil'));
    assert.equal((await rejection(store.get('c', 'crc'))).code, 'Integrity');
    // The right bytes with a CRC32 are accepted without hashing them with MD5 (that ETag is wrong on purpose).
    fault(objectRequest('GET', 'crc'), evil('something else', 'good'));
    assert.equal((await store.get('c', 'crc')).body.toString(), 'good');
    // A ranged GET is not checked (neither checksum covers a range), and does not show the CRC32 either.
    const part = await store.get('c', 'crc', { range: { offset: 1, length: 2 } });
    assert.equal(part.body.toString(), 'oo');
    assert.deepEqual(part.info.metadata, { color: 'blue' });
    // The key is the store's own.
    assert.equal((await rejection(store.put('c', 'x', Buffer.from('a'), { metadata: { 'swiftfs-crc32': '00000000' } }))).code, 'InvalidArgument');
    // Objects without a CRC32 (stream puts, older objects) are still checked by MD5: see the next test.
    await store.put('c', 'streamed', Readable.from([Buffer.from('abc')]));
    assert.equal(fake.containers.get('c')!.objects.get('streamed')!.meta['x-object-meta-swiftfs-crc32'], undefined);
    assert.equal((await store.get('c', 'streamed')).body.toString(), 'abc');
  });

  it('maps statuses: 404 NotFound, 429/498 Throttled after retries, 507, 409 on a non-empty container', async () => {
    assert.equal((await rejection(store.get('c', 'nope'))).code, 'NotFound');
    assert.equal((await rejection(store.head('c', 'nope'))).code, 'NotFound');
    await store.delete('c', 'nope'); // idempotent
    for (const status of [429, 498]) {
      for (let i = 0; i < 3; i++) fault(objectRequest('HEAD', `t${status}`), (_req, res) => res.writeHead(status).end());
      const err = await rejection(store.head('c', `t${status}`));
      assert.equal(err.code, 'Throttled');
      assert.equal(count('HEAD', `t${status}`), 3, 'first attempt plus two retries');
    }
    fault(objectRequest('PUT', 'full'), (_req, res) => res.writeHead(507).end('Insufficient Storage'));
    assert.equal((await rejection(store.put('c', 'full', Buffer.from('x')))).code, 'InsufficientStorage');
    await store.put('c', 'x', Buffer.from('x'));
    const conflict = await rejection(store.deleteContainer('c'));
    assert.equal(conflict.code, 'Conflict');
    assert.match(conflict.message, /not empty/);
    await store.deleteContainer('missing-container');
  });

  it('refused connections are Unavailable; a storage that never answers is Timeout within the deadline', async () => {
    const spare = await new FakeSwift().start();
    const port = spare.port;
    await spare.stop();
    const refused = open({ storageUrl: `http://127.0.0.1:${port}/v1/AUTH_test` });
    const err = await rejection(refused.head('c', 'k'));
    assert.equal(err.code, 'Unavailable');
    assert.match(err.message, /ECONNREFUSED/);

    const slow = open({ retry: { retries: 1, baseDelayMs: 5, maxDelayMs: 5, attemptTimeoutMs: 300 } });
    await slow.createContainer('c');
    for (let i = 0; i < 2; i++) fault(objectRequest('GET', 'hang'), () => {});
    const started = Date.now();
    const timeout = await rejection(slow.get('c', 'hang'));
    const elapsed = Date.now() - started;
    assert.equal(timeout.code, 'Timeout');
    assert.ok(elapsed < 1_500, `took ${elapsed} ms`);
    assert.equal(count('GET', 'hang'), 2);
  });

  it('a caller abort is Aborted and not retried', async () => {
    fault(objectRequest('GET', 'ab'), () => {});
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const err = await rejection(store.get('c', 'ab', { signal: controller.signal }));
    assert.equal(err.code, 'Aborted');
    assert.equal(count('GET', 'ab'), 1);
  });

  it('encodes each key segment and keeps the slashes', async () => {
    const key = 'dir one/a?b#c/100%/../é';
    await store.put('c', key, Buffer.from('enc'));
    const put = fake.requests.find((r) => r.method === 'PUT' && r.path.includes('dir'));
    assert.equal(put?.path, '/v1/AUTH_test/c/dir%20one/a%3Fb%23c/100%25/%2E%2E/%C3%A9');
    assert.equal((await store.get('c', key)).body.toString(), 'enc');
    assert.deepEqual((await store.list('c', { prefix: 'dir one/' })).objects.map((o) => o.key), [key]);
  });

  it('ranged reads: inside, clipped at the end, at and past the end, zero length', async () => {
    await store.put('c', 'r', Buffer.from('0123456789'));
    assert.equal((await store.get('c', 'r', { range: { offset: 2, length: 3 } })).body.toString(), '234');
    const clipped = await store.get('c', 'r', { range: { offset: 8, length: 10 } });
    assert.equal(clipped.body.toString(), '89');
    assert.equal(clipped.info.size, 10);
    assert.equal((await store.get('c', 'r', { range: { offset: 10 } })).body.length, 0);
    const past = await store.get('c', 'r', { range: { offset: 50, length: 5 } });
    assert.equal(past.body.length, 0);
    assert.equal(past.info.size, 10);
    assert.equal((await store.get('c', 'r', { range: { offset: 4, length: 0 } })).body.length, 0);
    assert.equal((await store.get('c', 'r', { range: { offset: 0 } })).body.toString(), '0123456789');
    assert.equal((await rejection(store.get('c', 'r', { range: { offset: -1 } }))).code, 'InvalidArgument');
  });

  it('reuses keep-alive connections', async () => {
    const before = fake.connections;
    for (let i = 0; i < 40; i++) {
      await store.put('c', `p${i}`, Buffer.from('x'));
      await store.get('c', `p${i}`);
      await store.head('c', 'missing').catch(() => {});
    }
    assert.ok(fake.connections - before <= 2, `opened ${fake.connections - before} connections for 120 requests`);
  });

  it('on a cluster that ignores If-None-Match: conditionalCreate false, create-only puts NotSupported, probe cleaned up', async () => {
    fake.ignoreIfNoneMatch = true;
    const caps = await store.capabilities('c');
    assert.equal(caps.conditionalCreate, false);
    assert.equal(caps.kind, 'swift');
    const err = await rejection(store.put('c', 'co', Buffer.from('x'), { ifNoneMatch: '*' }));
    assert.equal(err.code, 'NotSupported');
    assert.equal(fake.containers.get('c')!.objects.size, 0, 'nothing written, probe deleted');
    const probes = fake.requests.filter((r) => r.path.includes('.swiftfs-probe/'));
    assert.deepEqual(probes.map((r) => r.method), ['PUT', 'PUT', 'DELETE']);
  });

  it('capabilities are probed once per container and cached', async () => {
    fake.ignoreIfNoneMatch = false;
    const a = await store.capabilities('c');
    const b = await store.capabilities('c');
    assert.equal(a.conditionalCreate, true);
    assert.equal(b, a);
    assert.equal(fake.requests.filter((r) => r.path.includes('.swiftfs-probe/') && r.method === 'PUT').length, 2);
  });

  it('lists with pagination and no token in any log line', async () => {
    const lines: string[] = [];
    const log = (obj: object, msg?: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
    const logged = open({ logger: { debug: log, info: log, warn: log, error: log } });
    for (let i = 0; i < 7; i++) await logged.put('c', `l/${i}`, Buffer.from('x'));
    const keys: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await logged.list('c', { prefix: 'l/', limit: 3, ...(after === undefined ? {} : { after }) });
      keys.push(...page.objects.map((o) => o.key));
      after = page.next;
      pages++;
    } while (after !== undefined);
    assert.deepEqual(keys, ['l/0', 'l/1', 'l/2', 'l/3', 'l/4', 'l/5', 'l/6']);
    assert.equal(pages, 3);
    assert.ok(lines.length > 0);
    for (const token of fake.validTokens) for (const line of lines) assert.ok(!line.includes(token));
    for (const line of lines) assert.ok(!line.includes(TEMPAUTH_KEY));
  });
});
