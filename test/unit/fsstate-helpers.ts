/**
 * Shared helpers of the FsState unit tests (metadata-*.test.ts): apply a plan, and assert that a plan fails with
 * one errno code without changing anything.
 */

import assert from 'node:assert/strict';
import type { FsState } from '../../src/core/metadata.js';
import { FsError } from '../../src/core/errors.js';
import type { MetaRecord } from '../../src/core/types.js';

/** Caller credentials of root. */
export const ROOT = { uid: 0, gid: 0 };

/** Applies a plan's batch and returns it. */
export function run(s: FsState, plan: () => MetaRecord[]): MetaRecord[] {
  const b = plan();
  s.apply(b);
  return b;
}

/** Asserts that the plan throws FsError `code` and changed nothing. */
export function fails(s: FsState, code: string, plan: () => unknown): void {
  const before = JSON.stringify(s.snapshot());
  assert.throws(plan, (e: unknown) => e instanceof FsError && e.code === code, `expected ${code}`);
  assert.equal(JSON.stringify(s.snapshot()), before, 'a failed plan changed the state');
}
