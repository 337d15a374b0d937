/**
 * Property test of the whole Volume on the memory store (test/helpers/volume-model.ts has the harness and
 * what it checks): random sequences of 30-80 operations through the VolumeFs API, with clean restarts and
 * crashes (same cache directory, or an empty one: a new host) at random points, compared with the kernel on
 * a temporary directory after every operation. The store is given a little random latency in some runs (so
 * that commits overlap operations) and no conditional create in others (the single-writer lease then waits its
 * settle delay at each read-write open, as on Swift).
 *
 * Runs: SWIFTFS_PROPERTY_RUNS (default 100). A failure prints fast-check's seed and path; replay it with
 * SWIFTFS_PROPERTY_SEED=<seed> SWIFTFS_PROPERTY_PATH=<path>, and add SWIFTFS_PROPERTY_SHRINK=1 to minimise it.
 */

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SETUP, withUmask0Async } from '../helpers/kernel-reference.js';
import { configArb, emptyStats, propertyParams, runModel, volOpArb } from '../helpers/volume-model.js';

/** A quarter of the runs without atomic create-only puts: their read-write opens wait the lease's settle delay. */
const storeArb = fc.record({ latencyMs: fc.constantFrom(0, 0, 1, 4), conditionalCreate: fc.constantFrom(true, true, true, false) });
const opsArb = fc.array(volOpArb({ crashes: true }), { minLength: 30, maxLength: 80, size: 'max' });

/** Latencies from 0 to `max` ms in a fixed pseudo-random order. */
function latencies(max: number): () => number {
  let x = 7;
  return () => {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    return x % (max + 1);
  };
}

test('random operation sequences with restarts and crashes: a Volume on the memory store agrees with the kernel', async (t) => {
  const stats = emptyStats();
  const params = propertyParams<[unknown, unknown, unknown]>(100);
  await withUmask0Async(() =>
    fc.assert(
      fc.asyncProperty(configArb, storeArb, opsArb, async (config, s, ops) => {
        const store = new MemoryStore({ conditionalCreate: s.conditionalCreate, ...(s.latencyMs ? { latencyMs: latencies(s.latencyMs) } : {}) });
        await runModel({ store, container: 'vol', createContainer: true, config, compareEvery: 1, fenceSettleMs: 200, stats }, ops, SETUP);
      }),
      params,
    ),
  );
  t.diagnostic(JSON.stringify(stats));
  // The harness exercised what it is for (a generator change must not quietly make it test nothing).
  if (!params.seed && (params.numRuns ?? 0) >= 50) {
    assert.ok(stats.ok > stats.runs * 15 && stats.failed > stats.runs * 5, 'operations both succeed and fail');
    assert.ok(stats.restarts >= 20 && stats.crashesSameDir >= 10 && stats.crashesNewHost >= 10, 'restarts and both kinds of crashes');
    assert.ok(stats.newHostEarlier >= 1, 'some new-host crashes came back before the latest operation');
    assert.ok(stats.inFlight >= 5, 'crashes with an operation in flight');
    assert.ok(stats.peeks >= 20 && stats.returns >= 5, 'read-only mounts beside the writer; old hosts coming back');
  }
});
