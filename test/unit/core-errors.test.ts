/**
 * The core's FsError: errno mapping, `instanceof` across copies of the module, and which errors carry a stack
 * trace (expected answers such as ENOENT or ENODATA do not: they are raised thousands of times a second on
 * some workloads; failures such as EIO keep theirs).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERRNO, FsError, errnoNameOf, fsError, keepsStack, toErrno } from '../../src/core/errors.js';
import { StoreError, StoreErrorCode } from '../../src/store/errors.js';

function raiseDeep(depth: number, make: () => Error): Error {
  return depth === 0 ? make() : raiseDeep(depth - 1, make);
}

test('expected errnos carry no stack frames; failures keep theirs; the global limit is restored', () => {
  const limit = Error.stackTraceLimit;
  for (const code of ['ENOENT', 'ENODATA', 'EEXIST', 'ENOTEMPTY', 'EINVAL'] as const) {
    const err = raiseDeep(3, () => fsError(code, 'lookup', '/a'));
    assert.equal(keepsStack(code), false);
    assert.equal(err.stack, `FsError: ${code} in lookup on /a`, `${code}: ${err.stack}`);
    assert.equal(err.message, `${code} in lookup on /a`);
    assert.equal(Error.stackTraceLimit, limit);
  }
  for (const code of ['EIO', 'EROFS', 'ETIMEDOUT', 'ENOSPC'] as const) {
    const err = raiseDeep(3, () => new FsError(code, 'boom'));
    assert.equal(keepsStack(code), true);
    assert.match(String(err.stack), /raiseDeep/, `${code} keeps its frames`);
    assert.equal(Error.stackTraceLimit, limit);
  }
  // A plain Error made afterwards still gets its frames.
  assert.match(String(raiseDeep(2, () => new Error('x')).stack), /raiseDeep/);
});

test('a stackless FsError is still a complete error: code, errno, cause, instanceof', () => {
  const cause = new Error('under');
  const err = new FsError('ENOENT', undefined, { syscall: 'open', path: '/p', cause });
  assert.ok(err instanceof FsError);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'ENOENT');
  assert.equal(err.errno, ERRNO.ENOENT);
  assert.equal(err.cause, cause);
  assert.equal(err.syscall, 'open');
  assert.equal(err.path, '/p');
  assert.deepEqual(errnoNameOf(err), { name: 'ENOENT', known: true });
  assert.equal(toErrno(err), -2);
});

test('errno mapping: store errors, node errors, unknown errors', () => {
  assert.equal(toErrno(new StoreError(StoreErrorCode.Timeout, 'slow')), -ERRNO.ETIMEDOUT);
  assert.equal(toErrno(Object.assign(new Error('disk'), { code: 'ENOSPC' })), -ERRNO.ENOSPC);
  assert.deepEqual(errnoNameOf(new Error('bug')), { name: 'EIO', known: false });
});
