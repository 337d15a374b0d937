/**
 * The Volume property test (test/helpers/volume-model.ts) on the real Swift, through its Swift API and its S3 API
 * (the single-writer lease on both, with a shorter settle delay than the default): random sequences of
 * operations with restarts and crashes (same cache directory, or an empty one: a new host), compared with the
 * kernel on a temporary directory. Fewer and shorter runs than on the memory store
 * (test/unit/volume-property.test.ts), one fresh container each.
 *
 * Runs per API: SWIFTFS_PROPERTY_RUNS (default 16). A failure prints fast-check's seed and path; replay it with
 * SWIFTFS_PROPERTY_SEED=<seed> SWIFTFS_PROPERTY_PATH=<path>, and add SWIFTFS_PROPERTY_SHRINK=1 to minimise it.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SETUP, withUmask0Async } from '../helpers/kernel-reference.js';
import { configArb, emptyStats, propertyParams, runModel, volOpArb } from '../helpers/volume-model.js';
import { APIS, realStore } from './volume-stores.js';

const opsArb = fc.array(volOpArb({ crashes: true }), { minLength: 20, maxLength: 50, size: 'max' });

for (const api of APIS) {
  test(`${api}: random operation sequences with restarts and crashes: a Volume on the real Swift agrees with the kernel`, async (t) => {
    const probe = realStore(t, api);
    if (!probe) return; // skipped (or, under CI, failed) without a test Swift
    await probe.store.close();
    const stats = emptyStats();
    await withUmask0Async(() =>
      fc.assert(
        fc.asyncProperty(configArb, opsArb, async (config, ops) => {
          const r = realStore(t, api)!;
          try {
            await runModel({ store: r.store, container: r.container, createContainer: true, config, compareEvery: 1, fenceSettleMs: 600, stats, open: { openTimeoutMs: 30_000 } }, ops, SETUP);
          } finally {
            await r.cleanup();
          }
        }),
        propertyParams(16),
      ),
    );
    t.diagnostic(JSON.stringify(stats));
    assert.ok(stats.ok > 0 && stats.restarts + stats.crashesSameDir + stats.crashesNewHost > 0, 'the runs did something');
  });
}
