/**
 * The Docker plugin and regions. With fakes (driver rules): a relocated volume is mounted from its new home at
 * the next Mount, a replica is never mounted read-write, Status shows the replicas and their lag while mounted,
 * and a previous mount process that only waits for its replicas does not hold up a new Mount. With the real
 * StoreVolumeBackend on two memory regions and real volumes: `-o replicas=` is validated against the
 * configuration, a replica is listed once and refused by Create, and after `relocate` (planned, then a
 * failover with the home down) the backend finds the new home.
 */

import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SwiftfsDriver, type DriverConfig } from '../../src/plugin/driver.js';
import { StateFile } from '../../src/plugin/state.js';
import { StoreVolumeBackend } from '../../src/plugin/store-backend.js';
import { formatWithCore } from '../../src/plugin/main.js';
import { replicationFromRegions } from '../../src/plugin/mount-process.js';
import { describeRegions } from '../../src/cli/commands/status.js';
import { loadConfig, type Config } from '../../src/config/load.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { FaultyStore } from '../../src/store/faulty-store.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import { Replicator } from '../../src/region/replicator.js';
import { relocate } from '../../src/region/relocate.js';
import { FakeBackend, FakeRunner, MOUNT_ID_A, MOUNT_ID_B } from './plugin-fakes.js';

const signal = () => new AbortController().signal;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'swiftfs-plugin-regions-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('driver (fakes)', () => {
  let backend: FakeBackend;
  let runner: FakeRunner;
  const drivers: SwiftfsDriver[] = [];
  const makeDriver = (extra: Partial<DriverConfig> = {}): SwiftfsDriver => {
    const d = new SwiftfsDriver(backend, runner, StateFile.load(join(dir, 'state')), { hostId: 'h', mountRoot: join(dir, 'mnt'), cacheRoot: join(dir, 'cache'), logRoot: join(dir, 'log'), healthIntervalMs: 0, storeCheckCacheMs: 0, ...extra });
    drivers.push(d);
    return d;
  };
  beforeEach(() => {
    backend = new FakeBackend();
    runner = new FakeRunner();
  });
  afterEach(async () => {
    for (const d of drivers.splice(0)) await d.close(100);
  });

  test('a relocated volume is shown as such and mounted from its new home at the next Mount', async () => {
    const d = makeDriver();
    await d.start();
    await d.create('pg', {});
    await d.mount('pg', MOUNT_ID_A);
    await d.unmount('pg', MOUNT_ID_A);
    backend.relocate('pg', 'pg-dr', 'dr');
    const before = await d.get('pg');
    assert.equal(before.Status?.['role'], 'retired');
    assert.equal(before.Status?.['relocatedTo'], 'dr/pg-dr');
    const path = await d.mount('pg', MOUNT_ID_B);
    assert.equal(path, join(dir, 'mnt', 'pg'), 'same mount point');
    assert.equal(runner.starts.length, 2);
    const after = await d.get('pg');
    assert.equal(after.Status?.['store'], 'dr');
    assert.equal(after.Status?.['container'], 'pg-dr');
    assert.equal(after.Status?.['url'], 'mem://dr/pg-dr');
    assert.equal(after.Status?.['role'], undefined);
    // The new location survives a restart (saved in the state file).
    const state = StateFile.load(join(dir, 'state'));
    assert.equal(state.data.volumes['pg']?.location.container, 'pg-dr');
  });

  test('a replica is never mounted read-write', async () => {
    const d = makeDriver();
    await d.start();
    await d.create('copy', {});
    backend.containers.get('copy')!.role = 'replica';
    backend.containers.get('copy')!.regions = { home: { region: 'A', container: 'copy' }, replicas: [{ region: 'dr', container: 'copy', mode: 'swiftfs' }] };
    await assert.rejects(d.mount('copy', MOUNT_ID_A), /is a replica kept up to date from its home region A; relocate it to this region first/);
    assert.equal(runner.starts.length, 0);
    const v = await d.get('copy');
    assert.equal(v.Status?.['role'], 'replica');
    assert.deepEqual(v.Status?.['replicas'], [{ replica: 'dr/copy', mode: 'swiftfs', state: 'not replicating from this host (not mounted here)' }]);
  });

  test('Status shows the replicas and their lag while mounted', async () => {
    const d = makeDriver();
    await d.start();
    await d.create('pg', { fsync: 'local' });
    await d.mount('pg', MOUNT_ID_A);
    runner.extraStats.set('pg', {
      replication: {
        region: 'A',
        home: { region: 'A', container: 'pg' },
        replicating: true,
        replicas: [{ region: 'dr', container: 'pg', mode: 'swiftfs', state: 'syncing', lagSeconds: 2.5, lagBytes: 1048576, replicatedSeq: 40, sourceSeq: 42, lastSyncAt: '2025-01-01T00:00:00.000Z' }],
      },
    });
    const v = await d.get('pg');
    assert.equal(v.Status?.['mountedFromRegion'], 'A');
    assert.equal(v.Status?.['home'], 'A/pg');
    assert.deepEqual(v.Status?.['replicas'], [{ replica: 'dr/pg', mode: 'swiftfs', state: 'syncing', lagSeconds: 2.5, lagBytes: 1048576, replicatedSeq: 40, sourceSeq: 42, lastSyncAt: '2025-01-01T00:00:00.000Z' }]);
  });

  test('a previous mount process that only waits for its replicas does not hold up a new Mount', async () => {
    const d = makeDriver({ callBudgetMs: 3_000 });
    await d.start();
    await d.create('pg', {});
    await d.mount('pg', MOUNT_ID_A);
    runner.stopDelayMs = 60_000; // the old process keeps running (it drains its replicas)
    await d.unmount('pg', MOUNT_ID_A);
    assert.equal((await d.get('pg')).Status?.['uploading'], true);
    runner.extraStats.set('pg', { state: 'replicating' });
    const t0 = Date.now();
    await d.mount('pg', MOUNT_ID_B);
    assert.ok(Date.now() - t0 < 1_000, `mounted at once (${Date.now() - t0} ms)`);
    assert.equal(runner.starts.length, 2);
    assert.equal(runner.alive('pg').length, 2, 'the old one goes on replicating until its own deadline');
  });
});

