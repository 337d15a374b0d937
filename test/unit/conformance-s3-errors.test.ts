// S3 error mapping (src/store/s3/s3-errors.ts): what the SDK throws → StoreError codes, without a server; and
// S3Store's behaviour that needs no server (option checks, capabilities without a container, closed store).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoSuchKey, S3ServiceException } from '@aws-sdk/client-s3';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';
import { codeForS3Error, isNoSuchBucket, mapS3Error } from '../../src/store/s3/s3-errors.js';
import { createS3Store } from '../../src/store/s3/s3-store.js';
import { closedPort } from '../helpers/fault-proxy.js';
import { expectStoreError } from '../conformance/suite.js';

/** An error shaped like the SDK's service exceptions. */
function serviceError(name: string, status: number | undefined, message = 'x'): S3ServiceException {
  return new S3ServiceException({ name, $fault: status !== undefined && status >= 500 ? 'server' : 'client', $metadata: status === undefined ? {} : { httpStatusCode: status }, message });
}

function socketError(code: string, name = 'Error'): Error {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code, name, $metadata: {} });
}

describe('S3 error mapping', () => {
  const cases: [string, unknown, StoreErrorCode][] = [
    ['NoSuchKey', serviceError('NoSuchKey', 404), StoreErrorCode.NotFound],
    ['NoSuchBucket', serviceError('NoSuchBucket', 404), StoreErrorCode.NotFound],
    ['HEAD 404 (NotFound, no body)', serviceError('NotFound', 404), StoreErrorCode.NotFound],
    ['PreconditionFailed', serviceError('PreconditionFailed', 412), StoreErrorCode.PreconditionFailed],
    ['BucketNotEmpty', serviceError('BucketNotEmpty', 409), StoreErrorCode.Conflict],
    ['InvalidAccessKeyId', serviceError('InvalidAccessKeyId', 403), StoreErrorCode.Auth],
    ['SignatureDoesNotMatch', serviceError('SignatureDoesNotMatch', 403), StoreErrorCode.Auth],
    ['ExpiredToken', serviceError('ExpiredToken', 400), StoreErrorCode.Auth],
    ['AccessDenied', serviceError('AccessDenied', 403), StoreErrorCode.Forbidden],
    ['HEAD 403 (Unknown)', serviceError('Unknown', 403), StoreErrorCode.Forbidden],
    ['SlowDown 503', serviceError('SlowDown', 503), StoreErrorCode.Throttled],
    ['ServiceUnavailable 503', serviceError('ServiceUnavailable', 503), StoreErrorCode.Unavailable],
    ['unparsed 503', serviceError('UnknownError', 503), StoreErrorCode.Unavailable],
    ['unparsed 429', serviceError('Unknown', 429), StoreErrorCode.Throttled],
    ['InternalError 500', serviceError('InternalError', 500), StoreErrorCode.Unavailable],
    ['NotImplemented 501', serviceError('NotImplemented', 501), StoreErrorCode.NotSupported],
    ['unparsed 501', serviceError('Unknown', 501), StoreErrorCode.NotSupported],
    ['EntityTooLarge', serviceError('EntityTooLarge', 400), StoreErrorCode.TooLarge],
    ['BadDigest', serviceError('BadDigest', 400), StoreErrorCode.Integrity],
    ['InvalidRange 416', serviceError('InvalidRange', 416), StoreErrorCode.InvalidArgument],
    ['KeyTooLongError', serviceError('KeyTooLongError', 400), StoreErrorCode.InvalidArgument],
    ['ConditionalRequestConflict 409 (retry)', serviceError('ConditionalRequestConflict', 409), StoreErrorCode.Unavailable],
    ['RequestTimeout 400', serviceError('RequestTimeout', 400), StoreErrorCode.Timeout],
    ['unparsed 400', serviceError('Unknown', 400), StoreErrorCode.InvalidArgument],
    ['ECONNREFUSED', socketError('ECONNREFUSED'), StoreErrorCode.Unavailable],
    ['ECONNRESET renamed TimeoutError by the SDK', socketError('ECONNRESET', 'TimeoutError'), StoreErrorCode.Unavailable],
    ['EPIPE renamed TimeoutError', socketError('EPIPE', 'TimeoutError'), StoreErrorCode.Unavailable],
    ['ETIMEDOUT', socketError('ETIMEDOUT', 'TimeoutError'), StoreErrorCode.Timeout],
    ['ENOTFOUND', socketError('ENOTFOUND'), StoreErrorCode.Unavailable],
    ['connection timeout (TimeoutError, no code)', Object.assign(new Error('Socket timed out without establishing a connection'), { name: 'TimeoutError' }), StoreErrorCode.Timeout],
    ['AbortError (our deadline)', Object.assign(new Error('Request aborted'), { name: 'AbortError' }), StoreErrorCode.Timeout],
    ['a plain Error', new Error('something odd'), StoreErrorCode.Internal],
    ['a thrown string', 'weird', StoreErrorCode.Internal],
  ];
  for (const [title, err, code] of cases) {
    it(`${title} → ${code}`, () => {
      assert.equal(codeForS3Error(err), code);
      const mapped = mapS3Error(err, { op: 'get', container: 'bucket', key: 'k', secrets: [] });
      assert.ok(mapped instanceof StoreError);
      assert.equal(mapped.code, code);
      assert.equal(mapped.cause, err, 'the SDK error is kept as cause');
      assert.equal(mapped.op, 'get');
      assert.equal(mapped.container, 'bucket');
      assert.equal(mapped.key, 'k');
    });
  }

  it('the SDK exception class itself (NoSuchKey) maps by name, with its status', () => {
    const err = new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'The specified key does not exist.' });
    const mapped = mapS3Error(err, { op: 'get', container: 'b', key: 'k', secrets: [] });
    assert.equal(mapped.code, StoreErrorCode.NotFound);
    assert.equal(mapped.status, 404);
    assert.match(mapped.message, /^get b\/k: NotFound \(NoSuchKey, HTTP 404\)/);
  });

  it('secrets never appear in the message, even if the SDK put them there', () => {
    const err = serviceError('SignatureDoesNotMatch', 403, 'signature for secret S3CR3T-value and token TOK-123 did not match');
    const mapped = mapS3Error(err, { op: 'list', container: 'b', secrets: ['S3CR3T-value', 'TOK-123'] });
    assert.ok(!mapped.message.includes('S3CR3T-value'));
    assert.ok(!mapped.message.includes('TOK-123'));
    assert.match(mapped.message, /\[redacted\]/);
  });

  it('a StoreError passes through unchanged; forceCode re-codes', () => {
    const original = new StoreError(StoreErrorCode.Timeout, 'x');
    assert.equal(mapS3Error(original, { op: 'get', secrets: [] }), original);
    const forced = mapS3Error(serviceError('Unknown', 403), { op: 'head', secrets: [] }, StoreErrorCode.Auth);
    assert.equal(forced.code, StoreErrorCode.Auth);
  });

  it('isNoSuchBucket tells a missing bucket from a missing key', () => {
    assert.equal(isNoSuchBucket(serviceError('NoSuchBucket', 404)), true);
    assert.equal(isNoSuchBucket(serviceError('NoSuchKey', 404)), false);
    assert.equal(isNoSuchBucket(mapS3Error(serviceError('NoSuchBucket', 404), { op: 'get', secrets: [] })), true);
  });
});