describe('StoreVolumeBackend on two memory regions', () => {
  let config: Config;
  let a: FaultyStore;
  let b: MemoryStore;
  let backend: StoreVolumeBackend;

  beforeEach(() => {
    const file = join(dir, 'swiftfs.yaml');
    writeFileSync(file, `stores:\n  A:\n    type: memory\n  B:\n    type: memory\n    region: dr\ndefault-store: A\nvolumes:\n  defaults:\n    cache-dir: ${join(dir, 'cache')}\n`, { mode: 0o600 });
    config = loadConfig({ env: {}, configFile: file });
    a = new FaultyStore(new MemoryStore({ name: 'A' }));
    b = new MemoryStore({ name: 'B' });
    backend = new StoreVolumeBackend({ config, openStore: async (name) => (name === 'A' ? a : name === 'B' ? b : Promise.reject(new Error(`no store ${name}`))), format: formatWithCore, labelCacheMs: 0 });
  });

  test('-o replicas: regions this host knows, other than the volume\'s own; normalised', () => {
    assert.equal(backend.resolve('pg', { replicas: ' B , dr,B' }).options['replicas'], 'B,dr');
    assert.throws(() => backend.resolve('pg', { replicas: 'mars' }), /no store or region named "mars"/);
    assert.throws(() => backend.resolve('pg', { replicas: 'A' }), /region A is where volume pg lives/);
    assert.throws(() => backend.resolve('pg', { replicas: 'B', region: 'dr' }), /region B is where volume pg lives/);
    assert.throws(() => backend.resolve('pg', { replicas: 'a b' }), /replicas: "a b" is not valid .*region names separated by commas/);
    assert.throws(() => backend.resolve('pg', { replicas: 'x@y@z' }), /not valid/);
  });

  test('a replica is listed once, refused by Create; after a planned relocation and a failover the new home is found', async () => {
    const created = await backend.create(backend.resolve('pg', { replicas: 'B' }), signal());
    const rep = new Replicator({ source: { store: a, container: 'pg', region: 'A' }, target: { store: b, container: 'pg', region: 'B' } });
    await rep.syncOnce();
    await rep.stop();
    assert.equal((await b.getLabels('pg'))['swiftfs-volume'], 'pg', 'the replica carries the Docker name');

    assert.deepEqual((await backend.list(signal())).map((v) => `${v.name}@${v.location.store}`), ['pg@A'], 'listed once, at its home');
    assert.deepEqual((await backend.list(signal(), true)).map((v) => `${v.location.store}:${v.role}`).sort(), ['A:home', 'B:replica']);
    assert.equal((await backend.lookup('pg', signal()))?.location.store, 'A');
    await assert.rejects(backend.create(backend.resolve('pg', { store: 'B' }), signal()), /is a replica of volume pg/);
    assert.equal(await backend.findHome(created, signal()), null, 'not moved');

    // Planned move A -> B (as `swiftfs relocate` does it).
    const moved = await relocate({ config, source: { region: 'A', container: 'pg' }, to: 'B', openStore: async (r) => (r === 'A' ? a : b), fenceSettleMs: 10 });
    assert.equal(moved.done, true);
    const old = await backend.inspect(created.location, signal());
    assert.equal(old?.role, 'retired');
    assert.deepEqual(old?.relocatedTo, { region: 'B', container: 'pg' });
    assert.equal(old?.holder, undefined, 'a fence is not a live holder');
    const home = await backend.findHome(created, signal());
    assert.equal(home?.location.store, 'B');
    assert.equal(home?.location.region, 'dr');
    assert.equal(home?.uuid, created.uuid);
    assert.equal((await backend.lookup('pg', signal()))?.location.store, 'B', 'lookup prefers the new home');

    // Back to A as a replica, then a failover to A while B is... simulated the other way round: A is the
    // replica, B goes down, A takes over; the backend, knowing only B, finds A.
    const back = new Replicator({ source: { store: b, container: 'pg', region: 'B' }, target: { store: a, container: 'pg', region: 'A' }, reset: true });
    await back.syncOnce();
    await back.stop();
    const bDown = new FaultyStore(b);
    const backend2 = new StoreVolumeBackend({ config, openStore: async (name) => (name === 'A' ? a : bDown), format: formatWithCore, labelCacheMs: 0 });
    bDown.goOffline();
    const failed = await relocate({ config, source: { region: 'B', container: 'pg' }, to: 'A', failover: true, force: true, uuid: created.uuid, openStore: async (r) => (r === 'A' ? a : bDown), fenceSettleMs: 10, probeTimeoutMs: 500 });
    assert.equal(failed.done, true, JSON.stringify(failed.plan.refusals));
    const found = await backend2.findHome({ name: 'pg', uuid: created.uuid, location: home!.location }, signal());
    assert.equal(found?.location.store, 'A', 'the home B does not answer: the container A took over is found by UUID');
  });
});