describe('S3Store without a server', () => {
  it('requires credentials', () => {
    assert.throws(() => createS3Store({ accessKeyId: '', secretAccessKey: 'x' }));
    assert.throws(() => createS3Store({ accessKeyId: 'x', secretAccessKey: '' }));
  });

  it('describes itself without the secret', async () => {
    const store = createS3Store({ endpoint: 'http://127.0.0.1:1', accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'very-secret-value' });
    assert.match(store.description, /^s3 http:\/\/127\.0\.0\.1:1 \(access key AKIAEXAMPLE\)$/);
    assert.ok(!store.description.includes('very-secret-value'));
    await store.close();
  });

  it('capabilities() without a container answers conservatively, without probing', async () => {
    const store = createS3Store({ endpoint: 'http://127.0.0.1:1', accessKeyId: 'a', secretAccessKey: 'b' });
    const caps = await store.capabilities();
    assert.deepEqual(caps, { kind: 's3', conditionalCreate: false, nativeLabels: false, maxObjectSize: 5 * 1024 ** 3, maxKeyLength: 1024 });
    await store.close();
  });

  it('rejects bad arguments before sending anything', async () => {
    const port = await closedPort();
    const store = createS3Store({ endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'a', secretAccessKey: 'b', retry: { retries: 0 } });
    await expectStoreError(store.put('b', 'k'.repeat(1025), Buffer.from('x')), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('b', '', Buffer.from('x')), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.get('b', 'k', { range: { offset: -1 } }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.list('b', { limit: 0 }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.setLabels('b', { BAD: 'x' }), StoreErrorCode.InvalidArgument);
    await expectStoreError(store.put('b', 'k', Buffer.from('x'), { ifNoneMatch: 'x' as '*' }), StoreErrorCode.InvalidArgument);
    // And a real call to nothing is Unavailable.
    await expectStoreError(store.head('b', 'k'), StoreErrorCode.Unavailable);
    await store.close();
    await expectStoreError(store.head('b', 'k'), StoreErrorCode.Internal);
  });
});