test('inspect and `swiftfs status` show a mount\'s replication from its control status', () => {
  const regions = {
    region: 'A',
    home: { region: 'A', container: 'pg' },
    replicating: true,
    replicas: [
      { mode: 'swiftfs', target: { region: 'dr', container: 'pg' }, state: 'syncing', lagSeconds: 3.14159, lagBytes: 2 * 1024 * 1024, replicatedSeq: 7, sourceSeq: 9, lastSyncAt: Date.UTC(2025, 0, 1), recentMaxLagSeconds: 4 },
      { mode: 'store', target: { region: 'far', container: 'pg' }, state: 'error', lagSeconds: 0, lagBytes: 0, replicatedSeq: -1, sourceSeq: 9, lastSyncAt: null, lastError: 'store unreachable' },
    ],
  };
  const r = replicationFromRegions({ ...regions, pendingFences: false } as never);
  assert.equal(r?.replicas[0]?.lagSeconds, 3.1);
  assert.equal(r?.replicas[0]?.lastSyncAt, '2025-01-01T00:00:00.000Z');
  assert.equal(r?.replicas[1]?.lastError, 'store unreachable');
  assert.equal(replicationFromRegions(null), undefined);
  const lines = describeRegions({ ...regions, pendingFences: true });
  assert.match(lines[0]!, /region: +A; old homes still to fence/);
  assert.match(lines[1]!, /replica: dr\/pg +syncing, lag 3\.1 s, 2\.0 MiB behind, at #7 of #9, max lag 4\.0 s/);
  assert.match(lines[2]!, /replica: far\/pg \(kept by the store\) +error, .*\[store unreachable\]/);
  assert.deepEqual(describeRegions(null), []);
});
